"""CompileIQ's ``tracker_config=``: a config model per tracker type."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["DisabledTrackerConfig", "LoguruTrackerConfig", "MLflowTrackerConfig", "TrackerConfig", "TrackerTypes"]


class TrackerTypes(StrEnum):
    LOGURU = "loguru"
    MLFLOW = "mlflow"
    DISABLED = "disabled"
    DEFAULT = "disabled"


class TrackerConfig(BaseModel):
    # Extra keys are forwarded to the tracker (loguru: to logger.add), as in CompileIQ.
    model_config = ConfigDict(extra="allow")

    type: TrackerTypes = TrackerTypes.DISABLED
    enqueue: bool = False


class DisabledTrackerConfig(TrackerConfig):
    type: Literal[TrackerTypes.DISABLED] = TrackerTypes.DISABLED


class LoguruTrackerConfig(TrackerConfig):
    type: Literal[TrackerTypes.LOGURU] = TrackerTypes.LOGURU
    sink: Any = None
    level: str = "INFO"
    format: str | None = None


class MLflowTrackerConfig(TrackerConfig):
    type: Literal[TrackerTypes.MLFLOW] = TrackerTypes.MLFLOW
    experiment_name: str | None = None
    run_name: str | None = None
    tracking_uri: str | None = None
    description: str | None = None
    nested_generation_runs: bool = False
