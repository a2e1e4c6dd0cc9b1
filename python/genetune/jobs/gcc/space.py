"""The job's search spaces (gcc flags, and the kernels' own parameters beside them), with the
-march values this machine cannot use removed."""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from genetune.engine import Engine
from genetune.exceptions import SearchSpaceError
from genetune.jobs.gcc.flags import is_macro
from genetune.jobs.gcc.objective import KERNEL_DIR, KERNELS
from genetune.loading import load_search_space, read_document
from genetune.search_spaces import ChoiceParam, LiteralParam, RangeParam, SearchSpace, choice

__all__ = [
    "KERNEL_SPACE_PATH",
    "SPACES",
    "SPACE_PATH",
    "WARM_START",
    "JobSpace",
    "SpaceName",
    "kernel_defaults",
    "load_job_space",
    "load_space",
    "march_supported",
    "search_config",
    "warm_start_candidates",
]

#: The bundled gcc flag search space (commented YAML; copy it to make your own).
SPACE_PATH: Path = Path(__file__).with_name("gcc_space.yaml")
#: The kernels' tuning parameters and the rules between them (commented YAML).
KERNEL_SPACE_PATH: Path = Path(__file__).with_name("kernel_space.yaml")

SpaceName = Literal["joint", "flags"]
#: The job's spaces by name: "joint" tunes the kernels' parameters and the gcc flags together
#: (the default), "flags" the gcc flags alone (the kernels keep their defaults).
SPACES: Mapping[str, tuple[Path, ...]] = {"joint": (SPACE_PATH, KERNEL_SPACE_PATH), "flags": (SPACE_PATH,)}

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


def _documents(paths: Sequence[str | os.PathLike[str]]) -> tuple[dict[str, Any], list[str]]:
    """The parameters of one or more space files, merged in order, and their ``constraints``."""
    merged: dict[str, Any] = {}
    constraints: list[str] = []
    for path in paths:
        document = read_document(path)
        if not isinstance(document, Mapping):
            raise SearchSpaceError(f"{path}: the gcc job's space file holds a mapping of parameters, got {type(document).__name__}")
        document = dict(document)
        rules = document.pop("constraints", [])
        if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
            raise SearchSpaceError(f"{path}: constraints must be a list of expression strings, got {rules!r}")
        for name in document:
            if name in merged:
                raise SearchSpaceError(f"{path}: parameter {name!r} is already defined by an earlier space file")
        merged.update(document)
        constraints += rules
    return merged, constraints


def _paths(space: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> tuple[str | os.PathLike[str], ...]:
    if isinstance(space, str) and space in SPACES:
        return SPACES[space]
    if isinstance(space, str | os.PathLike):
        return (space,)
    return tuple(space)


def load_space(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = SPACE_PATH, *, machine_check: bool = True, cc: str = "gcc"
) -> SearchSpace:
    """The search space of ``path`` (as ``genetune.loading.load_search_space`` reads it; several
    files, or a name of :data:`SPACES`, are merged; a ``constraints`` list in a file is left out:
    :func:`load_job_space` keeps it). With ``machine_check``, ``-march`` values that ``cc``
    cannot compile or this CPU cannot run are dropped (each is tested once per process)."""
    space = load_search_space(_documents(_paths(path))[0])
    if not machine_check:
        return space
    if isinstance(space, Mapping):
        return _machine_checked(space, cc)
    return [_machine_checked(element, cc) for element in space]


# `#ifndef NAME` then `#define NAME value`: how each kernel source declares a tuning default.
_DEFAULT = re.compile(r"^#ifndef ([A-Z][A-Z0-9_]*)\n#define \1 (\S+)$", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def kernel_defaults() -> dict[str, int | str]:
    """Each kernel macro's default, read from the kernels' sources (``MM_ORDER: 'ikj'``,
    ``MM_BLOCK_K: 64``, ...): the code the user already has."""
    defaults: dict[str, int | str] = {}
    for kernel in KERNELS:
        for name, value in _DEFAULT.findall((KERNEL_DIR / f"{kernel}.c").read_text()):
            defaults[name] = int(value) if value.lstrip("-").isdigit() else value
    return defaults


def _holds(when: Any, candidate: Mapping[str, Any]) -> bool:
    if when is None:
        return True
    if isinstance(when, str):
        return when in candidate
    return all(candidate.get(name) in values for name, values in when.items())


@dataclass(frozen=True)
class JobSpace:
    """One of the job's spaces, ready to search: the parameters (machine-checked) and the
    constraint expressions between them."""

    name: str
    space: SearchSpace
    constraints: tuple[str, ...]

    def warm_start(self) -> list[dict[str, Any]]:
        """:func:`warm_start_candidates` of this space."""
        return warm_start_candidates(self.space, self.constraints)


#: What the search evaluates first: the usual best guesses at -O3 (the -march of the plain -O3 is
#: gcc's default target). In the joint space the kernels' parameters are at their defaults, so
#: these are what the user had; the baseline every time is normalized against is the same code
#: at -O2.
WARM_START: tuple[dict[str, str], ...] = (
    {"opt_level": "-O3", "march": "-march=x86-64"},
    {"opt_level": "-O3", "march": "-march=native"},
)


def warm_start_candidates(space: SearchSpace, constraints: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The :data:`WARM_START` candidates that ``space`` can express (an edited space, or a
    machine without ``-march=native``, may lack one), each with the kernels' parameters at their
    source defaults (:func:`kernel_defaults`): a parameter that is always present gets its
    default; knocked-out ones stay absent, which is the default."""
    kernel: dict[str, Any] = {}
    if isinstance(space, Mapping):
        defaults = kernel_defaults()
        for name, node in space.items():
            knocked_out = getattr(node, "knockout_prob", None)
            if not is_macro(name) or knocked_out or not _holds(getattr(node, "when", None), {**WARM_START[0], **kernel}):
                continue
            if name in defaults and _expresses(node, defaults[name]):
                kernel[name] = defaults[name]
    starts = [{**candidate, **kernel} for candidate in WARM_START]
    return [candidate for candidate in starts if _fits(space, constraints, candidate)]


def _expresses(node: Any, value: Any) -> bool:
    if isinstance(node, ChoiceParam):
        return value in node.values
    if isinstance(node, RangeParam) and isinstance(value, int | float):
        on_grid = node.step is None or (value - node.start) % node.step == 0
        return bool(node.start <= value <= node.end and on_grid)
    return False


def _fits(space: SearchSpace, constraints: Sequence[str], candidate: Mapping[str, Any]) -> bool:
    try:
        Engine(space, {"generations": 1, "pool_size": 6, "seed": 0}, constraints=list(constraints), warm_start=[dict(candidate)])
    except SearchSpaceError:
        return False
    return True


def load_job_space(space: str | os.PathLike[str] = "joint", *, machine_check: bool = True, cc: str = "gcc") -> JobSpace:
    """The job's space: ``"joint"`` (the kernels' parameters and the gcc flags, the default),
    ``"flags"`` (gcc flags alone, the kernels at their defaults) or a YAML file of your own
    (parameters and an optional ``constraints`` list)."""
    if isinstance(space, str) and space not in SPACES and not Path(space).suffix:
        raise ValueError(f"space must be one of {list(get_args(SpaceName))} or a YAML/JSON file path, got {space!r}")
    paths = _paths(space)
    constraints = tuple(_documents(paths)[1])
    name = space if isinstance(space, str) and space in SPACES else os.fspath(space)
    return JobSpace(name, load_space(paths, machine_check=machine_check, cc=cc), constraints)


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
