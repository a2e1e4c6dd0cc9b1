"""`ScheduleLog`: the order of a steady search's asks and tells, so a resumed search replays it.

The engine gives the same candidates for the same seed and the same sequence of ``ask(n)`` and
``tell`` calls, so ``schedule.jsonl`` in the run folder records each call as it is made: an ask
as ``{"ask": n, "ids": [...]}`` (the ids it returned, checked on replay), a tell as
``{"tell": id, "scores": [...]}`` (what the engine was told: racing's mean, a normalized score).
The checkpoint records how many events its engine state already holds; a resume restores that
state and replays the rest. Lines are flushed as they are written, made durable before an
evaluation row is appended after them (:meth:`ScheduleLog.make_durable`: a power loss can cut the
evaluation log further than this one, never the other way round for an ask) and at every
checkpoint; a line cut short by a kill is removed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from genetune.exceptions import StateError

__all__ = ["SCHEDULE_FILE", "ScheduleLog"]

SCHEDULE_FILE = "schedule.jsonl"


class ScheduleLog:
    """Append-only JSON Lines of asks and tells (``count``: the events in the file)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / SCHEDULE_FILE
        self._handle: TextIO | None = None
        self.count = self._repair()
        #: Events known to be on disk (all of them when the file was read back).
        self.durable = self.count

    def _repair(self) -> int:
        """Cuts a line left incomplete by a kill (appending after it would corrupt the next
        one); returns the number of complete events."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        kept = 0
        count = 0
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines, 1):
            try:
                complete = line.endswith(b"\n") and isinstance(json.loads(line), dict)
            except ValueError:
                complete = False
            if not complete:
                if number < len(lines):  # damage in the middle is never a silent end of the log
                    raise StateError(f"{self.path}: line {number} is damaged; the schedule after it cannot be replayed")
                break
            kept += len(line)
            count += 1
        if kept < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(kept)
        return count

    def asked(self, n: int, ids: Sequence[int]) -> None:
        self._write({"ask": n, "ids": [int(i) for i in ids]})

    def told(self, candidate_id: int, scores: Sequence[float]) -> None:
        self._write({"tell": int(candidate_id), "scores": [float(v) for v in scores]})

    def _write(self, event: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a")  # noqa: SIM115 - kept open for the search
        self._handle.write(json.dumps(event) + "\n")
        self._handle.flush()
        self.count += 1

    def sync(self) -> None:
        if self._handle is not None:
            os.fsync(self._handle.fileno())
        self.durable = self.count

    def make_durable(self) -> None:
        """Syncs the events written since the last sync (before an evaluation row that follows
        their asks is appended, so no logged evaluation belongs to an ask a power loss erased)."""
        if self.durable < self.count:
            self.sync()

    def cut(self, keep: int, why: str) -> None:
        """Keeps the first ``keep`` events, dropping the rest with a warning naming the file and
        ``why`` (on resume, before anything is appended)."""
        self.close()
        data = self.path.read_bytes()
        lines = data.splitlines(keepends=True)
        kept = sum(len(line) for line in lines[:keep])
        with open(self.path, "r+b") as handle:
            handle.truncate(kept)
            handle.flush()
            os.fsync(handle.fileno())
        warnings.warn(f"{self.path}: dropped events {keep + 1}–{len(lines)} of {len(lines)}: {why}", UserWarning, stacklevel=3)
        self.count = self.durable = keep

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def events(self) -> list[dict[str, Any]]:
        """Every complete event (the file as :meth:`_repair` left it)."""
        if not self.path.exists():
            return []
        events: list[dict[str, Any]] = []
        with open(self.path) as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return events
