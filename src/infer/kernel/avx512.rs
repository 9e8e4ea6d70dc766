//! AVX-512 (F, BW) kernels.

use super::lanes::{BATCH, LaneMatrix, Lines};
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
            // Past the row's end this reads the next row, which the same task takes next.
            for line in (0..64 * size).step_by(64) {
                let ahead = w.wrapping_add(i * size + line + super::DENSE_PREFETCH);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
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

/// What a batch of [`BATCH`] records decodes to, laid out for the per-block loop.
#[repr(C, align(64))]
struct Batch {
    /// Coefficient patterns, sign-extended 4-bit values in 16-bit lanes. P2 ≤ 4: block i's
    /// 64-bit pattern at `q[i]`. P2 = 8: block i's 128-bit pattern at `q[2(i / 2) + 8(i & 1)]`
    /// (even blocks in the first half, odd in the second, as `vpunpck{l,h}qdq` leave them).
    q: [u64; 2 * BATCH],
    /// Block i's rows in the first and second per-byte table, as byte offsets: at `rows[2i]`
    /// and `rows[2i + 1]` (the second is row 0, all zeros, for K ≤ 8).
    rows: [u32; 2 * BATCH],
    /// Block i's scale (by its exponent code) at `scale[2i]`.
    scale: [f32; 2 * BATCH],
}

/// Row `r` of a lane-layout packed matrix against the activation expanded for each row offset
/// (`xdups`, [`LaneMatrix::expand`]).
///
/// Records are decoded eight at a time in vector registers: a byte permute puts each record in
/// its own 64-bit lane, and `vpmultishiftqb` cuts its fields out into bytes (decoding them one by
/// one in scalar code ran at less than half this speed, and shifts and masks at 0.86×).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VBMI and VNNI and BMI2; `xdups` is [`LaneMatrix::expand`]'s
/// output for the matrix's rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni,bmi2")]
pub(super) unsafe fn lane_row(m: &LaneMatrix, r: usize, xdups: &[Lines]) -> f32 {
    debug_assert!(
        !m.table.pairs() || m.table.chunk == 32,
        "a pair chunk is one vector"
    );
    // SAFETY (all arms): as this function's.
    unsafe {
        match (m.table.lanes / 32, m.p2 == 8, m.table.pairs()) {
            (1, false, false) => lane_row_chunks::<1, false, false>(m, r, xdups),
            (2, false, false) => lane_row_chunks::<2, false, false>(m, r, xdups),
            (3, false, false) => lane_row_chunks::<3, false, false>(m, r, xdups),
            (4, false, false) => lane_row_chunks::<4, false, false>(m, r, xdups),
            (_, false, false) => lane_row_chunks::<0, false, false>(m, r, xdups),
            (1, true, false) => lane_row_chunks::<1, true, false>(m, r, xdups),
            (2, true, false) => lane_row_chunks::<2, true, false>(m, r, xdups),
            (3, true, false) => lane_row_chunks::<3, true, false>(m, r, xdups),
            (4, true, false) => lane_row_chunks::<4, true, false>(m, r, xdups),
            (_, true, false) => lane_row_chunks::<0, true, false>(m, r, xdups),
            // Pairs: P ≥ 3, so two chunks or more; P ≤ 4 is not wide, P ≥ 5 is.
            (2, _, true) => lane_row_chunks::<2, false, true>(m, r, xdups),
            (3, _, true) => lane_row_chunks::<3, true, true>(m, r, xdups),
            (_, _, true) => lane_row_chunks::<4, true, true>(m, r, xdups),
        }
    }
}

/// Chunk `ch` of a block's basis: the XOR of its rows `u` in the two per-byte tables.
///
/// # Safety
/// Both rows hold `ch + 1` aligned 512-bit chunks; the caller enables AVX-512 F.
#[inline(always)]
unsafe fn basis_chunk(u: [*const u8; 2], ch: usize) -> __m512i {
    unsafe {
        _mm512_xor_si512(
            _mm512_load_si512(u[0].add(ch * 64) as *const _),
            _mm512_load_si512(u[1].add(ch * 64) as *const _),
        )
    }
}

/// A pair-layout block's exact sum per weight: chunk ch of its basis (rows `u`) meets
/// coefficients 2ch and 2ch + 1, the pattern's 32-bit lane `q(ch)`.
///
/// # Safety
/// As [`basis_chunk`]'s for `chunks` chunks; the caller enables AVX-512 BW and VNNI.
#[inline(always)]
unsafe fn pair_sums(u: [*const u8; 2], chunks: usize, q: impl Fn(usize) -> __m512i) -> __m512i {
    unsafe {
        let mut s = _mm512_madd_epi16(basis_chunk(u, 0), q(0));
        for ch in 1..chunks {
            s = _mm512_dpwssd_epi32(s, basis_chunk(u, ch), q(ch));
        }
        s
    }
}

/// Decoded batches kept at once.
const RING: usize = 4;
/// Batches between decoding a batch and reading it: a narrow load of a wide store still in the
/// store buffer waits for it (measured: 3.3 G weights/s reading one batch later, 4.6 two later).
const LAG: usize = 2;

/// Decodes batches of one row's records: the constants that do not change along the row.
struct Decoder<'a> {
    records: &'a [u8],
    /// Byte of the first record of the row.
    start: usize,
    bits: usize,
    /// See [`BatchControls`](super::lanes::BatchControls).
    gather: __m512i,
    seed_at: __m512i,
    seed_mask: __m512i,
    e_at: __m512i,
    q_at: [__m512i; 2],
    q_keep: [u64; 2],
    /// Bytes of one table row.
    stride: __m512i,
    scales: __m512,
}

