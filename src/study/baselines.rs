//! Data-free baselines a user would pick instead of SeedLM, measured on the same tensors.
//!
//! - `rtn{4,3}-{row,g128,g32}`: asymmetric round-to-nearest, as GPTQ/AWQ checkpoints store it:
//!   per group (along each row) an FP16 scale and a b-bit integer zero point, so a group of g
//!   weights costs `g·b + 16 + b` bits (b + (16 + b)/g bits per weight).
//! - `nf4-g64`: the bitsandbytes NormalFloat-4 code book with an FP16 absmax per 64 weights of the
//!   flattened tensor (4 + 16/64 = 4.25 bits per weight).
//! - `seedlm-4bit`, `seedlm-3bit`: the engine's exact search with the paper's presets;
//!   `seedlm-4bit-p6`, `seedlm-4bit-p8`, `seedlm-3bit-p7` with the larger-P presets
//!   ([`Config::LARGER_P`], software only and slower).
//! - `seedlm-4bit-cal`, `seedlm-3bit-cal`: the paper's presets searched under the
//!   activation-weighted objective of `compress --calibrate` (not data-free: they need the
//!   second moments of each layer's inputs on a calibration text).

use crate::core::config::Config;
use crate::core::control::Control;
use crate::search::Searcher;
use crate::search::compress::{self, CompressError};
use half::f16;
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// The NF4 code book of bitsandbytes (the `nf4` data type of QLoRA): 16 quantiles of N(0, 1)
/// scaled into [−1, 1], with an exact zero. Values as in bitsandbytes' `csrc/kernels.cu`.
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// A baseline or SeedLM preset, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// int4, one group per row.
    Rtn4Row,
    /// int4, groups of 128.
    Rtn4G128,
    /// int4, groups of 32.
    Rtn4G32,
    /// int3, one group per row.
    Rtn3Row,
    /// int3, groups of 128.
    Rtn3G128,
    /// int3, groups of 32.
    Rtn3G32,
    /// NF4 with an FP16 absmax per 64 weights.
    Nf4G64,
    /// SeedLM, 4-bit preset (C=8, P=3, K=16).
    SeedLm4,
    /// SeedLM, 3-bit preset (C=12, P=4, K=16).
    SeedLm3,
    /// SeedLM, larger-P 4-bit point (C=11, P=6, K=16).
    SeedLm4P6,
    /// SeedLM, larger-P 4-bit point (C=13, P=8, K=16).
    SeedLm4P8,
    /// SeedLM, larger-P 3-bit point (C=16, P=7, K=16).
    SeedLm3P7,
    /// SeedLM, 4-bit preset, calibrated search.
    SeedLm4Cal,
    /// SeedLM, 3-bit preset, calibrated search.
    SeedLm3Cal,
}

/// How a method quantizes, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Asymmetric round-to-nearest of `bits` bits; `group` weights along a row share a scale and
    /// zero point (`None`: the whole row).
    Rtn {
        /// Bits per integer.
        bits: u32,
        /// Group size along the row, or the whole row.
        group: Option<usize>,
    },
    /// NF4 code book with one absmax per `group` weights of the flattened tensor.
    Nf4 {
        /// Weights per absmax.
        group: usize,
    },
    /// SeedLM with this configuration.
    SeedLm(Config),
    /// SeedLM with this configuration, each block searched for the smallest error weighted by
    /// its input channels' second moments.
    SeedLmCalibrated(Config),
}

impl Scheme {
    /// The SeedLM configuration, calibrated or not.
    pub fn seedlm(self) -> Option<Config> {
        match self {
            Scheme::SeedLm(c) | Scheme::SeedLmCalibrated(c) => Some(c),
            _ => None,
        }
    }
}

impl Method {
    /// Every method, in the order tables and plots show them.
    pub const ALL: [Method; 14] = [
        Method::Rtn4Row,
        Method::Rtn4G128,
        Method::Rtn4G32,
        Method::Rtn3Row,
        Method::Rtn3G128,
        Method::Rtn3G32,
        Method::Nf4G64,
        Method::SeedLm4,
        Method::SeedLm3,
        Method::SeedLm4P6,
        Method::SeedLm4P8,
        Method::SeedLm3P7,
        Method::SeedLm4Cal,
        Method::SeedLm3Cal,
    ];

