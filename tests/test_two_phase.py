"""Two-phase objectives on real workers: builds overlap, measurements never do (per host),
a crash or timeout while measuring makes the candidate INVALID, waiting for the measuring
slot never counts toward task_timeout."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster

import genetune as gt
from genetune.objectives import MeasuredObjective, TwoPhase
from genetune.workers.dask_worker import DaskWorker

from noise_objectives import SPACE, Phased, overlaps, read_phases, true_value
from tests_support import config

pytestmark = pytest.mark.timeout(240)

PARAMS = [{"x": x, "y": 3} for x in (0, 2, 4, 6, 8, 10, 12, 11)]


@pytest.fixture(autouse=True)
def private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock folder of the test's own (inherited by worker processes started afterwards)."""
    monkeypatch.setenv("GENETUNE_LOCK_FOLDER", str(tmp_path / "locks"))


def _check_phases(log_dir: Path, n: int) -> None:
    phases = read_phases(str(log_dir))
    builds = [p for p in phases if p["phase"] == "build"]
    measures = [p for p in phases if p["phase"] == "measure"]
    assert len(builds) == n and len(measures) == n
    for host in {p["host"] for p in measures}:
        assert overlaps([p for p in measures if p["host"] == host]) == 0, "two measurements overlapped on one host"
    assert overlaps(builds) > 0, "builds should run at once"
    assert len({p["pid"] for p in builds}) > 1


def _run(worker: Any, objective: Any, params: list[dict[str, Any]] = PARAMS, **kwargs: Any) -> dict[Any, gt.Score]:
    scores = worker.run(MeasuredObjective(objective), params, list(range(len(params))), 1, **kwargs)
    return {s.param_id: s for s in scores}


def test_process_pool_builds_at_once_and_measures_alone(tmp_path: Path) -> None:
    worker = gt.MultiProcessWorker()
    try:
        scores = _run(worker, Phased(str(tmp_path)), num_workers=3)
    finally:
        worker.close()
    _check_phases(tmp_path, len(PARAMS))
    for i, p in enumerate(PARAMS):
        assert scores[i].score == true_value(p)
        meta = scores[i].metadata_dict()
        assert meta["build_s"] >= 0.15 and meta["measurements"] == [true_value(p)]


def test_process_pool_build_failure_crash_and_timeout_while_measuring(tmp_path: Path) -> None:
    params = [{"x": 13, "y": 0}, {"x": 14, "y": 0}, {"x": 1, "y": 1}, {"x": 2, "y": 2}]
    worker = gt.MultiProcessWorker()
    try:
        scores = _run(worker, Phased(str(tmp_path)), params, num_workers=2, task_timeout=5)
        (tmp_path / "slow").mkdir()
        slow = _run(worker, Phased(str(tmp_path / "slow"), build_s=0.01, measure_s=3.0), params[2:3], num_workers=2, task_timeout=1)
    finally:
        worker.close()
    assert scores[0].reason.startswith("exception: RuntimeError: cannot build x=13")
    assert scores[1].reason == "crashed: exit code 3"
    assert scores[2].score == true_value(params[2]) and scores[3].score == true_value(params[3])
    assert slow[0].reason == "timeout: killed after 1 s"


def test_process_pool_wait_for_the_slot_is_not_part_of_the_timeout(tmp_path: Path) -> None:
    # 6 measurements of 0.5 s one after the other: the last waits ~2.5 s, far past the 1 s timeout.
    params = [{"x": x, "y": 0} for x in range(6)]
    worker = gt.MultiProcessWorker()
    try:
        scores = _run(worker, Phased(str(tmp_path), build_s=0.01, measure_s=0.5), params, num_workers=6, task_timeout=1.0)
    finally:
        worker.close()
    assert all(not s.failed for s in scores.values()), [s.reason for s in scores.values()]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """2 worker processes x 2 threads (the lock folder is the default one: /tmp)."""
    with LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as c:
        yield c


@pytest.mark.parametrize("isolate", [False, True])
def test_local_cluster_builds_on_every_slot_and_measures_alone(cluster: LocalCluster, tmp_path: Path, isolate: bool) -> None:
    worker = DaskWorker(address=cluster.scheduler_address, isolate=isolate)
    try:
        scores = _run(worker, Phased(str(tmp_path)), task_timeout=30 if isolate else None)
    finally:
        worker.close()
    _check_phases(tmp_path, len(PARAMS))
    assert all(not s.failed for s in scores.values())
    assert len({s.metadata_dict()["dask_worker"] for s in scores.values()}) == 2


