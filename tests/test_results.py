"""`SearchResult`: columns, best-of, strict Pareto, hypervolume, CSV/parquet round trips."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genetune import ProblemType
from genetune import results as results_mod
from genetune.results import ALL_INVALID_MESSAGE, SearchResult, hypervolume, pareto_mask

NAN = float("nan")


# ----- helpers ---------------------------------------------------------------------------------


def row(i: int | str, scores: list[float], gen: int = 0, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "generation": gen,
        "id": i,
        "params": kw.pop("params", {"x": i}),
        "scores": scores,
        "reason": kw.pop("reason", ""),
        "duration_s": kw.pop("duration_s", 0.5),
        "metadata": kw.pop("metadata", {"pid": 100}),
    }
    out.update(kw)
    return out


def baseline(scores: list[float], norm: list[float] | None = None) -> dict[str, Any]:
    return row("baseline", scores, params={}, status="baseline", norm_scores=norm)


def one(r: SearchResult, scope: str = "pareto_front") -> dict[str, Any]:
    best = r.get_best_result(scope)
    assert isinstance(best, dict)
    return best


def many(r: SearchResult) -> list[dict[str, Any]]:
    best = r.get_best_result("pareto_front")
    assert isinstance(best, list)
    return best


def brute_front(x: np.ndarray, directions: list[str]) -> np.ndarray:
    """O(n^2) strict-dominance reference, one pair at a time."""
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    o = x * signs
    finite = np.isfinite(o).all(axis=1)
    keep = np.zeros(len(o), dtype=bool)
    for i in range(len(o)):
        if not finite[i]:
            continue
        keep[i] = not any(
            finite[j] and np.all(o[j] <= o[i]) and np.any(o[j] < o[i]) for j in range(len(o)) if j != i
        )
    return keep


def brute_front_numpy(x: np.ndarray) -> np.ndarray:
    """O(n^2) strict-dominance reference for minimization, vectorized per row block."""
    keep = np.ones(len(x), dtype=bool)
    for a in range(0, len(x), 256):
        p = x[a : a + 256, None, :]
        le = (x[None, :, :] <= p).all(axis=2)
        lt = np.any(x[None, :, :] < p, axis=2)
        keep[a : a + 256] = ~(le & lt).any(axis=1)
    return keep


def grid_hypervolume(points: np.ndarray, ref: list[int], directions: list[str]) -> float:
    """Exact hypervolume of integer points by counting covered unit cells, in the user's orientation."""
    m = len(ref)
    axes = []
    for j in range(m):
        col = points[:, j] if len(points) else np.array([ref[j]])
        if directions[j] == "min":
            axes.append(np.arange(min(int(col.min()), ref[j]), ref[j]))
        else:
            axes.append(np.arange(ref[j], max(int(col.max()), ref[j])))
    if any(len(a) == 0 for a in axes) or len(points) == 0:
        return 0.0
    cells = np.array(list(itertools.product(*axes)), dtype=float)  # lower corners
    covered = np.zeros(len(cells), dtype=bool)
    for p in points:
        inside = np.ones(len(cells), dtype=bool)
        for j in range(m):
            # min: the box [p_j, ref_j) covers cell c iff p_j <= c; max: (ref_j, p_j] iff c + 1 <= p_j
            inside &= (p[j] <= cells[:, j]) if directions[j] == "min" else (cells[:, j] + 1 <= p[j])
        covered |= inside
    return float(covered.sum())


def mc_hypervolume(points: np.ndarray, ref: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    """Monte-Carlo estimate (minimization) and its standard error."""
    lo = points.min(axis=0)
    box = float(np.prod(ref - lo))
    rng = np.random.default_rng(seed)
    s = rng.uniform(lo, ref, size=(samples, len(ref)))
    hit = np.zeros(samples, dtype=bool)
    for p in points:
        hit |= (s >= p).all(axis=1)
    frac = hit.mean()
    return box * frac, box * math.sqrt(frac * (1 - frac) / samples)


def directions_for(m: int) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(["min", "max"]), min_size=m, max_size=m)


