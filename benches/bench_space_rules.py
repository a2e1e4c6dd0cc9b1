#!/usr/bin/env python
"""Search spaces with rules (issue 14): conditional parameters, warm starts, constraint cost.

Three questions, all with genetune's **defaults** (``SearchConfiguration(generations=ceil(B /
pool), seed=s)``, pool 32, ``engine="auto"``), through the public ``genetune.Engine`` API:

1. **when= vs flat** on a gated problem of our own (``gated``, below): 8 switches, each with 2
   valued parameters that only matter while the switch is on (like ``--param max-unroll-times``
   with ``-funroll-loops``), and 6 ungated 4-way choices. Encoded flat (the valued parameters are
   plain knockout parameters the objective ignores while their switch is off) and with
   ``when="switch"``. Best value within the first 400 evaluations, median over the seeds.
2. **warm start**: a cold run of 400 evaluations (seed s); its first 200 evaluations as an
   earlier result (``warm_start=SearchResult``) for a new run (seed s + 1000). Counted: the new
   evaluations each run needs to reach the cold run's best at 400 -- the warm run vs another
   cold run (seed s + 1000), capped at 800 ("not reached" counts as 801 in the median).
3. **constraint cost**: ``cargo run --release --example constraint_cost`` (the Rust core): time
   per constraint check (3 expressions over 7 parameters), and the engine's time per generated
   candidate with and without them (pool 1,000, 40 generations, plain GA).

Usage: ``python benches/bench_space_rules.py [--seeds 7] [--out benches/results/space_rules.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import ROOT, environment, set_thread_env  # noqa: E402

set_thread_env()

import numpy as np  # noqa: E402

import genetune as gt  # noqa: E402
import genetune.search_spaces as ss  # noqa: E402
from genetune.jsonable import lenient_json_default  # noqa: E402

SWITCHES = 8
LEVELS = 16


def _problem(seed: int = 12345) -> dict[str, Any]:
    """The hidden structure: which switches help when tuned, their targets, the choices' effects."""
    rng = np.random.default_rng(seed)
    return {
        "gain": rng.uniform(0.5, 2.0, SWITCHES) * rng.choice([1.0, 1.0, -0.3], SWITCHES),
        "target": rng.integers(0, LEVELS, (SWITCHES, 2)),
        "choice": rng.normal(0.0, 0.4, (6, 4)),
    }


PROBLEM = _problem()


