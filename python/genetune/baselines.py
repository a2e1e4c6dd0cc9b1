"""`Baselines`: what a normalized search divides its scores by, measured once per placement."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genetune.exceptions import SearchFailedError
from genetune.rows import Row, row_from_score
from genetune.scores import Score, normalize_scores
from genetune.workers.base import BaseWorker, RunOptions

__all__ = ["Baselines"]

#: The placement key of the one baseline of a worker without per-placement baselines.
SHARED = "*"


class Baselines:
    """The baseline rows of a search by placement (``metadata["placement"]``: host, GPU), and
    the normalization of every other result by the baseline of the placement it ran on."""

    def __init__(self, worker: BaseWorker, num_objectives: int, normalize: bool) -> None:
        self._worker = worker
        self._num_objectives = num_objectives
        self.enabled = normalize
        self._by_placement: dict[str | None, Row] = {}

    def placement_of(self, metadata: Any) -> str | None:
        """The key of the baseline that normalizes a result (None: a result without placement)."""
        if not self._worker.baselines_per_placement:
            return SHARED
        key = metadata.get("placement") if isinstance(metadata, Mapping) else None
        return str(key) if key is not None else None

    def rows(self) -> list[Row]:
        return list(self._by_placement.values())

    def restore(self, row: Row) -> None:
        """A baseline read back from the evaluation log on resume."""
        self._by_placement[self.placement_of(row["metadata"])] = row

    def lacks(self, score: Score) -> bool:
        """Whether a valid result ran where no baseline was measured yet (a worker that joined)."""
        return self.enabled and not score.failed and self.placement_of(score.metadata) not in self._by_placement

    def measure(self, function: Callable[[Any], Any], options: RunOptions, *, first: bool, run_folder: Path) -> list[Row]:
        """Measures the baselines of the placements that lack one (all of them at the start) and
        returns their rows. At the start, a search whose every baseline fails stops."""
        known = {key for key in self._by_placement if key is not None}
        quiet = options.with_on_result(lambda score: None)
        measured = self._worker.measure_baselines(function, self._num_objectives, known, **quiet.as_kwargs())
        if first and not self._by_placement and measured and all(s.failed for s in measured):
            reasons = "; ".join(sorted({s.reason or "invalid score" for s in measured}))
            raise SearchFailedError(
                f"Baseline measurement for normalization failed ({reasons}); "
                "the objective must return a valid score for BASELINE_CONFIG ({})",
                run_folder=run_folder,
            )
        rows = []
        for score in measured:
            key = self.placement_of(score.metadata)
            if score.failed:
                warnings.warn(
                    f"The baseline on {key} failed ({score.reason or 'invalid score'}): results from there are INVALID",
                    UserWarning,
                    stacklevel=5,
                )
            values = score.values()  # a baseline normalized by itself: 1 where valid
            self._by_placement[key] = row = row_from_score(score, 0, self._normalized(values, values), baseline=True)
            rows.append(row)
        return rows

    def row_of(self, score: Score, generation: int) -> Row:
        """The row of a result, normalized by its placement's baseline (when enabled)."""
        if not self.enabled:
            return row_from_score(score, generation, None)
        baseline, problem = self._baseline_for(score)
        return row_from_score(score, generation, self._normalized(score.values(), baseline), baseline_problem=problem)

    def _baseline_for(self, score: Score) -> tuple[tuple[float, ...], str]:
        """The baseline values for a result, and why they are missing or invalid."""
        key = self.placement_of(score.metadata)
        row = self._by_placement.get(key)
        if row is None:
            nothing = (math.nan,) * self._num_objectives
            return nothing, f"no baseline for placement {key!r} (its worker left before one was measured)"
        values = tuple(float(v) for v in row["scores"])
        if not all(math.isfinite(v) for v in values):
            return values, f"the baseline on placement {key!r} failed ({row['reason'] or 'invalid score'})"
        return values, ""

    @staticmethod
    def _normalized(raw: tuple[float, ...], baseline: tuple[float, ...]) -> list[float]:
        return [float(v) for v in normalize_scores(np.asarray(raw), np.asarray(baseline))]
