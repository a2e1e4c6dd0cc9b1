#!/usr/bin/env python
"""Search quality at an equal budget of 10,000 evaluations: genetune against pymoo.

- ZDT1/ZDT2/ZDT3 (n=30, 2 objectives): genetune NSGA-II vs pymoo NSGA2.
- DTLZ2 (n=12, 3 objectives): genetune NSGA-III and NSGA-II vs pymoo NSGA3 (Das–Dennis, 12
  partitions = 91 reference directions, pop_size=100 so that both evaluate exactly 100 per
  generation); pymoo NSGA2 is shown as an extra reference row.
- Rastrigin-20 on [-5.12, 5.12] and Rosenbrock-20 on [-5, 10]: genetune GA vs pymoo GA, best value.

Every run: population 100, 100 generations = 10,000 evaluations (counted and checked), seeds 0..10.
Multi-objective metrics (pymoo indicators for both libraries): hypervolume with the fixed
reference point (1.1, 1.1[, 1.1]) and IGD against a dense true front (2000 points for ZDT1/2,
pymoo's ZDT3 front with 2000 points, 1891 Das–Dennis points projected on the unit sphere for
DTLZ2), on the "archive" (non-dominated set of all evaluated points) and on the final population.

Usage::

    .venv/bin/python benches/bench_quality.py                     # full: 11 seeds, all problems, 2 processes
    .venv/bin/python benches/bench_quality.py --seeds 3 --problems zdt1,rastrigin
    .venv/bin/python benches/bench_quality.py --out benches/results/quality.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, extension_id, fmt, set_thread_env  # noqa: E402

set_thread_env()

import numpy as np  # noqa: E402

BUDGET = 10_000
POP = 100
GENS = BUDGET // POP

MO_PROBLEMS = {"zdt1": (30, 2), "zdt2": (30, 2), "zdt3": (30, 2), "dtlz2": (12, 3)}
SO_PROBLEMS = {"rastrigin": (20, -5.12, 5.12), "rosenbrock": (20, -5.0, 10.0)}
ALL_PROBLEMS = list(MO_PROBLEMS) + list(SO_PROBLEMS)

# (library, algorithm) per problem; the verdict pairs are (genetune row, pymoo row).
ALGOS: dict[str, list[tuple[str, str]]] = {
    **{p: [("genetune", "nsga2"), ("pymoo", "nsga2")] for p in ("zdt1", "zdt2", "zdt3")},
    "dtlz2": [("genetune", "nsga3"), ("genetune", "nsga2"), ("pymoo", "nsga3"), ("pymoo", "nsga2")],
    **{p: [("genetune", "ga"), ("pymoo", "ga")] for p in SO_PROBLEMS},
}
VERDICTS: dict[str, list[tuple[tuple[str, str], tuple[str, str]]]] = {
    **{p: [(("genetune", "nsga2"), ("pymoo", "nsga2"))] for p in ("zdt1", "zdt2", "zdt3")},
    "dtlz2": [
        (("genetune", "nsga3"), ("pymoo", "nsga3")),
        (("genetune", "nsga2"), ("pymoo", "nsga3")),
        (("genetune", "nsga2"), ("pymoo", "nsga2")),  # like for like, shown for information
    ],
    **{p: [(("genetune", "ga"), ("pymoo", "ga"))] for p in SO_PROBLEMS},
}
MO_METRICS = [  # (key, column title, higher is better)
    ("hv_archive", "HV archive ↑", True),
    ("igd_archive", "IGD archive ↓", False),
    ("hv_final", "HV final pop ↑", True),
    ("igd_final", "IGD final pop ↓", False),
]
SO_MARKS = (1000, 2000, 5000, 10000)


# ================================================================================================
# Problems
# ================================================================================================


def rastrigin(X: np.ndarray) -> Any:
    return (10.0 * X.shape[1] + (X**2 - 10.0 * np.cos(2.0 * np.pi * X)).sum(axis=1))[:, None]


def rosenbrock(X: np.ndarray) -> Any:
    return (100.0 * (X[:, 1:] - X[:, :-1] ** 2) ** 2 + (1.0 - X[:, :-1]) ** 2).sum(axis=1)[:, None]


def make_problem(name: str) -> Any:
    """A pymoo Problem (vectorised); both libraries evaluate through its ``evaluate``."""
    from pymoo.core.problem import Problem
    from pymoo.problems import get_problem

    if name in MO_PROBLEMS:
        n, m = MO_PROBLEMS[name]
        return get_problem(name, n_var=n, n_obj=m) if name == "dtlz2" else get_problem(name, n_var=n)
    n, lo, hi = SO_PROBLEMS[name]
    func = rastrigin if name == "rastrigin" else rosenbrock

    class SingleObjective(Problem):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(n_var=n, n_obj=1, xl=np.full(n, lo), xu=np.full(n, hi))

        def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            out["F"] = func(x)

    return SingleObjective()


_FRONTS: dict[str, np.ndarray] = {}


def true_front(name: str) -> np.ndarray:
    if name not in _FRONTS:
        if name == "dtlz2":
            from pymoo.util.ref_dirs import get_reference_directions

            d = get_reference_directions("das-dennis", 3, n_partitions=60)
            _FRONTS[name] = d / np.linalg.norm(d, axis=1, keepdims=True)
        elif name == "zdt3":
            _FRONTS[name] = make_problem(name).pareto_front(n_points=2000)
        else:
            _FRONTS[name] = make_problem(name).pareto_front(n_pareto_points=2000)
    return _FRONTS[name]


def ref_point(name: str) -> np.ndarray:
    return np.full(MO_PROBLEMS[name][1], 1.1)


# ================================================================================================
# Runs
# ================================================================================================


def run_genetune(problem: Any, algo: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All evaluated F in order, and the final population's F."""
    import genetune as gt
    import genetune.search_spaces as ss

    n = problem.n_var
    space = {f"x{i}": ss.range(float(problem.xl[i]), float(problem.xu[i]), step=None) for i in range(n)}
    cfg = gt.SearchConfiguration(
        generations=GENS, pool_size=POP, num_objectives=problem.n_obj, engine=algo, seed=seed
    )
    eng = gt.Engine(space, cfg)
    history = []
    while not eng.done:
        ids, X = eng.ask_array()
        F = problem.evaluate(X, return_values_of=["F"])
        eng.tell(ids, F)
        history.append(F)
    final = eng.population()[2]
    return np.vstack(history), np.asarray(final, dtype=float)


