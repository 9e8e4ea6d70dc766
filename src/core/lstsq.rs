//! Small dense least squares in f64 through the normal equations, for P ≤ 8 columns.
//!
//! `G = UᵀU` is factored by Cholesky. A column whose pivot vanishes (relative to its own norm) is
//! dependent on earlier ones: its coefficient is fixed at zero, which still gives a
//! least-squares solution.

// Index loops mirror the matrix notation of the algorithms.
#![allow(clippy::needless_range_loop)]

use crate::core::config::MAX_P;

/// Relative pivot below which a column counts as dependent.
const PIVOT_EPS: f64 = 1e-12;

/// Cholesky factor of a P×P Gram matrix, row-major lower triangle, with dependent columns
/// marked.
#[derive(Clone, Debug)]
pub struct Cholesky {
    p: usize,
    l: [[f64; MAX_P]; MAX_P],
    dependent: [bool; MAX_P],
}

impl Cholesky {
    /// Factors `UᵀU` of a row-major C×P matrix `u`.
    #[inline]
    pub fn of_columns(u: &[f64], c: usize, p: usize) -> Self {
        let mut g = [[0.0; MAX_P]; MAX_P];
        for i in 0..c {
            let row = &u[i * p..(i + 1) * p];
            for a in 0..p {
                for b in 0..=a {
                    g[a][b] += row[a] * row[b];
                }
            }
        }
        Self::factor(&g, p)
    }

    #[inline]
    fn factor(g: &[[f64; MAX_P]; MAX_P], p: usize) -> Self {
        let mut l = [[0.0; MAX_P]; MAX_P];
        let mut dependent = [false; MAX_P];
        for j in 0..p {
            let mut d = g[j][j];
            for k in 0..j {
                d -= l[j][k] * l[j][k];
            }
            if d <= PIVOT_EPS * g[j][j] || d <= 0.0 {
                dependent[j] = true;
                continue;
            }
            let ljj = d.sqrt();
            l[j][j] = ljj;
            for i in j + 1..p {
                let mut s = g[i][j];
                for k in 0..j {
                    s -= l[i][k] * l[j][k];
                }
                l[i][j] = s / ljj;
            }
        }
        Cholesky { p, l, dependent }
    }

    /// Whether any column was dependent.
    #[inline]
    pub fn is_rank_deficient(&self) -> bool {
        self.dependent[..self.p].iter().any(|&d| d)
    }

    /// The lower triangle of L⁻¹ (row-major, entries (j, k) for k ≤ j), or `None` when rank
    /// deficient. On the stack: the scan tables invert one factor per seed.
    #[inline]
    pub fn inverse_lower(&self) -> Option<LowerTriangle> {
        if self.is_rank_deficient() {
            return None;
        }
        let p = self.p;
        let mut inv = [[0.0; MAX_P]; MAX_P];
        for j in 0..p {
            inv[j][j] = 1.0 / self.l[j][j];
            for i in j + 1..p {
                let mut s = 0.0;
                for k in j..i {
                    s -= self.l[i][k] * inv[k][j];
                }
                inv[i][j] = s / self.l[i][i];
            }
        }
        let mut out = LowerTriangle {
            v: [0.0; MAX_P * (MAX_P + 1) / 2],
            len: p * (p + 1) / 2,
        };
        let entries = (0..p).flat_map(|j| (0..=j).map(move |k| (j, k)));
        for (o, (j, k)) in out.v.iter_mut().zip(entries) {
            *o = inv[j][k];
        }
        Some(out)
    }

