"""Objectives for the Prefect flow tests, importable by name on Dask workers (``tests/`` is on
their ``sys.path``/``PYTHONPATH``)."""

from __future__ import annotations

import time
from typing import Any

import genetune.search_spaces as ss

#: The friendly (JSON/YAML) form of the flow tests' search space.
SPACE_FRIENDLY: dict[str, Any] = {
    "x": {"type": "range", "start": -5, "end": 5},
    "y": {"type": "range", "start": 0.0, "end": 1.0, "step": 0.05},
    "opt": {"level": {"type": "choice", "values": ["-O1", "-O2", "-O3"]}, "unroll": {"type": "range", "start": 1, "end": 8, "knockout_prob": 0.3}},
}
#: The same space built with genetune's constructors.
SPACE: dict[str, Any] = {
    "x": ss.range(-5, 5),
    "y": ss.range(0.0, 1.0, step=0.05),
    "opt": {"level": ss.choice(["-O1", "-O2", "-O3"]), "unroll": ss.range(1, 8, knockout_prob=0.3)},
}
LEVEL = {"-O1": 1.0, "-O2": 0.5, "-O3": 0.25}


def quadratic(params: dict[str, Any]) -> float:
    opt = params["opt"]
    return (params["x"] - 2) ** 2 + (params["y"] - 0.3) ** 2 + LEVEL[opt["level"]] + 0.01 * opt.get("unroll", 0)


def fails_or_hangs(params: dict[str, Any]) -> float:
    """Raises for a negative ``x``, hangs (a blocking call) for ``x >= 3``."""
    if params["x"] < 0:
        raise ValueError("negative x")
    if params["x"] >= 3:
        time.sleep(120)
    return quadratic(params)


def _explode() -> Any:
    raise RuntimeError("this candidate cannot be unpickled here")


class Unloadable:
    """Params that cannot be unpickled in another process: the chunk holding them fails as a whole."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_explode, ())


def logging_quadratic(params: dict[str, Any]) -> float:
    """``quadratic``, telling loguru what it saw (the line must reach Prefect's run logs)."""
    from loguru import logger

    logger.info(f"objective saw x={params['x']}")
    return quadratic(params)


def timed_quadratic(params: dict[str, Any]) -> float:
    """``quadratic``, taking 0.2 s, with its wall-clock interval as metrics (``t_start``, ``t_end``)."""
    import genetune

    genetune.log_metric("t_start", time.time())
    time.sleep(0.2)
    genetune.log_metric("t_end", time.time())
    return quadratic(params)


def wrong_return(params: dict[str, Any]) -> Any:
    """Returns a string that is not the INVALID marker: the search must stop."""
    return "oops"


def reports_its_api(params: dict[str, Any]) -> float:
    """Appends the Prefect API URL this evaluation's process uses to ``$GENETUNE_TEST_API_FILE``."""
    import os

    from prefect.settings import PREFECT_API_URL

    with open(os.environ["GENETUNE_TEST_API_FILE"], "a") as out:
        out.write(f"{PREFECT_API_URL.value()}\n")
    return float(params["x"] ** 2)
