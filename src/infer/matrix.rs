//! A weight matrix in the form its file stores it, read from the memory map: plain f32, f16 or
//! bf16 rows, or SeedLM block records that are never expanded into a weight copy. One token's
//! product runs the fused row kernels; a batch of tokens (a prompt, an evaluation window)
//! decodes a few rows at a time into a small f32 tile and multiplies it with candle's matmul.

use crate::infer::kernel::lanes::Lines;
use crate::infer::kernel::{Kernel, SeedMatrix, seed_row_exact};
use crate::io::dtype::Dtype;
use crate::io::packed::PackedMeta;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// How a matrix is stored.
#[derive(Debug)]
pub enum Storage<'a> {
    /// Plain values (F32, F16 or BF16), row-major.
    Dense {
        /// Element type.
        dtype: Dtype,
        /// The values as the file holds them.
        bytes: &'a [u8],
    },
    /// SeedLM block records.
    Seed(SeedMatrix<'a>),
}

/// A `rows × cols` weight matrix (a tensor of any rank, viewed as its first dimension by the
/// rest) in its stored form.
#[derive(Debug)]
pub struct Matrix<'a> {
    rows: usize,
    cols: usize,
    storage: Storage<'a>,
}

/// Rows per parallel task of a product: enough work to amortise scheduling.
const ROWS_PER_TASK: usize = 16;
/// Tokens up to which a packed matrix's batched product runs the fused kernels per token.
const FUSED_TOKENS: usize = 8;
/// f32 values in one decoded tile of a batched product (about 4 MB).
const TILE_VALUES: usize = 1 << 20;

impl<'a> Matrix<'a> {
    /// A matrix over stored values; `None` when `dtype` is not F32, F16 or BF16 or `bytes` has
    /// another length.
    pub fn dense(dtype: Dtype, bytes: &'a [u8], rows: usize, cols: usize) -> Option<Self> {
        let ok = matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
            && rows.checked_mul(cols)?.checked_mul(dtype.bitsize() / 8)? == bytes.len();
        ok.then_some(Matrix {
            rows,
            cols,
            storage: Storage::Dense { dtype, bytes },
        })
    }

