"""Measuring alone: one measurement at a time per placement (host, or host and GPU).

The slot is an advisory ``flock`` on a file named for the placement in ``GENETUNE_LOCK_FOLDER``
(default: the system's temporary folder). Every process of the host that measures for genetune
(pool processes, Dask worker threads and processes, isolated children, Prefect tasks) takes the
same lock, whichever worker started it, and the kernel releases it the moment a holder dies
(killed at a timeout, crashed): no lease to expire, no scheduler round trip per measurement.

``quiet`` (``SearchConfiguration(quiet_measurements=True)``): a measurement also excludes the
placement's builds (a shared lock each builder holds; a turnstile keeps a waiting measurement
from starving), as Kernel Tuner's ``parallel_compile`` never benchmarks while compiling.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

__all__ = ["building_slot", "lock_folder", "measuring_slot", "set_wait_listener"]

# Told b"W" before waiting for a slot and b"G" once it is held: an isolated child process tells
# its parent, which then leaves the wait out of task_timeout (see workers/isolation.py).
_listener: Callable[[bytes], None] | None = None


def set_wait_listener(listener: Callable[[bytes], None] | None) -> None:
    global _listener
    _listener = listener


def lock_folder() -> Path:
    """Where the measuring locks live (``GENETUNE_LOCK_FOLDER``, else the temporary folder)."""
    return Path(os.environ.get("GENETUNE_LOCK_FOLDER") or Path(tempfile.gettempdir()) / "genetune-locks")


def _path(kind: str, placement: str) -> Path:
    folder = lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]', '_', placement) or 'host'}.lock"


@contextmanager
def _locked(kind: str, placement: str, mode: int) -> Iterator[None]:
    # A separate open file per holder: flock then excludes threads of one process too.
    with open(_path(kind, placement), "a+b") as handle:
        fcntl.flock(handle.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _waiting() -> Iterator[None]:
    if _listener is not None:
        _listener(b"W")
    try:
        yield
    finally:
        if _listener is not None:
            _listener(b"G")


@contextmanager
def measuring_slot(placement: str, quiet: bool = False) -> Iterator[float]:
    """Holds the measuring slot of ``placement`` for the block; yields the seconds waited for it.
    ``quiet``: also waits for the placement's builds (:func:`building_slot`) to finish and keeps
    new ones waiting until the block ends (never benchmark while compiling)."""
    started = time.perf_counter()
    with ExitStack() as stack:
        with _waiting():
            stack.enter_context(_locked("measure", placement, fcntl.LOCK_EX))
            if quiet:
                # The turnstile lets no new build start while this measurement waits for the running ones.
                with _locked("turnstile", placement, fcntl.LOCK_EX):
                    stack.enter_context(_locked("build", placement, fcntl.LOCK_EX))
        yield time.perf_counter() - started


@contextmanager
def building_slot(placement: str, quiet: bool = False) -> Iterator[float]:
    """Around a build: with ``quiet``, shared with the placement's other builds, never with a
    quiet measurement (without, nothing to hold). Yields the seconds waited."""
    started = time.perf_counter()
    if not quiet:
        yield 0.0
        return
    with ExitStack() as stack:
        with _waiting():
            with _locked("turnstile", placement, fcntl.LOCK_EX):
                stack.enter_context(_locked("build", placement, fcntl.LOCK_SH))
        yield time.perf_counter() - started
