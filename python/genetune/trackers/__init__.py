"""Trackers record a search's lifecycle events: loguru logs, a JSON Lines run log, MLflow, or
your own (subclass `BaseTracker`, or any object with some of its methods)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from genetune.trackers.base import EVENTS, BaseTracker
from genetune.trackers.bus import TrackerBus
from genetune.trackers.config import (
    DisabledTrackerConfig,
    LoguruTrackerConfig,
    MLflowTrackerConfig,
    TrackerConfig,
    TrackerTypes,
)
from genetune.trackers.jsonl import JsonlTracker
from genetune.trackers.loguru_tracker import LoguruTracker

__all__ = [
    "EVENTS",
    "BaseTracker",
    "DisabledTracker",
    "DisabledTrackerConfig",
    "JsonlTracker",
    "LoguruTracker",
    "LoguruTrackerConfig",
    "MLflowTracker",
    "MLflowTrackerConfig",
    "PrefectTracker",
    "TrackerBus",
    "TrackerConfig",
    "TrackerTypes",
    "build_trackers",
]


class DisabledTracker(BaseTracker):
    """Records nothing."""


def _from_config(config: TrackerConfig | TrackerTypes | str) -> BaseTracker:
    if isinstance(config, str):
        config = TrackerConfig(type=TrackerTypes(config.lower()))
    extra = dict(config.model_extra or {})
    kind = config.type
    if kind == TrackerTypes.LOGURU:
        options: dict[str, Any] = {"enqueue": config.enqueue, **extra}
        sink = getattr(config, "sink", None)
        level = getattr(config, "level", "INFO")
        fmt = getattr(config, "format", None)
        if fmt:
            options["format"] = fmt
        return LoguruTracker(sink=sink, level=level, **options)
    if kind == TrackerTypes.MLFLOW:
        mlflow_tracker: Callable[..., BaseTracker] = __getattr__("MLflowTracker")
        return mlflow_tracker(
            experiment_name=getattr(config, "experiment_name", None),
            run_name=getattr(config, "run_name", None),
            tracking_uri=getattr(config, "tracking_uri", None),
            description=getattr(config, "description", None),
            nested_generation_runs=bool(getattr(config, "nested_generation_runs", False)),
        )
    return DisabledTracker()


def build_trackers(tracker_config: TrackerConfig | TrackerTypes | str | None, trackers: list[Any] | None) -> list[Any]:
    """The trackers of a search: the one ``tracker_config`` names (CompileIQ style), then ``trackers``."""
    out: list[Any] = []
    if tracker_config is not None:
        tracker = _from_config(tracker_config)
        if not isinstance(tracker, DisabledTracker):
            out.append(tracker)
    for tracker in trackers or []:
        if not any(callable(getattr(tracker, event, None)) for event in EVENTS):
            raise TypeError(f"{tracker!r} is not a tracker: it has none of the methods {', '.join(EVENTS)}")
        out.append(tracker)
    return out


#: Trackers whose modules import MLflow or Prefect (seconds): loaded on first use only.
_LAZY = {"MLflowTracker": "genetune.trackers.mlflow_tracker", "PrefectTracker": "genetune.trackers.prefect_tracker"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
