"""The two schedules through `genetune.Engine`: ``"generational"`` replays the golden streams of
the engine before steady-state scheduling bit for bit; ``"steady"`` hands out candidates at any
time, chosen with every result so far, and keeps every guarantee of the engine."""

from __future__ import annotations

import json
import math
import pickle
import random
import warnings
from typing import Any

import numpy as np
import pytest

import genetune as gt
import genetune.search_spaces as ss
from engine_golden import GATED, GOLDEN, MIXED, SCENARIOS, run, value
from engine_support import check_candidate, key_of


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_generational_schedule_replays_the_golden_streams(scenario: dict[str, Any]) -> None:
    golden = json.loads(GOLDEN.read_text())[scenario["name"]]
    got = run(scenario, schedule="generational")
    assert got["head"] == golden["head"]
    assert (got["count"], got["digest"]) == (golden["count"], golden["digest"])


# ----- steady -----------------------------------------------------------------------------------------


def drive(engine: gt.Engine, script: random.Random, steps: int | None = None) -> list[tuple[str, Any]]:
    """Asks 0-4 candidates, then tells a random subset of the pending ones in a random order, until
    done (or ``steps``); returns what happened, candidates as (id, generation, params)."""
    log: list[tuple[str, Any]] = []
    m = engine.num_objectives
    k = 0
    while not engine.done and (steps is None or k < steps):
        k += 1
        cands = engine.ask(script.randrange(5))
        log.append(("ask", [(c.id, c.generation, key_of(c.params)) for c in cands]))
        pending = engine.pending()
        script.shuffle(pending)
        told = pending[: script.randrange(len(pending) + 1)]
        if told:
            engine.tell([c.id for c in told], np.array([value(c.params, m) for c in told]).reshape(len(told), m))
        log.append(("tell", [c.id for c in told]))
    return log


def test_steady_is_the_default_and_asks_at_any_time() -> None:
    engine = gt.Engine(MIXED, gt.SearchConfiguration(generations=4, pool_size=8), seed=3)
    assert engine.schedule == "steady" and engine.config.schedule == "steady"
    a = engine.ask(3)
    b = engine.ask(2)  # nothing told yet: more candidates anyway
    assert [c.id for c in a + b] == [0, 1, 2, 3, 4]
    assert [c.id for c in engine.pending()] == [0, 1, 2, 3, 4]
    assert len(engine.ask()) == 3  # pool_size minus the pending ones
    assert engine.ask() == []
    engine.tell([2, 0], [1.0, 2.0])
    assert [c.id for c in engine.pending()] == [1, 3, 4, 5, 6, 7]
    c = engine.ask()
    assert [x.id for x in c] == [8, 9]
    for cand in a + b + c:
        check_candidate(MIXED, cand.params)


def test_steady_budget_cohorts_and_done() -> None:
    engine = gt.Engine(GATED, gt.SearchConfiguration(generations=3, pool_size=8), seed=1)
    asked: list[gt.Candidate] = []
    script = random.Random(0)
    while not engine.done:
        asked += engine.ask(script.randrange(1, 6))
        pending = engine.pending()
        one = pending[script.randrange(len(pending))]
        engine.tell([one.id], [value(one.params, 1)])
        assert engine.generation == engine.evaluations // 8
    assert len(asked) == engine.evaluations == 24 and engine.generation == 3
    assert len({key_of(c.params) for c in asked}) == 24
    assert engine.ask(4) == [] and engine.pending() == []
    with pytest.raises(gt.TellError):
        engine.tell([asked[0].id], [1.0])


@pytest.mark.parametrize("engine_kind,m", [("auto", 1), ("ga", 1), ("auto", 2), ("nsga3", 2)])
def test_steady_replays_a_recorded_sequence_and_restores_mid_flight(engine_kind: str, m: int) -> None:
    cfg = gt.SearchConfiguration(generations=4, pool_size=8, engine=engine_kind, num_objectives=m)

    def mk() -> gt.Engine:
        return gt.Engine(GATED, cfg, seed=42, constraints=["tile <= 48"])

    full = drive(mk(), random.Random(7))
    assert full == drive(mk(), random.Random(7))
    engine, script = mk(), random.Random(7)
    head = drive(engine, script, steps=9)
    assert engine.pending(), "the copy is taken while candidates are in flight"
    for restored in (pickle.loads(pickle.dumps(engine)), gt.Engine.from_bytes(engine.to_bytes())):
        assert restored.pending() == engine.pending()
        assert restored.to_bytes() == engine.to_bytes()
        assert head + drive(restored, _copy(script)) == full


