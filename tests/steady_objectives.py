"""Objectives for the steady-schedule tests; module-level so worker processes can import them."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from objectives import quadratic

#: How long the held evaluation waits at most (a generation barrier would make it wait this long).
HOLD_S = 60.0


class HoldsOne:
    """The first evaluation (whichever candidate) waits until ``others`` other evaluations have
    ended, then writes how many it saw to ``saw``: under a generation barrier they could not
    end (their generation waits for it), so it would wait its whole ``HOLD_S``."""

    def __init__(self, folder: str, others: int) -> None:
        self.folder = folder
        self.others = others

    def _first(self) -> bool:
        try:
            os.close(os.open(Path(self.folder) / "held", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return False
        return True

    def _done(self) -> int:
        return len(list(Path(self.folder).glob("done-*")))

    def _finish(self, params: dict[str, Any]) -> float:
        (Path(self.folder) / f"done-{uuid.uuid4().hex}").touch()
        return quadratic(params)

    def __call__(self, params: dict[str, Any]) -> float:
        if self._first():
            deadline = time.monotonic() + HOLD_S
            while self._done() < self.others and time.monotonic() < deadline:
                time.sleep(0.02)
            (Path(self.folder) / "saw").write_text(str(self._done()))
            return quadratic(params)
        time.sleep(0.01)
        return self._finish(params)


class AsyncHoldsOne(HoldsOne):
    """:class:`HoldsOne` for the event loop of ``AsyncWorker``."""

    async def __call__(self, params: dict[str, Any]) -> float:  # type: ignore[override]
        if self._first():
            deadline = time.monotonic() + HOLD_S
            while self._done() < self.others and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            (Path(self.folder) / "saw").write_text(str(self._done()))
            return quadratic(params)
        await asyncio.sleep(0.01)
        return self._finish(params)


class Logged:
    """``quadratic``, appending each call's params to ``path`` (what a search evaluated, across
    processes and restarts); raises KeyboardInterrupt at call ``stop_at`` once (a stop)."""

    def __init__(self, path: str, stop_at: int | None = None) -> None:
        self.path = path
        self.stop_at = stop_at

    def __call__(self, params: dict[str, Any]) -> float:
        calls = Path(self.path)
        n = len(calls.read_text().splitlines()) if calls.exists() else 0
        marker = Path(f"{self.path}.stopped")
        if self.stop_at is not None and n == self.stop_at and not marker.exists():
            marker.touch()
            raise KeyboardInterrupt
        with open(calls, "a") as handle:
            handle.write(json.dumps(params, sort_keys=True) + "\n")
        time.sleep(0.005)
        return quadratic(params)
