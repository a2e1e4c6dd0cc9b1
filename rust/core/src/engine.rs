//! The ask/tell engine: one generation at a time, never the same candidate twice.

use crate::config::{Algorithm, Direction, EngineConfig};
use crate::error::{Error, Result};
use crate::operators::{
    crossover, gaussian, mutate, mutate_one, quantile_gene, sample_gene, sample_genome, Gene,
    Variation,
};
use crate::refdirs::reference_directions;
use crate::selection::{select_ga, select_nsga2, select_nsga3, Nsga3Memory, ReferenceSet};
use crate::sorting::non_dominated_ranks;
use crate::space::{GeneKind, Space};
use crate::surrogate::{
    expected_improvement, unit_ranks, Additive, FeatureKind, FeatureSpec, Forest, ForestParams,
};
use rand::seq::index::sample;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

/// The engine's RNG: portable, seedable, serializable (seed, stream and word position).
pub type EngineRng = ChaCha8Rng;

/// Version 3 added constraints, prior evaluations and the constraint-rejection counters.
const STATE_MAGIC: &[u8; 8] = b"GTENG\x00\x00\x03";
/// Finite spaces up to this size are enumerated when random draws keep hitting seen candidates.
const PROBE_LIMIT: u128 = 1 << 22;
const RANDOM_TRIES: usize = 64;
/// Random draws per fresh candidate when constraints reject some: a constraint that almost no
/// candidate satisfies still finds one, and one that none satisfies fails in bounded time.
const CONSTRAINT_TRIES: usize = 100_000;
const REPAIR_TRIES: usize = 8;
/// Screening never scores more offspring than this per generation (beyond 2 per slot): bounds
/// the model's cost with very large pools.
const MAX_SCREENED: usize = 4096;
/// Shares of the screened offspring drawn uniformly (exploration) and as mutants of one
/// survivor (local moves); the rest are crossover children.
const SCREEN_RANDOM_SHARE: f64 = 0.1;
const SCREEN_MUTANT_SHARE: f64 = 0.25;
/// Share drawn gene by gene from the best survivors (each gene from a random one of them,
/// perturbed): a many-parent recombination like TPE's draws from its good set, which combines
/// more good genes at once than crossover of two parents can.
const SCREEN_GOOD_SET_SHARE: f64 = 0.3;
/// The good set: this share of the survivors, best first.
const GOOD_SET_SHARE: f64 = 0.25;
/// The model's target for an INVALID candidate, on the unit rank scale of the valid ones: worse
/// than every valid candidate, so the model learns where not to go.
const INVALID_RANK: f64 = 1.25;
/// Value bins of an ordered gene in the model's main effects.
const ADDITIVE_BINS: usize = 8;
/// Rankings the slots of one generation take turns on (each with its own draw of trees and, for
/// several objectives, of weights).
const RANKINGS: usize = 16;
/// The model is fitted to at most this many evaluated candidates (a random sample beyond).
const MAX_TRAINING_ROWS: usize = 4096;

/// Keys are already 128-bit hashes: hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
pub struct PassThroughHasher(u64);
impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}
type SeenSet = HashSet<u128, BuildHasherDefault<PassThroughHasher>>;

/// Individuals as parallel arrays; genomes and objective rows are row-major.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Pop {
    ids: Vec<u64>,
    x: Vec<f64>,
    on: Vec<bool>,
    /// Objectives oriented for minimization; meaningless where `valid` is false.
    f: Vec<f64>,
    valid: Vec<bool>,
}

impl Pop {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn push(&mut self, id: u64, x: &[f64], on: &[bool], m: usize) {
        self.ids.push(id);
        self.x.extend_from_slice(x);
        self.on.extend_from_slice(on);
        self.f.extend(std::iter::repeat_n(f64::NAN, m));
        self.valid.push(false);
    }

    /// Empties the arrays, keeping their allocations.
    fn clear(&mut self) {
        self.ids.clear();
        self.x.clear();
        self.on.clear();
        self.f.clear();
        self.valid.clear();
    }

    /// Appends individual `i` of `src`.
    fn push_from(&mut self, src: &Pop, i: usize, n: usize, m: usize) {
        self.ids.push(src.ids[i]);
        self.x.extend_from_slice(&src.x[i * n..(i + 1) * n]);
        self.on.extend_from_slice(&src.on[i * n..(i + 1) * n]);
        self.f.extend_from_slice(&src.f[i * m..(i + 1) * m]);
        self.valid.push(src.valid[i]);
    }
}

/// Saves the dedup set in sorted order, so a state's bytes do not depend on the set's history
/// (a restored engine saves exactly the bytes it was restored from).
mod sorted_keys {
    use super::SeenSet;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(set: &SeenSet, s: S) -> Result<S::Ok, S::Error> {
        let mut keys: Vec<u128> = set.iter().copied().collect();
        keys.sort_unstable();
        keys.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SeenSet, D::Error> {
        Ok(Vec::<u128>::deserialize(d)?.into_iter().collect())
    }
}

/// Candidate offspring of the model-assisted engine, with their dedup keys.
#[derive(Default)]
struct Offspring {
    x: Vec<f64>,
    on: Vec<bool>,
    keys: Vec<u128>,
}

/// What a claimed genome turned out to be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Claim {
    New,
    Seen,
    Infeasible,
}

/// What an engine starts from besides its space and configuration.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Constraint expressions every candidate satisfies (see [`crate::expr`]).
    pub constraints: Vec<String>,
    /// Candidates (params as the objective receives them) evaluated first, in generation 0.
    pub warm_start: Vec<serde_json::Value>,
    /// Candidates evaluated before (params), told as prior evaluations: never proposed again,
    /// and the search continues from them.
    pub priors: Vec<serde_json::Value>,
    /// Their scores, row-major `(priors.len(), m)`, in the user's orientation (NaN = INVALID).
    pub prior_scores: Vec<f64>,
}

/// Everything that is saved by `to_bytes` (the compiled space is rebuilt from its JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    space_json: String,
    constraints: Vec<String>,
    /// Prior evaluations told at creation (ids `0..priors`).
    priors: u64,
    /// Candidates checked against the constraints, and how many of them were rejected.
    draws: u64,
    rejected: u64,
    meta: String,
    config: EngineConfig,
    seed: u64,
    rng: EngineRng,
    generation: u32,
    next_id: u64,
    evaluations: u64,
    /// Survivors, in preference order (best first).
    population: Pop,
    /// The generation being evaluated; its ids are contiguous from `batch.ids[0]`.
    batch: Pop,
    told: Vec<bool>,
    n_told: usize,
    n_asked: usize,
    /// Batch positions an outside constraint (a Python callable) accepted; empty when none is used.
    screened: Vec<bool>,
    #[serde(with = "sorted_keys")]
    seen: SeenSet,
    /// Every evaluated candidate in id order, kept for the surrogate (empty without one).
    archive: Pop,
    exhausted: bool,
    done: bool,
    nsga3: Nsga3Memory,
}

/// A seeded ask/tell genetic search over a compiled [`Space`].
pub struct Engine {
    state: State,
    space: Space,
    genes: Vec<Gene>,
    /// Parameters whose mutation can change the candidate.
    mutable: Vec<usize>,
    refs: Option<ReferenceSet>,
    key_buf: Vec<u8>,
    /// Scratch: the active parameters of the genome being looked at.
    act: Vec<bool>,
    /// Scratch: the mutable genes whose `when` holds.
    live: Vec<usize>,
    /// The previous population's allocation, reused for the next one (no 10⁶-gene reallocations).
    spare: Pop,
}

impl Engine {
    /// Builds an engine and its first generation. Without a seed one is drawn from the OS and
    /// reported by [`Engine::seed`], so the run can be replayed.
    pub fn new(
        space_json: &str,
        config: EngineConfig,
        seed: Option<u64>,
        meta: String,
    ) -> Result<Engine> {
        Engine::create(space_json, config, seed, meta, Setup::default())
    }

    /// [`Engine::new`] with constraints, warm-start candidates and prior evaluations.
    pub fn create(
        space_json: &str,
        config: EngineConfig,
        seed: Option<u64>,
        meta: String,
        setup: Setup,
    ) -> Result<Engine> {
        let space = Space::from_json(space_json)?.with_constraints(&setup.constraints)?;
        config.validate()?;
        let m = config.num_objectives();
        let warm = setup
            .warm_start
            .iter()
            .enumerate()
            .map(|(k, v)| space.encode(v, &format!("warm_start[{k}]"), true))
            .collect::<Result<Vec<_>>>()?;
        if setup.prior_scores.len() != setup.priors.len() * m {
            return Err(Error::InvalidShape(format!(
                "prior scores must have shape ({}, {m}), got {} values",
                setup.priors.len(),
                setup.prior_scores.len()
            )));
        }
        // Earlier evaluations may predate a constraint: they are facts, kept as they are.
        let priors = setup
            .priors
            .iter()
            .enumerate()
            .map(|(k, v)| space.encode(v, &format!("prior evaluation {k}"), false))
            .collect::<Result<Vec<_>>>()?;
        let seed = seed.unwrap_or_else(|| rand::rng().random());
        let state = State {
            space_json: space_json.to_owned(),
            constraints: setup.constraints.clone(),
            priors: 0,
            draws: 0,
            rejected: 0,
            meta,
            rng: EngineRng::seed_from_u64(seed),
            config,
            seed,
            generation: 0,
            next_id: 0,
            evaluations: 0,
            population: Pop::default(),
            batch: Pop::default(),
            told: Vec::new(),
            n_told: 0,
            n_asked: 0,
            screened: Vec::new(),
            seen: SeenSet::default(),
            archive: Pop::default(),
            exhausted: false,
            done: false,
            nsga3: Nsga3Memory::default(),
        };
        let mut engine = Engine::assemble(state, space);
        engine.tell_priors(&priors, &setup.prior_scores);
        for (x, on) in &warm {
            if engine.try_claim(x, on) == Claim::New {
                engine.push_candidate(x, on);
            }
        }
        if engine.state.population.len() > 0 {
            engine.breed();
        } else {
            engine.fill_initial();
        }
        let s = &engine.state;
        if !engine.space.constraints.is_empty()
            && s.draws > 0
            && s.draws == s.rejected
            && s.batch.len() == warm.len()
        {
            let texts: Vec<&str> = engine
                .space
                .constraints
                .iter()
                .map(|c| c.text.as_str())
                .collect();
            return Err(Error::space(
                "constraints",
                format!(
                    "no candidate satisfies the constraints {texts:?}: all {} candidates drawn were rejected",
                    s.draws
                ),
            ));
        }
        Ok(engine)
    }

