//! The steady schedule: every ask chooses its candidates with every result told so far, and
//! every tell updates the population and the model's data at once. No generation barrier.
//!
//! The first candidates are a small space-filling design (warm-start candidates first); then
//! the model-assisted engine breeds many offspring of the current population per asked
//! candidate and hands out the one the surrogate expects most from, with the candidates still
//! in flight lowering the value of offspring near them (so parallel slots do not get
//! near-duplicates); the plain engines breed one child per asked candidate. A told result joins
//! the population through the usual selection (a (μ+λ) update with the results of that call).

use super::pop::Pop;
use super::{Engine, EngineRng};
use crate::config::{Algorithm, Direction};
use crate::error::{Error, Result};
use crate::surrogate::{expected_improvement, FeatureKind};
use rand::{Rng, SeedableRng};
use std::ops::Range;

/// The model-assisted engine's initial design: a twentieth of the budget, at least this many
/// and at most `pool_size` (Optuna's TPE starts from 10 random trials).
const MIN_DESIGN: usize = 10;
const DESIGN_SHARE: usize = 20;
/// The model needs this many told results before it chooses; until then, uniform draws.
const MIN_MODEL_ROWS: usize = 2;
/// Offspring screened per asked candidate, as a multiple of `oversampling` (1: the generational
/// engine's ratio; 4 measured worse at 100 evaluations, too greedy without a batch to spread).
const SCREEN_FACTOR: usize = 1;
/// Offspring screened per asked candidate, at most.
const MAX_SCREENED_PER_ASK: usize = 1024;
/// The model is refitted once the results told since its fit reach this share of the rows it
/// was fitted to (at least one): a refit per result while the archive is small, a bounded cost
/// per asked candidate when it is large.
const REFIT_SHARE: usize = 32;
/// Distance (mean per gene, in [0, 1]) within which an in-flight candidate lowers the value of
/// offspring: `1 - exp(-(d / r)²)` per in-flight candidate.
const PENDING_RADIUS: f64 = 0.1;
/// The latest results count as in flight too: asked one at a time, consecutive candidates
/// otherwise crowd on the model's optimum (measured: TPE's median matched on 8 of 11 problems at
/// 100 evaluations instead of 5).
const RECENT: usize = 4;

impl Engine {
    /// The whole budget of candidates asked: `generations * pool_size`.
    fn steady_budget(&self) -> u64 {
        u64::from(self.state.config.generations) * self.state.config.pool_size as u64
    }

    /// The initial design's size (warm-start candidates included).
    fn design_size(&self) -> usize {
        let pool = self.state.config.pool_size;
        let budget = self.steady_budget().min(usize::MAX as u64) as usize;
        if !self.state.config.surrogate {
            return pool.min(budget);
        }
        (budget / DESIGN_SHARE)
            .max(MIN_DESIGN)
            .min(pool)
            .min(budget)
    }

    /// Creation under the steady schedule: the initial design goes into the batch, which is
    /// handed out first (prior evaluations replace as much of it as they cover).
    pub(super) fn start_steady(&mut self) {
        let size = self
            .design_size()
            .saturating_sub(self.state.population.len())
            .max(self.state.batch.len());
        self.fill_initial(size);
        if self.state.batch.len() < size {
            self.state.exhausted = true;
        }
        // Ids are given as candidates are asked, not as the design is drawn.
        self.state.next_id -= self.state.batch.len() as u64;
        self.update_done();
    }

    fn update_done(&mut self) {
        let s = &self.state;
        let idle = s.pending.len() == 0 && s.proposed.len() == 0 && s.n_asked == s.batch.len();
        self.state.done = idle && (s.exhausted || s.asked_total >= self.steady_budget());
    }

    /// Chooses candidates until `n` (within the budget) are proposed.
    pub(super) fn propose_steady(&mut self, n: usize) {
        let left = self.steady_budget().saturating_sub(self.state.asked_total);
        let want = (n as u64).min(left) as usize;
        let (np, m) = (self.num_params(), self.num_objectives());
        let (mut x, mut on) = (vec![0.0; np], vec![true; np]);
        while self.state.proposed.len() < want {
            if !self.choose(&mut x, &mut on) {
                self.state.exhausted = true;
                break;
            }
            self.state.proposed.push(0, &x, &on, m);
            self.state.proposed_screened.push(false);
        }
        self.update_done();
    }

