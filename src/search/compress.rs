//! Whole-tensor compression: blocking, the per-tensor exponent base, parallel search with
//! progress and cancel, reconstruction and error figures.

use crate::core::basis::Basis;
use crate::core::config::{Config, MAX_P};
use crate::core::control::Control;
use crate::core::quant::{E_CODES, ExpRange, Quantized, reconstruct_into};
use crate::search::Searcher;
use rayon::prelude::*;
use std::sync::atomic::Ordering;

/// Blocks per parallel work item: small enough for smooth progress and prompt cancel.
const CHUNK_BLOCKS: usize = 256;
/// Largest blocks searched with an unbounded exponent to place the tensor's exponent range.
const PROBE_BLOCKS: usize = 256;

/// One block as stored: seed, 4-bit exponent code, and P coefficients in [−8, 7].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlockCode {
    /// LFSR register state in [1, 2^K − 1].
    pub seed: u32,
    /// Exponent code E in [0, 15]; `e = e_base + E`.
    pub e_code: u8,
    /// Coefficients; entries past P are zero.
    pub q: [i8; MAX_P],
}

/// `n` random valid block codes of `cfg` (seeds 1..2^K − 1, any exponent and coefficients),
/// reproducible from `seed`: the weights of speed measurements, simulations and tests, whose
/// work does not depend on the values.
pub fn random_codes(cfg: Config, n: usize, seed: u64) -> Vec<BlockCode> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut q = [0i8; MAX_P];
            q[..cfg.p]
                .iter_mut()
                .for_each(|v| *v = rng.random_range(-8..=7));
            BlockCode {
                seed: rng.random_range(1..1u32 << cfg.k),
                e_code: rng.random_range(0..16),
                q,
            }
        })
        .collect()
}

/// A compressed tensor: configuration, exponent base and block codes.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressedTensor {
    /// Configuration used.
    pub config: Config,
    /// Exponent of code E = 0.
    pub e_base: i32,
    /// Number of original elements (the last block may be zero-padded).
    pub len: usize,
    /// Block codes in tensor order.
    pub blocks: Vec<BlockCode>,
}

/// Why compression stopped.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CompressError {
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// A weight is NaN or infinite.
    #[error("weight {index} is {value} (not finite)")]
    NonFinite {
        /// Flat (row-major) element index.
        index: usize,
        /// The offending value.
        value: f32,
    },
}

/// Error figures of a compressed tensor (padding excluded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorStats {
    /// Σ (w − ŵ)².
    pub sq_err: f64,
    /// Σ w².
    pub sq_norm: f64,
    /// Per-block Σ (w − ŵ)².
    pub block_sq_err: Vec<f32>,
    /// Per-block Σ w².
    pub block_sq_norm: Vec<f32>,
}

impl ErrorStats {
    /// Compares `original` with `recon` block by block.
    pub fn measure(original: &[f32], recon: &[f32], c: usize) -> ErrorStats {
        Self::of_blocks(&block_sums(original, recon, c))
    }

    /// The figures of (Σ(w − ŵ)², Σw²) of every block, in block order.
    fn of_blocks(per_block: &[(f64, f64)]) -> ErrorStats {
        let mut sums = ErrorSums::default();
        sums.add_blocks(per_block);
        ErrorStats {
            sq_err: sums.sq_err,
            sq_norm: sums.sq_norm,
            block_sq_err: per_block.iter().map(|&(e, _)| e as f32).collect(),
            block_sq_norm: per_block.iter().map(|&(_, n)| n as f32).collect(),
        }
    }

    /// Relative MSE Σ(w − ŵ)² / Σw² (0 for an all-zero tensor).
    pub fn relmse(&self) -> f64 {
        relmse(self.sq_err, self.sq_norm)
    }

    /// Signal-to-noise ratio in dB, −10·log10(relative MSE).
    pub fn snr_db(&self) -> f64 {
        snr_db(self.relmse())
    }

    /// Relative MSE of block `b`.
    pub fn block_relmse(&self, b: usize) -> f64 {
        relmse(
            f64::from(self.block_sq_err[b]),
            f64::from(self.block_sq_norm[b]),
        )
    }
}

