"""Kernel Tuner integration: the strategy runs inside a real ``tune_kernel`` in simulation mode on
a cache file the test writes (no GPU), the space conversion and the replay objective."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import genetune as gt
import genetune.search_spaces as ss
from genetune.loading import load_search_space

kernel_tuner = pytest.importorskip("kernel_tuner")
from kernel_tuner.searchspace import Searchspace  # noqa: E402

from genetune.integrations.kernel_tuner import (  # noqa: E402
    GenetuneStrategy,
    KernelTunerRestrictions,
    replay_objective,
    space_from_kernel_tuner,
)

TUNE_PARAMS: dict[str, list[Any]] = {
    "block_size_x": [16, 32, 64, 128, 256],
    "tile": [1, 2, 3, 4],
    "unroll": [1, 2, 4, 8],
    "alg": ["naive", "shared"],
}
KEYS = list(TUNE_PARAMS)


def _small_tile(block_size_x: int, tile: int, unroll: int, alg: str) -> bool:
    """A callable restriction, as Kernel Tuner passes them: every parameter, in order."""
    return tile * block_size_x <= 512 or alg == "naive"


RESTRICTIONS: list[Any] = ["unroll <= 4 or alg == 'shared'", "block_size_x * tile >= 32", _small_tile]


def _time(c: dict[str, Any]) -> float:
    # A smooth landscape with its optimum inside: 64 x tile 3, unroll 4, shared.
    size, tile, unroll = math.log2(c["block_size_x"]), c["tile"], math.log2(c["unroll"])
    return 1.0 + abs(size - 6) + 0.5 * abs(tile - 3) + 0.3 * abs(unroll - 2) + (c["alg"] == "naive")


def _failed(c: dict[str, Any]) -> bool:
    return c["block_size_x"] == 256 and c["unroll"] == 8  # "does not compile"


def _valid_configs() -> list[tuple[Any, ...]]:
    return [tuple(c) for c in Searchspace(TUNE_PARAMS, RESTRICTIONS, 1024).list]


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Kernel Tuner cache of every configuration of the space, as tune_kernel writes them."""
    cache: dict[str, Any] = {}
    for values in _valid_configs():
        c = dict(zip(KEYS, values))
        record: dict[str, Any] = dict(c)
        if _failed(c):
            record["time"] = "CompilationFailedConfig"
        else:
            record["time"] = _time(c)
            record["times"] = [record["time"]] * 3
        record.update(compile_time=100.0, verification_time=0, benchmark_time=1.0)
        cache[",".join(str(v) for v in values)] = record
    data = {
        "device_name": "test device",
        "kernel_name": "vector_add",
        "problem_size": [1024],
        "tune_params_keys": KEYS,
        "tune_params": TUNE_PARAMS,
        "objective": "time",
        "cache": cache,
    }
    path = tmp_path_factory.mktemp("kt") / "cache.json"
    path.write_text(json.dumps(data))
    return path


def _tune(cache_file: Path, strategy: Any, **options: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    kernel = "__global__ void vector_add(float *c, float *a, float *b, int n) {}"
    args = [np.zeros(1024, np.float32)] * 3 + [np.int32(1024)]
    return kernel_tuner.tune_kernel(  # type: ignore[no-any-return]
        "vector_add",
        kernel,
        1024,
        args,
        TUNE_PARAMS,
        restrictions=RESTRICTIONS,
        strategy=strategy,
        strategy_options=options,
        cache=str(cache_file),
        simulation_mode=True,
        quiet=True,
    )


def _configs(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r[k] for k in KEYS) for r in results]


def test_strategy_is_accepted_by_tune_kernel_and_respects_max_fevals(cache_file: Path, tmp_path: Path) -> None:
    results, env = _tune(cache_file, GenetuneStrategy(seed=3), max_fevals=25)
    configs = _configs(results)
    assert len(configs) == 25 and len(set(configs)) == 25  # the budget, each configuration once
    assert env["simulation"] is True and "best_config" in env
    best = min((r for r in results if "__error__" not in r), key=lambda r: r["time"])
    assert env["best_config"]["time"] == best["time"]
    again, _ = _tune(cache_file, GenetuneStrategy(seed=3), max_fevals=25)
    assert _configs(again) == configs  # seeded: the same run
    stored = tmp_path / "stored.json"  # Kernel Tuner's own tooling takes the results as they are
    kernel_tuner.store_results(str(stored), "vector_add", "", TUNE_PARAMS, 1024, results, env, top=100)
    assert json.loads(stored.read_text())["data"]


def test_restrictions_are_never_violated_and_failures_do_not_stop_the_search(cache_file: Path) -> None:
    valid = set(_valid_configs())
    results, env = _tune(cache_file, GenetuneStrategy(seed=0))  # no max_fevals: the whole space
    configs = _configs(results)
    assert set(configs) <= valid and len(configs) == len(set(configs))
    assert len(configs) == len(valid)  # every configuration, none outside it
    failed = [r for r in results if "__error__" in r]
    assert failed and all(_failed(dict(zip(KEYS, c))) for c in _configs(failed))
    assert env["best_config"]["time"] == min(_time(dict(zip(KEYS, c))) for c in valid if not _failed(dict(zip(KEYS, c))))


