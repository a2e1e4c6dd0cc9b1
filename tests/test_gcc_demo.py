"""The README's first command in reduced form: `genetune demo --quick` as a user runs it, in a
subprocess with a fresh PREFECT_HOME (Prefect's ephemeral server, a fresh database), a local Dask
cluster and MLflow in a SQLite store."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import genetune as gt
from genetune.evaluation import evaluate
from genetune.jobs.gcc import GccObjective, flags_from_params, kernel_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_demo_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DASK_", "MLFLOW_"))}
    # A fresh Prefect home; telemetry left at Prefect's default (the temporary server turns it off).
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), DO_NOT_TRACK="1")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    folder = cwd / "genetune-demo"  # the default folder
    done = subprocess.run(
        [sys.executable, "-m", "genetune", "demo", "--quick", "--workers", "2"],
        env=env, cwd=cwd, capture_output=True, timeout=540,
    )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()  # bytes: tqdm's redraws (\r) stay redraws, not lines
    output = stdout + stderr
    assert done.returncode == 0, output[-4000:]
    assert "genetune demo finished" in stdout
    assert f"mlflow ui --backend-store-uri sqlite:///{folder / 'mlflow.db'}" in stdout
    assert "prefect server start" in stdout

    # The console: what starts, a progress bar per generation, the report; nothing else.
    assert output.count("\n") <= 40, output
    lines = output.splitlines()  # a bar's redraws too
    for needle in ("Traceback", "ERROR", "Error logging to API", "database is locked", "CommClosedError", "INFO"):
        assert needle not in output, f"{needle!r} in the console:\n{output}"
    assert any(line.startswith("Prefect: starting a temporary server") for line in lines), output
    assert any(line.startswith("Dask: starting a local cluster of 2 worker processes") for line in lines), output
    assert any(line.startswith("MLflow: experiment 'genetune-gcc'") for line in lines), output
    for generation in ("gen 1/2", "gen 2/2"):
        assert any(line.startswith(generation) and "6/6" in line and "best so far" in line and "invalid" in line and ("eval/s" in line or "s/eval" in line) for line in lines), output
    # Everything the demo writes is under its folder, MLflow's artifacts included.
    assert sorted(p.name for p in cwd.iterdir()) == ["genetune-demo"]

    (run_folder,) = (folder / "runs").iterdir()
    assert f"result folder  : {run_folder}" in stdout
    for name in ("results.csv", "evaluations.jsonl", "checkpoint.json", "speedup.json", "speedup.md", "best_flags.txt"):
        assert (run_folder / name).is_file(), name
    df = gt.SearchResult.from_csv(run_folder / "results.csv").get_results()
    # The -O2 baseline row (one placement: this host) and 2 generations of 6.
    baseline = df[df["status"] == "baseline"]
    assert list(baseline["id"]) == [f"baseline@{socket.gethostname()}"] and baseline["score_1"].iloc[0] > 0
    assert list(baseline["norm_score_1"]) == [1.0]
    rows = df[df["status"].isin(["valid", "invalid"])]
    assert len(rows) == 12
    # The job re-measures its best flag sets and -O2 at the end; the winner is the best re-measured one.
    again = df[df["status"] == "remeasure"]
    remeasured = {m["remeasure_of"] for m in again["metadata"]}
    assert "baseline" in remeasured and len(remeasured) >= 2 and len(again) == 5 * len(remeasured)
    # Every failure says why; a flag set that changes a checksum is a failure, never a winner.
    for params, status, reason in zip(rows["params"], rows["status"], rows["reason"], strict=True):
        if status == "invalid":
            assert reason.startswith(("wrong result:", "compile failed:", "crashed:", "timeout:")), reason
        if any(f in ("-ffast-math", "-Ofast") for f in flags_from_params(params)) and reason.startswith("wrong result"):
            assert status == "invalid"
    best = gt.SearchResult.from_csv(run_folder / "results.csv").get_best_result()
    assert isinstance(best, dict) and best["status"] == "valid" and best["remeasured_n"] == 5

    report = json.loads((run_folder / "speedup.json").read_text())
    assert report["flags"] == flags_from_params(best["params"])
    # The joint space by default: the winner's kernel parameters and gcc flags, named in one line.
    assert report["kernel_params"] == kernel_params(best["params"]) and report["kernel_params"]["MM_ORDER"] in ("ikj", "ijk")
    assert f"best parameters : {' '.join(f'{k}={v}' for k, v in report['kernel_params'].items())}" in stdout
    (headline,) = [line for line in lines if line.startswith("  re-measured    : best MM_ORDER=")]
    assert " with -O" in headline and "than the defaults at -O3 (95% CI " in headline and "than the defaults at -O2 (95% CI " in headline
    # The warm start (the kernels' defaults at -O3) was evaluated first.
    first = list(rows.sort_values("id")["params"])[0]
    assert {k: v for k, v in first.items() if k in ("opt_level", "march")} == {"opt_level": "-O3", "march": "-march=x86-64"} and first["MM_BLOCK_K"] == 64
    assert (run_folder / "best_flags.txt").read_text().split() == report["flags"]
    for comparison in (report["vs_O2"], report["vs_O3"]):
        assert comparison["ci_low"] <= comparison["speedup"] <= comparison["ci_high"]
        assert 0 <= comparison["p_value"] <= 1
        assert (not comparison["ci_low"] <= 1.0 <= comparison["ci_high"]) == (comparison["p_value"] < 0.05)

    # MLflow: the search's run in the SQLite store, with the re-measured speedups.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("genetune-gcc")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["speedup_vs_O2"] == pytest.approx(report["vs_O2"]["speedup"])
    assert run.data.metrics["summary.remeasured_best_mean"] == pytest.approx(best["remeasured_mean"])
    assert run.data.tags["genetune.best_flags"] == " ".join(report["flags"])
    assert run.data.tags["genetune.best_kernel_params"].startswith("MM_ORDER=")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"speedup.md", "speedup.json", "results.csv"}
    assert run.info.artifact_uri.startswith((folder / "mlartifacts").as_uri()), run.info.artifact_uri
    # The run's description says what happened: the re-measured speedup, then the search's summary.
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("# gcc tuning: the winner re-measured") and "# genetune search" in note and "## Best configurations" in note

    # Prefect: the ephemeral server's database (in PREFECT_HOME) holds both flow runs and the artifacts.
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        states = dict(db.execute("SELECT f.name, r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id").fetchall())
        keys = {k for (k,) in db.execute("SELECT key FROM artifact WHERE key IS NOT NULL")}
    assert states == {"genetune-gcc-tuning": "COMPLETED", "genetune-search": "COMPLETED"}
    assert {"genetune-gcc-speedup", "genetune-summary", "genetune-progress", "genetune-mlflow-run"} <= keys


def test_a_wrong_result_flag_set_is_invalid() -> None:
    """-ffast-math reassociates the stencil's float reduction: faster, and wrong."""
    score = evaluate(GccObjective(size="small", repeats=1, warmup=0), 7, {"opt_level": "-O3", "fast_math": "-ffast-math"}, 1, "test")
    assert score.failed and score.reason.startswith("wrong result: stencil checksum"), score.reason
