"""The tracker protocol: lifecycle events of a search, all optional."""

from __future__ import annotations

from typing import Any

__all__ = ["EVENTS", "BaseTracker"]

#: The lifecycle events, in the order a search emits them.
EVENTS = ("setup", "search_starts", "generation_starts", "pre_objective", "post_objective", "generation_ends", "search_ends", "cleanup")


class BaseTracker:
    """Subclass and override only what you need; every hook is a no-op here. Any object with some
    of these methods works as a tracker too.

    Hooks run on the search's tracker thread, one event at a time, in the order the search emits
    them (per candidate: ``pre_objective`` before ``post_objective``). A hook that raises is
    isolated: it costs a warning, the other trackers and the search go on, and a tracker that
    keeps failing is disabled for the rest of the search.

    * ``search_starts(manifest)``: config, search space, seed, engine, versions, host, environment
      fingerprint, run folder.
    * ``pre_objective(candidate)`` / ``post_objective(candidate, score)``: ``candidate`` is
      ``{"id", "generation", "params"}``; ``score`` is the result row (``scores``,
      ``norm_scores``, ``status``, ``reason``, ``duration_s``, ``metadata`` with user metrics).
    * ``generation_ends(generation, stats)``: best score(s) so far, Pareto size and hypervolume
      (several objectives), evaluations, invalid count and rate, wall time, throughput.
    * ``search_ends(reason, summary)``: ``reason`` is completed, exhausted, stopped or error.
    """

    @property
    def name(self) -> str:
        return type(self).__name__

    def setup(self) -> None:
        """Called once on the tracker thread before the first event."""

    def search_starts(self, manifest: dict[str, Any]) -> None:
        pass

    def generation_starts(self, generation: int) -> None:
        pass

    def pre_objective(self, candidate: dict[str, Any]) -> None:
        pass

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        pass

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        pass

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        pass

    def cleanup(self) -> None:
        """Called once after ``search_ends``: release sinks, files, connections."""
