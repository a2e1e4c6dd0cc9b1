"""Search spaces with rules: constraints, conditional parameters (``when=``) and warm starts."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import genetune as gt
import genetune.search_spaces as ss
from genetune.jobs.gcc.space import SPACE_PATH
from genetune.loading import load_search_space
from genetune.trackers import BaseTracker
from engine_support import key_of, quietly_exhausting, random_scorer, run_generations
from tests_support import table

ENGINES = ["ga", "nsga2", "nsga3", "auto"]


def cfg(engine: str = "ga", **kw: Any) -> dict[str, Any]:
    m = 1 if engine in ("ga", "auto") else 2
    return {"generations": 6, "pool_size": 10, "seed": 3, "engine": engine, "num_objectives": m, **kw}


BLOCKS = {
    "bx": ss.range(1, 64),
    "by": ss.range(1, 64),
    "unroll": ss.choice([0, 2, 4, 8]),
    "vectorize": ss.literal("-fvectorize", knockout_prob=0.5),
    "opt": {"level": ss.choice(["-O1", "-O2", "-O3"]), "lto": ss.literal("-flto", knockout_prob=0.5)},
}
RULES = ["bx * by <= 1024", "unroll == 0 or vectorize", "opt.level != '-O1' or opt.lto is None", "bx % 4 == 0 and by in [8, 16, 32, 64]"]


def satisfies(p: dict[str, Any]) -> bool:
    return (
        p["bx"] * p["by"] <= 1024
        and (p["unroll"] == 0 or "vectorize" in p)
        and (p["opt"]["level"] != "-O1" or "lto" not in p["opt"])
        and p["bx"] % 4 == 0
        and p["by"] in (8, 16, 32, 64)
    )


# ----- constraints -------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_every_candidate_of_every_engine_satisfies_the_constraints(engine: str) -> None:
    e = gt.Engine(BLOCKS, cfg(engine), constraints=RULES)
    generations = run_generations(e, random_scorer(1, e.num_objectives))
    candidates = [c.params for g in generations for c in g]
    assert len(candidates) == 60
    assert all(satisfies(p) for p in candidates), [p for p in candidates if not satisfies(p)][:3]
    assert len({key_of(p) for p in candidates}) == 60
    drawn, rejected = e.constraint_draws
    assert 0 < rejected < drawn


def test_exhaustion_and_space_size_count_only_feasible_candidates() -> None:
    space = {"a": ss.range(0, 9), "b": ss.choice(["x", "y"], knockout_prob=0.5)}
    e = gt.Engine(space, cfg(pool_size=6, generations=50), constraints=["a < 5", "b != 'y'"])
    assert e.space_size == 10
    with quietly_exhausting():
        seen = [c.params for g in run_generations(e, random_scorer(2)) for c in g]
    assert len(seen) == 10 == len({key_of(p) for p in seen})
    assert e.exhausted


def test_a_constraint_no_candidate_satisfies_fails_fast() -> None:
    for space, rule in (({"x": ss.range(0.0, 1.0, None)}, "x > 2"), (BLOCKS, "bx * by > 4096")):
        started = time.perf_counter()
        with pytest.raises(ValueError, match="no candidate satisfies the constraints"):
            gt.Engine(space, cfg(), constraints=[rule])
        assert time.perf_counter() - started < 10


def test_malformed_constraints_name_the_parameter_or_the_position() -> None:
    with pytest.raises(gt.SearchSpaceError, match=r"constraints\[1\].*unknown parameter 'bz'.*position 5"):
        gt.Engine(BLOCKS, cfg(), constraints=["bx < 9", "bx * bz <= 1024"])
    with pytest.raises(gt.SearchSpaceError, match=r"syntax error at position 11: expected an operand"):
        gt.Engine(BLOCKS, cfg(), constraints=["bx * by <= "])
    with pytest.raises(gt.SearchSpaceError, match=r"'opt' is a group of parameters"):
        gt.Engine(BLOCKS, cfg(), constraints=["opt is None"])
    with pytest.raises(gt.ConfigurationError, match=r"constraints\[0\] must be an expression string"):
        gt.Engine(BLOCKS, cfg(), constraints=[3])  # type: ignore[list-item]
    with pytest.raises(gt.SearchSpaceError, match="unknown parameter"):
        gt.Search(lambda p: 0.0, BLOCKS, cfg(), constraints=["nope > 1"])


def test_keys_that_are_not_names_are_quoted_and_list_spaces_indexed() -> None:
    space = [{"-O": ss.choice(["-O1", "-O2"]), "n": ss.range(0, 3)}, {"n": ss.range(0, 3)}]
    e = gt.Engine(space, cfg(pool_size=6, generations=3), constraints=["[0].`-O` == '-O2'", "[0].n + [1]['n'] <= 2"])
    for c in [c for g in run_generations(e, random_scorer(1)) for c in g]:
        assert c.params[0]["-O"] == "-O2" and c.params[0]["n"] + c.params[1]["n"] <= 2


def test_constraints_survive_pickling_and_the_stream_continues() -> None:
    e = gt.Engine(BLOCKS, cfg("auto"), constraints=RULES)
    run_generations(e, random_scorer(4), max_generations=2)
    copy = pickle.loads(pickle.dumps(e))
    assert copy.constraints == RULES
    a = run_generations(e, random_scorer(9))
    b = run_generations(copy, random_scorer(9))
    assert [[c.params for c in g] for g in a] == [[c.params for c in g] for g in b]


def block_rule(p: dict[str, Any]) -> bool:
    return bool(p["bx"] * p["by"] <= 1024 and p["bx"] % 4 == 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_callable_constraints_are_screened_before_candidates_are_handed_out(engine: str) -> None:
    judged: list[Any] = []

    def rule(p: dict[str, Any]) -> bool:
        judged.append(p)
        return block_rule(p)

    e = gt.Engine(BLOCKS, cfg(engine), constraints=[rule, "unroll == 0 or vectorize"])
    candidates = [c.params for g in run_generations(e, random_scorer(2, e.num_objectives)) for c in g]
    assert len(candidates) == 60 == len({key_of(p) for p in candidates})
    assert all(block_rule(p) and (p["unroll"] == 0 or "vectorize" in p) for p in candidates)
    assert len(judged) > 60  # some were rejected and repaired
    ids, x = gt.Engine(BLOCKS, cfg(engine), constraints=[block_rule]).ask_array()
    assert (x[:, 0] * x[:, 1] <= 1024).all()


def test_a_callable_no_candidate_satisfies_fails_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match="no candidate satisfies the constraint function"):
        gt.Engine(BLOCKS, cfg(), constraints=[lambda p: False])
    assert time.perf_counter() - started < 30


def test_callable_constraints_survive_pickling_and_resume(tmp_path: Path) -> None:
    e = gt.Engine(BLOCKS, cfg(), constraints=[lambda p: p["bx"] < 8])
    run_generations(e, random_scorer(1), max_generations=1)
    copy = pickle.loads(pickle.dumps(e))
    a = run_generations(e, random_scorer(3))
    b = run_generations(copy, random_scorer(3))
    assert [[c.params for c in g] for g in a] == [[c.params for c in g] for g in b]
    assert all(c.params["bx"] < 8 for g in b for c in g)
    s = gt.Search(lambda p: float(p["bx"]), BLOCKS, cfg(generations=2), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True, constraints=[lambda p: p["by"] > 50])
    first = s.start()
    assert s.run_folder is not None
    again = gt.Search.resume(s.run_folder, disable_progress_bar=True)
    assert table(again) == table(first) and all(p["by"] > 50 for p in first.get_results()["params"])


def test_sample_respects_constraints() -> None:
    s = gt.Search(lambda p: 0.0, BLOCKS, cfg(), constraints=RULES)
    assert all(satisfies(p) for p in s.sample(20))


# ----- conditional parameters --------------------------------------------------------------------

GATED = {
    "unroll_loops": ss.literal("-funroll-loops", knockout_prob=0.5),
    "max_unroll_times": ss.range(2, 16, 2, knockout_prob=0.3, when="unroll_loops"),
    "opt": {"level": ss.choice(["-O1", "-O2", "-O3"])},
    "vect": ss.choice(["cheap", "dynamic"], when={"opt.level": ["-O2", "-O3"]}),
    "width": ss.log_sampling(1, 64, 7, when={"vect": "dynamic"}),
}


def presence_ok(p: dict[str, Any]) -> bool:
    return (
        ("max_unroll_times" not in p or "unroll_loops" in p)
        and (("vect" in p) == (p["opt"]["level"] != "-O1"))
        and (("width" in p) == (p.get("vect") == "dynamic"))
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_when_rules_hold_under_crossover_and_mutation(engine: str) -> None:
    e = gt.Engine(GATED, cfg(engine, generations=8))
    with quietly_exhausting():
        candidates = [c.params for g in run_generations(e, random_scorer(5, e.num_objectives)) for c in g]
    assert all(presence_ok(p) for p in candidates), [p for p in candidates if not presence_ok(p)][:3]
    assert any("max_unroll_times" in p for p in candidates) and any("width" in p for p in candidates)


def test_candidates_differing_only_in_inactive_genes_are_one_candidate() -> None:
    # unroll_loops/max_unroll_times: absent, or present with max_unroll_times absent or one of 8
    # values: 1 + 9 = 10; opt.level/vect/width: 1 (-O1) + 2 * (1 + 7) = 17. 10 * 17 = 170.
    e = gt.Engine(GATED, cfg(pool_size=20, generations=40))
    assert e.space_size == 170
    with quietly_exhausting():
        candidates = [c.params for g in run_generations(e, random_scorer(6)) for c in g]
    assert len(candidates) == 170 == len({key_of(p) for p in candidates})
    # The model sees inactive genes as missing, like knocked-out ones (NaN columns).
    x = gt.Engine(GATED, cfg()).ask_array()[1]
    assert np.isnan(x[:, 3]).any()


def test_bad_when_names_the_parameter() -> None:
    with pytest.raises(gt.SearchSpaceError, match=r"search_space\['b'\]: when=\"c\": unknown parameter 'c'"):
        gt.Engine({"a": ss.range(0, 3), "b": ss.range(0, 3, when="c")}, cfg())
    with pytest.raises(gt.SearchSpaceError, match=r"'-O4'|\"-O4\"\) is not a value"):
        gt.Engine({"a": ss.choice(["-O2"]), "b": ss.range(0, 3, when={"a": "-O4"})}, cfg())
    with pytest.raises(gt.SearchSpaceError, match="cycle"):
        gt.Engine({"a": ss.range(0, 3, when="b"), "b": ss.range(0, 3, when="a")}, cfg())
    with pytest.raises(gt.SearchSpaceError, match="when= must name a parameter"):
        ss.range(0, 3, when="")


def test_yaml_friendly_form_supports_when(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(
        "unroll: {type: literal, value: -funroll-loops, knockout_prob: 0.5}\n"
        "times: {type: range, start: 2, end: 8, step: 2, when: unroll}\n"
        "level: {type: choice, values: [-O1, -O2]}\n"
        "vec: {type: choice, values: [1, 2], when: {level: -O2}}\n"
    )
    space = load_search_space(path)
    assert space["times"].when == "unroll" and space["vec"].when == {"level": ("-O2",)}
    e = gt.Engine(space, cfg())
    for c in e.ask():
        assert ("times" not in c.params or "unroll" in c.params) and (("vec" in c.params) == (c.params["level"] == "-O2"))


def test_gcc_space_gates_valued_flags_on_their_switch() -> None:
    space = load_search_space(SPACE_PATH)
    assert isinstance(space, dict)
    assert space["max_unroll_times"].when == "unroll_loops"
    e = gt.Engine(space, cfg(generations=3, pool_size=16))
    for g in run_generations(e, random_scorer(1)):
        for c in g:
            assert "max_unroll_times" not in c.params or "unroll_loops" in c.params


def test_gcc_job_warm_starts_with_what_the_space_can_express() -> None:
    from genetune.jobs.gcc.flow import WARM_START, warm_start_candidates  # loads Prefect

    space = load_search_space(SPACE_PATH)
    assert warm_start_candidates(space) == [dict(c) for c in WARM_START]
    without_native = {**space, "march": ss.choice(["-march=x86-64", "-march=x86-64-v2"])}
    assert warm_start_candidates(without_native) == [{"opt_level": "-O3", "march": "-march=x86-64"}]


# ----- warm start --------------------------------------------------------------------------------

SPACE = {"x": ss.range(0, 40), "y": ss.range(0, 40), "flag": ss.literal("-f", knockout_prob=0.5)}


def quadratic(p: dict[str, Any]) -> float:
    return float((p["x"] - 31) ** 2 + (p["y"] - 7) ** 2 + (0 if "flag" in p else 3))


def test_warm_start_candidates_are_evaluated_first(tmp_path: Path) -> None:
    warm = [{"x": 31, "y": 7, "flag": "-f"}, {"x": 0, "y": 0}]
    result = gt.Search(quadratic, SPACE, cfg(generations=2, pool_size=6), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True, warm_start=warm).start()
    first = result.get_results().sort_values("id").head(2)
    assert list(first["params"]) == warm and list(first["generation"]) == [0, 0]
    assert result.get_best_result()["score_1"] == 0.0
    with pytest.raises(gt.SearchSpaceError, match=r"search_space\['x'\]: warm_start\[0\]: 99 is not a value"):
        gt.Search(quadratic, SPACE, cfg(), warm_start=[{"x": 99, "y": 0}])
    with pytest.raises(gt.SearchSpaceError, match=r"warm_start\[0\]: unknown key 'z'|unknown key \"z\""):
        gt.Engine(SPACE, cfg(), warm_start=[{"x": 1, "y": 0, "z": 1}])
    with pytest.raises(gt.SearchSpaceError, match="violates the constraint"):
        gt.Engine(SPACE, cfg(), warm_start=[{"x": 1, "y": 0}], constraints=["x > 1"])


def counting(calls: list[Any]) -> Any:
    def objective(p: dict[str, Any]) -> float:
        calls.append(p)
        return quadratic(p)

    return objective


@pytest.mark.parametrize("source", ["result", "csv", "parquet", "folder"])
def test_earlier_results_are_told_not_evaluated_again(tmp_path: Path, source: str) -> None:
    earlier = gt.Search(quadratic, SPACE, cfg(generations=3, pool_size=8), worker_type="sequential", cache_folder=tmp_path / "a", disable_progress_bar=True)
    first = earlier.start()
    assert earlier.run_folder is not None
    warm: Any = {
        "result": first,
        "csv": earlier.run_folder / "results.csv",
        "parquet": first.to_parquet(tmp_path / "r.parquet"),
        "folder": earlier.run_folder,
    }[source]
    calls: list[Any] = []
    s = gt.Search(
        counting(calls),
        SPACE,
        cfg(generations=2, pool_size=8, seed=4),
        worker_type="sequential",
        cache_folder=tmp_path / "b",
        disable_progress_bar=True,
        warm_start=warm,
    )
    result = s.start()
    df = result.get_results()
    assert len(calls) == 16 and (df["status"] == "prior").sum() == 24
    prior_keys = {key_of(p) for p in first.get_results()["params"]}
    assert not prior_keys & {key_of(p) for p in calls}, "an earlier evaluation was evaluated again"
    # The search continued from them: its best is at least the earlier best.
    assert result.get_best_result()["score_1"] <= first.get_best_result()["score_1"]


@pytest.mark.parametrize("source", ["result", "folder"])
def test_re_measurements_of_an_earlier_search_are_not_priors(tmp_path: Path, source: str) -> None:
    earlier = gt.Search(
        quadratic,
        SPACE,
        cfg(generations=3, pool_size=8, remeasure_top=2, remeasure_repeats=2),
        worker_type="sequential",
        cache_folder=tmp_path / "a",
        disable_progress_bar=True,
    )
    first = earlier.start()
    assert (first.get_results()["status"] == "remeasure").sum() == 4
    warm: Any = first if source == "result" else earlier.run_folder
    s = gt.Search(quadratic, SPACE, cfg(generations=1, pool_size=8, seed=4), worker_type="sequential", cache_folder=tmp_path / "b", disable_progress_bar=True, warm_start=warm)
    df = s.start().get_results()
    assert (df["status"] == "prior").sum() == 24, "each earlier candidate is one prior, its re-measurements are not"


def test_another_space_is_used_only_when_its_parameters_map_by_name(tmp_path: Path) -> None:
    first = gt.Search(quadratic, SPACE, cfg(generations=1, pool_size=6), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True).start()
    wider = {**SPACE, "z": ss.range(0, 3, knockout_prob=0.5)}
    gt.Engine(wider, cfg(), warm_start=first)  # z absent in the earlier rows: maps by name
    with pytest.raises(gt.SearchSpaceError, match=r"search_space\['z'\]: prior evaluation 0: missing"):
        gt.Engine({**SPACE, "z": ss.range(0, 3)}, cfg(), warm_start=first)
    with pytest.raises(gt.SearchSpaceError, match="unknown key"):
        gt.Engine({"x": SPACE["x"], "y": SPACE["y"]}, cfg(), warm_start=first)


def test_priors_from_a_flat_space_ignore_values_the_gated_space_makes_inactive(tmp_path: Path) -> None:
    flat = {"a": ss.choice([0, 1]), "b": ss.range(0, 3)}
    first = gt.Search(lambda p: float(p["b"]), flat, cfg(generations=1, pool_size=8), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True).start()
    gated = {"a": ss.choice([0, 1]), "b": ss.range(0, 3, when={"a": 1})}
    e = gt.Engine(gated, cfg(pool_size=6), warm_start=first)
    assert e.prior_count == 8
    # 5 distinct candidates: a=0 (b inactive) and a=1 with 4 values of b; the 8 priors cover all of them.
    assert e.space_size == 5 and e.done
    with pytest.raises(gt.SearchSpaceError, match="given although its when= condition does not hold"):
        gt.Engine(gated, cfg(), warm_start=[{"a": 0, "b": 1}])


class Stats(BaseTracker):
    def __init__(self) -> None:
        self.stats: list[dict[str, Any]] = []

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        self.stats.append(stats)


def test_generation_stats_report_the_rejection_rate(tmp_path: Path) -> None:
    tracker = Stats()
    gt.Search(quadratic, SPACE, cfg(generations=2), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True, trackers=[tracker], constraints=["x + y < 20"]).start()
    assert len(tracker.stats) == 2
    assert 0.0 < tracker.stats[-1]["constraint_rejection_rate"] < 1.0
    assert tracker.stats[-1]["constraint_draws"] > 20


class Stop(Exception):
    pass


def test_resume_with_constraints_when_and_warm_start_gives_the_identical_table(tmp_path: Path) -> None:
    space = {**SPACE, "times": ss.range(2, 8, 2, when="flag")}
    earlier = gt.Search(quadratic, space, cfg(generations=2, pool_size=6), worker_type="sequential", cache_folder=tmp_path / "a", disable_progress_bar=True).start()
    kw: dict[str, Any] = {
        "constraints": ["x + y <= 50", "times is None or times < 8"],
        "warm_start": [earlier, {"x": 30, "y": 8, "flag": "-f", "times": 4}],
        "disable_progress_bar": True,
    }
    calls: list[Any] = []

    def stopping(p: dict[str, Any]) -> float:
        if len(calls) == 16:
            raise KeyboardInterrupt
        calls.append(p)
        return quadratic(p)

    killed = gt.Search(stopping, space, cfg(generations=4, pool_size=8), worker_type="sequential", cache_folder=tmp_path / "b", **kw)
    with pytest.raises(KeyboardInterrupt):
        killed.start()
    assert killed.run_folder is not None
    again: list[Any] = []
    resumed = gt.Search.resume(killed.run_folder, counting(again), worker_type="sequential", disable_progress_bar=True)
    fresh = gt.Search(quadratic, space, cfg(generations=4, pool_size=8), worker_type="sequential", cache_folder=tmp_path / "c", **kw).start()
    assert table(resumed) == table(fresh)
    assert len(again) == 32 - 16  # the generations finished before the stop are read back
    rows = resumed.get_results()
    assert (rows["status"] == "prior").sum() == 12
    new = rows[rows["status"] != "prior"]["params"]
    assert all(p["x"] + p["y"] <= 50 and p.get("times", 2) < 8 and ("times" not in p or "flag" in p) for p in new)
    log = [json.loads(line) for line in (killed.run_folder / "evaluations.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "prior" for r in log) == 12
