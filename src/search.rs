//! Exact seed search (the paper's Algorithm 3 with DESIGN.md §1's quantizer).
//!
//! Each block gets the (seed, e, q) of smallest quantized reconstruction error `‖w − U(s)·t̂‖²`
//! over all 2^K − 1 seeds; ties go to the lowest seed, then the lowest exponent.
//!
//! The search runs in two passes per block and stays exact:
//! 1. A SIMD f32 scan scores every seed by `‖Q(s)ᵀw‖²` (the energy of w's projection on span
//!    U(s)), computed as `|L(s)⁻¹ b|²` where `b = U(s)ᵀw` and `L(s)` is the Cholesky factor of
//!    `U(s)ᵀU(s)`. Because U(s+1) is U(s) shifted by one state, `b` for every seed comes from one
//!    correlation of the state sequence with w. The scan keeps the [`TOP_K`] best scores.
//! 2. Those candidates are evaluated exactly in f64 (least squares, exponent choice, rounding).
//!    The unquantized residual is a lower bound on any seed's quantized error, and the f32 scores
//!    are accurate to [`Tables::delta`] (relative to ‖w‖²) for every seed the scan covers, so if
//!    the K-th best residual minus that margin exceeds the best quantized error, no other seed can
//!    win. Otherwise the block is rescanned and every seed that might win is evaluated.
//!
//! Seeds whose U(s) is ill-conditioned (where L⁻¹ would amplify f32 rounding past the margin)
//! are scored instead through an orthonormal basis of span U(s), whose rounding error does not
//! depend on conditioning.

