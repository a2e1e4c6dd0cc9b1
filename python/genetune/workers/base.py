"""The worker contract (CompileIQ's): evaluate a batch of candidates, return one Score each."""

from __future__ import annotations

import contextvars
import os
import queue
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar

from genetune.scores import BASELINE_CONFIG, BASELINE_ID, Score

__all__ = [
    "BASELINE_ID",
    "BaseWorker",
    "BatchWorker",
    "Candidates",
    "EvaluationSlots",
    "FutureSlots",
    "ResultCallback",
    "RunOptions",
    "ThreadSlots",
]

#: Called by a worker with each Score as soon as it is known (the search persists it at once).
ResultCallback = Callable[[Score], None]
#: A batch of candidates to evaluate: ``(param_id, params)`` pairs.
Candidates = Sequence[tuple[int | str, Any]]


@dataclass(frozen=True)
class RunOptions:
    """What ``Search.start`` passes on to every worker call; checked once, here."""

    num_workers: int | None = None
    task_timeout: float | None = None
    #: ``on_result`` of the worker contract: each Score as soon as it is known.
    on_result: ResultCallback | None = None
    #: Extra keywords of ``Search.start`` for a custom worker.
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def checked(cls, num_workers: Any, task_timeout: Any, extra: Mapping[str, Any]) -> RunOptions:
        """The options of ``Search.start``, refusing a non-positive count or timeout."""
        if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1):
            raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
        bad_timeout = isinstance(task_timeout, bool) or not isinstance(task_timeout, int | float) or not task_timeout > 0
        if task_timeout is not None and bad_timeout:
            raise ValueError(f"task_timeout must be a positive number of seconds, got {task_timeout!r}")
        return cls(num_workers, task_timeout, None, MappingProxyType(dict(extra)))

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> RunOptions:
        """The options a worker's ``run(**kwargs)`` received."""
        known = {"num_workers", "task_timeout", "on_result"}
        extra = {k: v for k, v in kwargs.items() if k not in known}
        return cls(kwargs.get("num_workers"), kwargs.get("task_timeout"), kwargs.get("on_result"), MappingProxyType(extra))

    def with_on_result(self, on_result: ResultCallback | None) -> RunOptions:
        return RunOptions(self.num_workers, self.task_timeout, on_result, self.extra)

    def as_kwargs(self) -> dict[str, Any]:
        """The keywords of the worker contract (``run(..., **kwargs)``)."""
        return {"num_workers": self.num_workers, "task_timeout": self.task_timeout, "on_result": self.on_result, **self.extra}

    def report(self, score: Score) -> Score:
        """Hands ``score`` to ``on_result`` (when given) and returns it."""
        if self.on_result is not None:
            self.on_result(score)
        return score


class EvaluationSlots(ABC):
    """Evaluations in flight on a worker, for steady-state scheduling (``schedule="steady"``):
    the search submits one candidate whenever a slot frees and collects each Score as it ends,
    so no evaluation waits for another. Made by :meth:`BaseWorker.open_slots`; closing it stops
    whatever still runs (process groups included) and releases the slots.
    """

    #: How many evaluations run at once (the search keeps this many in flight).
    capacity: int
    #: The cohort (generation) the next submitted candidates start in: the search sets it
    #: before it submits (slots may name or group their tasks by it).
    cohort: int | None = None

    @abstractmethod
    def submit(self, param_id: int | str, params: Any) -> None:
        """Starts evaluating one candidate (the caller keeps ``in_flight < capacity``)."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Score]:
        """The Scores of evaluations that ended since the last call: blocks until at least one
        ends (or ``timeout`` passes: then possibly none). Raises ``ObjectiveReturnError`` for a
        wrong return value (the search must stop)."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Submitted and not yet returned by :meth:`wait`."""

    @abstractmethod
    def close(self) -> None:
        """Stops what still runs and releases the slots (idempotent)."""

    def __enter__(self) -> EvaluationSlots:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class BaseWorker(ABC):
    """Subclass this for a custom worker and pass the class (or an instance) as ``worker_type``.

    ``run`` receives the objective, the candidates' params and ids, the number of objectives and
    every keyword of ``Search.start`` (``num_workers``, ``task_timeout``, ``on_result``, and any
    extra ``**worker_kwargs``). It must return one :class:`Score` per candidate with the given
    ``param_id``; an objective that raises should give an INVALID score (``"*"``), not an error.
    Calling ``on_result(score)`` as each result arrives (optional) lets the search checkpoint
    it immediately.
    """

    #: Whether ``num_workers`` means something to this worker (the search warns otherwise).
    respects_num_workers: ClassVar[bool] = True
    #: Whether ``task_timeout`` actually stops a hung evaluation (the search warns otherwise).
    supports_timeout: ClassVar[bool] = True
    #: Whether baselines (``normalize=True``) are measured and applied per placement: each
    #: result is normalized by the baseline of its ``metadata["placement"]`` (host, GPU).
    baselines_per_placement: ClassVar[bool] = False

    @abstractmethod
    def run(
        self,
        function: Callable[[Any], Any],
        params_pool: Sequence[Any],
        params_ids: Sequence[int | str],
        num_function_returns: int = 1,
        **kwargs: Any,
    ) -> list[Score]:
        """Evaluates ``function`` on every params of the pool."""

    def open_slots(self, function: Callable[[Any], Any], num_objectives: int, options: RunOptions) -> EvaluationSlots:
        """Evaluation slots for ``schedule="steady"``. The default, for a custom worker that
        implements only ``run``: one ``run`` call per candidate, each on its own thread, at most
        ``num_workers`` at once (default: one per CPU), in the context of the search's thread
        (context variables such as a running Prefect flow's), so ``run`` must be safe to call from
        several threads at once; a worker with ``respects_num_workers = False`` gets one slot
        (its calls never overlap). Override it to keep your own pool busy, or use
        ``schedule="generational"`` to keep whole-batch ``run`` calls."""
        capacity = int(options.num_workers or os.cpu_count() or 1) if self.respects_num_workers else 1
        quiet = options.with_on_result(None)

        def one(param_id: int | str, params: Any) -> Score:
            scores = self.run(function, [params], [param_id], num_objectives, **quiet.as_kwargs())
            mine = [s for s in scores if s.param_id == param_id]
            if not mine:
                raise RuntimeError(f"{self.name} returned no score for candidate {param_id!r}")
            return mine[0]

        return ThreadSlots(one, capacity, f"genetune-{self.name}")

    def measure_baselines(
        self,
        function: Callable[[Any], Any],
        num_function_returns: int,
        known: Collection[str],
        **kwargs: Any,
    ) -> list[Score]:
        """Measures ``BASELINE_CONFIG`` where the search has no baseline yet (``known``: the
        placements it has one for). By default once (id ``"baseline"``), applied to every result;
        a worker with ``baselines_per_placement`` measures it on every placement not in ``known``
        (id ``baseline@<placement>``, ``metadata["placement"]`` set)."""
        if known:
            return []
        return self.run(function, [dict(BASELINE_CONFIG)], [BASELINE_ID], num_function_returns, **kwargs)

    def close(self) -> None:
        """Releases processes or connections; called when a search ends."""

    def __enter__(self) -> BaseWorker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def name(self) -> str:
        return type(self).__name__


