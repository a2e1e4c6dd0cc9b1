"""Run folders cut by crashes and power losses: nothing that was complete on disk is lost, nothing
counted twice, every error names its file; results files are written atomically."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import genetune as gt
from genetune.checkpoint import CHECKPOINT_FILE, EVALUATIONS_FILE, PREVIOUS_CHECKPOINT_FILE, EvaluationLog, read_checkpoint
from genetune.schedule_log import SCHEDULE_FILE
from tests_support import table

import objectives as obj

CFG = {"generations": 4, "pool_size": 6, "seed": 3}

# A search on the sequential worker (in the driver's process) that dies like a power loss at its
# CRASH_AT-th evaluation: os._exit, nothing flushed or closed.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    import genetune as gt
    import objectives as obj

    calls = 0

    def dying(params):
        global calls
        calls += 1
        if calls == int(os.environ["CRASH_AT"]):
            os._exit(9)
        return obj.quadratic(params)

    if __name__ == "__main__":
        cfg = gt.SearchConfiguration(**{cfg!r}, schedule=os.environ["SCHEDULE"])
        if sys.argv[1] == "start":
            gt.Search(dying, obj.SPACE, cfg, worker_type="sequential", cache_folder=sys.argv[2], disable_progress_bar=True).start()
        else:
            gt.Search.resume(sys.argv[2], dying, worker_type="sequential", disable_progress_bar=True)
    """
).format(cfg=CFG)


def _run(tmp: Path, *args: str, crash_at: int, schedule: str) -> int:
    script = tmp / "search.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "CRASH_AT": str(crash_at), "SCHEDULE": schedule, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, timeout=120).returncode


def _complete_rows(log: Path) -> dict[Any, dict[str, Any]]:
    rows = {}
    for line in log.read_bytes().split(b"\n")[:-1]:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        rows[row["id"]] = row
    return rows


def _cut(path: Path, rng: random.Random, synced: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randint(synced, len(data))])


