//! AVX-512 (F, BW) kernels.

use super::lanes::LaneMatrix;
use super::record;
use crate::io::dtype::Dtype;
use std::arch::x86_64::*;

/// Sixteen stored values from `p` (f32, f16 or bf16) as f32 lanes.
#[inline(always)]
unsafe fn load16(dtype: Dtype, p: *const u8) -> __m512 {
    unsafe {
        match dtype {
            Dtype::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)),
            Dtype::BF16 => _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i)),
                16,
            )),
            _ => _mm512_loadu_ps(p as *const f32),
        }
    }
}

/// Dot product of one stored row with `x`.
///
/// # Safety
/// The CPU must have AVX-512 F and BW; `row` holds `x.len()` values of `dtype`.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
pub(super) unsafe fn dense_dot(dtype: Dtype, row: &[u8], x: &[f32]) -> f32 {
    let size = dtype.bitsize() / 8;
    let n = x.len();
    let whole = n / 64 * 64;
    let (w, xp) = (row.as_ptr(), x.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    unsafe {
        for i in (0..whole).step_by(64) {
            for (u, a) in acc.iter_mut().enumerate() {
                let at = i + 16 * u;
                *a = _mm512_fmadd_ps(
                    load16(dtype, w.add(at * size)),
                    _mm512_loadu_ps(xp.add(at)),
                    *a,
                );
            }
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
            + super::portable::dense_dot(dtype, &row[whole * size..], &x[whole..])
    }
}

/// Row `r` of a lane-layout packed matrix against the activation expanded for each row offset
/// (`xdups`, [`LaneMatrix::expand`]).
///
/// # Safety
/// The CPU must have AVX-512 F and BW and BMI2; `xdups` is [`LaneMatrix::expand`]'s output for
/// the matrix's rows.
#[target_feature(enable = "avx512f,avx512bw,bmi2")]
pub(super) unsafe fn lane_row(m: &LaneMatrix, r: usize, xdups: &[Vec<f32>]) -> f32 {
    let lanes = m.table.lanes;
    let (chunks, l32) = (lanes / 32, lanes / 2);
    let t0 = m.table.rows.as_ptr();
    let two = m.k > 8;
    let kmask = (1u64 << m.k) - 1;
    let (first, blocks, offset) = m.span(r);
    let xdup = &xdups[offset];
    debug_assert!(xdup.len() >= blocks * l32);
    unsafe {
        let t1 = t0.add(if two { 256 * lanes } else { 0 });
        let mut acc = [_mm512_setzero_ps(); 2];
        for j in 0..blocks {
            let rec = record(m.records, first + j, m.bits);
            let seed = (rec & kmask) as usize;
            let e = ((rec >> m.k) & 15) as usize;
            let (lo, hi) = m.q_pattern(rec >> (m.k + 4));
            let q = _mm_set_epi64x(hi as i64, lo as i64);
            let q = _mm512_broadcast_i32x4(_mm_srai_epi16(_mm_slli_epi16(q, 12), 12));
            let s = _mm512_set1_ps(*m.scales.get_unchecked(e));
            let b0 = t0.add((seed & 0xff) * lanes);
            let b1 = t1.add(((seed >> 8) & 0xff) * lanes);
            let xd = xdup.as_ptr().add(j * l32);
            let a = &mut acc[j & 1];
            for ch in 0..chunks {
                let mut v = _mm512_loadu_si512(b0.add(ch * 32) as *const _);
                if two {
                    v = _mm512_xor_si512(v, _mm512_loadu_si512(b1.add(ch * 32) as *const _));
                }
                let prod = _mm512_cvtepi32_ps(_mm512_madd_epi16(v, q));
                let t = _mm512_mul_ps(prod, _mm512_loadu_ps(xd.add(ch * 16)));
                *a = _mm512_fmadd_ps(t, s, *a);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
    }
}
