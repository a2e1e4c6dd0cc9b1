"""Trackers: lifecycle events, stacking, failure isolation, loguru, JSONL, user metrics."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from loguru import logger

import genetune as gt
import genetune.search_spaces as ss
from genetune.trackers import (
    BaseTracker,
    JsonlTracker,
    LoguruTracker,
    LoguruTrackerConfig,
    TrackerBus,
    TrackerTypes,
)

import objectives as obj


class Recorder(BaseTracker):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def search_starts(self, manifest: dict[str, Any]) -> None:
        self.events.append(("search_starts", manifest))

    def generation_starts(self, generation: int) -> None:
        self.events.append(("generation_starts", generation))

    def pre_objective(self, candidate: dict[str, Any]) -> None:
        self.events.append(("pre_objective", candidate["id"]))

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        self.events.append(("post_objective", (candidate["id"], score["status"])))

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        self.events.append(("generation_ends", stats))

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        self.events.append(("search_ends", (reason, summary)))


class Exploding(BaseTracker):
    def __getattribute__(self, name: str) -> Any:
        if name in {"setup", "search_starts", "generation_starts", "pre_objective", "post_objective", "generation_ends", "search_ends", "cleanup"}:

            def boom(*args: Any) -> None:
                raise RuntimeError(f"tracker broke in {name}")

            return boom
        return super().__getattribute__(name)


class OnlyEnds:
    """Not a BaseTracker: any object with some of the hooks works."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        self.reasons.append(reason)


def run(tmp: Path, trackers: list[Any] | None = None, objective: Any = obj.quadratic, **kw: Any) -> gt.Search:
    cfg = kw.pop("cfg", None) or gt.SearchConfiguration(generations=3, pool_size=8, seed=3)
    s = gt.Search(objective, obj.SPACE, cfg, worker_type=kw.pop("worker", "sequential"), trackers=trackers, cache_folder=tmp, disable_progress_bar=True, **kw)
    s.start()
    return s


def test_events_arrive_in_order_for_every_stacked_tracker(tmp_path: Path) -> None:
    a, b, ends = Recorder(), Recorder(), OnlyEnds()
    s = run(tmp_path, [a, b, ends])
    assert a.events and [e[0] for e in a.events] == [e[0] for e in b.events]
    kinds = [e[0] for e in a.events]
    assert kinds[0] == "search_starts" and kinds[-1] == "search_ends"
    assert Counter(kinds) == {"search_starts": 1, "generation_starts": 3, "pre_objective": 24, "post_objective": 24, "generation_ends": 3, "search_ends": 1}
    # Per candidate, pre before post.
    seen_pre: set[Any] = set()
    for kind, payload in a.events:
        if kind == "pre_objective":
            seen_pre.add(payload)
        if kind == "post_objective":
            assert payload[0] in seen_pre
    manifest = a.events[0][1]
    for key in ("config", "search_space", "seed", "engine", "versions", "host", "environment", "run_folder"):
        assert key in manifest
    stats = [p for k, p in a.events if k == "generation_ends"]
    assert [st["evaluations"] for st in stats] == [8, 16, 24]
    assert all(st["best"] is not None and st["invalid_rate"] == 0.0 for st in stats)
    reason, summary = a.events[-1][1]
    assert reason == "completed" and summary["evaluations"] == 24 and summary["trackers"]
    assert ends.reasons == ["completed"]
    assert s.tracker_report == {"Recorder": "ok", "OnlyEnds": "ok"} or all(v == "ok" for v in s.tracker_report.values())


def test_multi_objective_stats_have_pareto_and_hypervolume(tmp_path: Path) -> None:
    rec = Recorder()
    run(tmp_path, [rec], obj.two_objectives, cfg=gt.SearchConfiguration(generations=3, pool_size=12, num_objectives=2, seed=1))
    stats = [p for k, p in rec.events if k == "generation_ends"]
    assert all(st["pareto_size"] >= 1 for st in stats)
    volumes = [st["hypervolume"] for st in stats]
    assert all(v > 0 for v in volumes) and volumes == sorted(volumes)


