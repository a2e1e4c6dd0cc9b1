"""genetune on a Dask cluster, for `DaskWorker` and `PrefectDaskWorker` alike: evaluating one
shipped candidate on a Dask worker (who ran it in the metadata), the cluster's workers and the
resources they offer, a local cluster, and baselines pinned to each placement (host, GPU)."""

from __future__ import annotations

import dataclasses
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import distributed
from distributed import Client, Future, LocalCluster, as_completed
from distributed.scheduler import KilledWorker

from genetune.evaluation import evaluate, invalid_score, placement
from genetune.scores import BASELINE_CONFIG, Score, baseline_id
from genetune.shipping import pack, unpack
from genetune.workers.base import Candidates, RunOptions
from genetune.workers.isolation import evaluate_in_child, load_failed

__all__ = [
    "SCATTER_THRESHOLD",
    "Client",
    "TaskSpec",
    "evaluate_on_cluster",
    "checked_resources",
    "evaluate_shipped",
    "evaluate_task",
    "list_workers",
    "measure_pinned_baselines",
    "placement_here",
    "release",
    "require_resources",
    "scheduler_address",
    "ship",
    "start_local_cluster",
    "with_dask_identity",
]

#: Objectives whose pickle is larger are scattered to every worker once per batch instead of
#: travelling inside each task.
SCATTER_THRESHOLD = 1 << 20


# ----- evaluating on a Dask worker ----------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """How every task of a batch evaluates its candidate (the objective travels beside it)."""

    num_objectives: int
    #: The genetune worker's name, recorded in each Score's metadata.
    worker: str
    timeout: float | None
    #: In a child process killed at ``timeout``, else in the Dask worker's thread.
    isolate: bool


def evaluate_shipped(
    shipped: bytes, token: str, param_id: int | str, params: Any, num_objectives: int, worker: str, timeout: float | None, isolate: bool
) -> Score:
    """One evaluation of a packed objective: in a child process killed at ``timeout`` when
    ``isolate``, else in this thread."""
    if isolate:
        return evaluate_in_child(token, shipped, param_id, params, num_objectives, worker, timeout)
    try:
        function = unpack(token, shipped)
    except Exception as err:
        return load_failed(param_id, params, num_objectives, worker, err)
    return evaluate(function, param_id, params, num_objectives, worker)


def with_dask_identity(score: Score, worker: str, **extra: Any) -> Score:
    """``score`` with the genetune worker and the Dask worker it ran on in its metadata."""
    where: dict[str, Any] = {}
    try:
        dask_worker = distributed.get_worker()
        where = {"dask_worker": dask_worker.address, "dask_worker_name": dask_worker.name}
    except ValueError:  # not on a Dask worker (another task runner)
        pass
    return score.model_copy(update={"metadata": {"worker": worker, **where, **score.metadata_dict(), **extra}})


def evaluate_task(param_id: int | str, params: Any, *, shipped: bytes, token: str, spec: TaskSpec) -> Score:
    """What one Dask task runs: the evaluation, with the Dask worker it ran on. (``shipped`` is a
    keyword of its own: Dask resolves a scattered objective only there.)"""
    score = evaluate_shipped(shipped, token, param_id, params, spec.num_objectives, spec.worker, spec.timeout, spec.isolate)
    return with_dask_identity(score, spec.worker)


def ship(client: Client, function: Callable[[Any], Any], threshold: int = SCATTER_THRESHOLD) -> tuple[Any, str]:
    """The packed objective (bytes, or a Future of them scattered to every worker) and its token."""
    token, blob = pack(function)
    if len(blob) > threshold:  # once to every worker, not inside every task
        return client.scatter(blob, broadcast=True, hash=False), token  # type: ignore[no-untyped-call]
    return blob, token


def release(shipped: Any) -> None:
    """Drops a scattered objective (plain bytes need nothing)."""
    if not isinstance(shipped, bytes):
        shipped.release()