/// Σ(w − ŵ)² and Σw² of consecutive pieces of a tensor, added block by block in block order:
/// over the whole tensor the very sums [`ErrorStats::measure`] gives, bit for bit, without the
/// whole tensor in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorSums {
    /// Σ (w − ŵ)².
    pub sq_err: f64,
    /// Σ w².
    pub sq_norm: f64,
}

impl ErrorSums {
    /// Adds the next piece: `original` and `recon` of whole blocks of `c` (the tensor's last
    /// block may be short).
    pub fn add(&mut self, original: &[f32], recon: &[f32], c: usize) {
        self.add_blocks(&block_sums(original, recon, c));
    }

    fn add_blocks(&mut self, per_block: &[(f64, f64)]) {
        // Summed in block order so the totals do not depend on the thread count.
        for &(e, n) in per_block {
            self.sq_err += e;
            self.sq_norm += n;
        }
    }

    /// Relative MSE Σ(w − ŵ)² / Σw².
    pub fn relmse(&self) -> f64 {
        relmse(self.sq_err, self.sq_norm)
    }
}

/// (Σ(w − ŵ)², Σw²) of each block, in parallel.
fn block_sums(original: &[f32], recon: &[f32], c: usize) -> Vec<(f64, f64)> {
    original
        .par_chunks(c)
        .zip(recon.par_chunks(c))
        .map(|(w, r)| block_sum(w, r))
        .collect()
}

/// (Σ(w − ŵ)², Σw²) of one block.
fn block_sum(w: &[f32], r: &[f32]) -> (f64, f64) {
    let e: f64 = w
        .iter()
        .zip(r)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    let n: f64 = w.iter().map(|&a| f64::from(a).powi(2)).sum();
    (e, n)
}

/// Relative MSE from sums of squares; 0 when both are 0.
pub fn relmse(sq_err: f64, sq_norm: f64) -> f64 {
    if sq_norm > 0.0 {
        sq_err / sq_norm
    } else if sq_err > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// SNR in dB of a relative MSE (infinite for an exact reconstruction).
pub fn snr_db(relmse: f64) -> f64 {
    -10.0 * relmse.log10()
}

impl CompressedTensor {
    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The exponent of block `b`.
    pub fn exponent(&self, b: usize) -> i32 {
        self.e_base + i32::from(self.blocks[b].e_code)
    }

    /// Reconstructs block `b` into `out` (C long) with the exact decoder arithmetic.
    pub fn reconstruct_block(&self, basis: &Basis, b: usize, out: &mut [f64]) {
        let cfg = self.config;
        let code = &self.blocks[b];
        let mut v = vec![0i64; cfg.c * cfg.p];
        basis.centred_at(basis.index_of(code.seed), &mut v);
        let quant = Quantized {
            e: self.exponent(b),
            q: code.q,
        };
        reconstruct_into(&v, cfg.p, &quant, basis.denom(), out);
    }

    /// Elements `elems` of ŵ, decoding only the blocks that hold them.
    pub fn reconstruct_range(&self, elems: std::ops::Range<usize>) -> Vec<f32> {
        let c = self.config.c;
        let basis = Basis::for_k(self.config.k);
        let end = elems.end.min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(elems.start));
        let mut tmp = [0.0f64; crate::core::config::MAX_C];
        for b in elems.start / c..end.div_ceil(c) {
            self.reconstruct_block(&basis, b, &mut tmp[..c]);
            let (lo, hi) = ((b * c).max(elems.start), ((b + 1) * c).min(end));
            out.extend(tmp[lo - b * c..hi - b * c].iter().map(|&x| x as f32));
        }
        out
    }

    /// The reconstructed tensor ŵ (`len` values, padding dropped), in parallel.
    pub fn reconstruct(&self) -> Vec<f32> {
        let c = self.config.c;
        let basis = Basis::for_k(self.config.k);
        let mut out = vec![0.0f32; self.num_blocks() * c];
        out.par_chunks_mut(c).enumerate().for_each(|(b, o)| {
            let mut tmp = [0.0f64; crate::core::config::MAX_C];
            self.reconstruct_block(&basis, b, &mut tmp[..c]);
            for (d, s) in o.iter_mut().zip(&tmp) {
                *d = *s as f32;
            }
        });
        out.truncate(self.len);
        out
    }
}

