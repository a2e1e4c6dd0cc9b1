"""Exceptions and warnings raised by genetune (the Rust core raises these same classes)."""

from __future__ import annotations


class GenetuneError(Exception):
    """Base class of every genetune error."""


class SearchSpaceError(GenetuneError, ValueError):
    """A search-space definition is invalid; the message names the parameter path."""


class ConfigurationError(GenetuneError, ValueError):
    """A search configuration is invalid."""


class TellError(GenetuneError, ValueError):
    """`Engine.tell` got ids or scores that do not fit the pending generation."""


class StateError(GenetuneError, ValueError):
    """Serialized engine state that cannot be restored."""


class InternalError(GenetuneError, RuntimeError):
    """A bug inside genetune's engine; please report it with the message."""


class SearchSpaceExhaustedWarning(UserWarning):
    """The engine ran out of untried candidates, so the search ends early."""


class InvalidCandidate(GenetuneError):
    """Raised by an objective to mark its candidate INVALID with exactly this reason (for
    example ``raise InvalidCandidate("wrong result: checksum 12 != 34")``); any other exception
    is recorded as ``exception: <type>: <message>``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ObjectiveReturnError(GenetuneError, TypeError):
    """The objective returned a value of the wrong type or count; the search stops (as CompileIQ).
    Raised by a search, it carries ``result`` and ``run_folder`` like SearchFailedError."""

    result: object = None
    run_folder: object = None


class SearchFailedError(GenetuneError, RuntimeError):
    """A search stopped early. Nothing measured is lost: ``result`` holds every row measured so
    far and ``run_folder`` the checkpoint to resume from."""

    def __init__(self, message: str, result: object = None, run_folder: object = None) -> None:
        super().__init__(message)
        self.result = result
        self.run_folder = run_folder


class CheckpointMismatchError(GenetuneError, ValueError):
    """A checkpoint was made for a different search space or configuration."""