def evaluate_on_cluster(
    client: Client,
    function: Callable[[Any], Any],
    candidates: Candidates,
    spec: TaskSpec,
    resources: Mapping[str, float] | None,
    options: RunOptions,
    scatter_threshold: int = SCATTER_THRESHOLD,
) -> list[Score]:
    """One Dask task per candidate, reported through ``options.report`` as each finishes; a
    task whose workers keep dying (``KilledWorker``) runs once more isolated in a child process
    (only a candidate that kills its own process fails there), and is INVALID if that fails too."""
    shipped, token = ship(client, function, scatter_threshold)
    run_id = uuid.uuid4().hex[:12]
    keys = [f"genetune-{param_id}-{run_id}" for param_id, _ in candidates]
    # One client.map call: a single scheduler update for the whole generation.
    futures: list[Future[Score]] = client.map(
        evaluate_task,
        [param_id for param_id, _ in candidates],
        [params for _, params in candidates],
        key=keys,
        resources=dict(resources) if resources is not None else None,
        pure=False,
        shipped=shipped,
        token=token,
        spec=spec,
    )
    submitted = time.perf_counter()
    pending = {key: (future, candidate) for key, future, candidate in zip(keys, futures, candidates, strict=True)}
    scores: list[Score] = []
    isolated = dataclasses.replace(spec, isolate=True)
    try:
        finished = as_completed([f for f, _ in pending.values()], loop=client.loop)  # type: ignore[no-untyped-call]
        for future in finished:
            entry = pending.pop(str(future.key), None)
            if entry is None:  # never twice for one candidate
                continue
            param_id, params = entry[1]
            try:
                score = future.result()
            except KilledWorker as err:
                if not spec.isolate:
                    # Its Dask workers died while it ran, maybe by another candidate's doing: run it
                    # once more in a child process, where only a candidate that kills its process
                    # fails (``crashed: exit code N``) and the others keep their real scores.
                    key = f"genetune-{param_id}-{run_id}-isolated"
                    again: Future[Score] = client.submit(
                        evaluate_task, param_id, params, key=key, resources=dict(resources) if resources is not None else None,
                        pure=False, shipped=shipped, token=token, spec=isolated,
                    )
                    pending[key] = (again, entry[1])
                    finished.add(again)  # type: ignore[no-untyped-call]
                    future.release()
                    continue
                last = getattr(getattr(err, "last_worker", None), "address", "?")
                reason = f"crashed: dask worker died running it {err.allowed_failures + 1} time(s) (last on {last})"
                score = invalid_score(param_id, params, spec.num_objectives, reason, time.perf_counter() - submitted, worker=spec.worker)
            future.release()
            scores.append(options.report(score))
    finally:
        if pending:  # an error: stop what is still queued
            client.cancel([f for f, _ in pending.values()])  # type: ignore[no-untyped-call]
        release(shipped)
    return scores


# ----- the cluster --------------------------------------------------------------------------------


def start_local_cluster(n_workers: int, threads_per_worker: int = 1, **cluster_kwargs: Any) -> LocalCluster:
    """Worker processes on 127.0.0.1, no dashboard; ``cluster_kwargs`` override the defaults."""
    options: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
        **cluster_kwargs,
    }
    # Without a dashboard the scheduler still serves HTTP (health, metrics): on a free local
    # port, not on 8787 (busy as soon as two clusters run).
    options["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0", **(options.get("scheduler_kwargs") or {})}
    return LocalCluster(**options)  # type: ignore[no-untyped-call]


