#!/usr/bin/env python
"""DTLZ2 under the NSGA-III paper's protocol: genetune's defaults against pymoo's NSGA3.

Deb & Jain (2014), Table III: DTLZ2 with 3 objectives and 12 variables, 91 reference points
(12 partitions), population 92, 250 generations; IGD of the final population against the 91
targets (the reference directions scaled onto the unit sphere). The paper's median is 1.357e-3.

Rows: genetune with its defaults (``engine="auto"``: the model screens the first 2,000
evaluations, NSGA-III selection throughout), genetune ``engine="nsga3"`` (the plain engine) and
pymoo ``NSGA3`` with its defaults, each with pool/pop 92 and 250 generations, seeds 0..N-1.

Usage::

    .venv/bin/python benches/bench_nsga3_paper.py            # 11 seeds
    .venv/bin/python benches/bench_nsga3_paper.py --seeds 3
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

PAPER_MEDIAN = 1.357e-3
POOL, GENERATIONS, VARIABLES = 92, 250, 12


def dtlz2(x: np.ndarray) -> np.ndarray:
    g = ((x[:, 2:] - 0.5) ** 2).sum(axis=1)
    a, b = x[:, 0] * np.pi / 2, x[:, 1] * np.pi / 2
    return np.stack([(1 + g) * np.cos(a) * np.cos(b), (1 + g) * np.cos(a) * np.sin(b), (1 + g) * np.sin(a)], axis=1)


def targets() -> np.ndarray:
    from pymoo.util.ref_dirs import get_reference_directions

    ref = get_reference_directions("das-dennis", 3, n_partitions=12)
    return np.asarray(ref / np.linalg.norm(ref, axis=1, keepdims=True))


def igd(front: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(target[:, None, :] - front[None, :, :], axis=2).min(axis=1).mean())


def run_genetune(seed: int, **settings: Any) -> np.ndarray:
    import genetune as gt
    import genetune.search_spaces as ss

    space = {f"x{i}": ss.range(0.0, 1.0, None) for i in range(VARIABLES)}
    config = gt.SearchConfiguration(generations=GENERATIONS, pool_size=POOL, num_objectives=3, seed=seed, **settings)
    engine = gt.Engine(space, config)
    while not engine.done:
        ids, x = engine.ask_array()
        engine.tell(ids, dtlz2(x))
    return np.asarray(engine.population()[2])


def run_pymoo(seed: int) -> np.ndarray:
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.optimize import minimize
    from pymoo.problems import get_problem
    from pymoo.util.ref_dirs import get_reference_directions

    algorithm = NSGA3(ref_dirs=get_reference_directions("das-dennis", 3, n_partitions=12), pop_size=POOL)
    result = minimize(get_problem("dtlz2", n_var=VARIABLES, n_obj=3), algorithm, ("n_gen", GENERATIONS), seed=seed, verbose=False)
    return np.asarray(result.pop.get("F"))


def describe(env: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in env.items() if k != "versions")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=11)
    args = ap.parse_args()
    target = targets()
    rows = {
        "genetune defaults (engine=auto)": lambda s: run_genetune(s),
        "genetune engine=nsga3": lambda s: run_genetune(s, engine="nsga3"),
        "pymoo NSGA3": run_pymoo,
    }
    print(f"# DTLZ2, NSGA-III paper protocol (pop {POOL}, {GENERATIONS} generations), seeds 0..{args.seeds - 1}; {describe(environment())}")
    print()
    print("| optimizer | median IGD (final population) | [min, max] | vs the paper's median 1.357e-3 | s / run |")
    print("|---|---|---|---|---|")
    for name, run in rows.items():
        values, times = [], []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            values.append(igd(run(seed), target))
            times.append(time.perf_counter() - t0)
        med = float(np.median(values))
        verdict = "met" if med <= PAPER_MEDIAN else "MISSED"
        print(
            f"| {name} | {med:.3e} | [{min(values):.2e}, {max(values):.2e}] | {med / PAPER_MEDIAN:.2f}× ({verdict}) "
            f"| {np.median(times):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
