//! The AVX2 + FMA scan kernel (x86-64): eight seeds a vector, every table load shared by the
//! blocks of one call.

use super::{Lanes, Scratch};
use crate::search::{FLAG_GROUP, NB, RBUF, TILE, Tables};
use std::arch::x86_64::*;

/// Vectors of m per correlation step: NB·MV independent accumulators fill the pipelines
/// without spilling.
const MV: usize = 8 / NB;

/// Scores of one tile for the first `B` (≤ `NB`) blocks with AVX2+FMA, eight seeds a vector;
/// every table load serves all `B` blocks. Returns per block whether any score exceeds its
/// threshold. `C` fixes the block size at compile time; 0 means "use `c`".
///
/// # Safety
/// The CPU must support AVX2 and FMA, `c` must be the config's C, and `t0 + TILE` must not
/// exceed the tables' padded length.
#[target_feature(enable = "avx2,fma")]
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
    // SAFETY (whole body): every pointer offset stays below the bound asserted above.
    unsafe {
        let xb = t.x.as_ptr().add(t0 + 1);
        // Correlations r_b[m] = Σ_i w_b[i] · x[m + i·P].
        let mut m = 0;
        while m < RBUF {
            let mut acc = [[_mm256_setzero_ps(); MV]; B];
            for i in 0..c {
                let xi = xb.add(m + i * P);
                let xv: [__m256; MV] = std::array::from_fn(|v| _mm256_loadu_ps(xi.add(8 * v)));
                for (a, w) in acc.iter_mut().zip(&lanes.w) {
                    let wv = _mm256_broadcast_ss(&w[i]);
                    for (av, x) in a.iter_mut().zip(&xv) {
                        *av = _mm256_fmadd_ps(wv, *x, *av);
                    }
                }
            }
            store(scratch, m, &acc);
            m += 8 * MV;
        }
        scores::<P, B>(t, t0, thr, scratch)
    }
}

/// As [`tile_scores`], but the correlation runs exactly in integers: int16 centred states
/// times int16 fixed-point weights, two products per `vpmaddwd` lane, summed in int32 (no
/// overflow by the choice of the weights' shift), then converted to floats as they are: the
/// integer unit is folded into the L⁻¹ tables.
///
/// # Safety
/// As [`tile_scores`]; the tables must have `pairs`.
#[target_feature(enable = "avx2,fma")]
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
    // SAFETY (whole body): every pointer offset stays below the bound asserted above.
    unsafe {
        let tp = pairs.as_ptr().add(t0 + 1);
        let mut m = 0;
        while m < RBUF {
            let mut acc = [[_mm256_setzero_si256(); MV]; B];
            for k in 0..c.div_ceil(2) {
                // Pair k holds states m + 2kP and m + (2k+1)P.
                let xp = tp.add(m + 2 * k * P);
                let xv: [__m256i; MV] =
                    std::array::from_fn(|v| _mm256_loadu_si256(xp.add(8 * v).cast::<__m256i>()));
                for (a, wp) in acc.iter_mut().zip(&lanes.pairs) {
                    let wv = _mm256_set1_epi32(wp[k]);
                    for (av, x) in a.iter_mut().zip(&xv) {
                        *av = _mm256_add_epi32(*av, _mm256_madd_epi16(*x, wv));
                    }
                }
            }
            // Plain loops, not `array::map`: the inliner sometimes leaves `map` (which has no
            // AVX2 of its own) out of line, which halved the whole search's speed.
            let mut sums = [[_mm256_setzero_ps(); MV]; B];
            for (s, a) in sums.iter_mut().zip(&acc) {
                for (x, v) in s.iter_mut().zip(a) {
                    *x = _mm256_cvtepi32_ps(*v);
                }
            }
            store(scratch, m, &sums);
            m += 8 * MV;
        }
        scores::<P, B>(t, t0, thr, scratch)
    }
}

/// `above_words` (in `search::topk`) with AVX2: four compares packed into one byte mask per 32 seeds.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn above_words(scores: &[f32; TILE], thr: f32) -> [u64; TILE / 64] {
    const _: () = assert!(TILE.is_multiple_of(64));
    let t = _mm256_set1_ps(thr);
    // The packs interleave 128-bit lanes; this puts each vector's 8 bytes back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mask32 = |base: usize| {
        // SAFETY: base + 32 ≤ TILE, so the four loads stay inside `scores`.
        let c: [__m256i; 4] = std::array::from_fn(|v| unsafe {
            let x = _mm256_loadu_ps(scores.as_ptr().add(base + 8 * v));
            _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(x, t))
        });
        let words = _mm256_packs_epi32(c[0], c[1]);
        let words2 = _mm256_packs_epi32(c[2], c[3]);
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words, words2), order);
        u64::from(_mm256_movemask_epi8(bytes) as u32)
    };
    std::array::from_fn(|w| mask32(64 * w) | (mask32(64 * w + 32) << 32))
}

