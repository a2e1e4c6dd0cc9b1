"""`DaskWorker` on real Dask clusters (all on 127.0.0.1, all stopped at the end): equality with
the sequential worker, GPU resources, fail-fast, timeouts in child processes, crashes, a Dask
worker killed mid-generation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import distributed  # noqa: F401 - a dependency of genetune; the tests must never skip

import dask  # noqa: E402
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster  # noqa: E402

import genetune as gt  # noqa: E402
from genetune.exceptions import ObjectiveReturnError  # noqa: E402
from genetune.workers import worker_from_reference, worker_reference  # noqa: E402
from genetune.workers.base import EvaluationSlots  # noqa: E402
from genetune.workers.dask_worker import DaskWorker  # noqa: E402
from tests_support import config as small_config  # noqa: E402
from tests_support import free_port, table  # noqa: E402

import dask_objectives as dobj  # noqa: E402
import objectives as obj  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
pytestmark = pytest.mark.timeout(180)
#: Schedulers serve HTTP (health, metrics) even without a dashboard: on a free port, not 8787.
NO_HTTP_PORT = {"dashboard_address": "127.0.0.1:0"}


def config(**kw: Any) -> gt.SearchConfiguration:
    return small_config(**{"seed": 7, **kw})


def search(objective: Any, worker: Any, tmp: Path, cfg: gt.SearchConfiguration | None = None, **kw: Any) -> gt.Search:
    return gt.Search(objective, obj.SPACE, cfg or config(), worker_type=worker, cache_folder=tmp, disable_progress_bar=True, **kw)


def sequential_table(tmp: Path, cfg: gt.SearchConfiguration | None = None) -> list[tuple[Any, ...]]:
    return table(search(obj.quadratic, "sequential", tmp, cfg).start())


def evaluated_right(result: gt.SearchResult, cfg: gt.SearchConfiguration | None = None, normalized: bool = False) -> bool:
    """Every candidate of the budget evaluated once, each score (normalized per GPU: the
    objective + 1) that of ``objectives.quadratic`` on its params. (With several slots the steady
    schedule's candidates follow the order results arrive in, so they are not the sequential
    worker's: the generational schedule's tests compare whole tables.)"""
    cfg = cfg or config()
    df = result.get_results()
    df = df[df["status"] != "baseline"]
    keys = df["params"].map(lambda p: json.dumps(p, sort_keys=True))
    if normalized:
        right = all(row.norm_score_1 == pytest.approx(obj.quadratic(row.params) + 1.0) for row in df.itertuples())
    else:
        right = all(row.score_1 == obj.quadratic(row.params) for row in df.itertuples())
    return right and len(df) == cfg.generations * (cfg.pool_size or 0) and df["id"].is_unique and keys.is_unique


def metadata(result: gt.SearchResult) -> list[dict[str, Any]]:
    return list(result.get_results()["metadata"])


# ----- clusters shared by the module -------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_cluster() -> Iterator[LocalCluster]:
    """2 worker processes × 2 threads, no resources declared."""
    with LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None, scheduler_kwargs=NO_HTTP_PORT
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[SpecCluster]:
    """dask-cuda's layout with fake GPUs: one worker per GPU (2 threads each, so only the GPU
    resource limits it to one evaluation at a time) and a rotated CUDA_VISIBLE_DEVICES."""
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False, **NO_HTTP_PORT}}
    workers = {
        f"gpu-{i}": {
            "cls": Nanny,
            "options": {"host": "127.0.0.1", "nthreads": 2, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": f"{i},{1 - i}"}},
        }
        for i in range(2)
    }
    with SpecCluster(scheduler=scheduler, workers=workers) as cluster, Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        yield cluster


def worker_pids(address: str) -> set[int]:
    with Client(address, set_as_default=False) as client:
        return set(client.run(os.getpid).values())


# ----- 1. a local cluster gives the sequential worker's table -----------------------------------


def test_local_cluster_matches_sequential(tmp_path: Path) -> None:
    worker = DaskWorker()
    result = search(obj.quadratic, worker, tmp_path).start(num_workers=2)
    assert evaluated_right(result)
    generational = config(schedule="generational")
    assert table(search(obj.quadratic, worker, tmp_path, generational).start(num_workers=2)) == sequential_table(tmp_path, generational)
    meta = metadata(result)
    assert len(meta) == 24
    for m in meta:
        assert m["worker"] == "DaskWorker"
        assert m["dask_worker"].startswith("tcp://127.0.0.1:")
        assert m["dask_worker_name"] in (0, 1)  # a LocalCluster of num_workers=2 workers
        assert isinstance(m["pid"], int) and m["node"] == socket.gethostname()
    assert len({m["pid"] for m in meta}) <= 2
    # The search closed the cluster it started; the worker can run again (a new cluster).
    assert worker.client is None
    again = search(obj.quadratic, worker, tmp_path, config(generations=1)).start(num_workers=1)
    assert {m["dask_worker_name"] for m in metadata(again)} == {0}
    assert worker.client is None


# ----- 2. GPU resources: one evaluation per GPU at a time -----------------------------------------


def overlaps(meta: list[dict[str, Any]]) -> dict[str, int]:
    """Per Dask worker, how many pairs of its evaluations ran at the same time."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for m in meta:
        by_worker.setdefault(m["dask_worker"], []).append((m["metrics"]["t_start"], m["metrics"]["t_end"]))
    out = {}
    for address, intervals in by_worker.items():
        intervals.sort()
        out[address] = sum(1 for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False) if start < end)
    return out


