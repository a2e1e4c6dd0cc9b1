"""genetune: an open autotuner for compiler flags and hyperparameters, with a Rust genetic core."""

from __future__ import annotations

from genetune import search_spaces, trackers
from genetune._core import Candidate
from genetune._core import __version__ as __version__
from genetune.config import EngineKind, ProblemType, Schedule, SearchConfiguration
from genetune.engine import Engine
from genetune.exceptions import (
    CheckpointMismatchError,
    ConfigurationError,
    GenetuneError,
    InternalError,
    InvalidCandidate,
    ObjectiveReturnError,
    SearchFailedError,
    SearchSpaceError,
    SearchSpaceExhaustedWarning,
    StateError,
    TellError,
)
from genetune.metrics import log_metric, log_metrics, parse_metric_lines
from genetune.objectives import TwoPhase, TwoPhaseObjective
from genetune.results import SearchResult
from genetune.scores import BASELINE_CONFIG, INVALID_SCORE, Score, normalize_scores
from genetune.search import Search
from genetune.settings import Settings, get_settings
from genetune.workers import (
    AsyncWorker,
    BaseWorker,
    DaskWorker,
    IsolatedWorker,
    IsoMultiProcessWorker,
    MultiProcessWorker,
    SequentialWorker,
    WorkerTypes,
)

__all__ = [
    "BASELINE_CONFIG",
    "INVALID_SCORE",
    "AsyncWorker",
    "BaseWorker",
    "Candidate",
    "DaskWorker",
    "CheckpointMismatchError",
    "ConfigurationError",
    "Engine",
    "EngineKind",
    "GenetuneError",
    "InternalError",
    "InvalidCandidate",
    "IsoMultiProcessWorker",
    "IsolatedWorker",
    "MultiProcessWorker",
    "ObjectiveReturnError",
    "ProblemType",
    "Schedule",
    "Score",
    "Search",
    "SearchConfiguration",
    "SearchFailedError",
    "SearchResult",
    "SearchSpaceError",
    "SearchSpaceExhaustedWarning",
    "SequentialWorker",
    "Settings",
    "StateError",
    "TellError",
    "TwoPhase",
    "TwoPhaseObjective",
    "WorkerTypes",
    "get_settings",
    "log_metric",
    "log_metrics",
    "parse_metric_lines",
    "normalize_scores",
    "search_spaces",
    "trackers",
]
