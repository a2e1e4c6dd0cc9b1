#!/usr/bin/env python
"""Small budgets (50-2,000 evaluations): genetune's defaults against Optuna TPE and others.

Issue 11's benchmark: the best value found **per evaluation** on problems from two peer suites
and one of our own (``budget_problems.py`` describes them and how each optimizer sees the space):

- COCO ``bbob-mixint`` (``mixint/f{F}/d{D}/i{I}``), IOHprofiler PBO (``pbo/{Name}/n{N}/i{I}``),
  a compiler-flag-like mixed space (``flags/s{S}``: 51 parameters, knockout flags, gated optional
  ints, categoricals, pairwise interactions, ~23 % INVALID), and ZDT1-3 / DTLZ2 (``mo/...``,
  hypervolume of every evaluated point, budgets 200 and 500).

Methods, all at the same budgets in the same run (``--methods``):

- ``genetune``: **pure defaults** -- ``SearchConfiguration(generations=ceil(B / pool), seed=s)``
  (plus ``num_objectives``), pool = its default (32); only the first B evaluations (id order)
  count. ``--engine E`` / ``--set key=value`` / ``--variant 'k=v,k=v'`` add rows labelled
  ``genetune tuned: ...`` (``--engine`` alone: ``genetune engine=E``); verdicts are printed for
  every genetune row. An engine that a problem's objective count rejects leaves that cell empty.
- ``tpe``: Optuna ``TPESampler(seed=s)`` (Optuna 5 defaults: multivariate for one objective,
  independent for several; ``constant_liar=True``); the other setting of ``multivariate`` as
  ``tpe-uv`` (``multivariate=False``, Optuna 4's default; one objective only) and ``tpe-mv``
  (``multivariate=True``; several objectives only); ``tpe-b32``: ``TPESampler(constant_liar=True)``
  asked and told in batches of 32 (genetune's parallelism per generation); ``random``:
  ``RandomSampler``; ``cmaes``: ``CmaEsSampler`` (only on the all-numeric bbob-mixint problems);
  ``nsga2-optuna``: ``NSGAIISampler`` (multi-objective only); ``pymoo``: pymoo ``MixedVariableGA``
  (defaults, pop 50) for one objective and ``NSGA2`` (defaults, pop 100) for several. Optuna
  runs define-by-run through ask/tell; an INVALID candidate is told a penalty value worse than
  any valid one (TPE only ranks values); pymoo gets the same penalty.
- The peers do not know the budget, so each runs once per (problem, seed) to the largest budget
  it is measured at and is scored on its first B evaluations for every B ("anytime"). genetune
  runs once per budget (its generations, and a future engine, depend on it).
- Optuna TPE costs 10-150 ms per trial at 200-2,000 trials (multi-objective TPE: 75 s for one
  500-trial run), so ``tpe``, ``tpe-mv`` and ``tpe-b32`` run only up to ``--tpe-max-budget``
  (default 400: single-objective 50-400, multi-objective 200) and ``tpe-uv`` up to
  ``--tpe-variant-max-budget`` (default 100). At 2,000 (and MO 500) evaluations only the cheap
  peers (random, CMA-ES, pymoo, Optuna NSGA-II) are compared. ``--tpe-max-budget 2000`` includes
  TPE there (hours).
- Not included: SMAC3 installs (2.4.1, ~30 s) but its ``HyperparameterOptimizationFacade`` took
  ~0.6 s per trial at d=10 once its model starts (60 s for a 100-trial run), hours for this
  suite; HEBO's install did not resolve within 100 s (old pinned pymoo sdist, PyTorch).

Reported (Markdown on stdout and in ``--out``, raw numbers in the matching ``.json``):

- per suite and budget, the median over seeds of each method's best value (MO: hypervolume);
- per suite, genetune vs each peer: wins / ties / losses by a paired Wilcoxon signed-rank test
  over seeds (tie = p >= 0.05), and the count of problems where genetune's median is at least
  as good as the peer's (how the issue's targets are phrased). With n seeds the smallest
  two-sided p is 2 / 2**n, so 5 seeds can never be significant: the default is 6 seeds;
- the optimizer's own time per candidate (ask + tell, objective excluded) of genetune and TPE.

Default problem set (``--problems default``, 19 problems): bbob-mixint d=10 f1 (sphere), f3
(separable Rastrigin), f6 (attractive sector), f8 (Rosenbrock), f10 (ellipsoid), f15
(Rastrigin), f20 (Schwefel), f21 (Gallagher 101 peaks) and d=20 f10, instance 1; PBO OneMax (100
bits), LeadingOnes, LABS, NKLandscapes (64 bits), ConcatenatedTrap (40 bits); ``flags/s1``; the 4
MO problems; 6 seeds; budgets 50, 100, 400, 2000 (MO 200, 500). Estimated from a medium run's
per-run times: ~40 minutes with ``--jobs 2`` on the project's 2-core machine when it is
otherwise idle, ~60 under a load average of 4-5, twice that with the default ``--jobs 1``. Per
(problem, seed) on one loaded core: a 64-bit PBO problem ~95 s and the flag problem ~125 s (TPE
to 400 20-35 s, TPE batch 26-36 s, Optuna random to 2,000 12-25 s, genetune's four runs ~20 s
with the model-assisted engine as of 2026-12-01), a d=10 bbob-mixint problem ~40 s, an MO
problem ~50 s. ``--problems all`` (all 24 functions at d=10/20 x 3 instances, the 7 PBO problems
at 40/64/100 bits x 2 instances, 4 flag seeds) takes many hours; pick prefixes instead, e.g.
``--problems mixint/f1,pbo/IsingRing,pbo/MIS``.

Usage::

    .venv/bin/python benches/bench_budget.py --quick              # smoke run: 6 problems, 2 seeds, budgets 50/100 (~2 min)
    .venv/bin/python benches/bench_budget.py --jobs 2             # the full default run (~40-60 min)
    .venv/bin/python benches/bench_budget.py --budgets 100,400 --seeds 3 --problems mixint/f0,pbo,flags
    .venv/bin/python benches/bench_budget.py --engine auto --set mutate_rate=0.1   # adds a tuned row
    .venv/bin/python benches/bench_budget.py --list               # the problem keys
    .venv/bin/python benches/bench_budget.py --report benches/results/budget-<date>.json   # re-print a saved run
    .venv/bin/python benches/bench_budget.py --peers-from benches/results/budget-<date>.json   # rerun genetune rows only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, environment, extension_id, fmt, set_thread_env  # noqa: E402

set_thread_env()

import numpy as np  # noqa: E402

import budget_problems as bp  # noqa: E402

BATCH = 32  # tpe-b32's batch: genetune's default pool
IN_FLIGHT = 8  # tpe-p8 and genetune-p8: evaluations pending at once

DEFAULT_PROBLEMS = (
    [f"mixint/f{f:02d}/d10/i1" for f in (1, 3, 6, 8, 10, 15, 20, 21)]
    + ["mixint/f10/d20/i1"]
    + ["pbo/OneMax/n100/i1", "pbo/LeadingOnes/n64/i1", "pbo/LABS/n64/i1", "pbo/NKLandscapes/n64/i1"]
    + ["pbo/ConcatenatedTrap/n40/i1"]
    + ["flags/s1"]
    + [f"mo/{m}" for m in bp.MO_NAMES]
)
QUICK_PROBLEMS = ["mixint/f01/d10/i1", "mixint/f10/d10/i1", "pbo/OneMax/n64/i1", "pbo/LABS/n64/i1", "flags/s1", "mo/zdt1"]
ALL_PROBLEMS = (
    [f"mixint/f{f:02d}/d{d}/i{i}" for d in (10, 20) for f in range(1, 25) for i in (1, 2, 3)]
    + [f"pbo/{n}/n{k}/i{i}" for k in (40, 64, 100) for n in bp.PBO_NAMES for i in (1, 2)]
    + [f"flags/s{s}" for s in (1, 2, 3, 4)]
    + [f"mo/{m}" for m in bp.MO_NAMES]
)

PEERS = ("tpe", "tpe-p8", "tpe-uv", "tpe-mv", "tpe-b32", "random", "cmaes", "nsga2-optuna", "pymoo")
TPE_FAMILY = ("tpe", "tpe-p8", "tpe-uv", "tpe-mv", "tpe-b32")
LABELS = {
    "tpe": "Optuna TPE",
    "tpe-p8": "TPE 8 in flight (constant liar)",
    "tpe-uv": "TPE univariate",
    "tpe-mv": "TPE multivariate",
    "tpe-b32": "TPE batch 32 (constant liar)",
    "random": "random (Optuna)",
    "cmaes": "Optuna CMA-ES",
    "nsga2-optuna": "Optuna NSGA-II",
    "pymoo": "pymoo GA / NSGA-II",
}


# ================================================================================================
# Runs
# ================================================================================================


@dataclass
class Run:
    """One search: a method on a problem with a seed, scored at every budget it covers."""

    problem: str
    method: str
    seed: int
    budget: int  # evaluations run
    scores: dict[int, float] = field(default_factory=dict)  # budget -> best value (MO: hypervolume)
    opt_ms: dict[int, float] = field(default_factory=dict)  # budget -> optimizer ms per candidate up to there
    invalid: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0
    error: str | None = None


class Trace:
    """Objective vectors in evaluation order and the optimizer's cumulative time after each."""

    def __init__(self, problem: bp.Problem, budget: int) -> None:
        self.problem = problem
        self.budget = budget
        self.values: list[list[float]] = []
        self.cum_opt: list[float] = []
        self.opt_s = 0.0

    @property
    def full(self) -> bool:
        return len(self.values) >= self.budget

    def evaluate(self, v: bp.Values) -> list[float]:
        y = self.problem.evaluate(v)
        if len(self.values) < self.budget:
            self.values.append(y)
            self.cum_opt.append(self.opt_s)
        return y

    def fix_times(self, start: int) -> None:
        """A batch's optimizer time is known only after its tell: charge it to the whole batch."""
        for i in range(start, len(self.cum_opt)):
            self.cum_opt[i] = self.opt_s


