//! Variation operators on one genome: initial sampling, crossover, mutation.
//!
//! A genome is a row of value genes (`f64`: an index for ordinal/categorical genes, the value for
//! real ones) plus a row of presence flags (the knockout genes). Every function takes the RNG.

use crate::space::{GeneKind, Param};
use rand::Rng;

/// What the operators need to know about one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gene {
    pub kind: GeneKind,
    /// Gene-space bounds (index bounds for ordinal/categorical genes).
    pub low: f64,
    pub high: f64,
    pub knockout: Option<f64>,
    pub seed: Option<(f64, f64)>,
}

impl Gene {
    pub fn from_param(p: &Param) -> Gene {
        let kind = p.gene_kind();
        let (low, high) = match kind {
            GeneKind::Ordinal { levels } => (0.0, (levels - 1) as f64),
            GeneKind::Categorical { n } => (0.0, (n - 1) as f64),
            GeneKind::Real { low, high } => (low, high),
            GeneKind::Fixed => (0.0, 0.0),
        };
        Gene {
            kind,
            low,
            high,
            knockout: p.knockout,
            seed: p.seed_bounds,
        }
    }

    /// Whether mutation can change anything about this parameter.
    pub fn is_mutable(&self) -> bool {
        self.kind != GeneKind::Fixed || self.knockout.is_some()
    }
}

/// Operator settings.
#[derive(Debug, Clone, Copy)]
pub struct Variation {
    pub crossover_prob: f64,
    pub crossover_eta: f64,
    /// Probability that an offspring is mutated.
    pub mutate_rate: f64,
    /// Probability that each mutable gene of a mutated offspring changes.
    pub gene_rate: f64,
    pub mutation_eta: f64,
}

#[inline]
fn uniform_index<R: Rng + ?Sized>(rng: &mut R, low: f64, high: f64) -> f64 {
    rng.random_range(low as u64..=high as u64) as f64
}

/// Draws one gene uniformly; with `use_seed`, inside the parameter's seed sub-range if it has one.
pub fn sample_gene<R: Rng + ?Sized>(g: &Gene, use_seed: bool, rng: &mut R) -> f64 {
    let (low, high) = match (use_seed, g.seed) {
        (true, Some(bounds)) => bounds,
        _ => (g.low, g.high),
    };
    match g.kind {
        GeneKind::Ordinal { .. } | GeneKind::Categorical { .. } => uniform_index(rng, low, high),
        GeneKind::Real { .. } => {
            if high > low {
                rng.random_range(low..=high)
            } else {
                low
            }
        }
        GeneKind::Fixed => 0.0,
    }
}

/// The gene at quantile `u` in `[0, 1)` of its range (of its seed sub-range with `use_seed`):
/// stratified draws of these make a Latin-hypercube generation.
pub fn quantile_gene(g: &Gene, u: f64, use_seed: bool) -> f64 {
    let (low, high) = match (use_seed, g.seed) {
        (true, Some(bounds)) => bounds,
        _ => (g.low, g.high),
    };
    match g.kind {
        GeneKind::Ordinal { .. } | GeneKind::Categorical { .. } => {
            (low + (u * (high - low + 1.0)).floor()).min(high)
        }
        GeneKind::Real { .. } => (low + u * (high - low)).min(high),
        GeneKind::Fixed => 0.0,
    }
}

/// A standard normal draw (Box–Muller).
pub fn gaussian<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Fills a genome with a fresh random candidate.
pub fn sample_genome<R: Rng + ?Sized>(
    genes: &[Gene],
    seed_share: f64,
    x: &mut [f64],
    on: &mut [bool],
    rng: &mut R,
) {
    let use_seed = seed_share > 0.0 && rng.random::<f64>() < seed_share;
    for (i, g) in genes.iter().enumerate() {
        x[i] = sample_gene(g, use_seed, rng);
        on[i] = match g.knockout {
            Some(p) => rng.random::<f64>() >= p,
            None => true,
        };
    }
}

/// `x^e`: exponentiation by squaring when `e` is a whole number (the usual distribution indices
/// are), which is several times cheaper than `powf` in the SBX inner loop.
#[inline]
fn power(x: f64, e: f64) -> f64 {
    if e.fract() != 0.0 || e.abs() > 1024.0 {
        return x.powf(e);
    }
    let mut k = e.abs() as u32;
    let (mut base, mut acc) = (x, 1.0);
    while k > 0 {
        if k & 1 == 1 {
            acc *= base;
        }
        base *= base;
        k >>= 1;
    }
    if e < 0.0 {
        1.0 / acc
    } else {
        acc
    }
}

