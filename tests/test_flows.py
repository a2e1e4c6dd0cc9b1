"""The Prefect flow (`genetune.flows`) on real Prefect (a test harness server) and real Dask
clusters on 127.0.0.1: equality with the sequential search, artifacts and logs read back from
the API, GPU resources, shell-command objectives, failures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests_support import free_port, isolate_prefect

TESTS_DIR = Path(__file__).resolve().parent
# Before Prefect is imported: an isolated, quiet, offline Prefect home.
isolate_prefect(os.environ)
# Dask worker processes (and their evaluation children) import the objectives by name.
os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])

import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from distributed import LocalCluster  # noqa: E402

import genetune as gt  # noqa: E402
from genetune.evaluation import evaluate  # noqa: E402
from genetune.flows import (  # noqa: E402
    CommandObjective,
    PrefectDaskWorker,
    genetune_search,
    load_objective,
    load_search_space,
)
from genetune.search_spaces import compile_space  # noqa: E402
from genetune.trackers.prefect_tracker import PrefectTracker  # noqa: E402

import flow_objectives as fobj  # noqa: E402
import objectives as obj  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CONFIG: dict[str, Any] = {"generations": 3, "pool_size": 8, "seed": 11}
#: Today's loop: whole generations, bit for bit the sequential search's candidates.
GENERATIONAL: dict[str, Any] = {**CONFIG, "schedule": "generational"}


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[LocalCluster]:
    """2 worker processes × 2 threads, each offering one (fake) GPU."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        resources={"GPU": 1},
    ) as cluster:
        yield cluster


def table(result: gt.SearchResult) -> dict[tuple[int, Any], tuple[str, Any]]:
    """(generation, id) -> (params, scores) of every evaluation."""
    df = result.get_results()
    score_cols = [c for c in df.columns if c.startswith("score_")]
    return {
        (int(r["generation"]), r["id"]): (json.dumps(r["params"], sort_keys=True), tuple(r[c] for c in score_cols))
        for r in df.to_dict("records")
    }


def run_flow(**kw: Any) -> tuple[Any, dict[str, Any]]:
    """Runs the flow; returns (flow run id, summary)."""
    state = genetune_search(return_state=True, **kw)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id, state.result()


def artifacts(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return list(client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))))


def wait_for_logs(flow_run_id: Any, needle: str, timeout: float = 15.0) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    messages: list[str] = []
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        messages = [log.message for log in logs]
        if any(needle in m for m in messages):
            break
        time.sleep(0.5)
    return messages


# ----- without a server ------------------------------------------------------------------------


def test_load_objective_import_path_and_command() -> None:
    assert load_objective("flow_objectives:quadratic") is fobj.quadratic
    command = load_objective(f'{sys.executable} -c "print(({{x}}-3)**2)"')
    assert isinstance(command, CommandObjective)
    assert command({"x": 5}) == 4.0
    with pytest.raises(ValueError):
        load_objective("not a path")
    with pytest.raises(AttributeError):
        load_objective("flow_objectives:missing")


def test_command_objective_score_line_metrics_and_nested_params() -> None:
    script = "print('noise 1.5'); print('GENETUNE_METRIC compile_s=0.25'); print('GENETUNE_SCORE={opt.unroll}'); print(99)"
    command = CommandObjective(f'{sys.executable} -c "{script}"')
    score = evaluate(command, 0, {"opt": {"unroll": 4}}, 1, "test")
    assert score.score == 4.0
    assert score.metadata["metrics"] == {"compile_s": 0.25}
    assert CommandObjective("bench -u {unroll} -l {level}").command({"opt": {"unroll": 3}}) == "bench -u 3 -l "
    failing = CommandObjective(f'{sys.executable} -c "import sys; sys.exit(3)"')
    bad = evaluate(failing, 1, {}, 1, "test")
    assert bad.failed and "status 3" in bad.reason


