"""Objectives for the Dask worker tests; module-level so Dask workers (and their children) can
import them by name (``tests/`` is on their ``sys.path`` or ``PYTHONPATH``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import genetune

import objectives as obj

#: Directory where `logged` records each evaluation's start and end (set in the workers' env).
LOG_DIR_ENV = "GENETUNE_DASK_TEST_LOG"


def timed(params: dict[str, Any]) -> float:
    """`objectives.quadratic`, taking 0.1 s, with its wall-clock interval logged as metrics."""
    genetune.log_metric("t_start", time.time())
    time.sleep(0.1)
    genetune.log_metric("t_end", time.time())
    return obj.quadratic(params)


def logged(params: dict[str, Any]) -> float:
    """`objectives.quadratic`, taking 0.2 s; writes ``start``/``end`` lines to
    ``$GENETUNE_DASK_TEST_LOG/<pid>.log`` so a test can see which evaluation is running where."""
    path = Path(os.environ[LOG_DIR_ENV]) / f"{os.getpid()}.log"
    key = json.dumps(params, sort_keys=True)
    with path.open("a") as handle:
        handle.write(f"start {time.time()} {key}\n")
    time.sleep(0.2)
    with path.open("a") as handle:
        handle.write(f"end {key}\n")
    return obj.quadratic(params)


def open_evaluations(log_dir: Path) -> dict[int, dict[str, float]]:
    """Per process id, the evaluations started but not finished: params (JSON) -> start time."""
    running: dict[int, dict[str, float]] = {}
    for path in log_dir.glob("*.log"):
        started: dict[str, float] = {}
        for line in path.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "start":
                at, _, key = rest.partition(" ")
                started[key] = float(at)
            elif kind == "end":
                started.pop(rest, None)
        if started:
            running[int(path.stem)] = started
    return running


#: The speed of each (fake) GPU: powers of two, so normalized scores come out exact.
GPU_FACTOR = {"": 1.0, "0": 2.0, "1": 4.0, "2": 8.0}


def gpu_bound(params: dict[str, Any]) -> float:
    """`objectives.quadratic` + 1 (1.0 for the baseline ``{}``), scaled by the speed of the GPU
    it runs on (the first entry of CUDA_VISIBLE_DEVICES): normalized per (host, GPU) it is the
    same everywhere; normalized by one baseline it is not."""
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0]
    time.sleep(0.05)
    return (1.0 if not params else obj.quadratic(params) + 1.0) * GPU_FACTOR[gpu]