def test_strategy_finds_the_optimum_well_before_the_whole_space(cache_file: Path) -> None:
    size = len(_valid_configs())
    hits = 0
    for seed in range(3):
        results, env = _tune(cache_file, GenetuneStrategy(seed=seed), max_fevals=size // 3)
        hits += env["best_config"]["time"] == 1.0
    assert hits >= 2


def test_time_limit_and_x0(cache_file: Path) -> None:
    x0 = [64, 3, 4, "shared"]
    # Each simulated evaluation takes 101 ms of the budget.
    results, _ = _tune(cache_file, GenetuneStrategy(seed=1), time_limit=1.0, x0=x0)
    assert _configs(results)[0] == tuple(x0)
    assert 5 <= len(results) <= 12


def test_bad_options_are_refused_with_their_names(cache_file: Path) -> None:
    with pytest.raises(ValueError, match="popsize"):
        _tune(cache_file, GenetuneStrategy(), popsize=10)
    with pytest.raises(gt.ConfigurationError, match="problem_type"):
        GenetuneStrategy(problem_type="max")
    with pytest.raises(gt.ConfigurationError, match="pool_size"):
        GenetuneStrategy(pool_size=2)
    with pytest.raises(ValueError, match="x0"):
        _tune(cache_file, GenetuneStrategy(), x0=[16, 1, 8, "naive"])  # violates a restriction


@pytest.mark.filterwarnings("ignore::genetune.SearchSpaceExhaustedWarning")  # the test walks the whole space
def test_space_conversion() -> None:
    tune_params = {"block_size_x": [32, 64, 128], "tile": [1, 2, 3, 4], "vec": [True, False], "alg": ["a", "b"], "one": [7]}
    restrictions = ["tile <= 2 or vec", "min(tile, 3) * block_size_x <= 256", lambda p: p["alg"] != "b" or p["tile"] > 1]
    space, constraints = space_from_kernel_tuner(tune_params, restrictions, max_threads=64)
    assert space["tile"] == ss.range(1, 4, 1)
    assert space["block_size_x"] == ss.choice([32, 64, 128]) and space["alg"] == ss.choice(["a", "b"])
    assert constraints[:2] == ["tile <= 2 or vec", "block_size_x <= 64"]  # an expression, and the thread limit
    judge = constraints[2]
    assert isinstance(judge, KernelTunerRestrictions)  # min() and the lambda: Kernel Tuner's own judgement
    expected = {
        tuple(c)
        for c in Searchspace(tune_params, restrictions, 64).list  # Kernel Tuner's space under the same rules
    }
    engine = gt.Engine(space, gt.SearchConfiguration(generations=50, pool_size=8), seed=2, constraints=constraints)
    seen = set()
    while not engine.done:
        asked = engine.ask()
        if not asked:
            break
        seen |= {tuple(c.params[k] for k in tune_params) for c in asked}
        engine.tell([c.id for c in asked], [1.0] * len(asked))
    assert seen == expected
    # The Prefect flow takes the space as a spec and string constraints.
    assert load_search_space(ss.compile_space(space)) == space
    with pytest.raises(gt.SearchSpaceError, match="tile"):
        space_from_kernel_tuner({"tile": []})
    with pytest.raises(gt.SearchSpaceError, match="max_threads"):
        space_from_kernel_tuner(tune_params, max_threads=0)


def test_replay_objective_in_a_search(cache_file: Path, tmp_path: Path) -> None:
    objective = replay_objective(cache_file)
    assert objective({"block_size_x": 64, "tile": 3, "unroll": 4, "alg": "shared"}) == 1.0
    with pytest.raises(gt.InvalidCandidate, match="CompilationFailedConfig"):
        objective({"block_size_x": 256, "tile": 1, "unroll": 8, "alg": "shared"})
    with pytest.raises(gt.InvalidCandidate, match="not in the cache"):
        objective({"block_size_x": 16, "tile": 1, "unroll": 8, "alg": "naive"})  # restricted: never measured

    space, constraints = space_from_kernel_tuner(TUNE_PARAMS, RESTRICTIONS)
    config = gt.SearchConfiguration(generations=4, pool_size=12, seed=5)
    options: dict[str, Any] = {"worker_type": "sequential", "cache_folder": tmp_path, "disable_progress_bar": True}
    search = gt.Search(objective, space, config, constraints=constraints, **options)
    result = search.start()
    rows = result.df_results
    rows = rows[rows["status"] != "baseline"]
    valid = set(_valid_configs())
    assert all(tuple(p[k] for k in KEYS) in valid for p in rows["params"])  # never outside the space
    invalid = rows[rows["status"] == "invalid"]
    assert all("CompilationFailedConfig" in reason for reason in invalid["reason"])
    assert result.get_best_result()["score_1"] == rows["score_1"].min()


def test_import_genetune_does_not_import_kernel_tuner() -> None:
    import subprocess
    import sys

    code = "import sys, genetune; assert 'kernel_tuner' not in sys.modules and 'genetune.integrations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