def test_gpu_resource_limits_each_worker_to_one_evaluation(gpu_cluster: SpecCluster, tmp_path: Path) -> None:
    worker = DaskWorker(address=gpu_cluster.scheduler_address, resources={"GPU": 1})
    with pytest.warns(UserWarning, match="num_workers is ignored"):
        result = search(dobj.timed, worker, tmp_path).start(num_workers=8)
    assert evaluated_right(result)
    meta = metadata(result)
    assert overlaps(meta) == dict.fromkeys({m["dask_worker"] for m in meta}, 0)
    # Both GPUs were used, each evaluation saw its worker's GPU.
    assert {(m["dask_worker_name"], m["gpu"]) for m in meta} == {("gpu-0", "0,1"), ("gpu-1", "1,0")}
    # The user's cluster survives the search.
    with Client(gpu_cluster.scheduler_address, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2

    # Control: without the resource the same workers run 2 evaluations at once (2 threads).
    free = DaskWorker(address=gpu_cluster.scheduler_address)
    pool = [{"x": x, "y": 0.5, "opt": {"level": "-O2"}} for x in range(-4, 4)]
    scores = free.run(dobj.timed, pool, list(range(8)), 1)
    free.close()
    assert sum(overlaps([s.metadata for s in scores if isinstance(s.metadata, dict)]).values()) > 0


# ----- 3. a resource no worker offers fails at once -----------------------------------------------


def test_missing_resource_fails_fast(plain_cluster: LocalCluster, gpu_cluster: SpecCluster, tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"no Dask worker offers the resources .*missing GPU=1") as info:
        search(obj.quadratic, DaskWorker(address=plain_cluster.scheduler_address, resources={"GPU": 1}), tmp_path).start()
    assert "{}" in str(info.value)  # names what the workers offer: nothing
    with pytest.raises(ValueError, match=r"missing GPU=2.*'GPU': 1"):
        search(obj.quadratic, DaskWorker(address=gpu_cluster.scheduler_address, resources={"GPU": 2}), tmp_path).start()
    assert time.perf_counter() - started < 20
    with pytest.raises(ValueError, match="positive"):
        DaskWorker(resources={"GPU": 0})


def test_local_cluster_with_resources(tmp_path: Path) -> None:
    cfg = config(generations=1)
    with pytest.raises(ValueError, match=r"missing GPU=1.*cluster_kwargs"):
        search(obj.quadratic, DaskWorker(n_workers=1, resources={"GPU": 1}), tmp_path, cfg).start()
    worker = DaskWorker(n_workers=1, resources={"GPU": 1}, cluster_kwargs={"resources": {"GPU": 1}})
    result = search(obj.quadratic, worker, tmp_path, cfg).start()
    assert evaluated_right(result, cfg)
    assert worker.client is None


# ----- 4. timeouts kill a hung C call -------------------------------------------------------------


def test_timeout_kills_a_call_hung_in_c(plain_cluster: LocalCluster, tmp_path: Path) -> None:
    worker = DaskWorker(address=plain_cluster.scheduler_address)
    started = time.perf_counter()
    result = search(obj.hangs_in_c, worker, tmp_path, config(generations=1, pool_size=8)).start(task_timeout=2)
    elapsed = time.perf_counter() - started
    df = result.get_results()
    hung = df[[p["x"] <= 0 for p in df["params"]]]
    assert len(hung) > 0 and len(hung) < len(df)
    assert all(r.startswith("timeout: killed after 2 s") for r in hung["reason"])
    ok = df[[p["x"] > 0 for p in df["params"]]]
    assert list(ok["score_1"]) == [float(p["x"]) for p in ok["params"]]
    assert elapsed < 25, elapsed  # 30 s per hung call otherwise
    assert all(m["dask_worker"].startswith("tcp://127.0.0.1:") for m in df["metadata"])


def test_isolated_evaluations_crash_and_fail_per_candidate(plain_cluster: LocalCluster) -> None:
    address = plain_cluster.scheduler_address
    pool = [{"x": -1}, {"x": 5}, {"x": 4}, {"x": 3}]
    worker = DaskWorker(address=address, isolate=True)
    seen: list[gt.Score] = []
    scores = {s.param_id: s for s in worker.run(obj.flaky, pool, [0, 1, 2, 3], 1, on_result=seen.append)}
    assert sorted(s.param_id for s in seen) == [0, 1, 2, 3]
    assert scores[0].reason.startswith("exception: RuntimeError: negative x -1")
    assert scores[1].reason == "crashed: exit code 3"  # os._exit(3) ended the child, not the Dask worker
    assert scores[2].reason == "objective returned '*'"
    assert scores[3].score == 9.0 and scores[3].reason == ""
    dask_pids = worker_pids(address)
    assert isinstance(scores[3].metadata, dict) and scores[3].metadata["pid"] not in dask_pids  # ran in a child
    assert len(dask_pids) == 2  # no Dask worker died
    # The fast path runs in the Dask worker process itself.
    fast = DaskWorker(address=address).run(obj.quadratic, pool[3:], [0], 1)
    assert isinstance(fast[0].metadata, dict) and fast[0].metadata["pid"] in dask_pids
    worker.close()


@pytest.mark.parametrize("isolate", [False, True])
def test_wrong_return_type_stops_the_search(plain_cluster: LocalCluster, tmp_path: Path, isolate: bool) -> None:
    worker = DaskWorker(address=plain_cluster.scheduler_address, isolate=isolate)
    with pytest.raises(ObjectiveReturnError, match="'fast'"):
        search(obj.wrong_type, worker, tmp_path, config(generations=1)).start()


class ScatteringDaskWorker(DaskWorker):
    scatter_threshold = 0  # every objective is scattered to the workers


def test_scattered_objective_and_pickling(plain_cluster: LocalCluster, tmp_path: Path) -> None:
    address = plain_cluster.scheduler_address
    cfg = config(generations=2)
    assert evaluated_right(search(obj.quadratic, ScatteringDaskWorker(address=address), tmp_path, cfg).start(), cfg)

    # A worker holding a connection pickles (checkpoints do that) without it and reconnects.
    worker = DaskWorker(address=address, resources=None, threads_per_worker=2, isolate=True)
    worker.run(obj.quadratic, [{"x": 1, "y": 0.0, "opt": {"level": "-O1"}}], [0], 1)
    assert worker.client is not None
    clone = cloudpickle.loads(cloudpickle.dumps(worker))
    assert clone.client is None and clone.address == address and clone.isolate is True
    restored = worker_from_reference(worker_reference(worker))
    assert isinstance(restored, DaskWorker) and restored.address == address
    assert clone.run(obj.quadratic, [{"x": 2, "y": 0.3, "opt": {"level": "-O3"}}], [0], 1)[0].score == 0.25
    clone.close()
    worker.close()

    # A Client the caller made: used, never closed; pickled as its scheduler's address.
    with Client(address, set_as_default=False) as client:
        mine = DaskWorker(address=client)
        assert mine.run(obj.quadratic, [{"x": 2, "y": 0.3, "opt": {"level": "-O3"}}], [7], 1)[0].param_id == 7
        mine.close()
        assert client.status == "running"
        assert cloudpickle.loads(cloudpickle.dumps(mine)).address == address


# ----- per-(host, GPU) baselines (normalize=True) ------------------------------------------------


def baselines(result: gt.SearchResult) -> dict[str, float]:
    df = result.get_results()
    df = df[df["status"] == "baseline"]
    return {m["placement"]: s for m, s in zip(df["metadata"], df["score_1"], strict=True)}


def test_baselines_per_gpu_normalize_each_result_by_its_own(gpu_cluster: SpecCluster, tmp_path: Path) -> None:
    """Two (fake) GPUs of different speed: each is baselined once, pinned to it, and every result
    is normalized by the baseline of the GPU it ran on, so the normalized table equals the
    sequential worker's (one GPU, one baseline)."""
    host = socket.gethostname()
    cfg = config(normalize=True, generations=2)
    searched = search(dobj.gpu_bound, DaskWorker(address=gpu_cluster.scheduler_address, resources={"GPU": 1}), tmp_path, cfg)
    result = searched.start()
    assert baselines(result) == {f"{host}/gpu0": 2.0, f"{host}/gpu1": 4.0}
    # Resuming finished work measures nothing again, baselines included.
    assert searched.run_folder is not None
    resumed = gt.Search.resume(searched.run_folder, dobj.gpu_bound, disable_progress_bar=True)
    assert table(resumed) == table(result)
    assert set(result.get_results()["id"][:2]) == {f"baseline@{host}/gpu0", f"baseline@{host}/gpu1"}
    used = {m["placement"] for m in metadata(result)}
    assert used == {f"{host}/gpu0", f"{host}/gpu1"}  # both GPUs ran candidates
    sequential = search(dobj.gpu_bound, "sequential", tmp_path, cfg).start()
    assert baselines(sequential) == {host: 1.0}  # one baseline (id "baseline"), used for every result
    assert list(sequential.get_results()["id"][:1]) == ["baseline"]
    assert evaluated_right(result, cfg, normalized=True) and evaluated_right(sequential, cfg, normalized=True)


class LateGpuWorker(DaskWorker):
    """Pretends GPU 1 joined after the first baselines: it is left out of the first measurement,
    so its first results arrive without a baseline (the mid-generation join path)."""

    first = True

    def measure_baselines(self, function: Any, num_function_returns: int, known: Any, **kwargs: Any) -> list[gt.Score]:
        skip = {k for k in _placements(self) if k.endswith("/gpu1")} if self.first else set()
        self.first = False
        return super().measure_baselines(function, num_function_returns, {*known, *skip}, **kwargs)


def _placements(worker: DaskWorker) -> set[str]:
    from genetune.workers.dask_cluster import placement_here as _placement_here

    return set(worker._ensure_client(None).run(_placement_here).values())


def test_a_gpu_without_baseline_is_baselined_before_its_results_count(gpu_cluster: SpecCluster, tmp_path: Path) -> None:
    host = socket.gethostname()
    cfg = config(normalize=True, generations=2)
    seen: list[dict[str, Any]] = []

    class Rows:
        def post_objective(self, candidate: dict[str, Any], row: dict[str, Any]) -> None:
            seen.append(row)

    worker = LateGpuWorker(address=gpu_cluster.scheduler_address, resources={"GPU": 1})
    result = search(dobj.gpu_bound, worker, tmp_path, cfg, trackers=[Rows()]).start()
    assert baselines(result) == {f"{host}/gpu0": 2.0, f"{host}/gpu1": 4.0}
    # The late GPU's baseline was measured after generation 0's results, before any of its rows
    # were recorded (they waited for it).
    order = [r["id"] for r in seen]
    late = order.index(f"baseline@{host}/gpu1")
    assert late > order.index(f"baseline@{host}/gpu0")
    assert not any(r["metadata"].get("placement") == f"{host}/gpu1" for r in seen[:late] if r["status"] != "baseline")
    assert any(r["metadata"].get("placement") == f"{host}/gpu1" for r in seen[late:] if r["status"] != "baseline")
    assert evaluated_right(result, cfg, normalized=True)


class DaskProcesses:
    """A `dask scheduler` and `dask worker` processes on 127.0.0.1 (tests/ on their PYTHONPATH),
    each in its own process group, all SIGKILLed on exit; their output goes to ``dask.log``."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]), **env}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs = (tmp / "dask.log").open("wb")

    def _spawn(self, name: str, *args: str, env: dict[str, str]) -> None:
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", *args], env={**self.env, **env}, stdout=self._logs, stderr=subprocess.STDOUT, start_new_session=True
        )

    def scheduler(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard", "--dashboard-address", "127.0.0.1:0", env={})

    def worker(self, name: str, *args: str, **env: str) -> None:
        self._spawn(name, "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1", "--name", name, *args, env=env)

    def wait_for_workers(self, n: int) -> None:
        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=60)

    def __enter__(self) -> DaskProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
        self._logs.close()


@pytest.mark.slow
def test_a_gpu_worker_joining_mid_search_gets_its_own_baseline(tmp_path: Path) -> None:
    """Real `dask scheduler`/`dask worker` processes: GPU 2 (4x slower) joins in the middle of
    the search; it is baselined on itself and its results are normalized by that baseline."""
    host = socket.gethostname()
    dask_processes = DaskProcesses(tmp_path)
    address = dask_processes.address

    def gpu_worker(i: int) -> None:
        dask_processes.worker(f"gpu-{i}", "--resources", "GPU=1", CUDA_VISIBLE_DEVICES=str(i))

    class JoinsAtGenerationOne(DaskWorker):
        """GPU 2 joins as the first candidate after generation 0's is submitted (one GPU: one
        in flight, so every result of generation 0 is in by then)."""

        def open_slots(self, *args: Any, **kwargs: Any) -> EvaluationSlots:
            slots = super().open_slots(*args, **kwargs)
            real = slots.submit
            submitted = 0

            def submit(param_id: int | str, params: Any) -> None:
                nonlocal submitted
                submitted += 1
                if submitted == 13:
                    gpu_worker(2)
                    dask_processes.wait_for_workers(2)
                real(param_id, params)

            slots.submit = submit  # type: ignore[method-assign]
            return slots

    with dask_processes:
        dask_processes.scheduler()
        gpu_worker(0)
        dask_processes.wait_for_workers(1)
        cfg = config(normalize=True, generations=3, pool_size=12)
        result = search(dobj.gpu_bound, JoinsAtGenerationOne(address=address, resources={"GPU": 1}), tmp_path, cfg).start()
        assert baselines(result) == {f"{host}/gpu0": 2.0, f"{host}/gpu2": 8.0}
        df = result.get_results()
        gpu2 = df[[m["placement"] == f"{host}/gpu2" and s != "baseline" for m, s in zip(df["metadata"], df["status"], strict=True)]]
        assert len(gpu2) > 0 and min(gpu2["generation"]) >= 1  # joined as generation 1 was submitted
        assert all(s == "valid" for s in result.get_results()["status"] if s != "baseline")
        assert evaluated_right(result, cfg, normalized=True)


# ----- crashes that kill Dask workers -------------------------------------------------------------


@pytest.mark.slow
def test_killed_worker_makes_the_candidate_invalid() -> None:
    """An objective that kills its Dask worker (fast path, no isolation): once Dask gives up
    (KilledWorker, here at the first death) the candidate runs once more in a child process,
    where its crash is its own (INVALID, ``crashed: exit code 3``); the nanny restarts the
    worker and the next evaluations go on."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        worker = DaskWorker(n_workers=1)
        try:
            crashed = worker.run(obj.flaky, [{"x": 5}], [0], 1)
            fine = worker.run(obj.flaky, [{"x": 2}, {"x": 3}], [1, 2], 1)
        finally:
            worker.close()
    assert crashed[0].reason == "crashed: exit code 3", crashed[0].reason
    assert sorted(s.score for s in fine) == [4.0, 9.0]


