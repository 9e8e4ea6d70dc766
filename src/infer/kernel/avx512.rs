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
    /// Each block's coefficient pattern (16 bytes): even blocks in the first half, odd blocks in
    /// the second, as `vpunpck{l,h}bw` leave them.
    q: [[i16; 8]; BATCH],
    /// Byte offsets of each block's rows in the first and second per-byte table.
    rows: [[u64; BATCH]; 2],
    /// Each block's scale (by its exponent code).
    scale: [f32; BATCH],
}

/// Row `r` of a lane-layout packed matrix against the activation expanded for each row offset
/// (`xdups`, [`LaneMatrix::expand`]).
///
/// Records are decoded eight at a time in vector registers (a byte permute puts each record in
/// its own 64-bit lane), so the per-block loop is loads and five vector operations (decoding
/// them one by one in scalar code ran at less than half this speed).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VBMI and BMI2; `xdups` is [`LaneMatrix::expand`]'s
/// output for the matrix's rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,bmi2")]
pub(super) unsafe fn lane_row(m: &LaneMatrix, r: usize, xdups: &[Lines]) -> f32 {
    match m.table.lanes / 32 {
        1 => unsafe { lane_row_chunks::<1>(m, r, xdups) },
        2 => unsafe { lane_row_chunks::<2>(m, r, xdups) },
        3 => unsafe { lane_row_chunks::<3>(m, r, xdups) },
        4 => unsafe { lane_row_chunks::<4>(m, r, xdups) },
        _ => unsafe { lane_row_chunks::<0>(m, r, xdups) },
    }
}

/// Decoded batches kept at once.
const RING: usize = 4;
/// Batches between decoding a batch and reading it: a narrow load of a wide store still in the
/// store buffer waits for it (measured: 3.3 G weights/s reading one batch later, 4.6 two later).
const LAG: usize = 2;
/// Bytes of the record stream prefetched ahead.
const PREFETCH: usize = 1024;

/// Decodes batches of one row's records: the constants that do not change along the row.
struct Decoder<'a> {
    records: &'a [u8],
    /// Byte of the first record of the row.
    start: usize,
    bits: usize,
    /// Byte t of lane i picks window byte (lane i's first byte) + t.
    gather: __m512i,
    /// Lane i's shift inside its first byte.
    shift: __m512i,
    rec_mask: __m512i,
    seed_mask: __m512i,
    stride: __m512i,
    kcount: __m128i,
    qcount: __m128i,
    scales: __m512,
    q_select: __m512i,
}

impl<'a> Decoder<'a> {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(m: &LaneMatrix<'a>, first: usize) -> Self {
        let bits = m.bits as usize;
        debug_assert!(
            bits <= 57,
            "a record must fit a 64-bit lane after a shift of up to 7"
        );
        // Every batch starts `bits` bytes after the last, so each lane's byte offset and shift
        // inside its batch's window are the same for the whole row.
        let pos0 = first * bits;
        let lane_bits: [u64; BATCH] = std::array::from_fn(|i| (pos0 % 8 + i * bits) as u64);
        // SAFETY: reads one 64-byte array.
        let lane_bits = unsafe { _mm512_loadu_si512(lane_bits.as_ptr() as *const _) };
        let eight = 0x0808_0808_0808_0808;
        let spread = _mm512_set_epi64(eight, 0, eight, 0, eight, 0, eight, 0);
        Decoder {
            records: m.records,
            start: pos0 / 8,
            bits,
            gather: _mm512_add_epi8(
                _mm512_shuffle_epi8(_mm512_srli_epi64(lane_bits, 3), spread),
                _mm512_set1_epi64(0x0706_0504_0302_0100),
            ),
            shift: _mm512_and_si512(lane_bits, _mm512_set1_epi64(7)),
            rec_mask: _mm512_set1_epi64(((1u64 << bits) - 1) as i64),
            seed_mask: _mm512_set1_epi64(((1u64 << m.k) - 1) as i64),
            stride: _mm512_set1_epi64(m.table.lanes as i64 * 2),
            kcount: _mm_cvtsi32_si128(m.k as i32),
            qcount: _mm_cvtsi32_si128(m.k as i32 + 4),
            // SAFETY: `scales` is 16 f32.
            scales: unsafe { _mm512_loadu_ps(m.scales.as_ptr()) },
            q_select: q_select(m.p2),
        }
    }