use crate::basis::Basis;
use crate::config::{Config, MAX_C, MAX_P};
use crate::lstsq::Cholesky;
use crate::quant::{ExpRange, Quantized, best_quantization};
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
pub const TOP_K: usize = 16;
/// Seeds per tile: the tile's share of the tables stays in L1 while a batch of blocks uses it.
const TILE: usize = 512;
/// Correlation entries computed per tile (TILE plus room for P − 1 overlap, in whole vectors).
const RBUF: usize = TILE + 8;
/// Seeds whose U(s) has a condition number bound above this are checked in f64.
const KAPPA_MAX: f64 = 200.0;
/// Blocks scanned together per tile.
pub const BATCH: usize = 8;

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
    /// `e * n_pad + i`. Zero for ill-conditioned and padding seeds.
    linv: Vec<f32>,
    /// Seed indices scored through an orthonormal basis instead of L⁻¹.
    flagged: Vec<u32>,
    /// `flagged.len()` rounded up to whole vectors.
    f_pad: usize,
    /// Orthonormal bases of the flagged seeds, structure-of-arrays: entry (i, j) of flagged
    /// seed f is at `(i * P + j) * f_pad + f`.
    fq: Vec<f32>,
    /// Bound on the scan's score error relative to ‖w‖², for seeds it covers.
    delta: f32,
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
        let entries = p * (p + 1) / 2;
        let mut linv = vec![0.0f32; entries * n_pad];
        let mut flagged = Vec::new();
        let mut u = vec![0.0; c * p];
        for idx in 0..n {
            basis.fill_u_at(idx, &mut u);
            let chol = Cholesky::of_columns(&u, c, p);
            match chol.inverse_lower() {
                Some(inv) if chol.condition_bound() <= KAPPA_MAX => {
                    for (e, v) in inv.iter().enumerate() {
                        linv[e * n_pad + idx] = *v as f32;
                    }
                }
                _ => flagged.push(idx as u32),
            }
        }
        let f_pad = flagged.len().div_ceil(8) * 8;
        let mut fq = vec![0.0f32; c * p * f_pad];
        for (f, &idx) in flagged.iter().enumerate() {
            basis.fill_u_at(idx as usize, &mut u);
            orthonormalise(&mut u, c, p);
            for (e, v) in u.iter().enumerate() {
                fq[e * f_pad + f] = *v as f32;
            }
        }
        // Scores are |L⁻¹b|² with b a length-C dot product of values in [-1, 1] and w scaled so
        // max|w| < 2. Rounding error of b is at most ~C·u·Σ|w|, amplified by at most κ through
        // L⁻¹; the square doubles it. 64·C·κ·u is a comfortable bound (u = 2^-24).
        let delta = (64.0 * c as f64 * KAPPA_MAX * f64::from(f32::EPSILON) / 2.0) as f32;
        Tables {
            n,
            n_pad,
            x,
            linv,
            flagged,
            f_pad,
            fq,
            delta,
        }
    }

    /// Scores of the flagged seeds, `out.len() == f_pad`: ‖Qᵀw‖² with Q orthonormal, so the
    /// rounding error is at most ~2·C·√P·u·‖w‖², far inside `delta`.
    fn flagged_scores(&self, w: &[f32], p: usize, out: &mut [f32]) {
        let f_pad = self.f_pad;
        out.fill(0.0);
        for j in 0..p {
            let mut y = vec![0.0f32; f_pad];
            for (i, &wi) in w.iter().enumerate() {
                let col = &self.fq[(i * p + j) * f_pad..(i * p + j + 1) * f_pad];
                for (yf, &q) in y.iter_mut().zip(col) {
                    *yf += q * wi;
                }
            }
            for (o, yf) in out.iter_mut().zip(&y) {
                *o += yf * yf;
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
        let (pos, &min) = self
            .score
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("TOP_K > 0");
        self.min_pos = pos;
        self.thr = min;
    }
}

/// Exact searcher for one configuration. Cheap to clone; tables are shared.
#[derive(Clone, Debug)]
pub struct Searcher {
    cfg: Config,
    basis: Arc<Basis>,
    tables: Arc<Tables>,
}

/// A block normalised for the f32 scan: `w / 2^⌊log2 max|w|⌋`.
struct Normalised {
    w: [f32; MAX_C],
    norm2: f32,
    /// Squared scale factor from normalised to original units.
    scale2: f64,
}

impl Searcher {
    /// A searcher for `cfg` (validated), sharing tables with every other searcher of `cfg`.
    pub fn new(cfg: Config) -> Searcher {
        static CACHE: OnceLock<Mutex<HashMap<Config, Arc<Tables>>>> = OnceLock::new();
        let basis = Basis::for_k(cfg.k);
        let cache = CACHE.get_or_init(Default::default);
        let tables = {
            let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(cfg)
                .or_insert_with(|| Arc::new(Tables::build(cfg, &basis)))
                .clone()
        };
        Searcher { cfg, basis, tables }
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

    /// Searches `out.len()` consecutive blocks of C weights in `blocks`. Every weight must be
    /// finite.
    pub fn search_batch(&self, blocks: &[f32], range: ExpRange, out: &mut [BlockResult]) {
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
            match normalise(w) {
                Some(nw) => norms.push((b, nw)),
                None => out[b] = self.zero_result(range),
            }
        }
        if norms.is_empty() {
            return;
        }
        let mut tops = vec![TopK::new(); norms.len()];
        let mut r = [0.0f32; RBUF];
        let mut scores = [0.0f32; TILE];
        for t0 in (0..self.tables.n_pad).step_by(TILE) {
            for ((_, nw), top) in norms.iter().zip(tops.iter_mut()) {
                let thr = top.thr;
                let mask = self.tile_scores(&nw.w[..c], t0, thr, &mut r, &mut scores);
                for_each_above(&scores, mask, thr, |m| {
                    let s = scores[m];
                    if s > top.thr {
                        top.push(s, (t0 + m) as u32);
                    }
                });
            }
        }
        let mut fscores = vec![0.0f32; self.tables.f_pad];
        for ((b, nw), top) in norms.iter().zip(tops.iter_mut()) {
            self.tables
                .flagged_scores(&nw.w[..c], self.cfg.p, &mut fscores);
            for (f, &idx) in self.tables.flagged.iter().enumerate() {
                if fscores[f] > top.thr {
                    top.push(fscores[f], idx);
                }
            }
            let w = &chunk[b * c..(b + 1) * c];
            out[*b] = self.finish(w, nw, top, range);
        }
    }

    /// Pass 2 for one block: exact evaluation of the candidates, the flagged seeds, and if the
    /// margin does not prove the answer, every seed that might still win.
    fn finish(&self, w: &[f32], nw: &Normalised, top: &TopK, range: ExpRange) -> BlockResult {
        let w64: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
        let mut ev = Evaluator::new(self, &w64, range);
        let n = self.tables.n;
        let mut order: Vec<usize> = (0..top.len).collect();
        order.sort_by(|&a, &b| top.score[b].total_cmp(&top.score[a]));
        for &i in &order {
            let idx = top.idx[i] as usize;
            if idx < n {
                ev.consider(idx);
            }
        }
        let delta = self.tables.delta * nw.norm2;
        let best_norm = ev.best_err() / nw.scale2;
        let proven = top.len < TOP_K || f64::from(nw.norm2 - top.thr - delta) > best_norm;
        if !proven {
            RESCANS.fetch_add(1, Ordering::Relaxed);
            // Any seed with true residual ≤ best has score ≥ ‖w‖² − best − δ.
            let c = self.cfg.c;
            let mut r = [0.0f32; RBUF];
            let mut scores = [0.0f32; TILE];
            for t0 in (0..self.tables.n_pad).step_by(TILE) {
                // One more f32 ulp of ‖w‖² so rounding of the threshold itself cannot exclude a seed.
                let thr = (f64::from(nw.norm2 - delta) - ev.best_err() / nw.scale2) as f32
                    - f32::EPSILON * nw.norm2;
                let mask = self.tile_scores(&nw.w[..c], t0, thr, &mut r, &mut scores);
                for_each_above(&scores, mask, thr, |m| {
                    let idx = t0 + m;
                    if idx < n {
                        ev.consider(idx);
                    }
                });
            }
            let thr = (f64::from(nw.norm2 - delta) - ev.best_err() / nw.scale2) as f32
                - f32::EPSILON * nw.norm2;
            let mut fscores = vec![0.0f32; self.tables.f_pad];
            self.tables
                .flagged_scores(&nw.w[..c], self.cfg.p, &mut fscores);
            for (f, &idx) in self.tables.flagged.iter().enumerate() {
                if fscores[f] > thr {
                    ev.consider(idx as usize);
                }
            }
        }
        ev.result()
    }

    /// Scores of the TILE seeds starting at cycle position `t0`, and the mask of 8-seed groups
    /// with a score above `thr`.
    fn tile_scores(
        &self,
        w: &[f32],
        t0: usize,
        thr: f32,
        r: &mut [f32; RBUF],
        out: &mut [f32; TILE],
    ) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features are present; indices stay inside the extended tables (see
            // `Tables::build`).
            return unsafe {
                match self.cfg.p {
                    1 => avx2::tile_scores::<1>(&self.tables, w, t0, thr, r, out),
                    2 => avx2::tile_scores::<2>(&self.tables, w, t0, thr, r, out),
                    3 => avx2::tile_scores::<3>(&self.tables, w, t0, thr, r, out),
                    4 => avx2::tile_scores::<4>(&self.tables, w, t0, thr, r, out),
                    5 => avx2::tile_scores::<5>(&self.tables, w, t0, thr, r, out),
                    6 => avx2::tile_scores::<6>(&self.tables, w, t0, thr, r, out),
                    7 => avx2::tile_scores::<7>(&self.tables, w, t0, thr, r, out),
                    _ => avx2::tile_scores::<8>(&self.tables, w, t0, thr, r, out),
                }
            };
        }
        scalar_tile_scores(&self.tables, self.cfg.p, w, t0, thr, r, out)
    }
}

