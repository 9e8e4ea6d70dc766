//! Exact seed search (the paper's Algorithm 3 with docs/DESIGN.md §1's quantizer).
//!
//! May use: [`crate::core`] only. Knows nothing of files, the app or the CLI.
//!
//! Each block gets the (seed, e, q) of smallest quantized reconstruction error `‖w − U(s)·t̂‖²`
//! over all 2^K − 1 seeds; ties go to the lowest seed, then the lowest exponent.
//!
//! The search runs in two passes per block and stays exact:
//! 1. A SIMD scan scores every seed by `‖Q(s)ᵀw‖²` (the energy of w's projection on span U(s)),
//!    computed as `|L(s)⁻¹ b|²` where `b = U(s)ᵀw` and `L(s)` is the Cholesky factor of
//!    `U(s)ᵀU(s)`. Because U(s+1) is U(s) shifted by one state, `b` for every seed comes from one
//!    correlation of the state sequence with w (exact in integers for K ≤ 16, with w rounded to
//!    fixed point). The scan keeps the [`TOP_K`] best scores ([`SMALL_P_TOP_K`] at small P).
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
//!
//! Files: [`tables`] (per-configuration scan tables), [`topk`] (the candidates a scan keeps),
//! [`kernel`] (the scan itself: portable, AVX2 and AVX-512), [`evaluator`] (exact f64 evaluation of a
//! candidate), [`short`] (short lattice vectors of every seed, which settle blocks far below
//! the exponent range without a scan) and this file (the two passes per block, [`Searcher`]);
//! [`compress`] runs it over whole tensors and [`fit`] fits one block with a seed chosen by hand.

pub mod compress;
mod evaluator;
pub mod fit;
mod kernel;
mod short;
mod tables;
mod topk;

pub use evaluator::evaluations;
pub use kernel::Kernel;
pub use tables::{Tables, check_table_memory, table_bytes};

use crate::core::basis::Basis;
use crate::core::config::{Config, MAX_C, MAX_P};
use crate::core::quant::{ExpRange, Quantized, Rounding};
use evaluator::Evaluator;
use kernel::{Lanes, Scratch};
use short::ShortVectors;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use topk::{TopK, for_each_set};

/// Blocks, over the whole process, whose candidates did not prove the optimum (a second scan).
static RESCANS: AtomicU64 = AtomicU64::new(0);

/// Predicted search time of one block at each configuration of the bit budget's menu, in
/// percent of a 4-bit preset block: `scripts/block_costs.sh --rounds 5 --blocks 2000` (medians
/// of per-round ratios, one thread, the exact encoder on N(0,1) blocks), on the 2-core AMD Zen 3
/// machine, idle, after the flagged seeds were scored by group. The search cost is dominated by
/// rescans, which P and C/P drive.
const BLOCK_COSTS: &[(Config, u64)] = &[
    (Config { c: 14, p: 4, k: 16 }, 157),
    (Config { c: 12, p: 3, k: 16 }, 106),
    (Config { c: 13, p: 4, k: 16 }, 166),
    (Config { c: 11, p: 3, k: 16 }, 105),
    (Config { c: 12, p: 4, k: 16 }, 161),
    (Config { c: 10, p: 3, k: 16 }, 103),
    (Config { c: 11, p: 4, k: 16 }, 164),
    (Config { c: 9, p: 3, k: 16 }, 115),
    (Config { c: 10, p: 4, k: 16 }, 146),
    (Config { c: 8, p: 3, k: 16 }, 100),
    (Config { c: 11, p: 6, k: 16 }, 571),
    (Config { c: 9, p: 4, k: 16 }, 162),
    (Config { c: 8, p: 4, k: 16 }, 245),
    (Config { c: 7, p: 3, k: 16 }, 128),
    (Config { c: 7, p: 4, k: 16 }, 561),
    (Config { c: 6, p: 3, k: 16 }, 282),
    (Config { c: 6, p: 4, k: 16 }, 3845),
];

/// Predicted search time of one block at `cfg`, in percent of a 4-bit preset block, for
/// balancing shards whose tensors have different configurations: measured for the menu
/// entries, else scaled from the 4-bit preset by the seeds scanned and the work per seed.
pub fn block_cost(cfg: Config) -> u64 {
    BLOCK_COSTS.iter().find(|(c, _)| *c == cfg).map_or_else(
        || {
            let seeds = (1u64 << cfg.k) as f64 / 65536.0;
            let per_seed = (cfg.c * cfg.p + cfg.p * cfg.p) as f64 / 33.0;
            (100.0 * seeds * per_seed).ceil().max(1.0) as u64
        },
        |&(_, cost)| cost,
    )
}

/// How many blocks so far needed a second scan (a diagnostic for the benchmark).
pub fn rescans() -> u64 {
    RESCANS.load(Ordering::Relaxed)
}

thread_local! {
    /// Seeds this thread has put one by one to a rescan's lattice bound.
    static LATTICE_TESTS: Cell<u64> = const { Cell::new(0) };
}

/// How many seeds this thread has tested one by one against a rescan's lattice bound: a
/// deterministic cost measure (a block far below its exponent range would test ~30 000).
pub fn lattice_tests() -> u64 {
    LATTICE_TESTS.with(Cell::get)
}