    /// The lower triangle of L, row-major (entries (j, k) for k ≤ j), as [`Self::inverse_lower`]
    /// orders L⁻¹.
    #[inline]
    pub fn lower(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.p).flat_map(move |j| (0..=j).map(move |k| self.l[j][k]))
    }

    /// Frobenius norm of L, an upper bound on σ_max(U).
    #[inline]
    pub fn frobenius(&self) -> f64 {
        self.lower().map(|x| x * x).sum::<f64>().sqrt()
    }

    /// Solves `G t = b` (b = Uᵀw), with dependent columns' coefficients at zero.
    pub fn solve(&self, b: &[f64], t: &mut [f64]) {
        let p = self.p;
        let mut y = [0.0; MAX_P];
        for j in 0..p {
            if self.dependent[j] {
                continue;
            }
            let mut s = b[j];
            for k in 0..j {
                if !self.dependent[k] {
                    s -= self.l[j][k] * y[k];
                }
            }
            y[j] = s / self.l[j][j];
        }
        for j in (0..p).rev() {
            if self.dependent[j] {
                t[j] = 0.0;
                continue;
            }
            let mut s = y[j];
            for k in j + 1..p {
                if !self.dependent[k] {
                    s -= self.l[k][j] * t[k];
                }
            }
            t[j] = s / self.l[j][j];
        }
    }
}

/// The P(P+1)/2 entries of a lower triangle, row-major, read as a slice.
#[derive(Clone, Copy, Debug)]
pub struct LowerTriangle {
    v: [f64; MAX_P * (MAX_P + 1) / 2],
    len: usize,
}

impl std::ops::Deref for LowerTriangle {
    type Target = [f64];
    #[inline]
    fn deref(&self) -> &[f64] {
        &self.v[..self.len]
    }
}

/// Gram matrices factored together by [`factor_lanes`]: one AVX2 vector of f64.
pub const LANES: usize = 4;

/// `LANES` P×P values, entry `[a][b][lane]`.
pub type LaneMatrix<const P: usize> = [[[f64; LANES]; P]; P];

/// The Cholesky factors and their inverses of [`LANES`] Gram matrices, lower triangles.
pub struct LaneFactors<const P: usize> {
    /// L of each lane (meaningless in a rank-deficient lane).
    pub l: LaneMatrix<P>,
    /// L⁻¹ of each lane (meaningless in a rank-deficient lane).
    pub inv: LaneMatrix<P>,
    /// Whether a lane's matrix is rank deficient ([`Cholesky::is_rank_deficient`]).
    pub deficient: [bool; LANES],
}

/// [`Cholesky`]'s factor and [`Cholesky::inverse_lower`] of the lower triangles of `LANES` Gram
/// matrices at once, with the same operations in the same order per lane, so bit for bit the
/// same values: the scan tables factor 65 535 of them per weighting, and one at a time each
/// took some 800 cycles.
#[inline(always)]
pub fn factor_lanes<const P: usize>(g: &LaneMatrix<P>) -> LaneFactors<P> {
    let mut l = [[[0.0; LANES]; P]; P];
    let mut deficient = [false; LANES];
    for j in 0..P {
        let mut d = g[j][j];
        for k in 0..j {
            for t in 0..LANES {
                d[t] -= l[j][k][t] * l[j][k][t];
            }
        }
        let mut ljj = [0.0; LANES];
        for t in 0..LANES {
            // `|`, not `||`: both compare in one vector.
            let dependent = (d[t] <= PIVOT_EPS * g[j][j][t]) | (d[t] <= 0.0);
            deficient[t] |= dependent;
            // A deficient lane is discarded; 1 keeps its arithmetic finite.
            ljj[t] = (if dependent { 1.0 } else { d[t] }).sqrt();
        }
        l[j][j] = ljj;
        for i in j + 1..P {
            let mut s = g[i][j];
            for k in 0..j {
                for t in 0..LANES {
                    s[t] -= l[i][k][t] * l[j][k][t];
                }
            }
            for t in 0..LANES {
                l[i][j][t] = s[t] / ljj[t];
            }
        }
    }
    let mut inv = [[[0.0; LANES]; P]; P];
    for j in 0..P {
        for t in 0..LANES {
            inv[j][j][t] = 1.0 / l[j][j][t];
        }
        for i in j + 1..P {
            let mut s = [0.0; LANES];
            for k in j..i {
                for t in 0..LANES {
                    s[t] -= l[i][k][t] * inv[k][j][t];
                }
            }
            for t in 0..LANES {
                inv[i][j][t] = s[t] / l[i][i][t];
            }
        }
    }
    LaneFactors { l, inv, deficient }
}