def grid_points(m: int, max_size: int = 25, allow_nan: bool = False) -> st.SearchStrategy[np.ndarray]:
    value = st.integers(0, 4).map(float)
    if allow_nan:
        value = st.one_of(value, value, value, st.just(NAN))
    return st.lists(st.tuples(*[value] * m), max_size=max_size).map(lambda rows: np.array(rows, dtype=float).reshape(-1, m))


# ----- columns and construction ----------------------------------------------------------------


def test_column_order_plain_and_normalized() -> None:
    r = SearchResult.from_rows([row(0, [1.0, 2.0])], ["min", "min"], 2)
    assert list(r.get_results().columns) == [
        "generation", "id", "params", "score_1", "score_2", "status", "reason", "duration_s", "metadata",
    ]  # fmt: skip
    assert not r.is_normalized
    rn = SearchResult.from_rows([baseline([1.0, 1.0]), row(0, [1.0, 2.0], norm_scores=[1.0, 2.0])], "min", 2, normalized=True)
    assert list(rn.get_results().columns) == [
        "generation", "id", "params", "score_1", "score_2", "norm_score_1", "norm_score_2",
        "status", "reason", "duration_s", "metadata",
    ]  # fmt: skip
    assert rn.is_normalized
    assert rn.score_columns == ["score_1", "score_2"]
    assert rn.norm_score_columns == ["norm_score_1", "norm_score_2"]


def test_constructor_reorders_and_fills_missing_columns() -> None:
    df = pd.DataFrame({"score_2": [2.0, NAN], "extra": ["a", "b"], "params": [{"a": 1}, {"a": 2}], "score_1": [1.0, 3.0]})
    r = SearchResult(df, ["min", "max"], 2)
    out = r.get_results()
    assert list(out.columns) == [
        "generation", "id", "params", "score_1", "score_2", "status", "reason", "duration_s", "metadata", "extra",
    ]  # fmt: skip
    assert out["status"].tolist() == ["valid", "invalid"]
    assert out["id"].tolist() == [0, 1]
    assert r.directions == [ProblemType.MIN, ProblemType.MAX]


def test_score_columns_fullmatch_only() -> None:
    df = pd.DataFrame({"params": [{}], "score_1": [1.0], "baseline_score_1": [9.0], "score_1_extra": [3.0]})
    r = SearchResult(df, "min", 1)
    assert r.score_columns == ["score_1"]
    assert r.norm_score_columns == []
    assert "baseline_score_1" in r.get_results().columns


def test_score_columns_are_float_with_nan_never_star() -> None:
    rows = [row(0, [1.0]), row(1, ["*"]), row(2, [None]), row(3, [NAN]), row(4, [2])]  # type: ignore[list-item]
    r = SearchResult.from_rows(rows, "min", 1)
    col = r.get_results()["score_1"]
    assert col.dtype == np.float64
    assert col.isna().tolist() == [False, True, True, True, False]
    assert (r.get_results() == "*").to_numpy().sum() == 0
    assert r.get_results()["status"].tolist() == ["valid", "invalid", "invalid", "invalid", "valid"]


def test_constructor_coerces_star_in_dataframe() -> None:
    df = pd.DataFrame({"params": [{}, {}], "score_1": [1.5, "*"], "norm_score_1": ["*", 0.5]})
    r = SearchResult(df, "min", 1)
    assert r.get_results()["score_1"].dtype == np.float64
    assert r.get_results()["norm_score_1"].dtype == np.float64
    assert math.isnan(r.get_results()["score_1"][1])
    assert math.isnan(r.get_results()["norm_score_1"][0])


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="does not match num_objectives"):
        SearchResult(pd.DataFrame({"params": [{}], "score_1": [1.0]}), "min", 2)
    with pytest.raises(ValueError, match="directions has 1 entries"):
        SearchResult(pd.DataFrame({"params": [{}], "score_1": [1.0], "score_2": [1.0]}), ["min"], 2)
    with pytest.raises(ValueError, match="'min' or 'max'"):
        SearchResult(pd.DataFrame({"params": [{}], "score_1": [1.0]}), "up", 1)
    with pytest.raises(ValueError, match="params"):
        SearchResult(pd.DataFrame({"score_1": [1.0]}), "min", 1)
    with pytest.raises(ValueError, match="score columns"):
        SearchResult(pd.DataFrame({"params": [{}]}), "min", 1)
    with pytest.raises(ValueError, match="num_objectives"):
        SearchResult.from_rows([row(0, [1.0, 2.0])], "min", 1)
    with pytest.raises(ValueError, match="no 'scores'"):
        SearchResult.from_rows([{"generation": 0, "id": 0, "params": {}}], "min", 1)


