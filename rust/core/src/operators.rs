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
        Gene { kind, low, high, knockout: p.knockout, seed: p.seed_bounds }
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
    pub mutate_rate: f64,
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

/// Fills a genome with a fresh random candidate.
pub fn sample_genome<R: Rng + ?Sized>(genes: &[Gene], seed_share: f64, x: &mut [f64], on: &mut [bool], rng: &mut R) {
    let use_seed = seed_share > 0.0 && rng.random::<f64>() < seed_share;
    for (i, g) in genes.iter().enumerate() {
        x[i] = sample_gene(g, use_seed, rng);
        on[i] = match g.knockout {
            Some(p) => rng.random::<f64>() >= p,
            None => true,
        };
    }
}

/// SBX's spread factor for one side (Deb & Agrawal, bounded form as in pymoo).
#[inline]
fn sbx_betaq(beta: f64, eta: f64, u: f64) -> f64 {
    let alpha = 2.0 - beta.powf(-(eta + 1.0));
    if u <= 1.0 / alpha {
        (u * alpha).powf(1.0 / (eta + 1.0))
    } else {
        (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
    }
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
    for (i, g) in genes.iter().enumerate() {
        if g.knockout.is_some() && rng.random::<bool>() {
            std::mem::swap(&mut on1[i], &mut on2[i]);
        }
        match g.kind {
            GeneKind::Fixed => {}
            GeneKind::Categorical { .. } => {
                if rng.random::<bool>() {
                    std::mem::swap(&mut x1[i], &mut x2[i]);
                }
            }
            GeneKind::Ordinal { .. } | GeneKind::Real { .. } => {
                if !rng.random::<bool>() {
                    continue;
                }
                let ordinal = matches!(g.kind, GeneKind::Ordinal { .. });
                // Ordinal genes cross on the widened interval so both end levels stay reachable.
                let (xl, xu) = if ordinal { (g.low - 0.5, g.high + 0.5) } else { (g.low, g.high) };
                let (a, b) = (x1[i], x2[i]);
                let (y1, y2) = if a <= b { (a, b) } else { (b, a) };
                let delta = y2 - y1;
                if delta <= 1e-14 {
                    continue;
                }
                let u: f64 = rng.random();
                let bq1 = sbx_betaq(1.0 + 2.0 * (y1 - xl) / delta, v.crossover_eta, u);
                let bq2 = sbx_betaq(1.0 + 2.0 * (xu - y2) / delta, v.crossover_eta, u);
                let mut c1 = 0.5 * ((y1 + y2) - bq1 * delta);
                let mut c2 = 0.5 * ((y1 + y2) + bq2 * delta);
                if rng.random::<bool>() {
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
        let val = 2.0 * u + (1.0 - 2.0 * u) * xy.powf(eta + 1.0);
        val.powf(pow) - 1.0
    } else {
        let xy = 1.0 - (xu - x) / span;
        let val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy.powf(eta + 1.0);
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

/// Mutates each gene (value and knockout) with probability `mutate_rate`; returns whether any changed.
pub fn mutate<R: Rng + ?Sized>(genes: &[Gene], v: &Variation, x: &mut [f64], on: &mut [bool], rng: &mut R) -> bool {
    let mut changed = false;
    let rate = v.mutate_rate;
    if rate <= 0.0 {
        return false;
    }
    for (i, g) in genes.iter().enumerate() {
        if g.kind != GeneKind::Fixed && rng.random::<f64>() < rate {
            mutate_value(g, v.mutation_eta, &mut x[i], rng);
            changed = true;
        }
        if g.knockout.is_some() && rng.random::<f64>() < rate {
            on[i] = !on[i];
            changed = true;
        }
    }
    changed
}

/// Forces a change on one random mutable gene; used to escape a duplicate child.
pub fn mutate_one<R: Rng + ?Sized>(genes: &[Gene], mutable: &[usize], eta: f64, x: &mut [f64], on: &mut [bool], rng: &mut R) {
    if mutable.is_empty() {
        return;
    }
    let i = mutable[rng.random_range(0..mutable.len())];
    let g = &genes[i];
    let flip_knockout = match (g.kind, g.knockout) {
        (_, None) => false,
        (GeneKind::Fixed, Some(_)) => true,
        // An absent key's value is invisible: turn it on, or sometimes change the knockout alone.
        (_, Some(_)) => !on[i] || rng.random::<f64>() < 0.25,
    };
    if flip_knockout {
        on[i] = !on[i];
    } else {
        mutate_value(g, eta, &mut x[i], rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn genes() -> Vec<Gene> {
        vec![
            Gene { kind: GeneKind::Ordinal { levels: 5 }, low: 0.0, high: 4.0, knockout: Some(0.3), seed: Some((1.0, 2.0)) },
            Gene { kind: GeneKind::Real { low: -1.0, high: 2.0 }, low: -1.0, high: 2.0, knockout: None, seed: None },
            Gene { kind: GeneKind::Categorical { n: 3 }, low: 0.0, high: 2.0, knockout: None, seed: None },
            Gene { kind: GeneKind::Fixed, low: 0.0, high: 0.0, knockout: Some(0.5), seed: None },
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
        let v = Variation { crossover_prob: 1.0, crossover_eta: 2.0, mutate_rate: 0.9, mutation_eta: 1.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..5000 {
            let (mut x1, mut o1, mut x2, mut o2) = (vec![0.0; 4], vec![true; 4], vec![0.0; 4], vec![true; 4]);
            sample_genome(&gs, 0.5, &mut x1, &mut o1, &mut rng);
            sample_genome(&gs, 0.5, &mut x2, &mut o2, &mut rng);
            in_bounds(&gs, &x1);
            crossover(&gs, &v, (&mut x1, &mut o1), (&mut x2, &mut o2), &mut rng);
            in_bounds(&gs, &x1);
            in_bounds(&gs, &x2);
            mutate(&gs, &v, &mut x1, &mut o1, &mut rng);
            in_bounds(&gs, &x1);
        }
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