def score_at(problem: bp.Problem, values: list[list[float]], b: int) -> float:
    y = np.asarray(values[:b], dtype=float).reshape(-1, problem.num_objectives)
    if problem.num_objectives == 1:
        ok = y[np.isfinite(y[:, 0]), 0]
        return float(ok.min()) if ok.size else math.nan
    from genetune.results import hypervolume

    return float(hypervolume(y, problem.hv_ref))


def penalty(problem: bp.Problem) -> float:
    return float(problem.info.get("penalty", 10.0))


# ----- genetune ---------------------------------------------------------------------------------


def genetune_space(problem: bp.Problem) -> dict[str, Any]:
    import genetune.search_spaces as ss

    space: dict[str, Any] = {}
    for p in problem.params:
        if p.kind == "int":
            space[p.name] = ss.range(int(p.low), int(p.high), 1, knockout_prob=0.5 if p.optional else None)
        elif p.kind == "float":
            space[p.name] = ss.range(float(p.low), float(p.high), None)
        elif p.kind == "bit":
            space[p.name] = ss.literal(p.flag or p.name, knockout_prob=0.5)
        else:
            space[p.name] = ss.choice(list(p.values))
    return space


def genetune_values(problem: bp.Problem, params: dict[str, Any]) -> bp.Values:
    v: bp.Values = {}
    for p in problem.params:
        if p.kind == "bit":
            v[p.name] = int(p.name in params)
        else:
            v[p.name] = params.get(p.name)
    return v