/// Compresses `data` (row-major, flattened) with `cfg` on the current rayon pool.
///
/// `ctl.progress.done` advances as blocks finish (it is added to, so one
/// [`Progress`](crate::core::control::Progress) can span many tensors); raising `ctl.cancel`
/// stops within one chunk per worker.
pub fn compress(
    data: &[f32],
    cfg: Config,
    ctl: Control<'_>,
) -> Result<(CompressedTensor, ErrorStats), CompressError> {
    compress_with(data, &Searcher::new(cfg), ctl)
}

/// [`compress`] with a given searcher (its configuration, rounding and kernel).
pub fn compress_with(
    data: &[f32],
    searcher: &Searcher,
    ctl: Control<'_>,
) -> Result<(CompressedTensor, ErrorStats), CompressError> {
    check_finite(data)?;
    let cfg = searcher.config();
    let padded = pad_blocks(data, cfg.c);
    let e_base = choose_e_base(searcher, &padded);
    let blocks = search_blocks(searcher, &padded, e_base, ctl)?;
    Ok(measured(data, cfg, e_base, blocks))
}

/// The compressed tensor of `blocks` and its error figures against `data`.
fn measured(
    data: &[f32],
    cfg: Config,
    e_base: i32,
    blocks: Vec<BlockCode>,
) -> (CompressedTensor, ErrorStats) {
    let tensor = CompressedTensor {
        config: cfg,
        e_base,
        len: data.len(),
        blocks,
    };
    // Block by block: a reconstruction of the whole tensor would be one more copy of it.
    let basis = Basis::for_k(cfg.k);
    let per_block: Vec<(f64, f64)> = data
        .par_chunks(cfg.c)
        .enumerate()
        .map(|(b, w)| {
            let mut tmp = [0.0f64; crate::core::config::MAX_C];
            tensor.reconstruct_block(&basis, b, &mut tmp[..cfg.c]);
            let mut r = [0.0f32; crate::core::config::MAX_C];
            for (d, s) in r.iter_mut().zip(&tmp) {
                *d = *s as f32;
            }
            block_sum(w, &r[..w.len()])
        })
        .collect();
    (tensor, ErrorStats::of_blocks(&per_block))
}

/// Smallest channel weight of an activation-weighted search, relative to the largest: a channel
/// the calibration never excited still counts a little, and the scan's bounds stay tight.
pub const MIN_RELATIVE_WEIGHT: f64 = 1e-3;

/// [`compress_with`] under the activation-weighted objective `Σ_j d_j·(w_j − ŵ_j)²`, for a
/// row-major weight whose rows are `d.len()` long and `d[j]` is the importance (e.g. E[x_j²]
/// of the layer's input) of input channel j: each block is searched exactly under its weights
/// ([`search_blocks_weighted`]). The exponent base is the data-free one. The format and decoder
/// are unchanged; the returned figures are plain (unweighted) errors.
pub fn compress_weighted(
    data: &[f32],
    d: &[f64],
    searcher: &Searcher,
    ctl: Control<'_>,
) -> Result<(CompressedTensor, ErrorStats), CompressError> {
    check_finite(data)?;
    let cfg = searcher.config();
    let padded = pad_blocks(data, cfg.c);
    let e_base = choose_e_base(searcher, &padded);
    let blocks = search_blocks_weighted(searcher, &padded, 0, d, e_base, ctl)?;
    Ok(measured(data, cfg, e_base, blocks))
}

