"""Search-space parameters, with CompileIQ's constructor names: ``import genetune.search_spaces as ss``.

A search space is a dict of parameters (nested dicts to any depth, any key characters) or a list
of such dicts. ``knockout_prob=p`` makes a key absent from a candidate with probability ``p`` at
initialisation; presence is then inherited and mutated like any other gene.

``when=`` makes a parameter conditional: ``when="unroll_loops"`` exists only when the parameter
``unroll_loops`` is present; ``when={"opt_level": ["-O2", "-O3"]}`` only when ``opt_level`` is
present with one of these values (several keys: all must hold). Paths are written as in
constraint expressions: ``a.b``, ``a['any key']``, ``[0].a`` in a list space. An inactive parameter
is absent from the candidate, like a knocked-out one.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, field_validator

from genetune import _core
from genetune.exceptions import SearchSpaceError

__all__ = [
    "ChoiceParam",
    "LiteralParam",
    "Parameter",
    "RangeParam",
    "SearchSpace",
    "When",
    "choice",
    "compile_space",
    "literal",
    "log_sampling",
    "range",
    "space_from_spec",
]

_INT64 = (-(2**63), 2**63 - 1)
# Ints must fit the engine's 64-bit integers, also when a model is built directly.
Int64 = Annotated[StrictInt, Field(ge=_INT64[0], le=_INT64[1])]
Number: TypeAlias = Int64 | StrictFloat
Scalar: TypeAlias = StrictBool | Int64 | StrictFloat | StrictStr
_MAX_LOG_VALUES = 1 << 20
#: A parameter's condition: a parameter path that must be present, or paths with allowed values.
When: TypeAlias = str | Mapping[str, Any]


class _Param(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    knockout_prob: float | None = None
    when: str | dict[str, tuple[Scalar, ...]] | None = None

    @field_validator("when", mode="before")
    @classmethod
    def _one_value_is_a_list(cls, value: Any) -> Any:
        """``when={"opt_level": "-O3"}`` means ``{"opt_level": ["-O3"]}``."""
        if isinstance(value, Mapping):
            return {k: (v,) if isinstance(v, bool | int | float | str) else v for k, v in value.items()}
        return value

    def spec(self) -> dict[str, Any]:
        """The JSON-able definition the engine compiles."""
        return self.model_dump(mode="json")


class RangeParam(_Param):
    """Values ``start + k*step`` within ``[start, end]`` (both ends inclusive); ints when
    start, end and step are ints. ``step=None`` is a continuous float range."""

    type: Literal["range"] = "range"
    start: Number
    end: Number
    step: Number | None = 1
    seed_low: Number | None = None
    seed_high: Number | None = None


class ChoiceParam(_Param):
    """One of ``values`` (bools, ints, floats, strings)."""

    type: Literal["choice"] = "choice"
    values: tuple[Scalar, ...]


class LiteralParam(_Param):
    """Always ``value`` (unless knocked out)."""

    type: Literal["literal"] = "literal"
    value: Scalar


Parameter = Annotated[RangeParam | ChoiceParam | LiteralParam, Field(discriminator="type")]
SearchSpace: TypeAlias = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_parameter_adapter: TypeAdapter[RangeParam | ChoiceParam | LiteralParam] = TypeAdapter(Parameter)


def _plain(value: Any, what: str) -> Any:
    """numpy scalars become Python scalars; anything but bool/int/float/str is refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, bool | int | float | str):
        raise SearchSpaceError(f"{what} must be a bool, int, float or str, got {type(value).__name__} {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        raise SearchSpaceError(f"{what} must fit in 64 bits, got {value}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SearchSpaceError(f"{what} must be finite, got {value}")
    return value


def _number(value: Any, what: str, *, required: bool = False) -> int | float | None:
    if value is None:
        if required:
            raise SearchSpaceError(f"{what} is required, got None")
        return None
    value = _plain(value, what)
    if isinstance(value, bool | str):
        raise SearchSpaceError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    number: int | float = value
    return number


_P = TypeVar("_P", bound="_Param")


def _checked(param: _P) -> _P:
    _core.validate_parameter(json.dumps(param.spec()))
    return param


def _when(when: When | None) -> str | dict[str, tuple[Any, ...]] | None:
    if when is None:
        return None
    if isinstance(when, str):
        if not when.strip():
            raise SearchSpaceError("when= must name a parameter, got an empty string")
        return when
    if not isinstance(when, Mapping):
        raise SearchSpaceError(f"when= must be a parameter path or a dict {{path: [values]}}, got {type(when).__name__} {when!r}")
    out: dict[str, tuple[Any, ...]] = {}
    for key, values in when.items():
        if not isinstance(key, str):
            raise SearchSpaceError(f"when= keys must be parameter paths (strings), got {key!r}")
        listed = values if isinstance(values, list | tuple | np.ndarray) else [values]
        out[key] = tuple(_plain(v, f"when={{{key!r}: ...}} value") for v in listed)
    return out


def range(  # noqa: A001 - CompileIQ's name
    start: float,
    end: float,
    step: float | None = 1,
    knockout_prob: float | None = None,
    seed_low: float | None = None,
    seed_high: float | None = None,
    when: When | None = None,
) -> RangeParam:
    """Values on the grid ``start + k*step`` from ``start`` to ``end`` inclusive.

    ``seed_low``/``seed_high`` bound the share ``init_with_true_random_threshold`` of the initial
    population. ``step=None`` gives a continuous float range. ``when``: see the module docstring.
    """
    if step is None:  # a continuous range holds floats: an int bound no float holds is rounded inward
        start, end = _float_inward(start, up=True), _float_inward(end, up=False)
    return _checked(
        RangeParam(
            start=_number(start, "range start", required=True),
            end=_number(end, "range end", required=True),
            step=_number(step, "range step"),
            knockout_prob=_number(knockout_prob, "knockout_prob"),
            seed_low=_number(seed_low, "seed_low"),
            seed_high=_number(seed_high, "seed_high"),
            when=_when(when),
        )
    )


def _float_inward(value: Any, *, up: bool) -> Any:
    """``value`` as the nearest float on the inside of the range when it is an int that no float
    holds exactly (beyond 2**53); anything else unchanged (checked later)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        exact = int(value)
        nearest = float(exact)
        if (nearest < exact) if up else (nearest > exact):
            return math.nextafter(nearest, math.inf if up else -math.inf)
    return value


def choice(values: Sequence[Any] | np.ndarray, knockout_prob: float | None = None, when: When | None = None) -> ChoiceParam:
    """One of ``values`` (bools, ints, floats or strings; distinct)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray):
        raise SearchSpaceError(f"choice values must be a list, tuple or array, got {type(values).__name__}")
    plain = tuple(_plain(v, f"choice value [{i}]") for i, v in enumerate(values))
    return _checked(ChoiceParam(values=plain, knockout_prob=_number(knockout_prob, "knockout_prob"), when=_when(when)))