/// Calls `f(m)` for each `m` with `scores[m] > thr`, visiting only the groups set in `mask`.
#[inline]
fn for_each_above(scores: &[f32], mut mask: u64, thr: f32, mut f: impl FnMut(usize)) {
    while mask != 0 {
        let g = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        for (l, &s) in scores[g * 8..g * 8 + 8].iter().enumerate() {
            if s > thr {
                f(g * 8 + l);
            }
        }
    }
}

fn normalise(w: &[f32]) -> Option<Normalised> {
    let m = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if m == 0.0 {
        return None;
    }
    let e = f64::from(m).log2().floor() as i32;
    let inv = crate::quant::pow2(-e);
    let mut nw = [0.0f32; MAX_C];
    let mut norm2 = 0.0f32;
    for (o, &x) in nw.iter_mut().zip(w) {
        *o = (f64::from(x) * inv) as f32;
        norm2 += *o * *o;
    }
    Some(Normalised {
        w: nw,
        norm2,
        scale2: crate::quant::pow2(2 * e),
    })
}

/// Exact f64 evaluation of seeds for one block, keeping the best.
struct Evaluator<'a> {
    s: &'a Searcher,
    w: &'a [f64],
    range: ExpRange,
    u: Vec<f64>,
    v: Vec<i64>,
    best: Option<BlockResult>,
    seen: Vec<usize>,
}

