"""`SearchResult`: the table of a search's evaluations, with best-of, Pareto front and hypervolume.

Differences from CompileIQ's ``SearchResult`` (on purpose):

* per-objective directions (``"min"``/``"max"``) instead of one ``problem_type``;
* strict Pareto dominance: weakly dominated points are dropped (exact duplicates are all kept);
* the baseline row and every invalid row (status ``"invalid"``, or a NaN/inf in the columns used)
  never win ``get_best_result`` and never enter the Pareto front or the hypervolume;
* invalid scores are NaN (float64) in *every* score column, never the string ``"*"``;
* ``"avg"``/``"stddev"`` only look at fully valid rows, after orienting every objective so that
  lower is better (a ``"max"`` objective is negated first).
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import re
import statistics
import tempfile
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from genetune.config import ProblemType
from genetune.intervals import mean_interval
from genetune.jsonable import json_default
from genetune.scores import BASELINE_ID, INVALID_SCORE

if TYPE_CHECKING:  # pandas is imported where a table is built: it is half of `import genetune`'s time, on every Dask worker too
    import pandas as pd

__all__ = ["ALL_INVALID_MESSAGE", "BASELINE_ID", "Directions", "MultiScoreScope", "SearchResult", "hypervolume", "pareto_mask"]

#: Per-objective directions: one ``"min"``/``"max"`` (or :class:`ProblemType`) for all objectives,
#: or one per objective.
Directions: TypeAlias = Sequence[ProblemType | str] | ProblemType | str
#: How ``get_best_result`` picks among several objectives.
MultiScoreScope: TypeAlias = Literal["pareto_front", "avg", "stddev"]

#: What ``get_best_result`` raises when no row is valid.
ALL_INVALID_MESSAGE: Final = "All resulting scores are marked as invalid. Make sure your search ran correctly."

_SCORE_RE: Final = re.compile(r"score_(\d+)")
_NORM_RE: Final = re.compile(r"norm_score_(\d+)")
_SCOPES: Final = ("pareto_front", "avg", "stddev")
_STATUS_VALID: Final = "valid"
_STATUS_INVALID: Final = "invalid"
_STATUS_REMEASURE: Final = "remeasure"
_STATUS_RACE: Final = "race"
# Boolean cells one chunk of the dominance check for M>3 objectives may allocate (M=3 uses Kung's sweep).
_CHUNK_CELLS: Final = 1 << 23
_DEFAULT_NA: Final = ["", "NaN", "nan", "NA", "N/A", "NULL", "null", "None", "<NA>"]


# ----- directions and helpers ------------------------------------------------------------------


def _parse_directions(directions: Directions, num_objectives: int) -> list[ProblemType]:
    def one(d: ProblemType | str) -> ProblemType:
        try:
            return ProblemType(str(d).lower())
        except ValueError:
            raise ValueError(f"a direction must be 'min' or 'max', got {d!r}") from None

    if isinstance(directions, str):  # ProblemType is a str too
        return [one(directions)] * num_objectives
    dirs = [one(d) for d in directions]
    if len(dirs) != num_objectives:
        raise ValueError(f"directions has {len(dirs)} entries; it must be equal to num_objectives ({num_objectives})")
    return dirs


def _signs(directions: Sequence[ProblemType]) -> NDArray[np.float64]:
    """+1 for "min", -1 for "max": multiplying by it makes lower better everywhere."""
    return np.array([-1.0 if d == ProblemType.MAX else 1.0 for d in directions], dtype=np.float64)


def _as_matrix(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, objectives) array, got shape {arr.shape}")
    return arr


# ----- Pareto dominance (minimization, finite values) ------------------------------------------


def _front_mask_2d(x: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Sort-based strict non-dominance for two objectives, O(n log n)."""
    n = x.shape[0]
    order = np.lexsort((x[:, 1], x[:, 0]))
    s1, s2 = x[order, 0], x[order, 1]
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    # First sorted index of each run of identical points: duplicates never dominate each other.
    start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    prefix_min = np.minimum.accumulate(s2)
    # Every point lexicographically before p dominates it iff its f2 <= p's f2.
    before = np.where(start > 0, prefix_min[np.maximum(start - 1, 0)], np.inf)
    mask = np.empty(n, dtype=bool)
    mask[order] = ~(before <= s2)
    return mask


