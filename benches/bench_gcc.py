#!/usr/bin/env python
"""The gcc job at an equal evaluation budget: genetune against Optuna TPE and random search.

The bundled job (``genetune.jobs.gcc``): 3 self-checking C kernels (matmul, stencil, hashsort)
compiled with a candidate's flags and kernel parameters (``-D`` macros); the objective is the sum
over kernels of the median run time (seconds, lower is better); a wrong checksum, failed compile,
crash or timeout makes the candidate INVALID. ``--space joint`` (default): the kernels' own
parameters and the gcc flags together (``load_job_space("joint")``: ``kernel_space.yaml`` +
``gcc_space.yaml``, with its constraints); ``--space flags``: the gcc flags alone. Every method
searches the same space (the -march values this CPU cannot run removed) through the same
``GccObjective`` instance, evaluating one candidate at a time in this process (timings must not
compete for the cores). Every method evaluates the job's warm start first (the kernels' defaults
at ``-O3`` and ``-O3 -march=native``; genetune's ``warm_start``, Optuna's ``enqueue_trial``),
inside the budget.

- genetune: ``Search(objective, space, search_config(space, G, P, s), worker_type="sequential")``
  with G x P = budget (default 5 x 12): the job's own configuration (the demo's) but
  ``remeasure_top=0`` (every method's winner is re-measured alike, below), normalized against -O2 (measured first, outside the budget), everything else at its default (the
  model-assisted ``engine="auto"`` since 2026-12-01; earlier runs set a per-gene mutation rate of
  2.5 / parameters).
- Optuna TPE (``TPESampler(seed=s)``, defaults) and random search (``RandomSampler(seed=s)``) via
  ask/tell with the genetune space converted parameter by parameter: choice -> categorical; literal
  with knockout -> categorical [flag, None]; a knocked-out choice gets an extra None ("absent");
  range -> Int/FloatDistribution on the same grid, and a range with knockout is conditional on a
  categorical ``<name>?present`` in [True, False]. None = the flag is not passed. A parameter with
  ``when=`` is suggested only while its condition holds (define-by-run, as genetune samples it).
  A suggestion that breaks one of the space's constraints is told as INVALID_PENALTY_S without
  being evaluated and does not count against the budget (genetune never proposes one). Each
  Optuna run also measures -O2 first (``objective({})``), outside the budget, like genetune's
  baseline.
- INVALID candidates count against the budget for every method. Optuna is told a penalty value of
  1000 s (far above any valid time; TPE only ranks values) so that TPE learns to avoid them;
  ``--optuna-invalid fail`` tells it ``TrialState.FAIL`` instead (samplers then ignore the trial).
- Search-time speedup = that run's -O2 time / the best time it measured. Because the best of N noisy
  measurements is biased low (winner's curse), each run's winner is re-measured with
  ``measure_speedups(rounds=R)``: winner, -O2 and -O3 built once and run interleaved in R rounds.
- Seeds 0..K-1; for seed s the three methods run one after the other, their order rotated by s, so
  slow drift of the machine hits every method alike.

Usage::

    .venv/bin/python benches/bench_gcc.py                 # joint space, budget 60, 11 seeds, default size (~55 min on 2 cores)
    .venv/bin/python benches/bench_gcc.py --space flags   # the gcc flags alone
    .venv/bin/python benches/bench_gcc.py --quick         # smoke run: budget 24, 2 seeds, small size (~1 min)
    .venv/bin/python benches/bench_gcc.py --budget 120 --pool 12 --seeds 3 --repeats 3
    .venv/bin/python benches/bench_gcc.py --methods genetune,tpe --out benches/results/gcc.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, environment, extension_id, fmt  # noqa: E402

import genetune as gt  # noqa: E402
from genetune.jobs.gcc import GccObjective, JobSpace, flags_from_params, load_job_space, measure_speedups, search_config  # noqa: E402
from genetune.search_spaces import compile_space  # noqa: E402

METHODS = ("genetune", "tpe", "random", "genetune_remeasured")
#: The genetune rows the verdict compares with the peers.
GENETUNE_METHODS = ("genetune", "genetune_remeasured")
INVALID_PENALTY_S = 1000.0  # what Optuna is told for an INVALID candidate (--optuna-invalid penalty)

Params = dict[str, Any]


@dataclass
class Run:
    """One search: a method, a seed and what it found."""

    method: str
    seed: int
    baseline_s: float  # this run's -O2 measurement (outside the budget)
    times: list[float | None] = field(default_factory=list)  # per evaluation in order; None = INVALID
    reasons: list[str] = field(default_factory=list)  # INVALID reasons, in order
    distinct: int = 0  # distinct candidates among the evaluations
    best_params: Params | None = None
    best_s: float | None = None
    best_at: int | None = None  # 1-based evaluation index of the best
    wall_s: float = 0.0  # the whole search, baseline included
    eval_s: float = 0.0  # of which inside the objective (compile + run)
    remeasure: dict[str, Any] | None = None

    @property
    def evaluations(self) -> int:
        return len(self.times)

    @property
    def invalid(self) -> int:
        return sum(t is None for t in self.times)

    @property
    def speedup_search(self) -> float:
        return self.baseline_s / self.best_s if self.best_s else math.nan

    def best_speedup_after(self, k: int) -> float:
        valid = [t for t in self.times[:k] if t is not None]
        return self.baseline_s / min(valid) if valid else math.nan


def _distinct(candidates: list[Params]) -> int:
    return len({json.dumps(p, sort_keys=True) for p in candidates})


def _finish(run: Run, candidates: list[Params]) -> Run:
    """Fills best_* and distinct from the recorded evaluations."""
    run.distinct = _distinct(candidates)
    valid = [(t, i) for i, t in enumerate(run.times) if t is not None]
    if valid:
        best_s, i = min(valid)
        run.best_s, run.best_at, run.best_params = best_s, i + 1, candidates[i]
    return run


# ================================================================================================
# The methods
# ================================================================================================


def run_genetune(objective: GccObjective, job: JobSpace, seed: int, budget: int, pool: int, remeasured: bool = False) -> Run:
    # "genetune": the job's own (demo) configuration without its end-of-search re-measurement, so
    # every method's winner is its best single measurement, re-measured below alike. With
    # ``remeasured`` ("genetune_remeasured"): the job's defaults whole, whose winner is the best of
    # its remeasure_top candidates re-measured remeasure_repeats times (extra measurements, no
    # extra compiles, outside the budget of evaluations).
    space = job.space
    config = search_config(space, budget // pool, pool, seed) if remeasured else search_config(space, budget // pool, pool, seed, remeasure_top=0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genetune-bench-gcc-") as cache:
        search = gt.Search(
            objective, space, config, worker_type="sequential", disable_progress_bar=True, cache_folder=cache,
            constraints=list(job.constraints), warm_start=job.warm_start(),
        )
        result = search.start()
    wall = time.perf_counter() - t0
    df = result.df_results
    base = df[df["status"] == "baseline"]
    rows = df[~df["status"].isin(["baseline", "remeasure"])]
    run = Run("genetune_remeasured" if remeasured else "genetune", seed, baseline_s=float(base["score_1"].iloc[0]), wall_s=wall)
    run.eval_s = float(df["duration_s"].sum())
    candidates: list[Params] = []
    for _, row in rows.iterrows():
        candidates.append(dict(row["params"]))
        ok = row["status"] == "valid"
        run.times.append(float(row["score_1"]) if ok else None)
        if not ok:
            run.reasons.append(str(row["reason"]))
    run = _finish(run, candidates)
    if remeasured:  # the reported winner, not the best single measurement
        best = result.get_best_result()
        assert isinstance(best, dict)
        at = next(i for i, p in enumerate(candidates) if p == dict(best["params"]))
        run.best_params, run.best_at, run.best_s = candidates[at], at + 1, run.times[at]
    return run


class OptunaSpace:
    """The genetune space as Optuna define-by-run suggestions (see the module docstring)."""

    def __init__(self, job: JobSpace) -> None:
        spec = compile_space(job.space)
        if set(spec) != {"dict"} or any(set(node) != {"param", "path"} for _, node in spec["dict"]):
            raise NotImplementedError("only flat {name: parameter} spaces are converted to Optuna")
        self.params: list[tuple[str, dict[str, Any]]] = [(name, node["param"]) for name, node in spec["dict"]]
        self.job = job

    @staticmethod
    def _active(when: Any, params: Params) -> bool:
        if when is None:
            return True
        if isinstance(when, str):
            return when in params
        return all(params.get(name) in values for name, values in when.items())

    def suggest(self, trial: Any) -> Params:
        params: Params = {}
        for name, p in self.params:
            if not self._active(p.get("when"), params):
                continue
            knockout = bool(p.get("knockout_prob"))
            value: Any
            if p["type"] == "choice":
                value = trial.suggest_categorical(name, [*p["values"], *([None] if knockout else [])])
            elif p["type"] == "literal":
                value = trial.suggest_categorical(name, [p["value"], None]) if knockout else p["value"]
            elif p["type"] == "range":
                if knockout and not trial.suggest_categorical(f"{name}?present", [True, False]):
                    continue
                value = self._suggest_range(trial, name, p)
            else:
                raise NotImplementedError(f"parameter type {p['type']!r}")
            if value is not None:
                params[name] = value
        return params

    def feasible(self, params: Params) -> bool:
        """Whether ``params`` meets the space's constraints (checked by genetune's engine)."""
        if not self.job.constraints:
            return True
        try:
            gt.Engine(self.job.space, {"generations": 1, "pool_size": 6, "seed": 0}, constraints=list(self.job.constraints), warm_start=[params])
        except gt.SearchSpaceError as err:
            if "violates the constraint" in str(err):
                return False
            raise
        return True

    def distributions(self, params: Params) -> dict[str, Any]:
        """``enqueue_trial`` values for a genetune candidate (knocked-out ones as None / absent)."""
        fixed: dict[str, Any] = {}
        for name, p in self.params:
            if not self._active(p.get("when"), params):
                continue
            if p["type"] == "range" and p.get("knockout_prob"):
                fixed[f"{name}?present"] = name in params
                if name in params:
                    fixed[name] = params[name]
            elif p["type"] != "literal" or p.get("knockout_prob"):
                fixed[name] = params.get(name)
        return fixed

    @staticmethod
    def _suggest_range(trial: Any, name: str, p: dict[str, Any]) -> int | float:
        start, end, step = p["start"], p["end"], p["step"]
        if step is None:
            return float(trial.suggest_float(name, start, end))
        last = start + math.floor((end - start) / step + 1e-9) * step  # the grid's last point (ends inclusive)
        if all(isinstance(v, int) for v in (start, end, step)):
            return int(trial.suggest_int(name, start, last, step=step))
        return float(trial.suggest_float(name, start, last, step=step))


def run_optuna(method: str, objective: GccObjective, job: JobSpace, seed: int, budget: int, invalid_mode: str) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if method == "tpe" else optuna.samplers.RandomSampler(seed=seed)
    converted = OptunaSpace(job)
    t0 = time.perf_counter()
    baseline = objective({})  # -O2, outside the budget (genetune's normalize=True baseline)
    eval_s = time.perf_counter() - t0
    run = Run(method, seed, baseline_s=baseline)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    for start in job.warm_start():
        study.enqueue_trial(converted.distributions(start))
    candidates: list[Params] = []
    infeasible = 0
    while len(candidates) < budget:
        trial = study.ask()
        params = converted.suggest(trial)
        if not converted.feasible(params):  # not evaluated, not counted: genetune never proposes one
            infeasible += 1
            if infeasible > 100 * budget:
                raise RuntimeError(f"{method}: {infeasible} suggestions broke the space's constraints")
            study.tell(trial, INVALID_PENALTY_S) if invalid_mode == "penalty" else study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        candidates.append(params)
        e0 = time.perf_counter()
        try:
            value = objective(params)
        except gt.InvalidCandidate as err:
            eval_s += time.perf_counter() - e0
            run.times.append(None)
            run.reasons.append(err.reason)
            if invalid_mode == "penalty":
                study.tell(trial, INVALID_PENALTY_S)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        eval_s += time.perf_counter() - e0
        run.times.append(value)
        study.tell(trial, value)
    run.wall_s, run.eval_s = time.perf_counter() - t0, eval_s
    return _finish(run, candidates)


def remeasure(objective: GccObjective, run: Run, rounds: int) -> dict[str, Any]:
    """The winner against -O2 and -O3, interleaved (``measure_speedups``)."""
    if run.best_params is None:
        return {"error": "no valid candidate"}
    t0 = time.perf_counter()
    try:
        report = measure_speedups(objective, run.best_params, rounds=rounds, seed=run.seed)
    except gt.InvalidCandidate as err:  # e.g. a flaky timeout: recorded, not fatal
        return {"error": err.reason, "wall_s": time.perf_counter() - t0}
    return {
        "vs_O2": report.vs_O2.speedup,
        "vs_O2_ci": [report.vs_O2.ci_low, report.vs_O2.ci_high],
        "vs_O2_p": report.vs_O2.p_value,
        "vs_O3": report.vs_O3.speedup,
        "vs_O3_ci": [report.vs_O3.ci_low, report.vs_O3.ci_high],
        "O3_vs_O2": statistics.median(report.times_O2) / statistics.median(report.times_O3),
        "median_s": {
            "flags": statistics.median(report.times_flags),
            "O2": statistics.median(report.times_O2),
            "O3": statistics.median(report.times_O3),
        },
        "summary": report.summary(),
        "wall_s": time.perf_counter() - t0,
    }


# ================================================================================================
# Report
# ================================================================================================


def _nanmedian(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def _spread(values: list[float]) -> str:
    """median [min–max] over the seeds."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "-"
    return f"{statistics.median(finite):.3f}× [{min(finite):.3f}–{max(finite):.3f}]"


