"""The steady schedule (the default): every slot stays busy, each result is told as it arrives,
and every guarantee of the generational loop still holds (cohorts of ``pool_size`` results for
trackers and checkpoints, exact resume through the logged asks and tells)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

import genetune as gt
import genetune.recorder
import genetune.search_spaces as ss
from genetune.checkpoint import decode_bytes
from genetune.scores import BASELINE_CONFIG, Score, baseline_id
from genetune.trackers import JsonlTracker
from genetune.workers import BaseWorker
from tests_support import table

import objectives as obj
from steady_objectives import AsyncHoldsOne, HoldsOne, Logged


def cfg(**kw: Any) -> gt.SearchConfiguration:
    return gt.SearchConfiguration(**{"generations": 3, "pool_size": 6, "seed": 7, **kw})


def search(objective: Any, tmp: Path, worker: Any = "sequential", config: gt.SearchConfiguration | None = None, **kw: Any) -> gt.Search:
    return gt.Search(objective, kw.pop("space", obj.SPACE), config or cfg(), worker_type=worker, cache_folder=tmp, disable_progress_bar=True, **kw)


def engine_is_steady() -> bool:
    """Whether the engine proposes a new candidate while others of its cohort are pending (the
    engine of issue 19's core; before it, ask waits for the whole generation to be told)."""
    engine = gt.Engine(obj.SPACE, cfg())
    first = engine.ask(6)
    engine.tell([first[0].id], [[1.0]])
    return len(engine.ask(1)) == 1


#: End to end, a slot freed mid-generation gets a new candidate only from a steady engine.
needs_steady_engine = pytest.mark.xfail(not engine_is_steady(), reason="the engine still breeds whole generations", run=False, strict=True)


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def calls_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ----- every slot stays busy -----------------------------------------------------------------------


@pytest.mark.slow
@needs_steady_engine
@pytest.mark.parametrize("worker", ["native", "isolated", "async", "dask"])
def test_a_long_evaluation_does_not_hold_the_other_slots(tmp_path: Path, worker: str) -> None:
    """One evaluation waits until 10 others ended (pool 6): under a generation barrier at most 5
    could, as the next generation would wait for it."""
    folder = tmp_path / "marks"
    folder.mkdir()
    objective = (AsyncHoldsOne if worker == "async" else HoldsOne)(str(folder), others=10)
    worker_type: Any = gt.DaskWorker(n_workers=2) if worker == "dask" else worker
    result = search(objective, tmp_path, worker_type, cfg(pool_size=6, generations=4)).start(num_workers=2)
    assert int((folder / "saw").read_text()) >= 10
    df = result.get_results()
    assert len(df) == 24 and df["id"].is_unique and df["params"].map(lambda p: json.dumps(p, sort_keys=True)).is_unique
    assert df.groupby("generation").size().tolist() == [6, 6, 6, 6]  # cohorts of pool_size results


def test_the_default_slots_of_a_custom_worker_run_num_workers_calls_at_once(tmp_path: Path) -> None:
    """A custom worker implementing only ``run`` (CompileIQ's contract) gets one call per
    candidate, ``num_workers`` at once; one that ignores ``num_workers`` gets one at a time."""

    class Concurrent(BaseWorker):
        barrier = threading.Barrier(3, timeout=20)  # the first three calls meet: three ran at once

        def __init__(self) -> None:
            self.active = self.most = self.calls = 0
            self.lock = threading.Lock()

        def run(self, function: Callable[[Any], Any], params_pool: Sequence[Any], params_ids: Sequence[int | str], num_function_returns: int = 1, **kwargs: Any) -> list[Score]:
            with self.lock:
                self.active += 1
                self.calls += 1
                self.most = max(self.most, self.active)
                first = self.calls <= 3
            try:
                if first and self.respects_num_workers:
                    self.barrier.wait()
                time.sleep(0.01)
                return [Score(param_id=i, params=p, score=function(p), num_objectives=1) for i, p in zip(params_ids, params_pool, strict=True)]
            finally:
                with self.lock:
                    self.active -= 1

    class OneAtATime(Concurrent):
        respects_num_workers: ClassVar[bool] = False

    worker = Concurrent()
    result = search(obj.quadratic, tmp_path, worker).start(num_workers=3)
    assert len(result) == 18 and worker.calls == 18 and worker.most == 3
    single = OneAtATime()
    with pytest.warns(UserWarning, match="num_workers is not supported"):
        search(obj.quadratic, tmp_path, single).start(num_workers=3)
    assert single.calls == 18 and single.most == 1


# ----- determinism, never twice, exhaustion --------------------------------------------------------


@pytest.mark.slow
def test_one_worker_is_deterministic_and_nothing_is_evaluated_twice(tmp_path: Path) -> None:
    runs = [search(obj.quadratic, tmp_path, w).start(num_workers=n) for w, n in [("sequential", None), ("native", 1), ("sequential", None)]]
    assert table(runs[0]) == table(runs[1]) == table(runs[2])
    calls = tmp_path / "calls.txt"
    many = search(Logged(str(calls)), tmp_path, "native", cfg(generations=4)).start(num_workers=3)
    df = many.get_results()
    assert len(df) == 24 and len(calls_of(calls)) == 24 and len(set(calls_of(calls))) == 24


def test_an_exhausted_space_ends_with_a_partial_cohort(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    space = {"x": ss.range(0, 9)}
    with pytest.warns(gt.SearchSpaceExhaustedWarning):
        result = search(lambda p: float(p["x"]), tmp_path, "native", cfg(generations=5), space=space, trackers=[JsonlTracker(log)]).start(num_workers=2)
    df = result.get_results()
    assert sorted(p["x"] for p in df["params"]) == list(range(10))
    kinds = events(log)
    ends = [e for e in kinds if e["event"] == "generation_ends"]
    assert [e["stats"]["generation_evaluations"] for e in ends] == [6, 4]
    assert kinds[-2]["event"] == "search_ends" or kinds[-1]["event"] == "search_ends"
    assert next(e for e in kinds if e["event"] == "search_ends")["reason"] == "exhausted"


# ----- cohorts: trackers and checkpoints -----------------------------------------------------------


def test_trackers_see_one_generation_per_cohort_of_pool_size_results(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    result = search(obj.quadratic, tmp_path, "native", trackers=[JsonlTracker(log)]).start(num_workers=3)
    kinds = events(log)
    order = [(e["event"], e.get("generation")) for e in kinds if e["event"].startswith("generation")]
    assert order == [("generation_starts", 0), ("generation_ends", 0), ("generation_starts", 1), ("generation_ends", 1), ("generation_starts", 2), ("generation_ends", 2)]
    # Between a cohort's start and end: exactly its pool_size results.
    counts: list[int] = []
    for e in kinds:
        if e["event"] == "generation_starts":
            counts.append(0)
        elif e["event"] == "post_objective":
            counts[-1] += 1
    assert counts == [6, 6, 6]
    assert [e["stats"]["evaluations"] for e in kinds if e["event"] == "generation_ends"] == [6, 12, 18]
    assert result.get_results().groupby("generation").size().tolist() == [6, 6, 6]


def test_checkpoints_every_cohort_and_at_a_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[dict[str, Any]] = []
    real = genetune.recorder.write_checkpoint

    def spy(folder: Path, payload: dict[str, Any]) -> Path:
        written.append(payload)
        return real(folder, payload)

    monkeypatch.setattr(genetune.recorder, "write_checkpoint", spy)
    calls = tmp_path / "calls.txt"
    search(Logged(str(calls)), tmp_path).start()
    # at the start, after each of the 3 cohorts (its events durable first), at the end
    assert len(written) >= 5 and [p["schedule_events"] for p in written][1:4] == sorted({p["schedule_events"] for p in written[1:4]})

    written.clear()
    stopped = search(Logged(str(tmp_path / "stop.txt"), stop_at=8), tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        stopped.start()
    last = written[-1]
    engine = gt.Engine.from_bytes(decode_bytes(last["engine"]))
    assert [c.id for c in engine.pending()] == [8]  # the one that was running when it stopped
    assert last["schedule_events"] == len((stopped.run_folder / "schedule.jsonl").read_text().splitlines())  # type: ignore[operator]


# ----- exact resume --------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_at", [0, 5, 6, 13])
def test_a_stopped_search_resumes_to_the_uninterrupted_table(tmp_path: Path, stop_at: int) -> None:
    """Stopped at any point (mid-cohort, at a cohort's first evaluation), the resumed search
    evaluates nothing finished again, re-runs what was running, and ends with the table an
    uninterrupted run with one worker gives."""
    full = search(Logged(str(tmp_path / "full.txt")), tmp_path / "a").start()
    calls = tmp_path / "calls.txt"
    stopped = search(Logged(str(calls), stop_at=stop_at), tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        stopped.start()
    assert len(calls_of(calls)) == stop_at
    resumed = gt.Search.resume(stopped.run_folder, Logged(str(calls)), disable_progress_bar=True)  # type: ignore[arg-type]
    assert table(resumed) == table(full)
    assert calls_of(calls) == calls_of(tmp_path / "full.txt")  # each candidate once, in the same order


@pytest.mark.slow
def test_a_killed_search_with_several_workers_resumes_without_evaluating_twice(tmp_path: Path) -> None:
    """Killed (SIGKILL) with three evaluations in flight: the resumed search keeps every logged
    result, evaluates the rest once each (what was running again) and ends with the budget."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    cache, calls = tmp_path / "runs", tmp_path / "calls.txt"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import genetune as gt
            import objectives as obj
            from steady_objectives import Logged
            if __name__ == "__main__":
                cfg = gt.SearchConfiguration(generations=5, pool_size=8, seed=3)
                gt.Search(Logged({str(calls)!r}), obj.SPACE, cfg, worker_type="native", cache_folder={str(cache)!r},
                          disable_progress_bar=True).start(num_workers=3)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    log: Path | None = None
    while time.monotonic() < deadline and log is None:
        logs = list(cache.glob("*/evaluations.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 15:
            log = logs[0]
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.01)
    assert log is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {row["id"]: row for row in (json.loads(line) for line in log.read_text().splitlines() if line.endswith("}"))}
    resumed = gt.Search.resume(log.parent, worker_type="native", num_workers=3, disable_progress_bar=True)
    df = resumed.get_results()
    assert len(df) == 40 and df["id"].is_unique
    for rid, row in before.items():  # kept as logged
        assert df.set_index("id").loc[rid, "score_1"] == pytest.approx(row["scores"][0])
    evaluated = calls_of(calls)
    assert len(evaluated) <= 40 + 3 and len(set(evaluated)) == 40  # only the ones in flight ran twice


# ----- normalization per placement -----------------------------------------------------------------


class TwoPlacements(BaseWorker):
    """Threads standing for two GPUs: results come from ``gpu0`` until ``switch_at`` candidates
    were handed out, then from ``gpu1``. The baseline of ``gpu1`` finishes only once two other
    evaluations ended after it began: the loop must keep the other slots going meanwhile."""

    baselines_per_placement: ClassVar[bool] = True

    def __init__(self, switch_at: int) -> None:
        self.switch_at = switch_at
        self.handed = 0
        self.lock = threading.Lock()
        self.ended = 0
        self.ended_during_baseline = -1

    def _score(self, function: Callable[[Any], Any], param_id: Any, params: Any, where: str) -> Score:
        return Score(param_id=param_id, params=params, score=function(params), num_objectives=1, metadata={"placement": where})

    def run(self, function: Callable[[Any], Any], params_pool: Sequence[Any], params_ids: Sequence[int | str], num_function_returns: int = 1, **kwargs: Any) -> list[Score]:
        with self.lock:
            self.handed += 1
            where = "host/gpu0" if self.handed <= self.switch_at else "host/gpu1"
        time.sleep(0.02)
        scores = [self._score(function, i, p, where) for i, p in zip(params_ids, params_pool, strict=True)]
        with self.lock:
            self.ended += 1
        return scores

    def measure_baselines(self, function: Callable[[Any], Any], num_function_returns: int, known: Any, **kwargs: Any) -> list[Score]:
        missing = [p for p in ("host/gpu0", "host/gpu1") if p not in known and (p == "host/gpu0" or self.handed > self.switch_at)]
        scores = []
        for where in missing:
            if where == "host/gpu1":
                start = self.ended
                deadline = time.monotonic() + 30
                while self.ended < start + 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.ended_during_baseline = self.ended - start
            scores.append(self._score(function, baseline_id(where), dict(BASELINE_CONFIG), where))
        return scores


def test_a_new_placement_waits_for_its_baseline_beside_the_running_evaluations(tmp_path: Path) -> None:
    worker = TwoPlacements(switch_at=2)
    result = search(obj.with_baseline, tmp_path, worker, cfg(normalize=True)).start(num_workers=3)
    assert worker.ended_during_baseline >= 2  # the other slots went on while gpu1's baseline ran
    df = result.get_results()
    assert sorted(df.query("status == 'baseline'")["id"]) == ["baseline@host/gpu0", "baseline@host/gpu1"]
    rows = df.query("status == 'valid'")
    assert len(rows) == 18 and set(rows["metadata"].map(lambda m: m["placement"])) == {"host/gpu0", "host/gpu1"}
    assert (rows["norm_score_1"] == rows["score_1"] / 10.0).all()


# ----- the search's rules ---------------------------------------------------------------------------


def test_constraints_when_and_warm_start_hold(tmp_path: Path) -> None:
    space = {
        "x": ss.range(-5, 5),
        "y": ss.range(0.0, 1.0, step=0.05),
        "opt": {"level": ss.choice(["-O1", "-O2", "-O3"])},
        "unroll": ss.range(1, 8, when={"opt.level": ["-O3"]}),
    }
    warm = [{"x": 2, "y": 0.3, "opt": {"level": "-O3"}, "unroll": 2}]
    result = search(
        obj.quadratic, tmp_path, "native", cfg(generations=3), space=space, warm_start=warm,
        constraints=["x >= -3", lambda p: p["x"] != 0],
    ).start(num_workers=3)
    df = result.get_results()
    assert df.sort_values("id")["params"].iloc[0] == warm[0]
    for params in df["params"]:
        assert params["x"] >= -3 and params["x"] != 0
        assert ("unroll" in params) == (params["opt"]["level"] == "-O3")
    assert df["params"].map(lambda p: json.dumps(p, sort_keys=True)).is_unique


def test_the_generational_schedule_stops_and_resumes_as_before(tmp_path: Path) -> None:
    """A generational run's checkpoints say so (no schedule events), as those written before the
    steady schedule existed: resume continues it generation by generation."""
    config = cfg(schedule="generational")
    full = search(Logged(str(tmp_path / "full.txt")), tmp_path / "a", config=config).start()
    calls = tmp_path / "calls.txt"
    stopped = search(Logged(str(calls), stop_at=9), tmp_path / "b", config=config)
    with pytest.raises(KeyboardInterrupt):
        stopped.start()
    assert stopped.run_folder is not None
    checkpoint = json.loads((stopped.run_folder / "checkpoint.json").read_text())
    assert checkpoint["schedule_events"] is None and not (stopped.run_folder / "schedule.jsonl").exists()
    resumed = gt.Search.resume(stopped.run_folder, Logged(str(calls)), disable_progress_bar=True)
    assert table(resumed) == table(full)


def test_the_schedule_log_drops_a_torn_last_line_and_refuses_damage_in_the_middle(tmp_path: Path) -> None:
    from genetune.schedule_log import SCHEDULE_FILE, ScheduleLog

    log = ScheduleLog(tmp_path)
    log.asked(2, [0, 1])
    log.told(0, [1.5])
    log.close()
    path = tmp_path / SCHEDULE_FILE
    path.write_text(path.read_text() + '{"tell": 1, "sco')  # a kill in the middle of a line
    again = ScheduleLog(tmp_path)
    assert again.count == 2 and again.events() == [{"ask": 2, "ids": [0, 1]}, {"tell": 0, "scores": [1.5]}]
    again.told(1, [float("nan")])  # appended after the cut, not glued to it
    again.close()
    assert len(ScheduleLog(tmp_path).events()) == 3
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is damaged"):
        ScheduleLog(tmp_path)
