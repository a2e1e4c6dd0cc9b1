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

Each Score's ``metadata["placement"]`` is ``<host>`` or ``<host>/gpu<N>`` (N: the first entry of
``CUDA_VISIBLE_DEVICES``, the physical GPU under dask-cuda). With ``normalize=True`` the baseline is
measured once per placement, pinned to a worker there, and each result is normalized by the
baseline of the placement it ran on (CompileIQ's Ray worker does the same per node and GPU).
Placements are checked before every generation; results from a worker that joined during a
generation wait until its placement has been baselined.

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
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import cloudpickle

from genetune.evaluation import evaluate, invalid_score, placement
from genetune.scores import BASELINE_CONFIG, Score
from genetune.shipping import pack, unpack
from genetune.workers.base import BASELINE_ID, BaseWorker

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
    param_id: int | str, params: Any, *, shipped: bytes, token: str, num_objectives: int, worker: str, timeout: float | None, isolate: bool
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
    baselines_per_placement: ClassVar[bool] = True
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
        shipped, token = _ship(client, function, self.scatter_threshold)
        run_id = uuid.uuid4().hex[:12]
        keys = [f"genetune-{param_id}-{run_id}" for param_id in params_ids]
        # One client.map call: a single scheduler update for the whole generation.
        futures: list[Future[Score]] = client.map(
            _dask_task,
            list(params_ids),
            list(params_pool),
            key=keys,
            resources=self.resources,
            pure=False,
            shipped=shipped,
            token=token,
            num_objectives=num_function_returns,
            worker=self.name,
            timeout=timeout,
            isolate=isolate,
        )
        submitted = time.perf_counter()
        pending: dict[str, tuple[Future[Score], int | str, Any, float]] = {
            key: (future, param_id, params, submitted)
            for key, future, param_id, params in zip(keys, futures, params_ids, params_pool, strict=True)
        }
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
                future.release()
                if on_result is not None:
                    on_result(score)
                scores.append(score)
        finally:
            if pending:  # an error: stop what is still queued
                client.cancel([f for f, *_ in pending.values()])  # type: ignore[no-untyped-call]
            if not isinstance(shipped, bytes):
                shipped.release()
        return scores

    def measure_baselines(
        self,
        function: Callable[[Any], Any],
        num_function_returns: int,
        known: Collection[str],
        **kwargs: Any,
    ) -> list[Score]:
        """Measures BASELINE_CONFIG once on every placement (host, GPU) of the cluster's eligible
        workers that ``known`` lacks, pinned there (``workers=``, no other worker allowed). A
        placement whose workers all leave before its baseline is measured is skipped (the
        search measures it when results from it arrive)."""
        timeout = kwargs.get("task_timeout")
        client = self._ensure_client(kwargs.get("num_workers"))
        self._check_cluster(client)
        isolate = bool(self.isolate) or timeout is not None
        return measure_pinned_baselines(client, self.resources, function, num_function_returns, known, self.name, timeout, isolate)

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


def _ship(client: Client, function: Callable[[Any], Any], threshold: int | None = None) -> tuple[Any, str]:
    token, blob = pack(function)
    if len(blob) > (DaskWorker.scatter_threshold if threshold is None else threshold):  # once to every worker, not inside every task
        return client.scatter(blob, broadcast=True, hash=False), token  # type: ignore[no-untyped-call]
    return blob, token


def _eligible(client: Client, resources: dict[str, float] | None) -> list[str]:
    """The addresses of the workers that offer every requested resource."""
    out = []
    for address, info in _workers(client).items():
        offered = dict(info.get("resources") or {})
        if not resources or all(offered.get(k, 0) >= v for k, v in resources.items()):
            out.append(address)
    return sorted(out)


def measure_pinned_baselines(
    client: Client,
    resources: dict[str, float] | None,
    function: Callable[[Any], Any],
    num_function_returns: int,
    known: Collection[str],
    worker_name: str,
    timeout: float | None,
    isolate: bool,
) -> list[Score]:
    """Measures BASELINE_CONFIG once on every placement (host, GPU) of the workers offering
    ``resources`` that ``known`` lacks, pinned there (``workers=``, no other worker allowed). A
    placement whose workers all leave first is skipped (measured when its results arrive)."""
    eligible = _eligible(client, resources)
    if not eligible:
        return []
    where: dict[str, str] = client.run(_placement_here, workers=eligible)
    by_placement: dict[str, list[str]] = {}
    for address, key in sorted(where.items()):
        if key not in known:
            by_placement.setdefault(key, []).append(address)
    if not by_placement:
        return []
    shipped, token = _ship(client, function)
    run_id = uuid.uuid4().hex[:12]
    pending: dict[str, tuple[Future[Score], list[str]]] = {}
    for index, (key, addresses) in enumerate(by_placement.items()):
        future: Future[Score] = client.submit(
            _dask_task,
            f"{BASELINE_ID}@{key}",
            dict(BASELINE_CONFIG),
            key=f"genetune-baseline-{index}-{run_id}",
            workers=addresses,
            allow_other_workers=False,
            resources=resources,
            pure=False,
            shipped=shipped,
            token=token,
            num_objectives=num_function_returns,
            worker=worker_name,
            timeout=timeout,
            isolate=isolate,
        )
        pending[key] = (future, addresses)
    scores: list[Score] = []
    try:
        while pending:
            for key, (future, addresses) in list(pending.items()):
                if future.done():  # type: ignore[no-untyped-call]
                    del pending[key]
                    try:
                        score = future.result()
                    except Exception as err:  # e.g. KilledWorker: no baseline there this time
                        warnings.warn(f"DaskWorker: the baseline on {key} failed ({type(err).__name__}: {err})", UserWarning, stacklevel=2)
                        continue
                    metadata = score.metadata if isinstance(score.metadata, dict) else {"note": score.metadata}
                    scores.append(score.model_copy(update={"metadata": {**metadata, "placement": key}}))
                elif not set(addresses) & set(_workers(client)):  # all its workers left: it would wait forever
                    del pending[key]
                    future.cancel()  # type: ignore[no-untyped-call]
            time.sleep(0.02)
    finally:
        for future, _ in pending.values():
            future.cancel()  # type: ignore[no-untyped-call]
        if not isinstance(shipped, bytes):
            shipped.release()
    return scores


def _placement_here() -> str:
    """Run on a Dask worker: its placement key (the key its evaluations report)."""
    return str(placement()["placement"])


def _workers(client: Client) -> dict[str, Any]:
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before the n_workers argument
        info = client.scheduler_info()
    return dict(info.get("workers", {}))


def _scheduler_address(client: Client) -> str | None:
    address = getattr(client.scheduler, "address", None)
    return str(address) if address is not None else None
