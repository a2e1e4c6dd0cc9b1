"""The varied-duration workload of ``bench_dask.py --workload varied`` (issue 19): evaluations
that sleep, so 32 worker threads fit on 2 cores, with durations drawn from a hash of the params:

- 70 %: a normal run, lognormal with median 1 s and sigma 0.5 (returns a score);
- 20 %: a failure after 0.1 s (returns INVALID, as a compile error would);
- 10 %: a hang that ends at the 8 s ``task_timeout`` (INVALID).

A hang sleeps exactly ``TIMEOUT_S`` and returns INVALID (the timeout simulated, as in the
measurements of the issue) unless ``GENETUNE_BENCH_KILL=1``, where it sleeps past the timeout
and the worker kills it (``task_timeout``: one child process per evaluation).

Importable by name on the Dask workers (``benches/`` is on their ``PYTHONPATH``). Run as a script
it is the bench's ``LocalCluster`` in its own process: ``varied_workload.py cluster <processes>
<threads>`` prints the scheduler address and runs until stdin closes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from typing import Any

TIMEOUT_S = 8.0
FAIL_S = 0.1


def duration(params: dict[str, Any]) -> tuple[float, bool]:
    """(seconds the evaluation takes, whether it is valid), from a hash of the params."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).digest()
    u = [int.from_bytes(digest[i : i + 8], "big") / 2.0**64 for i in (0, 8, 16)]
    if u[0] < 0.2:
        return FAIL_S, False
    if u[0] < 0.3:
        return TIMEOUT_S, False
    z = math.sqrt(-2.0 * math.log(max(u[1], 1e-12))) * math.cos(2.0 * math.pi * u[2])
    return math.exp(0.5 * z), True


def varied(params: dict[str, Any]) -> float | str:
    """The objective: sleeps for ``duration(params)``; a score from the params when valid."""
    seconds, valid = duration(params)
    if seconds == TIMEOUT_S and os.environ.get("GENETUNE_BENCH_KILL") == "1":
        time.sleep(10 * TIMEOUT_S)  # killed at task_timeout
    try:
        import genetune

        genetune.log_metric("t_start", time.time())
    except ImportError:
        pass
    time.sleep(seconds)
    if not valid:
        return "*"
    return float(sum((v - 7) ** 2 for v in params.values()))


def _serve_cluster(processes: int, threads: int) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=processes,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the bench closes our stdin


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "cluster":
        _serve_cluster(int(sys.argv[2]), int(sys.argv[3]))
