//! The SIMD layout of a packed matrix (K ≤ 16). A block's basis is laid out as 16-bit lanes,
//! each state shifted to the top of its lane and XOR-ed with 0x8000 so that the lane read as i16
//! is the centred state `(V − 2^(K−1))·2^(16−K)`. Both steps are linear over GF(2), so they fold
//! into the per-byte tables (the 0x8000 into byte 0's). Multiplying lane pairs by the
//! coefficients (`vpmaddwd`) then gives sums of q_j·c_ij in 32-bit lanes, which meet the
//! activation expanded to the same lanes. There are two layouts:
//! - **rows**: row i of V(s) at lanes `i·P2 … i·P2 + P − 1` (P2 = P rounded up to 2, 4 or 8;
//!   the padding lanes are zero), so a weight has P2 / 2 32-bit sums, each meeting its own copy
//!   of x_i;
//! - **pairs** (when it takes fewer vector operations): chunk h holds coefficients 2h and
//!   2h + 1 of every weight, weight i at lanes `2i, 2i + 1`, so the chunks' products add
//!   lane-wise (`vpdpwssd`) into one exact 32-bit sum per weight, converted and multiplied by
//!   x_i once. A chunk is one 512-bit vector (C ≤ 16) for the AVX-512 kernel, the block's
//!   weights in whole 256-bit vectors for the AVX2 kernel ([`pair_chunk`]).
//!
//! A row that starts inside a block (a width that is not a multiple of C) reads an expansion
//! shifted by its offset, zero outside the row.

use super::Kernel;
use crate::core::config::Config;
use crate::infer::seed_table::SeedTable;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: 64 bytes with no padding, valid for every bit pattern.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Line {}

/// A zeroed buffer that starts on a cache line, so that no 512-bit load of a block's table row
/// or activation lanes splits across two lines (a split load costs two).
#[derive(Clone, Debug, Default)]
pub(crate) struct Lines(Vec<Line>);

impl Lines {
    /// Room for `len` values of `T`.
    fn zeroed<T: bytemuck::Pod>(len: usize) -> Self {
        Lines(vec![Line([0; 64]); (len * size_of::<T>()).div_ceil(64)])
    }

    /// The buffer as values of `T`.
    pub(crate) fn as_slice<T: bytemuck::Pod>(&self) -> &[T] {
        bytemuck::cast_slice(&self.0)
    }

    fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(&mut self.0)
    }

    /// Whether it holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Blocks whose records the AVX-512 kernel decodes at once; the activation expansion of a row
/// is padded with zeros to whole batches, so the kernel runs no partial batch.
pub(crate) const BATCH: usize = 8;

/// 16-bit lanes of one block in the rows layout, padded to whole 512-bit vectors.
fn lanes_per_block(c: usize, p2: usize) -> usize {
    (c * p2).div_ceil(32) * 32
}

/// Whether blocks of C = `c`, P = `p` take the pair layout. Per block and 512-bit chunk both
/// layouts XOR two table rows and multiply by the coefficients; the rows layout then converts
/// and multiplies each chunk by x (4 operations a chunk, 1 to scale), the pair layout converts
/// and multiplies once (2 a chunk, 3 to finish). That holds for P ≥ 3 and 9 ≤ C ≤ 16;
/// measured 1.2–1.3× the rows layout's speed on the 3-bit preset and at P = 6.
fn takes_pairs(c: usize, p: usize) -> bool {
    c <= 16 && 2 * p.div_ceil(2) + 3 < 4 * lanes_per_block(c, padded_p(p)) / 32 + 1
}

/// Lanes per chunk of the pair layout for `kernel`, `None` for the rows layout. The AVX-512
/// kernel's chunk is one 512-bit vector of 16 weights ([`takes_pairs`]). The AVX2 kernel works
/// in 256-bit vectors of 8 weights, where the pair layout always takes fewer operations (the
/// 4-bit preset: 8 a block against the rows layout's 10, and half the activation lanes), so its
/// chunk is the block's weights in whole vectors. (The AVX2 kernel runs either layout.)
fn pair_chunk(c: usize, p: usize, kernel: Kernel) -> Option<usize> {
    if kernel == Kernel::Avx512 {
        takes_pairs(c, p).then_some(32)
    } else {
        Some(16 * c.div_ceil(8))
    }
}

