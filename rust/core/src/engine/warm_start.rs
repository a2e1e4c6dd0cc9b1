//! Prior evaluations told at creation: never proposed again, and the first population.

use super::pop::Pop;
use super::Engine;
use crate::config::Direction;

impl Engine {
    /// Tells earlier evaluations (ids `0..k`): into the dedup set, the model's archive and the
    /// population the first generation is bred from. Never evaluated again.
    pub(super) fn tell_priors(&mut self, priors: &[(Vec<f64>, Vec<bool>)], scores: &[f64]) {
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
}
