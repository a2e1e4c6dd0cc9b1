"""Golden streams of the generational engine, recorded before steady-state scheduling existed:
``schedule="generational"`` must reproduce them bit for bit. ``python tests/engine_golden.py``
re-records ``engine_golden.json`` (only ever from the engine the streams are meant to pin)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

import genetune as gt
import genetune.search_spaces as ss
from genetune.warm_start import PriorEvaluation, WarmStartPlan

GOLDEN = Path(__file__).with_name("engine_golden.json")

MIXED: dict[str, Any] = {
    "x": ss.range(0.0, 1.0, None),
    "n": ss.range(0, 100, 5),
    "c": ss.choice(["a", "b", "c"], knockout_prob=0.2),
    "lit": ss.literal("on", knockout_prob=0.3),
    "nested": {"lr": ss.log_sampling(1e-4, 1e-1, 7), "f": ss.range(-1.0, 1.0, 0.5)},
}
GATED: dict[str, Any] = {
    "unroll": ss.literal("-funroll", knockout_prob=0.5),
    "factor": ss.range(2, 16, 2, when="unroll"),
    "opt": ss.choice(["-O1", "-O2", "-O3"]),
    "tile": ss.range(1, 64, 1),
}
SPACES = {"mixed": MIXED, "gated": GATED}


def value(params: Any, m: int) -> list[float]:
    """A deterministic score of a candidate (any space): a hash-free function of its values."""
    flat: list[float] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k in sorted(v):
                flat.append(float(len(k)))
                walk(v[k])
        elif isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, str):
            flat.append(float(sum(map(ord, v)) % 17))
        else:
            flat.append(float(v))

    walk(params)
    a = sum((x - 0.3 * i) ** 2 / (1 + i) for i, x in enumerate(flat))
    out = [a, sum(math.sin(x + i) for i, x in enumerate(flat)) + 0.01 * a]
    if a % 7 < 0.4:  # some INVALID results
        return [math.nan] * m
    return out[:m]


def not_divisible(params: Any) -> bool:
    return int(params.get("tile", 0)) % 3 != 0


SCENARIOS: list[dict[str, Any]] = [
    {"name": "auto-ga-mixed", "space": "mixed", "config": {"generations": 5, "pool_size": 10}, "seed": 1, "plan": "all"},
    {"name": "auto-ga-mixed-s2-halves", "space": "mixed", "config": {"generations": 5, "pool_size": 10}, "seed": 2, "plan": "halves"},
    {"name": "ga-mixed", "space": "mixed", "config": {"generations": 6, "pool_size": 8, "engine": "ga"}, "seed": 3, "plan": "ones"},
    {
        "name": "nsga2-gated",
        "space": "gated",
        "config": {"generations": 5, "pool_size": 12, "engine": "nsga2", "num_objectives": 2},
        "seed": 4,
        "plan": "reversed",
    },
    {
        "name": "auto-nsga2-gated",
        "space": "gated",
        "config": {"generations": 4, "pool_size": 12, "num_objectives": 2, "directions": ["min", "max"]},
        "seed": 5,
        "plan": "halves",
    },
    {
        "name": "nsga3-mixed",
        "space": "mixed",
        "config": {"generations": 4, "pool_size": 16, "engine": "nsga3", "num_objectives": 2},
        "seed": 6,
        "plan": "all",
    },
    {
        "name": "auto-nsga3-gated",
        "space": "gated",
        "config": {"generations": 3, "pool_size": 16, "engine": "nsga3", "num_objectives": 2},
        "seed": 7,
        "plan": "ones",
    },
    {
        "name": "auto-constraints-warm",
        "space": "gated",
        "config": {"generations": 5, "pool_size": 8},
        "seed": 8,
        "plan": "reversed",
        "constraints": ["tile * 2 <= 100", "factor is None or factor <= 12"],
        "warm_start": [{"opt": "-O3", "tile": 8}, {"unroll": "-funroll", "factor": 4, "opt": "-O2", "tile": 16}],
    },
    {
        "name": "ga-callable-priors",
        "space": "gated",
        "config": {"generations": 4, "pool_size": 8, "engine": "ga"},
        "seed": 9,
        "plan": "halves",
        "callable": True,
        "priors": [[{"opt": "-O1", "tile": 5}, 3.0], [{"opt": "-O2", "tile": 7}, math.nan]],
    },
    {
        "name": "auto-callable-expr",
        "space": "gated",
        "config": {"generations": 4, "pool_size": 8},
        "seed": 10,
        "plan": "ones",
        "callable": True,
        "constraints": ["tile >= 4"],
    },
]


def engine_of(s: dict[str, Any], **extra: Any) -> gt.Engine:
    cfg = gt.SearchConfiguration(**s["config"], **extra)
    constraints: list[Any] = list(s.get("constraints", []))
    if s.get("callable"):
        constraints.append(not_divisible)
    plan = None
    if s.get("warm_start") or s.get("priors"):
        priors = [PriorEvaluation(p, [v], {"scores": [v]}) for p, v in s.get("priors", [])]
        plan = WarmStartPlan(list(s.get("warm_start", [])), priors)
    return gt.Engine(SPACES[s["space"]], cfg, seed=s["seed"], constraints=constraints or None, warm_start=plan)


def run(s: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Drives the scenario's asks and tells; returns the stream's digest and its first rows."""
    engine = engine_of(s, **extra)
    m = engine.num_objectives
    rows: list[list[Any]] = []
    while not engine.done:
        cands = engine.ask(3) if s["plan"] == "ones" else engine.ask()
        if not cands:
            cands = engine.ask()
        rows.extend([c.id, c.generation, json.dumps(c.params, sort_keys=True)] for c in cands)
        order = {"all": cands, "reversed": cands[::-1], "halves": cands, "ones": cands}[s["plan"]]
        parts = [order[: len(order) // 2], order[len(order) // 2 :]] if s["plan"] == "halves" else [order]
        for part in parts:
            if part:
                engine.tell([c.id for c in part], np.array([value(c.params, m) for c in part]).reshape(len(part), m))
    ids, x, f = engine.population()
    text = json.dumps({"rows": rows, "population": [ids.tolist(), x.tolist(), f.tolist()]}, default=str)
    return {"digest": hashlib.sha256(text.encode()).hexdigest(), "count": len(rows), "head": rows[:4]}


if __name__ == "__main__":  # pragma: no cover - recording tool
    if GOLDEN.exists() and "--force" not in sys.argv:
        sys.exit(f"{GOLDEN} exists; pass --force to re-record it")
    GOLDEN.write_text(json.dumps({s["name"]: run(s) for s in SCENARIOS}, indent=1) + "\n")
