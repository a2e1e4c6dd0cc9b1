"""`Recorder`: each evaluation logged once, counted and announced; generation ends durable first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import genetune as gt
from genetune.checkpoint import CHECKPOINT_FILE, EvaluationLog
from genetune.recorder import Recorder
from genetune.rows import Row


class Events:
    """A tracker that keeps the events it receives, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def search_starts(self, manifest: dict[str, Any]) -> None:
        self.events.append(("search_starts",))

    def generation_starts(self, generation: int) -> None:
        self.events.append(("generation_starts", generation))

    def pre_objective(self, candidate: dict[str, Any]) -> None:
        self.events.append(("pre_objective", candidate["id"], candidate["generation"]))

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        self.events.append(("post_objective", candidate["id"], score["status"]))

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        self.events.append(("generation_ends", generation, stats["evaluations"]))

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        self.events.append(("search_ends", reason))


def row(candidate_id: int | str, generation: int, value: float, status: str = "valid") -> Row:
    return {
        "generation": generation,
        "id": candidate_id,
        "params": {"x": value},
        "scores": [value],
        "norm_scores": None,
        "status": status,  # type: ignore[typeddict-item]
        "reason": "" if status != "invalid" else "objective returned '*'",
        "duration_s": 0.0,
        "metadata": {},
    }


def config() -> gt.SearchConfiguration:
    return gt.SearchConfiguration(generations=2, pool_size=6, seed=1)


def test_each_evaluation_is_logged_once_and_announced(tmp_path: Path) -> None:
    tracker = Events()
    recorder = Recorder(tmp_path, config(), [tracker], progress_disabled=True, replayed=[], already_logged=())
    recorder.search_starts({})
    recorder.generation_starts(0)
    recorder.starts(0, 0, {"x": 1.0})
    first = row(0, 0, 1.0)
    recorder.evaluated(first)
    assert recorder.is_logged(first)
    recorder.evaluated(first)  # a worker reporting twice: announced again, logged once
    recorder.evaluated(row(1, 0, float("nan"), "invalid"))
    recorder.generation_ends(0, [first, row(1, 0, float("nan"), "invalid")], 0.5, {"generation": 1})
    recorder.close_files()
    report = recorder.search_ends("completed", {})
    assert report == {"Events": "ok"}
    assert [r["id"] for r in EvaluationLog(tmp_path).rows()] == [0, 1]
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text()) == {"format": 1, "generation": 1}
    assert tracker.events == [
        ("search_starts",),
        ("generation_starts", 0),
        ("pre_objective", 0, 0),
        ("post_objective", 0, "valid"),
        ("post_objective", 0, "valid"),
        ("post_objective", 1, "invalid"),
        ("generation_ends", 0, 2),
        ("search_ends", "completed"),
    ]


def test_a_baseline_is_announced_as_one_evaluation(tmp_path: Path) -> None:
    tracker = Events()
    recorder = Recorder(tmp_path, config(), [tracker], progress_disabled=True, replayed=[], already_logged=())
    recorder.baseline(row("baseline", 0, 2.0, "baseline"), failed=False)
    recorder.close_files()
    recorder.search_ends("completed", {})
    assert tracker.events == [("pre_objective", "baseline", 0), ("post_objective", "baseline", "baseline"), ("search_ends", "completed")]
    assert [r["id"] for r in EvaluationLog(tmp_path).rows()] == ["baseline"]


def test_replayed_rows_are_counted_but_neither_logged_nor_announced(tmp_path: Path) -> None:
    tracker = Events()
    done = [row(0, 0, 1.0), row(1, 0, 2.0)]
    recorder = Recorder(tmp_path, config(), [tracker], progress_disabled=True, replayed=done, already_logged=[0, 1])
    assert recorder.stats.evaluations == 2  # the completed generation is in the statistics
    for r in done:
        recorder.replayed(r)
        recorder.evaluated(r)  # already in the log: not written again
    recorder.close_files()
    recorder.search_ends("completed", {})
    assert not (tmp_path / "evaluations.jsonl").exists()
    assert [e[0] for e in tracker.events] == ["post_objective", "post_objective", "search_ends"]
