"""`PrefectDaskWorker`: each generation as one Prefect *mapped* task over chunks of candidates,
on the running flow's task runner (a ``prefect_dask.DaskTaskRunner``).

A Prefect task costs about 120 ms on Dask, so candidates are grouped into chunks; the chunk task
lives here, in the installed package, because Dask workers import it by reference."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

from dask.base import annotate
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import unmapped
from prefect_dask.task_runners import DaskTaskRunner

from genetune.evaluation import invalid_score, placement
from genetune.exceptions import ObjectiveReturnError
from genetune.loguru_bridge import install_loguru_bridge
from genetune.scores import Score, baseline_id
from genetune.shipping import pack
from genetune.workers.base import BatchWorker, Candidates, RunOptions
from genetune.workers.dask_cluster import (
    checked_resources,
    evaluate_shipped,
    list_workers,
    TaskSpec,
    measure_pinned_baselines,
    require_resources,
    with_dask_identity,
)

__all__ = ["CHUNKS_PER_SLOT", "OVERHEAD_SHARE", "TASK_OVERHEAD_S", "PrefectDaskWorker", "evaluate_chunk"]

#: At most this many chunks per Dask worker slot when ``chunk_size`` is None.
CHUNKS_PER_SLOT = 4
#: What one Prefect task costs on Dask (≈110-120 ms measured on 2 cores; see benches/README.md).
TASK_OVERHEAD_S = 0.12
#: Automatic chunking keeps Prefect's per-task cost under this share of a generation's compute.
OVERHEAD_SHARE = 0.1

Chunk = list[tuple[int | str, Any]]


@task(name="genetune-evaluate-chunk", cache_policy=NO_CACHE, persist_result=False, task_run_name="evaluate-chunk-{index}")
def evaluate_chunk(
    shipped: bytes,
    token: str,
    chunk: Chunk,
    num_objectives: int,
    worker: str,
    timeout: float | None,
    index: int,
) -> list[Score | str]:
    """Evaluates one chunk of candidates in order. Returns a Score per candidate, or stops at the
    first wrong return value with its message (a str: the search must stop)."""
    install_loguru_bridge()
    out: list[Score | str] = []
    for param_id, params in chunk:
        try:
            score = evaluate_shipped(shipped, token, param_id, params, num_objectives, worker, timeout, isolate=timeout is not None)
        except ObjectiveReturnError as err:
            out.append(str(err))
            break
        out.append(with_dask_identity(score, worker, chunk=index))
    return out


class PrefectDaskWorker(BatchWorker):
    """Evaluates a generation as one Prefect mapped task over chunks of candidates.

    * ``task_runner``: the runner to submit to; by default the running flow's (give the flow a
      ``DaskTaskRunner(address=...)``). Any Prefect task runner works; Dask is the intended one.
    * ``resources``: what one chunk needs of a Dask worker, e.g. ``{"GPU": 1}`` (a chunk runs its
      candidates one after the other, so this is also what each evaluation gets). Applied with
      ``dask.annotate``; a cluster where no worker offers them is refused with ValueError (Dask
      would wait forever).
    * ``chunk_size``: candidates per Prefect task; None: one chunk per Dask worker slot (threads,
      or how many chunks the resources let run at once), and up to ``CHUNKS_PER_SLOT`` per slot
      (load balancing) once the previous generation's timings show that Prefect's cost per task
      stays under ``OVERHEAD_SHARE`` of the compute (see :meth:`chunks`).

    ``task_timeout`` runs every evaluation in a child process killed at the timeout (as
    ``DaskWorker``). A chunk task that fails as a whole makes its candidates INVALID
    (``exception: chunk failed: ...``); the flow goes on.
    """

    respects_num_workers: ClassVar[bool] = False
    supports_timeout: ClassVar[bool] = True
    baselines_per_placement: ClassVar[bool] = True

    def __init__(
        self,
        task_runner: Any = None,
        resources: Mapping[str, float] | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
        self.task_runner = task_runner
        self.resources = checked_resources(resources)
        self.chunk_size = chunk_size
        self.last_chunk_sizes: list[int] = []
        self._mean_duration_s: float | None = None

    def __getstate__(self) -> dict[str, Any]:  # checkpoints pickle the worker: never the runner
        state = dict(self.__dict__)
        state["task_runner"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _runner(self) -> Any:
        if self.task_runner is not None:
            return self.task_runner
        context = FlowRunContext.get()
        if context is None or context.task_runner is None:
            raise RuntimeError("PrefectDaskWorker must be used inside a running Prefect flow (or be given task_runner=)")
        return context.task_runner

    @staticmethod
    def _dask_client(runner: Any) -> Any:
        return runner.client if isinstance(runner, DaskTaskRunner) else None

    def _slots(self, client: Any) -> int:
        """How many chunks the cluster runs at once (checks resources first)."""
        if client is None:
            return os.cpu_count() or 1
        workers = list_workers(client, wait_s=10)
        if not self.resources:
            return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        require_resources(workers, self.resources, "PrefectDaskWorker", "on the flow's cluster")
        return sum(min(int(dict(w.get("resources") or {}).get(k, 0) // v) for k, v in self.resources.items()) for w in workers.values())

    def chunks(self, items: Chunk, slots: int) -> list[Chunk]:
        """``chunk_size`` candidates per chunk; automatically, one chunk per slot, plus more chunks
        per slot (up to ``CHUNKS_PER_SLOT``, for load balancing) only while the previous
        generation's evaluation times say their Prefect cost stays under ``OVERHEAD_SHARE``."""
        if self.chunk_size:
            size = self.chunk_size
        else:
            per_slot = 1
            if self._mean_duration_s is not None:
                compute_per_slot = len(items) * self._mean_duration_s / max(slots, 1)
                per_slot = max(1, min(CHUNKS_PER_SLOT, int(OVERHEAD_SHARE * compute_per_slot / TASK_OVERHEAD_S)))
            size = max(1, math.ceil(len(items) / (slots * per_slot)))
        return [items[i : i + size] for i in range(0, len(items), size)]

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        runner = self._runner()
        chunks = self.chunks(list(candidates), self._slots(self._dask_client(runner)))
        self.last_chunk_sizes = [len(c) for c in chunks]
        token, blob = pack(function)
        parameters: dict[str, Any] = {
            "shipped": unmapped(blob),
            "token": unmapped(token),
            "chunk": chunks,
            "num_objectives": unmapped(num_objectives),
            "worker": unmapped(self.name),
            "timeout": unmapped(options.task_timeout),
            "index": list(range(len(chunks))),
        }
        with annotate(resources=self.resources) if self.resources else contextlib.nullcontext():
            futures: list[PrefectFuture[list[Score | str]]] = list(runner.map(evaluate_chunk, parameters))
        scores: list[Score] = []
        wrong: str | None = None
        for chunk, future in zip(chunks, futures, strict=True):
            for value in self._outcome(chunk, future, num_objectives):
                if isinstance(value, str):
                    wrong = wrong or value
                    continue
                scores.append(options.report(value))
        if wrong is not None:
            raise ObjectiveReturnError(wrong)
        durations = [s.duration_s for s in scores if s.duration_s > 0]
        if durations:
            self._mean_duration_s = sum(durations) / len(durations)
        return scores

    def _outcome(self, chunk: Chunk, future: PrefectFuture[list[Score | str]], num_objectives: int) -> list[Score | str]:
        """A chunk's results; a chunk that failed as a whole makes its candidates INVALID."""
        try:
            return future.result()
        except Exception as err:
            reason = f"exception: chunk failed: {type(err).__name__}: {err}"
            return [invalid_score(i, p, num_objectives, reason, worker=self.name, **placement()) for i, p in chunk]

    def measure_missing_baselines(
        self, function: Callable[[Any], Any], num_objectives: int, known: Collection[str], options: RunOptions
    ) -> list[Score]:
        """On Dask: once per placement (host, GPU) lacking a baseline, as plain Dask tasks pinned
        to a worker there (as ``DaskWorker``). On another task runner: once, as a chunk."""
        client = self._dask_client(self._runner())
        if client is not None:
            self._slots(client)  # refuses resources no worker offers
            timeout = options.task_timeout
            spec = TaskSpec(num_objectives=num_objectives, worker=self.name, timeout=timeout, isolate=timeout is not None)
            return measure_pinned_baselines(client, function, spec, self.resources, known)
        return [_named_for_placement(s) for s in super().measure_missing_baselines(function, num_objectives, known, options)]


def _named_for_placement(score: Score) -> Score:
    """A baseline measured where the runner put it, named ``baseline@<placement>``."""
    where = score.metadata.get("placement") if isinstance(score.metadata, dict) else None
    return score.model_copy(update={"param_id": baseline_id(where)}) if where else score
