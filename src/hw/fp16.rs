//! Bit-exact model of the FP16-converting variant of the 4-bit datapath (`seedlm_mvm` with
//! `Arith = ArithFp16`, `hdl/seedlm_fp16_convert.sv`): the paper's order of work, where each
//! reconstructed weight is converted to FP16 before the MAC. A weight `n · 2^(E + e_base − 15)`
//! is rounded to FP16 by the `half` crate (round to nearest, ties to even; subnormals kept;
//! overflow gives ±Inf, an underflow a signed zero), then multiplied by x and summed exactly as
//! the FP16 reference datapath does ([`model::fp16_fixed`]: `w·x·2^24`, 80-bit rows). The real
//! output is `y · 2^−24 · 32768 / 32767`: the basis's normaliser is applied once, at the output.

use crate::core::quant::pow2;
use crate::hw::build::HwError;
use crate::hw::design::{Design, FOUR_BIT};
use crate::hw::model;
use half::f16;

/// The power of two the LFSR's centred states carry (2^15): a weight `n · 2^e / 32767` is
/// `n · 2^(e − 15)` times the constant `32768 / 32767`.
const STATE_SHIFT: i32 = 15;

/// Weights a 4-bit beat holds: its products are summed in 64 bits before the row accumulator.
const WEIGHTS_PER_BEAT: usize = 128;

/// The design the variant belongs to (its records, layout and shape rule).
pub const DESIGN: Design = FOUR_BIT;

/// The error of asking for the variant on another datapath (named `other`).
pub fn variant_refused(other: &str) -> HwError {
    HwError::Sim(format!(
        "the FP16-converting variant is of the {} datapath, not the {other}",
        DESIGN.name
    ))
}

/// One weight as the converter rounds it: the FP16 bits of `n · 2^(e_code + e_base − 15)`.
pub fn fp16_weight(n: i32, e_code: u8, e_base: i32) -> u16 {
    // n has at most 21 significant bits, so the f64 value is exact and `half` rounds it once.
    let v = f64::from(n) * pow2(i32::from(e_code) + e_base - STATE_SHIFT);
    f16::from_f64(v).to_bits()
}

/// The variant's output `y` (80-bit integers, wrapping like the RTL) for a `rows × cols`
/// matrix of 4-bit records, an int16 input vector and the tensor's exponent base.
pub fn fp16_matvec(records: &[u64], rows: usize, cols: usize, x: &[i16], e_base: i32) -> Vec<i128> {
    assert_eq!(
        records.len(),
        DESIGN.blocks(rows, cols),
        "records do not match the shape"
    );
    assert_eq!(x.len(), cols, "x does not match the shape");
    let products = records.iter().flat_map(|&r| {
        let d = model::decode_record(&DESIGN, r);
        d.n.into_iter()
            .map(move |n| model::fp16_fixed(fp16_weight(n, d.e_code, e_base)))
    });
    let products: Vec<i64> = products
        .zip(x.iter().cycle())
        .map(|(w, &xi)| w.wrapping_mul(i64::from(xi)))
        .collect();
    products
        .chunks(cols)
        .map(|row| {
            row.chunks(WEIGHTS_PER_BEAT).fold(0i128, |acc, beat| {
                let sum = beat.iter().fold(0i64, |s, &p| s.wrapping_add(p));
                model::wrap_signed(acc + i128::from(sum), model::REFERENCE_ACC_BITS)
            })
        })
        .collect()
}

/// The real value of an output of the variant: `y · 2^−24 · 32768 / 32767`.
pub fn fp16_output_value(y: i128) -> f64 {
    model::reference_output_value(y) * pow2(STATE_SHIFT) / model::DENOM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rounds_to_nearest_even_with_subnormals_and_overflow() {
        // (n, e_code, e_base) → FP16 bits; the value is n · 2^(e_code + e_base − 15).
        let cases: [(i32, u8, i32, u16); 12] = [
            (1, 0, -9, 0x0001),        // 2^-24: the smallest subnormal
            (1, 0, -10, 0x0000),       // 2^-25: a tie, to the even 0
            (3, 0, -10, 0x0002),       // 1.5 · 2^-24: a tie, to the even 2
            (-1, 0, -11, 0x8000),      // underflow keeps the sign
            (1023, 0, -9, 0x03FF),     // the largest subnormal
            (2047, 0, -10, 0x0400),    // 1023.5 · 2^-24 rounds up into the normals
            (2049, 0, 5, 0x4000),      // 2049 · 2^-10: a tie, to the even 2048 · 2^-10 = 2
            (2051, 0, 5, 0x4002),      // 2051 · 2^-10: a tie, to the even 2052 · 2^-10
            (2047, 0, 20, 0x7BFF),     // 65 504, the largest finite value
            (4095, 0, 19, 0x7C00),     // 65 520: a tie between 65 504 and 2^16, to Inf
            (-786_432, 15, 0, 0xFC00), // far beyond: −Inf
            (0, 7, -8, 0x0000),
        ];
        for (n, e, b, want) in cases {
            assert_eq!(fp16_weight(n, e, b), want, "n={n} E={e} e_base={b}");
        }
    }

    #[test]
    fn outputs_are_the_sum_of_the_rounded_weights() {
        use crate::hw::design::random_tensor;
        let (rows, cols) = (2, 256);
        let t = random_tensor(crate::core::config::Config::FOUR_BIT, rows, cols, 3);
        let records: Vec<u64> = t.blocks.iter().map(|b| DESIGN.record(b)).collect();
        let x: Vec<i16> = (0..cols as i16).map(|i| i * 97 - 12_000).collect();
        let y = fp16_matvec(&records, rows, cols, &x, t.e_base);
        let w: Vec<f64> = records
            .iter()
            .flat_map(|&r| {
                let d = model::decode_record(&DESIGN, r);
                d.n.into_iter()
                    .map(move |n| f16::from_bits(fp16_weight(n, d.e_code, t.e_base)).to_f64())
            })
            .collect();
        for r in 0..rows {
            let want: f64 = (0..cols)
                .map(|c| w[r * cols + c] * f64::from(x[c]))
                .sum::<f64>()
                * 32768.0
                / 32767.0;
            let got = fp16_output_value(y[r]);
            assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} {want}");
        }
    }
}
