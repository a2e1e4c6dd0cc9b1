"""Objectives for the noise and two-phase tests; module-level so worker processes import them."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import genetune.search_spaces as ss

SPACE: dict[str, Any] = {"x": ss.range(0, 15), "y": ss.range(0, 7)}


def true_value(params: dict[str, Any]) -> float:
    """The noiseless objective (min 0 at x=11, y=3)."""
    if not params:
        return 50.0
    return float((params["x"] - 11) ** 2 + (params["y"] - 3) ** 2)


def noisy(params: dict[str, Any]) -> float:
    """``true_value`` plus Gaussian noise (sd 3), seeded by nothing: every call differs."""
    return true_value(params) + random.gauss(0.0, 3.0)


class Counting:
    """Appends one line per call to ``path`` (how many measurements a search made); the noise
    of the n-th call is seeded by n, so a run is reproducible."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, params: dict[str, Any]) -> float:
        n = len(Path(self.path).read_text().splitlines()) if Path(self.path).exists() else 0
        with open(self.path, "a") as f:
            f.write(json.dumps(params, sort_keys=True) + "\n")
        return true_value(params) + random.Random(n).gauss(0.0, 3.0)


class Phased:
    """A two-phase objective that records when each build and measure ran (and where) in
    ``log_dir``: one JSON line per phase per call, from whichever process ran it."""

    def __init__(self, log_dir: str, build_s: float = 0.15, measure_s: float = 0.1, noise: float = 0.0) -> None:
        self.log_dir = log_dir
        self.build_s, self.measure_s, self.noise = build_s, measure_s, noise

    def _log(self, phase: str, start: float, end: float, params: Any) -> None:
        line = {"phase": phase, "start": start, "end": end, "host": socket.gethostname(), "pid": os.getpid(), "params": params}
        with open(Path(self.log_dir) / f"{os.getpid()}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def build(self, params: dict[str, Any]) -> dict[str, Any]:
        start = time.time()
        time.sleep(self.build_s)
        if params.get("x") == 13:
            raise RuntimeError("cannot build x=13")
        self._log("build", start, time.time(), params)
        return {"params": params, "value": true_value(params)}

    def measure(self, built: dict[str, Any]) -> Any:
        start = time.time()
        time.sleep(self.measure_s)
        self._log("measure", start, time.time(), built["params"])
        if built["params"].get("x") == 14:
            os._exit(3)  # a crash while measuring
        return built["value"] + (random.gauss(0.0, self.noise) if self.noise else 0.0)


class MeasureOnly:
    """Half a two-phase objective: rejected."""

    def measure(self, built: Any) -> float:
        return 0.0


def read_phases(log_dir: str) -> list[dict[str, Any]]:
    out = []
    for path in Path(log_dir).glob("*.jsonl"):
        out += [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def overlaps(spans: list[dict[str, Any]]) -> int:
    """How many pairs of spans overlap in time."""
    spans = sorted(spans, key=lambda s: s["start"])
    count = 0
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            if b["start"] < a["end"] - 1e-4:
                count += 1
    return count
