//! The AVX-512 scan kernel (x86-64 with AVX-512 F, BW and VNNI): sixteen seeds a vector, the
//! integer correlation by `vpdpwssd`, and 32 registers so more accumulators share each table
//! load. Its arithmetic is the AVX2 kernel's lane for lane, so its scores are bit for bit the same.

use super::{Lanes, Scratch};
use crate::search::{NB, RBUF, TILE, Tables};
use std::arch::x86_64::*;

/// Vectors of m per correlation step: NB·MV independent accumulators (half the register file)
/// keep both vector ports busy without spilling.
const MV: usize = 16 / NB;
/// Correlation entries the full steps cover; the rest of RBUF takes single-vector steps.
const FULL: usize = RBUF / (16 * MV) * (16 * MV);

/// Scores of one tile for the first `B` (≤ `NB`) blocks, sixteen seeds a vector, the correlation
/// in f32 FMAs as in the AVX2 kernel. Returns per block whether any score exceeds its threshold.
/// `C` fixes the block size at compile time; 0 means "use `c`".
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI, `c` must be the config's C, and `t0 + TILE` must
/// not exceed the tables' padded length.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tile_scores<const P: usize, const C: usize, const B: usize>(
    t: &Tables,
    lanes: &Lanes,
    c: usize,
    t0: usize,
    thr: &[f32; NB],
    scratch: &mut Scratch,
) -> [bool; NB] {
    let c = if C > 0 { C } else { c };
    debug_assert!(t0 + 1 + RBUF + c * P <= t.x.len());
    // SAFETY: every offset stays below the bound asserted above.
    unsafe {
        let xb = t.x.as_ptr().add(t0 + 1);
        let mut m = 0;
        while m < FULL {
            correlate_f32::<P, B, MV>(xb, lanes, c, m, scratch);
            m += 16 * MV;
        }
        while m < RBUF {
            correlate_f32::<P, B, 1>(xb, lanes, c, m, scratch);
            m += 16;
        }
        scores::<P, B>(t, t0, thr, scratch)
    }
}

/// As [`tile_scores`], but the correlation runs exactly in integers, as in the AVX2 kernel:
/// `vpdpwssd` does its `vpmaddwd` and add in one instruction, with the weight pair broadcast
/// from memory.
///
/// # Safety
/// As [`tile_scores`]; the tables must have `pairs`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tile_scores_i16<const P: usize, const C: usize, const B: usize>(
    t: &Tables,
    lanes: &Lanes,
    c: usize,
    t0: usize,
    thr: &[f32; NB],
    scratch: &mut Scratch,
) -> [bool; NB] {
    let c = if C > 0 { C } else { c };
    let pairs = t.pairs.as_ref().expect("integer tables");
    debug_assert!(t0 + 1 + RBUF + c * P <= pairs.len());
    // SAFETY: every offset stays below the bound asserted above.
    unsafe {
        let tp = pairs.as_ptr().add(t0 + 1);
        let mut m = 0;
        while m < FULL {
            correlate_i16::<P, B, MV>(tp, lanes, c, m, scratch);
            m += 16 * MV;
        }
        while m < RBUF {
            correlate_i16::<P, B, 1>(tp, lanes, c, m, scratch);
            m += 16;
        }
        scores::<P, B>(t, t0, thr, scratch)
    }
}

/// Correlations r_b[m..m + 16V] = Σ_i w_b[i] · x[m + i·P] of the first `B` blocks, in f32.
///
/// # Safety
/// As [`tile_scores`], with `m + 16V ≤ RBUF`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn correlate_f32<const P: usize, const B: usize, const V: usize>(
    xb: *const f32,
    lanes: &Lanes,
    c: usize,
    m: usize,
    scratch: &mut Scratch,
) {
    // SAFETY: the caller keeps m + 16V ≤ RBUF, inside r and the extended tables.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; B];
        for i in 0..c {
            let xi = xb.add(m + i * P);
            let xv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(xi.add(16 * v)));
            for (a, w) in acc.iter_mut().zip(&lanes.w) {
                let wv = _mm512_set1_ps(w[i]);
                for (av, x) in a.iter_mut().zip(&xv) {
                    *av = _mm512_fmadd_ps(wv, *x, *av);
                }
            }
        }
        for (a, r) in acc.iter().zip(scratch.r.iter_mut()) {
            for (v, av) in a.iter().enumerate() {
                _mm512_storeu_ps(r.as_mut_ptr().add(m + 16 * v), *av);
            }
        }
    }
}