impl<'a> Decoder<'a> {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(m: &LaneMatrix<'a>, first: usize) -> Self {
        let bits = m.bits as usize;
        let pos0 = first * bits;
        let c = &m.table.controls[pos0 % 8];
        // SAFETY: each control is a 64-byte array.
        let load = |v: &[u8; 64]| unsafe { _mm512_loadu_si512(v.as_ptr() as *const _) };
        Decoder {
            records: m.records,
            start: pos0 / 8,
            bits,
            gather: load(&c.gather),
            seed_at: load(&c.seed_at),
            seed_mask: load(&c.seed_mask),
            e_at: load(&c.e_at),
            q_at: [load(&c.q_at[0]), load(&c.q_at[1])],
            q_keep: c.q_keep,
            stride: _mm512_set1_epi32(m.table.lanes as i32 * 2),
            // SAFETY: `scales` is 16 f32.
            scales: unsafe { _mm512_loadu_ps(m.scales.as_ptr()) },
        }
    }

    /// Decodes the row's batch `n` (its blocks 8n … 8n + 7) into `out`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,bmi2")]
    fn decode<const WIDE: bool>(&self, n: usize, out: &mut Batch) {
        let recs = self.records;
        let at = self.start + n * self.bits;
        let have = recs.len().saturating_sub(at).min(64);
        // SAFETY: the mask limits the load to the stream (past its end the window reads zeros,
        // as `record` does); the stores write the 64-byte-aligned fields of `out`.
        unsafe {
            let ahead = recs.as_ptr().wrapping_add(at + super::RECORD_PREFETCH);
            _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            let window = _mm512_maskz_loadu_epi8(
                _bzhi_u64(u64::MAX, have as u32),
                recs.as_ptr().add(at.min(recs.len())) as *const i8,
            );
            // Lane i holds record i from its first byte; a field is 8 bits cut at its offset.
            let rec = _mm512_permutexvar_epi8(self.gather, window);
            let seeds = _mm512_and_si512(
                _mm512_multishift_epi64_epi8(self.seed_at, rec),
                self.seed_mask,
            );
            // Offsets, not seeds: a shift per block in the loop below cost 8 %.
            _mm512_store_si512(
                out.rows.as_mut_ptr() as *mut __m512i,
                _mm512_mullo_epi32(seeds, self.stride),
            );
            // `vpermps` reads only the low 4 bits of each index: the exponent code.
            let e = _mm512_multishift_epi64_epi8(self.e_at, rec);
            _mm512_store_ps(
                out.scale.as_mut_ptr(),
                _mm512_permutexvar_ps(e, self.scales),
            );
            let pattern = |h: usize| {
                _mm512_srai_epi16(
                    _mm512_maskz_multishift_epi64_epi8(self.q_keep[h], self.q_at[h], rec),
                    12,
                )
            };
            let qp = out.q.as_mut_ptr() as *mut __m512i;
            let a = pattern(0);
            if WIDE {
                let b = pattern(1);
                _mm512_store_si512(qp, _mm512_unpacklo_epi64(a, b));
                _mm512_store_si512(qp.add(1), _mm512_unpackhi_epi64(a, b));
            } else {
                _mm512_store_si512(qp, a);
            }
        }
    }
}