    /// Decodes the row's batch `n` (its blocks 8n … 8n + 7) into `out`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,bmi2")]
    fn decode(&self, n: usize, out: &mut Batch) {
        let recs = self.records;
        let at = self.start + n * self.bits;
        let have = recs.len().saturating_sub(at).min(64);
        // SAFETY: the mask limits the load to the stream (past its end the window reads zeros,
        // as `record` does); the stores write the 64-byte-aligned fields of `out`.
        unsafe {
            // The stream is read once per token from the file's pages, where the hardware
            // prefetcher loses it at each page boundary; ask for it well ahead.
            _mm_prefetch::<_MM_HINT_T0>(recs.as_ptr().wrapping_add(at + PREFETCH) as *const i8);
            let window = _mm512_maskz_loadu_epi8(
                _bzhi_u64(u64::MAX, have as u32),
                recs.as_ptr().add(at.min(recs.len())) as *const i8,
            );
            let rec = _mm512_and_si512(
                _mm512_srlv_epi64(_mm512_permutexvar_epi8(self.gather, window), self.shift),
                self.rec_mask,
            );
            let seed = _mm512_and_si512(rec, self.seed_mask);
            let lo = _mm512_and_si512(seed, _mm512_set1_epi64(0xff));
            let hi = _mm512_srli_epi64(seed, 8);
            let rows = out.rows.as_mut_ptr() as *mut __m512i;
            _mm512_store_si512(rows, _mm512_mul_epu32(lo, self.stride));
            _mm512_store_si512(rows.add(1), _mm512_mul_epu32(hi, self.stride));
            let e = _mm512_cvtepi64_epi32(_mm512_and_si512(
                _mm512_srl_epi64(rec, self.kcount),
                _mm512_set1_epi64(15),
            ));
            let s = _mm512_permutexvar_ps(_mm512_castsi256_si512(e), self.scales);
            _mm256_store_ps(out.scale.as_mut_ptr(), _mm512_castps512_ps256(s));
            // Nibble p of each record to the high half of byte p, then to the high byte of
            // 16-bit lane p of the pattern; an arithmetic shift sign-extends it.
            let q = _mm512_srl_epi64(rec, self.qcount);
            let nib = _mm512_set1_epi8(0xf0u8 as i8);
            let even = _mm512_and_si512(_mm512_slli_epi64(q, 4), nib);
            let odd = _mm512_and_si512(q, nib);
            let pat = |v: __m512i| _mm512_srai_epi16(_mm512_shuffle_epi8(v, self.q_select), 12);
            let qp = out.q.as_mut_ptr() as *mut __m512i;
            _mm512_store_si512(qp, pat(_mm512_unpacklo_epi8(even, odd)));
            _mm512_store_si512(qp.add(1), pat(_mm512_unpackhi_epi8(even, odd)));
        }
    }
}

/// [`lane_row`] for blocks of `CH` 512-bit chunks (0: any number, read from the table).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,bmi2")]
unsafe fn lane_row_chunks<const CH: usize>(m: &LaneMatrix, r: usize, xdups: &[Lines]) -> f32 {
    let lanes = m.table.lanes;
    let chunks = if CH == 0 { lanes / 32 } else { CH };
    let l32 = lanes / 2;
    let (first, blocks, offset) = m.span(r);
    let xdup = xdups[offset].as_slice::<f32>();
    debug_assert!(xdup.len() >= blocks.div_ceil(BATCH) * BATCH * l32);
    let dec = Decoder::new(m, first);
    let empty = || Batch {
        q: [[0; 8]; BATCH],
        rows: [[0; BATCH]; 2],
        scale: [0.0; BATCH],
    };
    // Batch n + LAG is decoded while batch n runs (see [`LAG`]).
    let mut ring: [Batch; RING] = std::array::from_fn(|_| empty());
    let batches = blocks.div_ceil(BATCH);
    for (n, b) in ring.iter_mut().enumerate().take(batches.min(LAG)) {
        dec.decode(n, b);
    }
    unsafe {
        let t0 = m.table.rows.as_slice::<i16>().as_ptr() as *const u8;
        let t1 = t0.add(256 * lanes * 2);
        let mut acc = [_mm512_setzero_ps(); 2];
        for n in 0..batches {
            if n + LAG < batches {
                dec.decode(n + LAG, &mut ring[(n + LAG) % RING]);
            }
            let cur = &ring[n % RING];
            // Whole batches: past the row's last block the expansion is zero.
            let xb = xdup.as_ptr().add(n * BATCH * l32);
            for i in 0..BATCH {
                let q = _mm512_broadcast_i32x4(_mm_load_si128(
                    cur.q.as_ptr().add(i / 2 + (i & 1) * BATCH / 2) as *const __m128i,
                ));
                let s = _mm512_set1_ps(cur.scale[i]);
                let u0 = t0.add(cur.rows[0][i] as usize);
                let u1 = t1.add(cur.rows[1][i] as usize);
                let xd = xb.add(i * l32);
                let a = &mut acc[i & 1];
                for ch in 0..chunks {
                    let v = _mm512_xor_si512(
                        _mm512_load_si512(u0.add(ch * 64) as *const _),
                        _mm512_load_si512(u1.add(ch * 64) as *const _),
                    );
                    let prod = _mm512_cvtepi32_ps(_mm512_madd_epi16(v, q));
                    let xs = _mm512_mul_ps(_mm512_load_ps(xd.add(ch * 16)), s);
                    *a = _mm512_fmadd_ps(prod, xs, *a);
                }
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
    }
}

/// The `vpshufb` control that turns a record's nibble bytes (nibble n in the high half of byte
/// n, as unpacked) into its coefficient pattern: 16-bit lane l takes nibble l mod P2 in its
/// high byte. Padding lanes (l mod P2 ≥ P) read nibbles past the record, which are zero.
#[inline]
#[target_feature(enable = "avx512f")]
fn q_select(p2: usize) -> __m512i {
    let mut ctrl = [0x80u8; 16];
    for l in 0..8 {
        ctrl[2 * l + 1] = (l % p2) as u8;
    }
    // SAFETY: reads the 16-byte array.
    unsafe { _mm512_broadcast_i32x4(_mm_loadu_si128(ctrl.as_ptr() as *const __m128i)) }
}
