"""Shared helpers for the engine benchmarks: environment capture and number formatting."""

from __future__ import annotations

import datetime as _dt
import importlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Single-threaded BLAS/OpenMP everywhere (set before numpy is imported in the worker processes).
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def set_thread_env() -> None:
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)


def _version(module: str) -> str | None:
    """The installed distribution's version (``deap.__version__`` says only "1.4"), None if absent."""
    from importlib import metadata

    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a peer that does not import is simply absent
        return None
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(module), "__version__", "?"))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.strip().lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
        commit = out.stdout.strip() or "?"
        status = ["git", "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True, check=False)
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "?"


def extension_id() -> str:
    """Which build of the compiled core was measured: file name, sha256 prefix and mtime."""
    import hashlib

    try:
        import genetune._core as core

        path = Path(core.__file__)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        mtime = _dt.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
        return f"{path.name} sha256:{digest} built {mtime}"
    except Exception as err:  # noqa: BLE001
        return f"? ({err})"


PACKAGES = ("genetune", "numpy", "scipy", "pymoo", "moocore", "pygmo", "deap", "optuna")


def environment(modules: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    """Versions, machine, commit and load: recorded in every result file."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "genetune_extension": extension_id(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "nproc": os.cpu_count(),
        "commit": git_commit(),
        "loadavg": [round(x, 2) for x in load],
        "versions": {m: _version(m) for m in modules},
    }


def fmt(x: float | None, digits: int = 3) -> str:
    """3 significant digits, thousands separators for large values."""
    if x is None:
        return "-"
    if x != x:  # NaN
        return "nan"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 10 ** digits:
        return f"{x:,.0f}"
    if ax < 1e-3:
        return f"{x:.{digits}g}"
    s = f"{x:.{digits}g}"
    if "e" in s:
        s = f"{x:,.0f}"
    return s


def fmt_ratio(r: float | None) -> str:
    if r is None or r != r:
        return "-"
    if r >= 100:
        return f"{r:,.0f}×"
    if r >= 10:
        return f"{r:.0f}×"
    return f"{r:.2g}×" if r < 1 else f"{r:.1f}×"
