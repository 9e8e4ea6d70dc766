//! AVX2 kernels (with FMA, F16C and BMI2).

use super::lanes::{BATCH, LaneMatrix, Lines, QuadControls};
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
    // SAFETY (all arms): as this function's.
    unsafe {
        if !m.table.pairs() {
            return rows_row(m, r, xdups);
        }
        // The menu's shapes as constants, so the per-block loops unroll.
        match (m.table.chunk / 16, m.table.lanes / m.table.chunk) {
            (1, 2) => pair_row::<1, 2>(m, r, xdups),
            (2, 2) => pair_row::<2, 2>(m, r, xdups),
            (2, 3) => pair_row::<2, 3>(m, r, xdups),
            _ => pair_row::<0, 0>(m, r, xdups),
        }
    }
}

/// The 16 lanes of a block's basis from lane `at`: the XOR of its rows `u` (byte pointers) in
/// the two per-byte tables.
///
/// # Safety
/// Both rows hold lanes `at … at + 15`, 32-byte aligned; the caller enables AVX2.
#[inline(always)]
unsafe fn basis(u: [*const u8; 2], at: usize) -> __m256i {
    unsafe {
        _mm256_xor_si256(
            _mm256_load_si256(u[0].add(at * 2) as *const __m256i),
            _mm256_load_si256(u[1].add(at * 2) as *const __m256i),
        )
    }
}

/// A pair-layout block's exact sums for its weights 8h … 8h + 7: chunk ch (of `chunks`, each
/// `chunk` lanes) of its basis (rows `u`) meets coefficient pair `q(ch)`.
///
/// # Safety
/// As [`basis`]'s for every lane read.
#[inline(always)]
unsafe fn pair_sums(
    u: [*const u8; 2],
    h: usize,
    (chunk, chunks): (usize, usize),
    q: impl Fn(usize) -> __m256i,
) -> __m256i {
    unsafe {
        let mut sum = _mm256_madd_epi16(basis(u, h * 16), q(0));
        for ch in 1..chunks {
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(basis(u, ch * chunk + h * 16), q(ch)));
        }
        sum
    }
}

/// What a batch of [`BATCH`] records decodes to, laid out for the per-block loop.
#[repr(C, align(32))]
struct Batch {
    /// Block i's rows in the first and second per-byte table, as byte offsets in the low and
    /// high 32 bits (one load for both).
    rows: [u64; BATCH],
    /// Block i's exponent code.
    e: [u64; BATCH],
    /// Block i's coefficient pattern: sign-extended coefficients 4h … 4h + 3 in the 16-bit
    /// lanes of `q[h][i]` (coefficient pair p is 32-bit lane p of the pattern).
    q: [[u64; BATCH]; 2],
}

/// Batches decoded before the block loop reads them: decoding one batch ahead inside the
/// block loop left AVX2's 16 vector registers short, and the accumulators went to the stack.
const SEGMENT: usize = 4;

/// Decodes batches of one row's records with vector instructions (four records a vector): the
/// constants that do not change along the row.
struct Decoder<'a> {
    records: &'a [u8],
    /// Byte of the first record of the row, and the controls of its bit.
    start: usize,
    shift0: usize,
    bits: usize,
    quads: &'a [QuadControls; 8],
    q_shuffle: [__m256i; 2],
    q_scale: [__m256i; 2],
    /// Whether a record has more than four coefficients.
    wide: bool,
    seed_masks: [__m256i; 2],
    k: __m128i,
    /// Bytes of one table row.
    stride: __m256i,
}

impl<'a> Decoder<'a> {
    #[inline]
    #[target_feature(enable = "avx2")]
    fn new(m: &'a LaneMatrix<'_>, first: usize) -> Self {
        let bits = m.bits as usize;
        let pos0 = first * bits;
        let cut = &m.table.q_cut;
        // SAFETY: each control is 32 bytes.
        let load = |v: *const u8| unsafe { _mm256_loadu_si256(v as *const __m256i) };
        let lo_mask = (1u64 << m.k.min(8)) - 1;
        let hi_mask = (1u64 << m.k.saturating_sub(8)) - 1;
        Decoder {
            records: m.records,
            start: pos0 / 8,
            shift0: pos0 % 8,
            bits,
            quads: &m.table.quads,
            q_shuffle: cut.shuffle.map(|c| load(c.as_ptr())),
            q_scale: cut.scale.map(|c| load(c.as_ptr() as *const u8)),
            wide: m.p2 == 8,
            seed_masks: [lo_mask, hi_mask].map(|v| _mm256_set1_epi64x(v as i64)),
            k: _mm_cvtsi32_si128(m.k as i32),
            stride: _mm256_set1_epi64x(m.table.lanes as i64 * 2),
        }
    }

