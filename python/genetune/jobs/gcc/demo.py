"""``genetune demo``: the gcc job on embedded defaults, as a new user's first command (the
command line is :mod:`genetune.cli`; this module imports nothing of it).

It tunes the bundled kernels' own parameters and gcc flags together (``--space joint``, the
default) or the flags alone (``--space flags``). A local Dask cluster, Prefect's ephemeral server (or ``PREFECT_API_URL`` when set), MLflow in a
SQLite store and the JSONL log, all under one folder (``./genetune-demo`` by default); at the end
it says where to look.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_URL

from genetune.jobs.gcc.flow import gcc_tuning
from genetune.jobs.gcc.stats import SpeedupReport
from genetune.prefect_api import prefect_api

__all__ = ["run_demo", "where_to_look"]

#: (generations, pool_size, size, repeats, rounds): the full demo, and the smoke run CI uses.
FULL = (6, 16, "default", 5, 10)
QUICK = (2, 6, "small", 2, 3)


def run_demo(
    folder: str | Path = "genetune-demo",
    *,
    quick: bool = False,
    generations: int | None = None,
    pool_size: int | None = None,
    n_workers: int | None = None,
    seed: int = 1,
    dask_address: str | None = None,
    space: str = "joint",
    progress_bar: bool = False,
) -> dict[str, Any]:
    """Runs the ``genetune-gcc-tuning`` flow with everything kept under ``folder`` (run folders,
    the MLflow store and its artifacts); returns its summary. ``space``: ``"joint"`` (kernel
    parameters and gcc flags), ``"flags"`` or a space file. ``progress_bar``: a bar per
    generation on stderr."""
    root = Path(folder).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    default_generations, default_pool, size, repeats, rounds = QUICK if quick else FULL
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    ephemeral = not (os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value())
    with prefect_api() as api_url:
        summary: dict[str, Any] = gcc_tuning(
            generations=generations or default_generations,
            pool_size=pool_size or default_pool,
            seed=seed,
            size=size,
            repeats=repeats,
            rounds=rounds,
            n_workers=n_workers,
            dask_address=dask_address,
            cache_folder=str(root / "runs"),
            mlflow_tracking_uri=tracking_uri,
            space=space,
            progress_bar=progress_bar,
        )
    summary["prefect_api_url"] = None if ephemeral else api_url
    summary["mlflow_store"] = tracking_uri
    return summary


def where_to_look(summary: dict[str, Any]) -> str:
    report = SpeedupReport.model_validate(summary["speedup"])
    run_folder = summary["run_folder"]
    api_url = summary.get("prefect_api_url")
    prefect = (
        f"{api_url} (the Prefect server you configured)"
        if api_url
        else "prefect server start   (then http://127.0.0.1:4200, flow runs genetune-gcc-tuning / genetune-search)"
    )
    lines = ["", "genetune demo finished"]
    if report.kernel_params:
        lines.append(f"  best parameters : {report.parameters_text()}")
    lines += [
        f"  best gcc flags : {' '.join(report.gcc_flags())}",
        f"  re-measured    : {report.summary()}",
        f"  result folder  : {run_folder}",
        "                   results.csv (every candidate), evaluations.jsonl, speedup.md, best_flags.txt",
        f"  MLflow         : mlflow ui --backend-store-uri {summary['mlflow_store']}   (then http://127.0.0.1:5000, experiment genetune-gcc)",
        f"  Prefect        : {prefect}",
    ]
    return "\n".join(lines)