def _copy(r: random.Random) -> random.Random:
    c = random.Random()
    c.setstate(r.getstate())
    return c


def test_steady_callable_constraints_are_screened_and_replacements_chosen_by_the_model() -> None:
    def even_tile(params: Any) -> bool:
        return params["tile"] % 2 == 0

    engine = gt.Engine(GATED, gt.SearchConfiguration(generations=4, pool_size=8), seed=5, constraints=[even_tile, "tile >= 4"])
    script = random.Random(1)
    log = drive(engine, script)
    cands = [json.loads(p) for kind, items in log if kind == "ask" for _, _, p in items]
    assert len(cands) == 32
    assert all(c["tile"] % 2 == 0 and c["tile"] >= 4 for c in cands)
    drawn, rejected = engine.constraint_draws
    assert rejected > 0 and drawn > rejected
    with pytest.raises(ValueError, match="no candidate satisfies"):
        gt.Engine(GATED, gt.SearchConfiguration(generations=2, pool_size=8), seed=1, constraints=[lambda p: False])


def test_steady_warm_start_first_priors_never_again() -> None:
    from genetune.warm_start import PriorEvaluation, WarmStartPlan

    warm = [{"opt": "-O3", "tile": 8}, {"unroll": "-funroll", "factor": 4, "opt": "-O2", "tile": 16}]
    prior = {"opt": "-O1", "tile": 5}
    plan = WarmStartPlan(warm, [PriorEvaluation(prior, [3.0], {"scores": [3.0]})])
    engine = gt.Engine(GATED, gt.SearchConfiguration(generations=3, pool_size=8), seed=2, warm_start=plan)
    assert engine.prior_count == 1
    first = engine.ask(2)
    assert [c.params for c in first] == warm and [c.id for c in first] == [1, 2]
    log = drive(engine, random.Random(3))
    keys = [p for kind, items in log if kind == "ask" for _, _, p in items]
    assert key_of(prior) not in keys and not {key_of(w) for w in warm} & set(keys)


def test_steady_small_spaces_exhaust_without_repeats() -> None:
    space = {"a": ss.range(0, 3, 1), "b": ss.choice(["x", "y"], knockout_prob=0.5)}
    engine = gt.Engine(space, gt.SearchConfiguration(generations=5, pool_size=8), seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = drive(engine, random.Random(2))
    keys = [p for kind, items in log if kind == "ask" for _, _, p in items]
    assert len(keys) == len(set(keys)) == 12 and engine.done and engine.exhausted
    assert any(issubclass(w.category, gt.SearchSpaceExhaustedWarning) for w in caught)


def test_steady_model_learns_one_result_at_a_time() -> None:
    """40 weighted flags, 100 evaluations asked and told one at a time: the model-assisted steady
    engine gets far closer to the optimum than random search in the same evaluations."""
    weights = [float((i * 7919) % 13 - 6) for i in range(40)]
    space = {f"f{i}": ss.literal(f"-f{i}", knockout_prob=0.5) for i in range(40)}
    optimum = sum(w for w in weights if w < 0)

    def f(p: dict[str, Any]) -> float:
        return sum(w for i, w in enumerate(weights) if f"f{i}" in p)

    regret_steady = regret_random = 0.0
    for seed in range(3):
        engine = gt.Engine(space, gt.SearchConfiguration(generations=4, pool_size=25), seed=seed)
        best = math.inf
        while not engine.done:
            (c,) = engine.ask(1)
            best = min(best, f(c.params))
            engine.tell([c.id], [f(c.params)])
        regret_steady += best - optimum
        rng = np.random.default_rng(seed)
        regret_random += min(sum(w for w, on in zip(weights, rng.random(40) < 0.5, strict=True) if on) for _ in range(100)) - optimum
    assert regret_steady < 0.5 * regret_random, (regret_steady, regret_random)
