"""What compiler-tuning objectives share: running a toolchain command with a timeout that stops
its whole process tree, and walking a candidate's params into flags."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Finished", "leaves", "number_text", "run_process"]


class Finished(NamedTuple):
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float


def run_process(argv: Sequence[str], timeout: float, cwd: Path, env: Mapping[str, str] | None = None) -> Finished:
    """Runs a command (``env`` is added to this process's environment). At the timeout its whole
    process group is killed: compiler drivers leave children (cc1, as, ld, ptxas) otherwise."""
    start = time.perf_counter()
    with subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            return Finished(None, out, err, time.perf_counter() - start)
    return Finished(proc.returncode, out, err, time.perf_counter() - start)


def leaves(params: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(leaf key, value) in order; nested dicts and lists (user-edited spaces) are walked."""
    if isinstance(params, Mapping):
        for child_key, value in params.items():
            yield from leaves(value, str(child_key))
    elif isinstance(params, list | tuple):
        for value in params:
            yield from leaves(value, key)
    else:
        yield key, params


def number_text(value: int | float) -> str:
    """A flag's number: compilers want integers, so a float on a whole number is written as one."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