def gated(params: dict[str, Any]) -> float:
    """Lower is better. A switch that is on gains its ``gain`` and pays for how far its two values
    are from their targets (an absent value is the default, level 8); a harmful switch (negative
    gain) only costs. Its values mean nothing while it is off."""
    total = 0.0
    for k in range(SWITCHES):
        if f"s{k}" not in params:
            continue
        miss = sum(((params.get(f"v{k}_{j}", 2 * (LEVELS // 2)) // 2 - int(PROBLEM["target"][k][j])) / LEVELS) ** 2 for j in range(2))
        gain = float(PROBLEM["gain"][k])
        total += -gain + 4.0 * abs(gain) * miss
    for i in range(6):
        total += PROBLEM["choice"][i][params[f"c{i}"]]
    return total


def space(conditional: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in range(SWITCHES):
        out[f"s{k}"] = ss.literal(f"-fswitch{k}", knockout_prob=0.5)
        for j in range(2):
            out[f"v{k}_{j}"] = ss.range(0, 2 * (LEVELS - 1), 2, knockout_prob=0.5, when=f"s{k}" if conditional else None)
    for i in range(6):
        out[f"c{i}"] = ss.choice([0, 1, 2, 3])
    return out


def run(space_: dict[str, Any], budget: int, seed: int, warm_start: Any = None) -> list[tuple[dict[str, Any], float]]:
    """The first ``budget`` evaluations of a default search, in id order."""
    config = gt.SearchConfiguration(generations=math.ceil(budget / 32), seed=seed)
    engine = gt.Engine(space_, config, warm_start=warm_start)
    out: list[tuple[dict[str, Any], float]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.SearchSpaceExhaustedWarning)
        while not engine.done and len(out) < budget:
            cands = engine.ask()
            scores = [gated(c.params) for c in cands]
            out.extend(zip([c.params for c in cands], scores, strict=True))
            engine.tell([c.id for c in cands], scores)
    return out[:budget]


def best(rows: list[tuple[dict[str, Any], float]]) -> float:
    return min(s for _, s in rows)


def to_reach(rows: list[tuple[dict[str, Any], float]], target: float, cap: int) -> int:
    for i, (_, s) in enumerate(rows):
        if s <= target + 1e-12:
            return i + 1
    return cap + 1


def as_result(rows: list[tuple[dict[str, Any], float]]) -> gt.SearchResult:
    return gt.SearchResult.from_rows(
        [{"generation": i // 32, "id": i, "params": p, "scores": [s], "status": "valid"} for i, (p, s) in enumerate(rows)],
        ["min"],
        1,
    )


def when_vs_flat(seeds: list[int], budget: int) -> dict[str, Any]:
    flat = [best(run(space(False), budget, s)) for s in seeds]
    cond = [best(run(space(True), budget, s)) for s in seeds]
    optimum = -float(np.clip(PROBLEM["gain"], 0, None).sum()) + float(PROBLEM["choice"].min(axis=1).sum())
    return {
        "budget": budget,
        "optimum": optimum,
        "flat": flat,
        "when": cond,
        "median_flat": statistics.median(flat),
        "median_when": statistics.median(cond),
        "when_wins": sum(c < f for c, f in zip(cond, flat, strict=True)),
    }


def warm_vs_cold(seeds: list[int], cap: int) -> dict[str, Any]:
    sp = space(True)
    out: dict[str, list[Any]] = {"target": [], "warm": [], "cold": []}
    for s in seeds:
        first = run(sp, 400, s)
        target = best(first)
        warm = run(sp, cap, s + 1000, warm_start=as_result(first[:200]))
        cold = run(sp, cap, s + 1000)
        out["target"].append(target)
        out["warm"].append(to_reach(warm, target, cap))
        out["cold"].append(to_reach(cold, target, cap))
    return {
        **out,
        "cap": cap,
        "median_warm": statistics.median(out["warm"]),
        "median_cold": statistics.median(out["cold"]),
        "warm_wins": sum(w < c for w, c in zip(out["warm"], out["cold"], strict=True)),
    }


def constraint_cost() -> dict[str, Any]:
    done = subprocess.run(
        ["cargo", "run", "--quiet", "--release", "-p", "genetune-core", "--example", "constraint_cost"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    cost: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    cost["extra_ns_per_candidate"] = cost["constrained_ns_per_candidate"] - cost["plain_ns_per_candidate"]
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benches" / "results" / "space_rules.json"))
    args = parser.parse_args()
    seeds = list(range(1, args.seeds + 1))
    started = time.perf_counter()
    report = {
        "environment": environment(("genetune", "numpy")),
        "when_vs_flat": when_vs_flat(seeds, 400),
        "warm_start": warm_vs_cold(seeds, 800),
        "constraint_cost": constraint_cost(),
    }
    report["wall_time_s"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=lenient_json_default))
    w, ws, c = report["when_vs_flat"], report["warm_start"], report["constraint_cost"]
    print(f"gated problem, best at 400 evaluations (median of {len(seeds)} seeds; optimum {w['optimum']:.3f}):")
    print(f"  flat {w['median_flat']:.3f}   when= {w['median_when']:.3f}   when= better on {w['when_wins']}/{len(seeds)} seeds")
    print("warm start from 200 evaluations: new evaluations to reach the cold run's best at 400 (median):")
    print(f"  warm {ws['median_warm']}   cold {ws['median_cold']}   warm fewer on {ws['warm_wins']}/{len(seeds)} seeds")
    print(
        f"constraint cost (Rust): {c['check_ns']:.0f} ns per check; engine {c['plain_ns_per_candidate']:.0f} -> "
        f"{c['constrained_ns_per_candidate']:.0f} ns per generated candidate (+{c['extra_ns_per_candidate']:.0f} ns, "
        f"{c['rejected']} of {c['drawn']} draws rejected)"
    )
    print(f"wrote {out} ({report['wall_time_s']:.0f} s)")


if __name__ == "__main__":
    main()