def run_pymoo(problem: Any, algo: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.util.ref_dirs import get_reference_directions

    if algo == "ga":
        alg: Any = GA(pop_size=POP)
    elif algo == "nsga2":
        alg = NSGA2(pop_size=POP)
    elif algo == "nsga3":
        alg = NSGA3(ref_dirs=get_reference_directions("das-dennis", problem.n_obj, n_partitions=12), pop_size=POP)
    else:
        raise ValueError(algo)
    alg.setup(problem, termination=("n_gen", GENS), seed=seed, verbose=False)
    history = []
    while alg.has_next():
        infills = alg.ask()
        alg.evaluator.eval(problem, infills)
        alg.tell(infills=infills)
        history.append(infills.get("F"))
    return np.vstack(history), np.asarray(alg.pop.get("F"), dtype=float)


def non_dominated(F: np.ndarray) -> Any:
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    return F[NonDominatedSorting().do(F, only_non_dominated_front=True)]


def task(args: tuple[str, str, str, int]) -> dict[str, Any]:
    name, lib, algo, seed = args
    from pymoo.indicators.hv import HV
    from pymoo.indicators.igd import IGD

    problem = make_problem(name)
    t0 = time.perf_counter()
    F_all, F_final = (run_genetune if lib == "genetune" else run_pymoo)(problem, algo, seed)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"problem": name, "lib": lib, "algo": algo, "seed": seed, "evaluations": len(F_all), "wall_s": wall}
    if name in MO_PROBLEMS:
        hv, igd = HV(ref_point=ref_point(name)), IGD(true_front(name))
        archive = non_dominated(F_all)
        out.update(
            hv_archive=float(hv(archive)),
            igd_archive=float(igd(archive)),
            hv_final=float(hv(F_final)),
            igd_final=float(igd(F_final)),
            archive_size=len(archive),
            final_size=len(F_final),
        )
    else:
        best = np.minimum.accumulate(F_all[:, 0])
        for mark in SO_MARKS:
            out[f"best@{mark}"] = float(best[min(mark, len(best)) - 1])
        out["best_final_pop"] = float(F_final[:, 0].min())
    return out


