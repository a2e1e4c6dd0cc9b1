"""The model-assisted engine (``engine="auto"``, the default): it must learn where the plain GA
cannot, avoid what was INVALID, keep batches diverse, and keep every guarantee of the plain
engines (seeded determinism whatever the tell order, exact continuation after pickling)."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import genetune as gt
import genetune.search_spaces as ss
from engine_support import key_of

#: 40 compiler-flag-like switches with hidden effects: about half of them help.
WEIGHTS = [float((i * 7919) % 13 - 6) for i in range(40)]
FLAG_SPACE = {f"f{i}": ss.literal(f"-f{i}", knockout_prob=0.5) for i in range(40)}
OPTIMUM = sum(w for w in WEIGHTS if w < 0)

MIXED_SPACE: dict[str, Any] = {
    "opt": ss.choice(["-O1", "-O2", "-O3"]),
    "unroll": ss.range(1, 16, 1, knockout_prob=0.3),
    "tile": ss.log_sampling(2, 512, 9),
    "alpha": ss.range(0.0, 1.0, None),
    "nested": {"flag": ss.literal("-fx", knockout_prob=0.5), "width": ss.choice([8, 16, 32])},
}


def flags_value(params: dict[str, Any]) -> float:
    return sum(w for i, w in enumerate(WEIGHTS) if f"f{i}" in params)


def mixed_value(params: dict[str, Any]) -> float:
    v = {"-O1": 2.0, "-O2": 1.0, "-O3": 0.0}[params["opt"]] + (params["alpha"] - 0.3) ** 2
    v += abs(params.get("unroll", 0) - 8) / 8 + abs(np.log2(params["tile"]) - 5) / 4
    return v + (0.0 if "flag" in params["nested"] else 0.5)


def best_after(config: gt.SearchConfiguration, space: dict[str, Any], value: Any) -> tuple[float, list[float]]:
    """Runs the engine to the end; returns the best value and each generation's INVALID share."""
    engine = gt.Engine(space, config)
    best, invalid_shares = float("inf"), []
    while not engine.done:
        cands = engine.ask()
        scores = [value(c.params) for c in cands]
        invalid_shares.append(float(np.mean([not np.isfinite(s) for s in scores])))
        best = min([best, *[s for s in scores if np.isfinite(s)]])
        engine.tell([c.id for c in cands], scores)
    return best, invalid_shares


def test_auto_is_the_default_and_uses_the_model() -> None:
    cfg = gt.SearchConfiguration(generations=3)
    assert cfg.engine == "auto" and cfg.algorithm == "ga"
    assert cfg.engine_config()["surrogate"] is True
    assert gt.SearchConfiguration(generations=3, num_objectives=2).algorithm == "nsga2"
    assert gt.SearchConfiguration(generations=3, num_objectives=3).algorithm == "nsga3"


def test_the_model_finds_better_candidates_per_evaluation() -> None:
    """Fails with the model switched off: the same budget with the plain GA ends far worse."""
    regrets: dict[str, list[float]] = {"auto": [], "ga": []}
    for seed in range(5):
        for engine in regrets:
            best, _ = best_after(
                gt.SearchConfiguration(generations=6, pool_size=16, seed=seed, engine=engine), FLAG_SPACE, flags_value
            )
            regrets[engine].append(best - OPTIMUM)
    assert np.median(regrets["auto"]) < 0.5 * np.median(regrets["ga"]), regrets


def test_invalid_candidates_teach_the_model_where_not_to_go() -> None:
    """Half the space (flag f0 on) is INVALID: the model stops proposing it."""

    def value(params: dict[str, Any]) -> float:
        return float("nan") if "f0" in params else flags_value(params)

    shares = {}
    for engine in ("auto", "ga"):
        runs = [best_after(gt.SearchConfiguration(generations=6, pool_size=16, seed=s, engine=engine), FLAG_SPACE, value)[1] for s in range(4)]
        shares[engine] = float(np.mean([r[-1] for r in runs]))
        first = float(np.mean([r[0] for r in runs]))
    assert shares["auto"] < 0.15 < first, (shares, first)
    assert shares["auto"] <= shares["ga"], shares


