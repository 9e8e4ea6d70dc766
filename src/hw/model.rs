//! Bit-exact model of the RTL arithmetic in `hdl/` (see `hdl/README.md` for the number formats).
//!
//! SeedLM datapath: each 32-bit record (4-bit preset, the fixed packed-record layout; see `hdl/README.md`) decodes to 8 exact
//! integers `n_i = Σ_j v_ij·q_j` with `v = state − 2^15`; a record contributes
//! `(Σ_i n_i·x_i) << E` to its row, all in 64-bit two's complement. The real output is
//! `y · 2^e_base / 32767`. Reference datapath: FP16 weights as exact integers `w·2^24`, products
//! with x summed in 64 bits per beat and accumulated in 80 bits; the real output is `y · 2^−24`.
//! Both scale by the input vector's own scale, if x stands for a real vector.

use crate::core::config::Config;
use crate::core::lfsr;
use crate::search::compress::{BlockCode, CompressedTensor};

/// Register length of the hardware LFSR (4-bit preset).
pub const K: u32 = 16;
/// Weights per block record.
pub const C: usize = 8;
/// Coefficients per block record.
pub const P: usize = 3;
/// LFSR states a record expands to (C·P).
pub const STATES: usize = C * P;
/// Block records per 512-bit DDR beat.
pub const RECORDS_PER_BEAT: usize = 16;
/// Weights per beat in the SeedLM datapath (its MAC count).
pub const SEEDLM_WEIGHTS_PER_BEAT: usize = RECORDS_PER_BEAT * C;
/// FP16 weights per beat in the reference datapath (its MAC count).
pub const REFERENCE_WEIGHTS_PER_BEAT: usize = 32;
/// Largest number of rows and of columns the RTL memories hold.
pub const MAX_DIM: usize = 8192;
/// The normaliser 2^15 − 1 of the centred basis, applied once at the output.
pub const DENOM: f64 = 32767.0;
/// Fraction bits of the reference datapath's fixed-point FP16 weights.
pub const REFERENCE_FRAC_BITS: i32 = 24;
/// Width of the reference datapath's row accumulator.
pub const REFERENCE_ACC_BITS: u32 = 80;

/// The 24 register states that follow `seed`, as the RTL's jump-ahead network computes them
/// (seed 0, which no valid record holds, gives all zeros as in hardware).
pub fn lfsr_states(seed: u16) -> [u16; STATES] {
    let mut out = [0u16; STATES];
    jump_states(seed, &mut out);
    out
}

/// Fills `out` with the register states that follow `seed` (any count; seed 0 gives zeros).
fn jump_states(seed: u16, out: &mut [u16]) {
    let mask: u32 = lfsr::taps(K)
        .expect("K = 16 has taps")
        .iter()
        .fold(0, |m, &t| m | (1 << t));
    let mut s = u32::from(seed);
    for o in out {
        let fb = (s & mask).count_ones() & 1;
        s = (s >> 1) | (fb << (K - 1));
        *o = s as u16;
    }
}

/// One record as the hardware decodes it: the 8 exact weights `n_i` and the exponent code E.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedRecord {
    /// `Σ_j (V_ij − 2^15)·q_j`, fits 21 bits signed.
    pub n: [i32; C],
    /// Exponent code E in [0, 15].
    pub e_code: u8,
}

/// Decodes a 32-bit record: seed [15:0], E [19:16], q0..q2 at [23:20], [27:24], [31:28].
pub fn decode_record(record: u32) -> DecodedRecord {
    let states = lfsr_states(record as u16);
    let e_code = ((record >> 16) & 0xF) as u8;
    let q: [i32; P] = std::array::from_fn(|j| (((record >> (20 + 4 * j)) as i32) << 28) >> 28);
    let n = std::array::from_fn(|i| {
        (0..P)
            .map(|j| (i32::from(states[i * P + j]) - (1 << (K - 1))) * q[j])
            .sum()
    });
    DecodedRecord { n, e_code }
}

/// Packs one block code into its 32-bit record (4-bit preset).
pub fn pack_record(code: &BlockCode) -> u32 {
    let mut r = (code.seed & 0xFFFF) | (u32::from(code.e_code) & 0xF) << 16;
    for (j, &q) in code.q[..P].iter().enumerate() {
        r |= (u32::from(q as u8) & 0xF) << (20 + 4 * j);
    }
    r
}

