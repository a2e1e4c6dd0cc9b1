"""The ask/tell engine through its Python surface: the loop, determinism, order independence,
no duplicates, exhaustion, invalid scores, tell errors, ask_array, multi-objective directions,
pickling, and the GIL."""

from __future__ import annotations

import json
import math
import pickle
import threading
import time
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import genetune as gt
import genetune.search_spaces as ss
from engine_support import check_candidate, key_of, quietly_exhausting, random_scorer, run_generations
from tests_support import config

SPACE: dict[str, Any] = {
    "x": ss.range(0.0, 1.0, None),
    "n": ss.range(0, 100, 5),
    "c": ss.choice(["a", "b", "c"], knockout_prob=0.2),
    "lit": ss.literal("on", knockout_prob=0.3),
    "nested": {"lr": ss.log_sampling(1e-4, 1e-1, 7), "f": ss.range(-1.0, 1.0, 0.5)},
}
COLUMNS = [("x",), ("n",), ("c",), ("lit",), ("nested", "lr"), ("nested", "f")]
NAMES = [
    "search_space['x']",
    "search_space['n']",
    "search_space['c']",
    "search_space['lit']",
    "search_space['nested']['lr']",
    "search_space['nested']['f']",
]


def objective(params: dict[str, Any]) -> float:
    """A deterministic score of SPACE's candidates (lower is better)."""
    score = (params["x"] - 0.3) ** 2 + abs(params["n"] - 40) / 100
    score += {"a": 0.0, "b": 0.1, "c": 0.2}.get(params.get("c", ""), 0.3)
    score += 0.05 if "lit" in params else 0.0
    score += abs(math.log10(params["nested"]["lr"]) + 2) / 10 + abs(params["nested"]["f"]) / 10
    return score


def scores_of(cands: list[gt.Candidate]) -> list[float]:
    return [objective(c.params) for c in cands]


def stream(engine: gt.Engine, generations: int) -> list[list[tuple[int, int, str]]]:
    """Runs ``generations`` generations (or until done) and returns (id, generation, params) per
    candidate, per generation."""
    out = []
    for cands in run_generations(engine, scores_of, generations):
        out.append([(c.id, c.generation, key_of(c.params)) for c in cands])
    return out


# ----- the loop ---------------------------------------------------------------------------------------


def test_loop_runs_the_configured_generations_then_is_done() -> None:
    engine = gt.Engine(SPACE, config(generations=5, pool_size=12), seed=1)
    assert engine.generation == 0 and not engine.done and engine.evaluations == 0
    all_ids: set[int] = set()
    for g in range(5):
        assert engine.generation == g and not engine.done
        cands = engine.ask()
        assert len(cands) == 12
        assert all(isinstance(c, gt.Candidate) and c.generation == g for c in cands)
        ids = [c.id for c in cands]
        assert len(set(ids)) == 12 and not all_ids & set(ids)
        all_ids |= set(ids)
        for c in cands:
            check_candidate(SPACE, c.params)
        engine.tell(ids, scores_of(cands))
        assert engine.evaluations == 12 * (g + 1)
    assert engine.done and engine.generation == 5 and engine.evaluations == 60
    assert engine.ask() == []
    ids, x = engine.ask_array()
    assert ids.shape == (0,) and x.shape == (0, len(COLUMNS))
    assert engine.pending() == []
    with pytest.raises(gt.TellError):
        engine.tell([max(all_ids)], [1.0])


def test_ask_returns_empty_once_everything_is_asked() -> None:
    # Generational: the rest of the generation waits for its results (tests/test_engine_schedules.py: steady).
    a = gt.Engine(SPACE, config(pool_size=10, schedule="generational"), seed=2)
    b = gt.Engine(SPACE, config(pool_size=10, schedule="generational"), seed=2)
    full = a.ask()
    assert len(full) == 10
    assert a.ask() == [] and a.ask(3) == []
    ids, x = a.ask_array()
    assert ids.shape == (0,) and x.shape == (0, len(COLUMNS))
    assert b.ask(0) == []
    parts = b.ask(4) + b.ask(3) + b.ask(100)
    assert b.ask() == []
    assert parts == full
    assert [c.id for c in b.pending()] == [c.id for c in full]


