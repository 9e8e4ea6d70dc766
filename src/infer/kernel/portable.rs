//! Portable kernels: any CPU, any configuration (K up to 24, rows that split blocks).

use super::{SeedMatrix, record};
use crate::core::config::{MAX_C, MAX_P};
use crate::io::dtype::Dtype;

/// Dot product of one stored row (`dtype`) with `x`, in eight f32 lanes the compiler can
/// vectorise.
pub(super) fn dense_dot(dtype: Dtype, row: &[u8], x: &[f32]) -> f32 {
    fn lanes(x: &[f32], w: impl Fn(usize) -> f32) -> f32 {
        let mut acc = [0f32; 8];
        let whole = x.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += w(i + l) * x[i + l];
            }
        }
        let tail: f32 = (whole..x.len()).map(|i| w(i) * x[i]).sum();
        acc.iter().sum::<f32>() + tail
    }
    let u16_at = |i: usize| u16::from_le_bytes([row[2 * i], row[2 * i + 1]]);
    match dtype {
        Dtype::F16 => lanes(x, |i| half::f16::from_bits(u16_at(i)).to_f32()),
        Dtype::BF16 => lanes(x, |i| half::bf16::from_bits(u16_at(i)).to_f32()),
        _ => lanes(x, |i| {
            f32::from_le_bytes(row[4 * i..4 * i + 4].try_into().unwrap_or_default())
        }),
    }
}

/// Row `r` of a packed matrix with `cols` columns against `x`, from the exact integer basis
/// in f64 (every configuration the format allows, blocks that cross rows included).
pub fn seed_row(m: &SeedMatrix, r: usize, x: &[f32]) -> f32 {
    let cfg = m.config();
    let (c, p, k) = (cfg.c, cfg.p, cfg.k);
    let cols = x.len();
    let (start, end) = (r * cols, (r + 1) * cols);
    let half = 1i64 << (k - 1);
    let bits = cfg.block_bits();
    let mut states = [0u32; MAX_C * MAX_P];
    let mut acc = 0f64;
    for b in start / c..end.div_ceil(c) {
        let rec = record(m.records(), b, bits);
        m.table()
            .states((rec & ((1 << k) - 1)) as u32, &mut states[..c * p]);
        let e = ((rec >> k) & 15) as usize;
        let q: [i64; MAX_P] = std::array::from_fn(|j| {
            i64::from(((((rec >> (k + 4 + 4 * j as u32)) & 15) as i8) << 4) >> 4)
        });
        let lo = start.max(b * c) - b * c;
        let hi = end.min(b * c + c) - b * c;
        let mut block = 0f64;
        for i in lo..hi {
            let row = &states[i * p..][..p];
            let a: i64 = row
                .iter()
                .zip(&q)
                .map(|(&s, &q)| (i64::from(s) - half) * q)
                .sum();
            block += a as f64 * f64::from(x[b * c + i - start]);
        }
        acc += block * m.scale(e);
    }
    acc as f32
}