/// Stores the correlation vectors of step `m` for the first `B` blocks.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store<const B: usize>(scratch: &mut Scratch, m: usize, acc: &[[__m256; MV]; B]) {
    for (a, r) in acc.iter().zip(scratch.r.iter_mut()) {
        for (v, av) in a.iter().enumerate() {
            // SAFETY: m + 8·MV ≤ RBUF, the length of r.
            unsafe { _mm256_storeu_ps(r.as_mut_ptr().add(m + 8 * v), *av) };
        }
    }
}

/// Scores |L⁻¹ b|² from the correlations in `scratch.r` (b_j = r[m + j]) of the first `B`
/// blocks; per block, whether any score exceeds its threshold.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores<const P: usize, const B: usize>(
    t: &Tables,
    t0: usize,
    thr: &[f32; NB],
    scratch: &mut Scratch,
) -> [bool; NB] {
    debug_assert!(t0 + TILE <= t.n_pad);
    // SAFETY (whole body): seed indices stay below t0 + TILE ≤ n_pad, correlations below
    // TILE + P ≤ RBUF.
    unsafe {
        let lp = t.linv.as_ptr().add(t0);
        let np = t.n_pad;
        let mut best = [_mm256_set1_ps(f32::NEG_INFINITY); B];
        let mut m = 0;
        while m < TILE {
            let mut l = [[_mm256_setzero_ps(); P]; P];
            let mut e = 0;
            for (j, row) in l.iter_mut().enumerate() {
                for v in row.iter_mut().take(j + 1) {
                    *v = _mm256_loadu_ps(lp.add(e * np + m));
                    e += 1;
                }
            }
            for (b, best) in best.iter_mut().enumerate() {
                let rp = scratch.r[b].as_ptr().add(m);
                let bv: [__m256; P] = std::array::from_fn(|j| _mm256_loadu_ps(rp.add(j)));
                let y: [__m256; P] = std::array::from_fn(|j| {
                    let row = &l[j];
                    (1..=j).fold(_mm256_mul_ps(row[0], bv[0]), |y, k| {
                        _mm256_fmadd_ps(row[k], bv[k], y)
                    })
                });
                let s = y[1..].iter().fold(_mm256_mul_ps(y[0], y[0]), |s, &yj| {
                    _mm256_fmadd_ps(yj, yj, s)
                });
                _mm256_storeu_ps(scratch.scores[b].as_mut_ptr().add(m), s);
                *best = _mm256_max_ps(*best, s);
            }
            m += 8;
        }
        std::array::from_fn(|b| {
            b < B && {
                let above = _mm256_cmp_ps::<_CMP_GT_OQ>(best[b], _mm256_set1_ps(thr[b]));
                _mm256_movemask_ps(above) != 0
            }
        })
    }
}

/// [`super::portable::flagged_group`] with AVX2, eight seeds a vector: the same products and
/// sums in the same order (no fused multiply-adds), so the same scores bit for bit.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn flagged_group<const P: usize>(fq: &[f32], w: &[f32]) -> [f32; FLAG_GROUP] {
    const V: usize = FLAG_GROUP / 8;
    assert!(fq.len() >= w.len() * P * FLAG_GROUP);
    let mut y = [[_mm256_setzero_ps(); V]; P];
    // SAFETY: the assert bounds every load; the stores write `out`.
    unsafe {
        for (i, &wi) in w.iter().enumerate() {
            let wv = _mm256_set1_ps(wi);
            for (j, yj) in y.iter_mut().enumerate() {
                let col = fq.as_ptr().add((i * P + j) * FLAG_GROUP);
                for (v, yv) in yj.iter_mut().enumerate() {
                    *yv = _mm256_add_ps(*yv, _mm256_mul_ps(_mm256_loadu_ps(col.add(8 * v)), wv));
                }
            }
        }
        let mut out = [0.0f32; FLAG_GROUP];
        for v in 0..V {
            let mut s = _mm256_mul_ps(y[0][v], y[0][v]);
            for yj in &y[1..] {
                s = _mm256_add_ps(s, _mm256_mul_ps(yj[v], yj[v]));
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), s);
        }
        out
    }
}
