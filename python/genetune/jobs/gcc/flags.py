"""From a candidate's params to gcc arguments: compiler flags, and the kernels' tuning parameters
as preprocessor macros."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from genetune.jobs.toolchain import leaves, number_text

__all__ = ["BASELINE_FLAGS", "VALUED_FLAGS", "flags_from_params", "is_macro", "kernel_params"]

#: What the baseline (``{}``, ``genetune.BASELINE_CONFIG``) compiles with, and the default -O level.
BASELINE_FLAGS: tuple[str, ...] = ("-O2",)

#: Templates of the numeric parameters of ``gcc_space.yaml``: ``{}`` is replaced by the value.
VALUED_FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "max_unroll_times": "--param=max-unroll-times={}",
        "max_unrolled_insns": "--param=max-unrolled-insns={}",
        "max_completely_peeled_insns": "--param=max-completely-peeled-insns={}",
        "max_inline_insns_auto": "--param=max-inline-insns-auto={}",
        "max_peeled_insns": "--param=max-peeled-insns={}",
        "align_loops": "-falign-loops={}",
        "align_functions": "-falign-functions={}",
        "align_jumps": "-falign-jumps={}",
        "align_labels": "-falign-labels={}",
    }
)

_OPT_LEVEL = re.compile(r"-O(?:[0-9]+|s|z|g|fast)?")
#: A parameter named like a C macro (upper case, e.g. ``MM_BLOCK_K``) is a kernel's tuning
#: parameter, passed as ``-DNAME=VALUE``; the kernels' sources give each one a default.
_MACRO = re.compile(r"[A-Z][A-Z0-9_]*")
_MACRO_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")


def is_macro(key: str) -> bool:
    """Whether a parameter name is a kernel macro (``MM_BLOCK_K``) rather than a gcc flag."""
    return _MACRO.fullmatch(key) is not None


def kernel_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The kernel tuning parameters (macros) of a candidate, in the space's order; absent ones
    keep the kernels' defaults."""
    return {key: value for key, value in leaves(params) if is_macro(key) and value is not None}


def _macro(key: str, value: Any) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"params[{key!r}] = {value!r}: a kernel macro takes a number or a C token such as 'ikj'")
    text = number_text(value) if isinstance(value, int | float) else value
    if not _MACRO_VALUE.fullmatch(text):
        raise ValueError(f"params[{key!r}] = {value!r}: a kernel macro's value must be one C token (letters, digits, '_', '.', '+', '-')")
    return [f"-D{key}={text}"]


def _flags_of(key: str, value: Any) -> list[str]:
    if value is None:  # not produced by genetune (absent keys are absent), accepted as "no flag"
        return []
    if is_macro(key):
        return _macro(key, value)
    if isinstance(value, bool):
        raise ValueError(f"params[{key!r}] = {value!r}: use a literal flag (present or knocked out) instead of a bool")
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, int | float):
        template = VALUED_FLAGS.get(key)
        if template is not None:
            return [template.format(number_text(value))]
        if key.startswith("-"):  # the key is the flag prefix itself, e.g. "--param=max-peeled-insns="
            return [key + number_text(value)]
        raise ValueError(
            f"params[{key!r}] = {value!r}: a number needs a flag: name the parameter after the flag prefix "
            f"(e.g. '--param={key.replace('_', '-')}=') or use one of {sorted(VALUED_FLAGS)}"
        )
    raise TypeError(f"params[{key!r}] = {value!r}: expected a flag string or a number, got {type(value).__name__}")


def flags_from_params(params: Mapping[str, Any]) -> list[str]:
    """gcc arguments for a candidate: the -O level first (``-O2`` when none), then the other flags
    in the space's order, kernel macros (``MM_BLOCK_K: 32`` -> ``-DMM_BLOCK_K=32``) among them.
    Knocked-out parameters are absent from ``params`` and add nothing (a kernel macro then keeps
    its default), so ``{}`` (the baseline) gives exactly ``["-O2"]``."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    levels: list[str] = []
    others: list[str] = []
    for key, value in leaves(params):
        for flag in _flags_of(key, value):
            # The -O level goes first as on any gcc command line (gcc applies it before explicit
            # -f flags whatever the order, so this is for readability of the recorded flags).
            (levels if _OPT_LEVEL.fullmatch(flag) else others).append(flag)
    return [*(levels or BASELINE_FLAGS), *others]