/// Why a tensor or an input does not fit the hardware.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    /// The hardware implements the 4-bit preset only.
    #[error("the hardware model implements the 4-bit preset (C=8, P=3, K=16), not {0}")]
    Config(String),
    /// Rows or columns out of range, or columns not a multiple of 128.
    #[error(
        "a {rows}×{cols} matrix does not fit the hardware: rows must be 1..=8192 and columns a multiple of 128 up to 8192"
    )]
    Shape {
        /// Rows (outputs).
        rows: usize,
        /// Columns (inputs).
        cols: usize,
    },
    /// The 3-bit hardware implements the 3-bit preset only.
    #[error("the 3-bit hardware model implements the 3-bit preset (C=12, P=4, K=16), not {0}")]
    Config3(String),
    /// Rows or columns out of range for the 3-bit datapath.
    #[error(
        "a {rows}×{cols} matrix does not fit the 3-bit hardware: rows must be 1..=8192 and columns 180..=8192"
    )]
    Shape3 {
        /// Rows (outputs).
        rows: usize,
        /// Columns (inputs).
        cols: usize,
    },
    /// The tensor's element count is not rows·cols.
    #[error("the tensor has {len} elements, not {rows}×{cols}")]
    Len {
        /// Elements in the tensor.
        len: usize,
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
}

/// Checks that a `rows × cols` matrix fits the RTL (its memories and beat alignment).
pub fn check_shape(rows: usize, cols: usize) -> Result<(), ShapeError> {
    let ok = (1..=MAX_DIM).contains(&rows)
        && (1..=MAX_DIM).contains(&cols)
        && cols.is_multiple_of(SEEDLM_WEIGHTS_PER_BEAT);
    if ok {
        Ok(())
    } else {
        Err(ShapeError::Shape { rows, cols })
    }
}

/// The records of a 4-bit compressed `rows × cols` tensor, in DDR order.
pub fn pack_tensor(t: &CompressedTensor, rows: usize, cols: usize) -> Result<Vec<u32>, ShapeError> {
    if t.config != Config::FOUR_BIT {
        return Err(ShapeError::Config(format!(
            "C={}, P={}, K={}",
            t.config.c, t.config.p, t.config.k
        )));
    }
    check_shape(rows, cols)?;
    if t.len != rows * cols {
        return Err(ShapeError::Len {
            len: t.len,
            rows,
            cols,
        });
    }
    Ok(t.blocks.iter().map(pack_record).collect())
}

/// The real value of a hardware weight: `n · 2^(e_base + E) / 32767`, rounded to f32 the way the
/// engine's reconstruction rounds (the integer `n` is exact, so this is the only rounding).
pub fn weight_value(n: i32, e_code: u8, e_base: i32) -> f32 {
    (f64::from(n) / DENOM * f64::powi(2.0, e_base + i32::from(e_code))) as f32
}

/// The weights the hardware reconstructs from `records`, as reals (see [`weight_value`]).
pub fn reconstruct(records: &[u32], e_base: i32) -> Vec<f32> {
    records
        .iter()
        .flat_map(|&r| {
            let d = decode_record(r);
            d.n.map(|n| weight_value(n, d.e_code, e_base))
        })
        .collect()
}

