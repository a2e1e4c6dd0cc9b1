"""`AsyncWorker`: ``async def`` objectives, concurrently, with a concurrency limit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from genetune.evaluation import evaluate_async, invalid_score
from genetune.failures import timeout_reason
from genetune.scores import Score
from genetune.workers.base import BatchWorker, Candidates, EvaluationSlots, FutureSlots, RunOptions

__all__ = ["AsyncWorker"]

_T = TypeVar("_T")
#: Evaluations in flight at once under ``schedule="steady"`` when ``num_workers`` is not given.
DEFAULT_SLOTS = 32


def _run_coroutine(coro: Coroutine[Any, Any, _T]) -> _T:
    """Runs a coroutine to completion, also from code that already runs an event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class AsyncWorker(BatchWorker):
    """Runs an ``async def`` objective on one event loop, at most ``num_workers`` evaluations at
    once (unbounded when not given). ``task_timeout`` cancels an evaluation at its next ``await``;
    a blocking call inside the coroutine cannot be interrupted."""

    respects_num_workers: ClassVar[bool] = True
    supports_timeout: ClassVar[bool] = True

    def open_slots(self, function: Callable[[Any], Any], num_objectives: int, options: RunOptions) -> EvaluationSlots:
        """``num_workers`` (default 32) evaluations at once on an event loop of its own thread."""
        return _LoopSlots(function, num_objectives, options.task_timeout, int(options.num_workers or DEFAULT_SLOTS), self.name)

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        timeout = options.task_timeout

        async def one(semaphore: asyncio.Semaphore | None, param_id: int | str, params: Any) -> Score:
            started = time.perf_counter()
            try:
                if semaphore is None:
                    score = await asyncio.wait_for(evaluate_async(function, param_id, params, num_objectives, self.name), timeout)
                else:
                    async with semaphore:
                        started = time.perf_counter()
                        score = await asyncio.wait_for(evaluate_async(function, param_id, params, num_objectives, self.name), timeout)
            except TimeoutError:
                assert timeout is not None
                reason = timeout_reason(timeout, "cancelled")
                score = invalid_score(param_id, params, num_objectives, reason, time.perf_counter() - started, worker=self.name)
            return options.report(score)

        async def main() -> list[Score]:
            semaphore = asyncio.Semaphore(int(options.num_workers)) if options.num_workers else None
            return list(await asyncio.gather(*(one(semaphore, i, p) for i, p in candidates)))

        return _run_coroutine(main())


class _LoopSlots(FutureSlots):
    """An event loop in a thread of its own; each candidate is one coroutine on it."""

    def __init__(self, function: Callable[[Any], Any], num_objectives: int, timeout: float | None, capacity: int, worker: str) -> None:
        super().__init__()
        self.capacity = capacity
        self._function = function
        self._num_objectives = num_objectives
        self._timeout = timeout
        self._worker = worker
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="genetune-async-slots", daemon=True)
        self._thread.start()

    async def _one(self, param_id: int | str, params: Any) -> Score:
        started = time.perf_counter()
        try:
            call = evaluate_async(self._function, param_id, params, self._num_objectives, self._worker)
            return await asyncio.wait_for(call, self._timeout)
        except TimeoutError:
            assert self._timeout is not None
            reason = timeout_reason(self._timeout, "cancelled")
            return invalid_score(param_id, params, self._num_objectives, reason, time.perf_counter() - started, worker=self._worker)

    def submit(self, param_id: int | str, params: Any) -> None:
        self._track(asyncio.run_coroutine_threadsafe(self._one(param_id, params), self._loop))

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
