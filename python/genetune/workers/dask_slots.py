"""Evaluation slots on a Dask cluster (``schedule="steady"``): one Dask task per candidate,
submitted as a slot frees and collected as it ends (as ``distributed.as_completed`` does), with
the objective shipped once and the tasks' resource annotations (``{"GPU": 1}``) kept."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from distributed import Client, Future
from distributed.scheduler import KilledWorker

from genetune.evaluation import invalid_score
from genetune.scores import Score
from genetune.workers.base import EvaluationSlots
from genetune.workers.dask_cluster import SCATTER_THRESHOLD, TaskSpec, evaluate_task, list_workers, offers, release, ship

__all__ = ["ClusterSlots", "cluster_capacity"]

#: How often (seconds) the slots of a cluster whose workers may come and go are counted again.
RECOUNT_S = 2.0


def cluster_capacity(client: Client, resources: Mapping[str, float] | None) -> int:
    """Evaluations the cluster runs at once: every worker's threads, or, with ``resources``,
    as many as each worker's resources hold (at least 1, so a search waits for workers)."""
    total = 0
    for info in list_workers(client).values():
        if resources:
            if offers(info, resources):
                offered = dict(info.get("resources") or {})
                total += int(min(offered[k] // v for k, v in resources.items()))
        else:
            total += int(info.get("nthreads", 1))
    return max(total, 1)


class ClusterSlots(EvaluationSlots):
    """Candidates as Dask tasks (``client.submit``, one key per candidate); each Score arrives
    through the future's done callback. A task whose workers keep dying (``KilledWorker``) is
    INVALID; a worker that dies once only moves its task elsewhere (Dask's own retry)."""

    def __init__(
        self,
        client: Client,
        function: Callable[[Any], Any],
        spec: TaskSpec,
        resources: Mapping[str, float] | None,
        *,
        fixed_capacity: int | None = None,
        scatter_threshold: int = SCATTER_THRESHOLD,
    ) -> None:
        self._client = client
        self._spec = spec
        self._resources = dict(resources) if resources is not None else None
        self._fixed = fixed_capacity
        self._counted_at = time.perf_counter()
        self.capacity = fixed_capacity or cluster_capacity(client, self._resources)
        self._shipped, self._token = ship(client, function, scatter_threshold)
        self._run_id = uuid.uuid4().hex[:12]
        self._pending: dict[str, tuple[Future[Score], int | str, Any, float]] = {}
        self._done: queue.SimpleQueue[Future[Score]] = queue.SimpleQueue()
        self._closed = False

    def submit(self, param_id: int | str, params: Any) -> None:
        key = f"genetune-{param_id}-{self._run_id}"
        future: Future[Score] = self._client.submit(
            evaluate_task,
            param_id,
            params,
            key=key,
            resources=self._resources,
            pure=False,
            shipped=self._shipped,
            token=self._token,
            spec=self._spec,
        )
        self._pending[key] = (future, param_id, params, time.perf_counter())
        future.add_done_callback(self._done.put)  # type: ignore[no-untyped-call]

    def wait(self, timeout: float | None = None) -> list[Score]:
        if not self._pending:
            return []
        try:
            futures = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                futures.append(self._done.get_nowait())
            except queue.Empty:
                break
        scores = [score for future in futures if (score := self._collect(future)) is not None]
        self._recount()
        return scores

    def _collect(self, future: Future[Score]) -> Score | None:
        entry = self._pending.pop(str(future.key), None)
        if entry is None:  # never twice for one candidate
            return None
        _, param_id, params, submitted = entry
        try:
            score: Score = future.result()
        except KilledWorker as err:
            last = getattr(getattr(err, "last_worker", None), "address", "?")
            reason = f"crashed: dask worker died running it {err.allowed_failures + 1} time(s) (last on {last})"
            elapsed = time.perf_counter() - submitted
            score = invalid_score(param_id, params, self._spec.num_objectives, reason, elapsed, worker=self._spec.worker)
        future.release()  # type: ignore[no-untyped-call]
        return score

    def _recount(self) -> None:
        """Workers that joined or left change how many evaluations the cluster takes at once."""
        if self._fixed is None and time.perf_counter() - self._counted_at > RECOUNT_S:
            self._counted_at = time.perf_counter()
            self.capacity = cluster_capacity(self._client, self._resources)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._pending:
                self._client.cancel([future for future, _, _, _ in self._pending.values()])  # type: ignore[no-untyped-call]
                self._pending.clear()
        finally:
            release(self._shipped)