def test_tell_in_any_order_and_any_number_of_calls_gives_the_same_next_generation() -> None:
    # Generational: a generation is bred once all of it is told, so how it was told does not matter.
    cfg = config(generations=6, pool_size=16, schedule="generational")
    a, b, c = (gt.Engine(SPACE, cfg, seed=5) for _ in range(3))
    for _ in range(6):
        ca, cb = a.ask(), b.ask()
        assert [(x.id, key_of(x.params)) for x in ca] == [(x.id, key_of(x.params)) for x in cb]
        a.tell([x.id for x in ca], scores_of(ca))
        # b: reversed order, in 3 calls.
        rev = cb[::-1]
        for chunk in (rev[:5], rev[5:11], rev[11:]):
            b.tell([x.id for x in chunk], scores_of(chunk))
        # c: asks and tells interleaved, one by one and in pieces, as numpy arrays.
        first = c.ask(3)
        c.tell(np.array([first[1].id]), np.array([objective(first[1].params)]))
        rest = c.ask()
        assert [(x.id, key_of(x.params)) for x in first + rest] == [(x.id, key_of(x.params)) for x in ca]
        todo = [first[0], first[2], *rest][::-1]
        for chunk in (todo[:1], todo[1:7], todo[7:]):
            c.tell(np.array([x.id for x in chunk], dtype=np.int64), np.array(scores_of(chunk)).reshape(-1, 1))
    assert a.done and b.done and c.done
    pa, pb, pc = a.population(), b.population(), c.population()
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(pa, pc, strict=True):
        np.testing.assert_array_equal(x, y)


def test_same_seed_same_stream_and_different_seeds_differ() -> None:
    cfg = config(generations=5, pool_size=12)
    s1 = stream(gt.Engine(SPACE, cfg, seed=123), 5)
    s2 = stream(gt.Engine(SPACE, cfg, seed=123), 5)
    s3 = stream(gt.Engine(SPACE, cfg, seed=124), 5)
    assert s1 == s2
    assert [p for g in s1 for (_, _, p) in g] != [p for g in s3 for (_, _, p) in g]
    assert s1[0] != s3[0]


def test_seed_none_is_drawn_reported_and_replayable() -> None:
    cfg = config(generations=4, pool_size=10)
    e1, e2 = gt.Engine(SPACE, cfg), gt.Engine(SPACE, cfg)
    assert type(e1.seed) is int and 0 <= e1.seed < 2**64
    assert e1.seed != e2.seed
    replay = gt.Engine(SPACE, cfg, seed=e1.seed)
    assert replay.seed == e1.seed
    assert stream(e1, 4) == stream(replay, 4)


@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**63, 2**64 - 1])
def test_extreme_seeds(seed: int) -> None:
    engine = gt.Engine(SPACE, config(), seed=seed)
    assert engine.seed == seed
    assert stream(engine, 3) == stream(gt.Engine(SPACE, config(), seed=seed), 3)


# ----- no duplicates, exhaustion -----------------------------------------------------------------------


def test_never_repeats_a_candidate_over_a_long_run() -> None:
    engine = gt.Engine(SPACE, config(generations=25, pool_size=40, mutate_rate=0.05, crossover_prob=1.0), seed=9)
    seen: set[str] = set()
    for cands in run_generations(engine, scores_of):
        for c in cands:
            k = key_of(c.params)
            assert k not in seen, f"repeated {c.params}"
            seen.add(k)
    assert len(seen) == 25 * 40


def test_small_space_exhausts_without_repeats() -> None:
    space = {"a": ss.range(0, 4), "b": ss.choice([True, False]), "c": {"d": ss.literal(1, knockout_prob=0.5)}}
    engine = gt.Engine(space, config(generations=20, pool_size=8), seed=4)
    assert engine.space_size == 20
    seen: set[str] = set()
    with pytest.warns(gt.SearchSpaceExhaustedWarning) as record:
        gens = run_generations(engine, lambda cands: [float(c.params["a"]) for c in cands])
    assert len([w for w in record if issubclass(w.category, gt.SearchSpaceExhaustedWarning)]) == 1
    for cands in gens:
        for c in cands:
            check_candidate(space, c.params)
            k = key_of(c.params)
            assert k not in seen
            seen.add(k)
    assert len(seen) == 20
    assert engine.exhausted and engine.done
    assert engine.ask() == []
    assert all(len(g) == 8 for g in gens[:-1])