    /// Decodes the row's batch `n` (its blocks 8n … 8n + 7) into `out`.
    ///
    /// # Safety
    /// The CPU must have AVX2: this is inlined into the kernel, which enables it.
    #[inline(always)]
    unsafe fn decode(&self, n: usize, out: &mut Batch) {
        let recs = self.records;
        let at = self.start + n * self.bits;
        // Eight records span at most 64 bytes with the windows' overreach; near the stream's
        // end they are read from a zero-padded copy (past its end the records are zeros, as
        // `record` reads them).
        let tail: [u8; 64];
        let window = match recs.get(at..at + 64) {
            Some(w) => w,
            None => {
                let have = recs.len().saturating_sub(at);
                let mut padded = [0u8; 64];
                padded[..have].copy_from_slice(&recs[recs.len() - have..]);
                tail = padded;
                &tail[..]
            }
        };
        // SAFETY: every load is within `window`'s 64 bytes (see `QuadControls`); the stores
        // write the fields of `out`.
        unsafe {
            let ahead = recs.as_ptr().wrapping_add(at + super::RECORD_PREFETCH);
            _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            let (mut byte, mut shift) = (0, self.shift0);
            for h in 0..2 {
                let c = &self.quads[shift];
                let w = window.as_ptr().add(byte);
                let pair = _mm256_inserti128_si256::<1>(
                    _mm256_castsi128_si256(_mm_loadu_si128(w as *const __m128i)),
                    _mm_loadu_si128(w.add(c.high_at) as *const __m128i),
                );
                let rec = _mm256_srlv_epi64(
                    _mm256_shuffle_epi8(pair, _mm256_loadu_si256(c.shuffle.as_ptr() as *const _)),
                    _mm256_loadu_si256(c.shift.as_ptr() as *const _),
                );
                let lo = _mm256_and_si256(rec, self.seed_masks[0]);
                let hi = _mm256_and_si256(_mm256_srli_epi64::<8>(rec), self.seed_masks[1]);
                _mm256_store_si256(
                    out.rows.as_mut_ptr().add(4 * h) as *mut __m256i,
                    _mm256_or_si256(
                        _mm256_mul_epu32(lo, self.stride),
                        _mm256_slli_epi64::<32>(_mm256_mul_epu32(hi, self.stride)),
                    ),
                );
                _mm256_store_si256(
                    out.e.as_mut_ptr().add(4 * h) as *mut __m256i,
                    _mm256_and_si256(_mm256_srl_epi64(rec, self.k), _mm256_set1_epi64x(15)),
                );
                for half in 0..1 + usize::from(self.wide) {
                    let q = _mm256_srai_epi16::<12>(_mm256_mullo_epi16(
                        _mm256_shuffle_epi8(rec, self.q_shuffle[half]),
                        self.q_scale[half],
                    ));
                    _mm256_store_si256(out.q[half].as_mut_ptr().add(4 * h) as *mut __m256i, q);
                }
                byte = c.next_at;
                shift = c.next_shift;
            }
        }
    }
}

/// [`lane_row`] in the pair layout, with `HALVES` 256-bit vectors of weights per chunk and
/// `CHUNKS` chunks (0: read from the table). Records are decoded eight at a time in vector
/// registers ([`Decoder`]): one at a time in scalar code took about 50 instructions a block.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pair_row<const HALVES: usize, const CHUNKS: usize>(
    m: &LaneMatrix,
    r: usize,
    xdups: &[Lines],
) -> f32 {
    let lanes = m.table.lanes;
    let chunk = if HALVES > 0 {
        16 * HALVES
    } else {
        m.table.chunk
    };
    let halves = chunk / 16;
    let chunks = if CHUNKS > 0 { CHUNKS } else { lanes / chunk };
    let l32 = m.x_lanes();
    let (first, blocks, offset) = m.span(r);
    let xdup = xdups[offset].as_slice::<f32>();
    debug_assert!(xdup.len() >= blocks.div_ceil(BATCH) * BATCH * l32);
    let dec = Decoder::new(m, first);
    let empty = || Batch {
        rows: [0; BATCH],
        e: [0; BATCH],
        q: [[0; BATCH]; 2],
    };
    let mut segment: [Batch; SEGMENT] = std::array::from_fn(|_| empty());
    let batches = blocks.div_ceil(BATCH);
    unsafe {
        let t0 = m.table.rows.as_slice::<i16>().as_ptr() as *const u8;
        // For K ≤ 8 the second table's rows are zeros.
        let t1 = t0.add(256 * lanes * 2);
        let mut acc = [_mm256_setzero_ps(); 2];
        for n in 0..batches {
            if n % SEGMENT == 0 {
                for (b, out) in segment.iter_mut().enumerate().take(batches - n) {
                    dec.decode(n + b, out);
                }
            }
            let cur = &segment[n % SEGMENT];
            // Whole batches: past the row's last block the expansion is zero.
            let xb = xdup.as_ptr().add(n * BATCH * l32);
            for i in 0..BATCH {
                let rows = cur.rows[i];
                let u = [t0.add(rows as u32 as usize), t1.add((rows >> 32) as usize)];
                // Coefficient pair ch, broadcast from the pattern in memory.
                let q = |ch: usize| {
                    let half = cur.q[ch / 2].as_ptr().add(i) as *const i32;
                    _mm256_set1_epi32(*half.add(ch % 2))
                };
                let xd = xb.add(i * l32);
                let mut t = _mm256_setzero_ps();
                for h in 0..halves {
                    let sum = pair_sums(u, h, (chunk, chunks), q);
                    let x = _mm256_load_ps(xd.add(h * 8));
                    t = if h == 0 {
                        _mm256_mul_ps(_mm256_cvtepi32_ps(sum), x)
                    } else {
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), x, t)
                    };
                }
                let s = _mm256_set1_ps(*m.scales.get_unchecked(cur.e[i] as usize));
                acc[i % 2] = _mm256_fmadd_ps(t, s, acc[i % 2]);
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }
}