/// Candidates kept by the scan for exact evaluation above P = [`SMALL_P`]. At P ≥ 6 a dozen or
/// more seeds' residuals lie below the best quantized error, so with 12 most blocks needed a
/// second scan.
pub const TOP_K: usize = 32;
/// Candidates kept at P ≤ [`SMALL_P`] (the presets): keeping fewer makes admissions to the set
/// rarer (about K·ln(N/K) per block) and its upkeep cheaper, while the candidates still prove
/// nearly every block (4-bit preset: 12 rescans in 6 000 N(0,1) blocks, against 1 with 32 and
/// 154 with 8). Measured 1.10× the speed of 32 at 4 and 3 bits on both vector kernels.
const SMALL_P_TOP_K: usize = 16;
/// Largest P that keeps [`SMALL_P_TOP_K`] candidates.
const SMALL_P: usize = 4;
/// Seeds per tile: the tile's share of the tables stays in L1 while a batch of blocks uses it.
const TILE: usize = 256;
/// Correlation entries computed per tile (TILE plus room for P − 1 overlap, in whole vectors).
const RBUF: usize = TILE + 16;
/// Blocks scored together by one kernel call, sharing every table load.
const NB: usize = 4;
/// Smallest margin of the scan's scores relative to ‖w‖² (the presets'): seeds whose rounding
/// bound exceeds a configuration's margin are scored through an orthonormal basis instead.
const DELTA: f64 = 1e-4;
/// Largest margin a configuration may widen to ([`tables`] widens it at large P).
const DELTA_MAX: f64 = 2e-3;
/// A configuration's margin is widened until at most one seed in this many is flagged.
const FLAG_SHARE: usize = 16;
/// Flagged seeds scored together: two vectors per basis column.
const FLAG_GROUP: usize = 16;
/// Blocks scanned together per tile.
pub const BATCH: usize = 32;

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

/// Exact searcher for one configuration. Cheap to clone; tables are shared.
#[derive(Clone, Debug)]
pub struct Searcher {
    cfg: Config,
    rounding: Rounding,
    basis: Arc<Basis>,
    tables: Arc<Tables>,
    kernel: Kernel,
    /// Row weights `√d` of a weighted searcher ([`Searcher::weighted`]), at most 1.
    sw: Option<Arc<[f64]>>,
    /// Bound on every reconstructed weight ([`Searcher::below`]).
    max_abs: f64,
}

/// A block normalised for the f32 scan: `w / 2^⌊log2 max|w|⌋`. Weighted, `w` holds the scan's
/// input `z = sw² ⊙ w` so normalised, and `norm2` is `‖sw ⊙ w‖²` in the same units.
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

impl Normalised {
    /// `2^range.lo` in the block's normalised units: the finest step of any quantization.
    fn step(&self, range: ExpRange) -> f64 {
        crate::core::quant::pow2(range.lo) / self.scale2.sqrt()
    }
}

/// The most coefficients a block may have for the exact encoder to be used (the presets have 3
/// and 4); larger P fall back to the refined rounding until the enumeration is bounded by the box.
pub const EXACT_MAX_P: usize = 4;

impl Searcher {
    /// The shipping searcher for `cfg` (validated): exact over seeds, exponents and
    /// coefficients ([`Rounding::Exact`]), on [`Kernel::chosen`]. Shares tables with every
    /// other searcher of `cfg`.
    pub fn new(cfg: Config) -> Searcher {
        Self::with_rounding(cfg, Rounding::default())
    }

    /// A searcher that rounds coefficients as docs/DESIGN.md §1 states, to the letter.
    pub fn plain(cfg: Config) -> Searcher {
        Self::with_rounding(cfg, Rounding::Nearest)
    }

