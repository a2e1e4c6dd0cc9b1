"""Search spaces as the engine samples them: bounds, grids, types, membership, seed ranges,
knockout, nested shapes, and clear errors for bad definitions."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import genetune as gt
import genetune.search_spaces as ss
from engine_support import check_candidate, key_of, quietly_exhausting, random_scorer, run_generations
from tests_support import config

# ----- strategies ---------------------------------------------------------------------------------

KNOCKOUTS = st.one_of(st.none(), st.just(0), st.just(0.0), st.floats(0.05, 0.95), st.just(1.0))
KEYS = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=6)
STRINGS = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    STRINGS,
)


@st.composite
def int_ranges(draw: st.DrawFn) -> gt.search_spaces.RangeParam:
    if draw(st.booleans()):
        start = draw(st.integers(-(10**6), 10**6))
        span = draw(st.integers(1, 10**4))
        step = draw(st.integers(1, 300))
    else:  # wide ranges near the 64-bit limits (at most 2^52 grid values)
        start = draw(st.integers(-(2**62), 2**62))
        span = draw(st.integers(1, min(2**62, 2**63 - 1 - start)))
        step = draw(st.integers(max(1, span >> 40), max(1, span)))
    return ss.range(start, start + span, step, knockout_prob=draw(KNOCKOUTS))


@st.composite
def float_grids(draw: st.DrawFn) -> gt.search_spaces.RangeParam:
    if draw(st.booleans()):
        # Decimal grids as users write them: ss.range(0.1, 0.7, 0.2).
        step = draw(st.sampled_from([0.1, 0.2, 0.3, 0.01, 0.05, 0.25, 0.5]))
        start = draw(st.integers(-20, 20)) * draw(st.sampled_from([0.1, 0.5, 1.0]))
        n = draw(st.integers(2, 40))
        end = round(start + step * (n - 1), 10)
        assume(end > start)
        return ss.range(start, end, step, knockout_prob=draw(KNOCKOUTS))
    start = draw(st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000)))
    step = draw(st.floats(1e-3, 1e3))
    n = draw(st.integers(1, 60))
    frac = draw(st.one_of(st.just(0.0), st.floats(0, 0.999)))
    end = start + step * (n - 1 + frac)
    assume(end > start)
    return ss.range(start, end, step, knockout_prob=draw(KNOCKOUTS))


@st.composite
def continuous_ranges(draw: st.DrawFn) -> gt.search_spaces.RangeParam:
    start = draw(st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000)))
    span = draw(st.one_of(st.floats(1e-6, 1e6), st.integers(1, 1000)))
    end = start + span
    assume(end > start)
    return ss.range(start, end, None, knockout_prob=draw(KNOCKOUTS))


@st.composite
def choices(draw: st.DrawFn) -> gt.search_spaces.ChoiceParam:
    values = draw(st.lists(SCALARS, min_size=1, max_size=6, unique_by=lambda v: (type(v), v)))
    return ss.choice(values, knockout_prob=draw(KNOCKOUTS))


@st.composite
def literals(draw: st.DrawFn) -> gt.search_spaces.LiteralParam:
    return ss.literal(draw(SCALARS), knockout_prob=draw(KNOCKOUTS))


@st.composite
def log_samplings(draw: st.DrawFn) -> gt.search_spaces.ChoiceParam:
    start = draw(st.floats(1e-6, 1e3))
    ratio = draw(st.floats(1.5, 1e6))
    total = draw(st.integers(2, 20))
    return ss.log_sampling(start, start * ratio, total, knockout_prob=draw(KNOCKOUTS))


PARAMS = st.one_of(int_ranges(), float_grids(), continuous_ranges(), choices(), literals(), log_samplings())
NODES = st.recursive(PARAMS, lambda children: st.dictionaries(KEYS, children, min_size=1, max_size=3), max_leaves=8)
DICT_SPACES = st.dictionaries(KEYS, NODES, min_size=1, max_size=4)
SPACES = st.one_of(DICT_SPACES, st.lists(DICT_SPACES, min_size=1, max_size=3))


def _run_and_check(space: Any, cfg: gt.SearchConfiguration, seed: int, generations: int) -> list[gt.Candidate]:
    with quietly_exhausting():
        engine = gt.Engine(space, cfg, seed=seed)
        gens = run_generations(engine, random_scorer(seed), generations)
    seen: set[str] = set()
    ids: set[int] = set()
    for cands in gens:
        for c in cands:
            check_candidate(space, c.params)
            k = key_of(c.params)
            assert k not in seen, f"candidate proposed twice: {c.params!r}"
            assert c.id not in ids
            seen.add(k)
            ids.add(c.id)
    return [c for g in gens for c in g]


# ----- every value the engine proposes is one the space allows -------------------------------------


@given(
    space=SPACES,
    seed=st.integers(0, 2**64 - 1),
    pool=st.integers(6, 16),
    mutate_rate=st.floats(0.01, 0.99),
    crossover_eta=st.floats(0, 60),
    mutation_eta=st.floats(0, 60),
    seed_share=st.floats(0, 1),
)
def test_every_proposed_value_is_in_bounds_on_grid_and_typed(
    space: Any, seed: int, pool: int, mutate_rate: float, crossover_eta: float, mutation_eta: float, seed_share: float
) -> None:
    cfg = config(
        generations=4,
        pool_size=pool,
        cull_size=2,
        mutate_rate=mutate_rate,
        crossover_eta=crossover_eta,
        mutation_eta=mutation_eta,
        init_with_true_random_threshold=seed_share,
    )
    _run_and_check(space, cfg, seed, 4)


@given(param=st.one_of(int_ranges(), float_grids(), continuous_ranges()), seed=st.integers(0, 2**32))
def test_ranges_alone_over_many_generations(param: Any, seed: int) -> None:
    space = {"x": param, "other": ss.range(0.0, 1.0, None)}
    _run_and_check(space, config(generations=8, pool_size=12), seed, 8)


def _values_of(space: Any, key: str, generations: int = 30, pool: int = 8, seed: int = 0) -> list[Any]:
    with quietly_exhausting():
        engine = gt.Engine(space, config(generations=generations, pool_size=pool), seed=seed)
        gens = run_generations(engine, random_scorer(seed))
    return [c.params[key] for g in gens for c in g if key in c.params]


def test_int_range_is_inclusive_and_yields_python_ints() -> None:
    values = _values_of({"a": ss.range(0, 10, 2)}, "a")
    assert sorted(values) == [0, 2, 4, 6, 8, 10]
    assert all(type(v) is int for v in values)
    values = _values_of({"a": ss.range(0, 9, 2)}, "a")
    assert sorted(values) == [0, 2, 4, 6, 8]
    values = _values_of({"a": ss.range(-3, 3)}, "a")
    assert sorted(values) == [-3, -2, -1, 0, 1, 2, 3]


def test_float_range_is_inclusive_and_yields_python_floats() -> None:
    values = _values_of({"a": ss.range(0.0, 1.0, 0.25)}, "a")
    assert all(type(v) is float for v in values)
    assert sorted(values) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    values = _values_of({"a": ss.range(0.0, 1.0, 0.1)}, "a")
    assert len(values) == 11 and max(values) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("start", "end", "step"),
    [(0.0, 0.3, 0.1), (0.0, 0.7, 0.1), (0.1, 0.7, 0.2), (1.1, 2.2, 0.1), (0, 0.3, 0.1)],
)
def test_float_grid_never_exceeds_its_end(start: float, end: float, step: float) -> None:
    """`start + k*step` rounding must not push the last grid value past `end`."""
    values = _values_of({"a": ss.range(start, end, step)}, "a")
    assert values, "no value proposed"
    assert max(values) == pytest.approx(end)
    outside = [v for v in values if not start <= v <= end]
    assert not outside, f"values outside [{start}, {end}]: {outside}"


@pytest.mark.parametrize(
    ("start", "end", "step"),
    [
        (2**53, 2**53 + 1, 1),
        (2**62, 2**62 + 10, 1),
        (2**62 + 1, 2**62 + 100, 3),
        (-(2**63), -(2**63) + 5, 1),
        (2**63 - 6, 2**63 - 1, 1),
        (-(2**63), 2**63 - 1, 2**62),
    ],
)
def test_int_ranges_are_exact_up_to_64_bits(start: int, end: int, step: int) -> None:
    """Int ranges are exact integers (no float rounding) anywhere in the 64-bit range."""
    expected = list(range(start, end + 1, step))
    values = _values_of({"a": ss.range(start, end, step)}, "a", generations=10)
    assert sorted(values) == expected
    assert all(type(v) is int for v in values)


def test_mixed_int_and_float_arguments_give_floats() -> None:
    for param in (ss.range(0, 10, 0.5), ss.range(0.5, 10, 2), ss.range(0, 10.0, 2), ss.range(0, 10, None)):
        values = _values_of({"a": param}, "a", generations=3)
        assert values and all(type(v) is float for v in values), (param, values)


def test_continuous_range_covers_its_interval() -> None:
    values = _values_of({"a": ss.range(-2.0, 3.0, None)}, "a", generations=5, pool=200)
    assert all(type(v) is float and -2.0 <= v <= 3.0 for v in values)
    assert min(values) < -1.5 and max(values) > 2.5


def test_numpy_inputs_are_accepted_and_give_python_values() -> None:
    space = {
        "r": ss.range(np.int64(0), np.int64(10), np.int64(2)),
        "f": ss.range(np.float64(0.0), np.float32(1.0), None),
        "ci": ss.choice(np.array([1, 2, 3])),
        "cf": ss.choice(np.array([0.5, 1.5])),
        "cs": ss.choice(np.array(["x", "y"])),
        "mixed": ss.choice([np.int64(7), np.float32(0.5), np.bool_(True), np.str_("s")]),
        "lit": ss.literal(np.float64(2.5)),
    }
    assert space["ci"].values == (1, 2, 3) and all(type(v) is int for v in space["ci"].values)
    assert [type(v) for v in space["mixed"].values] == [int, float, bool, str]
    _run_and_check(space, config(generations=3, pool_size=10), 1, 3)
    engine = gt.Engine(space, config(), seed=1)
    for c in engine.ask():
        assert type(c.params["r"]) is int
        assert type(c.params["f"]) is float
        assert type(c.params["ci"]) is int
        assert type(c.params["cs"]) is str
        assert type(c.params["lit"]) is float and c.params["lit"] == 2.5


def test_choice_values_of_every_type_come_back_as_given() -> None:
    values = [1, 1.0, True, "1", False, 0, "", "ünïcode", -2.5, 2**62]
    engine_values = _values_of({"c": ss.choice(values)}, "c", generations=10)
    assert {(type(v), v) for v in engine_values} == {(type(v), v) for v in values}


def test_literal_is_constant() -> None:
    for value in (3, 2.5, True, "constant", ""):
        got = _values_of({"lit": ss.literal(value), "x": ss.range(0.0, 1.0, None)}, "lit", generations=3)
        assert got and all(type(v) is type(value) and v == value for v in got)


def test_log_sampling_is_geometric_with_both_ends() -> None:
    p = ss.log_sampling(1e-3, 1, 4)
    assert isinstance(p, gt.search_spaces.ChoiceParam)
    assert p.values == pytest.approx((0.001, 0.01, 0.1, 1.0))
    assert p.values[0] == 1e-3 and p.values[-1] == 1.0
    p = ss.log_sampling(2, 512)
    assert len(p.values) == 10
    ratios = [b / a for a, b in zip(p.values, p.values[1:])]
    assert ratios == pytest.approx([ratios[0]] * 9)
    assert p.values[0] == 2 and p.values[-1] == 512
    got = _values_of({"lr": ss.log_sampling(1e-4, 1e-1, 7)}, "lr", generations=10)
    assert {(type(v), v) for v in got} <= {(float, v) for v in ss.log_sampling(1e-4, 1e-1, 7).values}


@given(start=st.floats(1e-9, 1e6), ratio=st.floats(1.01, 1e9), total=st.integers(2, 64))
def test_log_sampling_property(start: float, ratio: float, total: int) -> None:
    end = start * ratio
    assume(end > start and math.isfinite(end))
    p = ss.log_sampling(start, end, total)
    assert len(p.values) == total
    assert p.values[0] == pytest.approx(start) and p.values[-1] == pytest.approx(end)
    assert all(type(v) is float for v in p.values)
    assert all(a < b for a, b in zip(p.values, p.values[1:]))
    logs = np.diff(np.log(p.values))
    assert np.allclose(logs, logs[0], rtol=1e-6, atol=1e-9)


# ----- seed ranges --------------------------------------------------------------------------------


@st.composite
def seeded_ranges(draw: st.DrawFn) -> tuple[Any, float, float]:
    kind = draw(st.sampled_from(["int", "wide int", "float", "continuous"]))
    if kind in ("int", "wide int"):
        start = draw(st.integers(-1000, 1000) if kind == "int" else st.integers(-(2**63), 2**63 - 2001))
        end = start + draw(st.integers(1, 2000))
        step = draw(st.integers(1, 50))
        lo = draw(st.one_of(st.none(), st.integers(start, end)))
        hi = draw(st.one_of(st.none(), st.integers(start, end)))
        assume(lo is not None or hi is not None)
        eff_lo = start if lo is None else lo
        eff_hi = end if hi is None else hi
        assume(eff_lo <= eff_hi)
        first = start + -((start - eff_lo) // step) * step  # the first grid value >= eff_lo
        assume(first <= eff_hi and first <= end)
        return ss.range(start, end, step, seed_low=lo, seed_high=hi), eff_lo, eff_hi
    start = draw(st.floats(-100, 100))
    end = start + draw(st.floats(0.5, 100))
    fstep = draw(st.floats(0.01, 5)) if kind == "float" else None
    flo = draw(st.one_of(st.none(), st.integers(0, 1000).map(lambda k: start + (end - start) * k / 1000)))
    fhi = draw(st.one_of(st.none(), st.integers(0, 1000).map(lambda k: start + (end - start) * k / 1000)))
    assume(flo is not None or fhi is not None)
    f_lo = start if flo is None else flo
    f_hi = end if fhi is None else fhi
    assume(f_lo <= f_hi)
    if fstep is not None:
        ffirst = start + math.ceil((f_lo - start) / fstep - 1e-9) * fstep
        assume(ffirst <= f_hi - 1e-6 * fstep)
        assume(start + math.floor((end - start) / fstep + 1e-9) * fstep >= f_lo + 1e-6 * fstep)
    return ss.range(start, end, fstep, seed_low=flo, seed_high=fhi), f_lo, f_hi


@given(spec=seeded_ranges(), seed=st.integers(0, 2**32))
def test_seed_range_bounds_generation_zero_with_threshold_one(spec: tuple[Any, float, float], seed: int) -> None:
    param, lo, hi = spec
    space = {"x": param, "u": ss.range(0.0, 1.0, None)}  # "u" keeps candidates unique
    engine = gt.Engine(space, config(pool_size=32, init_with_true_random_threshold=1.0), seed=seed)
    exact = type(param.step) is int
    tol = 0 if exact else 1e-8 * max(1.0, abs(lo), abs(hi), param.step or 0.0)
    for c in engine.ask():
        check_candidate(space, c.params)
        v = c.params["x"]
        assert lo - tol <= v <= hi + tol, f"{v} outside the seed range [{lo}, {hi}]"


B62 = 2**62


@pytest.mark.parametrize(
    ("start", "end", "step", "seed_low", "seed_high"),
    [
        (B62, B62 + 10, 1, B62 + 5, None),
        (B62, B62 + 10, 1, B62 + 3, B62 + 6),
        (B62, B62 + 10, 1, None, B62 + 2),
        (-(2**63), -(2**63) + 100, 7, -(2**63) + 50, -(2**63) + 80),
        (2**63 - 101, 2**63 - 1, 3, 2**63 - 20, None),
        (-18014398509479343, -18014398509479342, 1, -18014398509479342, None),  # once gave end + 1
    ],
)
def test_int_seed_ranges_are_exact_up_to_64_bits(start: int, end: int, step: int, seed_low: int | None, seed_high: int | None) -> None:
    lo = start if seed_low is None else seed_low
    hi = end if seed_high is None else seed_high
    expected = {v for v in range(start, end + 1, step) if lo <= v <= hi}
    space = {"x": ss.range(start, end, step, seed_low=seed_low, seed_high=seed_high), "u": ss.range(0.0, 1.0, None)}
    engine = gt.Engine(space, config(pool_size=200, init_with_true_random_threshold=1.0), seed=2)
    got = {c.params["x"] for c in engine.ask()}
    assert got == expected, f"generation 0 gave offsets {sorted(v - start for v in got)}, expected {sorted(v - start for v in expected)}"


def test_seed_range_with_threshold_zero_spreads_over_the_full_range() -> None:
    space = {"x": ss.range(0, 1000, seed_low=0, seed_high=10), "u": ss.range(0.0, 1.0, None)}
    engine = gt.Engine(space, config(pool_size=400, init_with_true_random_threshold=0.0), seed=3)
    xs = [c.params["x"] for c in engine.ask()]
    outside = sum(not 0 <= v <= 10 for v in xs)
    assert outside >= 0.9 * len(xs), f"only {outside}/{len(xs)} values outside the seed range"
    assert max(xs) > 900


def test_seed_range_share_follows_the_threshold() -> None:
    n, share = 2000, 0.9
    space = {"x": ss.range(0, 1000, seed_low=0, seed_high=10), "u": ss.range(0.0, 1.0, None)}
    engine = gt.Engine(space, config(pool_size=n, init_with_true_random_threshold=share), seed=11)
    inside = sum(0 <= c.params["x"] <= 10 for c in engine.ask())
    p = share + (1 - share) * 11 / 1001
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(inside - n * p) <= 5 * sigma, f"{inside} of {n} in the seed range, expected about {n * p:.0f}"


def test_seed_range_applies_to_generation_zero_only() -> None:
    space = {"x": ss.range(0, 1000, seed_low=0, seed_high=10), "u": ss.range(0.0, 1.0, None)}
    engine = gt.Engine(space, config(generations=6, pool_size=40, init_with_true_random_threshold=1.0), seed=5)
    gens = run_generations(engine, lambda cands: [-c.params["x"] for c in cands])  # larger x is better
    assert all(c.params["x"] <= 10 for c in gens[0])
    assert max(c.params["x"] for c in gens[-1]) > 10


# ----- knockout -----------------------------------------------------------------------------------


def _absent_count(space: Any, key: str, n: int, seed: int) -> int:
    engine = gt.Engine(space, config(pool_size=n), seed=seed)
    cands = engine.ask()
    assert len(cands) == n
    for c in cands:
        assert c.params.get(key, "missing") is not None, "a knocked-out key must be absent, not None"
    return sum(key not in c.params for c in cands)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize(
    "make",
    [
        lambda p: ss.range(0.0, 1.0, None, knockout_prob=p),
        lambda p: ss.range(0, 100, 1, knockout_prob=p),
        lambda p: ss.choice(["a", "b", "c"], knockout_prob=p),
        lambda p: ss.literal("-O3", knockout_prob=p),
        lambda p: ss.log_sampling(1e-3, 1.0, knockout_prob=p),
    ],
    ids=["continuous", "int", "choice", "literal", "log"],
)
def test_knockout_rate_in_generation_zero(p: float, make: Any) -> None:
    n = 2000
    space = {"k": make(p), "u": ss.range(0.0, 1.0, None)}
    absent = _absent_count(space, "k", n, seed=17)
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(absent - n * p) <= 4 * sigma, f"{absent} of {n} absent, expected about {n * p:.0f}"


@given(p=st.floats(0.02, 0.98), seed=st.integers(0, 2**32))
def test_knockout_rate_property(p: float, seed: int) -> None:
    n = 1000
    absent = _absent_count({"k": ss.range(0.0, 1.0, None, knockout_prob=p), "u": ss.range(0.0, 1.0, None)}, "k", n, seed)
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(absent - n * p) <= 5 * sigma, f"{absent} of {n} absent, expected about {n * p:.0f}"


@pytest.mark.parametrize("zero", [0, 0.0, None])
def test_knockout_zero_or_none_is_never_absent(zero: float | None) -> None:
    space = {
        "k": ss.choice([1, 2, 3], knockout_prob=zero),
        "lit": ss.literal("x", knockout_prob=zero),
        "u": ss.range(0.0, 1.0, None),
    }
    engine = gt.Engine(space, config(generations=10, pool_size=50, mutate_rate=0.9), seed=2)
    for cands in run_generations(engine, random_scorer(2)):
        for c in cands:
            assert "k" in c.params and "lit" in c.params, c.params


def test_knockout_one_is_always_absent_in_generation_zero() -> None:
    space = {"k": ss.range(0, 10, knockout_prob=1.0), "u": ss.range(0.0, 1.0, None)}
    assert _absent_count(space, "k", 500, seed=1) == 500


def test_nested_dict_disappears_when_all_its_leaves_are_knocked_out() -> None:
    n, p = 2000, 0.5
    space = {
        "outer": {"a": ss.range(0.0, 1.0, None, knockout_prob=p), "inner": {"b": ss.literal(1, knockout_prob=p)}},
        "u": ss.range(0.0, 1.0, None),
    }
    engine = gt.Engine(space, config(pool_size=n), seed=9)
    cands = engine.ask()
    for c in cands:
        check_candidate(space, c.params)  # a present nested dict is never empty
    absent = sum("outer" not in c.params for c in cands)
    q = p * p
    assert abs(absent - n * q) <= 4 * math.sqrt(n * q * (1 - q))
    inner_absent = sum("outer" in c.params and "inner" not in c.params["outer"] for c in cands)
    assert inner_absent > 0
    assert all(c.params["outer"]["inner"] == {"b": 1} for c in cands if "outer" in c.params and "inner" in c.params["outer"])


def test_top_level_dict_stays_a_dict_when_everything_is_knocked_out() -> None:
    space = {"a": ss.literal(1, knockout_prob=1.0), "n": {"b": ss.literal("x", knockout_prob=1.0)}}
    with pytest.warns(gt.SearchSpaceExhaustedWarning):
        engine = gt.Engine(space, config(pool_size=6), seed=0)
        first = engine.ask()
    assert first[0].params == {} and type(first[0].params) is dict
    assert engine.space_size == 4
    assert sorted(key_of(c.params) for c in first) == sorted(
        key_of(p) for p in ({}, {"a": 1}, {"n": {"b": "x"}}, {"a": 1, "n": {"b": "x"}})
    )


def test_list_space_element_fully_knocked_out_is_an_empty_dict() -> None:
    space = [{"a": ss.literal(1, knockout_prob=1.0)}, {"b": ss.range(0.0, 1.0, None)}]
    engine = gt.Engine(space, config(pool_size=20), seed=0)
    for c in engine.ask():
        assert type(c.params) is list and len(c.params) == 2
        assert c.params[0] == {} and type(c.params[0]) is dict
        assert set(c.params[1]) == {"b"}


# ----- nested shapes and keys ---------------------------------------------------------------------

ODD_KEYS = ["a.b", "with space", "", "ünïcødé", "quo'te", 'dq"', "back\\slash", "[0]", "a/b", "\n", "🙂", "None", "0"]


def test_nested_dicts_keep_shape_order_and_odd_keys() -> None:
    space: dict[str, Any] = {k: ss.range(0, 5) for k in ODD_KEYS}
    space["deep"] = {"l1": {"l2": {"l3": {"l4": {"a.b": ss.choice(["x", "y"]), "": ss.literal(1)}}}}}
    space["with space"] = {"": {"'": ss.range(0.0, 1.0, None)}}
    engine = gt.Engine(space, config(generations=3, pool_size=10), seed=4)

    def shape(node: Any) -> Any:
        if isinstance(node, dict):
            return [(k, shape(v)) for k, v in node.items()]
        return None

    for cands in run_generations(engine, random_scorer(4)):
        for c in cands:
            check_candidate(space, c.params)
            assert shape(c.params) == shape(space)  # same keys, same order, same nesting
    names = engine.parameter_names
    assert "search_space['a.b']" in names
    assert "search_space['with space']['']['\\'']" in names or "search_space['with space'][''][\"'\"]" in names
    assert "search_space['deep']['l1']['l2']['l3']['l4']['a.b']" in names
    assert len(names) == len(set(names)) == len(ODD_KEYS) - 1 + 3


def test_list_of_dict_spaces_gives_a_list_in_order() -> None:
    space = [
        {"config_idx": ss.range(0, 4)},
        {"flag": ss.choice(["-O1", "-O2"]), "n": {"x": ss.range(0.0, 1.0, None)}},
        {"lit": ss.literal("z")},
    ]
    engine = gt.Engine(space, config(generations=3, pool_size=10), seed=8)
    for cands in run_generations(engine, random_scorer(8)):
        for c in cands:
            assert type(c.params) is list and len(c.params) == 3
            check_candidate(space, c.params)
            assert c.params[2] == {"lit": "z"}
    assert engine.parameter_names == [
        "search_space[0]['config_idx']",
        "search_space[1]['flag']",
        "search_space[1]['n']['x']",
        "search_space[2]['lit']",
    ]


# ----- errors -------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")

BAD_PARAMETERS = [
    pytest.param(lambda: ss.range(5, 5), r"(?i)end|start", id="end==start"),
    pytest.param(lambda: ss.range(5, 1), r"(?i)end|start", id="end<start"),
    pytest.param(lambda: ss.range(0.5, -0.5, None), r"(?i)end|start", id="float end<start"),
    pytest.param(lambda: ss.range(0, 10, 0), r"(?i)step", id="step=0"),
    pytest.param(lambda: ss.range(0.0, 1.0, 0.0), r"(?i)step", id="step=0.0"),
    pytest.param(lambda: ss.range(0, 10, -1), r"(?i)step", id="step<0"),
    pytest.param(lambda: ss.range(0, 10, seed_low=-1, seed_high=5), r"(?i)seed", id="seed_low<start"),
    pytest.param(lambda: ss.range(0, 10, seed_low=2, seed_high=11), r"(?i)seed", id="seed_high>end"),
    pytest.param(lambda: ss.range(0, 10, seed_low=6, seed_high=4), r"(?i)seed", id="seed_low>seed_high"),
    pytest.param(lambda: ss.range(0, 10, seed_low=11), r"(?i)seed", id="seed_low>end"),
    pytest.param(lambda: ss.range(0, 10, seed_high=-1), r"(?i)seed", id="seed_high<start"),
    pytest.param(lambda: ss.range(0, 10, 4, seed_low=1, seed_high=3), r"(?i)seed", id="seed-range-off-grid"),
    pytest.param(lambda: ss.range(B62, B62 + 10, seed_low=B62 - 1), r"(?i)seed", id="seed_low<start-2^62"),
    pytest.param(lambda: ss.range(B62, B62 + 10, seed_high=B62 + 11), r"(?i)seed", id="seed_high>end-2^62"),
    pytest.param(lambda: ss.range(B62, B62 + 10, seed_low=B62 + 6, seed_high=B62 + 5), r"(?i)seed", id="seed_low>seed_high-2^62"),
    pytest.param(lambda: ss.range(NAN, 1), r"(?i)finite|nan|start", id="start=nan"),
    pytest.param(lambda: ss.range(0, INF), r"(?i)finite|inf|end", id="end=inf"),
    pytest.param(lambda: ss.range(-INF, 0.0, None), r"(?i)finite|inf|start", id="start=-inf"),
    pytest.param(lambda: ss.range(0.0, 1.0, NAN), r"(?i)finite|nan|step", id="step=nan"),
    pytest.param(lambda: ss.range(0.0, 1.0, INF), r"(?i)finite|inf|step", id="step=inf"),
    pytest.param(lambda: ss.range(0.0, 1.0, None, seed_low=NAN), r"(?i)finite|nan|seed", id="seed_low=nan"),
    pytest.param(lambda: ss.range("0", 1), r"(?i)number|start", id="start=str"),
    pytest.param(lambda: ss.range(True, 5), r"(?i)number|start", id="start=bool"),
    pytest.param(lambda: ss.range(None, 5), r"(?i)number|start", id="start=None"),
    pytest.param(lambda: ss.range(0, 2**70), r"(?i)64|end", id="end>int64"),
    pytest.param(lambda: ss.range(0, 2**60), r"(?i)values|2\^52", id="too-many-values"),
    pytest.param(lambda: ss.range(-(2**63), 2**63 - 1), r"(?i)values|2\^52", id="full-int64-range"),
    pytest.param(lambda: ss.choice([]), r"(?i)at least one|empty", id="empty-choice"),
    pytest.param(lambda: ss.choice(()), r"(?i)at least one|empty", id="empty-tuple-choice"),
    pytest.param(lambda: ss.choice(np.array([])), r"(?i)at least one|empty", id="empty-array-choice"),
    pytest.param(lambda: ss.choice([1, 1]), r"(?i)distinct|twice", id="dup-int"),
    pytest.param(lambda: ss.choice(["a", "b", "a"]), r"(?i)distinct|twice", id="dup-str"),
    pytest.param(lambda: ss.choice([0.5, 0.5]), r"(?i)distinct|twice", id="dup-float"),
    pytest.param(lambda: ss.choice([True, True]), r"(?i)distinct|twice", id="dup-bool"),
    pytest.param(lambda: ss.choice([None]), r"(?i)bool, int, float or str|None", id="choice-None"),
    pytest.param(lambda: ss.choice([1, None]), r"(?i)bool, int, float or str|None", id="choice-1-None"),
    pytest.param(lambda: ss.choice([[1]]), r"(?i)bool, int, float or str|list", id="choice-list"),
    pytest.param(lambda: ss.choice([{}]), r"(?i)bool, int, float or str|dict", id="choice-dict"),
    pytest.param(lambda: ss.choice([b"x"]), r"(?i)bool, int, float or str|bytes", id="choice-bytes"),
    pytest.param(lambda: ss.choice([1.0, NAN]), r"(?i)finite|nan", id="choice-nan"),
    pytest.param(lambda: ss.choice([INF]), r"(?i)finite|inf", id="choice-inf"),
    pytest.param(lambda: ss.choice("abc"), r"(?i)list|tuple|array", id="choice-of-str"),
    pytest.param(lambda: ss.choice({1, 2}), r"(?i)list|tuple|array", id="choice-of-set"),
    pytest.param(lambda: ss.choice(5), r"(?i)list|tuple|array", id="choice-of-int"),
    pytest.param(lambda: ss.literal(None), r"(?i)bool, int, float or str|None", id="literal-None"),
    pytest.param(lambda: ss.literal([1]), r"(?i)bool, int, float or str|list", id="literal-list"),
    pytest.param(lambda: ss.literal({"a": 1}), r"(?i)bool, int, float or str|dict", id="literal-dict"),
    pytest.param(lambda: ss.literal(NAN), r"(?i)finite|nan", id="literal-nan"),
    pytest.param(lambda: ss.literal(-INF), r"(?i)finite|inf", id="literal-inf"),
    pytest.param(lambda: ss.literal(2**64), r"(?i)64", id="literal-int>64bit"),
    pytest.param(lambda: ss.range(0, 1, knockout_prob=-0.1), r"(?i)knockout", id="ko<0"),
    pytest.param(lambda: ss.range(0, 1, knockout_prob=1.5), r"(?i)knockout", id="ko>1"),
    pytest.param(lambda: ss.range(0, 1, knockout_prob=NAN), r"(?i)knockout", id="ko=nan"),
    pytest.param(lambda: ss.choice([1, 2], knockout_prob=INF), r"(?i)knockout", id="choice-ko=inf"),
    pytest.param(lambda: ss.choice([1, 2], knockout_prob=2), r"(?i)knockout", id="choice-ko=2"),
    pytest.param(lambda: ss.literal(1, knockout_prob=-1), r"(?i)knockout", id="literal-ko=-1"),
    pytest.param(lambda: ss.literal(1, knockout_prob="0.5"), r"(?i)knockout", id="literal-ko=str"),
    pytest.param(lambda: ss.log_sampling(1e-3, 1, knockout_prob=1.01), r"(?i)knockout", id="log-ko>1"),
    pytest.param(lambda: ss.log_sampling(0, 1), r"(?i)start", id="log-start=0"),
    pytest.param(lambda: ss.log_sampling(-1, 1), r"(?i)start", id="log-start<0"),
    pytest.param(lambda: ss.log_sampling(2, 1), r"(?i)start|end", id="log-end<start"),
    pytest.param(lambda: ss.log_sampling(1, 1), r"(?i)start|end", id="log-end=start"),
    pytest.param(lambda: ss.log_sampling(1, INF), r"(?i)finite|inf|end", id="log-end=inf"),
    pytest.param(lambda: ss.log_sampling(None, 1), r"(?i)start|number", id="log-start=None"),
    pytest.param(lambda: ss.log_sampling(1, None), r"(?i)end|number", id="log-end=None"),
    pytest.param(lambda: ss.log_sampling(1, 10, 1), r"(?i)total", id="log-total=1"),
    pytest.param(lambda: ss.log_sampling(1, 10, 2.5), r"(?i)total", id="log-total=float"),
    pytest.param(lambda: ss.log_sampling(1, 10, 10**12), r"(?i)total", id="log-total-absurd"),
]


@pytest.mark.parametrize(("make", "match"), BAD_PARAMETERS)
def test_bad_parameters_raise_search_space_error(make: Any, match: str) -> None:
    with pytest.raises(gt.SearchSpaceError, match=match) as info:
        make()
    assert isinstance(info.value, ValueError)


DIRECT = gt.search_spaces


@pytest.mark.parametrize(
    ("space", "path"),
    [
        ({"a": {"b": DIRECT.RangeParam(start=5, end=1)}}, "['a']['b']"),
        ({"a": {"b": DIRECT.RangeParam(start=0, end=5, step=0)}}, "['a']['b']"),
        ({"a": {"b": DIRECT.RangeParam(start=0, end=10, seed_low=20)}}, "['a']['b']"),
        ({"x": DIRECT.ChoiceParam(values=())}, "['x']"),
        ({"x": {"y": DIRECT.ChoiceParam(values=(1, 1))}}, "['x']['y']"),
        ({"a": {"b": DIRECT.LiteralParam(value=1, knockout_prob=2.0)}}, "['a']['b']"),
        ({"a.b": {"with space": DIRECT.RangeParam(start=1, end=0)}}, "['a.b']['with space']"),
        ([{"ok": ss.range(0, 1)}, {"bad": {"deep": DIRECT.RangeParam(start=1, end=0)}}], "[1]['bad']['deep']"),
        ({"a": {"b": 5}}, "['a']['b']"),
        ({"a": {"b": {"c": None}}}, "['a']['b']['c']"),
        ({"ok": ss.range(0, 1), "a": "a string"}, "['a']"),
        ({"a": {"b": {"type": "range", "start": 0, "end": 5}}}, "['a']['b']['type']"),
        ({"a": [ss.range(0, 1)]}, "['a']"),
        ({"a": {1: ss.range(0, 1)}}, "['a']"),
        ({"a": {None: ss.range(0, 1)}}, "['a']"),
        ([{"a": ss.range(0, 1)}, 5], "[1]"),
        ([{"a": ss.range(0, 1)}, [{"b": ss.range(0, 1)}]], "[1]"),
    ],
)
def test_bad_spaces_name_the_parameter_path(space: Any, path: str) -> None:
    with pytest.raises(gt.SearchSpaceError) as info:
        gt.Engine(space, config())
    assert path in str(info.value), f"{path!r} not in {str(info.value)!r}"


@pytest.mark.parametrize(
    "space",
    [{}, [], (), 5, "space", None, ss.range(0, 1), [5], {"a": {}}, {"a": {"b": {}}}, [{}], [{"a": {}}]],
    ids=repr,
)
def test_spaces_without_parameters_or_of_the_wrong_type_are_rejected(space: Any) -> None:
    with pytest.raises(gt.SearchSpaceError):
        gt.Engine(space, config())


@pytest.mark.parametrize(
    "param",
    [
        DIRECT.LiteralParam(value=2**63),
        DIRECT.LiteralParam(value=-(2**63) - 1),
        DIRECT.ChoiceParam(values=(1, 2**63)),
        DIRECT.ChoiceParam(values=(2**64 + 5,)),
    ],
    ids=["literal 2^63", "literal -2^63-1", "choice with 2^63", "choice with 2^64+5"],
)
def test_directly_built_parameters_with_ints_beyond_64_bits_are_rejected_or_exact(param: Any) -> None:
    """`ss.choice`/`ss.literal` refuse ints beyond 64 bits; a model built directly must not
    silently turn them into (different) floats either."""
    try:
        engine = gt.Engine({"p": param, "u": ss.range(0.0, 1.0, None)}, config(pool_size=10), seed=1)
    except gt.SearchSpaceError:
        return
    for c in engine.ask():
        check_candidate({"p": param, "u": ss.range(0.0, 1.0, None)}, c.params)


# ----- garbage in: a valid engine or a ValueError/TypeError, nothing else ---------------------------

GARBAGE_NUMBERS = st.one_of(
    st.integers(-20, 20),
    st.integers(),
    st.integers(-(2**64), 2**64),
    st.floats(),
    st.floats(-20, 20),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.sampled_from([np.int64(3), np.float32(0.5), np.float64("nan"), np.bool_(True), np.uint64(2**64 - 1)]),
    st.lists(st.integers(), max_size=2),
)
GARBAGE_OBJECTS = st.one_of(
    GARBAGE_NUMBERS,
    st.binary(max_size=3),
    st.text(),
    st.builds(object),
    st.complex_numbers(),
    st.tuples(st.integers()),
    st.sets(st.integers(), max_size=2),
)


def _allowed(err: BaseException) -> None:
    assert type(err) is not BaseException
    assert isinstance(err, ValueError | TypeError) and not isinstance(err, gt.InternalError), (
        f"expected a ValueError or TypeError, got {type(err).__module__}.{type(err).__qualname__}: {err}"
    )


def _engine_or_error(space: Any, seed: int) -> None:
    try:
        with quietly_exhausting():
            engine = gt.Engine(space, config(generations=3, pool_size=8), seed=seed)
    except BaseException as err:  # noqa: BLE001 - PanicException is a BaseException
        _allowed(err)
        return
    try:
        with quietly_exhausting():
            gens = run_generations(engine, random_scorer(seed), 3)
    except BaseException as err:  # noqa: BLE001
        raise AssertionError(f"a valid engine failed while running: {type(err).__qualname__}: {err}") from err
    for cands in gens:
        for c in cands:
            check_candidate(space, c.params)


def _call(make: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return make(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001
        _allowed(err)
        return None


@given(
    kwargs=st.fixed_dictionaries(
        {},
        optional={
            "start": GARBAGE_NUMBERS,
            "end": GARBAGE_NUMBERS,
            "step": GARBAGE_NUMBERS,
            "knockout_prob": GARBAGE_NUMBERS,
            "seed_low": GARBAGE_NUMBERS,
            "seed_high": GARBAGE_NUMBERS,
            "bogus": GARBAGE_NUMBERS,
        },
    ),
    seed=st.integers(0, 2**32),
)
def test_garbage_range_kwargs(kwargs: dict[str, Any], seed: int) -> None:
    param = _call(ss.range, **kwargs)
    if param is not None:
        _engine_or_error({"x": param}, seed)
    direct = _call(ss.RangeParam, **kwargs)
    if direct is not None:
        _engine_or_error({"x": {"y": direct}}, seed)


@given(
    values=st.one_of(st.lists(GARBAGE_OBJECTS, max_size=5), GARBAGE_OBJECTS, st.lists(SCALARS, max_size=5)),
    knockout=GARBAGE_NUMBERS,
    literal=GARBAGE_OBJECTS,
    seed=st.integers(0, 2**32),
)
def test_garbage_choice_and_literal_arguments(values: Any, knockout: Any, literal: Any, seed: int) -> None:
    for param in (
        _call(ss.choice, values, knockout_prob=knockout),
        _call(ss.choice, values),
        _call(ss.literal, literal, knockout_prob=knockout),
        _call(ss.literal, literal),
        _call(DIRECT.ChoiceParam, values=values, knockout_prob=knockout),
        _call(DIRECT.LiteralParam, value=literal),
    ):
        if param is not None:
            _engine_or_error({"p": param, "u": ss.range(0.0, 1.0, None)}, seed)


@given(
    start=GARBAGE_NUMBERS,
    end=GARBAGE_NUMBERS,
    total=st.one_of(GARBAGE_NUMBERS.filter(lambda t: not isinstance(t, int) or t < 10**4), st.integers(2**40, 2**70)),
    knockout=GARBAGE_NUMBERS,
    seed=st.integers(0, 2**32),
)
def test_garbage_log_sampling_arguments(start: Any, end: Any, total: Any, knockout: Any, seed: int) -> None:
    param = _call(ss.log_sampling, start, end, total, knockout_prob=knockout)
    if param is not None:
        _engine_or_error({"p": param}, seed)


GARBAGE_KEYS = st.one_of(st.text(max_size=4), st.integers(), st.none(), st.booleans(), st.tuples(st.integers()), st.floats())
GARBAGE_LEAVES = st.one_of(GARBAGE_OBJECTS, PARAMS, st.just(ss.range(0.0, 1.0, None)))
GARBAGE_TREES = st.recursive(
    GARBAGE_LEAVES,
    lambda children: st.one_of(
        st.dictionaries(GARBAGE_KEYS, children, max_size=3),
        st.lists(children, max_size=3),
        st.tuples(children),
    ),
    max_leaves=10,
)


@given(space=GARBAGE_TREES, seed=st.integers(0, 2**32))
def test_garbage_space_structures(space: Any, seed: int) -> None:
    _engine_or_error(space, seed)


@pytest.mark.parametrize(
    "param",
    [
        lambda: ss.range(-1e308, 1e308, None),
        lambda: ss.range(-1.7e308, 1.7e308, None, seed_low=-1e308, seed_high=1e308),
        lambda: ss.range(0.0, 1.7976931348623157e308, None),
        lambda: ss.range(-(2**63), 2**63 - 1, None),
        lambda: ss.range(-1e308, 1e308, 1e307),
    ],
    ids=["+-1e308", "+-1.7e308 seeded", "0..max", "int64 continuous", "+-1e308 step 1e307"],
)
def test_extreme_float_ranges_are_sampled_in_bounds_or_rejected(param: Any) -> None:
    """Ranges whose width overflows a float must give an engine that stays in bounds, or a
    SearchSpaceError; never an internal error."""
    try:
        space = {"x": param()}
    except gt.SearchSpaceError:
        return
    _engine_or_error(space, seed=3)


def test_no_exhaustion_warning_for_big_spaces() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", gt.SearchSpaceExhaustedWarning)
        engine = gt.Engine({"x": ss.range(0, 10**6), "y": ss.choice(list("abcdef"))}, config(generations=4, pool_size=20), seed=1)
        run_generations(engine, random_scorer(1))
    assert not engine.exhausted and engine.done
