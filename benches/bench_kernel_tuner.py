#!/usr/bin/env python
"""genetune's Kernel Tuner strategy against Kernel Tuner's built-in strategies, in simulation mode.

Spaces: brute-force caches of three CPU kernels with real tuning parameters and restrictions
(``benches/kernel_tuner/kernels.py``: a tiled matmul, a cache-blocked 2D convolution, a tiled
transpose), recorded on this machine with Kernel Tuner's C backend (gcc ``-O3 -march=native``) by
``benches/kernel_tuner/record.py``; failed compiles are in the caches as Kernel Tuner records them.
Kernel Tuner's own test caches (15 configurations) are too small for a 50-evaluation budget.

Every strategy runs through ``kernel_tuner.tune_kernel(..., simulation_mode=True, cache=...)``
with ``strategy_options={"max_fevals": B}``, one run per budget B in 50, 100, 200, 400 and seed
for the strategies that read ``max_fevals`` (genetune, bayes_opt, dual_annealing, simulated_annealing); the
others are read at each budget from one run at the largest (their first B evaluations); seeds
0..K-1 (``GenetuneStrategy(seed=s)``; the built-ins draw from numpy's and Python's global
RNGs, seeded with s before each run), at its defaults (genetune: ``SearchConfiguration`` defaults).

Scores, as Kernel Tuner's authors compare strategies:
- fraction of the optimum: optimum time / best time found within B evaluations (1 = optimum);
- the methodology's score (Willemsen et al., AutoTuningAssociation/autotuning_methodology):
  at each evaluation f, (random(f) - best(f)) / (random(f) - optimum), where random(f) is the
  expected best of f draws without replacement from the search space (computed exactly from the
  cache; failed configurations count as draws); averaged over f = 1..B. 0 = random search, 1 = the
  optimum from the first evaluation.

Usage::

    .venv/bin/python benches/bench_kernel_tuner.py                       # 10 seeds, 4 budgets, 3 spaces
    .venv/bin/python benches/bench_kernel_tuner.py --seeds 2 --budgets 50 --strategies genetune,random_sample
    .venv/bin/python benches/bench_kernel_tuner.py --out benches/results/kernel_tuner.json
    .venv/bin/python benches/bench_kernel_tuner.py --report benches/results/kernel_tuner.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "kernel_tuner"))

from common import environment  # noqa: E402
from kernels import KERNELS  # noqa: E402

BUILTINS = ("genetic_algorithm", "pso", "dual_annealing", "simulated_annealing", "mls", "bayes_opt", "random_sample")
STRATEGIES = ("genetune", *BUILTINS)
BUDGETS = (50, 100, 200, 400)
#: Strategies that read max_fevals (their schedule or initial sample depends on it) run once per
#: budget; the others behave the same whatever the budget, so one run at the largest budget is read
#: at each budget (its first B evaluations): the same distribution at a quarter of the cost.
#: genetune reads it too: the steady-state engine sizes its space-filling start by the budget.
BUDGET_AWARE = frozenset({"genetune", "bayes_opt", "dual_annealing", "simulated_annealing"})


def _cache_values(path: Path) -> tuple[dict[str, float], int]:
    """The valid configurations' times and the number of configurations in the space."""
    from kernel_tuner.util import read_cache

    data = read_cache(str(path), open_cache=False)
    times = {k: float(r["time"]) for k, r in data["cache"].items() if "__error__" not in r}
    return times, len(data["cache"])


def random_curve(times: list[float], size: int, budget: int) -> np.ndarray:
    """Expected best of f draws without replacement (f = 1..budget) from a space of ``size``
    configurations whose valid ones have ``times``; failed ones count as the worst valid time."""
    worst = max(times)
    values = np.sort(np.array(times + [worst] * (size - len(times))))
    n = len(values)
    out = np.empty(budget)
    for f in range(1, budget + 1):
        if f > n:
            out[f - 1] = values[0]
            continue
        # P(the best of f draws is the i-th smallest) = C(n-1-i, f-1) / C(n, f), i = 0..n-f
        i = np.arange(n - f + 1)
        logp = _lcomb(n - 1 - i, f - 1) - _lcomb(np.array([n]), f)[0]
        out[f - 1] = float(np.sum(np.exp(logp) * values[: n - f + 1]))
    return out


