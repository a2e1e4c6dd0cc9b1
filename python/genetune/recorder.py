"""`Recorder`: where each finished evaluation goes, once, and what each generation end writes."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from genetune.checkpoint import EvaluationLog, write_checkpoint
from genetune.config import SearchConfiguration
from genetune.manifest import GenerationStats
from genetune.progress import Progress
from genetune.rows import Row
from genetune.trackers import TrackerBus

__all__ = ["Recorder"]


def _candidate(candidate_id: int | str, generation: int, params: Any) -> dict[str, Any]:
    """A candidate as the trackers' ``pre_objective``/``post_objective`` events receive it."""
    return {"id": candidate_id, "generation": generation, "params": params}


class Recorder:
    """Owns the run folder's evaluation log and checkpoint, the progress bar, the per-generation
    statistics and the tracker events of one run of a search.

    ``replayed``: the rows of the generations a resumed checkpoint already completed (counted in
    the progress and statistics); ``already_logged``: the ids in the evaluation log (never
    written again).
    """

    def __init__(
        self,
        folder: Path,
        config: SearchConfiguration,
        trackers: list[Any],
        progress_disabled: bool,
        replayed: list[Row],
        already_logged: Collection[int | str],
    ) -> None:
        assert config.pool_size is not None and config.directions is not None
        self._folder = folder
        self._log = EvaluationLog(folder)
        self._logged: set[int | str] = set(already_logged)
        self._progress = Progress(config.generations, config.pool_size, progress_disabled)
        self.stats = GenerationStats([str(d) for d in config.directions], config.normalize)
        for generation in sorted({r["generation"] for r in replayed}):
            self.stats.add_generation(generation, [r for r in replayed if r["generation"] == generation], 0.0)
        self._bus = TrackerBus(trackers)

    # ----- evaluations -------------------------------------------------------------------------

    def is_logged(self, row: Row) -> bool:
        return row["id"] in self._logged

    def replayed(self, row: Row) -> None:
        """A finished evaluation (or baseline) read back on resume: counted in the current
        generation's progress (when one runs), not logged or announced again."""
        if row["status"] != "baseline":
            self._progress.evaluated(row["status"] == "invalid")

    def starts(self, candidate_id: int | str, generation: int, params: Any) -> None:
        self._bus.emit("pre_objective", _candidate(candidate_id, generation, params))

    def evaluated(self, row: Row) -> None:
        """A finished evaluation: logged (once), counted, announced."""
        self._append(row)
        self._progress.evaluated(row["status"] != "valid")
        self._bus.emit("post_objective", _candidate(row["id"], row["generation"], row["params"]), row)

    def baseline(self, row: Row, failed: bool) -> None:
        """A measured baseline: logged and announced as one evaluation (``failed``: it is not a
        finite measurement; the progress bars count candidates only)."""
        self._append(row)
        self.starts(row["id"], row["generation"], row["params"])
        self._bus.emit("post_objective", _candidate(row["id"], row["generation"], row["params"]), row)

    def remeasured(self, row: Row) -> None:
        """A re-measurement (``remeasure_top``): logged (once) and announced, not counted in the
        progress (the search's budget is spent)."""
        self._append(row)
        self._bus.emit("post_objective", _candidate(row["id"], row["generation"], row["params"]), row)

    def _append(self, row: Row) -> None:
        if row["id"] not in self._logged:
            self._log.append(row)
            self._logged.add(row["id"])

    # ----- the search and its generations -------------------------------------------------------

    def search_starts(self, manifest: dict[str, Any]) -> None:
        self._bus.emit("search_starts", manifest)

    def sync(self) -> None:
        """Makes the evaluation log durable (before a checkpoint that counts on it)."""
        self._log.sync()

    def checkpoint(self, payload: dict[str, Any]) -> None:
        write_checkpoint(self._folder, payload)

    def generation_starts(self, generation: int) -> None:
        self._progress.generation(generation)
        self._bus.emit("generation_starts", generation)

    def generation_ends(
        self,
        generation: int,
        rows: list[Row],
        wall_time_s: float,
        checkpoint: dict[str, Any],
        constraint_draws: tuple[int, int] | None = None,
    ) -> None:
        """Makes the generation durable (log synced, then the checkpoint), then reports it.
        ``constraint_draws``: the engine's candidates checked against constraints and rejected."""
        self._log.sync()
        self.checkpoint(checkpoint)
        stats = self.stats.add_generation(generation, rows, wall_time_s)
        if constraint_draws is not None:
            drawn, rejected = constraint_draws
            stats.update(constraint_draws=drawn, constraint_rejections=rejected, constraint_rejection_rate=rejected / drawn if drawn else 0.0)
        self._bus.emit("generation_ends", generation, stats)
        self._progress.best(tuple(stats["best"]) if stats["best"] else None, stats["pareto_size"])

    def close_files(self) -> None:
        self._log.close()
        self._progress.close()

    def search_ends(self, reason: str, summary: dict[str, Any]) -> dict[str, str]:
        """Announces the end and closes the trackers; returns their report."""
        self._bus.emit("search_ends", reason, summary)
        return self._bus.close()