def test_directions_accept_problem_type_and_case() -> None:
    r = SearchResult.from_rows([row(0, [1.0, 2.0])], ProblemType.MAX, 2)
    assert r.directions == ["max", "max"]
    r = SearchResult.from_rows([row(0, [1.0, 2.0])], ["MIN", ProblemType.MAX], 2)
    assert r.directions == [ProblemType.MIN, ProblemType.MAX]
    assert r.num_objectives == 2 and r.num_scores == 2


def test_len_getitem_and_ids() -> None:
    r = SearchResult.from_rows([baseline([1.0]), row(0, [2.0]), row(1, [3.0])], "min", 1)
    assert len(r) == 3
    assert r[0]["id"] == "baseline"
    assert r[-1]["score_1"] == 3.0
    assert r[1]["params"] == {"x": 0}
    assert r.get_results()["id"].tolist() == ["baseline", 0, 1]
    plain = SearchResult.from_rows([row(5, [2.0]), row(7, [3.0])], "min", 1)
    assert plain.get_results()["id"].dtype == np.int64


# ----- best ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("direction", "expected"), [("min", 2), ("max", 1)])
def test_best_single_objective(direction: str, expected: int) -> None:
    rows = [row(0, [5.0]), row(1, [9.0]), row(2, [1.0]), row(3, [NAN])]
    best = SearchResult.from_rows(rows, direction, 1).get_best_result()
    assert isinstance(best, dict)
    assert best["id"] == expected
    assert set(best) == {"generation", "id", "params", "score_1", "status", "reason", "duration_s", "metadata"}


@pytest.mark.parametrize("direction", ["min", "max"])
def test_baseline_never_best(direction: str) -> None:
    great = -100.0 if direction == "min" else 100.0
    rows = [baseline([great]), row(0, [5.0]), row(1, [6.0])]
    best = SearchResult.from_rows(rows, direction, 1).get_best_result()
    assert isinstance(best, dict)
    assert best["id"] == (0 if direction == "min" else 1)
    # Also when the baseline row is only marked by its status.
    df = pd.DataFrame({"id": [7, 8], "params": [{}, {"a": 1}], "score_1": [0.0, 3.0], "status": ["baseline", "valid"]})
    best = SearchResult(df, "min", 1).get_best_result()
    assert isinstance(best, dict) and best["id"] == 8


def test_baseline_not_on_pareto_front() -> None:
    rows = [baseline([0.0, 0.0]), row(0, [1.0, 2.0]), row(1, [2.0, 1.0])]
    r = SearchResult.from_rows(rows, "min", 2)
    assert [d["id"] for d in r.pareto_front()] == [0, 1]
    assert r.hypervolume([3.0, 3.0]) == pytest.approx(3.0)


@pytest.mark.parametrize("direction", ["min", "max"])
def test_ties_first_row(direction: str) -> None:
    rows = [row(0, [3.0]), row(1, [2.0]), row(2, [2.0]), row(3, [3.0])]
    best = SearchResult.from_rows(rows, direction, 1).get_best_result()
    assert isinstance(best, dict)
    assert best["id"] == (1 if direction == "min" else 0)


def test_status_invalid_row_never_best() -> None:
    rows = [row(0, [1.0], status="invalid", reason="timeout"), row(1, [2.0])]
    best = SearchResult.from_rows(rows, "min", 1).get_best_result()
    assert isinstance(best, dict) and best["id"] == 1


@pytest.mark.parametrize("m", [1, 2])
def test_all_invalid_clear_error(m: int) -> None:
    rows = [baseline([1.0] * m), row(0, [NAN] * m), row(1, [1.0] + [NAN] * (m - 1) if m > 1 else [NAN])]
    r = SearchResult.from_rows(rows, "min", m)
    with pytest.raises(ValueError, match=re.escape(ALL_INVALID_MESSAGE)):
        r.get_best_result()
    assert ALL_INVALID_MESSAGE == "All resulting scores are marked as invalid. Make sure your search ran correctly."
    with pytest.raises(ValueError, match=re.escape(ALL_INVALID_MESSAGE)):
        SearchResult.from_rows([], "min", m).get_best_result()