def test_space_smaller_than_the_pool() -> None:
    with pytest.warns(gt.SearchSpaceExhaustedWarning):
        engine = gt.Engine({"a": ss.choice([1, 2, 3])}, config(generations=5, pool_size=8), seed=0)
        cands = engine.ask()
    assert sorted(c.params["a"] for c in cands) == [1, 2, 3]
    assert engine.exhausted
    engine.tell([c.id for c in cands], [1.0, 2.0, 3.0])
    assert engine.done and engine.ask() == []
    ids, _, scores = engine.population()
    assert sorted(ids.tolist()) == sorted(c.id for c in cands)


def test_single_candidate_space() -> None:
    with pytest.warns(gt.SearchSpaceExhaustedWarning):
        engine = gt.Engine({"only": ss.literal("x")}, config(), seed=0)
        cands = engine.ask()
    assert [c.params for c in cands] == [{"only": "x"}]
    engine.tell([cands[0].id], [0.0])
    assert engine.done


FINITE_PARAMS = st.one_of(
    st.builds(lambda n, ko: ss.range(0, n, knockout_prob=ko), st.integers(1, 4), st.sampled_from([None, 0.5])),
    st.builds(
        lambda k, ko: ss.choice([f"v{i}" for i in range(k)], knockout_prob=ko), st.integers(1, 4), st.sampled_from([None, 0.3])
    ),
    st.builds(lambda ko: ss.literal(7, knockout_prob=ko), st.sampled_from([None, 0.5, 1.0])),
)


@given(
    space=st.dictionaries(st.sampled_from("abcdef"), FINITE_PARAMS, min_size=1, max_size=4),
    pool=st.integers(6, 24),
    generations=st.integers(1, 12),
    seed=st.integers(0, 2**64 - 1),
)
def test_finite_spaces_never_repeat_and_exhaust_exactly(space: dict[str, Any], pool: int, generations: int, seed: int) -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        engine = gt.Engine(space, config(generations=generations, pool_size=pool), seed=seed)
        size = engine.space_size
        assert size is not None
        gens = run_generations(engine, random_scorer(seed))
    seen = [key_of(c.params) for g in gens for c in g]
    assert len(seen) == len(set(seen)), "a candidate was proposed twice"
    for g in gens:
        for c in g:
            check_candidate(space, c.params)
    assert engine.done
    warned = [w for w in record if issubclass(w.category, gt.SearchSpaceExhaustedWarning)]
    if engine.exhausted:
        assert len(seen) == size, f"exhausted after {len(seen)} of {size} candidates"
        assert len(warned) == 1
    else:
        assert len(seen) == pool * generations
        assert not warned


# ----- scores --------------------------------------------------------------------------------------------


def test_invalid_scores_never_survive_when_valid_ones_exist() -> None:
    space = {f"x{i}": ss.range(0.0, 1.0, None) for i in range(3)}
    engine = gt.Engine(space, config(generations=8, pool_size=20), seed=6)
    told: dict[int, float] = {}
    invalid_kinds = [np.nan, np.inf, -np.inf]
    k = 0
    while not engine.done:
        cands = engine.ask()
        scores = []
        for c in cands:
            if c.params["x0"] < 0.5:
                scores.append(invalid_kinds[k % 3])
                k += 1
            else:
                scores.append(sum(c.params.values()))
        engine.tell([c.id for c in cands], np.array(scores))
        told.update({c.id: s for c, s in zip(cands, scores, strict=True)})
        ids, x, pop_scores = engine.population()
        assert pop_scores.shape == (len(ids), 1)
        valid = np.isfinite(pop_scores[:, 0])
        # Valid ones first (best first), and no invalid one while enough valid ones were told.
        assert not np.any(np.diff(valid.astype(int)) > 0), "an invalid candidate ranks above a valid one"
        n_valid_told = sum(math.isfinite(s) for s in told.values())
        if n_valid_told >= 20:
            assert valid.all(), "invalid candidates survived although enough valid ones exist"
        finite = pop_scores[valid, 0]
        assert np.all(np.diff(finite) >= 0), "the population is not sorted best first"
        for i, s in zip(ids.tolist(), pop_scores[:, 0], strict=True):
            assert (math.isnan(s) and not math.isfinite(told[i])) or s == told[i]
    assert k > 0