/// The SeedLM datapath's output `y` (64-bit integers, wrapping like the RTL) for a `rows × cols`
/// matrix of records (row-major, `cols / 8` records a row) and an int16 input vector.
pub fn seedlm_matvec(records: &[u32], rows: usize, cols: usize, x: &[i16]) -> Vec<i64> {
    let per_row = cols / C;
    assert_eq!(
        records.len(),
        rows * per_row,
        "records do not match the shape"
    );
    assert_eq!(x.len(), cols, "x does not match the shape");
    records
        .chunks(per_row)
        .map(|row| {
            row.iter().enumerate().fold(0i64, |acc, (b, &r)| {
                let d = decode_record(r);
                let dot =
                    d.n.iter()
                        .zip(&x[b * C..(b + 1) * C])
                        .fold(0i64, |s, (&n, &xi)| {
                            s.wrapping_add(i64::from(n) * i64::from(xi))
                        });
                acc.wrapping_add(dot.wrapping_shl(u32::from(d.e_code)))
            })
        })
        .collect()
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
fn wrap_signed(v: i128, bits: u32) -> i128 {
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

/// Weights per 3-bit record (C of the 3-bit preset).
pub const C3: usize = 12;
/// Coefficients per 3-bit record.
pub const P3: usize = 4;
/// Bits per 3-bit record.
pub const RECORD3_BITS: usize = 36;

/// One 3-bit record as the hardware decodes it: 12 exact weights and the exponent code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedRecord3 {
    /// `Σ_j (V_ij − 2^15)·q_j`, fits 22 bits signed.
    pub n: [i32; C3],
    /// Exponent code E in [0, 15].
    pub e_code: u8,
}

/// Decodes a 36-bit record: seed [15:0], E [19:16], q0..q3 at [23:20] .. [35:32].
pub fn decode_record3(record: u64) -> DecodedRecord3 {
    let mut states = [0u16; C3 * P3];
    jump_states(record as u16, &mut states);
    let e_code = ((record >> 16) & 0xF) as u8;
    let q: [i32; P3] =
        std::array::from_fn(|j| ((((record >> (20 + 4 * j)) & 0xF) as i32) << 28) >> 28);
    let n = std::array::from_fn(|i| {
        (0..P3)
            .map(|j| (i32::from(states[i * P3 + j]) - (1 << (K - 1))) * q[j])
            .sum()
    });
    DecodedRecord3 { n, e_code }
}

/// Packs one 3-bit block code into its 36-bit record.
pub fn pack_record3(code: &BlockCode) -> u64 {
    let mut r = u64::from(code.seed & 0xFFFF) | (u64::from(code.e_code) & 0xF) << 16;
    for (j, &q) in code.q[..P3].iter().enumerate() {
        r |= (u64::from(q as u8) & 0xF) << (20 + 4 * j);
    }
    r
}

/// The DDR stream of 36-bit records: back to back, LSB first, zero-padded to whole beats.
pub fn pack_stream3(records: &[u64]) -> Vec<u8> {
    let bits = records.len() * RECORD3_BITS;
    let beats = bits.div_ceil(512);
    let mut out = vec![0u8; beats * 64];
    for (i, &r) in records.iter().enumerate() {
        for b in 0..RECORD3_BITS {
            if (r >> b) & 1 == 1 {
                let j = i * RECORD3_BITS + b;
                out[j / 8] |= 1 << (j % 8);
            }
        }
    }
    out
}

/// Checks that a `rows × cols` matrix fits the 3-bit RTL (a group of 180 weights spans at most
/// two rows).
pub fn check_shape3(rows: usize, cols: usize) -> Result<(), ShapeError> {
    if (1..=MAX_DIM).contains(&rows) && (180..=MAX_DIM).contains(&cols) {
        Ok(())
    } else {
        Err(ShapeError::Shape3 { rows, cols })
    }
}

/// The records of a 3-bit compressed `rows × cols` tensor.
pub fn pack_tensor3(
    t: &CompressedTensor,
    rows: usize,
    cols: usize,
) -> Result<Vec<u64>, ShapeError> {
    if t.config != Config::THREE_BIT {
        return Err(ShapeError::Config3(format!(
            "C={}, P={}, K={}",
            t.config.c, t.config.p, t.config.k
        )));
    }
    check_shape3(rows, cols)?;
    if t.len != rows * cols {
        return Err(ShapeError::Len {
            len: t.len,
            rows,
            cols,
        });
    }
    Ok(t.blocks.iter().map(pack_record3).collect())
}

/// The weights the 3-bit hardware reconstructs from `records` (`len` of them; the padding of
/// the last block is dropped).
pub fn reconstruct3(records: &[u64], len: usize, e_base: i32) -> Vec<f32> {
    let mut w: Vec<f32> = records
        .iter()
        .flat_map(|&r| {
            let d = decode_record3(r);
            d.n.map(|n| weight_value(n, d.e_code, e_base))
        })
        .collect();
    w.truncate(len);
    w
}

/// The 3-bit datapath's output `y` (64-bit, wrapping like the RTL): blocks follow the
/// row-major flattened matrix, so a block may end one row and start the next.
pub fn seedlm3_matvec(records: &[u64], rows: usize, cols: usize, x: &[i16]) -> Vec<i64> {
    let len = rows * cols;
    assert_eq!(
        records.len(),
        len.div_ceil(C3),
        "records do not match the shape"
    );
    assert_eq!(x.len(), cols, "x does not match the shape");
    let mut y = vec![0i64; rows];
    for (g, &r) in records.iter().enumerate() {
        let d = decode_record3(r);
        for (i, &n) in d.n.iter().enumerate() {
            let idx = g * C3 + i;
            if idx < len {
                let p = (i64::from(n) * i64::from(x[idx % cols])).wrapping_shl(u32::from(d.e_code));
                y[idx / cols] = y[idx / cols].wrapping_add(p);
            }
        }
    }
    y
}

/// The real value of a SeedLM output: `y · 2^e_base / 32767`.
pub fn seedlm_output_value(y: i64, e_base: i32) -> f64 {
    y as f64 / DENOM * f64::powi(2.0, e_base)
}

/// The real value of a reference output: `y · 2^−24`.
pub fn reference_output_value(y: i128) -> f64 {
    y as f64 * f64::powi(2.0, -REFERENCE_FRAC_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::basis::Basis;
    use half::f16;

    #[test]
    fn jump_states_follow_the_engine_lfsr() {
        for seed in [1u16, 0xACE1, 0xFFFF, 0x8000, 12345] {
            let want = lfsr::Lfsr::new(K, u32::from(seed)).states(STATES);
            let got = lfsr_states(seed);
            assert!(got.iter().zip(&want).all(|(&a, &b)| u32::from(a) == b));
        }
        assert_eq!(lfsr_states(0), [0; STATES]);
    }

    #[test]
    fn record_decodes_as_the_engine_reconstructs() {
        let basis = Basis::for_k(K);
        let code = BlockCode {
            seed: 0xACE1,
            e_code: 5,
            q: [-8, 7, -3, 0, 0, 0, 0, 0],
        };
        let r = pack_record(&code);
        assert_eq!(r & 0xFFFF, 0xACE1);
        assert_eq!((r >> 16) & 0xF, 5);
        assert_eq!(r >> 20, 0xD78, "q2 = -3 (0xD), q1 = 7, q0 = -8 (0x8)");
        let d = decode_record(r);
        assert_eq!(d.e_code, 5);
        let mut v = vec![0i64; C * P];
        basis.centred_at(basis.index_of(code.seed), &mut v);
        for i in 0..C {
            let want: i64 = (0..P).map(|j| v[i * P + j] * i64::from(code.q[j])).sum();
            assert_eq!(i64::from(d.n[i]), want);
        }
    }

    #[test]
    fn record3_decodes_as_the_engine_reconstructs() {
        let basis = Basis::for_k(K);
        let code = BlockCode {
            seed: 0x1234,
            e_code: 9,
            q: [-8, 7, -1, 3, 0, 0, 0, 0],
        };
        let r = pack_record3(&code);
        assert_eq!(r >> 20, 0x3F78, "q3 = 3, q2 = -1, q1 = 7, q0 = -8");
        let d = decode_record3(r);
        let mut v = vec![0i64; C3 * P3];
        basis.centred_at(basis.index_of(code.seed), &mut v);
        for i in 0..C3 {
            let want: i64 = (0..P3).map(|j| v[i * P3 + j] * i64::from(code.q[j])).sum();
            assert_eq!(i64::from(d.n[i]), want);
        }
        // The stream puts record i at bit 36·i, straddling bytes.
        let stream = pack_stream3(&[r, r]);
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
    fn seedlm3_matvec_splits_blocks_across_rows() {
        // 2 rows of 18: block 1 holds weights 12..23, i.e. row 0 cols 12..17 and row 1 cols 0..5.
        let codes: Vec<BlockCode> = (0..3)
            .map(|i| BlockCode {
                seed: 100 + i,
                e_code: i as u8,
                q: [1, -2, 3, -4, 0, 0, 0, 0],
            })
            .collect();
        let records: Vec<u64> = codes.iter().map(pack_record3).collect();
        let x: Vec<i16> = (0..18).map(|i| i * 3 - 20).collect();
        let y = seedlm3_matvec(&records, 2, 18, &x);
        let w = reconstruct3(&records, 36, 0);
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
    fn records_follow_the_packed_file_layout() {
        use crate::io::packed::{encode_record, pack_blocks};
        let codes3: Vec<BlockCode> = (0..40u32)
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
        for c in &codes3 {
            assert_eq!(pack_record3(c), encode_record(c, Config::THREE_BIT));
            let four = BlockCode {
                q: [c.q[0], c.q[1], c.q[2], 0, 0, 0, 0, 0],
                ..*c
            };
            assert_eq!(
                u64::from(pack_record(&four)),
                encode_record(&four, Config::FOUR_BIT)
            );
        }
        // 2 rows of 240: 40 blocks of 12.
        let t3 = CompressedTensor {
            config: Config::THREE_BIT,
            e_base: crate::core::quant::DEFAULT_E_BASE,
            len: 480,
            blocks: codes3,
        };
        let records = pack_tensor3(&t3, 2, 240).unwrap();
        let file = pack_blocks(&t3);
        let stream = pack_stream3(&records);
        assert_eq!(
            &stream[..file.len()],
            &file[..],
            "the DDR stream is the file's bytes"
        );
        assert!(stream[file.len()..].iter().all(|&b| b == 0));
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
        let basis = Basis::for_k(K);
        let codes: Vec<BlockCode> = (0..rows * cols / C)
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
        let records: Vec<u32> = codes.iter().map(pack_record).collect();
        let x: Vec<i16> = (0..cols)
            .map(|i| (i as i16).wrapping_mul(977) ^ 0x5A5A)
            .collect();
        let y = seedlm_matvec(&records, rows, cols, &x);
        let e_base = -9;
        let w = reconstruct(&records, e_base);
        let mut v = vec![0i64; C * P];
        for r in 0..rows {
            // Exact integer sum from the engine's state table (an independent LFSR path).
            let mut exact = 0i128;
            for (b, code) in codes[r * cols / C..(r + 1) * cols / C].iter().enumerate() {
                basis.centred_at(basis.index_of(code.seed), &mut v);
                for i in 0..C {
                    let n: i64 = (0..P).map(|j| v[i * P + j] * i64::from(code.q[j])).sum();
                    exact += i128::from(n * i64::from(x[b * C + i])) << code.e_code;
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