    /// Tells earlier evaluations (ids `0..k`): into the dedup set, the model's archive and the
    /// population the first generation is bred from. Never evaluated again.
    fn tell_priors(&mut self, priors: &[(Vec<f64>, Vec<bool>)], scores: &[f64]) {
        if priors.is_empty() {
            return;
        }
        let (n, m) = (self.num_params(), self.num_objectives());
        let dirs = self.state.config.directions.clone();
        let mut told = Pop::default();
        for (k, (x, on)) in priors.iter().enumerate() {
            let id = self.state.next_id;
            self.state.next_id += 1;
            let key = self.key(x, on);
            if !self.state.seen.insert(key) {
                continue; // the same candidate twice: once is enough
            }
            told.push(id, x, on, m);
            let row = told.len() - 1;
            let s = &scores[k * m..(k + 1) * m];
            told.valid[row] = s.iter().all(|v| v.is_finite());
            for j in 0..m {
                told.f[row * m + j] = if dirs[j] == Direction::Max {
                    -s[j]
                } else {
                    s[j]
                };
            }
        }
        self.state.priors = priors.len() as u64;
        let cfg = &self.state.config;
        if cfg.surrogate && cfg.model_evaluations > 0 {
            for i in 0..told.len() {
                self.state.archive.push_from(&told, i, n, m);
            }
        }
        let survivors = self.select(&Pop::default(), &told);
        let mut next = Pop::default();
        for i in survivors {
            next.push_from(&told, i, n, m);
        }
        self.state.population = next;
    }

    fn assemble(state: State, space: Space) -> Engine {
        let genes: Vec<Gene> = space.params.iter().map(Gene::from_param).collect();
        let mutable = (0..genes.len())
            .filter(|&i| genes[i].is_mutable())
            .collect();
        let m = state.config.num_objectives();
        let refs = (state.config.algorithm == Algorithm::Nsga3).then(|| {
            let dirs = reference_directions(
                m,
                state.config.pool_size,
                state.config.objective_weights.as_deref(),
            );
            ReferenceSet::new(&dirs, m)
        });
        Engine {
            state,
            space,
            genes,
            mutable,
            refs,
            key_buf: Vec::new(),
            act: Vec::new(),
            live: Vec::new(),
            spare: Pop::default(),
        }
    }

    // ----- accessors -------------------------------------------------------------------------

    pub fn space(&self) -> &Space {
        &self.space
    }
    pub fn space_json(&self) -> &str {
        &self.state.space_json
    }
    pub fn meta(&self) -> &str {
        &self.state.meta
    }
    pub fn config(&self) -> &EngineConfig {
        &self.state.config
    }
    pub fn seed(&self) -> u64 {
        self.state.seed
    }
    /// Index of the generation being evaluated (the number of finished ones once done).
    pub fn generation(&self) -> u32 {
        self.state.generation
    }
    pub fn done(&self) -> bool {
        self.state.done
    }
    /// True once the engine ran out of untried candidates.
    pub fn exhausted(&self) -> bool {
        self.state.exhausted
    }
    /// Candidates told so far.
    pub fn evaluations(&self) -> u64 {
        self.state.evaluations + self.state.n_told as u64
    }
    pub fn num_params(&self) -> usize {
        self.genes.len()
    }
    pub fn num_objectives(&self) -> usize {
        self.state.config.num_objectives()
    }
    /// Size of the current generation.
    pub fn batch_len(&self) -> usize {
        self.state.batch.len()
    }
    /// Candidates of the current generation handed out so far.
    pub fn asked(&self) -> usize {
        self.state.n_asked
    }

    // ----- ask -------------------------------------------------------------------------------

    /// Hands out up to `n` (all, if `None`) not-yet-asked candidates of the current generation,
    /// as a range of batch positions; empty once all are out or the search is done.
    pub fn ask(&mut self, n: Option<usize>) -> Range<usize> {
        let start = self.state.n_asked;
        let end = match n {
            Some(k) => (start + k).min(self.state.batch.len()),
            None => self.state.batch.len(),
        };
        self.state.n_asked = end;
        start..end
    }

    /// Batch positions not yet asked that an outside constraint has not accepted yet.
    pub fn unscreened(&self) -> Vec<usize> {
        (self.state.n_asked..self.state.batch.len())
            .filter(|&p| !self.state.screened.get(p).copied().unwrap_or(false))
            .collect()
    }

    /// The verdict of an outside constraint on not-yet-asked batch positions: `accepted` ones
    /// are kept; each `rejected` one is replaced by a repaired candidate (small mutations) or a
    /// fresh random one, which the constraint has yet to see, or dropped when none is left. Rejected
    /// candidates stay in the dedup set, so they are never proposed again. Returns how many were
    /// dropped.
    pub fn screen(&mut self, accepted: &[usize], rejected: &[usize]) -> Result<usize> {
        let len = self.state.batch.len();
        for &p in accepted.iter().chain(rejected) {
            if p < self.state.n_asked || p >= len {
                return Err(Error::InvalidTell(format!(
                    "batch position {p} is not an unasked candidate of the current generation"
                )));
            }
        }
        self.state.screened.resize(len, false);
        for &p in accepted {
            self.state.screened[p] = true;
        }
        self.state.draws += accepted.len() as u64;
        let n = self.num_params();
        let eta = self.state.config.mutation_eta;
        let mut dropped = Vec::new();
        for &p in rejected {
            self.state.draws += 1;
            self.state.rejected += 1;
            let b = &self.state.batch;
            let (mut x, mut on) = (
                b.x[p * n..(p + 1) * n].to_vec(),
                b.on[p * n..(p + 1) * n].to_vec(),
            );
            // Half the replacements are small repairs of the rejected candidate, half fresh
            // draws: repairs alone can stay stuck in a region the constraint rejects.
            let repaired = if self.state.rng.random::<bool>() {
                self.make_unique(&mut x, &mut on, eta)
            } else {
                self.fresh_random(&mut x, &mut on)
            };
            if repaired {
                let b = &mut self.state.batch;
                b.x[p * n..(p + 1) * n].copy_from_slice(&x);
                b.on[p * n..(p + 1) * n].copy_from_slice(&on);
                self.state.screened[p] = false;
            } else {
                dropped.push(p);
            }
        }
        if !dropped.is_empty() {
            self.drop_unasked(&dropped);
        }
        Ok(dropped.len())
    }

    /// Removes unasked batch positions; the later unasked candidates take their ids (nobody has
    /// seen those yet), so a generation's ids stay contiguous.
    fn drop_unasked(&mut self, positions: &[usize]) {
        let (n, m) = (self.num_params(), self.num_objectives());
        let old = std::mem::take(&mut self.state.batch);
        let base = old.ids.first().copied().unwrap_or(self.state.next_id);
        let (told, screened) = (
            std::mem::take(&mut self.state.told),
            std::mem::take(&mut self.state.screened),
        );
        let mut kept = Pop::default();
        for (i, &was_told) in told.iter().enumerate() {
            if positions.contains(&i) {
                continue;
            }
            let at = kept.len();
            kept.push_from(&old, i, n, m);
            kept.ids[at] = base + at as u64;
            self.state.told.push(was_told);
            self.state
                .screened
                .push(screened.get(i).copied().unwrap_or(false));
        }
        self.state.next_id = base + kept.len() as u64;
        self.state.batch = kept;
        self.state.exhausted = true;
        if self.state.batch.len() == 0 {
            self.state.done = true;
        }
    }

    /// Batch positions asked but not yet told.
    pub fn pending(&self) -> Vec<usize> {
        (0..self.state.n_asked)
            .filter(|&i| !self.state.told[i])
            .collect()
    }

    /// The id and genome of batch position `i`.
    pub fn candidate(&self, i: usize) -> (u64, &[f64], &[bool]) {
        let n = self.num_params();
        let b = &self.state.batch;
        (
            b.ids[i],
            &b.x[i * n..(i + 1) * n],
            &b.on[i * n..(i + 1) * n],
        )
    }

    /// Which parameters a genome has: present and, with a `when`, active.
    pub fn active(&self, x: &[f64], on: &[bool]) -> Vec<bool> {
        let mut active = vec![false; on.len()];
        self.space.active_into(x, on, &mut active);
        active
    }