class BatchWorker(BaseWorker):
    """A worker written against typed arguments, as every built-in one is: implement
    :meth:`evaluate` (and, for baselines per placement, :meth:`measure_missing_baselines`);
    ``run`` and ``measure_baselines`` of the contract unpack their keywords into
    :class:`RunOptions` for them."""

    def run(
        self,
        function: Callable[[Any], Any],
        params_pool: Sequence[Any],
        params_ids: Sequence[int | str],
        num_function_returns: int = 1,
        **kwargs: Any,
    ) -> list[Score]:
        candidates = list(zip(params_ids, params_pool, strict=True))
        return self.evaluate(function, candidates, num_function_returns, RunOptions.from_kwargs(kwargs))

    @abstractmethod
    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        """One Score per candidate, each handed to ``options.report`` as it arrives."""

    def measure_baselines(
        self,
        function: Callable[[Any], Any],
        num_function_returns: int,
        known: Collection[str],
        **kwargs: Any,
    ) -> list[Score]:
        return self.measure_missing_baselines(function, num_function_returns, known, RunOptions.from_kwargs(kwargs))

    def measure_missing_baselines(
        self, function: Callable[[Any], Any], num_objectives: int, known: Collection[str], options: RunOptions
    ) -> list[Score]:
        """`BaseWorker.measure_baselines` with typed options: by default one shared baseline."""
        if known:
            return []
        return self.evaluate(function, [(BASELINE_ID, dict(BASELINE_CONFIG))], num_objectives, options)


class FutureSlots(EvaluationSlots):
    """Slots whose evaluations are ``concurrent.futures`` Futures of Scores: each one is
    collected as it ends (the exception of one that raised is re-raised by :meth:`wait`)."""

    capacity: int

    def __init__(self) -> None:
        self._done: queue.SimpleQueue[Future[Score]] = queue.SimpleQueue()
        self._in_flight = 0

    def _track(self, future: Future[Score]) -> None:
        self._in_flight += 1
        future.add_done_callback(self._done.put)

    def wait(self, timeout: float | None = None) -> list[Score]:
        if not self._in_flight:
            return []
        futures: list[Future[Score]] = []
        try:
            futures.append(self._done.get(timeout=timeout))
        except queue.Empty:
            return []
        while True:  # whatever else ended meanwhile, in one call
            try:
                futures.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._in_flight -= len(futures)
        return [f.result() for f in futures if not f.cancelled()]

    @property
    def in_flight(self) -> int:
        return self._in_flight


class ThreadSlots(FutureSlots):
    """Slots that run ``evaluate(param_id, params)`` on ``capacity`` threads."""

    def __init__(self, evaluate: Callable[[int | str, Any], Score], capacity: int, name: str = "genetune-slot") -> None:
        super().__init__()
        self.capacity = capacity
        self._evaluate = evaluate
        self._pool = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix=name)

    def submit(self, param_id: int | str, params: Any) -> None:
        # In the caller's context (a running Prefect flow, say), as the same call there would be.
        context = contextvars.copy_context()
        self._track(self._pool.submit(context.run, self._evaluate, param_id, params))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