def run_genetune(problem: bp.Problem, seed: int, budget: int, settings: dict[str, Any]) -> Trace:
    """genetune's defaults, one evaluation at a time (``ask(1)``/``tell``), or with ``in_flight``
    evaluations pending: one is told at a time, in a shuffled (seeded) completion order, and the
    free slot is refilled at once. ``schedule="generational"`` asks and tells whole generations."""
    from genetune import Engine, SearchConfiguration

    settings = dict(settings)
    in_flight = int(settings.pop("in_flight", 1))
    m = problem.num_objectives
    extra = {"num_objectives": m} if m > 1 else {}
    pool = SearchConfiguration(generations=1, seed=seed, **extra, **settings).pool_size
    assert pool is not None
    config = SearchConfiguration(generations=math.ceil(budget / pool), seed=seed, **extra, **settings)
    trace = Trace(problem, budget)
    t0 = time.perf_counter()
    engine = Engine(genetune_space(problem), config)
    trace.opt_s += time.perf_counter() - t0
    if config.schedule == "generational":
        while not engine.done and not trace.full:
            t0 = time.perf_counter()
            cands = engine.ask()
            trace.opt_s += time.perf_counter() - t0
            if not cands:
                break
            start = len(trace.values)
            scores = [trace.evaluate(genetune_values(problem, c.params)) for c in cands]
            t0 = time.perf_counter()
            engine.tell([c.id for c in cands], scores)
            trace.opt_s += time.perf_counter() - t0
            trace.fix_times(start)
        return trace
    rng = random.Random(seed)
    pending: list[Any] = []
    while not trace.full:
        t0 = time.perf_counter()
        pending += engine.ask(min(in_flight - len(pending), budget - len(trace.values) - len(pending)))
        trace.opt_s += time.perf_counter() - t0
        if not pending:
            break
        done = pending.pop(rng.randrange(len(pending)))
        start = len(trace.values)
        y = trace.evaluate(genetune_values(problem, done.params))
        t0 = time.perf_counter()
        engine.tell([done.id], [y])
        trace.opt_s += time.perf_counter() - t0
        trace.fix_times(start)
    return trace


# ----- Optuna -----------------------------------------------------------------------------------


def optuna_suggest(trial: Any, problem: bp.Problem) -> bp.Values:
    v: bp.Values = {}
    for p in problem.params:
        if p.kind == "int":
            if p.optional and not trial.suggest_categorical(f"{p.name}?set", [True, False]):
                v[p.name] = None
            else:
                v[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high))
        elif p.kind == "float":
            v[p.name] = trial.suggest_float(p.name, float(p.low), float(p.high))
        elif p.kind == "bit":
            v[p.name] = trial.suggest_categorical(p.name, [0, 1])
        else:
            v[p.name] = trial.suggest_categorical(p.name, list(p.values))
    return v


