"""The documented Prefect CLI paths of the ``genetune-search`` flow, end to end, against a real
``prefect server start`` on 127.0.0.1 (see tests/prefect_server.py); every Prefect step is the CLI
in a subprocess, the checks read back through the Prefect client.

* ``prefect work-pool create --type process`` + ``prefect --no-prompt deploy --all --prefect-file
  flows/prefect.yaml`` + ``prefect worker start`` + ``prefect deployment run ... --watch``;
* ``prefect flow serve flows/genetune_search.py:genetune_search --cron/--interval``: the schedules,
  the scheduled runs the server creates, a CLI-triggered run, the pause on shutdown.

Slow (about a minute on 2 cores): the server start (~12 s) is shared by the module.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests_support import isolate_prefect

if "prefect" not in sys.modules:  # the in-process client must not read ~/.prefect profiles
    isolate_prefect(os.environ)

import pytest  # noqa: E402

import genetune as gt  # noqa: E402

from prefect_server import REPO, PrefectServer, json_param  # noqa: E402

import flow_objectives as fobj  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

ENTRYPOINT = "flows/genetune_search.py:genetune_search"
POOL = "genetune-pool"  # the pool named in flows/prefect.yaml
CONFIG = {"generations": 2, "pool_size": 6, "seed": 3}
WATCH_TIMEOUT = 180


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-e2e")) as started:
        yield started


def run_params(cache_folder: Path) -> list[str]:
    """``-p`` options of a tiny search: 2 generations of 6 on a 1-worker local Dask cluster."""
    params = {
        "objective": "flow_objectives:quadratic",
        "search_space": fobj.SPACE_FRIENDLY,
        "search_config": CONFIG,
        "n_workers": 1,
        "cache_folder": str(cache_folder),
    }
    out: list[str] = []
    for name, value in params.items():
        out += ["-p", json_param(name, value)]
    return out


def flow_run_id(output: str) -> str:
    found = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert found, output
    return found.group(1)


def check_completed_run(server: PrefectServer, run_id: str, cache_folder: Path, deployment: Any) -> Any:
    """The run COMPLETED for ``deployment``, left the PrefectTracker's artifacts and a run folder
    with every evaluation."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with server.client() as client:
        flow_run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
    assert flow_run.state is not None and flow_run.state.is_completed(), (flow_run.state, server.logs())
    assert flow_run.deployment_id == deployment.id
    by_key = {a.key: a for a in artifacts}
    expected = {"genetune-progress", "genetune-generation-0", "genetune-generation-1", "genetune-summary"}
    assert expected <= set(by_key), (sorted(by_key), server.logs())
    assert by_key["genetune-progress"].type == "progress" and float(by_key["genetune-progress"].data) == 100.0
    assert by_key["genetune-generation-1"].type == "table"
    summary = by_key["genetune-summary"]
    assert summary.type == "markdown" and "# genetune search" in summary.data and "stop reason" in summary.data
    (folder,) = list(cache_folder.iterdir())
    assert len(gt.SearchResult.from_csv(folder / "results.csv")) == CONFIG["generations"] * CONFIG["pool_size"]
    return flow_run


def test_deploy_to_process_pool_and_run_with_the_cli(server: PrefectServer, tmp_path: Path) -> None:
    """flows/prefect.yaml deployed as documented; a worker started elsewhere picks the run up."""
    prefect_yaml = REPO / "flows" / "prefect.yaml"
    before = prefect_yaml.read_bytes()

    created = server.cli("work-pool", "create", POOL, "--type", "process")
    assert created.returncode == 0, created
    deployed = server.cli("--no-prompt", "deploy", "--all", "--prefect-file", "flows/prefect.yaml")
    assert deployed.returncode == 0, deployed
    assert prefect_yaml.read_bytes() == before, "prefect deploy rewrote flows/prefect.yaml"

    with server.client() as client:
        nightly = client.read_deployment_by_name("genetune-search/nightly")
        on_demand = client.read_deployment_by_name("genetune-search/on-demand")
        gcc = client.read_deployment_by_name("genetune-gcc-tuning/gcc-weekly")
        # Not under test here, and a worker must never pick up a real scheduled run.
        client.pause_deployment(nightly.id)
        client.pause_deployment(gcc.id)
    assert gcc.entrypoint == "flows/gcc_tuning.py:gcc_tuning" and gcc.work_pool_name == POOL
    assert [(s.schedule.cron, s.schedule.timezone) for s in gcc.schedules] == [("0 3 * * 0", "UTC")]
    for deployment in (nightly, on_demand):
        assert deployment.work_pool_name == POOL
        assert deployment.entrypoint == ENTRYPOINT
        # No pull section in prefect.yaml: runs start in the directory `prefect deploy` ran in.
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    ((schedule, active),) = [(s.schedule, s.active) for s in nightly.schedules]
    assert (schedule.cron, schedule.timezone, active) == ("0 2 * * *", "UTC", True)
    assert on_demand.schedules == []

    # The worker runs somewhere else than the repository: the pull step finds the code.
    worker = server.spawn("worker", "worker", "start", "--pool", POOL, cwd=tmp_path)
    try:
        runs = tmp_path / "runs"
        triggered = server.cli(
            "deployment", "run", "genetune-search/on-demand", *run_params(runs),
            "--watch", "--watch-timeout", str(WATCH_TIMEOUT),
            timeout=WATCH_TIMEOUT + 60,
        )  # fmt: skip
        assert triggered.returncode == 0 and "Completed" in triggered.output, f"{triggered}\n{server.logs()}"
        flow_run = check_completed_run(server, flow_run_id(triggered.output), runs, on_demand)
        assert flow_run.work_pool_name == POOL
    finally:
        # A single SIGTERM leaves `prefect worker start` polling (it forwards SIGINT to itself).
        worker.stop(grace=10, term_twice=True)