/// [`search_blocks`] under the activation-weighted objective of [`compress_weighted`], for
/// `padded` holding the tensor's blocks from block `first` on (a shard's row range gives the
/// codes the whole tensor's search gives). A block's weights depend only on its column offset
/// (`b·C mod d.len()`, several when blocks straddle rows), so one weighted searcher serves
/// every block of an offset, and of every offset with the same weights. Weights below [`MIN_RELATIVE_WEIGHT`] of the largest are raised to
/// it; all-zero or non-finite `d` is uniform.
pub fn search_blocks_weighted(
    searcher: &Searcher,
    padded: &[f32],
    first: usize,
    d: &[f64],
    e_base: i32,
    ctl: Control<'_>,
) -> Result<Vec<BlockCode>, CompressError> {
    let c = searcher.config().c;
    let cols = d.len().max(1);
    let max = d.iter().fold(0.0f64, |m, &x| m.max(x));
    let floor = max * MIN_RELATIVE_WEIGHT;
    let weight = |j: usize| {
        if max > 0.0 && max.is_finite() && d[j].is_finite() {
            d[j].max(floor)
        } else {
            1.0
        }
    };
    let range = ExpRange::from_base(e_base);
    // The padding of a last partial block takes the weights of the columns it wraps to.
    let weights_at =
        |off: usize| -> Vec<f64> { (0..c).map(|i| weight((off + i) % cols)).collect() };
    // Offsets with the same weights (bit for bit) share one searcher: its tables cost some
    // 65 535 factorisations. Blocks `cols` apart lie at the same offset, so each of the first
    // `cols` blocks keys its offset's weights once and brings the later blocks of that offset
    // along. Groups are in the order of their weights, so deterministic, and their blocks in
    // block order, so chunks read the data in order.
    let n_blocks = padded.len() / c;
    let mut groups: std::collections::BTreeMap<Vec<u64>, Vec<usize>> = Default::default();
    for b in 0..n_blocks.min(cols) {
        let key = weights_at((first + b) * c % cols)
            .iter()
            .map(|x| x.to_bits())
            .collect();
        groups
            .entry(key)
            .or_default()
            .extend((b..n_blocks).step_by(cols));
    }
    for members in groups.values_mut() {
        members.sort_unstable();
    }
    let found: Vec<Vec<BlockCode>> = groups
        .par_iter()
        .map(|(bits, members)| {
            if ctl.cancelled() {
                return Err(CompressError::Cancelled);
            }
            let dw: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
            let s = searcher
                .weighted(&dw)
                .expect("weights are positive and C long");
            // In parallel too: one group may hold every block (uniform weights).
            let codes: Vec<Vec<BlockCode>> = members
                .par_chunks(CHUNK_BLOCKS)
                .map(|chunk| {
                    if ctl.cancelled() {
                        return Err(CompressError::Cancelled);
                    }
                    let w: Vec<f32> = chunk
                        .iter()
                        .flat_map(|&b| &padded[b * c..(b + 1) * c])
                        .copied()
                        .collect();
                    let codes = s
                        .search_all(&w, range)
                        .iter()
                        .map(|r| code_of(r, e_base))
                        .collect();
                    ctl.progress
                        .done
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(codes)
                })
                .collect::<Result<_, _>>()?;
            Ok(codes.concat())
        })
        .collect::<Result<_, _>>()?;
    let mut blocks = vec![BlockCode::default(); padded.len() / c];
    for ((_, members), codes) in groups.iter().zip(found) {
        for (&b, code) in members.iter().zip(codes) {
            blocks[b] = code;
        }
    }
    Ok(blocks)
}

/// The stored code of a search result in the range of `e_base`.
fn code_of(r: &crate::search::BlockResult, e_base: i32) -> BlockCode {
    BlockCode {
        seed: r.seed,
        e_code: (r.quant.e - e_base) as u8,
        q: r.quant.q,
    }
}

/// `data` cut into whole blocks of `c`, the last one filled with zeros.
pub fn pad_blocks(data: &[f32], c: usize) -> std::borrow::Cow<'_, [f32]> {
    if data.len().is_multiple_of(c) {
        // Whole blocks already: a copy would only double the memory.
        return data.into();
    }
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(c) * c, 0.0);
    padded.into()
}

/// Searches every block of `padded` (whole blocks, see [`pad_blocks`]) in the exponent range
/// of `e_base`. Each block's code depends only on its weights and `e_base` (docs/DESIGN.md §5, item 7), so
/// a block range of a tensor searched with the whole tensor's `e_base` gives the very codes the
/// whole-tensor compression gives; sharded compression relies on this.
pub fn search_blocks(
    searcher: &Searcher,
    padded: &[f32],
    e_base: i32,
    ctl: Control<'_>,
) -> Result<Vec<BlockCode>, CompressError> {
    let c = searcher.config().c;
    let range = ExpRange::from_base(e_base);
    let mut blocks = vec![BlockCode::default(); padded.len() / c];
    blocks
        .par_chunks_mut(CHUNK_BLOCKS)
        .zip(padded.par_chunks(CHUNK_BLOCKS * c))
        .try_for_each(|(codes, w)| {
            if ctl.cancelled() {
                return Err(CompressError::Cancelled);
            }
            let res = searcher.search_all(w, range);
            for (code, r) in codes.iter_mut().zip(&res) {
                *code = code_of(r, e_base);
            }
            ctl.progress
                .done
                .fetch_add(codes.len() as u64, Ordering::Relaxed);
            Ok(())
        })?;
    Ok(blocks)
}