def _front_mask_3d_unique(u: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Non-dominance of *distinct* 3-D points: Kung's sweep, O(n log n) plus list shifts.

    Points go in lexicographic order, so every dominator of p comes before it; a staircase of the
    (f2, f3) projections seen so far (f2 increasing, f3 decreasing) answers "is some earlier point
    <= p on f2 and f3", which for distinct points means p is dominated.
    """
    n = u.shape[0]
    order = np.lexsort((u[:, 2], u[:, 1], u[:, 0]))
    keep = np.zeros(n, dtype=bool)
    ys: list[float] = []
    neg_zs: list[float] = []  # -f3, increasing
    for k, (_, y, z) in enumerate(u[order].tolist()):
        i = bisect.bisect_right(ys, y)
        if i and -neg_zs[i - 1] <= z:
            continue
        keep[k] = True
        # Drop the steps that (y, z) dominates in 2-D: one with the same f2 just before i, and
        # those from i on whose f3 is >= z.
        start = i - 1 if i and ys[i - 1] == y else i
        end = bisect.bisect_right(neg_zs, -z)
        del ys[start:end], neg_zs[start:end]
        ys.insert(start, y)
        neg_zs.insert(start, -z)
    out = np.empty(n, dtype=bool)
    out[order] = keep
    return out


def _front_mask_unique(u: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Non-dominance of *distinct* points: Kung's sweep for M=3, chunked numpy above."""
    if u.shape[1] == 3:
        return _front_mask_3d_unique(u)
    return _front_mask_chunked(u)


def _front_mask_chunked(u: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Non-dominance of *distinct* points (any M), chunked numpy.

    Points are processed by increasing sum (a dominator has a smaller or equal sum), each chunk
    against the front found so far and against itself; a point dominated by a non-front point is
    also dominated by a front point (transitivity), so comparing with the front suffices.
    """
    n, m = u.shape
    sums = u.sum(axis=1)
    order = np.argsort(sums, kind="stable")
    pts, ss = u[order], sums[order]
    keep = np.zeros(n, dtype=bool)
    front = np.empty((0, m), dtype=np.float64)
    a = 0
    while a < n:
        size = max(1, min(4096, _CHUNK_CELLS // max(1, (front.shape[0] + 4096) * m)))
        # Never split a run of equal sums: a dominator's (rounded) sum may equal p's.
        b = int(np.searchsorted(ss, ss[min(n, a + size) - 1], side="right"))
        chunk = pts[a:b]
        against = np.concatenate((front, chunk)) if front.shape[0] else chunk
        weakly = np.less_equal(against[None, :, 0], chunk[:, None, 0])
        step = np.empty_like(weakly)
        for j in range(1, m):  # column by column keeps the temporaries two-dimensional
            np.less_equal(against[None, :, j], chunk[:, None, j], out=step)
            weakly &= step
        # Points are distinct, so "q <= p everywhere" with q != p is strict dominance; the
        # only weak match of p within its own chunk that is not a dominator is p itself.
        dominated = weakly.sum(axis=1) > 1
        keep[a:b] = ~dominated
        front = np.concatenate((front, chunk[~dominated]))
        a = b
    out = np.empty(n, dtype=bool)
    out[order] = keep
    return out


def _front_mask_min(x: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Strict non-dominance (minimization) of finite rows; exact duplicates share the outcome."""
    n, m = x.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    x = x + 0.0  # -0.0 -> 0.0, so that equal points compare and deduplicate as equal
    if m == 1:
        return np.asarray(x[:, 0] == x[:, 0].min())
    if m == 2:
        return _front_mask_2d(x)
    uniq, inverse = np.unique(x, axis=0, return_inverse=True)
    return _front_mask_unique(uniq)[inverse.reshape(-1)]


def pareto_mask(scores: ArrayLike, directions: Directions) -> NDArray[np.bool_]:
    """Boolean mask of the rows of ``scores`` (``(n, M)``) on the Pareto front.

    A row is dropped when another row is no worse on every objective and strictly better on at
    least one (strict dominance: weakly dominated rows are dropped, exact duplicates are all kept).
    Rows with a NaN or inf are never on the front and dominate nothing. Sort-based for two and
    three objectives (O(n log n)); chunked numpy, O(n * front size), for more.
    """
    arr = _as_matrix(scores, "scores")
    m = arr.shape[1]
    if m == 0:
        raise ValueError("scores must have at least one objective column")
    oriented = arr * _signs(_parse_directions(directions, m))
    finite = np.isfinite(oriented).all(axis=1)
    mask = np.zeros(arr.shape[0], dtype=bool)
    idx = np.flatnonzero(finite)
    if idx.size:
        mask[idx] = _front_mask_min(oriented[idx])
    return mask


# ----- hypervolume (minimization, every point strictly below ref) ------------------------------


def _hv_2d(p: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    order = np.lexsort((p[:, 1], p[:, 0]))
    s1, s2 = p[order, 0], p[order, 1]
    # Running best f2 over points sorted by f1: each improvement adds a rectangle up to ref[0].
    best = np.minimum.accumulate(np.concatenate(([ref[1]], s2)))
    return float(np.sum((ref[0] - s1) * (best[:-1] - best[1:])))


def _hv_min(p: NDArray[np.float64], ref: NDArray[np.float64]) -> float:
    """Exact hypervolume: sweep for M=2, WFG (exclusive contributions) above."""
    n, m = p.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        return _hv_2d(p, ref)
    uniq = np.unique(p + 0.0, axis=0)
    front = uniq[_front_mask_unique(uniq)]
    # Worst-last-objective first: every later point q has q[-1] <= p[-1], so the part of p's box
    # that later points also cover is a slab of height ref[-1] - p[-1] over an (M-1)-D union.
    front = front[np.argsort(-front[:, -1], kind="stable")]
    total = 0.0
    for k in range(front.shape[0]):
        q = front[k]
        contribution = float(np.prod(ref - q))
        if k + 1 < front.shape[0]:
            limited = np.maximum(front[k + 1 :, :-1], q[:-1])
            contribution -= float(ref[-1] - q[-1]) * _hv_min(limited, ref[:-1])
        total += contribution
    return total


def hypervolume(points: ArrayLike, ref_point: Sequence[float] | ArrayLike, directions: Directions = ProblemType.MIN) -> float:
    """Exact hypervolume dominated by ``points`` (``(n, M)``) up to ``ref_point``.

    ``ref_point`` is in the same units and orientation as the points: above the front for a
    ``"min"`` objective, below it for a ``"max"`` one. Points that are not strictly better than the
    reference on every objective, and rows with NaN/inf, contribute nothing; dominated points are
    harmless. O(n log n) for two objectives; WFG for more (fine for fronts of a few hundred points).
    """
    ref = np.asarray(ref_point, dtype=np.float64).reshape(-1)
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, ref.shape[0])
    arr = _as_matrix(arr, "points")
    m = arr.shape[1]
    if ref.shape[0] != m:
        raise ValueError(f"ref_point has {ref.shape[0]} values; it must have one per objective ({m})")
    if not np.isfinite(ref).all():
        raise ValueError(f"ref_point must be finite, got {ref.tolist()}")
    signs = _signs(_parse_directions(directions, m))
    oriented, oref = arr * signs, ref * signs
    inside = np.isfinite(oriented).all(axis=1) & (oriented < oref).all(axis=1)
    return _hv_min(oriented[inside], oref)


# ----- column conversion -----------------------------------------------------------------------


def _float_cell(value: Any) -> float:
    if value is None or (isinstance(value, str) and value.strip() in ("", INVALID_SCORE)):
        return math.nan
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"a score must be a number or {INVALID_SCORE!r}, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"a score must be a number or {INVALID_SCORE!r}, got {value!r}") from None


def _float_column(values: pd.Series[Any]) -> NDArray[np.float64]:
    if values.dtype.kind in "fiu":
        return values.to_numpy(dtype=np.float64, copy=True)
    return np.array([_float_cell(v) for v in values], dtype=np.float64)


def _is_baseline_id(ids: pd.Series[Any]) -> NDArray[np.bool_]:
    """``baseline``, or ``baseline@<placement>`` for per-placement baselines."""
    text = ids.astype(str)
    return np.asarray((text == BASELINE_ID) | text.str.startswith(BASELINE_ID + "@"), dtype=bool)


def _id_column(values: Iterable[Any]) -> pd.Series[Any]:
    """Ids as int64, or (with the baseline's "baseline") an object column of ints and strings."""
    import pandas as pd
    out: list[Any] = []
    all_int = True
    for v in values:
        if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            out.append(int(v))
        elif isinstance(v, float | np.floating) and float(v).is_integer():
            out.append(int(v))
        elif isinstance(v, str):
            try:
                out.append(int(v.strip()))
            except ValueError:
                out.append(v)
                all_int = False
        else:
            out.append(v)
            all_int = False
    if all_int:
        return pd.Series(np.array(out, dtype=np.int64))
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return pd.Series(arr, dtype=object)


def _object_column(values: Iterable[Any]) -> pd.Series[Any]:
    import pandas as pd
    items = list(values)
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return pd.Series(arr, dtype=object)


def _str_column(values: Iterable[Any]) -> pd.Series[Any]:
    import pandas as pd
    items = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    return pd.Series(items, dtype=object).astype(str)


def _numbered(columns: Iterable[Hashable], pattern: re.Pattern[str]) -> list[str]:
    found = [(int(mt.group(1)), c) for c in columns if isinstance(c, str) and (mt := pattern.fullmatch(c))]
    return [c for _, c in sorted(found)]


def _check_required(columns: Sequence[Hashable]) -> None:
    missing = []
    if "params" not in columns:
        missing.append("a 'params' column")
    if not _numbered(columns, _SCORE_RE):
        missing.append("score columns (named score_<num>, e.g. score_1)")
    if missing:
        raise ValueError(f"Results table is missing {' and '.join(missing)}; found columns {list(columns)}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=json_default)


def _loads_or_raw(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _canonical_frame(df: pd.DataFrame, m: int) -> pd.DataFrame:
    """The table with genetune's columns, order and dtypes (missing optional columns filled in)."""
    import pandas as pd
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"SearchResult needs a pandas DataFrame, got {type(df).__name__}")
    columns = list(df.columns)
    _check_required(columns)
    scores = _numbered(columns, _SCORE_RE)
    expected = [f"score_{i}" for i in range(1, m + 1)]
    if scores != expected:
        raise ValueError(f"Number of score columns does not match num_objectives ({m}): expected {expected}, got {scores}")
    norms = _numbered(columns, _NORM_RE)
    expected_norm = [f"norm_score_{i}" for i in range(1, m + 1)]
    if norms and norms != expected_norm:
        raise ValueError(f"Normalized score columns do not match num_objectives ({m}): expected {expected_norm}, got {norms}")
    src = df.reset_index(drop=True)
    n = len(src)
    out: dict[Hashable, pd.Series[Any]] = {}
    out["generation"] = (
        pd.Series(src["generation"].to_numpy(dtype=np.int64)) if "generation" in src else pd.Series(np.zeros(n, dtype=np.int64))
    )
    out["id"] = _id_column(src["id"]) if "id" in src else pd.Series(np.arange(n, dtype=np.int64))
    out["params"] = _object_column(src["params"])
    for c in scores + norms:
        out[c] = pd.Series(_float_column(src[c]))
    raw = np.column_stack([out[c].to_numpy() for c in scores])
    baseline = _is_baseline_id(out["id"])
    derived = np.where(baseline, BASELINE_ID, np.where(np.isfinite(raw).all(axis=1), _STATUS_VALID, _STATUS_INVALID))
    if "status" in src:
        given = src["status"].to_numpy(dtype=object)
        status = [d if g is None or (isinstance(g, float) and math.isnan(g)) or g == "" else g for g, d in zip(given, derived, strict=True)]
        out["status"] = _str_column(status)
    else:
        out["status"] = _str_column(derived)
    out["reason"] = _str_column(src["reason"]) if "reason" in src else _str_column([""] * n)
    out["duration_s"] = pd.Series(_float_column(src["duration_s"])) if "duration_s" in src else pd.Series(np.full(n, np.nan))
    out["metadata"] = _object_column(src["metadata"]) if "metadata" in src else _object_column({} for _ in range(n))
    for c in columns:
        if c not in out:
            out[c] = src[c]
    return pd.DataFrame(out)


# ----- SearchResult ----------------------------------------------------------------------------


class SearchResult:
    """All evaluations of a search, one row each (the baseline row included), pandas-backed.

    Columns, in order: ``generation``, ``id`` (int, ``"baseline"`` for the baseline row),
    ``params``, ``score_1..score_M`` (float64, NaN = invalid), ``norm_score_1..norm_score_M`` (only
    when normalized), ``status`` (``"valid"``/``"invalid"``/``"baseline"``), ``reason``,
    ``duration_s``, ``metadata``; any other column of ``df`` follows. Missing optional columns are
    filled in (``status`` derived from the scores and ``id``), and the index is reset.

    Best and Pareto use the normalized columns when present, else the raw ones; they ignore the
    baseline row (status or id ``"baseline"``) and invalid rows (status ``"invalid"`` or any
    NaN/inf in the columns used).
    """

    __slots__ = ("_df", "_directions", "_num_objectives")

    def __init__(self, df: pd.DataFrame, directions: Directions, num_objectives: int) -> None:
        if isinstance(num_objectives, bool) or not isinstance(num_objectives, int | np.integer) or num_objectives < 1:
            raise ValueError(f"num_objectives must be a positive int, got {num_objectives!r}")
        self._num_objectives = int(num_objectives)
        self._directions = _parse_directions(directions, self._num_objectives)
        self._df = _canonical_frame(df, self._num_objectives)

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], directions: Directions, num_objectives: int, normalized: bool = False
    ) -> SearchResult:
        """Builds the table from row dicts with keys ``generation``, ``id``, ``params``, ``scores``
        (M numbers; NaN, None or ``"*"`` = invalid) and optionally ``norm_scores`` (M numbers or
        None), ``status`` (derived when absent), ``reason``, ``duration_s``, ``metadata``."""
        import pandas as pd
        m = num_objectives
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"num_objectives must be a positive int, got {m!r}")
        cols: dict[str, list[Any]] = {k: [] for k in ("generation", "id", "params", "status", "reason", "duration_s", "metadata")}
        raw: list[list[float]] = []
        norm: list[list[float]] = []

        def vector(value: Any, what: str, i: int) -> list[float]:
            if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
                value = [value]
            vals = [_float_cell(v) for v in value]
            if len(vals) != m:
                raise ValueError(f"row {i}: {what} has {len(vals)} values; expected num_objectives ({m})")
            return vals

        for i, row in enumerate(rows):
            for key in ("generation", "id", "params", "scores"):
                if key not in row:
                    raise ValueError(f"row {i} has no {key!r}")
            raw.append(vector(row["scores"], "scores", i))
            if normalized:
                ns = row.get("norm_scores")
                norm.append([math.nan] * m if ns is None else vector(ns, "norm_scores", i))
            cols["generation"].append(row["generation"])
            cols["id"].append(row["id"])
            cols["params"].append(row["params"])
            cols["status"].append(row.get("status"))
            cols["reason"].append(row.get("reason", ""))
            cols["duration_s"].append(row.get("duration_s", math.nan))
            cols["metadata"].append(row.get("metadata", {}))
        n = len(raw)
        raw_arr = np.array(raw, dtype=np.float64).reshape(n, m)
        data: dict[str, pd.Series[Any]] = {
            "generation": pd.Series(np.array(cols["generation"], dtype=np.int64)),
            "id": _id_column(cols["id"]),
            "params": _object_column(cols["params"]),
        }
        for j in range(m):
            data[f"score_{j + 1}"] = pd.Series(raw_arr[:, j])
        if normalized:
            norm_arr = np.array(norm, dtype=np.float64).reshape(n, m)
            for j in range(m):
                data[f"norm_score_{j + 1}"] = pd.Series(norm_arr[:, j])
        data["status"] = _object_column(cols["status"])
        data["reason"] = _object_column(cols["reason"])
        data["duration_s"] = pd.Series(np.array(cols["duration_s"], dtype=np.float64))
        data["metadata"] = _object_column(cols["metadata"])
        return cls(pd.DataFrame(data), directions, m)

    # ----- table access ------------------------------------------------------------------------

    def get_results(self) -> pd.DataFrame:
        """The results table (not a copy)."""
        return self._df

    @property
    def df_results(self) -> pd.DataFrame:
        """CompileIQ's name for :meth:`get_results`."""
        return self._df

    def __len__(self) -> int:
        return len(self._df)

    def __getitem__(self, i: int) -> pd.Series[Any]:
        """Row ``i`` (positional), as ``df.iloc[i]``."""
        return self._df.iloc[i]

    def __repr__(self) -> str:
        dirs = [str(d) for d in self._directions]
        return f"SearchResult(rows={len(self)}, num_objectives={self._num_objectives}, directions={dirs}, normalized={self.is_normalized})"

    @property
    def score_columns(self) -> list[str]:
        """Columns named exactly ``score_<num>``, in objective order."""
        return _numbered(self._df.columns, _SCORE_RE)

    @property
    def norm_score_columns(self) -> list[str]:
        """Columns named exactly ``norm_score_<num>``, in objective order."""
        return _numbered(self._df.columns, _NORM_RE)

    @property
    def is_normalized(self) -> bool:
        """Whether normalized columns are present (best and Pareto then use them)."""
        return bool(self.norm_score_columns)

    @property
    def num_objectives(self) -> int:
        return self._num_objectives

    @property
    def num_scores(self) -> int:
        """CompileIQ's name for :attr:`num_objectives`."""
        return self._num_objectives

    @property
    def directions(self) -> list[ProblemType]:
        return list(self._directions)

    # ----- selection ---------------------------------------------------------------------------

    def _used_columns(self) -> list[str]:
        return self.norm_score_columns if self.is_normalized else self.score_columns

    def _baseline_mask(self) -> NDArray[np.bool_]:
        status = (self._df["status"] == BASELINE_ID).to_numpy(dtype=bool)
        ids = _is_baseline_id(self._df["id"])
        return np.asarray(status | ids)

    def _used_scores(self) -> NDArray[np.float64]:
        return self._df[self._used_columns()].to_numpy(dtype=np.float64)

    def _remeasure_mask(self) -> NDArray[np.bool_]:
        """Rows that measure a candidate again (re-measurement, racing): never candidates themselves."""
        return np.asarray(self._df["status"].isin([_STATUS_REMEASURE, _STATUS_RACE]).to_numpy(dtype=bool))

    def _raced_best(self) -> dict[str, Any] | None:
        """One objective with racing: the best mean among the candidates measured more than once."""
        race = np.flatnonzero((self._df["status"] == _STATUS_RACE).to_numpy(dtype=bool))
        if self._num_objectives != 1 or race.size == 0:
            return None
        used = self._used_scores()[:, 0]
        extra: dict[Any, list[float]] = {}
        for pos in race:
            meta = self._df["metadata"].iat[int(pos)]
            of = meta.get("race_of") if isinstance(meta, Mapping) else None
            if of is not None and math.isfinite(used[pos]):
                extra.setdefault(of, []).append(float(used[pos]))
        sign = float(_signs(self._directions)[0])
        best: tuple[float, int, list[float]] | None = None
        ids = self._df["id"]
        for pos in np.flatnonzero(self._candidate_mask()):
            more = extra.get(ids.iat[int(pos)])
            if not more:
                continue
            sample = [float(used[pos]), *more]
            key = sign * statistics.fmean(sample)
            if best is None or key < best[0]:
                best = (key, int(pos), sample)
        if best is None:
            return None
        row = self._rows([best[1]])[0]
        row.update(race_mean=statistics.fmean(best[2]), race_n=len(best[2]))
        return row

    def _candidate_mask(self) -> NDArray[np.bool_]:
        """Rows that may win: not baseline, not a re-measurement, not marked invalid, finite in
        the used columns."""
        finite = np.isfinite(self._used_scores()).all(axis=1)
        invalid = (self._df["status"] == _STATUS_INVALID).to_numpy(dtype=bool)
        return np.asarray(finite & ~invalid & ~self._baseline_mask() & ~self._remeasure_mask())

    def remeasured(self) -> pd.DataFrame:
        """Per re-measured item (``remeasure_top``; the baseline included when normalized): ``id``,
        ``n`` (valid re-measurements), and per objective ``mean_<j>``, ``ci_low_<j>``,
        ``ci_high_<j>`` (Student's t 95% interval) of the used columns (normalized ones when
        normalized). Empty without re-measurements."""
        import pandas as pd
        mask = self._remeasure_mask()
        columns = ["id", "n"] + [f"{k}_{j}" for j in range(1, self._num_objectives + 1) for k in ("mean", "ci_low", "ci_high")]
        if not mask.any():
            return pd.DataFrame(columns=columns)
        used = self._used_scores()
        groups: dict[Any, list[NDArray[np.float64]]] = {}
        for pos in np.flatnonzero(mask):
            meta = self._df["metadata"].iat[int(pos)]
            of = meta.get("remeasure_of") if isinstance(meta, Mapping) else None
            if of is None:
                continue
            bucket = groups.setdefault(of, [])
            if np.isfinite(used[pos]).all():
                bucket.append(used[pos])
        records = []
        for of, values in groups.items():
            record: dict[str, Any] = {"id": of, "n": len(values)}
            for j in range(self._num_objectives):
                mean, low, high = mean_interval([float(v[j]) for v in values])
                record.update({f"mean_{j + 1}": mean, f"ci_low_{j + 1}": low, f"ci_high_{j + 1}": high})
            records.append(record)
        return pd.DataFrame(records, columns=columns)

    def _remeasured_best(self, scope: str) -> dict[str, Any] | list[dict[str, Any]] | None:
        """`get_best_result` by the re-measured means (None when nothing was re-measured)."""
        table = self.remeasured()
        if table.empty:
            return None
        ids = self._df["id"]
        candidates = ~self._baseline_mask() & ~self._remeasure_mask()
        picks: list[tuple[int, dict[str, Any]]] = []
        m = self._num_objectives
        for record in table.to_dict(orient="records"):
            if record["n"] == 0:
                continue
            where = np.flatnonzero(candidates & (ids == record["id"]).to_numpy(dtype=bool))
            if where.size == 0:  # the baseline, or a candidate the table lacks
                continue
            means = [float(record[f"mean_{j}"]) for j in range(1, m + 1)]
            ci = [(float(record[f"ci_low_{j}"]), float(record[f"ci_high_{j}"])) for j in range(1, m + 1)]
            row = self._rows([int(where[0])])[0]
            row.update(
                remeasured_mean=means[0] if m == 1 else means,
                remeasured_ci95=ci[0] if m == 1 else ci,
                remeasured_n=int(record["n"]),
            )
            picks.append((int(where[0]), row))
        if not picks:
            return None
        picks.sort(key=lambda p: p[0])
        rows = [row for _, row in picks]
        signs = _signs(self._directions)
        x = np.array([np.atleast_1d(np.asarray(r["remeasured_mean"], dtype=np.float64)) for r in rows]) * signs
        if m == 1:
            return rows[int(np.argmin(x[:, 0]))]
        if scope == "pareto_front":
            return [r for r, keep in zip(rows, _front_mask_min(x), strict=True) if keep]
        key = x.mean(axis=1) if scope == "avg" else x.std(axis=1, ddof=1)
        return rows[int(np.argmin(key))]

    def _oriented(self) -> NDArray[np.float64]:
        """Used scores with every objective turned into "lower is better"."""
        return self._used_scores() * _signs(self._directions)

    def _rows(self, positions: Sequence[int] | NDArray[np.intp]) -> list[dict[str, Any]]:
        records = self._df.iloc[np.asarray(positions, dtype=np.intp)].to_dict(orient="records")
        return cast(list[dict[str, Any]], records)

    def get_best_result(self, multiscore_scope: MultiScoreScope | str = "pareto_front") -> dict[str, Any] | list[dict[str, Any]]:
        """The best valid, non-baseline row (as a dict of its columns).

        One objective: the row with the best score (ties: the first row). Several objectives,
        by ``multiscore_scope``: ``"pareto_front"`` -> the list of rows on the Pareto front;
        ``"avg"`` -> the row with the lowest mean over the objectives after negating ``"max"``
        objectives (lower is better for all); ``"stddev"`` -> the row with the smallest sample
        standard deviation (ddof=1) over those oriented objectives. Ties: the first row.

        After a re-measurement (``remeasure_top``), the choice is made among the re-measured
        candidates by their re-measured means (the search's own measurement left out: it is the
        lucky one), and each returned row also has ``remeasured_mean``, ``remeasured_ci95``
        (Student's t 95% interval; a list of them for several objectives) and ``remeasured_n``.
        Else, after racing (``racing=True``): the best mean among the candidates measured more than
        once, with ``race_mean`` and ``race_n``.
        """
        scope = str(multiscore_scope)
        if scope not in _SCOPES:
            raise ValueError(f"Unknown multiscore_scope {scope!r}; expected one of {list(_SCOPES)}")
        remeasured = self._remeasured_best(scope)
        if remeasured is not None:
            return remeasured
        raced = self._raced_best()
        if raced is not None:
            return raced
        idx = np.flatnonzero(self._candidate_mask())
        if idx.size == 0:
            raise ValueError(ALL_INVALID_MESSAGE)
        x = self._oriented()[idx]
        if self._num_objectives == 1:
            return self._rows([int(idx[np.argmin(x[:, 0])])])[0]
        if scope == "pareto_front":
            return self._rows(idx[_front_mask_min(x)])
        key = x.mean(axis=1) if scope == "avg" else x.std(axis=1, ddof=1)
        return self._rows([int(idx[np.argmin(key)])])[0]

    @staticmethod
    def pareto_mask(scores: ArrayLike, directions: Directions) -> NDArray[np.bool_]:
        """The module-level :func:`pareto_mask`."""
        return pareto_mask(scores, directions)  # the module function (class scope is not visible here)

    def _front_mask(self) -> NDArray[np.bool_]:
        """Per row: whether it is on the Pareto front of the valid, non-baseline rows."""
        mask = np.zeros(len(self._df), dtype=bool)
        idx = np.flatnonzero(self._candidate_mask())
        if idx.size:
            mask[idx] = _front_mask_min(self._oriented()[idx])
        return mask

    def pareto_front(self) -> list[dict[str, Any]]:
        """The rows (dicts) on the strict Pareto front of the valid, non-baseline rows, in table
        order; empty when there is none."""
        if self._num_objectives == 1:
            raise ValueError("pareto_front is only meaningful for multi-objective searches")
        return self._rows(np.flatnonzero(self._front_mask()))

    def hypervolume(self, ref_point: Sequence[float] | ArrayLike) -> float:
        """Hypervolume of the valid, non-baseline rows (normalized columns when normalized) up to
        ``ref_point``, given in the scores' own units and orientation (see :func:`hypervolume`)."""
        valid = self._candidate_mask()
        return hypervolume(self._used_scores()[valid], ref_point, self._directions)

    def summary(self, ref_point: Sequence[float] | ArrayLike | None = None) -> dict[str, Any]:
        """Counts and the best so far: ``evaluations`` (non-baseline rows), ``invalid``,
        ``invalid_rate`` (NaN without evaluations), ``generations`` (distinct generations of the
        evaluations), then ``best`` (best used score, None if no valid row) for one objective, or
        ``pareto_size`` (and ``hypervolume`` when ``ref_point`` is given) for several."""
        # Race measurements spend the budget (evaluations); re-measurements come after it.
        base = self._baseline_mask() | (self._df["status"] == _STATUS_REMEASURE).to_numpy(dtype=bool)
        valid = self._candidate_mask()
        evaluations = int((~base).sum())
        invalid = int((~base & ~valid & ~self._remeasure_mask()).sum())
        out: dict[str, Any] = {
            "evaluations": evaluations,
            "invalid": invalid,
            "invalid_rate": invalid / evaluations if evaluations else math.nan,
            "generations": int(self._df.loc[~base, "generation"].nunique()),
        }
        if self._num_objectives == 1:
            scores = self._used_scores()[valid, 0]
            if scores.size == 0:
                out["best"] = None
            else:
                out["best"] = float(scores.max() if self._directions[0] == ProblemType.MAX else scores.min())
        else:
            out["pareto_size"] = int(self._front_mask().sum())
            if ref_point is not None:
                out["hypervolume"] = self.hypervolume(ref_point)
        return out

    # ----- persistence -------------------------------------------------------------------------

    def _encoded(self, ids_as_text: bool) -> pd.DataFrame:
        out = self._df.copy()
        out["params"] = _object_column(_dumps(v) for v in out["params"]).astype(str)
        out["metadata"] = _object_column(_dumps(v) for v in out["metadata"]).astype(str)
        if ids_as_text and out["id"].dtype == object:
            out["id"] = _str_column(out["id"])
        return out

    def save(self, path: str | Path = "./search_results.csv") -> Path:
        """Writes the table as CSV (no index; ``params`` and ``metadata`` JSON-encoded; text quoted).
        Atomically: a temporary file beside it, fsynced, then renamed (a full disk or a kill
        leaves the previous file, never a partial one)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                # Quoting every text field keeps a lone "\r" (which the csv module leaves bare) inside its cell.
                self._encoded(ids_as_text=False).to_csv(handle, index=False, quoting=csv.QUOTE_NONNUMERIC)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def to_parquet(self, path: str | Path) -> Path:
        """Writes the table as parquet (``params``/``metadata`` as JSON strings, mixed ids as text)."""
        path = Path(path)
        self._encoded(ids_as_text=True).to_parquet(path, index=False)
        return path

    @classmethod
    def _decoded(cls, df: pd.DataFrame, directions: Directions | None, num_objectives: int | None) -> SearchResult:
        _check_required(list(df.columns))
        df = df.copy()
        df["params"] = _object_column(_loads_or_raw(v) for v in df["params"])
        if "metadata" in df:
            df["metadata"] = _object_column(_loads_or_raw(v) for v in df["metadata"])
        m = num_objectives if num_objectives is not None else len(_numbered(df.columns, _SCORE_RE))
        return cls(df, directions if directions is not None else ProblemType.MIN, m)

    @classmethod
    def from_csv(
        cls, path: str | Path, directions: Directions | None = None, num_objectives: int | None = None
    ) -> SearchResult:
        """Reads a CSV written by :meth:`save` (or by CompileIQ: ``"*"`` scores read as NaN).

        ``num_objectives`` defaults to the number of ``score_<num>`` columns and ``directions`` to
        ``"min"`` for every objective."""
        import pandas as pd
        header = list(pd.read_csv(path, nrows=0).columns)
        _check_required(header)
        floats = [c for c in header if _SCORE_RE.fullmatch(c) or _NORM_RE.fullmatch(c) or c == "duration_s"]
        text = [c for c in header if c in ("id", "params", "status", "reason", "metadata")]
        dtype: dict[str, Any] = {c: np.float64 for c in floats}
        dtype.update({c: str for c in text})
        na_values: dict[str, list[str]] = {c: ["", INVALID_SCORE, "nan", "NaN", "NA"] for c in floats}
        na_values.update({c: list(_DEFAULT_NA) for c in header if c not in floats and c not in text})
        # pandas 3 parses floats exactly by default (and deprecates the option); pandas 2 needs it.
        exact: dict[str, Any] = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
        df = pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=na_values, **exact)
        return cls._decoded(df, directions, num_objectives)

    @classmethod
    def from_parquet(
        cls, path: str | Path, directions: Directions | None = None, num_objectives: int | None = None
    ) -> SearchResult:
        """Reads a parquet file written by :meth:`to_parquet` (defaults as in :meth:`from_csv`)."""
        import pandas as pd
        return cls._decoded(pd.read_parquet(path), directions, num_objectives)
