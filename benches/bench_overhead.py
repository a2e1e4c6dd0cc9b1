#!/usr/bin/env python
"""Optimizer overhead: ask + tell time per candidate per generation, objective excluded.

genetune (array path and dict path) against pymoo, pygmo, DEAP and Optuna on sphere (1 objective),
ZDT1 (2) and DTLZ2 (3), n in {20, 200}, population in {100, 1000, 10000}.

Protocol (see benches/README.md):
- one process per configuration (subprocess), pinned to one core with ``taskset -c 0`` when available,
  OMP/OPENBLAS/MKL_NUM_THREADS=1;
- generation 0 (random initialisation) runs but is not counted;
- then up to 10 / 5 / 3 generations are timed at pop 100 / 1k / 10k, stopping early once 20 s of
  measuring have passed (at least one generation is always timed);
- the objective is a vectorised numpy function timed separately and excluded (pygmo: built-in C++
  problems, nothing subtracted);
- result: median over the timed generations of (generation time / population), in µs per candidate;
  a configuration that took < 15 s is run in 3 processes and the lowest of their medians is kept;
- a peer is skipped at the next population when a quadratic extrapolation of its generation time
  exceeds 120 s (Optuna: pop 1000 only when a linear extrapolation says it finishes in < 60 s).

Usage::

    .venv/bin/python benches/bench_overhead.py            # full run (about 15 minutes on 2 cores)
    .venv/bin/python benches/bench_overhead.py --quick    # smoke run: pop 100 and 1000, n=20, fewer peers
    .venv/bin/python benches/bench_overhead.py --out benches/results/overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import THREAD_ENV, environment, extension_id, fmt, fmt_ratio, set_thread_env  # noqa: E402

PROBLEMS = {"sphere": 1, "zdt1": 2, "dtlz2": 3}
GENS = {100: 10, 1000: 5, 10000: 3}
SEED = 0

# (library, algorithm) per problem, in table order. The first row is the reference of the ratios.
LIBS: dict[str, list[tuple[str, str]]] = {
    "sphere": [
        ("genetune", "ga array"),
        ("genetune", "ga dict"),
        ("pygmo", "sga"),
        ("pymoo", "ga"),
        ("deap", "ga"),
        ("optuna", "nsga2"),
    ],
    "zdt1": [
        ("genetune", "nsga2 array"),
        ("genetune", "nsga2 dict"),
        ("pygmo", "nsga2"),
        ("pymoo", "nsga2"),
        ("deap", "nsga2 log"),
        ("optuna", "nsga2"),
    ],
    "dtlz2": [
        ("genetune", "nsga3 array"),
        ("genetune", "nsga3 dict"),
        ("pygmo", "nsga3"),
        ("pygmo", "nsga2"),
        ("pymoo", "nsga3"),
        ("deap", "nsga2 log"),
        ("optuna", "nsga2"),
    ],
}
QUICK_LIBS = {"genetune", "pymoo", "pygmo"}


# ================================================================================================
# Objectives (vectorised numpy on [0, 1]^n; identical for every library that takes arrays)
# ================================================================================================


def objective(problem: str) -> Callable[[Any], Any]:
    import numpy as np

    if problem == "sphere":
        return lambda X: ((X - 0.5) ** 2).sum(axis=1, keepdims=True)
    if problem == "zdt1":

        def zdt1(X: Any) -> Any:
            f1 = X[:, 0]
            g = 1.0 + 9.0 * X[:, 1:].mean(axis=1)
            return np.column_stack([f1, g * (1.0 - np.sqrt(f1 / g))])

        return zdt1
    if problem == "dtlz2":

        def dtlz2(X: Any) -> Any:
            g = ((X[:, 2:] - 0.5) ** 2).sum(axis=1)
            a, b = X[:, 0] * (np.pi / 2), X[:, 1] * (np.pi / 2)
            r = 1.0 + g
            return np.column_stack([r * np.cos(a) * np.cos(b), r * np.cos(a) * np.sin(b), r * np.sin(a)])

        return dtlz2
    raise ValueError(problem)


def das_dennis_partitions(m: int, pop: int) -> int:
    """Largest Das–Dennis partition count whose reference set fits in ``pop`` (3 obj: 91/990/9870)."""
    from math import comb

    p = 1
    while comb(p + 1 + m - 1, m - 1) <= pop:
        p += 1
    return p


# ================================================================================================
# Runners: each returns (gen0, step); step() runs one generation and returns (overhead_s, objective_s)
# ================================================================================================

Step = Callable[[], tuple[float, float, float]]  # (ask+tell overhead, objective, ask part) in seconds


def make_genetune(problem: str, n: int, pop: int, algo: str, max_gens: int) -> tuple[Callable[[], None], Step]:
    import numpy as np

    import genetune as gt
    import genetune.search_spaces as ss

    m = PROBLEMS[problem]
    engine, path = algo.split()
    space = {f"x{i}": ss.range(0.0, 1.0, step=None) for i in range(n)}
    cfg = gt.SearchConfiguration(
        generations=max_gens + 3, pool_size=pop, num_objectives=m, engine=engine, seed=SEED
    )
    eng = gt.Engine(space, cfg)
    obj = objective(problem)
    pc = time.perf_counter

    if path == "array":

        def step() -> tuple[float, float, float]:
            t0 = pc()
            ids, X = eng.ask_array()
            t1 = pc()
            F = obj(X)
            t2 = pc()
            eng.tell(ids, F)
            t3 = pc()
            return (t1 - t0) + (t3 - t2), t2 - t1, t1 - t0

    else:
        keys = [f"x{i}" for i in range(n)]  # the column order of ask_array: parameter order

        def step() -> tuple[float, float, float]:
            t0 = pc()
            cands = eng.ask()
            ids = [c.id for c in cands]
            params = [c.params for c in cands]
            t1 = pc()
            F = obj(np.array([[p[k] for k in keys] for p in params], dtype=float)).tolist()
            t2 = pc()
            eng.tell(ids, F)
            t3 = pc()
            return (t1 - t0) + (t3 - t2), t2 - t1, t1 - t0

    return (lambda: step() and None), step


def make_pymoo(problem: str, n: int, pop: int, algo: str, max_gens: int) -> tuple[Callable[[], None], Step]:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.evaluator import Evaluator
    from pymoo.problems import get_problem
    from pymoo.problems.static import StaticProblem
    from pymoo.util.ref_dirs import get_reference_directions

    m = PROBLEMS[problem]
    prob = get_problem("dtlz2", n_var=n, n_obj=3) if problem == "dtlz2" else get_problem(problem, n_var=n)
    if algo == "ga":
        alg = GA(pop_size=pop)
    elif algo == "nsga2":
        alg = NSGA2(pop_size=pop)
    elif algo == "nsga2 nodup":
        alg = NSGA2(pop_size=pop, eliminate_duplicates=False)
    elif algo == "nsga3":
        ref = get_reference_directions("das-dennis", m, n_partitions=das_dennis_partitions(m, pop))
        alg = NSGA3(ref_dirs=ref, pop_size=pop)
    else:
        raise ValueError(algo)
    alg.setup(prob, termination=("n_gen", 10**9), seed=SEED, verbose=False)
    obj = objective(problem)
    pc = time.perf_counter

    def step() -> tuple[float, float, float]:
        t0 = pc()
        infills = alg.ask()
        X = infills.get("X")
        t1 = pc()
        F = obj(X)
        t2 = pc()
        Evaluator().eval(StaticProblem(prob, F=F), infills)
        alg.tell(infills=infills)
        t3 = pc()
        return (t1 - t0) + (t3 - t2), t2 - t1, t1 - t0

    return (lambda: step() and None), step


def make_pygmo(problem: str, n: int, pop: int, algo: str, max_gens: int) -> tuple[Callable[[], None], Step]:
    import pygmo as pg

    m = PROBLEMS[problem]
    if problem == "sphere":
        prob = pg.problem(pg.rastrigin(dim=n))  # pygmo has no built-in sphere; rastrigin is the C++ stand-in
    elif problem == "zdt1":
        prob = pg.problem(pg.zdt(prob_id=1, param=n))
    else:
        prob = pg.problem(pg.dtlz(prob_id=2, dim=n, fdim=3))
    if algo == "sga":
        uda: Any = pg.sga(gen=1, seed=SEED)
    elif algo == "nsga2":
        uda = pg.nsga2(gen=1, seed=SEED)
    elif algo == "nsga3":
        uda = pg.nsga3(gen=1, divisions=das_dennis_partitions(m, pop), seed=SEED)
    elif algo == "moead":
        uda = pg.moead(gen=1, seed=SEED)
    else:
        raise ValueError(algo)
    alg = pg.algorithm(uda)
    state: dict[str, Any] = {}
    pc = time.perf_counter

    def gen0() -> None:
        state["pop"] = pg.population(prob, size=pop, seed=SEED)

    def step() -> tuple[float, float, float]:
        t0 = pc()
        state["pop"] = alg.evolve(state["pop"])
        return pc() - t0, 0.0, float("nan")

    return gen0, step


def make_deap(problem: str, n: int, pop: int, algo: str, max_gens: int) -> tuple[Callable[[], None], Step]:
    import random

    import numpy as np
    from deap import base, creator, tools

    m = PROBLEMS[problem]
    random.seed(SEED)
    rng = np.random.default_rng(SEED)
    creator.create("FitnessMin", base.Fitness, weights=(-1.0,) * m)
    creator.create("Individual", list, fitness=creator.FitnessMin)
    obj = objective(problem)
    toolbox = base.Toolbox()
    toolbox.register("mate", tools.cxSimulatedBinaryBounded, low=0.0, up=1.0, eta=15.0)
    toolbox.register("mutate", tools.mutPolynomialBounded, low=0.0, up=1.0, eta=20.0, indpb=1.0 / n)
    nsga2 = algo.startswith("nsga2")
    state: dict[str, Any] = {}
    pc = time.perf_counter

    def evaluate(individuals: list[Any]) -> float:
        """Assigns fitness; returns the time spent in the objective (X built from the lists + numpy)."""
        t0 = pc()
        F = obj(np.asarray(individuals, dtype=float)).tolist()
        t1 = pc()
        for ind, f in zip(individuals, F):
            ind.fitness.values = tuple(f)
        return t1 - t0

    def gen0() -> None:
        population = [creator.Individual(row) for row in rng.random((pop, n)).tolist()]
        evaluate(population)
        if nsga2:
            population = tools.selNSGA2(population, pop, nd="log")  # assigns crowding distances
        state["pop"] = population

    def step() -> tuple[float, float, float]:
        t0 = pc()
        population = state["pop"]
        if nsga2:  # the official DEAP NSGA-II example, with the O(N log^(M-1) N) sort
            offspring = [toolbox.clone(ind) for ind in tools.selTournamentDCD(population, len(population))]
        else:  # eaSimple: tournament of 3, then varAnd
            offspring = [toolbox.clone(ind) for ind in tools.selTournament(population, len(population), tournsize=3)]
        for i1, i2 in zip(offspring[::2], offspring[1::2]):
            if random.random() <= 0.9:
                toolbox.mate(i1, i2)
                del i1.fitness.values, i2.fitness.values
        for ind in offspring:
            toolbox.mutate(ind)
            if ind.fitness.valid:
                del ind.fitness.values
        invalid = [ind for ind in offspring if not ind.fitness.valid]
        t_ask = pc() - t0
        t_obj = evaluate(invalid)
        if nsga2:
            state["pop"] = tools.selNSGA2(population + offspring, pop, nd="log")
        else:
            state["pop"] = offspring
        return pc() - t0 - t_obj, t_obj, t_ask

    return gen0, step


def make_optuna(problem: str, n: int, pop: int, algo: str, max_gens: int) -> tuple[Callable[[], None], Step]:
    import warnings

    import numpy as np
    import optuna
    from optuna.distributions import FloatDistribution

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    m = PROBLEMS[problem]
    if algo == "nsga2":
        sampler: Any = optuna.samplers.NSGAIISampler(population_size=pop, seed=SEED)
    elif algo == "nsga3":
        sampler = optuna.samplers.NSGAIIISampler(population_size=pop, seed=SEED)
    else:
        raise ValueError(algo)
    study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)
    dists: dict[str, Any] = {f"x{i}": FloatDistribution(0.0, 1.0) for i in range(n)}
    keys = list(dists)
    obj = objective(problem)
    pc = time.perf_counter

    def step() -> tuple[float, float, float]:
        t0 = pc()
        trials = [study.ask(dists) for _ in range(pop)]
        params = [t.params for t in trials]
        t1 = pc()
        F = obj(np.array([[p[k] for k in keys] for p in params], dtype=float)).tolist()
        t2 = pc()
        for trial, f in zip(trials, F):
            study.tell(trial, f if m > 1 else f[0])
        t3 = pc()
        return (t1 - t0) + (t3 - t2), t2 - t1, t1 - t0

    return (lambda: step() and None), step


RUNNERS = {"genetune": make_genetune, "pymoo": make_pymoo, "pygmo": make_pygmo, "deap": make_deap, "optuna": make_optuna}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs one configuration in this process; returns the timings."""
    set_thread_env()
    problem, n, pop, lib, algo = spec["problem"], spec["n"], spec["pop"], spec["lib"], spec["algo"]
    max_gens, cap = spec["gens"], spec["cap"]
    pc = time.perf_counter
    t_start = pc()
    gen0, step = RUNNERS[lib](problem, n, pop, algo, max_gens)
    t_setup = pc() - t_start
    t0 = pc()
    gen0()
    t_gen0 = pc() - t0
    overheads: list[float] = []
    objectives: list[float] = []
    asks: list[float] = []
    t_meas = pc()
    for _ in range(max_gens):
        o, f, a = step()
        overheads.append(o)
        objectives.append(f)
        asks.append(a)
        if pc() - t_meas > cap:
            break
    per_cand = [o / pop * 1e6 for o in overheads]
    return {
        **spec,
        "setup_s": t_setup,
        "gen0_s": t_gen0,
        "gens_timed": len(overheads),
        "gen_overhead_s": overheads,
        "gen_objective_s": objectives,
        "gen_ask_s": asks,
        "ask_us_per_cand": statistics.median(a / pop * 1e6 for a in asks),
        "us_per_cand": statistics.median(per_cand),
        "us_per_cand_min": min(per_cand),
        "gen_s": statistics.median(overheads),
        "measure_wall_s": pc() - t_meas,
    }


