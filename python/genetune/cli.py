"""``genetune run JOB.yaml``: runs the ``genetune-search`` Prefect flow from a job file;
``genetune demo``: the bundled gcc job, the kernels' parameters and gcc flags tuned together
(``genetune.jobs.gcc.demo``; ``--space flags``: the flags alone).

Prefect 3 has no ``prefect flow run``; this is the one-command equivalent. A job file (YAML or
JSON) holds the flow's parameters: ``objective``, ``search_space``, ``search_config`` and
optionally ``dask_address``, ``resources``, ``chunk_size``, ``task_timeout``, ``cache_folder``,
``resume_from``, ``n_workers``, ``mlflow_run_url``, ``constraints`` (a list of expressions),
``warm_start`` (candidate dicts and/or earlier results). Relative file paths in it are resolved
against the job file's folder. ``--set key=value`` overrides a parameter (value parsed as JSON
when it parses, else kept as a string).

Both print what starts, a progress bar per generation and the result; ``--verbose`` adds
Prefect's, Dask's and MLflow's INFO logs (:mod:`genetune.console`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genetune.console import configure_console
from genetune.job_validation import check_demo_options, check_job
from genetune.jobs.gcc.space import SPACES
from genetune.loading import read_document
from genetune.stopping import stop_on_signals

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
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "demo":
        problems = check_demo_options(args.generations, args.pool_size, args.workers)
        if problems:
            return _refuse("genetune demo", problems)
        configure_console(args.verbose)  # before Prefect, Dask and MLflow are imported
        return _demo(args)
    try:
        params = read_job(args.job, args.overrides)
    except (OSError, ValueError) as err:
        print(f"genetune: {err}", file=sys.stderr)
        return 2
    problems = check_job(params)
    if problems:  # before Prefect, Dask and MLflow start
        return _refuse(str(args.job), problems)
    configure_console(args.verbose)
    try:
        with stop_on_signals():  # SIGTERM: the search stops cleanly, then the server and the cluster
            summary = _run_flow(params)
    except KeyboardInterrupt as err:
        print(f"genetune: {err or 'stopped'}; the run folder keeps what was measured (resume_from continues it)", file=sys.stderr)
        return 128 + getattr(err, "signum", 2)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _refuse(what: str, problems: Sequence[str]) -> int:
    for problem in problems:
        print(f"genetune: {what}: {problem}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genetune", description="genetune command line")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the genetune-search Prefect flow from a job file")
    run.add_argument("job", help="YAML or JSON file with the flow's parameters")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    demo = commands.add_parser(
        "demo",
        help="tune the bundled C kernels' parameters and gcc flags (Prefect flow on a local Dask cluster)",
        description="tune the bundled C kernels' parameters and gcc flags together (Prefect flow on a local Dask cluster)",
    )
    demo.add_argument(
        "--space",
        default="joint",
        type=_space_argument,
        help="joint: the kernels' parameters (tiles, unrolling, loop order, ...) and gcc flags together (default); "
        "flags: gcc flags alone; or a YAML space file of your own",
    )
    demo.add_argument("--folder", default="genetune-demo", help="where results, the MLflow store and run folders go (default ./genetune-demo)")
    demo.add_argument("--quick", action="store_true", help="a smoke run: small kernels, 2 generations of 6")
    demo.add_argument("--generations", type=int, default=None)
    demo.add_argument("--pool-size", type=int, default=None)
    demo.add_argument("--workers", type=int, default=None, help="local Dask worker processes (default: one per core)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--dask-address", default=None, help="use this Dask scheduler instead of a local cluster")
    for command in (run, demo):
        command.add_argument("-v", "--verbose", action="store_true", help="also print Prefect's, Dask's and MLflow's INFO logs")
    return parser


def _space_argument(value: str) -> str:
    if value in SPACES or Path(value).expanduser().is_file():
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is neither one of {', '.join(SPACES)} nor an existing space file")


def _run_flow(params: dict[str, Any]) -> dict[str, Any]:
    # Prefect, Dask and MLflow take seconds to import: `genetune --help` and a bad job file do not wait for them.
    from genetune.flows import genetune_search
    from genetune.prefect_api import prefect_api

    with prefect_api():  # one API for this process and its Dask workers
        summary: dict[str, Any] = genetune_search(**{"progress_bar": True, **params})
    return summary


def _demo(args: argparse.Namespace) -> int:
    from genetune.jobs.gcc.demo import run_demo, where_to_look  # imports Prefect: only for `genetune demo`

    summary = run_demo(
        args.folder,
        quick=args.quick,
        generations=args.generations,
        pool_size=args.pool_size,
        n_workers=args.workers,
        seed=args.seed,
        dask_address=args.dask_address,
        space=args.space,
        progress_bar=True,
    )
    print(where_to_look(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
