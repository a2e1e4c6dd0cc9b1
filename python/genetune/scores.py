"""Score conventions shared by the engine and searches."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from genetune import _core

__all__ = ["BASELINE_CONFIG", "BASELINE_ID", "INVALID_SCORE", "Score", "baseline_id", "normalize_scores", "score_matrix"]

#: What an objective returns (or what a failed evaluation is recorded as) for "no valid score".
INVALID_SCORE: Final = "*"

#: The params the objective receives for the baseline measurement (``normalize=True``).
BASELINE_CONFIG: Final[dict[str, Any]] = {}

#: The candidate id of the baseline measurement; per-placement baselines are ``baseline@<placement>``.
BASELINE_ID: Final = "baseline"


def baseline_id(placement: str | None = None) -> str:
    """The id of the baseline measured on ``placement`` (the one shared baseline without)."""
    return BASELINE_ID if placement is None else f"{BASELINE_ID}@{placement}"


class Score(BaseModel):
    """One evaluation's outcome, as workers return it (CompileIQ's contract, plus ``reason``,
    ``duration_s`` and structured ``metadata``).

    ``score`` is a number (one objective), a tuple of numbers, or ``"*"`` (INVALID); NaN/inf
    count as INVALID too.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    param_id: int | str
    params: Any
    score: Any
    num_objectives: int = 1
    reason: str = ""
    duration_s: float = 0.0
    metadata: dict[str, Any] | str = Field(default_factory=dict)

    def values(self) -> tuple[float, ...]:
        """The raw scores as floats, NaN where invalid."""
        raw = self.score
        if isinstance(raw, str) or raw is None:
            return (float("nan"),) * self.num_objectives
        items = raw if isinstance(raw, list | tuple | np.ndarray) else (raw,)
        out = tuple(_as_float(v) if not isinstance(v, str) else float("nan") for v in items)
        return tuple(v if np.isfinite(v) else float("nan") for v in out)

    @property
    def failed(self) -> bool:
        return not all(np.isfinite(self.values()))

    def metadata_dict(self) -> dict[str, Any]:
        """``metadata`` as a dict (a custom worker's plain-text metadata becomes ``{"note": text}``)."""
        return self.metadata if isinstance(self.metadata, dict) else {"note": self.metadata}


def _as_float(value: Any) -> float:
    if isinstance(value, str):
        if value == INVALID_SCORE:
            return float("nan")
        raise ValueError(f"a score must be a number or {INVALID_SCORE!r}, got {value!r}")
    if value is None or isinstance(value, bool):
        raise ValueError(f"a score must be a number or {INVALID_SCORE!r}, got {value!r}")
    return float(value)


def score_matrix(scores: ArrayLike, rows: int, num_objectives: int) -> NDArray[np.float64]:
    """Scores as a C-contiguous float64 ``(rows, num_objectives)`` matrix; ``"*"``, NaN and inf
    mean INVALID. A 1-D input is read as one column (one objective) or one row (one candidate)."""
    arr = np.asarray(scores)
    if arr.dtype.kind not in "fiu":
        # Mixed numbers and "*" would become strings: convert element by element instead.
        arr = np.asarray(scores, dtype=object)
        arr = np.vectorize(_as_float, otypes=[np.float64])(arr) if arr.size else arr.astype(np.float64)
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        if num_objectives == 1 and arr.shape[0] == rows:
            arr = arr.reshape(rows, 1)
        elif rows == 1 and arr.shape[0] == num_objectives:
            arr = arr.reshape(1, num_objectives)
    if arr.shape != (rows, num_objectives):
        raise ValueError(f"scores must have shape ({rows}, {num_objectives}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def normalize_scores(scores: ArrayLike, baseline: ArrayLike) -> NDArray[np.float64]:
    """Normalizes scores against a baseline, per objective, in the Rust core.

    ``norm = score / baseline`` for a positive baseline; in general
    ``1 + (score - baseline) / |baseline|``, which keeps the order of scores, so a normalized
    objective keeps its direction even for a negative baseline. A zero or non-finite baseline, or
    an invalid score, gives NaN (INVALID). Accepts one row or an ``(n, m)`` matrix and returns
    the same shape.
    """
    base = np.ascontiguousarray(np.atleast_1d(np.asarray(baseline, dtype=np.float64)))
    if base.ndim != 1:
        raise ValueError(f"baseline must be one row of scores, got shape {base.shape}")
    arr = np.asarray(scores, dtype=np.float64)
    one_row = arr.ndim <= 1
    matrix = np.ascontiguousarray(arr.reshape(1, -1) if one_row else arr)
    out = _core.normalize_scores(matrix, base)
    return out.reshape(arr.shape) if one_row else out