def test_normalized_uses_norm_columns() -> None:
    rows = [
        baseline([10.0], norm=[1.0]),
        row(0, [1.0], norm_scores=[0.9]),  # best raw, worse normalized
        row(1, [5.0], norm_scores=[0.5]),
        row(2, [0.1], norm_scores=None),  # raw valid, normalized invalid
    ]
    r = SearchResult.from_rows(rows, "min", 1, normalized=True)
    best = r.get_best_result()
    assert isinstance(best, dict) and best["id"] == 1
    assert r.summary()["best"] == 0.5
    assert r.summary()["invalid"] == 1


def test_multi_scopes_avg_stddev_mixed_directions() -> None:
    # directions (min, max): oriented (lower is better) = (s1, -s2)
    rows = [
        baseline([0.0, 1000.0]),
        row(0, [1.0, 10.0]),  # (1, -10): mean -4.5, std 11/sqrt2
        row(1, [5.0, 5.0]),  # (5, -5): mean 0, std 10/sqrt2
        row(2, [3.0, 4.0]),  # (3, -4): mean -0.5, std 7/sqrt2
        row(3, [NAN, 100.0]),  # partially invalid: never considered
        row(4, [20.0, 13.0]),  # (20, -13): mean 3.5, std 33/sqrt2
    ]
    r = SearchResult.from_rows(rows, ["min", "max"], 2)
    avg = r.get_best_result("avg")
    std = r.get_best_result("stddev")
    assert isinstance(avg, dict) and avg["id"] == 0
    assert isinstance(std, dict) and std["id"] == 2
    front = r.get_best_result()
    assert isinstance(front, list)
    assert [d["id"] for d in front] == [0, 4]
    assert [d["id"] for d in many(r)] == [0, 4]
    with pytest.raises(ValueError, match="multiscore_scope"):
        r.get_best_result("median")


def test_multi_scopes_ties_first() -> None:
    rows = [row(0, [2.0, 2.0]), row(1, [1.0, 3.0]), row(2, [3.0, 1.0]), row(3, [2.0, 2.0])]
    r = SearchResult.from_rows(rows, "min", 2)
    assert one(r, "avg")["id"] == 0
    assert one(r, "stddev")["id"] == 0


def test_pareto_front_single_objective_raises() -> None:
    r = SearchResult.from_rows([row(0, [1.0])], "min", 1)
    with pytest.raises(ValueError, match="only meaningful for multi-objective"):
        r.pareto_front()


# ----- Pareto ----------------------------------------------------------------------------------


def test_pareto_strict_dominance_known_cases() -> None:
    # (1,5) is weakly dominated by (1,1): dropped (CompileIQ kept it).
    assert pareto_mask(np.array([[1, 1], [1, 5]]), "min").tolist() == [True, False]
    # Exact duplicates are all kept.
    assert pareto_mask(np.array([[1, 1], [1, 1], [2, 2]]), "min").tolist() == [True, True, False]
    assert pareto_mask(np.array([[3, 3]]), "min").tolist() == [True]
    assert pareto_mask(np.array([[1, 1], [5, 5], [10, 10]]), "min").tolist() == [True, False, False]
    assert pareto_mask(np.array([[1, 1], [5, 5], [10, 10]]), "max").tolist() == [False, False, True]
    assert pareto_mask(np.array([[1, 1], [5, 5], [10, 10]]), ["min", "max"]).tolist() == [True, True, True]
    assert pareto_mask(np.array([[1, 1, 1], [1, 1, 2], [0, 5, 5]]), "min").tolist() == [True, False, True]
    # NaN rows are never on the front and dominate nothing.
    assert pareto_mask(np.array([[NAN, 0.0], [1.0, 1.0]]), "min").tolist() == [False, True]
    assert pareto_mask(np.zeros((0, 2)), "min").tolist() == []
    assert SearchResult.pareto_mask(np.array([[1, 1], [1, 5]]), "min").tolist() == [True, False]


