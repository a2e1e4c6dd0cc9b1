"""Shipping the objective to other processes: cloudpickled once per batch, unpickled once per
process (lambdas, closures and functions defined in ``__main__`` all work)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = ["pack", "unpack"]

_cache: dict[str, Callable[[Any], Any]] = {}
_lock = threading.Lock()
_MAX_CACHED = 8  # several searches may share a worker process


def pack(function: Callable[[Any], Any]) -> tuple[str, bytes]:
    """The pickled objective and its content hash (the cache key on the other side)."""
    blob = cloudpickle.dumps(function)
    return hashlib.sha256(blob).hexdigest(), blob


def unpack(token: str, blob: bytes) -> Callable[[Any], Any]:
    """The objective of ``pack``, unpickled at most once per process."""
    with _lock:
        function = _cache.get(token)
        if function is None:
            if len(_cache) >= _MAX_CACHED:
                _cache.clear()
            function = _cache[token] = cloudpickle.loads(blob)
        return function
