"""What importing genetune costs: Prefect, Dask and MLflow load only where they are used."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("modules", "absent"),
    [
        ("genetune", ("prefect", "distributed", "mlflow", "matplotlib")),
        # The CLI, the gcc job's space and the file loaders read YAML without Prefect.
        ("genetune.cli, genetune.loading, genetune.jobs.gcc", ("prefect", "distributed", "mlflow")),
    ],
)
def test_heavy_dependencies_stay_off_the_import_path(modules: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {modules}; print([m for m in {absent!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