/// P rounded up to a lane group that divides 8 (so a 128-bit coefficient pattern repeats).
fn padded_p(p: usize) -> usize {
    p.next_power_of_two().max(2)
}

/// Per-byte tables of centred 16-bit lanes for one (C, P, K).
#[derive(Debug)]
pub(crate) struct LaneTable {
    /// Lanes per block.
    pub(crate) lanes: usize,
    /// Lanes of each coefficient pair's chunk in the pair layout ([`pair_chunk`]), 0 in the
    /// rows layout.
    pub(crate) chunk: usize,
    /// `[byte][value][lanes]`, two bytes always: for K ≤ 8 the second byte's rows are zero, so
    /// a kernel can XOR both rows without a branch.
    pub(crate) rows: Lines,
    /// How a batch's records are cut into fields, by the bit its first record starts at.
    pub(crate) controls: [BatchControls; 8],
    /// The same for the AVX2 kernel: four records' windows, by the bit the first starts at.
    pub(crate) quads: [QuadControls; 8],
    /// How the AVX2 kernel cuts the coefficients out of a record aligned in its 64-bit lane.
    pub(crate) q_cut: QuadCoefficients,
}

impl LaneTable {
    /// Whether the blocks are in the pair layout (see the module's documentation).
    pub(crate) fn pairs(&self) -> bool {
        self.chunk > 0
    }

    fn shared(cfg: Config, chunk: usize) -> Arc<LaneTable> {
        /// Tables by configuration and pair chunk.
        type Tables = HashMap<(Config, usize), Arc<LaneTable>>;
        static CACHE: OnceLock<Mutex<Tables>> = OnceLock::new();
        let mut map = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry((cfg, chunk))
            .or_insert_with(|| Arc::new(LaneTable::new(cfg, chunk)))
            .clone()
    }

    /// The tables of `cfg` in the pair layout with `chunk` lanes a chunk, or in the rows
    /// layout for 0.
    fn new(cfg: Config, chunk: usize) -> Self {
        let (c, p, k) = (cfg.c, cfg.p, cfg.k);
        let p2 = padded_p(p);
        let pairs = chunk > 0;
        let lanes = if pairs {
            chunk * p.div_ceil(2)
        } else {
            lanes_per_block(c, p2)
        };
        let states = SeedTable::shared(k, c * p);
        let bytes = k.div_ceil(8) as usize;
        let mut lines = Lines::zeroed::<i16>(2 * 256 * lanes);
        let rows = lines.as_mut_slice::<i16>();
        for byte in 0..bytes {
            for value in 0..=255u8 {
                let s = states.row(byte, value);
                let out = &mut rows[(byte * 256 + usize::from(value)) * lanes..][..lanes];
                for i in 0..c {
                    for j in 0..p {
                        let mut lane = (s[i * p + j] << (16 - k)) as u16;
                        if byte == 0 {
                            lane ^= 0x8000;
                        }
                        let at = if pairs {
                            (j / 2) * chunk + 2 * i + j % 2
                        } else {
                            i * p2 + j
                        };
                        out[at] = lane as i16;
                    }
                }
            }
        }
        LaneTable {
            lanes,
            chunk,
            rows: lines,
            controls: std::array::from_fn(|shift| BatchControls::new(cfg, shift)),
            quads: std::array::from_fn(|shift| QuadControls::new(cfg, shift)),
            q_cut: QuadCoefficients::new(cfg),
        }
    }
}

/// A packed matrix in the lane layout, ready for the SIMD kernels.
#[derive(Debug)]
pub(crate) struct LaneMatrix<'a> {
    pub(crate) records: &'a [u8],
    /// Record bits, K + 4 + 4P.
    pub(crate) bits: u32,
    pub(crate) k: u32,
    /// Weights per block.
    pub(crate) c: usize,
    cols: usize,
    /// Coefficients per block rounded up to their lane group (2, 4 or 8).
    pub(crate) p2: usize,
    pub(crate) table: Arc<LaneTable>,
    /// Scale of each exponent code E: 2^(e_base + E) / (2^(K−1) − 1) / 2^(16−K).
    pub(crate) scales: [f32; 16],
}

