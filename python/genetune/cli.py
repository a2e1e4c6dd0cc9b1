"""``genetune run JOB.yaml``: runs the ``genetune-search`` Prefect flow from a job file;
``genetune demo``: the bundled gcc flag tuning job (``genetune.jobs.gcc.demo``).

Prefect 3 has no ``prefect flow run``; this is the one-command equivalent. A job file (YAML or
JSON) holds the flow's parameters: ``objective``, ``search_space``, ``search_config`` and
optionally ``dask_address``, ``resources``, ``chunk_size``, ``task_timeout``, ``cache_folder``,
``resume_from``, ``n_workers``, ``mlflow_run_url``, ``constraints`` (a list of expressions),
``warm_start`` (candidate dicts and/or earlier results). Relative file paths in it are resolved
against the job file's folder. ``--set key=value`` overrides a parameter (value parsed as JSON
when it parses, else kept as a string).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genetune.loading import read_document

__all__ = ["main", "read_job"]

_PATH_PARAMETERS = ("search_space", "search_config", "cache_folder", "resume_from", "warm_start")


def read_job(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The flow parameters of a job file, with overrides applied and relative paths resolved."""
    job_file = Path(path).expanduser().resolve()
    params = read_document(job_file)
    if not isinstance(params, dict):
        raise ValueError(f"{job_file}: a job file holds a mapping of flow parameters, got {type(params).__name__}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    for key in _PATH_PARAMETERS:
        value = params.get(key)
        if isinstance(value, str) and not Path(value).expanduser().is_absolute():
            candidate = job_file.parent / value
            if key in ("cache_folder",) or candidate.exists():
                params[key] = str(candidate)
    missing = [k for k in ("objective", "search_space", "search_config") if k not in params]
    if missing:
        raise ValueError(f"{job_file}: missing flow parameter(s): {', '.join(missing)}")
    return params


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genetune", description="genetune command line")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the genetune-search Prefect flow from a job file")
    run.add_argument("job", help="YAML or JSON file with the flow's parameters")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    commands.add_parser("demo", help="tune gcc flags for the bundled C kernels (see `genetune demo --help`)", add_help=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # its own options
        return _demo(argv[1:])
    args = parser.parse_args(argv)
    try:
        params = read_job(args.job, args.overrides)
    except (OSError, ValueError) as err:
        print(f"genetune: {err}", file=sys.stderr)
        return 2
    print(json.dumps(_run_flow(params), indent=2, default=str))
    return 0


def _run_flow(params: dict[str, Any]) -> dict[str, Any]:
    # Prefect, Dask and MLflow take seconds to import: `genetune --help` and a bad job file do not wait for them.
    from genetune.flows import genetune_search
    from genetune.prefect_api import prefect_api

    with prefect_api():  # one API for this process and its Dask workers
        summary: dict[str, Any] = genetune_search(**params)
    return summary


def _demo(argv: Sequence[str]) -> int:
    from genetune.jobs.gcc.demo import main as demo_main  # imports Prefect: only for `genetune demo`

    return demo_main(argv)


if __name__ == "__main__":
    sys.exit(main())
