//! Plain breeding: selection of survivors, tournaments, crossover and mutation.

use super::pop::Pop;
use super::Engine;
use crate::config::Algorithm;
use crate::operators::{crossover, mutate, Variation};
use crate::selection::{select_ga, select_nsga2, select_nsga3};
use rand::seq::SliceRandom;
use rand::Rng;

impl Engine {
    /// Survivors of `pop` then `batch` (indices into their concatenation), best first.
    pub(super) fn select(&mut self, pop: &Pop, batch: &Pop) -> Vec<usize> {
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

    /// Operator settings, the per-gene rate adapted to the space unless set.
    pub(super) fn variation(&self) -> Variation {
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

    pub(super) fn breed(&mut self) {
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
    pub(super) fn cross_and_mutate(
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
    pub(super) fn live_mutable(&mut self, x: &[f64], on: &[bool]) -> Vec<usize> {
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
    pub(super) fn tournament(&mut self, k: usize) -> usize {
        let i = self.state.rng.random_range(0..k);
        let j = self.state.rng.random_range(0..k);
        i.min(j)
    }
}
