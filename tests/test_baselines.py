"""`Baselines`: placement keys, the measurement policy and normalization by placement."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, ClassVar

import pytest

import genetune as gt
from genetune.baselines import SHARED, Baselines
from genetune.scores import Score, baseline_id
from genetune.workers.base import BatchWorker, Candidates, RunOptions


class PlacedWorker(BatchWorker):
    """Gives each placement a fixed baseline value (None: that baseline fails)."""

    baselines_per_placement: ClassVar[bool] = True

    def __init__(self, baselines: dict[str, float | None]) -> None:
        self.baselines = baselines
        self.asked: list[set[str]] = []

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        raise AssertionError("not used")

    def measure_missing_baselines(
        self, function: Callable[[Any], Any], num_objectives: int, known: Collection[str], options: RunOptions
    ) -> list[Score]:
        self.asked.append(set(known))
        return [
            Score(param_id=baseline_id(key), params={}, score="*" if value is None else value, metadata={"placement": key})
            for key, value in self.baselines.items()
            if key not in known
        ]


def score(value: float | str, placement: str | None, param_id: int = 1) -> Score:
    return Score(param_id=param_id, params={"x": 1}, score=value, metadata={} if placement is None else {"placement": placement})


def test_a_worker_without_placements_shares_one_baseline() -> None:
    baselines = Baselines(gt.SequentialWorker(), 1, normalize=True)
    assert baselines.placement_of({"placement": "host-a"}) == SHARED
    rows = baselines.measure(lambda p: 2.0, RunOptions(), first=True, run_folder=Path("."))
    assert [(r["id"], r["status"], r["scores"], r["norm_scores"]) for r in rows] == [("baseline", "baseline", [2.0], [1.0])]
    row = baselines.row_of(score(3.0, "host-b"), generation=1)
    assert row["status"] == "valid" and row["norm_scores"] == [1.5] and row["scores"] == [3.0]
    assert baselines.rows() == rows


def test_results_are_normalized_by_the_baseline_of_their_placement() -> None:
    worker = PlacedWorker({"a": 2.0, "b": 4.0})
    baselines = Baselines(worker, 1, normalize=True)
    baselines.measure(lambda p: None, RunOptions(), first=True, run_folder=Path("."))
    assert baselines.row_of(score(4.0, "a"), 0)["norm_scores"] == [2.0]
    assert baselines.row_of(score(4.0, "b"), 0)["norm_scores"] == [1.0]
    assert not baselines.lacks(score(4.0, "a"))
    assert baselines.lacks(score(4.0, "c"))  # a worker that joined since
    assert not baselines.lacks(score("*", "c"))  # a failure needs no baseline


def test_a_result_without_its_baseline_is_invalid_and_says_why() -> None:
    worker = PlacedWorker({"a": None})
    baselines = Baselines(worker, 1, normalize=True)
    with pytest.warns(UserWarning, match="baseline on a failed"):
        baselines.measure(lambda p: None, RunOptions(), first=False, run_folder=Path("."))
    failed = baselines.row_of(score(1.0, "a"), 0)
    assert failed["status"] == "invalid" and "the baseline on placement 'a' failed" in failed["reason"]
    missing = baselines.row_of(score(1.0, "z"), 0)
    assert missing["status"] == "invalid" and "no baseline for placement 'z'" in missing["reason"]
    assert math.isnan(missing["norm_scores"][0])  # type: ignore[index]


def test_only_missing_placements_are_measured_again() -> None:
    worker = PlacedWorker({"a": 1.0})
    baselines = Baselines(worker, 1, normalize=True)
    baselines.measure(lambda p: None, RunOptions(), first=True, run_folder=Path("."))
    worker.baselines["b"] = 3.0
    again = baselines.measure(lambda p: None, RunOptions(), first=False, run_folder=Path("."))
    assert worker.asked == [set(), {"a"}] and [r["id"] for r in again] == ["baseline@b"]


def test_restored_baselines_count_as_known() -> None:
    worker = PlacedWorker({"a": 1.0, "b": 2.0})
    first = Baselines(worker, 1, normalize=True)
    rows = first.measure(lambda p: None, RunOptions(), first=True, run_folder=Path("."))
    resumed = Baselines(worker, 1, normalize=True)
    resumed.restore(rows[0])
    assert [r["id"] for r in resumed.measure(lambda p: None, RunOptions(), first=False, run_folder=Path("."))] == ["baseline@b"]


def test_a_search_whose_every_baseline_fails_at_the_start_stops(tmp_path: Path) -> None:
    baselines = Baselines(PlacedWorker({"a": None, "b": None}), 1, normalize=True)
    with pytest.raises(gt.SearchFailedError, match="Baseline measurement for normalization failed") as info:
        baselines.measure(lambda p: None, RunOptions(), first=True, run_folder=tmp_path)
    assert info.value.run_folder == tmp_path


def test_without_normalization_rows_keep_raw_scores() -> None:
    baselines = Baselines(gt.SequentialWorker(), 2, normalize=False)
    row = baselines.row_of(Score(param_id=3, params={}, score=(1.0, 2.0), num_objectives=2), generation=2)
    assert row["norm_scores"] is None and row["scores"] == [1.0, 2.0] and row["status"] == "valid" and row["generation"] == 2
    assert not baselines.lacks(score(1.0, "anywhere"))