def test_star_and_numbers_can_be_mixed_in_one_tell() -> None:
    engine = gt.Engine({"x": ss.range(0.0, 1.0, None)}, config(pool_size=8), seed=1)
    cands = engine.ask()
    scores: list[Any] = [gt.INVALID_SCORE if i % 2 else float(i) for i in range(8)]
    engine.tell([c.id for c in cands], scores)
    ids, _, pop = engine.population()
    by_id = dict(zip(ids.tolist(), pop[:, 0].tolist(), strict=True))
    for i, c in enumerate(cands):
        if i % 2:
            assert math.isnan(by_id[c.id])
        else:
            assert by_id[c.id] == float(i)


def test_all_star_scores_and_object_arrays() -> None:
    engine = gt.Engine({"x": ss.range(0.0, 1.0, None)}, config(generations=2, pool_size=8), seed=1)
    cands = engine.ask()
    engine.tell([c.id for c in cands[:4]], ["*"] * 4)
    engine.tell([c.id for c in cands[4:]], np.array([1, "*", 2.5, "*"], dtype=object))
    _, _, pop = engine.population()
    assert np.isnan(pop[:, 0]).sum() == 6 and sorted(pop[~np.isnan(pop[:, 0]), 0].tolist()) == [1.0, 2.5]


def test_problem_type_max_maximizes() -> None:
    space = {f"x{i}": ss.range(0.0, 1.0, None) for i in range(3)}
    engine = gt.Engine(space, config(generations=15, pool_size=20, problem_type="max"), seed=3)
    gens = run_generations(engine, lambda cands: [sum(c.params.values()) for c in cands])
    _, _, pop = engine.population()
    assert np.all(np.diff(pop[:, 0]) <= 0), "best first means largest first for max"
    first_best = max(sum(c.params.values()) for c in gens[0])
    assert pop[0, 0] >= first_best and pop[0, 0] > 2.7