# ================================================================================================
# Driver
# ================================================================================================


def run_config(spec: dict[str, Any], timeout: float, pin: bool) -> dict[str, Any]:
    env = {**os.environ, **THREAD_ENV}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "status": "timeout", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        return {**spec, "status": "error", "error": " | ".join(err[-3:]), "wall_s": wall}
    return {**json.loads(lines[-1]), "status": "ok", "wall_s": wall}


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes of one configuration: the best (lowest) per-process median.

    Other load on the machine can only slow a run down, so the fastest of the repeated processes
    is the least disturbed estimate (each process still reports its median generation)."""
    ok = [r for r in runs if r["status"] == "ok"]
    out = dict(ok[0])
    out["run_us_per_cand"] = [r["us_per_cand"] for r in ok]
    best = min(ok, key=lambda r: r["us_per_cand"])
    out["us_per_cand"] = best["us_per_cand"]
    out["us_per_cand_min"] = min(r["us_per_cand_min"] for r in ok)
    out["ask_us_per_cand"] = best["ask_us_per_cand"]
    out["gen_s"] = best["gen_s"]
    out["wall_s"] = sum(r["wall_s"] for r in runs)
    return out


def split_table(results: list[dict[str, Any]], problems: list[str], ns: list[int], pops: list[int]) -> str:
    """genetune array path: the ask and tell parts of the overhead."""
    by = {key(r): r for r in results}
    cols = [(n, p) for n in ns for p in pops]
    out = [
        "**genetune array path, ask / tell split**: µs per candidate (ask_array returns X; tell records the scores, "
        "selects and breeds the next generation)\n",
        "| problem / engine | " + " | ".join(f"n={n} pop {p:,}" for n, p in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for problem in problems:
        la = LIBS[problem][0]
        cells = []
        for n, p in cols:
            r = by.get((problem, n, p, *la))
            if r is None or r.get("status") != "ok":
                cells.append("-")
            else:
                a = r["ask_us_per_cand"]
                cells.append(f"{fmt(a)} + {fmt(r['us_per_cand'] - a)}")
        out.append(f"| {problem} {la[1].split()[0]} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def key(r: dict[str, Any]) -> tuple[str, int, int, str, str]:
    return (r["problem"], r["n"], r["pop"], r["lib"], r["algo"])


def cell(r: dict[str, Any] | None, ref: dict[str, Any] | None, is_ref: bool) -> str:
    if r is None:
        return "(not run)"
    st = r["status"]
    if st == "skip":
        return f"skip (≥{fmt(r['est_lo_us'])}–{fmt(r['est_hi_us'])})"
    if st == "timeout":
        return "timeout"
    if st == "error":
        return "error"
    v = fmt(r["us_per_cand"]) + ("" if len(r.get("run_us_per_cand", [])) > 1 else "†")
    if is_ref or ref is None or ref.get("status") != "ok":
        return v
    return f"{v} ({fmt_ratio(r['us_per_cand'] / ref['us_per_cand'])})"


def tables(results: list[dict[str, Any]], problems: list[str], ns: list[int], pops: list[int]) -> str:
    by = {key(r): r for r in results}
    out: list[str] = []
    titles = {"sphere": "1 objective (sphere)", "zdt1": "2 objectives (ZDT1)", "dtlz2": "3 objectives (DTLZ2)"}
    for problem in problems:
        libs = [la for la in LIBS[problem] if any((problem, n, p, *la) in by for n in ns for p in pops)]
        if not libs:
            continue
        ref_lib = LIBS[problem][0]
        cols = [(n, p) for n in ns for p in pops]
        out.append(
            f"**{titles[problem]}**: µs per candidate per generation (ask+tell, objective excluded), "
            "median over timed generations, best of the repeated processes († = one process only); "
            "(×) = peer / genetune array, higher = genetune faster\n"
        )
        out.append("| lib / algorithm | " + " | ".join(f"n={n} pop {p:,}" for n, p in cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        for la in libs:
            cells = [cell(by.get((problem, n, p, *la)), by.get((problem, n, p, *ref_lib)), la == ref_lib) for n, p in cols]
            out.append(f"| {la[0]} {la[1]} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def targets(results: list[dict[str, Any]], problems: list[str]) -> tuple[str, list[dict[str, Any]]]:
    by = {key(r): r for r in results}
    rows: list[dict[str, Any]] = []

    def ok(r: dict[str, Any] | None) -> bool:
        return r is not None and r.get("status") == "ok"

    for problem in problems:
        ref_lib = LIBS[problem][0]
        label = f"{problem} ({ref_lib[1].split()[0]})"
        for n, pop, limit in ((20, 1000, 1.0), (200, 10000, 5.0)):
            r = by.get((problem, n, pop, *ref_lib))
            if ok(r):
                assert r is not None
                v = r["us_per_cand"]
                target = f"array ≤ {limit:g} µs/cand, n={n} pop {pop:,}"
                rows.append({"target": target, "problem": label, "value": f"{fmt(v)} µs", "pass": v <= limit})
        for peer, factor in (("pygmo", 5.0), ("pymoo", 50.0)):
            for n in (20, 200):
                r = by.get((problem, n, 1000, *ref_lib))
                for la in LIBS[problem]:
                    if la[0] != peer:
                        continue
                    p = by.get((problem, n, 1000, *la))
                    if ok(r) and ok(p):
                        assert r is not None and p is not None
                        ratio = p["us_per_cand"] / r["us_per_cand"]
                        rows.append(
                            {
                                "target": f"≥ {factor:g}× faster than {peer} {la[1]}, n={n} pop 1,000",
                                "problem": label,
                                "value": f"{ratio:.1f}× ({fmt(p['us_per_cand'])} vs {fmt(r['us_per_cand'])} µs)",
                                "pass": ratio >= factor,
                            }
                        )
    lines = ["| target | problem | measured | pass |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['target']} | {row['problem']} | {row['value']} | {'PASS' if row['pass'] else 'FAIL'} |")
    return "\n".join(lines), rows


def report(files: list[Path], out: Path | None) -> None:
    """Tables from several result files: per configuration, the fastest measurement over the files."""
    build = extension_id()
    best: dict[tuple[str, int, int, str, str], dict[str, Any]] = {}
    sources = []
    for path in files:
        data = json.loads(path.read_text())
        e = data["environment"]
        same_build = e.get("genetune_extension") == build and e.get("genetune_extension_end", build) == build
        sources.append(
            {
                "file": str(path),
                "date": e["date"],
                "commit": e["commit"],
                "loadavg": e["loadavg"],
                "loadavg_end": e.get("loadavg_end"),
                "genetune_rows_used": same_build,
                "genetune_extension": e.get("genetune_extension"),
            }
        )
        for r in data["results"]:
            if r["lib"] == "genetune" and not same_build:
                continue
            if "peers_from" in e and r["lib"] != "genetune":
                continue  # copied rows, already counted from their own file
            k = key(r)
            old = best.get(k)
            if old is None:
                better = True
            elif r["status"] == "ok":
                better = old["status"] != "ok" or r["us_per_cand"] < old["us_per_cand"]
            else:  # of two skips, keep the lower extrapolation
                better = r["status"] == old["status"] == "skip" and r.get("est_lo_us", 0) < old.get("est_lo_us", 0)
            if better:
                best[k] = {**r, "source": str(path)}
    results = list(best.values())
    problems = [p for p in PROBLEMS if any(r["problem"] == p for r in results)]
    ns = sorted({r["n"] for r in results})
    pops = sorted({r["pop"] for r in results})
    print(f"# report over {len(files)} result files, genetune build {build}")
    for src in sources:
        print(f"#   {src['file']}: {src['date']} commit {src['commit']} load {src['loadavg']}->{src['loadavg_end']} "
              f"genetune rows {'used' if src['genetune_rows_used'] else 'ignored (other build)'}")
    print()
    print(tables(results, problems, ns, pops))
    print(split_table(results, problems, ns, pops))
    text, rows = targets(results, problems)
    print("**Targets**\n")
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        merged = {"environment": {**environment(), "report_of": sources}, "results": results, "targets": rows}
        out.write_text(json.dumps(merged, indent=1))
        print(f"# merged results written to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="pop 100 and 1000, n=20, genetune/pymoo/pygmo only")
    ap.add_argument("--out", type=Path, help="write the raw results (JSON) here")
    ap.add_argument("--problems", default=",".join(PROBLEMS), help="comma list of sphere,zdt1,dtlz2")
    ap.add_argument("--libs", help="comma list of libraries (genetune,pymoo,pygmo,deap,optuna)")
    ap.add_argument("--ns", help="comma list of n (default 20,200)")
    ap.add_argument("--pops", help="comma list of populations (default 100,1000,10000)")
    ap.add_argument("--cap", type=float, default=20.0, help="seconds of measuring per configuration (default 20)")
    ap.add_argument("--timeout", type=float, default=300.0, help="hard limit per configuration process, s (default 300)")
    ap.add_argument("--max-gen-s", type=float, default=120.0, help="skip when the extrapolated generation exceeds this (s)")
    ap.add_argument(
        "--repeats", type=int, default=3, help="processes per cheap configuration; the lowest median is kept (default 3)"
    )
    ap.add_argument(
        "--cheap-s", type=float, default=15.0, help="a configuration is repeated when gen 0 + measuring took less than this (s)"
    )
    ap.add_argument(
        "--peers-from",
        type=Path,
        help="reuse the non-genetune rows of an earlier --out file (peer timings do not depend on the genetune build); "
        "only genetune is run",
    )
    ap.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="run nothing: print the tables from earlier --out files, taking for every configuration the lowest "
        "time over the files (genetune rows only from files measured with the installed extension build)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin to core 0")
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.report:
        report(args.report, args.out)
        return

    problems = [p for p in args.problems.split(",") if p]
    ns = [int(x) for x in args.ns.split(",")] if args.ns else ([20] if args.quick else [20, 200])
    pops = [int(x) for x in args.pops.split(",")] if args.pops else ([100, 1000] if args.quick else [100, 1000, 10000])
    all_libs = set(RUNNERS)
    libs = set(args.libs.split(",")) if args.libs else (QUICK_LIBS if args.quick else all_libs)
    pin = not args.no_pin and shutil.which("taskset") is not None

    env = environment()
    env["pinned"] = "taskset -c 0" if pin else "no"
    print(f"# genetune overhead benchmark  {env['date']}  commit {env['commit']}  cpu {env['cpu']} x{env['nproc']}  "
          f"python {env['python']}  load {env['loadavg']}  pin: {env['pinned']}", flush=True)
    print("# versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v), flush=True)
    print(f"# extension: {env['genetune_extension']}", flush=True)

    results: list[dict[str, Any]] = []
    last: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    if args.peers_from:
        old = json.loads(args.peers_from.read_text())
        old_env = old["environment"]
        now = env["versions"]
        mismatch = {
            m: (v, now.get(m))
            for m, v in old_env["versions"].items()
            if m != "genetune" and not str(now.get(m)).startswith(str(v))  # deap's __version__ was "1.4" for 1.4.4
        }
        print(f"# peer rows reused from {args.peers_from} (measured {old_env['date']}, load {old_env['loadavg']})", flush=True)
        if mismatch:
            print(f"# WARNING: peer versions differ from the reused file: {mismatch}", flush=True)
        env["peers_from"] = {"file": str(args.peers_from), "date": old_env["date"], "versions": old_env["versions"]}
        results = [
            r for r in old["results"] if r["lib"] != "genetune" and r["problem"] in problems and r["n"] in ns and r["pop"] in pops
        ]
        libs = {"genetune"} if "genetune" in libs else set()
    t_all = time.perf_counter()
    for problem in problems:
        for n in ns:
            for pop in sorted(pops):
                for lib, algo in LIBS[problem]:
                    if lib not in libs:
                        continue
                    spec = {"problem": problem, "n": n, "pop": pop, "lib": lib, "algo": algo, "gens": GENS.get(pop, 3)}
                    spec["cap"] = args.cap
                    prev = last.get((problem, n, lib, algo))
                    label = f"{problem:6s} n={n:<3d} pop={pop:<6d} {lib} {algo}"
                    if prev is not None and prev["status"] in ("skip", "timeout", "error"):
                        nan = float("nan")
                        r = {**spec, "status": "skip", "est_lo_us": prev.get("est_lo_us", nan)}
                        r["est_hi_us"] = prev.get("est_hi_us", nan)
                        if prev["status"] != "skip":
                            r["est_lo_us"] = r["est_hi_us"] = float("nan")
                        results.append(r)
                        last[(problem, n, lib, algo)] = r
                        print(f"{label:58s} skip (previous population {prev['status']})", flush=True)
                        continue
                    if prev is not None:
                        factor = pop / prev["pop"]
                        lin, quad = prev["gen_s"] * factor, prev["gen_s"] * factor**2
                        if lib == "optuna":
                            # Optuna only up to pop 1000, and only if gen 0 + one generation fit in ~60 s
                            too_slow = pop > 1000 or 2 * lin > 60.0
                        else:
                            too_slow = quad > args.max_gen_s
                        if too_slow:
                            r = {**spec, "status": "skip", "est_lo_us": lin / pop * 1e6, "est_hi_us": quad / pop * 1e6}
                            results.append(r)
                            last[(problem, n, lib, algo)] = r
                            print(f"{label:58s} skip (extrapolated {lin:.1f}–{quad:.1f} s per generation)", flush=True)
                            continue
                    r = run_config(spec, args.timeout, pin)
                    if r["status"] == "ok" and args.repeats > 1 and r["gen0_s"] + r["measure_wall_s"] < args.cheap_s:
                        r = combine([r] + [run_config(spec, args.timeout, pin) for _ in range(args.repeats - 1)])
                    r["loadavg"] = [round(x, 2) for x in os.getloadavg()]
                    results.append(r)
                    last[(problem, n, lib, algo)] = r
                    if r["status"] == "ok":
                        runs = "/".join(f"{x:.3g}" for x in r.get("run_us_per_cand", [r["us_per_cand"]]))
                        print(f"{label:58s} {r['us_per_cand']:10.3f} µs/cand (runs {runs}, min gen {r['us_per_cand_min']:.3f}, "
                              f"{r['gens_timed']} gens, wall {r['wall_s']:.1f} s, load {r['loadavg'][0]})", flush=True)
                    else:
                        print(f"{label:58s} {r['status']} {r.get('error', '')} (wall {r['wall_s']:.1f} s)", flush=True)
    env["genetune_extension_end"] = extension_id()
    if env["genetune_extension_end"] != env["genetune_extension"]:
        print(f"# WARNING: the genetune extension changed during the run: {env['genetune_extension_end']}", flush=True)
    env["total_wall_s"] = time.perf_counter() - t_all
    env["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    print()
    print(tables(results, problems, ns, sorted(pops)))
    if "genetune" in libs:
        print(split_table(results, problems, ns, sorted(pops)))
    text, rows = targets(results, problems)
    print("**Targets**\n")
    print(text)
    print(f"\n# total wall {env['total_wall_s']:.0f} s, load average at end {env['loadavg_end']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": env, "results": results, "targets": rows}, indent=1))
        print(f"# raw results written to {args.out}")


if __name__ == "__main__":
    main()
