//! Exact seed search (the paper's Algorithm 3 with docs/DESIGN.md §1's quantizer).
//!
//! Each block gets the (seed, e, q) of smallest quantized reconstruction error `‖w − U(s)·t̂‖²`
//! over all 2^K − 1 seeds; ties go to the lowest seed, then the lowest exponent.
//!
//! The search runs in two passes per block and stays exact:
//! 1. A SIMD scan scores every seed by `‖Q(s)ᵀw‖²` (the energy of w's projection on span U(s)),
//!    computed as `|L(s)⁻¹ b|²` where `b = U(s)ᵀw` and `L(s)` is the Cholesky factor of
//!    `U(s)ᵀU(s)`. Because U(s+1) is U(s) shifted by one state, `b` for every seed comes from one
//!    correlation of the state sequence with w (exact in integers for K ≤ 16, with w rounded to
//!    fixed point). The scan keeps the [`TOP_K`] best scores.
//! 2. Those candidates are evaluated exactly in f64 (least squares, exponent choice, rounding).
//!    The unquantized residual is a lower bound on any seed's quantized error, and each score is
//!    within a per-block margin of the exact energy (the f32 bound [`Tables::delta`] relative to
//!    ‖w‖², plus the effect of the fixed-point w), so if the K-th best residual minus that margin
//!    exceeds the best quantized error, no other seed can win. Otherwise the block is rescanned
//!    and every seed that might win is evaluated.
//!
//! Seeds whose U(s) is ill-conditioned (where L⁻¹ would amplify f32 rounding past the margin)
//! are scored instead through an orthonormal basis of span U(s), whose rounding error does not
//! depend on conditioning.

pub mod compress;
pub mod fit;

use crate::core::basis::Basis;
use crate::core::config::{Config, MAX_C, MAX_P};
use crate::core::lstsq::Cholesky;
use crate::core::quant::{ExpRange, Quantized, Rounding, best_quantization};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Blocks, over the whole process, whose candidates did not prove the optimum (a second scan).
static RESCANS: AtomicU64 = AtomicU64::new(0);

/// How many blocks so far needed a second scan (a diagnostic for the benchmark).
pub fn rescans() -> u64 {
    RESCANS.load(Ordering::Relaxed)
}

/// Candidates kept by the scan for exact evaluation.
pub const TOP_K: usize = 12;
/// Seeds per tile: the tile's share of the tables stays in L1 while a batch of blocks uses it.
const TILE: usize = 256;
/// Correlation entries computed per tile (TILE plus room for P − 1 overlap, in whole vectors).
const RBUF: usize = TILE + 16;
/// Blocks scored together by one kernel call, sharing every table load.
const NB: usize = 4;
/// Margin of the scan's scores relative to ‖w‖²: seeds whose rounding bound exceeds it are scored
/// through an orthonormal basis instead.
const DELTA: f64 = 1e-4;
/// Flagged seeds scored together: two vectors per basis column.
const FLAG_GROUP: usize = 16;
/// Blocks scanned together per tile.
pub const BATCH: usize = 32;

/// The scan kernel a [`Searcher`] runs. Both find the same optimum; only their speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX2 and FMA intrinsics, on x86-64 CPUs that have them.
    Avx2,
    /// Plain Rust for any CPU, vectorised only as far as the compiler manages.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU can run.
    pub fn best_available() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }

    /// Lower-case name, as the benchmark reports it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

/// The result of searching one block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockResult {
    /// The seed: an LFSR register state in [1, 2^K − 1].
    pub seed: u32,
    /// Exponent and coefficients.
    pub quant: Quantized,
    /// Squared reconstruction error `‖w − ŵ‖²` (f64 arithmetic).
    pub err: f64,
}

/// Per-configuration tables for the scan: built once and shared by every search of that config.
#[derive(Debug)]
pub struct Tables {
    n: usize,
    n_pad: usize,
    /// Normalised states in cycle order, extended cyclically past the end.
    x: Vec<f32>,
    /// Lower triangle of L⁻¹ as structure-of-arrays: entry `e` of seed index `i` is at
    /// `e * n_pad + i`. Zero for ill-conditioned and padding seeds. On the integer path it is
    /// premultiplied by the unit of the integer correlations, which saves the kernel a multiply.
    linv: Vec<f32>,
    /// Seed indices scored through an orthonormal basis instead of L⁻¹.
    flagged: Vec<u32>,
    /// `flagged.len()` rounded up to whole [`FLAG_GROUP`]s.
    f_pad: usize,
    /// Orthonormal bases of the flagged seeds, structure-of-arrays: entry (i, j) of flagged
    /// seed f is at `(i * P + j) * f_pad + f`.
    fq: Vec<f32>,
    /// Bound on the scan's score error relative to ‖w‖², for seeds it covers.
    delta: f32,
    /// For K ≤ 16: centred states as int16 pairs `(v[m], v[m + P])` packed in an i32, the
    /// operand layout of `vpmaddwd`, so the correlation runs exactly in integers.
    pairs: Option<Vec<i32>>,
    /// Fixed-point bits of the weights in the integer correlation.
    w_shift: i32,
}

impl Tables {
    fn build(cfg: Config, basis: &Basis) -> Tables {
        let (c, p) = (cfg.c, cfg.p);
        let n = basis.period();
        let n_pad = n.div_ceil(TILE) * TILE;
        let ext = n_pad + RBUF + MAX_C * MAX_P + 8;
        let x: Vec<f32> = (0..ext)
            .map(|i| basis.normalize(basis.state_at(i)) as f32)
            .collect();
        let integer = cfg.k <= 16;
        // An integer correlation is in units of 1 / ((2^(K−1) − 1)·2^S) of the normalised one.
        let r_unit = if integer {
            1.0 / (basis.denom() * crate::core::quant::pow2(weight_shift(c)))
        } else {
            1.0
        };
        let entries = p * (p + 1) / 2;
        let mut linv = vec![0.0f32; entries * n_pad];
        let mut flagged = Vec::new();
        let mut u = vec![0.0; c * p];
        for idx in 0..n {
            basis.fill_u_at(idx, &mut u);
            let chol = Cholesky::of_columns(&u, c, p);
            match chol.inverse_lower() {
                Some(inv) if score_error_bound(&chol, &inv, c, p) <= DELTA => {
                    for (e, v) in inv.iter().enumerate() {
                        linv[e * n_pad + idx] = (*v * r_unit) as f32;
                    }
                }
                _ => flagged.push(idx as u32),
            }
        }
        let f_pad = flagged.len().div_ceil(FLAG_GROUP) * FLAG_GROUP;
        let mut fq = vec![0.0f32; c * p * f_pad];
        for (f, &idx) in flagged.iter().enumerate() {
            basis.fill_u_at(idx as usize, &mut u);
            orthonormalise(&mut u, c, p);
            for (e, v) in u.iter().enumerate() {
                fq[e * f_pad + f] = *v as f32;
            }
        }
        let half = basis.half();
        let pairs = integer.then(|| {
            let centred = |i: usize| (i64::from(basis.state_at(i)) - half) as i16 as u16;
            (0..ext)
                .map(|i| (u32::from(centred(i)) | (u32::from(centred(i + p)) << 16)) as i32)
                .collect()
        });
        Tables {
            n,
            n_pad,
            x,
            linv,
            flagged,
            f_pad,
            fq,
            delta: DELTA as f32,
            pairs,
            w_shift: weight_shift(c),
        }
    }

