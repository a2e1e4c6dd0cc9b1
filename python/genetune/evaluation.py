"""Calling the objective once: timing, failure capture and return-value checks."""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from genetune.exceptions import InvalidCandidate, ObjectiveReturnError
from genetune.metrics import collect_metrics
from genetune.scores import INVALID_SCORE, Score

__all__ = ["evaluate", "evaluate_async", "exception_score", "invalid_score", "placement", "scores_from_return", "with_metrics"]

_NUMBER = (int, float, np.integer, np.floating)


def placement_key(node: str, gpu: str | None) -> str:
    """The key baselines are kept under with per-placement normalization: the host, plus the
    physical GPU (the first entry of ``CUDA_VISIBLE_DEVICES``, as dask-cuda rotates the list)."""
    first = (gpu or "").split(",")[0].strip()
    return f"{node}/gpu{first}" if first else node


def placement() -> dict[str, Any]:
    """Where this evaluation runs: process, host, visible GPUs and the placement key."""
    node, gpu = socket.gethostname(), os.environ.get("CUDA_VISIBLE_DEVICES")
    return {"pid": os.getpid(), "node": node, "gpu": gpu, "placement": placement_key(node, gpu)}


def _one(value: Any, where: str) -> float:
    if isinstance(value, str) and value == INVALID_SCORE:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise ObjectiveReturnError(
            f"{where}: the objective returned {value!r} ({type(value).__name__}); expected int | float | {INVALID_SCORE!r}"
        )
    return float(value)


def scores_from_return(value: Any, num_objectives: int, where: str) -> tuple[tuple[float, ...], str]:
    """Checks an objective's return value; returns the scores (NaN = invalid) and the reason
    they are invalid ("" when valid). A wrong type or count raises ObjectiveReturnError."""
    if isinstance(value, str) and value == INVALID_SCORE:
        return (math.nan,) * num_objectives, f"objective returned {INVALID_SCORE!r}"
    if num_objectives == 1:
        if isinstance(value, list | tuple | np.ndarray):
            raise ObjectiveReturnError(f"{where}: the objective returned {value!r}; with num_objectives=1 it must return one number")
        scores: tuple[float, ...] = (_one(value, where),)
    else:
        if not isinstance(value, list | tuple | np.ndarray) or len(value) != num_objectives:
            raise ObjectiveReturnError(
                f"{where}: the objective returned {value!r}; with num_objectives={num_objectives} "
                f"it must return a tuple or list of {num_objectives} numbers"
            )
        scores = tuple(_one(v, where) for v in value)
    if all(math.isfinite(v) for v in scores):
        return scores, ""
    if any(isinstance(v, str) for v in (value if isinstance(value, list | tuple) else [value])):
        return tuple(v if math.isfinite(v) else math.nan for v in scores), f"objective returned {INVALID_SCORE!r}"
    return tuple(v if math.isfinite(v) else math.nan for v in scores), "non-finite score"


def invalid_score(param_id: int | str, params: Any, num_objectives: int, reason: str, duration_s: float = 0.0, **metadata: Any) -> Score:
    """A Score for an evaluation that produced nothing (timeout, crash, exception)."""
    return Score(
        param_id=param_id,
        params=params,
        score=INVALID_SCORE,
        num_objectives=num_objectives,
        reason=reason,
        duration_s=duration_s,
        metadata=metadata,
    )


def _exception_reason(err: BaseException) -> str:
    if isinstance(err, InvalidCandidate):
        return err.reason
    last = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"exception: {type(err).__name__}: {err}{where}"


def _score(param_id: int | str, params: Any, num_objectives: int, value: Any, start: float, worker: str) -> Score:
    scores, reason = scores_from_return(value, num_objectives, f"candidate {param_id} {params!r}")
    return Score(
        param_id=param_id,
        params=params,
        score=scores if num_objectives > 1 else scores[0],
        num_objectives=num_objectives,
        reason=reason,
        duration_s=time.perf_counter() - start,
        metadata={"worker": worker, **placement()},
    )


def exception_score(err: BaseException, param_id: int | str, params: Any, num_objectives: int, start: float, worker: str) -> Score:
    """The INVALID score of an evaluation that raised (``InvalidCandidate``: its own reason)."""
    return invalid_score(param_id, params, num_objectives, _exception_reason(err), time.perf_counter() - start, worker=worker, **placement())


def with_metrics(score: Score, metrics: dict[str, Any]) -> Score:
    if not metrics or not isinstance(score.metadata, dict):
        return score
    return score.model_copy(update={"metadata": {**score.metadata, "metrics": dict(metrics)}})


def _evaluates_itself(function: Any) -> bool:
    return callable(getattr(type(function), "genetune_evaluate", None))


def evaluate(function: Callable[[Any], Any], param_id: int | str, params: Any, num_objectives: int, worker: str) -> Score:
    """Runs the objective once. An exception makes the candidate INVALID with the reason
    recorded; a wrong return type or count raises ObjectiveReturnError. Metrics the objective
    logs (``genetune.log_metric``) land in ``metadata["metrics"]``. An objective with a
    ``genetune_evaluate`` method (a :class:`genetune.objectives.MeasuredObjective`: repeats,
    two phases) evaluates itself."""
    if _evaluates_itself(function):
        score: Score = function.genetune_evaluate(param_id, params, num_objectives, worker)  # type: ignore[attr-defined]
        return score
    start = time.perf_counter()
    with collect_metrics() as metrics:
        try:
            value = function(params)
        except Exception as err:
            return with_metrics(exception_score(err, param_id, params, num_objectives, start, worker), metrics)
    return with_metrics(_score(param_id, params, num_objectives, value, start, worker), metrics)


async def evaluate_async(
    function: Callable[[Any], Any], param_id: int | str, params: Any, num_objectives: int, worker: str
) -> Score:
    """`evaluate` for ``async def`` objectives (a measuring plan runs in a thread)."""
    if _evaluates_itself(function):
        return await asyncio.to_thread(evaluate, function, param_id, params, num_objectives, worker)
    start = time.perf_counter()
    with collect_metrics() as metrics:
        try:
            value = function(params)
            if inspect.isawaitable(value):
                value = await value
        except Exception as err:
            return with_metrics(exception_score(err, param_id, params, num_objectives, start, worker), metrics)
    return with_metrics(_score(param_id, params, num_objectives, value, start, worker), metrics)
