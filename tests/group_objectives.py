"""Objectives that start processes and then hang or crash (module-level: worker processes import
them). Each writes the pid of the process it started into ``folder`` (bind it with
functools.partial: the environment of a forkserver's children is the one it started with)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import genetune.search_spaces as ss

SPACE: dict[str, Any] = {"x": ss.range(0, 1000)}


def _start_sleeper(folder: str) -> None:
    proc = subprocess.Popen(["sleep", "4321"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    Path(folder, str(proc.pid)).touch()


def hangs(folder: str, params: dict[str, Any]) -> float:
    _start_sleeper(folder)
    time.sleep(3600)
    return 0.0


def crashes(folder: str, params: dict[str, Any]) -> float:
    _start_sleeper(folder)
    os._exit(3)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def score(params: dict[str, Any]) -> float:
    return float(params["x"] % 17)


def sleeps_then_scores(folder: str, params: dict[str, Any]) -> float:
    """Starts a sleeper (named ``started-<pid>`` in ``folder``), waits a little, then scores."""
    proc = subprocess.Popen(["sleep", "4321"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    Path(folder, f"started-{proc.pid}").touch()
    time.sleep(1.0 if params["x"] % 2 else 30.0)
    proc.kill()
    proc.wait()
    return score(params)


def dies_or_scores(params: dict[str, Any]) -> float:
    """x == 5 kills its process after 0.5 s (a segfaulting benchmark); others take 1 s."""
    if params["x"] == 5:
        time.sleep(0.5)
        os._exit(3)
    time.sleep(1.0)
    return float(params["x"])


def every_seventh_dies(params: dict[str, Any]) -> float:
    """A multiple of 7 kills its process after 0.2 s (a segfaulting benchmark); others score."""
    time.sleep(0.2)
    if params["x"] % 7 == 0:
        os._exit(3)
    return float(params["x"])