    /// Candidates checked against the constraints so far, and how many were rejected.
    pub fn constraint_draws(&self) -> (u64, u64) {
        (self.state.draws, self.state.rejected)
    }

    /// Prior evaluations told at creation (they hold ids `0..k`).
    pub fn priors(&self) -> u64 {
        self.state.priors
    }

    /// The constraint expressions, as given.
    pub fn constraints(&self) -> &[String] {
        &self.state.constraints
    }

    /// Writes the numeric columns (see [`crate::space::Param::column_value`]; NaN when knocked
    /// out) of batch positions `range` into `out`, row-major.
    pub fn fill_columns(&self, range: Range<usize>, out: &mut [f64]) -> Vec<u64> {
        let n = self.num_params();
        let mut ids = Vec::with_capacity(range.len());
        for (row, i) in range.enumerate() {
            let (id, x, on) = self.candidate(i);
            ids.push(id);
            self.columns_of(x, on, &mut out[row * n..(row + 1) * n]);
        }
        ids
    }

    fn columns_of(&self, x: &[f64], on: &[bool], out: &mut [f64]) {
        let active = self.active(x, on);
        for (j, p) in self.space.params.iter().enumerate() {
            out[j] = if active[j] {
                p.column_value(x[j])
            } else {
                f64::NAN
            };
        }
    }

    /// The surviving population: ids, columns `(k, n)` and scores `(k, m)` in the user's
    /// orientation (NaN where invalid), best first.
    pub fn population(&self) -> (Vec<u64>, Vec<f64>, Vec<f64>) {
        let (n, m) = (self.num_params(), self.num_objectives());
        let p = &self.state.population;
        let mut cols = vec![0.0; p.len() * n];
        for i in 0..p.len() {
            self.columns_of(
                &p.x[i * n..(i + 1) * n],
                &p.on[i * n..(i + 1) * n],
                &mut cols[i * n..(i + 1) * n],
            );
        }
        let dirs = &self.state.config.directions;
        let scores = (0..p.len() * m)
            .map(|k| {
                if !p.valid[k / m] {
                    f64::NAN
                } else if dirs[k % m] == Direction::Max {
                    -p.f[k]
                } else {
                    p.f[k]
                }
            })
            .collect();
        (p.ids.clone(), cols, scores)
    }

    // ----- tell ------------------------------------------------------------------------------

    /// [`Engine::tell`] for a `(rows, cols)` score matrix, checking its shape first.
    pub fn tell_matrix(
        &mut self,
        ids: &[u64],
        scores: &[f64],
        shape: (usize, usize),
    ) -> Result<()> {
        let m = self.num_objectives();
        if shape.0 != ids.len() || shape.1 != m {
            return Err(Error::InvalidTell(format!(
                "scores must have shape ({}, {m}), got ({}, {})",
                ids.len(),
                shape.0,
                shape.1
            )));
        }
        self.tell(ids, scores)
    }

    /// Records scores (row-major `(ids.len(), m)`; NaN or ±inf = INVALID) for asked candidates of
    /// the current generation. Once all of them are told, the next generation is bred.
    /// Validates the whole call before changing anything.
    pub fn tell(&mut self, ids: &[u64], scores: &[f64]) -> Result<()> {
        let m = self.num_objectives();
        if scores.len() != ids.len() * m {
            return Err(Error::InvalidTell(format!(
                "scores must have shape ({}, {m}) for {} ids, got {} values",
                ids.len(),
                ids.len(),
                scores.len()
            )));
        }
        if ids.is_empty() {
            return Ok(());
        }
        if self.state.done {
            return Err(Error::InvalidTell(
                "the search is finished; no candidate is pending".into(),
            ));
        }
        let base = self.state.batch.ids[0];
        let len = self.state.batch.len();
        let mut fresh = vec![false; len];
        let mut positions = Vec::with_capacity(ids.len());
        for &id in ids {
            let pos = id
                .checked_sub(base)
                .map(|p| p as usize)
                .filter(|&p| p < len)
                .ok_or_else(|| {
                    Error::InvalidTell(format!(
                        "candidate {id} is not in the current generation {} (ids {base}..={})",
                        self.state.generation,
                        base + len as u64 - 1
                    ))
                })?;
            if pos >= self.state.n_asked {
                return Err(Error::InvalidTell(format!(
                    "candidate {id} was not asked yet"
                )));
            }
            if self.state.told[pos] || fresh[pos] {
                return Err(Error::InvalidTell(format!(
                    "candidate {id} was already told"
                )));
            }
            fresh[pos] = true;
            positions.push(pos);
        }
        let dirs = self.state.config.directions.clone();
        for (row, &pos) in positions.iter().enumerate() {
            let s = &scores[row * m..(row + 1) * m];
            let valid = s.iter().all(|v| v.is_finite());
            let b = &mut self.state.batch;
            b.valid[pos] = valid;
            for j in 0..m {
                b.f[pos * m + j] = if dirs[j] == Direction::Max {
                    -s[j]
                } else {
                    s[j]
                };
            }
            self.state.told[pos] = true;
        }
        self.state.n_told += positions.len();
        if self.state.n_told == len {
            self.advance();
        }
        Ok(())
    }

    // ----- generations -----------------------------------------------------------------------

    fn advance(&mut self) {
        let (n, m) = (self.num_params(), self.num_objectives());
        let cfg = self.state.config.clone();
        let pop = std::mem::take(&mut self.state.population);
        let batch = std::mem::take(&mut self.state.batch);
        let n_pop = pop.len();
        // The archive feeds the model only while the model is in use.
        if cfg.surrogate && self.state.evaluations < cfg.model_evaluations {
            for i in 0..batch.len() {
                self.state.archive.push_from(&batch, i, n, m);
            }
        }
        self.state.evaluations += batch.len() as u64;
        let survivors = self.select(&pop, &batch);
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        for &i in &survivors {
            if i < n_pop {
                next.push_from(&pop, i, n, m);
            } else {
                next.push_from(&batch, i - n_pop, n, m);
            }
        }
        self.spare = pop;
        self.state.population = next;
        self.state.batch = batch;
        self.state.batch.clear();
        self.state.generation += 1;
        self.state.told.clear();
        self.state.screened.clear();
        self.state.n_told = 0;
        self.state.n_asked = 0;
        if self.state.exhausted || self.state.generation >= cfg.generations {
            self.state.done = true;
        } else {
            self.breed();
        }
    }

    /// Survivors of `pop` then `batch` (indices into their concatenation), best first.
    fn select(&mut self, pop: &Pop, batch: &Pop) -> Vec<usize> {
        let m = self.num_objectives();
        let cfg = &self.state.config;
        // Selection sees parents then offspring; only the small arrays are merged.
        let f = [pop.f.as_slice(), batch.f.as_slice()].concat();
        let valid = [pop.valid.as_slice(), batch.valid.as_slice()].concat();
        let ids = [pop.ids.as_slice(), batch.ids.as_slice()].concat();
        match cfg.algorithm {
            Algorithm::Ga => select_ga(&f, &valid, &ids, cfg.pool_size),
            Algorithm::Nsga2 => select_nsga2(&f, m, &valid, &ids, cfg.pool_size),
            Algorithm::Nsga3 => select_nsga3(
                &f,
                m,
                &valid,
                &ids,
                cfg.pool_size,
                self.refs.as_ref().expect("nsga3 reference set"),
                &mut self.state.nsga3,
                &mut self.state.rng,
            ),
        }
    }

    fn push_candidate(&mut self, x: &[f64], on: &[bool]) {
        let m = self.num_objectives();
        let id = self.state.next_id;
        self.state.next_id += 1;
        self.state.batch.push(id, x, on, m);
        self.state.told.push(false);
    }

    fn finish_batch(&mut self) {
        if self.state.batch.len() < self.state.config.pool_size {
            self.state.exhausted = true;
        }
        if self.state.batch.len() == 0 {
            self.state.done = true;
        }
    }

    fn fill_initial(&mut self) {
        if self.state.config.surrogate {
            return self.fill_space_filling();
        }
        let n = self.num_params();
        let (mut x, mut on) = (vec![0.0; n], vec![true; n]);
        while self.state.batch.len() < self.state.config.pool_size {
            if !self.fresh_random(&mut x, &mut on) {
                break;
            }
            self.push_candidate(&x, &on);
        }
        self.finish_batch();
    }

    /// Operator settings, the per-gene rate adapted to the space unless set.
    fn variation(&self) -> Variation {
        let cfg = &self.state.config;
        Variation {
            crossover_prob: cfg.crossover_prob,
            crossover_eta: cfg.crossover_eta,
            mutate_rate: cfg.mutate_rate,
            gene_rate: cfg
                .gene_mutate_rate
                .unwrap_or(1.0 / self.mutable.len().max(1) as f64),
            mutation_eta: cfg.mutation_eta,
        }
    }