/// Correlations of the first `B` blocks exactly in int32 (see the AVX2 kernel), stored as f32.
///
/// # Safety
/// As [`tile_scores_i16`], with `m + 16V ≤ RBUF`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn correlate_i16<const P: usize, const B: usize, const V: usize>(
    tp: *const i32,
    lanes: &Lanes,
    c: usize,
    m: usize,
    scratch: &mut Scratch,
) {
    // SAFETY: the caller keeps m + 16V ≤ RBUF, inside r and the extended tables.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); V]; B];
        for k in 0..c.div_ceil(2) {
            // Pair k holds states m + 2kP and m + (2k+1)P.
            let xp = tp.add(m + 2 * k * P);
            let xv: [__m512i; V] =
                std::array::from_fn(|v| _mm512_loadu_si512(xp.add(16 * v).cast()));
            for (a, wp) in acc.iter_mut().zip(&lanes.pairs) {
                let wv = _mm512_set1_epi32(wp[k]);
                for (av, x) in a.iter_mut().zip(&xv) {
                    *av = dpwssd(*av, *x, wv);
                }
            }
        }
        // Plain loops, not `array::map`, for the inliner (see the AVX2 kernel).
        for (a, r) in acc.iter().zip(scratch.r.iter_mut()) {
            for (v, av) in a.iter().enumerate() {
                _mm512_storeu_ps(r.as_mut_ptr().add(m + 16 * v), _mm512_cvtepi32_ps(*av));
            }
        }
    }
}

/// `acc + vpmaddwd(x, w)` as one `vpdpwssd`. Written as the intrinsic, LLVM re-associates the
/// sums of a chain and splits most of them back into `vpmaddwd` + `vpaddd`, twice the
/// instructions; inline assembly keeps them fused.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
fn dpwssd(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
    let mut acc = acc;
    // SAFETY: the caller's CPU has AVX-512 VNNI (this function's target features); the
    // instruction touches only these three registers.
    unsafe {
        std::arch::asm!(
            "vpdpwssd {acc}, {x}, {w}",
            acc = inout(zmm_reg) acc,
            x = in(zmm_reg) x,
            w = in(zmm_reg) w,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Scores |L⁻¹ b|² from the correlations in `scratch.r` of the first `B` blocks, in the AVX2
/// kernel's order of operations, and the masks of the scores above each block's threshold (one
/// compare per vector, in place of the running maximum); per block, whether any score exceeds it.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn scores<const P: usize, const B: usize>(
    t: &Tables,
    t0: usize,
    thr: &[f32; NB],
    scratch: &mut Scratch,
) -> [bool; NB] {
    const { assert!(TILE.is_multiple_of(16)) };
    debug_assert!(t0 + TILE <= t.n_pad);
    // SAFETY (whole body): seed indices stay below t0 + TILE ≤ n_pad, correlations below
    // TILE + P ≤ RBUF, mask halfwords below TILE / 16.
    unsafe {
        let lp = t.linv.as_ptr().add(t0);
        let np = t.n_pad;
        let thrv: [__m512; B] = std::array::from_fn(|b| _mm512_set1_ps(thr[b]));
        let mut any = [0u16; B];
        let mut m = 0;
        while m < TILE {
            let mut l = [[_mm512_setzero_ps(); P]; P];
            let mut e = 0;
            for (j, row) in l.iter_mut().enumerate() {
                for v in row.iter_mut().take(j + 1) {
                    *v = _mm512_loadu_ps(lp.add(e * np + m));
                    e += 1;
                }
            }
            for (b, any) in any.iter_mut().enumerate() {
                let rp = scratch.r[b].as_ptr().add(m);
                let bv: [__m512; P] = std::array::from_fn(|j| _mm512_loadu_ps(rp.add(j)));
                let y: [__m512; P] = std::array::from_fn(|j| {
                    let row = &l[j];
                    (1..=j).fold(_mm512_mul_ps(row[0], bv[0]), |y, k| {
                        _mm512_fmadd_ps(row[k], bv[k], y)
                    })
                });
                let s = y[1..].iter().fold(_mm512_mul_ps(y[0], y[0]), |s, &yj| {
                    _mm512_fmadd_ps(yj, yj, s)
                });
                _mm512_storeu_ps(scratch.scores[b].as_mut_ptr().add(m), s);
                let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, thrv[b]);
                // The 16 bits of seeds m.. in the little-endian words of `masks`.
                *scratch.masks[b].as_mut_ptr().cast::<u16>().add(m / 16) = above;
                *any |= above;
            }
            m += 16;
        }
        std::array::from_fn(|b| b < B && any[b] != 0)
    }
}

/// `above_words` (in `search::topk`) with AVX-512: one compare gives the mask of 16 seeds.
///
/// # Safety
/// The CPU must support AVX-512 F.
#[target_feature(enable = "avx512f")]
pub unsafe fn above_words(scores: &[f32; TILE], thr: f32) -> [u64; TILE / 64] {
    const _: () = assert!(TILE.is_multiple_of(64));
    let t = _mm512_set1_ps(thr);
    std::array::from_fn(|w| {
        (0..4).fold(0u64, |word, v| {
            // SAFETY: 64·w + 16·v + 16 ≤ TILE, so the load stays inside `scores`.
            let x = unsafe { _mm512_loadu_ps(scores.as_ptr().add(64 * w + 16 * v)) };
            word | u64::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, t)) << (16 * v)
        })
    })
}
