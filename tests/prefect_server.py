"""A real ``prefect server start`` on 127.0.0.1 for the slow end-to-end tests, and helpers that run
the Prefect CLI against it as subprocesses.

* Every subprocess gets an explicit environment (:func:`prefect_env`): its own ``PREFECT_HOME``,
  ``PREFECT_API_URL`` pointing at the started server (without it every Dask worker process of a
  flow run would start an ephemeral server of its own), fast runner/worker polling, analytics off,
  and ``tests/`` on ``PYTHONPATH`` so that flow runs and their Dask workers import the test
  objectives by name.
* Every subprocess runs in its own session (process group) and is stopped with its whole group:
  SIGTERM, then SIGKILL after a grace period, and the group is gone when ``stop`` returns.
* Failures carry the tail of the process's log.

Prefect itself is imported lazily (only :meth:`PrefectServer.client` needs it), so importing this
module does not fix Prefect's settings for other test modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests_support import free_port

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent


def prefect_cli() -> list[str]:
    """The ``prefect`` console script of this interpreter's environment (``python -m prefect`` otherwise)."""
    script = Path(sys.executable).parent / "prefect"
    return [str(script)] if script.exists() else [sys.executable, "-m", "prefect"]


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a Prefect subprocess: no inherited ``PREFECT_*`` variable (profiles,
    harness settings of other test modules), an isolated home, quiet and offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        # INFO: run logs reach the API (WARNING would drop them); console kept readable.
        PREFECT_LOGGING_LEVEL="INFO",
        # Served runners and workers poll every second instead of every 10 s.
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_CLI_COLORS="false",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
        PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused id owned by someone else
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(proc: subprocess.Popen[Any], grace: float = 15.0, term_twice: bool = False) -> None:
    """Stops ``proc`` (a session leader) and every process of its group: SIGTERM (twice with
    ``term_twice``: ``prefect worker start`` only forwards the first one to itself as SIGINT and
    keeps polling; the second makes it SIGKILL itself), SIGKILL after ``grace`` seconds, and waits
    until the group is gone (children that outlive the leader included)."""
    pgid = proc.pid
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        if term_twice:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
            _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait(15)
    deadline = time.monotonic() + 10
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)


class Background:
    """A long-running subprocess (its own process group) writing to a log file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.name = name
        self.args = list(args)
        self.log = log
        with log.open("wb") as out:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                self.args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return f"<no log {self.log}>"
        return f"--- {self.name} (rc {self.proc.poll()}) {' '.join(self.args)}\n{text[-chars:]}"

    def stop(self, grace: float = 15.0, term_twice: bool = False) -> None:
        stop_group(self.proc, grace=grace, term_twice=term_twice)


class CliResult:
    def __init__(self, args: Sequence[str], returncode: int, output: str) -> None:
        self.args = list(args)
        self.returncode = returncode
        self.output = output

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)}\n(rc {self.returncode})\n{self.output[-6000:]}"


class PrefectServer:
    """``prefect server start --host 127.0.0.1 --port <free> --no-ui`` with a fresh database in
    ``folder``; a context manager that always stops it and every process started through it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = folder / "prefect-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = prefect_env(self.home, self.url)
        self.server: Background | None = None
        self.processes: list[Background] = []

    # ----- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        self.server = Background(
            "server",
            [*prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
            env=prefect_env(self.home),
            cwd=self.folder,
            log=self.folder / "server.log",
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if not self.server.alive or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the Prefect server did not answer /health within {timeout} s\n{self.server.tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> PrefectServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        """Tails of every background process's log (for assertion messages)."""
        return "\n".join(p.tail() for p in [*self.processes, *([self.server] if self.server else [])])

    # ----- the CLI -----------------------------------------------------------------------------

    def cli(self, *args: str, cwd: Path = REPO, timeout: float = 120.0) -> CliResult:
        """Runs ``prefect <args>`` to completion (non-interactive: stdin is /dev/null); on a
        timeout its process group is killed and an AssertionError carries its output."""
        argv = [*prefect_cli(), *args]
        proc = subprocess.Popen(
            argv, env=self.env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            stop_group(proc)
            raise AssertionError(
                f"timed out after {timeout} s: {' '.join(argv)}\n{out.decode(errors='replace')[-6000:]}\n{self.logs()}"
            ) from None
        stop_group(proc)  # nothing it started may outlive it
        return CliResult(argv, proc.returncode, out.decode(errors="replace"))

    def spawn(self, name: str, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> Background:
        """Starts ``prefect <args>`` in the background; stopped by :meth:`stop` at the latest."""
        process = Background(name, [*prefect_cli(), *args], env=env or self.env, cwd=cwd, log=self.folder / f"{name}.log")
        self.processes.append(process)
        return process

    # ----- reading back ------------------------------------------------------------------------

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A synchronous Prefect client on this server (in this process)."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            with get_client(sync_client=True) as client:
                yield client

    def wait_for(self, what: str, probe: Callable[[Any], Any], timeout: float = 60.0, watch: Sequence[Background] = ()) -> Any:
        """Polls ``probe(client)`` until it returns a truthy value (exceptions count as not yet);
        fails with the logs when ``timeout`` passes or a watched process exits."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                with self.client() as client:
                    value = probe(client)
                if value:
                    return value
                last = value
            except Exception as exc:  # not there yet
                last = exc
            dead = [p for p in watch if not p.alive]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(p.name for p in dead)} exited" if dead else f"{timeout} s passed"
                raise AssertionError(f"waiting for {what}: {why}; last probe: {last!r}\n{self.logs()}")
            time.sleep(0.5)


def json_param(name: str, value: Any) -> str:
    """``name=<JSON>``: one ``-p`` value of ``prefect deployment run`` (values are parsed as JSON)."""
    return f"{name}={json.dumps(value)}"
