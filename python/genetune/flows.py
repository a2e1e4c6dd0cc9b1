"""genetune on Prefect: the flow ``genetune-search``, a search whose evaluations run as Prefect
task runs on Dask (deployable; see ``flows/genetune_search.py``): one per candidate, submitted as
slots free (``schedule="steady"``, the default), or chunks of a generation (``"generational"``).

Run it with a Prefect API (``PREFECT_API_URL`` exported, a ``prefect server start``) or without
one: then the ephemeral server Prefect starts for the flow run is also the Dask workers' (see
:func:`genetune.prefect_api.shared_with_workers`).

The worker and its chunk task live in :mod:`genetune.workers.prefect_worker`, loading objectives,
spaces and configurations in :mod:`genetune.loading`; both are re-exported here.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client, LocalCluster
from prefect import flow
from prefect.logging import get_run_logger
from prefect_dask.task_runners import DaskTaskRunner

from genetune import trackers as tracker_types  # MLflowTracker from it on first use: MLflow takes ~3 s to import
from genetune.checkpoint import find_run_folder
from genetune.console import announce
from genetune.jsonable import lenient_json_default
from genetune.loading import CommandObjective, load_config, load_objective, load_search_space
from genetune.prefect_api import flush_to_api, shared_with_workers
from genetune.results import SearchResult
from genetune.search import Search
from genetune.trackers.jsonl import JsonlTracker
from genetune.trackers.prefect_tracker import PrefectTracker
from genetune.workers.dask_cluster import checked_resources, start_local_cluster
from genetune.workers.prefect_worker import PrefectDaskWorker, evaluate_chunk

if TYPE_CHECKING:
    from genetune.trackers.mlflow_tracker import MLflowTracker

__all__ = [
    "CommandObjective",
    "PrefectDaskWorker",
    "evaluate_chunk",
    "genetune_search",
    "load_config",
    "load_objective",
    "load_search_space",
]


@flow(name="genetune-search")
def genetune_search(
    objective: str,
    search_space: dict[str, Any] | str,
    search_config: dict[str, Any] | str,
    dask_address: str | None = None,
    resources: dict[str, float] | None = None,
    chunk_size: int | None = None,
    task_timeout: float | None = None,
    cache_folder: str | None = None,
    resume_from: str | None = None,
    n_workers: int | None = None,
    mlflow_run_url: str | None = None,
    objective_kwargs: dict[str, Any] | None = None,
    mlflow_tracking_uri: str | None = None,
    mlflow_experiment: str | None = None,
    progress_bar: bool = False,
    constraints: list[str] | None = None,
    warm_start: list[Any] | dict[str, Any] | str | None = None,
) -> dict[str, Any]:
    """A genetune search whose evaluations run as Prefect task runs on Dask (one per candidate,
    ``evaluate-g<cohort>-<id>``, as slots free; chunks of a generation with
    ``search_config={"schedule": "generational"}``, ``chunk_size`` candidates each).

    ``objective``: ``"pkg.module:function"`` or a shell command template (``"./bench -u {unroll}"``).
    ``search_space`` / ``search_config``: dicts or JSON/YAML paths. ``dask_address``: a scheduler
    to use (never stopped); None starts a local cluster (127.0.0.1, no dashboard, ``n_workers``
    processes, each offering ``resources`` when given) for this run. ``resume_from``: a run
    folder to continue (``genetune.Search.resume``). ``objective_kwargs``: build the objective
    as ``objective(**objective_kwargs)`` (a class or factory path). ``mlflow_tracking_uri``:
    mirror the search to MLflow there (experiment ``mlflow_experiment``, default "genetune"),
    linked from a Prefect artifact. ``progress_bar``: a tqdm bar per generation on this process's
    stderr (``genetune run`` and ``genetune demo`` turn it on; a deployment's logs get the
    per-generation run log lines instead). ``constraints``: expressions every candidate satisfies
    (``"bx * by <= 1024"``). ``warm_start``: candidate dicts to evaluate first and/or paths of
    earlier results (CSV, Parquet, run folder) to continue from (see ``genetune.warm_start``).
    Returns best, result CSV, run folder (and the MLflow run).
    """
    logger = get_run_logger()
    function = load_objective(objective, objective_kwargs)
    resources = checked_resources(resources or None)
    mirror = tracker_types.MLflowTracker(experiment_name=mlflow_experiment, tracking_uri=mlflow_tracking_uri) if mlflow_tracking_uri else None
    if mirror is not None:
        announce(f"MLflow: experiment {mirror.experiment_name!r} in {mirror.tracking_uri}")
    link: str | Callable[[], str | None] | None = mlflow_run_url or (mirror.run_url if mirror is not None else None)
    # The MLflow tracker first: its run exists (and has a URL) when the Prefect tracker links it.
    trackers: list[Any] = [*([mirror] if mirror is not None else []), PrefectTracker(mlflow_run_url=link), JsonlTracker()]
    with shared_with_workers() as api_url, _scheduler(dask_address, n_workers, resources) as address, DaskTaskRunner(address=address) as runner:
        if api_url is None:
            logger.warning("No Prefect API found for the Dask workers: each worker process may start its own ephemeral server")
        worker = PrefectDaskWorker(task_runner=runner, resources=resources, chunk_size=chunk_size)
        if resume_from:
            folder = find_run_folder(resume_from)
            result = Search.resume(
                folder, function, worker_type=worker, trackers=trackers, disable_progress_bar=not progress_bar, task_timeout=task_timeout
            )
        else:
            space, config = load_search_space(search_space), load_config(search_config)
            search = Search(
                function,
                space,
                config,
                worker_type=worker,
                trackers=trackers,
                cache_folder=cache_folder,
                disable_progress_bar=not progress_bar,
                constraints=constraints,
                warm_start=warm_start,
            )
            worker.cohort_size = search.search_config.pool_size
            result = search.start(task_timeout=task_timeout)
            assert search.run_folder is not None
            folder = search.run_folder
    return _flow_result(result, folder, mirror)


@contextmanager
def _scheduler(dask_address: str | None, n_workers: int | None, resources: dict[str, float] | None) -> Iterator[str]:
    """The scheduler to use: ``dask_address`` (never stopped), else a local cluster for this run."""
    if dask_address is not None:
        announce(f"Dask: the scheduler at {dask_address}")
        yield dask_address
        return
    n = n_workers or os.cpu_count() or 1
    announce(f"Dask: starting a local cluster of {n} worker process{'es' if n > 1 else ''}")
    cluster: LocalCluster = start_local_cluster(n, resources=dict(resources) if resources else None)
    try:
        yield cluster.scheduler_address
    finally:
        _flush_workers(cluster)
        cluster.close()


def _flush_workers(cluster: LocalCluster) -> None:
    """Readies this run's own workers to stop: what they still queue for the Prefect API (run
    logs, events) is sent now, and their processes skip the interpreter's teardown when they exit
    (seconds on a loaded machine: the nanny kills a worker still exiting after 4 s, with a warning)."""
    try:
        with Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            client.run(_ready_to_stop)
    except Exception as err:  # the cluster closes either way; the records are lost, the search is not
        logger = get_run_logger()
        logger.warning("Could not flush the Dask workers' Prefect logs: %s: %s", type(err).__name__, err)


def _ready_to_stop() -> None:
    flush_to_api()
    atexit.register(_exit_now)  # runs first at exit (atexit is last in, first out)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(0)


def _flow_result(result: SearchResult, folder: Path, mirror: MLflowTracker | None) -> dict[str, Any]:
    """What the flow returns, as plain JSON (Prefect stores it)."""
    out = {
        "best": result.get_best_result(),
        "summary": result.summary(),
        "evaluations": len(result),
        "run_folder": str(folder),
        "result_csv": str(folder / "results.csv"),
        **({"mlflow_run_id": mirror.run_id, "mlflow_tracking_uri": mirror.tracking_uri} if mirror is not None else {}),
    }
    plain: dict[str, Any] = json.loads(json.dumps(out, default=lenient_json_default))
    return plain