def test_flow_serve_registers_schedules_and_runs(server: PrefectServer, tmp_path: Path) -> None:
    """``prefect flow serve ... --cron`` and ``... --interval``: the schedules are registered, the
    server schedules runs from them, a CLI-triggered run completes, stopping pauses them."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    now = dt.datetime.now(dt.timezone.utc)
    hour = (now.hour + 12) % 24  # no scheduled run may fall due during the test
    cron = f"0 {hour} * * *"
    anchor = (now + dt.timedelta(minutes=30)).replace(microsecond=0)  # runs at now + 30 min + k hours
    served_cron = server.spawn("serve-cron", "flow", "serve", ENTRYPOINT, "--name", "cli-cron", "--cron", cron, "--timezone", "UTC")
    served_interval = server.spawn(
        "serve-interval", "flow", "serve", ENTRYPOINT, "--name", "cli-interval", "--interval", "3600", "--anchor-date", anchor.isoformat()
    )
    served = [served_cron, served_interval]
    try:
        cron_dep = server.wait_for("genetune-search/cli-cron", lambda c: c.read_deployment_by_name("genetune-search/cli-cron"), 90, served)
        interval_dep = server.wait_for(
            "genetune-search/cli-interval", lambda c: c.read_deployment_by_name("genetune-search/cli-interval"), 90, served
        )
        ((cron_schedule, cron_active),) = [(s.schedule, s.active) for s in cron_dep.schedules]
        assert isinstance(cron_schedule, CronSchedule) and cron_active
        assert (cron_schedule.cron, cron_schedule.timezone) == (cron, "UTC")
        ((interval_schedule, interval_active),) = [(s.schedule, s.active) for s in interval_dep.schedules]
        assert isinstance(interval_schedule, IntervalSchedule) and interval_active
        assert interval_schedule.interval == dt.timedelta(hours=1)
        assert interval_schedule.anchor_date == anchor
        for deployment in (cron_dep, interval_dep):
            assert deployment.work_pool_name is None and deployment.entrypoint == ENTRYPOINT and not deployment.paused

        # The server's scheduler creates the future runs (it never did with sqlalchemy 2.1).
        def scheduled(client: Any) -> dict[Any, list[dt.datetime]]:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[cron_dep.id, interval_dep.id])))
            times: dict[Any, list[dt.datetime]] = {cron_dep.id: [], interval_dep.id: []}
            for run in runs:
                if run.state is not None and run.state.is_scheduled() and run.auto_scheduled:
                    times[run.deployment_id].append(run.expected_start_time)
            return times if all(times.values()) else {}

        times = server.wait_for("scheduled runs of the served deployments", scheduled, 60, served)
        assert all((t.hour, t.minute) == (hour, 0) for t in times[cron_dep.id]), times
        assert all(t > now and (t - anchor).total_seconds() % 3600 == 0 for t in times[interval_dep.id]), times

        # A run triggered with the CLI on a served deployment (no work pool: the serve process runs it).
        runs = tmp_path / "runs"
        triggered = server.cli(
            "deployment", "run", "genetune-search/cli-cron", *run_params(runs),
            "--watch", "--watch-timeout", str(WATCH_TIMEOUT),
            timeout=WATCH_TIMEOUT + 60,
        )  # fmt: skip
        assert triggered.returncode == 0 and "Completed" in triggered.output, f"{triggered}\n{server.logs()}"
        flow_run = check_completed_run(server, flow_run_id(triggered.output), runs, cron_dep)
        assert flow_run.work_pool_name is None
    finally:
        for process in served:  # SIGTERM: a graceful stop (pauses the deployment)
            process.stop(grace=20)
    for process in served:
        assert process.proc.returncode is not None
    # --pause-on-shutdown is the default: a stopped `flow serve` pauses its deployment.
    paused = server.wait_for(
        "paused served deployments",
        lambda c: all(c.read_deployment(d.id).paused for d in (cron_dep, interval_dep)),
        15,
    )
    assert paused