def optuna_sampler(method: str, seed: int) -> Any:
    import optuna

    s = optuna.samplers
    if method == "tpe":
        return s.TPESampler(seed=seed)
    if method == "tpe-uv":
        return s.TPESampler(seed=seed, multivariate=False)
    if method == "tpe-mv":
        return s.TPESampler(seed=seed, multivariate=True)
    if method in ("tpe-b32", "tpe-p8"):
        return s.TPESampler(seed=seed, constant_liar=True)
    if method == "random":
        return s.RandomSampler(seed=seed)
    if method == "cmaes":
        return s.CmaEsSampler(seed=seed)
    if method == "nsga2-optuna":
        return s.NSGAIISampler(seed=seed)
    raise KeyError(method)


def run_optuna(method: str, problem: bp.Problem, seed: int, budget: int) -> Trace:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    m = problem.num_objectives
    trace = Trace(problem, budget)
    t0 = time.perf_counter()
    study = optuna.create_study(directions=["minimize"] * m, sampler=optuna_sampler(method, seed))
    trace.opt_s += time.perf_counter() - t0
    batch = BATCH if method == "tpe-b32" else 1
    if method == "tpe-p8":
        # 8 in flight: one is told at a time in a shuffled (seeded) completion order, and the
        # free slot is refilled at once; constant_liar keeps the pending ones apart.
        rng = random.Random(seed)
        flight: list[tuple[Any, bp.Values]] = []
        while not trace.full:
            t0 = time.perf_counter()
            while len(flight) < IN_FLIGHT and len(trace.values) + len(flight) < budget:
                trial = study.ask()
                flight.append((trial, optuna_suggest(trial, problem)))
            trace.opt_s += time.perf_counter() - t0
            trial, v = flight.pop(rng.randrange(len(flight)))
            start = len(trace.values)
            y = [penalty(problem) if not math.isfinite(x) else x for x in trace.evaluate(v)]
            t0 = time.perf_counter()
            study.tell(trial, y if m > 1 else y[0])
            trace.opt_s += time.perf_counter() - t0
            trace.fix_times(start)
        return trace
    while not trace.full:
        n = min(batch, budget - len(trace.values))
        t0 = time.perf_counter()
        trials = [study.ask() for _ in range(n)] if batch > 1 else []
        trace.opt_s += time.perf_counter() - t0
        start = len(trace.values)
        told: list[tuple[Any, list[float]]] = []
        for i in range(n):
            t0 = time.perf_counter()
            trial = trials[i] if batch > 1 else study.ask()
            v = optuna_suggest(trial, problem)
            trace.opt_s += time.perf_counter() - t0
            y = trace.evaluate(v)
            y = [penalty(problem) if not math.isfinite(x) else x for x in y]
            if batch > 1:
                told.append((trial, y))
            else:
                t0 = time.perf_counter()
                study.tell(trial, y if m > 1 else y[0])
                trace.opt_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for trial, y in told:
            study.tell(trial, y if m > 1 else y[0])
        trace.opt_s += time.perf_counter() - t0
        trace.fix_times(start)
    return trace


# ----- pymoo ------------------------------------------------------------------------------------


def run_pymoo(problem: bp.Problem, seed: int, budget: int) -> Trace:
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem as PymooProblem
    from pymoo.problems.static import StaticProblem

    trace = Trace(problem, budget)
    m = problem.num_objectives
    pen = penalty(problem)
    names = [p.name for p in problem.params]
    t0 = time.perf_counter()
    if m > 1:
        from pymoo.algorithms.moo.nsga2 import NSGA2

        lo = np.array([p.low for p in problem.params], dtype=float)
        hi = np.array([p.high for p in problem.params], dtype=float)
        pp: Any = PymooProblem(n_var=len(names), n_obj=m, xl=lo, xu=hi)
        algorithm: Any = NSGA2()

        def decode(x: Any) -> bp.Values:
            return dict(zip(names, (float(a) for a in x)))

    else:
        from pymoo.core.mixed import MixedVariableGA
        from pymoo.core.variable import Binary, Choice, Integer, Real

        variables: dict[str, Any] = {}
        for p in problem.params:
            if p.kind == "int":
                if p.optional:
                    variables[f"{p.name}?set"] = Binary()
                variables[p.name] = Integer(bounds=(int(p.low), int(p.high)))
            elif p.kind == "float":
                variables[p.name] = Real(bounds=(float(p.low), float(p.high)))
            elif p.kind == "bit":
                variables[p.name] = Binary()
            else:
                variables[p.name] = Choice(options=list(p.values))
        pp = PymooProblem(vars=variables, n_obj=1)
        algorithm = MixedVariableGA()

        def decode(x: Any) -> bp.Values:
            v: bp.Values = {}
            for p in problem.params:
                if p.kind == "int":
                    v[p.name] = None if p.optional and not x[f"{p.name}?set"] else int(x[p.name])
                elif p.kind == "bit":
                    v[p.name] = int(bool(x[p.name]))
                elif p.kind == "float":
                    v[p.name] = float(x[p.name])
                else:
                    v[p.name] = x[p.name]
            return v

    algorithm.setup(pp, termination=("n_eval", budget), seed=seed, verbose=False)
    trace.opt_s += time.perf_counter() - t0
    while algorithm.has_next() and not trace.full:
        t0 = time.perf_counter()
        pop = algorithm.ask()
        xs = pop.get("X")
        trace.opt_s += time.perf_counter() - t0
        start = len(trace.values)
        f = np.array([[pen if not math.isfinite(y) else y for y in trace.evaluate(decode(x))] for x in xs], dtype=float)
        t0 = time.perf_counter()
        Evaluator().eval(StaticProblem(pp, F=f), pop)
        algorithm.tell(infills=pop)
        trace.opt_s += time.perf_counter() - t0
        trace.fix_times(start)
    return trace