/// Byte controls that cut a batch of [`BATCH`] records, read as one 64-byte window, into their
/// fields with `vpermb` and `vpmultishiftqb` (each takes 8 bits from a byte offset of its 64-bit
/// lane). Every batch of a row starts `bits` bytes after the last, so a row needs one set.
#[derive(Debug)]
pub(crate) struct BatchControls {
    /// Byte t of lane i picks window byte (record i's first byte) + t.
    pub(crate) gather: [u8; 64],
    /// The seed's low and high byte to bytes 0 and 4 of each lane.
    pub(crate) seed_at: [u8; 64],
    /// The seed's bits in those bytes.
    pub(crate) seed_mask: [u8; 64],
    /// The exponent code to the low bits of bytes 0 and 4.
    pub(crate) e_at: [u8; 64],
    /// Coefficient nibbles to the high half of each 16-bit lane's high byte: pattern lanes 0–3
    /// and (for P2 = 8) 4–7.
    pub(crate) q_at: [[u8; 64]; 2],
    /// Bytes of those patterns that hold a coefficient (padding lanes stay zero).
    pub(crate) q_keep: [u64; 2],
}

impl BatchControls {
    /// The controls for records of `cfg` whose batch starts at bit `shift0` of its first byte.
    fn new(cfg: Config, shift0: usize) -> Self {
        let bits = cfg.block_bits() as usize;
        debug_assert!(
            bits <= 57,
            "a record fits a 64-bit lane after a shift of up to 7"
        );
        let (k, p, p2) = (cfg.k as u8, cfg.p, padded_p(cfg.p));
        let lanes = |f: &dyn Fn(usize, u8) -> [u8; 8]| -> [u8; 64] {
            let mut out = [0u8; 64];
            for (i, lane) in out.chunks_exact_mut(8).enumerate() {
                let at = shift0 + i * bits;
                lane.copy_from_slice(&f(at / 8, (at % 8) as u8));
            }
            out
        };
        let lo_mask = if k >= 8 { 0xff } else { (1u8 << k) - 1 };
        let hi_mask = if k > 8 {
            ((1u16 << (k - 8)) - 1) as u8
        } else {
            0
        };
        // Pattern lane l of half h holds coefficient (4h + l) mod P2, read from the 8 bits that
        // end with it.
        let q_at = |h: usize| {
            lanes(&|_, s| {
                let mut c = [0u8; 8];
                for l in 0..4 {
                    c[2 * l + 1] = s + k + 4 * ((4 * h + l) % p2) as u8;
                }
                c
            })
        };
        let keep = |h: usize| {
            (0..4).fold(0u8, |acc, l| {
                acc | (u8::from((4 * h + l) % p2 < p) << (2 * l + 1))
            })
        };
        BatchControls {
            gather: lanes(&|byte, _| std::array::from_fn(|t| (byte + t) as u8)),
            seed_at: lanes(&|_, s| [s, 0, 0, 0, s + 8, 0, 0, 0]),
            seed_mask: lanes(&|_, _| [lo_mask, 0, 0, 0, hi_mask, 0, 0, 0]),
            e_at: lanes(&|_, s| [s + k, 0, 0, 0, s + k, 0, 0, 0]),
            q_at: [q_at(0), q_at(1)],
            q_keep: [0, 1].map(|h| u64::from_ne_bytes([keep(h); 8])),
        }
    }
}

/// Sign-extends the value (0–15) in the low nibble of each 16-bit lane of `v`: XOR 8, then
/// subtract 8 per lane, each lane's bit 15 set so that none borrows from the next. In scalar
/// code this leaves the vector units, which the block's products keep busy, alone.
#[inline(always)]
fn nibbles_signed(v: u64) -> u64 {
    const EIGHT: u64 = 0x0008_0008_0008_0008;
    const TOP: u64 = 0x8000_8000_8000_8000;
    (v ^ (EIGHT | TOP)).wrapping_sub(EIGHT) ^ TOP
}