/// Fair coin flips drawn 64 at a time from one `u64`.
struct Coins {
    word: u64,
    left: u32,
}

impl Coins {
    fn new() -> Coins {
        Coins { word: 0, left: 0 }
    }

    #[inline]
    fn flip<R: Rng + ?Sized>(&mut self, rng: &mut R) -> bool {
        if self.left == 0 {
            self.word = rng.next_u64();
            self.left = 64;
        }
        let bit = self.word & 1 == 1;
        self.word >>= 1;
        self.left -= 1;
        bit
    }
}

/// Number of genes to skip before the next one that mutates with probability `p` (geometric).
#[inline]
fn skip<R: Rng + ?Sized>(ln_keep: f64, rng: &mut R) -> usize {
    if ln_keep == f64::NEG_INFINITY {
        return 0;
    }
    let u = 1.0 - rng.random::<f64>(); // in (0, 1]
    let k = (u.ln() / ln_keep).floor();
    if k >= usize::MAX as f64 {
        usize::MAX
    } else {
        k as usize
    }
}

/// SBX's spread factor, unbounded form: one root per crossed gene.
#[inline]
fn sbx_beta(eta: f64, u: f64) -> f64 {
    let base = if u <= 0.5 {
        2.0 * u
    } else {
        1.0 / (2.0 * (1.0 - u))
    };
    (base.ln() / (eta + 1.0)).exp()
}

/// Crosses two parents in place into two children: SBX for ordinal and real genes, uniform
/// exchange for categorical and knockout genes. Happens with probability `crossover_prob`.
pub fn crossover<R: Rng + ?Sized>(
    genes: &[Gene],
    v: &Variation,
    (x1, on1): (&mut [f64], &mut [bool]),
    (x2, on2): (&mut [f64], &mut [bool]),
    rng: &mut R,
) {
    if rng.random::<f64>() >= v.crossover_prob {
        return;
    }
    let mut coins = Coins::new();
    for (i, g) in genes.iter().enumerate() {
        if g.knockout.is_some() && coins.flip(rng) {
            std::mem::swap(&mut on1[i], &mut on2[i]);
        }
        match g.kind {
            GeneKind::Fixed => {}
            GeneKind::Categorical { .. } => {
                if coins.flip(rng) {
                    std::mem::swap(&mut x1[i], &mut x2[i]);
                }
            }
            GeneKind::Ordinal { .. } | GeneKind::Real { .. } => {
                if !coins.flip(rng) {
                    continue;
                }
                let ordinal = matches!(g.kind, GeneKind::Ordinal { .. });
                let (a, b) = (x1[i], x2[i]);
                let (y1, y2) = if a <= b { (a, b) } else { (b, a) };
                let delta = y2 - y1;
                if delta <= 1e-14 {
                    continue;
                }
                // Deb & Agrawal's SBX with one spread factor for both children, then clamping: a
                // third of the bounded variant's cost, and better fronts in benches/ (ZDT, DTLZ2).
                let bq = sbx_beta(v.crossover_eta, rng.random());
                let mut c1 = 0.5 * ((y1 + y2) - bq * delta);
                let mut c2 = 0.5 * ((y1 + y2) + bq * delta);
                if coins.flip(rng) {
                    std::mem::swap(&mut c1, &mut c2);
                }
                x1[i] = finish(g, c1, ordinal);
                x2[i] = finish(g, c2, ordinal);
            }
        }
    }
}

/// Clamps a real-valued gene to its bounds, rounding ordinal ones to the nearest level.
#[inline]
fn finish(g: &Gene, value: f64, ordinal: bool) -> f64 {
    let v = if ordinal { value.round() } else { value };
    if v.is_nan() {
        g.low
    } else {
        v.clamp(g.low, g.high)
    }
}