@pytest.mark.slow
def test_killed_worker_makes_the_candidate_invalid_in_steady_slots() -> None:
    """The same through the slots of the steady schedule: the other slot goes on meanwhile."""
    from genetune.workers import RunOptions

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        worker = DaskWorker(n_workers=2)
        try:
            with worker.open_slots(obj.flaky, 1, RunOptions()) as slots:
                assert slots.capacity == 2
                slots.submit(0, {"x": 5})
                slots.submit(1, {"x": 2})
                scores = []
                while slots.in_flight:
                    scores += slots.wait()
                    if len(scores) == 1:
                        slots.submit(2, {"x": 3})
        finally:
            worker.close()
    by_id = {s.param_id: s for s in scores}
    # Run once more in a child process (as the batch path does): it alone fails, with its exit code.
    assert by_id[0].reason == "crashed: exit code 3", by_id[0].reason
    assert (by_id[1].score, by_id[2].score) == (4.0, 9.0)


@pytest.mark.slow
def test_a_candidate_that_kills_its_worker_takes_no_other_down() -> None:
    """Two candidates run at once on one Dask worker; one kills the worker: it alone is INVALID
    with its reason, the other keeps its real score."""
    import group_objectives as gobj

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        worker = DaskWorker(n_workers=1, threads_per_worker=2)
        try:
            scores = {s.param_id: s for s in worker.run(gobj.dies_or_scores, [{"x": 5}, {"x": 2}, {"x": 3}], [0, 1, 2], 1)}
        finally:
            worker.close()
    assert scores[0].reason == "crashed: exit code 3", scores[0].reason
    assert (scores[1].score, scores[1].reason, scores[2].score) == (2.0, "", 3.0)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [3, 4])