    /// Scores of the flagged seeds, `out.len() == f_pad`: ‖Qᵀw‖² with Q orthonormal, so the
    /// rounding error is at most ~2·C·√P·u·‖w‖², far inside `delta`.
    fn flagged_scores(&self, w: &[f32], p: usize, kernel: Kernel, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx2 {
            // SAFETY: a searcher runs the AVX2 kernel only where the CPU has AVX2 and FMA.
            unsafe { self.flagged_scores_avx2(w, p, out) };
            return;
        }
        self.flagged_scores_body(w, p, out);
    }

    /// [`Self::flagged_scores`] compiled for AVX2, so the 8-lane loops become vector code.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn flagged_scores_avx2(&self, w: &[f32], p: usize, out: &mut [f32]) {
        self.flagged_scores_body(w, p, out);
    }

    #[inline(always)]
    fn flagged_scores_body(&self, w: &[f32], p: usize, out: &mut [f32]) {
        match p {
            1 => self.flagged_scores_p::<1>(w, out),
            2 => self.flagged_scores_p::<2>(w, out),
            3 => self.flagged_scores_p::<3>(w, out),
            4 => self.flagged_scores_p::<4>(w, out),
            5 => self.flagged_scores_p::<5>(w, out),
            6 => self.flagged_scores_p::<6>(w, out),
            7 => self.flagged_scores_p::<7>(w, out),
            _ => self.flagged_scores_p::<8>(w, out),
        }
    }

    /// [`Self::flagged_scores`] for P fixed at compile time: the P·FLAG_GROUP/8 accumulator
    /// vectors of a group are independent chains, so the FMAs overlap instead of waiting on
    /// each other.
    #[inline(always)]
    fn flagged_scores_p<const P: usize>(&self, w: &[f32], out: &mut [f32]) {
        let f_pad = self.f_pad;
        for (g, o) in out.chunks_exact_mut(FLAG_GROUP).enumerate() {
            let mut y = [[0.0f32; FLAG_GROUP]; P];
            for (i, &wi) in w.iter().enumerate() {
                for (j, yj) in y.iter_mut().enumerate() {
                    let col = &self.fq[(i * P + j) * f_pad + g * FLAG_GROUP..][..FLAG_GROUP];
                    for (yl, &q) in yj.iter_mut().zip(col) {
                        *yl += q * wi;
                    }
                }
            }
            for (l, ol) in o.iter_mut().enumerate() {
                *ol = y.iter().map(|yj| yj[l] * yj[l]).sum();
            }
        }
    }

    /// Number of seeds the scan leaves to the f64 path.
    pub fn flagged(&self) -> usize {
        self.flagged.len()
    }

    /// Relative score margin of the scan.
    pub fn delta(&self) -> f32 {
        self.delta
    }
}

/// Fixed-point bits for weights in the integer correlation: with |w| < 2 and centred states below
/// 2^15, C products of at most 2^(S+1)·2^15 must sum below 2^31.
fn weight_shift(c: usize) -> i32 {
    14 - c.next_power_of_two().trailing_zeros() as i32
}

/// A bound, relative to ‖w‖² (w scaled so max|w| < 2), on the f32 rounding error of the scan's
/// score `|L⁻¹b|²` for one seed, doubled for safety.
///
/// With unit roundoff u: each `b_j` is a C-term dot product of values rounded to f32, so
/// `|Δb| ≤ √P·(C+1)·u·Σ|w_i| ≤ √P·(C+1)·√C·u·‖w‖`; L⁻¹ amplifies that by `‖L⁻¹‖₂ = 1/σ_min(U)`;
/// rounding L⁻¹ and the P-term products adds `(P+1)·√P·u·‖L⁻¹‖₂·‖b‖` with `‖b‖ ≤ σ_max(U)·‖w‖`;
/// then `Δ|y|² ≤ 2‖y‖·|Δy| + P·u·‖y‖²` with `‖y‖ ≤ ‖w‖`, plus C·u for ‖w‖² itself. Frobenius norms
/// of L and L⁻¹ bound σ_max and 1/σ_min from above.
fn score_error_bound(chol: &Cholesky, inv: &[f64], c: usize, p: usize) -> f64 {
    let u = f64::from(f32::EPSILON) / 2.0;
    let (c, p) = (c as f64, p as f64);
    let inv_norm = inv.iter().map(|x| x * x).sum::<f64>().sqrt();
    let l_norm = chol.frobenius();
    let dy = inv_norm * (p.sqrt() * (c + 1.0) * c.sqrt() + (p + 1.0) * p.sqrt() * l_norm) * u;
    2.0 * (2.0 * dy + p * u + c * u)
}

/// Modified Gram–Schmidt on the columns of row-major C×P `u`, in place. A column dependent on
/// earlier ones becomes zero, so the non-zero columns are an orthonormal basis of span U.
fn orthonormalise(u: &mut [f64], c: usize, p: usize) {
    for j in 0..p {
        let norm0: f64 = (0..c).map(|i| u[i * p + j].powi(2)).sum::<f64>().sqrt();
        for k in 0..j {
            let d: f64 = (0..c).map(|i| u[i * p + j] * u[i * p + k]).sum();
            for i in 0..c {
                u[i * p + j] -= d * u[i * p + k];
            }
        }
        let norm: f64 = (0..c).map(|i| u[i * p + j].powi(2)).sum::<f64>().sqrt();
        let scale = if norm > 1e-10 * norm0 {
            1.0 / norm
        } else {
            0.0
        };
        for i in 0..c {
            u[i * p + j] *= scale;
        }
    }
}

