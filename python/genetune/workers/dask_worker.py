"""`DaskWorker`: one Dask task per candidate, on a local cluster or on yours (GPU resources).

Without ``address`` a ``distributed.LocalCluster`` (127.0.0.1, no dashboard, one process per
worker) starts at the first generation and stops when the search ends. With ``address`` (a
scheduler address such as ``tcp://10.0.0.5:8786`` or a connected ``distributed.Client``) the
search uses that cluster and never stops it: start it with ``dask scheduler`` and
``dask worker <address> --resources GPU=1`` (or dask-cuda's ``LocalCUDACluster`` with
``resources={"GPU": 1}``) and pass ``resources={"GPU": 1}``, so a worker runs no more
evaluations at once than it declares GPUs.

Each Score's ``metadata`` says where it ran: ``worker`` (this class's name), ``dask_worker``
(the Dask worker's address), ``dask_worker_name``, ``node`` (host name), ``pid`` (the process
that ran the objective) and ``gpu`` (its ``CUDA_VISIBLE_DEVICES``).

Each Score's ``metadata["placement"]`` is ``<host>`` or ``<host>/gpu<N>`` (N: the first entry of
``CUDA_VISIBLE_DEVICES``, the physical GPU under dask-cuda). With ``normalize=True`` the baseline is
measured once per placement, pinned to a worker there, and each result is normalized by the
baseline of the placement it ran on (CompileIQ's Ray worker does the same per node and GPU).
Placements are checked before every generation; results from a worker that joined during a
generation wait until its placement has been baselined.

With ``task_timeout`` (or ``isolate=True``) every evaluation runs in a fresh child process of
the Dask worker, killed at the timeout (``timeout: killed after N s``), so a hung C call or a
crash (``crashed: exit code N``) costs one candidate, never a Dask worker. Otherwise the
objective runs in the Dask worker's thread (fastest). A Dask worker that dies loses nothing: Dask
runs its tasks elsewhere. A task whose workers keep dying (``KilledWorker``: an objective that
kills its process, or a candidate that ran beside one) runs once more in a child process, where
only the candidate that kills its process fails (``crashed: exit code N``) and the others keep
their real scores; an isolated task that still loses its workers is INVALID
(``crashed: dask worker died ...``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Collection
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from genetune.scores import Score
from genetune.workers.base import BatchWorker, Candidates, EvaluationSlots, RunOptions

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

__all__ = ["DaskWorker"]


def _on_dask() -> ModuleType:
    # distributed takes about a second to import: only a search that uses Dask pays for it.
    from genetune.workers import dask_cluster

    return dask_cluster


class DaskWorker(BatchWorker):
    """Evaluates candidates as Dask tasks, one per candidate.

    * ``address``: a scheduler address or a ``distributed.Client``; without it a local cluster of
      ``num_workers`` (from ``start``), else ``n_workers``, else one per CPU, worker processes
      with ``threads_per_worker`` threads each; ``cluster_kwargs`` go to ``LocalCluster``.
    * ``resources``: what each evaluation needs of a worker, e.g. ``{"GPU": 1}``. A search whose
      resources no worker offers fails at once with ValueError (Dask itself would wait forever).
    * ``isolate``: run every evaluation in a fresh child process; the default (``None``) does so
      only when ``task_timeout`` is given, as a thread cannot be stopped.
    """

    respects_num_workers: ClassVar[bool] = True
    supports_timeout: ClassVar[bool] = True
    baselines_per_placement: ClassVar[bool] = True
    #: Objectives whose pickle is larger are scattered to every worker once per generation
    #: instead of travelling inside each task.
    scatter_threshold: ClassVar[int] = 1 << 20
    #: How long to wait for a first worker to join before checking resources.
    worker_wait_s: ClassVar[float] = 10.0

    def __init__(
        self,
        address: str | Client | None = None,
        resources: dict[str, float] | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        cluster_kwargs: dict[str, Any] | None = None,
        isolate: bool | None = None,
    ) -> None:
        if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        if isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int) or threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be a positive integer, got {threads_per_worker!r}")
        self.address = address
        self.resources = _on_dask().checked_resources(resources) if resources is not None else None
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.isolate = isolate
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._cluster_size = 0
        self._warned_num_workers = False

    # ----- pickling (checkpoints pickle custom workers) -----------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        state["_cluster"] = None
        state["_cluster_size"] = 0
        if self.address is not None and not isinstance(self.address, str):  # a Client: keep where it points
            state["address"] = _on_dask().scheduler_address(self.address)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ----- cluster -----------------------------------------------------------------------------

    @property
    def client(self) -> Client | None:
        """The connected client (None before the first generation and after ``close``)."""
        return self._client

    def _ensure_client(self, num_workers: int | None) -> Client:
        dask = _on_dask()
        if self.address is not None:
            if num_workers is not None and not self._warned_num_workers:
                self._warned_num_workers = True
                warnings.warn(
                    "DaskWorker: num_workers is ignored with an existing cluster (its workers decide the parallelism)",
                    UserWarning,
                    stacklevel=4,
                )
            if self._client is None:
                self._client = self.address if isinstance(self.address, dask.Client) else dask.Client(self.address, set_as_default=False)
            return self._client
        size = int(num_workers or self.n_workers or os.cpu_count() or 1)
        if self._client is None or self._cluster is None:
            # A task that kills its worker fails at once (KilledWorker) and runs again in a child
            # process, where only it can fail: Dask's default lets it kill 4 workers first, and a
            # worker killed while it restarts is not restarted (the search then had none left).
            kwargs = {**self.cluster_kwargs, "scheduler_kwargs": {"allowed_failures": 0, **(self.cluster_kwargs.get("scheduler_kwargs") or {})}}
            self._cluster = dask.start_local_cluster(size, self.threads_per_worker, **kwargs)
            self._client = dask.Client(self._cluster, set_as_default=False)
            self._cluster_size = size
        elif size != self._cluster_size:
            self._cluster.scale(size)  # type: ignore[no-untyped-call]
            self._client.wait_for_workers(size)
            self._cluster_size = size
        return self._client

    def _check_cluster(self, client: Client) -> None:
        """Raises ValueError when no worker offers every requested resource."""
        if not self.resources:
            return
        dask = _on_dask()
        workers = dask.list_workers(client, wait_s=self.worker_wait_s)
        where = f"on {dask.scheduler_address(client)}" if self.address is not None else "on the local cluster (pass cluster_kwargs={'resources': ...})"
        dask.require_resources(workers, self.resources, "DaskWorker", where)

    def _isolate(self, options: RunOptions) -> bool:
        if self.isolate is False and options.task_timeout is not None:
            raise ValueError("DaskWorker(isolate=False) cannot stop an evaluation at task_timeout; leave isolate unset")
        return bool(self.isolate) or options.task_timeout is not None

    # ----- the contract ------------------------------------------------------------------------

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        isolate = self._isolate(options)
        client = self._ensure_client(options.num_workers)
        self._check_cluster(client)
        dask = _on_dask()
        spec = dask.TaskSpec(num_objectives=num_objectives, worker=self.name, timeout=options.task_timeout, isolate=isolate)
        scores: list[Score] = dask.evaluate_on_cluster(client, function, candidates, spec, self.resources, options, self.scatter_threshold)
        return scores

    def open_slots(self, function: Callable[[Any], Any], num_objectives: int, options: RunOptions) -> EvaluationSlots:
        """One Dask task per candidate, as many in flight as the cluster runs at once (the local
        cluster's threads; on your cluster every worker's threads, or what its resources hold,
        counted again as workers join and leave)."""
        from genetune.workers.dask_slots import ClusterSlots

        isolate = self._isolate(options)
        client = self._ensure_client(options.num_workers)
        self._check_cluster(client)
        spec = _on_dask().TaskSpec(num_objectives=num_objectives, worker=self.name, timeout=options.task_timeout, isolate=isolate)
        revive = self._restart_workers if self.address is None else None
        return ClusterSlots(client, function, spec, self.resources, scatter_threshold=self.scatter_threshold, revive=revive)

    def _restart_workers(self) -> None:
        """New worker processes for the local cluster (all of its own died)."""
        cluster = self._cluster
        if cluster is not None:
            cluster.scale(0)  # type: ignore[no-untyped-call]
            cluster.scale(self._cluster_size)  # type: ignore[no-untyped-call]

    def measure_missing_baselines(
        self, function: Callable[[Any], Any], num_objectives: int, known: Collection[str], options: RunOptions
    ) -> list[Score]:
        """BASELINE_CONFIG once on every placement (host, GPU) of the cluster's eligible workers
        that ``known`` lacks, pinned there (``workers=``, no other worker allowed). A placement
        whose workers all leave before its baseline is measured is skipped (the search measures
        it when results from it arrive)."""
        client = self._ensure_client(options.num_workers)
        self._check_cluster(client)
        dask = _on_dask()
        isolate = bool(self.isolate) or options.task_timeout is not None
        spec = dask.TaskSpec(num_objectives=num_objectives, worker=self.name, timeout=options.task_timeout, isolate=isolate)
        baselines: list[Score] = dask.measure_pinned_baselines(client, function, spec, self.resources, known)
        return baselines

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        self._cluster_size = 0
        try:
            if client is not None and client is not self.address:  # never a Client the caller gave
                client.close()  # type: ignore[no-untyped-call]
        finally:
            if cluster is not None:
                cluster.close()
