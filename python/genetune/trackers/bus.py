"""Delivers lifecycle events to trackers off the search's hot path, isolating their failures.

Events go through one bounded queue to one dispatcher thread. Queue policy: when
``max_pending`` events wait, ``emit`` blocks until the dispatcher catches up, so no event is
ever dropped (the JSONL log stays complete); a tracker slower than the search then slows the
driver loop between generations, never a running evaluation.
"""

from __future__ import annotations

import queue
import threading
import traceback
import warnings
from typing import Any

__all__ = ["TrackerBus"]

_STOP = object()


class TrackerBus:
    def __init__(self, trackers: list[Any], max_pending: int = 10_000, max_failures: int = 3) -> None:
        self._trackers = list(trackers)
        self._failures: dict[int, list[str]] = {i: [] for i in range(len(self._trackers))}
        self._disabled: set[int] = set()
        self._max_failures = max_failures
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        if self._trackers:
            self._thread = threading.Thread(target=self._dispatch, name="genetune-trackers", daemon=True)
            self._thread.start()
            self.emit("setup")

    def emit(self, event: str, *args: Any) -> None:
        if self._thread is not None:
            self._queue.put((event, args))

    def close(self, timeout: float = 60.0) -> dict[str, str]:
        """Delivers what is queued, runs ``cleanup``, stops the thread; returns each tracker's status."""
        if self._thread is not None:
            self.emit("cleanup")
            self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                warnings.warn(f"trackers still busy after {timeout} s; leaving them behind", RuntimeWarning, stacklevel=2)
            self._thread = None
        return self.report()

    def report(self) -> dict[str, str]:
        out = {}
        for i, tracker in enumerate(self._trackers):
            name = getattr(tracker, "name", type(tracker).__name__)
            errors = self._failures[i]
            if i in self._disabled:
                out[name] = f"disabled after {len(errors)} failures: {errors[-1]}"
            elif errors:
                out[name] = f"{len(errors)} failure(s), last: {errors[-1]}"
            else:
                out[name] = "ok"
        return out

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            event, args = item
            if event == "search_ends":
                # The summary tells how each tracker fared (as of now).
                reason, summary = args
                args = (reason, {**summary, "trackers": self.report()})
            for i, tracker in enumerate(self._trackers):
                if i in self._disabled:
                    continue
                hook = getattr(tracker, event, None)
                if hook is None:
                    continue
                try:
                    hook(*args)
                except Exception as err:  # a tracker never stops a search
                    self._fail(i, tracker, event, err)

    def _fail(self, i: int, tracker: Any, event: str, err: Exception) -> None:
        name = getattr(tracker, "name", type(tracker).__name__)
        message = f"{event}: {type(err).__name__}: {err}"
        self._failures[i].append(message)
        if len(self._failures[i]) == 1:
            where = "".join(traceback.format_exception_only(err)).strip()
            warnings.warn(f"tracker {name} failed in {event} ({where}); the search goes on", RuntimeWarning, stacklevel=1)
        if len(self._failures[i]) >= self._max_failures:
            self._disabled.add(i)
            warnings.warn(f"tracker {name} disabled after {len(self._failures[i])} failures", RuntimeWarning, stacklevel=1)
