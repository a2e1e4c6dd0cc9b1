"""`DaskWorker`: one Dask task per candidate, on a local cluster or on yours (GPU resources).

Without ``address`` a ``distributed.LocalCluster`` (127.0.0.1, no dashboard, one process per
worker) starts at the first generation and stops when the search ends. With ``address`` (a
scheduler address such as ``tcp://10.0.0.5:8786`` or a connected ``distributed.Client``) the
search uses that cluster and never stops it: start it with ``dask scheduler`` and
``dask worker <address> --resources GPU=1`` (or dask-cuda's ``LocalCUDACluster`` with
``resources={"GPU": 1}``) and pass ``resources={"GPU": 1}``, so a worker runs no more
evaluations at once than it declares GPUs.

Each Score's ``metadata`` says where it ran: ``worker`` (this class's name), ``dask_worker``
(the Dask worker's address), ``dask_worker_name``, ``node`` (host name), ``pid`` (the process
that ran the objective) and ``gpu`` (its ``CUDA_VISIBLE_DEVICES``).

With ``task_timeout`` (or ``isolate=True``) every evaluation runs in a fresh child process of
the Dask worker, killed at the timeout (``timeout: killed after N s``), so a hung C call or a
crash (``crashed: exit code N``) costs one candidate, never a Dask worker. Otherwise the
objective runs in the Dask worker's thread (fastest). A Dask worker that dies loses nothing: Dask
runs its tasks elsewhere; a task whose workers keep dying (``KilledWorker``) becomes INVALID
(``crashed: dask worker died ...``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import cloudpickle

from genetune.evaluation import evaluate, invalid_score, placement
from genetune.scores import Score
from genetune.shipping import pack, unpack
from genetune.workers.base import BaseWorker

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

__all__ = ["DaskWorker"]

# Objectives unpickled in this Dask worker process, by the sha256 of their pickle.
# How the child process is started (``-c``, not ``-m``: no runpy warning if the package
# imports this module).
_CHILD_CODE = "from genetune.workers.dask_worker import _child_main; _child_main()"
#: How long a child process may take to start and load the objective (not part of task_timeout).
CHILD_START_TIMEOUT_S = 120.0


def _load_failed(param_id: int | str, params: Any, num_objectives: int, worker: str, err: BaseException) -> Score:
    reason = f"exception: cannot load the objective on the Dask worker: {type(err).__name__}: {err}"
    return invalid_score(param_id, params, num_objectives, reason, worker=worker, **placement())


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def _evaluate_in_child(
    token: str, blob: bytes, param_id: int | str, params: Any, num_objectives: int, worker: str, timeout: float | None
) -> Score:
    """Runs one evaluation in a fresh Python process (its own process group), killed at the timeout.
    The request goes over stdin; the child answers on stdout with one byte once it has loaded the
    objective (the timeout counts from there, not from the interpreter's start) and then the
    pickled result."""
    request = cloudpickle.dumps((list(sys.path), cloudpickle.dumps((token, blob, param_id, params, num_objectives, worker))))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    ready = threading.Event()
    answer: list[bytes] = []

    def read() -> None:
        assert proc.stdout is not None
        try:
            if proc.stdout.read(1):
                ready.set()
                answer.append(proc.stdout.read())
        finally:
            ready.set()

    reader = threading.Thread(target=read, name=f"genetune-child-{proc.pid}", daemon=True)
    reader.start()
    started = time.perf_counter()
    try:
        assert proc.stdin is not None
        try:
            proc.stdin.write(request)
            proc.stdin.close()
        except OSError:  # the child died before reading it: its exit code tells
            pass
        if not ready.wait(CHILD_START_TIMEOUT_S):
            _kill_group(proc)
            proc.wait()
            reason = f"timeout: the evaluation process did not start in {CHILD_START_TIMEOUT_S:g} s"
            return invalid_score(param_id, params, num_objectives, reason, time.perf_counter() - started, worker=worker, **placement())
        started = time.perf_counter()
        reader.join(timeout)
        if reader.is_alive():
            _kill_group(proc)
            proc.wait()
            elapsed = time.perf_counter() - started
            return invalid_score(
                param_id, params, num_objectives, f"timeout: killed after {timeout:g} s", elapsed, worker=worker, **placement()
            )
        proc.wait()
    finally:
        if proc.returncode is None:  # interrupted some other way: never leave the child behind
            _kill_group(proc)
            proc.wait()
        reader.join(5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or not answer or not answer[0]:
        reason = f"crashed: exit code {proc.returncode}"
        return invalid_score(param_id, params, num_objectives, reason, elapsed, worker=worker, **placement())
    kind, value = cloudpickle.loads(answer[0])
    if kind == "raise":
        raise value
    assert isinstance(value, Score)
    return value


def _watch_parent(parent: int) -> None:
    """Ends the child when the Dask worker that started it is gone (nothing else would)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(70)


def _child_main() -> None:
    """The child process: reads the request on stdin, writes ``(kind, value)`` on the original
    stdout; what the objective prints goes to stderr."""
    channel = os.dup(1)
    os.dup2(2, 1)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    path, request = cloudpickle.loads(sys.stdin.buffer.read())
    sys.path.extend(p for p in path if p not in sys.path)
    token, blob, param_id, params, num_objectives, worker = cloudpickle.loads(request)
    result: tuple[str, Any]
    try:
        function = cloudpickle.loads(blob)
    except Exception as err:
        result = ("score", _load_failed(param_id, params, num_objectives, worker, err))
        os.write(channel, b"R")
    else:
        os.write(channel, b"R")  # loaded: the timeout starts now
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


def _dask_task(
    shipped: bytes, token: str, param_id: int | str, params: Any, num_objectives: int, worker: str, timeout: float | None, isolate: bool
) -> Score:
    """What one Dask task runs: the evaluation, with the Dask worker it ran on."""
    import distributed

    where: dict[str, Any] = {}
    try:
        dask_worker = distributed.get_worker()
        where = {"dask_worker": dask_worker.address, "dask_worker_name": dask_worker.name}
    except ValueError:  # not on a Dask worker (never in practice)
        pass
    if isolate:
        score = _evaluate_in_child(token, shipped, param_id, params, num_objectives, worker, timeout)
    else:
        try:
            function = unpack(token, shipped)
        except Exception as err:
            score = _load_failed(param_id, params, num_objectives, worker, err)
        else:
            score = evaluate(function, param_id, params, num_objectives, worker)
    metadata = score.metadata if isinstance(score.metadata, dict) else {"note": score.metadata}
    return score.model_copy(update={"metadata": {"worker": worker, **where, **metadata}})


def _check_resources(resources: dict[str, float] | None) -> dict[str, float] | None:
    if resources is None:
        return None
    if not isinstance(resources, dict):
        raise TypeError(f"resources must be a dict such as {{'GPU': 1}}, got {resources!r}")
    for name, amount in resources.items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, int | float) or not amount > 0:
            raise ValueError(f"resources must map names to positive amounts, got {resources!r}")
    return {name: float(amount) for name, amount in resources.items()} or None


