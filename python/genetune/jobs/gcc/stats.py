"""Is the tuned candidate really faster? Re-measure it against what the user had (the kernels'
defaults at -O2 and -O3), interleaved."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from genetune.evaluation import placement
from genetune.exclusive import measuring_slot
from genetune.intervals import welch
from genetune.jobs.gcc.flags import flags_from_params, kernel_params
from genetune.jobs.gcc.objective import GccObjective

__all__ = ["Comparison", "SpeedupReport", "measure_speedups"]

_CANDIDATE = "flags"


class Comparison(BaseModel):
    """The tuned flags against one baseline. ``speedup`` = geometric-mean baseline time /
    geometric-mean tuned time (> 1: the tuned flags are faster), with the 95% interval and the
    p-value of one Welch t test on log times: the interval excludes 1.0 exactly when p < 0.05."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: str
    speedup: float
    ci_low: float
    ci_high: float
    p_value: float

    def phrase(self) -> str:
        """E.g. ``1.12x faster than -O2 (95% CI 1.08–1.16, p=0.001)``."""
        p = "p<0.001" if self.p_value < 0.001 else f"p={self.p_value:.3f}"
        if self.speedup >= 1:
            return f"{self.speedup:.2f}x faster than {self.baseline} (95% CI {self.ci_low:.2f}–{self.ci_high:.2f}, {p})"
        # Slower: say so with the inverse ratio (and interval) rather than "0.95x faster".
        return f"{1 / self.speedup:.2f}x slower than {self.baseline} (95% CI {1 / self.ci_high:.2f}–{1 / self.ci_low:.2f}, {p})"


class SpeedupReport(BaseModel):
    """What :func:`measure_speedups` measured: one total time (seconds, summed over the kernels)
    per variant and round, and the comparisons of the tuned candidate with -O2 and -O3 (the
    kernels at their defaults). ``flags``: every gcc argument of the candidate (its kernel
    parameters as ``-D`` macros among them); ``kernel_params``: those parameters by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flags: list[str]
    kernel_params: dict[str, int | float | str] = {}
    kernels: list[str]
    size: str
    rounds: int
    seed: int
    times_flags: list[float]
    times_O2: list[float]
    times_O3: list[float]
    vs_O2: Comparison
    vs_O3: Comparison

    def gcc_flags(self) -> list[str]:
        """The candidate's compiler flags without its kernel macros."""
        macros = set(flags_from_params(self.kernel_params)) - {"-O2"}
        return [flag for flag in self.flags if flag not in macros]

    def parameters_text(self) -> str:
        """The kernel parameters as ``NAME=value`` words (empty for a flags-only candidate)."""
        return " ".join(f"{name}={value}" for name, value in self.kernel_params.items())

    def summary(self) -> str:
        """One line: what won (its kernel parameters and gcc flags) and how much faster it is than
        the kernels' defaults at -O3 and -O2."""
        if not self.kernel_params:
            return f"best flags are {self.vs_O2.phrase()} and {self.vs_O3.phrase()}"
        return f"best {self.parameters_text()} with {' '.join(self.gcc_flags())}: {self.vs_O3.phrase()} and {self.vs_O2.phrase()}"

    def to_markdown(self) -> str:
        """The candidate and a small table of median times and speedups."""
        what = f"Flags: `{' '.join(self.flags)}`"
        if self.kernel_params:
            what = f"Kernel parameters: `{self.parameters_text()}`; gcc flags: `{' '.join(self.gcc_flags())}`"
        rows = [
            f"{what} ({', '.join(self.kernels)}; size {self.size}; {self.rounds} interleaved rounds)",
            "",
            "| variant | median time (s) | speedup of the flags (geometric means) | 95% CI (Welch, log times) | Welch p |",
            "|---|---:|---:|---:|---:|",
            f"| flags | {statistics.median(self.times_flags):.6f} | | | |",
        ]
        for times, comparison in ((self.times_O2, self.vs_O2), (self.times_O3, self.vs_O3)):
            rows.append(
                f"| {comparison.baseline} | {statistics.median(times):.6f} | {comparison.speedup:.3f}x | "
                f"{comparison.ci_low:.3f}–{comparison.ci_high:.3f} | {comparison.p_value:.3g} |"
            )
        return "\n".join(rows) + "\n"


def _compare(name: str, candidate: Sequence[float], baseline: Sequence[float]) -> Comparison:
    # One method for the interval and the test: Welch's t on log times. The speedup is the ratio
    # of geometric means, its interval the test's own interval mapped back by exp, so the 95%
    # interval excludes 1.0 exactly when p < 0.05 (a percentile bootstrap of medians next to a
    # t-test of means could disagree, and did).
    diff, low, high, p = welch([math.log(t) for t in baseline], [math.log(t) for t in candidate])
    return Comparison(baseline=name, speedup=math.exp(diff), ci_low=math.exp(low), ci_high=math.exp(high), p_value=p)


def measure_speedups(objective: GccObjective, params: Mapping[str, Any], *, rounds: int = 10, seed: int = 0) -> SpeedupReport:
    """Re-measures the candidate ``params`` (flags and kernel parameters), -O2 and -O3 (kernels at
    their defaults) with ``objective``'s kernels, size and
    timeouts: everything is built and checked once, each variant is warmed up ``objective.warmup``
    times per kernel, then each of ``rounds`` rounds runs the three variants in a random order
    (seeded), each giving the sum over kernels of the median of ``objective.repeats`` runs.
    A wrong result, crash or timeout raises :class:`genetune.InvalidCandidate`."""
    if not isinstance(objective, GccObjective):
        raise TypeError(f"objective must be a GccObjective, got {type(objective).__name__}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 2:
        raise ValueError(f"rounds must be an int >= 2 (a t-test needs two samples), got {rounds!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    flags = flags_from_params(params)
    tuned = kernel_params(params)
    # -O2 and -O3 build the kernels at their source defaults: what the user had.
    variants: dict[str, list[str]] = {_CANDIDATE: flags, "-O2": ["-O2"], "-O3": ["-O3"]}
    o2, o3 = ("the defaults at -O2", "the defaults at -O3") if tuned else ("-O2", "-O3")
    expected = objective._reference_checksums()
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {name: [] for name in variants}
    with objective._scratch() as scratch:
        built = {name: objective._build(variant, scratch / f"v{i}") for i, (name, variant) in enumerate(variants.items())}
        for kernels in built.values():
            for kernel, b in kernels.items():  # warm up, and check every result before measuring
                objective._timed_runs(kernel, b.exe, expected[kernel], max(objective.warmup, 1), 0)
        names = list(variants)
        with measuring_slot(str(placement()["placement"])):  # alone on this host, as during the search
            for _ in range(rounds):
                for i in rng.permutation(len(names)):
                    name = names[int(i)]
                    times[name].append(
                        math.fsum(
                            statistics.median(objective._timed_runs(kernel, b.exe, expected[kernel], 0, objective.repeats))
                            for kernel, b in built[name].items()
                        )
                    )
    return SpeedupReport(
        flags=flags,
        kernel_params=tuned,
        kernels=list(objective.kernels),
        size=objective.size,
        rounds=rounds,
        seed=seed,
        times_flags=times[_CANDIDATE],
        times_O2=times["-O2"],
        times_O3=times["-O3"],
        vs_O2=_compare(o2, times[_CANDIDATE], times["-O2"]),
        vs_O3=_compare(o3, times[_CANDIDATE], times["-O3"]),
    )