def test_local_cluster_isolated_wait_is_not_part_of_the_timeout_and_crash_is_invalid(cluster: LocalCluster, tmp_path: Path) -> None:
    params = [{"x": x, "y": 0} for x in (1, 2, 3, 14)]
    worker = DaskWorker(address=cluster.scheduler_address)
    try:
        scores = _run(worker, Phased(str(tmp_path), build_s=0.01, measure_s=0.8), params, task_timeout=1.5)
    finally:
        worker.close()
    assert [scores[i].failed for i in range(3)] == [False] * 3, [s.reason for s in scores.values()]
    assert scores[3].reason == "crashed: exit code 3"


@pytest.mark.slow
def test_real_dask_processes_measure_one_at_a_time_per_host(tmp_path: Path) -> None:
    """Real `dask scheduler` and 3 `dask worker` processes on this host: every build slot
    builds, the host's measurements never overlap, and a whole search runs that way."""
    from test_dask_worker import DaskProcesses

    with DaskProcesses(tmp_path, GENETUNE_LOCK_FOLDER=str(tmp_path / "locks")) as dask_processes:
        dask_processes.scheduler()
        for i in range(3):
            dask_processes.worker(f"w{i}")
        dask_processes.wait_for_workers(3)
        logs = tmp_path / "phases"
        logs.mkdir()
        objective = Phased(str(logs), build_s=0.1, measure_s=0.05)
        search = gt.Search(
            objective, SPACE, config(generations=2, pool_size=8, seed=5, remeasure_top=2, remeasure_repeats=3),
            worker_type=DaskWorker(address=dask_processes.address), cache_folder=tmp_path, disable_progress_bar=True,
            exit_on_failure=False,
        )
        result = search.start()
    phases = read_phases(str(logs))
    measures = [p for p in phases if p["phase"] == "measure"]
    builds = [p for p in phases if p["phase"] == "build"]
    assert {p["host"] for p in measures} == {socket.gethostname()}
    assert overlaps(measures) == 0
    # (x=14 crashes its Dask worker process, which its nanny restarts: new pids)
    assert overlaps(builds) > 0 and len({p["pid"] for p in builds}) >= 3
    best = result.get_best_result()
    assert best["remeasured_n"] == 3
    assert best["remeasured_mean"] == pytest.approx(true_value(best["params"]))


def test_two_phase_search_on_the_process_pool_with_repeats(tmp_path: Path) -> None:
    objective = TwoPhase(lambda p: true_value(p), lambda built: built)
    result = gt.Search(
        objective, SPACE, config(seed=2, repeats=3), worker_type="native", cache_folder=tmp_path, disable_progress_bar=True
    ).start(num_workers=2)
    df = result.get_results()
    assert (df["status"] == "valid").all()
    assert all(m["measurements"] == [s] * 3 for m, s in zip(df["metadata"], df["score_1"], strict=True))
    assert os.environ["GENETUNE_LOCK_FOLDER"].endswith("locks")


def _apart(phases: list[dict[str, Any]]) -> bool:
    """No measurement overlaps any build (or another measurement) on its host."""
    measures = [p for p in phases if p["phase"] == "measure"]
    return all(
        not (b["start"] < m["end"] - 1e-4 and m["start"] < b["end"] - 1e-4)
        for m in measures
        for b in phases
        if b is not m and b["host"] == m["host"]
    )


def test_quiet_process_pool_never_measures_while_building(tmp_path: Path) -> None:
    worker = gt.MultiProcessWorker()
    try:
        scores = worker.run(MeasuredObjective(Phased(str(tmp_path)), quiet=True), PARAMS, list(range(len(PARAMS))), 1, num_workers=3)
    finally:
        worker.close()
    phases = read_phases(str(tmp_path))
    assert _apart(phases)
    assert overlaps([p for p in phases if p["phase"] == "build"]) > 0  # builds still run at once
    assert all(not s.failed for s in scores)


@pytest.mark.parametrize("isolate", [False, True])
def test_quiet_local_cluster_never_measures_while_building(cluster: LocalCluster, tmp_path: Path, isolate: bool) -> None:
    worker = DaskWorker(address=cluster.scheduler_address, isolate=isolate)
    try:
        scores = _run_quiet(worker, Phased(str(tmp_path)), task_timeout=30 if isolate else None)
    finally:
        worker.close()
    phases = read_phases(str(tmp_path))
    assert len(phases) == 2 * len(PARAMS)
    assert _apart(phases)
    assert overlaps([p for p in phases if p["phase"] == "build"]) > 0
    assert all(not s.failed for s in scores.values())


def _run_quiet(worker: Any, objective: Any, **kwargs: Any) -> dict[Any, gt.Score]:
    scores = worker.run(MeasuredObjective(objective, quiet=True), PARAMS, list(range(len(PARAMS))), 1, **kwargs)
    return {s.param_id: s for s in scores}


def test_quiet_measurements_setting_reaches_the_workers(tmp_path: Path) -> None:
    search = gt.Search(Phased(str(tmp_path)), SPACE, config(quiet_measurements=True))
    shipped = search._shipped_objective()
    assert shipped.quiet and shipped.two_phase