    pub(super) fn ask_steady(&mut self, n: Option<usize>) -> Range<usize> {
        let n = n.unwrap_or_else(|| {
            self.state
                .config
                .pool_size
                .saturating_sub(self.state.pending.len())
        });
        self.propose_steady(n);
        let (np, m) = (self.num_params(), self.num_objectives());
        let k = n.min(self.state.proposed.len());
        let start = self.state.pending.len();
        let proposed = std::mem::take(&mut self.state.proposed);
        let mut rest = Pop::default();
        for i in 0..proposed.len() {
            if i < k {
                self.state.pending.push_from(&proposed, i, np, m);
                let at = self.state.pending.len() - 1;
                self.state.pending.ids[at] = self.state.next_id;
                self.state.next_id += 1;
            } else {
                rest.push_from(&proposed, i, np, m);
            }
        }
        self.state.proposed = rest;
        self.state.proposed_screened.drain(..k);
        self.state.asked_total += k as u64;
        self.update_done();
        start..start + k
    }

    pub(super) fn unscreened_steady(&self) -> Vec<usize> {
        let base = self.state.pending.len();
        (0..self.state.proposed.len())
            .filter(|&j| !self.state.proposed_screened[j])
            .map(|j| base + j)
            .collect()
    }

    pub(super) fn screen_steady(
        &mut self,
        accepted: &[usize],
        rejected: &[usize],
    ) -> Result<usize> {
        let base = self.state.pending.len();
        let len = self.state.proposed.len();
        for &p in accepted.iter().chain(rejected) {
            if p < base || p >= base + len {
                return Err(Error::InvalidTell(format!(
                    "position {p} is not a proposed candidate (positions {base}..{})",
                    base + len
                )));
            }
        }
        for &p in accepted {
            self.state.proposed_screened[p - base] = true;
        }
        self.state.draws += accepted.len() as u64;
        let np = self.num_params();
        let (mut x, mut on) = (vec![0.0; np], vec![true; np]);
        let mut dropped = Vec::new();
        for &p in rejected {
            self.state.draws += 1;
            self.state.rejected += 1;
            let j = p - base;
            // The rejected candidate stays in flight while its replacement is chosen, so the
            // model looks elsewhere.
            if self.choose(&mut x, &mut on) {
                let pr = &mut self.state.proposed;
                pr.x[j * np..(j + 1) * np].copy_from_slice(&x);
                pr.on[j * np..(j + 1) * np].copy_from_slice(&on);
                self.state.proposed_screened[j] = false;
            } else {
                self.state.exhausted = true;
                dropped.push(j);
            }
        }
        if !dropped.is_empty() {
            let m = self.num_objectives();
            let old = std::mem::take(&mut self.state.proposed);
            let screened = std::mem::take(&mut self.state.proposed_screened);
            for (j, &was_screened) in screened.iter().enumerate() {
                if !dropped.contains(&j) {
                    self.state.proposed.push_from(&old, j, np, m);
                    self.state.proposed_screened.push(was_screened);
                }
            }
        }
        self.update_done();
        Ok(dropped.len())
    }

