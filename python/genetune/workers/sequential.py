"""`SequentialWorker`: evaluates in the calling process, one candidate after another."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from genetune.evaluation import evaluate
from genetune.scores import Score
from genetune.workers.base import BaseWorker

__all__ = ["SequentialWorker"]


class SequentialWorker(BaseWorker):
    """No processes, no pickling: best for debugging and for objectives that parallelize
    themselves. It cannot stop a hung evaluation, so ``task_timeout`` is not supported."""

    respects_num_workers: ClassVar[bool] = False
    supports_timeout: ClassVar[bool] = False

    def run(
        self,
        function: Callable[[Any], Any],
        params_pool: Sequence[Any],
        params_ids: Sequence[int | str],
        num_function_returns: int = 1,
        **kwargs: Any,
    ) -> list[Score]:
        on_result = kwargs.get("on_result")
        scores = []
        for param_id, params in zip(params_ids, params_pool, strict=True):
            score = evaluate(function, param_id, params, num_function_returns, self.name)
            if on_result is not None:
                on_result(score)
            scores.append(score)
        return scores