def literal(value: bool | int | float | str, knockout_prob: float | None = None, when: When | None = None) -> LiteralParam:
    """Always ``value``: a fixed flag, present or knocked out."""
    return _checked(
        LiteralParam(value=_plain(value, "literal value"), knockout_prob=_number(knockout_prob, "knockout_prob"), when=_when(when))
    )


def log_sampling(
    start: float, end: float, total: int = 10, knockout_prob: float | None = None, when: When | None = None
) -> ChoiceParam:
    """A choice of ``total`` log-spaced floats from ``start`` to ``end`` (both included)."""
    start_f = _number(start, "log_sampling start", required=True)
    end_f = _number(end, "log_sampling end", required=True)
    assert start_f is not None and end_f is not None
    if not 0 < start_f < end_f:
        raise SearchSpaceError(f"log_sampling needs 0 < start < end, got start={start_f}, end={end_f}")
    if isinstance(total, bool) or not isinstance(total, int | np.integer) or not 2 <= total <= _MAX_LOG_VALUES:
        raise SearchSpaceError(f"log_sampling total must be an int within [2, {_MAX_LOG_VALUES}], got {total!r}")
    values = [float(v) for v in np.geomspace(start_f, end_f, num=int(total))]
    return choice(values, knockout_prob=knockout_prob, when=when)


def _display(path: str) -> str:
    return "search_space" + path


def _compile_node(node: Any, path: str) -> dict[str, Any]:
    if isinstance(node, _Param):
        return {"param": node.spec(), "path": _display(path)}
    if isinstance(node, Mapping):
        items = []
        for key, child in node.items():
            if not isinstance(key, str):
                raise SearchSpaceError(f"{_display(path)}: keys must be strings, got {type(key).__name__} {key!r}")
            items.append([key, _compile_node(child, f"{path}[{key!r}]")])
        return {"dict": items}
    if isinstance(node, list | tuple):
        raise SearchSpaceError(f"{_display(path)}: a list of search spaces is only allowed at the top level")
    raise SearchSpaceError(
        f"{_display(path)}: expected a parameter (ss.range, ss.choice, ss.literal, ss.log_sampling) "
        f"or a nested dict, got {type(node).__name__} {node!r}"
    )


def compile_space(space: SearchSpace) -> dict[str, Any]:
    """The JSON-able spec of a search space, for the engine. Structural errors name the path;
    the engine validates each parameter and names its path too."""
    if isinstance(space, Mapping):
        return _compile_node(space, "")
    if isinstance(space, list | tuple):
        if not space:
            raise SearchSpaceError("search_space: an empty list has no parameters")
        for i, element in enumerate(space):
            if not isinstance(element, Mapping):
                raise SearchSpaceError(f"search_space[{i}]: each element of a list search space must be a dict")
        return {"list": [_compile_node(element, f"[{i}]") for i, element in enumerate(space)]}
    raise SearchSpaceError(f"search_space must be a dict (possibly nested) or a list of dicts, got {type(space).__name__}")


def space_from_spec(spec: Mapping[str, Any]) -> Any:
    """Rebuilds the user-level search space from a spec made by :func:`compile_space`."""
    if "param" in spec:
        return _parameter_adapter.validate_python(spec["param"])
    if "dict" in spec:
        return {key: space_from_spec(child) for key, child in spec["dict"]}
    if "list" in spec:
        return [space_from_spec(child) for child in spec["list"]]
    raise SearchSpaceError(f"malformed search-space spec: {builtins.list(spec)}")