/// Polynomial mutation of one real value in `[xl, xu]` (Deb's bounded form, as in pymoo).
#[inline]
fn polynomial(x: f64, xl: f64, xu: f64, eta: f64, u: f64) -> f64 {
    let span = xu - xl;
    let pow = 1.0 / (eta + 1.0);
    let deltaq = if u <= 0.5 {
        let xy = 1.0 - (x - xl) / span;
        let val = 2.0 * u + (1.0 - 2.0 * u) * power(xy, eta + 1.0);
        val.powf(pow) - 1.0
    } else {
        let xy = 1.0 - (xu - x) / span;
        let val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * power(xy, eta + 1.0);
        1.0 - val.powf(pow)
    };
    x + deltaq * span
}

/// Mutates the value gene of parameter `i`: polynomial for ordinal/real genes (an ordinal gene
/// moves at least one level), a different value for categorical genes.
pub fn mutate_value<R: Rng + ?Sized>(g: &Gene, eta: f64, x: &mut f64, rng: &mut R) {
    match g.kind {
        GeneKind::Fixed => {}
        GeneKind::Real { .. } => {
            let u = rng.random::<f64>();
            *x = finish(g, polynomial(*x, g.low, g.high, eta, u), false);
        }
        GeneKind::Ordinal { .. } => {
            let u = rng.random::<f64>();
            let y = finish(g, polynomial(*x, g.low - 0.5, g.high + 0.5, eta, u), true);
            *x = if y != *x {
                y
            } else if *x <= g.low {
                *x + 1.0
            } else if *x >= g.high {
                *x - 1.0
            } else if rng.random::<bool>() {
                *x + 1.0
            } else {
                *x - 1.0
            };
        }
        GeneKind::Categorical { n } => {
            // Uniform over the other n-1 values.
            let k = rng.random_range(0..n - 1) as f64;
            *x = if k >= *x { k + 1.0 } else { k };
        }
    }
}

/// Mutates an offspring with probability `mutate_rate`: then each mutable gene (index into
/// `mutable`) changes with probability `gene_rate`, and at least one always does. Jumps from one
/// mutated gene to the next (geometric gaps): one draw per mutation. Returns whether it mutated.
pub fn mutate<R: Rng + ?Sized>(
    genes: &[Gene],
    mutable: &[usize],
    v: &Variation,
    x: &mut [f64],
    on: &mut [bool],
    rng: &mut R,
) -> bool {
    if mutable.is_empty() || v.mutate_rate <= 0.0 || rng.random::<f64>() >= v.mutate_rate {
        return false;
    }
    let ln_keep = (1.0 - v.gene_rate).ln();
    let mut changed = false;
    let mut k = skip(ln_keep, rng);
    while k < mutable.len() {
        let i = mutable[k];
        mutate_gene(&genes[i], v.mutation_eta, &mut x[i], &mut on[i], rng);
        changed = true;
        k = k.saturating_add(1).saturating_add(skip(ln_keep, rng));
    }
    if !changed {
        mutate_one(genes, mutable, v.mutation_eta, x, on, rng);
    }
    true
}

/// Changes one gene: its presence or its value.
#[inline]
fn mutate_gene<R: Rng + ?Sized>(g: &Gene, eta: f64, x: &mut f64, on: &mut bool, rng: &mut R) {
    let flip_knockout = match (g.kind, g.knockout) {
        (_, None) => false,
        (GeneKind::Fixed, Some(_)) => true,
        // An absent key's value is invisible: turn it on, or sometimes change the knockout alone.
        (_, Some(_)) => !*on || rng.random::<f64>() < 0.25,
    };
    if flip_knockout {
        *on = !*on;
    } else {
        mutate_value(g, eta, x, rng);
    }
}