    /// A searcher for `cfg` with the given coefficient rounding ([`Rounding::Exact`] applies up
    /// to [`EXACT_MAX_P`] coefficients; beyond, [`Rounding::Refined`]).
    pub fn with_rounding(cfg: Config, rounding: Rounding) -> Searcher {
        // The enumeration walks most of the 16^P box at P ≥ 6 on ill-conditioned seeds.
        let rounding = match rounding {
            Rounding::Exact if cfg.p > EXACT_MAX_P => Rounding::Refined,
            r => r,
        };
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
            kernel: Kernel::chosen(),
            sw: None,
            max_abs: f64::INFINITY,
        }
    }

    /// The same searcher keeping every reconstructed weight below `max_abs` in size (what the
    /// tensor's dtype can hold, [`crate::core::quant::ExpRange::max_abs`]) in every range it
    /// searches.
    pub fn below(&self, max_abs: f64) -> Searcher {
        Searcher {
            max_abs,
            ..self.clone()
        }
    }

    /// The exact searcher of the weighted objective `Σ_i d_i·(w_i − ŵ_i)²` for blocks whose i-th
    /// weight has importance `d[i]` (C values, finite, positive): the plain problem on
    /// `√d ⊙ w` with the basis `diag(√d)·U(s)`, searched as exactly as the plain one (the
    /// decoded codes use U(s), the format is unchanged). Builds its own tables (~65 535 small
    /// factorisations), so it is meant to be reused for every block with the same `d`, e.g. one
    /// column position of a weight matrix. Results' `err` is the weighted error with `d` scaled
    /// to a largest value of 1. Returns `None` for a `d` of another length or not positive.
    pub fn weighted(&self, d: &[f64]) -> Option<Searcher> {
        let max = d.iter().fold(0.0f64, |m, &x| m.max(x));
        if d.len() != self.cfg.c || !max.is_finite() || d.iter().any(|&x| x.is_nan() || x <= 0.0) {
            return None;
        }
        let sw: Arc<[f64]> = d.iter().map(|&x| (x / max).sqrt()).collect();
        let tables = Arc::new(Tables::build_weighted(self.cfg, &self.basis, Some(&sw)));
        Some(Searcher {
            tables,
            sw: Some(sw),
            ..self.clone()
        })
    }

    /// The same searcher on `kernel` instead of [`Kernel::chosen`], so that every kernel this CPU
    /// has can be tested and measured; `None` if this CPU cannot run it.
    pub fn with_kernel(self, kernel: Kernel) -> Option<Searcher> {
        kernel.runs_here().then_some(Searcher { kernel, ..self })
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
        let range = range.below(self.max_abs);
        assert_eq!(
            blocks.len(),
            out.len() * c,
            "blocks must hold out.len() blocks"
        );
        for (chunk, res) in blocks.chunks(BATCH * c).zip(out.chunks_mut(BATCH)) {
            self.search_chunk(chunk, range, res);
        }
    }

    /// Candidates the scan keeps per block at this configuration. A weighted searcher keeps
    /// [`TOP_K`] at every P: under uneven weights more seeds' residuals lie below the best
    /// quantized error, and with 16 a seventh of the blocks needed a second scan.
    fn top_k(&self) -> usize {
        if self.cfg.p <= SMALL_P && self.sw.is_none() {
            SMALL_P_TOP_K
        } else {
            TOP_K
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
        let mut fscores = vec![0.0f32; self.tables.f_pad];
        let mut ev = Evaluator::new(self);
        let mut below = Vec::new();
        let mut norms: Vec<(usize, Normalised)> = Vec::with_capacity(BATCH);
        for (b, w) in chunk.chunks(c).enumerate() {
            match normalise(w, self.sw.as_deref(), &self.tables) {
                Some(nw) => match self.short_vectors_for(&nw, range) {
                    Some(short) => {
                        ev.start(w, range);
                        out[b] = self.search_below(&mut ev, &nw, short, &mut fscores, &mut below);
                    }
                    None => norms.push((b, nw)),
                },
                None => out[b] = self.zero_result(range),
            }
        }
        let lanes: Vec<Lanes> = norms
            .chunks(NB)
            .map(|g| Lanes::of(g.iter().map(|(_, nw)| nw)))
            .collect();
        let mut tops = vec![TopK::new(self.top_k()); norms.len()];
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
                        for_each_set(&scratch.scores[b], &scratch.masks[b], |m, s| {
                            if s > top.thr {
                                top.push(s, (t0 + m) as u32);
                            }
                        });
                    }
                }
            }
        }
        let ws: Vec<&[f32]> = norms.iter().map(|(_, nw)| &nw.w[..c]).collect();
        let flagged = &self.tables.flagged;
        self.tables
            .flagged_scores_each(&ws, self.cfg.p, self.kernel, |b, f0, scores| {
                let top = &mut tops[b];
                for (&idx, &score) in flagged[f0..].iter().zip(scores) {
                    if score > top.thr {
                        top.push(score, idx);
                    }
                }
            });
        for ((b, nw), top) in norms.iter().zip(tops.iter_mut()) {
            top.finish();
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
        let proven = top.len < top.k || f64::from(nw.norm2 - top.thr - delta) > best_norm;
        if !proven {
            RESCANS.fetch_add(1, Ordering::Relaxed);
            let c = self.cfg.c;
            // Any seed with true residual ≤ best has score ≥ ‖w‖² − best − δ.
            let residual_thr = |best: f64| {
                // One more f32 ulp of ‖w‖² so rounding of the threshold itself cannot exclude a seed.
                (f64::from(nw.norm2 - delta) - best / nw.scale2) as f32 - f32::EPSILON * nw.norm2
            };
            let p = self.cfg.p;
            let lattice = LatticeBound::new(nw, p, ev.range(), &self.tables);
            let lanes = Lanes::of([nw]);
            for t0 in (0..self.tables.n_pad).step_by(TILE) {
                let thr = residual_thr(ev.best_err());
                let mut thrs = [f32::INFINITY; NB];
                thrs[0] = thr;
                if self.tile_scores(&lanes, 1, t0, &thrs, scratch)[0] {
                    let r = &scratch.r[0];
                    for_each_set(&scratch.scores[0], &scratch.masks[0], |m, score| {
                        let idx = t0 + m;
                        if idx >= n {
                            return;
                        }
                        LATTICE_TESTS.with(|n| n.set(n.get() + 1));
                        let y = || self.tables.scan_coordinates(r, p, t0, m);
                        if !lattice.excludes(idx, score, ev.best_err(), y) {
                            ev.consider(idx);
                        }
                    });
                }
            }
            let thr = residual_thr(ev.best_err());
            let mut fscores = vec![0.0f32; self.tables.f_pad];
            self.tables
                .flagged_scores(&nw.w[..c], self.cfg.p, self.kernel, &mut fscores);
            for (f, &idx) in self.tables.flagged.iter().enumerate() {
                if fscores[f] > thr {
                    ev.consider(idx as usize);
                }
            }
            self.settle_zero_ties(ev);
        }
        ev.result()
    }

    /// The short-vector table, if it settles block `nw` under `range` (the block lies far below
    /// the range). Built the first time a block might need it.
    fn short_vectors_for(&self, nw: &Normalised, range: ExpRange) -> Option<&ShortVectors> {
        let step = nw.step(range);
        // The table holds the plain lattices; weighted blocks take the scan and its bounds.
        if self.sw.is_some() || !short::within_reach(nw.norm2, self.cfg.c, step) {
            return None;
        }
        let table = self
            .tables
            .short
            .get_or_init(|| ShortVectors::build(&self.tables, &self.basis, self.cfg.c, self.cfg.p))
            .as_ref()?;
        table.covers(nw.norm2, step).then_some(table)
    }

    /// A block far below its exponent range, settled without a scan: a well-conditioned seed
    /// can beat the all-zero quantization only through a lattice vector of the table, which
    /// bounds its error from below; a flagged seed is bounded by its residual. Seeds are
    /// evaluated by rising bound until the bound exceeds the best error.
    fn search_below(
        &self,
        ev: &mut Evaluator,
        nw: &Normalised,
        short: &ShortVectors,
        fscores: &mut [f32],
        cands: &mut Vec<(f64, usize)>,
    ) -> BlockResult {
        let (c, p) = (self.cfg.c, self.cfg.p);
        cands.clear();
        let avx2 = self.kernel.has_avx2();
        short.candidates(
            &nw.w[..c],
            nw.norm2,
            nw.step(ev.range()),
            avx2,
            &mut |lower, idx| cands.push((lower, idx)),
        );
        self.tables
            .flagged_scores(&nw.w[..c], p, self.kernel, fscores);
        for (f, &idx) in self.tables.flagged.iter().enumerate() {
            // As in `finish`, the ulp covers this f32 arithmetic.
            let lower = nw.norm2 - fscores[f] - nw.margin - f32::EPSILON * nw.norm2;
            cands.push((f64::from(lower), idx as usize));
        }
        // The lowest bounds in order (the best seed is usually among them), then every other
        // seed whose bound does not exceed the best error so far: any order is exact, this one
        // keeps the evaluations few.
        let first = TOP_K.min(cands.len());
        if first > 0 && first < cands.len() {
            cands.select_nth_unstable_by(first - 1, |a, b| a.0.total_cmp(&b.0));
        }
        cands[..first].sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        for &(lower, idx) in cands.iter() {
            if lower * nw.scale2 <= ev.best_err() {
                ev.consider(idx);
            }
        }
        self.settle_zero_ties(ev);
        ev.result()
    }

    /// Seeds excluded by a lattice bound can still round to all-zero coefficients, whose error
    /// ‖w‖² wins or ties when nothing beats it: then the lowest such seed is the answer, found
    /// by trying seeds upwards from the lowest.
    fn settle_zero_ties(&self, ev: &mut Evaluator) {
        if ev.best_err() >= ev.zero_err() {
            let mut state = 1;
            while ev.best_seed().is_none_or(|b| state < b) {
                ev.consider(self.basis.index_of(state));
                state += 1;
            }
        }
    }
}