/// [`lane_row`] for blocks of `CH` 512-bit chunks (0: any number, read from the table), with
/// 128-bit coefficient patterns when `WIDE` (P2 = 8) and 64-bit ones otherwise, in the pair
/// layout when `PAIRS`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,avx512vnni,bmi2")]
unsafe fn lane_row_chunks<const CH: usize, const WIDE: bool, const PAIRS: bool>(
    m: &LaneMatrix,
    r: usize,
    xdups: &[Lines],
) -> f32 {
    let lanes = m.table.lanes;
    let chunks = if CH == 0 { lanes / 32 } else { CH };
    let stride = chunks * 64;
    let l32 = m.x_lanes();
    let (first, blocks, offset) = m.span(r);
    let xdup = xdups[offset].as_slice::<f32>();
    debug_assert!(xdup.len() >= blocks.div_ceil(BATCH) * BATCH * l32);
    let dec = Decoder::new(m, first);
    let empty = || Batch {
        q: [0; 2 * BATCH],
        rows: [0; 2 * BATCH],
        scale: [0.0; 2 * BATCH],
    };
    // Batch n + LAG is decoded while batch n runs (see [`LAG`]).
    let mut ring: [Batch; RING] = std::array::from_fn(|_| empty());
    let batches = blocks.div_ceil(BATCH);
    for (n, b) in ring.iter_mut().enumerate().take(batches.min(LAG)) {
        dec.decode::<WIDE>(n, b);
    }
    unsafe {
        let t0 = m.table.rows.as_slice::<i16>().as_ptr() as *const u8;
        let t1 = t0.add(256 * stride);
        let mut acc = [_mm512_setzero_ps(); 2];
        for n in 0..batches {
            if n + LAG < batches {
                dec.decode::<WIDE>(n + LAG, &mut ring[(n + LAG) % RING]);
            }
            let cur = &ring[n % RING];
            // Whole batches: past the row's last block the expansion is zero.
            let xb = xdup.as_ptr().add(n * BATCH * l32);
            for i in 0..BATCH {
                // Block i's coefficient pattern (see [`Batch::q`]).
                let qp = cur.q.as_ptr().add(if WIDE {
                    2 * (i / 2) + (i & 1) * BATCH
                } else {
                    i
                });
                let u = [
                    t0.add(cur.rows[2 * i] as usize),
                    t1.add(cur.rows[2 * i + 1] as usize),
                ];
                let xd = xb.add(i * l32);
                // The block's products with x, then its scale once: one multiply per block
                // rather than one per chunk.
                let t = if PAIRS {
                    let q = |ch: usize| _mm512_set1_epi32(*(qp as *const i32).add(ch));
                    _mm512_mul_ps(
                        _mm512_cvtepi32_ps(pair_sums(u, chunks, q)),
                        _mm512_load_ps(xd),
                    )
                } else {
                    let q = if WIDE {
                        _mm512_broadcast_i32x4(_mm_load_si128(qp as *const __m128i))
                    } else {
                        _mm512_set1_epi64(*qp as i64)
                    };
                    let prod =
                        |ch: usize| _mm512_cvtepi32_ps(_mm512_madd_epi16(basis_chunk(u, ch), q));
                    let mut t = _mm512_mul_ps(prod(0), _mm512_load_ps(xd));
                    for ch in 1..chunks {
                        t = _mm512_fmadd_ps(prod(ch), _mm512_load_ps(xd.add(ch * 16)), t);
                    }
                    t
                };
                acc[i & 1] = _mm512_fmadd_ps(t, _mm512_set1_ps(cur.scale[2 * i]), acc[i & 1]);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
    }
}

/// Weights `start..start + out.len()` of a lane-layout packed matrix's flattened tensor: per
/// block, the two table rows XOR-ed and multiplied by the coefficients (`vpmaddwd`, as in
/// [`lane_row`]), then each weight's 32-bit lanes added and multiplied by `unit[E]` in f64.
/// `unit` must already hold the 2^−(16−K) that the lanes' shift to the top of 16 bits adds.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI and BMI2.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,bmi2")]
pub(super) unsafe fn lane_decode(m: &LaneMatrix, start: usize, out: &mut [f32], unit: &[f64; 16]) {
    debug_assert!(
        !m.table.pairs() || m.table.chunk == 32,
        "a pair chunk is one vector"
    );
    let (c, lanes) = (m.c, m.table.lanes);
    let chunks = lanes / 32;
    // Chunks of 32-bit sums, and sums per weight: the pair layout adds its chunks into one.
    let (summed, group) = if m.table.pairs() {
        (1, 1)
    } else {
        (chunks, m.p2 / 2)
    };
    let end = start + out.len();
    let mut sums = [_mm512_setzero_si512(); MAX_CHUNKS];
    let mut vals = [0.0f32; MAX_CHUNKS * 16];
    unsafe {
        for b in start / c..end.div_ceil(c) {
            let (u, e, q) = m.block(b);
            let q = _mm512_broadcast_i32x4(_mm_set_epi64x(q[1] as i64, q[0] as i64));
            if m.table.pairs() {
                let lane = |ch: usize| _mm512_permutexvar_epi32(_mm512_set1_epi32(ch as i32), q);
                sums[0] = pair_sums(u, chunks, lane);
            } else {
                for (ch, sum) in sums.iter_mut().enumerate().take(chunks) {
                    *sum = _mm512_madd_epi16(basis_chunk(u, ch), q);
                }
            }
            let (from, to) = (start.max(b * c) - b * c, end.min(b * c + c) - b * c);
            let dst = &mut out[b * c + from - start..][..to - from];
            let u = _mm512_set1_pd(unit[e]);
            // Eight weights' 32-bit sums to f32 through f64, as the scalar decoder rounds.
            let eight = |v: __m256i, at: usize, vals: &mut [f32; MAX_CHUNKS * 16]| {
                let w = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(v), u));
                _mm256_storeu_ps(vals.as_mut_ptr().add(at), w);
            };
            match group {
                1 => {
                    for (ch, &t) in sums.iter().enumerate().take(summed) {
                        eight(_mm512_castsi512_si256(t), ch * 16, &mut vals);
                        eight(_mm512_extracti64x4_epi64::<1>(t), ch * 16 + 8, &mut vals);
                    }
                }
                2 => {
                    for (ch, &t) in sums.iter().enumerate().take(summed) {
                        // Each 64-bit lane's two halves added, then its low half kept.
                        let pair = _mm512_add_epi32(t, _mm512_srli_epi64::<32>(t));
                        eight(_mm512_cvtepi64_epi32(pair), ch * 8, &mut vals);
                    }
                }
                _ => {
                    let a: &[i32] =
                        std::slice::from_raw_parts(sums.as_ptr() as *const i32, summed * 16);
                    for (v, w) in vals.iter_mut().zip(a.chunks_exact(group)).take(c) {
                        *v = (f64::from(w.iter().sum::<i32>()) * unit[e]) as f32;
                    }
                }
            }
            dst.copy_from_slice(&vals[from..to]);
        }
    }
}

/// 512-bit chunks of the widest block (C = 64, P = 8: 512 lanes).
const MAX_CHUNKS: usize = 16;
