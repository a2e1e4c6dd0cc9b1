#!/usr/bin/env python
"""The model-assisted engine's own cost: ask + tell time per candidate at 60 parameters.

Issue 19's speed target for the steady schedule (the default; every candidate asked and told one
at a time, the model refitted as results arrive): <= 2 ms per asked candidate with 1,000
candidates evaluated and <= 5 ms with 10,000. The generational schedule (whole generations asked
and told; issue 11's target <= 1 ms / <= 5 ms) runs beside it; Optuna TPE (which costs 15-75 ms
per trial at 400-1,000 trials here) runs on the same space in the same process for the ratio.

The space: 20 knockout flags, 20 stepped ints (0..64), 10 four-way choices, 10 continuous floats.
The objective is a cheap fixed linear function (its time is excluded). genetune runs with its
defaults (``engine="auto"``, pool 32) except ``model_evaluations``, set to the run's length so
the model is in use at every generation measured (the default stops it at 2,000 evaluations,
which makes longer runs cheaper still); the row says so. Reported: the mean cost per candidate
over the whole run and over the last 10 generations (the marginal cost at that archive size).

Usage::

    .venv/bin/python benches/bench_model_speed.py            # 1,000 and 10,000 evaluations; TPE to 1,000
    .venv/bin/python benches/bench_model_speed.py --quick    # 1,000 only; TPE to 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, set_thread_env  # noqa: E402

set_thread_env()

import numpy as np  # noqa: E402

import genetune as gt  # noqa: E402
import genetune.search_spaces as ss  # noqa: E402

POOL = 32
FLAGS, INTS, CHOICES, FLOATS = 20, 20, 10, 10


def space() -> dict[str, Any]:
    out: dict[str, Any] = {f"f{i}": ss.literal(f"-f{i}", knockout_prob=0.5) for i in range(FLAGS)}
    out.update({f"i{i}": ss.range(0, 64, 1) for i in range(INTS)})
    out.update({f"c{i}": ss.choice(["a", "b", "c", "d"]) for i in range(CHOICES)})
    out.update({f"r{i}": ss.range(0.0, 1.0, None) for i in range(FLOATS)})
    return out


WEIGHTS = np.random.default_rng(0).normal(size=FLAGS + INTS + CHOICES + FLOATS)


def objective(x: np.ndarray) -> np.ndarray:
    return np.asarray((np.nan_to_num(x, nan=-1.0) * WEIGHTS).sum(axis=1, keepdims=True))


def genetune_cost(evaluations: int, schedule: str) -> tuple[float, float]:
    """(mean ms per candidate over the run, mean over its last 10 * pool candidates)."""
    config = gt.SearchConfiguration(generations=evaluations // POOL, seed=1, model_evaluations=evaluations, schedule=schedule)
    engine = gt.Engine(space(), config)
    if schedule == "steady":
        costs: list[float] = []
        while not engine.done:
            t0 = time.perf_counter()
            ids, x = engine.ask_array(1)
            t1 = time.perf_counter()
            scores = objective(x)
            t2 = time.perf_counter()
            engine.tell(ids, scores)
            t3 = time.perf_counter()
            costs.append((t1 - t0) + (t3 - t2))
        return 1e3 * float(np.mean(costs)), 1e3 * float(np.mean(costs[-POOL * 10 :]))
    per_generation: list[float] = []
    while not engine.done:
        t0 = time.perf_counter()
        ids, x = engine.ask_array()
        t1 = time.perf_counter()
        scores = objective(x)
        t2 = time.perf_counter()
        engine.tell(ids, scores)
        t3 = time.perf_counter()
        per_generation.append(((t1 - t0) + (t3 - t2)) / len(ids))
    return 1e3 * float(np.mean(per_generation)), 1e3 * float(np.mean(per_generation[-10:]))


def tpe_cost(trials: int) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    dists: dict[str, Any] = {}
    for i in range(FLAGS):
        dists[f"f{i}"] = optuna.distributions.CategoricalDistribution([False, True])
    for i in range(INTS):
        dists[f"i{i}"] = optuna.distributions.IntDistribution(0, 64)
    for i in range(CHOICES):
        dists[f"c{i}"] = optuna.distributions.CategoricalDistribution(["a", "b", "c", "d"])
    for i in range(FLOATS):
        dists[f"r{i}"] = optuna.distributions.FloatDistribution(0.0, 1.0)
    costs: list[float] = []
    for _ in range(trials):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        t1 = time.perf_counter()
        p = trial.params
        row = [(0.0 if p[f"f{i}"] else -1.0) for i in range(FLAGS)] + [p[f"i{i}"] for i in range(INTS)]
        row += ["abcd".index(p[f"c{i}"]) for i in range(CHOICES)] + [p[f"r{i}"] for i in range(FLOATS)]
        value = float(objective(np.asarray([row], dtype=float))[0, 0])
        t2 = time.perf_counter()
        study.tell(trial, value)
        t3 = time.perf_counter()
        costs.append((t1 - t0) + (t3 - t2))
    return 1e3 * float(np.mean(costs)), 1e3 * float(np.mean(costs[-POOL * 10 :]))


def describe(env: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in env.items() if k != "versions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [1000] if args.quick else [1000, 10_000]
    tpe_trials = 300 if args.quick else 1000
    print(f"# model-assisted engine cost, 60 parameters, pool {POOL}; {describe(environment())}")
    print()
    print("| optimizer | evaluations | mean ms / candidate | last 320 candidates, ms / candidate | target |")
    print("|---|---|---|---|---|")
    results = {}
    for schedule, how in (("steady", "ask(1)/tell, one at a time"), ("generational", "whole generations")):
        for n in sizes:
            mean, last = genetune_cost(n, schedule)
            results[schedule, n] = last
            target = (2.0 if schedule == "steady" else 1.0) if n <= 1000 else 5.0
            verdict = "met" if last <= target else "MISSED"
            print(
                f"| genetune auto, schedule={schedule} ({how}; model_evaluations={n}: model on throughout) | {n:,} | {mean:.3f} | "
                f"{last:.3f} | ≤ {target:g} ms: {verdict} |",
                flush=True,
            )
    tpe_mean, tpe_last = tpe_cost(tpe_trials)
    print(f"| Optuna TPE (defaults) | {tpe_trials:,} | {tpe_mean:.2f} | {tpe_last:.2f} | — |")
    print()
    for schedule in ("steady", "generational"):
        print(f"TPE / genetune {schedule} at {sizes[0]:,} (last 320 candidates): {tpe_last / results[schedule, sizes[0]]:.0f}×")


if __name__ == "__main__":
    main()