/// The best `TOP_K` scores of one block, unordered.
#[derive(Clone, Debug)]
struct TopK {
    score: [f32; TOP_K],
    idx: [u32; TOP_K],
    len: usize,
    /// Smallest kept score once full (the admission threshold), else −∞.
    thr: f32,
    min_pos: usize,
}

impl TopK {
    fn new() -> Self {
        TopK {
            score: [0.0; TOP_K],
            idx: [0; TOP_K],
            len: 0,
            thr: f32::NEG_INFINITY,
            min_pos: 0,
        }
    }

    /// Fills an empty set with the best `TOP_K` of a whole tile (cheaper than pushing the many
    /// rising scores of the first tile one by one).
    fn fill_from(&mut self, scores: &[f32; TILE], t0: usize, kernel: Kernel) {
        // At least TOP_K seeds (the group maxima) reach the smallest of TOP_K group maxima, so
        // the best TOP_K are among the seeds at or above it: usually few more than TOP_K.
        let floor = scores
            .chunks_exact(TILE / TOP_K)
            .map(|g| g.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
            .fold(f32::INFINITY, f32::min);
        for_each_above(scores, floor.next_down(), kernel, |m, s| {
            self.push(s, (t0 + m) as u32)
        });
    }

    fn push(&mut self, score: f32, idx: u32) {
        if self.len < TOP_K {
            self.score[self.len] = score;
            self.idx[self.len] = idx;
            self.len += 1;
            if self.len == TOP_K {
                self.refresh();
            }
        } else if score > self.thr {
            self.score[self.min_pos] = score;
            self.idx[self.min_pos] = idx;
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        let (pos, min) = min_position(&self.score);
        self.min_pos = pos;
        self.thr = min;
    }
}

/// The smallest score and its first position. Branch-free (data-dependent branches here
/// mispredict on every insertion); scores are never NaN.
#[cfg(target_arch = "x86_64")]
fn min_position(score: &[f32; TOP_K]) -> (usize, f32) {
    use std::arch::x86_64::*;
    const _: () = assert!(
        TOP_K.is_multiple_of(4),
        "the SSE reduction takes whole vectors"
    );
    // SAFETY: SSE2 is part of the x86_64 baseline; the loads read the TOP_K scores.
    unsafe {
        let p = score.as_ptr();
        let v: [__m128; TOP_K / 4] = std::array::from_fn(|i| _mm_loadu_ps(p.add(4 * i)));
        let m = v[1..].iter().fold(v[0], |m, &x| _mm_min_ps(m, x));
        let m = _mm_min_ps(m, _mm_shuffle_ps::<0b01_00_11_10>(m, m));
        let m = _mm_min_ps(m, _mm_shuffle_ps::<0b10_11_00_01>(m, m));
        let mask = v.iter().enumerate().fold(0u32, |acc, (i, &x)| {
            acc | ((_mm_movemask_ps(_mm_cmpeq_ps(x, m)) as u32) << (4 * i))
        });
        (mask.trailing_zeros() as usize, _mm_cvtss_f32(m))
    }
}

/// The smallest score and its first position (portable version).
#[cfg(not(target_arch = "x86_64"))]
fn min_position(score: &[f32; TOP_K]) -> (usize, f32) {
    let min = score
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    (score.iter().position(|&s| s == min).unwrap_or(0), min)
}

/// Working memory of one kernel call: correlations and scores of `NB` blocks.
struct Scratch {
    r: [[f32; RBUF]; NB],
    scores: [[f32; TILE]; NB],
}

impl Scratch {
    fn new() -> Box<Self> {
        Box::new(Scratch {
            r: [[0.0; RBUF]; NB],
            scores: [[0.0; TILE]; NB],
        })
    }
}

/// Calls `f(m, score)` for each seed `m` of a tile whose score exceeds `thr`, in order.
fn for_each_above(scores: &[f32; TILE], thr: f32, kernel: Kernel, mut f: impl FnMut(usize, f32)) {
    for (w, mut bits) in above_words(scores, thr, kernel).into_iter().enumerate() {
        while bits != 0 {
            let m = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(m, scores[m]);
        }
    }
}

/// Per 64 seeds of a tile, the bit mask of the scores above `thr`. The kernels leave this to
/// the few tiles that have any such score: a mask per vector would cost them a slow `movmskps`.
fn above_words(scores: &[f32; TILE], thr: f32, kernel: Kernel) -> [u64; TILE / 64] {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Avx2 {
        // SAFETY: a searcher runs the AVX2 kernel only where the CPU has AVX2.
        return unsafe { avx2::above_words(scores, thr) };
    }
    above_words_portable(scores, thr)
}

/// [`above_words`] without SIMD: the reference the AVX2 version is tested against.
fn above_words_portable(scores: &[f32; TILE], thr: f32) -> [u64; TILE / 64] {
    std::array::from_fn(|w| {
        scores[w * 64..(w + 1) * 64]
            .iter()
            .enumerate()
            .fold(0, |acc, (l, &s)| acc | (u64::from(s > thr) << l))
    })
}

/// The `NB` blocks of one kernel call, as floats and as fixed-point pairs; unused lanes are zero.
struct Lanes {
    w: [[f32; MAX_C]; NB],
    pairs: [[i32; MAX_C / 2]; NB],
}

impl Lanes {
    fn of<'a>(blocks: impl IntoIterator<Item = &'a Normalised>) -> Self {
        let mut lanes = Lanes {
            w: [[0.0; MAX_C]; NB],
            pairs: [[0; MAX_C / 2]; NB],
        };
        for (b, nw) in blocks.into_iter().enumerate() {
            lanes.w[b] = nw.w;
            lanes.pairs[b] = nw.pairs;
        }
        lanes
    }
}

/// Exact searcher for one configuration. Cheap to clone; tables are shared.
#[derive(Clone, Debug)]
pub struct Searcher {
    cfg: Config,
    rounding: Rounding,
    basis: Arc<Basis>,
    tables: Arc<Tables>,
    kernel: Kernel,
}

/// A block normalised for the f32 scan: `w / 2^⌊log2 max|w|⌋`.
struct Normalised {
    w: [f32; MAX_C],
    norm2: f32,
    /// Squared scale factor from normalised to original units.
    scale2: f64,
    /// `w` in fixed point, as int16 pairs for the integer correlation (when the tables have it).
    pairs: [i32; MAX_C / 2],
    /// How far the scan's scores may be from the exact projection energies of `w`: the f32
    /// rounding bound, plus, on the integer path, the effect of rounding w to fixed point.
    margin: f32,
}

impl Searcher {
    /// The shipping searcher for `cfg` (validated): exact over seeds and exponents, with
    /// [`Rounding::Refined`] coefficients. Shares tables with every other searcher of `cfg`.
    pub fn new(cfg: Config) -> Searcher {
        Self::with_rounding(cfg, Rounding::Refined)
    }

