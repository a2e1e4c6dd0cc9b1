//! The engine's own view of the search configuration (the Python `SearchConfiguration` derives it).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Elitist single-objective GA.
    Ga,
    Nsga2,
    Nsga3,
}

/// When candidates are chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// A whole generation is handed out; the next is bred once all of it is told.
    #[default]
    Generational,
    /// Every ask chooses its candidates with every result told so far.
    Steady,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// The schedule (generational when absent: the engine before steady-state scheduling).
    #[serde(default)]
    pub schedule: Schedule,
    pub generations: u32,
    pub pool_size: usize,
    /// Size of the mating pool: the best `cull_size` survivors breed the next generation.
    pub cull_size: usize,
    /// Probability that an offspring is mutated (CompileIQ's meaning).
    pub mutate_rate: f64,
    /// Probability that each mutable gene of a mutated offspring changes; `None` adapts it to the
    /// space (1 / the number of mutable genes). At least one gene always changes.
    #[serde(default)]
    pub gene_mutate_rate: Option<f64>,
    /// Model-assisted breeding: each generation breeds `oversampling` offspring per slot and
    /// evaluates the `pool_size` that a surrogate fitted to every evaluated candidate prefers.
    #[serde(default)]
    pub surrogate: bool,
    #[serde(default = "default_oversampling")]
    pub oversampling: usize,
    /// The surrogate screens offspring until this many candidates are evaluated; plain breeding
    /// follows (long runs need the model less than its cost).
    #[serde(default = "default_model_evaluations")]
    pub model_evaluations: u64,
    /// One direction per objective.
    pub directions: Vec<Direction>,
    pub algorithm: Algorithm,
    /// Share of the initial population drawn from the ranges' seed sub-ranges.
    pub init_seed_share: f64,
    #[serde(default)]
    pub objective_weights: Option<Vec<f64>>,
    pub crossover_prob: f64,
    pub crossover_eta: f64,
    pub mutation_eta: f64,
}

fn default_oversampling() -> usize {
    24
}

fn default_model_evaluations() -> u64 {
    u64::MAX
}

impl EngineConfig {
    /// Parses the JSON the Python layer sends.
    pub fn from_json(json: &str) -> Result<EngineConfig> {
        serde_json::from_str(json)
            .map_err(|e| Error::InvalidConfig(format!("malformed engine config: {e}")))
    }

    pub fn num_objectives(&self) -> usize {
        self.directions.len()
    }

    /// Re-checks what the engine relies on, so a caller that bypasses the Python model still
    /// gets an error instead of a panic.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let m = self.num_objectives();
        if m == 0 || m > 64 {
            return bad(format!("num_objectives must be within 1..=64, got {m}"));
        }
        if self.generations == 0 {
            return bad("generations must be at least 1".into());
        }
        if self.pool_size < 2 {
            return bad(format!(
                "pool_size must be at least 2, got {}",
                self.pool_size
            ));
        }
        // The same rule as the Python model: some survivors must not breed.
        if self.cull_size < 2 || self.cull_size >= self.pool_size {
            return bad(format!(
                "cull_size must be within 2..pool_size ({}), got {}",
                self.pool_size, self.cull_size
            ));
        }
        for (name, v) in [
            ("mutate_rate", self.mutate_rate),
            ("crossover_prob", self.crossover_prob),
            ("init_with_true_random_threshold", self.init_seed_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be within [0, 1], got {v}"));
            }
        }
        if let Some(r) = self.gene_mutate_rate {
            if !(r > 0.0 && r <= 1.0) {
                return bad(format!("gene_mutate_rate must be within (0, 1], got {r}"));
            }
        }
        if self.oversampling == 0 || self.oversampling > 1024 {
            return bad(format!(
                "oversampling must be within 1..=1024, got {}",
                self.oversampling
            ));
        }
        for (name, v) in [
            ("crossover_eta", self.crossover_eta),
            ("mutation_eta", self.mutation_eta),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        if self.algorithm == Algorithm::Ga && m != 1 {
            return bad(format!(
                "engine 'ga' optimizes one objective; use 'nsga2' or 'nsga3' for {m}"
            ));
        }
        if let Some(w) = &self.objective_weights {
            if w.len() != m || w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                return bad(format!(
                    "objective_weights must be {m} finite non-negative numbers"
                ));
            }
        }
        Ok(())
    }
}