class DaskWorker(BaseWorker):
    """Evaluates candidates as Dask tasks, one per candidate.

    * ``address``: a scheduler address or a ``distributed.Client``; without it a local cluster of
      ``num_workers`` (from ``start``), else ``n_workers``, else one per CPU, worker processes
      with ``threads_per_worker`` threads each; ``cluster_kwargs`` go to ``LocalCluster``.
    * ``resources``: what each evaluation needs of a worker, e.g. ``{"GPU": 1}``. A search whose
      resources no worker offers fails at once with ValueError (Dask itself would wait forever).
    * ``isolate``: run every evaluation in a fresh child process; the default (``None``) does so
      only when ``task_timeout`` is given, as a thread cannot be stopped.
    """

    respects_num_workers: ClassVar[bool] = True
    supports_timeout: ClassVar[bool] = True
    #: Objectives whose pickle is larger are scattered to every worker once per generation
    #: instead of travelling inside each task.
    scatter_threshold: ClassVar[int] = 1 << 20
    #: How long to wait for a first worker to join before checking resources.
    worker_wait_s: ClassVar[float] = 10.0

    def __init__(
        self,
        address: str | Client | None = None,
        resources: dict[str, float] | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        cluster_kwargs: dict[str, Any] | None = None,
        isolate: bool | None = None,
    ) -> None:
        if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
            raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
        if isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int) or threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be a positive integer, got {threads_per_worker!r}")
        self.address = address
        self.resources = _check_resources(resources)
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.isolate = isolate
        self._client: Client | None = None
        self._cluster: LocalCluster | None = None
        self._cluster_size = 0
        self._warned_num_workers = False

    # ----- pickling (checkpoints pickle custom workers) -----------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None
        state["_cluster"] = None
        state["_cluster_size"] = 0
        if self.address is not None and not isinstance(self.address, str):  # a Client: keep where it points
            state["address"] = _scheduler_address(self.address)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ----- cluster -----------------------------------------------------------------------------

    @property
    def client(self) -> Client | None:
        """The connected client (None before the first generation and after ``close``)."""
        return self._client

    def _ensure_client(self, num_workers: int | None) -> Client:
        from distributed import Client, LocalCluster

        if self.address is not None:
            if num_workers is not None and not self._warned_num_workers:
                self._warned_num_workers = True
                warnings.warn(
                    "DaskWorker: num_workers is ignored with an existing cluster (its workers decide the parallelism)",
                    UserWarning,
                    stacklevel=4,
                )
            if self._client is None:
                self._client = self.address if isinstance(self.address, Client) else Client(self.address, set_as_default=False)  # type: ignore[no-untyped-call]
            return self._client
        size = int(num_workers or self.n_workers or os.cpu_count() or 1)
        if self._client is None or self._cluster is None:
            options: dict[str, Any] = {
                "n_workers": size,
                "threads_per_worker": self.threads_per_worker,
                "processes": True,
                "host": "127.0.0.1",
                "dashboard_address": None,
            }
            options.update(self.cluster_kwargs)
            # Without a dashboard the scheduler still serves HTTP (health, metrics): on a free
            # local port, not on 8787 (busy as soon as two clusters run).
            options["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0", **(options.get("scheduler_kwargs") or {})}
            self._cluster = LocalCluster(**options)  # type: ignore[no-untyped-call]
            self._client = Client(self._cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            self._cluster_size = size
        elif size != self._cluster_size:
            self._cluster.scale(size)  # type: ignore[no-untyped-call]
            self._client.wait_for_workers(size)
            self._cluster_size = size
        return self._client

    def _check_cluster(self, client: Client) -> None:
        """Raises ValueError when no worker offers every requested resource."""
        if not self.resources:
            return
        workers = _workers(client)
        if not workers:
            try:
                client.wait_for_workers(1, timeout=self.worker_wait_s)
            except TimeoutError:
                pass
            workers = _workers(client)
        offered = {str(info.get("name", address)): dict(info.get("resources") or {}) for address, info in workers.items()}
        if any(all(res.get(k, 0) >= v for k, v in self.resources.items()) for res in offered.values()):
            return
        missing = sorted(k for k, v in self.resources.items() if not any(res.get(k, 0) >= v for res in offered.values()))
        what = ", ".join(f"{k}={self.resources[k]:g}" for k in missing) if missing else "all of them on one worker"
        where = f"on {_scheduler_address(client)}" if self.address is not None else "on the local cluster (pass cluster_kwargs={'resources': ...})"
        raise ValueError(
            f"DaskWorker: no Dask worker offers the resources {self.resources} (missing {what}); "
            f"the {len(offered)} workers {where} offer {offered or 'nothing (none connected)'}. "
            "Start workers with e.g. `dask worker <scheduler> --resources GPU=1`; Dask would wait forever otherwise."
        )

    # ----- the contract ------------------------------------------------------------------------

    def run(
        self,
        function: Callable[[Any], Any],
        params_pool: Sequence[Any],
        params_ids: Sequence[int | str],
        num_function_returns: int = 1,
        **kwargs: Any,
    ) -> list[Score]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        num_workers = kwargs.get("num_workers")
        timeout = kwargs.get("task_timeout")
        on_result = kwargs.get("on_result")
        if self.isolate is False and timeout is not None:
            raise ValueError("DaskWorker(isolate=False) cannot stop an evaluation at task_timeout; leave isolate unset")
        isolate = bool(self.isolate) or timeout is not None
        client = self._ensure_client(num_workers)
        self._check_cluster(client)
        token, blob = pack(function)
        shipped: Any = blob
        if len(blob) > self.scatter_threshold:  # once to every worker, not inside every task
            shipped = client.scatter(blob, broadcast=True, hash=False)  # type: ignore[no-untyped-call]
        run_id = uuid.uuid4().hex[:12]
        pending: dict[str, tuple[Future[Score], int | str, Any, float]] = {}
        for param_id, params in zip(params_ids, params_pool, strict=True):
            key = f"genetune-{param_id}-{run_id}"
            future: Future[Score] = client.submit(
                _dask_task,
                shipped,
                token,
                param_id,
                params,
                num_function_returns,
                self.name,
                timeout,
                isolate,
                resources=self.resources,
                pure=False,
                key=key,
            )
            pending[key] = (future, param_id, params, time.perf_counter())
        scores: list[Score] = []
        try:
            for future in as_completed([f for f, *_ in pending.values()], loop=client.loop):  # type: ignore[no-untyped-call]
                entry = pending.pop(str(future.key), None)
                if entry is None:  # never twice for one candidate
                    continue
                _, param_id, params, started = entry
                try:
                    score = future.result()
                except KilledWorker as err:
                    last = getattr(getattr(err, "last_worker", None), "address", "?")
                    reason = f"crashed: dask worker died running it {err.allowed_failures + 1} time(s) (last on {last})"
                    score = invalid_score(
                        param_id, params, num_function_returns, reason, time.perf_counter() - started, worker=self.name
                    )
                future.release()  # type: ignore[no-untyped-call]
                if on_result is not None:
                    on_result(score)
                scores.append(score)
        finally:
            if pending:  # an error: stop what is still queued
                client.cancel([f for f, *_ in pending.values()])  # type: ignore[no-untyped-call]
            if not isinstance(shipped, bytes):
                shipped.release()
        return scores

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        self._cluster_size = 0
        try:
            if client is not None and client is not self.address:  # never a Client the caller gave
                client.close()  # type: ignore[no-untyped-call]
        finally:
            if cluster is not None:
                cluster.close()


def _workers(client: Client) -> dict[str, Any]:
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before the n_workers argument
        info = client.scheduler_info()
    return dict(info.get("workers", {}))


def _scheduler_address(client: Client) -> str | None:
    address = getattr(client.scheduler, "address", None)
    return str(address) if address is not None else None
