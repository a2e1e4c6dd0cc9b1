"""`SequentialWorker`: evaluates in the calling process, one candidate after another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from genetune.evaluation import evaluate
from genetune.scores import Score
from genetune.workers.base import BatchWorker, Candidates, RunOptions

__all__ = ["SequentialWorker"]


class SequentialWorker(BatchWorker):
    """No processes, no pickling: best for debugging and for objectives that parallelize
    themselves. It cannot stop a hung evaluation, so ``task_timeout`` is not supported."""

    respects_num_workers: ClassVar[bool] = False
    supports_timeout: ClassVar[bool] = False

    def evaluate(self, function: Callable[[Any], Any], candidates: Candidates, num_objectives: int, options: RunOptions) -> list[Score]:
        return [options.report(evaluate(function, param_id, params, num_objectives, self.name)) for param_id, params in candidates]
