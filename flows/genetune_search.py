"""Deployable entry point of the ``genetune-search`` Prefect flow (``genetune.flows.genetune_search``).

The flow runs a genetune search whose evaluations are Prefect task runs on Dask (one per
candidate as slots free; chunks per generation with ``"schedule": "generational"``). It needs a
Prefect API: start one with ``prefect server start --host 127.0.0.1`` and
``export PREFECT_API_URL=http://127.0.0.1:4200/api`` (every process below, Dask workers
included, must see it; without it each Dask worker process starts its own ephemeral server).

Parameters (all JSON values): ``objective`` (``"pkg.module:function"`` or a shell command
template such as ``"./bench --unroll {unroll}"``), ``search_space`` and ``search_config`` (dicts
or paths to JSON/YAML files), ``dask_address`` (a scheduler; none: a local cluster for the run),
``resources`` (e.g. ``{"GPU": 1}``), ``chunk_size``, ``task_timeout``, ``cache_folder``,
``resume_from`` (a run folder), ``n_workers`` (local cluster size), ``mlflow_run_url``.

Ways to run it:

* Serve it (a long-running process that runs the triggered/scheduled runs itself; no work pool),
  from the repository root, optionally on a schedule (``--cron``, or ``--interval SECONDS``
  [``--anchor-date ISO``]; stopping the process pauses the deployment unless
  ``--no-pause-on-shutdown``)::

      prefect flow serve flows/genetune_search.py:genetune_search --name nightly --cron "0 2 * * *" --timezone UTC
      # or: python flows/genetune_search.py   (serves the deployment "genetune-search/genetune")

  then trigger a run (values are JSON)::

      prefect deployment run 'genetune-search/nightly' \\
          -p objective='"mybench:score"' -p search_space='"space.yaml"' \\
          -p search_config='{"generations": 20, "pool_size": 32, "seed": 1}' \\
          -p dask_address='"tcp://10.0.0.5:8786"' -p resources='{"GPU": 1}' --watch

* With a work pool, from ``flows/prefect.yaml`` (run ``prefect deploy`` from the repository root:
  the entrypoints are relative to it, and the worker's flow runs start in the directory the
  deployment was made from, wherever the worker runs)::

      prefect work-pool create genetune-pool --type process
      prefect --no-prompt deploy --all --prefect-file flows/prefect.yaml
      prefect worker start --pool genetune-pool      # its environment reaches the flow run
      prefect deployment run 'genetune-search/on-demand' -p objective='"mybench:score"' \\
          -p search_space='"space.yaml"' -p search_config='{"generations": 5, "pool_size": 16}' --watch

  ``--watch`` exits 0 when the run ends Completed, 1 otherwise.

* Directly, as a script or from Python: ``genetune_search(objective=..., search_space=..., search_config=...)``.

``tests/test_deployments.py`` runs the serve, deploy, worker and ``deployment run`` commands
against a local server.
"""

from __future__ import annotations

import os

from genetune.flows import genetune_search

__all__ = ["genetune_search"]

if __name__ == "__main__":
    cron = os.environ.get("GENETUNE_CRON")  # e.g. "0 2 * * *"; unset: runs only when triggered
    genetune_search.serve(
        name=os.environ.get("GENETUNE_DEPLOYMENT", "genetune"),
        cron=cron,
        tags=["genetune"],
        description="genetune search: Prefect task runs on Dask",
    )