    /// A matrix over the records of a packed tensor (checked by the packed reader).
    pub fn packed(meta: &PackedMeta, records: &'a [u8], rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            storage: Storage::Seed(SeedMatrix::new(meta, records, cols)),
        }
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input width.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The stored form.
    pub fn storage(&self) -> &Storage<'a> {
        &self.storage
    }

    /// Bytes the matrix occupies in its file.
    pub fn stored_bytes(&self) -> usize {
        match &self.storage {
            Storage::Dense { bytes, .. } => bytes.len(),
            Storage::Seed(s) => s.records().len(),
        }
    }

    /// `y = W·x` by `kernel`, rows split across the current rayon pool.
    pub fn matvec(&self, kernel: Kernel, x: &[f32], y: &mut [f32]) {
        assert_eq!((x.len(), y.len()), (self.cols, self.rows), "matvec shapes");
        let xdup = match &self.storage {
            Storage::Seed(s) if kernel != Kernel::Portable => {
                s.lanes().map(|l| l.expand(x, self.rows))
            }
            _ => None,
        };
        y.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, ys)| {
                for (i, out) in ys.iter_mut().enumerate() {
                    *out = self.row_dot(kernel, task * ROWS_PER_TASK + i, x, xdup.as_deref());
                }
            });
    }

    fn row_dot(&self, kernel: Kernel, r: usize, x: &[f32], xdup: Option<&[Lines]>) -> f32 {
        match &self.storage {
            Storage::Dense { dtype, bytes } => {
                let width = self.cols * dtype.bitsize() / 8;
                kernel.dense_dot(*dtype, &bytes[r * width..][..width], x)
            }
            Storage::Seed(s) => s
                .lanes()
                .zip(xdup)
                .and_then(|(l, xd)| kernel.lane_row(l, r, xd))
                .unwrap_or_else(|| seed_row_exact(s, r, x)),
        }
    }

    /// Rows `first..first + out.len() / cols` as f32 (a packed tensor's exact reconstruction),
    /// by the fastest kernel.
    pub fn decode_rows(&self, first: usize, out: &mut [f32]) {
        self.decode_rows_by(Kernel::best_available(), first, out);
    }

    /// [`Self::decode_rows`] by `kernel` (every kernel gives the same values, bit for bit).
    pub fn decode_rows_by(&self, kernel: Kernel, first: usize, out: &mut [f32]) {
        match &self.storage {
            Storage::Dense { dtype, bytes } => {
                use half::slice::HalfFloatSliceExt;
                let size = dtype.bitsize() / 8;
                let raw = &bytes[first * self.cols * size..][..out.len() * size];
                // The slice conversions run 8 values at a time (F16C); one value at a time they
                // took a sixth of a prompt's time. A file's data need not be aligned, so a
                // misaligned tensor takes the value-by-value path.
                let done = cfg!(target_endian = "little")
                    && match dtype {
                        Dtype::F16 => bytemuck::try_cast_slice::<u8, half::f16>(raw)
                            .map(|v| v.convert_to_f32_slice(out))
                            .is_ok(),
                        Dtype::BF16 => bytemuck::try_cast_slice::<u8, half::bf16>(raw)
                            .map(|v| v.convert_to_f32_slice(out))
                            .is_ok(),
                        _ => bytemuck::try_cast_slice::<u8, f32>(raw)
                            .map(|v| out.copy_from_slice(v))
                            .is_ok(),
                    };
                if !done {
                    for (o, v) in out.iter_mut().zip(raw.chunks_exact(size)) {
                        *o = match dtype {
                            Dtype::F16 => half::f16::from_le_bytes([v[0], v[1]]).to_f32(),
                            Dtype::BF16 => half::bf16::from_le_bytes([v[0], v[1]]).to_f32(),
                            _ => f32::from_le_bytes([v[0], v[1], v[2], v[3]]),
                        };
                    }
                }
            }
            Storage::Seed(s) => s.decode(kernel, first * self.cols, out),
        }
    }

    /// `X·Wᵀ` for the `n` rows of `x` (`[n, cols]`), as a `[n, rows]` tensor: one row at a
    /// time through the fused kernels when `n` is 1 (up to [`FUSED_TOKENS`] for packed
    /// matrices), else through decoded tiles of rows.
    pub fn matmul(&self, kernel: Kernel, x: &[f32], n: usize) -> candle_core::Result<Tensor> {
        // Decoding a packed matrix costs about as much as a dozen fused products, so a few
        // tokens go through the fused kernels one at a time.
        let fused = match self.storage {
            Storage::Seed(_) => FUSED_TOKENS,
            Storage::Dense { .. } => 1,
        };
        if n <= fused {
            let mut y = vec![0.0; n * self.rows];
            for (xt, yt) in x.chunks_exact(self.cols).zip(y.chunks_exact_mut(self.rows)) {
                self.matvec(kernel, xt, yt);
            }
            return Tensor::from_vec(y, (n, self.rows), &Device::Cpu);
        }
        let xt = Tensor::from_slice(x, (n, self.cols), &Device::Cpu)?;
        let tile = (TILE_VALUES / self.cols.max(1)).clamp(ROWS_PER_TASK, self.rows.max(1));
        let mut parts = Vec::new();
        for first in (0..self.rows).step_by(tile) {
            let t = tile.min(self.rows - first);
            let mut w = vec![0.0f32; t * self.cols];
            w.par_chunks_mut(self.cols)
                .enumerate()
                .for_each(|(i, row)| self.decode_rows_by(kernel, first + i, row));
            let w = Tensor::from_vec(w, (t, self.cols), &Device::Cpu)?;
            parts.push(xt.matmul(&w.t()?)?);
        }
        Tensor::cat(&parts, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::infer::kernel::lanes::LaneMatrix;
    use crate::infer::synthetic::{packed_tensor, random_codes};
    use crate::search::compress::CompressedTensor;
    use rand::{Rng, SeedableRng};

    /// A `rows × cols` tensor of random (valid) records of `cfg`: the compressed tensor, its
    /// metadata and records.
    fn random_packed(
        cfg: Config,
        rows: usize,
        cols: usize,
        seed: u64,
    ) -> (CompressedTensor, PackedMeta, Vec<u8>) {
        let len = rows * cols;
        let blocks = random_codes(cfg, len.div_ceil(cfg.c), seed);
        let (meta, records) = packed_tensor(cfg, rows, cols, -14, &blocks);
        let t = CompressedTensor {
            config: cfg,
            e_base: -14,
            len,
            blocks,
        };
        (t, meta, records)
    }

    /// On every kernel this CPU runs, `m·x` equals the product with the f32 weights `w` within
    /// f32 rounding ([`assert_rows_within_rounding`]).
    fn assert_products_within_rounding(m: &Matrix, w: &[f32], x: &[f32], what: &str) {
        for kernel in Kernel::available() {
            let mut y = vec![0.0; m.rows()];
            m.matvec(kernel, x, &mut y);
            assert_rows_within_rounding(&y, w, x, &format!("{what} {kernel:?}"));
        }
    }

    /// `y` equals the product of the f32 weights `w` with `x` within f32 rounding:
    /// |y − y_ref| ≤ 1e-5·Σ_j |W_ij·x_j| for every row.
    fn assert_rows_within_rounding(y: &[f32], w: &[f32], x: &[f32], what: &str) {
        let cols = x.len();
        for (r, &got) in y.iter().enumerate() {
            let wr = &w[r * cols..][..cols];
            let want: f64 = wr
                .iter()
                .zip(x)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let bound: f64 = wr
                .iter()
                .zip(x)
                .map(|(&a, &b)| f64::from(a * b).abs())
                .sum();
            assert!(
                (f64::from(got) - want).abs() <= 1e-5 * bound,
                "{what} row {r}: {got} vs {want} (bound {bound})"
            );
        }
    }

    /// The AVX2 kernel runs the lane layouts of both kernels (its own, and the AVX-512
    /// kernel's, which an AVX-512 CPU's tables have) within f32 rounding of the exact product,
    /// whichever of them the CPU running the tests lays its tables out for.
    #[test]
    fn the_avx2_kernel_runs_both_lane_layouts() {
        assert!(
            Kernel::available().contains(&Kernel::Avx2) || !cfg!(target_arch = "x86_64"),
            "the x86-64 machines that run the tests have AVX2"
        );
        if !Kernel::available().contains(&Kernel::Avx2) {
            return;
        }
        let mut configs: Vec<Config> = crate::core::config::MENU.to_vec();
        configs.extend(Config::LARGER_P.iter().map(|(_, c)| *c));
        // Odd K: records of an odd number of bits, so four start at another bit than the
        // four before them.
        configs.extend([
            Config { c: 8, p: 2, k: 8 },
            Config { c: 20, p: 3, k: 12 },
            Config { c: 8, p: 3, k: 13 },
            Config { c: 12, p: 5, k: 11 },
            Config { c: 9, p: 3, k: 15 },
        ]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (n, cfg) in configs.iter().enumerate() {
            for cols in [cfg.c * 9, cfg.c * 7 + 3] {
                let rows = 21;
                let (t, meta, records) = random_packed(*cfg, rows, cols, n as u64);
                let w = t.reconstruct();
                let x: Vec<f32> = (0..cols).map(|_| rng.random_range(-2.0..2.0)).collect();
                for layout in [Kernel::Avx512, Kernel::Avx2] {
                    let lanes =
                        LaneMatrix::new(&records, *cfg, meta.e_base, cols, layout).expect("K ≤ 16");
                    let xd = lanes.expand(&x, rows);
                    let y: Vec<f32> = (0..rows)
                        .map(|r| Kernel::Avx2.lane_row(&lanes, r, &xd).expect("a lane path"))
                        .collect();
                    let what = format!("{cfg:?} cols {cols}, laid out for {layout:?}");
                    assert_rows_within_rounding(&y, &w, &x, &what);
                }
            }
        }
    }

    /// The fused product equals the product with the decompressed f32 weights within f32
    /// rounding, |y − y_ref| ≤ 1e-5·Σ_j |W_ij·x_j|, on every kernel this CPU runs; and decoded
    /// rows equal the reconstruction bit for bit on every kernel.
    #[test]
    fn fused_matvec_matches_the_decompressed_weights_on_every_kernel() {
        let mut configs: Vec<Config> = crate::core::config::MENU.to_vec();
        configs.extend(Config::LARGER_P.iter().map(|(_, c)| *c));
        for k in [2, 12, 16, 24] {
            configs.push(Config {
                c: 8,
                p: 2.min(k as usize),
                k,
            });
            configs.push(Config {
                c: 12,
                p: 4.min(k as usize),
                k,
            });
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (n, cfg) in configs.iter().enumerate() {
            // A width that is whole blocks, then two that are not (the last spans batches).
            for cols in [cfg.c * 9, cfg.c * 7 + 3, cfg.c * 37 + 5] {
                let rows = 21;
                let (t, meta, records) = random_packed(*cfg, rows, cols, n as u64);
                let w = t.reconstruct();
                let x: Vec<f32> = (0..cols).map(|_| rng.random_range(-2.0..2.0)).collect();
                let m = Matrix::packed(&meta, &records, rows, cols);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                for kernel in Kernel::available() {
                    let mut row = vec![0.0; cols];
                    for r in 0..rows {
                        m.decode_rows_by(kernel, r, &mut row);
                        let want = bits(&w[r * cols..][..cols]);
                        assert_eq!(bits(&row), want, "{cfg:?} {kernel:?} decode row {r}");
                    }
                    // Several rows at once, starting inside a block.
                    let mut tile = vec![0.0; (rows - 1) * cols];
                    m.decode_rows_by(kernel, 1, &mut tile);
                    assert_eq!(bits(&tile), bits(&w[cols..]), "{cfg:?} {kernel:?} tile");
                }
                assert_products_within_rounding(&m, &w, &x, &format!("{cfg:?} cols {cols}"));
            }
        }
    }

    /// A decoded row equals the reconstruction bit for bit on every kernel at every exponent
    /// base, including those whose weights are subnormal f32 (where decoding divides) and the
    /// boundary.
    #[test]
    fn decoding_is_exact_down_to_subnormal_weights() {
        for cfg in [
            Config::FOUR_BIT,
            Config::THREE_BIT,
            Config { c: 8, p: 2, k: 24 },
        ] {
            for e_base in [-150, -130, -116, -115, -101, -100, 20] {
                let (rows, cols) = (3, cfg.c * 5 + 1);
                let blocks = random_codes(cfg, (rows * cols).div_ceil(cfg.c), e_base as u64);
                let (meta, records) = packed_tensor(cfg, rows, cols, e_base, &blocks);
                let t = CompressedTensor {
                    config: cfg,
                    e_base,
                    len: rows * cols,
                    blocks,
                };
                let want = t.reconstruct();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                for kernel in Kernel::available() {
                    let mut got = vec![0.0; rows * cols];
                    Matrix::packed(&meta, &records, rows, cols).decode_rows_by(kernel, 0, &mut got);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{cfg:?} {kernel:?} e_base {e_base}"
                    );
                }
            }
        }
    }

    /// Dense rows in f32, f16 and bf16 give the product of their values on every kernel, at
    /// widths with and without a vector tail.
    #[test]
    fn dense_matvec_converts_inside_the_kernel() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for cols in [64, 200, 7] {
            let rows = 9;
            let vals: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let x: Vec<f32> = (0..cols).map(|_| rng.random_range(-1.0..1.0)).collect();
            for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
                let bytes = crate::io::dtype::from_f32(dtype, &vals).unwrap();
                let m = Matrix::dense(dtype, &bytes, rows, cols).unwrap();
                let mut w = vec![0.0; rows * cols];
                m.decode_rows(0, &mut w);
                assert_products_within_rounding(&m, &w, &x, &format!("{dtype:?} cols {cols}"));
            }
        }
    }

    /// Dense rows decode to their stored values bit for bit, whether the file's bytes are
    /// aligned for the vector conversions or not.
    #[test]
    fn dense_rows_decode_to_their_values_aligned_or_not() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let (rows, cols) = (5, 37);
        let vals: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-3.0..3.0))
            .collect();
        for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
            let want: Vec<f32> = vals
                .iter()
                .map(|&v| match dtype {
                    Dtype::F16 => half::f16::from_f32(v).to_f32(),
                    Dtype::BF16 => half::bf16::from_f32(v).to_f32(),
                    _ => v,
                })
                .collect();
            let bytes = crate::io::dtype::from_f32(dtype, &vals).unwrap();
            let mut shifted = vec![0u8; bytes.len() + 1];
            shifted[1..].copy_from_slice(&bytes);
            for raw in [&bytes[..], &shifted[1..]] {
                let m = Matrix::dense(dtype, raw, rows, cols).unwrap();
                let mut got = vec![0.0; 3 * cols];
                m.decode_rows(2, &mut got);
                let same = got
                    .iter()
                    .zip(&want[2 * cols..])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{dtype:?}, bytes at {:p}", raw.as_ptr());
            }
        }
    }

    /// A batch gives each token's matvec, both when it runs the fused kernels per token and
    /// when it goes through decoded tiles.
    #[test]
    fn batched_product_equals_one_token_at_a_time() {
        let (_, meta, records) = random_packed(Config::FOUR_BIT, 40, 64, 9);
        let m = Matrix::packed(&meta, &records, 40, 64);
        for n in [3, FUSED_TOKENS + 3] {
            let x: Vec<f32> = (0..n * 64)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let y = m
                .matmul(Kernel::Portable, &x, n)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(y.len(), n);
            for (t, row) in y.iter().enumerate() {
                let mut one = vec![0.0; 40];
                m.matvec(Kernel::Portable, &x[t * 64..][..64], &mut one);
                for (a, b) in row.iter().zip(&one) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{n} tokens: {a} vs {b}"
                    );
                }
            }
        }
    }
}