    /// A searcher that rounds coefficients as docs/DESIGN.md §1 states, to the letter.
    pub fn plain(cfg: Config) -> Searcher {
        Self::with_rounding(cfg, Rounding::Nearest)
    }

    /// A searcher for `cfg` with the given coefficient rounding.
    pub fn with_rounding(cfg: Config, rounding: Rounding) -> Searcher {
        static CACHE: OnceLock<Mutex<HashMap<Config, Arc<Tables>>>> = OnceLock::new();
        let basis = Basis::for_k(cfg.k);
        let cache = CACHE.get_or_init(Default::default);
        let tables = {
            let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(cfg)
                .or_insert_with(|| Arc::new(Tables::build(cfg, &basis)))
                .clone()
        };
        Searcher {
            cfg,
            rounding,
            basis,
            tables,
            kernel: Kernel::best_available(),
        }
    }

    /// The same searcher on the portable kernel, whatever this CPU has: what runs on CPUs
    /// without AVX2, so that path can be tested and measured anywhere.
    pub fn portable(self) -> Searcher {
        Searcher {
            kernel: Kernel::Portable,
            ..self
        }
    }

    /// The scan kernel this searcher runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// The shared basis.
    pub fn basis(&self) -> &Arc<Basis> {
        &self.basis
    }

    /// The scan tables.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Searches one block of C weights.
    pub fn search_block(&self, w: &[f32], range: ExpRange) -> BlockResult {
        let mut out = [self.zero_result(range)];
        self.search_batch(w, range, &mut out);
        out[0]
    }

    /// Searches every block of `blocks` (a whole number of blocks of C weights).
    pub fn search_all(&self, blocks: &[f32], range: ExpRange) -> Vec<BlockResult> {
        let mut out = vec![self.zero_result(range); blocks.len() / self.cfg.c];
        self.search_batch(blocks, range, &mut out);
        out
    }

    /// Searches `out.len()` consecutive blocks of C weights in `blocks`. Every weight must be
    /// finite.
    fn search_batch(&self, blocks: &[f32], range: ExpRange, out: &mut [BlockResult]) {
        let c = self.cfg.c;
        assert_eq!(
            blocks.len(),
            out.len() * c,
            "blocks must hold out.len() blocks"
        );
        for (chunk, res) in blocks.chunks(BATCH * c).zip(out.chunks_mut(BATCH)) {
            self.search_chunk(chunk, range, res);
        }
    }

    fn zero_result(&self, range: ExpRange) -> BlockResult {
        BlockResult {
            seed: 1,
            quant: Quantized {
                e: range.lo,
                q: [0; MAX_P],
            },
            err: 0.0,
        }
    }

    fn search_chunk(&self, chunk: &[f32], range: ExpRange, out: &mut [BlockResult]) {
        let c = self.cfg.c;
        let mut norms: Vec<(usize, Normalised)> = Vec::with_capacity(BATCH);
        for (b, w) in chunk.chunks(c).enumerate() {
            match normalise(w, &self.tables) {
                Some(nw) => norms.push((b, nw)),
                None => out[b] = self.zero_result(range),
            }
        }
        let lanes: Vec<Lanes> = norms
            .chunks(NB)
            .map(|g| Lanes::of(g.iter().map(|(_, nw)| nw)))
            .collect();
        let mut tops = vec![TopK::new(); norms.len()];
        let mut scratch = Scratch::new();
        // Tile-outer order: the tile's share of the tables is loaded once for the whole batch.
        for t0 in (0..self.tables.n_pad).step_by(TILE) {
            for (lanes, tops) in lanes.iter().zip(tops.chunks_mut(NB)) {
                // Lanes past the end of the group are zero; an infinite threshold ignores them.
                let thr: [f32; NB] =
                    std::array::from_fn(|b| tops.get(b).map_or(f32::INFINITY, |t| t.thr));
                let hits = self.tile_scores(lanes, tops.len(), t0, &thr, &mut scratch);
                for (b, top) in tops.iter_mut().enumerate() {
                    if t0 == 0 {
                        top.fill_from(&scratch.scores[b], t0, self.kernel);
                    } else if hits[b] {
                        for_each_above(&scratch.scores[b], thr[b], self.kernel, |m, s| {
                            if s > top.thr {
                                top.push(s, (t0 + m) as u32);
                            }
                        });
                    }
                }
            }
        }
        let mut fscores = vec![0.0f32; self.tables.f_pad];
        let mut ev = Evaluator::new(self);
        for ((b, nw), top) in norms.iter().zip(tops.iter_mut()) {
            self.tables
                .flagged_scores(&nw.w[..c], self.cfg.p, self.kernel, &mut fscores);
            for (f, &idx) in self.tables.flagged.iter().enumerate() {
                if fscores[f] > top.thr {
                    top.push(fscores[f], idx);
                }
            }
            let w = &chunk[b * c..(b + 1) * c];
            ev.start(w, range);
            out[*b] = self.finish(&mut ev, nw, top, &mut scratch);
        }
    }

