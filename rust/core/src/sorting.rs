//! Non-dominated sorting and crowding distance (minimization).
//!
//! Points are sorted lexicographically once; each point then joins the first front that does not
//! dominate it, found by binary search over fronts (a front dominating a point implies every
//! earlier front does too). Testing "does front k dominate q" is O(1) for 2 objectives (the
//! front's smallest f2), O(log n) for 3 (a staircase of the front's (f2, f3) projection) and a
//! scan of the front's members beyond. Total: O(N log N) for M=2, O(N log² N) for M=3.

use std::cmp::Ordering;
use std::collections::BTreeMap;

#[inline]
fn row(f: &[f64], m: usize, i: usize) -> &[f64] {
    &f[i * m..(i + 1) * m]
}

fn lex_cmp(a: &[f64], b: &[f64]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.total_cmp(y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

/// `f64` ordered by `total_cmp`, as a BTreeMap key.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The staircase of a front's (f2, f3) projection: f3 strictly decreases as f2 increases.
#[derive(Default)]
struct Staircase(BTreeMap<Key, f64>);

impl Staircase {
    /// Some member has f2 <= q2 and f3 <= q3.
    fn covers(&self, q2: f64, q3: f64) -> bool {
        self.0
            .range(..=Key(q2))
            .next_back()
            .is_some_and(|(_, &f3)| f3 <= q3)
    }

    fn insert(&mut self, q2: f64, q3: f64) {
        let doomed: Vec<Key> = self
            .0
            .range(Key(q2)..)
            .take_while(|(_, &f3)| f3 >= q3)
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            self.0.remove(&k);
        }
        self.0.insert(Key(q2), q3);
    }
}

enum Fronts {
    Two(Vec<f64>),
    Three(Vec<Staircase>),
    Many(Vec<Vec<usize>>),
}

impl Fronts {
    fn len(&self) -> usize {
        match self {
            Fronts::Two(v) => v.len(),
            Fronts::Three(v) => v.len(),
            Fronts::Many(v) => v.len(),
        }
    }

    fn dominates(&self, k: usize, f: &[f64], m: usize, q: usize) -> bool {
        let qr = row(f, m, q);
        match self {
            Fronts::Two(min_f2) => min_f2[k] <= qr[1],
            Fronts::Three(s) => s[k].covers(qr[1], qr[2]),
            Fronts::Many(members) => members[k]
                .iter()
                .rev()
                .any(|&p| row(f, m, p)[1..].iter().zip(&qr[1..]).all(|(a, b)| a <= b)),
        }
    }

    fn add(&mut self, k: usize, f: &[f64], m: usize, q: usize) {
        let qr = row(f, m, q);
        match self {
            Fronts::Two(v) => {
                if k == v.len() {
                    v.push(qr[1]);
                } else {
                    v[k] = qr[1];
                }
            }
            Fronts::Three(v) => {
                if k == v.len() {
                    v.push(Staircase::default());
                }
                v[k].insert(qr[1], qr[2]);
            }
            Fronts::Many(v) => {
                if k == v.len() {
                    v.push(Vec::new());
                }
                v[k].push(q);
            }
        }
    }
}

/// Non-domination rank (0 = best front) of each point of the row-major `(n, m)` matrix `f`.
/// All values must be finite. Identical points share a rank.
pub fn non_dominated_ranks(f: &[f64], m: usize) -> Vec<u32> {
    assert!(m >= 1 && f.len() % m == 0, "objective matrix shape");
    let n = f.len() / m;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| lex_cmp(row(f, m, a), row(f, m, b)).then(a.cmp(&b)));
    let mut ranks = vec![0u32; n];
    if m == 1 {
        let mut rank = 0u32;
        for w in 0..n {
            if w > 0 && f[order[w]] != f[order[w - 1]] {
                rank += 1;
            }
            ranks[order[w]] = rank;
        }
        return ranks;
    }
    let mut fronts = match m {
        2 => Fronts::Two(Vec::new()),
        3 => Fronts::Three(Vec::new()),
        _ => Fronts::Many(Vec::new()),
    };
    let mut prev: Option<usize> = None;
    for &q in &order {
        if let Some(p) = prev {
            if row(f, m, p) == row(f, m, q) {
                ranks[q] = ranks[p];
                continue;
            }
        }
        let (mut lo, mut hi) = (0usize, fronts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if fronts.dominates(mid, f, m, q) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        fronts.add(lo, f, m, q);
        ranks[q] = lo as u32;
        prev = Some(q);
    }
    ranks
}

/// Groups point indices by rank: `fronts[r]` lists the points of rank `r` in index order.
pub fn fronts_from_ranks(ranks: &[u32]) -> Vec<Vec<usize>> {
    let n_fronts = ranks.iter().max().map_or(0, |&r| r as usize + 1);
    let mut fronts = vec![Vec::new(); n_fronts];
    for (i, &r) in ranks.iter().enumerate() {
        fronts[r as usize].push(i);
    }
    fronts
}

/// Crowding distance of the points `front` (indices into `f`), in the same order.
/// Boundary points get infinity.
pub fn crowding_distance(f: &[f64], m: usize, front: &[usize]) -> Vec<f64> {
    let k = front.len();
    let mut dist = vec![0.0; k];
    if k <= 2 {
        dist.iter_mut().for_each(|d| *d = f64::INFINITY);
        return dist;
    }
    let mut order: Vec<usize> = (0..k).collect();
    for j in 0..m {
        let val = |a: usize| f[front[a] * m + j];
        order.sort_unstable_by(|&a, &b| val(a).total_cmp(&val(b)).then(a.cmp(&b)));
        let (lo, hi) = (val(order[0]), val(order[k - 1]));
        dist[order[0]] = f64::INFINITY;
        dist[order[k - 1]] = f64::INFINITY;
        let span = hi - lo;
        if span <= 0.0 {
            continue;
        }
        for w in 1..k - 1 {
            dist[order[w]] += (val(order[w + 1]) - val(order[w - 1])) / span;
        }
    }
    dist
}

/// Whether `a` dominates `b` (minimization).
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            strictly = true;
        }
    }
    strictly
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: peel fronts by brute force.
    fn brute_force(f: &[f64], m: usize) -> Vec<u32> {
        let n = f.len() / m;
        let mut ranks = vec![u32::MAX; n];
        let mut rank = 0;
        while ranks.contains(&u32::MAX) {
            let current: Vec<usize> = (0..n)
                .filter(|&i| ranks[i] == u32::MAX)
                .filter(|&i| {
                    !(0..n).any(|j| ranks[j] == u32::MAX && dominates(row(f, m, j), row(f, m, i)))
                })
                .collect();
            for i in current {
                ranks[i] = rank;
            }
            rank += 1;
        }
        ranks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn ranks_match_brute_force(m in 1usize..6, n in 1usize..60, grid in 2u8..8, seed in any::<u64>()) {
            // Small integer grids force ties and duplicates.
            let mut s = seed;
            let f: Vec<f64> = (0..n * m).map(|_| { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((s >> 33) % grid as u64) as f64 }).collect();
            prop_assert_eq!(non_dominated_ranks(&f, m), brute_force(&f, m));
        }

        #[test]
        fn ranks_match_brute_force_continuous(m in 2usize..5, f in proptest::collection::vec(-1e3f64..1e3, 3..120)) {
            let n = f.len() / m;
            let f = &f[..n * m];
            prop_assert_eq!(non_dominated_ranks(f, m), brute_force(f, m));
        }
    }

    #[test]
    fn crowding_marks_boundaries() {
        let f = [0.0, 3.0, 1.0, 2.0, 2.0, 1.0, 3.0, 0.0];
        let d = crowding_distance(&f, 2, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!((d[1] - 4.0 / 3.0).abs() < 1e-12);
    }
}
