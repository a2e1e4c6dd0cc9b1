"""Bad job files and CLI options: one line per problem naming the key, exit status 2, no
traceback, before Prefect, Dask or MLflow start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from genetune.cli import main
from genetune.job_validation import JobParameters

SPACE = {"x": {"type": "range", "start": 0, "end": 30}}
GOOD = {"objective": "echo {x}", "search_space": "space.json", "search_config": {"generations": 2, "pool_size": 6}}


def _job(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    path = tmp_path / name
    path.write_text(text)
    return path


CASES = {
    "bad indent": ("objective: 'echo {x}'\nsearch_space: space.json\n  search_config: {generations: 2}\n", r"job.yaml: line 3, column 16: invalid YAML"),
    "unknown key": (json.dumps({**GOOD, "generatons": 3}), r"generatons: unknown key"),
    "wrong type": (json.dumps({**GOOD, "search_config": {"generations": "ten", "pool_size": 6}}), r"search_config\.generations: input should be a valid integer.*'ten'"),
    "misspelled type": (json.dumps({**GOOD, "search_space": {"x": {"type": "rnage", "start": 0, "end": 3}}}), r"search_space\['x'\]: unknown parameter type 'rnage'"),
    "bad import path": (json.dumps({**GOOD, "objective": "no_such_pkg.bench:run"}), r"objective: no module named 'no_such_pkg' \(from 'no_such_pkg\.bench:run'"),
    "missing space file": (json.dumps({**GOOD, "search_space": "nowhere.yaml"}), r"search_space: no such file '.*nowhere\.yaml'"),
    "unsafe template": (json.dumps({**GOOD, "objective": "sh -c 'bench {x}'"}), r"objective: .*placeholder \{x\} is inside a script"),
    "negative workers": (json.dumps({**GOOD, "n_workers": 0}), r"n_workers: input should be greater than 0"),
    "small pool": (json.dumps({**GOOD, "search_config": {"generations": 2, "pool_size": 3}}), r"search_config\.pool_size: input should be greater than 5"),
    "bad constraint": (json.dumps({**GOOD, "constraints": ["y > 2"]}), r"constraints: .*y"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_job_is_one_line_per_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    text, expected = CASES[case]
    job = _job(tmp_path, text, "job.yaml")
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genetune: "), err
    import re

    assert re.search(expected, lines[0]), lines[0]


def test_every_problem_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(tmp_path, json.dumps({**GOOD, "objective": "nope.mod:f", "search_config": {"generations": "ten", "pool_size": 2}}), "job.json")
    assert main(["run", str(job)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines


def test_the_demo_options_are_checked_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--pool-size", "3", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["genetune: genetune demo: --pool-size: input should be greater than 5, got 3", "genetune: genetune demo: --workers: should be at least 1, got 0"]


def test_a_bad_job_starts_nothing(tmp_path: Path) -> None:
    """In a fresh process: refused without importing Prefect, Dask or MLflow."""
    job = _job(tmp_path, json.dumps({**GOOD, "generatons": 3}), "job.json")
    code = (
        "import sys; from genetune.cli import main; rc = main(['run', sys.argv[1]]); "
        "print(sorted(m for m in ('prefect', 'distributed', 'mlflow') if m in sys.modules)); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(job)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout.strip() == "[]", done.stderr


@pytest.mark.slow
def test_the_job_model_knows_the_flows_parameters() -> None:
    import inspect

    from genetune.flows import genetune_search

    assert list(inspect.signature(genetune_search.fn).parameters) == list(JobParameters.model_fields)