    /// Pass 2 for one block: exact evaluation of the candidates, the flagged seeds, and if the
    /// margin does not prove the answer, every seed that might still win.
    fn finish(
        &self,
        ev: &mut Evaluator,
        nw: &Normalised,
        top: &TopK,
        scratch: &mut Scratch,
    ) -> BlockResult {
        let n = self.tables.n;
        let delta = nw.margin;
        let mut order: [usize; TOP_K] = std::array::from_fn(|i| i);
        let order = &mut order[..top.len];
        order.sort_unstable_by(|&a, &b| top.score[b].total_cmp(&top.score[a]).then(a.cmp(&b)));
        for &i in order.iter() {
            // Scores only fall from here on, so once a candidate's residual provably exceeds
            // the best error, so do all the rest. (The ulp covers this f32 arithmetic.)
            let lower = f64::from(nw.norm2 - top.score[i] - delta - f32::EPSILON * nw.norm2);
            if lower * nw.scale2 > ev.best_err() {
                break;
            }
            let idx = top.idx[i] as usize;
            if idx < n {
                ev.consider(idx);
            }
        }
        let best_norm = ev.best_err() / nw.scale2;
        let proven = top.len < TOP_K || f64::from(nw.norm2 - top.thr - delta) > best_norm;
        if !proven {
            RESCANS.fetch_add(1, Ordering::Relaxed);
            // Any seed with true residual ≤ best has score ≥ ‖w‖² − best − δ.
            let c = self.cfg.c;
            let lanes = Lanes::of([nw]);
            for t0 in (0..self.tables.n_pad).step_by(TILE) {
                // One more f32 ulp of ‖w‖² so rounding of the threshold itself cannot exclude a seed.
                let thr = (f64::from(nw.norm2 - delta) - ev.best_err() / nw.scale2) as f32
                    - f32::EPSILON * nw.norm2;
                let mut thrs = [f32::INFINITY; NB];
                thrs[0] = thr;
                if self.tile_scores(&lanes, 1, t0, &thrs, scratch)[0] {
                    for_each_above(&scratch.scores[0], thr, self.kernel, |m, _| {
                        if t0 + m < n {
                            ev.consider(t0 + m);
                        }
                    });
                }
            }
            let thr = (f64::from(nw.norm2 - delta) - ev.best_err() / nw.scale2) as f32
                - f32::EPSILON * nw.norm2;
            let mut fscores = vec![0.0f32; self.tables.f_pad];
            self.tables
                .flagged_scores(&nw.w[..c], self.cfg.p, self.kernel, &mut fscores);
            for (f, &idx) in self.tables.flagged.iter().enumerate() {
                if fscores[f] > thr {
                    ev.consider(idx as usize);
                }
            }
        }
        ev.result()
    }

    /// Scores of the TILE seeds starting at cycle position `t0` for the first `used` (1 to `NB`)
    /// blocks of `lanes` into `scratch.scores`, and per block whether any score exceeds its
    /// threshold (never for the unused ones).
    fn tile_scores(
        &self,
        lanes: &Lanes,
        used: usize,
        t0: usize,
        thr: &[f32; NB],
        scratch: &mut Scratch,
    ) -> [bool; NB] {
        let c = self.cfg.c;
        #[cfg(target_arch = "x86_64")]
        if self.kernel == Kernel::Avx2 {
            let t = &self.tables;
            macro_rules! kernel {
                ($p:literal, $c:literal) => {
                    // A lone block (a rescan, or a search of one block) gets a kernel of its
                    // own rather than NB − 1 empty lanes.
                    match (t.pairs.is_some(), used) {
                        (true, 1) => {
                            avx2::tile_scores_i16::<$p, $c, 1>(t, lanes, c, t0, thr, scratch)
                        }
                        (true, _) => {
                            avx2::tile_scores_i16::<$p, $c, NB>(t, lanes, c, t0, thr, scratch)
                        }
                        (false, 1) => avx2::tile_scores::<$p, $c, 1>(t, lanes, c, t0, thr, scratch),
                        (false, _) => {
                            avx2::tile_scores::<$p, $c, NB>(t, lanes, c, t0, thr, scratch)
                        }
                    }
                };
            }
            // SAFETY: a searcher runs the AVX2 kernel only where the CPU has AVX2 and FMA;
            // indices stay inside the extended tables (see `Tables::build`).
            return unsafe {
                match (c, self.cfg.p) {
                    // The presets get C fixed at compile time.
                    (8, 3) => kernel!(3, 8),
                    (12, 4) => kernel!(4, 12),
                    (_, 1) => kernel!(1, 0),
                    (_, 2) => kernel!(2, 0),
                    (_, 3) => kernel!(3, 0),
                    (_, 4) => kernel!(4, 0),
                    (_, 5) => kernel!(5, 0),
                    (_, 6) => kernel!(6, 0),
                    (_, 7) => kernel!(7, 0),
                    _ => kernel!(8, 0),
                }
            };
        }
        std::array::from_fn(|b| {
            b < used && {
                scalar_tile_scores(&self.tables, self.cfg.p, c, lanes, b, t0, scratch);
                scratch.scores[b].iter().any(|&s| s > thr[b])
            }
        })
    }
}

fn normalise(w: &[f32], tables: &Tables) -> Option<Normalised> {
    let m = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m == 0.0 {
        return None;
    }
    let e = f64::from(m).log2().floor() as i32;
    let inv = crate::core::quant::pow2(-e);
    let mut nw = [0.0f32; MAX_C];
    let mut norm2 = 0.0f32;
    for (o, &x) in nw.iter_mut().zip(w) {
        *o = (f64::from(x) * inv) as f32;
        norm2 += *o * *o;
    }
    let mut pairs = [0i32; MAX_C / 2];
    let mut margin = tables.delta * norm2;
    if tables.pairs.is_some() {
        // w' = round(w·2^S)/2^S. Projections are contractions, so the energies of w and w'
        // differ by at most ‖w − w'‖·‖w + w'‖; the f32 bound applies to the larger norm.
        let scale = crate::core::quant::pow2(tables.w_shift);
        let (mut d2, mut s2, mut q2) = (0.0f64, 0.0f64, 0.0f64);
        let mut fixed = [0i16; MAX_C + 1];
        for (f, &x) in fixed.iter_mut().zip(&nw[..w.len()]) {
            let q = (f64::from(x) * scale).round().clamp(-32767.0, 32767.0);
            *f = q as i16;
            let wq = q / scale;
            d2 += (f64::from(x) - wq).powi(2);
            s2 += (f64::from(x) + wq).powi(2);
            q2 += wq * wq;
        }
        for (pair, two) in pairs.iter_mut().zip(fixed.chunks_exact(2)) {
            *pair = (u32::from(two[0] as u16) | (u32::from(two[1] as u16) << 16)) as i32;
        }
        let quantisation = (d2.sqrt() * s2.sqrt()) as f32;
        margin = tables.delta * norm2.max(q2 as f32) + quantisation * (1.0 + f32::EPSILON);
    }
    Some(Normalised {
        w: nw,
        norm2,
        scale2: crate::core::quant::pow2(2 * e),
        pairs,
        margin,
    })
}

/// Exact f64 evaluation of seeds for one block, keeping the best. Its buffers are reused from
/// block to block ([`Evaluator::start`]).
struct Evaluator<'a> {
    s: &'a Searcher,
    w: [f64; MAX_C],
    range: ExpRange,
    u: Vec<f64>,
    v: Vec<i64>,
    best: Option<BlockResult>,
    seen: Vec<usize>,
}