/// Weights `start..start + out.len()` of a pair-layout packed matrix's flattened tensor: per
/// block and 8 weights, the chunks' products with the coefficient pairs added in 32-bit lanes
/// (as in [`lane_row`]), then multiplied by `unit[E]` in f64 and rounded to f32, as the AVX-512
/// decoder does (`unit` holds the 2^−(16−K) of the lanes' shift).
///
/// # Safety
/// The CPU must have AVX2 and BMI2; the matrix is in the pair layout.
#[target_feature(enable = "avx2,bmi2")]
pub(super) unsafe fn lane_decode(m: &LaneMatrix, start: usize, out: &mut [f32], unit: &[f64; 16]) {
    debug_assert!(m.table.pairs());
    let (c, lanes, chunk) = (m.c, m.table.lanes, m.table.chunk);
    let end = start + out.len();
    // One block's weights, padded to its chunk (at most 64 weights, 128 lanes).
    let mut vals = [0.0f32; 64];
    unsafe {
        for b in start / c..end.div_ceil(c) {
            let (u, e, q) = m.block(b);
            let q = q.as_ptr() as *const i32;
            let unit = _mm256_set1_pd(unit[e]);
            for h in 0..chunk / 16 {
                let sum = pair_sums(u, h, (chunk, lanes / chunk), |ch| {
                    _mm256_set1_epi32(*q.add(ch))
                });
                // Four weights at a time through f64, as the scalar decoder rounds.
                let four = |v: __m128i| _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(v), unit));
                let at = vals.as_mut_ptr().add(h * 8);
                _mm_storeu_ps(at, four(_mm256_castsi256_si128(sum)));
                _mm_storeu_ps(at.add(4), four(_mm256_extracti128_si256::<1>(sum)));
            }
            let (from, to) = (start.max(b * c) - b * c, end.min(b * c + c) - b * c);
            out[b * c + from - start..][..to - from].copy_from_slice(&vals[from..to]);
        }
    }
}

/// [`lane_row`] in the rows layout (which only an AVX-512 CPU's tables have).
#[inline]
#[target_feature(enable = "avx2,fma,bmi2")]
unsafe fn rows_row(m: &LaneMatrix, r: usize, xdups: &[Lines]) -> f32 {
    let l32 = m.x_lanes();
    let (first, blocks, offset) = m.span(r);
    let xdup = xdups[offset].as_slice::<f32>();
    debug_assert!(xdup.len() >= blocks * l32);
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2];
        for j in 0..blocks {
            let (u, e, q) = m.block(first + j);
            let q = _mm256_broadcastsi128_si256(_mm_set_epi64x(q[1] as i64, q[0] as i64));
            let s = _mm256_set1_ps(*m.scales.get_unchecked(e));
            let xd = xdup.as_ptr().add(j * l32);
            for h in 0..m.table.lanes / 16 {
                let t = _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_madd_epi16(basis(u, h * 16), q)),
                    _mm256_load_ps(xd.add(h * 8)),
                );
                acc[h & 1] = _mm256_fmadd_ps(t, s, acc[h & 1]);
            }
        }
        hsum(_mm256_add_ps(acc[0], acc[1]))
    }
}
