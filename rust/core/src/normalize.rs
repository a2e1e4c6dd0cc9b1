//! Baseline normalization of scores.

use crate::error::{Error, Result};

/// Normalizes one objective value against its baseline.
///
/// `norm = 1 + (score - baseline) / |baseline|`: this is `score / baseline` for a positive
/// baseline, and it keeps the order of scores (so the objective's direction) for a negative one.
/// A zero or non-finite baseline, or a non-finite score, gives NaN (INVALID).
#[inline]
pub fn normalize_value(score: f64, baseline: f64) -> f64 {
    if !score.is_finite() || !baseline.is_finite() || baseline == 0.0 {
        return f64::NAN;
    }
    if baseline > 0.0 {
        score / baseline
    } else {
        1.0 + (score - baseline) / baseline.abs()
    }
}

/// Normalizes a row-major `(rows, cols)` score matrix against its baseline row, checking that
/// the two fit.
pub fn normalize_matrix(scores: &[f64], cols: usize, baseline: &[f64]) -> Result<Vec<f64>> {
    if cols != baseline.len() {
        return Err(Error::InvalidShape(format!(
            "baseline has {} objectives but scores have {cols}",
            baseline.len()
        )));
    }
    Ok(normalize_rows(scores, baseline))
}

/// Normalizes a row-major `(n, m)` score matrix against an `m`-vector baseline.
pub fn normalize_rows(scores: &[f64], baseline: &[f64]) -> Vec<f64> {
    let m = baseline.len();
    scores
        .iter()
        .enumerate()
        .map(|(i, &s)| normalize_value(s, baseline[i % m]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_for_positive_baselines() {
        assert_eq!(normalize_value(10.0, 5.0), 2.0);
        assert_eq!(normalize_rows(&[10.0, 20.0], &[5.0, 4.0]), vec![2.0, 5.0]);
        assert_eq!(normalize_value(5.0, 5.0), 1.0);
    }

    #[test]
    fn zero_or_nonfinite_baseline_is_invalid() {
        assert!(normalize_value(10.0, 0.0).is_nan());
        assert!(normalize_value(10.0, f64::INFINITY).is_nan());
        assert!(normalize_value(f64::NAN, 1.0).is_nan());
        let r = normalize_rows(&[10.0, 5.0], &[0.0, 5.0]);
        assert!(r[0].is_nan() && r[1] == 1.0);
    }

    #[test]
    fn negative_baseline_keeps_order() {
        let b = -10.0;
        assert_eq!(normalize_value(b, b), 1.0);
        assert!(normalize_value(-20.0, b) < normalize_value(-10.0, b));
        assert!(normalize_value(-5.0, b) > 1.0);
    }
}