/// Forces a change on one random mutable gene; used to escape a duplicate child.
pub fn mutate_one<R: Rng + ?Sized>(
    genes: &[Gene],
    mutable: &[usize],
    eta: f64,
    x: &mut [f64],
    on: &mut [bool],
    rng: &mut R,
) {
    if mutable.is_empty() {
        return;
    }
    let i = mutable[rng.random_range(0..mutable.len())];
    mutate_gene(&genes[i], eta, &mut x[i], &mut on[i], rng);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn genes() -> Vec<Gene> {
        vec![
            Gene {
                kind: GeneKind::Ordinal { levels: 5 },
                low: 0.0,
                high: 4.0,
                knockout: Some(0.3),
                seed: Some((1.0, 2.0)),
            },
            Gene {
                kind: GeneKind::Real {
                    low: -1.0,
                    high: 2.0,
                },
                low: -1.0,
                high: 2.0,
                knockout: None,
                seed: None,
            },
            Gene {
                kind: GeneKind::Categorical { n: 3 },
                low: 0.0,
                high: 2.0,
                knockout: None,
                seed: None,
            },
            Gene {
                kind: GeneKind::Fixed,
                low: 0.0,
                high: 0.0,
                knockout: Some(0.5),
                seed: None,
            },
        ]
    }

    fn in_bounds(genes: &[Gene], x: &[f64]) {
        for (g, v) in genes.iter().zip(x) {
            assert!(*v >= g.low && *v <= g.high, "{v} outside {g:?}");
            if !matches!(g.kind, GeneKind::Real { .. }) {
                assert_eq!(v.fract(), 0.0);
            }
        }
    }

    #[test]
    fn operators_stay_in_bounds() {
        let gs = genes();
        let v = Variation {
            crossover_prob: 1.0,
            crossover_eta: 2.0,
            mutate_rate: 0.9,
            gene_rate: 0.5,
            mutation_eta: 1.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..5000 {
            let (mut x1, mut o1, mut x2, mut o2) =
                (vec![0.0; 4], vec![true; 4], vec![0.0; 4], vec![true; 4]);
            sample_genome(&gs, 0.5, &mut x1, &mut o1, &mut rng);
            sample_genome(&gs, 0.5, &mut x2, &mut o2, &mut rng);
            in_bounds(&gs, &x1);
            crossover(&gs, &v, (&mut x1, &mut o1), (&mut x2, &mut o2), &mut rng);
            in_bounds(&gs, &x1);
            in_bounds(&gs, &x2);
            mutate(&gs, &[0, 1, 2, 3], &v, &mut x1, &mut o1, &mut rng);
            in_bounds(&gs, &x1);
        }
    }

    #[test]
    fn power_matches_powf() {
        for &x in &[0.3, 1.7, 2.0, 0.999] {
            for &e in &[-16.0, -21.0, 16.0, 0.0, 3.0, 0.5] {
                let (a, b) = (power(x, e), f64::powf(x, e));
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{x}^{e}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn mutate_rate_is_per_offspring_and_gene_rate_per_gene() {
        let gs: Vec<Gene> = (0..50)
            .map(|_| Gene {
                kind: GeneKind::Real {
                    low: 0.0,
                    high: 1.0,
                },
                low: 0.0,
                high: 1.0,
                knockout: None,
                seed: None,
            })
            .collect();
        let mutable: Vec<usize> = (0..50).collect();
        let v = Variation {
            crossover_prob: 0.0,
            crossover_eta: 15.0,
            mutate_rate: 0.25,
            gene_rate: 0.1,
            mutation_eta: 20.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut mutated, mut changed) = (0usize, 0usize);
        let trials = 4000;
        for _ in 0..trials {
            let mut x = vec![0.5; 50];
            let mut on = vec![true; 50];
            let did = mutate(&gs, &mutable, &v, &mut x, &mut on, &mut rng);
            let k = x.iter().filter(|&&v| v != 0.5).count();
            assert_eq!(did, k > 0, "a mutated offspring changes at least one gene");
            mutated += usize::from(did);
            changed += k;
        }
        let want = 0.25 * trials as f64;
        assert!(
            (mutated as f64 - want).abs() < 5.0 * (want * 0.75).sqrt(),
            "{mutated} vs {want}"
        );
        // About gene_rate * n genes per mutated offspring (a little more: at least one changes).
        let per = changed as f64 / mutated as f64;
        assert!(
            (5.0..5.6).contains(&per),
            "{per} genes per mutated offspring"
        );
    }

    #[test]
    fn seed_share_one_stays_in_seed_range() {
        let gs = genes();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            let (mut x, mut o) = (vec![0.0; 4], vec![true; 4]);
            sample_genome(&gs, 1.0, &mut x, &mut o, &mut rng);
            assert!((1.0..=2.0).contains(&x[0]));
        }
    }

    #[test]
    fn ordinal_and_categorical_mutation_always_moves() {
        let gs = genes();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for start in 0..5 {
            let mut x = start as f64;
            mutate_value(&gs[0], 20.0, &mut x, &mut rng);
            assert_ne!(x, start as f64);
        }
        for start in 0..3 {
            let mut x = start as f64;
            mutate_value(&gs[2], 20.0, &mut x, &mut rng);
            assert_ne!(x, start as f64);
        }
    }
}