def test_pareto_signed_zero_duplicates() -> None:
    pts = np.array([[0.0, 1.0, 1.0, 1.0], [-0.0, 1.0, 1.0, 1.0]])
    for m in (2, 3, 4):
        assert pareto_mask(pts[:, :m], "min").tolist() == [True, True]


@given(st.data())
def test_pareto_matches_brute_force(data: st.DataObject) -> None:
    m = data.draw(st.integers(1, 4), label="m")
    pts = data.draw(grid_points(m, allow_nan=True), label="points")
    dirs = data.draw(directions_for(m), label="directions")
    assert pareto_mask(pts, dirs).tolist() == brute_front(pts, dirs).tolist()


@given(st.data())
def test_result_pareto_front_matches_brute_force(data: st.DataObject) -> None:
    m = data.draw(st.integers(2, 3), label="m")
    pts = data.draw(grid_points(m, max_size=20, allow_nan=True), label="points")
    dirs = data.draw(directions_for(m), label="directions")
    base = data.draw(st.tuples(*[st.integers(-1, 5).map(float)] * m), label="baseline")
    rows = [baseline(list(base))] + [row(i, p.tolist()) for i, p in enumerate(pts)]
    r = SearchResult.from_rows(rows, dirs, m)
    expected = [i for i, keep in enumerate(brute_front(pts, dirs)) if keep]
    assert [d["id"] for d in r.pareto_front()] == expected
    if expected:
        assert [d["id"] for d in many(r)] == expected