    fn breed(&mut self) {
        let cfg = &self.state.config;
        if cfg.surrogate && self.state.evaluations < cfg.model_evaluations {
            return self.breed_screened();
        }
        let n = self.num_params();
        let variation = self.variation();
        let cfg = &self.state.config;
        let target = cfg.pool_size;
        // NSGA-III mates at random over the whole population (its niching already carries the
        // selection pressure), in consecutive pairs of shuffled permutations so every survivor
        // breeds about equally often; the others run binary tournaments over the best
        // `cull_size` survivors.
        let nsga3 = cfg.algorithm == Algorithm::Nsga3;
        let mating = if nsga3 {
            self.state.population.len()
        } else {
            cfg.cull_size.min(self.state.population.len())
        }
        .max(1);
        let mut order: Vec<usize> = Vec::new();
        let (mut x1, mut on1, mut x2, mut on2) =
            (vec![0.0; n], vec![true; n], vec![0.0; n], vec![true; n]);
        'outer: while self.state.batch.len() < target {
            let mut pick = |engine: &mut Engine| {
                if !nsga3 {
                    return engine.tournament(mating);
                }
                if order.is_empty() {
                    order.extend(0..mating);
                    order.shuffle(&mut engine.state.rng);
                }
                order.pop().expect("refilled")
            };
            let a = pick(self);
            let mut b = pick(self);
            if mating > 1 {
                while b == a {
                    b = pick(self);
                }
            }
            self.cross_and_mutate(a, b, &variation, (&mut x1, &mut on1), (&mut x2, &mut on2));
            for child in 0..2 {
                if self.state.batch.len() >= target {
                    break;
                }
                let (x, on) = if child == 0 {
                    (&mut x1, &mut on1)
                } else {
                    (&mut x2, &mut on2)
                };
                if !self.make_unique(x, on, variation.mutation_eta) {
                    break 'outer;
                }
                self.push_candidate(x, on);
            }
        }
        self.finish_batch();
    }

    /// Two children of survivors `a` and `b`, written into the buffers: crossed, then each
    /// mutated.
    fn cross_and_mutate(
        &mut self,
        a: usize,
        b: usize,
        v: &Variation,
        (x1, on1): (&mut [f64], &mut [bool]),
        (x2, on2): (&mut [f64], &mut [bool]),
    ) {
        let n = self.num_params();
        let pop = &self.state.population;
        x1.copy_from_slice(&pop.x[a * n..(a + 1) * n]);
        on1.copy_from_slice(&pop.on[a * n..(a + 1) * n]);
        x2.copy_from_slice(&pop.x[b * n..(b + 1) * n]);
        on2.copy_from_slice(&pop.on[b * n..(b + 1) * n]);
        crossover(
            &self.genes,
            v,
            (&mut *x1, &mut *on1),
            (&mut *x2, &mut *on2),
            &mut self.state.rng,
        );
        for (x, on) in [(x1, on1), (x2, on2)] {
            let live = self.live_mutable(x, on);
            mutate(&self.genes, &live, v, x, on, &mut self.state.rng);
            self.live = live;
        }
    }

    /// The mutable genes of a genome that matter: those whose `when` holds (all of them in a
    /// space without conditions). Mutating an inactive gene would not change the candidate.
    fn live_mutable(&mut self, x: &[f64], on: &[bool]) -> Vec<usize> {
        let mut live = std::mem::take(&mut self.live);
        live.clear();
        if !self.space.gated {
            live.extend_from_slice(&self.mutable);
            return live;
        }
        self.act.resize(on.len(), false);
        self.space.active_into(x, on, &mut self.act);
        live.extend(
            self.mutable
                .iter()
                .copied()
                .filter(|&i| self.space.conditions_hold(i, x, &self.act)),
        );
        live
    }

    /// Binary tournament over the first `k` survivors (preference order: lower index wins).
    fn tournament(&mut self, k: usize) -> usize {
        let i = self.state.rng.random_range(0..k);
        let j = self.state.rng.random_range(0..k);
        i.min(j)
    }

    // ----- model-assisted breeding ----------------------------------------------------------

    /// Generation 0 of the model-assisted engine: a Latin hypercube over the genes (each gene's
    /// range cut into `pool_size` strata, one draw per stratum) and stratified presence flags,
    /// so the first model sees the whole space evenly.
    fn fill_space_filling(&mut self) {
        let (n, pool) = (self.num_params(), self.state.config.pool_size);
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
        self.finish_batch();
    }

    /// Breeds many more offspring than `pool_size` and evaluates the ones the surrogate expects
    /// most from; tops up with random candidates only when too few unseen offspring exist.
    fn breed_screened(&mut self) {
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
    fn screening_offspring(&mut self, want: usize) -> Offspring {
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
    fn sample_good_set(&mut self, x: &mut [f64], on: &mut [bool]) {
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

    fn offer(&mut self, out: &mut Offspring, local: &mut SeenSet, x: &[f64], on: &[bool]) {
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

    /// The surrogate's features of genomes: the gene (index or value) where present, NaN where
    /// knocked out, so absence is a branch of its own and not a value.
    fn features(&self, x: &[f64], on: &[bool]) -> Vec<f64> {
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
    fn feature_specs(&self) -> Vec<FeatureSpec> {
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

    /// Chooses up to `k` of `offspring` by the surrogate's expected improvement. `RANKINGS`
    /// draws each rank all offspring with a random half of the trees (a Thompson-like draw, so
    /// one batch does not crowd on a single optimum); the slots take turns, each taking the best
    /// offspring of its ranking that no earlier slot took.
    fn pick_by_model(&mut self, offspring: &Offspring, k: usize) -> Vec<usize> {
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

    /// The model's target for evaluated candidates `rows` of the archive, on a unit rank scale
    /// (0 = best): the rank of the score for one objective, of the non-dominated front for
    /// several; INVALID ranked below every valid candidate. Ranks make the model indifferent to
    /// the objectives' scales and outliers.
    fn model_targets(&self, rows: &[usize]) -> Vec<f64> {
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
    /// every tree: a `(trees, offspring)` row-major matrix. The model is main effects plus a
    /// forest over their residuals.
    fn predict_offspring(&mut self, offspring: &Offspring) -> Vec<f64> {
        let n = self.num_params();
        let count = offspring.keys.len();
        let size = self.state.archive.len();
        let rows: Vec<usize> = if size > MAX_TRAINING_ROWS {
            let mut r = sample(&mut self.state.rng, size, MAX_TRAINING_ROWS).into_vec();
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
        let cand = self.features(&offspring.x, &offspring.on);
        let y = self.model_targets(&rows);
        let additive = Additive::fit(&train, &y, &specs);
        let residual: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(r, v)| v - additive.predict(&train[r * n..(r + 1) * n]))
            .collect();
        let forest = Forest::fit(
            &train,
            &residual,
            &kinds,
            &ForestParams::default(),
            &mut self.state.rng,
        );
        let base: Vec<f64> = (0..count)
            .map(|c| additive.predict(&cand[c * n..(c + 1) * n]))
            .collect();
        let mut each = forest.predict_each(&cand);
        for (k, v) in each.iter_mut().enumerate() {
            *v += base[k % count];
        }
        each
    }

    // ----- uniqueness ------------------------------------------------------------------------

    /// Computes the active parameters of a genome into the scratch buffer.
    #[inline]
    fn look_at(&mut self, x: &[f64], on: &[bool]) {
        self.act.resize(on.len(), false);
        self.space.active_into(x, on, &mut self.act);
    }

    /// Whether the genome just looked at satisfies the constraints (counted when there are some).
    #[inline]
    fn check_constraints(&mut self, x: &[f64]) -> bool {
        if self.space.constraints.is_empty() {
            return true;
        }
        self.state.draws += 1;
        let ok = self.space.feasible(x, &self.act);
        if !ok {
            self.state.rejected += 1;
        }
        ok
    }

    /// 128-bit hash of what the objective would see: absent keys and present values.
    fn key(&mut self, x: &[f64], on: &[bool]) -> u128 {
        self.look_at(x, on);
        self.key_of_active(x)
    }

    /// [`Engine::key`] of the genome just looked at: inactive genes are absent whatever their
    /// value, so candidates that differ only there are the same candidate.
    fn key_of_active(&mut self, x: &[f64]) -> u128 {
        self.key_buf.clear();
        for (i, g) in self.genes.iter().enumerate() {
            if !self.act[i] {
                self.key_buf.push(0);
            } else if g.kind == GeneKind::Fixed {
                self.key_buf.push(1);
            } else {
                self.key_buf.push(2);
                // +0.0 folds -0.0 into 0.0.
                self.key_buf
                    .extend_from_slice(&(x[i] + 0.0).to_bits().to_le_bytes());
            }
        }
        xxhash_rust::xxh3::xxh3_128(&self.key_buf)
    }

    /// Records the genome as proposed if it is new and feasible.
    fn try_claim(&mut self, x: &[f64], on: &[bool]) -> Claim {
        self.look_at(x, on);
        if !self.check_constraints(x) {
            return Claim::Infeasible;
        }
        let k = self.key_of_active(x);
        if self.state.seen.insert(k) {
            Claim::New
        } else {
            Claim::Seen
        }
    }

    fn claim(&mut self, x: &[f64], on: &[bool]) -> bool {
        self.try_claim(x, on) == Claim::New
    }

    /// Makes a bred child unique: small forced mutations, then random draws, then enumeration.
    fn make_unique(&mut self, x: &mut [f64], on: &mut [bool], eta: f64) -> bool {
        if self.claim(x, on) {
            return true;
        }
        for _ in 0..REPAIR_TRIES {
            let live = self.live_mutable(x, on);
            mutate_one(&self.genes, &live, eta, x, on, &mut self.state.rng);
            self.live = live;
            if self.claim(x, on) {
                return true;
            }
        }
        self.fresh_random(x, on)
    }

    /// Fills the genome with a random unseen candidate; false if the space is exhausted.
    fn fresh_random(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
        let share = if self.state.generation == 0 {
            self.state.config.init_seed_share
        } else {
            0.0
        };
        // Seen candidates end the random draws after RANDOM_TRIES; rejected ones only after
        // CONSTRAINT_TRIES draws in all.
        let budget = if self.space.constraints.is_empty() {
            RANDOM_TRIES
        } else {
            CONSTRAINT_TRIES
        };
        let (mut seen, mut tries) = (0, 0);
        while seen < RANDOM_TRIES && tries < budget {
            tries += 1;
            sample_genome(&self.genes, share, x, on, &mut self.state.rng);
            match self.try_claim(x, on) {
                Claim::New => return true,
                Claim::Seen => seen += 1,
                Claim::Infeasible => {}
            }
        }
        self.probe(x, on)
    }

    /// Enumerates a finite space from a random start for an unseen candidate.
    fn probe(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
        let Some(size) = self.space.raw_size().filter(|&s| s <= PROBE_LIMIT) else {
            return false;
        };
        let start = self.state.rng.random_range(0..size);
        let radices: Vec<(u128, bool)> = self
            .space
            .params
            .iter()
            .map(|p| (p.levels().unwrap_or(1) as u128, p.knockout.is_some()))
            .collect();
        for k in 0..size {
            let mut idx = (start + k) % size;
            for (i, &(levels, ko)) in radices.iter().enumerate() {
                let radix = levels + u128::from(ko);
                let digit = idx % radix;
                idx /= radix;
                on[i] = digit < levels;
                x[i] = if on[i] && self.genes[i].kind != GeneKind::Fixed {
                    digit as f64
                } else {
                    0.0
                };
            }
            if self.claim(x, on) {
                return true;
            }
        }
        false
    }

    // ----- persistence -----------------------------------------------------------------------

    /// Serializes the whole engine, RNG included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = STATE_MAGIC.to_vec();
        out.extend(postcard::to_stdvec(&self.state).expect("engine state serializes"));
        out
    }

    /// Restores an engine saved by [`Engine::to_bytes`]; it continues the identical stream.
    pub fn from_bytes(bytes: &[u8]) -> Result<Engine> {
        let body = bytes.strip_prefix(STATE_MAGIC.as_slice()).ok_or_else(|| {
            Error::InvalidState("not a genetune engine state (bad header or version)".into())
        })?;
        let state: State = postcard::from_bytes(body)
            .map_err(|e| Error::InvalidState(format!("corrupt engine state: {e}")))?;
        let space = Space::from_json(&state.space_json)?.with_constraints(&state.constraints)?;
        state.config.validate()?;
        let n = space.params.len();
        let m = state.config.num_objectives();
        let consistent = |p: &Pop| {
            p.x.len() == p.len() * n
                && p.on.len() == p.len() * n
                && p.f.len() == p.len() * m
                && p.valid.len() == p.len()
        };
        if !consistent(&state.population)
            || !consistent(&state.batch)
            || !consistent(&state.archive)
            || state.told.len() != state.batch.len()
            || state.screened.len() > state.batch.len()
            || state.n_asked > state.batch.len()
        {
            return Err(Error::InvalidState(
                "corrupt engine state: inconsistent arrays".into(),
            ));
        }
        // A damaged gene would index past a choice's values later; refuse it here instead.
        let genes: Vec<Gene> = space.params.iter().map(Gene::from_param).collect();
        for pop in [&state.population, &state.batch, &state.archive] {
            for (k, &v) in pop.x.iter().enumerate() {
                let g = &genes[k % n];
                let discrete = !matches!(g.kind, GeneKind::Real { .. });
                if !(v >= g.low && v <= g.high) || (discrete && v.fract() != 0.0) {
                    return Err(Error::InvalidState(format!(
                        "corrupt engine state: gene {v} of parameter {} is outside its range",
                        space.params[k % n].path
                    )));
                }
            }
        }
        Ok(Engine::assemble(state, space))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Algorithm, Direction};

    fn config(algorithm: Algorithm, m: usize, pool: usize, gens: u32) -> EngineConfig {
        EngineConfig {
            generations: gens,
            pool_size: pool,
            cull_size: (pool * 3 / 4).max(2),
            mutate_rate: 0.25,
            gene_mutate_rate: None,
            surrogate: false,
            oversampling: 24,
            model_evaluations: u64::MAX,
            directions: vec![Direction::Min; m],
            algorithm,
            init_seed_share: 0.9,
            objective_weights: None,
            crossover_prob: 0.9,
            crossover_eta: 15.0,
            mutation_eta: 20.0,
        }
    }

    fn real_space(n: usize) -> String {
        let items: Vec<String> = (0..n)
            .map(|i| format!(r#"["x{i}",{{"param":{{"type":"range","start":0.0,"end":1.0,"step":null}},"path":"['x{i}']"}}]"#))
            .collect();
        format!(r#"{{"dict":[{}]}}"#, items.join(","))
    }

    const SMALL: &str = r#"{"dict":[["a",{"param":{"type":"range","start":0,"end":3,"step":1},"path":"['a']"}],
        ["b",{"param":{"type":"choice","values":["x","y"],"knockout_prob":0.5},"path":"['b']"}]]}"#;

    fn zdt1(x: &[f64]) -> [f64; 2] {
        let n = x.len() as f64;
        let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (n - 1.0);
        [x[0], g * (1.0 - (x[0] / g).sqrt())]
    }

    fn run(engine: &mut Engine, mut f: impl FnMut(&[f64]) -> Vec<f64>) {
        let n = engine.num_params();
        while !engine.done() {
            let r = engine.ask(None);
            let mut cols = vec![0.0; r.len() * n];
            let ids = engine.fill_columns(r, &mut cols);
            let scores: Vec<f64> = cols.chunks(n).flat_map(&mut f).collect();
            engine.tell(&ids, &scores).unwrap();
        }
    }

    /// The same config with the model-assisted breeding switched on.
    fn screened(cfg: EngineConfig) -> EngineConfig {
        EngineConfig {
            surrogate: true,
            oversampling: std::env::var("GT_OS")
                .map(|v| v.parse().unwrap())
                .unwrap_or(8),
            ..cfg
        }
    }

    #[test]
    fn same_seed_same_stream_and_order_does_not_matter() {
        for cfg in [
            config(Algorithm::Nsga2, 2, 20, 5),
            screened(config(Algorithm::Nsga2, 2, 20, 5)),
        ] {
            same_stream_whatever_the_tell_order(cfg);
        }
    }

    fn same_stream_whatever_the_tell_order(cfg: EngineConfig) {
        let mk = || Engine::new(&real_space(5), cfg.clone(), Some(42), String::new()).unwrap();
        let (mut a, mut b) = (mk(), mk());
        while !a.done() {
            let ra = a.ask(None);
            let rb = b.ask(None);
            let mut ca = vec![0.0; ra.len() * 5];
            let mut cb = vec![0.0; rb.len() * 5];
            let ia = a.fill_columns(ra, &mut ca);
            let ib = b.fill_columns(rb, &mut cb);
            assert_eq!((&ia, &ca), (&ib, &cb));
            let sa: Vec<f64> = ca.chunks(5).flat_map(zdt1).collect();
            a.tell(&ia, &sa).unwrap();
            // b gets the same scores reversed, in two calls.
            let half = ib.len() / 2;
            let rev: Vec<usize> = (0..ib.len()).rev().collect();
            for part in [&rev[..half], &rev[half..]] {
                let ids: Vec<u64> = part.iter().map(|&i| ib[i]).collect();
                let sc: Vec<f64> = part
                    .iter()
                    .flat_map(|&i| sa[i * 2..i * 2 + 2].to_vec())
                    .collect();
                b.tell(&ids, &sc).unwrap();
            }
        }
        assert!(b.done());
        assert_eq!(a.population(), b.population());
    }

    #[test]
    fn round_trip_continues_identically() {
        for cfg in [
            config(Algorithm::Nsga3, 2, 12, 6),
            screened(config(Algorithm::Nsga3, 2, 12, 6)),
            screened(config(Algorithm::Ga, 1, 12, 6)),
        ] {
            round_trip_continues(cfg);
        }
    }

    fn round_trip_continues(cfg: EngineConfig) {
        let m = cfg.num_objectives();
        let mut a = Engine::new(&real_space(4), cfg, Some(7), "meta".into()).unwrap();
        let step = |e: &mut Engine| {
            let r = e.ask(None);
            let mut c = vec![0.0; r.len() * 4];
            let ids = e.fill_columns(r, &mut c);
            let s: Vec<f64> = c.chunks(4).flat_map(|r| zdt1(r)[..m].to_vec()).collect();
            e.tell(&ids, &s).unwrap();
            (ids, c)
        };
        step(&mut a);
        let mut b = Engine::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(b.meta(), "meta");
        assert_eq!(b.to_bytes(), a.to_bytes());
        while !a.done() {
            assert_eq!(step(&mut a), step(&mut b));
        }
        assert!(b.done());
    }

    #[test]
    fn never_repeats_and_reports_exhaustion() {
        for (cfg, seed) in [
            (config(Algorithm::Ga, 1, 8, 10), 1),
            (screened(config(Algorithm::Ga, 1, 4, 10)), 2),
        ] {
            never_repeats_then_exhausts(cfg, seed);
        }
    }

    fn never_repeats_then_exhausts(cfg: EngineConfig, seed: u64) {
        // 4 values x (2 choices + absent) = 12 distinct candidates.
        let mut e = Engine::new(SMALL, cfg, Some(seed), String::new()).unwrap();
        let mut seen = HashSet::new();
        let mut total = 0;
        while !e.done() {
            let r = e.ask(None);
            let mut c = vec![0.0; r.len() * 2];
            let ids = e.fill_columns(r, &mut c);
            for row in c.chunks(2) {
                assert!(seen.insert(format!("{row:?}")), "repeated {row:?}");
            }
            total += ids.len();
            let s: Vec<f64> = c.chunks(2).map(|r| r[0]).collect();
            e.tell(&ids, &s).unwrap();
        }
        assert_eq!(total, 12);
        assert!(e.exhausted());
    }

    #[test]
    fn tell_validates_before_changing_anything() {
        let mut e = Engine::new(
            SMALL,
            config(Algorithm::Ga, 1, 6, 3),
            Some(1),
            String::new(),
        )
        .unwrap();
        let r = e.ask(Some(2));
        assert_eq!(r, 0..2);
        assert!(e.tell(&[0, 1], &[1.0]).is_err());
        assert!(e
            .tell(&[0, 5], &[1.0, 2.0])
            .unwrap_err()
            .to_string()
            .contains("not asked"));
        assert!(e
            .tell(&[0, 0], &[1.0, 2.0])
            .unwrap_err()
            .to_string()
            .contains("already told"));
        assert!(e
            .tell(&[99], &[1.0])
            .unwrap_err()
            .to_string()
            .contains("not in the current generation"));
        e.tell(&[1], &[f64::NAN]).unwrap();
        assert_eq!(e.pending(), vec![0]);
        assert!(e
            .tell(&[1], &[1.0])
            .unwrap_err()
            .to_string()
            .contains("already told"));
    }

    #[test]
    fn ga_converges_on_sphere() {
        let mut e = Engine::new(
            &real_space(5),
            config(Algorithm::Ga, 1, 40, 60),
            Some(3),
            String::new(),
        )
        .unwrap();
        run(&mut e, |x| {
            vec![x.iter().map(|v| (v - 0.3) * (v - 0.3)).sum()]
        });
        let (_, _, f) = e.population();
        assert!(f[0] < 1e-3, "best {}", f[0]);
    }

    #[test]
    fn invalid_candidates_lose() {
        let mut e = Engine::new(
            &real_space(3),
            config(Algorithm::Nsga2, 2, 20, 8),
            Some(5),
            String::new(),
        )
        .unwrap();
        run(&mut e, |x| {
            if x[0] > 0.5 {
                vec![f64::NAN, 0.0]
            } else {
                zdt1(x).to_vec()
            }
        });
        let (_, cols, f) = e.population();
        for (row, s) in cols.chunks(3).zip(f.chunks(2)) {
            assert!(row[0] <= 0.5 && s[0].is_finite());
        }
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let e = Engine::new(
            SMALL,
            config(Algorithm::Ga, 1, 6, 3),
            Some(1),
            String::new(),
        )
        .unwrap();
        let bytes = e.to_bytes();
        assert!(Engine::from_bytes(&bytes[..bytes.len() / 2]).is_err());
        assert!(Engine::from_bytes(b"nonsense").is_err());
        // Out-of-range genes are an invalid state too, not a panic later.
        let mut state: State = postcard::from_bytes(&bytes[STATE_MAGIC.len()..]).unwrap();
        state.batch.x[1] = 99.0;
        let mut damaged = STATE_MAGIC.to_vec();
        damaged.extend(postcard::to_stdvec(&state).unwrap());
        let err = Engine::from_bytes(&damaged).err().expect("refused");
        assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
        assert!(err.to_string().contains("outside its range"), "{err}");
    }

    /// 40 flags with hidden weights: screening must find better candidates in the same number
    /// of evaluations than the plain GA; this fails with the model switched off.
    #[test]
    fn the_model_finds_better_candidates_per_evaluation() {
        let items: Vec<String> = (0..40)
            .map(|i| format!(r#"["f{i}",{{"param":{{"type":"literal","value":"-f{i}","knockout_prob":0.5}},"path":"f{i}"}}]"#))
            .collect();
        let space = format!(r#"{{"dict":[{}]}}"#, items.join(","));
        let weight = |i: usize| ((i * 7919) % 13) as f64 - 6.0;
        let best_of = |cfg: EngineConfig, seed: u64| {
            let mut e = Engine::new(&space, cfg, Some(seed), String::new()).unwrap();
            let mut best = f64::INFINITY;
            run(&mut e, |row| {
                let v: f64 = (0..40).filter(|&i| row[i].is_finite()).map(weight).sum();
                best = best.min(v);
                vec![v]
            });
            best
        };
        let optimum: f64 = (0..40).map(weight).filter(|w| *w < 0.0).sum();
        let (mut with, mut without) = (0.0, 0.0);
        for seed in 0..5 {
            with += best_of(screened(config(Algorithm::Ga, 1, 16, 6)), seed) - optimum;
            without += best_of(config(Algorithm::Ga, 1, 16, 6), seed) - optimum;
        }
        eprintln!("regret with the model {with}, without {without}");
        assert!(
            with < 0.5 * without,
            "regret with the model {with}, without {without}"
        );
    }

    #[test]
    fn the_model_stops_after_model_evaluations() {
        let cfg = EngineConfig {
            model_evaluations: 20,
            ..screened(config(Algorithm::Ga, 1, 10, 6))
        };
        let mut e = Engine::new(&real_space(3), cfg, Some(4), String::new()).unwrap();
        run(&mut e, |x| vec![x.iter().sum()]);
        // Generations 0 and 1 (20 evaluations) feed the model; later ones are bred plainly.
        assert_eq!(e.state.archive.len(), 20);
        assert_eq!(e.evaluations(), 60);
    }

    fn setup(constraints: &[&str]) -> Setup {
        Setup {
            constraints: constraints.iter().map(|c| c.to_string()).collect(),
            ..Setup::default()
        }
    }

    /// Every candidate until done, as column rows.
    fn all_rows(e: &mut Engine) -> Vec<Vec<f64>> {
        let n = e.num_params();
        let mut rows = Vec::new();
        while !e.done() {
            let r = e.ask(None);
            let mut c = vec![0.0; r.len() * n];
            let ids = e.fill_columns(r, &mut c);
            let m = e.num_objectives();
            let s: Vec<f64> = c
                .chunks(n)
                .flat_map(|r| {
                    let v: f64 = r.iter().filter(|v| v.is_finite()).sum();
                    [v, -v][..m].to_vec()
                })
                .collect();
            rows.extend(c.chunks(n).map(<[f64]>::to_vec));
            e.tell(&ids, &s).unwrap();
        }
        rows
    }

    #[test]
    fn constraints_hold_and_exhaustion_counts_feasible_candidates() {
        for cfg in [
            config(Algorithm::Ga, 1, 4, 20),
            screened(config(Algorithm::Ga, 1, 4, 20)),
            config(Algorithm::Nsga2, 1, 4, 20),
        ] {
            let mut e = Engine::create(
                SMALL,
                cfg,
                Some(3),
                String::new(),
                setup(&["a * 2 <= 4 and (b is None or b == 'x')"]),
            )
            .unwrap();
            assert_eq!(e.space().size(), Some(6));
            let rows = all_rows(&mut e);
            assert_eq!(rows.len(), 6, "{rows:?}");
            for r in &rows {
                assert!(r[0] <= 2.0 && (r[1].is_nan() || r[1] == 0.0), "{r:?}");
            }
            let (drawn, rejected) = e.constraint_draws();
            assert!(drawn > 0 && rejected > 0 && rejected < drawn);
            assert!(e.exhausted());
        }
    }

    #[test]
    fn infeasible_and_malformed_constraints_fail_fast_and_clearly() {
        for space in [SMALL.to_string(), real_space(3)] {
            let c = if space == SMALL { "a > 10" } else { "x0 > 2" };
            let started = std::time::Instant::now();
            let err = Engine::create(
                &space,
                config(Algorithm::Ga, 1, 8, 3),
                Some(1),
                String::new(),
                setup(&[c]),
            )
            .err()
            .expect("refused");
            assert!(started.elapsed().as_secs() < 5);
            assert!(matches!(err, Error::InvalidSpace { .. }), "{err:?}");
            assert!(err.to_string().contains("no candidate satisfies"), "{err}");
        }
        let bad = |c: &str| {
            Engine::create(
                SMALL,
                config(Algorithm::Ga, 1, 8, 3),
                Some(1),
                String::new(),
                setup(&[c]),
            )
            .err()
            .expect("refused")
            .to_string()
        };
        let e = bad("a * z <= 4");
        assert!(
            e.contains("constraints[0]")
                && e.contains("unknown parameter 'z'")
                && e.contains("position 4"),
            "{e}"
        );
        let e = bad("a * <= 4");
        assert!(e.contains("syntax error at position 4"), "{e}");
        let e = bad("a in b");
        assert!(e.contains("position 5"), "{e}");
    }

    /// `u` a knockout flag, `n` exists only with `u`; `o` a level, `v` only at -O2/-O3.
    const GATED: &str = r#"{"dict":[
        ["u",{"param":{"type":"literal","value":"-funroll","knockout_prob":0.5},"path":"u"}],
        ["n",{"param":{"type":"range","start":2,"end":8,"step":2,"when":"u"},"path":"n"}],
        ["o",{"param":{"type":"choice","values":["-O1","-O2","-O3"]},"path":"o"}],
        ["v",{"param":{"type":"range","start":0,"end":2,"step":1,"knockout_prob":0.3,"when":{"o":["-O2","-O3"]}},"path":"v"}]]}"#;

    #[test]
    fn when_rules_hold_under_crossover_and_mutation_and_dedup_ignores_inactive_genes() {
        // (1 + 4) settings of u/n times (1 + 2 * 4) of o/v: 5 * 9 = 45 distinct candidates.
        for cfg in [
            config(Algorithm::Ga, 1, 6, 40),
            screened(config(Algorithm::Ga, 1, 6, 40)),
            config(Algorithm::Nsga3, 2, 6, 40),
        ] {
            let mut e = Engine::new(GATED, cfg, Some(11), String::new()).unwrap();
            assert_eq!(e.space().size(), Some(45));
            let rows = all_rows(&mut e);
            let mut seen = HashSet::new();
            for r in &rows {
                assert_eq!(r[1].is_nan(), r[0].is_nan(), "n without u: {r:?}");
                if r[2] == 0.0 {
                    assert!(r[3].is_nan(), "v at -O1: {r:?}");
                }
                let key: Vec<u64> = r.iter().map(|v| v.to_bits()).collect();
                assert!(seen.insert(key), "repeated phenotype {r:?}");
            }
            assert_eq!(rows.len(), 45);
        }
    }

    #[test]
    fn inactive_genes_are_missing_for_the_model() {
        let e = Engine::new(
            GATED,
            screened(config(Algorithm::Ga, 1, 6, 4)),
            Some(1),
            String::new(),
        )
        .unwrap();
        // o = -O1 (index 0), v present with a value: v is inactive, so NaN.
        let f = e.features(&[0.0, 1.0, 0.0, 2.0], &[true, true, true, true]);
        assert!(f[3].is_nan() && f[1] == 1.0);
        let f = e.features(&[0.0, 1.0, 1.0, 2.0], &[false, true, true, true]);
        assert!(f[0].is_nan() && f[1].is_nan() && f[3] == 2.0);
    }

    #[test]
    fn bad_when_names_the_parameter() {
        let space = |when: &str| {
            format!(
                r#"{{"dict":[["a",{{"param":{{"type":"choice","values":[1,2]}},"path":"a"}}],["b",{{"param":{{"type":"range","start":0,"end":3,"when":{when}}},"path":"b"}}]]}}"#
            )
        };
        let err = |w: &str| Space::from_json(&space(w)).unwrap_err().to_string();
        assert!(
            err(r#""c""#).contains("b: when=\"c\": unknown parameter 'c'"),
            "{}",
            err(r#""c""#)
        );
        assert!(
            err(r#"{"a":[3]}"#).contains("3) is not a value of a"),
            "{}",
            err(r#"{"a":[3]}"#)
        );
        assert!(err(r#""b""#).contains("cannot depend on itself"));
        assert!(err(r#""a +""#).contains("syntax error"));
    }

    #[test]
    fn warm_start_comes_first_and_priors_are_never_proposed() {
        let cfg = config(Algorithm::Ga, 1, 4, 20);
        let warm = vec![
            serde_json::json!({"a": 3, "b": "y"}),
            serde_json::json!({"a": 0}),
        ];
        let priors = vec![
            serde_json::json!({"a": 1, "b": "x"}),
            serde_json::json!({"a": 2}),
        ];
        let mut e = Engine::create(
            SMALL,
            cfg.clone(),
            Some(5),
            String::new(),
            Setup {
                warm_start: warm,
                priors,
                prior_scores: vec![1.0, f64::NAN],
                ..Setup::default()
            },
        )
        .unwrap();
        assert_eq!(e.priors(), 2);
        assert_eq!(e.state.population.len(), 2);
        let r = e.ask(None);
        let mut c = vec![0.0; r.len() * 2];
        let ids = e.fill_columns(r, &mut c);
        assert_eq!(ids[0], 2, "priors hold ids 0 and 1");
        assert_eq!(&c[..2], &[3.0, 1.0]);
        assert!(c[2] == 0.0 && c[3].is_nan());
        let s: Vec<f64> = c.chunks(2).map(|r| r[0]).collect();
        e.tell(&ids, &s).unwrap();
        let mut rows: Vec<Vec<f64>> = c.chunks(2).map(<[f64]>::to_vec).collect();
        rows.extend(all_rows(&mut e));
        // 12 candidates in the space, 2 of them told as priors.
        assert_eq!(rows.len(), 10);
        assert!(!rows
            .iter()
            .any(|r| (r[0] == 1.0 && r[1] == 0.0) || (r[0] == 2.0 && r[1].is_nan())));
        // A warm-start candidate outside the space is refused, naming the path.
        let err = Engine::create(
            SMALL,
            cfg,
            Some(5),
            String::new(),
            Setup {
                warm_start: vec![serde_json::json!({"a": 9})],
                ..Setup::default()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("['a']: warm_start[0]: 9 is not a value"),
            "{err}"
        );
    }

    #[test]
    fn screening_repairs_rejected_candidates_and_drops_them_when_none_is_left() {
        let mut e = Engine::new(
            SMALL,
            config(Algorithm::Ga, 1, 6, 20),
            Some(2),
            String::new(),
        )
        .unwrap();
        let mut told = 0;
        let mut rejected_keys = HashSet::new();
        while !e.done() {
            // An outside rule: a must be even. Screen until every unasked candidate passes.
            loop {
                let todo = e.unscreened();
                if todo.is_empty() {
                    break;
                }
                let (ok, bad): (Vec<usize>, Vec<usize>) = todo.into_iter().partition(|&p| {
                    let (_, x, _) = e.candidate(p);
                    x[0] as i64 % 2 == 0
                });
                for &p in &bad {
                    let (_, x, on) = e.candidate(p);
                    rejected_keys.insert(format!("{x:?}{on:?}"));
                }
                e.screen(&ok, &bad).unwrap();
            }
            let r = e.ask(None);
            let mut c = vec![0.0; r.len() * 2];
            let ids = e.fill_columns(r.clone(), &mut c);
            assert_eq!(ids, (ids[0]..ids[0] + ids.len() as u64).collect::<Vec<_>>());
            for p in r {
                let (_, x, on) = e.candidate(p);
                assert!(x[0] as i64 % 2 == 0);
                assert!(!rejected_keys.contains(&format!("{x:?}{on:?}")));
            }
            told += ids.len();
            let s: Vec<f64> = c.chunks(2).map(|r| r[0]).collect();
            e.tell(&ids, &s).unwrap();
        }
        // a in {0, 2} times b in {x, y, absent}: 6 candidates pass the rule.
        assert_eq!(told, 6);
        assert!(e.exhausted());
        assert!(e.screen(&[99], &[]).is_err());
    }

    #[test]
    fn state_round_trips_with_constraints_when_and_priors() {
        let cfg = screened(config(Algorithm::Ga, 1, 6, 8));
        let mut a = Engine::create(
            GATED,
            cfg,
            Some(9),
            String::new(),
            Setup {
                constraints: vec!["n is None or n <= 6".into()],
                warm_start: vec![serde_json::json!({"u": "-funroll", "n": 4, "o": "-O3", "v": 1})],
                priors: vec![serde_json::json!({"o": "-O1"})],
                prior_scores: vec![3.0],
            },
        )
        .unwrap();
        let b0 = a.to_bytes();
        let mut b = Engine::from_bytes(&b0).unwrap();
        assert_eq!(b.to_bytes(), b0);
        assert_eq!(b.constraints(), a.constraints());
        assert_eq!(
            all_rows(&mut a)
                .iter()
                .map(|r| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
            all_rows(&mut b)
                .iter()
                .map(|r| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A random leaf spec as JSON.
        fn leaf() -> impl Strategy<Value = String> {
            let ko = prop_oneof![
                Just(String::new()),
                (0.05f64..0.95).prop_map(|p| format!(r#","knockout_prob":{p}"#))
            ];
            let kind = prop_oneof![
                (-50i64..50, 1i64..40, 1i64..5).prop_map(|(a, span, st)| format!(
                    r#""type":"range","start":{a},"end":{},"step":{st}"#,
                    a + span
                )),
                (-5.0f64..5.0, 0.5f64..10.0).prop_map(|(a, span)| format!(
                    r#""type":"range","start":{a:?},"end":{:?},"step":null"#,
                    a + span
                )),
                (-5.0f64..5.0, 1u32..20).prop_map(|(a, k)| format!(
                    r#""type":"range","start":{a:?},"end":{:?},"step":0.25"#,
                    a + 0.25 * k as f64
                )),
                (1usize..6).prop_map(|k| format!(
                    r#""type":"choice","values":[{}]"#,
                    (0..k)
                        .map(|i| format!(r#""v{i}""#))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
                Just(r#""type":"literal","value":"-flag""#.to_string()),
            ];
            (kind, ko).prop_map(|(k, ko)| format!("{{{k}{ko}}}"))
        }

        fn space() -> impl Strategy<Value = String> {
            proptest::collection::vec(leaf(), 1..6).prop_map(|leaves| {
                let items: Vec<String> = leaves
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!(r#"["p{i}",{{"param":{l},"path":"p{i}"}}]"#))
                    .collect();
                format!(r#"{{"dict":[{}]}}"#, items.join(","))
            })
        }

        /// A random space with `when` conditions and a constraint, as JSON, plus what the test
        /// needs to check it independently: per parameter its kind (0 int range, 1 choice, 2
        /// literal), its gate (index, and whether the gate must be at its first value), and the
        /// constraint's atoms `(i, k, bound)`: `p_i is None or p_k is None or p_i + p_k <= bound`.
        type Rules = (
            String,
            Vec<u8>,
            Vec<Option<(usize, bool)>>,
            Vec<(usize, usize, i64)>,
            bool,
        );

        fn gated_space() -> impl Strategy<Value = Rules> {
            let leaf = (
                0u8..3,
                0i64..10,
                1i64..6,
                1u8..4,
                any::<bool>(),
                any::<bool>(),
                0usize..8,
                any::<bool>(),
            );
            (
                proptest::collection::vec(leaf, 2..6),
                proptest::collection::vec((0usize..6, 0usize..6, 0i64..16), 0..3),
                any::<bool>(),
            )
                .prop_map(|(leaves, atoms, any_of)| {
                    let n = leaves.len();
                    let mut kinds = Vec::new();
                    let mut gates = Vec::new();
                    let mut items = Vec::new();
                    for (i, &(kind, a, span, k, ko, gated, gate, first)) in
                        leaves.iter().enumerate()
                    {
                        let gate = (gated && i > 0).then(|| {
                            let g = gate % i;
                            (g, first && kinds[g] == 1)
                        });
                        let when = match gate {
                            None => String::new(),
                            Some((g, false)) => format!(r#","when":"p{g}""#),
                            Some((g, true)) => format!(r#","when":{{"p{g}":["v0"]}}"#),
                        };
                        let ko = if ko { r#","knockout_prob":0.4"# } else { "" };
                        let body = match kind {
                            0 => {
                                format!(r#""type":"range","start":{a},"end":{},"step":1"#, a + span)
                            }
                            1 => format!(
                                r#""type":"choice","values":[{}]"#,
                                (0..=k)
                                    .map(|v| format!(r#""v{v}""#))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            ),
                            _ => r#""type":"literal","value":"-f""#.to_string(),
                        };
                        kinds.push(kind);
                        gates.push(gate);
                        items.push(format!(
                            r#"["p{i}",{{"param":{{{body}{ko}{when}}},"path":"p{i}"}}]"#
                        ));
                    }
                    let ints: Vec<usize> = (0..n).filter(|&i| kinds[i] == 0).collect();
                    let atoms: Vec<(usize, usize, i64)> = if ints.is_empty() {
                        Vec::new()
                    } else {
                        atoms
                            .into_iter()
                            .map(|(i, k, b)| (ints[i % ints.len()], ints[k % ints.len()], b))
                            .collect()
                    };
                    (
                        format!(r#"{{"dict":[{}]}}"#, items.join(",")),
                        kinds,
                        gates,
                        atoms,
                        any_of,
                    )
                })
        }

        fn constraint_text(atoms: &[(usize, usize, i64)], any_of: bool) -> Option<String> {
            if atoms.is_empty() {
                return None;
            }
            let parts: Vec<String> = atoms
                .iter()
                .map(|(i, k, b)| format!("(p{i} is None or p{k} is None or p{i} + p{k} <= {b})"))
                .collect();
            Some(parts.join(if any_of { " or " } else { " and " }))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(150))]
            #[test]
            fn constraints_and_conditions_hold_for_every_engine((space_json, kinds, gates, atoms, any_of) in gated_space(), seed in any::<u64>(), algo in 0u8..6, cut in 0u32..4) {
                let algorithm = [Algorithm::Ga, Algorithm::Nsga2, Algorithm::Nsga3][algo as usize % 3];
                let m = if algorithm == Algorithm::Ga { 1 } else { 2 };
                let cfg = EngineConfig { surrogate: algo >= 3, oversampling: 4, ..config(algorithm, m, 8, 6) };
                let constraints: Vec<String> = constraint_text(&atoms, any_of).into_iter().collect();
                let made = Engine::create(&space_json, cfg, Some(seed), String::new(), Setup { constraints, ..Setup::default() });
                let mut e = match made {
                    Ok(e) => e,
                    // Only a constraint nothing satisfies may refuse the space.
                    Err(err) => { prop_assert!(err.to_string().contains("no candidate satisfies"), "{}", err); return Ok(()); }
                };
                let n = e.num_params();
                let holds = |r: &[f64]| {
                    let ok = atoms.iter().map(|&(i, k, b)| r[i].is_nan() || r[k].is_nan() || r[i] + r[k] <= b as f64);
                    if any_of { ok.into_iter().any(|v| v) } else { ok.into_iter().all(|v| v) }
                };
                let mut seen = HashSet::new();
                let mut copy: Option<Engine> = None;
                while !e.done() {
                    if e.generation() == cut && copy.is_none() {
                        copy = Some(Engine::from_bytes(&e.to_bytes()).unwrap());
                    }
                    let r = e.ask(None);
                    let positions: Vec<usize> = r.clone().collect();
                    let mut cols = vec![0.0; r.len() * n];
                    let ids = e.fill_columns(r, &mut cols);
                    for (row, &pos) in cols.chunks(n).zip(&positions) {
                        let (_, _, on) = e.candidate(pos);
                        for i in 0..n {
                            let cond = match gates[i] {
                                None => true,
                                Some((g, false)) => !row[g].is_nan(),
                                Some((g, true)) => row[g] == 0.0,
                            };
                            prop_assert_eq!(row[i].is_nan(), !(on[i] && cond), "presence of p{} in {:?}", i, row);
                        }
                        if !atoms.is_empty() {
                            prop_assert!(holds(row), "violates {:?}: {:?}", constraint_text(&atoms, any_of), row);
                        }
                        prop_assert!(seen.insert(row.iter().map(|v| v.to_bits()).collect::<Vec<_>>()), "repeated {:?}", row);
                    }
                    let scores: Vec<f64> = cols.chunks(n).flat_map(|r| { let s: f64 = r.iter().filter(|v| v.is_finite()).sum(); vec![s, -s][..m].to_vec() }).collect();
                    e.tell(&ids, &scores).unwrap();
                    if let Some(c) = copy.as_mut() {
                        if c.generation() + 1 == e.generation() {
                            let r = c.ask(None);
                            let mut cc = vec![0.0; r.len() * n];
                            let cids = c.fill_columns(r, &mut cc);
                            prop_assert_eq!(&cids, &ids);
                            prop_assert_eq!(cc.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), cols.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                            c.tell(&cids, &scores).unwrap();
                        }
                    }
                }
                let _ = kinds;
                if let Some(size) = e.space().size() {
                    prop_assert!(seen.len() as u128 <= size);
                    if e.exhausted() { prop_assert_eq!(seen.len() as u128, size); }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(60))]
            #[test]
            fn in_bounds_unique_and_resumable(space_json in space(), seed in any::<u64>(), algo in 0u8..6, cut in 0u32..4) {
                let algorithm = [Algorithm::Ga, Algorithm::Nsga2, Algorithm::Nsga3][algo as usize % 3];
                let m = if algorithm == Algorithm::Ga { 1 } else { 2 };
                let cfg = EngineConfig { surrogate: algo >= 3, oversampling: 4, ..config(algorithm, m, 10, 5) };
                let mut e = Engine::new(&space_json, cfg, Some(seed), String::new()).unwrap();
                let space = e.space().clone();
                let n = e.num_params();
                let mut seen = HashSet::new();
                let mut copy: Option<Engine> = None;
                while !e.done() {
                    if e.generation() == cut && copy.is_none() {
                        copy = Some(Engine::from_bytes(&e.to_bytes()).unwrap());
                    }
                    let r = e.ask(None);
                    let len = r.len();
                    let positions: Vec<usize> = r.collect();
                    let mut cols = vec![0.0; len * n];
                    let ids = e.fill_columns(positions[0]..positions[0] + len, &mut cols);
                    for i in positions {
                        let (_, x, on) = e.candidate(i);
                        let key: Vec<String> = (0..n).map(|j| if on[j] { format!("{:?}", space.params[j].value(x[j])) } else { "-".into() }).collect();
                        prop_assert!(seen.insert(key.clone()), "repeated candidate {:?}", key);
                        for (j, p) in space.params.iter().enumerate() {
                            let g = Gene::from_param(p);
                            prop_assert!(x[j] >= g.low && x[j] <= g.high, "gene {} out of bounds: {}", j, x[j]);
                            if let Some(levels) = p.levels() {
                                prop_assert!(x[j].fract() == 0.0 && (x[j] as u64) < levels.max(1));
                            }
                        }
                    }
                    let scores: Vec<f64> = cols.chunks(n).flat_map(|r| { let s: f64 = r.iter().filter(|v| v.is_finite()).sum(); vec![s, -s * 0.5 + r.len() as f64][..m].to_vec() }).collect();
                    e.tell(&ids, &scores).unwrap();
                    if let Some(c) = copy.as_mut() {
                        if c.generation() + 1 == e.generation() {
                            let r = c.ask(None);
                            let mut cc = vec![0.0; r.len() * n];
                            let cids = c.fill_columns(r, &mut cc);
                            prop_assert_eq!(&cids, &ids);
                            prop_assert_eq!(cc.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), cols.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                            c.tell(&cids, &scores).unwrap();
                        }
                    }
                }
                if let Some(size) = space.size() {
                    prop_assert!(seen.len() as u128 <= size);
                    if e.exhausted() { prop_assert_eq!(seen.len() as u128, size); }
                }
            }
        }
    }
}
