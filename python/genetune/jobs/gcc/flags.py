"""From a candidate's params to gcc arguments."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from genetune.jobs.toolchain import leaves, number_text

__all__ = ["BASELINE_FLAGS", "VALUED_FLAGS", "flags_from_params"]

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


def _flags_of(key: str, value: Any) -> list[str]:
    if value is None:  # not produced by genetune (absent keys are absent), accepted as "no flag"
        return []
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
    in the space's order. Knocked-out parameters are absent from ``params`` and add nothing, so
    ``{}`` (the baseline) gives exactly ``["-O2"]``."""
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
