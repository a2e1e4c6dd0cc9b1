//! The model-assisted engine's surrogate: an extremely randomized trees ensemble (Geurts et al.
//! 2006) over the genes, fitted to every evaluated candidate.
//!
//! Trees fit mixed spaces natively: ordered genes (stepped ints, log choices, reals) split at a
//! random threshold, categorical genes split one value against the rest, and a missing value (a
//! knocked-out or inactive parameter, encoded as NaN) is its own branch rather than a number.
//! The spread of the trees' predictions is the model's uncertainty. Every random draw takes the
//! caller's RNG, so a refit from the same archive and RNG state gives the same forest.

use rand::seq::index::sample;
use rand::Rng;

/// How a feature is compared at a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Ordered values: `x < threshold` goes left.
    Ordered,
    /// Unordered indices: `x == value` goes left.
    Categorical,
}

/// Forest settings.
#[derive(Debug, Clone, Copy)]
pub struct ForestParams {
    pub trees: usize,
    /// Features tried per split, as a share of all features (at least one).
    pub feature_share: f64,
    /// Each tree is fitted to at most this many rows, drawn without replacement: bounds the
    /// refit cost on long searches.
    pub max_rows: usize,
    pub max_depth: usize,
}

/// Nodes with fewer rows become leaves: the smallest splits cost the most per row and barely
/// change the ranking of offspring.
const MIN_SPLIT: usize = 4;

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 16,
            feature_share: 1.0 / 3.0,
            max_rows: 384,
            max_depth: 32,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Threshold {
        t: f64,
        missing_left: bool,
    },
    Category {
        value: f64,
        missing_left: bool,
    },
    /// Missing goes left, present goes right.
    Presence,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    feature: usize,
    rule: Rule,
}

