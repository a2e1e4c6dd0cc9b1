"""Forwarding the objective's loguru records, logged inside Prefect task runs, to Prefect's run logs."""

from __future__ import annotations

from typing import Any

from loguru import logger
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

__all__ = ["install_loguru_bridge"]

_installed: list[int] = []


def _forward_to_run_logger(message: Any) -> None:
    try:
        run_logger = get_run_logger()
    except MissingContextError:  # outside a task run: nothing to attach the record to
        return
    record = message.record
    run_logger.log(record["level"].no, record["message"])


def install_loguru_bridge() -> None:
    """Idempotent, once per process; genetune's own tracker records are left out (the flow logs
    those itself)."""
    if _installed:
        return
    _installed.append(
        logger.add(_forward_to_run_logger, level="INFO", format="{message}", filter=lambda record: not record["extra"].get("genetune"))
    )
