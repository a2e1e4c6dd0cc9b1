"""The reasons an evaluation that produced no score is INVALID, spelled once for every worker."""

from __future__ import annotations

__all__ = ["crash_reason", "timeout_reason"]


def timeout_reason(seconds: float, action: str = "killed") -> str:
    """``timeout: killed after 2 s`` (``action``: what stopped it, e.g. ``cancelled``)."""
    return f"timeout: {action} after {seconds:g} s"


def crash_reason(exit_code: int | None) -> str:
    """The process running the evaluation ended without a result."""
    return f"crashed: exit code {exit_code}"
