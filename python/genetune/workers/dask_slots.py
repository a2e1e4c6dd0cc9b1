"""Evaluation slots on a Dask cluster (``schedule="steady"``): one Dask task per candidate,
submitted as a slot frees and collected as it ends (as ``distributed.as_completed`` does), with
the objective shipped once and the tasks' resource annotations (``{"GPU": 1}``) kept."""

from __future__ import annotations

import dataclasses
import queue
import time
import uuid
import warnings
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
#: How long evaluations wait on a cluster without workers before the search's own local cluster
#: is given new ones (a worker killed while its nanny restarted it is not restarted again).
REVIVE_S = 5.0
#: How long evaluations may wait on a cluster without workers: the search's own local cluster
#: then raises (new workers did not come either), another cluster gets a warning each time.
NO_WORKERS_S = 60.0


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
    through the future's done callback. A worker that dies once only moves its task elsewhere
    (Dask's own retry); a task whose workers keep dying (``KilledWorker``) runs once more in a
    child process (as ``evaluate_on_cluster`` does), and is INVALID if that fails too."""

    def __init__(
        self,
        client: Client,
        function: Callable[[Any], Any],
        spec: TaskSpec,
        resources: Mapping[str, float] | None,
        *,
        fixed_capacity: int | None = None,
        scatter_threshold: int = SCATTER_THRESHOLD,
        revive: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._revive = revive
        self._revived = False
        self._without_workers_since: float | None = None
        self._spec = spec
        self._isolated = dataclasses.replace(spec, isolate=True)
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
        self._submit(param_id, params, f"genetune-{param_id}-{self._run_id}", self._spec, time.perf_counter())

    def _submit(self, param_id: int | str, params: Any, key: str, spec: TaskSpec, submitted: float) -> None:
        future: Future[Score] = self._client.submit(
            evaluate_task,
            param_id,
            params,
            key=key,
            resources=self._resources,
            pure=False,
            shipped=self._shipped,
            token=self._token,
            spec=spec,
        )
        self._pending[key] = (future, param_id, params, submitted)
        future.add_done_callback(self._done.put)  # type: ignore[no-untyped-call]

    def wait(self, timeout: float | None = None) -> list[Score]:
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self._pending:
            left = RECOUNT_S if deadline is None else min(RECOUNT_S, max(0.0, deadline - time.perf_counter()))
            try:
                futures = [self._done.get(timeout=left)]
            except queue.Empty:
                self._check_workers()
                if deadline is None or time.perf_counter() < deadline:
                    continue
                return []
            self._without_workers_since = None
            while True:
                try:
                    futures.append(self._done.get_nowait())
                except queue.Empty:
                    break
            scores = [score for future in futures if (score := self._collect(future)) is not None]
            self._recount()
            if scores or deadline is not None:
                return scores
            # Only re-runs came back (a task whose workers died, now isolated): wait on.
        return []

    def _collect(self, future: Future[Score]) -> Score | None:
        entry = self._pending.pop(str(future.key), None)
        if entry is None:  # never twice for one candidate
            return None
        _, param_id, params, submitted = entry
        try:
            score: Score = future.result()
        except KilledWorker as err:
            if not self._spec.isolate:
                # Its Dask workers died while it ran, maybe by another candidate's doing: run it
                # once more in a child process, where only a candidate that kills its own process
                # fails (``crashed: exit code N``) and the others keep their real scores.
                future.release()  # type: ignore[no-untyped-call]
                self._submit(param_id, params, f"genetune-{param_id}-{self._run_id}-isolated", self._isolated, submitted)
                return None
            last = getattr(getattr(err, "last_worker", None), "address", "?")
            reason = f"crashed: dask worker died running it {err.allowed_failures + 1} time(s) (last on {last})"
            elapsed = time.perf_counter() - submitted
            score = invalid_score(param_id, params, self._spec.num_objectives, reason, elapsed, worker=self._spec.worker)
        future.release()  # type: ignore[no-untyped-call]
        return score

    def _check_workers(self) -> None:
        """Nothing ended for a while: on a cluster without workers, the search's own local
        cluster gets new ones after ``REVIVE_S`` (``revive``: Dask leaves a worker killed while
        its nanny restarted it dead, and would queue the evaluations forever) and raises after
        ``NO_WORKERS_S``; another cluster gets a warning (its workers may still join)."""
        now = time.perf_counter()
        if list_workers(self._client):
            self._without_workers_since = None
            self._revived = False
            return
        if self._without_workers_since is None:
            self._without_workers_since = now
            return
        waited = now - self._without_workers_since
        if self._revive is not None and not self._revived and waited >= REVIVE_S:
            self._revived = True
            warnings.warn(f"the search's local Dask cluster lost all its workers for {waited:.0f} s: starting them again", RuntimeWarning, stacklevel=3)
            self._revive()
            return
        if waited < NO_WORKERS_S:
            return
        where = "the search's local Dask cluster" if self._revive is not None else f"the Dask scheduler at {getattr(self._client.scheduler, 'address', '?')}"
        message = f"{len(self._pending)} evaluation(s) waited {waited:.0f} s on {where}, which has no workers"
        if self._revive is not None:
            raise RuntimeError(message + " (its worker processes died and new ones did not start); the run folder resumes the search")
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        self._without_workers_since = now

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
