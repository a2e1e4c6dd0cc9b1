"""User metrics reported from inside an objective, on whatever worker runs it.

``genetune.log_metric("compile_s", 1.3)`` inside the objective attaches the value to that
evaluation: it lands in the result's ``metadata["metrics"]``, the JSONL run log and, averaged per
generation, in MLflow. Shell-command objectives print lines ``GENETUNE_METRIC name=value`` on
stdout instead; :func:`parse_metric_lines` reads them.
"""

from __future__ import annotations

import contextvars
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["collect_metrics", "log_metric", "log_metrics", "parse_metric_lines"]

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("genetune_metrics", default=None)
_LINE = re.compile(r"^GENETUNE_METRIC\s+([^=\s]+)\s*=\s*(\S+)\s*$", re.MULTILINE)


@contextmanager
def collect_metrics() -> Iterator[dict[str, Any]]:
    """Collects the metrics logged while the block runs (used around each evaluation)."""
    metrics: dict[str, Any] = {}
    token = _current.set(metrics)
    try:
        yield metrics
    finally:
        _current.reset(token)


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric values must be numbers, got {value!r}") from None
        return number
    return value


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Attaches ``name = value`` to the current evaluation (``name@step`` when a step is given).
    Outside an evaluation it does nothing."""
    metrics = _current.get()
    if metrics is None:
        return
    key = name if step is None else f"{name}@{step}"
    metrics[key] = _number(value)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, Mapping):
        for key, child in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), child, out)
    else:
        out[prefix] = value


def log_metrics(metrics: Mapping[str, Any] | Any, step: int | None = None) -> None:
    """Logs several metrics at once; nested dicts and pydantic models are flattened with dots."""
    flat: dict[str, Any] = {}
    _flatten("", metrics, flat)
    for name, value in flat.items():
        log_metric(name, value, step)


def parse_metric_lines(text: str) -> dict[str, float]:
    """The ``GENETUNE_METRIC name=value`` lines of a command's output."""
    out: dict[str, float] = {}
    for name, raw in _LINE.findall(text):
        try:
            out[name] = float(raw)
        except ValueError:
            continue
    return out
