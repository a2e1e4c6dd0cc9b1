"""Deployable entry point of the ``genetune-gcc-tuning`` flow (``genetune.jobs.gcc.flow``): the
bundled gcc flag tuning job (search on Dask, then the winner re-measured against -O2 and -O3).

Serve it on a schedule, from the repository root, with ``PREFECT_API_URL`` set (see
``genetune_search.py``)::

    prefect flow serve flows/gcc_tuning.py:gcc_tuning --name weekly --cron "0 3 * * 0" --timezone UTC
    prefect deployment run 'genetune-gcc-tuning/weekly' -p generations=10 -p pool_size=24 \\
        -p mlflow_tracking_uri='"http://127.0.0.1:5000"' --watch

or deploy it to the process work pool from ``prefect.yaml`` (deployment ``gcc-weekly``). Without a
server, ``genetune demo`` runs it once on embedded defaults.
"""

from __future__ import annotations

from genetune.jobs.gcc.flow import gcc_tuning

__all__ = ["gcc_tuning"]

if __name__ == "__main__":
    gcc_tuning.serve(name="gcc", tags=["genetune", "gcc"], description="genetune: tune gcc flags for the bundled C kernels")
