//! Environmental selection: which of the merged parents + offspring survive, best first.
//!
//! Every function takes the merged objective matrix (row-major `(n, m)`, oriented so that lower
//! is better), a validity mask (invalid points lose to every valid one), stable ids for
//! tie-breaks, and returns the indices of the `n_survive` survivors in preference order (the
//! order the mating tournament uses).

use crate::refdirs::KdTree;
use crate::sorting::{crowding_distance, fronts_from_ranks, non_dominated_ranks};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Valid points grouped in fronts (indices into the merged set), then the invalid ones by id.
fn fronts_of(f: &[f64], m: usize, valid: &[bool], ids: &[u64]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let valid_idx: Vec<usize> = (0..valid.len()).filter(|&i| valid[i]).collect();
    let sub: Vec<f64> = valid_idx
        .iter()
        .flat_map(|&i| f[i * m..(i + 1) * m].iter().copied())
        .collect();
    let ranks = non_dominated_ranks(&sub, m);
    let fronts = fronts_from_ranks(&ranks)
        .into_iter()
        .map(|fr| fr.into_iter().map(|k| valid_idx[k]).collect())
        .collect();
    let mut invalid: Vec<usize> = (0..valid.len()).filter(|&i| !valid[i]).collect();
    invalid.sort_by_key(|&i| ids[i]);
    (fronts, invalid)
}

/// Elitist single-objective selection: valid first, then by score, then by id.
pub fn select_ga(f: &[f64], valid: &[bool], ids: &[u64], n_survive: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..valid.len()).collect();
    order.sort_by(|&a, &b| {
        valid[b]
            .cmp(&valid[a])
            .then(f[a].total_cmp(&f[b]))
            .then(ids[a].cmp(&ids[b]))
    });
    order.truncate(n_survive);
    order
}

/// NSGA-II: fronts, then crowding distance within the split front.
pub fn select_nsga2(
    f: &[f64],
    m: usize,
    valid: &[bool],
    ids: &[u64],
    n_survive: usize,
) -> Vec<usize> {
    let (fronts, invalid) = fronts_of(f, m, valid, ids);
    let mut out = Vec::with_capacity(n_survive);
    for front in fronts {
        if out.len() >= n_survive {
            break;
        }
        let cd = crowding_distance(f, m, &front);
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| {
            cd[b]
                .total_cmp(&cd[a])
                .then(ids[front[a]].cmp(&ids[front[b]]))
        });
        let take = (n_survive - out.len()).min(front.len());
        out.extend(order[..take].iter().map(|&k| front[k]));
    }
    out.extend(
        invalid
            .into_iter()
            .take(n_survive.saturating_sub(out.len())),
    );
    out
}

/// What NSGA-III carries from one generation to the next for its normalization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Nsga3Memory {
    pub ideal: Option<Vec<f64>>,
    pub worst: Option<Vec<f64>>,
    pub extremes: Option<Vec<f64>>,
}

/// NSGA-III's reference directions, prepared for association.
pub struct ReferenceSet {
    m: usize,
    unit: Vec<f64>,
    tree: KdTree,
}

impl ReferenceSet {
    pub fn new(dirs: &[f64], m: usize) -> ReferenceSet {
        let unit: Vec<f64> = dirs
            .chunks(m)
            .flat_map(|r| {
                let n = r.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
                r.iter().map(move |x| x / n).collect::<Vec<_>>()
            })
            .collect();
        ReferenceSet {
            m,
            tree: KdTree::new(unit.clone(), m),
            unit,
        }
    }

    pub fn len(&self) -> usize {
        self.unit.len() / self.m
    }

    pub fn is_empty(&self) -> bool {
        self.unit.is_empty()
    }

    /// The nearest direction (smallest perpendicular distance) of a normalized point, and that distance.
    fn associate(&self, p: &[f64]) -> (usize, f64) {
        let norm = p.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= 0.0 {
            let centre = vec![1.0 / (self.m as f64).sqrt(); self.m];
            return (self.tree.nearest(&centre), 0.0);
        }
        let q: Vec<f64> = p.iter().map(|x| x / norm).collect();
        let j = self.tree.nearest(&q);
        let dot: f64 = p
            .iter()
            .zip(&self.unit[j * self.m..(j + 1) * self.m])
            .map(|(a, b)| a * b)
            .sum();
        (j, (norm * norm - dot * dot).max(0.0).sqrt())
    }
}

