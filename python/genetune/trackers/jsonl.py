"""`JsonlTracker`: every event as one JSON line, flushed as written (a killed search leaves a
readable log up to its last event). Load it with ``pandas.read_json(path, lines=True)``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

from genetune.jsonable import lenient_json_default
from genetune.trackers.base import BaseTracker

__all__ = ["JsonlTracker"]


class JsonlTracker(BaseTracker):
    """Appends ``{"event", "time", ...payload}`` records to ``path`` (``run_log.jsonl`` in the run
    folder when None)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._handle: TextIO | None = None

    def _write(self, event: str, **payload: Any) -> None:
        if self._handle is None:
            if self.path is None:
                raise RuntimeError("JsonlTracker has no path and the search gave no run folder")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a")  # noqa: SIM115 - kept open for the search
        self._handle.write(json.dumps({"event": event, "time": time.time(), **payload}, default=lenient_json_default) + "\n")
        self._handle.flush()

    def search_starts(self, manifest: dict[str, Any]) -> None:
        if self.path is None and manifest.get("run_folder"):
            self.path = Path(manifest["run_folder"]) / "run_log.jsonl"
        self._write("search_starts", manifest=manifest)

    def generation_starts(self, generation: int) -> None:
        self._write("generation_starts", generation=generation)

    def pre_objective(self, candidate: dict[str, Any]) -> None:
        self._write("pre_objective", candidate=candidate)

    def post_objective(self, candidate: dict[str, Any], score: dict[str, Any]) -> None:
        self._write("post_objective", candidate=candidate, score=score)

    def generation_ends(self, generation: int, stats: dict[str, Any]) -> None:
        self._write("generation_ends", generation=generation, stats=stats)

    def search_ends(self, reason: str, summary: dict[str, Any]) -> None:
        self._write("search_ends", reason=reason, summary=summary)

    def cleanup(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
