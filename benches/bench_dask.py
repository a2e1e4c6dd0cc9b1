#!/usr/bin/env python
"""Dask and Prefect execution: per-evaluation overhead and worker utilization.

The same search (10 generations of a seeded GA over 4 continuous parameters) through three paths
on ONE shared ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` on 127.0.0.1:

- ``client.map`` (the floor): ``genetune.Engine`` ask/tell in the client process, and for each
  generation ``client.gather(client.map(objective, params_list, pure=False))``. Same seed, same
  deterministic scores, so the same candidates as the genetune searches;
- ``DaskWorker``: ``gt.Search(..., worker_type=DaskWorker(address=...)).start()`` (one Dask task
  per candidate, with genetune's bookkeeping: result table, run folder, checkpoints);
- ``Prefect flow``: a Prefect flow with ``DaskTaskRunner(address=...)`` running ``gt.Search`` with
  ``PrefectDaskWorker()`` (one Prefect mapped task per chunk, default automatic chunking: about 3
  chunks per Dask worker slot), under ``prefect_test_harness`` (a local Prefect API server on
  127.0.0.1, temporary database); the flow heartbeat is turned off (it adds a fixed ~1 s join at
  flow exit, see /work/shared/notes/prefect-dask-mlflow.md §2). Wall = the whole flow call.

Objectives: ``trivial`` (a sum of squares, microseconds) and ``50ms`` (``time.sleep(0.05)`` then
the same sum: an I/O-like evaluation that leaves the CPUs to the orchestration).

Metrics, with ``ideal = Σ objective time / workers`` (Σ = evaluations × 50 ms nominal; 0 for
trivial):

- per-evaluation overhead = (wall − ideal) / evaluations; for ``trivial`` that is wall / evaluations;
- utilization = Σ objective time / (workers × wall) (``50ms`` only);
- ratio = overhead / overhead of ``client.map`` on the same row.

Sizes: trivial × pool {64, 1000} × 10 generations; 50 ms × pool 64 × 10 generations and 50 ms ×
pool 1000 × 1 generation (10 generations would be 250 s per path). Every path is warmed up first
(a pool-8, 1-generation search: imports on the workers, Prefect's first task), then each
configuration runs ``--repeats`` times (default 3 for trivial, 1 for 50 ms) and the median wall is
kept.

Targets: utilization ≥ 90 % with 50 ms objectives on 2 workers (every genetune path, every pool);
per-evaluation overhead within 2× of plain ``client.map`` (every genetune row).

The varied-duration workload (``--workload varied``, issue 19; see ``varied_workload.py``):
evaluations that sleep 0.1 s (20 %, INVALID), lognormal median 1 s sigma 0.5 (70 %) or 8 s (10 %,
the ``task_timeout``, INVALID); 320 evaluations (defaults: pool 32 × 10 generations) over
10 × ``range(0, 20)``, on a ``LocalCluster`` in its own process (8 workers = 2 processes × 4
threads, 32 = 4 × 8). Utilization = Σ evaluation time / (workers × wall). Rows, each with the
defaults: ``DaskWorker``, ``MultiProcessWorker`` (``num_workers`` processes, no cluster), the
Prefect flow ``genetune_search`` (wall = the whole flow call, start-up included) with
``schedule="steady"`` (the default) and ``"generational"``, and two asynchronous loops on the
same cluster: ``distributed.as_completed`` with random search and with Optuna TPE
(``constant_liar=True``), a new candidate whenever one finishes. Targets: ≥ 90 % at 8 workers
and ≥ 70 % at 32 for ``DaskWorker`` and ``MultiProcessWorker``; ≥ 85 % at 8 for the flow.

Usage::

    .venv/bin/python benches/bench_dask.py            # both workloads, 8 and 32 workers (long)
    .venv/bin/python benches/bench_dask.py --quick    # smoke run: fewer evaluations
    .venv/bin/python benches/bench_dask.py --workload varied --workers 8 --rows DaskWorker "Prefect flow (steady)"
    .venv/bin/python benches/bench_dask.py --out benches/results/dask.json
"""

