"""The job's search space, with the -march values this machine cannot use removed."""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genetune.loading import load_search_space
from genetune.search_spaces import ChoiceParam, LiteralParam, SearchSpace, choice

__all__ = ["SPACE_PATH", "load_space", "march_supported", "search_config"]

#: The bundled gcc flag search space (commented YAML; copy it to make your own).
SPACE_PATH: Path = Path(__file__).with_name("gcc_space.yaml")

# Each ISA macro gcc defines for a -march is checked against the running CPU: a -march that
# compiles but whose instructions the CPU lacks would otherwise only show up as SIGILL later.
_ISA_CHECKS = (
    ("__SSE3__", "sse3"),
    ("__SSSE3__", "ssse3"),
    ("__SSE4_1__", "sse4.1"),
    ("__SSE4_2__", "sse4.2"),
    ("__POPCNT__", "popcnt"),
    ("__AVX__", "avx"),
    ("__AVX2__", "avx2"),
    ("__FMA__", "fma"),
    ("__F16C__", "f16c"),
    ("__BMI__", "bmi"),
    ("__BMI2__", "bmi2"),
    ("__LZCNT__", "lzcnt"),
    ("__MOVBE__", "movbe"),
    ("__AVX512F__", "avx512f"),
    ("__AVX512VL__", "avx512vl"),
    ("__AVX512BW__", "avx512bw"),
    ("__AVX512DQ__", "avx512dq"),
    ("__AVX512CD__", "avx512cd"),
)
_CHECKS = "\n".join(
    f'#ifdef {macro}\n    if (!__builtin_cpu_supports("{feature}")) return 1;\n#endif' for macro, feature in _ISA_CHECKS
)
_PROBE = f"""
static double data[1024];
int main(void) {{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
{_CHECKS}
#endif
    /* A vectorizable loop, so the ISA's instructions actually run once. */
    double sum = 0.0;
    for (int i = 0; i < 1024; i++) data[i] = (double)i * 0.5 + 1.0;
    for (int i = 0; i < 1024; i++) sum += data[i];
    return sum > 0.0 ? 0 : 2;
}}
"""


@functools.lru_cache(maxsize=None)
def march_supported(march: str, cc: str = "gcc") -> bool:
    """Whether ``cc`` accepts ``march`` (e.g. ``"-march=x86-64-v3"``) and this CPU runs its code.
    Compiles and runs a tiny probe once per (march, cc) and process."""
    with tempfile.TemporaryDirectory(prefix="genetune-march-") as tmp:
        source, exe = Path(tmp, "probe.c"), Path(tmp, "probe")
        source.write_text(_PROBE)
        env = {**os.environ, "LC_ALL": "C"}
        try:
            built = subprocess.run(
                [cc, "-O3", march, "-o", str(exe), str(source)], capture_output=True, timeout=60, env=env, check=False
            )
            if built.returncode != 0:
                return False
            ran = subprocess.run([str(exe)], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return ran.returncode == 0


def _marches(value: Any) -> list[str]:
    return [token for token in shlex.split(value) if token.startswith("-march=")] if isinstance(value, str) else []


def _usable(value: Any, cc: str) -> bool:
    return all(march_supported(march, cc) for march in _marches(value))


def _machine_checked(space: Mapping[str, Any], cc: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, node in space.items():
        if isinstance(node, ChoiceParam) and any(_marches(v) for v in node.values):
            kept = [v for v in node.values if _usable(v, cc)]
            if kept:  # no usable value: the parameter goes (gcc's default -march remains)
                out[key] = node if len(kept) == len(node.values) else choice(kept, knockout_prob=node.knockout_prob)
        elif isinstance(node, LiteralParam) and _marches(node.value):
            if _usable(node.value, cc):
                out[key] = node
        elif isinstance(node, Mapping):
            nested = _machine_checked(node, cc)
            if nested:
                out[key] = nested
        else:
            out[key] = node
    return out


def load_space(path: str | os.PathLike[str] = SPACE_PATH, *, machine_check: bool = True, cc: str = "gcc") -> SearchSpace:
    """The search space of ``path`` (as ``genetune.loading.load_search_space`` reads it). With
    ``machine_check``, ``-march`` values that ``cc`` cannot compile or this CPU cannot run are
    dropped (each is tested once per process)."""
    space = load_search_space(path)
    if not machine_check:
        return space
    if isinstance(space, Mapping):
        return _machine_checked(space, cc)
    return [_machine_checked(element, cc) for element in space]


#: The job re-measures this many best flag sets (and -O2) when the search ends ...
REMEASURE_TOP = 4
#: ... in this many interleaved rounds, and reports the best re-measured one.
REMEASURE_REPEATS = 5


def search_config(
    space: SearchSpace,
    generations: int,
    pool_size: int,
    seed: int | None,
    remeasure_top: int = REMEASURE_TOP,
    remeasure_repeats: int = REMEASURE_REPEATS,
) -> dict[str, Any]:
    """The job's search configuration: normalized against -O2, the ``remeasure_top`` best flag
    sets re-measured at the end (the winner is the best re-measured one, not the luckiest single
    measurement); the operators keep their defaults (a mutated child changes about one of the
    space's parameters, so flags that break results, -ffast-math or -Ofast, do not keep coming
    back)."""
    del space  # the defaults adapt to the space inside the engine
    return {
        "generations": generations,
        "pool_size": pool_size,
        "seed": seed,
        "normalize": True,
        "remeasure_top": remeasure_top,
        "remeasure_repeats": remeasure_repeats,
    }
