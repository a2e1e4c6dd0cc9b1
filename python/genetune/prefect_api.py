"""A Prefect API for one command: the configured one, else Prefect's ephemeral server, shared
with every process the command starts (Dask workers included).

Prefect's ephemeral mode starts a server lazily in each process that needs one, so every Dask
worker process would start its own (and compete for the same SQLite file). Here the ephemeral
server is started once, up front, and its URL exported as ``PREFECT_API_URL`` so the local Dask
cluster's workers inherit it; it stops when the command ends. Its database is Prefect's usual
one (``$PREFECT_HOME/prefect.db``), so ``prefect server start`` shows the runs afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_API_URL, temporary_settings

__all__ = ["prefect_api"]

#: A fresh Prefect database (first run on a machine) takes ~15 s to migrate on 2 cores.
STARTUP_TIMEOUT_S = 120


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yields the API URL in use: ``PREFECT_API_URL`` when set (in the environment or the
    active Prefect profile), else the URL of an ephemeral server started for the block."""
    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        yield str(configured)
        return
    from prefect.server.api.server import SubprocessASGIServer  # the server stack (FastAPI, SQLAlchemy): only when one is needed

    server = SubprocessASGIServer()
    server.start(timeout=STARTUP_TIMEOUT_S)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by the processes started below
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        server.stop()
