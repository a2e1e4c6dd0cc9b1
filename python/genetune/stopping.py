"""Stopping a search by signal: SIGTERM (what batch schedulers and Kubernetes send) stops it like
Ctrl-C, a clean stop with reason ``stopped``; a second SIGTERM or Ctrl-C while it stops exits at
once (the processes running evaluations notice and kill their process groups)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["SearchStopped", "stop_on_signals", "stop_requested"]


class SearchStopped(KeyboardInterrupt):
    """Raised in the main thread by the first SIGTERM: handled as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


_state = {"depth": 0, "stopping": False}


def stop_requested() -> bool:
    """Whether a signal asked this process to stop (the search may run in another thread, where
    the stop arrives as some other exception: a flow run's thread cancelled, say)."""
    return bool(_state["stopping"])


def _exit_now(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state["stopping"]:
        _exit_now(signum)
        return
    _state["stopping"] = True
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SearchStopped(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the block runs (in the main thread): the first SIGTERM raises :class:`SearchStopped`
    (a KeyboardInterrupt) and Ctrl-C its KeyboardInterrupt; a second one exits at once. The
    previous handlers come back after. Nested blocks share the outermost one's handlers."""
    if threading.current_thread() is not threading.main_thread() or _state["depth"]:
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(signum)
        if signum == signal.SIGINT and current is not signal.default_int_handler:
            continue  # Ctrl-C handled elsewhere (or ignored): leave it so
        previous[signum] = current
        signal.signal(signum, _on_signal)
    _state.update(depth=1, stopping=False)
    try:
        yield
    finally:
        _state.update(depth=0, stopping=False)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
