//! Speed of the matrix–vector product in each stored form, on random weights (the kernels'
//! work does not depend on the values): runs of every form interleaved, medians reported.

use crate::core::config::Config;
use crate::infer::kernel::Kernel;
use crate::infer::matrix::Matrix;
use crate::infer::synthetic::{packed_tensor, random_codes};
use crate::io::container::Payload;
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::packed::{
    CompressedHead, PackedMeta, PackedOut, PlainEntry, encode_record, pack_records,
    write_packed_out,
};
use crate::io::selection::default_rule;
use crate::search::compress::BlockCode;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// A stored form of a weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Plain values of this dtype.
    Dense(Dtype),
    /// SeedLM records of this configuration.
    Seed(Config),
}

impl Form {
    /// Parses `f32`, `f16`, `bf16`, a preset name (`4bit`, `3bit`, `4bit-p6`, …) or `C,P,K`.
    pub fn parse(s: &str) -> Result<Form, String> {
        match s {
            "f32" => return Ok(Form::Dense(Dtype::F32)),
            "f16" => return Ok(Form::Dense(Dtype::F16)),
            "bf16" => return Ok(Form::Dense(Dtype::BF16)),
            "4bit" => return Ok(Form::Seed(Config::FOUR_BIT)),
            "3bit" => return Ok(Form::Seed(Config::THREE_BIT)),
            _ => {}
        }
        if let Some((_, c)) = Config::LARGER_P.iter().find(|(n, _)| *n == s) {
            return Ok(Form::Seed(*c));
        }
        s.parse::<Config>()
            .map(Form::Seed)
            .map_err(|e| format!("'{s}' is not f32, f16, bf16, a preset or C,P,K: {e}"))
    }

    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            Form::Dense(d) => d.to_string().to_lowercase(),
            Form::Seed(c) => c
                .preset_name()
                .map(str::to_string)
                .or_else(|| {
                    Config::LARGER_P
                        .iter()
                        .find(|(_, p)| p == c)
                        .map(|(n, _)| n.to_string())
                })
                .unwrap_or_else(|| c.to_string()),
        }
    }
}

/// Sets each code's exponent so that its block has about the RMS of the same block of `values`
/// (a block of C basis values, uniform in [−1, 1], weighs about 2^E·√(Σq²/3)), and returns the
/// tensor's exponent base: the 16 codes span the blocks' median exponent −8 to +7 (others are
/// clamped into it).
fn fit_exponents(codes: &mut [BlockCode], values: &[f32], cfg: Config) -> i32 {
    let wanted: Vec<Option<i32>> = codes
        .iter()
        .zip(values.chunks(cfg.c))
        .map(|(b, w)| {
            let rms =
                (w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
            let unit = (b.q[..cfg.p]
                .iter()
                .map(|&q| f64::from(q).powi(2))
                .sum::<f64>()
                / 3.0)
                .sqrt();
            (rms > 0.0 && unit > 0.0).then(|| (rms / unit).log2().round() as i32)
        })
        .collect();
    let mut sorted: Vec<i32> = wanted.iter().flatten().copied().collect();
    sorted.sort_unstable();
    let e_base = sorted.get(sorted.len() / 2).map_or(-12, |m| m - 8);
    for (b, e) in codes.iter_mut().zip(wanted) {
        b.e_code = e.map_or(0, |e| (e - e_base).clamp(0, 15) as u8);
    }
    e_base
}

/// One form's speed on one shape.
#[derive(Clone, Debug, Serialize)]
pub struct MatvecSpeed {
    /// Output rows.
    pub rows: usize,
    /// Input width.
    pub cols: usize,
    /// Stored form.
    pub form: String,
    /// Bits per weight as stored.
    pub bits_per_weight: f64,
    /// Kernel used.
    pub kernel: &'static str,
    /// Median seconds of one product.
    pub median_s: f64,
    /// Weights per second at the median.
    pub weights_per_s: f64,
    /// Stored bytes read per second at the median.
    pub bytes_per_s: f64,
    /// Seconds of one product in each timed run.
    pub runs_s: Vec<f64>,
}

/// Times `y = W·x` for every shape and form on the current rayon pool: `repeat` rounds, each
/// timing every (shape, form) once in turn after one untimed warm-up round.
pub fn matvec(
    shapes: &[(usize, usize)],
    forms: &[Form],
    kernel: Kernel,
    repeat: usize,
) -> Vec<MatvecSpeed> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    struct Case {
        rows: usize,
        cols: usize,
        form: Form,
        bytes: Vec<u8>,
        meta: Option<PackedMeta>,
        runs: Vec<f64>,
    }
    let mut cases = Vec::new();
    for &(rows, cols) in shapes {
        for &form in forms {
            let (bytes, meta) = match form {
                Form::Dense(d) => {
                    let v: Vec<f32> = (0..rows * cols)
                        .map(|_| rng.random_range(-0.05..0.05))
                        .collect();
                    (dtype::from_f32(d, &v).unwrap_or_default(), None)
                }
                Form::Seed(cfg) => {
                    let codes = random_codes(cfg, (rows * cols).div_ceil(cfg.c), rows as u64);
                    let (meta, records) = packed_tensor(cfg, rows, cols, -12, &codes);
                    (records, Some(meta))
                }
            };
            cases.push(Case {
                rows,
                cols,
                form,
                bytes,
                meta,
                runs: Vec::new(),
            });
        }
    }
    fn matrix(c: &Case) -> Option<Matrix<'_>> {
        match (&c.meta, c.form) {
            (Some(meta), _) => Some(Matrix::packed(meta, &c.bytes, c.rows, c.cols)),
            (None, Form::Dense(d)) => Matrix::dense(d, &c.bytes, c.rows, c.cols),
            _ => None,
        }
    }
    for round in 0..=repeat {
        for c in &mut cases {
            let Some(m) = matrix(c) else { continue };
            let x: Vec<f32> = (0..c.cols)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0)
                .collect();
            let mut y = vec![0.0; c.rows];
            // Repeat the product for at least 50 ms so one timing is not dominated by noise.
            let t = Instant::now();
            let mut n = 0;
            while n == 0 || t.elapsed().as_secs_f64() < 0.05 {
                m.matvec(kernel, &x, &mut y);
                n += 1;
            }
            if round > 0 {
                c.runs.push(t.elapsed().as_secs_f64() / f64::from(n));
            }
        }
    }
    cases
        .into_iter()
        .map(|c| {
            let mut sorted = c.runs.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
            let weights = (c.rows * c.cols) as f64;
            MatvecSpeed {
                rows: c.rows,
                cols: c.cols,
                form: c.form.name(),
                bits_per_weight: c.bytes.len() as f64 * 8.0 / weights,
                kernel: kernel.name(),
                median_s: median,
                weights_per_s: weights / median,
                bytes_per_s: c.bytes.len() as f64 / median,
                runs_s: c.runs,
            }
        })
        .collect()
}

