//! The portable scan kernel: plain Rust for any CPU, vectorised as far as the compiler manages.

use super::{Lanes, Scratch};
use crate::search::{FLAG_GROUP, RBUF, TILE, Tables};

/// Portable scan for machines without AVX2/FMA: the vector kernels' arithmetic (the integer
/// correlation where the tables have it) for one block (`b` of `lanes`), left to the compiler
/// to vectorise.
pub(in crate::search) fn scalar_tile_scores(
    t: &Tables,
    p: usize,
    c: usize,
    lanes: &Lanes,
    b: usize,
    t0: usize,
    scratch: &mut Scratch,
) {
    let (r, out) = (&mut scratch.r[b], &mut scratch.scores[b]);
    // Loops run over seeds innermost, on contiguous rows, so the compiler can vectorise them
    // with whatever the target has (SSE2 on any x86-64, NEON on aarch64).
    match &t.pairs {
        Some(pairs) => {
            // vpmaddwd: two signed 16-bit products per 32-bit lane, wrapping sums. Integer sums
            // are exact, so the order of terms does not matter.
            let mut acc = [0i32; RBUF];
            for (k, &w) in lanes.pairs[b][..c.div_ceil(2)].iter().enumerate() {
                let (w_lo, w_hi) = (i32::from(w as i16), w >> 16);
                let xs = &pairs[t0 + 1 + 2 * k * p..][..RBUF];
                for (a, &x) in acc.iter_mut().zip(xs) {
                    let lo = i32::from(x as i16).wrapping_mul(w_lo);
                    *a = a.wrapping_add(lo.wrapping_add((x >> 16).wrapping_mul(w_hi)));
                }
            }
            for (rm, &a) in r.iter_mut().zip(&acc) {
                *rm = a as f32;
            }
        }
        None => {
            r.fill(0.0);
            for (i, &wi) in lanes.w[b][..c].iter().enumerate() {
                let xs = &t.x[t0 + 1 + i * p..][..RBUF];
                for (rm, &x) in r.iter_mut().zip(xs) {
                    *rm += wi * x;
                }
            }
        }
    }
    out.fill(0.0);
    let mut e = 0;
    for j in 0..p {
        let mut y = [0.0f32; TILE];
        for k in 0..=j {
            let l = &t.linv[e * t.n_pad + t0..][..TILE];
            for ((ym, &lm), &rm) in y.iter_mut().zip(l).zip(&r[k..k + TILE]) {
                *ym += lm * rm;
            }
            e += 1;
        }
        for (o, &ym) in out.iter_mut().zip(&y) {
            *o += ym * ym;
        }
    }
}

/// Scores ‖Qᵀw‖² of one group of [`FLAG_GROUP`] flagged seeds, whose orthonormal bases hold
/// entry (i, j) of seed l at `fq[(i·P + j)·FLAG_GROUP + l]` (the group's run of [`Tables`]' `fq`).
/// The AVX2 kernel's [`super::avx2::flagged_group`] adds in this order, without fused
/// multiply-adds, so that every kernel's scores are the same bit for bit.
pub(in crate::search) fn flagged_group<const P: usize>(fq: &[f32], w: &[f32]) -> [f32; FLAG_GROUP] {
    let mut y = [[0.0f32; FLAG_GROUP]; P];
    for (i, &wi) in w.iter().enumerate() {
        for (j, yj) in y.iter_mut().enumerate() {
            let col = &fq[(i * P + j) * FLAG_GROUP..][..FLAG_GROUP];
            for (yl, &q) in yj.iter_mut().zip(col) {
                *yl += q * wi;
            }
        }
    }
    std::array::from_fn(|l| y.iter().map(|yj| yj[l] * yj[l]).sum())
}