    /// The methods run unless others are asked for: all but the larger-P presets, whose
    /// search costs 2.5–10 times the paper's presets' per weight, and the calibrated ones,
    /// which need a text.
    pub fn defaults() -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| !m.is_larger_p() && !m.is_calibrated())
            .collect()
    }

    /// The calibrated counterpart of a paper preset (`seedlm-4bit` → `seedlm-4bit-cal`).
    pub fn calibrated(self) -> Option<Method> {
        match self {
            Method::SeedLm4 => Some(Method::SeedLm4Cal),
            Method::SeedLm3 => Some(Method::SeedLm3Cal),
            _ => None,
        }
    }

    /// The method's name (`rtn4-row`, …, `seedlm-3bit`).
    pub fn name(self) -> &'static str {
        match self {
            Method::Rtn4Row => "rtn4-row",
            Method::Rtn4G128 => "rtn4-g128",
            Method::Rtn4G32 => "rtn4-g32",
            Method::Rtn3Row => "rtn3-row",
            Method::Rtn3G128 => "rtn3-g128",
            Method::Rtn3G32 => "rtn3-g32",
            Method::Nf4G64 => "nf4-g64",
            Method::SeedLm4 => "seedlm-4bit",
            Method::SeedLm3 => "seedlm-3bit",
            Method::SeedLm4P6 => "seedlm-4bit-p6",
            Method::SeedLm4P8 => "seedlm-4bit-p8",
            Method::SeedLm3P7 => "seedlm-3bit-p7",
            Method::SeedLm4Cal => "seedlm-4bit-cal",
            Method::SeedLm3Cal => "seedlm-3bit-cal",
        }
    }

    /// The quantization scheme and its parameters.
    pub fn scheme(self) -> Scheme {
        let rtn = |bits, group| Scheme::Rtn { bits, group };
        match self {
            Method::Rtn4Row => rtn(4, None),
            Method::Rtn4G128 => rtn(4, Some(128)),
            Method::Rtn4G32 => rtn(4, Some(32)),
            Method::Rtn3Row => rtn(3, None),
            Method::Rtn3G128 => rtn(3, Some(128)),
            Method::Rtn3G32 => rtn(3, Some(32)),
            Method::Nf4G64 => Scheme::Nf4 { group: 64 },
            Method::SeedLm4 => Scheme::SeedLm(Config::FOUR_BIT),
            Method::SeedLm3 => Scheme::SeedLm(Config::THREE_BIT),
            Method::SeedLm4P6 => Scheme::SeedLm(Config::FOUR_BIT_P6),
            Method::SeedLm4P8 => Scheme::SeedLm(Config::FOUR_BIT_P8),
            Method::SeedLm3P7 => Scheme::SeedLm(Config::THREE_BIT_P7),
            Method::SeedLm4Cal => Scheme::SeedLmCalibrated(Config::FOUR_BIT),
            Method::SeedLm3Cal => Scheme::SeedLmCalibrated(Config::THREE_BIT),
        }
    }

    /// Whether this is a SeedLM preset (slow: an exact seed search).
    pub fn is_seedlm(self) -> bool {
        self.scheme().seedlm().is_some()
    }

    /// Whether this needs calibration statistics (not data-free).
    pub fn is_calibrated(self) -> bool {
        matches!(self.scheme(), Scheme::SeedLmCalibrated(_))
    }

    /// Whether this is one of the larger-P SeedLM presets (no RTL, slower search).
    pub fn is_larger_p(self) -> bool {
        matches!(self.scheme(), Scheme::SeedLm(c) if c.preset_name().is_none())
    }

    /// Bits needed to store a `rows`×`cols` tensor, scales and zero points included.
    pub fn storage_bits(self, rows: usize, cols: usize) -> u64 {
        let n = (rows * cols) as u64;
        match self.scheme() {
            Scheme::Rtn { bits, group } => {
                let g = group.unwrap_or(cols).max(1);
                let groups = (rows * cols.div_ceil(g)) as u64;
                n * u64::from(bits) + groups * (16 + u64::from(bits))
            }
            Scheme::Nf4 { group } => n * 4 + n.div_ceil(group as u64) * 16,
            // The per-tensor exponent base is a few bytes of metadata and is not counted.
            Scheme::SeedLm(cfg) | Scheme::SeedLmCalibrated(cfg) => {
                n.div_ceil(cfg.c as u64) * u64::from(cfg.block_bits())
            }
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method '{s}': expected one of {}", names.join(", "))
            })
    }
}