impl<'a> Evaluator<'a> {
    fn new(s: &'a Searcher) -> Self {
        let cp = s.cfg.c * s.cfg.p;
        Evaluator {
            s,
            w: [0.0; MAX_C],
            range: ExpRange::UNBOUNDED,
            u: vec![0.0; cp],
            v: vec![0; cp],
            best: None,
            seen: Vec::with_capacity(TOP_K * 2),
        }
    }

    /// Starts on a new block `w` (C weights) with exponents in `range`.
    fn start(&mut self, w: &[f32], range: ExpRange) {
        for (d, &x) in self.w.iter_mut().zip(w) {
            *d = f64::from(x);
        }
        self.range = range;
        self.best = None;
        self.seen.clear();
    }

    fn best_err(&self) -> f64 {
        self.best.map_or(f64::INFINITY, |b| b.err)
    }

    /// Evaluates seed index `idx` exactly (once per block) and keeps it if it is the best so far.
    fn consider(&mut self, idx: usize) {
        if self.seen.contains(&idx) {
            return;
        }
        self.seen.push(idx);
        let (c, p) = (self.s.cfg.c, self.s.cfg.p);
        let basis = &self.s.basis;
        let denom = basis.denom();
        basis.centred_at(idx, &mut self.v);
        // U(s) from the centred integers: the same arithmetic as `Basis::normalize`.
        for (u, &v) in self.u.iter_mut().zip(&self.v) {
            *u = v as f64 / denom;
        }
        let mut t = [0.0; MAX_P];
        crate::core::lstsq::solve(&self.u, &self.w[..c], c, p, &mut t[..p]);
        let (err, quant) = best_quantization(
            &self.w[..c],
            &self.v,
            p,
            &t[..p],
            denom,
            self.range,
            self.s.rounding,
        );
        let seed = basis.state_at(idx);
        let better = match &self.best {
            None => true,
            Some(b) => err < b.err || (err == b.err && seed < b.seed),
        };
        if better {
            self.best = Some(BlockResult { seed, quant, err });
        }
    }

    fn result(&self) -> BlockResult {
        self.best
            .expect("a non-zero block has at least one candidate")
    }
}