impl<'a> Evaluator<'a> {
    fn new(s: &'a Searcher, w: &'a [f64], range: ExpRange) -> Self {
        let cp = s.cfg.c * s.cfg.p;
        Evaluator {
            s,
            w,
            range,
            u: vec![0.0; cp],
            v: vec![0; cp],
            best: None,
            seen: Vec::with_capacity(TOP_K * 2),
        }
    }

    fn best_err(&self) -> f64 {
        self.best.map_or(f64::INFINITY, |b| b.err)
    }

    /// Least-squares coefficients of seed index `idx`; fills `self.u` and `self.v`.
    fn solve(&mut self, idx: usize) -> [f64; MAX_P] {
        let (c, p) = (self.s.cfg.c, self.s.cfg.p);
        self.s.basis.fill_u_at(idx, &mut self.u);
        let mut t = [0.0; MAX_P];
        crate::lstsq::solve(&self.u, self.w, c, p, &mut t[..p]);
        t
    }

    fn consider(&mut self, idx: usize) {
        if self.seen.contains(&idx) {
            return;
        }
        self.seen.push(idx);
        let t = self.solve(idx);
        self.consider_solved(idx, &t);
    }

    fn consider_solved(&mut self, idx: usize, t: &[f64; MAX_P]) {
        let p = self.s.cfg.p;
        self.s.basis.centred_at(idx, &mut self.v);
        let (err, quant) = best_quantization(
            self.w,
            &self.v,
            p,
            &t[..p],
            self.s.basis.denom(),
            self.range,
        );
        let seed = self.s.basis.state_at(idx);
        let better = match &self.best {
            None => true,
            Some(b) => err < b.err || (err == b.err && seed < b.seed),
        };
        if better {
            self.best = Some(BlockResult { seed, quant, err });
        }
    }

    fn result(self) -> BlockResult {
        self.best
            .expect("a non-zero block has at least one candidate")
    }
}

/// Portable scan for machines without AVX2/FMA.
fn scalar_tile_scores(
    t: &Tables,
    p: usize,
    w: &[f32],
    t0: usize,
    thr: f32,
    r: &mut [f32; RBUF],
    out: &mut [f32; TILE],
) -> u64 {
    let x = &t.x[t0 + 1..];
    for (m, rm) in r.iter_mut().enumerate() {
        *rm = w.iter().enumerate().map(|(i, &wi)| wi * x[m + i * p]).sum();
    }
    for (m, o) in out.iter_mut().enumerate() {
        let mut e = 0;
        let mut s = 0.0;
        for j in 0..p {
            let mut y = 0.0;
            for k in 0..=j {
                y += t.linv[e * t.n_pad + t0 + m] * r[m + k];
                e += 1;
            }
            s += y * y;
        }
        *o = s;
    }
    group_mask(out, thr)
}

