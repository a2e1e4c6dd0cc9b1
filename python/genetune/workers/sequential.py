"""`SequentialWorker`: evaluates in the calling process, one candidate after another."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from genetune.evaluation import evaluate
from genetune.scores import Score
from genetune.workers.base import BatchWorker, Candidates, EvaluationSlots, RunOptions

__all__ = ["SequentialWorker"]


class SequentialWorker(BatchWorker):
    """No processes, no pickling: best for debugging and for objectives that parallelize
    themselves. It cannot stop a hung evaluation, so ``task_timeout`` is not supported."""

    respects_num_workers: ClassVar[bool] = False
    supports_timeout: ClassVar[bool] = False

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        return [options.report(evaluate(function, param_id, params, num_objectives, self.name)) for param_id, params in candidates]

    def open_slots(self, function: Callable[[Any], Any], num_objectives: int, options: RunOptions) -> EvaluationSlots:
        return _InlineSlots(function, num_objectives, self.name)


class _InlineSlots(EvaluationSlots):
    """One slot: the candidate is evaluated in the calling thread when the search waits for it."""

    capacity = 1

    def __init__(self, function: Callable[[Any], Any], num_objectives: int, worker: str) -> None:
        self._function = function
        self._num_objectives = num_objectives
        self._worker = worker
        self._todo: deque[tuple[int | str, Any]] = deque()

    def submit(self, param_id: int | str, params: Any) -> None:
        self._todo.append((param_id, params))

    def wait(self, timeout: float | None = None) -> list[Score]:
        if not self._todo:
            return []
        param_id, params = self._todo.popleft()
        return [evaluate(self._function, param_id, params, self._num_objectives, self._worker)]

    @property
    def in_flight(self) -> int:
        return len(self._todo)

    def close(self) -> None:
        self._todo.clear()