def test_a_steady_search_whose_candidates_kill_their_workers_ends_with_only_them_invalid(tmp_path: Path, seed: int) -> None:
    """Dask's defaults everywhere but the search's own cluster: one candidate in seven kills its
    worker process. With Dask's 4 allowed failures these seeds hung (a worker killed while its
    nanny restarted it never came back, and the cluster ran out of workers); now each killer
    fails once, runs again in a child process, and is the only INVALID one."""
    import group_objectives as gobj

    config = gt.SearchConfiguration(generations=3, pool_size=12, seed=seed)
    df = gt.Search(gobj.every_seventh_dies, {"x": gt.search_spaces.range(0, 200)}, config, worker_type=DaskWorker(n_workers=2), cache_folder=tmp_path, disable_progress_bar=True).start().get_results()
    df = df[df["status"].isin(["valid", "invalid"])]
    killers = df["params"].map(lambda p: p["x"] % 7 == 0)
    assert len(df) == 36 and killers.any()
    assert (df.loc[killers, "reason"] == "crashed: exit code 3").all()
    assert (df.loc[~killers, "status"] == "valid").all()


@pytest.mark.slow
def test_an_own_cluster_that_lost_its_workers_gets_new_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dask does not restart a worker killed while its nanny restarted it: once the search's own
    local cluster has had no workers for REVIVE_S, it is given new ones, and the evaluation runs."""
    import group_objectives as gobj

    from genetune.workers import RunOptions, dask_slots

    monkeypatch.setattr(dask_slots, "REVIVE_S", 0.5)
    worker = DaskWorker(n_workers=1)
    try:
        with worker.open_slots(gobj.score, 1, RunOptions()) as slots:
            cluster = worker._cluster
            assert cluster is not None and worker.client is not None
            cluster.scale(0)  # type: ignore[no-untyped-call]
            while worker.client.scheduler_info()["workers"]:
                time.sleep(0.1)
            slots.submit(0, {"x": 1})
            with pytest.warns(RuntimeWarning, match="lost all its workers"):
                scores = slots.wait()
    finally:
        worker.close()
    assert [s.param_id for s in scores] == [0] and not scores[0].failed


@pytest.mark.slow
def test_evaluations_on_a_cluster_without_workers_warn_and_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a scheduler the search did not start, workers may still join: a warning, no error."""
    import group_objectives as gobj

    from genetune.workers import RunOptions, dask_slots

    monkeypatch.setattr(dask_slots, "NO_WORKERS_S", 0.5)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        worker = DaskWorker(address=cluster.scheduler_address)
        try:
            with worker.open_slots(gobj.score, 1, RunOptions()) as slots:
                cluster.scale(0)
                assert worker.client is not None
                while worker.client.scheduler_info()["workers"]:
                    time.sleep(0.1)
                slots.submit(0, {"x": 1})
                with pytest.warns(RuntimeWarning, match="1 evaluation\\(s\\) waited \\d+ s on the Dask scheduler at .*, which has no workers"):
                    assert slots.wait(timeout=3.0) == []
                cluster.scale(1)
                assert [s.param_id for s in slots.wait()] == [0]
        finally:
            worker.close()


