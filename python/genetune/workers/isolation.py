"""One evaluation in a fresh child process, killed at a timeout: a hung C call or a crash costs
one candidate, never the worker process that started it (used on Dask workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import cloudpickle

from genetune.evaluation import evaluate, invalid_score, placement
from genetune.exclusive import set_wait_listener
from genetune.failures import crash_reason, timeout_reason
from genetune.scores import Score
from genetune.workers.process_groups import NEW_SESSION, kill_group, kill_group_of_exited, lead_own_group

__all__ = ["CHILD_START_TIMEOUT_S", "evaluate_in_child", "load_failed"]

# How the child process is started (``-c``, not ``-m``: no runpy warning if the package
# imports this module).
_CHILD_CODE = "from genetune.workers.isolation import child_main; child_main()"
#: How long a child process may take to start and load the objective (not part of task_timeout).
CHILD_START_TIMEOUT_S = 120.0


def load_failed(param_id: int | str, params: Any, num_objectives: int, worker: str, err: BaseException) -> Score:
    """The INVALID score of a candidate whose objective cannot be unpickled where it runs."""
    reason = f"exception: cannot load the objective on the Dask worker: {type(err).__name__}: {err}"
    return invalid_score(param_id, params, num_objectives, reason, worker=worker, **placement())


class _Child:
    """A started child process and the thread reading its answer: a ready byte once the
    objective is loaded, then the pickled ``(kind, value)``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=NEW_SESSION,
        )
        self.ready = threading.Event()
        self.answer: list[bytes] = []
        #: Seconds the child waited for a measuring slot so far, and since when it waits now.
        self.waited = 0.0
        self.waiting_since: float | None = None
        self.reader = threading.Thread(target=self._read, name=f"genetune-child-{self.proc.pid}", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            if self.proc.stdout.read(1):
                self.ready.set()
                while (byte := self.proc.stdout.read(1)) in (b"W", b"G"):
                    if byte == b"W":
                        self.waiting_since = time.perf_counter()
                    elif self.waiting_since is not None:
                        self.waited += time.perf_counter() - self.waiting_since
                        self.waiting_since = None
                self.answer.append(byte + self.proc.stdout.read())
        finally:
            self.ready.set()

    def send(self, request: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.close()
        except OSError:  # the child died before reading it: its exit code tells
            pass

    def kill(self) -> None:
        kill_group(self.proc.pid)
        self.proc.wait()

    def close(self) -> None:
        if self.proc.returncode is None:  # interrupted some other way: never leave the child behind
            self.kill()
        self.reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _wait_for_answer(child: _Child, started: float, timeout: float | None) -> None:
    """Waits for the answer up to ``timeout`` seconds of work: time spent waiting for a
    measuring slot (two-phase objectives) does not count."""
    if timeout is None:
        child.reader.join()
        return
    while child.reader.is_alive():
        since = child.waiting_since
        used = time.perf_counter() - started - child.waited - (time.perf_counter() - since if since is not None else 0.0)
        if since is None and used >= timeout:
            return
        child.reader.join(0.05 if since is not None else min(timeout - used, 0.5))


def evaluate_in_child(
    token: str, blob: bytes, param_id: int | str, params: Any, num_objectives: int, worker: str, timeout: float | None
) -> Score:
    """Runs one evaluation in a fresh Python process (its own process group), killed at the
    timeout. The request goes over stdin; the timeout counts from the child's ready byte (the
    objective loaded), not from the interpreter's start."""
    request = cloudpickle.dumps((list(sys.path), cloudpickle.dumps((token, blob, param_id, params, num_objectives, worker))))

    def failed(reason: str, since: float) -> Score:
        return invalid_score(param_id, params, num_objectives, reason, time.perf_counter() - since, worker=worker, **placement())

    child = _Child()
    started = time.perf_counter()
    try:
        child.send(request)
        if not child.ready.wait(CHILD_START_TIMEOUT_S):
            child.kill()
            return failed(f"timeout: the evaluation process did not start in {CHILD_START_TIMEOUT_S:g} s", started)
        started = time.perf_counter()
        _wait_for_answer(child, started, timeout)
        if child.reader.is_alive():
            child.kill()
            assert timeout is not None
            return failed(timeout_reason(timeout), started)
        kill_group_of_exited(child.proc)  # what the objective started dies with it, crashed or not
    finally:
        child.close()
    if child.proc.returncode != 0 or not child.answer or not child.answer[0]:
        return failed(crash_reason(child.proc.returncode), started)
    kind, value = cloudpickle.loads(child.answer[0])
    if kind == "raise":
        raise value
    assert isinstance(value, Score)
    return value


def _tell(channel: int, marker: bytes) -> None:
    os.write(channel, marker)


def child_main() -> None:
    """The child process: reads the request on stdin, writes ``(kind, value)`` on the original
    stdout; what the objective prints goes to stderr."""
    channel = os.dup(1)
    os.dup2(2, 1)
    lead_own_group()  # its group dies with it, and with the process that started it
    path, request = cloudpickle.loads(sys.stdin.buffer.read())
    sys.path.extend(p for p in path if p not in sys.path)
    token, blob, param_id, params, num_objectives, worker = cloudpickle.loads(request)
    result: tuple[str, Any]
    try:
        function = cloudpickle.loads(blob)
    except Exception as err:
        result = ("score", load_failed(param_id, params, num_objectives, worker, err))
        os.write(channel, b"R")
    else:
        os.write(channel, b"R")  # loaded: the timeout starts now
        set_wait_listener(lambda marker: _tell(channel, marker))
        try:
            result = ("score", evaluate(function, param_id, params, num_objectives, worker))
        except Exception as err:  # ObjectiveReturnError: the search must stop, as in process
            result = ("raise", err)
    try:
        data = cloudpickle.dumps(result)
    except Exception as err:
        data = cloudpickle.dumps(("raise", RuntimeError(f"cannot send the result back: {type(err).__name__}: {err}")))
    with os.fdopen(channel, "wb") as handle:
        handle.write(data)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # not waiting for threads the objective may have left running