/// Why a method could not be measured.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BaselineError {
    /// The data does not have `rows·cols` elements.
    #[error("shape [{rows}, {cols}] does not match {len} values")]
    Shape {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Values given.
        len: usize,
    },
    /// A weight is NaN or infinite.
    #[error("weight {index} is {value} (not finite)")]
    NonFinite {
        /// Flat (row-major) element index.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
}

/// Error sums and storage of one method on one or more tensors; add them up for totals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measured {
    /// Σ (w − ŵ)².
    pub sq_err: f64,
    /// Σ w².
    pub sq_norm: f64,
    /// Bits of storage.
    pub bits: u64,
    /// Number of weights.
    pub len: u64,
}

impl Measured {
    /// Relative MSE Σ(w − ŵ)² / Σw².
    pub fn relmse(&self) -> f64 {
        compress::relmse(self.sq_err, self.sq_norm)
    }

    /// Storage bits per weight.
    pub fn bits_per_weight(&self) -> f64 {
        if self.len == 0 {
            0.0
        } else {
            self.bits as f64 / self.len as f64
        }
    }

    /// Sums of both (a total over tensors).
    pub fn add(&self, other: &Measured) -> Measured {
        Measured {
            sq_err: self.sq_err + other.sq_err,
            sq_norm: self.sq_norm + other.sq_norm,
            bits: self.bits + other.bits,
            len: self.len + other.len,
        }
    }
}

/// Measures `method` on a row-major `rows`×`cols` tensor. SeedLM presets run the exact search on
/// the current rayon pool, adding searched blocks to `progress.done`; the others are fast and
/// report no progress. `ctl.cancel` stops a SeedLM search. Also returns the reconstruction ŵ, to run
/// the model on it. A calibrated method weighs each block's error by `moments` (one per column,
/// as `compress --calibrate` does); without them (a tensor the calibration pass does not reach)
/// it searches data-free, as `compress` does.
pub fn measure(
    method: Method,
    data: &[f32],
    (rows, cols): (usize, usize),
    moments: Option<&[f64]>,
    ctl: Control<'_>,
) -> Result<(Measured, Vec<f32>), BaselineError> {
    if rows * cols != data.len() {
        return Err(BaselineError::Shape {
            rows,
            cols,
            len: data.len(),
        });
    }
    if let Some((index, &value)) = data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(BaselineError::NonFinite { index, value });
    }
    let (sq_err, sq_norm, recon) = match method.scheme() {
        Scheme::SeedLm(cfg) | Scheme::SeedLmCalibrated(cfg) => {
            let weights = moments.filter(|d| method.is_calibrated() && d.len() == cols);
            let searched = match weights {
                Some(d) => compress::compress_weighted(data, d, &Searcher::new(cfg), ctl),
                None => compress::compress(data, cfg, ctl),
            };
            let (compressed, stats) = searched.map_err(|e| match e {
                CompressError::Cancelled => BaselineError::Cancelled,
                CompressError::NonFinite { index, value } => {
                    BaselineError::NonFinite { index, value }
                }
            })?;
            (stats.sq_err, stats.sq_norm, compressed.reconstruct())
        }
        Scheme::Rtn { bits, group } => with_sums(data, rtn_tensor(data, bits, group, cols)),
        Scheme::Nf4 { group } => with_sums(data, nf4_tensor(data, group)),
    };
    let measured = Measured {
        sq_err,
        sq_norm,
        bits: method.storage_bits(rows, cols),
        len: data.len() as u64,
    };
    Ok((measured, recon))
}