/// Portable scan for machines without AVX2/FMA: the vector kernels' arithmetic (the integer
/// correlation where the tables have it) for one block (`b` of `lanes`), left to the compiler
/// to vectorise.
fn scalar_tile_scores(
    t: &Tables,
    p: usize,
    c: usize,
    lanes: &Lanes,
    b: usize,
    t0: usize,
    scratch: &mut Scratch,
) {
    let (r, out) = (&mut scratch.r[b], &mut scratch.scores[b]);
    // Loops run over seeds innermost, on contiguous rows, so the compiler can vectorise them
    // with whatever the target has (SSE2 on any x86-64, NEON on aarch64).
    match &t.pairs {
        Some(pairs) => {
            // vpmaddwd: two signed 16-bit products per 32-bit lane, wrapping sums. Integer sums
            // are exact, so the order of terms does not matter.
            let mut acc = [0i32; RBUF];
            for (k, &w) in lanes.pairs[b][..c.div_ceil(2)].iter().enumerate() {
                let (w_lo, w_hi) = (i32::from(w as i16), w >> 16);
                let xs = &pairs[t0 + 1 + 2 * k * p..][..RBUF];
                for (a, &x) in acc.iter_mut().zip(xs) {
                    let lo = i32::from(x as i16).wrapping_mul(w_lo);
                    *a = a.wrapping_add(lo.wrapping_add((x >> 16).wrapping_mul(w_hi)));
                }
            }
            for (rm, &a) in r.iter_mut().zip(&acc) {
                *rm = a as f32;
            }
        }
        None => {
            r.fill(0.0);
            for (i, &wi) in lanes.w[b][..c].iter().enumerate() {
                let xs = &t.x[t0 + 1 + i * p..][..RBUF];
                for (rm, &x) in r.iter_mut().zip(xs) {
                    *rm += wi * x;
                }
            }
        }
    }
    out.fill(0.0);
    let mut e = 0;
    for j in 0..p {
        let mut y = [0.0f32; TILE];
        for k in 0..=j {
            let l = &t.linv[e * t.n_pad + t0..][..TILE];
            for ((ym, &lm), &rm) in y.iter_mut().zip(l).zip(&r[k..k + TILE]) {
                *ym += lm * rm;
            }
            e += 1;
        }
        for (o, &ym) in out.iter_mut().zip(&y) {
            *o += ym * ym;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Lanes, NB, RBUF, Scratch, TILE, Tables};
    use std::arch::x86_64::*;

    /// Vectors of m per correlation step: NB·MV independent accumulators fill the pipelines
    /// without spilling.
    const MV: usize = 8 / NB;

    /// Scores of one tile for the first `B` (≤ `NB`) blocks with AVX2+FMA, eight seeds a vector;
    /// every table load serves all `B` blocks. Returns per block whether any score exceeds its
    /// threshold. `C` fixes the block size at compile time; 0 means "use `c`".
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, `c` must be the config's C, and `t0 + TILE` must not
    /// exceed the tables' padded length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_scores<const P: usize, const C: usize, const B: usize>(
        t: &Tables,
        lanes: &Lanes,
        c: usize,
        t0: usize,
        thr: &[f32; NB],
        scratch: &mut Scratch,
    ) -> [bool; NB] {
        let c = if C > 0 { C } else { c };
        debug_assert!(t0 + 1 + RBUF + c * P <= t.x.len());
        // SAFETY (whole body): every pointer offset stays below the bound asserted above.
        unsafe {
            let xb = t.x.as_ptr().add(t0 + 1);
            // Correlations r_b[m] = Σ_i w_b[i] · x[m + i·P].
            let mut m = 0;
            while m < RBUF {
                let mut acc = [[_mm256_setzero_ps(); MV]; B];
                for i in 0..c {
                    let xi = xb.add(m + i * P);
                    let xv: [__m256; MV] = std::array::from_fn(|v| _mm256_loadu_ps(xi.add(8 * v)));
                    for (a, w) in acc.iter_mut().zip(&lanes.w) {
                        let wv = _mm256_broadcast_ss(&w[i]);
                        for (av, x) in a.iter_mut().zip(&xv) {
                            *av = _mm256_fmadd_ps(wv, *x, *av);
                        }
                    }
                }
                store(scratch, m, &acc);
                m += 8 * MV;
            }
            scores::<P, B>(t, t0, thr, scratch)
        }
    }

    /// As [`tile_scores`], but the correlation runs exactly in integers: int16 centred states
    /// times int16 fixed-point weights, two products per `vpmaddwd` lane, summed in int32 (no
    /// overflow by the choice of the weights' shift), then converted to floats as they are: the
    /// integer unit is folded into the L⁻¹ tables.
    ///
    /// # Safety
    /// As [`tile_scores`]; the tables must have `pairs`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_scores_i16<const P: usize, const C: usize, const B: usize>(
        t: &Tables,
        lanes: &Lanes,
        c: usize,
        t0: usize,
        thr: &[f32; NB],
        scratch: &mut Scratch,
    ) -> [bool; NB] {
        let c = if C > 0 { C } else { c };
        let pairs = t.pairs.as_ref().expect("integer tables");
        debug_assert!(t0 + 1 + RBUF + c * P <= pairs.len());
        // SAFETY (whole body): every pointer offset stays below the bound asserted above.
        unsafe {
            let tp = pairs.as_ptr().add(t0 + 1);
            let mut m = 0;
            while m < RBUF {
                let mut acc = [[_mm256_setzero_si256(); MV]; B];
                for k in 0..c.div_ceil(2) {
                    // Pair k holds states m + 2kP and m + (2k+1)P.
                    let xp = tp.add(m + 2 * k * P);
                    let xv: [__m256i; MV] = std::array::from_fn(|v| {
                        _mm256_loadu_si256(xp.add(8 * v).cast::<__m256i>())
                    });
                    for (a, wp) in acc.iter_mut().zip(&lanes.pairs) {
                        let wv = _mm256_set1_epi32(wp[k]);
                        for (av, x) in a.iter_mut().zip(&xv) {
                            *av = _mm256_add_epi32(*av, _mm256_madd_epi16(*x, wv));
                        }
                    }
                }
                store(scratch, m, &acc.map(|a| a.map(|v| _mm256_cvtepi32_ps(v))));
                m += 8 * MV;
            }
            scores::<P, B>(t, t0, thr, scratch)
        }
    }

    /// [`super::above_words`] with AVX2: four compares packed into one byte mask per 32 seeds.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn above_words(scores: &[f32; TILE], thr: f32) -> [u64; TILE / 64] {
        const _: () = assert!(TILE.is_multiple_of(64));
        let t = _mm256_set1_ps(thr);
        // The packs interleave 128-bit lanes; this puts each vector's 8 bytes back in order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mask32 = |base: usize| {
            // SAFETY: base + 32 ≤ TILE, so the four loads stay inside `scores`.
            let c: [__m256i; 4] = std::array::from_fn(|v| unsafe {
                let x = _mm256_loadu_ps(scores.as_ptr().add(base + 8 * v));
                _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(x, t))
            });
            let words = _mm256_packs_epi32(c[0], c[1]);
            let words2 = _mm256_packs_epi32(c[2], c[3]);
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words, words2), order);
            u64::from(_mm256_movemask_epi8(bytes) as u32)
        };
        std::array::from_fn(|w| mask32(64 * w) | (mask32(64 * w + 32) << 32))
    }

    /// Stores the correlation vectors of step `m` for the first `B` blocks.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store<const B: usize>(scratch: &mut Scratch, m: usize, acc: &[[__m256; MV]; B]) {
        for (a, r) in acc.iter().zip(scratch.r.iter_mut()) {
            for (v, av) in a.iter().enumerate() {
                // SAFETY: m + 8·MV ≤ RBUF, the length of r.
                unsafe { _mm256_storeu_ps(r.as_mut_ptr().add(m + 8 * v), *av) };
            }
        }
    }

    /// Scores |L⁻¹ b|² from the correlations in `scratch.r` (b_j = r[m + j]) of the first `B`
    /// blocks; per block, whether any score exceeds its threshold.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scores<const P: usize, const B: usize>(
        t: &Tables,
        t0: usize,
        thr: &[f32; NB],
        scratch: &mut Scratch,
    ) -> [bool; NB] {
        debug_assert!(t0 + TILE <= t.n_pad);
        // SAFETY (whole body): seed indices stay below t0 + TILE ≤ n_pad, correlations below
        // TILE + P ≤ RBUF.
        unsafe {
            let lp = t.linv.as_ptr().add(t0);
            let np = t.n_pad;
            let mut best = [_mm256_set1_ps(f32::NEG_INFINITY); B];
            let mut m = 0;
            while m < TILE {
                let mut l = [[_mm256_setzero_ps(); P]; P];
                let mut e = 0;
                for (j, row) in l.iter_mut().enumerate() {
                    for v in row.iter_mut().take(j + 1) {
                        *v = _mm256_loadu_ps(lp.add(e * np + m));
                        e += 1;
                    }
                }
                for (b, best) in best.iter_mut().enumerate() {
                    let rp = scratch.r[b].as_ptr().add(m);
                    let bv: [__m256; P] = std::array::from_fn(|j| _mm256_loadu_ps(rp.add(j)));
                    let y: [__m256; P] = std::array::from_fn(|j| {
                        let row = &l[j];
                        (1..=j).fold(_mm256_mul_ps(row[0], bv[0]), |y, k| {
                            _mm256_fmadd_ps(row[k], bv[k], y)
                        })
                    });
                    let s = y[1..].iter().fold(_mm256_mul_ps(y[0], y[0]), |s, &yj| {
                        _mm256_fmadd_ps(yj, yj, s)
                    });
                    _mm256_storeu_ps(scratch.scores[b].as_mut_ptr().add(m), s);
                    *best = _mm256_max_ps(*best, s);
                }
                m += 8;
            }
            std::array::from_fn(|b| {
                b < B && {
                    let above = _mm256_cmp_ps::<_CMP_GT_OQ>(best[b], _mm256_set1_ps(thr[b]));
                    _mm256_movemask_ps(above) != 0
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal, StudentT};

    /// Exact projection energy ‖proj_span U(s) w‖² in f64 for seed index `idx`, through an
    /// orthonormal basis (so nearly dependent columns still count, as they do for the true
    /// least-squares residual).
    fn exact_score(s: &Searcher, idx: usize, w: &[f32]) -> f64 {
        let (c, p) = (s.cfg.c, s.cfg.p);
        let mut q = vec![0.0; c * p];
        s.basis.fill_u_at(idx, &mut q);
        orthonormalise(&mut q, c, p);
        (0..p)
            .map(|j| {
                (0..c)
                    .map(|i| q[i * p + j] * f64::from(w[i]))
                    .sum::<f64>()
                    .powi(2)
            })
            .sum()
    }

    #[test]
    fn above_masks_agree_with_plain_comparisons() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let scores: [f32; TILE] = std::array::from_fn(|_| normal.sample(&mut rng));
        let kernel = Kernel::best_available();
        let mut sorted = scores;
        sorted.sort_by(f32::total_cmp);
        for thr in [
            f32::NEG_INFINITY,
            -1.0,
            0.0,
            sorted[200],
            sorted[TILE - 1],
            10.0,
        ] {
            let plain = above_words_portable(&scores, thr);
            assert_eq!(above_words(&scores, thr, kernel), plain, "threshold {thr}");
            let mut seen = Vec::new();
            for_each_above(&scores, thr, kernel, |m, s| seen.push((m, s)));
            let expected: Vec<(usize, f32)> = (0..TILE)
                .filter(|&m| scores[m] > thr)
                .map(|m| (m, scores[m]))
                .collect();
            assert_eq!(seen, expected);
        }
        let mut top = TopK::new();
        top.fill_from(&scores, 1000, kernel);
        let mut kept: Vec<f32> = top.score.to_vec();
        kept.sort_by(f32::total_cmp);
        assert_eq!(kept, sorted[TILE - TOP_K..]);
        assert_eq!(top.thr, sorted[TILE - TOP_K]);
        for (&s, &i) in top.score.iter().zip(&top.idx) {
            assert_eq!(scores[i as usize - 1000], s, "seed index {i}");
        }
    }

    /// The scan's scores must stay within each block's margin (the bound the proof relies on)
    /// of the exact projection energies, on every seed; and the f32 part of the error must sit
    /// well inside its share of that margin.
    #[test]
    fn scan_scores_stay_within_margin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let heavy = StudentT::new(1.2f32).unwrap();
        for cfg in [
            Config::FOUR_BIT,
            Config::THREE_BIT,
            Config::new(8, 3, 18).unwrap(),
        ] {
            let s = Searcher::new(cfg);
            let c = cfg.c;
            let mut worst = 0.0f64;
            let mut scratch = Scratch::new();
            let mut fscores = vec![0.0f32; s.tables.f_pad];
            for group in 0..2 {
                let norms: Vec<Normalised> = (0..NB)
                    .map(|b| {
                        let w: Vec<f32> = (0..c)
                            .map(|_| {
                                if (group + b) % 2 == 0 {
                                    normal.sample(&mut rng)
                                } else {
                                    heavy.sample(&mut rng)
                                }
                            })
                            .collect();
                        normalise(&w, &s.tables).unwrap()
                    })
                    .collect();
                let lanes = Lanes::of(&norms);
                let mut check = |b: usize, idx: usize, score: f32| {
                    let nw = &norms[b];
                    let d = (f64::from(score) - exact_score(&s, idx, &nw.w[..c])).abs();
                    assert!(
                        d <= f64::from(nw.margin),
                        "seed index {idx}: {d} > {}",
                        nw.margin
                    );
                    // What the f32 arithmetic adds beyond the fixed-point rounding of w.
                    let fixed_point = f64::from(nw.margin - s.tables.delta * nw.norm2);
                    worst = worst.max((d - fixed_point).max(0.0) / f64::from(nw.norm2));
                };
                let (mut portable, mut lone) = (Scratch::new(), Scratch::new());
                for t0 in (0..s.tables.n_pad).step_by(TILE) {
                    s.tile_scores(&lanes, NB, t0, &[f32::INFINITY; NB], &mut scratch);
                    // The one-block kernel does the same arithmetic as lane 0 of the full one.
                    s.tile_scores(&lanes, 1, t0, &[f32::INFINITY; NB], &mut lone);
                    assert_eq!(
                        lone.scores[0].map(f32::to_bits),
                        scratch.scores[0].map(f32::to_bits)
                    );
                    for b in 0..NB {
                        scalar_tile_scores(&s.tables, cfg.p, c, &lanes, b, t0, &mut portable);
                        for m in 0..TILE {
                            let idx = t0 + m;
                            if idx < s.tables.n && !s.tables.flagged.contains(&(idx as u32)) {
                                check(b, idx, scratch.scores[b][m]);
                                check(b, idx, portable.scores[b][m]);
                            }
                        }
                    }
                }
                for (b, nw) in norms.iter().enumerate() {
                    s.tables
                        .flagged_scores(&nw.w[..c], cfg.p, s.kernel, &mut fscores);
                    for (f, &idx) in s.tables.flagged.iter().enumerate() {
                        check(b, idx as usize, fscores[f]);
                    }
                }
            }
            let delta = f64::from(s.tables.delta);
            eprintln!(
                "{cfg}: worst relative f32 score error {worst:.3e}, bound {delta:.3e}, {} seeds flagged",
                s.tables.flagged.len()
            );
            assert!(worst < delta / 4.0, "{cfg}: {worst} vs bound {delta}");
        }
    }
}
