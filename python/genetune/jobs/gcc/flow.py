"""The gcc job as a Prefect flow: tune the kernels' parameters and gcc flags together (or the flags
alone) with the ``genetune-search`` flow on Dask, then re-measure the winner against the kernels'
defaults at -O3 and -O2 and report the speedups (console, run folder, MLflow, Prefect artifact)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from genetune.flows import genetune_search
from genetune.jobs.gcc.flags import flags_from_params
from genetune.jobs.gcc.objective import GccObjective
from genetune.jobs.gcc.space import (
    REMEASURE_REPEATS,
    REMEASURE_TOP,
    WARM_START,
    load_job_space,
    search_config,
    warm_start_candidates,
)
from genetune.jobs.gcc.stats import SpeedupReport, measure_speedups
from genetune.search_spaces import compile_space

__all__ = ["WARM_START", "gcc_tuning", "report_speedups", "warm_start_candidates"]

#: The objective by import path (Dask workers and deployments build it from ``objective_kwargs``).
OBJECTIVE = "genetune.jobs.gcc:GccObjective"


@task(name="genetune-gcc-remeasure", cache_policy=NO_CACHE, persist_result=False)
def remeasure(objective_kwargs: dict[str, Any], params: dict[str, Any], rounds: int, seed: int) -> SpeedupReport:
    """The winner, -O2 and -O3 again, in interleaved rounds (in the flow's process: the Dask
    cluster has finished, so nothing else competes for the cores)."""
    return measure_speedups(GccObjective(**objective_kwargs), params, rounds=rounds, seed=seed)


def report_speedups(report: SpeedupReport, run_folder: Path, mlflow_tracking_uri: str | None, mlflow_run_id: str | None) -> dict[str, str]:
    """Writes the report to the run folder (``speedup.json``, ``speedup.md``, ``best_flags.txt``)
    and, when MLflow is on, to the search's MLflow run (metrics, tag, artifact). Returns the paths."""
    markdown = f"# gcc tuning: the winner re-measured\n\n{report.summary()}\n\n{report.to_markdown()}\n"
    paths = {
        "speedup_json": run_folder / "speedup.json",
        "speedup_md": run_folder / "speedup.md",
        "best_flags": run_folder / "best_flags.txt",
    }
    paths["speedup_json"].write_text(report.model_dump_json(indent=2))
    paths["speedup_md"].write_text(markdown)
    paths["best_flags"].write_text(" ".join(report.flags) + "\n")
    if mlflow_tracking_uri and mlflow_run_id:
        client = MlflowClient(tracking_uri=mlflow_tracking_uri)
        for name, comparison in (("O2", report.vs_O2), ("O3", report.vs_O3)):
            client.log_metric(mlflow_run_id, f"speedup_vs_{name}", comparison.speedup)
            client.log_metric(mlflow_run_id, f"speedup_vs_{name}_ci_low", comparison.ci_low)
            client.log_metric(mlflow_run_id, f"speedup_vs_{name}_ci_high", comparison.ci_high)
            client.log_metric(mlflow_run_id, f"speedup_vs_{name}_p_value", comparison.p_value)
        client.set_tag(mlflow_run_id, "genetune.best_flags", " ".join(report.flags))
        if report.kernel_params:
            client.set_tag(mlflow_run_id, "genetune.best_kernel_params", report.parameters_text())
        note = client.get_run(mlflow_run_id).data.tags.get("mlflow.note.content", "")
        client.set_tag(mlflow_run_id, "mlflow.note.content", f"{markdown}\n{note}"[:8000])  # the re-measured speedup first, then the search
        client.log_text(mlflow_run_id, markdown, "speedup.md")
        client.log_dict(mlflow_run_id, report.model_dump(mode="json"), "speedup.json")
    return {k: str(v) for k, v in paths.items()}