def _lcomb(n: np.ndarray, k: int) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


_ARGS: dict[str, dict[str, Any]] = {}


def run_one(strategy: str, kernel: str, budget: int, seed: int) -> dict[str, Any]:
    import kernel_tuner

    from genetune.integrations.kernel_tuner import GenetuneStrategy

    if kernel not in _ARGS:  # once per process
        _ARGS[kernel] = KERNELS[kernel].tune_kernel_args()
    args = _ARGS[kernel]
    np.random.seed(seed)
    random.seed(seed)
    strat: Any = GenetuneStrategy(seed=seed) if strategy == "genetune" else strategy
    start = time.perf_counter()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        results, _ = kernel_tuner.tune_kernel(
            **args,
            strategy=strat,
            strategy_options={"max_fevals": budget},
            cache=str(KERNELS[kernel].cache),
            simulation_mode=True,
            quiet=True,
        )
    seconds = time.perf_counter() - start
    seen: set[tuple[Any, ...]] = set()
    trace: list[float | None] = []  # one entry per distinct evaluation: its time, None if failed
    keys = list(args["tune_params"])
    for r in results:
        key = tuple(r[k] for k in keys)
        if key in seen:
            continue
        seen.add(key)
        trace.append(None if "__error__" in r else float(r["time"]))
    return {"strategy": strategy, "kernel": kernel, "budget": budget, "seed": seed, "trace": trace[:budget], "seconds": seconds}


def scores(run: dict[str, Any], optimum: float, worst: float, rand: np.ndarray) -> tuple[float, float]:
    """(fraction of the optimum, methodology score) of one run at its budget."""
    budget = run["budget"]
    best = math.inf
    curve = np.empty(budget)
    for f in range(budget):
        t = run["trace"][f] if f < len(run["trace"]) else None
        if t is not None:
            best = min(best, t)
        curve[f] = min(best, worst)
    denom = rand[:budget] - optimum
    with np.errstate(divide="ignore", invalid="ignore"):
        per_f = np.where(denom > 0, (rand[:budget] - curve) / denom, 1.0)
    fraction = optimum / best if best < math.inf else 0.0
    return fraction, float(np.mean(per_f))