def test_load_search_space_forms(tmp_path: Path) -> None:
    spec = compile_space(fobj.SPACE)
    assert compile_space(load_search_space(spec)) == spec
    assert compile_space(load_search_space(fobj.SPACE_FRIENDLY)) == spec
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(fobj.SPACE_FRIENDLY, sort_keys=False))
    assert compile_space(load_search_space(str(path))) == spec
    json_path = tmp_path / "space.json"
    json_path.write_text(json.dumps(spec))
    assert compile_space(load_search_space(str(json_path))) == spec
    with pytest.raises(gt.SearchSpaceError):
        load_search_space({"x": {"type": "range", "start": 0}})


def test_tracker_outside_a_run_does_nothing() -> None:
    tracker = PrefectTracker()
    assert not tracker.active
    tracker.search_starts({"config": {"generations": 1}})
    tracker.generation_ends(0, {"best": [1.0]})
    tracker.search_ends("completed", {})
    assert tracker.artifact_keys == []


def test_worker_outside_a_flow_is_refused() -> None:
    with pytest.raises(RuntimeError, match="inside a running Prefect flow"):
        PrefectDaskWorker().run(fobj.quadratic, [{"x": 1}], [0], 1)


def test_environment_fingerprint_reads_folder_names_and_matches_the_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast fingerprint (folder names) lists exactly what importlib.metadata reads from
    every distribution's metadata, and changes when a distribution is installed."""
    import importlib.metadata
    import re

    from genetune.manifest import environment_fingerprint, installed_distributions

    reference = {
        (re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(), d.version) for d in importlib.metadata.distributions() if d.metadata["Name"]
    }
    assert installed_distributions() == reference
    environment_fingerprint.cache_clear()
    before = environment_fingerprint()
    assert before["packages"] == len(reference)
    (tmp_path / "Fake_Pkg-1.2.3.dist-info").mkdir()
    (tmp_path / "old.egg-0.9-py3.11.egg-info").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {("fake-pkg", "1.2.3"), ("old-egg", "0.9")} <= installed_distributions()
    environment_fingerprint.cache_clear()
    after = environment_fingerprint()
    environment_fingerprint.cache_clear()
    assert after["packages"] == before["packages"] + 2 and after["fingerprint"] != before["fingerprint"]


# ----- the flow on Dask ---------------------------------------------------------------------------


