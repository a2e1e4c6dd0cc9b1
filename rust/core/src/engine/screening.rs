//! Model-assisted breeding: a space-filling start, many offspring bred per slot, and the
//! surrogate choosing which of them are evaluated.

use super::claims::Claim;
use super::model::INVALID_RANK;
use super::pop::SeenSet;
use super::{Engine, EngineRng};
use crate::operators::{gaussian, mutate, quantile_gene, sample_gene, sample_genome, Variation};
use crate::space::GeneKind;
use crate::surrogate::{expected_improvement, ForestParams};
use rand::seq::SliceRandom;
use rand::Rng;

/// Screening never scores more offspring than this per generation (beyond 2 per slot): bounds
/// the model's cost with very large pools.
pub(super) const MAX_SCREENED: usize = 4096;
/// Shares of the screened offspring drawn uniformly (exploration) and as mutants of one
/// survivor (local moves); the rest are crossover children.
pub(super) const SCREEN_RANDOM_SHARE: f64 = 0.1;
pub(super) const SCREEN_MUTANT_SHARE: f64 = 0.25;
/// Share drawn gene by gene from the best survivors (each gene from a random one of them,
/// perturbed): a many-parent recombination like TPE's draws from its good set, which combines
/// more good genes at once than crossover of two parents can.
pub(super) const SCREEN_GOOD_SET_SHARE: f64 = 0.3;
/// The good set: this share of the survivors, best first.
pub(super) const GOOD_SET_SHARE: f64 = 0.25;
/// The model's target for an INVALID candidate, on the unit rank scale of the valid ones: worse
/// Rankings the slots of one generation take turns on (each with its own draw of trees and, for
/// several objectives, of weights).
pub(super) const RANKINGS: usize = 16;

/// Candidate offspring of the model-assisted engine, with their dedup keys.
#[derive(Default)]
pub(super) struct Offspring {
    pub(super) x: Vec<f64>,
    pub(super) on: Vec<bool>,
    pub(super) keys: Vec<u128>,
}

impl Engine {
    // ----- model-assisted breeding ----------------------------------------------------------

    /// Generation 0 of the model-assisted engine: a Latin hypercube over the genes (each gene's
    /// range cut into `pool_size` strata, one draw per stratum) and stratified presence flags,
    /// so the first model sees the whole space evenly.
    pub(super) fn fill_space_filling(&mut self, pool: usize) {
        let n = self.num_params();
        let share = self.state.config.init_seed_share;
        let rng = &mut self.state.rng;
        let strata = |rng: &mut EngineRng| {
            (0..n)
                .map(|_| {
                    let mut p: Vec<usize> = (0..pool).collect();
                    p.shuffle(rng);
                    p
                })
                .collect::<Vec<_>>()
        };
        let (values, presence) = (strata(rng), strata(rng));
        let (mut x, mut on) = (vec![0.0; n], vec![true; n]);
        for i in 0..pool {
            if self.state.batch.len() >= pool {
                break; // warm-start candidates took the rest
            }
            let use_seed = share > 0.0 && self.state.rng.random::<f64>() < share;
            for j in 0..n {
                let u = (values[j][i] as f64 + self.state.rng.random::<f64>()) / pool as f64;
                x[j] = quantile_gene(&self.genes[j], u, use_seed);
                on[j] = match self.genes[j].knockout {
                    Some(p) => (presence[j][i] as f64 + 0.5) / pool as f64 >= p,
                    None => true,
                };
            }
            if self.try_claim(&x, &on) != Claim::New && !self.fresh_random(&mut x, &mut on) {
                break;
            }
            self.push_candidate(&x, &on);
        }
    }

    /// Breeds many more offspring than `pool_size` and evaluates the ones the surrogate expects
    /// most from; tops up with random candidates only when too few unseen offspring exist.
    pub(super) fn breed_screened(&mut self) {
        let pool = self.state.config.pool_size;
        let want = (pool * self.state.config.oversampling).min(MAX_SCREENED.max(2 * pool));
        let offspring = self.screening_offspring(want);
        let n = self.num_params();
        let slots = pool.saturating_sub(self.state.batch.len());
        for c in self.pick_by_model(&offspring, slots) {
            let (x, on) = (
                &offspring.x[c * n..(c + 1) * n],
                &offspring.on[c * n..(c + 1) * n],
            );
            self.state.seen.insert(offspring.keys[c]);
            self.push_candidate(x, on);
        }
        let (mut x, mut on) = (vec![0.0; n], vec![true; n]);
        while self.state.batch.len() < pool && self.fresh_random(&mut x, &mut on) {
            self.push_candidate(&x, &on);
        }
        self.finish_batch();
    }

