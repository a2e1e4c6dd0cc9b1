"""Is the tuned flag set really faster? Re-measure it against -O2 and -O3, interleaved."""

from __future__ import annotations

import importlib
import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from genetune.jobs.gcc.flags import flags_from_params
from genetune.jobs.gcc.objective import GccObjective

__all__ = ["Comparison", "SpeedupReport", "measure_speedups"]

_BOOTSTRAP_SAMPLES = 10_000
_CANDIDATE = "flags"


class Comparison(BaseModel):
    """The tuned flags against one baseline. ``speedup`` = median baseline time / median tuned
    time (> 1: the tuned flags are faster), with a 95% bootstrap interval and Welch's p-value."""

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
    per variant and round, and the comparisons of the tuned flags with -O2 and -O3."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flags: list[str]
    kernels: list[str]
    size: str
    rounds: int
    seed: int
    times_flags: list[float]
    times_O2: list[float]
    times_O3: list[float]
    vs_O2: Comparison
    vs_O3: Comparison

    def summary(self) -> str:
        """One line: how much faster the tuned flags are than -O2 and -O3."""
        return f"best flags are {self.vs_O2.phrase()} and {self.vs_O3.phrase()}"

    def to_markdown(self) -> str:
        """The flags and a small table of median times and speedups."""
        rows = [
            f"Flags: `{' '.join(self.flags)}` ({', '.join(self.kernels)}; size {self.size}; {self.rounds} interleaved rounds)",
            "",
            "| variant | median time (s) | speedup of the flags | 95% CI | Welch p |",
            "|---|---:|---:|---:|---:|",
            f"| flags | {statistics.median(self.times_flags):.6f} | | | |",
        ]
        for times, comparison in ((self.times_O2, self.vs_O2), (self.times_O3, self.vs_O3)):
            rows.append(
                f"| {comparison.baseline} | {statistics.median(times):.6f} | {comparison.speedup:.3f}x | "
                f"{comparison.ci_low:.3f}–{comparison.ci_high:.3f} | {comparison.p_value:.3g} |"
            )
        return "\n".join(rows) + "\n"


def _welch_p(candidate: Sequence[float], baseline: Sequence[float]) -> float:
    scipy_stats: Any = importlib.import_module("scipy.stats")  # untyped; imported only when used
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: handled below
        p = float(scipy_stats.ttest_ind(candidate, baseline, equal_var=False).pvalue)
    if math.isfinite(p):
        return p
    # Both samples constant (timer granularity): the test is undefined; equal means = no evidence.
    return 1.0 if statistics.fmean(candidate) == statistics.fmean(baseline) else 0.0


def _compare(name: str, candidate: Sequence[float], baseline: Sequence[float], rng: np.random.Generator) -> Comparison:
    cand, base = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    speedup = float(np.median(base) / np.median(cand))
    # Paired bootstrap over rounds: each round measured every variant back to back, so drift in the
    # machine's speed hits a round's variants alike; resampling whole rounds keeps that pairing.
    idx = rng.integers(0, len(cand), size=(_BOOTSTRAP_SAMPLES, len(cand)))
    ratios = np.median(base[idx], axis=1) / np.median(cand[idx], axis=1)
    low, high = (float(v) for v in np.percentile(ratios, [2.5, 97.5]))
    # With few rounds the bootstrap distribution of a median is lumpy and a percentile interval
    # can miss the point estimate by a hair; widen it to contain it.
    low, high = min(low, speedup), max(high, speedup)
    return Comparison(baseline=name, speedup=speedup, ci_low=low, ci_high=high, p_value=_welch_p(candidate, baseline))


def measure_speedups(objective: GccObjective, params: Mapping[str, Any], *, rounds: int = 10, seed: int = 0) -> SpeedupReport:
    """Re-measures the flags of ``params``, -O2 and -O3 with ``objective``'s kernels, size and
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
    variants: dict[str, list[str]] = {_CANDIDATE: flags, "-O2": ["-O2"], "-O3": ["-O3"]}
    expected = objective._reference_checksums()
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {name: [] for name in variants}
    with objective._scratch() as scratch:
        built = {name: objective._build(variant, scratch / f"v{i}") for i, (name, variant) in enumerate(variants.items())}
        for kernels in built.values():
            for kernel, b in kernels.items():  # warm up, and check every result before measuring
                objective._timed_runs(kernel, b.exe, expected[kernel], max(objective.warmup, 1), 0)
        names = list(variants)
        for _ in range(rounds):
            for i in rng.permutation(len(names)):
                name = names[int(i)]
                times[name].append(
                    math.fsum(
                        statistics.median(objective._timed_runs(kernel, b.exe, expected[kernel], 0, objective.repeats))
                        for kernel, b in built[name].items()
                    )
                )
    boot = np.random.default_rng([seed, 1])
    return SpeedupReport(
        flags=flags,
        kernels=list(objective.kernels),
        size=objective.size,
        rounds=rounds,
        seed=seed,
        times_flags=times[_CANDIDATE],
        times_O2=times["-O2"],
        times_O3=times["-O3"],
        vs_O2=_compare("-O2", times[_CANDIDATE], times["-O2"], boot),
        vs_O3=_compare("-O3", times[_CANDIDATE], times["-O3"], boot),
    )
