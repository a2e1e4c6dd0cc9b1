"""Workers evaluate candidates: in process, in a process pool, one process per evaluation, on an
event loop, or (``DaskWorker``) on a Dask cluster."""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Any

import cloudpickle

from genetune.workers.asyncio_worker import AsyncWorker
from genetune.workers.base import BaseWorker, ResultCallback, RunOptions
from genetune.workers.dask_worker import DaskWorker
from genetune.workers.process import IsolatedWorker, IsoMultiProcessWorker, MultiProcessWorker
from genetune.workers.sequential import SequentialWorker

__all__ = [
    "AsyncWorker",
    "BaseWorker",
    "DaskWorker",
    "IsoMultiProcessWorker",
    "IsolatedWorker",
    "MultiProcessWorker",
    "ResultCallback",
    "RunOptions",
    "SequentialWorker",
    "WorkerTypes",
    "make_worker",
    "worker_from_reference",
    "worker_reference",
]


class WorkerTypes(StrEnum):
    """Built-in workers by name (CompileIQ's names, plus ``sequential``)."""

    NATIVE = "native"
    ISOLATED = "isolated"
    ASYNC = "async"
    SEQUENTIAL = "sequential"
    DASK = "dask"
    DEFAULT = "native"


_BY_TYPE: dict[WorkerTypes, type[BaseWorker]] = {
    WorkerTypes.NATIVE: MultiProcessWorker,
    WorkerTypes.ISOLATED: IsolatedWorker,
    WorkerTypes.ASYNC: AsyncWorker,
    WorkerTypes.SEQUENTIAL: SequentialWorker,
    WorkerTypes.DASK: DaskWorker,
}


def make_worker(worker_type: Any) -> BaseWorker:
    """A worker from a `WorkerTypes` member, its string value, a `BaseWorker` subclass or instance."""
    if isinstance(worker_type, BaseWorker):
        return worker_type
    if isinstance(worker_type, type) and issubclass(worker_type, BaseWorker):
        return worker_type()
    if isinstance(worker_type, str):
        try:
            return _BY_TYPE[WorkerTypes(worker_type.lower())]()
        except ValueError:
            pass
    names = ", ".join(repr(w.value) for w in WorkerTypes)
    raise ValueError(f"worker_type must be one of {names}, a BaseWorker subclass or instance; got {worker_type!r}")


def worker_reference(worker: BaseWorker) -> dict[str, str]:
    """How a checkpoint records the worker: pickled with its settings (an address, resources...),
    else a built-in's name, else the default."""
    try:
        return {"pickled": base64.b64encode(cloudpickle.dumps(worker)).decode("ascii")}
    except Exception:  # an unpicklable custom worker: resume falls back to a built-in
        for member, cls in _BY_TYPE.items():
            if type(worker) is cls:
                return {"type": member.value}
        return {"type": WorkerTypes.DEFAULT.value}


def worker_from_reference(reference: dict[str, str]) -> BaseWorker:
    if "pickled" in reference:
        worker = cloudpickle.loads(base64.b64decode(reference["pickled"]))
        if isinstance(worker, BaseWorker):
            return worker
    return make_worker(reference.get("type", WorkerTypes.DEFAULT.value))