def test_batches_are_distinct_and_never_repeat_a_candidate() -> None:
    engine = gt.Engine(MIXED_SPACE, gt.SearchConfiguration(generations=8, pool_size=16, seed=3))
    seen: set[str] = set()
    while not engine.done:
        cands = engine.ask()
        keys = [key_of(c.params) for c in cands]
        assert len(set(keys)) == len(keys), "two identical candidates in one batch"
        assert seen.isdisjoint(keys), "a candidate was proposed twice"
        seen.update(keys)
        engine.tell([c.id for c in cands], [mixed_value(c.params) for c in cands])
    assert len(seen) == 8 * 16


def _stream(engine: gt.Engine, order: str) -> list[list[str]]:
    out = []
    while not engine.done:
        cands = engine.ask()
        out.append([key_of(c.params) for c in cands])
        told = cands[::-1] if order == "reversed" else cands
        half = len(told) // 2
        for part in (told[:half], told[half:]):
            engine.tell([c.id for c in part], [mixed_value(c.params) for c in part])
    return out


@pytest.mark.parametrize("num_objectives", [1, 2])
def test_same_seed_same_stream_whatever_the_tell_order(num_objectives: int) -> None:
    def mk() -> gt.Engine:
        # Generational: told in two calls in either order, a generation is bred from the same results.
        return gt.Engine(MIXED_SPACE, gt.SearchConfiguration(generations=5, pool_size=12, seed=11, schedule="generational"))

    if num_objectives == 1:
        assert _stream(mk(), "forward") == _stream(mk(), "reversed")
        return
    # Steady (the default): the order within one tell does not matter either.
    cfg = gt.SearchConfiguration(generations=5, pool_size=12, seed=11, num_objectives=2)
    streams = []
    for order in ("forward", "reversed"):
        engine = gt.Engine(MIXED_SPACE, cfg)
        out = []
        while not engine.done:
            cands = engine.ask()
            out.append([key_of(c.params) for c in cands])
            told = cands[::-1] if order == "reversed" else cands
            engine.tell([c.id for c in told], [[mixed_value(c.params), c.params["alpha"]] for c in told])
        streams.append(out)
    assert streams[0] == streams[1]


def test_pickled_engine_continues_the_identical_stream_with_its_model() -> None:
    engine = gt.Engine(MIXED_SPACE, gt.SearchConfiguration(generations=6, pool_size=10, seed=5))
    for _ in range(3):
        cands = engine.ask()
        engine.tell([c.id for c in cands], [mixed_value(c.params) for c in cands])
    copy = pickle.loads(pickle.dumps(engine))
    assert copy.to_bytes() == engine.to_bytes()
    assert _stream(copy, "forward") == _stream(engine, "forward")


def test_small_finite_space_is_exhausted_exactly() -> None:
    space = {"a": ss.choice(["x", "y", "z"]), "b": ss.range(0, 3, 1, knockout_prob=0.5)}  # 3 * (4 + 1) = 15
    engine = gt.Engine(space, gt.SearchConfiguration(generations=10, pool_size=6, seed=2))
    seen = []
    with pytest.warns(gt.SearchSpaceExhaustedWarning):
        while not engine.done:
            cands = engine.ask()
            seen.extend(key_of(c.params) for c in cands)
            engine.tell([c.id for c in cands], [len(key_of(c.params)) for c in cands])
    assert len(seen) == len(set(seen)) == 15 and engine.exhausted


@pytest.mark.parametrize(
    ("field", "value"),
    [("gene_mutate_rate", 0.0), ("gene_mutate_rate", 1.5), ("oversampling", 0), ("oversampling", 5000), ("engine", "tpe")],
)
def test_bad_model_settings_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=field):
        gt.SearchConfiguration(generations=2, **{field: value})


def test_plain_engines_stay_selectable_and_model_free() -> None:
    for engine, m in (("ga", 1), ("nsga2", 2), ("nsga3", 3)):
        cfg = gt.SearchConfiguration(generations=2, engine=engine, num_objectives=m)
        assert cfg.algorithm == engine and cfg.engine_config()["surrogate"] is False
