//! The generational schedule: a whole generation is handed out, told, then the next is bred.

use super::pop::Pop;
use super::Engine;
use crate::config::Direction;
use crate::error::{Error, Result};
use rand::Rng;
use std::ops::Range;

impl Engine {
    // ----- ask -------------------------------------------------------------------------------

    /// Hands out up to `n` (all, if `None`) not-yet-asked candidates of the current generation,
    /// as a range of batch positions; empty once all are out or the search is done.
    pub(super) fn ask_generational(&mut self, n: Option<usize>) -> Range<usize> {
        let start = self.state.n_asked;
        let end = match n {
            Some(k) => (start + k).min(self.state.batch.len()),
            None => self.state.batch.len(),
        };
        self.state.n_asked = end;
        start..end
    }

    /// Batch positions not yet asked that an outside constraint has not accepted yet.
    pub(super) fn unscreened_generational(&self) -> Vec<usize> {
        (self.state.n_asked..self.state.batch.len())
            .filter(|&p| !self.state.screened.get(p).copied().unwrap_or(false))
            .collect()
    }

    /// The verdict of an outside constraint on not-yet-asked batch positions: `accepted` ones
    /// are kept; each `rejected` one is replaced by a repaired candidate (small mutations) or a
    /// fresh random one, which the constraint has yet to see, or dropped when none is left. Rejected
    /// candidates stay in the dedup set, so they are never proposed again. Returns how many were
    /// dropped.
    pub(super) fn screen_generational(
        &mut self,
        accepted: &[usize],
        rejected: &[usize],
    ) -> Result<usize> {
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
    pub(super) fn drop_unasked(&mut self, positions: &[usize]) {
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
    pub(super) fn pending_generational(&self) -> Vec<usize> {
        (0..self.state.n_asked)
            .filter(|&i| !self.state.told[i])
            .collect()
    }

    /// Records scores (row-major `(ids.len(), m)`; NaN or ±inf = INVALID) for asked candidates of
    /// the current generation. Once all of them are told, the next generation is bred.
    /// Validates the whole call before changing anything.
    pub(super) fn tell_generational(&mut self, ids: &[u64], scores: &[f64]) -> Result<()> {
        let m = self.num_objectives();
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

    pub(super) fn advance(&mut self) {
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

    pub(super) fn push_candidate(&mut self, x: &[f64], on: &[bool]) {
        let m = self.num_objectives();
        let id = self.state.next_id;
        self.state.next_id += 1;
        self.state.batch.push(id, x, on, m);
        self.state.told.push(false);
    }

    pub(super) fn finish_batch(&mut self) {
        if self.state.batch.len() < self.state.config.pool_size {
            self.state.exhausted = true;
        }
        if self.state.batch.len() == 0 {
            self.state.done = true;
        }
    }

    /// The first candidates: `size` of them, space-filling for the model-assisted engine,
    /// uniform draws for the plain ones (warm-start candidates already in the batch count).
    pub(super) fn fill_initial(&mut self, size: usize) {
        if self.state.config.surrogate {
            return self.fill_space_filling(size);
        }
        let n = self.num_params();
        let (mut x, mut on) = (vec![0.0; n], vec![true; n]);
        while self.state.batch.len() < size {
            if !self.fresh_random(&mut x, &mut on) {
                break;
            }
            self.push_candidate(&x, &on);
        }
    }
}
