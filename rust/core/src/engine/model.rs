//! The surrogate's view of the archive: features, rank targets, fit and prediction.

use super::screening::Offspring;
use super::{Engine, EngineRng};
use crate::sorting::non_dominated_ranks;
use crate::space::GeneKind;
use crate::surrogate::{unit_ranks, Additive, FeatureKind, FeatureSpec, Forest, ForestParams};
use rand::seq::index::sample;
use rand::SeedableRng;

/// than every valid candidate, so the model learns where not to go.
pub(super) const INVALID_RANK: f64 = 1.25;
/// Value bins of an ordered gene in the model's main effects.
pub(super) const ADDITIVE_BINS: usize = 8;
/// The model is fitted to at most this many evaluated candidates (a random sample beyond).
pub(super) const MAX_TRAINING_ROWS: usize = 4096;

impl Engine {
    /// The surrogate's features of genomes: the gene (index or value) where present, NaN where
    /// knocked out, so absence is a branch of its own and not a value.
    pub(super) fn features(&self, x: &[f64], on: &[bool]) -> Vec<f64> {
        let n = self.num_params();
        let mut active = vec![false; n];
        let mut out = Vec::with_capacity(x.len());
        for (row, flags) in x.chunks(n).zip(on.chunks(n)) {
            // Inactive (by `when`) is missing, like knocked out: not a value.
            self.space.active_into(row, flags, &mut active);
            out.extend(
                row.iter()
                    .zip(&active)
                    .map(|(&v, &present)| if present { v } else { f64::NAN }),
            );
        }
        out
    }

    /// The surrogate's view of each gene: how it splits and how its main effect is binned.
    pub(super) fn feature_specs(&self) -> Vec<FeatureSpec> {
        self.genes
            .iter()
            .map(|g| {
                let (kind, bins) = match g.kind {
                    GeneKind::Categorical { n } => (FeatureKind::Categorical, n as usize),
                    GeneKind::Ordinal { levels } => {
                        (FeatureKind::Ordered, (levels as usize).min(ADDITIVE_BINS))
                    }
                    GeneKind::Real { .. } => (FeatureKind::Ordered, ADDITIVE_BINS),
                    GeneKind::Fixed => (FeatureKind::Ordered, 1),
                };
                FeatureSpec {
                    kind,
                    low: g.low,
                    high: g.high,
                    bins,
                }
            })
            .collect()
    }

    /// The model's target for evaluated candidates `rows` of the archive, on a unit rank scale
    /// (0 = best): the rank of the score for one objective, of the non-dominated front for
    /// several; INVALID ranked below every valid candidate. Ranks make the model indifferent to
    /// the objectives' scales and outliers.
    pub(super) fn model_targets(&self, rows: &[usize]) -> Vec<f64> {
        let archive = &self.state.archive;
        let m = self.num_objectives();
        let valid: Vec<usize> = (0..rows.len())
            .filter(|&i| archive.valid[rows[i]])
            .collect();
        let quality: Vec<f64> = if m == 1 {
            valid.iter().map(|&i| archive.f[rows[i]]).collect()
        } else {
            let f: Vec<f64> = valid
                .iter()
                .flat_map(|&i| archive.f[rows[i] * m..(rows[i] + 1) * m].iter().copied())
                .collect();
            non_dominated_ranks(&f, m)
                .into_iter()
                .map(f64::from)
                .collect()
        };
        let mut y = vec![INVALID_RANK; rows.len()];
        for (r, &i) in unit_ranks(&quality).iter().zip(&valid) {
            y[i] = *r;
        }
        y
    }

    /// Fits the model to (a bounded sample of) the archive and predicts every offspring with
    /// every tree: a `(trees, offspring)` row-major matrix.
    pub(super) fn predict_offspring(&mut self, offspring: &Offspring) -> Vec<f64> {
        let size = self.state.archive.len();
        let mut rng = std::mem::replace(&mut self.state.rng, EngineRng::seed_from_u64(0));
        let model = self.fit_model(size, &mut rng);
        self.state.rng = rng;
        let cand = self.features(&offspring.x, &offspring.on);
        model.predict_each(&cand)
    }

    /// Fits the model to (a bounded sample of) the first `size` archive rows, drawing from
    /// `rng`: the same rows and RNG state give the same model.
    pub(super) fn fit_model(&self, size: usize, rng: &mut EngineRng) -> Model {
        let n = self.num_params();
        let rows: Vec<usize> = if size > MAX_TRAINING_ROWS {
            let mut r = sample(rng, size, MAX_TRAINING_ROWS).into_vec();
            r.sort_unstable();
            r
        } else {
            (0..size).collect()
        };
        let specs = self.feature_specs();
        let kinds: Vec<FeatureKind> = specs.iter().map(|s| s.kind).collect();
        let archive = &self.state.archive;
        let mut train = Vec::with_capacity(rows.len() * n);
        for &r in &rows {
            train.extend(self.features(
                &archive.x[r * n..(r + 1) * n],
                &archive.on[r * n..(r + 1) * n],
            ));
        }
        let y = self.model_targets(&rows);
        let additive = Additive::fit(&train, &y, &specs);
        let residual: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(r, v)| v - additive.predict(&train[r * n..(r + 1) * n]))
            .collect();
        let forest = Forest::fit(&train, &residual, &kinds, &ForestParams::default(), rng);
        let any_valid = archive.valid[..size].iter().any(|&v| v);
        Model {
            additive,
            forest,
            n,
            best: if any_valid { 0.0 } else { INVALID_RANK },
        }
    }
}

/// The surrogate: main effects plus a forest over their residuals, on the unit rank scale.
pub(super) struct Model {
    additive: Additive,
    forest: Forest,
    n: usize,
    /// The best target it was fitted to: 0 with a valid candidate, INVALID_RANK without.
    pub(super) best: f64,
}

impl Model {
    /// Every tree's prediction (main effects included) for feature rows `cand`: `(trees, rows)`
    /// row-major.
    pub(super) fn predict_each(&self, cand: &[f64]) -> Vec<f64> {
        let n = self.n;
        let count = cand.len() / n.max(1);
        let base: Vec<f64> = (0..count)
            .map(|c| self.additive.predict(&cand[c * n..(c + 1) * n]))
            .collect();
        let mut each = self.forest.predict_each(cand);
        for (k, v) in each.iter_mut().enumerate() {
            *v += base[k % count];
        }
        each
    }

    pub(super) fn num_trees(&self) -> usize {
        self.forest.num_trees()
    }
}
