"""SearchConfiguration: CompileIQ's fields, defaults, derived pool/cull sizes and checks (with
genetune's fixes), and genetune's own fields."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import genetune as gt
import genetune.search_spaces as ss
from engine_support import random_scorer, run_generations

SPACE = {"x": ss.range(0.0, 1.0, None), "n": ss.range(0, 50)}


def _names_field(err: BaseException, field: str) -> bool:
    """Whether the error names ``field`` in its location or its own message (not only in the
    echoed input)."""
    norm = field.lower().replace("_", " ")
    if isinstance(err, ValidationError):
        for e in err.errors():
            loc = " ".join(str(p) for p in e["loc"]).lower().replace("_", " ")
            if norm in loc or norm in str(e["msg"]).lower().replace("_", " "):
                return True
        return False
    return norm in str(err).lower().replace("_", " ")


def test_generations_is_required() -> None:
    with pytest.raises(ValueError) as info:
        gt.SearchConfiguration()  # type: ignore[call-arg]
    assert _names_field(info.value, "generations")


@pytest.mark.parametrize("bad", [0, -1, 2**32])
def test_generations_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError) as info:
        gt.SearchConfiguration(generations=bad)
    assert _names_field(info.value, "generations")


def test_defaults() -> None:
    cfg = gt.SearchConfiguration(generations=5)
    assert cfg.generations == 5
    assert cfg.problem_type == "min"
    assert cfg.normalize is False
    assert cfg.num_objectives == 1
    assert cfg.pool_size == 32 and cfg.cull_size == 24
    assert cfg.mutate_rate == 0.5  # CompileIQ's 0.25 measured worse in benches/ (README)
    assert cfg.objective_weights is None
    assert cfg.init_with_true_random_threshold == 0.9
    assert cfg.enable_large_fail_pool is True
    assert cfg.seed is None
    assert cfg.engine == "auto" and cfg.algorithm == "ga"
    assert cfg.gene_mutate_rate is None and cfg.oversampling == 24
    assert cfg.directions == ["min"]


@pytest.mark.parametrize(
    ("m", "pool", "cull"),
    [(1, 32, 24), (2, 32, 24), (3, 32, 24), (4, 36, 26), (5, 44, 32), (10, 84, 62), (20, 164, 122)],
)
def test_derived_pool_and_cull_sizes(m: int, pool: int, cull: int) -> None:
    cfg = gt.SearchConfiguration(generations=1, num_objectives=m)
    assert (cfg.pool_size, cfg.cull_size) == (pool, cull)


@pytest.mark.parametrize(
    ("m", "pool", "cull"),
    [(1, 6, 2), (1, 8, 4), (1, 10, 6), (1, 12, 8), (1, 16, 12), (2, 8, 2), (2, 10, 4), (2, 12, 6), (2, 16, 10), (5, 16, 4)],
)
def test_derived_cull_size_for_an_explicit_pool(m: int, pool: int, cull: int) -> None:
    cfg = gt.SearchConfiguration(generations=1, num_objectives=m, pool_size=pool)
    assert (cfg.pool_size, cfg.cull_size) == (pool, cull)


def test_odd_explicit_pool_size_is_allowed() -> None:
    cfg = gt.SearchConfiguration(generations=1, pool_size=7)
    assert cfg.pool_size == 7 and cfg.cull_size % 2 == 0 and cfg.cull_size < 7


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"pool_size": 10, "cull_size": 10}, "cull_size"),
        ({"pool_size": 10, "cull_size": 12}, "cull_size"),
        ({"pool_size": 10, "cull_size": 8}, "survivors"),  # 2 survivors < 3
        ({"pool_size": 6, "num_objectives": 2}, "pool_size"),
        ({"pool_size": 12, "num_objectives": 5}, "pool_size"),
        ({"pool_size": 5}, "pool_size"),
        ({"cull_size": 3}, "cull_size"),
        ({"cull_size": 0}, "cull_size"),
        ({"mutate_rate": 0}, "mutate_rate"),
        ({"mutate_rate": 1}, "mutate_rate"),
        ({"mutate_rate": -0.1}, "mutate_rate"),
        ({"mutate_rate": float("nan")}, "mutate_rate"),
        ({"problem_type": "MAX"}, "problem_type"),
        ({"problem_type": "Min"}, "problem_type"),
        ({"problem_type": "maximize"}, "problem_type"),
        ({"foo": 1}, "foo"),
        ({"seed_value": 3}, "seed_value"),
        ({"num_objectives": 0}, "num_objectives"),
        ({"num_objectives": 2, "objective_weights": [1.0]}, "objective_weights"),
        ({"num_objectives": 2, "objective_weights": [0.5, 0.4]}, "objective_weights"),
        ({"num_objectives": 2, "objective_weights": [0.5, 0.6]}, "objective_weights"),
        ({"num_objectives": 2, "objective_weights": [1.5, -0.5]}, "objective_weights"),
        ({"num_objectives": 2, "objective_weights": [float("nan"), 1.0]}, "objective_weights"),
        ({"objective_weights": [0.5]}, "objective_weights"),
        ({"num_objectives": 2, "engine": "ga"}, "engine"),
        ({"engine": "cmaes"}, "engine"),
        ({"num_objectives": 2, "directions": ["min"]}, "directions"),
        ({"directions": ["min", "max"]}, "directions"),
        ({"directions": ["MAX"]}, "directions"),
        ({"init_with_true_random_threshold": 1.5}, "init_with_true_random_threshold"),
        ({"init_with_true_random_threshold": -0.1}, "init_with_true_random_threshold"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"crossover_prob": 1.5}, "crossover_prob"),
        ({"crossover_eta": -1}, "crossover_eta"),
        ({"mutation_eta": float("inf")}, "mutation_eta"),
    ],
)
def test_invalid_configurations_are_rejected_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError) as info:
        gt.SearchConfiguration(generations=3, **fields)
    assert _names_field(info.value, field), f"{field!r} not named in: {info.value}"
    # The same dict given to Engine is rejected the same way.
    with pytest.raises(ValueError):
        gt.Engine(SPACE, {"generations": 3, **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"pool_size": 16, "num_objectives": 5},
        {"pool_size": 6},
        {"mutate_rate": 0.999},
        {"mutate_rate": 1e-9},
        {"problem_type": "max"},
        {"problem_type": gt.ProblemType.MAX},
        {"num_objectives": 10, "objective_weights": [0.1] * 10},
        {"num_objectives": 3, "objective_weights": [1 / 3] * 3},
        {"num_objectives": 2, "objective_weights": [0.7, 0.3]},
        {"num_objectives": 2, "engine": "nsga2"},
        {"num_objectives": 2, "engine": "nsga3"},
        {"engine": "nsga2"},
        {"num_objectives": 2, "directions": ["min", "max"]},
        {"init_with_true_random_threshold": 0.0},
        {"init_with_true_random_threshold": 1.0},
        {"seed": 0},
        {"seed": 2**64 - 1},
    ],
    ids=repr,
)
def test_valid_configurations_are_accepted_and_run(fields: dict[str, Any]) -> None:
    cfg = gt.SearchConfiguration(generations=2, **fields)
    engine = gt.Engine(SPACE, cfg, seed=1)
    run_generations(engine, random_scorer(1, cfg.num_objectives))
    assert engine.done and engine.generation == 2


@pytest.mark.slow  # only while it hangs: 30 s
@pytest.mark.parametrize("engine", ["nsga2", "nsga3"])
def test_nsga2_and_nsga3_with_one_objective_run_or_are_rejected(engine: str) -> None:
    """A one-objective NSGA configuration is either refused with a ValueError or runs to the end;
    run in a subprocess so that a hang fails the test instead of blocking the suite."""
    code = f"""