@pytest.mark.parametrize("m", [3, 4])
def test_pareto_many_points_chunked(m: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(m)
    pts = rng.integers(0, 8, size=(5000, m)).astype(float)
    expected = brute_front_numpy(pts)
    assert pareto_mask(pts, "min").tolist() == expected.tolist()
    # Tiny chunks: many boundaries (with runs of equal sums kept together).
    monkeypatch.setattr(results_mod, "_CHUNK_CELLS", 1000)
    assert results_mod._front_mask_chunked(np.unique(pts, axis=0)).sum() == np.unique(pts[expected], axis=0).shape[0]
    assert pareto_mask(pts, "min").tolist() == expected.tolist()


def test_pareto_all_on_front_3d_and_4d() -> None:
    rng = np.random.default_rng(3)
    for m in (3, 4):
        pts = rng.random((3000, m))
        pts /= pts.sum(axis=1, keepdims=True)  # on a simplex: nobody dominates anybody
        assert pareto_mask(pts, "min").all()
        assert pareto_mask(pts, "max").all()
        assert pareto_mask(np.vstack([pts, pts.max(axis=0)]), "min")[:-1].all()
        assert not pareto_mask(np.vstack([pts, pts.max(axis=0)]), "min")[-1]


def test_pareto_100k_rows_two_objectives() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    scores = rng.integers(0, 1000, size=(n, 2)).astype(float)
    df = pd.DataFrame({"generation": np.repeat(np.arange(100), n // 100), "id": np.arange(n), "params": [{}] * n})
    df["score_1"], df["score_2"] = scores[:, 0], scores[:, 1]
    r = SearchResult(df, ["min", "max"], 2)
    front = r.pareto_front()
    assert front
    f = np.array([[d["score_1"], d["score_2"]] for d in front])
    order = np.lexsort((-f[:, 1], f[:, 0]))
    f = f[order]
    # Along the front: score_1 non-decreasing, score_2 (max) non-decreasing, and never both equal
    # unless duplicates.
    assert np.all(np.diff(f[:, 0]) >= 0) and np.all(np.diff(f[:, 1]) >= 0)
    assert f[0, 0] == scores[:, 0].min()
    assert f[-1, 1] == scores[:, 1].max()


# ----- hypervolume -----------------------------------------------------------------------------


def test_hypervolume_known_values() -> None:
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [2, 2]], [4, 4]) == pytest.approx(6.0)  # dominated, duplicate
    assert hypervolume([[1, 2]], [3, 5]) == pytest.approx(6.0)
    assert hypervolume([[1, 1, 1]], [3, 3, 3]) == pytest.approx(8.0)
    assert hypervolume([[0, 0, 1], [1, 1, 0]], [2, 2, 2]) == pytest.approx(5.0)  # 4 + 2 - 1
    assert hypervolume(np.eye(3), [2, 2, 2]) == pytest.approx(7.0)  # 2^3 minus the unit cube
    assert hypervolume(np.eye(4), [2, 2, 2, 2]) == pytest.approx(15.0)
    assert hypervolume(np.eye(5), [2] * 5) == pytest.approx(31.0)
    assert hypervolume([[1.0]], [4.0]) == pytest.approx(3.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


def test_hypervolume_directions() -> None:
    assert hypervolume([[3, 1], [2, 2], [1, 3]], [0, 0], "max") == pytest.approx(6.0)
    assert hypervolume([[1, -3], [2, -2], [3, -1]], [4, -4], ["min", "max"]) == pytest.approx(6.0)
    assert hypervolume([[1, 1, 1]], [0, 0, 0], ["max", "max", "max"]) == pytest.approx(1.0)
    assert hypervolume([[1, 1, 1]], [2, 0, 2], ["min", "max", "min"]) == pytest.approx(1.0)


def test_hypervolume_points_not_better_than_ref() -> None:
    assert hypervolume([[1, 4]], [4, 4]) == 0.0  # on the reference on one objective
    assert hypervolume([[5, 0]], [4, 4]) == 0.0  # beyond it
    assert hypervolume([[4, 1], [1, 3]], [4, 4]) == pytest.approx(3.0)
    assert hypervolume([[1, 1]], [4, 4], "max") == 0.0  # a max reference must be below the front
    assert hypervolume([[NAN, 1.0], [1.0, 1.0]], [2, 2]) == pytest.approx(1.0)


def test_hypervolume_validation() -> None:
    with pytest.raises(ValueError, match="ref_point has 3 values"):
        hypervolume([[1, 2]], [3, 3, 3])
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[1, 2]], [3, NAN])
    r = SearchResult.from_rows([row(0, [1.0, 2.0])], "min", 2)
    with pytest.raises(ValueError, match="ref_point has 1 values"):
        r.hypervolume([3.0])


@given(st.data())
def test_hypervolume_matches_grid_count(data: st.DataObject) -> None:
    m = data.draw(st.integers(1, 4), label="m")
    pts = data.draw(grid_points(m, max_size=12 if m == 4 else 20), label="points")
    dirs = data.draw(directions_for(m), label="directions")
    ref = data.draw(st.lists(st.integers(-1, 5), min_size=m, max_size=m), label="ref")
    assert hypervolume(pts, ref, dirs) == pytest.approx(grid_hypervolume(pts, ref, dirs), abs=1e-9)
    # The result object agrees with the module function.
    if len(pts):
        r = SearchResult.from_rows([row(i, p.tolist()) for i, p in enumerate(pts)], dirs, m)
        assert r.hypervolume(ref) == pytest.approx(grid_hypervolume(pts, ref, dirs), abs=1e-9)


@pytest.mark.parametrize(("m", "n", "seed"), [(3, 40, 0), (3, 150, 1), (4, 40, 2), (5, 25, 3)])
def test_hypervolume_monte_carlo(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = np.abs(rng.normal(size=(n, m)))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)  # a concave front on the unit sphere
    ref = np.full(m, 1.1)
    exact = hypervolume(pts, ref)
    est, se = mc_hypervolume(pts, ref, 200_000, seed)
    assert abs(exact - est) <= 5 * se + 1e-9
    # Orientation: the same front maximized, mirrored.
    assert hypervolume(-pts, -ref, "max") == pytest.approx(exact, rel=1e-12)


def test_hypervolume_uses_norm_columns_and_skips_invalid() -> None:
    rows = [
        baseline([10.0, 10.0], norm=[1.0, 1.0]),
        row(0, [5.0, 5.0], norm_scores=[0.5, 0.5]),
        row(1, [1.0, 1.0], norm_scores=None),
    ]
    r = SearchResult.from_rows(rows, "min", 2, normalized=True)
    assert r.hypervolume([1.0, 1.0]) == pytest.approx(0.25)
    assert r.summary(ref_point=[1.0, 1.0])["hypervolume"] == pytest.approx(0.25)


# ----- summary ---------------------------------------------------------------------------------


def test_summary_single_and_multi() -> None:
    rows = [baseline([0.5]), row(0, [3.0], gen=0), row(1, [NAN], gen=0), row(2, [2.0], gen=1), row(3, [4.0], gen=2)]
    s = SearchResult.from_rows(rows, "min", 1).summary()
    assert s == {"evaluations": 4, "invalid": 1, "invalid_rate": 0.25, "generations": 3, "best": 2.0}
    assert SearchResult.from_rows(rows, "max", 1).summary()["best"] == 4.0
    empty = SearchResult.from_rows([baseline([1.0]), row(0, [NAN])], "min", 1).summary()
    assert empty["best"] is None and empty["invalid_rate"] == 1.0
    assert math.isnan(SearchResult.from_rows([], "min", 1).summary()["invalid_rate"])
    rows2 = [baseline([0.0, 0.0]), row(0, [1.0, 3.0]), row(1, [2.0, 2.0]), row(2, [3.0, 1.0]), row(3, [3.0, 3.0])]
    s2 = SearchResult.from_rows(rows2, "min", 2).summary()
    assert s2 == {"evaluations": 4, "invalid": 0, "invalid_rate": 0.0, "generations": 1, "pareto_size": 3}
    assert SearchResult.from_rows(rows2, "min", 2).summary([4, 4])["hypervolume"] == pytest.approx(6.0)


# ----- persistence -----------------------------------------------------------------------------


def sample_result(normalized: bool) -> SearchResult:
    rows = [
        baseline([2.0, 8.0], norm=[1.0, 1.0] if normalized else None),
        row(0, [1.0, 3.0], params={"opt": "-O3", "unroll": 4, "nested": {"a": [1, 2.5, None, True]}}, norm_scores=[0.5, 0.375]),
        row(1, [NAN, 2.0], params=["-O2", "-ffast-math"], status="invalid", reason='crash: "segfault", code 139\nsecond line'),
        row(2, [0.1 + 0.2, 1e-300], params="opaque-config-string", metadata={"worker": "w1", "pid": 7, "gpu": 0}, duration_s=NAN),
        row(3, [float("inf"), -0.0], params={}, reason="nan", metadata={"node": "n1"}, gen=1),
    ]
    if normalized:
        rows[2]["norm_scores"] = None
        rows[3]["norm_scores"] = [0.15, 1.25e-301]
        rows[4]["norm_scores"] = [NAN, -0.0]
    return SearchResult.from_rows(rows, ["min", "max"], 2, normalized=normalized)


@pytest.mark.parametrize("normalized", [False, True])
def test_csv_round_trip(normalized: bool, tmp_path: Path) -> None:
    r = sample_result(normalized)
    path = r.save(tmp_path / "res.csv")
    back = SearchResult.from_csv(path, ["min", "max"])
    pd.testing.assert_frame_equal(back.get_results(), r.get_results())
    assert back.is_normalized == normalized
    assert back.directions == ["min", "max"]
    # Without directions: "min" everywhere, the number of objectives from the columns.
    default = SearchResult.from_csv(path)
    assert default.directions == ["min", "min"] and default.num_objectives == 2
    text = path.read_text()
    assert "*" not in text.replace("**", "")
    assert json.loads(pd.read_csv(path)["params"][1]) == {"opt": "-O3", "unroll": 4, "nested": {"a": [1, 2.5, None, True]}}


@pytest.mark.parametrize("normalized", [False, True])
def test_parquet_round_trip(normalized: bool, tmp_path: Path) -> None:
    r = sample_result(normalized)
    path = r.to_parquet(tmp_path / "res.parquet")
    back = SearchResult.from_parquet(path, ["min", "max"])
    pd.testing.assert_frame_equal(back.get_results(), r.get_results())
    raw = pd.read_parquet(path)
    assert isinstance(raw["params"][0], str) and json.loads(raw["metadata"][0]) == {"pid": 100}


def test_round_trip_int_ids_and_empty(tmp_path: Path) -> None:
    r = SearchResult.from_rows([row(3, [1.0]), row(9, [2.0])], "max", 1)
    back = SearchResult.from_csv(r.save(tmp_path / "a.csv"), "max")
    pd.testing.assert_frame_equal(back.get_results(), r.get_results())
    assert back.get_results()["id"].dtype == np.int64
    back = SearchResult.from_parquet(r.to_parquet(tmp_path / "a.parquet"), "max")
    pd.testing.assert_frame_equal(back.get_results(), r.get_results())
    empty = SearchResult.from_rows([], "min", 2)
    pd.testing.assert_frame_equal(SearchResult.from_csv(empty.save(tmp_path / "e.csv")).get_results(), empty.get_results())
    pd.testing.assert_frame_equal(SearchResult.from_parquet(empty.to_parquet(tmp_path / "e.pq")).get_results(), empty.get_results())


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
score = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-1000, 1000).map(float))


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.one_of(st.dictionaries(st.text(max_size=5), json_value, max_size=3), st.lists(json_value, max_size=3), st.text(max_size=10)),
            st.lists(score, min_size=2, max_size=2),
            st.text(max_size=20),
            st.floats(allow_nan=False, allow_infinity=False, min_value=0) | st.just(NAN),
            st.dictionaries(st.sampled_from(["worker", "pid", "node", "gpu"]), st.integers(0, 99) | st.text(max_size=5)),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_round_trip_property(entries: list[Any], with_baseline: bool) -> None:
    import tempfile

    rows = [baseline([1.0, 2.0])] if with_baseline else []
    for i, (gen, params, scores, reason, dur, meta) in enumerate(entries):
        rows.append(row(i, scores, gen=gen, params=params, reason=reason, duration_s=dur, metadata=meta))
    r = SearchResult.from_rows(rows, ["max", "min"], 2)
    with tempfile.TemporaryDirectory() as d:
        back = SearchResult.from_csv(r.save(Path(d) / "r.csv"), ["max", "min"])
        pd.testing.assert_frame_equal(back.get_results(), r.get_results())
        back = SearchResult.from_parquet(r.to_parquet(Path(d) / "r.parquet"), ["max", "min"])
        pd.testing.assert_frame_equal(back.get_results(), r.get_results())


