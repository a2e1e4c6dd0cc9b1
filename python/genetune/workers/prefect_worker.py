"""`PrefectDaskWorker`: evaluations as Prefect task runs on the running flow's task runner (a
``prefect_dask.DaskTaskRunner``).

Steady-state scheduling (:meth:`PrefectDaskWorker.open_slots`) submits one task run per
candidate as a slot frees, named ``evaluate-g<cohort>-<id>`` so the UI groups them per cohort;
a whole generation at once (``schedule="generational"``, :meth:`PrefectDaskWorker.evaluate`) is
one mapped task over chunks of candidates. The tasks live here, in the installed package,
because Dask workers import them by reference."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import distributed
from dask.base import annotate
from distributed.scheduler import KilledWorker
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import AssetContext, FlowRunContext, SettingsContext, SyncClientContext, serialize_context
from prefect.futures import PrefectFuture, PrefectWrappedFuture
from prefect.task_engine import run_task_sync
from prefect.utilities.annotations import unmapped
from prefect_dask.task_runners import DaskTaskRunner, PrefectDaskFuture

from genetune.evaluation import invalid_score, placement
from genetune.exceptions import ObjectiveReturnError
from genetune.loguru_bridge import install_loguru_bridge
from genetune.scores import Score, baseline_id
from genetune.shipping import pack
from genetune.workers.base import BatchWorker, Candidates, EvaluationSlots, RunOptions
from genetune.workers.dask_cluster import (
    checked_resources,
    evaluate_shipped,
    list_workers,
    TaskSpec,
    measure_pinned_baselines,
    require_resources,
    with_dask_identity,
)

__all__ = ["CHUNKS_PER_SLOT", "OVERHEAD_SHARE", "TASK_OVERHEAD_S", "PrefectDaskWorker", "PrefectSlots", "evaluate_chunk", "evaluate_one"]

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


@task(name="genetune-evaluate", cache_policy=NO_CACHE, persist_result=False, task_run_name="evaluate-g{cohort}-{param_id}")
def evaluate_one(
    shipped: bytes,
    token: str,
    param_id: int | str,
    params: Any,
    num_objectives: int,
    worker: str,
    timeout: float | None,
    cohort: int,
) -> Score | str:
    """Evaluates one candidate (steady-state scheduling): its Score, or the message of a wrong
    return value (a str: the search must stop). ``cohort`` names the task run."""
    install_loguru_bridge()
    try:
        score = evaluate_shipped(shipped, token, param_id, params, num_objectives, worker, timeout, isolate=timeout is not None)
    except ObjectiveReturnError as err:
        return str(err)
    return with_dask_identity(score, worker, cohort=cohort)


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
        #: Results per cohort, naming the task runs when the search does not set the cohort.
        self.cohort_size: int | None = None
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
        client = self._dask_client(runner)
        futures: list[PrefectFuture[list[Score | str]]]
        if client is not None:  # as runner.map, without its per-task cost (see submit_task)
            context, run_id = serialize_context(), _context_key()
            futures = [
                submit_task(
                    client,
                    evaluate_chunk,
                    {"shipped": blob, "token": token, "chunk": chunk, "num_objectives": num_objectives, "worker": self.name, "timeout": options.task_timeout, "index": index},
                    f"genetune-chunk-{index}-{run_id[:8]}",
                    self.resources,
                    context,
                    run_id,
                )
                for index, chunk in enumerate(chunks)
            ]
        else:
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
                futures = list(runner.map(evaluate_chunk, parameters))
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

    def open_slots(self, function: Callable[[Any], Any], num_objectives: int, options: RunOptions) -> EvaluationSlots:
        """Steady-state scheduling: one Prefect task run per candidate, submitted as a slot frees;
        as many slots as the cluster runs at once (threads, or what ``resources`` allow)."""
        runner = self._runner()
        client = self._dask_client(runner)
        capacity = self._slots(client) if client is not None else int(getattr(runner, "_max_workers", None) or os.cpu_count() or 1)
        return PrefectSlots(self, runner, function, num_objectives, options, max(1, capacity))

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


def submit_task(
    client: distributed.Client,
    task_: Any,
    parameters: dict[str, Any],
    key: str,
    resources: Mapping[str, float] | None,
    context: dict[str, Any],
    context_key: str,
) -> PrefectDaskFuture[Any]:
    """What ``PrefectDaskClient.submit`` does, less its cost: ``context`` is the flow run's
    serialized Prefect context (settings, flow run, tags: ~30 ms per ``serialize_context`` call
    uncontended, seconds on a loaded machine, 93 % of a submit), made once by the caller instead
    of once per task; the task runs through an importable function (no closure to cloudpickle)
    under an explicit key with ``pure=False`` (nothing to tokenize); on the Dask worker the
    settings and API client are built once per process (``context_key``)."""
    task_run_id = uuid.uuid4()
    dependencies: dict[str, set[Any]] = {name: set() for name in parameters}  # plain values: no upstream task runs
    asset = AssetContext.from_task_and_inputs(task=task_, task_run_id=task_run_id, task_inputs=dependencies, copy_to_child_ctx=True)
    dask_future = distributed.Client.submit(
        client,
        _run_task,
        key=key,
        resources=dict(resources) if resources else None,
        pure=False,
        task=task_,
        task_run_id=task_run_id,
        parameters=parameters,
        wait_for=None,
        return_type="state",
        dependencies=dependencies,
        context={**context, "asset_context": asset.serialize()},
        context_key=context_key,
    )
    return PrefectDaskFuture(wrapped_future=dask_future, task_run_id=task_run_id)


def _context_key() -> str:
    """Names the flow run's Prefect settings on the Dask workers (built once per process)."""
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context is not None and context.flow_run is not None else uuid.uuid4().hex


