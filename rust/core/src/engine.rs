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

const STATE_MAGIC: &[u8; 8] = b"GTENG\x00\x00\x02";
/// Finite spaces up to this size are enumerated when random draws keep hitting seen candidates.
const PROBE_LIMIT: u128 = 1 << 22;
const RANDOM_TRIES: usize = 64;
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

/// Everything that is saved by `to_bytes` (the compiled space is rebuilt from its JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    space_json: String,
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
        let space = Space::from_json(space_json)?;
        config.validate()?;
        let seed = seed.unwrap_or_else(|| rand::rng().random());
        let state = State {
            space_json: space_json.to_owned(),
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
            seen: SeenSet::default(),
            archive: Pop::default(),
            exhausted: false,
            done: false,
            nsga3: Nsga3Memory::default(),
        };
        let mut engine = Engine::assemble(state, space);
        engine.fill_initial();
        Ok(engine)
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
        for (j, p) in self.space.params.iter().enumerate() {
            out[j] = if on[j] {
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
        let (pop, batch) = (&self.state.population, &self.state.batch);
        let n_pop = pop.len();
        // The archive feeds the model only while the model is in use.
        if cfg.surrogate && self.state.evaluations < cfg.model_evaluations {
            for i in 0..batch.len() {
                self.state.archive.push_from(batch, i, n, m);
            }
        }
        self.state.evaluations += batch.len() as u64;
        // Selection sees parents then offspring; only the small arrays are merged.
        let f = [pop.f.as_slice(), batch.f.as_slice()].concat();
        let valid = [pop.valid.as_slice(), batch.valid.as_slice()].concat();
        let ids = [pop.ids.as_slice(), batch.ids.as_slice()].concat();
        let survivors = match cfg.algorithm {
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
        };
        let mut next = std::mem::take(&mut self.spare);
        next.clear();
        for &i in &survivors {
            if i < n_pop {
                next.push_from(pop, i, n, m);
            } else {
                next.push_from(batch, i - n_pop, n, m);
            }
        }
        self.spare = std::mem::replace(&mut self.state.population, next);
        self.state.batch.clear();
        self.state.generation += 1;
        self.state.told.clear();
        self.state.n_told = 0;
        self.state.n_asked = 0;
        if self.state.exhausted || self.state.generation >= cfg.generations {
            self.state.done = true;
        } else {
            self.breed();
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
        let rng = &mut self.state.rng;
        crossover(
            &self.genes,
            v,
            (&mut *x1, &mut *on1),
            (&mut *x2, &mut *on2),
            rng,
        );
        mutate(&self.genes, &self.mutable, v, x1, on1, rng);
        mutate(&self.genes, &self.mutable, v, x2, on2, rng);
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
            let use_seed = share > 0.0 && self.state.rng.random::<f64>() < share;
            for j in 0..n {
                let u = (values[j][i] as f64 + self.state.rng.random::<f64>()) / pool as f64;
                x[j] = quantile_gene(&self.genes[j], u, use_seed);
                on[j] = match self.genes[j].knockout {
                    Some(p) => (presence[j][i] as f64 + 0.5) / pool as f64 >= p,
                    None => true,
                };
            }
            if !self.claim(&x, &on) && !self.fresh_random(&mut x, &mut on) {
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
        for c in self.pick_by_model(&offspring, pool) {
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
                let rng = &mut self.state.rng;
                let forced = Variation {
                    mutate_rate: 1.0,
                    ..variation
                };
                mutate(&self.genes, &self.mutable, &forced, &mut x1, &mut on1, rng);
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
        let k = self.key(x, on);
        if !self.state.seen.contains(&k) && local.insert(k) {
            out.x.extend_from_slice(x);
            out.on.extend_from_slice(on);
            out.keys.push(k);
        }
    }

    /// The surrogate's features of genomes: the gene (index or value) where present, NaN where
    /// knocked out, so absence is a branch of its own and not a value.
    fn features(&self, x: &[f64], on: &[bool]) -> Vec<f64> {
        x.iter()
            .zip(on)
            .map(|(&v, &present)| if present { v } else { f64::NAN })
            .collect()
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

    /// 128-bit hash of what the objective would see: absent keys and present values.
    fn key(&mut self, x: &[f64], on: &[bool]) -> u128 {
        self.key_buf.clear();
        for (i, g) in self.genes.iter().enumerate() {
            if !on[i] {
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

    /// Records the genome as proposed if it is new.
    fn claim(&mut self, x: &[f64], on: &[bool]) -> bool {
        let k = self.key(x, on);
        self.state.seen.insert(k)
    }

    /// Makes a bred child unique: small forced mutations, then random draws, then enumeration.
    fn make_unique(&mut self, x: &mut [f64], on: &mut [bool], eta: f64) -> bool {
        if self.claim(x, on) {
            return true;
        }
        for _ in 0..REPAIR_TRIES {
            mutate_one(&self.genes, &self.mutable, eta, x, on, &mut self.state.rng);
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
        for _ in 0..RANDOM_TRIES {
            sample_genome(&self.genes, share, x, on, &mut self.state.rng);
            if self.claim(x, on) {
                return true;
            }
        }
        self.probe(x, on)
    }

    /// Enumerates a finite space from a random start for an unseen candidate.
    fn probe(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
        let Some(size) = self.space.size().filter(|&s| s <= PROBE_LIMIT) else {
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
        let space = Space::from_json(&state.space_json)?;
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