/// A second lower bound on a seed's quantized error, for blocks below the exponent range (as in
/// a tensor with an outlier), where seeds round to few or no non-zero coefficients and the
/// residual bound alone prunes almost nothing.
///
/// In the scan's coordinates `y = L⁻¹Uᵀw` (`‖y‖²` is the score), a quantization `v = 2^e·U·q`
/// sits at `2^e·Lᵀq`, and `‖w − v‖² = residual + ‖y − 2^e·Lᵀq‖²`. Every exponent's lattice lies
/// inside the lowest one's, `2^e_lo·Lᵀℤ^P`, so a seed can beat `best` with non-zero
/// coefficients only if that lattice has a non-zero point within `√(best − residual)` of y: an
/// enumeration over the triangular Lᵀ, coordinate by coordinate (Schnorr–Euchner), settles it.
/// All-zero coefficients (error ‖w‖²) are settled after the scan.
struct LatticeBound<'a> {
    p: usize,
    n: usize,
    /// `2^e_lo` in the block's normalised units.
    step: f64,
    norm2: f64,
    margin: f64,
    /// Bound on the error of the scan's y.
    y_err: f64,
    scale2: f64,
    tables: &'a Tables,
}

/// One seed's lattice enumeration ([`LatticeBound::point_within`]): the seed, the point y it
/// searches around, the coefficients fixed so far and the nodes visited.
struct Walk {
    idx: usize,
    y: [f64; MAX_P],
    q: [i64; MAX_P],
    nodes: usize,
}

/// Lattice points the enumeration visits per seed before it gives up (and the seed is
/// evaluated exactly): fine lattices, far above the block, are the residual bound's job.
const LATTICE_NODES: usize = 48;

impl<'a> LatticeBound<'a> {
    fn new(nw: &Normalised, p: usize, range: ExpRange, tables: &'a Tables) -> Self {
        let norm2 = f64::from(nw.norm2);
        let margin = f64::from(nw.margin);
        LatticeBound {
            p,
            n: tables.n,
            step: nw.step(range),
            // The f32 norm is within a few ulps of the exact one.
            norm2: norm2 * (1.0 - 4.0 * f64::from(f32::EPSILON)),
            margin,
            // A score error of δ·‖w‖² comes from an error in y of at most δ·‖w‖/4, and the
            // fixed-point w adds at most its own distance: margin/‖w‖ covers both.
            y_err: margin / norm2.sqrt(),
            scale2: nw.scale2,
            tables,
        }
    }