from __future__ import annotations

import os
import sys
import tempfile

# Before Prefect is imported (also in the Dask worker processes, which inherit the environment):
# an isolated, quiet, offline Prefect home.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="genetune-bench-prefect-")
for _name in ("PREFECT_API_URL", "PREFECT_PROFILE"):
    os.environ.pop(_name, None)
os.environ.update(
    DO_NOT_TRACK="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_SERVER_UI_ENABLED="false",
    PREFECT_LOGGING_LEVEL="WARNING",
    PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
    # A loaded 2-core machine can starve a scheduler past distributed's 30 s connect timeout.
    DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="120s",
    DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP="120s",
)

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any, Callable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, fmt, fmt_ratio, set_thread_env  # noqa: E402

set_thread_env()

N_WORKERS = 2
SLEEP_S = 0.05
SEED = 0
VARIANTS = ("client.map", "DaskWorker", "Prefect flow")


# ----- objectives (pickled by value into the Dask workers) ---------------------------------------


def trivial(params: dict[str, float]) -> float:
    return sum(v * v for v in params.values())


def sleep50(params: dict[str, float]) -> float:
    time.sleep(SLEEP_S)
    return sum(v * v for v in params.values())


OBJECTIVES: dict[str, tuple[Callable[[dict[str, float]], float], float]] = {"trivial": (trivial, 0.0), "50ms": (sleep50, SLEEP_S)}


def space() -> dict[str, Any]:
    import genetune.search_spaces as ss

    return {f"x{i}": ss.range(-5.0, 5.0, step=None) for i in range(4)}


def config(pool: int, generations: int) -> Any:
    import genetune as gt

    return gt.SearchConfiguration(generations=generations, pool_size=pool, seed=SEED)


# ----- the three paths ---------------------------------------------------------------------------


def run_client_map(client: Any, objective: Callable[..., float], pool: int, generations: int) -> tuple[float, int]:
    import genetune as gt

    start = time.perf_counter()
    engine = gt.Engine(space(), config(pool, generations))
    evaluations = 0
    while not engine.done:
        candidates = engine.ask()
        if not candidates:
            break
        params = [c.params for c in candidates]
        scores = client.gather(client.map(objective, params, pure=False))
        engine.tell([c.id for c in candidates], [[s] for s in scores])
        evaluations += len(candidates)
    return time.perf_counter() - start, evaluations


def run_dask_worker(address: str, objective: Callable[..., float], pool: int, generations: int, tmp: Path) -> tuple[float, int]:
    import genetune as gt
    from genetune.workers.dask_worker import DaskWorker

    folder = Path(tempfile.mkdtemp(dir=tmp))
    start = time.perf_counter()
    result = gt.Search(
        objective,
        space(),
        config(pool, generations),
        worker_type=DaskWorker(address=address),
        disable_progress_bar=True,
        cache_folder=folder,
    ).start()
    wall = time.perf_counter() - start
    evaluations = len(result.get_results())
    shutil.rmtree(folder, ignore_errors=True)
    return wall, evaluations


def _search_in_flow(objective: Callable[..., float], pool: int, generations: int, folder: str) -> dict[str, Any]:
    import genetune as gt
    from genetune.flows import PrefectDaskWorker

    start = time.perf_counter()
    worker = PrefectDaskWorker()
    result = gt.Search(
        objective, space(), config(pool, generations), worker_type=worker, disable_progress_bar=True, cache_folder=folder
    ).start()
    return {"search_s": time.perf_counter() - start, "evaluations": len(result.get_results()), "chunks": worker.last_chunk_sizes}


def run_prefect(address: str, objective: Callable[..., float], pool: int, generations: int, tmp: Path) -> tuple[float, int, dict[str, Any]]:
    from prefect import flow
    from prefect_dask.task_runners import DaskTaskRunner

    folder = Path(tempfile.mkdtemp(dir=tmp))
    bench_flow = flow(name="bench-dask-genetune", persist_result=False, log_prints=False)(_search_in_flow)
    start = time.perf_counter()
    info = bench_flow.with_options(task_runner=DaskTaskRunner(address=address))(objective, pool, generations, str(folder))
    wall = time.perf_counter() - start
    shutil.rmtree(folder, ignore_errors=True)
    return wall, int(info["evaluations"]), info


