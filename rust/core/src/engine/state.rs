//! Persistence: the whole engine state as bytes, and its validation on restore.

use super::pop::Pop;
use super::{Engine, State};
use crate::error::{Error, Result};
use crate::operators::Gene;
use crate::space::{GeneKind, Space};

/// Version 3 added constraints, prior evaluations and the constraint-rejection counters; 4 the
/// steady schedule's state.
pub(super) const STATE_MAGIC: &[u8; 8] = b"GTENG\x00\x00\x04";

impl Engine {
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
            || !consistent(&state.pending)
            || !consistent(&state.proposed)
            || state.proposed_screened.len() != state.proposed.len()
            || state.model_rows > state.archive.len()
        {
            return Err(Error::InvalidState(
                "corrupt engine state: inconsistent arrays".into(),
            ));
        }
        // A damaged gene would index past a choice's values later; refuse it here instead.
        let genes: Vec<Gene> = space.params.iter().map(Gene::from_param).collect();
        for pop in [
            &state.population,
            &state.batch,
            &state.archive,
            &state.pending,
            &state.proposed,
        ] {
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
