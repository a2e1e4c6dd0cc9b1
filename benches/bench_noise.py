#!/usr/bin/env python
"""Noisy measurements: the true regret of the reported best, plain vs re-measured vs racing.

A synthetic objective with known true values: 8 integer parameters in 0..7, true value
``1 + 0.05 * sum((x_i - o_i)^2)`` (a time-like score, minimum 1.0 at a seeded optimum ``o``),
measured with noise:

- ``gaussian``: additive N(0, sd^2), sd = ``--sd`` (default 0.1: about the gap of two steps of one
  parameter near the optimum);
- ``heavy``: additive ``sd/2 * t(2)`` (Student's t with 2 degrees of freedom: infinite variance,
  rare huge outliers, as a timing disturbed by another process).

Each method runs the same search (``generations`` x ``pool_size``, every other setting at its
default, the sequential worker) and reports ``get_best_result()``; its true regret is the true
value of the reported params minus 1.0. Methods:

- ``plain``: the defaults (every candidate measured once; the best single measurement wins);
- ``remeasure5``: ``remeasure_top=5`` (``remeasure_repeats=10``, the default): the 5 best are
  measured 10 more times and the best re-measured mean wins (50 more measurements);
- ``plain_equal``: the plain search given the same total measurements as ``remeasure5`` (more
  generations), so the comparison is not only "more measurements";
- ``repeats3_equal``: ``repeats=3`` (median of 3) with a third of the generations: equal total;
- ``racing``: ``racing=True``, whose extra measurements count toward the same budget (equal total
  measurements with ``plain``).

The median over seeds (0..K-1, default 100: regrets are multiples of 0.025, so the median of 20 moves in coarse steps) of each method's regret, and its ratio to ``plain``'s;
"best evaluated" is the regret of the truly best candidate the run measured (what a perfect
choice among its candidates would report: the search's own share of the regret).
Target (issue 12): remeasure5's median regret <= half of plain's.

Usage::

    .venv/bin/python benches/bench_noise.py                 # 100 seeds, both noises (~3 min on 2 cores)
    .venv/bin/python benches/bench_noise.py --seeds 5 --quick
    .venv/bin/python benches/bench_noise.py --gcc --seeds 3     # the gcc job's -O2 CV, concurrent vs two-phase

``--gcc``: the gcc job (its space and configuration, ``remeasure_top=0``) on 2 local Dask workers
(``DaskWorker(n_workers=2)``), 3 generations of 12, where every evaluation also runs a prebuilt -O2
binary once more (``ProbedGcc``): the coefficient of variation of those -O2 times over the search
says how disturbed a measurement is. ``concurrent``: a plain objective (both workers compile and
run at will); ``two-phase``: build on both workers, measure one at a time on the host;
``two-phase quiet``: also ``quiet_measurements=True`` (no build runs during a measurement);
``alone``: the sequential worker (one candidate at a time, nothing else of the search runs): the
machine's own floor. Besides the CV, the table gives the jitter (the CV from successive
differences, which slow drift of a shared machine barely moves) and the hypervisor's CPU steal
share while probing (Linux ``/proc/stat``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, environment, fmt  # noqa: E402

import genetune as gt  # noqa: E402
import genetune.search_spaces as ss  # noqa: E402

DIM, LEVELS = 8, 8


class Noisy:
    """The synthetic objective: true value plus seeded noise (one stream per run)."""

    def __init__(self, optimum: list[int], noise: str, sd: float, seed: int) -> None:
        self.optimum, self.noise, self.sd = optimum, noise, sd
        self.rng = np.random.default_rng([seed, 99])
        self.calls = 0

    def true(self, params: dict[str, Any]) -> float:
        if not params:
            return 2.0
        return 1.0 + 0.05 * sum((params[f"x{i}"] - o) ** 2 for i, o in enumerate(self.optimum))

    def __call__(self, params: dict[str, Any]) -> float:
        self.calls += 1
        noise = self.rng.normal(0.0, self.sd) if self.noise == "gaussian" else 0.5 * self.sd * self.rng.standard_t(2)
        return self.true(params) + float(noise)


SPACE = {f"x{i}": ss.range(0, LEVELS - 1) for i in range(DIM)}


def run(method: str, noise: str, seed: int, generations: int, pool: int, sd: float) -> dict[str, Any]:
    optimum = [int(v) for v in np.random.default_rng([seed, 7]).integers(0, LEVELS, DIM)]
    objective = Noisy(optimum, noise, sd, seed)
    fields: dict[str, Any] = {"generations": generations, "pool_size": pool, "seed": seed}
    extra_generations = math.ceil(50 / pool)  # remeasure5's 5 x 10 extra measurements
    if method == "remeasure5":
        fields["remeasure_top"] = 5
    elif method == "plain_equal":
        fields["generations"] = generations + extra_generations
    elif method == "repeats3_equal":
        fields.update(repeats=3, generations=max(1, round((generations + extra_generations) / 3)))
    elif method == "racing":
        fields["racing"] = True
    elif method != "plain":
        raise ValueError(method)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = gt.Search(objective, SPACE, fields, worker_type="sequential", cache_folder=cache, disable_progress_bar=True).start()
    best = result.get_best_result()
    assert isinstance(best, dict)
    df = result.get_results()
    evaluated = [objective.true(p) - 1.0 for p, status in zip(df["params"], df["status"], strict=True) if status == "valid"]
    return {
        "oracle_regret": min(evaluated),
        "method": method,
        "noise": noise,
        "seed": seed,
        "regret": objective.true(best["params"]) - 1.0,
        "measurements": objective.calls,
        "wall_s": time.perf_counter() - started,
    }


# ----- the gcc job on 2 local Dask workers: how noisy is a measurement during a search? ----------

_O2: dict[int, Any] = {}  # the -O2 probe build, once per worker process


def _cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from /proc/stat (Linux), or None: the share of time the
    hypervisor gave this VM's CPUs to someone else."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def jitter(values: list[float]) -> float:
    """The coefficient of variation from successive differences (von Neumann): sqrt(mean of
    squared successive differences / 2) / mean. Slow drift of the machine (another VM on the host
    starting or stopping) barely moves it; measurement-to-measurement disturbance does."""
    if len(values) < 3:
        return math.nan
    diffs = [b - a for a, b in zip(values, values[1:])]
    return math.sqrt(statistics.fmean(d * d for d in diffs) / 2) / statistics.fmean(values)


class ProbedGcc:
    """The gcc job's objective, plus one -O2 measurement with every candidate (logged as metric
    ``o2_s``): the same program measured again and again under the search's own disturbance.
    ``two_phase=False`` is a plain callable (compile and run at once on every worker), True has
    build/measure (compile on every worker, measure alone on the host)."""

    def __init__(self, size: str, two_phase: bool) -> None:
        from genetune.jobs.gcc import GccObjective

        self.gcc = GccObjective(size=size)  # type: ignore[arg-type]
        self.two_phase = two_phase
        if two_phase:
            self.build = self._build
            self.measure = self._measure

    def _probe(self) -> Any:
        import os

        if os.getpid() not in _O2:
            _O2[os.getpid()] = self.gcc.build({})  # -O2, kept for the process' life
        return _O2[os.getpid()]

    def _build(self, params: dict[str, Any]) -> Any:
        self._probe()
        return self.gcc.build(params)

    def _measure(self, built: Any) -> float:
        value = self.gcc.measure(built)
        before = _cpu_times()
        gt.log_metric("o2_s", self.gcc.measure(self._probe()))
        after = _cpu_times()
        gt.log_metric("o2_at", time.time())
        if before and after and after[1] > before[1]:
            gt.log_metric("o2_steal", (after[0] - before[0]) / (after[1] - before[1]))
        return value

    def __call__(self, params: dict[str, Any]) -> float:
        built = self._build(params)
        try:
            return self._measure(built)
        finally:
            self.gcc.release(built)

    def release(self, built: Any) -> None:
        self.gcc.release(built)


#: How the search measures; "alone" is the floor: the sequential worker, nothing else of the search runs.
GCC_MODES = ("concurrent", "two-phase", "two-phase quiet", "alone")


def gcc_cv(seeds: int, generations: int, pool: int, size: str) -> list[dict[str, Any]]:
    """Coefficient of variation of the -O2 probe over a search, concurrent vs two-phase."""
    from genetune.jobs.gcc import load_space, search_config

    space = load_space()
    rows = []
    modes = GCC_MODES
    for seed in range(seeds):
        for mode in modes[seed % len(modes) :] + modes[: seed % len(modes)]:  # rotate which mode goes first
            two_phase = mode.startswith("two-phase")
            objective = ProbedGcc(size, two_phase)
            config = {**search_config(space, generations, pool, seed, remeasure_top=0), "quiet_measurements": mode.endswith("quiet")}
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as cache, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                worker: Any = "sequential" if mode == "alone" else gt.DaskWorker(n_workers=2)
                result = gt.Search(objective, space, config, worker_type=worker, cache_folder=cache, disable_progress_bar=True).start()
            logged = [m["metrics"] for m in result.get_results()["metadata"] if isinstance(m, dict) and "o2_s" in m.get("metrics", {})]
            logged.sort(key=lambda m: m.get("o2_at", 0.0))  # in the order they ran
            probes = [m["o2_s"] for m in logged]
            steal = [m["o2_steal"] for m in logged if "o2_steal" in m]
            cv = statistics.stdev(probes) / statistics.fmean(probes) if len(probes) > 1 else math.nan
            rows.append(
                {"mode": mode, "seed": seed, "cv": cv, "jitter": jitter(probes), "mean_s": statistics.fmean(probes) if probes else math.nan,
                 "steal": statistics.fmean(steal) if steal else math.nan, "probes": probes, "wall_s": time.perf_counter() - started}
            )
            print(f"gcc seed {seed} {mode}: CV {cv:.3f}, jitter {rows[-1]['jitter']:.3f}, steal {rows[-1]['steal']:.3f} over {len(probes)} -O2 runs",
                  file=sys.stderr, flush=True)
    return rows


def gcc_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| measuring | median CV of -O2 | CVs per seed | median jitter (successive-difference CV) | mean -O2 time (median) | CPU steal while probing | -O2 runs per search | wall (median) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for mode in GCC_MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        cvs = [r["cv"] for r in mine]
        lines.append(
            f"| {mode} | {fmt(statistics.median(cvs))} | {', '.join(fmt(c) for c in cvs)} | {fmt(statistics.median(r['jitter'] for r in mine))} | "
            f"{fmt(statistics.median(r['mean_s'] for r in mine))} s | {statistics.median(r['steal'] for r in mine):.1%} | "
            f"{statistics.median(len(r['probes']) for r in mine):.0f} | {statistics.median(r['wall_s'] for r in mine):.0f} s |"
        )
    return "\n".join(lines)


METHODS = ("plain", "remeasure5", "plain_equal", "repeats3_equal", "racing")


def table(rows: list[dict[str, Any]], seeds: int) -> str:
    lines = [
        "| noise | method | median regret | vs plain | mean regret | best evaluated (median) | measurements (median) | seeds |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for noise in sorted({r["noise"] for r in rows}):
        base = statistics.median(r["regret"] for r in rows if r["noise"] == noise and r["method"] == "plain")
        for method in METHODS:
            mine = [r for r in rows if r["noise"] == noise and r["method"] == method]
            if not mine:
                continue
            med = statistics.median(r["regret"] for r in mine)
            ratio = med / base if base > 0 else math.nan
            lines.append(
                f"| {noise} | {method} | {fmt(med)} | {fmt(ratio, 2)}x | {fmt(statistics.fmean(r['regret'] for r in mine))} | "
                f"{fmt(statistics.median(r['oracle_regret'] for r in mine))} | "
                f"{statistics.median(r['measurements'] for r in mine):.0f} | {len(mine)} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--sd", type=float, default=0.1)
    parser.add_argument("--noises", default="gaussian,heavy")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--quick", action="store_true", help="5 generations of 12")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--gcc", action="store_true", help="instead: the gcc job's -O2 CV on 2 local Dask workers, concurrent vs two-phase")
    parser.add_argument("--gcc-size", default="default")
    args = parser.parse_args()
    if args.gcc:
        gcc_rows = gcc_cv(args.seeds, 2 if args.quick else 3, 8 if args.quick else 12, args.gcc_size)
        print(gcc_table(gcc_rows))
        out = args.out or ROOT / "benches" / "results" / f"noise-gcc-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"environment": environment(("genetune", "numpy", "distributed")), "rows": gcc_rows}, indent=1))
        print(f"raw results: {out}", file=sys.stderr)
        return 0
    if args.quick:
        args.generations, args.pool = 5, 12
    rows = []
    for noise in args.noises.split(","):
        for seed in range(args.seeds):
            for method in args.methods.split(","):
                rows.append(run(method, noise, seed, args.generations, args.pool, args.sd))
        print(f"{noise}: done", file=sys.stderr, flush=True)
    text = table(rows, args.seeds)
    print(text)
    out = args.out or ROOT / "benches" / "results" / f"noise-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"generations": args.generations, "pool": args.pool, "sd": args.sd, "seeds": args.seeds}
    out.write_text(json.dumps({"environment": environment(("genetune", "numpy")), "settings": settings, "rows": rows}, indent=1))
    print(f"raw results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