/// How the AVX2 kernel puts four records, starting at bit `shift0` of the first byte of a
/// window, each in its own 64-bit lane from bit 0: `vpshufb` within the 128-bit halves (the high
/// half reads its own 16 bytes from byte `high_at`, as AVX2 has no byte permute across halves),
/// then `vpsrlvq`. A record spans at most 8 bytes after a shift of up to 7 (57 bits).
#[derive(Debug)]
pub(crate) struct QuadControls {
    /// Byte t of lane i picks the byte of record i's first byte + t, in its half's window.
    pub(crate) shuffle: [u8; 32],
    /// Each record's bit in its first byte.
    pub(crate) shift: [u64; 4],
    /// Where the high half's window starts: record 2's first byte.
    pub(crate) high_at: usize,
    /// Where the next four records start: their first byte, and the controls for their bit.
    pub(crate) next_at: usize,
    pub(crate) next_shift: usize,
}

impl QuadControls {
    fn new(cfg: Config, shift0: usize) -> Self {
        let bits = cfg.block_bits() as usize;
        let at = |i: usize| (shift0 + i * bits) / 8;
        let high_at = at(2);
        let mut shuffle = [0u8; 32];
        for (i, lane) in shuffle.chunks_exact_mut(8).enumerate() {
            let from = if i < 2 { at(i) } else { at(i) - high_at };
            for (t, b) in lane.iter_mut().enumerate() {
                *b = (from + t) as u8;
            }
        }
        QuadControls {
            shuffle,
            shift: std::array::from_fn(|i| ((shift0 + i * bits) % 8) as u64),
            high_at,
            next_at: at(4),
            next_shift: (shift0 + 4 * bits) % 8,
        }
    }
}

/// How the AVX2 kernel cuts coefficient j of a record aligned at bit 0 of its 64-bit lane into
/// 16-bit lane j mod 4 of pattern half j / 4, sign-extended: `vpshufb` puts the two bytes that
/// hold it in the lane, `vpmullw` shifts its top bit to bit 15, `vpsraw` by 12 brings it down.
#[derive(Debug)]
pub(crate) struct QuadCoefficients {
    /// Per half: the bytes (0x80 for none, which reads zero: padding lanes stay zero).
    pub(crate) shuffle: [[u8; 32]; 2],
    /// Per half: 2^(12 − the coefficient's bit in its two bytes).
    pub(crate) scale: [[u16; 16]; 2],
}

impl QuadCoefficients {
    fn new(cfg: Config) -> Self {
        let mut shuffle = [[0x80u8; 32]; 2];
        let mut scale = [[0u16; 16]; 2];
        for j in 0..cfg.p {
            let bit = cfg.k as usize + 4 + 4 * j;
            let (half, lane) = (j / 4, j % 4);
            for quad in 0..4 {
                // Lane `lane` of the record in 64-bit lane `quad`, indexed within its 128 bits.
                let at = (quad % 2) * 8;
                shuffle[half][16 * (quad / 2) + at + 2 * lane] = (at + bit / 8) as u8;
                shuffle[half][16 * (quad / 2) + at + 2 * lane + 1] = (at + bit / 8 + 1) as u8;
                scale[half][4 * quad + lane] = 1 << (12 - bit % 8);
            }
        }
        QuadCoefficients { shuffle, scale }
    }
}

impl<'a> LaneMatrix<'a> {
    /// The lane layout of `records` viewed as rows of `cols`, laid out for `kernel` (which
    /// layouts each kernel runs: [`pair_chunk`]), or `None` when K > 16.
    pub(crate) fn new(
        records: &'a [u8],
        cfg: Config,
        e_base: i32,
        cols: usize,
        kernel: Kernel,
    ) -> Option<Self> {
        if cfg.k > 16 {
            return None;
        }
        let denom = ((1i64 << (cfg.k - 1)) - 1).max(1) as f64;
        let scales = std::array::from_fn(|e| {
            (crate::core::quant::pow2(e_base + e as i32 - (16 - cfg.k) as i32) / denom) as f32
        });
        Some(LaneMatrix {
            records,
            bits: cfg.block_bits(),
            k: cfg.k,
            c: cfg.c,
            cols,
            p2: padded_p(cfg.p),
            table: LaneTable::shared(cfg, pair_chunk(cfg.c, cfg.p, kernel).unwrap_or(0)),
            scales,
        })
    }