@flow(name="genetune-gcc-tuning", log_prints=True)
def gcc_tuning(
    generations: int = 6,
    pool_size: int = 16,
    seed: int = 1,
    kernels: Sequence[str] | None = None,
    size: str = "default",
    repeats: int = 5,
    warmup: int = 1,
    rounds: int = 10,
    remeasure_top: int = REMEASURE_TOP,
    remeasure_repeats: int = REMEASURE_REPEATS,
    n_workers: int | None = None,
    dask_address: str | None = None,
    cache_folder: str | None = None,
    mlflow_tracking_uri: str | None = None,
    mlflow_experiment: str = "genetune-gcc",
    space: str = "joint",
    progress_bar: bool = False,
    warm_start: bool = True,
) -> dict[str, Any]:
    """Tunes the bundled kernels (``genetune.jobs.gcc``): their own parameters and gcc flags
    together (``space="joint"``), gcc flags alone (``"flags"``), or a space file of your own
    (parameters and an optional ``constraints`` list); normalized against -O2,
    builds on every worker slot and measures one candidate at a time per host (the objective is
    two-phase), re-measures the ``remeasure_top`` best flag sets ``remeasure_repeats`` times to
    pick the winner, then re-measures the winner against -O3 and -O2 (the kernels at their
    defaults: what the user had) over ``rounds`` interleaved rounds.

    The search runs as the ``genetune-search`` flow (one Prefect task per chunk of candidates on
    Dask: ``dask_address``, or a local cluster of ``n_workers``). ``size="small"`` and low
    ``repeats``/``rounds`` give a quick smoke run. ``warm_start``: evaluate ``-O3`` and
    ``-O3 -march=native`` with the kernels' defaults first (:data:`WARM_START`). Returns the search summary plus ``speedup``
    (the report) and ``report_files``. ``progress_bar``: the search's progress bars on stderr.
    """
    logger = get_run_logger()
    objective_kwargs: dict[str, Any] = {"kernels": list(kernels) if kernels else None, "size": size, "repeats": repeats, "warmup": warmup}
    GccObjective(**objective_kwargs)  # bad arguments fail here, before any cluster starts
    job_space = load_job_space(space)
    summary = genetune_search(
        objective=OBJECTIVE,
        objective_kwargs=objective_kwargs,
        search_space=compile_space(job_space.space),
        search_config=search_config(job_space.space, generations, pool_size, seed, remeasure_top, remeasure_repeats),
        constraints=list(job_space.constraints) or None,
        dask_address=dask_address,
        n_workers=n_workers,
        cache_folder=cache_folder,
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment,
        progress_bar=progress_bar,
        warm_start=job_space.warm_start() if warm_start else None,
    )
    best = summary.get("best")
    if not isinstance(best, dict):
        raise RuntimeError(f"no valid candidate was found (every candidate failed); see {summary.get('result_csv')}")
    params = dict(best["params"])
    if best.get("remeasured_mean") is not None:
        low, high = best["remeasured_ci95"]
        logger.info(
            "Best found: %s (re-measured %d times: %.4f of -O2, 95%% CI %.4f-%.4f; %.4f in the search)",
            " ".join(flags_from_params(params)), best["remeasured_n"], best["remeasured_mean"], low, high, best.get("norm_score_1"),
        )
    else:
        logger.info("Best found: %s (normalized time %.4f of -O2)", " ".join(flags_from_params(params)), best.get("norm_score_1"))
    report = remeasure(objective_kwargs, params, rounds, seed)
    files = report_speedups(report, Path(summary["run_folder"]), summary.get("mlflow_tracking_uri"), summary.get("mlflow_run_id"))
    markdown = Path(files["speedup_md"]).read_text()
    create_markdown_artifact(markdown=markdown, key="genetune-gcc-speedup", description="The winner re-measured against the defaults at -O3 and -O2")
    print(report.summary())
    return {**summary, "speedup": json.loads(report.model_dump_json()), "report_files": files}