/// The first weight of `data` that is NaN or infinite, as an error.
pub fn check_finite(data: &[f32]) -> Result<(), CompressError> {
    match data.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        Some((index, &value)) => Err(CompressError::NonFinite { index, value }),
        None => Ok(()),
    }
}

/// Picks `e_base` so the largest blocks keep their natural exponent at the top of the 16-code
/// range: the largest-magnitude blocks are searched with no exponent limit, and the largest
/// exponent they choose becomes `e_base + 15`. `padded` is the whole tensor as by
/// [`pad_blocks`].
pub fn choose_e_base(searcher: &Searcher, padded: &[f32]) -> i32 {
    let c = searcher.config().c;
    let mut order: Vec<(f32, usize)> = padded
        .chunks(c)
        .enumerate()
        .map(|(b, w)| (w.iter().fold(0.0f32, |m, x| m.max(x.abs())), b))
        .filter(|(m, _)| *m > 0.0)
        .collect();
    if order.is_empty() {
        return crate::core::quant::DEFAULT_E_BASE;
    }
    let k = PROBE_BLOCKS.min(order.len());
    order.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    // Gathered into one slice so the probes are searched in full kernel batches.
    let probes: Vec<f32> = order[..k]
        .iter()
        .flat_map(|&(_, b)| &padded[b * c..(b + 1) * c])
        .copied()
        .collect();
    let e_top = probes
        .par_chunks(crate::search::BATCH * c)
        .flat_map_iter(|chunk| searcher.search_all(chunk, ExpRange::UNBOUNDED))
        // A block whose best fit is all-zero coefficients says nothing about scale.
        .filter(|r| r.quant.q.iter().any(|&q| q != 0))
        .map(|r| r.quant.e)
        .max()
        .unwrap_or(i32::MIN);
    if e_top == i32::MIN {
        crate::core::quant::DEFAULT_E_BASE
    } else {
        e_top - (E_CODES - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::control::Progress;
    use std::sync::atomic::AtomicBool;

    fn run(data: &[f32], cfg: Config) -> (CompressedTensor, ErrorStats) {
        compress(data, cfg, Control::unwatched()).unwrap()
    }

    #[test]
    fn partial_last_block_is_padded_and_dropped() {
        let data: Vec<f32> = (0..21).map(|i| (i as f32 * 0.37).sin()).collect();
        let (t, stats) = run(&data, Config::FOUR_BIT);
        assert_eq!(t.num_blocks(), 3);
        assert_eq!(t.reconstruct().len(), 21);
        assert_eq!(t.reconstruct_range(5..19), t.reconstruct()[5..19]);
        assert_eq!(t.reconstruct_range(16..30), t.reconstruct()[16..]);
        assert_eq!(stats.block_sq_err.len(), 3);
        assert!(stats.relmse() < 0.05, "relmse {}", stats.relmse());
    }

    #[test]
    fn zero_tensor_is_exact() {
        let (t, stats) = run(&[0.0; 16], Config::FOUR_BIT);
        assert!(t.blocks.iter().all(|b| b.seed == 1 && b.q == [0; MAX_P]));
        assert_eq!(stats.relmse(), 0.0);
        assert_eq!(t.reconstruct(), vec![0.0; 16]);
    }

    #[test]
    fn non_finite_is_reported_with_index() {
        let mut data = vec![0.5f32; 20];
        data[13] = f32::NAN;
        let err = compress(&data, Config::FOUR_BIT, Control::unwatched()).unwrap_err();
        assert!(matches!(err, CompressError::NonFinite { index: 13, .. }));
    }

    #[test]
    fn cancel_stops_before_work() {
        let data = vec![1.0f32; 8 * 1024];
        let err = compress(
            &data,
            Config::FOUR_BIT,
            Control::new(&Progress::default(), &AtomicBool::new(true)),
        )
        .unwrap_err();
        assert_eq!(err, CompressError::Cancelled);
    }

    #[test]
    fn scale_does_not_change_relative_error() {
        let base: Vec<f32> = (0..8 * 64)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let (_, s1) = run(&base, Config::FOUR_BIT);
        // Power-of-two scales give the very same problem; others a comparable one.
        for (scale, tol) in [
            (2f32.powi(-20), 1e-9),
            (2f32.powi(10), 1e-9),
            (1e-6, 0.2),
            (1e3, 0.2),
        ] {
            let scaled: Vec<f32> = base.iter().map(|x| x * scale).collect();
            let (t, s) = run(&scaled, Config::FOUR_BIT);
            assert!(
                (s.relmse() - s1.relmse()).abs() <= tol * s1.relmse(),
                "scale {scale}: {} vs {}",
                s.relmse(),
                s1.relmse()
            );
            assert!(
                t.blocks.iter().any(|b| b.e_code >= 14),
                "range sits on the largest blocks"
            );
        }
    }

    #[test]
    fn an_outlier_costs_no_more_search_than_other_blocks() {
        // 64×64 of N(0, 0.02) with one weight of 3e4: the tensor's exponent range starts far
        // above most blocks. Each block once cost a full rescan of every seed.
        let mut data = crate::core::random::gaussian(64 * 64, 0.02, 5);
        data[1000] = 3e4;
        let cfg = Config::FOUR_BIT;
        let (tensor, _) = run(&data, cfg);
        let searcher = Searcher::new(cfg);
        let (evaluations, tests) = (crate::search::evaluations(), crate::search::lattice_tests());
        let res = searcher.search_all(&data, ExpRange::from_base(tensor.e_base));
        let per_block = |n: u64| n as f64 / res.len() as f64;
        let evaluated = per_block(crate::search::evaluations() - evaluations);
        let tested = per_block(crate::search::lattice_tests() - tests);
        // A typical N(0, 1) block evaluates about a dozen seeds; a full rescan, 65 535.
        assert!(evaluated < 200.0, "{evaluated} exact evaluations per block");
        // Such blocks are settled by the table of short lattice vectors, not by a rescan that
        // puts ~30 000 seeds one by one to the lattice bound (≈ 200 evaluations, 29 800 tests
        // per block before); the few blocks past the table's radius still rescan.
        assert!(evaluated < 80.0, "{evaluated} exact evaluations per block");
        assert!(tested < 300.0, "{tested} lattice tests per block");
        for (r, code) in res.iter().zip(&tensor.blocks) {
            assert_eq!((r.seed, r.quant.q), (code.seed, code.q));
        }
    }

    /// Blocks straddle rows when the row length is not a multiple of C: each block is searched
    /// under the weights of the columns it covers (three offsets here), and uniform weights give
    /// the data-free codes.
    #[test]
    fn weighted_compression_uses_each_blocks_own_columns() {
        let cfg = Config::FOUR_BIT;
        let (rows, cols) = (7, 12);
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let d: Vec<f64> = (0..cols)
            .map(|j| if j % 5 == 0 { 1.0 } else { 0.01 })
            .collect();
        let searcher = Searcher::new(cfg);
        let (none, cancel) = (Progress::default(), AtomicBool::new(false));
        let ctl = Control::new(&none, &cancel);
        let (t, _) = compress_weighted(&data, &d, &searcher, ctl).unwrap();
        assert_eq!(none.done.load(Ordering::Relaxed), t.num_blocks() as u64);
        let padded = pad_blocks(&data, cfg.c);
        let range = ExpRange::from_base(t.e_base);
        for (b, code) in t.blocks.iter().enumerate() {
            let dw: Vec<f64> = (0..cfg.c).map(|i| d[(b * cfg.c + i) % cols]).collect();
            let r = searcher
                .weighted(&dw)
                .unwrap()
                .search_block(&padded[b * cfg.c..(b + 1) * cfg.c], range);
            assert_eq!(*code, code_of(&r, t.e_base), "block {b}");
        }
        let plain = compress_with(&data, &searcher, ctl).unwrap();
        let uniform = compress_weighted(&data, &[2.0; 12], &searcher, ctl).unwrap();
        assert_eq!(plain, uniform);
        assert_ne!(t.blocks, plain.0.blocks);
    }

    #[test]
    fn progress_counts_every_block() {
        let data: Vec<f32> = (0..8 * 300).map(|i| (i as f32).cos()).collect();
        let progress = Progress::default();
        compress(
            &data,
            Config::FOUR_BIT,
            Control::new(&progress, &AtomicBool::new(false)),
        )
        .unwrap();
        assert_eq!(progress.done.load(Ordering::Relaxed), 300);
    }
}
