//! Bit-exact model of the RTL arithmetic in `hdl/` (see `hdl/README.md` for the number formats).
//!
//! SeedLM datapaths ([`Design`]): a record decodes to C exact integers `n_i = Σ_j v_ij·q_j`
//! with `v = state − 2^15`; weight i of the row-major flattened matrix adds `(n_i·x_col) << E`
//! to its row, all in 64-bit two's complement (the 4-bit RTL sums a record's products before
//! the shift, which is the same modulo 2^64). The real output is `y · 2^e_base / 32767`.
//! Reference datapath: FP16 weights as exact integers `w·2^24`, products with x summed in 64
//! bits per beat and accumulated in 80 bits; the real output is `y · 2^−24`. Both scale by the
//! input vector's own scale, if x stands for a real vector.

use crate::core::lfsr;
use crate::core::quant::pow2;
use crate::hw::design::{Design, FOUR_BIT};
use crate::io::packed;

/// States the LFSR unit simulator reports per seed (`seedlm_lfsr_jump`'s default, the 4-bit
/// preset's C·P).
pub const STATES: usize = FOUR_BIT.config.c * FOUR_BIT.config.p;
/// FP16 weights per beat in the reference datapath (its MAC count).
pub const REFERENCE_WEIGHTS_PER_BEAT: usize = 32;
/// The normaliser 2^15 − 1 of the centred basis, applied once at the output.
pub const DENOM: f64 = 32767.0;
/// Fraction bits of the reference datapath's fixed-point FP16 weights.
pub const REFERENCE_FRAC_BITS: i32 = 24;
/// Width of the reference datapath's row accumulator.
pub const REFERENCE_ACC_BITS: u32 = 80;
/// Width of the SeedLM datapaths' row accumulators.
pub const SEEDLM_ACC_BITS: u32 = 64;

/// The 24 register states that follow `seed`, as the RTL's jump-ahead network computes them
/// (seed 0, which no valid record holds, gives all zeros as in hardware).
pub fn lfsr_states(seed: u16) -> [u16; STATES] {
    let mut out = [0u16; STATES];
    jump_states(FOUR_BIT.config.k, u32::from(seed), &mut out);
    out
}

/// Fills `out` with the states of the K-bit LFSR that follow `seed` (seed 0 gives zeros).
fn jump_states(k: u32, seed: u32, out: &mut [u16]) {
    let mask: u32 = lfsr::taps(k)
        .expect("every design's K has taps")
        .iter()
        .fold(0, |m, &t| m | (1 << t));
    let mut s = seed;
    for o in out {
        let fb = (s & mask).count_ones() & 1;
        s = (s >> 1) | (fb << (k - 1));
        *o = s as u16;
    }
}

/// One record as the hardware decodes it: the C exact weights `n_i` and the exponent code E.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedRecord {
    /// `Σ_j (V_ij − 2^15)·q_j` (21 bits signed at P = 3, 22 at P = 4).
    pub n: Vec<i32>,
    /// Exponent code E in [0, 15].
    pub e_code: u8,
}

/// Decodes a record of `design` (fields as [`packed::encode_record`] lays them out).
pub fn decode_record(design: &Design, record: u64) -> DecodedRecord {
    let cfg = design.config;
    let code = packed::decode_record(record, cfg);
    let mut states = vec![0u16; cfg.c * cfg.p];
    jump_states(cfg.k, code.seed, &mut states);
    let centre = 1i32 << (cfg.k - 1);
    let n = states
        .chunks(cfg.p)
        .map(|v| {
            v.iter()
                .zip(&code.q)
                .map(|(&s, &q)| (i32::from(s) - centre) * i32::from(q))
                .sum()
        })
        .collect();
    DecodedRecord {
        n,
        e_code: code.e_code,
    }
}

/// The real value of a hardware weight: `n · 2^(e_base + E) / 32767`, rounded to f32 the way the
/// engine's reconstruction rounds (the integer `n` is exact, so this is the only rounding).
pub fn weight_value(n: i32, e_code: u8, e_base: i32) -> f32 {
    (f64::from(n) / DENOM * pow2(e_base + i32::from(e_code))) as f32
}

