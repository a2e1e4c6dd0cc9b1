"""Turning results, metadata and tracker payloads into JSON: the one set of coercions."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["json_default", "lenient_json_default", "strict_jsonable"]


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy values, pydantic models and paths; anything else
    raises TypeError (the caller decides whether that is an error)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def lenient_json_default(value: Any) -> Any:
    """`json_default`, with the text of any other value (logs and summaries never fail on one)."""
    try:
        return json_default(value)
    except TypeError:
        return str(value)


def strict_jsonable(value: Any) -> Any:
    """Plain, standard JSON values: NaN and infinities become null, tuples and sets lists,
    numpy values plain numbers, anything else its text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): strict_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [strict_jsonable(v) for v in value]
    try:
        return strict_jsonable(json_default(value))
    except TypeError:
        return str(value)