    /// Up to `want` distinct unseen offspring of the survivors (not yet claimed): crossover
    /// children, mutants of one survivor, and a few uniform draws.
    pub(super) fn screening_offspring(&mut self, want: usize) -> Offspring {
        let n = self.num_params();
        let variation = self.variation();
        let mating = self
            .state
            .config
            .cull_size
            .min(self.state.population.len())
            .max(1);
        let mut out = Offspring::default();
        let mut local = SeenSet::default();
        let (mut x1, mut on1, mut x2, mut on2) =
            (vec![0.0; n], vec![true; n], vec![0.0; n], vec![true; n]);
        let mut attempts = 0;
        while out.keys.len() < want && attempts < 4 * want {
            attempts += 2;
            let r = self.state.rng.random::<f64>();
            let pop_empty = self.state.population.len() == 0;
            if r < SCREEN_RANDOM_SHARE || pop_empty {
                sample_genome(&self.genes, 0.0, &mut x1, &mut on1, &mut self.state.rng);
                self.offer(&mut out, &mut local, &x1, &on1);
                continue;
            }
            if r >= 1.0 - SCREEN_GOOD_SET_SHARE {
                self.sample_good_set(&mut x1, &mut on1);
                self.offer(&mut out, &mut local, &x1, &on1);
                continue;
            }
            let a = self.tournament(mating);
            if r < SCREEN_RANDOM_SHARE + SCREEN_MUTANT_SHARE || mating < 2 {
                let pop = &self.state.population;
                x1.copy_from_slice(&pop.x[a * n..(a + 1) * n]);
                on1.copy_from_slice(&pop.on[a * n..(a + 1) * n]);
                let forced = Variation {
                    mutate_rate: 1.0,
                    ..variation
                };
                let live = self.live_mutable(&x1, &on1);
                mutate(
                    &self.genes,
                    &live,
                    &forced,
                    &mut x1,
                    &mut on1,
                    &mut self.state.rng,
                );
                self.live = live;
                self.offer(&mut out, &mut local, &x1, &on1);
                continue;
            }
            let mut b = self.tournament(mating);
            while b == a {
                b = self.tournament(mating);
            }
            self.cross_and_mutate(a, b, &variation, (&mut x1, &mut on1), (&mut x2, &mut on2));
            self.offer(&mut out, &mut local, &x1, &on1);
            self.offer(&mut out, &mut local, &x2, &on2);
        }
        out
    }

    /// Draws each gene from a random member of the good set (the best survivors): presence as
    /// it has it, the value perturbed (a Gaussian step for ordered genes, sometimes another
    /// value for categorical ones); with a small prior share, a gene is drawn uniformly.
    pub(super) fn sample_good_set(&mut self, x: &mut [f64], on: &mut [bool]) {
        let n = self.num_params();
        let pop = &self.state.population;
        let good = ((pop.len() as f64 * GOOD_SET_SHARE).ceil() as usize).clamp(1, pop.len());
        let prior = 1.0 / (good as f64 + 1.0);
        // Narrower steps as the good set grows (Scott-like), as TPE's bandwidths do.
        let spread = 0.2 * (good as f64).powf(-0.2);
        let rng = &mut self.state.rng;
        for (j, g) in self.genes.iter().enumerate() {
            if rng.random::<f64>() < prior {
                x[j] = sample_gene(g, false, rng);
                on[j] = g.knockout.is_none_or(|p| rng.random::<f64>() >= p);
                continue;
            }
            let r = rng.random_range(0..good);
            let v = pop.x[r * n + j];
            on[j] = pop.on[r * n + j];
            x[j] = match g.kind {
                GeneKind::Fixed => 0.0,
                GeneKind::Categorical { .. } => {
                    if rng.random::<f64>() < prior {
                        sample_gene(g, false, rng)
                    } else {
                        v
                    }
                }
                GeneKind::Ordinal { .. } | GeneKind::Real { .. } => {
                    let step = gaussian(rng) * spread * (g.high - g.low);
                    let y = v + step;
                    let y = if matches!(g.kind, GeneKind::Ordinal { .. }) {
                        y.round()
                    } else {
                        y
                    };
                    y.clamp(g.low, g.high)
                }
            };
        }
    }

    pub(super) fn offer(
        &mut self,
        out: &mut Offspring,
        local: &mut SeenSet,
        x: &[f64],
        on: &[bool],
    ) {
        self.look_at(x, on);
        if !self.check_constraints(x) {
            return;
        }
        let k = self.key_of_active(x);
        if !self.state.seen.contains(&k) && local.insert(k) {
            out.x.extend_from_slice(x);
            out.on.extend_from_slice(on);
            out.keys.push(k);
        }
    }

    /// Chooses up to `k` of `offspring` by the surrogate's expected improvement. `RANKINGS`
    /// draws each rank all offspring with a random half of the trees (a Thompson-like draw, so
    /// one batch does not crowd on a single optimum); the slots take turns, each taking the best
    /// offspring of its ranking that no earlier slot took.
    pub(super) fn pick_by_model(&mut self, offspring: &Offspring, k: usize) -> Vec<usize> {
        let count = offspring.keys.len();
        if count <= k {
            return (0..count).collect();
        }
        let trees = ForestParams::default().trees;
        let predictions = self.predict_offspring(offspring);
        let best = if self.state.archive.valid.iter().any(|&v| v) {
            0.0
        } else {
            INVALID_RANK
        };
        let rng = &mut self.state.rng;
        let rankings: Vec<Vec<usize>> = (0..RANKINGS.min(k))
            .map(|_| {
                let mut subset: Vec<usize> = (0..trees).filter(|_| rng.random::<bool>()).collect();
                if subset.is_empty() {
                    subset.push(rng.random_range(0..trees));
                }
                let inv = 1.0 / subset.len() as f64;
                let scores: Vec<f64> = (0..count)
                    .map(|c| {
                        let each = subset.iter().map(|&t| predictions[t * count + c]);
                        let mu = each.clone().sum::<f64>() * inv;
                        let var = each.map(|p| (p - mu).powi(2)).sum::<f64>() * inv;
                        // Lower is better: negative improvement, the mean breaking ties.
                        -expected_improvement(mu, var.sqrt(), best) + 1e-9 * mu
                    })
                    .collect();
                let mut order: Vec<usize> = (0..count).collect();
                order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
                order
            })
            .collect();
        let mut taken = vec![false; count];
        let mut cursors = vec![0usize; rankings.len()];
        let mut picks = Vec::with_capacity(k);
        for slot in 0..k {
            let r = slot % rankings.len();
            while taken[rankings[r][cursors[r]]] {
                cursors[r] += 1;
            }
            let c = rankings[r][cursors[r]];
            taken[c] = true;
            picks.push(c);
        }
        picks
    }
}