# ----- driver ------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from contextlib import ExitStack

    from distributed import Client, LocalCluster

    if args.quick:
        plan = [("trivial", 64, 3), ("trivial", 200, 3), ("50ms", 64, 3), ("50ms", 200, 1)]
    else:
        plan = [("trivial", 64, 10), ("trivial", 1000, 10), ("50ms", 64, 10), ("50ms", 1000, 1)]
    tmp = Path(tempfile.mkdtemp(prefix="genetune-bench-dask-"))
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    with ExitStack() as stack:
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
        from prefect.testing.utilities import prefect_test_harness

        t0 = time.perf_counter()
        stack.enter_context(prefect_test_harness(server_startup_timeout=90))
        stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        print(f"prefect test harness up in {time.perf_counter() - t0:.1f} s", flush=True)
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=N_WORKERS,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
        )
        address = cluster.scheduler_address
        client = stack.enter_context(Client(address, set_as_default=False))
        client.wait_for_workers(N_WORKERS)

        def one(variant: str, objective: Callable[..., float], pool: int, generations: int) -> tuple[float, int, dict[str, Any]]:
            if variant == "client.map":
                wall, n = run_client_map(client, objective, pool, generations)
                return wall, n, {}
            if variant == "DaskWorker":
                wall, n = run_dask_worker(address, objective, pool, generations, tmp)
                return wall, n, {}
            return run_prefect(address, objective, pool, generations, tmp)

        # Warm-up: imports on the workers, the objectives' first unpickling, Prefect's first tasks.
        for variant in VARIANTS:
            t0 = time.perf_counter()
            for fn, _ in OBJECTIVES.values():
                one(variant, fn, 8, 1)
            print(f"warm-up {variant}: {time.perf_counter() - t0:.2f} s", flush=True)

        for name, pool, generations in plan:
            objective, obj_s = OBJECTIVES[name]
            repeats = args.repeats if args.repeats else (3 if obj_s == 0 else 1)
            for variant in VARIANTS:
                walls: list[float] = []
                extra: dict[str, Any] = {}
                n = 0
                for _ in range(repeats):
                    wall, n, extra = one(variant, objective, pool, generations)
                    walls.append(wall)
                wall = statistics.median(walls)
                row = {
                    "variant": variant,
                    "objective": name,
                    "pool": pool,
                    "generations": generations,
                    "evaluations": n,
                    "walls_s": [round(w, 4) for w in walls],
                    "wall_s": wall,
                    "objective_s": obj_s,
                }
                if extra:
                    row["search_s_in_flow"] = round(float(extra["search_s"]), 4)
                    row["chunks_last_generation"] = extra["chunks"]
                ideal = n * obj_s / N_WORKERS
                row["overhead_ms"] = (wall - ideal) / n * 1e3 if n else float("nan")
                row["utilization"] = (n * obj_s) / (N_WORKERS * wall) if obj_s else None
                rows.append(row)
                print(
                    f"{variant:13s} {name:7s} pool={pool:5d} gens={generations:2d} evals={n:6d} "
                    f"wall={wall:8.3f} s overhead={row['overhead_ms']:.3f} ms/eval"
                    + (f" util={row['utilization']:.1%}" if row["utilization"] is not None else ""),
                    flush=True,
                )
        floor = {(r["objective"], r["pool"]): r["overhead_ms"] for r in rows if r["variant"] == "client.map"}
        for r in rows:
            base = floor[(r["objective"], r["pool"])]
            r["ratio"] = r["overhead_ms"] / base if base > 0 else float("nan")
    shutil.rmtree(tmp, ignore_errors=True)
    util_rows = [r for r in rows if r["variant"] != "client.map" and r["objective"] == "50ms"]
    ratio_rows = [r for r in rows if r["variant"] != "client.map"]
    verdicts = {
        "utilization_ge_90pct_50ms_2_workers": {
            "pass": all(r["utilization"] >= 0.9 for r in util_rows),
            "per_row": {f"{r['variant']} pool {r['pool']}": round(r["utilization"], 4) for r in util_rows},
        },
        "overhead_within_2x_client_map": {
            "pass": all(r["ratio"] <= 2.0 for r in ratio_rows),
            "per_row": {f"{r['variant']} {r['objective']} pool {r['pool']}": round(r["ratio"], 3) for r in ratio_rows},
        },
    }
    return {
        "environment": environment(("genetune", "numpy", "distributed", "dask", "prefect", "prefect_dask", "cloudpickle")),
        "quick": args.quick,
        "workers": N_WORKERS,
        "total_s": round(time.perf_counter() - t_all, 1),
        "rows": rows,
        "verdicts": verdicts,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| variant | objective | pool | generations | evaluations | wall s | overhead ms/eval | µs/eval (wall/evals) | utilization | overhead / client.map |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        util = f"{r['utilization']:.1%}" if r["utilization"] is not None else "-"
        per_eval_us = fmt(r["wall_s"] / r["evaluations"] * 1e6) if r["evaluations"] else "-"
        lines.append(
            f"| {r['variant']} | {r['objective']} | {r['pool']} | {r['generations']} | {r['evaluations']:,} | "
            f"{fmt(r['wall_s'])} | {fmt(r['overhead_ms'])} | {per_eval_us} | {util} | {fmt_ratio(r['ratio'])} |"
        )
    v = report["verdicts"]
    u, o = v["utilization_ge_90pct_50ms_2_workers"], v["overhead_within_2x_client_map"]
    lines.append("")
    lines.append(
        f"- Utilization ≥ 90 % with 50 ms objectives on 2 workers: **{'PASS' if u['pass'] else 'FAIL'}** "
        + ", ".join(f"{k}: {val:.1%}" for k, val in u["per_row"].items())
    )
    lines.append(
        f"- Per-evaluation overhead within 2× of client.map: **{'PASS' if o['pass'] else 'FAIL'}** "
        + ", ".join(f"{k}: {val:.2f}×" for k, val in o["per_row"].items())
    )
    env = report["environment"]
    lines.append("")
    lines.append(
        f"Environment: {env['date']}, {env['cpu']} ({env['nproc']} CPUs), load average {env['loadavg']}, "
        f"Python {env['python']}, commit {env['commit']}, "
        + ", ".join(f"{k} {val}" for k, val in env["versions"].items())
        + f"; total {report['total_s']} s."
    )
    return "\n".join(lines)


# ----- the varied-duration workload (issue 19) ----------------------------------------------------

HERE = Path(__file__).resolve().parent
VARIED_ROWS = (
    "DaskWorker",
    "MultiProcessWorker",
    "Prefect flow (steady)",
    "Prefect flow (generational)",
    "as_completed random",
    "as_completed TPE",
)
#: Dask worker processes × threads for each number of workers.
LAYOUT = {8: (2, 4), 32: (4, 8)}


def varied_space() -> dict[str, Any]:
    import genetune.search_spaces as ss

    return {f"x{i}": ss.range(0, 20) for i in range(10)}


@contextmanager
def cluster_process(workers: int) -> Iterator[str]:
    """A LocalCluster in its own process (its scheduler does not share the driver's GIL)."""
    import subprocess

    processes, threads = LAYOUT.get(workers, (max(1, workers // 4), min(workers, 4)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "varied_workload.py"), "cluster", str(processes), str(threads)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    address = proc.stdout.readline().strip()
    try:
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(processes, timeout=120)
        yield address
    finally:
        proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def _genetune_row(result: Any) -> tuple[list[dict[str, Any]], list[float]]:
    df = result.get_results() if hasattr(result, "get_results") else result
    df = df[~df["status"].isin(["baseline", "prior"])]
    starts = [float((m or {}).get("metrics", {}).get("t_start", "nan")) for m in df["metadata"]]
    return list(df["params"]), starts


def run_varied(row: str, workers: int, address: str, generations: int, seed: int, tmp: Path) -> dict[str, Any]:
    import genetune as gt
    import varied_workload as vw

    config = {"generations": generations, "seed": seed}
    folder = Path(tempfile.mkdtemp(dir=tmp))
    start = time.perf_counter()
    t0 = time.time()
    extra: dict[str, Any] = {}
    if row in ("DaskWorker", "MultiProcessWorker"):
        from genetune.workers.dask_worker import DaskWorker

        worker: Any = DaskWorker(address=address) if row == "DaskWorker" else "native"
        search = gt.Search(vw.varied, varied_space(), gt.SearchConfiguration(**config), worker_type=worker, disable_progress_bar=True, cache_folder=folder)
        result = search.start(num_workers=workers)
        wall = time.perf_counter() - start
        params, starts = _genetune_row(result)
    elif row.startswith("Prefect flow"):
        from genetune.flows import genetune_search
        from genetune.search_spaces import compile_space

        schedule = "generational" if "generational" in row else "steady"
        if schedule == "generational":
            config["schedule"] = schedule
        summary = genetune_search(
            objective="varied_workload:varied",
            search_space=compile_space(varied_space()),
            search_config=config,
            dask_address=address,
            cache_folder=str(folder),
        )
        wall = time.perf_counter() - start
        params, starts = _genetune_row(gt.SearchResult.from_csv(summary["result_csv"]))
    else:
        params, starts = _as_completed(row, address, 32 * generations, workers, seed)
        wall = time.perf_counter() - start
    busy = sum(vw.duration(p)[0] for p in params)
    finite = sorted(s for s in starts if s == s)
    if finite:
        extra["first_start_s"] = round(finite[0] - t0, 2)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "row": row,
        "workers": workers,
        "evaluations": len(params),
        "wall_s": round(wall, 2),
        "busy_s": round(busy, 2),
        "lower_bound_s": round(busy / workers, 2),
        "utilization": busy / (workers * wall),
        **extra,
    }


def _as_completed(row: str, address: str, budget: int, workers: int, seed: int) -> tuple[list[dict[str, Any]], list[float]]:
    """The asynchronous peers: keep ``workers`` evaluations in flight, a new candidate (random,
    or Optuna TPE with ``constant_liar=True``) whenever one finishes."""
    import random

    from distributed import Client, as_completed

    import varied_workload as vw

    rng = random.Random(seed)
    study = None
    if row.endswith("TPE"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(constant_liar=True, seed=seed))
    evaluated: list[dict[str, Any]] = []
    with Client(address, set_as_default=False) as client:

        def one() -> Any:
            if study is not None:
                trial = study.ask()
                params = {f"x{i}": trial.suggest_int(f"x{i}", 0, 20) for i in range(10)}
            else:
                trial, params = None, {f"x{i}": rng.randint(0, 20) for i in range(10)}
            future = client.submit(vw.varied, params, pure=False)
            future.trial, future.params = trial, params  # type: ignore[attr-defined]
            return future

        submitted = min(workers, budget)
        queue = as_completed([one() for _ in range(submitted)], loop=client.loop)  # type: ignore[no-untyped-call]
        for future in queue:
            value = future.result()
            evaluated.append(future.params)
            if study is not None:
                import optuna

                if value == "*":
                    study.tell(future.trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(future.trial, value)
            if submitted < budget:
                queue.add(one())
                submitted += 1
    return evaluated, []


def measure_varied(args: argparse.Namespace) -> dict[str, Any]:
    from contextlib import ExitStack

    generations = 3 if args.quick else 10
    rows_wanted = args.rows or list(VARIED_ROWS)
    tmp = Path(tempfile.mkdtemp(prefix="genetune-bench-varied-"))
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    sys.path.insert(0, str(HERE))
    with ExitStack() as stack:
        if any(r.startswith("Prefect flow") for r in rows_wanted):
            from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
            from prefect.testing.utilities import prefect_test_harness

            stack.enter_context(prefect_test_harness(server_startup_timeout=300))
            stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        for workers in args.workers:
            with cluster_process(workers) as address:
                for row in rows_wanted:
                    for seed in range(args.seeds):
                        r = run_varied(row, workers, address, generations, seed, tmp)
                        r["seed"] = seed
                        rows.append(r)
                        print(
                            f"{row:28s} workers={workers:2d} seed={seed} evals={r['evaluations']} wall={r['wall_s']:.1f} s "
                            f"(bound {r['lower_bound_s']:.1f} s) util={r['utilization']:.1%}"
                            + (f" first start {r['first_start_s']} s" if "first_start_s" in r else ""),
                            flush=True,
                        )
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "environment": environment(("genetune", "distributed", "dask", "prefect", "prefect_dask", "optuna")),
        "quick": args.quick,
        "generations": generations,
        "total_s": round(time.perf_counter() - t_all, 1),
        "rows": rows,
    }


def markdown_varied(report: dict[str, Any]) -> str:
    targets = {("DaskWorker", 8): 0.9, ("DaskWorker", 32): 0.7, ("MultiProcessWorker", 8): 0.9, ("MultiProcessWorker", 32): 0.7}
    targets[("Prefect flow (steady)", 8)] = 0.85
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in report["rows"]:
        by.setdefault((r["row"], r["workers"]), []).append(r)
    lines = [
        "| path | workers | evaluations | wall s (median) | wall / lower bound | utilization (median; seeds) | vs as_completed random | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for (row, workers), rs in by.items():
        util = statistics.median(r["utilization"] for r in rs)
        wall = statistics.median(r["wall_s"] for r in rs)
        bound = statistics.median(r["lower_bound_s"] for r in rs)
        peer = by.get(("as_completed random", workers))
        ratio = util / statistics.median(r["utilization"] for r in peer) if peer else None
        target = targets.get((row, workers))
        verdict = "-" if target is None else f"≥ {target:.0%}: **{'PASS' if util >= target else 'MISS'}**"
        first = [r["first_start_s"] for r in rs if "first_start_s" in r]
        name = row + (f" (first evaluation started after {statistics.median(first):.1f} s)" if first and row.startswith("Prefect") else "")
        seeds = ", ".join(f"{r['utilization']:.1%}" for r in rs)
        lines.append(
            f"| {name} | {workers} | {rs[0]['evaluations']} | {wall:.1f} | {wall / bound:.2f} | {util:.1%} ({seeds}) | "
            f"{fmt_ratio(ratio)} | {verdict} |"
        )
    env = report["environment"]
    lines.append("")
    lines.append(
        f"Environment: {env['date']}, {env['cpu']} ({env['nproc']} CPUs), load average {env['loadavg']}, Python {env['python']}, "
        f"commit {env['commit']}, " + ", ".join(f"{k} {val}" for k, val in env["versions"].items()) + f"; total {report['total_s']} s."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer evaluations")
    parser.add_argument("--workload", choices=("all", "overhead", "varied"), default="all")
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 32], help="varied: numbers of workers (8 = 2 x 4 threads, 32 = 4 x 8)")
    parser.add_argument("--rows", nargs="+", choices=VARIED_ROWS, default=None, help="varied: which paths (default all)")
    parser.add_argument("--seeds", type=int, default=1, help="varied: seeds per row")
    parser.add_argument("--repeats", type=int, default=0, help="overhead: runs per configuration (default 3 trivial, 1 for 50 ms)")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default benches/results/dask[_varied][_quick].json)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    results = HERE / "results"
    suffix = "_quick" if args.quick else ""
    if args.workload in ("all", "overhead"):
        report = measure(args)
        out = args.out or results / f"dask{suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
        print()
        print(markdown(report))
        print(f"\nJSON: {out}")
    if args.workload in ("all", "varied"):
        report = measure_varied(args)
        out = args.out if args.out and args.workload == "varied" else results / f"dask_varied{suffix}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
        print()
        print(markdown_varied(report))
        print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