    pub(super) fn tell_steady(&mut self, ids: &[u64], scores: &[f64]) -> Result<()> {
        let m = self.num_objectives();
        let pending = &self.state.pending;
        let mut fresh = vec![false; pending.len()];
        // Per pending position, the row of its scores in this call.
        let mut rows = vec![0; pending.len()];
        let mut positions = Vec::with_capacity(ids.len());
        for &id in ids {
            let Ok(pos) = pending.ids.binary_search(&id) else {
                return Err(Error::InvalidTell(if id >= self.state.next_id {
                    format!("candidate {id} was not asked yet")
                } else {
                    format!("candidate {id} is not pending: it was already told")
                }));
            };
            if fresh[pos] {
                return Err(Error::InvalidTell(format!(
                    "candidate {id} was already told"
                )));
            }
            fresh[pos] = true;
            rows[pos] = positions.len();
            positions.push(pos);
        }
        // In id order: the order within one call does not matter.
        positions.sort_unstable();
        let np = self.num_params();
        let dirs = self.state.config.directions.clone();
        let mut told = Pop::default();
        for (at, &pos) in positions.iter().enumerate() {
            told.push_from(&self.state.pending, pos, np, m);
            let row = rows[pos];
            let s = &scores[row * m..(row + 1) * m];
            told.valid[at] = s.iter().all(|v| v.is_finite());
            for j in 0..m {
                told.f[at * m + j] = if dirs[j] == Direction::Max {
                    -s[j]
                } else {
                    s[j]
                };
            }
        }
        // The pending candidates left, in ask order.
        let old = std::mem::take(&mut self.state.pending);
        for (i, &gone) in fresh.iter().enumerate() {
            if !gone {
                self.state.pending.push_from(&old, i, np, m);
            }
        }
        let cfg = &self.state.config;
        for i in 0..told.len() {
            if cfg.surrogate && self.state.evaluations + (i as u64) < cfg.model_evaluations {
                self.state.archive.push_from(&told, i, np, m);
            }
        }
        self.state.evaluations += told.len() as u64;
        let pool = cfg.pool_size as u64;
        self.state.generation = (self.state.evaluations / pool).min(u64::from(u32::MAX)) as u32;
        let pop = std::mem::take(&mut self.state.population);
        let survivors = self.select(&pop, &told);
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        for &i in &survivors {
            if i < pop.len() {
                next.push_from(&pop, i, np, m);
            } else {
                next.push_from(&told, i - pop.len(), np, m);
            }
        }
        self.spare = pop;
        self.state.population = next;
        self.update_done();
        Ok(())
    }

    /// Chooses one new candidate (claimed in the dedup set) into `x`/`on`; false once the space
    /// is exhausted.
    fn choose(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
        let np = self.num_params();
        let s = &self.state;
        if s.n_asked < s.batch.len() {
            // The initial design and the warm-start candidates, already claimed.
            let i = s.n_asked;
            x.copy_from_slice(&s.batch.x[i * np..(i + 1) * np]);
            on.copy_from_slice(&s.batch.on[i * np..(i + 1) * np]);
            self.state.n_asked += 1;
            return true;
        }
        if s.exhausted {
            return false;
        }
        let cfg = &s.config;
        let modelled = cfg.surrogate && s.evaluations < cfg.model_evaluations;
        if modelled {
            if s.archive.len() >= MIN_MODEL_ROWS {
                return self.choose_by_model(x, on);
            }
            return self.fresh_random(x, on);
        }
        if s.population.len() >= 2 {
            return self.breed_one(x, on);
        }
        self.fresh_random(x, on)
    }

    /// One child of the population, made unique: the plain engines' steady breeding.
    fn breed_one(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
        let np = self.num_params();
        let variation = self.variation();
        let size = self.state.population.len();
        // NSGA-III mates at random (its niching carries the selection pressure); the others
        // run binary tournaments over the best `cull_size` survivors.
        let nsga3 = self.state.config.algorithm == Algorithm::Nsga3;
        let mating = if nsga3 {
            size
        } else {
            self.state.config.cull_size.min(size)
        }
        .max(1);
        let pick = |e: &mut Engine| {
            if nsga3 {
                e.state.rng.random_range(0..mating)
            } else {
                e.tournament(mating)
            }
        };
        let a = pick(self);
        let mut b = pick(self);
        while mating > 1 && b == a {
            b = pick(self);
        }
        let (mut x2, mut on2) = (vec![0.0; np], vec![true; np]);
        self.cross_and_mutate(a, b, &variation, (x, on), (&mut x2, &mut on2));
        self.make_unique(x, on, variation.mutation_eta)
    }