# ----- dispatch ---------------------------------------------------------------------------------


def applies(method: str, problem_key: str) -> bool:
    mo = problem_key.startswith("mo/")
    if method == "cmaes":
        return problem_key.startswith("mixint/")
    if method == "nsga2-optuna":
        return mo
    if method == "tpe-uv":  # Optuna >= 5 TPE is multivariate for one objective by default
        return not mo
    if method == "tpe-mv":  # ... and univariate for several
        return mo
    return True


def parse_settings(spec: str) -> dict[str, Any]:
    """'k=v,k=v' -> dict; values are JSON when they parse (numbers, true, null), else strings."""
    out: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, raw = item.partition("=")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw.strip()
    return out


def genetune_label(settings: dict[str, Any]) -> str:
    if not settings:
        return "genetune"
    if settings == {"in_flight": IN_FLIGHT}:
        return "genetune-p8"
    if list(settings) == ["engine"]:
        return f"genetune engine={settings['engine']}"
    return "genetune tuned: " + ", ".join(f"{k}={v}" for k, v in settings.items())


def genetune_accepts(settings_json: str | None, key: str) -> bool:
    """False where SearchConfiguration rejects a genetune row's settings for this problem
    (e.g. engine='ga' with several objectives): that cell stays empty."""
    if settings_json is None:
        return True
    from genetune import SearchConfiguration

    m = 3 if key == "mo/dtlz2" else 2 if key.startswith("mo/") else 1
    extra = {"num_objectives": m} if m > 1 else {}
    fields = {k: v for k, v in json.loads(settings_json).items() if k != "in_flight"}
    try:
        SearchConfiguration(generations=1, **extra, **fields)
    except Exception:  # noqa: BLE001 - pydantic's ValidationError or a ValueError
        return False
    return True


_PROBLEMS: dict[str, bp.Problem] = {}


def problem(key: str) -> bp.Problem:
    if key not in _PROBLEMS:
        _PROBLEMS[key] = bp.build(key)
    return _PROBLEMS[key]


Task = tuple[str, str, int, int, tuple[int, ...], str]  # problem, method, seed, run budget, score budgets, settings json


def run_task(task: Task) -> Run:
    key, method, seed, budget, marks, settings_json = task
    run = Run(key, method, seed, budget)
    t0 = time.perf_counter()
    try:
        prob = problem(key)
        if method.startswith("genetune"):
            trace = run_genetune(prob, seed, budget, json.loads(settings_json))
        elif method == "pymoo":
            trace = run_pymoo(prob, seed, budget)
        else:
            trace = run_optuna(method, prob, seed, budget)
        for b in marks:
            if len(trace.values) >= b or (method.startswith("genetune") and b == budget):
                n = min(b, len(trace.values))
                run.scores[b] = score_at(prob, trace.values, n)
                run.opt_ms[b] = 1e3 * trace.cum_opt[n - 1] / n if n else math.nan
                run.invalid[b] = sum(1 for y in trace.values[:n] if not all(math.isfinite(a) for a in y))
    except Exception as err:  # noqa: BLE001 - a failing cell is reported, the run goes on
        run.error = f"{type(err).__name__}: {err}"
    run.wall_s = time.perf_counter() - t0
    return run


# ================================================================================================
# Statistics and report
# ================================================================================================


def lower_is_better(key: str) -> bool:
    return not key.startswith("mo/")


def loss_value(key: str, x: float) -> float:
    """Score as 'lower is better', NaN (nothing valid found) as the worst."""
    if not math.isfinite(x):
        return math.inf if lower_is_better(key) else 0.0
    return x if lower_is_better(key) else -x


def paired_verdict(key: str, mine: list[float], theirs: list[float]) -> tuple[str, float]:
    """'W' / 'T' / 'L' for the first list by a Wilcoxon signed-rank test (ties: p >= 0.05)."""
    from scipy.stats import wilcoxon

    a = np.array([loss_value(key, x) for x in mine])
    b = np.array([loss_value(key, x) for x in theirs])
    both_inf = np.isinf(a) & np.isinf(b)
    a, b = a[~both_inf], b[~both_inf]
    big = 1e300
    d = np.clip(a, -big, big) - np.clip(b, -big, big)
    d = d[d != 0]
    if d.size == 0:
        return "T", 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(d).pvalue)
    if not p < 0.05:
        return "T", p
    return ("W" if np.median(d) < 0 or (np.median(d) == 0 and d.mean() < 0) else "L"), p


