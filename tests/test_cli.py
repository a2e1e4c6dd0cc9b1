"""`genetune run JOB`: the Prefect flow from a job file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genetune.cli import main, read_job
from tests_support import isolate_prefect

SPACE = {"x": {"type": "range", "start": 0, "end": 30}}


def write_job(folder: Path, **extra: object) -> Path:
    (folder / "space.json").write_text(json.dumps(SPACE))
    job = {
        "objective": f"{sys.executable} -c \"print(({{x}} - 3) ** 2)\"",
        "search_space": "space.json",
        "search_config": {"generations": 2, "pool_size": 6, "seed": 1},
        "cache_folder": "runs",
        "n_workers": 1,
        **extra,
    }
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    return path


def test_job_paths_resolve_against_the_job_file_and_overrides_apply(tmp_path: Path) -> None:
    params = read_job(write_job(tmp_path), ["chunk_size=2", "search_config={\"generations\": 1}", "objective=mod:fn"])
    assert params["search_space"] == str(tmp_path / "space.json")
    assert params["cache_folder"] == str(tmp_path / "runs")
    assert params["chunk_size"] == 2 and params["search_config"] == {"generations": 1} and params["objective"] == "mod:fn"


def test_job_files_take_constraints_and_a_warm_start_path(tmp_path: Path) -> None:
    (tmp_path / "earlier").mkdir()
    params = read_job(write_job(tmp_path, constraints=["x <= 20"], warm_start="earlier"))
    assert params["constraints"] == ["x <= 20"] and params["warm_start"] == str(tmp_path / "earlier")


def test_bad_jobs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "job.json").write_text(json.dumps({"objective": "m:f"}))
    assert main(["run", str(tmp_path / "job.json")]) == 2
    assert "missing flow parameter(s): search_space, search_config" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nowhere.json")]) == 2
    with pytest.raises(ValueError, match="key=value"):
        read_job(write_job(tmp_path), ["no-equals-sign"])


@pytest.mark.slow
def test_genetune_run_executes_the_flow(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    env = dict(isolate_prefect(dict(os.environ), prefix="genetune-cli-prefect-"))
    done = subprocess.run([sys.executable, "-m", "genetune", "run", str(job)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["evaluations"] == 12
    assert Path(summary["result_csv"]).is_file() and str(tmp_path / "runs") in summary["run_folder"]