/// The first `len` weights the hardware reconstructs from `records` (the padding of the last
/// block is dropped), as reals (see [`weight_value`]).
pub fn reconstruct(design: &Design, records: &[u64], len: usize, e_base: i32) -> Vec<f32> {
    let mut w: Vec<f32> = records
        .iter()
        .flat_map(|&r| {
            let d = decode_record(design, r);
            d.n.into_iter()
                .map(move |n| weight_value(n, d.e_code, e_base))
        })
        .collect();
    w.truncate(len);
    w
}

/// A SeedLM datapath's output `y` (64-bit, wrapping like the RTL) for a `rows × cols` matrix of
/// records and an int16 input vector: blocks follow the row-major flattened matrix, so on the
/// 3-bit datapath a block may end one row and start the next.
pub fn seedlm_matvec(
    design: &Design,
    records: &[u64],
    rows: usize,
    cols: usize,
    x: &[i16],
) -> Vec<i64> {
    let len = rows * cols;
    assert_eq!(
        records.len(),
        design.blocks(rows, cols),
        "records do not match the shape"
    );
    assert_eq!(x.len(), cols, "x does not match the shape");
    let mut y = vec![0i64; rows];
    for (g, &r) in records.iter().enumerate() {
        let d = decode_record(design, r);
        for (idx, &n) in (g * design.config.c..len).zip(&d.n) {
            let p = (i64::from(n) * i64::from(x[idx % cols])).wrapping_shl(u32::from(d.e_code));
            y[idx / cols] = y[idx / cols].wrapping_add(p);
        }
    }
    y
}

/// An FP16 weight as the exact integer `w · 2^24` (exponent field 31 is not special-cased).
pub fn fp16_fixed(bits: u16) -> i64 {
    let ex = i64::from((bits >> 10) & 0x1F);
    let frac = i64::from(bits & 0x3FF);
    let (mant, shift) = if ex == 0 {
        (frac, 0)
    } else {
        (frac | 0x400, ex - 1)
    };
    let v = mant << shift;
    if bits & 0x8000 != 0 { -v } else { v }
}

/// Sign-extends the low `bits` bits of `v`.
pub(crate) fn wrap_signed(v: i128, bits: u32) -> i128 {
    let s = 128 - bits;
    (v << s) >> s
}

/// The reference datapath's output `y` (80-bit integers, wrapping like the RTL) for a row-major
/// `rows × cols` FP16 matrix (raw bits) and an int16 input vector.
pub fn reference_matvec(weights: &[u16], rows: usize, cols: usize, x: &[i16]) -> Vec<i128> {
    assert_eq!(weights.len(), rows * cols, "weights do not match the shape");
    assert_eq!(x.len(), cols, "x does not match the shape");
    weights
        .chunks(cols)
        .map(|row| {
            row.chunks(REFERENCE_WEIGHTS_PER_BEAT)
                .zip(x.chunks(REFERENCE_WEIGHTS_PER_BEAT))
                .fold(0i128, |acc, (w, xs)| {
                    let beat = w.iter().zip(xs).fold(0i64, |s, (&wb, &xi)| {
                        s.wrapping_add(fp16_fixed(wb).wrapping_mul(i64::from(xi)))
                    });
                    wrap_signed(acc + i128::from(beat), REFERENCE_ACC_BITS)
                })
        })
        .collect()
}

/// The real value of a SeedLM output: `y · 2^e_base / 32767`.
pub fn seedlm_output_value(y: i64, e_base: i32) -> f64 {
    y as f64 / DENOM * pow2(e_base)
}