def _remeasured(run: Run, key: str) -> float:
    return float(run.remeasure[key]) if run.remeasure and key in run.remeasure else math.nan


def _mannwhitney(a: list[float], b: list[float]) -> float:
    from scipy.stats import mannwhitneyu

    a, b = [v for v in a if not math.isnan(v)], [v for v in b if not math.isnan(v)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


LABELS = {
    "genetune": "genetune (best single measurement)",
    "tpe": "Optuna TPE",
    "random": "random search",
    "genetune_remeasured": "genetune, job defaults (re-measured top 4)",
}


def report(runs: list[Run], budget: int, pool: int) -> tuple[str, dict[str, Any]]:
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(r.method, []).append(r)
    methods = [m for m in METHODS if m in by]
    lines = [
        "Speedup over -O2 (t(-O2) / t(flags), higher is better): median [min–max] over the seeds.",
        "",
        "| method | seeds | evals/run | invalid | distinct/run | best found at eval (median) "
        "| search-time best vs -O2 | re-measured vs -O2 | re-measured vs -O3 | search wall s/run | optimizer s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {}
    for m in methods:
        rs = by[m]
        evals = sorted({r.evaluations for r in rs})
        n_eval, n_inv = sum(r.evaluations for r in rs), sum(r.invalid for r in rs)
        search = [r.speedup_search for r in rs]
        re_o2 = [_remeasured(r, "vs_O2") for r in rs]
        re_o3 = [_remeasured(r, "vs_O3") for r in rs]
        wall = statistics.median(r.wall_s for r in rs)
        overhead = statistics.median(r.wall_s - r.eval_s for r in rs)
        best_at = statistics.median(r.best_at or 0 for r in rs)
        distinct = statistics.median(r.distinct for r in rs)
        summary[m] = {"search": search, "remeasured_O2": re_o2, "remeasured_O3": re_o3, "invalid_rate": n_inv / n_eval}
        lines.append(
            f"| {LABELS[m]} | {len(rs)} | {'/'.join(map(str, evals))} | {100 * n_inv / n_eval:.0f} % | {distinct:g} "
            f"| {best_at:g} "
            f"| {_spread(search)} | {_spread(re_o2)} | {_spread(re_o3)} | {wall:.0f} | {fmt(overhead)} |"
        )
    o3 = [_remeasured(r, "O3_vs_O2") for r in runs]
    o3_row = f"| -O3 alone (no search; every re-measurement) | {len(runs)} re-measurements | | | | | | {_spread(o3)} | 1 | | |"
    lines.append(o3_row)

    marks = sorted({max(1, budget // 4), max(1, budget // 2), budget})
    lines += [
        "",
        "Search-time best speedup over -O2 after k evaluations (median over the seeds):",
        "",
        "| method | " + " | ".join(f"k={k}" for k in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for m in methods:
        cells = [f"{_nanmedian([r.best_speedup_after(k) for r in by[m]]):.3f}×" for k in marks]
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")

    blocks = [(i, min(i + pool, budget)) for i in range(0, budget, pool)]
    lines += [
        "",
        f"INVALID share per block of {pool} evaluations (= genetune's generations), all seeds together:",
        "",
        "| method | " + " | ".join(f"{a + 1}–{b}" for a, b in blocks) + " |",
        "|---|" + "---|" * len(blocks),
    ]
    for m in methods:
        cells = []
        for a, b in blocks:
            chunk = [t for r in by[m] for t in r.times[a:b]]
            cells.append(f"{100 * sum(t is None for t in chunk) / len(chunk):.0f} %" if chunk else "-")
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")

    verdicts = []
    for mine in (m for m in GENETUNE_METHODS if m in by):
        lines += [
            "",
            f"{LABELS[mine]} / peer, ratio of the medians (> 1: genetune's flags are faster); Mann–Whitney U p over the seeds:",
            "",
            "| genetune vs | search-time ratio | re-measured ratio | re-measured p | target "
            "| met (re-measured)? | met (search-time)? |",
            "|---|---|---|---|---|---|---|",
        ]
        g = summary[mine]
        for peer, target in (("tpe", "median ≥ TPE's"), ("random", "median > random's")):
            if peer not in by:
                continue
            p = summary[peer]
            ratio_s = _nanmedian(g["search"]) / _nanmedian(p["search"])
            ratio_r = _nanmedian(g["remeasured_O2"]) / _nanmedian(p["remeasured_O2"])
            pval = _mannwhitney(g["remeasured_O2"], p["remeasured_O2"])
            strict = peer == "random"
            met_r = ratio_r > 1 if strict else ratio_r >= 1
            met_s = ratio_s > 1 if strict else ratio_s >= 1
            verdicts.append(
                {"genetune": mine, "peer": peer, "ratio_search": ratio_s, "ratio_remeasured": ratio_r, "p": pval}
                | {"met_remeasured": met_r, "met_search": met_s}
            )
            lines.append(
                f"| {LABELS[peer]} | {ratio_s:.3f} | {ratio_r:.3f} | {pval:.2g} | {target} "
                f"| {'yes' if met_r else '**no**'} | {'yes' if met_s else '**no**'} |"
            )
    return "\n".join(lines), {"methods": summary, "verdicts": verdicts}


def per_seed_table(runs: list[Run]) -> str:
    lines = [
        "| seed | method | invalid | best at | search-time vs -O2 | re-measured vs -O2 [95% CI] | re-measured vs -O3 | flags |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r.seed, METHODS.index(r.method))):
        ci = r.remeasure.get("vs_O2_ci") if r.remeasure else None
        ci_text = f" [{ci[0]:.3f}–{ci[1]:.3f}]" if ci else ""
        flags = " ".join(flags_from_params(r.best_params)) if r.best_params is not None else "-"
        lines.append(
            f"| {r.seed} | {LABELS[r.method]} | {r.invalid}/{r.evaluations} | {r.best_at} | {r.speedup_search:.3f}× "
            f"| {_remeasured(r, 'vs_O2'):.3f}×{ci_text} | {_remeasured(r, 'vs_O3'):.3f}× | `{flags}` |"
        )
    return "\n".join(lines)


# ================================================================================================
# Main
# ================================================================================================


def print_saved(paths: list[Path]) -> None:
    """The tables of one or more results files written by this script (runs of the same settings,
    e.g. one method re-run later, are reported together)."""
    names = {f.name for f in fields(Run)}
    runs: list[Run] = []
    for path in paths:
        data = json.loads(path.read_text())
        env, settings = data["environment"], data["settings"]
        runs += [Run(**{k: v for k, v in record.items() if k in names}) for record in data["runs"]]
        print(f"# {path}: {env['date']}  commit {env['commit']}  cpu {env['cpu']} x{env['nproc']}  {env['gcc']}  "
              f"total wall {env['total_wall_s']:.0f} s")
        print(f"# budget {settings['budget']} (pool {settings['pool']} x {settings['generations']}), "
              f"seeds 0..{settings['seeds'] - 1}, methods {settings.get('methods')}, "
              f"size {settings['size']}, repeats {settings['repeats']}, warmup {settings['warmup']}, rounds {settings['rounds']}, "
              f"Optuna INVALID = {settings['optuna_invalid']}")
        loads = [x[0] for x in env["loadavg_after_each_run"]]
        print(f"# 1-minute load average at the start {env['loadavg'][0]}, after each run {min(loads)}–{max(loads)}\n")
    print(report(runs, settings["budget"], settings["pool"])[0])
    print()
    print(per_seed_table(runs))


def gcc_version() -> str:
    try:
        return subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, help="evaluations per run, a multiple of --pool (default 60; --quick 24)")
    ap.add_argument("--space", default="joint", help="joint (kernel parameters + gcc flags, default), flags, or a space file")
    ap.add_argument("--pool", type=int, default=12, help="genetune pool_size; generations = budget / pool (default 12)")
    ap.add_argument("--seeds", type=int, help="seeds 0..K-1 (default 11: fewer cannot separate the methods; --quick 2)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ",".join(METHODS))
    ap.add_argument("--size", choices=("default", "small"), help="kernel size (default: default; --quick small)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per kernel and evaluation (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per kernel and evaluation (default 1)")
    ap.add_argument("--rounds", type=int, help="measure_speedups rounds for each winner (default 5; --quick 3; 0 = skip)")
    ap.add_argument("--optuna-invalid", choices=("penalty", "fail"), default="penalty",
                    help=f"what Optuna is told for an INVALID candidate: {INVALID_PENALTY_S:g} s (default) or a FAIL state")
    ap.add_argument("--quick", action="store_true", help="smoke run: budget 24, 2 seeds, small size, 3 rounds (~1 min)")
    ap.add_argument("--out", type=Path, help="raw results (JSON); default benches/results/gcc-<timestamp>.json")
    ap.add_argument("--report", type=Path, nargs="+", metavar="JSON", help="print the tables of saved runs together and exit (measures nothing)")
    args = ap.parse_args()
    if args.report:
        print_saved(args.report)
        return
    # Options given explicitly win over --quick's presets, which win over the defaults.
    presets = {"budget": (60, 24), "seeds": (11, 2), "size": ("default", "small"), "rounds": (5, 3)}
    for name, (full, quick) in presets.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    methods = [m for m in args.methods.split(",") if m]
    if set(methods) - set(METHODS):
        ap.error(f"unknown methods: {sorted(set(methods) - set(METHODS))}")
    if args.pool <= 5 or args.budget <= 0 or args.budget % args.pool:
        ap.error(f"--budget ({args.budget}) must be a positive multiple of --pool ({args.pool}), and --pool > 5")
    if args.rounds == 1:
        ap.error("--rounds must be 0 (skip) or >= 2")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or ROOT / "benches" / "results" / f"gcc-{stamp}.json"

    objective = GccObjective(size=args.size, repeats=args.repeats, warmup=args.warmup)
    job = load_job_space(args.space)
    space = job.space
    env = environment(("genetune", "numpy", "scipy", "optuna"))
    env["gcc"] = gcc_version()
    settings = {
        "budget": args.budget, "pool": args.pool, "generations": args.budget // args.pool, "seeds": args.seeds,
        "methods": methods, "size": args.size, "repeats": args.repeats, "warmup": args.warmup, "rounds": args.rounds,
        "optuna_invalid": args.optuna_invalid, "objective": repr(objective), "space_name": args.space,
        "space": compile_space(space), "constraints": list(job.constraints), "warm_start": job.warm_start(),
    }
    print(f"# genetune gcc benchmark  {env['date']}  commit {env['commit']}  cpu {env['cpu']} x{env['nproc']}  "
          f"python {env['python']}  load {env['loadavg']}", flush=True)
    print(f"# {env['gcc']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v), flush=True)
    print(f"# budget {args.budget} evaluations/run (genetune pool {args.pool} x {args.budget // args.pool} generations), "
          f"seeds 0..{args.seeds - 1}, size {args.size}, repeats {args.repeats}, warmup {args.warmup}, "
          f"re-measure rounds {args.rounds}, Optuna INVALID = {args.optuna_invalid}", flush=True)
    march = space.get("march") if isinstance(space, dict) else None
    kept = getattr(march, "values", None)
    print(f"# space {args.space}: {len(settings['space']['dict'])} parameters, {len(job.constraints)} constraints; "
          f"march values kept: {kept}", flush=True)
    objective({})  # warm-up, not counted: the -O2 reference checksums (cached per process) and the file cache

    runners: dict[str, Callable[[int], Run]] = {
        "genetune": lambda s: run_genetune(objective, job, s, args.budget, args.pool),
        "genetune_remeasured": lambda s: run_genetune(objective, job, s, args.budget, args.pool, remeasured=True),
        "tpe": lambda s: run_optuna("tpe", objective, job, s, args.budget, args.optuna_invalid),
        "random": lambda s: run_optuna("random", objective, job, s, args.budget, args.optuna_invalid),
    }
    t0 = time.perf_counter()
    runs: list[Run] = []
    loads: list[list[float]] = []
    for seed in range(args.seeds):
        order = methods[seed % len(methods):] + methods[: seed % len(methods)]
        for method in order:
            run = runners[method](seed)
            if args.rounds:
                run.remeasure = remeasure(objective, run, args.rounds)
            runs.append(run)
            loads.append([round(x, 2) for x in os.getloadavg()])
            reasons = Counter(reason.split(":", 1)[0] for reason in run.reasons)
            print(f"# seed {seed} {method:8s}: best {run.speedup_search:.3f}x vs -O2 at eval {run.best_at}, "
                  f"re-measured {_remeasured(run, 'vs_O2'):.3f}x vs -O2 / {_remeasured(run, 'vs_O3'):.3f}x vs -O3, "
                  f"invalid {run.invalid}/{run.evaluations} {dict(reasons)}, wall {run.wall_s:.0f} s "
                  f"+ {run.remeasure.get('wall_s', 0) if run.remeasure else 0:.0f} s re-measure, load {loads[-1][0]}  "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)

    env["genetune_extension_end"] = extension_id()
    if env["genetune_extension_end"] != env["genetune_extension"]:
        print(f"# WARNING: the genetune extension changed during the run: {env['genetune_extension_end']}", flush=True)
    env["loadavg_after_each_run"] = loads
    env["total_wall_s"] = time.perf_counter() - t0
    text, summary = report(runs, args.budget, args.pool)
    print()
    print(text)
    print()
    print(per_seed_table(runs))
    print(f"\n# total wall {env['total_wall_s']:.0f} s; 1-minute load average after each run: "
          f"{min(x[0] for x in loads)}–{max(x[0] for x in loads)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [asdict(r) | {"evaluations": r.evaluations, "invalid": r.invalid, "speedup_search": r.speedup_search} for r in runs]
    data = {"environment": env, "settings": settings, "runs": records, "summary": summary}
    out.write_text(json.dumps(data, indent=1, default=str))
    print(f"# raw results written to {out}")


if __name__ == "__main__":
    main()
