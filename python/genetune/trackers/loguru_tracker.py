"""`LoguruTracker`: lifecycle events as loguru log lines (CompileIQ's messages and format)."""

from __future__ import annotations

import sys
from typing import Any

from loguru import logger

from genetune.trackers.base import BaseTracker

__all__ = ["DEFAULT_FORMAT", "LoguruTracker"]

DEFAULT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {extra[task_id]} | {message}"
_RULE = "=" * 48


class LoguruTracker(BaseTracker):
    """Logs to ``sink`` (one or a list: stream, path, callable; default stdout) at ``level``.

    It adds its own handlers and removes only those, so the user's loguru setup survives.
    Records carry ``extra["genetune"] = True`` and ``extra["task_id"]``; handlers added here only
    take genetune's records.
    """

    def __init__(
        self,
        sink: Any | list[Any] | None = None,
        level: str = "INFO",
        format: str = DEFAULT_FORMAT,  # noqa: A002 - CompileIQ's name
        enqueue: bool = False,
        **sink_options: Any,
    ) -> None:
        self.sinks: list[Any] = sink if isinstance(sink, list) else [sink if sink is not None else sys.stdout]
        self.level = level
        self.format = format
        self.enqueue = enqueue
        self.sink_options = sink_options
        self._handler_ids: list[int] = []

    @property
    def _logger(self) -> Any:
        return logger.bind(genetune=True, task_id="<no-task-id>")

    def setup(self) -> None:
        for sink in self.sinks:
            self._handler_ids.append(
                logger.add(
                    sink,
                    level=self.level,
                    format=self.format,
                    enqueue=self.enqueue,
                    filter=lambda record: bool(record["extra"].get("genetune")),
                    **self.sink_options,
                )
            )

    def search_starts(self, manifest: dict[str, Any]) -> None:
        log = self._logger
        log.info("Search started")
        log.info(
            f"engine {manifest.get('engine')}, seed {manifest.get('seed')}, "
            f"{manifest.get('config', {}).get('generations')} generations of {manifest.get('config', {}).get('pool_size')}"
        )

    def generation_starts(self, generation: int) -> None:
        log = self._logger
        log.info(_RULE)
        log.info(f"Generation {generation} started")

    def pre_objective(self, candidate: dict[str, Any]) -> None:
        self._logger.bind(task_id=candidate["id"]).debug(f"Executing objective function with: {candidate['params']}")

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        log = self._logger.bind(task_id=candidate["id"])
        if score["status"] == "invalid":
            log.warning(f"Scored: invalid ({score['reason']})")
        else:
            log.debug(f"Scored: {score['scores']}")

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        log = self._logger
        best = stats.get("best")
        front = f", Pareto front {stats['pareto_size']}" if stats.get("pareto_size") is not None else ""
        log.info(
            f"Generation {generation} ended: best {best}{front}, invalid {stats.get('invalid')} "
            f"({stats.get('invalid_rate', 0.0):.0%}), {stats.get('wall_time_s', 0.0):.2f} s"
        )
        log.info(_RULE)

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        self._logger.success(f"Search ended ({reason}): {summary.get('evaluations')} evaluations, best {summary.get('best')}")

    def cleanup(self) -> None:
        for handler_id in self._handler_ids:
            logger.remove(handler_id)
        self._handler_ids.clear()

    def __getstate__(self) -> dict[str, Any]:
        # Streams and handler ids stay in the process that owns them.
        state = self.__dict__.copy()
        state["_handler_ids"] = []
        state["sinks"] = [s if isinstance(s, str) else None for s in self.sinks]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.sinks = [s if s is not None else sys.stdout for s in self.sinks]