def test_a_tracker_raising_everywhere_never_stops_the_search(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.warns(RuntimeWarning, match="tracker Exploding"):
        s = run(tmp_path, [Exploding(), rec])
    assert [e[0] for e in rec.events].count("post_objective") == 24
    assert s.tracker_report["Exploding"].startswith("disabled after 3 failures")
    _, summary = rec.events[-1][1]
    assert summary["trackers"]["Exploding"].startswith("disabled")


def test_non_trackers_are_rejected() -> None:
    with pytest.raises(TypeError, match="not a tracker"):
        gt.Search(obj.quadratic, obj.SPACE, {"generations": 1}, trackers=[object()])


def test_loguru_tracker_logs_lifecycle_and_keeps_user_handlers(tmp_path: Path) -> None:
    mine = io.StringIO()
    my_id = logger.add(mine, format="{message}", level="INFO")
    try:
        sink = io.StringIO()
        run(tmp_path, [LoguruTracker(sink=sink, level="DEBUG")])
        text = sink.getvalue()
        for needle in ("Search started", "Generation 0 started", "Generation 2 ended", "Search ended", "Executing objective function with", "Scored"):
            assert needle in text, needle
        logger.info("still mine")
        assert "still mine" in mine.getvalue()
    finally:
        logger.remove(my_id)


def test_compileiq_tracker_config_still_works(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    s = gt.Search(
        obj.quadratic,
        obj.SPACE,
        gt.SearchConfiguration(generations=2, pool_size=6, seed=1),
        worker_type="sequential",
        tracker_config=LoguruTrackerConfig(sink=str(path), level="INFO"),
        cache_folder=tmp_path,
        disable_progress_bar=True,
    )
    s.start()
    assert "Search ended" in path.read_text()
    assert gt.Search(obj.quadratic, obj.SPACE, {"generations": 1}, tracker_config=TrackerTypes.DISABLED).trackers == []


def test_jsonl_log_holds_every_event_and_loads_in_pandas(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    run(tmp_path, [JsonlTracker(path)])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    counts = Counter(r["event"] for r in records)
    assert counts == {"search_starts": 1, "generation_starts": 3, "pre_objective": 24, "post_objective": 24, "generation_ends": 3, "search_ends": 1}
    frame = pd.read_json(path, lines=True)
    assert len(frame) == len(records)


def test_jsonl_defaults_to_the_run_folder(tmp_path: Path) -> None:
    s = run(tmp_path, [JsonlTracker()])
    assert s.run_folder is not None and (s.run_folder / "run_log.jsonl").exists()


@pytest.mark.parametrize("worker", ["sequential", "native"])
def test_user_metrics_reach_results_and_the_run_log(tmp_path: Path, worker: str) -> None:
    path = tmp_path / "events.jsonl"
    rec = Recorder()
    s = gt.Search(
        obj.with_metrics,
        obj.SPACE,
        gt.SearchConfiguration(generations=2, pool_size=6, seed=2),
        worker_type=worker,
        trackers=[JsonlTracker(path), rec],
        cache_folder=tmp_path,
        disable_progress_bar=True,
    )
    result = s.start(num_workers=2 if worker == "native" else None)
    for row in result.get_results().itertuples():
        metrics = row.metadata["metrics"]
        assert metrics["abs_x"] == abs(row.params["x"]) and metrics["nested.level_len"] == len(row.params["opt"]["level"])
    posts = [json.loads(line) for line in path.read_text().splitlines() if '"post_objective"' in line]
    assert all("abs_x" in r["score"]["metadata"]["metrics"] for r in posts)
    stats = [p for k, p in rec.events if k == "generation_ends"]
    assert all("abs_x" in st["user_metrics"] for st in stats)


def test_metric_lines_from_commands() -> None:
    text = "compiling\nGENETUNE_METRIC compile_s=1.25\nGENETUNE_METRIC size=4096\nGENETUNE_METRIC bad=oops\n"
    assert gt.parse_metric_lines(text) == {"compile_s": 1.25, "size": 4096.0}


def test_bus_does_not_drop_events_when_full() -> None:
    class Slow(BaseTracker):
        def __init__(self) -> None:
            self.n = 0

        def pre_objective(self, candidate: dict[str, Any]) -> None:
            time.sleep(0.001)
            self.n += 1

    slow = Slow()
    bus = TrackerBus([slow], max_pending=5)
    for i in range(200):
        bus.emit("pre_objective", {"id": i})
    assert bus.close() == {"Slow": "ok"}
    assert slow.n == 200


def test_stop_reason_is_error_when_the_search_fails(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(gt.SearchFailedError):
        run(tmp_path, [rec], obj.always_fails)
    reason, summary = rec.events[-1][1]
    assert reason == "error" and summary["evaluations"] == 8


KILLED = textwrap.dedent(
    """
    import sys
    import genetune as gt
    import objectives as obj
    from genetune.trackers import JsonlTracker
    gt.Search(obj.slow, obj.SPACE, gt.SearchConfiguration(generations=20, pool_size=10, seed=5), worker_type="sequential",
              trackers=[JsonlTracker(sys.argv[1])], cache_folder=sys.argv[2], disable_progress_bar=True).start()
    """
)


@pytest.mark.slow
def test_jsonl_of_a_sigkilled_search_parses_up_to_the_kill(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(log), str(tmp_path / "runs")], env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and log.read_text().count("post_objective") >= 15):
        assert proc.poll() is None
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = log.read_text().splitlines()
    complete = lines if log.read_text().endswith("\n") else lines[:-1]
    records = [json.loads(line) for line in complete]
    assert records[0]["event"] == "search_starts" and len(records) >= 15
    assert all(r["event"] != "search_ends" for r in records)