def median(xs: list[float], key: str) -> float:
    vals = [loss_value(key, x) for x in xs]
    med = float(np.median(vals)) if vals else math.nan
    return med if lower_is_better(key) else -med


def at_least_as_good(key: str, mine: float, theirs: float) -> bool:
    return loss_value(key, mine) <= loss_value(key, theirs)


def collect(runs: list[Run]) -> dict[tuple[str, str, int], list[float]]:
    """(problem, method, budget) -> scores in seed order."""
    table: dict[tuple[str, str, int], dict[int, float]] = {}
    for r in runs:
        for b, s in r.scores.items():
            table.setdefault((r.problem, r.method, b), {})[r.seed] = s
    return {k: [v[s] for s in sorted(v)] for k, v in table.items()}


def problem_budgets(key: str, args: argparse.Namespace) -> list[int]:
    return list(args.mo_budgets) if key.startswith("mo/") else list(args.budgets)


def report(runs: list[Run], args: argparse.Namespace, methods: list[str], settings: dict[str, str]) -> str:
    data = collect(runs)
    lines: list[str] = []
    out = lines.append
    gt_rows = [m for m in methods if m.startswith("genetune")]
    suites = list(dict.fromkeys(bp.suite_of(k) for k in args.problems))
    shown_label = {m: (m if m.startswith("genetune") else LABELS.get(m, m)) for m in methods}

    # --- verdicts ---------------------------------------------------------------------------------
    for g in gt_rows:
        out(f"### {g} vs each peer: wins / ties / losses (Wilcoxon over seeds, p < 0.05) · median at least as good\n")
        peers = [m for m in methods if m != g]
        out("| suite | budget | " + " | ".join(shown_label[p] for p in peers) + " |")
        out("|---|---|" + "---|" * len(peers))
        for suite in suites:
            keys = [k for k in args.problems if bp.suite_of(k) == suite]
            budgets = sorted({b for k in keys for b in problem_budgets(k, args)})
            for b in budgets:
                cells = []
                for p in peers:
                    w = t = lo = ge = n = 0
                    for k in keys:
                        mine, theirs = data.get((k, g, b)), data.get((k, p, b))
                        if not mine or not theirs or len(mine) != len(theirs):
                            continue
                        n += 1
                        verdict, _ = paired_verdict(k, mine, theirs)
                        w += verdict == "W"
                        t += verdict == "T"
                        lo += verdict == "L"
                        ge += at_least_as_good(k, median(mine, k), median(theirs, k))
                    cells.append(f"{w}/{t}/{lo} · {ge}/{n}" if n else "-")
                out(f"| {suite} | {b} | " + " | ".join(cells) + " |")
        out("")

    # --- medians per problem ------------------------------------------------------------------
    for suite in suites:
        keys = [k for k in args.problems if bp.suite_of(k) == suite]
        budgets = sorted({b for k in keys for b in problem_budgets(k, args)})
        what = "hypervolume of all evaluated points ↑" if suite == "mo" else "best value ↓"
        for b in budgets:
            cols = [m for m in methods if any((k, m, b) in data for k in keys)]
            if not cols:
                continue
            out(f"### {suite}, {b} evaluations: median {what} over seeds\n")
            out("| problem | " + " | ".join(shown_label[m] for m in cols) + " |")
            out("|---|" + "---|" * len(cols))
            for k in keys:
                meds = {m: median(data[(k, m, b)], k) for m in cols if (k, m, b) in data}
                if not meds:
                    continue
                best = min(loss_value(k, v) for v in meds.values())
                cells = []
                for m in cols:
                    if m not in meds:
                        cells.append("-")
                        continue
                    s = fmt(meds[m], 4)
                    cells.append(f"**{s}**" if loss_value(k, meds[m]) == best else s)
                out(f"| {k} | " + " | ".join(cells) + " |")
            out("")

    # --- optimizer time ---------------------------------------------------------------------------
    timed = [m for m in methods if m.startswith("genetune") or m in TPE_FAMILY + ("random", "pymoo")]
    all_budgets = sorted(set(args.budgets) | set(args.mo_budgets))
    out("### Optimizer time per candidate (ask + tell, objective excluded): median over runs, ms\n")
    out("| budget | " + " | ".join(shown_label[m] for m in timed) + " | TPE / genetune |")
    out("|---|" + "---|" * (len(timed) + 1))
    for b in all_budgets:
        med: dict[str, float] = {}
        for m in timed:
            xs = [r.opt_ms[b] for r in runs if r.method == m and b in r.opt_ms]
            med[m] = float(np.median(xs)) if xs else math.nan
        ratio = med.get("tpe", math.nan) / med.get("genetune", math.nan) if "genetune" in med else math.nan
        ratio_s = f"{ratio:,.0f}×" if math.isfinite(ratio) else "-"
        out(f"| {b} | " + " | ".join(fmt(med[m], 3) if math.isfinite(med[m]) else "-" for m in timed) + f" | {ratio_s} |")
    out("")
    errors: dict[tuple[str, str], int] = {}
    for r in runs:
        if r.error:
            errors[(r.method, r.error)] = errors.get((r.method, r.error), 0) + 1
    if errors:
        out(f"**{sum(errors.values())} of {len(runs)} runs failed** (their cells are empty):\n")
        out("\n".join(f"- {m}, {n} runs: {e[:300]}" for (m, e), n in errors.items()))
        out("")
    return "\n".join(lines)