def test_from_csv_missing_columns(tmp_path: Path) -> None:
    p = tmp_path / "no_params.csv"
    pd.DataFrame({"generation": [0], "score_1": [1.0]}).to_csv(p, index=False)
    with pytest.raises(ValueError, match="'params' column"):
        SearchResult.from_csv(p)
    q = tmp_path / "no_scores.csv"
    pd.DataFrame({"generation": [0], "params": ["{}"], "baseline_score_1": [1.0]}).to_csv(q, index=False)
    with pytest.raises(ValueError, match="score columns"):
        SearchResult.from_csv(q)
    both = tmp_path / "neither.csv"
    pd.DataFrame({"generation": [0]}).to_csv(both, index=False)
    with pytest.raises(ValueError, match="'params' column and score columns"):
        SearchResult.from_csv(both)
    with pytest.raises(ValueError, match="does not match num_objectives"):
        SearchResult.from_csv(SearchResult.from_rows([row(0, [1.0, 2.0])], "min", 2).save(tmp_path / "ok.csv"), num_objectives=3)


def test_from_csv_compileiq_shaped(tmp_path: Path) -> None:
    p = tmp_path / "ciq.csv"
    p.write_text(
        "metadata,generation,score_1,score_2,params\n"
        '"{""pid"": 11}",0,1.5,2.5,"{""a"": 1}"\n'
        '"{""pid"": 12}",0,*,3.0,"{""a"": 2}"\n'
        '"{""pid"": 12}",1,0.5,*,"""-O3"""\n'
    )
    r = SearchResult.from_csv(p)
    df = r.get_results()
    assert list(df.columns) == [
        "generation", "id", "params", "score_1", "score_2", "status", "reason", "duration_s", "metadata",
    ]  # fmt: skip
    assert df["score_1"].dtype == np.float64 and math.isnan(df["score_1"][1]) and math.isnan(df["score_2"][2])
    assert df["status"].tolist() == ["valid", "invalid", "invalid"]
    assert df["params"].tolist() == [{"a": 1}, {"a": 2}, "-O3"]
    assert df["metadata"].tolist() == [{"pid": 11}, {"pid": 12}, {"pid": 12}]
    best = r.get_best_result()
    assert isinstance(best, list) and [d["params"] for d in best] == [{"a": 1}]


def test_save_default_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = SearchResult.from_rows([row(0, [1.0])], "min", 1).save()
    assert (tmp_path / "search_results.csv").exists() and path.name == "search_results.csv"