# ================================================================================================
# Report
# ================================================================================================


def stats(values: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return float(med), float(q1), float(q3)


def med_iqr(values: list[float]) -> str:
    med, q1, q3 = stats(values)
    return f"{fmt(med, 4)} [{fmt(q1, 4)}, {fmt(q3, 4)}]"


def mannwhitney(a: list[float], b: list[float]) -> float:
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2:
        return float("nan")
    try:
        return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    except ValueError:
        return float("nan")


def report(results: list[dict[str, Any]], problems: list[str]) -> tuple[str, list[dict[str, Any]]]:
    lines: list[str] = []
    verdict_rows: list[dict[str, Any]] = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["problem"], r["lib"], r["algo"]), []).append(r)

    def col(problem: str, la: tuple[str, str], metric: str) -> list[float]:
        return [r[metric] for r in groups.get((problem, *la), [])]

    for problem in problems:
        rows = [la for la in ALGOS[problem] if (problem, *la) in groups]
        if not rows:
            continue
        if problem in MO_PROBLEMS:
            n, m = MO_PROBLEMS[problem]
            ceiling = HV_of_front(problem)
            lines.append(
                f"**{problem.upper()}** (n={n}, {m} objectives), {BUDGET:,} evaluations, pop {POP}: median [IQR] over seeds "
                f"(HV of the true front: {ceiling:.4f})\n"
            )
            metrics = MO_METRICS
        else:
            n, lo, hi = SO_PROBLEMS[problem]
            lines.append(f"**{problem}-{n}** on [{lo:g}, {hi:g}]^{n} (optimum 0), pop {POP}: best f, median [IQR] over seeds\n")
            metrics = [(f"best@{k}", f"best@{k // 1000}k ↓", False) for k in SO_MARKS]
        head = "| lib / algorithm | seeds | evals | " + " | ".join(t for _, t, _ in metrics) + " | wall s/run |"
        lines.append(head)
        lines.append("|---|---|---|" + "---|" * len(metrics) + "---|")
        for la in rows:
            g = groups[(problem, *la)]
            evals = sorted({r["evaluations"] for r in g})
            cells = [med_iqr(col(problem, la, key)) for key, _, _ in metrics]
            evals_text = "/".join(f"{e:,}" for e in evals)
            wall = np.median([r["wall_s"] for r in g])
            lines.append(f"| {la[0]} {la[1]} | {len(g)} | {evals_text} | " + " | ".join(cells) + f" | {wall:.2f} |")
        lines.append("")

        for gt_la, pm_la in VERDICTS[problem]:
            if (problem, *gt_la) not in groups or (problem, *pm_la) not in groups:
                continue
            keys = [(k, t, hi) for k, t, hi in metrics] if problem in MO_PROBLEMS else [("best@10000", "best@10k ↓", False)]
            details = []
            failed = []
            for k, t, higher in keys:
                a, b = col(problem, gt_la, k), col(problem, pm_la, k)
                ma, mb = float(np.median(a)), float(np.median(b))
                better = ma >= mb if higher else ma <= mb
                rel = (ma - mb) / abs(mb) * 100 if mb else float("nan")
                details.append({"metric": t, "genetune": ma, "pymoo": mb, "rel_pct": rel, "ok": better, "p": mannwhitney(a, b)})
                if not better:
                    failed.append(t)
            verdict_rows.append(
                {
                    "problem": problem,
                    "genetune": " ".join(gt_la),
                    "pymoo": " ".join(pm_la),
                    "details": details,
                    "pass": not failed,
                    "failed": failed,
                }
            )

    vl = [
        "| problem | genetune vs pymoo | metric | genetune median | pymoo median | Δ vs pymoo | Mann–Whitney p "
        "| genetune ≥ pymoo median? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdict_rows:
        for d in v["details"]:
            vl.append(
                f"| {v['problem']} | {v['genetune']} vs {v['pymoo']} | {d['metric']} | "
                f"{fmt(d['genetune'], 4)} | {fmt(d['pymoo'], 4)} | "
                f"{d['rel_pct']:+.1f} % | {d['p']:.2g} | {'yes' if d['ok'] else '**no**'} |"
            )
    vl.append("")
    vl.append("| problem | genetune vs pymoo | genetune ≥ pymoo median on every metric? |")
    vl.append("|---|---|---|")
    for v in verdict_rows:
        outcome = "PASS" if v["pass"] else "FAIL (" + ", ".join(v["failed"]) + ")"
        vl.append(f"| {v['problem']} | {v['genetune']} vs {v['pymoo']} | {outcome} |")
    title = "\n**Verdicts** (target: genetune's median at least as good as pymoo's on every problem)\n\n"
    return "\n".join(lines) + title + "\n".join(vl), verdict_rows


def HV_of_front(name: str) -> float:
    from pymoo.indicators.hv import HV

    return float(HV(ref_point=ref_point(name))(true_front(name)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=11, help="seeds 0..K-1 (default 11)")
    ap.add_argument("--problems", default=",".join(ALL_PROBLEMS), help="comma list of " + ",".join(ALL_PROBLEMS))
    ap.add_argument("--libs", default="genetune,pymoo", help="comma list of libraries")
    ap.add_argument("--procs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--out", type=Path, help="write the raw results (JSON) here")
    args = ap.parse_args()

    problems = [p for p in args.problems.split(",") if p]
    unknown = set(problems) - set(ALL_PROBLEMS)
    if unknown:
        ap.error(f"unknown problems: {sorted(unknown)}")
    libs = set(args.libs.split(","))
    tasks = [(p, lib, algo, s) for p in problems for lib, algo in ALGOS[p] if lib in libs for s in range(args.seeds)]

    env = environment(("genetune", "numpy", "scipy", "pymoo", "moocore"))
    print(f"# genetune quality benchmark  {env['date']}  commit {env['commit']}  cpu {env['cpu']} x{env['nproc']}  "
          f"python {env['python']}  load {env['loadavg']}  processes {args.procs}", flush=True)
    print(f"# extension: {env['genetune_extension']}", flush=True)
    print("# versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v), flush=True)
    print(f"# {len(tasks)} runs: {BUDGET:,} evaluations each (pop {POP} x {GENS} generations), seeds 0..{args.seeds - 1}")

    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    with mp.get_context("spawn").Pool(args.procs) as pool:
        for i, r in enumerate(pool.imap_unordered(task, tasks), 1):
            results.append(r)
            if i % 10 == 0 or i == len(tasks):
                print(f"# {i}/{len(tasks)} runs done, {time.perf_counter() - t0:.0f} s", flush=True)
    env["genetune_extension_end"] = extension_id()
    if env["genetune_extension_end"] != env["genetune_extension"]:
        print(f"# WARNING: the genetune extension changed during the run: {env['genetune_extension_end']}", flush=True)
    env["total_wall_s"] = time.perf_counter() - t0
    results.sort(key=lambda r: (ALL_PROBLEMS.index(r["problem"]), r["lib"], r["algo"], r["seed"]))
    text, verdicts = report(results, problems)
    print()
    print(text)
    print(f"\n# total wall {env['total_wall_s']:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": env, "results": results, "verdicts": verdicts}, indent=1))
        print(f"# raw results written to {args.out}")


if __name__ == "__main__":
    main()