# ================================================================================================
# Main
# ================================================================================================


def select_problems(spec: str) -> list[str]:
    named = {"default": DEFAULT_PROBLEMS, "quick": QUICK_PROBLEMS, "all": ALL_PROBLEMS}
    out: list[str] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item in named:
            out += named[item]
            continue
        matches = [k for k in ALL_PROBLEMS + DEFAULT_PROBLEMS if k.startswith(item)]
        if not matches:
            matches = [item]  # a key outside the lists, e.g. pbo/OneMax/n80/i3
        out += matches
    return list(dict.fromkeys(out))


def build_tasks(args: argparse.Namespace, methods: list[str], settings: dict[str, str]) -> list[Task]:
    tasks: list[Task] = []
    for key in args.problems:
        budgets = problem_budgets(key, args)
        for method in methods:
            if not applies(method, key) or not genetune_accepts(settings.get(method), key):
                continue
            for seed in range(args.seeds):
                if method.startswith("genetune"):
                    for b in budgets:
                        tasks.append((key, method, seed, b, (b,), settings[method]))
                else:
                    cap = max(budgets)
                    if method in TPE_FAMILY:
                        cap = args.tpe_variant_max_budget if method == "tpe-uv" else args.tpe_max_budget
                    marks = tuple(b for b in budgets if b <= cap)
                    if marks:
                        tasks.append((key, method, seed, max(marks), marks, "{}"))
    # Longest first, so the two workers finish together.
    cost = {"tpe": 30.0, "tpe-p8": 30.0, "tpe-uv": 30.0, "tpe-mv": 10.0, "tpe-b32": 25.0, "nsga2-optuna": 3.0, "cmaes": 3.0, "random": 1.0}
    tasks.sort(key=lambda t: -cost.get(t[1], 0.05) * t[3] * (2 if "/d20/" in t[0] else 1))
    return tasks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 problems, 2 seeds, budgets 50,100 (MO 100,200)")
    ap.add_argument("--problems", default=None, help="comma list of keys, key prefixes, or default / quick / all")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 6)")
    ap.add_argument("--budgets", default=None, help="single-objective budgets (default 50,100,400,2000)")
    ap.add_argument("--mo-budgets", default=None, help="multi-objective budgets (default 200,500)")
    ap.add_argument("--methods", default="genetune,genetune-p8," + ",".join(PEERS), help="genetune and peers: " + ",".join(PEERS))
    ap.add_argument("--tpe-max-budget", type=int, default=400, help="largest budget tpe and tpe-b32 run to (default 400)")
    ap.add_argument("--tpe-variant-max-budget", type=int, default=100, help="largest budget tpe-uv runs to (default 100)")
    ap.add_argument("--engine", default=None, help="adds a genetune row with this engine (ga, nsga2, nsga3, auto, ...)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="SearchConfiguration override (--engine row)")
    ap.add_argument("--variant", action="append", default=[], metavar="'K=V,K=V'", help="another genetune row, these settings")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (at most 2: the machine is shared)")
    ap.add_argument("--out", default=None, help="Markdown report (default benches/results/budget-<date>.md; JSON beside it)")
    ap.add_argument("--list", action="store_true", help="print the problem keys of --problems and exit")
    ap.add_argument("--report", default=None, metavar="RUN.json", help="re-print the tables of a saved run and exit")
    ap.add_argument(
        "--peers-from", default=None, metavar="RUN.json", help="reuse a saved run's peer runs (independent of genetune's build)"
    )
    args = ap.parse_args(argv)
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        ns = argparse.Namespace(**saved["args"])
        print(report(load_runs(saved), ns, saved["methods"], saved["settings"]))
        return 0

    args.problems = select_problems(args.problems or ("quick" if args.quick else "default"))
    if args.list:
        print("\n".join(args.problems))
        return 0
    args.seeds = args.seeds or (2 if args.quick else 6)
    args.budgets = [int(b) for b in (args.budgets or ("50,100" if args.quick else "50,100,400,2000")).split(",")]
    args.mo_budgets = [int(b) for b in (args.mo_budgets or ("100,200" if args.quick else "200,500")).split(",")]
    args.jobs = max(1, min(args.jobs, 2))

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings: dict[str, str] = {m: "{}" for m in methods if m == "genetune"}
    settings.update({m: json.dumps({"in_flight": IN_FLIGHT}) for m in methods if m == "genetune-p8"})
    variants: list[dict[str, Any]] = []
    if args.engine or args.set:
        v = parse_settings(",".join(args.set))
        if args.engine:
            v = {"engine": args.engine, **v}
        variants.append(v)
    variants += [parse_settings(s) for s in args.variant]
    for v in variants:
        label = genetune_label(v)
        methods.insert(len(settings), label)
        settings[label] = json.dumps(v)
    unknown = [m for m in methods if not m.startswith("genetune") and m not in PEERS]
    if unknown:
        ap.error(f"unknown methods {unknown}; known: genetune, {', '.join(PEERS)}")

    env = environment(("genetune", "numpy", "scipy", "optuna", "pymoo", "cmaes", "cocoex", "ioh"))
    env["versions"]["cocoex"] = _dist_version("coco-experiment") or env["versions"]["cocoex"]
    tasks = build_tasks(args, methods, settings)
    reused: list[Run] = []
    if args.peers_from:
        have = {(r.problem, r.method, r.seed): r for r in load_runs(json.loads(Path(args.peers_from).read_text())) if not r.error}
        kept = []
        for t in tasks:
            r = have.get((t[0], t[1], t[2]))
            if r is not None and not t[1].startswith("genetune") and all(b in r.scores for b in t[4]):
                reused.append(r)
            else:
                kept.append(t)
        tasks = kept
        print(f"reusing {len(reused)} peer runs from {args.peers_from}", flush=True)
    for m in settings:
        if not any(t[1] == m for t in tasks):
            from genetune import SearchConfiguration

            try:
                SearchConfiguration(generations=1, **{k: v for k, v in json.loads(settings[m]).items() if k != "in_flight"})
            except Exception as err:  # noqa: BLE001
                ap.error(f"{m}: SearchConfiguration rejects {settings[m]} for every problem: {err}")
    print(
        f"bench_budget: {len(args.problems)} problems, {args.seeds} seeds, budgets {args.budgets} (MO {args.mo_budgets}), "
        f"{len(tasks)} runs on {args.jobs} process(es); methods: {', '.join(methods)}; commit {env['commit']}; "
        f"{env['genetune_extension']}",
        flush=True,
    )
    ext = extension_id()
    t_start = time.perf_counter()
    runs: list[Run] = list(reused)
    failed: set[str] = set()
    for i, run in enumerate(_execute(tasks, args.jobs), 1):
        runs.append(run)
        if run.error and run.method not in failed:
            failed.add(run.method)
            print(f"  ! {run.method} on {run.problem} seed {run.seed}: {run.error} (further failures: at the end)", flush=True)
        if i % max(1, len(tasks) // 20) == 0 or i == len(tasks):
            print(f"  {i}/{len(tasks)} runs, {time.perf_counter() - t_start:.0f} s", flush=True)
    elapsed = time.perf_counter() - t_start
    if extension_id() != ext:
        print("WARNING: the genetune extension changed during the run", flush=True)

    header = (
        f"## Small-budget benchmark ({_dt.date.today().isoformat()}, commit {env['commit']})\n\n"
        f"{len(args.problems)} problems, seeds 0..{args.seeds - 1}, budgets {', '.join(map(str, args.budgets))} "
        f"(MO {', '.join(map(str, args.mo_budgets))}); tpe/tpe-mv/tpe-b32 up to {args.tpe_max_budget}, "
        f"tpe-uv up to {args.tpe_variant_max_budget}; "
        f"{len(runs)} runs" + (f" ({len(reused)} peer runs reused from {args.peers_from})" if reused else "")
        + f" in {elapsed / 60:.1f} min on {args.jobs} process(es), load {env['loadavg']}; "
        f"versions {', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)}.\n"
        f"Rows: genetune = defaults (only generations and seed set)"
        + "".join(f"; {m} = {settings[m]}" for m in methods if m.startswith("genetune") and m != "genetune")
        + ". Cells of the verdict tables: W/T/L · problems where genetune's median is at least as good / problems.\n"
    )
    text = header + "\n" + report(runs, args, methods, settings)
    print("\n" + text)
    out = Path(args.out) if args.out else ROOT / "benches" / "results" / f"budget-{_dt.datetime.now():%Y%m%d-%H%M}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    raw = {
        "environment": env,
        "args": {k: v for k, v in vars(args).items()},
        "settings": settings,
        "methods": methods,
        "elapsed_s": elapsed,
        "runs": [asdict(r) for r in runs],
    }
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def load_runs(saved: dict[str, Any]) -> list[Run]:
    return [
        Run(**{**r, "scores": _int_keys(r["scores"]), "opt_ms": _int_keys(r["opt_ms"]), "invalid": _int_keys(r["invalid"])})
        for r in saved["runs"]
    ]


def _int_keys(d: dict[str, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in d.items()}


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _execute(tasks: list[Task], jobs: int) -> Iterator[Run]:
    if jobs <= 1:
        yield from map(run_task, tasks)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(jobs, maxtasksperchild=50) as pool:
        yield from pool.imap_unordered(run_task, tasks)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