/// Σ(w − ŵ)² and Σw².
fn sums(data: &[f32], recon: &[f32]) -> (f64, f64) {
    data.par_iter()
        .zip(recon)
        .map(|(&w, &r)| {
            let (w, r) = (f64::from(w), f64::from(r));
            ((w - r).powi(2), w * w)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Σ(w − ŵ)², Σw² and ŵ itself.
fn with_sums(data: &[f32], recon: Vec<f32>) -> (f64, f64, Vec<f32>) {
    let (e, n) = sums(data, &recon);
    (e, n, recon)
}

/// The dequantized tensor ŵ of [`Scheme::Rtn`] (row-major, `cols` per row).
pub fn rtn_tensor(data: &[f32], bits: u32, group: Option<usize>, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    let g = group.unwrap_or(cols).max(1);
    out.par_chunks_mut(cols.max(1))
        .zip(data.par_chunks(cols.max(1)))
        .for_each(|(o, row)| {
            for (og, wg) in o.chunks_mut(g).zip(row.chunks(g)) {
                rtn_group(wg, bits, og);
            }
        });
    out
}

/// The dequantized tensor ŵ of [`Scheme::Nf4`] (one absmax per `group` weights).
pub fn nf4_tensor(data: &[f32], group: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    out.par_chunks_mut(group)
        .zip(data.par_chunks(group))
        .for_each(|(o, w)| nf4_group(w, o));
    out
}

/// Asymmetric round-to-nearest of one group into `out`.
///
/// As GPTQ's quantizer does, the range [min, max] is widened to include 0, so the zero point
/// `z = round(−min / scale)` is an exact integer in [0, 2^b − 1] and a constant group is exact.
/// `scale = (max − min) / (2^b − 1)` is stored (and used) in FP16;
/// `q = clamp(round(w / scale) + z, 0, 2^b − 1)` and `ŵ = (q − z)·scale`. Rounding is to nearest
/// with ties to even, as `torch.round`.
pub fn rtn_group(w: &[f32], bits: u32, out: &mut [f32]) {
    let qmax = ((1u32 << bits) - 1) as f32;
    let lo = w.iter().fold(0.0f32, |m, &x| m.min(x));
    let hi = w.iter().fold(0.0f32, |m, &x| m.max(x));
    // FP16 saturates rather than overflowing to infinity: storage cannot hold a larger scale.
    let scale = f16::from_f32(((hi - lo) / qmax).min(f16::MAX.to_f32())).to_f32();
    if scale == 0.0 {
        // All zero, or a range below FP16's resolution: every weight decodes to 0.
        out.fill(0.0);
        return;
    }
    let z = (-lo / scale).round_ties_even().clamp(0.0, qmax);
    for (o, &x) in out.iter_mut().zip(w) {
        let q = ((x / scale).round_ties_even() + z).clamp(0.0, qmax);
        *o = (q - z) * scale;
    }
}

/// NF4 of one group into `out`: `absmax` (stored in FP16) scales the group into [−1, 1] and each
/// weight becomes the nearest code book value times `absmax`.
pub fn nf4_group(w: &[f32], out: &mut [f32]) {
    let absmax = w.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    let absmax = f16::from_f32(absmax.min(f16::MAX.to_f32())).to_f32();
    if absmax == 0.0 {
        out.fill(0.0);
        return;
    }
    for (o, &x) in out.iter_mut().zip(w) {
        *o = nearest_nf4(x / absmax) * absmax;
    }
}

/// The NF4 code book value nearest to `x` (ties to the lower value).
fn nearest_nf4(x: f32) -> f32 {
    // The code book is sorted: the first value past x or the one before it is nearest.
    let i = NF4_CODE.partition_point(|&c| c < x);
    match i {
        0 => NF4_CODE[0],
        16 => NF4_CODE[15],
        _ => {
            let (a, b) = (NF4_CODE[i - 1], NF4_CODE[i]);
            if x - a <= b - x { a } else { b }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::control::Progress;
    use std::sync::atomic::AtomicBool;

    fn run(method: Method, data: &[f32], rows: usize, cols: usize) -> Measured {
        measure(method, data, (rows, cols), None, Control::unwatched())
            .unwrap()
            .0
    }

    fn gaussian(n: usize, seed: u64) -> Vec<f32> {
        crate::core::random::gaussian(n, 1.0, seed)
    }

    #[test]
    fn names_round_trip_and_are_exact() {
        let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "rtn4-row",
                "rtn4-g128",
                "rtn4-g32",
                "rtn3-row",
                "rtn3-g128",
                "rtn3-g32",
                "nf4-g64",
                "seedlm-4bit",
                "seedlm-3bit",
                "seedlm-4bit-p6",
                "seedlm-4bit-p8",
                "seedlm-3bit-p7",
                "seedlm-4bit-cal",
                "seedlm-3bit-cal"
            ]
        );
        let larger: Vec<_> = Method::ALL
            .into_iter()
            .filter(|m| m.is_larger_p())
            .collect();
        assert_eq!(
            larger,
            [Method::SeedLm4P6, Method::SeedLm4P8, Method::SeedLm3P7]
        );
        assert_eq!(Method::defaults(), Method::ALL[..9]);
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>(), Ok(m));
        }
        assert!("rtn5-row".parse::<Method>().is_err());
    }

    #[test]
    fn rtn4_row_by_hand() {
        // Row [-3, 0, 5, 12, 2.4]: min −3, max 12, scale 15/15 = 1 (exact in FP16), z = 3.
        // q = round(w) + 3 = [0, 3, 8, 15, 5] → ŵ = [-3, 0, 5, 12, 2]: only 2.4 errs, by 0.4.
        let w = [-3.0, 0.0, 5.0, 12.0, 2.4];
        assert_eq!(rtn_tensor(&w, 4, None, 5), [-3.0, 0.0, 5.0, 12.0, 2.0]);
        let m = run(Method::Rtn4Row, &w, 1, 5);
        let norm = 9.0 + 25.0 + 144.0 + 2.4f64 * 2.4;
        assert!((m.sq_err - 0.4f64.powi(2)).abs() < 1e-6);
        assert!((m.relmse() - 0.16 / norm).abs() < 1e-8);
        // 5 weights × 4 bits + one scale (16) and zero point (4) = 40 bits.
        assert_eq!(m.bits, 40);
        assert_eq!(m.bits_per_weight(), 8.0);
    }

    #[test]
    fn rtn3_row_by_hand() {
        // Row [-1, 2.4, 6, 0.2]: scale 7/7 = 1, z = 1, q = [0, 3, 7, 1] → ŵ = [-1, 2, 6, 0].
        let w = [-1.0, 2.4, 6.0, 0.2];
        assert_eq!(rtn_tensor(&w, 3, None, 4), [-1.0, 2.0, 6.0, 0.0]);
        let m = run(Method::Rtn3Row, &w, 1, 4);
        assert!((m.sq_err - (0.16 + 0.04)).abs() < 1e-6);
        // 4 × 3 + 16 + 3 = 31 bits.
        assert_eq!(m.bits, 31);
    }

    #[test]
    fn rtn_groups_by_hand() {
        // Row [0, 15, -45, 0] as one group: range [−45, 15], scale 60/15 = 4, z = round(11.25)
        // = 11; 15 → round(3.75) + 11 = 15 → 16; −45 → round(−11.25) + 11 = 0 → −44.
        let w = [0.0, 15.0, -45.0, 0.0];
        let mut out = [0.0; 4];
        rtn_group(&w, 4, &mut out);
        assert_eq!(out, [0.0, 16.0, -44.0, 0.0]);
        // In groups of two each half fits exactly: [0, 15] with scale 1, [−45, 0] with scale 3.
        for (o, g) in out.chunks_mut(2).zip(w.chunks(2)) {
            rtn_group(g, 4, o);
        }
        assert_eq!(out, w);
    }

    #[test]
    fn rtn_groups_are_per_row_and_per_group() {
        // Two rows of 64: in each group of 32 one value stands out; groups isolate it.
        let mut w = vec![0.0f32; 128];
        for (i, x) in w.iter_mut().enumerate() {
            *x = ((i % 7) as f32 - 3.0) * 0.1;
        }
        w[5] = 40.0;
        w[64 + 40] = -40.0;
        let row = run(Method::Rtn4Row, &w, 2, 64);
        let g32 = run(Method::Rtn4G32, &w, 2, 64);
        let g128 = run(Method::Rtn4G128, &w, 2, 64);
        // The outlier's scale (≈ 2.7) rounds every small weight of its group to 0. Per row that
        // wipes both groups of the row, in groups of 32 only the outlier's: half the error.
        let ratio = g32.sq_err / row.sq_err;
        assert!((0.45..0.55).contains(&ratio), "ratio {ratio}");
        // Groups of 128 on rows of 64 are whole rows.
        assert_eq!(g128.sq_err, row.sq_err);
        // Storage: 2 rows × 2 groups × 20 bits vs 2 × 1 × 20.
        assert_eq!(g32.bits, 128 * 4 + 4 * 20);
        assert_eq!(row.bits, 128 * 4 + 2 * 20);
    }

    #[test]
    fn rtn_scale_is_fp16() {
        // Range 1/3 over 15 steps: the scale 1/45 is not representable; the stored FP16 is used.
        let w = [0.0f32, 1.0 / 3.0];
        let mut out = [0.0; 2];
        rtn_group(&w, 4, &mut out);
        let s = f16::from_f32(1.0 / 45.0).to_f32();
        assert_ne!(s, 1.0 / 45.0);
        assert_eq!(out, [0.0, (1.0f32 / 3.0 / s).round_ties_even() * s]);
    }

    #[test]
    fn constant_and_zero_groups() {
        let mut out = [9.0; 3];
        rtn_group(&[0.0; 3], 4, &mut out);
        assert_eq!(out, [0.0; 3]);
        // A constant group's range includes 0, so the constant is the top (or bottom) code.
        // [−1.75, 0] over 7 steps: scale 0.25, z = 7, q = 0.
        rtn_group(&[-1.75; 3], 3, &mut out);
        assert_eq!(out, [-1.75; 3]);
        nf4_group(&[0.0; 3], &mut out);
        assert_eq!(out, [0.0; 3]);
    }

    #[test]
    fn nf4_by_hand() {
        // absmax 2: w/2 = [1, −0.25, 0.125, 0]. Nearest codes: 1; −0.2844 (0.0344 away, the
        // next, −0.1848, is 0.0652 away); 0.1609 (0.0359 away, 0.0796 is 0.0454 away); 0.
        let w = [2.0, -0.5, 0.25, 0.0];
        let mut out = [0.0; 4];
        nf4_group(&w, &mut out);
        assert_eq!(
            out,
            [2.0, -0.284_441_38 * 2.0, 0.160_930_2 * 2.0, 0.0],
            "codes × absmax"
        );
        // Flattened groups of 64 span rows: 2 × 40 weights make two groups (64 + 16).
        let data: Vec<f32> = (0..80).map(|i| i as f32 - 40.0).collect();
        let m = run(Method::Nf4G64, &data, 2, 40);
        assert_eq!(m.bits, 80 * 4 + 2 * 16);
    }

    #[test]
    fn nf4_code_book_is_the_normal_map() {
        // 16 sorted values in [−1, 1] with an exact 0: 7 negative, 8 positive (bitsandbytes).
        assert!(NF4_CODE.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(NF4_CODE.iter().filter(|&&c| c < 0.0).count(), 7);
        assert_eq!(NF4_CODE.iter().filter(|&&c| c > 0.0).count(), 8);
        assert_eq!((NF4_CODE[0], NF4_CODE[7], NF4_CODE[15]), (-1.0, 0.0, 1.0));
        assert_eq!(nearest_nf4(1.2), 1.0);
        assert_eq!(nearest_nf4(-3.0), -1.0);
    }

    #[test]
    fn gaussian_figures_match_design() {
        // docs/DESIGN.md §3, rows of 4096: rtn4-row ≈ 0.020, rtn3-row ≈ 0.090, nf4-g64 ≈ 0.0085.
        let (rows, cols) = (32, 4096);
        let data = gaussian(rows * cols, 7);
        let r = |m| run(m, &data, rows, cols);
        let near = |x: f64, want: f64| (x / want - 1.0).abs() < 0.15;
        let rtn4 = r(Method::Rtn4Row);
        assert!(near(rtn4.relmse(), 0.020), "rtn4-row {}", rtn4.relmse());
        assert!((rtn4.bits_per_weight() - (4.0 + 20.0 / 4096.0)).abs() < 1e-12);
        let rtn3 = r(Method::Rtn3Row);
        assert!(near(rtn3.relmse(), 0.090), "rtn3-row {}", rtn3.relmse());
        let nf4 = r(Method::Nf4G64);
        assert!(near(nf4.relmse(), 0.0085), "nf4-g64 {}", nf4.relmse());
        assert_eq!(nf4.bits_per_weight(), 4.25);
        // Smaller groups cost bits and buy accuracy.
        let (g128, g32) = (r(Method::Rtn4G128), r(Method::Rtn4G32));
        assert!(g32.relmse() < g128.relmse() && g128.relmse() < rtn4.relmse());
        assert_eq!(g32.bits_per_weight(), 4.0 + 20.0 / 32.0);
        assert_eq!(r(Method::Rtn3G128).bits_per_weight(), 3.0 + 19.0 / 128.0);
    }

    #[test]
    fn seedlm_presets_go_through_the_engine() {
        let data = gaussian(8 * 12 * 20, 3);
        let m = run(Method::SeedLm4, &data, 20, 96);
        assert_eq!(m.bits_per_weight(), 4.0);
        assert!((0.008..0.03).contains(&m.relmse()), "{}", m.relmse());
        let m3 = run(Method::SeedLm3, &data, 20, 96);
        assert_eq!(m3.bits_per_weight(), 3.0);
        assert!(m3.relmse() > m.relmse());
    }

    #[test]
    fn bad_input_is_an_error() {
        let p = Progress::default();
        let no = AtomicBool::new(false);
        assert_eq!(
            measure(
                Method::Rtn4Row,
                &[1.0; 5],
                (2, 3),
                None,
                Control::new(&p, &no)
            )
            .map(|(m, _)| m),
            Err(BaselineError::Shape {
                rows: 2,
                cols: 3,
                len: 5
            })
        );
        let err = measure(
            Method::Nf4G64,
            &[1.0, f32::NAN],
            (1, 2),
            None,
            Control::new(&p, &no),
        )
        .unwrap_err();
        assert!(matches!(err, BaselineError::NonFinite { index: 1, .. }));
        let err = measure(
            Method::SeedLm4,
            &[1.0; 64 * 8],
            (64, 8),
            None,
            Control::new(&p, &AtomicBool::new(true)),
        );
        assert_eq!(err.map(|(m, _)| m), Err(BaselineError::Cancelled));
    }

    /// A calibrated method minimises the moment-weighted error, so it beats the plain preset
    /// under that objective (and loses under the plain one); without moments it is the preset.
    #[test]
    fn calibrated_methods_weigh_each_column_by_its_moment() {
        let (rows, cols) = (16, 48);
        let data = gaussian(rows * cols, 7);
        let d: Vec<f64> = (0..cols)
            .map(|j| if j % 3 == 0 { 50.0 } else { 0.5 })
            .collect();
        let (p, no) = (Progress::default(), AtomicBool::new(false));
        let go = |m: Method, d: Option<&[f64]>| {
            measure(m, &data, (rows, cols), d, Control::new(&p, &no)).unwrap()
        };
        let weighted = |r: &[f32]| -> f64 {
            data.iter()
                .zip(r)
                .enumerate()
                .map(|(i, (w, x))| d[i % cols] * f64::from(w - x).powi(2))
                .sum()
        };
        for (plain, cal) in [
            (Method::SeedLm4, Method::SeedLm4Cal),
            (Method::SeedLm3, Method::SeedLm3Cal),
        ] {
            assert_eq!(plain.calibrated(), Some(cal));
            let (mp, rp) = go(plain, Some(&d));
            let (mc, rc) = go(cal, Some(&d));
            assert_eq!(mc.bits, mp.bits);
            assert!(weighted(&rc) < 0.9 * weighted(&rp), "{cal}");
            assert!(mc.sq_err > mp.sq_err, "{cal}");
            assert_eq!(go(cal, None), (mp, rp), "{cal} without moments");
        }
        assert!(!Method::defaults().iter().any(|m| m.is_calibrated()));
    }
}
