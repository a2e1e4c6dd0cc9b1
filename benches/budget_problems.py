"""Problems of the small-budget benchmark (``bench_budget.py``), in one library-neutral form.

A problem is a list of `Param` (the space) and ``evaluate(values) -> list[float]`` where ``values``
maps every parameter name to its value: an int / float for ``int`` / ``float`` params, 0 or 1 for
``bit`` params, one of ``values`` for ``cat`` params, and ``None`` for an ``optional`` int that is
not set (the problem then uses its default). Every objective is minimized; NaN = INVALID.

Each optimizer adapter (in ``bench_budget.py``) converts the `Param` list into its own space:

- genetune: ``int`` -> ``ss.range(lo, hi, 1)``, ``float`` -> ``ss.range(lo, hi, None)``, ``bit`` ->
  ``ss.literal(flag, knockout_prob=0.5)`` (present = 1: how flag spaces are written), ``cat`` ->
  ``ss.choice``, optional int -> ``ss.range(..., knockout_prob=0.5)`` (absent = not set).
- Optuna: ints/floats -> Int/FloatDistribution, bits and cats -> categorical, an optional int is
  conditional on a categorical ``<name>?set`` in [True, False].
- pymoo: ``MixedVariableGA`` variables (Integer / Real / Binary / Choice; an optional int is a
  Binary "set" plus the Integer), or a plain real vector for the continuous multi-objective ones.

Problem keys (``--problems`` takes keys or prefixes):

- ``mixint/f{F}/d{D}/i{I}``: COCO ``bbob-mixint`` function F (1-24) in dimension D, instance I.
  The integer variables keep the problem's bounds (``ss.range(lo, hi, 1)``: 2, 4, 8 or 16 values),
  the continuous ones are ``ss.range(-5, 5, None)``. Value = raw f (its optimum differs per
  instance, so only same-instance values are compared).
- ``pbo/{Name}/n{N}/i{I}``: IOHprofiler PBO problem (OneMax, LeadingOnes, LABS, IsingRing,
  NKLandscapes, ConcatenatedTrap, MIS) with N bits, instance I. Maximization, so value = -f.
- ``flags/s{S}``: a compiler-flag-like mixed space of this file (`FlagProblem`), generated
  deterministically from seed S: 51 parameters.
- ``mo/{zdt1,zdt2,zdt3,dtlz2}``: ZDT1-3 (n=30, 2 objectives) and DTLZ2 (n=12, 3 objectives),
  judged by the hypervolume of every evaluated point (``HV_REF``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

Values = dict[str, Any]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "int" | "float" | "bit" | "cat"
    low: float = 0
    high: float = 1
    values: tuple[Any, ...] = ()
    optional: bool = False  # int only: may be left unset (None)
    flag: str = ""  # bit only: the literal the genetune space uses


@dataclass
class Problem:
    key: str
    suite: str  # "bbob-mixint" | "pbo" | "flags" | "mo"
    params: list[Param]
    evaluate: Callable[[Values], list[float]]
    num_objectives: int = 1
    hv_ref: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def numeric(self) -> bool:
        """Only ints and floats (CMA-ES applies)."""
        return all(p.kind in ("int", "float") and not p.optional for p in self.params)


# ================================================================================================
# COCO bbob-mixint
# ================================================================================================


@lru_cache(maxsize=1)
def _mixint_suite() -> Any:
    import cocoex

    return cocoex.Suite("bbob-mixint", "", "")


def mixint(f: int, d: int, inst: int) -> Problem:
    cp = _mixint_suite().get_problem_by_function_dimension_instance(f, d, inst)
    lo, hi = np.asarray(cp.lower_bounds), np.asarray(cp.upper_bounds)
    n_int = int(cp.number_of_integer_variables)
    # COCO puts the integer variables first.
    params = [Param(f"x{i:02d}", "int" if i < n_int else "float", float(lo[i]), float(hi[i])) for i in range(d)]
    params = [Param(p.name, p.kind, int(p.low), int(p.high)) if p.kind == "int" else p for p in params]
    names = [p.name for p in params]

    def evaluate(v: Values) -> list[float]:
        return [float(cp(np.array([float(v[n]) for n in names])))]

    info = {"coco_id": cp.id, "integer_variables": n_int}
    return Problem(f"mixint/f{f:02d}/d{d}/i{inst}", "bbob-mixint", params, evaluate, info=info)


# ================================================================================================
# IOHprofiler PBO
# ================================================================================================

PBO_NAMES = ("OneMax", "LeadingOnes", "LABS", "IsingRing", "NKLandscapes", "ConcatenatedTrap", "MIS")


def pbo(name: str, n: int, inst: int) -> Problem:
    import ioh

    ip = ioh.get_problem(name, instance=inst, dimension=n, problem_class=ioh.ProblemClass.PBO)
    params = [Param(f"b{i:03d}", "bit", flag=f"-fbit{i}") for i in range(n)]
    names = [p.name for p in params]

    def evaluate(v: Values) -> list[float]:
        return [-float(ip([int(v[k]) for k in names]))]

    opt = float(ip.optimum.y)
    return Problem(f"pbo/{name}/n{n}/i{inst}", "pbo", params, evaluate, info={"optimum": -opt if math.isfinite(opt) else None})


# ================================================================================================
# A compiler-flag-like mixed problem
# ================================================================================================

O_LEVELS = ("-O0", "-O1", "-O2", "-O3", "-Os")
O_BASE = {"-O0": 1.0, "-O1": 0.74, "-O2": 0.64, "-O3": 0.62, "-Os": 0.70}


class FlagProblem:
    """Run time of a fictitious program (lower is better), deterministic from ``seed``.

    - ``O``: the -O level (base time O_BASE); ``march`` (4 values) and ``sched`` (3 values): small
      categorical effects, one ``march`` value interacting with 3 flags.
    - 36 on/off flags (knockout literals): each has a main effect in log-time, most tiny, 6
      helpful, 4 harmful; flags do nothing at -O0; 24 pairwise interactions (synergies and
      conflicts) between flags.
    - 12 integer params (``--param name=value``, optional; unset = the default), each gated by one
      flag: it matters only while its flag is on, with a quadratic optimum in its range (a value far
      from it is worse than the default).
    - INVALID (NaN, "does not compile"): 3 conflicting flags all on; -O3 with a conflicting pair
      on; a gated int set above 90 % of its range while its flag is on and march=native. About
      23 % of uniformly random configurations are INVALID.
    """

    N_FLAGS = 36
    N_INTS = 12

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(1000 + seed)
        nf = self.N_FLAGS
        self.main = rng.normal(0.0, 0.004, nf)
        good = rng.choice(nf, 10, replace=False)
        self.main[good[:6]] = -rng.uniform(0.02, 0.06, 6)
        self.main[good[6:]] = rng.uniform(0.02, 0.05, 4)
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < 24:
            i, j = sorted(int(a) for a in rng.choice(nf, 2, replace=False))
            pairs.add((i, j))
        self.pairs = sorted(pairs)
        self.pair_w = np.where(rng.random(24) < 0.5, -rng.uniform(0.01, 0.04, 24), rng.uniform(0.01, 0.05, 24))
        rest = [int(x) for x in rng.permutation(nf)]
        self.conflict = (rest[0], rest[1], rest[2])
        self.o3_conflict = (rest[3], rest[4])
        self.march_flags = [int(x) for x in rng.choice(nf, 3, replace=False)]
        self.march_w = {"x86-64": 0.0, "haswell": -0.01, "skylake": -0.015, "native": -0.02}
        self.sched_w = {"none": 0.0, "list": -0.008, "swing": 0.004}
        self.gate = [int(x) for x in rng.choice(nf, self.N_INTS, replace=False)]
        self.int_lo = [0] * self.N_INTS
        self.int_hi = [int(h) for h in rng.choice([16, 64, 256, 1000], self.N_INTS)]
        self.int_default = [int(rng.integers(0, h + 1)) for h in self.int_hi]
        self.int_opt = [float(rng.uniform(0.1, 0.9)) * h for h in self.int_hi]
        self.int_gain = rng.uniform(0.005, 0.04, self.N_INTS)

        self.params: list[Param] = [
            Param("O", "cat", values=O_LEVELS),
            Param("march", "cat", values=tuple(self.march_w)),
            Param("sched", "cat", values=tuple(self.sched_w)),
        ]
        self.params += [Param(f"f{i:02d}", "bit", flag=f"-fflag-{i:02d}") for i in range(nf)]
        self.params += [Param(f"p{k:02d}", "int", 0, self.int_hi[k], optional=True) for k in range(self.N_INTS)]

    def __call__(self, v: Values) -> list[float]:
        on = np.array([int(v[f"f{i:02d}"]) for i in range(self.N_FLAGS)], dtype=bool)
        if on[list(self.conflict)].all():
            return [math.nan]
        if v["O"] == "-O3" and on[self.o3_conflict[0]] and on[self.o3_conflict[1]]:
            return [math.nan]
        log_t = 0.0
        if v["O"] != "-O0":
            log_t += float(self.main[on].sum())
            log_t += float(sum(w for (i, j), w in zip(self.pairs, self.pair_w) if on[i] and on[j]))
            for k, g in enumerate(self.gate):
                if not on[g]:
                    continue
                val = v[f"p{k:02d}"]
                x = self.int_default[k] if val is None else int(val)
                if val is not None and v["march"] == "native" and x > 0.9 * self.int_hi[k]:
                    return [math.nan]
                rel = (x - self.int_opt[k]) / self.int_hi[k]
                log_t += self.int_gain[k] * (4.0 * rel * rel - 0.5)
            log_t += self.march_w[v["march"]] * (1.0 + float(on[self.march_flags].sum()))
            log_t += self.sched_w[v["sched"]]
        return [O_BASE[v["O"]] * math.exp(log_t)]


def flags(seed: int) -> Problem:
    fp = FlagProblem(seed)
    return Problem(f"flags/s{seed}", "flags", fp.params, fp)


# ================================================================================================
# Multi-objective: ZDT1-3, DTLZ2
# ================================================================================================

# At 200-500 evaluations most points lie beyond the usual (1.1, ...) point, so it is widened.
HV_REF = {"zdt1": (1.1, 11.0), "zdt2": (1.1, 11.0), "zdt3": (1.1, 11.0), "dtlz2": (2.5, 2.5, 2.5)}


def _zdt(which: str, x: np.ndarray) -> list[float]:
    f1 = float(x[0])
    g = 1.0 + 9.0 * float(x[1:].mean())
    if which == "zdt1":
        h = 1.0 - math.sqrt(f1 / g)
    elif which == "zdt2":
        h = 1.0 - (f1 / g) ** 2
    else:
        h = 1.0 - math.sqrt(f1 / g) - (f1 / g) * math.sin(10.0 * math.pi * f1)
    return [f1, g * h]


def _dtlz2(x: np.ndarray, m: int = 3) -> list[float]:
    g = float(((x[m - 1 :] - 0.5) ** 2).sum())
    f = []
    for i in range(m):
        v = 1.0 + g
        for j in range(m - 1 - i):
            v *= math.cos(x[j] * math.pi / 2)
        if i > 0:
            v *= math.sin(x[m - 1 - i] * math.pi / 2)
        f.append(v)
    return f


def mo(which: str) -> Problem:
    n, m = (12, 3) if which == "dtlz2" else (30, 2)
    params = [Param(f"x{i:02d}", "float", 0.0, 1.0) for i in range(n)]
    names = [p.name for p in params]

    def evaluate(v: Values) -> list[float]:
        x = np.array([float(v[k]) for k in names])
        return _dtlz2(x, m) if which == "dtlz2" else _zdt(which, x)

    return Problem(f"mo/{which}", "mo", params, evaluate, num_objectives=m, hv_ref=HV_REF[which])


# ================================================================================================
# Registry
# ================================================================================================

MO_NAMES = ("zdt1", "zdt2", "zdt3", "dtlz2")


def build(key: str) -> Problem:
    parts = key.split("/")
    if parts[0] == "mixint":
        return mixint(int(parts[1][1:]), int(parts[2][1:]), int(parts[3][1:]))
    if parts[0] == "pbo":
        return pbo(parts[1], int(parts[2][1:]), int(parts[3][1:]))
    if parts[0] == "flags":
        return flags(int(parts[1][1:]))
    if parts[0] == "mo":
        return mo(parts[1])
    raise KeyError(f"unknown problem {key!r}")


def suite_of(key: str) -> str:
    return {"mixint": "bbob-mixint", "pbo": "pbo", "flags": "flags", "mo": "mo"}[key.split("/")[0]]
