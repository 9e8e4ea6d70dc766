//! Exact f64 evaluation of candidate seeds for one block: least squares, then the exponent and
//! coefficients of smallest quantized error; keeps the best (ties to the lowest seed).

use super::{BlockResult, Searcher, TOP_K};
use crate::core::config::{MAX_C, MAX_P};
use crate::core::quant::{BlockFit, ExpRange, best_quantization_within};
use std::cell::Cell;

thread_local! {
    /// Exact evaluations made on this thread: a deterministic measure of a search's cost.
    static EVALUATIONS: Cell<u64> = const { Cell::new(0) };
}

/// How many seeds this thread has evaluated exactly so far (a diagnostic for tests and the
/// benchmark: a typical block costs a few, a rescan more).
pub fn evaluations() -> u64 {
    EVALUATIONS.with(Cell::get)
}

/// Exact f64 evaluation of seeds for one block, keeping the best. Its buffers are reused from
/// block to block ([`Evaluator::start`]).
pub(super) struct Evaluator<'a> {
    s: &'a Searcher,
    w: [f64; MAX_C],
    range: ExpRange,
    u: Vec<f64>,
    v: Vec<i64>,
    best: Option<BlockResult>,
    /// Seed indices evaluated for this block, and the same as a bit set for the membership test
    /// (a rescan may evaluate thousands).
    seen: Vec<usize>,
    seen_bits: Vec<u64>,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(s: &'a Searcher) -> Self {
        let cp = s.cfg.c * s.cfg.p;
        Evaluator {
            s,
            w: [0.0; MAX_C],
            range: ExpRange::UNBOUNDED,
            u: vec![0.0; cp],
            v: vec![0; cp],
            best: None,
            seen: Vec::with_capacity(TOP_K * 2),
            seen_bits: vec![0; s.tables.n.div_ceil(64)],
        }
    }

    /// Starts on a new block `w` (C weights) with exponents in `range`; a weighted searcher's
    /// evaluations are of `sw ⊙ w` against `sw ⊙ ŵ`.
    pub(super) fn start(&mut self, w: &[f32], range: ExpRange) {
        let sw = self.s.sw.as_deref();
        for (i, (d, &x)) in self.w.iter_mut().zip(w).enumerate() {
            *d = f64::from(x) * sw.map_or(1.0, |s| s[i]);
        }
        self.range = range;
        self.best = None;
        for &idx in &self.seen {
            self.seen_bits[idx / 64] = 0;
        }
        self.seen.clear();
    }

    /// The exponent range of this block.
    pub(super) fn range(&self) -> ExpRange {
        self.range
    }

    /// The error of all-zero coefficients, `‖w‖²`, summed as the quantizer sums it.
    pub(super) fn zero_err(&self) -> f64 {
        self.w[..self.s.cfg.c].iter().map(|x| x * x).sum()
    }

    /// The best seed so far, if any was evaluated.
    pub(super) fn best_seed(&self) -> Option<u32> {
        self.best.map(|b| b.seed)
    }

    pub(super) fn best_err(&self) -> f64 {
        self.best.map_or(f64::INFINITY, |b| b.err)
    }

    /// Evaluates seed index `idx` exactly (once per block) and keeps it if it is the best so far.
    pub(super) fn consider(&mut self, idx: usize) {
        let (word, bit) = (idx / 64, 1u64 << (idx % 64));
        if self.seen_bits[word] & bit != 0 {
            return;
        }
        self.seen_bits[word] |= bit;
        self.seen.push(idx);
        EVALUATIONS.with(|n| n.set(n.get() + 1));
        let (c, p) = (self.s.cfg.c, self.s.cfg.p);
        let basis = &self.s.basis;
        let denom = basis.denom();
        basis.centred_at(idx, &mut self.v);
        // U(s) from the centred integers: the same arithmetic as `Basis::normalize`.
        let sw = self.s.sw.as_deref();
        for (k, (u, &v)) in self.u.iter_mut().zip(&self.v).enumerate() {
            *u = v as f64 / denom * sw.map_or(1.0, |s| s[k / p]);
        }
        let mut t = [0.0; MAX_P];
        crate::core::lstsq::solve(&self.u, &self.w[..c], c, p, &mut t[..p]);
        // Only a quantization at most the best error so far can matter.
        let fit = BlockFit {
            w: &self.w[..c],
            sw,
            v: &self.v,
            p,
            t: &t[..p],
            denom,
        };
        let (err, quant) =
            best_quantization_within(&fit, self.range, self.s.rounding, self.best_err());
        let seed = basis.state_at(idx);
        let better = match &self.best {
            None => true,
            Some(b) => err < b.err || (err == b.err && seed < b.seed),
        };
        if better {
            self.best = Some(BlockResult { seed, quant, err });
        }
    }

    pub(super) fn result(&self) -> BlockResult {
        self.best
            .expect("a non-zero block has at least one candidate")
    }
}