/// Bit g set when any of `scores[8g..8g+8]` exceeds `thr`.
fn group_mask(scores: &[f32], thr: f32) -> u64 {
    scores
        .chunks(8)
        .enumerate()
        .filter(|(_, g)| g.iter().any(|&s| s > thr))
        .fold(0, |m, (g, _)| m | 1 << g)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RBUF, TILE, Tables};
    use std::arch::x86_64::*;

    /// Scores of one tile with AVX2+FMA, eight seeds a vector. Returns a mask with bit g set
    /// when any score of group g (seeds 8g..8g+8) exceeds `thr`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, `w.len()` must be the config's C, and `t0 + TILE`
    /// must not exceed the tables' padded length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_scores<const P: usize>(
        t: &Tables,
        w: &[f32],
        t0: usize,
        thr: f32,
        r: &mut [f32; RBUF],
        out: &mut [f32; TILE],
    ) -> u64 {
        let c = w.len();
        debug_assert!(t0 + TILE <= t.n_pad);
        debug_assert!(t0 + 1 + RBUF + c * P <= t.x.len());
        // SAFETY (whole body): every pointer offset stays below the bounds asserted above.
        unsafe {
            let xb = t.x.as_ptr().add(t0 + 1);
            let rp = r.as_mut_ptr();
            // Correlation r[m] = Σ_i w_i · x[m + i·P], eight vectors at a time so the FMA chains
            // overlap.
            const GROUP: usize = 8;
            let mut m = 0;
            while m + GROUP * 8 <= RBUF {
                let mut acc = [_mm256_setzero_ps(); GROUP];
                for (i, &wi) in w.iter().enumerate() {
                    let wv = _mm256_set1_ps(wi);
                    let xi = xb.add(m + i * P);
                    for (g, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xi.add(g * 8)), *a);
                    }
                }
                for (g, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(rp.add(m + g * 8), *a);
                }
                m += GROUP * 8;
            }
            while m < RBUF {
                let mut a = _mm256_setzero_ps();
                for (i, &wi) in w.iter().enumerate() {
                    a = _mm256_fmadd_ps(_mm256_set1_ps(wi), _mm256_loadu_ps(xb.add(m + i * P)), a);
                }
                _mm256_storeu_ps(rp.add(m), a);
                m += 8;
            }
            // Scores |L⁻¹ b|², b_j = r[m + j].
            let lp = t.linv.as_ptr().add(t0);
            let np = t.n_pad;
            let op = out.as_mut_ptr();
            let thr_v = _mm256_set1_ps(thr);
            let mut mask = 0u64;
            let mut m = 0;
            while m < TILE {
                let mut b = [_mm256_setzero_ps(); P];
                for (j, bj) in b.iter_mut().enumerate() {
                    *bj = _mm256_loadu_ps(rp.add(m + j));
                }
                let mut s = _mm256_setzero_ps();
                let mut e = 0;
                for j in 0..P {
                    let mut y = _mm256_mul_ps(_mm256_loadu_ps(lp.add(e * np + m)), b[0]);
                    e += 1;
                    for bk in b.iter().take(j + 1).skip(1) {
                        y = _mm256_fmadd_ps(_mm256_loadu_ps(lp.add(e * np + m)), *bk, y);
                        e += 1;
                    }
                    s = _mm256_fmadd_ps(y, y, s);
                }
                _mm256_storeu_ps(op.add(m), s);
                let above = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(s, thr_v));
                mask |= u64::from(above != 0) << (m / 8);
                m += 8;
            }
            mask
        }
    }
}