#: Per Dask worker process: the Prefect settings and API client of each slots' flow run.
_PROCESS_CONTEXTS: dict[str, tuple[SettingsContext, SyncClientContext]] = {}
_PROCESS_LOCK = threading.Lock()


def _run_task(*, context_key: str, context: dict[str, Any], **kwargs: Any) -> Any:
    """What a Dask worker runs for one task run of :class:`PrefectSlots`: prefect-dask's own
    wrapper, except that the settings and the API client are built once per worker process
    (rebuilding the settings and a client with its SSL context cost ~1 s of a loaded core per
    task, which staggered the starts of a cohort by seconds)."""
    settings, clients = _process_context(context_key, context)
    settings_token = SettingsContext.__var__.set(settings)
    clients_token = SyncClientContext.__var__.set(clients)
    try:
        return run_task_sync(context={k: v for k, v in context.items() if k != "settings_context"}, **kwargs)
    finally:
        SyncClientContext.__var__.reset(clients_token)
        SettingsContext.__var__.reset(settings_token)


def _process_context(key: str, context: dict[str, Any]) -> tuple[SettingsContext, SyncClientContext]:
    with _PROCESS_LOCK:
        found = _PROCESS_CONTEXTS.get(key)
        if found is None:
            if len(_PROCESS_CONTEXTS) >= 8:  # several flow runs may share a worker process
                for _, old in _PROCESS_CONTEXTS.values():
                    with contextlib.suppress(Exception):
                        old.client.__exit__(None, None, None)
                _PROCESS_CONTEXTS.clear()
            settings = SettingsContext(**context["settings_context"])
            token = SettingsContext.__var__.set(settings)
            try:  # the client for these settings (their API URL), open for the process's life
                clients = SyncClientContext()
                clients.client.__enter__()
            finally:
                SettingsContext.__var__.reset(token)
            found = _PROCESS_CONTEXTS[key] = (settings, clients)
        return found


@dataclass
class _Running:
    future: PrefectWrappedFuture[Score | str, Any]
    param_id: int | str
    params: Any
    submitted: float


