"""`AsyncWorker`: ``async def`` objectives, concurrently, with a concurrency limit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from genetune.evaluation import evaluate_async, invalid_score
from genetune.failures import timeout_reason
from genetune.scores import Score
from genetune.workers.base import BatchWorker, Candidates, RunOptions

__all__ = ["AsyncWorker"]

_T = TypeVar("_T")


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
