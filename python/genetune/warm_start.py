"""Warm starts: candidates to evaluate first, and earlier evaluations to continue from.

``warm_start=`` (on :class:`~genetune.Engine`, :class:`~genetune.Search` and the flow) takes one
item or a list of items, each

* a candidate dict (params as the objective receives them): evaluated first, in generation 0;
* a :class:`~genetune.SearchResult`, a results CSV/Parquet file or a run folder of an earlier
  search over the same space: its evaluated rows become *prior evaluations*: the engine is told
  them before it breeds (they are never evaluated again, the model learns from them, the first
  generation is bred from the best of them) and the new result keeps them with status
  ``"prior"``.

An earlier search over a different space is used when its parameters map by name onto this one;
otherwise it is refused, naming the first parameter that does not fit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genetune.checkpoint import EVALUATIONS_FILE, EvaluationLog
from genetune.results import SearchResult
from genetune.rows import Row

__all__ = ["PriorEvaluation", "WarmStart", "WarmStartPlan", "plan_warm_start"]

#: What ``warm_start=`` accepts: one item or a list of them.
WarmStart = Mapping[str, Any] | Sequence[Any] | SearchResult | str | os.PathLike[str]


@dataclass(frozen=True)
class PriorEvaluation:
    """An earlier evaluation: its params, the scores the engine is told and its original row."""

    params: Any
    told: list[float]
    row: Mapping[str, Any]


@dataclass(frozen=True)
class WarmStartPlan:
    """A resolved ``warm_start=``: candidates to evaluate first and prior evaluations."""

    candidates: list[Any] = field(default_factory=list)
    priors: list[PriorEvaluation] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.candidates or self.priors)

    def prior_scores(self, num_objectives: int) -> np.ndarray:
        if not self.priors:
            return np.zeros((0, num_objectives))
        return np.asarray([p.told for p in self.priors], dtype=np.float64).reshape(len(self.priors), num_objectives)

    def prior_rows(self) -> list[Row]:
        """The rows the new result keeps: ids ``0..k`` (the engine's), generation -1, status
        ``"prior"``; the original id, generation and status go into ``metadata["prior"]``."""
        rows: list[Row] = []
        for i, p in enumerate(self.priors):
            r = p.row
            metadata = dict(r.get("metadata") or {})
            metadata["prior"] = {"id": r.get("id"), "generation": r.get("generation"), "status": r.get("status")}
            norm = r.get("norm_scores")
            rows.append(
                {
                    "generation": -1,
                    "id": i,
                    "params": p.params,
                    "scores": [float(v) for v in r["scores"]],
                    "norm_scores": [float(v) for v in norm] if norm is not None else None,
                    "status": "prior",
                    "reason": str(r.get("reason") or ""),
                    "duration_s": float(r.get("duration_s") or 0.0),
                    "metadata": metadata,
                }
            )
        return rows


def plan_warm_start(warm_start: Any, num_objectives: int, normalized: bool, list_space: bool = False) -> WarmStartPlan:
    """Resolves ``warm_start=`` (see the module docstring). ``list_space``: the space is a list,
    so its candidates are lists of dicts (``warm_start`` is then a list of such lists)."""
    if warm_start is None:
        return WarmStartPlan()
    if isinstance(warm_start, WarmStartPlan):
        return warm_start
    items: list[Any]
    if isinstance(warm_start, Mapping | SearchResult | str | os.PathLike):
        items = [warm_start]
    elif isinstance(warm_start, list | tuple):
        items = list(warm_start)
    else:
        raise TypeError(
            f"warm_start must be a candidate dict, a SearchResult, a results file, a run folder or a list of them, got {type(warm_start).__name__}"
        )
    candidates: list[Any] = []
    priors: list[PriorEvaluation] = []
    for k, item in enumerate(items):
        if isinstance(item, Mapping) or (list_space and isinstance(item, list | tuple)):
            candidates.append(item)
        elif isinstance(item, SearchResult):
            priors.extend(_priors(_result_rows(item), num_objectives, normalized, f"warm_start[{k}]"))
        elif isinstance(item, str | os.PathLike):
            priors.extend(_priors(_file_rows(Path(item).expanduser(), num_objectives), num_objectives, normalized, str(item)))
        else:
            raise TypeError(f"warm_start[{k}]: expected a candidate dict, a SearchResult or a path, got {type(item).__name__}")
    return WarmStartPlan(candidates, priors)


def _file_rows(path: Path, num_objectives: int) -> list[Mapping[str, Any]]:
    if path.is_dir():
        log = path / EVALUATIONS_FILE
        if log.is_file():
            return list(EvaluationLog(path).rows())
        if (path / "results.csv").is_file():
            return _result_rows(SearchResult.from_csv(path / "results.csv", num_objectives=num_objectives))
        raise FileNotFoundError(f"warm_start: {path} holds neither {EVALUATIONS_FILE} nor results.csv")
    if not path.is_file():
        raise FileNotFoundError(f"warm_start: no such file or folder: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _result_rows(SearchResult.from_parquet(path, num_objectives=num_objectives))
    return _result_rows(SearchResult.from_csv(path, num_objectives=num_objectives))


def _result_rows(result: SearchResult) -> list[Mapping[str, Any]]:
    df = result.get_results()
    scores = result.score_columns
    norms = result.norm_score_columns
    rows: list[Mapping[str, Any]] = []
    for record in df.to_dict("records"):
        rows.append(
            {
                "generation": record.get("generation"),
                "id": record.get("id"),
                "params": record.get("params"),
                "scores": [float(record[c]) for c in scores],
                "norm_scores": [float(record[c]) for c in norms] if norms else None,
                "status": record.get("status"),
                "reason": record.get("reason") or "",
                "duration_s": record.get("duration_s") or 0.0,
                "metadata": record.get("metadata") if isinstance(record.get("metadata"), Mapping) else {},
            }
        )
    return rows


def _priors(rows: list[Mapping[str, Any]], num_objectives: int, normalized: bool, source: str) -> list[PriorEvaluation]:
    out: list[PriorEvaluation] = []
    for r in rows:
        # Re-measurements and race rows measure a candidate that has its own row already.
        if r.get("status") in ("baseline", "remeasure", "race") or r.get("id") == "baseline":
            continue
        scores = r.get("norm_scores") if normalized else r.get("scores")
        if normalized and scores is None:
            raise ValueError(f"warm_start {source}: the earlier search was not normalized, this one is; its scores cannot be compared")
        told = [float(v) if v is not None else math.nan for v in (scores or [])]
        if len(told) != num_objectives:
            raise ValueError(f"warm_start {source}: row {r.get('id')!r} has {len(told)} scores, this search has {num_objectives} objectives")
        out.append(PriorEvaluation(r.get("params"), told, r))
    return out