class PrefectSlots(EvaluationSlots):
    """Evaluations of :meth:`PrefectDaskWorker.open_slots` in flight: each a Prefect task run
    (``evaluate-g<cohort>-<id>``) on the flow's task runner, with the worker's Dask resources.

    ``cohort``: the cohort the next submitted candidates belong to (the search sets it from its
    cohort counter, results told // pool size); left None, it counts the results returned so far
    by the worker's ``cohort_size`` (the flow sets the pool size), else by ``capacity``."""

    def __init__(
        self,
        worker: PrefectDaskWorker,
        runner: Any,
        function: Callable[[Any], Any],
        num_objectives: int,
        options: RunOptions,
        capacity: int,
    ) -> None:
        self.capacity = capacity
        self.cohort: int | None = None
        self._worker = worker
        self._runner = runner
        self._client = PrefectDaskWorker._dask_client(runner)
        self._num_objectives = num_objectives
        self._options = options
        self._token, self._blob = pack(function)
        self._run_id = uuid.uuid4().hex
        self._submitted = 0
        self._returned = 0
        self._running: dict[str, _Running] = {}
        self._closed = False
        self._ended = threading.Event()
        self._context: dict[str, Any] | None = None
        self._context_key = ""

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def submit(self, param_id: int | str, params: Any) -> None:
        if self._closed:
            raise RuntimeError("these evaluation slots are closed")
        cohort = self.cohort if self.cohort is not None else self._returned // (self._worker.cohort_size or self.capacity)
        parameters: dict[str, Any] = {
            "shipped": self._blob,
            "token": self._token,
            "param_id": param_id,
            "params": params,
            "num_objectives": self._num_objectives,
            "worker": self._worker.name,
            "timeout": self._options.task_timeout,
            "cohort": cohort,
        }
        key = f"genetune-{param_id}-{self._run_id[:8]}-{self._submitted}"
        future: PrefectWrappedFuture[Score | str, Any]
        if self._client is not None:
            future = self._submit_to_dask(key, parameters)
        else:
            with annotate(resources=self._worker.resources) if self._worker.resources else contextlib.nullcontext():
                future = self._runner.submit(evaluate_one, parameters)
        self._submitted += 1
        self._running[key] = _Running(future, param_id, params, time.perf_counter())
        future.wrapped_future.add_done_callback(lambda _: self._ended.set())

    def _submit_to_dask(self, key: str, parameters: dict[str, Any]) -> PrefectDaskFuture[Score | str]:
        if self._context is None:  # once per slots: the flow run's context does not change
            self._context = serialize_context()
            self._context_key = _context_key()
        return submit_task(self._client, evaluate_one, parameters, key, self._worker.resources, self._context, self._context_key)

    def wait(self, timeout: float | None = None) -> list[Score]:
        if not self._running:
            return []
        self._wait_any(timeout)
        scores: list[Score] = []
        wrong: str | None = None
        for key, entry in list(self._running.items()):
            if not self._done(entry.future):
                continue
            del self._running[key]
            value = self._outcome(entry)
            if isinstance(value, str):
                wrong = wrong or value
                continue
            self._returned += 1
            scores.append(self._options.report(value))
        if wrong is not None:
            raise ObjectiveReturnError(wrong)
        return scores

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        running, self._running = self._running, {}
        for entry in running.values():
            wrapped = entry.future.wrapped_future
            if isinstance(wrapped, distributed.Future):
                wrapped.cancel()  # type: ignore[no-untyped-call]
            else:
                wrapped.cancel()

    def _wait_any(self, timeout: float | None) -> None:
        """Until one evaluation in flight has ended (set by the futures' done callbacks)."""
        self._ended.clear()
        if not any(self._done(entry.future) for entry in self._running.values()):
            self._ended.wait(timeout)

    @staticmethod
    def _done(future: PrefectWrappedFuture[Score | str, Any]) -> bool:
        return bool(future.wrapped_future.done())

    def _outcome(self, entry: _Running) -> Score | str:
        """A finished task run's Score; one that failed as a whole (its Dask workers kept dying,
        a Prefect error) makes the candidate INVALID."""
        elapsed = time.perf_counter() - entry.submitted
        try:
            return entry.future.result()
        except KilledWorker as err:
            last = getattr(getattr(err, "last_worker", None), "address", "?")
            reason = f"crashed: dask worker died running it {err.allowed_failures + 1} time(s) (last on {last})"
        except Exception as err:
            reason = f"exception: task failed: {type(err).__name__}: {err}"
        finally:
            wrapped = entry.future.wrapped_future
            if isinstance(wrapped, distributed.Future):
                wrapped.release()  # type: ignore[no-untyped-call]
        return invalid_score(entry.param_id, entry.params, self._num_objectives, reason, elapsed, worker=self._worker.name)