impl Split {
    /// Whether a row whose value of this split's feature is `v` goes left.
    #[inline]
    fn sends_left(&self, v: f64) -> bool {
        match self.rule {
            Rule::Threshold { t, missing_left } => {
                if v.is_nan() {
                    missing_left
                } else {
                    v < t
                }
            }
            Rule::Category {
                value,
                missing_left,
            } => {
                if v.is_nan() {
                    missing_left
                } else {
                    v == value
                }
            }
            Rule::Presence => v.is_nan(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Node {
    Leaf(f64),
    Split { split: Split, left: u32, right: u32 },
}

#[derive(Debug, Clone, Default)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    #[inline]
    fn predict(&self, row: &[f64]) -> f64 {
        let mut i = 0usize;
        loop {
            match self.nodes[i] {
                Node::Leaf(v) => return v,
                Node::Split { split, left, right } => {
                    i = if split.sends_left(row[split.feature]) {
                        left
                    } else {
                        right
                    } as usize;
                }
            }
        }
    }
}

/// A fitted ensemble.
#[derive(Debug, Clone, Default)]
pub struct Forest {
    trees: Vec<Tree>,
    d: usize,
}

/// The training data of one fit, column-major: one contiguous column per feature keeps the
/// split scans in cache.
struct Fit<'a> {
    cols: Vec<f64>,
    n: usize,
    y: &'a [f64],
    kinds: &'a [FeatureKind],
    d: usize,
    tries: usize,
    max_depth: usize,
}

impl Forest {
    /// Fits the forest to `x` (row-major, `y.len()` rows of `kinds.len()` features; NaN = missing).
    pub fn fit<R: Rng + ?Sized>(
        x: &[f64],
        y: &[f64],
        kinds: &[FeatureKind],
        params: &ForestParams,
        rng: &mut R,
    ) -> Forest {
        let (n, d) = (y.len(), kinds.len());
        debug_assert_eq!(x.len(), n * d);
        let mut cols = vec![0.0; n * d];
        for r in 0..n {
            for f in 0..d {
                cols[f * n + r] = x[r * d + f];
            }
        }
        let fit = Fit {
            cols,
            n,
            y,
            kinds,
            d,
            tries: ((d as f64 * params.feature_share).ceil() as usize).clamp(1, d.max(1)),
            max_depth: params.max_depth,
        };
        let mut order: Vec<usize> = (0..d).collect();
        let trees = (0..params.trees.max(1))
            .map(|_| {
                let mut rows: Vec<usize> = if n > params.max_rows {
                    sample(rng, n, params.max_rows).into_vec()
                } else {
                    (0..n).collect()
                };
                let mut tree = Tree::default();
                if rows.is_empty() {
                    tree.nodes.push(Node::Leaf(0.0));
                } else {
                    fit.grow(&mut tree, &mut rows, 0, &mut order, rng);
                }
                tree
            })
            .collect();
        Forest { trees, d }
    }

    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// Every tree's prediction for every row of `x`: `(trees, rows)` row-major.
    pub fn predict_each(&self, x: &[f64]) -> Vec<f64> {
        let rows = x.len().checked_div(self.d).unwrap_or(0);
        let mut out = Vec::with_capacity(self.trees.len() * rows);
        for tree in &self.trees {
            for r in 0..rows {
                out.push(tree.predict(&x[r * self.d..(r + 1) * self.d]));
            }
        }
        out
    }
}

impl Fit<'_> {
    #[inline]
    fn value(&self, f: usize, r: usize) -> f64 {
        self.cols[f * self.n + r]
    }

    /// Grows the subtree of `rows` and returns its node index (pre-order).
    fn grow<R: Rng + ?Sized>(
        &self,
        tree: &mut Tree,
        rows: &mut [usize],
        depth: usize,
        order: &mut [usize],
        rng: &mut R,
    ) -> u32 {
        let at = tree.nodes.len() as u32;
        let first = self.y[rows[0]];
        let constant = rows.iter().all(|&r| self.y[r] == first);
        let split = if rows.len() < MIN_SPLIT || constant || depth >= self.max_depth {
            None
        } else {
            self.best_split(rows, order, rng)
        };
        let Some(split) = split else {
            let mean = rows.iter().map(|&r| self.y[r]).sum::<f64>() / rows.len() as f64;
            tree.nodes.push(Node::Leaf(mean));
            return at;
        };
        // Partition in place: left rows first.
        let mut k = 0;
        for i in 0..rows.len() {
            if split.sends_left(self.value(split.feature, rows[i])) {
                rows.swap(i, k);
                k += 1;
            }
        }
        tree.nodes.push(Node::Leaf(0.0)); // placeholder, replaced below
        let (left_rows, right_rows) = rows.split_at_mut(k);
        let left = self.grow(tree, left_rows, depth + 1, order, rng);
        let right = self.grow(tree, right_rows, depth + 1, order, rng);
        tree.nodes[at as usize] = Node::Split { split, left, right };
        at
    }

    /// Draws one random split per tried feature and keeps the one that explains most variance;
    /// features that cannot split these rows do not use up a try.
    fn best_split<R: Rng + ?Sized>(
        &self,
        rows: &[usize],
        order: &mut [usize],
        rng: &mut R,
    ) -> Option<Split> {
        let mut best: Option<(f64, Split)> = None;
        let mut tried = 0;
        for k in 0..self.d {
            if tried >= self.tries {
                break;
            }
            // A partial Fisher-Yates shuffle of the feature order: features without repeats.
            let j = rng.random_range(k..self.d);
            order.swap(k, j);
            let f = order[k];
            let Some(split) = self.draw_split(f, rows, rng) else {
                continue;
            };
            tried += 1;
            let col = &self.cols[f * self.n..(f + 1) * self.n];
            let (mut sl, mut nl, mut sr, mut nr) = (0.0, 0usize, 0.0, 0usize);
            for &r in rows {
                if split.sends_left(col[r]) {
                    sl += self.y[r];
                    nl += 1;
                } else {
                    sr += self.y[r];
                    nr += 1;
                }
            }
            if nl == 0 || nr == 0 {
                continue;
            }
            // Maximizing the between-children sum of squares minimizes the children's variance.
            let score = sl * sl / nl as f64 + sr * sr / nr as f64;
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, split));
            }
        }
        best.map(|(_, s)| s)
    }

    /// A random split of feature `f` over `rows`, or `None` if `f` is constant there.
    fn draw_split<R: Rng + ?Sized>(&self, f: usize, rows: &[usize], rng: &mut R) -> Option<Split> {
        let col = &self.cols[f * self.n..(f + 1) * self.n];
        let (mut lo, mut hi, mut missing) = (f64::INFINITY, f64::NEG_INFINITY, false);
        for &r in rows {
            let v = col[r];
            if v.is_nan() {
                missing = true;
            } else {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if lo > hi {
            return None; // all missing
        }
        if lo == hi || (missing && rng.random::<f64>() < 0.25) {
            return missing.then_some(Split {
                feature: f,
                rule: Rule::Presence,
            });
        }
        let missing_left = rng.random::<bool>();
        let rule = match self.kinds[f] {
            // Strictly above `lo`, so both sides get rows.
            FeatureKind::Ordered => Rule::Threshold {
                t: lo + (hi - lo) * (1.0 - rng.random::<f64>()),
                missing_left,
            },
            FeatureKind::Categorical => {
                // A value taken from a random present row, so it occurs here.
                let start = rng.random_range(0..rows.len());
                let value = (0..rows.len())
                    .map(|i| col[rows[(start + i) % rows.len()]])
                    .find(|v| !v.is_nan())
                    .expect("a present value");
                Rule::Category {
                    value,
                    missing_left,
                }
            }
        };
        Some(Split { feature: f, rule })
    }
}

/// What the additive model needs to know about one feature.
#[derive(Debug, Clone, Copy)]
pub struct FeatureSpec {
    pub kind: FeatureKind,
    pub low: f64,
    pub high: f64,
    /// Levels the feature is binned into (its values for categorical and small ordinal genes).
    pub bins: usize,
}

/// Main effects: one shrunken mean per level (or value bin) of each feature, a missing value
/// being a level of its own, fitted by backfitting so correlated genes (a GA's archive is full of
/// them) do not share credit. It carries the first-order signal that trees learn slowly from a
/// few dozen points; the forest then fits what it leaves over.
#[derive(Debug, Clone, Default)]
pub struct Additive {
    global: f64,
    specs: Vec<FeatureSpec>,
    /// Per feature: `bins + 1` effects, the last one for missing.
    effects: Vec<Vec<f64>>,
}

const BACKFIT_PASSES: usize = 3;
/// Pseudo-count pulling each level's effect toward zero.
const SHRINK: f64 = 2.0;

impl Additive {
    #[inline]
    fn level(spec: &FeatureSpec, v: f64) -> usize {
        if v.is_nan() {
            return spec.bins;
        }
        match spec.kind {
            FeatureKind::Categorical => (v as usize).min(spec.bins - 1),
            FeatureKind::Ordered => {
                let span = spec.high - spec.low;
                if span <= 0.0 {
                    0
                } else {
                    (((v - spec.low) / span * spec.bins as f64) as usize).min(spec.bins - 1)
                }
            }
        }
    }

    pub fn fit(x: &[f64], y: &[f64], specs: &[FeatureSpec]) -> Additive {
        let (n, d) = (y.len(), specs.len());
        let global = if n == 0 {
            0.0
        } else {
            y.iter().sum::<f64>() / n as f64
        };
        let levels: Vec<usize> = (0..n * d)
            .map(|k| Additive::level(&specs[k % d], x[k]))
            .collect();
        let mut effects: Vec<Vec<f64>> = specs.iter().map(|s| vec![0.0; s.bins + 1]).collect();
        let mut fitted: Vec<f64> = vec![global; n];
        let mut sums: Vec<f64> = Vec::new();
        let mut counts: Vec<f64> = Vec::new();
        for _ in 0..BACKFIT_PASSES {
            for j in 0..d {
                let b = specs[j].bins + 1;
                sums.clear();
                sums.resize(b, 0.0);
                counts.clear();
                counts.resize(b, 0.0);
                for r in 0..n {
                    let l = levels[r * d + j];
                    // The residual without feature j's own effect.
                    sums[l] += y[r] - (fitted[r] - effects[j][l]);
                    counts[l] += 1.0;
                }
                let old = std::mem::take(&mut effects[j]);
                effects[j] = (0..b).map(|l| sums[l] / (counts[l] + SHRINK)).collect();
                for r in 0..n {
                    let l = levels[r * d + j];
                    fitted[r] += effects[j][l] - old[l];
                }
            }
        }
        Additive {
            global,
            specs: specs.to_vec(),
            effects,
        }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        self.global
            + self
                .specs
                .iter()
                .zip(&self.effects)
                .zip(row)
                .map(|((s, e), &v)| e[Additive::level(s, v)])
                .sum::<f64>()
    }
}

/// Average ranks of `values` scaled to `[0, 1]` (0 = smallest), ties sharing their mean rank.
/// Ranks make the model indifferent to the objective's scale and its outliers.
pub fn unit_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; n];
    let scale = if n > 1 { 1.0 / (n - 1) as f64 } else { 0.0 };
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 * scale;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Expected improvement below `best` of a normal prediction `(mu, sigma)`.
pub fn expected_improvement(mu: f64, sigma: f64, best: f64) -> f64 {
    let gap = best - mu;
    if sigma <= 1e-12 {
        return gap.max(0.0);
    }
    let z = gap / sigma;
    gap * normal_cdf(z) + sigma * normal_pdf(z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ(z) via the complementary error function (Numerical Recipes' erfc, |error| < 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn learns_an_additive_function_with_missing_values() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = 6;
        let kinds = [
            FeatureKind::Ordered,
            FeatureKind::Ordered,
            FeatureKind::Categorical,
            FeatureKind::Ordered,
            FeatureKind::Ordered,
            FeatureKind::Ordered,
        ];
        let truth = |r: &[f64]| {
            let flag = if r[3].is_nan() { 0.0 } else { 2.0 };
            r[0] * 3.0 + (r[1] - 0.5).abs() + if r[2] == 1.0 { 1.5 } else { 0.0 } + flag
        };
        let draw = |rng: &mut ChaCha8Rng| -> Vec<f64> {
            vec![
                rng.random(),
                rng.random(),
                rng.random_range(0..3) as f64,
                if rng.random::<bool>() { 0.0 } else { f64::NAN },
                rng.random(),
                rng.random(),
            ]
        };
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..400 {
            let r = draw(&mut rng);
            y.push(truth(&r));
            x.extend(r);
        }
        let forest = Forest::fit(&x, &y, &kinds, &ForestParams::default(), &mut rng);
        let mut test = Vec::new();
        let mut want = Vec::new();
        for _ in 0..200 {
            let r = draw(&mut rng);
            want.push(truth(&r));
            test.extend(r);
        }
        let each = forest.predict_each(&test);
        let t = forest.num_trees();
        let mse: f64 = (0..200)
            .map(|c| {
                let mu = (0..t).map(|k| each[k * 200 + c]).sum::<f64>() / t as f64;
                (mu - want[c]).powi(2)
            })
            .sum::<f64>()
            / 200.0;
        let var = {
            let m = want.iter().sum::<f64>() / 200.0;
            want.iter().map(|w| (w - m).powi(2)).sum::<f64>() / 200.0
        };
        assert!(mse < 0.15 * var, "mse {mse} vs variance {var}");
        let _ = d;
    }

    #[test]
    fn same_rng_same_forest() {
        let x: Vec<f64> = (0..200).map(|i| (i % 17) as f64).collect();
        let y: Vec<f64> = (0..100).map(|i| (i % 7) as f64).collect();
        let kinds = [FeatureKind::Ordered, FeatureKind::Categorical];
        let p = ForestParams::default();
        let a = Forest::fit(&x, &y, &kinds, &p, &mut ChaCha8Rng::seed_from_u64(4));
        let b = Forest::fit(&x, &y, &kinds, &p, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a.predict_each(&x), b.predict_each(&x));
    }

    #[test]
    fn ranks_and_ei() {
        assert_eq!(
            unit_ranks(&[3.0, 1.0, 2.0, 2.0, 5.0]),
            vec![0.75, 0.0, 0.375, 0.375, 1.0]
        );
        assert!(expected_improvement(0.0, 1.0, 0.0) > 0.39);
        assert_eq!(expected_improvement(1.0, 0.0, 0.5), 0.0);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
    }
}