    /// Whether seed index `idx` (scan score `score`, coordinates `y()`) provably has no non-zero
    /// quantization with an error at most `best` (original units). Cheapest tests first: most
    /// seeds of such a block fail the first.
    fn excludes(
        &self,
        idx: usize,
        score: f32,
        best: f64,
        y: impl FnOnce() -> [f32; MAX_P],
    ) -> bool {
        let energy = (f64::from(score) + self.margin).max(0.0);
        let room = best / self.scale2 - (self.norm2 - energy);
        if room < 0.0 {
            return true;
        }
        if self.tables.l[idx] == 0.0 || self.step == 0.0 {
            return false;
        }
        let radius = room.sqrt() + self.y_err;
        // Every non-zero quantization is at least step·σ long, so at least step·σ − ‖y‖ from y.
        let shortest = self.step * f64::from(self.tables.sigma[idx]) - energy.sqrt();
        if shortest > radius {
            return true;
        }
        let y: [f64; MAX_P] = y().map(f64::from);
        // A cheap bound first, by the last non-zero coefficient alone: coordinates after it are
        // y's own, and its own coordinate misses y by at least the distance to a non-zero
        // multiple of the spacing. Most seeds stop here.
        let (mut quick, mut tail) = (f64::INFINITY, 0.0);
        for j in (0..self.p).rev() {
            let spacing = self.step * self.l(idx, j, j);
            let x = y[j].abs() / spacing;
            // A spacing this fine puts a lattice point next to y: no bound from it.
            let d = if x < 1e12 {
                (x - (floor(x + 0.5).max(1) as f64)) * spacing
            } else {
                0.0
            };
            quick = quick.min(tail + d * d);
            tail += y[j] * y[j];
            if tail >= quick {
                break;
            }
        }
        if quick > radius * radius {
            return true;
        }
        let mut walk = Walk {
            idx,
            y,
            q: [0; MAX_P],
            nodes: 0,
        };
        !self.point_within(&mut walk, self.p - 1, radius * radius, false)
    }

    /// Entry (k, j) of seed `idx`'s L.
    fn l(&self, idx: usize, k: usize, j: usize) -> f64 {
        self.tables.l[(k * (k + 1) / 2 + j) * self.n + idx]
    }

    /// Whether coordinates `0..=j`, given the coefficients above j in `walk.q`, can complete a
    /// non-zero lattice point within squared distance `room` of y (or the node budget ran out).
    fn point_within(&self, walk: &mut Walk, j: usize, room: f64, nonzero: bool) -> bool {
        let idx = walk.idx;
        let spacing = self.step * self.l(idx, j, j);
        let above: f64 = (j + 1..self.p)
            .map(|k| self.l(idx, k, j) * walk.q[k] as f64)
            .sum();
        let centre = (walk.y[j] - self.step * above) / spacing;
        let half = room.sqrt() / spacing;
        // Too many candidates (or a degenerate spacing): leave the seed to exact evaluation.
        if half > LATTICE_NODES as f64 || centre.abs() > 1e12 {
            return true;
        }
        let (lo, hi) = (-floor(half - centre), floor(centre + half));
        for qj in lo..=hi {
            walk.nodes += 1;
            if walk.nodes > LATTICE_NODES {
                return true;
            }
            let d = (centre - qj as f64) * spacing;
            let left = room - d * d;
            if left < 0.0 {
                continue;
            }
            walk.q[j] = qj;
            let nonzero = nonzero || qj != 0;
            let found = if j == 0 {
                nonzero
            } else {
                self.point_within(walk, j - 1, left, nonzero)
            };
            if found {
                return true;
            }
        }
        false
    }
}

/// `⌊x⌋` as an integer without a libm call (baseline x86-64 has no rounding instruction), for
/// `|x| < 2^52`.
fn floor(x: f64) -> i64 {
    let t = x as i64;
    t - i64::from((t as f64) > x)
}

fn normalise(w: &[f32], sw: Option<&[f64]>, tables: &Tables) -> Option<Normalised> {
    let Some(sw) = sw else {
        return normalise_z(w, w, tables);
    };
    // z = sw² ⊙ w in f32 is z(1 + ε) per entry: the scan sees sw ⊙ w (1 + ε), whose energy
    // differs by at most (2u + u²)·‖sw ⊙ w‖²; rounding sw ⊙ w for ‖·‖² adds as much again.
    let (mut z, mut scaled) = ([0.0f32; MAX_C], [0.0f32; MAX_C]);
    for (i, (&x, &s)) in w.iter().zip(sw).enumerate() {
        z[i] = (f64::from(x) * s * s) as f32;
        scaled[i] = (f64::from(x) * s) as f32;
    }
    let c = w.len();
    let mut nw = normalise_z(&z[..c], &scaled[..c], tables)?;
    nw.margin += 4.0 * f32::EPSILON * nw.norm2;
    Some(nw)
}

