"""Neighbour-smoothed scores: how good a candidate's neighbourhood of evaluated candidates is.

Under noise, a candidate whose nearest evaluated neighbours also score well is more likely to be
truly good than one lucky measurement among poor neighbours. The re-measurement phase
(:func:`genetune.remeasure.select`) uses this to choose most of the candidates it re-measures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["features", "neighbour_count", "smoothed"]

#: Distances computed at once (rows of the distance matrix times candidates): about 32 MB.
BLOCK_CELLS = 4_000_000


def neighbour_count(n: int) -> int:
    """The neighbours that smooth a score among ``n`` candidates: a quarter of them, 8 to 64."""
    return max(8, min(64, n // 4))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def features(params: Sequence[Any]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Numeric leaves scaled to [0, 1] by their range over the candidates, and integer codes of
    the other leaves (an absent leaf, knocked out or inactive, is a value of its own)."""
    from genetune.loading import flatten_params  # loading imports YAML: only when a search ends

    leaves = [flatten_params(p) for p in params]
    numeric: list[NDArray[np.float64]] = []
    codes: list[NDArray[np.int64]] = []
    for path in sorted({k for leaf in leaves for k in leaf}):
        present = [path in leaf for leaf in leaves]
        values = [leaf.get(path) for leaf in leaves]
        if all(present) and all(_is_number(v) for v in values):
            x = np.array(values, dtype=np.float64)
            span = float(x.max() - x.min())
            if span > 0:
                numeric.append((x - x.min()) / span)
            continue
        keys = [json.dumps(v, sort_keys=True, default=str) if here else "\0absent" for v, here in zip(values, present, strict=True)]
        table = {k: i for i, k in enumerate(sorted(set(keys)))}
        codes.append(np.array([table[k] for k in keys], dtype=np.int64))
    n = len(params)
    x = np.stack(numeric, axis=1) if numeric else np.zeros((n, 0), dtype=np.float64)
    c = np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.int64)
    return x, c


def smoothed(
    params: Sequence[Any], scores: NDArray[np.float64], queries: Sequence[int] | None = None, neighbours: int | None = None
) -> NDArray[np.float64]:
    """The scores of ``queries`` (positions; default all) averaged with those of their
    ``neighbours`` (default :func:`neighbour_count`) nearest other candidates, weighted by a
    tricube kernel as wide as the farthest of them (a local k-NN smoother). Distance: squared
    differences of the range-scaled numeric leaves plus 1 per other leaf that differs."""
    n = len(params)
    wanted = np.arange(n) if queries is None else np.asarray(queries, dtype=np.intp)
    k = min(neighbour_count(n) if neighbours is None else neighbours, n - 1)
    if k <= 0:
        return np.asarray(scores, dtype=np.float64)[wanted].copy()
    x, c = features(params)
    norms = (x**2).sum(axis=1)
    out = np.empty(len(wanted), dtype=np.float64)
    block = max(1, BLOCK_CELLS // n)
    for start in range(0, len(wanted), block):
        rows = wanted[start : start + block]
        # |a - b|^2 as |a|^2 + |b|^2 - 2ab, one categorical column at a time: memory block x n
        d = np.maximum(norms[rows, None] + norms[None, :] - 2.0 * (x[rows] @ x.T), 0.0)
        for j in range(c.shape[1]):
            d += c[rows, j, None] != c[None, :, j]
        d[np.arange(len(rows)), rows] = np.inf
        near = np.argpartition(d, k - 1, axis=1)[:, :k]
        dn = np.take_along_axis(d, near, axis=1)
        width = dn.max(axis=1, keepdims=True) * 1.0001 + 1e-12  # the farthest neighbour keeps a (tiny) weight
        w = (1.0 - (dn / width) ** 3) ** 3
        out[start : start + len(rows)] = (scores[rows] + (w * scores[near]).sum(axis=1)) / (1.0 + w.sum(axis=1))
    return out
