//! The ask/tell engine: never the same candidate twice, under either schedule.
//!
//! `mod.rs` holds the state and the public API; the schedules (`generational`, `steady`) decide
//! when candidates are bred; `breeding` and `screening`/`model` breed them (plainly, or chosen by
//! the surrogate); `claims` keeps them new and feasible; `warm_start` tells prior evaluations;
//! `state` saves and restores the whole engine.

mod breeding;
mod claims;
mod generational;
mod model;
mod pop;
mod screening;
mod state;
mod steady;
mod warm_start;

use crate::config::{Algorithm, Direction, EngineConfig, Schedule};
use crate::error::{Error, Result};
use crate::operators::Gene;
use crate::refdirs::reference_directions;
use crate::selection::{Nsga3Memory, ReferenceSet};
use crate::space::Space;
use claims::Claim;
use pop::{Pop, SeenSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The engine's RNG: portable, seedable, serializable (seed, stream and word position).
pub type EngineRng = ChaCha8Rng;

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
    #[serde(with = "pop::sorted_keys")]
    seen: SeenSet,
    /// Every evaluated candidate in id order, kept for the surrogate (empty without one).
    archive: Pop,
    exhausted: bool,
    done: bool,
    nsga3: Nsga3Memory,
    /// Steady schedule: candidates asked and not yet told, in ask order (ids increasing). The
    /// batch holds the initial design and warm-start candidates still to hand out.
    pending: Pop,
    /// Steady: candidates chosen but not handed out yet (an outside constraint judges them
    /// first); their ids are given when they are asked.
    proposed: Pop,
    proposed_screened: Vec<bool>,
    /// Steady: candidates handed out so far (the budget is `generations * pool_size`).
    asked_total: u64,
    /// Steady: the model in use was fitted to the first `model_rows` archive rows with an RNG
    /// seeded by `model_seed` (0 rows: none yet), so a restored engine refits the same model.
    model_rows: usize,
    model_seed: u64,
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
    /// Steady: the surrogate in use (rebuilt from `model_rows`/`model_seed` after a restore).
    model: Option<model::Model>,
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
            pending: Pop::default(),
            proposed: Pop::default(),
            proposed_screened: Vec::new(),
            asked_total: 0,
            model_rows: 0,
            model_seed: 0,
        };
        let mut engine = Engine::assemble(state, space);
        engine.tell_priors(&priors, &setup.prior_scores);
        for (x, on) in &warm {
            if engine.try_claim(x, on) == Claim::New {
                engine.push_candidate(x, on);
            }
        }
        if engine.state.config.schedule == Schedule::Steady {
            engine.start_steady();
        } else if engine.state.population.len() > 0 {
            engine.breed();
        } else {
            engine.fill_initial(engine.state.config.pool_size);
            engine.finish_batch();
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
            model: None,
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
    /// Generational: the index of the generation being evaluated (the number of finished ones
    /// once done). Steady: the cohort counter, results told // pool_size.
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
    /// Whether candidates are chosen at every ask (steady) or a generation at a time.
    pub fn steady(&self) -> bool {
        self.state.config.schedule == Schedule::Steady
    }
    /// Generational: the size of the current generation. Steady: the candidates pending or
    /// proposed.
    pub fn batch_len(&self) -> usize {
        if self.steady() {
            self.state.pending.len() + self.state.proposed.len()
        } else {
            self.state.batch.len()
        }
    }
    /// Generational: candidates of the current generation handed out so far. Steady: the
    /// candidates pending.
    pub fn asked(&self) -> usize {
        if self.steady() {
            self.state.pending.len()
        } else {
            self.state.n_asked
        }
    }

    // ----- ask and tell ----------------------------------------------------------------------
    //
    // Candidates are addressed by positions in a view: the current generation's batch
    // (generational), or the pending candidates followed by the proposed ones (steady). A
    // position is valid until the next call that changes the engine.

    /// Hands out up to `n` new candidates as a range of view positions. Generational: the
    /// not-yet-asked rest of the current generation (all of it for `None`); empty until the
    /// generation is all told. Steady: `n` candidates chosen with every result told so far
    /// (`None`: `pool_size` minus the pending ones), fewer only at the end of the budget or of
    /// the space.
    pub fn ask(&mut self, n: Option<usize>) -> Range<usize> {
        if self.steady() {
            self.ask_steady(n)
        } else {
            self.ask_generational(n)
        }
    }

    /// Steady: chooses up to `n` candidates (within the budget) to be judged by an outside
    /// constraint before [`Engine::ask`] hands them out. Generational: nothing to do (the
    /// generation is already chosen).
    pub fn propose(&mut self, n: usize) {
        if self.steady() {
            self.propose_steady(n);
        }
    }

    /// Positions of not-yet-asked candidates that an outside constraint has not accepted yet.
    pub fn unscreened(&self) -> Vec<usize> {
        if self.steady() {
            self.unscreened_steady()
        } else {
            self.unscreened_generational()
        }
    }

    /// The verdict of an outside constraint on not-yet-asked positions: `accepted` ones are
    /// kept; each `rejected` one is replaced (generational: by a repair or a fresh random draw;
    /// steady: by the model's next choice, like any other candidate), which the constraint has
    /// yet to see, or dropped when none is left. Rejected candidates stay in the dedup set, so
    /// they are never proposed again. Returns how many were dropped.
    pub fn screen(&mut self, accepted: &[usize], rejected: &[usize]) -> Result<usize> {
        if self.steady() {
            self.screen_steady(accepted, rejected)
        } else {
            self.screen_generational(accepted, rejected)
        }
    }

    /// Positions of the candidates asked but not yet told.
    pub fn pending(&self) -> Vec<usize> {
        if self.steady() {
            (0..self.state.pending.len()).collect()
        } else {
            self.pending_generational()
        }
    }

    /// Records scores (row-major `(ids.len(), m)`; NaN or ±inf = INVALID) for pending
    /// candidates, validating the whole call before changing anything. Generational: once a
    /// generation is all told, the next is bred. Steady: the population and the model's data
    /// take the results at once.
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
        if self.steady() {
            self.tell_steady(ids, scores)
        } else {
            self.tell_generational(ids, scores)
        }
    }

    /// The id and genome of view position `i` (see [`Engine::ask`]).
    pub fn candidate(&self, i: usize) -> (u64, &[f64], &[bool]) {
        let n = self.num_params();
        let (b, i, id) = if !self.steady() {
            (&self.state.batch, i, None)
        } else if i < self.state.pending.len() {
            (&self.state.pending, i, None)
        } else {
            // Proposed candidates get their ids when asked, in order.
            let j = i - self.state.pending.len();
            (&self.state.proposed, j, Some(self.state.next_id + j as u64))
        };
        (
            id.unwrap_or_else(|| b.ids[i]),
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
}

#[cfg(test)]
mod tests;