def merged(files: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several --out files: per (kernel, strategy), the runs of the last file that has any."""
    out: dict[str, Any] = {"spaces": {}, "runs": [], "environment": [f["environment"] for f in files]}
    for f in files:
        replaced = {(r["kernel"], r["strategy"]) for r in f["runs"]}
        out["runs"] = [r for r in out["runs"] if (r["kernel"], r["strategy"]) not in replaced] + f["runs"]
        out["spaces"].update(f["spaces"])
    return out


def report(data: dict[str, Any]) -> str:
    runs = data["runs"]
    kernels = sorted({r["kernel"] for r in runs}, key=list(KERNELS).index)
    strategies = [s for s in STRATEGIES if any(r["strategy"] == s for r in runs)]
    budgets = sorted({r["budget"] for r in runs})
    lines: list[str] = []
    summary: dict[str, dict[int, list[float]]] = {s: {b: [] for b in budgets} for s in strategies}
    summary_score: dict[str, dict[int, list[float]]] = {s: {b: [] for b in budgets} for s in strategies}
    wins: list[str] = []
    for kernel in kernels:
        info = data["spaces"][kernel]
        lines.append(
            f"\n{kernel}: {info['size']} configurations ({info['failed']} failed), optimum {info['optimum']:.4g} ms, "
            f"median {info['median']:.4g} ms"
        )
        lines.append("median fraction of the optimum (methodology score vs random) over seeds")
        lines.append("| strategy | " + " | ".join(f"{b} evals" for b in budgets) + " |")
        lines.append("|---|" + "---|" * len(budgets))
        medians: dict[tuple[str, int], float] = {}
        for s in strategies:
            cells = []
            for b in budgets:
                rs = [r for r in runs if r["kernel"] == kernel and r["strategy"] == s and r["budget"] == b]
                if not rs:
                    cells.append("-")
                    continue
                frac = statistics.median(r["fraction"] for r in rs)
                score = statistics.median(r["score"] for r in rs)
                medians[s, b] = frac
                summary[s][b].append(frac)
                summary_score[s][b].append(score)
                cells.append(f"{frac:.3f} ({score:+.2f})")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        for b in budgets:
            ranked = sorted((medians[s, b], s) for s in strategies if (s, b) in medians)
            if ranked:
                top = ranked[-1][0]
                best = [s for v, s in ranked if v == top]
                gt = medians.get(("genetune", b))
                verdict = "genetune best" if "genetune" in best else f"missed: best {best[0]} {top:.3f}, genetune {gt:.3f}"
                wins.append(f"{kernel} @ {b}: {verdict}")
    lines.append("\nmean over spaces of the median fraction of the optimum (of the median methodology score)")
    lines.append("| strategy | " + " | ".join(f"{b} evals" for b in budgets) + " |")
    lines.append("|---|" + "---|" * len(budgets))
    for s in strategies:
        cells = [
            f"{statistics.mean(summary[s][b]):.3f} ({statistics.mean(summary_score[s][b]):+.2f})" if summary[s][b] else "-"
            for b in budgets
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("\n" + "\n".join(wins))
    seconds = {s: statistics.median(r["seconds"] for r in runs if r["strategy"] == s) for s in strategies}
    lines.append("\nmedian seconds per run: " + ", ".join(f"{s} {v:.2f}" for s, v in seconds.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--kernels", default=",".join(KERNELS))
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes; nothing timed is compared)")
    parser.add_argument("--out", type=Path, help="write every run (its trace) and the environment as JSON")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="print the tables of earlier --out files (a later file's runs replace the same strategy's on the same kernel)",
    )
    args = parser.parse_args()
    if args.report:
        print(report(merged([json.loads(p.read_text()) for p in args.report])))
        return
    budgets = [int(b) for b in args.budgets.split(",")]
    strategies = args.strategies.split(",")
    kernels = args.kernels.split(",")
    unknown = [s for s in strategies if s not in STRATEGIES] + [k for k in kernels if k not in KERNELS]
    if unknown:
        parser.error(f"unknown strategies/kernels {unknown}")
    data: dict[str, Any] = {"environment": environment(("genetune", "kernel_tuner", "numpy", "scipy")), "spaces": {}, "runs": []}
    rands: dict[str, tuple[float, float, np.ndarray]] = {}
    for kernel in kernels:
        k = KERNELS[kernel]
        if not k.cache.is_file():
            sys.exit(f"{k.cache} is missing: record it with benches/kernel_tuner/record.py")
        times, size = _cache_values(k.cache)
        optimum, worst = min(times.values()), max(times.values())
        rands[kernel] = (optimum, worst, random_curve(list(times.values()), size, max(budgets)))
        median = statistics.median(times.values())
        data["spaces"][kernel] = {"size": size, "failed": size - len(times), "optimum": optimum, "median": median}
    top = max(budgets)
    tasks = [
        (s, k, b, seed)
        for k in kernels
        for seed in range(args.seeds)
        for s in strategies
        for b in (budgets if s in BUDGET_AWARE else [top])
    ]
    done = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for run in pool.map(run_one, *zip(*tasks)):
            optimum, worst, rand = rands[run["kernel"]]
            for b in budgets if run["budget"] == top and run["strategy"] not in BUDGET_AWARE else [run["budget"]]:
                at_b = {**run, "budget": b, "trace": run["trace"][:b]}
                at_b["fraction"], at_b["score"] = scores(at_b, optimum, worst, rand)
                data["runs"].append(at_b)
            done += 1
            if done % 20 == 0:
                print(f"{done}/{len(tasks)} runs", file=sys.stderr, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data))
    print(report(data))


if __name__ == "__main__":
    main()
