//! NSGA-III reference directions (Das–Dennis) and nearest-direction lookup.

/// Number of Das–Dennis points with `p` partitions in `m` dimensions: C(p+m-1, m-1).
pub fn das_dennis_count(m: usize, p: usize) -> u128 {
    let (n, k) = ((p + m - 1) as u128, (m - 1) as u128);
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) / (i + 1);
    }
    c
}

/// All points of the simplex `sum = 1` on the grid with `p` partitions, row-major `(count, m)`.
pub fn das_dennis(m: usize, p: usize) -> Vec<f64> {
    fn rec(m: usize, left: usize, p: usize, cur: &mut Vec<usize>, out: &mut Vec<f64>) {
        if cur.len() == m - 1 {
            cur.push(left);
            out.extend(cur.iter().map(|&c| c as f64 / p as f64));
            cur.pop();
            return;
        }
        for c in (0..=left).rev() {
            cur.push(c);
            rec(m, left - c, p, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if m == 1 {
        return vec![1.0];
    }
    rec(m, p, p.max(1), &mut Vec::with_capacity(m), &mut out);
    out
}

/// The reference directions NSGA-III uses for a population of `pool_size`: the largest
/// Das–Dennis set that fits, pulled half-way toward `weights` when given.
pub fn reference_directions(m: usize, pool_size: usize, weights: Option<&[f64]>) -> Vec<f64> {
    if m <= 1 {
        // One objective has one direction, however many partitions.
        return vec![1.0; m];
    }
    let mut p = 1;
    while das_dennis_count(m, p + 1) <= pool_size as u128 {
        p += 1;
    }
    let mut dirs = das_dennis(m, p);
    if let Some(w) = weights {
        let total: f64 = w.iter().sum();
        if total > 0.0 {
            for r in dirs.chunks_mut(m) {
                for (x, wi) in r.iter_mut().zip(w) {
                    *x = 0.5 * *x + 0.5 * wi / total;
                }
            }
        }
    }
    dirs
}

/// A k-d tree over unit vectors, for the nearest reference direction of many points.
pub struct KdTree {
    m: usize,
    points: Vec<f64>,
    /// Implicit tree: node `i` holds point `order[i]`, children in `[lo, i)` and `(i, hi)`.
    order: Vec<usize>,
    axes: Vec<usize>,
}

impl KdTree {
    pub fn new(points: Vec<f64>, m: usize) -> KdTree {
        let n = points.len() / m;
        let mut order: Vec<usize> = (0..n).collect();
        let mut axes = vec![0; n];
        Self::build(&points, m, &mut order, &mut axes, 0, n, 0);
        KdTree {
            m,
            points,
            order,
            axes,
        }
    }

    fn build(
        points: &[f64],
        m: usize,
        order: &mut [usize],
        axes: &mut [usize],
        lo: usize,
        hi: usize,
        depth: usize,
    ) {
        if hi <= lo {
            return;
        }
        let axis = depth % m;
        let mid = (lo + hi) / 2;
        order[lo..hi].select_nth_unstable_by(mid - lo, |&a, &b| {
            points[a * m + axis].total_cmp(&points[b * m + axis])
        });
        axes[mid] = axis;
        Self::build(points, m, order, axes, lo, mid, depth + 1);
        Self::build(points, m, order, axes, mid + 1, hi, depth + 1);
    }

    /// Index of the stored point nearest to `q` (Euclidean).
    pub fn nearest(&self, q: &[f64]) -> usize {
        let mut best = (f64::INFINITY, 0usize);
        self.search(q, 0, self.order.len(), &mut best);
        best.1
    }

    fn search(&self, q: &[f64], lo: usize, hi: usize, best: &mut (f64, usize)) {
        if hi <= lo {
            return;
        }
        let mid = (lo + hi) / 2;
        let idx = self.order[mid];
        let p = &self.points[idx * self.m..(idx + 1) * self.m];
        let d: f64 = p.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum();
        if d < best.0 || (d == best.0 && idx < best.1) {
            *best = (d, idx);
        }
        let axis = self.axes[mid];
        let diff = q[axis] - p[axis];
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid + 1, hi))
        } else {
            ((mid + 1, hi), (lo, mid))
        };
        self.search(q, near.0, near.1, best);
        if diff * diff <= best.0 {
            self.search(q, far.0, far.1, best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn das_dennis_counts_and_sums() {
        for m in 1..6 {
            for p in 1..8 {
                let d = das_dennis(m, p);
                assert_eq!(d.len() / m, das_dennis_count(m, p) as usize, "m={m} p={p}");
                for r in d.chunks(m) {
                    assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                    assert!(r.iter().all(|&x| x >= 0.0));
                }
            }
        }
        assert_eq!(das_dennis_count(3, 12), 91);
        assert_eq!(reference_directions(3, 100, None).len() / 3, 91);
        assert_eq!(reference_directions(2, 100, None).len() / 2, 100);
        assert_eq!(reference_directions(1, 100, None), vec![1.0]);
    }

    #[test]
    fn kdtree_matches_brute_force() {
        let pts = das_dennis(3, 9);
        let unit: Vec<f64> = pts
            .chunks(3)
            .flat_map(|r| {
                let n = r.iter().map(|x| x * x).sum::<f64>().sqrt();
                r.iter().map(move |x| x / n).collect::<Vec<_>>()
            })
            .collect();
        let tree = KdTree::new(unit.clone(), 3);
        let mut s = 12345u64;
        for _ in 0..500 {
            let q: Vec<f64> = (0..3)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 11) as f64 / (1u64 << 53) as f64
                })
                .collect();
            let brute = (0..unit.len() / 3)
                .min_by(|&a, &b| {
                    let da: f64 = unit[a * 3..a * 3 + 3]
                        .iter()
                        .zip(&q)
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum();
                    let db: f64 = unit[b * 3..b * 3 + 3]
                        .iter()
                        .zip(&q)
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum();
                    da.total_cmp(&db).then(a.cmp(&b))
                })
                .unwrap();
            assert_eq!(tree.nearest(&q), brute);
        }
    }
}