fn extreme_points(points: &[f64], m: usize, ideal: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(m * m);
    for axis in 0..m {
        let asf = |r: &[f64]| {
            r.iter()
                .zip(ideal)
                .enumerate()
                .map(|(j, (x, z))| {
                    let d = x - z;
                    let d = if d < 1e-3 { 0.0 } else { d };
                    if j == axis {
                        d
                    } else {
                        d * 1e6
                    }
                })
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let best = points
            .chunks(m)
            .min_by(|a, b| asf(a).total_cmp(&asf(b)))
            .expect("non-empty");
        out.extend_from_slice(best);
    }
    out
}

/// Solves `a x = b` for a small dense system by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, m: usize) -> Option<Vec<f64>> {
    for col in 0..m {
        let piv =
            (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))?;
        if a[piv * m + col].abs() < 1e-12 {
            return None;
        }
        for k in 0..m {
            a.swap(col * m + k, piv * m + k);
        }
        b.swap(col, piv);
        for row in col + 1..m {
            let factor = a[row * m + col] / a[col * m + col];
            for k in col..m {
                a[row * m + k] -= factor * a[col * m + k];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; m];
    for row in (0..m).rev() {
        let s: f64 = (row + 1..m).map(|k| a[row * m + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * m + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

fn column_max(points: impl Iterator<Item = usize>, f: &[f64], m: usize) -> Vec<f64> {
    let mut out = vec![f64::NEG_INFINITY; m];
    for i in points {
        for j in 0..m {
            out[j] = out[j].max(f[i * m + j]);
        }
    }
    out
}

/// NSGA-III (Deb & Jain 2014): fronts, then hyperplane normalization, association with
/// reference directions and niche-preserving selection within the split front.
#[allow(clippy::too_many_arguments)]
pub fn select_nsga3<R: Rng + ?Sized>(
    f: &[f64],
    m: usize,
    valid: &[bool],
    ids: &[u64],
    n_survive: usize,
    refs: &ReferenceSet,
    memory: &mut Nsga3Memory,
    rng: &mut R,
) -> Vec<usize> {
    let (fronts, invalid) = fronts_of(f, m, valid, ids);
    let mut considered: Vec<usize> = Vec::new();
    let mut n_fronts = 0;
    for front in &fronts {
        if considered.len() >= n_survive {
            break;
        }
        considered.extend_from_slice(front);
        n_fronts += 1;
    }
    if considered.is_empty() {
        return invalid.into_iter().take(n_survive).collect();
    }

    // Normalization: ideal and worst over history, extremes by achievement scalarization.
    let all_valid = (0..valid.len()).filter(|&i| valid[i]);
    let mut ideal = memory
        .ideal
        .clone()
        .unwrap_or_else(|| vec![f64::INFINITY; m]);
    let mut worst = memory
        .worst
        .clone()
        .unwrap_or_else(|| vec![f64::NEG_INFINITY; m]);
    for i in all_valid.clone() {
        for j in 0..m {
            ideal[j] = ideal[j].min(f[i * m + j]);
            worst[j] = worst[j].max(f[i * m + j]);
        }
    }
    let mut candidates: Vec<f64> = memory.extremes.clone().unwrap_or_default();
    candidates.extend(
        fronts[0]
            .iter()
            .flat_map(|&i| f[i * m..(i + 1) * m].iter().copied()),
    );
    let extremes = extreme_points(&candidates, m, &ideal);
    let worst_of_front = column_max(fronts[0].iter().copied(), f, m);
    let worst_of_population = column_max(all_valid, f, m);
    let shifted: Vec<f64> = extremes
        .chunks(m)
        .flat_map(|r| r.iter().zip(&ideal).map(|(x, z)| x - z).collect::<Vec<_>>())
        .collect();
    let mut nadir = match solve(shifted, vec![1.0; m], m) {
        Some(plane) if plane.iter().all(|&p| 1.0 / p > 1e-6) => (0..m)
            .map(|j| (ideal[j] + 1.0 / plane[j]).min(worst[j]))
            .collect::<Vec<_>>(),
        _ => worst_of_front,
    };
    for j in 0..m {
        if nadir[j] - ideal[j] <= 1e-6 {
            nadir[j] = worst_of_population[j];
        }
    }
    *memory = Nsga3Memory {
        ideal: Some(ideal.clone()),
        worst: Some(worst),
        extremes: Some(extremes),
    };

    // Association of every considered point with its nearest reference direction.
    let denom: Vec<f64> = (0..m)
        .map(|j| {
            let d = nadir[j] - ideal[j];
            if d > 0.0 {
                d
            } else {
                1e-12
            }
        })
        .collect();
    let mut niche = vec![0usize; valid.len()];
    let mut dist = vec![0.0f64; valid.len()];
    let mut p = vec![0.0; m];
    for &i in &considered {
        for j in 0..m {
            p[j] = (f[i * m + j] - ideal[j]) / denom[j];
        }
        let (k, d) = refs.associate(&p);
        niche[i] = k;
        dist[i] = d;
    }

    let mut survivors: Vec<usize>;
    if considered.len() <= n_survive {
        survivors = considered;
    } else {
        let last = &fronts[n_fronts - 1];
        survivors = considered[..considered.len() - last.len()].to_vec();
        let mut count = vec![0usize; refs.len()];
        for &i in &survivors {
            count[niche[i]] += 1;
        }
        // Members of the split front per direction, each list shuffled once (random picks).
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); refs.len()];
        for &i in last {
            members[niche[i]].push(i);
        }
        let mut levels: std::collections::BTreeMap<usize, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (k, mem) in members.iter_mut().enumerate() {
            if !mem.is_empty() {
                mem.shuffle(rng);
                levels.entry(count[k]).or_default().push(k);
            }
        }
        let mut remaining = n_survive - survivors.len();
        while remaining > 0 {
            let (&level, _) = levels.iter().next().expect("split front has members left");
            let mut dirs = levels.remove(&level).unwrap_or_default();
            dirs.shuffle(rng);
            for k in dirs {
                if remaining == 0 {
                    break;
                }
                let mem = &mut members[k];
                let pick = if count[k] == 0 {
                    // An empty niche takes its closest member.
                    let (pos, _) = mem
                        .iter()
                        .enumerate()
                        .min_by(|a, b| dist[*a.1].total_cmp(&dist[*b.1]))
                        .expect("non-empty");
                    mem.swap_remove(pos)
                } else {
                    mem.pop().expect("non-empty")
                };
                survivors.push(pick);
                count[k] += 1;
                remaining -= 1;
                if !mem.is_empty() {
                    levels.entry(count[k]).or_default().push(k);
                }
            }
        }
    }
    let rank_of = {
        let mut r = vec![u32::MAX; valid.len()];
        for (k, fr) in fronts.iter().enumerate() {
            for &i in fr {
                r[i] = k as u32;
            }
        }
        r
    };
    survivors.sort_by(|&a, &b| {
        rank_of[a]
            .cmp(&rank_of[b])
            .then(dist[a].total_cmp(&dist[b]))
            .then(ids[a].cmp(&ids[b]))
    });
    survivors.extend(
        invalid
            .into_iter()
            .take(n_survive.saturating_sub(survivors.len())),
    );
    survivors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refdirs::reference_directions;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn invalid_points_lose() {
        let f = [1.0, 0.0, 5.0, 2.0];
        let valid = [true, false, true, true];
        let ids = [0, 1, 2, 3];
        assert_eq!(select_ga(&f, &valid, &ids, 3), vec![0, 3, 2]);
        let f2 = [1.0, 1.0, 0.0, 0.0, 2.0, 2.0];
        assert_eq!(
            select_nsga2(&f2, 2, &[true, false, true], &ids[..3], 2),
            vec![0, 2]
        );
    }

    #[test]
    fn nsga3_keeps_spread_on_a_linear_front() {
        // 40 points on f1 + f2 = 1, keep 10: they should cover the front, not cluster.
        let n = 40;
        let f: Vec<f64> = (0..n)
            .flat_map(|i| {
                let t = i as f64 / (n - 1) as f64;
                [t, 1.0 - t]
            })
            .collect();
        let valid = vec![true; n];
        let ids: Vec<u64> = (0..n as u64).collect();
        let refs = ReferenceSet::new(&reference_directions(2, 10, None), 2);
        let mut mem = Nsga3Memory::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let s = select_nsga3(&f, 2, &valid, &ids, 10, &refs, &mut mem, &mut rng);
        assert_eq!(s.len(), 10);
        let mut t: Vec<f64> = s.iter().map(|&i| f[i * 2]).collect();
        t.sort_by(f64::total_cmp);
        assert!(t[0] < 0.05 && t[9] > 0.95, "{t:?}");
        assert!(t.windows(2).all(|w| w[1] - w[0] < 0.2), "{t:?}");
    }
}