def list_workers(client: Client, wait_s: float = 0.0) -> dict[str, Any]:
    """The scheduler's workers by address (all of them), waiting up to ``wait_s`` for a first one."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before the n_workers argument
        info = client.scheduler_info()
    workers = dict(info.get("workers", {}))
    if workers or wait_s <= 0:
        return workers
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError:
        pass
    return list_workers(client)


def scheduler_address(client: Client) -> str | None:
    address = getattr(client.scheduler, "address", None)
    return str(address) if address is not None else None


def checked_resources(resources: Mapping[str, float] | None) -> dict[str, float] | None:
    """What each evaluation needs of a Dask worker, e.g. ``{"GPU": 1}`` (None: nothing)."""
    if resources is None:
        return None
    if not isinstance(resources, Mapping):
        raise TypeError(f"resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    for name, amount in resources.items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, int | float) or not amount > 0:
            raise ValueError(f"resources must map names to positive amounts, got {resources!r}")
    return {name: float(amount) for name, amount in resources.items()} or None


def offers(worker_info: Mapping[str, Any], resources: Mapping[str, float] | None) -> bool:
    """Whether a worker (``scheduler_info()["workers"][address]``) offers every resource."""
    offered = dict(worker_info.get("resources") or {})
    return not resources or all(offered.get(k, 0) >= v for k, v in resources.items())


def require_resources(workers: Mapping[str, Any], resources: Mapping[str, float], who: str, where: str) -> None:
    """Raises ValueError when no worker offers every requested resource (Dask would wait forever)."""
    if any(offers(info, resources) for info in workers.values()):
        return
    offered = {str(info.get("name", address)): dict(info.get("resources") or {}) for address, info in workers.items()}
    missing = sorted(k for k, v in resources.items() if not any(res.get(k, 0) >= v for res in offered.values()))
    what = ", ".join(f"{k}={resources[k]:g}" for k in missing) if missing else "all of them on one worker"
    raise ValueError(
        f"{who}: no Dask worker offers the resources {dict(resources)} (missing {what}); "
        f"the {len(offered)} workers {where} offer {offered or 'nothing (none connected)'}. "
        "Start workers with e.g. `dask worker <scheduler> --resources GPU=1`; Dask would wait forever otherwise."
    )


def placement_here() -> str:
    """Run on a Dask worker: its placement key (the key its evaluations report)."""
    return str(placement()["placement"])


# ----- baselines per placement --------------------------------------------------------------------


def _lacking_placements(client: Client, resources: Mapping[str, float] | None, known: Collection[str]) -> dict[str, list[str]]:
    """The addresses of the eligible workers on each placement ``known`` lacks."""
    eligible = sorted(address for address, info in list_workers(client).items() if offers(info, resources))
    if not eligible:
        return {}
    where: dict[str, str] = client.run(placement_here, workers=eligible)
    by_placement: dict[str, list[str]] = {}
    for address, key in sorted(where.items()):
        if key not in known:
            by_placement.setdefault(key, []).append(address)
    return by_placement


def measure_pinned_baselines(
    client: Client,
    function: Callable[[Any], Any],
    spec: TaskSpec,
    resources: Mapping[str, float] | None,
    known: Collection[str],
) -> list[Score]:
    """Measures BASELINE_CONFIG once on every placement (host, GPU) of the workers offering
    ``resources`` that ``known`` lacks, pinned there (``workers=``, no other worker allowed). A
    placement whose workers all leave first is skipped (measured when its results arrive)."""
    by_placement = _lacking_placements(client, resources, known)
    if not by_placement:
        return []
    shipped, token = ship(client, function)
    run_id = uuid.uuid4().hex[:12]
    pending: dict[str, tuple[Future[Score], list[str]]] = {}
    for index, (key, addresses) in enumerate(by_placement.items()):
        future: Future[Score] = client.submit(
            evaluate_task,
            baseline_id(key),
            dict(BASELINE_CONFIG),
            key=f"genetune-baseline-{index}-{run_id}",
            workers=addresses,
            allow_other_workers=False,
            resources=dict(resources) if resources is not None else None,
            pure=False,
            shipped=shipped,
            token=token,
            spec=spec,
        )
        pending[key] = (future, addresses)
    try:
        return _collect_baselines(client, pending)
    finally:
        for future, _ in pending.values():
            future.cancel()  # type: ignore[no-untyped-call]
        release(shipped)


def _collect_baselines(client: Client, pending: dict[str, tuple[Future[Score], list[str]]]) -> list[Score]:
    """Waits for the pinned baselines (removing each from ``pending``); one whose workers all
    left is given up (it would wait forever)."""
    scores: list[Score] = []
    while pending:
        for key, (future, addresses) in list(pending.items()):
            if future.done():  # type: ignore[no-untyped-call]
                del pending[key]
                try:
                    score = future.result()
                except Exception as err:  # e.g. KilledWorker: no baseline there this time
                    warnings.warn(f"DaskWorker: the baseline on {key} failed ({type(err).__name__}: {err})", UserWarning, stacklevel=3)
                    continue
                scores.append(score.model_copy(update={"metadata": {**score.metadata_dict(), "placement": key}}))
            elif not set(addresses) & set(list_workers(client)):
                del pending[key]
                future.cancel()  # type: ignore[no-untyped-call]
        time.sleep(0.02)
    return scores
