"""A Prefect API for one command: the configured one, else Prefect's ephemeral server, shared
with every process the command starts (Dask workers included).

Prefect's ephemeral mode starts a server lazily in each process that needs one, so every Dask
worker process would start its own (and compete for the same SQLite file). Here the ephemeral
server is started once, up front, and its URL exported as ``PREFECT_API_URL`` so the local Dask
cluster's workers inherit it; it stops when the command ends. Its database is Prefect's usual
one (``$PREFECT_HOME/prefect.db``), so ``prefect server start`` shows the runs afterwards.

The temporary server runs without Prefect's telemetry service (``PREFECT_SERVER_ANALYTICS_ENABLED``
false unless you set it): offline it logs an ERROR every time, and on a fresh database its first
write races the flow run's for the SQLite lock (a ``database is locked`` traceback). Before the
server stops, the run logs and events still queued in this process are sent (otherwise they are
shipped at exit, to a server already gone: ``Error logging to API``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_API_URL, temporary_settings

from genetune.console import announce

__all__ = ["flush_to_api", "prefect_api", "shared_with_workers"]

#: A fresh Prefect database (first run on a machine) takes ~15 s to migrate on 2 cores.
STARTUP_TIMEOUT_S = 120
#: How long the queued run logs and events may take to reach the server before it stops.
FLUSH_TIMEOUT_S = 10.0


@contextmanager
def prefect_api() -> Iterator[str]:
    """Yields the API URL in use: ``PREFECT_API_URL`` when set (in the environment or the
    active Prefect profile), else the URL of an ephemeral server started for the block."""
    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        announce(f"Prefect: the API at {configured}")
        yield str(configured)
        return
    from prefect.server.api.server import SubprocessASGIServer  # the server stack (FastAPI, SQLAlchemy): only when one is needed
    from prefect.settings import PREFECT_HOME

    announce(f"Prefect: starting a temporary server (database {PREFECT_HOME.value() / 'prefect.db'}; a new one takes ~15 s to set up)")
    server = SubprocessASGIServer()
    with _environment(PREFECT_SERVER_ANALYTICS_ENABLED="false"):  # the server process's environment, read when it starts
        server.start(timeout=STARTUP_TIMEOUT_S)
    try:
        with _api_url(server.api_url):
            try:
                yield server.api_url
            finally:
                flush_to_api()
    finally:
        server.stop()


@contextmanager
def shared_with_workers() -> Iterator[str | None]:
    """Inside a flow run: the API it talks to, also for the processes started in the block and
    the Dask workers it submits to. Yields the configured URL unchanged; without one, the
    ephemeral server Prefect started in this process for the flow run (else each Dask worker
    process would start its own: 20–50 s before the first evaluation on 2 cores, and their runs
    in databases of their own); None when there is none."""
    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        yield str(configured)
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # Prefect's per-process ephemeral server (a singleton)
    if not server.running:
        yield None
        return
    with _api_url(server.api_url):
        yield server.api_url


@contextmanager
def _api_url(url: str) -> Iterator[None]:
    """``url`` as the API of this process's Prefect settings (shipped to Dask workers with the
    task context) and of the processes started in the block (``PREFECT_API_URL`` inherited)."""
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


def flush_to_api(timeout: float = FLUSH_TIMEOUT_S) -> None:
    """Sends the run logs and events this process still queues for the Prefect API (and stops
    their background workers; the next record starts them again). Blocks up to ``timeout``."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    def drain() -> None:  # in a thread of its own: Prefect's drain must not run on an event loop's thread
        APILogWorker.drain_all(timeout=timeout)
        EventsWorker.drain_all(timeout=timeout)

    thread = threading.Thread(target=drain, name="genetune-flush-to-api", daemon=True)
    thread.start()
    thread.join(2 * timeout)


@contextmanager
def _environment(**defaults: str) -> Iterator[None]:
    """``defaults`` in ``os.environ`` for the block, where the user has not set them."""
    added = [name for name in defaults if name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
