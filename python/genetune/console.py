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
_user_set: set[str] = set()  # the quiet settings the user had exported (never overridden)
_ours: set[str] = set()  # the ones set here


def configure_console(verbose: bool = False) -> None:
    """Sets the console up for a command: call it before Prefect, Dask or MLflow are imported.
    ``verbose`` leaves the libraries' INFO logs on."""
    if not verbose:
        for name, value in QUIET_ENVIRONMENT.items():
            if name not in os.environ:
                os.environ[name] = value
                _ours.add(name)
            elif name not in _ours:
                _user_set.add(name)
        _quiet_imported_libraries()
    logger = logging.getLogger(_LOGGER)
    if not _handler:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        _handler.append(handler)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, by this handler (not again by Prefect's console handler)


def _quiet_imported_libraries() -> None:
    """For libraries imported already (their logging is configured): the same levels, set directly."""
    if "distributed" in sys.modules and "DASK_LOGGING__DISTRIBUTED" not in _user_set:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if "mlflow" in sys.modules and "MLFLOW_LOGGING_LEVEL" not in _user_set:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    if "prefect" in sys.modules and "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL" not in _user_set:
        from prefect.logging.handlers import PrefectConsoleHandler

        loggers = [logging.getLogger(), *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
        for logger in loggers:
            for handler in logger.handlers:
                if isinstance(handler, PrefectConsoleHandler):
                    handler.setLevel(logging.WARNING)


def announce(message: str) -> None:
    """One line of what is happening (``genetune`` logger, INFO)."""
    logging.getLogger(_LOGGER).info(message)
