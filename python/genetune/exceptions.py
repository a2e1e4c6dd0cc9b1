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