/// The real value of a reference output: `y · 2^−24`.
pub fn reference_output_value(y: i128) -> f64 {
    y as f64 * pow2(-REFERENCE_FRAC_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::basis::Basis;
    use crate::core::config::Config;
    use crate::hw::design::THREE_BIT;
    use crate::search::compress::{BlockCode, CompressedTensor};
    use half::f16;

    #[test]
    fn jump_states_follow_the_engine_lfsr() {
        for seed in [1u16, 0xACE1, 0xFFFF, 0x8000, 12345] {
            let want = lfsr::Lfsr::new(16, u32::from(seed)).states(STATES);
            let got = lfsr_states(seed);
            assert!(got.iter().zip(&want).all(|(&a, &b)| u32::from(a) == b));
        }
        assert_eq!(lfsr_states(0), [0; STATES]);
    }

    /// Checks `n_i` of a decoded record against the engine's centred basis.
    fn assert_decodes_as_the_engine(design: &Design, code: &BlockCode) {
        let (c, p) = (design.config.c, design.config.p);
        let basis = Basis::for_k(design.config.k);
        let d = decode_record(design, design.record(code));
        assert_eq!(d.e_code, code.e_code);
        let mut v = vec![0i64; c * p];
        basis.centred_at(basis.index_of(code.seed), &mut v);
        assert_eq!(d.n.len(), c);
        for i in 0..c {
            let want: i64 = (0..p).map(|j| v[i * p + j] * i64::from(code.q[j])).sum();
            assert_eq!(i64::from(d.n[i]), want);
        }
    }

    #[test]
    fn record_decodes_as_the_engine_reconstructs() {
        let code = BlockCode {
            seed: 0xACE1,
            e_code: 5,
            q: [-8, 7, -3, 0, 0, 0, 0, 0],
        };
        let r = FOUR_BIT.record(&code);
        assert_eq!(r & 0xFFFF, 0xACE1);
        assert_eq!((r >> 16) & 0xF, 5);
        assert_eq!(r >> 20, 0xD78, "q2 = -3 (0xD), q1 = 7, q0 = -8 (0x8)");
        assert_decodes_as_the_engine(&FOUR_BIT, &code);
    }

    #[test]
    fn record3_decodes_as_the_engine_reconstructs() {
        let code = BlockCode {
            seed: 0x1234,
            e_code: 9,
            q: [-8, 7, -1, 3, 0, 0, 0, 0],
        };
        let r = THREE_BIT.record(&code);
        assert_eq!(r >> 20, 0x3F78, "q3 = 3, q2 = -1, q1 = 7, q0 = -8");
        assert_decodes_as_the_engine(&THREE_BIT, &code);
        // The stream puts record i at bit 36·i, straddling bytes.
        let stream = THREE_BIT.stream(&[r, r]);
        assert_eq!(stream.len(), 64);
        let read = |i: usize| {
            (0..36).fold(0u64, |a, b| {
                let j = 36 * i + b;
                a | u64::from((stream[j / 8] >> (j % 8)) & 1) << b
            })
        };
        assert_eq!((read(0), read(1)), (r, r));
    }

    #[test]
    fn three_bit_matvec_splits_blocks_across_rows() {
        // 2 rows of 18: block 1 holds weights 12..23, i.e. row 0 cols 12..17 and row 1 cols 0..5.
        let records: Vec<u64> = (0..3)
            .map(|i| {
                THREE_BIT.record(&BlockCode {
                    seed: 100 + i,
                    e_code: i as u8,
                    q: [1, -2, 3, -4, 0, 0, 0, 0],
                })
            })
            .collect();
        let x: Vec<i16> = (0..18).map(|i| i * 3 - 20).collect();
        let y = seedlm_matvec(&THREE_BIT, &records, 2, 18, &x);
        let w = reconstruct(&THREE_BIT, &records, 36, 0);
        for r in 0..2 {
            let want: f64 = (0..18)
                .map(|c| f64::from(w[r * 18 + c]) * f64::from(x[c]))
                .sum();
            let got = seedlm_output_value(y[r], 0);
            assert!(
                (got - want).abs() < 1e-3 * want.abs().max(1.0),
                "{got} {want}"
            );
        }
    }

    #[test]
    fn streams_are_the_packed_file_layout() {
        use crate::io::packed::pack_blocks;
        let codes: Vec<BlockCode> = (0..40u32)
            .map(|i| BlockCode {
                seed: i * 1601 % 0xFFFF + 1,
                e_code: (i % 16) as u8,
                q: [
                    (i % 16) as i8 - 8,
                    7,
                    -((i % 9) as i8),
                    (i % 8) as i8 - 4,
                    0,
                    0,
                    0,
                    0,
                ],
            })
            .collect();
        // 2 rows of 240: 40 blocks of 12.
        let t3 = CompressedTensor {
            config: Config::THREE_BIT,
            e_base: crate::core::quant::DEFAULT_E_BASE,
            len: 480,
            blocks: codes.clone(),
        };
        let records = THREE_BIT.records(&t3, 2, 240).unwrap();
        let file = pack_blocks(&t3);
        let stream = THREE_BIT.stream(&records);
        assert_eq!(
            &stream[..file.len()],
            &file[..],
            "the DDR stream is the file's bytes"
        );
        assert_eq!(stream.len() % 64, 0);
        assert!(stream[file.len()..].iter().all(|&b| b == 0));
        // The 4-bit stream is little-endian u32 records, whole beats: beat bits [32r+31:32r]
        // hold record r, as seedlm_mvm.sv reads them.
        let four: Vec<u64> = codes[..32].iter().map(|c| FOUR_BIT.record(c)).collect();
        let stream = FOUR_BIT.stream(&four);
        assert_eq!(stream.len(), 128);
        for (r, &rec) in four.iter().enumerate() {
            let bytes: [u8; 4] = stream[4 * r..4 * r + 4].try_into().unwrap();
            assert_eq!(u64::from(u32::from_le_bytes(bytes)), rec);
        }
    }

    #[test]
    fn fp16_fixed_is_exact() {
        for x in [0.0f32, 1.0, -2.5, 65504.0, 6.1e-5, -5.96e-8, 0.333] {
            let h = f16::from_f32(x);
            let fixed = fp16_fixed(h.to_bits());
            assert_eq!(fixed as f64 * 2f64.powi(-24), f64::from(h.to_f32()), "{x}");
        }
    }

    #[test]
    fn seedlm_matvec_matches_engine_basis_arithmetic() {
        let (rows, cols) = (3, 128);
        let (c, p) = (FOUR_BIT.config.c, FOUR_BIT.config.p);
        let basis = Basis::for_k(16);
        let codes: Vec<BlockCode> = (0..rows * cols / c)
            .map(|i| BlockCode {
                seed: (i as u32).wrapping_mul(0x9E37_79B9) % 0xFFFF + 1,
                e_code: (i % 16) as u8,
                q: [
                    (i % 16) as i8 - 8,
                    7 - (i % 5) as i8,
                    -((i % 3) as i8),
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
            })
            .collect();
        let records: Vec<u64> = codes.iter().map(|b| FOUR_BIT.record(b)).collect();
        let x: Vec<i16> = (0..cols)
            .map(|i| (i as i16).wrapping_mul(977) ^ 0x5A5A)
            .collect();
        let y = seedlm_matvec(&FOUR_BIT, &records, rows, cols, &x);
        let e_base = -9;
        let w = reconstruct(&FOUR_BIT, &records, rows * cols, e_base);
        let mut v = vec![0i64; c * p];
        for r in 0..rows {
            // Exact integer sum from the engine's state table (an independent LFSR path).
            let mut exact = 0i128;
            for (b, code) in codes[r * cols / c..(r + 1) * cols / c].iter().enumerate() {
                basis.centred_at(basis.index_of(code.seed), &mut v);
                for i in 0..c {
                    let n: i64 = (0..p).map(|j| v[i * p + j] * i64::from(code.q[j])).sum();
                    exact += i128::from(n * i64::from(x[b * c + i])) << code.e_code;
                }
            }
            assert_eq!(i128::from(y[r]), exact);
            // And the scaled output is Ŵx of the reconstructed weights.
            let terms = (0..cols).map(|c| f64::from(w[r * cols + c]) * f64::from(x[c]));
            let approx: f64 = terms.clone().sum();
            let mag: f64 = terms.map(f64::abs).sum();
            assert!((approx - seedlm_output_value(y[r], e_base)).abs() <= 1e-6 * mag);
        }
    }

    #[test]
    fn reference_accumulator_wraps_at_80_bits() {
        assert_eq!(wrap_signed(1 << 79, 80), -(1 << 79));
        assert_eq!(wrap_signed(-1, 80), -1);
        let w = vec![f16::from_f32(0.5).to_bits(); 64];
        let x = vec![-3i16; 32];
        let y = reference_matvec(&w, 2, 32, &x);
        assert_eq!(
            y.iter()
                .map(|&v| reference_output_value(v))
                .collect::<Vec<_>>(),
            [-48.0; 2]
        );
    }
}