/// The tensors a synthetic packed copy of `model` fills with random records: the default
/// compression rule's, as (name, weights).
pub fn synthetic_layers(model: &Model) -> Vec<(String, usize)> {
    model
        .tensors()
        .iter()
        .filter(|t| default_rule(&t.name, &t.shape, t.dtype))
        .map(|t| (t.name.clone(), t.numel()))
        .collect()
}

/// Writes `out`, a packed file of the model at `original` whose linear layers
/// ([`synthetic_layers`]) hold random records of the configuration `config_of` gives each
/// (one preset, or what an allocation chose) and whose other tensors are stored as they are:
/// a model of the real size and layout for speed and memory runs, without the search's hours.
/// Its outputs are meaningless, but each block's exponent gives it the original block's
/// magnitude ([`fit_exponents`]), so activations keep a real model's range: with uniformly
/// random exponents they overflowed and underflowed, and the subnormal products' microcode
/// assists made the kernels look up to 1.6× slower than on a real compression.
pub fn write_random_packed(
    original: &Path,
    config_of: &dyn Fn(&str) -> Config,
    out: &Path,
) -> Result<usize, ModelError> {
    let model = Model::open(original)?;
    let mut records = Vec::new();
    let mut compressed = Vec::new();
    let mut plain = Vec::new();
    for t in model.tensors() {
        if default_rule(&t.name, &t.shape, t.dtype) {
            let cfg = config_of(&t.name);
            let mut codes = random_codes(cfg, t.numel().div_ceil(cfg.c), records.len() as u64);
            let e_base = fit_exponents(&mut codes, &model.to_f32(t)?, cfg);
            let bytes = pack_records(codes.iter().map(|b| encode_record(b, cfg)), cfg);
            records.push((t, cfg, e_base, bytes));
        } else {
            plain.push(PlainEntry {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                data: model.bytes(t),
            });
        }
    }
    for (t, cfg, e_base, bytes) in &records {
        compressed.push(PackedOut {
            head: CompressedHead {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                config: *cfg,
                e_base: *e_base,
                blocks: t.numel().div_ceil(cfg.c),
                relmse: None,
            },
            crc32: crc32fast::hash(bytes),
            records: Payload::Bytes(bytes),
        });
    }
    let order: Vec<String> = model.tensors().iter().map(|t| t.name.clone()).collect();
    write_packed_out(out, compressed, &plain, &order, &BTreeMap::new())?;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::source::StoredModel;

    /// Every linear layer of a synthetic packed model has about its original's RMS (random
    /// basis directions, fitted exponents), and the other tensors are the original's bytes.
    #[test]
    fn synthetic_layers_keep_the_original_magnitudes() {
        let original = Path::new("tests/fixtures/eval/llama");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("synthetic.safetensors");
        let layers = write_random_packed(original, &|_| Config::FOUR_BIT, &out).unwrap();
        let (orig, synth) = (
            StoredModel::open(original).unwrap(),
            StoredModel::open(&out).unwrap(),
        );
        let rms = |v: &[f32]| {
            (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let mut linear = 0;
        for (name, _) in orig.float_tensors() {
            let (a, b) = (orig.to_f32(&name).unwrap(), synth.to_f32(&name).unwrap());
            if a == b {
                continue;
            }
            linear += 1;
            let ratio = rms(&b) / rms(&a);
            assert!((0.5..2.0).contains(&ratio), "{name}: RMS ratio {ratio}");
        }
        assert_eq!(linear, layers);
        assert!(layers > 0);
    }
}