    /// f32 lanes of the activation expansion per block: a lane per 32-bit sum of the rows
    /// layout, a lane per weight (and padding to the chunk's) in the pair layout.
    pub(crate) fn x_lanes(&self) -> usize {
        if self.table.pairs() {
            self.table.chunk / 2
        } else {
            self.table.lanes / 2
        }
    }

    /// Copies of each x_i in the expansion.
    fn x_copies(&self) -> usize {
        if self.table.pairs() { 1 } else { self.p2 / 2 }
    }

    /// Row `r`'s first block, its number of blocks, and the position of its first weight in
    /// that block (rows split blocks when the width is not a multiple of C).
    #[inline(always)]
    pub(crate) fn span(&self, r: usize) -> (usize, usize, usize) {
        let start = r * self.cols;
        let (first, offset) = (start / self.c, start % self.c);
        (first, (offset + self.cols).div_ceil(self.c), offset)
    }

    /// The activation `x` expanded to the 32-bit lanes for each offset a row of `rows` can
    /// start at (indexed by offset; empty for offsets no row has): lane m of a row's block j
    /// holds `x[j·C + m/n − offset]` for n copies a weight ([`Self::x_copies`]), zero where
    /// that is outside the row, on padding, and on the blocks that pad the row to whole
    /// [`BATCH`]es.
    pub(crate) fn expand(&self, x: &[f32], rows: usize) -> Vec<Lines> {
        let l32 = self.x_lanes();
        let per_weight = self.x_copies();
        let mut out = vec![Lines::default(); self.c];
        // Offsets repeat with a period that divides C, so the first C rows show them all.
        for r in 0..rows.min(self.c) {
            let (_, blocks, offset) = self.span(r);
            if !out[offset].is_empty() {
                continue;
            }
            let mut lanes = Lines::zeroed::<f32>(blocks.div_ceil(BATCH) * BATCH * l32);
            for (j, o) in lanes
                .as_mut_slice::<f32>()
                .chunks_exact_mut(l32)
                .enumerate()
            {
                for i in 0..self.c {
                    if let Some(&v) = (j * self.c + i)
                        .checked_sub(offset)
                        .and_then(|at| x.get(at))
                    {
                        o[i * per_weight..][..per_weight].fill(v);
                    }
                }
            }
            out[offset] = lanes;
        }
        out
    }

    /// Block `b`'s record read in scalar code: its rows in the two per-byte tables (byte
    /// pointers into [`LaneTable::rows`]), its exponent code, and its coefficient pattern
    /// ([`Self::q_pattern`]) with each lane's value sign-extended.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "bmi2")]
    pub(crate) fn block(&self, b: usize) -> ([*const u8; 2], usize, [u64; 2]) {
        let rec = super::record(self.records, b, self.bits);
        let seed = (rec & ((1u64 << self.k) - 1)) as usize;
        let stride = self.table.lanes * 2;
        let t0 = self.table.rows.as_slice::<i16>().as_ptr() as *const u8;
        let rows = [
            t0.wrapping_add((seed & 0xff) * stride),
            t0.wrapping_add((256 + ((seed >> 8) & 0xff)) * stride),
        ];
        let (lo, hi) = self.q_pattern(rec >> (self.k + 4));
        (
            rows,
            ((rec >> self.k) & 15) as usize,
            [nibbles_signed(lo), nibbles_signed(hi)],
        )
    }

    /// The coefficient pattern of a record's `q` bits: P2 4-bit values in 16-bit
    /// lanes, repeated to fill 128 bits, as (low, high) halves with each lane's value still in
    /// its low nibble ([`Self::block`] sign-extends them).
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "bmi2")]
    fn q_pattern(&self, qbits: u64) -> (u64, u64) {
        const NIBBLES: u64 = 0x000F_000F_000F_000F;
        let pdep = |v: u64| std::arch::x86_64::_pdep_u64(v, NIBBLES);
        match self.p2 {
            2 => {
                let lo = pdep(qbits) & 0xFFFF_FFFF;
                (lo | lo << 32, lo | lo << 32)
            }
            4 => {
                let lo = pdep(qbits);
                (lo, lo)
            }
            _ => (pdep(qbits), pdep(qbits >> 16)),
        }
    }
}
