"""The worker contract: `RunOptions` checked once, `BatchWorker` unpacking the keywords of
``run``, and the one spelling of each failure reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import genetune as gt
from genetune.failures import crash_reason, timeout_reason
from genetune.jsonable import json_default, lenient_json_default, strict_jsonable
from genetune.scores import Score, baseline_id
from genetune.workers import RunOptions
from genetune.workers.base import BatchWorker, Candidates


class Echo(BatchWorker):
    """Scores each candidate with its params and remembers the options it was given."""

    def __init__(self) -> None:
        self.options: list[RunOptions] = []

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        self.options.append(options)
        return [options.report(Score(param_id=i, params=p, score=function(p), num_objectives=num_objectives)) for i, p in candidates]


@pytest.mark.parametrize(("num_workers", "task_timeout"), [(0, None), (True, None), (2.5, None), (None, 0), (None, -1), (None, True)])
def test_run_options_refuse_non_positive_values(num_workers: Any, task_timeout: Any) -> None:
    with pytest.raises(ValueError, match="must be a positive"):
        RunOptions.checked(num_workers, task_timeout, {})


def test_a_batch_worker_gets_typed_options_and_reports_each_score() -> None:
    worker = Echo()
    seen: list[Any] = []
    scores = worker.run(lambda p: p * 2, [1, 2], [10, 11], 1, num_workers=3, task_timeout=4.5, on_result=seen.append, gpu="A")
    assert [s.score for s in scores] == [2, 4] and [s.param_id for s in seen] == [10, 11]
    options = worker.options[0]
    assert (options.num_workers, options.task_timeout, dict(options.extra)) == (3, 4.5, {"gpu": "A"})
    assert options.as_kwargs() == {"num_workers": 3, "task_timeout": 4.5, "on_result": seen.append, "gpu": "A"}


def test_a_batch_worker_measures_one_shared_baseline() -> None:
    worker = Echo()
    assert [s.param_id for s in worker.measure_baselines(lambda p: 1.0, 1, set())] == ["baseline"]
    assert worker.measure_baselines(lambda p: 1.0, 1, {"*"}) == []
    assert baseline_id() == "baseline" and baseline_id("host/gpu0") == "baseline@host/gpu0"


@pytest.mark.parametrize(("schedule", "calls"), [("generational", 2), ("steady", 12)])
def test_a_search_runs_on_a_batch_worker(tmp_path: Any, schedule: str, calls: int) -> None:
    """Whole generations per ``run`` call, or (steady, the default slots) one call per candidate."""
    worker = Echo()
    space = {"x": gt.search_spaces.range(0, 99)}
    config = gt.SearchConfiguration(generations=2, pool_size=6, seed=3, schedule=schedule)
    result = gt.Search(lambda p: float(p["x"]), space, config, worker_type=worker, cache_folder=tmp_path, disable_progress_bar=True).start()
    assert len(result) == 12 and len(worker.options) == calls


def test_failure_reasons_are_spelled_once() -> None:
    assert timeout_reason(2) == timeout_reason(2.0) == "timeout: killed after 2 s"
    assert timeout_reason(0.5, "cancelled") == "timeout: cancelled after 0.5 s"
    assert crash_reason(3) == "crashed: exit code 3"


def test_json_coercion() -> None:
    import numpy as np

    assert json_default(np.float64(1.5)) == 1.5 and json_default(np.arange(2)) == [0, 1]
    with pytest.raises(TypeError):
        json_default(object())
    assert lenient_json_default(complex(1, 2)) == "(1+2j)"
    assert strict_jsonable({"a": (float("nan"), np.int64(2)), 3: {1}}) == {"a": [None, 2], "3": [1]}


def test_score_metadata_as_a_dict() -> None:
    assert Score(param_id=1, params={}, score=1.0, metadata="free text").metadata_dict() == {"note": "free text"}
    assert Score(param_id=1, params={}, score=1.0, metadata={"a": 1}).metadata_dict() == {"a": 1}
