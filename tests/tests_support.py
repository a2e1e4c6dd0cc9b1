"""Helpers shared by tests."""

from __future__ import annotations

import json
import math
import socket
import tempfile
from collections.abc import MutableMapping
from typing import Any

import genetune as gt

#: Prefect quiet and offline: no telemetry, no UI; run logs at INFO (they reach the API), the
#: console at WARNING; an ephemeral server may take its time on 2 cores.
QUIET_PREFECT: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def config(**overrides: Any) -> gt.SearchConfiguration:
    """A small configuration (3 generations, pool 8) with ``overrides`` applied."""
    fields: dict[str, Any] = {"generations": 3, "pool_size": 8}
    fields.update(overrides)
    return gt.SearchConfiguration(**fields)


def isolate_prefect(environ: MutableMapping[str, str], prefix: str = "genetune-prefect-home-") -> MutableMapping[str, str]:
    """Makes ``environ`` (``os.environ`` before Prefect is imported, or a subprocess's copy) an
    isolated Prefect: a fresh ``PREFECT_HOME``, no inherited API URL or profile, quiet and offline."""
    environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix=prefix)
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE"):
        environ.pop(name, None)
    environ.update(QUIET_PREFECT)
    return environ


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def table(result: gt.SearchResult) -> list[tuple[Any, ...]]:
    """The part of a result that must be identical between equivalent runs: params and scores
    in order (durations and process ids naturally differ)."""
    df = result.get_results()
    cols = [c for c in df.columns if c.startswith(("score_", "norm_score_"))]
    rows = []
    for record in df.to_dict("records"):
        scores = tuple("nan" if isinstance(record[c], float) and math.isnan(record[c]) else record[c] for c in cols)
        rows.append((record["generation"], record["id"], json.dumps(record["params"], sort_keys=True), scores, record["status"], record["reason"]))
    return rows