import genetune as gt, genetune.search_spaces as ss
try:
    cfg = gt.SearchConfiguration(generations=3, engine={engine!r})
    e = gt.Engine({{"x": ss.range(0.0, 1.0, None)}}, cfg, seed=1)
except ValueError as err:
    print("rejected:", err)
else:
    while not e.done:
        c = e.ask()
        e.tell([x.id for x in c], [x.params["x"] for x in c])
    print("ran", e.generation)
"""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"engine={engine!r} with one objective hangs (no answer within 30 s)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(("rejected:", "ran 3")), proc.stdout


def test_objective_weights_sum_uses_a_tolerance() -> None:
    assert sum([0.1] * 10) != 1.0  # CompileIQ's exact check rejects this
    cfg = gt.SearchConfiguration(generations=1, num_objectives=10, objective_weights=[0.1] * 10)
    assert cfg.objective_weights == [0.1] * 10
    with pytest.raises(ValueError):
        gt.SearchConfiguration(generations=1, num_objectives=10, objective_weights=[0.1] * 9 + [0.11])


def test_engine_defaults_by_number_of_objectives() -> None:
    cfg = gt.SearchConfiguration(generations=1)
    assert cfg.engine == "auto" and cfg.algorithm == "ga" and cfg.engine_config()["surrogate"] is True
    assert gt.SearchConfiguration(generations=1, engine="ga").engine_config()["surrogate"] is False
    two = gt.SearchConfiguration(generations=1, num_objectives=2)
    assert two.algorithm == "nsga2" and two.directions == ["min"] * 2
    for m in (3, 5):
        cfg = gt.SearchConfiguration(generations=1, num_objectives=m)
        assert cfg.engine == "auto" and cfg.algorithm == "nsga3"
        # NSGA-III's own operator defaults hold under 'auto' too.
        assert cfg.crossover_prob == 1.0 and cfg.crossover_eta == 30.0
        assert cfg.directions == ["min"] * m
    cfg = gt.SearchConfiguration(generations=1, num_objectives=3, problem_type="max")
    assert cfg.directions == ["max"] * 3


def test_configuration_is_frozen() -> None:
    cfg = gt.SearchConfiguration(generations=3)
    for name, value in (("generations", 5), ("pool_size", 64), ("mutate_rate", 0.5), ("engine", "nsga2")):
        with pytest.raises((TypeError, ValueError, AttributeError)):
            setattr(cfg, name, value)
    assert cfg.generations == 3 and cfg.pool_size == 32 and cfg.mutate_rate == 0.5 and cfg.engine == "auto"


def test_plain_dict_is_accepted_by_engine() -> None:
    engine = gt.Engine(SPACE, {"generations": 2, "pool_size": 10, "problem_type": "max"}, seed=3)
    assert isinstance(engine.config, gt.SearchConfiguration)
    assert engine.config.pool_size == 10 and engine.config.problem_type == "max"
    assert len(engine.ask()) == 10


@pytest.mark.parametrize("bad", [None, 5, "generations=3", [("generations", 3)]])
def test_engine_rejects_other_config_types(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        gt.Engine(SPACE, bad)


def test_config_seed_seeds_the_engine_and_the_argument_wins() -> None:
    assert gt.Engine(SPACE, {"generations": 1, "seed": 42}).seed == 42
    assert gt.Engine(SPACE, {"generations": 1, "seed": 42}, seed=7).seed == 7
    a = [c.params for c in gt.Engine(SPACE, {"generations": 1, "seed": 42}).ask()]
    b = [c.params for c in gt.Engine(SPACE, {"generations": 1}, seed=42).ask()]
    assert a == b


def test_disabling_large_fail_pool_warns_but_works() -> None:
    with pytest.warns(FutureWarning):
        cfg = gt.SearchConfiguration(generations=1, enable_large_fail_pool=False)
    assert cfg.enable_large_fail_pool is False


def test_derived_values_survive_a_dump_and_reload() -> None:
    cfg = gt.SearchConfiguration(generations=4, num_objectives=3, directions=["min", "max", "min"], engine="nsga2")
    again = gt.SearchConfiguration.model_validate(cfg.model_dump(mode="json"))
    assert again == cfg
    assert again.model_dump() == cfg.model_dump()


# ----- garbage: a valid configuration or a ValueError/TypeError -------------------------------------

ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.integers(),
    st.floats(),
    st.floats(-2, 2),
    st.text(max_size=6),
    st.sampled_from(["min", "max", "ga", "nsga2", "nsga3", "MAX"]),
    st.lists(st.floats(0, 1), max_size=4),
    st.lists(st.sampled_from(["min", "max", "x"]), max_size=4),
)


@given(
    fields=st.fixed_dictionaries(
        {"generations": st.one_of(st.integers(1, 3), ANY)},
        optional={
            "pool_size": st.one_of(st.integers(4, 60), ANY),
            "cull_size": st.one_of(st.integers(0, 60), ANY),
            "mutate_rate": ANY,
            "problem_type": ANY,
            "num_objectives": st.one_of(st.integers(1, 6), ANY),
            "normalize": ANY,
            "objective_weights": ANY,
            "init_with_true_random_threshold": ANY,
            "enable_large_fail_pool": ANY,
            "seed": ANY,
            "engine": ANY,
            "directions": ANY,
            "crossover_prob": ANY,
            "crossover_eta": st.one_of(st.floats(0, 1e6), ANY),
            "mutation_eta": st.one_of(st.floats(0, 1e6), ANY),
            "bogus": ANY,
        },
    )
)
def test_garbage_configurations(fields: dict[str, Any]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            cfg = gt.SearchConfiguration(**fields)
    except BaseException as err:  # noqa: BLE001 - PanicException is a BaseException
        assert isinstance(err, ValueError | TypeError), f"{type(err).__qualname__}: {err}"
        return
    if cfg.pool_size is not None and cfg.pool_size > 200 or cfg.num_objectives > 8:
        return  # keep the run small; the configuration itself was accepted
    if cfg.engine == "nsga3" and cfg.num_objectives == 1:
        return  # covered (in a subprocess, as it may hang) by test_nsga2_and_nsga3_with_one_objective_run_or_are_rejected
    assert cfg.pool_size is not None and cfg.cull_size is not None
    assert cfg.cull_size < cfg.pool_size and cfg.pool_size - cfg.cull_size >= 1 + 2 * cfg.num_objectives
    assert cfg.directions is not None and len(cfg.directions) == cfg.num_objectives
    if cfg.objective_weights is not None:
        assert len(cfg.objective_weights) == cfg.num_objectives
        assert math.isclose(math.fsum(cfg.objective_weights), 1.0, abs_tol=1e-6)
    try:
        engine = gt.Engine(SPACE, cfg)
    except BaseException as err:  # noqa: BLE001
        raise AssertionError(f"an accepted configuration failed in the engine: {type(err).__qualname__}: {err}") from err
    gens = run_generations(engine, random_scorer(0, cfg.num_objectives), 2)
    assert all(len(g) == cfg.pool_size for g in gens)
