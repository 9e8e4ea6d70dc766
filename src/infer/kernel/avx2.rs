//! AVX2 kernels (with FMA, F16C and BMI2).

use super::lanes::{LaneMatrix, Lines};
use super::record;
use crate::io::dtype::Dtype;
use std::arch::x86_64::*;

/// Eight stored values from `p` (f32, f16 or bf16) as f32 lanes.
#[inline(always)]
unsafe fn load8(dtype: Dtype, p: *const u8) -> __m256 {
    unsafe {
        match dtype {
            Dtype::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
            Dtype::BF16 => _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
                16,
            )),
            _ => _mm256_loadu_ps(p as *const f32),
        }
    }
}

/// Sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
}

/// Dot product of one stored row with `x`.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `row` holds `x.len()` values of `dtype`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dense_dot(dtype: Dtype, row: &[u8], x: &[f32]) -> f32 {
    let size = dtype.bitsize() / 8;
    let n = x.len();
    let whole = n / 32 * 32;
    let (w, xp) = (row.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    unsafe {
        for i in (0..whole).step_by(32) {
            // Past the row's end this reads the next row, which the same task takes next.
            for line in (0..32 * size).step_by(64) {
                let ahead = w.wrapping_add(i * size + line + super::DENSE_PREFETCH);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
            for (u, a) in acc.iter_mut().enumerate() {
                let at = i + 8 * u;
                *a = _mm256_fmadd_ps(
                    load8(dtype, w.add(at * size)),
                    _mm256_loadu_ps(xp.add(at)),
                    *a,
                );
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(sum) + super::portable::dense_dot(dtype, &row[whole * size..], &x[whole..])
    }
}

/// Row `r` of a lane-layout packed matrix against the activation expanded for each row offset
/// (`xdups`, [`LaneMatrix::expand`]).
///
/// # Safety
/// The CPU must have AVX2, FMA and BMI2; `xdups` is [`LaneMatrix::expand`]'s output for
/// the matrix's rows.
#[target_feature(enable = "avx2,fma,bmi2")]
pub(super) unsafe fn lane_row(m: &LaneMatrix, r: usize, xdups: &[Lines]) -> f32 {
    let lanes = m.table.lanes;
    let l32 = m.x_lanes();
    // 256-bit halves of a block's lanes; in the pair layout, its chunks per eight weights.
    let (halves, chunks) = if m.table.pairs {
        (m.c.div_ceil(8), lanes / 32)
    } else {
        (lanes / 16, 1)
    };
    let t0 = m.table.rows.as_slice::<i16>().as_ptr();
    let two = m.k > 8;
    let kmask = (1u64 << m.k) - 1;
    let (first, blocks, offset) = m.span(r);
    let xdup = xdups[offset].as_slice::<f32>();
    debug_assert!(xdup.len() >= blocks * l32);
    unsafe {
        let t1 = t0.add(if two { 256 * lanes } else { 0 });
        let mut acc = [_mm256_setzero_ps(); 2];
        for j in 0..blocks {
            let rec = record(m.records, first + j, m.bits);
            let seed = (rec & kmask) as usize;
            let e = ((rec >> m.k) & 15) as usize;
            let (lo, hi) = m.q_pattern(rec >> (m.k + 4));
            let q = _mm_set_epi64x(hi as i64, lo as i64);
            let q = _mm256_broadcastsi128_si256(_mm_srai_epi16(_mm_slli_epi16(q, 12), 12));
            let s = _mm256_set1_ps(*m.scales.get_unchecked(e));
            let b0 = t0.add((seed & 0xff) * lanes);
            let b1 = t1.add(((seed >> 8) & 0xff) * lanes);
            let xd = xdup.as_ptr().add(j * l32);
            // The 16 lanes at `at`, XOR-ed across the two tables when K > 8.
            let basis = |at: usize| {
                let v = _mm256_loadu_si256(b0.add(at) as *const __m256i);
                if two {
                    _mm256_xor_si256(v, _mm256_loadu_si256(b1.add(at) as *const __m256i))
                } else {
                    v
                }
            };
            for h in 0..halves {
                let sum = if m.table.pairs {
                    // Chunk ch of weights 8h … 8h + 7 meets the pattern's 32-bit lane ch.
                    let mut sum = _mm256_setzero_si256();
                    for ch in 0..chunks {
                        let qc = _mm256_permutevar8x32_epi32(q, _mm256_set1_epi32(ch as i32));
                        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(basis(ch * 32 + h * 16), qc));
                    }
                    sum
                } else {
                    _mm256_madd_epi16(basis(h * 16), q)
                };
                let t = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(xd.add(h * 8)));
                acc[h & 1] = _mm256_fmadd_ps(t, s, acc[h & 1]);
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }
}