@pytest.mark.parametrize("engine_kind", ["nsga2", "nsga3"])
def test_multi_objective_directions_min_and_max(engine_kind: str) -> None:
    space = {f"x{i}": ss.range(0.0, 1.0, None) for i in range(3)}

    def run(directions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cfg = config(generations=20, pool_size=40, num_objectives=2, directions=directions, engine=engine_kind)
        engine = gt.Engine(space, cfg, seed=12)
        told: dict[int, tuple[float, float]] = {}
        first = None
        while not engine.done:
            cands = engine.ask()
            s = np.array([[c.params["x0"], c.params["x1"]] for c in cands])
            if first is None:
                first = s
            engine.tell([c.id for c in cands], s)
            told.update({c.id: (float(a), float(b)) for c, (a, b) in zip(cands, s, strict=True)})
        ids, _, pop = engine.population()
        for i, row in zip(ids.tolist(), pop.tolist(), strict=True):
            assert tuple(row) == told[i], "population scores must be reported as told"
        assert first is not None
        return first, pop

    first, pop = run(["min", "max"])
    assert abs(first[:, 1].mean() - 0.5) < 0.2
    assert pop[:, 0].mean() < 0.2, "the min objective was not minimized"
    assert pop[:, 1].mean() > 0.8, "the max objective was not maximized"
    _, pop_min = run(["min", "min"])
    assert pop_min[:, 1].mean() < 0.2


def test_multi_objective_invalid_rows() -> None:
    space = {f"x{i}": ss.range(0.0, 1.0, None) for i in range(2)}
    engine = gt.Engine(space, config(generations=4, pool_size=20, num_objectives=2), seed=2)
    while not engine.done:
        cands = engine.ask()
        rows = [[c.params["x0"], math.nan if c.params["x1"] < 0.5 else c.params["x1"]] for c in cands]
        engine.tell([c.id for c in cands], rows)
        _, _, pop = engine.population()
        valid = np.isfinite(pop).all(axis=1)
        assert not np.any(np.diff(valid.astype(int)) > 0)
        assert np.isnan(pop[~valid]).all(), "an invalid candidate's scores are all reported as NaN"


# ----- tell errors -------------------------------------------------------------------------------------


def test_bad_tells_raise_tell_error_and_record_nothing() -> None:
    # Generational, so the twin told everything at once ends up in the same state.
    cfg = config(generations=4, pool_size=8, schedule="generational")
    engine = gt.Engine(SPACE, cfg, seed=21)
    twin = gt.Engine(SPACE, cfg, seed=21)
    asked = engine.ask(6)
    twin_all = twin.ask()
    assert [c.id for c in asked] == [c.id for c in twin_all[:6]]
    ids = [c.id for c in asked]
    not_asked = twin_all[6].id
    bad_calls: list[tuple[Any, Any]] = [
        (ids[:2], [1.0]),  # too few scores
        (ids[:2], [1.0, 2.0, 3.0]),  # too many scores
        (ids[:1], [[1.0, 2.0]]),  # two objectives for one
        (ids[:2], [[1.0], [2.0], [3.0]]),
        ([10**9], [1.0]),  # unknown id
        ([-1], [1.0]),  # negative id
        ([not_asked], [1.0]),  # not asked yet
        ([ids[0], not_asked], [1.0, 2.0]),
        ([ids[0], ids[0]], [1.0, 2.0]),  # told twice in one call
        ([ids[0], ids[1], 10**9], [1.0, 2.0, 3.0]),  # partly valid
        ([ids[0]], ["abc"]),  # not a score
        ([ids[0]], [None]),
        ([ids[0], ids[1]], [1.0, "1.5"]),
        ([ids[0]], [True]),
    ]
    for bad_ids, bad_scores in bad_calls:
        with pytest.raises(gt.TellError) as info:
            engine.tell(bad_ids, bad_scores)
        assert isinstance(info.value, ValueError)
        assert engine.evaluations == 0, f"{bad_ids}, {bad_scores} recorded something"
        assert [c.id for c in engine.pending()] == ids
    # Told twice across calls.
    engine.tell([ids[0]], [objective(asked[0].params)])
    twin.tell([ids[0]], [objective(asked[0].params)])
    with pytest.raises(gt.TellError):
        engine.tell([ids[0]], [0.0])
    with pytest.raises(gt.TellError):
        engine.tell([ids[1], ids[0]], [0.0, 0.0])
    assert engine.evaluations == 1
    assert [c.id for c in engine.pending()] == ids[1:]
    # The engine still takes the right tells, and continues exactly like an engine that never saw a bad one.
    rest = asked[1:] + engine.ask()
    engine.tell([c.id for c in rest], scores_of(rest))
    twin.tell([c.id for c in twin_all[1:]], scores_of(twin_all[1:]))
    old_ids = ids
    assert stream(engine, 3) == stream(twin, 3)
    # Ids of a finished generation are no longer accepted.
    fresh = gt.Engine(SPACE, cfg, seed=21)
    first = fresh.ask()
    fresh.tell([c.id for c in first], scores_of(first))
    with pytest.raises(gt.TellError):
        fresh.tell([old_ids[0]], [1.0])


@pytest.mark.parametrize("schedule", ["generational", "steady"])
def test_tell_error_messages_are_specific(schedule: str) -> None:
    engine = gt.Engine(SPACE, config(pool_size=8, schedule=schedule), seed=1)
    asked = engine.ask(4)
    with pytest.raises(gt.TellError, match=r"(?i)shape"):
        engine.tell([asked[0].id, asked[1].id], [1.0])
    with pytest.raises(gt.TellError, match=r"(?i)not asked"):
        engine.tell([asked[-1].id + 1], [1.0])
    with pytest.raises(gt.TellError, match=r"(?i)already told"):
        engine.tell([asked[0].id, asked[0].id], [1.0, 1.0])
    with pytest.raises(gt.TellError, match=r"(?i)not in the current generation|not asked"):
        engine.tell([10**6], [1.0])


# ----- ask_array ---------------------------------------------------------------------------------------


def _column(params: dict[str, Any], path: tuple[str, ...]) -> float:
    node: Any = params
    for key in path:
        if key not in node:
            return math.nan
        node = node[key]
    param: Any = SPACE
    for key in path:
        param = param[key]
    if isinstance(param, gt.search_spaces.ChoiceParam):
        return float(param.values.index(node))
    if isinstance(param, gt.search_spaces.LiteralParam):
        return 0.0
    return float(node)


def test_ask_array_matches_ask() -> None:
    cfg = config(generations=5, pool_size=30)
    a = gt.Engine(SPACE, cfg, seed=31)
    b = gt.Engine(SPACE, cfg, seed=31)
    assert a.parameter_names == b.parameter_names == NAMES
    knocked_out = np.zeros(len(COLUMNS), dtype=bool)
    for _ in range(5):
        cands = a.ask()
        ids, x = b.ask_array()
        knocked_out |= np.isnan(x).any(axis=0)
        assert ids.dtype == np.int64 and x.dtype == np.float64
        assert x.shape == (len(cands), len(COLUMNS))
        assert ids.tolist() == [c.id for c in cands]
        expected = np.array([[_column(c.params, p) for p in COLUMNS] for c in cands])
        np.testing.assert_array_equal(x, expected)
        scores = scores_of(cands)
        a.tell([c.id for c in cands], scores)
        b.tell(ids, np.array(scores))
    assert a.done and b.done
    assert knocked_out[2] and knocked_out[3], "knocked-out columns are NaN"


def test_ask_array_in_pieces_and_pending() -> None:
    a = gt.Engine(SPACE, config(pool_size=12), seed=8)
    b = gt.Engine(SPACE, config(pool_size=12), seed=8)
    ids1, x1 = a.ask_array(5)
    ids2, x2 = a.ask_array()
    ids, x = b.ask_array()
    np.testing.assert_array_equal(np.concatenate([ids1, ids2]), ids)
    np.testing.assert_array_equal(np.vstack([x1, x2]), x)
    assert [c.id for c in a.pending()] == ids.tolist()


def test_population_before_any_tell_is_empty() -> None:
    engine = gt.Engine(SPACE, config(num_objectives=2, pool_size=16), seed=1)
    ids, x, scores = engine.population()
    assert ids.shape == (0,) and x.shape == (0, len(COLUMNS)) and scores.shape == (0, 2)
    assert engine.num_objectives == 2 and engine.space_size is None
    assert "Engine(" in repr(engine)


# ----- pickling and bytes --------------------------------------------------------------------------------


def _advance(engine: gt.Engine, generations: int, asked: int, told: list[int], score: Any = scores_of) -> None:
    """Runs ``generations`` full generations, then asks ``asked`` candidates and tells those at
    positions ``told`` of them."""
    run_generations(engine, score, generations)
    if engine.done:
        return
    cands = engine.ask(asked)
    chosen = [cands[i] for i in sorted(set(told)) if i < len(cands)]
    if chosen:
        engine.tell([c.id for c in chosen], score(chosen))


def _continue(engine: gt.Engine, generations: int) -> list[Any]:
    """Tells the pending candidates, then runs on; returns everything the engine proposed."""
    out: list[Any] = []
    pending = engine.pending()
    out.append([(c.id, c.generation, key_of(c.params)) for c in pending])
    if pending:
        engine.tell([c.id for c in pending], scores_of(pending))
    out.extend(stream(engine, generations))
    out.append((engine.generation, engine.done, engine.evaluations))
    return out


def _restorers() -> list[Any]:
    return [
        lambda e: pickle.loads(pickle.dumps(e)),
        lambda e: pickle.loads(pickle.dumps(e, protocol=pickle.HIGHEST_PROTOCOL)),
        lambda e: gt.Engine.from_bytes(e.to_bytes()),
        lambda e: gt.Engine.from_bytes(bytes(bytearray(e.to_bytes()))),
    ]


@pytest.mark.parametrize("restore", _restorers(), ids=["pickle", "pickle-highest", "bytes", "bytearray-copy"])
def test_restored_engine_continues_the_identical_stream(restore: Any) -> None:
    cfg = config(generations=8, pool_size=14, schedule="generational")
    engine = gt.Engine(SPACE, cfg, seed=77)
    _advance(engine, 2, asked=9, told=[0, 3, 4])
    restored = restore(engine)
    assert isinstance(restored, gt.Engine)
    assert restored.pending() == engine.pending()
    assert len(engine.pending()) == 6
    assert (restored.seed, restored.generation, restored.evaluations, restored.done) == (
        engine.seed,
        engine.generation,
        engine.evaluations,
        engine.done,
    )
    assert restored.config == engine.config
    assert restored.search_space == engine.search_space
    assert restored.parameter_names == engine.parameter_names
    # The remaining candidates of the current generation come out the same.
    rest_a, rest_b = engine.ask(), restored.ask()
    assert rest_a == rest_b and len(rest_a) == 5
    assert _continue(engine, 10) == _continue(restored, 10)
    assert restored.done


@given(
    seed=st.integers(0, 2**64 - 1),
    generations=st.integers(0, 4),
    asked=st.integers(0, 12),
    told=st.lists(st.integers(0, 11), max_size=12),
    kind=st.sampled_from(["ga", "nsga2", "nsga3"]),
)
def test_pickle_anywhere_continues_identically(seed: int, generations: int, asked: int, told: list[int], kind: str) -> None:
    m = 1 if kind == "ga" else 2
    cfg = config(generations=5, pool_size=12, num_objectives=m, engine=kind)

    def scorer(cands: list[gt.Candidate]) -> Any:
        s = scores_of(cands)
        return s if m == 1 else [[v, -v * v + c.params["x"]] for v, c in zip(s, cands, strict=True)]

    def go(e: gt.Engine) -> list[Any]:
        out = []
        pending = e.pending()
        if pending:
            e.tell([c.id for c in pending], scorer(pending))
        out.append([(c.id, key_of(c.params)) for c in pending])
        for cands in run_generations(e, scorer):
            out.append([(c.id, key_of(c.params)) for c in cands])
        out.append(e.population()[0].tolist())
        return out

    engine = gt.Engine(SPACE, cfg, seed=seed)
    run_generations(engine, scorer, generations)
    if not engine.done:
        cands = engine.ask(asked)
        chosen = [cands[i] for i in sorted(set(told)) if i < len(cands)]
        if chosen:
            engine.tell([c.id for c in chosen], scorer(chosen))
    restored = pickle.loads(pickle.dumps(engine))
    assert go(engine) == go(restored)


def test_restore_at_start_and_after_done() -> None:
    fresh = gt.Engine(SPACE, config(generations=3), seed=3)
    assert stream(pickle.loads(pickle.dumps(fresh)), 3) == stream(fresh, 3)
    assert fresh.done
    again = pickle.loads(pickle.dumps(fresh))
    assert again.done and again.ask() == [] and again.generation == 3
    np.testing.assert_array_equal(again.population()[2], fresh.population()[2])


def test_restored_exhausted_engine_finishes() -> None:
    with pytest.warns(gt.SearchSpaceExhaustedWarning):
        engine = gt.Engine({"a": ss.choice([1, 2, 3])}, config(), seed=1)
        cands = engine.ask()
    restored = pickle.loads(pickle.dumps(engine))
    assert restored.exhausted and not restored.done
    assert restored.pending() == cands
    with quietly_exhausting():
        restored.tell([c.id for c in cands], [1.0, 2.0, 3.0])
    assert restored.done and restored.ask() == []


@pytest.mark.parametrize(
    "space",
    [
        SPACE,
        [{"a": ss.range(0, 4)}, {"b": {"c": ss.choice([1, 2.5, "s", True])}}],
        {"np": ss.choice(np.array([1, 2, 3])), "lit": ss.literal(np.float64(0.5), knockout_prob=0.5), "r": ss.range(0.5, 2, 0.5)},
    ],
    ids=["dict", "list", "numpy"],
)
def test_restored_config_and_search_space_equal_the_originals(space: Any) -> None:
    cfg = gt.SearchConfiguration(
        generations=3, pool_size=10, mutate_rate=0.4, problem_type="max", seed=5, init_with_true_random_threshold=0.3
    )
    engine = gt.Engine(space, cfg)
    for restored in (pickle.loads(pickle.dumps(engine)), gt.Engine.from_bytes(engine.to_bytes())):
        assert restored.config == cfg
        assert restored.config.model_dump() == cfg.model_dump()
        assert restored.search_space == space
        assert restored.seed == 5
        assert [c.params for c in restored.ask()] == [c.params for c in gt.Engine(space, cfg).ask()]


def test_candidates_pickle() -> None:
    engine = gt.Engine(SPACE, config(), seed=1)
    for c in engine.ask():
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            back = pickle.loads(pickle.dumps(c, protocol=protocol))
            assert isinstance(back, gt.Candidate)
            assert back == c
            assert (back.id, back.generation, back.params) == (c.id, c.generation, c.params)
    assert pickle.loads(pickle.dumps(engine.pending())) == engine.pending()


def test_corrupt_bytes_raise_state_error() -> None:
    engine = gt.Engine(SPACE, config(generations=4), seed=1)
    _advance(engine, 1, asked=5, told=[1])
    data = engine.to_bytes()
    bad = [b"", b"nonsense", b"\x00" * len(data), data[:8], data[:-1], data[: len(data) // 2], b"X" + data[1:], data[::-1]]
    bad += [data[:cut] for cut in range(0, len(data), max(1, len(data) // 97))]
    for blob in bad:
        with pytest.raises(gt.StateError) as info:
            gt.Engine.from_bytes(blob)
        assert isinstance(info.value, ValueError)
    # The original is untouched by all this.
    assert gt.Engine.from_bytes(data).pending() == engine.pending()


@pytest.mark.parametrize(
    ("old", "new"),
    [(b'{"config"', b'["config"'), (b'"config"', b'"confiX"'), (b'"space"', b'"spacX"'), (b'"generations"', b'"generationX"')],
)
def test_damaged_metadata_raises_state_error(old: bytes, new: bytes) -> None:
    """The Python-side metadata inside the state (configuration and search space) is checked too."""
    engine = gt.Engine(SPACE, config(), seed=1)
    data = engine.to_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    with pytest.raises(gt.StateError):
        gt.Engine.from_bytes(data.replace(old, new))


@given(data=st.data())
def test_bit_flipped_state_is_rejected_or_usable(data: st.DataObject) -> None:
    """A damaged state either fails to load with StateError, or loads into an engine whose
    ask/tell still works or fails with a genetune error, never an internal error or a hang."""
    space = {"x": ss.range(0.0, 1.0, None), "c": ss.choice(["a", "b"], knockout_prob=0.5)}
    engine = gt.Engine(space, config(generations=3), seed=1)
    _advance(engine, 1, asked=3, told=[0], score=random_scorer(1))
    blob = bytearray(engine.to_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    try:
        restored = gt.Engine.from_bytes(bytes(blob))
    except gt.StateError:
        return
    except gt.SearchSpaceError:
        return  # the embedded search space was damaged
    except gt.ConfigurationError:
        return  # the embedded configuration was damaged
    except BaseException as err:  # noqa: BLE001
        raise AssertionError(f"from_bytes raised {type(err).__qualname__}: {err}") from err
    try:
        with quietly_exhausting():
            for _ in range(4):
                if restored.done:
                    break
                cands = restored.pending() + restored.ask()
                if not cands:
                    break
                restored.tell([c.id for c in cands], [0.5] * len(cands))
    except (gt.TellError, gt.StateError):
        pass
    except BaseException as err:  # noqa: BLE001
        raise AssertionError(f"a restored engine raised {type(err).__qualname__}: {err}") from err


# ----- the GIL -------------------------------------------------------------------------------------------


def test_gil_is_released_during_population_work() -> None:
    """While the engine breeds a big generation (inside `tell`), another Python thread runs."""
    space = {f"x{i}": ss.range(0.0, 1.0, None) for i in range(50)}
    engine = gt.Engine(space, config(generations=10, pool_size=20000), seed=1)
    stamps: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 100 == 0:
                stamps.append(time.perf_counter())

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    ratios = []
    try:
        for _ in range(4):
            ids, x = engine.ask_array()
            scores = np.ascontiguousarray(x.sum(axis=1).reshape(-1, 1))
            time.sleep(0.01)
            t0 = time.perf_counter()
            engine.tell(ids, scores)
            t1 = time.perf_counter()
            inside = [t for t in list(stamps) if t0 <= t <= t1]
            points = [t0, *inside, t1]
            longest = max(b - a for a, b in zip(points, points[1:]))
            ratios.append((longest / (t1 - t0), t1 - t0, len(inside)))
            if longest < 0.5 * (t1 - t0) and t1 - t0 > 0.005:
                break
    finally:
        stop.set()
        thread.join()
    assert any(r < 0.5 and d > 0.005 for r, d, _ in ratios), (
        f"the other thread was blocked during tell (longest pause / call time, call time, samples): {ratios}"
    )


def test_json_keys_of_params_are_stable() -> None:
    """`key_of` (used throughout) distinguishes what the objective can tell apart."""
    assert key_of({"a": 1}) != key_of({"a": 1.0}) and key_of({"a": 1}) != key_of({"a": True})
    assert json.loads(key_of({"b": 1, "a": [1, {"c": "x"}]})) == {"a": [1, {"c": "x"}], "b": 1}


def test_bad_seed_and_count_are_value_errors() -> None:
    import genetune as gt
    import genetune.search_spaces as ss

    space = {"x": ss.range(0, 9)}
    for seed in (-1, 2**64, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            gt.Engine(space, {"generations": 1}, seed=seed)  # type: ignore[arg-type]
    engine = gt.Engine(space, {"generations": 1})
    with pytest.raises(ValueError, match="n must be"):
        engine.ask(-1)
    with pytest.raises(ValueError, match="n must be"):
        engine.ask_array(-3)
