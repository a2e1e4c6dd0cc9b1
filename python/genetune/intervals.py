"""Confidence intervals and Welch's test, one method for both: a 95% interval that excludes the
null value exactly when the two-sided test's p < 0.05 (scipy, imported on first use)."""

from __future__ import annotations

import importlib
import math
import statistics
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["mean_interval", "welch"]


def _t() -> Any:
    return importlib.import_module("scipy.stats").t  # scipy is untyped and slow to import


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student's t interval of the mean (NaN bounds below two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    half = float(_t().ppf(0.5 + level / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def welch(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """Welch's unequal-variance t test of ``mean(a) - mean(b)``: ``(difference, low, high, p)``,
    the interval being the test's own (Welch–Satterthwaite degrees of freedom)."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise ValueError(f"Welch's test needs at least two values per sample, got {na} and {nb}")
    diff = statistics.fmean(a) - statistics.fmean(b)
    va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
    se = math.sqrt(va + vb)
    if se == 0:  # both samples constant (timer granularity): no spread to test against
        return diff, diff, diff, (1.0 if diff == 0 else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        t = _t()
        half = float(t.ppf(0.5 + level / 2, df)) * se
        p = float(2 * t.sf(abs(diff) / se, df))
    return diff, diff - half, diff + half, min(1.0, p)
