//! Claims: a candidate is proposed only if it is new (its dedup key unseen) and satisfies the
//! constraints; repairs, random draws and enumeration find one when a bred child is not.

use super::Engine;
use crate::operators::{mutate_one, sample_genome};
use crate::space::GeneKind;
use rand::Rng;

/// Finite spaces up to this size are enumerated when random draws keep hitting seen candidates.
pub(super) const PROBE_LIMIT: u128 = 1 << 22;
pub(super) const RANDOM_TRIES: usize = 64;
/// Random draws per fresh candidate when constraints reject some: a constraint that almost no
/// candidate satisfies still finds one, and one that none satisfies fails in bounded time.
pub(super) const CONSTRAINT_TRIES: usize = 100_000;
pub(super) const REPAIR_TRIES: usize = 8;

/// What a claimed genome turned out to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Claim {
    New,
    Seen,
    Infeasible,
}

impl Engine {
    /// Computes the active parameters of a genome into the scratch buffer.
    #[inline]
    pub(super) fn look_at(&mut self, x: &[f64], on: &[bool]) {
        self.act.resize(on.len(), false);
        self.space.active_into(x, on, &mut self.act);
    }

    /// Whether the genome just looked at satisfies the constraints (counted when there are some).
    #[inline]
    pub(super) fn check_constraints(&mut self, x: &[f64]) -> bool {
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
    pub(super) fn key(&mut self, x: &[f64], on: &[bool]) -> u128 {
        self.look_at(x, on);
        self.key_of_active(x)
    }

    /// [`Engine::key`] of the genome just looked at: inactive genes are absent whatever their
    /// value, so candidates that differ only there are the same candidate.
    pub(super) fn key_of_active(&mut self, x: &[f64]) -> u128 {
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
    pub(super) fn try_claim(&mut self, x: &[f64], on: &[bool]) -> Claim {
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

    pub(super) fn claim(&mut self, x: &[f64], on: &[bool]) -> bool {
        self.try_claim(x, on) == Claim::New
    }

    /// Makes a bred child unique: small forced mutations, then random draws, then enumeration.
    pub(super) fn make_unique(&mut self, x: &mut [f64], on: &mut [bool], eta: f64) -> bool {
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
    pub(super) fn fresh_random(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
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
    pub(super) fn probe(&mut self, x: &mut [f64], on: &mut [bool]) -> bool {
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
}