/// Least-squares coefficients `t` minimising `‖w − U t‖²` for row-major C×P `u`.
pub fn solve(u: &[f64], w: &[f64], c: usize, p: usize, t: &mut [f64]) {
    let chol = Cholesky::of_columns(u, c, p);
    let mut b = [0.0; MAX_P];
    for i in 0..c {
        for j in 0..p {
            b[j] += u[i * p + j] * w[i];
        }
    }
    chol.solve(&b[..p], t);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn residual(u: &[f64], w: &[f64], c: usize, p: usize, t: &[f64]) -> f64 {
        (0..c)
            .map(|i| {
                let r = w[i] - (0..p).map(|j| u[i * p + j] * t[j]).sum::<f64>();
                r * r
            })
            .sum()
    }

    #[test]
    fn solves_exact_system() {
        // U = [[1,0],[0,1],[1,1]], w = U·[2,-1] exactly.
        let u = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let w = [2.0, -1.0, 1.0];
        let mut t = [0.0; 2];
        solve(&u, &w, 3, 2, &mut t);
        assert!((t[0] - 2.0).abs() < 1e-12 && (t[1] + 1.0).abs() < 1e-12);
    }

    #[test]
    fn residual_is_orthogonal_and_minimal() {
        let u = [1.0, 0.5, -0.3, 0.2, 0.7, -1.0, 0.1, 0.9];
        let w = [0.3, -1.2, 2.0, 0.4];
        let mut t = [0.0; 2];
        solve(&u, &w, 4, 2, &mut t);
        let r0 = residual(&u, &w, 4, 2, &t);
        for d in [[1e-3, 0.0], [0.0, 1e-3], [-1e-3, 1e-3]] {
            let tt = [t[0] + d[0], t[1] + d[1]];
            assert!(residual(&u, &w, 4, 2, &tt) > r0);
        }
    }

    /// Four Gram matrices factored at once must give each one's L, L⁻¹ and rank deficiency as
    /// the one-at-a-time Cholesky does, bit for bit, dependent columns included.
    #[test]
    fn lanes_factor_bit_for_bit_as_one_matrix_at_a_time() {
        const P: usize = 4;
        const C: usize = 6;
        for round in 0..200 {
            let mut g: LaneMatrix<P> = [[[0.0; LANES]; P]; P];
            let mut cols = Vec::new();
            for t in 0..LANES {
                let seed = (round * LANES + t) as u64;
                let mut u: Vec<f64> = crate::core::random::gaussian(C * P, 1.0, seed)
                    .into_iter()
                    .map(f64::from)
                    .collect();
                // Every few rounds a lane with a dependent column, or a repeated one.
                if (round + t) % 5 == 0 {
                    for i in 0..C {
                        u[i * P + 2] = 3.0 * u[i * P];
                    }
                }
                for i in 0..C {
                    for a in 0..P {
                        for b in 0..=a {
                            g[a][b][t] += u[i * P + a] * u[i * P + b];
                        }
                    }
                }
                cols.push(u);
            }
            let lanes = factor_lanes(&g);
            for (t, u) in cols.iter().enumerate() {
                let one = Cholesky::of_columns(u, C, P);
                assert_eq!(lanes.deficient[t], one.is_rank_deficient(), "round {round}");
                let Some(inv) = one.inverse_lower() else {
                    continue;
                };
                let tri = |m: &LaneMatrix<P>| -> Vec<u64> {
                    (0..P)
                        .flat_map(|j| (0..=j).map(move |k| m[j][k][t].to_bits()))
                        .collect()
                };
                let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
                assert_eq!(tri(&lanes.l), bits(one.lower().collect()), "round {round}");
                assert_eq!(tri(&lanes.inv), bits(inv.to_vec()), "round {round}");
            }
        }
    }

    #[test]
    fn dependent_column_gets_zero() {
        // Second column equals the first.
        let u = [1.0, 1.0, 2.0, 2.0, -1.0, -1.0];
        let w = [1.0, 2.0, 0.0];
        let mut t = [9.0; 2];
        solve(&u, &w, 3, 2, &mut t);
        assert_eq!(t[1], 0.0);
        assert!((t[0] - 5.0 / 6.0).abs() < 1e-12);
        assert!(Cholesky::of_columns(&u, 3, 2).is_rank_deficient());
    }
}
