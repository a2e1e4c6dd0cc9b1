"""genetune: an open autotuner for compiler flags and hyperparameters, with a Rust genetic core."""

from __future__ import annotations

from genetune import search_spaces
from genetune._core import Candidate
from genetune._core import __version__ as __version__
from genetune.config import EngineKind, ProblemType, SearchConfiguration
from genetune.engine import Engine
from genetune.exceptions import (
    ConfigurationError,
    GenetuneError,
    InternalError,
    SearchSpaceError,
    SearchSpaceExhaustedWarning,
    StateError,
    TellError,
)
from genetune.scores import INVALID_SCORE, normalize_scores

__all__ = [
    "INVALID_SCORE",
    "Candidate",
    "ConfigurationError",
    "Engine",
    "EngineKind",
    "GenetuneError",
    "InternalError",
    "ProblemType",
    "SearchConfiguration",
    "SearchSpaceError",
    "SearchSpaceExhaustedWarning",
    "StateError",
    "TellError",
    "normalize_scores",
    "search_spaces",
]
