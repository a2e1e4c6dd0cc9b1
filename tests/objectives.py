"""Objectives used by the search tests; module-level so worker processes can import them."""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from typing import Any

import genetune.search_spaces as ss

SPACE: dict[str, Any] = {
    "x": ss.range(-5, 5),
    "y": ss.range(0.0, 1.0, step=0.05),
    "opt": {"level": ss.choice(["-O1", "-O2", "-O3"]), "unroll": ss.range(1, 8, knockout_prob=0.3)},
    "flag": ss.literal("-ffast-math", knockout_prob=0.5),
}
LEVEL = {"-O1": 1.0, "-O2": 0.5, "-O3": 0.25}


def quadratic(params: dict[str, Any]) -> float:
    """Deterministic; uses every key so a wrong candidate shows in the score."""
    opt = params["opt"]
    value = (params["x"] - 2) ** 2 + (params["y"] - 0.3) ** 2 + LEVEL[opt["level"]] + 0.01 * opt.get("unroll", 0)
    return value + (0.5 if "flag" in params else 0.0)


def two_objectives(params: dict[str, Any]) -> tuple[float, float]:
    return quadratic(params), float(params["x"]) + params["y"]


def with_baseline(params: dict[str, Any]) -> float:
    """Normalization example: the baseline (params == {}) scores 10."""
    if not params:
        return 10.0
    return quadratic(params) + 1.0


def flaky(params: dict[str, Any]) -> float:
    """Raises for negative x, crashes the process for x == 5, returns '*' for x == 4."""
    if params["x"] < 0:
        raise RuntimeError(f"negative x {params['x']}")
    if params["x"] == 5:
        os._exit(3)
    if params["x"] == 4:
        return "*"  # type: ignore[return-value]
    return float(params["x"]) ** 2


def always_fails(params: dict[str, Any]) -> float:
    raise ValueError("broken objective")


def wrong_type(params: dict[str, Any]) -> str:
    return "fast"


def wrong_count(params: dict[str, Any]) -> tuple[float, float, float]:
    return (1.0, 2.0, 3.0)


def hangs_in_c(params: dict[str, Any]) -> float:
    """Sleeps 30 s inside a C call (libc sleep), unless x > 0."""
    if params["x"] <= 0:
        ctypes.CDLL(None).sleep(30)
    return float(params["x"])


def slow(params: dict[str, Any]) -> float:
    time.sleep(0.02)
    return quadratic(params)


async def async_quadratic(params: dict[str, Any]) -> float:
    await asyncio.sleep(0.001)
    return quadratic(params)


async def async_hangs(params: dict[str, Any]) -> float:
    if params["x"] <= 0:
        await asyncio.sleep(30)
    return float(params["x"])


def slow_with_baseline(params: dict[str, Any]) -> float:
    time.sleep(0.05)
    return with_baseline(params)


def with_metrics(params: dict[str, Any]) -> float:
    import genetune

    genetune.log_metric("abs_x", abs(params["x"]))
    genetune.log_metrics({"nested": {"level_len": len(params["opt"]["level"])}})
    return quadratic(params)
