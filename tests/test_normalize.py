"""normalize_scores: score / baseline per objective, order-keeping for negative baselines, NaN for
anything invalid, shapes kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import genetune as gt
from genetune import normalize_scores

FINITE = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
NONZERO = FINITE.filter(lambda b: abs(b) > 1e-9)


def test_ratio_for_positive_baselines() -> None:
    out = normalize_scores([10, 20], [5, 4])
    np.testing.assert_array_equal(out, [2.0, 5.0])
    assert out.shape == (2,) and out.dtype == np.float64
    assert normalize_scores([5.0], [5.0]).tolist() == [1.0]
    assert float(normalize_scores(10, 5)) == 2.0


def test_zero_baseline_is_invalid() -> None:
    out = normalize_scores([10.0, 5.0], [0.0, 5.0])
    assert math.isnan(out[0]) and out[1] == 1.0
    assert math.isnan(normalize_scores([10.0], [0.0])[0])
    assert math.isnan(normalize_scores([10.0], [-0.0])[0])


@pytest.mark.parametrize("baseline", [math.inf, -math.inf, math.nan])
def test_non_finite_baseline_is_invalid(baseline: float) -> None:
    assert math.isnan(normalize_scores([10.0], [baseline])[0])


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_invalid_score_stays_invalid(score: float) -> None:
    out = normalize_scores([score, 4.0], [2.0, 2.0])
    assert math.isnan(out[0]) and out[1] == 2.0


def test_negative_baseline_keeps_order() -> None:
    b = -10.0
    out = normalize_scores([[-10.0], [-20.0], [-5.0], [0.0], [10.0]], [b])
    assert out[0, 0] == 1.0  # the baseline itself
    assert out[1, 0] < 1.0  # a lower score gives a lower value
    assert out[2, 0] > 1.0
    raw = [-10.0, -20.0, -5.0, 0.0, 10.0]
    assert list(np.argsort(out[:, 0])) == list(np.argsort(raw))


def test_matrix_shape_is_kept() -> None:
    scores = np.arange(12, dtype=float).reshape(4, 3) + 1
    out = normalize_scores(scores, [1.0, 2.0, 4.0])
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out, scores / np.array([1.0, 2.0, 4.0]))
    single = normalize_scores([[3.0, 6.0]], [3.0, 3.0])
    assert single.shape == (1, 2) and single.tolist() == [[1.0, 2.0]]
    empty = normalize_scores(np.zeros((0, 2)), [1.0, 1.0])
    assert empty.shape == (0, 2)


def test_inputs_are_not_modified() -> None:
    scores = np.array([[2.0, 4.0], [6.0, 8.0]])
    baseline = np.array([2.0, 4.0])
    normalize_scores(scores, baseline)
    np.testing.assert_array_equal(scores, [[2.0, 4.0], [6.0, 8.0]])
    np.testing.assert_array_equal(baseline, [2.0, 4.0])
    # Non-contiguous views work too.
    wide = np.arange(1.0, 13.0).reshape(3, 4)
    view = wide[:, ::2]
    np.testing.assert_allclose(normalize_scores(view, [1.0, 3.0]), view / np.array([1.0, 3.0]))


@pytest.mark.parametrize(
    ("scores", "baseline"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0]),
        ([[1.0, 2.0]], [1.0, 2.0, 3.0]),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0]),
        ([1.0], [[1.0]]),
        ([1.0, 2.0], []),
    ],
)
def test_objective_count_mismatch_is_a_value_error(scores: object, baseline: object) -> None:
    with pytest.raises(ValueError):
        normalize_scores(scores, baseline)


@given(score=FINITE, baseline=FINITE.filter(lambda b: b > 1e-9))
def test_positive_baseline_is_a_ratio(score: float, baseline: float) -> None:
    out = normalize_scores([score], [baseline])[0]
    assert out == pytest.approx(score / baseline, rel=1e-12, abs=1e-300)


@given(a=FINITE, b=FINITE, baseline=NONZERO)
def test_order_is_kept_for_any_baseline(a: float, b: float, baseline: float) -> None:
    na, nb = normalize_scores([[a], [b]], [baseline])[:, 0]
    assert math.isfinite(na) and math.isfinite(nb)
    if a < b:
        assert na <= nb
    elif a > b:
        assert na >= nb
    else:
        assert na == nb
    assert normalize_scores([baseline], [baseline])[0] == pytest.approx(1.0)


@given(
    scores=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=st.floats(allow_nan=True)),
    data=st.data(),
)
def test_matrix_property(scores: np.ndarray, data: st.DataObject) -> None:
    m = scores.shape[1]
    baseline = np.array(data.draw(st.lists(st.floats(allow_nan=True), min_size=m, max_size=m)), dtype=np.float64)
    out = normalize_scores(scores, baseline)
    assert out.shape == scores.shape
    for (i, j), s in np.ndenumerate(scores):
        b = baseline[j]
        if not (math.isfinite(s) and math.isfinite(b) and b != 0):
            assert math.isnan(out[i, j])
        else:
            with np.errstate(over="ignore"):
                expected = s / b if b > 0 else 1.0 + (s - b) / abs(b)
            if math.isfinite(expected):
                assert out[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-300)
            else:
                assert not math.isfinite(out[i, j])


def test_exported_from_the_package() -> None:
    assert gt.normalize_scores is normalize_scores
    assert gt.INVALID_SCORE == "*"
