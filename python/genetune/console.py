"""What genetune's commands (``genetune run``, ``genetune demo``) print: genetune's own lines
(what is starting, a progress bar per generation, the report) and every warning or error;
Prefect's, Dask's and MLflow's INFO logs only with ``--verbose``.

The libraries are quieted through their own logging settings, set as environment variables
before they are imported (they configure logging at import) so that the processes they start
inherit them too (Dask workers, Prefect's temporary server):

* ``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=WARNING``: Prefect's console handler (the run logs
  still reach the API at INFO, so the Prefect UI shows them);
* ``DASK_LOGGING__DISTRIBUTED=warning``: Dask's ``logging`` configuration of the ``distributed``
  loggers;
* ``MLFLOW_LOGGING_LEVEL=WARNING``: MLflow's loggers.

A value the user already exported wins. genetune's own lines go to the ``genetune`` logger
(:func:`announce`), which the commands print to stderr; elsewhere (a deployment) they are
ordinary INFO records nobody prints unless asked.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["QUIET_ENVIRONMENT", "announce", "configure_console"]

#: The libraries' own settings for a quiet console (see the module documentation).
QUIET_ENVIRONMENT = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "DASK_LOGGING__DISTRIBUTED": "warning",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}

_LOGGER = "genetune"
_handler: list[logging.Handler] = []


def configure_console(verbose: bool = False) -> None:
    """Sets the console up for a command: call it before Prefect, Dask or MLflow are imported.
    ``verbose`` leaves the libraries' INFO logs on."""
    if not verbose:
        for name, value in QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        if "distributed" in sys.modules:  # imported already: its logging is configured, set the level directly
            logging.getLogger("distributed").setLevel(logging.WARNING)
    logger = logging.getLogger(_LOGGER)
    if not _handler:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        _handler.append(handler)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, by this handler (not again by Prefect's console handler)


def announce(message: str) -> None:
    """One line of what is happening (``genetune`` logger, INFO)."""
    logging.getLogger(_LOGGER).info(message)