class WorkerKiller:
    """A tracker that, once ``after`` results are in, SIGKILLs (with its nanny) a Dask worker
    that started an evaluation less than 0.1 s ago (the evaluation takes 0.2 s: it cannot have
    finished)."""

    def __init__(self, processes: dict[str, subprocess.Popen[bytes]], log_dir: Path, after: int = 3) -> None:
        self.processes = processes
        self.log_dir = log_dir
        self.after = after
        self.rows: list[dict[str, Any]] = []
        self.killed: tuple[str, list[str]] | None = None  # (worker name, params it was running)

    def post_objective(self, candidate: dict[str, Any], row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.killed is not None or len(self.rows) < self.after:
            return
        names = {r["metadata"]["pid"]: r["metadata"]["dask_worker_name"] for r in self.rows}
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            for pid, running in dobj.open_evaluations(self.log_dir).items():
                if pid in names and running and time.time() - max(running.values()) < 0.1:
                    name = names[pid]
                    os.killpg(self.processes[name].pid, signal.SIGKILL)
                    self.processes[name].wait()
                    self.killed = (name, list(running))
                    return
            time.sleep(0.002)


@pytest.mark.slow
def test_dead_worker_mid_generation_loses_nothing(tmp_path: Path) -> None:
    log_dir = tmp_path / "evaluations-log"
    log_dir.mkdir()
    with DaskProcesses(tmp_path, **{dobj.LOG_DIR_ENV: str(log_dir)}) as dask_processes:
        processes = dask_processes.processes
        dask_processes.scheduler()
        for name in ("w0", "w1"):
            dask_processes.worker(name, "--nanny")
        dask_processes.wait_for_workers(2)
        killer = WorkerKiller(processes, log_dir)
        worker = DaskWorker(address=dask_processes.address)
        result = search(dobj.logged, worker, tmp_path, trackers=[killer]).start()
        assert killer.killed is not None, "no Dask worker was killed"
        victim, interrupted = killer.killed

        df = result.get_results()
        assert len(df) == 24 and df["id"].is_unique  # every candidate exactly once
        assert list(df["status"]) == ["valid"] * 24
        assert all(row.score_1 == obj.quadratic(row.params) for row in df.itertuples())
        # What the killed worker was running was measured again, on the survivor.
        by_params = {json.dumps(p, sort_keys=True): m for p, m in zip(df["params"], df["metadata"], strict=True)}
        assert interrupted and all(by_params[key]["dask_worker_name"] != victim for key in interrupted)
        assert processes[victim].poll() is not None
        assert {m["dask_worker_name"] for m in df["metadata"]} == {"w0", "w1"}
