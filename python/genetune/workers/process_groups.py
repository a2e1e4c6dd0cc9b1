"""Process groups for evaluations: every process that runs an objective leads a session of its
own, so the processes the objective starts (a compiler, a benchmark, ``sleep 99 &``) can be killed
with it when the evaluation times out, crashes or the search stops. POSIX only; elsewhere these
are no-ops."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from types import FrameType

__all__ = ["NEW_SESSION", "kill_group", "kill_group_of_exited", "lead_own_group"]

#: ``subprocess.Popen(start_new_session=...)``: a new session (its own process group) where there are some.
NEW_SESSION: bool = os.name == "posix"


def kill_group(pgid: int) -> None:
    """SIGKILLs every process of the group ``pgid`` (nothing when none is left)."""
    if os.name != "posix" or pgid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_group_of_exited(proc: subprocess.Popen[bytes]) -> int:
    """Waits for ``proc`` (started with :data:`NEW_SESSION`) to exit, kills what is left of its group,
    then reaps it: the group is killed while the exited leader still holds its pid, so the pid
    cannot belong to another process yet. Returns the exit code."""
    if os.name == "posix" and proc.returncode is None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        kill_group(proc.pid)
    return proc.wait()


def _kill_own_group(signum: int, frame: FrameType | None) -> None:
    kill_group(os.getpgrp())  # this process included
    os._exit(128 + signum)


def _watch_parent(parent: int) -> None:
    """Kills this process and its group when the process that started it is gone (a driver
    killed outright: nothing else would)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            _kill_own_group(signal.SIGHUP, None)


def lead_own_group() -> None:
    """Run in a pool process before its first evaluation: the process leads a new session; the
    SIGTERM a pool sends to stop it (a timeout, the pool closing) kills its whole group, and so
    does the end of the process that started it."""
    if os.name != "posix":
        return
    if os.getpgrp() != os.getpid():
        os.setsid()
    signal.signal(signal.SIGTERM, _kill_own_group)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="genetune-watch-parent", daemon=True).start()