def _power_loss(folder: Path, rng: random.Random) -> None:
    """What a power loss can leave: each log cut at a random byte after what was synced (the
    last checkpoint's events and rows; under the steady loop, the schedule also up to the ask of
    every row still in the evaluation log: it is synced before a row is appended), and
    sometimes the checkpoint cut too."""
    log = folder / EVALUATIONS_FILE
    lines = log.read_bytes().split(b"\n")[:-1]
    checkpoint = json.loads((folder / CHECKPOINT_FILE).read_text())
    schedule = folder / SCHEDULE_FILE
    if checkpoint["schedule_events"] is None:  # generational: whole generations are synced
        durable = [json.loads(line)["generation"] < checkpoint["generation"] for line in lines]
    else:
        events = [json.loads(line) for line in schedule.read_bytes().split(b"\n")[:-1]]
        told = {e["tell"] for e in events[: checkpoint["schedule_events"]] if "tell" in e}
        durable = [json.loads(line)["id"] in told for line in lines]
    synced = sum(len(line) + 1 for line in lines[: durable.index(False) if False in durable else len(lines)])
    _cut(log, rng, synced)
    if checkpoint["schedule_events"] is not None:
        kept = {json.loads(line)["id"] for line in log.read_bytes().split(b"\n")[:-1] if line}
        asks = [n for n, e in enumerate(events, 1) if "ask" in e and kept & set(e["ids"])]
        keep = max([checkpoint["schedule_events"], *asks])
        _cut(schedule, rng, sum(len(line) + 1 for line in schedule.read_bytes().split(b"\n")[:keep]))
    if rng.random() < 0.5 and (folder / PREVIOUS_CHECKPOINT_FILE).exists():
        data = (folder / CHECKPOINT_FILE).read_bytes()
        (folder / CHECKPOINT_FILE).write_bytes(data[: rng.randint(0, len(data) - 1)])


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["steady", "generational"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_power_losses_in_a_row_lose_no_complete_row(tmp_path: Path, seed: int, schedule: str) -> None:
    rng = random.Random(seed)
    cache = tmp_path / "runs"
    assert _run(tmp_path, "start", str(cache), crash_at=rng.randint(8, 14), schedule=schedule) == 9
    (folder,) = cache.iterdir()
    ever_complete: dict[Any, dict[str, Any]] = {}
    _power_loss(folder, rng)
    ever_complete.update(_complete_rows(folder / EVALUATIONS_FILE))
    assert _run(tmp_path, "resume", str(folder), crash_at=rng.randint(3, 7), schedule=schedule) == 9
    _power_loss(folder, rng)
    ever_complete.update(_complete_rows(folder / EVALUATIONS_FILE))
    with warnings.catch_warnings(record=True):  # cut lines removed, a checkpoint replaced: each named
        warnings.simplefilter("always")
        resumed = gt.Search.resume(folder, obj.quadratic, worker_type="sequential", disable_progress_bar=True)
    df = resumed.get_results()
    assert len(df) == CFG["generations"] * CFG["pool_size"] and df["id"].is_unique
    for candidate_id, row in ever_complete.items():
        assert row["scores"] == [float(df.loc[df["id"] == candidate_id, "score_1"].iloc[0])]
    cfg = gt.SearchConfiguration(**CFG, schedule=schedule)
    fresh = gt.Search(obj.quadratic, obj.SPACE, cfg, worker_type="sequential", cache_folder=tmp_path / "fresh", disable_progress_bar=True).start()
    assert table(resumed) == table(fresh)
    assert all(len(line) and json.loads(line) for line in (folder / EVALUATIONS_FILE).read_bytes().split(b"\n")[:-1])


def _crashed_steady_folder(tmp_path: Path) -> Path:
    """A steady search killed at its 16th evaluation (cohort 2 of pool 6 under way)."""
    assert _run(tmp_path, "start", str(tmp_path / "runs"), crash_at=16, schedule="steady") == 9
    (folder,) = (tmp_path / "runs").iterdir()
    return folder


def test_a_tell_whose_row_was_lost_is_cut_from_the_schedule_and_runs_again(tmp_path: Path) -> None:
    """The schedule reached the disk further than the evaluation log: the candidate whose row is
    gone is pending again (named in a warning) and the result equals an uninterrupted run's."""
    folder = _crashed_steady_folder(tmp_path)
    log = folder / EVALUATIONS_FILE
    lines = log.read_bytes().split(b"\n")[:-1]
    log.write_bytes(b"\n".join(lines[:-1]) + b"\n")
    lost = json.loads(lines[-1])["id"]
    with pytest.warns(UserWarning, match=rf"{SCHEDULE_FILE}: dropped events .*candidate {lost} was told but its evaluation is not in the evaluation log"):
        resumed = gt.Search.resume(folder, obj.quadratic, worker_type="sequential", disable_progress_bar=True)
    fresh = gt.Search(obj.quadratic, obj.SPACE, gt.SearchConfiguration(**CFG), worker_type="sequential", cache_folder=tmp_path / "fresh", disable_progress_bar=True).start()
    assert table(resumed) == table(fresh)


def test_an_evaluation_the_schedule_never_asked_is_refused_with_the_file(tmp_path: Path) -> None:
    folder = _crashed_steady_folder(tmp_path)
    schedule = folder / SCHEDULE_FILE
    events = schedule.read_bytes().split(b"\n")[:-1]
    synced = json.loads((folder / CHECKPOINT_FILE).read_text())["schedule_events"]
    schedule.write_bytes(b"\n".join(events[:synced]) + b"\n")  # asks synced before their rows, erased
    with pytest.raises(gt.StateError, match=rf"{SCHEDULE_FILE}: the evaluation log holds candidates"):
        gt.Search.resume(folder, obj.quadratic, worker_type="sequential", disable_progress_bar=True)


def _finished_folder(tmp_path: Path) -> Path:
    search = gt.Search(obj.quadratic, obj.SPACE, gt.SearchConfiguration(**CFG), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True)
    search.start()
    assert search.run_folder is not None
    return search.run_folder


@pytest.mark.parametrize("junk", [b"garbage\n", b"\xff\xfe\x00binary\n", b'{"id": 1}\n'])
def test_a_damaged_line_in_the_middle_is_skipped_with_its_file_and_line(tmp_path: Path, junk: bytes) -> None:
    folder = _finished_folder(tmp_path)
    log = folder / EVALUATIONS_FILE
    lines = log.read_bytes().split(b"\n")[:-1]
    log.write_bytes(b"\n".join(lines[:5]) + b"\n" + junk + b"\n".join(lines[5:]) + b"\n")
    with pytest.warns(UserWarning, match=rf"{EVALUATIONS_FILE}, line 6: skipped a damaged line"):
        rows = list(EvaluationLog(folder).rows())
    assert len(rows) == len(lines)


def test_a_cut_tail_is_removed_before_the_next_row(tmp_path: Path) -> None:
    folder = _finished_folder(tmp_path)
    log = folder / EVALUATIONS_FILE
    whole = log.read_bytes()
    log.write_bytes(whole + b'{"id": 99, "gen')
    appender = EvaluationLog(folder)
    with pytest.warns(UserWarning, match=rf"{EVALUATIONS_FILE}: removed a last line cut short by a crash \(15 bytes"):
        appender.append({"id": 100, "status": "valid", "generation": 9})
    appender.close()
    assert log.read_bytes() == whole + b'{"id": 100, "status": "valid", "generation": 9}\n'


@pytest.mark.parametrize("content", [b"", b'{"format": 1, "gener', b"\xff\xfe"])
def test_a_damaged_checkpoint_is_named(tmp_path: Path, content: bytes) -> None:
    folder = _finished_folder(tmp_path)
    (folder / CHECKPOINT_FILE).write_bytes(content)
    (folder / PREVIOUS_CHECKPOINT_FILE).unlink()
    with pytest.raises(ValueError, match=rf"{folder / CHECKPOINT_FILE}: damaged checkpoint"):
        gt.Search.resume(folder, obj.quadratic, worker_type="sequential")


def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    folder = _finished_folder(tmp_path)
    before = table(gt.SearchResult.from_csv(folder / "results.csv"))
    previous = json.loads((folder / PREVIOUS_CHECKPOINT_FILE).read_text())
    (folder / CHECKPOINT_FILE).write_bytes(b'{"format": 1, "gen')
    with pytest.warns(UserWarning, match=f"resuming from .*{PREVIOUS_CHECKPOINT_FILE}"):
        assert read_checkpoint(folder) == previous
        resumed = gt.Search.resume(folder, obj.quadratic, worker_type="sequential", disable_progress_bar=True)
    assert table(resumed) == before


def test_a_full_disk_reports_the_first_failure_and_leaves_no_partial_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint write fails (ENOSPC); results.csv then fails too: the first error is the
    one raised, the earlier results.csv is intact, the folder resumes to the whole table."""
    import genetune.checkpoint as checkpoint

    search = gt.Search(obj.quadratic, obj.SPACE, gt.SearchConfiguration(**CFG), worker_type="sequential", cache_folder=tmp_path, disable_progress_bar=True, dump_results=tmp_path / "dump.csv")
    real_dump = json.dump
    writes = {"n": 0}

    def full_disk_dump(value: Any, handle: Any, **kw: Any) -> None:
        writes["n"] += 1
        if writes["n"] >= 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_dump(value, handle, **kw)

    real_to_csv = pd.DataFrame.to_csv

    def full_disk_csv(self: Any, handle: Any, **kw: Any) -> Any:
        if writes["n"] >= 4:
            handle.write("generation,id,par")
            raise OSError(errno.ENOSPC, "No space left on device (csv)")
        return real_to_csv(self, handle, **kw)

    monkeypatch.setattr(checkpoint.json, "dump", full_disk_dump)
    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk_csv)
    with pytest.warns(UserWarning, match="results.csv not written"), pytest.raises(OSError, match=r"No space left on device$"):
        search.start()
    monkeypatch.undo()
    dumped = (tmp_path / "dump.csv").read_text()
    assert dumped.endswith("\n") and len(gt.SearchResult.from_csv(tmp_path / "dump.csv").get_results()) == CFG["pool_size"]  # the generation before the failure
    assert search.run_folder is not None
    assert not (search.run_folder / "results.csv").exists()
    assert not [p for p in tmp_path.rglob("*.tmp")]
    resumed = gt.Search.resume(search.run_folder, obj.quadratic, worker_type="sequential", disable_progress_bar=True)
    assert len(resumed.get_results()) == CFG["generations"] * CFG["pool_size"]
    shutil.rmtree(search.run_folder)
