"""`genetune run JOB`: the Prefect flow from a job file."""

from __future__ import annotations

import ast
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


def fresh_prefect_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no Prefect, Dask or MLflow setting of the test session, a fresh Prefect home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DASK_", "MLFLOW_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), DO_NOT_TRACK="1")
    return env


@pytest.mark.slow
def test_genetune_run_executes_the_flow(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    done = subprocess.run([sys.executable, "-m", "genetune", "run", str(job)], env=fresh_prefect_env(tmp_path), cwd=tmp_path,
                          capture_output=True, timeout=300)  # fmt: skip
    out, err = done.stdout.decode(), done.stderr.decode()  # bytes: tqdm's redraws (\r) stay redraws, not lines
    assert done.returncode == 0, err[-3000:]
    summary = json.loads(out[out.index("{") :])
    assert summary["evaluations"] == 12
    assert Path(summary["result_csv"]).is_file() and str(tmp_path / "runs") in summary["run_folder"]
    # A quiet console: what starts and a progress bar per generation on stderr, the summary on stdout.
    assert err.count("\n") <= 8, err
    for needle in ("Traceback", "ERROR", "INFO", "Error logging to API", "database is locked"):
        assert needle not in err, f"{needle!r} in the console:\n{err}"
    lines = err.splitlines()
    assert any(line.startswith("Dask: starting a local cluster of 1 worker process") for line in lines), err
    for generation in ("gen 1/2", "gen 2/2"):
        assert any(line.startswith(generation) and "6/6" in line and "best so far" in line for line in lines), err


@pytest.mark.slow
def test_genetune_run_verbose_brings_back_the_libraries_logs(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    done = subprocess.run([sys.executable, "-m", "genetune", "run", str(job), "--verbose"], env=fresh_prefect_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr
    assert "| INFO    | prefect - Starting temporary server" in err, err
    assert "Beginning flow run" in err and "Finished in state Completed()" in err, err
    assert "prefect.task_runner.dask - Connecting to an existing Dask cluster" in err, err
    assert "Traceback" not in err and "Error logging to API" not in err, err


def test_console_quiets_the_libraries_through_their_own_settings_and_keeps_yours() -> None:
    code = (
        "import os; os.environ['MLFLOW_LOGGING_LEVEL'] = 'DEBUG'; "
        "from genetune.console import QUIET_ENVIRONMENT, configure_console; configure_console(verbose={v}); "
        "print({{k: os.environ.get(k) for k in QUIET_ENVIRONMENT}})"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DASK_", "MLFLOW_"))}
    quiet = subprocess.run([sys.executable, "-c", code.format(v=False)], env=env, capture_output=True, text=True, check=True)
    assert quiet.stdout.strip() == str(
        {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING", "DASK_LOGGING__DISTRIBUTED": "warning", "MLFLOW_LOGGING_LEVEL": "DEBUG"}
    )
    verbose = subprocess.run([sys.executable, "-c", code.format(v=True)], env=env, capture_output=True, text=True, check=True)
    assert verbose.stdout.strip() == str(
        {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": None, "DASK_LOGGING__DISTRIBUTED": None, "MLFLOW_LOGGING_LEVEL": "DEBUG"}
    )


# ----- `genetune demo` options and the CLI's imports ------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "genetune"


def test_demo_space_option_rejects_an_unknown_space_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--space", "jiont"])
    assert info.value.code == 2
    assert "--space: 'jiont' is neither one of joint, flags nor an existing space file" in capsys.readouterr().err


def _function_imports(path: Path) -> list[str]:
    """The genetune modules a file imports inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("genetune"):
                    found.append(f"{path.name}: {inner.module}")
                elif isinstance(inner, ast.Import):
                    found += [f"{path.name}: {a.name}" for a in inner.names if a.name.startswith("genetune")]
    return found


def test_imports_inside_functions_are_few_and_the_demo_does_not_import_the_cli() -> None:
    """Each import of a genetune module inside a function keeps a heavy dependency (Prefect,
    Dask, YAML) off an import path; the demo module does not import the CLI that imports it."""
    files = sorted(PACKAGE.rglob("*.py"))
    inside_cli = _function_imports(PACKAGE / "cli.py")
    outside = [hit for f in files if f.name != "cli.py" for hit in _function_imports(f)]
    assert len(inside_cli) <= 5, inside_cli
    assert len(outside) <= 5, outside
    demo = ast.parse((PACKAGE / "jobs" / "gcc" / "demo.py").read_text())
    imported = {n.module for n in ast.walk(demo) if isinstance(n, ast.ImportFrom)} | {a.name for n in ast.walk(demo) if isinstance(n, ast.Import) for a in n.names}
    assert "genetune.cli" not in imported and "genetune" not in imported