    /// The surrogate in use, refitted when enough results arrived since its fit.
    fn refresh_model(&mut self) {
        if self.model.is_none() && self.state.model_rows > 0 {
            // A restored engine: the same fit as before it was saved.
            let mut rng = EngineRng::seed_from_u64(self.state.model_seed);
            self.model = Some(self.fit_model(self.state.model_rows, &mut rng));
        }
        let (rows, fitted) = (self.state.archive.len(), self.state.model_rows);
        if fitted == 0 || rows >= fitted + (fitted / REFIT_SHARE).max(1) {
            let seed = self.state.rng.random::<u64>();
            let mut rng = EngineRng::seed_from_u64(seed);
            self.model = Some(self.fit_model(rows, &mut rng));
            self.state.model_rows = rows;
            self.state.model_seed = seed;
        }
    }

    /// Breeds many offspring of the population and takes the one the surrogate expects most
    /// from (a Thompson-like draw of half the trees), in-flight candidates and the latest
    /// results discounting the offspring near them.
    fn choose_by_model(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
        self.refresh_model();
        let np = self.num_params();
        let want = (self.state.config.oversampling * SCREEN_FACTOR).min(MAX_SCREENED_PER_ASK);
        let offspring = self.screening_offspring(want);
        let count = offspring.keys.len();
        if count == 0 {
            return self.fresh_random(x, on);
        }
        let model = self.model.as_ref().expect("fitted above");
        let trees = model.num_trees();
        let rng = &mut self.state.rng;
        let mut subset: Vec<usize> = (0..trees).filter(|_| rng.random::<bool>()).collect();
        if subset.is_empty() {
            subset.push(rng.random_range(0..trees));
        }
        let cand = self.features(&offspring.x, &offspring.on);
        let predictions = model.predict_each(&cand);
        let archive = &self.state.archive;
        let from = archive.len().saturating_sub(RECENT);
        let mut in_flight = [
            self.features(&self.state.pending.x, &self.state.pending.on),
            self.features(&self.state.proposed.x, &self.state.proposed.on),
        ]
        .concat();
        in_flight.extend(self.features(&archive.x[from * np..], &archive.on[from * np..]));
        let scale: Vec<(bool, f64)> = self
            .feature_specs()
            .iter()
            .map(|s| {
                let span = s.high - s.low;
                (
                    s.kind == FeatureKind::Categorical,
                    if span > 0.0 { 1.0 / span } else { 0.0 },
                )
            })
            .collect();
        let inv = 1.0 / subset.len() as f64;
        let best = model.best;
        let mut chosen = 0;
        let mut chosen_score = f64::INFINITY;
        for c in 0..count {
            let each = subset.iter().map(|&t| predictions[t * count + c]);
            let mu = each.clone().sum::<f64>() * inv;
            let var = each.map(|p| (p - mu).powi(2)).sum::<f64>() * inv;
            // The mean breaks ties among offspring with no expected improvement.
            let mut value = expected_improvement(mu, var.sqrt(), best) + 1e-6 * (2.0 - mu);
            let row = &cand[c * np..(c + 1) * np];
            for other in in_flight.chunks(np) {
                let d = gower(row, other, &scale);
                value *= 1.0 - (-(d / PENDING_RADIUS).powi(2)).exp();
            }
            if -value < chosen_score {
                chosen_score = -value;
                chosen = c;
            }
        }
        x.copy_from_slice(&offspring.x[chosen * np..(chosen + 1) * np]);
        on.copy_from_slice(&offspring.on[chosen * np..(chosen + 1) * np]);
        self.state.seen.insert(offspring.keys[chosen]);
        true
    }
}

/// Mean per-gene distance of two feature rows, in [0, 1]: absent vs present 1, categorical
/// values 0 or 1, ordered values scaled by their range.
fn gower(a: &[f64], b: &[f64], scale: &[(bool, f64)]) -> f64 {
    let mut d = 0.0;
    for ((&u, &v), &(categorical, inv_span)) in a.iter().zip(b).zip(scale) {
        d += match (u.is_nan(), v.is_nan()) {
            (true, true) => 0.0,
            (true, false) | (false, true) => 1.0,
            _ if categorical => f64::from(u != v),
            _ => ((u - v).abs() * inv_span).min(1.0),
        };
    }
    d / a.len().max(1) as f64
}
