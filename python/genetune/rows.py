"""`Row`: one evaluation as a search records it (the evaluation log, trackers, the result table)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

from genetune.scores import Score

__all__ = ["Row", "Status", "row_from_score", "told_scores"]

#: ``"prior"``: an earlier search's evaluation a warm start continues from (never re-evaluated);
#: ``"remeasure"``: a re-measurement of a candidate when the search ended (:mod:`genetune.remeasure`);
#: ``"race"``: a candidate measured again while racing the incumbent (:mod:`genetune.racing`).
Status = Literal["valid", "invalid", "baseline", "prior", "remeasure", "race"]


class Row(TypedDict):
    """A plain dict (it is written to JSON Lines and handed to trackers as is)."""

    generation: int
    id: int | str
    params: Any
    scores: list[float]
    #: The scores normalized by the row's baseline (None without normalization).
    norm_scores: list[float] | None
    status: Status
    #: Why the row is INVALID ("" when valid).
    reason: str
    duration_s: float
    metadata: dict[str, Any]


def row_from_score(
    score: Score,
    generation: int,
    norm_scores: Sequence[float] | None,
    *,
    baseline: bool = False,
    baseline_problem: str = "",
) -> Row:
    """The row of ``score``: valid when the scores the engine is told (normalized ones when
    given) are all finite; ``baseline_problem`` explains an invalid normalization."""
    raw = score.values()
    told = norm_scores if norm_scores is not None else raw
    valid = all(math.isfinite(v) for v in told)
    reason = score.reason
    if not valid and not reason:
        reason = baseline_problem or "invalid normalized score (baseline is zero or invalid)"
    status: Status = "baseline" if baseline else ("valid" if valid else "invalid")
    return {
        "generation": generation,
        "id": score.param_id,
        "params": score.params,
        "scores": list(raw),
        "norm_scores": list(norm_scores) if norm_scores is not None else None,
        "status": status,
        "reason": "" if valid else reason,
        "duration_s": score.duration_s,
        "metadata": score.metadata_dict(),
    }


def told_scores(row: Row) -> list[float]:
    """What the engine is told for a row: its normalized scores in a normalized search, else its scores."""
    return row["norm_scores"] if row["norm_scores"] is not None else row["scores"]
