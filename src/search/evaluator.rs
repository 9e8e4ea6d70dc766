//! Exact f64 evaluation of candidate seeds for one block: least squares, then the exponent and
//! coefficients of smallest quantized error; keeps the best (ties to the lowest seed).

use super::{BlockResult, Searcher, TOP_K};
use crate::core::config::{MAX_C, MAX_P};
use crate::core::quant::{ExpRange, best_quantization};

/// Exact f64 evaluation of seeds for one block, keeping the best. Its buffers are reused from
/// block to block ([`Evaluator::start`]).
pub(super) struct Evaluator<'a> {
    s: &'a Searcher,
    w: [f64; MAX_C],
    range: ExpRange,
    u: Vec<f64>,
    v: Vec<i64>,
    best: Option<BlockResult>,
    seen: Vec<usize>,
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
        }
    }

    /// Starts on a new block `w` (C weights) with exponents in `range`.
    pub(super) fn start(&mut self, w: &[f32], range: ExpRange) {
        for (d, &x) in self.w.iter_mut().zip(w) {
            *d = f64::from(x);
        }
        self.range = range;
        self.best = None;
        self.seen.clear();
    }

    pub(super) fn best_err(&self) -> f64 {
        self.best.map_or(f64::INFINITY, |b| b.err)
    }

    /// Evaluates seed index `idx` exactly (once per block) and keeps it if it is the best so far.
    pub(super) fn consider(&mut self, idx: usize) {
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

    pub(super) fn result(&self) -> BlockResult {
        self.best
            .expect("a non-zero block has at least one candidate")
    }
}
