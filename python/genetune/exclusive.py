"""Measuring alone: one measurement at a time per placement (host, or host and GPU).

The slot is an advisory ``flock`` on a file named for the placement in ``GENETUNE_LOCK_FOLDER``
(default: the system's temporary folder). Every process of the host that measures for genetune
(pool processes, Dask worker threads and processes, isolated children, Prefect tasks) takes the
same lock, whichever worker started it, and the kernel releases it the moment a holder dies
(killed at a timeout, crashed): no lease to expire, no scheduler round trip per measurement.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["lock_folder", "measuring_slot", "set_wait_listener"]

# Told b"W" before waiting for a slot and b"G" once it is held: an isolated child process tells
# its parent, which then leaves the wait out of task_timeout (see workers/isolation.py).
_listener: Callable[[bytes], None] | None = None


def set_wait_listener(listener: Callable[[bytes], None] | None) -> None:
    global _listener
    _listener = listener


def lock_folder() -> Path:
    """Where the measuring locks live (``GENETUNE_LOCK_FOLDER``, else the temporary folder)."""
    return Path(os.environ.get("GENETUNE_LOCK_FOLDER") or Path(tempfile.gettempdir()) / "genetune-locks")


@contextmanager
def measuring_slot(placement: str) -> Iterator[float]:
    """Holds the measuring slot of ``placement`` for the block; yields the seconds waited for it."""
    folder = lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", placement) or "host"
    started = time.perf_counter()
    # A separate open file per holder: flock then excludes threads of one process too.
    with open(folder / f"measure-{name}.lock", "a+b") as handle:
        if _listener is not None:
            _listener(b"W")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        if _listener is not None:
            _listener(b"G")
        try:
            yield time.perf_counter() - started
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