/// [`normalise`] of the scan input `z` whose energies are those of `scaled` (`z` itself when
/// unweighted).
fn normalise_z(z: &[f32], scaled: &[f32], tables: &Tables) -> Option<Normalised> {
    let m = z.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m == 0.0 {
        return None;
    }
    let e = f64::from(m).log2().floor() as i32;
    let inv = crate::core::quant::pow2(-e);
    let mut nw = [0.0f32; MAX_C];
    let mut norm2 = 0.0f32;
    for ((o, &x), &y) in nw.iter_mut().zip(z).zip(scaled) {
        *o = (f64::from(x) * inv) as f32;
        let y = (f64::from(y) * inv) as f32;
        norm2 += y * y;
    }
    let mut pairs = [0i32; MAX_C / 2];
    let mut margin = tables.delta * norm2;
    if tables.pairs.is_some() {
        // w' = round(w·2^S)/2^S. Projections are contractions, so the energies of w and w'
        // differ by at most ‖w − w'‖·‖w + w'‖; the f32 bound applies to the larger norm.
        let scale = crate::core::quant::pow2(tables.w_shift);
        let (mut d2, mut s2, mut q2) = (0.0f64, 0.0f64, 0.0f64);
        let mut fixed = [0i16; MAX_C + 1];
        for (f, &x) in fixed.iter_mut().zip(&nw[..z.len()]) {
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

#[cfg(test)]
mod tests {
    use super::tables::orthonormalise;
    use super::topk::{above_words, above_words_portable, for_each_above};
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal, StudentT};

    /// An orthonormal basis (row-major C×P, f64) of span U(s) for seed index `idx`, or for a
    /// weighted searcher of span `diag(sw)·U(s)`, by the one-at-a-time Gram–Schmidt.
    fn orthonormal_basis(s: &Searcher, idx: usize) -> Vec<f64> {
        let (c, p) = (s.cfg.c, s.cfg.p);
        let mut q = vec![0.0; c * p];
        s.basis.fill_u_at(idx, &mut q);
        if let Some(sw) = &s.sw {
            for (e, v) in q.iter_mut().enumerate() {
                *v *= sw[e / p];
            }
        }
        orthonormalise(&mut q, c, p);
        q
    }

    /// Exact projection energy ‖proj_span U(s) w‖² in f64 for seed index `idx`, through an
    /// orthonormal basis (so nearly dependent columns still count, as they do for the true
    /// least-squares residual). For a weighted searcher the span is that of `diag(sw)·U(s)`,
    /// and `w` is `sw ⊙ w` (the w' of [`Tables::build_weighted`]).
    fn exact_score(s: &Searcher, idx: usize, w: &[f64]) -> f64 {
        let (c, p) = (s.cfg.c, s.cfg.p);
        let q = orthonormal_basis(s, idx);
        (0..p)
            .map(|j| (0..c).map(|i| q[i * p + j] * w[i]).sum::<f64>().powi(2))
            .sum()
    }

    #[test]
    fn above_masks_agree_with_plain_comparisons() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let scores: [f32; TILE] = std::array::from_fn(|_| normal.sample(&mut rng));
        let mut sorted = scores;
        sorted.sort_by(f32::total_cmp);
        let thresholds = [
            f32::NEG_INFINITY,
            -1.0,
            0.0,
            sorted[200],
            sorted[TILE - 1],
            10.0,
        ];
        for kernel in Kernel::supported() {
            for thr in thresholds {
                let plain = above_words_portable(&scores, thr);
                let words = above_words(&scores, thr, kernel);
                assert_eq!(words, plain, "{kernel}, threshold {thr}");
                let mut seen = Vec::new();
                for_each_above(&scores, thr, kernel, |m, s| seen.push((m, s)));
                let expected: Vec<(usize, f32)> = (0..TILE)
                    .filter(|&m| scores[m] > thr)
                    .map(|m| (m, scores[m]))
                    .collect();
                assert_eq!(seen, expected, "{kernel}");
            }
            // A first tile leaves its best k and their threshold (k need not divide TILE).
            for k in [TOP_K, SMALL_P_TOP_K, 15] {
                let mut top = TopK::new(k);
                top.fill_from(&scores, 1000, kernel);
                assert_eq!(top.len, k, "{kernel}");
                assert_eq!(top.thr, sorted[TILE - k], "{kernel}");
                top.finish();
                let mut kept: Vec<f32> = top.score[..top.len].to_vec();
                kept.sort_by(f32::total_cmp);
                assert_eq!(kept, sorted[TILE - k..], "{kernel}");
                for (&s, &i) in top.score[..top.len].iter().zip(&top.idx) {
                    assert_eq!(scores[i as usize - 1000], s, "{kernel}, seed index {i}");
                }
            }
        }
    }

    /// A long stream of scores with many ties, admitted as the scan admits them: the set keeps
    /// the best `TOP_K` (ties to the lowest seed index) and the threshold is the worst of them.
    #[test]
    fn top_k_keeps_the_best_of_a_long_stream() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        for (k, len) in [TOP_K, SMALL_P_TOP_K]
            .into_iter()
            .flat_map(|k| [k - 1, k, 3 * k + 5, 2 * TOP_K, 5000].map(|len| (k, len)))
        {
            // Coarse scores, so that ties straddle the boundary of the kept set.
            let scores: Vec<f32> = (0..len)
                .map(|_| (normal.sample(&mut rng) * 4.0).round().abs())
                .collect();
            let mut top = TopK::new(k);
            for (i, &s) in scores.iter().enumerate() {
                if s > top.thr {
                    top.push(s, i as u32);
                }
            }
            top.finish();
            let mut best: Vec<(f32, u32)> = scores
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, i as u32))
                .collect();
            best.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            best.truncate(k);
            let mut kept: Vec<(f32, u32)> =
                (0..top.len).map(|i| (top.score[i], top.idx[i])).collect();
            kept.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            assert_eq!(kept, best, "keep {k} of {len} scores");
            let thr = if len >= k {
                best[k - 1].0
            } else {
                f32::NEG_INFINITY
            };
            assert_eq!(top.thr, thr, "keep {k} of {len} scores");
        }
    }

    /// The estimate of the tables' memory covers what they hold, not wildly more, and a
    /// configuration beyond the memory at hand is refused with both figures (issue 23, item 7).
    #[test]
    fn table_memory_is_estimated_before_building() {
        for (c, p, k) in [(8, 3, 14), (12, 4, 16), (16, 8, 14), (4, 1, 17)] {
            let cfg = Config::new(c, p, k).unwrap();
            let t = &Searcher::new(cfg).tables;
            let held = 4 * t.x.len()
                + 4 * t.linv.len()
                + 8 * t.l.len()
                + 4 * t.sigma.len()
                + 4 * t.fq.len()
                + t.pairs.as_ref().map_or(0, |p| 4 * p.len())
                // The basis: a state and an index per seed.
                + 8 * t.n;
            let est = table_bytes(cfg);
            assert!(held as u64 <= est, "{cfg}: holds {held}, estimated {est}");
            assert!(
                est <= 2 * held as u64,
                "{cfg}: holds {held}, estimated {est}"
            );
        }
        let cfg = Config::new(64, 8, 24).unwrap();
        assert!(check_table_memory(cfg, table_bytes(cfg)).is_ok());
        let err = check_table_memory(cfg, 4_000_000_000).unwrap_err();
        assert!(
            err.contains(&format!(
                "need about {:.1} GB",
                table_bytes(cfg) as f64 / 1e9
            )) && err.contains("than the 4.0 GB"),
            "{err}"
        );
    }

    /// At P ≥ 6 most seeds' f32 bounds exceed the presets' margin: the widened margin leaves at
    /// most one seed in [`FLAG_SHARE`] to the slower orthonormal scoring, and the presets keep
    /// theirs.
    #[test]
    fn margins_widen_only_where_most_seeds_would_be_flagged() {
        for cfg in [Config::FOUR_BIT, Config::THREE_BIT] {
            assert_eq!(Searcher::new(cfg).tables.delta, DELTA as f32, "{cfg}");
        }
        for (name, cfg) in Config::LARGER_P {
            let t = &Searcher::new(cfg).tables;
            assert!(
                t.flagged.len() <= t.n / FLAG_SHARE,
                "{name}: {} of {} seeds flagged",
                t.flagged.len(),
                t.n
            );
            assert!(
                t.delta > DELTA as f32 && t.delta <= DELTA_MAX as f32,
                "{name}"
            );
        }
    }

    /// The flagged seeds' bases, built four at a time, must be those of the one-at-a-time
    /// Gram–Schmidt bit for bit, in a weighted table (weights from 1e-3 to 5) and a plain one.
    #[test]
    fn flagged_bases_are_those_of_one_seed_at_a_time() {
        let d: Vec<f64> = (0..8).map(|i| [1.0, 1e-3, 0.2, 5.0][i % 4]).collect();
        let weighted = Searcher::new(Config::FOUR_BIT).weighted(&d).unwrap();
        let plain = Searcher::new(Config { c: 6, p: 4, k: 16 });
        for s in [&weighted, &plain] {
            let (c, p) = (s.cfg.c, s.cfg.p);
            let t = s.tables();
            assert!(t.flagged.len() > 100, "{}", t.flagged.len());
            let sw = s.sw.as_deref().map_or(vec![1.0; c], <[f64]>::to_vec);
            for (f, &idx) in t.flagged.iter().enumerate() {
                let u = orthonormal_basis(s, idx as usize);
                for (e, v) in u.iter().enumerate() {
                    let at = ((f / FLAG_GROUP * c * p) + e) * FLAG_GROUP + f % FLAG_GROUP;
                    let want = (v / sw[e / p]) as f32;
                    assert_eq!(t.fq[at].to_bits(), want.to_bits(), "{} seed {idx}", s.cfg);
                }
            }
        }
    }

    /// The scan's scores, on every kernel this CPU has, must stay within each block's margin
    /// (the bound the proof relies on) of the exact projection energies, on every seed, and the
    /// f32 part of the error must sit well inside its share of that margin; the vector kernels
    /// must agree bit for bit, and flag exactly the tiles with a score above the threshold, with
    /// the masks of those scores.
    #[test]
    fn scan_scores_stay_within_margin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let heavy = StudentT::new(1.2f32).unwrap();
        let mut searchers: Vec<Searcher> = [
            Config::FOUR_BIT,
            Config::THREE_BIT,
            Config::new(8, 3, 18).unwrap(),
            Config::FOUR_BIT_P6,
            Config::FOUR_BIT_P8,
            Config::THREE_BIT_P7,
        ]
        .into_iter()
        .map(Searcher::new)
        .collect();
        // Weighted tables, column weights from 1 down to 1e-3, as calibration gives them.
        for cfg in [Config::FOUR_BIT, Config::FOUR_BIT_P6] {
            let d: Vec<f64> = (0..cfg.c).map(|i| [1.0, 1e-3, 0.05, 0.4][i % 4]).collect();
            searchers.push(Searcher::new(cfg).weighted(&d).unwrap());
        }
        for s in searchers {
            let cfg = s.cfg;
            let kernels: Vec<Searcher> = Kernel::supported()
                .filter_map(|k| s.clone().with_kernel(k))
                .collect();
            let mut scratches: Vec<Box<Scratch>> = kernels.iter().map(|_| Scratch::new()).collect();
            let c = cfg.c;
            let mut worst = 0.0f64;
            let mut fscores = vec![0.0f32; s.tables.f_pad];
            for group in 0..2 {
                // Each block's scan input and the vector whose exact energies it approximates:
                // the normalised block, or weighted, sw ⊙ w at the same scale, in f64.
                let (norms, targets): (Vec<Normalised>, Vec<Vec<f64>>) = (0..NB)
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
                        let nw = normalise(&w, s.sw.as_deref(), &s.tables).unwrap();
                        let target = match &s.sw {
                            Some(sw) => {
                                let inv = 1.0 / nw.scale2.sqrt();
                                w.iter()
                                    .zip(sw.iter())
                                    .map(|(&x, &sw)| f64::from(x) * sw * inv)
                                    .collect()
                            }
                            None => nw.w[..c].iter().map(|&x| f64::from(x)).collect(),
                        };
                        (nw, target)
                    })
                    .unzip();
                let lanes = Lanes::of(&norms);
                let mut check = |b: usize, idx: usize, score: f32| {
                    let nw = &norms[b];
                    let d = (f64::from(score) - exact_score(&s, idx, &targets[b])).abs();
                    assert!(
                        d <= f64::from(nw.margin),
                        "seed index {idx}: {d} > {}",
                        nw.margin
                    );
                    // What the f32 arithmetic adds beyond the fixed-point rounding of w.
                    let fixed_point = f64::from(nw.margin - s.tables.delta * nw.norm2);
                    worst = worst.max((d - fixed_point).max(0.0) / f64::from(nw.norm2));
                };
                let mut lone = Scratch::new();
                for t0 in (0..s.tables.n_pad).step_by(TILE) {
                    for (ki, k) in kernels.iter().enumerate() {
                        let (scratch, first) = match scratches.split_at_mut(ki) {
                            (done, [this, ..]) => (this, done.first()),
                            _ => unreachable!("one scratch per kernel"),
                        };
                        k.tile_scores(&lanes, NB, t0, &[f32::INFINITY; NB], scratch);
                        // The one-block kernel does the same arithmetic as lane 0 of the full one.
                        k.tile_scores(&lanes, 1, t0, &[f32::INFINITY; NB], &mut lone);
                        assert_eq!(
                            lone.scores[0].map(f32::to_bits),
                            scratch.scores[0].map(f32::to_bits),
                            "{}",
                            k.kernel
                        );
                        // The vector kernels' scores are the same bit for bit.
                        if let Some(first) = first.filter(|_| k.kernel.has_avx2()) {
                            for b in 0..NB {
                                assert_eq!(
                                    scratch.scores[b].map(f32::to_bits),
                                    first.scores[b].map(f32::to_bits),
                                    "{} against {}, tile {t0}",
                                    k.kernel,
                                    kernels[0].kernel
                                );
                            }
                        }
                        // A tile's hit is whether any of its scores exceeds the threshold.
                        let thr: [f32; NB] =
                            std::array::from_fn(|b| scratch.scores[b][(t0 / TILE + b * 67) % TILE]);
                        let mut again = Scratch::new();
                        let hits = k.tile_scores(&lanes, NB, t0, &thr, &mut again);
                        for b in 0..NB {
                            let any = scratch.scores[b].iter().any(|&x| x > thr[b]);
                            assert_eq!(hits[b], any, "{}, tile {t0}, block {b}", k.kernel);
                            // And its masks are those of the scores above the threshold.
                            if any {
                                assert_eq!(
                                    again.masks[b],
                                    above_words_portable(&scratch.scores[b], thr[b]),
                                    "{}, tile {t0}, block {b}",
                                    k.kernel
                                );
                            }
                        }
                        for b in 0..NB {
                            for m in 0..TILE {
                                let idx = t0 + m;
                                if idx < s.tables.n && !s.tables.flagged.contains(&(idx as u32)) {
                                    check(b, idx, scratch.scores[b][m]);
                                }
                            }
                        }
                    }
                }
                // Scored together, as the search scores a batch, each block gets its own scores.
                let ws: Vec<&[f32]> = norms.iter().map(|nw| &nw.w[..c]).collect();
                s.tables
                    .flagged_scores_each(&ws, cfg.p, s.kernel, |b, f0, scores| {
                        for (&idx, &score) in s.tables.flagged[f0..].iter().zip(scores) {
                            check(b, idx as usize, score);
                        }
                    });
                for nw in &norms {
                    s.tables
                        .flagged_scores(&nw.w[..c], cfg.p, s.kernel, &mut fscores);
                    // Every kernel scores the flagged seeds the same, bit for bit.
                    for k in &kernels {
                        let mut other = vec![0.0f32; s.tables.f_pad];
                        s.tables
                            .flagged_scores(&nw.w[..c], cfg.p, k.kernel, &mut other);
                        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&other), bits(&fscores), "{cfg}, {}", k.kernel);
                    }
                }
            }
            let delta = f64::from(s.tables.delta);
            eprintln!(
                "{cfg}{}: worst relative f32 score error {worst:.3e}, bound {delta:.3e}, {} seeds flagged",
                if s.sw.is_some() { " weighted" } else { "" },
                s.tables.flagged.len()
            );
            assert!(worst < delta / 4.0, "{cfg}: {worst} vs bound {delta}");
        }
    }
}