@pytest.mark.slow
def test_flow_matches_sequential_with_artifacts_and_logs(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    """schedule="generational": chunks of a generation, the sequential search's table exactly."""
    expected = gt.Search(fobj.quadratic, fobj.SPACE, GENERATIONAL, worker_type="sequential", cache_folder=tmp_path / "seq", disable_progress_bar=True).start()
    flow_run_id, summary = run_flow(
        objective="flow_objectives:logging_quadratic",
        search_space=fobj.SPACE_FRIENDLY,
        search_config=GENERATIONAL,
        dask_address=gpu_cluster.scheduler_address,
        chunk_size=3,
        cache_folder=str(tmp_path / "flow"),
    )
    result = gt.SearchResult.from_csv(summary["result_csv"])
    assert table(result) == table(expected)
    assert Path(summary["run_folder"]).is_dir()
    assert summary["evaluations"] == len(expected)
    df = result.get_results()
    assert all(m.get("dask_worker", "").startswith("tcp://127.0.0.1") for m in df["metadata"])
    assert {m["chunk"] for m in df["metadata"]} == {0, 1, 2}  # 8 candidates in chunks of 3

    arts = artifacts(flow_run_id)
    by_key: dict[str, list[Any]] = {}
    for a in arts:
        by_key.setdefault(a.key, []).append(a)
    assert by_key["genetune-progress"][0].type == "progress"
    assert float(by_key["genetune-progress"][0].data) == 100.0
    for generation in range(3):
        (gen_table,) = by_key[f"genetune-generation-{generation}"]
        assert gen_table.type == "table"
        rows = json.loads(gen_table.data)
        assert len(rows) == 8 and rows[0]["rank"] == 1
    (summary_md,) = by_key["genetune-summary"]
    assert summary_md.type == "markdown" and "completed" in summary_md.data and "Best configurations" in summary_md.data

    messages = wait_for_logs(flow_run_id, "Generation 2 ended")
    assert any("Generation 0 ended" in m for m in messages), messages
    assert any("Generation 2 ended" in m for m in messages), messages
    # Loguru records from the objective, on the Dask workers, reach the run logs.
    messages = wait_for_logs(flow_run_id, "objective saw x=")
    assert any("objective saw x=" in m for m in messages), messages


@pytest.mark.slow
def test_flow_with_gpu_resources_and_resume(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    _, summary = run_flow(
        objective="flow_objectives:quadratic",
        search_space=compile_space(fobj.SPACE),
        search_config=CONFIG,
        dask_address=gpu_cluster.scheduler_address,
        resources={"GPU": 1},
        cache_folder=str(tmp_path),
    )
    first = gt.SearchResult.from_csv(summary["result_csv"])
    assert len(first) == 24
    # Resuming a finished run reads it back and evaluates nothing again.
    _, resumed = run_flow(
        objective="flow_objectives:quadratic",
        search_space={},
        search_config={},
        dask_address=gpu_cluster.scheduler_address,
        resources={"GPU": 1},
        resume_from=summary["run_folder"],
    )
    assert resumed["run_folder"] == summary["run_folder"]
    assert table(gt.SearchResult.from_csv(resumed["result_csv"])) == table(first)


def test_flow_builds_on_every_slot_and_measures_alone_then_remeasures(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    import noise_objectives as nobj

    logs = tmp_path / "phases"
    logs.mkdir()
    space = {"x": gt.search_spaces.range(0, 12), "y": gt.search_spaces.range(0, 7)}
    flow_run_id, summary = run_flow(
        objective="noise_objectives:Phased",
        objective_kwargs={"log_dir": str(logs), "build_s": 0.1, "measure_s": 0.03},
        search_space=compile_space(space),
        search_config={**CONFIG, "generations": 2, "remeasure_top": 2, "remeasure_repeats": 3},
        dask_address=gpu_cluster.scheduler_address,
        cache_folder=str(tmp_path / "runs"),
    )
    phases = nobj.read_phases(str(logs))
    measures = [p for p in phases if p["phase"] == "measure"]
    builds = [p for p in phases if p["phase"] == "build"]
    assert nobj.overlaps(measures) == 0
    assert nobj.overlaps(builds) > 0
    df = gt.SearchResult.from_csv(summary["result_csv"]).get_results()
    assert (df["status"] == "remeasure").sum() == 2 * 3
    assert summary["best"]["remeasured_n"] == 3
    assert summary["best"]["remeasured_mean"] == pytest.approx(nobj.true_value(summary["best"]["params"]))
    # the Prefect summary artifact names the re-measured winner
    (summary_md,) = [a for a in artifacts(flow_run_id) if a.key == "genetune-summary"]
    assert f"re-measured winner: id {summary['best']['id']}" in summary_md.data


@pytest.mark.slow
def test_flow_normalizes_per_gpu(prefect_api: None, tmp_path: Path) -> None:
    """normalize=True in the flow on two (fake) GPUs of different speed: each GPU is baselined
    once, pinned to it, and every result is normalized by its own GPU's baseline."""
    from distributed import Nanny, Scheduler, SpecCluster

    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False, "dashboard_address": "127.0.0.1:0"}}
    workers = {
        f"gpu-{i}": {"cls": Nanny, "options": {"host": "127.0.0.1", "nthreads": 2, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": f"{i},{1 - i}"}}}
        for i in range(2)
    }
    config = {**CONFIG, "normalize": True}
    with SpecCluster(scheduler=scheduler, workers=workers) as cluster:
        _, summary = run_flow(
            objective="dask_objectives:gpu_bound",
            search_space=fobj.SPACE_FRIENDLY,
            search_config=config,
            dask_address=cluster.scheduler_address,
            resources={"GPU": 1},
            cache_folder=str(tmp_path / "flow"),
        )
    df = gt.SearchResult.from_csv(summary["result_csv"]).get_results()
    host = socket.gethostname()
    base = df[df["status"] == "baseline"]
    assert dict(zip(base["id"], base["score_1"], strict=True)) == {f"baseline@{host}/gpu0": 2.0, f"baseline@{host}/gpu1": 4.0}
    rows = df[df["status"] != "baseline"]
    assert len(rows) == 24 and {m["placement"] for m in rows["metadata"]} == {f"{host}/gpu0", f"{host}/gpu1"}
    # gpu_bound is (quadratic + 1) x the GPU's speed: normalized by its own GPU's baseline, the speed cancels.
    for record in rows.to_dict("records"):
        assert record["norm_score_1"] == pytest.approx(obj.quadratic(record["params"]) + 1.0), record


@pytest.mark.slow
def test_flow_refuses_resources_no_worker_offers(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    state = genetune_search(
        objective="flow_objectives:quadratic",
        search_space=fobj.SPACE_FRIENDLY,
        search_config=CONFIG,
        dask_address=gpu_cluster.scheduler_address,
        resources={"TPU": 1},
        cache_folder=str(tmp_path),
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(ValueError, match="no Dask worker offers"):
        state.result()


@pytest.mark.slow
def test_flow_exceptions_and_hung_evaluations_are_per_candidate(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    _, summary = run_flow(
        objective="flow_objectives:fails_or_hangs",
        search_space=fobj.SPACE_FRIENDLY,
        search_config={**CONFIG, "generations": 1},
        dask_address=gpu_cluster.scheduler_address,
        task_timeout=2.0,
        cache_folder=str(tmp_path),
    )
    records = gt.SearchResult.from_csv(summary["result_csv"]).get_results().to_dict("records")
    negative = [r for r in records if r["params"]["x"] < 0]
    hung = [r for r in records if r["params"]["x"] >= 3]
    fine = [r for r in records if 0 <= r["params"]["x"] < 3]
    assert negative and hung and fine, [r["params"]["x"] for r in records]
    assert all(r["status"] == "invalid" and "negative x" in r["reason"] for r in negative)
    assert all(r["status"] == "invalid" and r["reason"].startswith("timeout: killed after 2 s") for r in hung)
    assert all(r["status"] == "valid" for r in fine)


@pytest.mark.slow
def test_flow_shell_command_on_its_own_local_cluster(prefect_api: None, tmp_path: Path) -> None:
    _, summary = run_flow(
        objective=f'{sys.executable} -c "print(({{x}}-3)**2)"',
        search_space={"x": {"type": "range", "start": -10, "end": 10}},
        search_config={"generations": 2, "pool_size": 6, "seed": 3},
        n_workers=1,
        cache_folder=str(tmp_path),
    )
    df = gt.SearchResult.from_csv(summary["result_csv"]).get_results()
    assert len(df) == 12
    for r in df.to_dict("records"):
        assert r["status"] == "valid" and r["score_1"] == (r["params"]["x"] - 3) ** 2
    assert summary["best"]


@pytest.mark.slow
def test_a_failed_chunk_makes_its_candidates_invalid(prefect_api: None, gpu_cluster: LocalCluster) -> None:
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    good = {"x": 1, "y": 0.3, "opt": {"level": "-O2"}}

    @flow
    def one_generation(address: str) -> list[gt.Score]:
        with DaskTaskRunner(address=address) as runner:
            worker = PrefectDaskWorker(task_runner=runner, chunk_size=2)
            scores = worker.run(fobj.quadratic, [good, good, fobj.Unloadable(), good], [0, 1, 2, 3], 1)
            assert worker.last_chunk_sizes == [2, 2]
            return scores

    state = one_generation(gpu_cluster.scheduler_address, return_state=True)
    assert state.is_completed(), state.message
    by_id = {s.param_id: s for s in state.result()}
    assert sorted(by_id) == [0, 1, 2, 3]
    assert not by_id[0].failed and not by_id[1].failed
    for i in (2, 3):
        assert by_id[i].failed and by_id[i].reason.startswith("exception: chunk failed:"), by_id[i].reason


def task_run_names(flow_run_id: Any, expected: int, timeout: float = 30.0) -> list[str]:
    """The names of the flow run's task runs (recorded from events: polled until ``expected``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    names: list[str] = []
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        names = [r.name for r in runs]
        if len(names) >= expected:
            break
        time.sleep(0.5)
    return names


@pytest.mark.slow
def test_open_slots_keeps_the_gpus_busy_one_task_run_per_candidate(prefect_api: None, gpu_cluster: LocalCluster) -> None:
    """``open_slots`` on the flow's DaskTaskRunner: one task run per candidate named by cohort,
    never more in flight than the GPUs allow (one per worker: no overlap on a worker), a new
    candidate as soon as a slot frees; timeouts, unloadable params, wrong returns and close."""
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    from genetune.exceptions import ObjectiveReturnError
    from genetune.workers.base import RunOptions

    rng = __import__("random").Random(5)
    candidates = [
        (i, {"x": rng.randint(-5, 5), "y": 0.05 * rng.randint(0, 20), "opt": {"level": rng.choice(["-O1", "-O2", "-O3"])}}) for i in range(10)
    ]

    @flow
    def steady(address: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with DaskTaskRunner(address=address) as runner:
            assert PrefectDaskWorker(task_runner=runner).open_slots(fobj.quadratic, 1, RunOptions()).capacity == 4  # threads
            worker = PrefectDaskWorker(task_runner=runner, resources={"GPU": 1})
            with worker.open_slots(fobj.timed_quadratic, 1, RunOptions()) as slots:
                out["capacity"] = slots.capacity
                queue, scores, most = list(candidates), [], 0
                while queue or slots.in_flight:
                    while queue and slots.in_flight < slots.capacity:
                        param_id, params = queue.pop(0)
                        slots.cohort = param_id // 4
                        slots.submit(param_id, params)
                    most = max(most, slots.in_flight)
                    scores += slots.wait(30)
                out["scores"], out["most"] = scores, most
            with worker.open_slots(fobj.fails_or_hangs, 1, RunOptions(task_timeout=1.0)) as slots:
                for param_id, x in [(0, -1), (1, 4), (2, 1)]:
                    slots.submit(param_id, {"x": x, "y": 0.3, "opt": {"level": "-O2"}})
                ended: list[gt.Score] = []
                while slots.in_flight:
                    ended += slots.wait(30)
                slots.submit(3, fobj.Unloadable())
                ended += slots.wait(30)
                out["failures"] = ended
                slots.submit(4, {"x": 4, "y": 0.3, "opt": {"level": "-O2"}})  # hangs: closed while running
            assert slots.in_flight == 0
            with worker.open_slots(fobj.wrong_return, 1, RunOptions()) as slots:
                slots.submit(0, {"x": 1})
                with pytest.raises(ObjectiveReturnError, match="oops"):
                    while True:
                        slots.wait(30)
        return out

    state = steady(gpu_cluster.scheduler_address, return_state=True)
    assert state.is_completed(), state.message
    out = state.result()
    assert out["capacity"] == 2 and out["most"] == 2  # one fake GPU on each of the 2 workers
    scores: list[gt.Score] = out["scores"]
    assert sorted(s.param_id for s in scores) == list(range(10))
    for score in scores:
        assert score.score == fobj.quadratic(dict(candidates)[score.param_id])
        assert score.metadata["cohort"] == score.param_id // 4 and score.metadata["dask_worker"].startswith("tcp://127.0.0.1")
    for worker_address in {s.metadata["dask_worker"] for s in scores}:
        spans = sorted((s.metadata["metrics"]["t_start"], s.metadata["metrics"]["t_end"]) for s in scores if s.metadata["dask_worker"] == worker_address)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans  # GPU=1: one at a time
    by_id = {s.param_id: s for s in out["failures"]}
    assert "negative x" in by_id[0].reason and by_id[1].reason.startswith("timeout: killed after 1 s")
    assert not by_id[2].failed and by_id[3].reason.startswith("exception: task failed:")
    names = task_run_names(state.state_details.flow_run_id, 10 + 5 + 1 + 1)
    assert {f"evaluate-g{i // 4}-{i}" for i in range(10)} <= set(names), names


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(gt.workers.BaseWorker, "open_slots"), reason="needs the steady-state loop of issue 19 (Search calling open_slots)")
def test_flow_steady_runs_one_task_run_per_candidate_grouped_per_cohort(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    """The default schedule through the flow: one task run per candidate named by its cohort,
    the fake GPUs one evaluation each at a time, every result, the summary artifact."""
    flow_run_id, summary = run_flow(
        objective="flow_objectives:timed_quadratic",
        search_space=fobj.SPACE_FRIENDLY,
        search_config=CONFIG,
        dask_address=gpu_cluster.scheduler_address,
        resources={"GPU": 1},
        cache_folder=str(tmp_path),
    )
    df = gt.SearchResult.from_csv(summary["result_csv"]).get_results()
    assert len(df) == 24 and df["id"].is_unique
    records = df.to_dict("records")
    for r in records:
        assert r["status"] == "valid" and r["score_1"] == fobj.quadratic(r["params"])
    cohorts = {r["id"]: r["metadata"]["cohort"] for r in records}
    assert set(cohorts.values()) == {0, 1, 2}  # results told // pool_size
    for address in {r["metadata"]["dask_worker"] for r in records}:
        spans = sorted((r["metadata"]["metrics"]["t_start"], r["metadata"]["metrics"]["t_end"]) for r in records if r["metadata"]["dask_worker"] == address)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans
    names = task_run_names(flow_run_id, 24)
    assert {f"evaluate-g{cohort}-{param_id}" for param_id, cohort in cohorts.items()} <= set(names), names
    kinds = {a.key: a.type for a in artifacts(flow_run_id)}
    assert kinds["genetune-summary"] == "markdown" and kinds["genetune-progress"] == "progress"
    assert {f"genetune-generation-{g}" for g in range(3)} <= set(kinds)


def _stop(proc: Any) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@pytest.mark.slow
def test_served_deployment_end_to_end(tmp_path: Path) -> None:
    """`prefect server start` on 127.0.0.1, `python flows/genetune_search.py` serving the
    deployment, a run triggered with `run_deployment` (about 30 s)."""
    import subprocess
    import urllib.request

    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    repo = TESTS_DIR.parent
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    server_log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    serve = None
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        serve_log = (tmp_path / "serve.log").open("w")
        serve = subprocess.Popen(
            [sys.executable, str(repo / "flows" / "genetune_search.py")],
            env={**env, "PREFECT_API_URL": url, "GENETUNE_DEPLOYMENT": "e2e"},
            cwd=repo, stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        with temporary_settings(updates={PREFECT_API_URL: url}):
            deadline = time.monotonic() + 60
            while True:  # until the served deployment is registered
                from prefect.client.orchestration import get_client

                try:
                    with get_client(sync_client=True) as client:
                        client.read_deployment_by_name("genetune-search/e2e")
                    break
                except Exception:
                    assert serve.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
                    time.sleep(0.5)
            flow_run = run_deployment(
                "genetune-search/e2e",
                parameters={
                    "objective": "flow_objectives:quadratic",
                    "search_space": fobj.SPACE_FRIENDLY,
                    "search_config": {"generations": 2, "pool_size": 6, "seed": 5},
                    "n_workers": 1,
                    "cache_folder": str(tmp_path / "runs"),
                },
                timeout=150,
                poll_interval=0.5,
            )
        assert flow_run.state is not None and flow_run.state.is_completed(), (
            flow_run.state,
            (tmp_path / "serve.log").read_text()[-3000:],
        )
        (folder,) = list((tmp_path / "runs").iterdir())
        assert len(gt.SearchResult.from_csv(folder / "results.csv")) == 12
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)


def test_automatic_chunking_adapts_to_evaluation_time() -> None:
    worker = PrefectDaskWorker()
    items = [(i, {"x": i}) for i in range(64)]
    # First generation: one chunk per slot.
    assert [len(c) for c in worker.chunks(items, 2)] == [32, 32]
    # 50 ms evaluations: 1.6 s per slot, one extra chunk would cost more than 10 %: still one.
    worker._mean_duration_s = 0.05
    assert len(worker.chunks(items, 2)) == 2
    # 1 s evaluations: 32 s per slot, load balancing is cheap: CHUNKS_PER_SLOT chunks per slot.
    worker._mean_duration_s = 1.0
    assert len(worker.chunks(items, 2)) == 8
    assert [len(c) for c in PrefectDaskWorker(chunk_size=10).chunks(items, 2)] == [10] * 6 + [4]


@pytest.mark.slow
def test_flow_takes_constraints_when_and_warm_start(prefect_api: None, gpu_cluster: LocalCluster, tmp_path: Path) -> None:
    earlier = gt.Search(fobj.quadratic, fobj.SPACE, CONFIG, worker_type="sequential", cache_folder=tmp_path / "a", disable_progress_bar=True)
    first = earlier.start()
    # A warm-start candidate far from the optimum, so the earlier search did not evaluate it (a prior is never proposed again).
    warm = {"x": 0, "y": 0.95, "opt": {"level": "-O1"}}
    assert warm not in list(first.get_results()["params"])
    gated = {**fobj.SPACE_FRIENDLY, "opt": {**fobj.SPACE_FRIENDLY["opt"]}}
    gated["opt"]["unroll"] = {**gated["opt"]["unroll"], "when": {"opt.level": ["-O2", "-O3"]}}
    _, summary = run_flow(
        objective="flow_objectives:quadratic",
        search_space=gated,
        search_config=CONFIG,
        dask_address=gpu_cluster.scheduler_address,
        cache_folder=str(tmp_path / "flow"),
        constraints=["x >= 0", "opt.unroll is None or opt.unroll <= 4"],
        warm_start=[warm, str(earlier.run_folder)],
    )
    df = gt.SearchResult.from_csv(summary["result_csv"]).get_results()
    assert (df["status"] == "prior").sum() == len(first)
    new = df[df["status"] != "prior"].sort_values("id")
    assert len(new) == 24 and new.iloc[0]["params"] == warm
    for p in new["params"]:
        assert p["x"] >= 0 and p["opt"].get("unroll", 0) <= 4
        assert "unroll" not in p["opt"] or p["opt"]["level"] != "-O1"
    priors = {json.dumps(p, sort_keys=True) for p in first.get_results()["params"]}
    assert not priors & {json.dumps(p, sort_keys=True) for p in new["params"]}


EPHEMERAL_SCRIPT = """
import json, sys
from genetune.flows import genetune_search
from prefect.server.api.server import SubprocessASGIServer

summary = genetune_search(
    objective="flow_objectives:reports_its_api",
    search_space={"x": {"type": "range", "start": -50, "end": 50}},
    search_config={"generations": 2, "pool_size": 6, "seed": 1},
    n_workers=2,
    cache_folder=sys.argv[1],
)
print(json.dumps({"server": SubprocessASGIServer().api_url, "evaluations": summary["evaluations"]}))
"""


@pytest.mark.slow
def test_without_an_api_url_the_dask_workers_use_the_flow_runs_ephemeral_server(tmp_path: Path) -> None:
    """No ``PREFECT_API_URL``: Prefect starts an ephemeral server for the flow run, and the local
    cluster's worker processes report to it instead of each starting their own."""
    import subprocess

    api_file = tmp_path / "api.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        GENETUNE_TEST_API_FILE=str(api_file),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]),
    )
    done = subprocess.run([sys.executable, "-c", EPHEMERAL_SCRIPT, str(tmp_path / "runs")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["evaluations"] == 12
    urls = set(api_file.read_text().split())
    assert urls == {out["server"]}, urls
