"""SIGTERM (a batch scheduler, Kubernetes) stops a search as Ctrl-C does: evaluations stopped,
checkpoint and results.csv written, ``search_ends`` with reason ``stopped``; a second signal
exits at once; through ``genetune run`` the temporary Prefect server and the cluster stop too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import genetune as gt

import group_objectives as gobj

HERE = Path(__file__).parent

SCRIPT = textwrap.dedent(
    """
    import functools, sys, time
    import genetune as gt
    import group_objectives as gobj
    from genetune.trackers.jsonl import JsonlTracker

    class SlowEnd:
        def search_ends(self, reason, summary):
            open(sys.argv[3] + ".ending", "w").close()
            time.sleep(120)

    if __name__ == "__main__":
        worker = gt.DaskWorker(n_workers=1) if sys.argv[1] == "dask" else sys.argv[1]
        trackers = [JsonlTracker(sys.argv[3])] + ([SlowEnd()] if len(sys.argv) > 4 else [])
        search = gt.Search(functools.partial(gobj.sleeps_then_scores, sys.argv[2]), gobj.SPACE, gt.SearchConfiguration(generations=3, pool_size=6, seed=1),
                           worker_type=worker, cache_folder=sys.argv[2] + "/runs", trackers=trackers, disable_progress_bar=True)
        try:
            search.start(num_workers=2, task_timeout=120)
        except KeyboardInterrupt as err:
            print("interrupted:", type(err).__name__, err, flush=True)
            sys.exit(3)
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def _wait_for(predicate: object, within: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _all_gone(processes: list[psutil.Process], within: float = 15.0) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=within)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("worker", ["sequential", "native", "isolated", pytest.param("dask", marks=pytest.mark.slow)])
def test_sigterm_stops_the_search_cleanly(tmp_path: Path, worker: str) -> None:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), worker, str(tmp_path), str(events)], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    _wait_for(lambda: len(list(tmp_path.glob("started-*"))) >= 2 and len(list(tmp_path.glob("runs/*/evaluations.jsonl"))) == 1, 180, proc)
    _wait_for(lambda: len(next(tmp_path.glob("runs/*/evaluations.jsonl")).read_text().splitlines()) >= 1, 60, proc)
    before = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and "interrupted: SearchStopped stopped by SIGTERM" in out, err[-3000:]
    kinds = [json.loads(line) for line in events.read_text().splitlines()]
    assert kinds[-1]["event"] == "search_ends" and kinds[-1]["reason"] == "stopped", kinds[-1]
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "results.csv").is_file()
    sleepers = [int(p.name.split("-", 1)[1]) for p in tmp_path.glob("started-*")]
    if worker == "sequential":  # the objective ran in the driver: what it started is its own business
        for pid in sleepers:
            if gobj.alive(pid):
                os.kill(pid, signal.SIGKILL)
    else:
        assert _all_gone(before) == []
        assert not [pid for pid in sleepers if gobj.alive(pid)]
    resumed = gt.Search.resume(folder, gobj.score, worker_type="sequential", disable_progress_bar=True, trackers=[])
    assert len(resumed.get_results()) == 18


def test_a_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), "sequential", str(tmp_path), str(events), "slow-end"], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    _wait_for(lambda: len(list(tmp_path.glob("started-*"))) >= 1, 120, proc)
    proc.send_signal(signal.SIGTERM)
    _wait_for(lambda: Path(f"{events}.ending").exists(), 60, proc)  # stopping: the slow tracker holds it
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)  # not the tracker's 120 s
    assert proc.returncode == -signal.SIGTERM


@pytest.mark.slow
def test_sigterm_through_genetune_run_stops_the_server_and_the_cluster(tmp_path: Path) -> None:
    from test_cli import fresh_prefect_env, write_job

    job = write_job(tmp_path, objective="sleep 2; echo {x}", search_config={"generations": 3, "pool_size": 6, "seed": 1}, n_workers=2)
    proc = subprocess.Popen([sys.executable, "-m", "genetune", "run", str(job)], env=fresh_prefect_env(tmp_path), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    _wait_for(lambda: any(p.read_text().strip() for p in (tmp_path / "runs").glob("*/evaluations.jsonl")), 480, proc)
    before = _descendants(proc.pid)
    assert before  # the server, the cluster's processes, the evaluations
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "genetune: stopped by SIGTERM" in err and "Traceback" not in err, err[-3000:]
    assert _all_gone(before) == []
    (folder,) = (tmp_path / "runs").iterdir()
    assert (folder / "results.csv").is_file()
    ends = [json.loads(line) for line in (folder / "run_log.jsonl").read_text().splitlines() if '"search_ends"' in line]
    assert ends and ends[-1]["reason"] == "stopped"
