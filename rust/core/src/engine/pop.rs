//! Individuals as parallel arrays, and the dedup set of every candidate ever proposed.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

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
pub(super) type SeenSet = HashSet<u128, BuildHasherDefault<PassThroughHasher>>;

/// Individuals as parallel arrays; genomes and objective rows are row-major.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Pop {
    pub(super) ids: Vec<u64>,
    pub(super) x: Vec<f64>,
    pub(super) on: Vec<bool>,
    /// Objectives oriented for minimization; meaningless where `valid` is false.
    pub(super) f: Vec<f64>,
    pub(super) valid: Vec<bool>,
}

impl Pop {
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn push(&mut self, id: u64, x: &[f64], on: &[bool], m: usize) {
        self.ids.push(id);
        self.x.extend_from_slice(x);
        self.on.extend_from_slice(on);
        self.f.extend(std::iter::repeat_n(f64::NAN, m));
        self.valid.push(false);
    }

    /// Empties the arrays, keeping their allocations.
    pub(super) fn clear(&mut self) {
        self.ids.clear();
        self.x.clear();
        self.on.clear();
        self.f.clear();
        self.valid.clear();
    }

    /// Appends individual `i` of `src`.
    pub(super) fn push_from(&mut self, src: &Pop, i: usize, n: usize, m: usize) {
        self.ids.push(src.ids[i]);
        self.x.extend_from_slice(&src.x[i * n..(i + 1) * n]);
        self.on.extend_from_slice(&src.on[i * n..(i + 1) * n]);
        self.f.extend_from_slice(&src.f[i * m..(i + 1) * m]);
        self.valid.push(src.valid[i]);
    }
}

/// Saves the dedup set in sorted order, so a state's bytes do not depend on the set's history
/// (a restored engine saves exactly the bytes it was restored from).
pub(super) mod sorted_keys {
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
