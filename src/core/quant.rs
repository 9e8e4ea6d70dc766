//! The coefficient quantizer: 4-bit two's-complement q with one shared exponent per block.
//!
//! `t̂_i = q_i · 2^e`, `q_i ∈ [−8, 7]`, `e = e_base + E` with a 4-bit code E. For a block and a
//! seed, the exponent is the one among `{e*−1, e*, e*+1}` (clamped into the tensor's range) whose
//! rounded coefficients give the smallest reconstruction error (docs/DESIGN.md §1), or with
//! [`Rounding::Exact`] the closest point of the format's whole lattice (every exponent of the
//! range, every q in [−8, 7]^P).

use crate::core::config::{MAX_C, MAX_P};
use crate::core::lstsq::Cholesky;

/// Smallest coefficient.
pub const Q_MIN: i32 = -8;
/// Largest coefficient.
pub const Q_MAX: i32 = 7;
/// Number of exponent codes E.
pub const E_CODES: i32 = 16;
/// The paper's exponent range [−8, 7]: used where a tensor has no scale (all zero).
pub const DEFAULT_E_BASE: i32 = -8;

/// Exponents a block may use, `[lo, hi]`, and the bound its reconstruction must stay below.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpRange {
    /// Smallest exponent.
    pub lo: i32,
    /// Largest exponent.
    pub hi: i32,
    /// Every reconstructed weight `|ŵ_i|` (f64, the decoder's arithmetic) must be below this:
    /// the tensor's dtype cannot hold a larger one (infinite for no bound).
    pub max_abs: f64,
}

impl ExpRange {
    /// A range wide enough never to bind (used to find a tensor's natural exponents).
    pub const UNBOUNDED: ExpRange = ExpRange::new(-1000, 1000);

    /// Exponents `lo ..= hi`, reconstructions unbounded.
    pub const fn new(lo: i32, hi: i32) -> Self {
        ExpRange {
            lo,
            hi,
            max_abs: f64::INFINITY,
        }
    }

    /// The 16 exponents `e_base ..= e_base + 15` of a tensor.
    pub fn from_base(e_base: i32) -> Self {
        ExpRange::new(e_base, e_base + E_CODES - 1)
    }

    /// The same exponents with every reconstructed weight kept below `max_abs` as well.
    pub fn below(self, max_abs: f64) -> Self {
        ExpRange {
            max_abs: self.max_abs.min(max_abs),
            ..self
        }
    }

    fn clamp(&self, e: i32) -> i32 {
        e.clamp(self.lo, self.hi)
    }
}

/// `2^e` in f64 (exact for the exponents a block can have). A normal power of two is its
/// exponent field alone: `powi` is a libgcc loop of multiplications, and the candidate
/// evaluation takes several powers per seed.
#[inline]
pub fn pow2(e: i32) -> f64 {
    if (-1022..=1023).contains(&e) {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::powi(2.0, e)
    }
}

/// `x.round()` (halves away from zero) inline: on baseline x86_64 `f64::round` is a libm call,
/// and the search rounds every candidate's coefficients at several exponents.
fn round_half_away(x: f64) -> f64 {
    // Beyond 2^52 every f64 is an integer (and NaN fails the test, staying NaN).
    if x.abs() < 4_503_599_627_370_496.0 {
        let t = x as i64 as f64;
        // The fractional part x − trunc(x) is exact.
        let f = x - t;
        let r = if f >= 0.5 {
            t + 1.0
        } else if f <= -0.5 {
            t - 1.0
        } else {
            t
        };
        // Keeps the sign of zero, as `f64::round` does (−0.3 rounds to −0).
        r.copysign(x)
    } else {
        x
    }
}

/// Round to nearest (halves away from zero), clamped to [−8, 7].
pub fn round_q(x: f64) -> i32 {
    let r = round_half_away(x);
    if r < Q_MIN as f64 {
        Q_MIN
    } else if r > Q_MAX as f64 {
        Q_MAX
    } else {
        r as i32
    }
}

/// e*: the smallest exponent at which every rounded coefficient fits in [−8, 7] unclamped,
/// or `None` when every coefficient is zero.
pub fn e_star(t: &[f64]) -> Option<i32> {
    let m = t.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if m == 0.0 || !m.is_finite() {
        return None;
    }
    let fits = |e: i32| {
        let s = pow2(-e);
        t.iter().all(|&x| {
            let r = round_half_away(x * s);
            (Q_MIN as f64..=Q_MAX as f64).contains(&r)
        })
    };
    // log2(m/8) is within one of the answer; walk to the boundary.
    let mut e = (m.log2() - 3.0).floor() as i32;
    while !fits(e) {
        e += 1;
    }
    while fits(e - 1) {
        e -= 1;
    }
    Some(e)
}

/// A block's quantized coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantized {
    /// The exponent e (absolute, not the code).
    pub e: i32,
    /// Coefficients; entries past P are zero.
    pub q: [i8; MAX_P],
}

/// Row i of the exact integer reconstruction: `Σ_j v_ij·q_j`.
fn row_sum(v: &[i64], p: usize, quant: &Quantized, i: usize) -> i64 {
    v[i * p..(i + 1) * p]
        .iter()
        .zip(&quant.q[..p])
        .map(|(&a, &q)| a * i64::from(q))
        .sum()
}

/// Whether every weight `quant` reconstructs (the decoder's arithmetic, `v` the centred basis
/// of C rows) is below `max_abs` in size. Cheap when it cannot bind: `|ŵ_i| ≤ Σ_j |q_j|·2^e`,
/// a centred state being at most 2^(K−1) − 1 = `denom` in size.
pub fn fits_below(v: &[i64], p: usize, quant: &Quantized, denom: f64, max_abs: f64) -> bool {
    let bound: f64 = quant.q[..p]
        .iter()
        .map(|&q| f64::from(q.unsigned_abs()))
        .sum::<f64>()
        * pow2(quant.e);
    if bound < max_abs {
        return true;
    }
    let scale = pow2(quant.e);
    (0..v.len() / p).all(|i| (row_sum(v, p, quant, i) as f64 / denom * scale).abs() < max_abs)
}

/// `quant` if it fits below `max_abs` ([`fits_below`]), else its coefficients scaled towards
/// zero by the largest factor s/16 that fits (all zero, which always fits, at the latest).
fn shrink_to_fit(v: &[i64], p: usize, quant: Quantized, denom: f64, max_abs: f64) -> Quantized {
    if fits_below(v, p, &quant, denom, max_abs) {
        return quant;
    }
    for s in (0..16).rev() {
        let mut q = quant;
        for x in &mut q.q[..p] {
            *x = (i32::from(*x) * s / 16) as i8;
        }
        if fits_below(v, p, &q, denom, max_abs) {
            return q;
        }
    }
    unreachable!("all-zero coefficients fit any positive bound")
}

/// The exact decoder arithmetic of one block: `ŵ_i = (Σ_j v_ij·q_j) · 2^e / (2^(K−1) − 1)`, where
/// `v` is the centred integer basis (V − 2^(K−1)). The sum is an exact integer, so every
/// implementation that follows this formula reproduces the same f64 values.
pub fn reconstruct_into(v: &[i64], p: usize, quant: &Quantized, denom: f64, out: &mut [f64]) {
    let scale = pow2(quant.e);
    for (i, o) in out.iter_mut().enumerate() {
        *o = row_sum(v, p, quant, i) as f64 / denom * scale;
    }
}

/// Squared reconstruction error `‖w − ŵ‖²` of a quantization, in f64 (the decoder's arithmetic).
pub fn quantized_error(w: &[f64], v: &[i64], p: usize, quant: &Quantized, denom: f64) -> f64 {
    weighted_error(w, None, v, p, quant, denom)
}

/// [`quantized_error`] under row weights: `Σ (w'_i − sw_i·ŵ_i)²` with `w'` the weights already
/// scaled by `sw` (`None`: all ones, the plain error bit for bit).
fn weighted_error(
    w: &[f64],
    sw: Option<&[f64]>,
    v: &[i64],
    p: usize,
    quant: &Quantized,
    denom: f64,
) -> f64 {
    let mut resid = [0.0; MAX_C];
    residual_into(w, sw, v, p, quant, denom, &mut resid[..w.len()])
}

/// Row `i`'s weight (1 when unweighted).
fn row_weight(sw: Option<&[f64]>, i: usize) -> f64 {
    sw.map_or(1.0, |s| s[i])
}

/// Writes the residual `w − ŵ` of a quantization into `resid` (C long) and returns its squared
/// norm, exactly as [`quantized_error`] computes it.
fn residual_into(
    w: &[f64],
    sw: Option<&[f64]>,
    v: &[i64],
    p: usize,
    quant: &Quantized,
    denom: f64,
    resid: &mut [f64],
) -> f64 {
    let scale = pow2(quant.e);
    let mut err = 0.0;
    for (i, (r, &wi)) in resid.iter_mut().zip(w).enumerate() {
        *r = wi - row_sum(v, p, quant, i) as f64 / denom * scale * row_weight(sw, i);
        err += *r * *r;
    }
    err
}

/// Rounds `t` at exponent `e`.
pub fn quantize(t: &[f64], e: i32) -> Quantized {
    let s = pow2(-e);
    let mut q = [0i8; MAX_P];
    for (qi, &ti) in q.iter_mut().zip(t) {
        *qi = round_q(ti * s) as i8;
    }
    Quantized { e, q }
}

/// How coefficients are chosen for a seed and exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// docs/DESIGN.md §1 to the letter: round-to-nearest of `t / 2^e`, clamped.
    Nearest,
    /// Round to nearest, then move single coefficients by ±1 while that lowers the error
    /// (coordinate descent over neighbouring lattice points). Never worse than `Nearest`; the
    /// decoder is unchanged.
    Refined,
    /// The format's true optimum for the seed: the (e, q) of smallest error over every exponent
    /// of the range and every q in [−8, 7]^P, found by a pruned enumeration started from the
    /// `Refined` answer (so never worse than it). The decoder is unchanged. The shipping rule.
    #[default]
    Exact,
}

impl Rounding {
    /// The name the CLI and reports use: `exact`, `fast` (refined) or `nearest`.
    pub fn name(self) -> &'static str {
        match self {
            Rounding::Nearest => "nearest",
            Rounding::Refined => "fast",
            Rounding::Exact => "exact",
        }
    }
}

/// Improves `quant` of `fit` (with error `err` and residual `resid`, as [`residual_into`] gives them;
/// `resid` is overwritten) by coordinate descent: any single coefficient moved by ±1 that lowers
/// the error and keeps the reconstruction below `max_abs` is kept, until no move helps. Moves are scored incrementally from the residual
/// (O(C) each); the returned error is recomputed with the decoder's arithmetic, and the input is
/// returned unchanged if that is not an improvement.
fn refine(
    fit: &BlockFit<'_>,
    (quant, err): (Quantized, f64),
    max_abs: f64,
    resid: &mut [f64],
) -> (f64, Quantized) {
    let BlockFit {
        w, sw, v, p, denom, ..
    } = *fit;
    let c = w.len();
    let step = pow2(quant.e) / denom;
    let col = |j: usize| (0..c).map(move |i| v[i * p + j] as f64 * step * row_weight(sw, i));
    let mut norm2 = [0.0; MAX_P];
    for (j, n) in norm2[..p].iter_mut().enumerate() {
        *n = col(j).map(|x| x * x).sum();
    }
    let mut q = quant;
    let mut moved = false;
    loop {
        let mut improved = false;
        for (j, &nj) in norm2[..p].iter().enumerate() {
            // ‖r − d·s·v_j‖² − ‖r‖² = −2d⟨r, s·v_j⟩ + ‖s·v_j‖²: only d = sign⟨r, s·v_j⟩ can
            // lower it (the two changes sum to 2‖s·v_j‖² ≥ 0). Demand a real decrease.
            let dot: f64 = col(j).zip(resid.iter()).map(|(x, r)| x * r).sum();
            let d = if dot > 0.0 { 1 } else { -1 };
            let qj = i32::from(q.q[j]) + d;
            let change = nj - 2.0 * f64::from(d) * dot;
            let mut moved_q = q;
            moved_q.q[j] = qj as i8;
            if (Q_MIN..=Q_MAX).contains(&qj)
                && change < -1e-12 * err
                && fits_below(v, p, &moved_q, denom, max_abs)
            {
                q = moved_q;
                for (r, x) in resid.iter_mut().zip(col(j)) {
                    *r -= f64::from(d) * x;
                }
                improved = true;
                moved = true;
            }
        }
        if !improved {
            break;
        }
    }
    if !moved {
        return (err, quant);
    }
    let exact = weighted_error(w, sw, v, p, &q, denom);
    if exact < err {
        (exact, q)
    } else {
        (err, quant)
    }
}

/// One block's quantization problem for one seed, as the quantizers take it: named, so the
/// weights and the coefficients (both `&[f64]`) cannot be swapped by mistake.
#[derive(Clone, Copy, Debug)]
pub struct BlockFit<'a> {
    /// The block's C weights (already scaled by `sw` when weighted).
    pub w: &'a [f64],
    /// Row weights, C long and positive (`None`: unweighted, the plain quantizer bit for bit).
    pub sw: Option<&'a [f64]>,
    /// The seed's centred integer basis, C×P row-major.
    pub v: &'a [i64],
    /// Coefficients per block.
    pub p: usize,
    /// The (weighted) least-squares coefficients, P long.
    pub t: &'a [f64],
    /// The basis's denominator: U = v / denom.
    pub denom: f64,
}

/// The best quantization of `fit`'s least-squares coefficients: the candidate exponent
/// (from `{e*−1, e*, e*+1}` clamped into `range`) of smallest error, or with
/// [`Rounding::Exact`] the closest lattice point; ties go to the lower exponent. Every weight it
/// reconstructs is below `range.max_abs` (a rounded candidate that is not is scaled towards zero
/// until it is). Returns the error and the quantization.
pub fn best_quantization(
    fit: &BlockFit<'_>,
    range: ExpRange,
    rounding: Rounding,
) -> (f64, Quantized) {
    best_quantization_within(fit, range, rounding, f64::INFINITY)
}

/// [`best_quantization`] for a caller that only needs the answer when its error is at most
/// `limit` (a search's best error so far): [`Rounding::Exact`] then prunes its enumeration at
/// `limit`, and may return a worse quantization when none is within it. Under row weights
/// `fit.sw` it minimises `Σ_i (w'_i − sw_i·ŵ_i)²` where `w' = sw ⊙ w` is `fit.w` and `fit.t`
/// solves the weighted least squares; the decoder is the same.
pub fn best_quantization_within(
    fit: &BlockFit<'_>,
    range: ExpRange,
    rounding: Rounding,
    limit: f64,
) -> (f64, Quantized) {
    let start = rounded(fit, range, rounding);
    if rounding == Rounding::Exact {
        Lattice::new(fit).map_or(start, |l| {
            let l = Lattice {
                max_abs: range.max_abs,
                ..l
            };
            l.closest(range, start, limit)
        })
    } else {
        start
    }
}

/// The answer of [`best_quantization`] for the rounding rules (`Exact` starts from `Refined`).
fn rounded(fit: &BlockFit<'_>, range: ExpRange, rounding: Rounding) -> (f64, Quantized) {
    let BlockFit {
        w,
        sw,
        v,
        p,
        t,
        denom,
    } = *fit;
    let Some(es) = e_star(t) else {
        let zero = Quantized {
            e: range.lo,
            q: [0; MAX_P],
        };
        return (w.iter().map(|x| x * x).sum(), zero);
    };
    let mut best: Option<(f64, Quantized)> = None;
    let mut last = i32::MIN;
    let mut resid = [0.0; MAX_C];
    let resid = &mut resid[..w.len()];
    for cand in [es - 1, es, es + 1] {
        let e = range.clamp(cand);
        if e == last {
            continue;
        }
        last = e;
        let mut qz = shrink_to_fit(v, p, quantize(t, e), denom, range.max_abs);
        let mut err = residual_into(w, sw, v, p, &qz, denom, resid);
        if rounding != Rounding::Nearest {
            (err, qz) = refine(fit, (qz, err), range.max_abs, resid);
        }
        let better = match &best {
            None => true,
            Some((b, bq)) => err < *b || (err == *b && e < bq.e),
        };
        if better {
            best = Some((err, qz));
        }
    }
    best.expect("at least one candidate exponent")
}

/// Slack of the enumeration's pruning, relative to ‖w‖²: its metric rests on the f64
/// least-squares solution, so a point it puts just outside the limit may be inside; every point
/// it reaches is scored exactly.
const LATTICE_SLACK: f64 = 1e-9;

/// How far below the least-squares fit's exponent the enumeration may have to start before it
/// visits the fit's exponents first (a nearly singular basis); nearer, it goes in order.
const FAR_BELOW: i32 = 4;

/// One seed's lattice `{2^e·U·q}` around a block, for the exact closest point. With
/// `G = UᵀU = L·Lᵀ` and t the least-squares coefficients, `‖w − 2^e·U·q‖² = residual +
/// 4^e·‖Lᵀ(t/2^e − q)‖²`, and Lᵀ is upper triangular: fixing q from the last coefficient down,
/// each coordinate adds a known square (Schnorr–Euchner enumeration in the P-dim space).
struct Lattice<'a> {
    w: &'a [f64],
    /// Row weights (`None`: unweighted); `w` is already scaled by them.
    sw: Option<&'a [f64]>,
    v: &'a [i64],
    p: usize,
    t: &'a [f64],
    denom: f64,
    /// The lower Cholesky factor of G.
    l: [[f64; MAX_P]; MAX_P],
    /// Unquantized least-squares residual `‖w − U·t‖²`.
    residual: f64,
    /// `‖U·t‖`.
    fit: f64,
    /// Upper bound on σ_max(U) (`‖L‖_F`) and lower bound on σ_min(U) (`1/‖L⁻¹‖_F`).
    s_max: f64,
    s_min: f64,
    /// Bound on every reconstructed weight ([`ExpRange::max_abs`]); points above it are skipped.
    max_abs: f64,
}

/// The enumeration's running best (error, quantization), the limit it prunes at, the cap that
/// limit never exceeds and the pruning's [`LATTICE_SLACK`].
struct Best {
    err: f64,
    quant: Quantized,
    limit: f64,
    cap: f64,
    slack: f64,
}

impl Best {
    fn offer(&mut self, err: f64, quant: Quantized) {
        if err < self.err || (err == self.err && quant.e < self.quant.e) {
            self.err = err;
            self.quant = quant;
            self.limit = err.min(self.cap);
        }
    }
}

impl<'a> Lattice<'a> {
    /// The lattice of `fit`'s centred basis (C×P) around its weights, or `None` when U has dependent columns
    /// (those seeds keep the refined rounding).
    fn new(fit: &BlockFit<'a>) -> Option<Self> {
        let BlockFit {
            w,
            sw,
            v,
            p,
            t,
            denom,
        } = *fit;
        let c = w.len();
        let mut u = [0.0; MAX_C * MAX_P];
        for (k, (u, &x)) in u.iter_mut().zip(&v[..c * p]).enumerate() {
            *u = x as f64 / denom * row_weight(sw, k / p);
        }
        let chol = Cholesky::of_columns(&u[..c * p], c, p);
        let inv = chol.inverse_lower()?;
        let mut l = [[0.0; MAX_P]; MAX_P];
        let mut entries = chol.lower();
        for (j, row) in l.iter_mut().enumerate().take(p) {
            for x in &mut row[..=j] {
                *x = entries.next().expect("P(P+1)/2 entries");
            }
        }
        let (mut residual, mut fit) = (0.0, 0.0);
        for (i, &wi) in w.iter().enumerate() {
            let f: f64 = (0..p).map(|j| u[i * p + j] * t[j]).sum();
            residual += (wi - f) * (wi - f);
            fit += f * f;
        }
        let inv_f = inv.iter().map(|x| x * x).sum::<f64>().sqrt();
        Some(Lattice {
            w,
            sw,
            v,
            p,
            t,
            denom,
            l,
            residual,
            fit: fit.sqrt(),
            s_max: chol.frobenius(),
            s_min: 1.0 / inv_f,
            max_abs: f64::INFINITY,
        })
    }

    /// The closest lattice point over `range`, if its error is at most `cap`; else `start` (the
    /// refined answer) or a better point found on the way.
    fn closest(&self, range: ExpRange, start: (f64, Quantized), cap: f64) -> (f64, Quantized) {
        let mut best = Best {
            err: start.0,
            quant: start.1,
            limit: start.0.min(cap),
            cap,
            slack: LATTICE_SLACK * (self.residual + self.fit * self.fit),
        };
        let zero = Quantized {
            e: range.lo,
            q: [0; MAX_P],
        };
        best.offer(
            weighted_error(self.w, self.sw, self.v, self.p, &zero, self.denom),
            zero,
        );
        let slack = best.slack;
        let Some(first) = self.first_exponent(range, best.limit, slack) else {
            return (best.err, best.quant);
        };
        // A nearly singular basis (σ_min ~ 1e-5) leaves a thousand exponents below the fit in
        // reach of the starting limit. Then the exponents from one below where the least-squares
        // coefficients fit the box (the rounding's own candidates) go first, and the smaller
        // ones downwards from there: the closest point is nearly always near the top, and the
        // limit it sets stops the descent where the box can no longer reach w. (Upwards, a limit
        // still at the zero point's error made every point of every box near zero a candidate:
        // 31 M for one 6,4,16 seed.) Any order of exponents reaches the same point.
        let m = self.t[..self.p].iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let hint = range.clamp((m.log2() - 4.0).floor().max(f64::from(range.lo)) as i32);
        if hint - first > FAR_BELOW {
            self.scan(hint, range.hi, &mut best);
            for e in (first..hint).rev() {
                if self.box_too_short(e, best.limit, slack) {
                    break;
                }
                self.scan(e, e, &mut best);
            }
        } else {
            self.scan(first, range.hi, &mut best);
        }
        (best.err, best.quant)
    }

    /// The smallest exponent of `range` whose box could hold a point within `limit`, or `None`
    /// when none can: any 2^e·U·q with q in the box is at most 2^e·8·√P·σ_max long, so below
    /// some exponent every point is too short to reach w.
    fn first_exponent(&self, range: ExpRange, limit: f64, slack: f64) -> Option<i32> {
        let room = limit + slack - self.residual;
        if room < 0.0 {
            return None;
        }
        let reach = self.reach();
        // 2^e·reach ≥ fit − √room, found from the logarithm (the range may span 2 000
        // exponents) and checked step by step.
        let gap = self.fit - room.sqrt();
        let mut e = range.lo;
        if gap > 0.0 && reach > 0.0 {
            let first = (gap / reach).log2().floor() - 1.0;
            if first.is_finite() {
                e = e.max(first.clamp(f64::from(range.lo), f64::from(range.hi)) as i32);
            }
        }
        while e <= range.hi && self.box_too_short(e, limit, slack) {
            e += 1;
        }
        Some(e)
    }

    /// Upper bound on `‖U·q‖` over the box: 8·√P·σ_max.
    fn reach(&self) -> f64 {
        8.0 * (self.p as f64).sqrt() * self.s_max
    }

    /// Whether every point of exponent `e`'s box (and so of every smaller exponent's) is too
    /// short to come within `limit` of w.
    fn box_too_short(&self, e: i32, limit: f64, slack: f64) -> bool {
        let gap = (self.fit - pow2(e) * self.reach()).max(0.0);
        self.residual + gap * gap > limit + slack
    }

    /// Enumerates the exponents `from..=to` in order, stopping where the smallest non-zero point
    /// (at least 2^e·σ_min long) is too long to be within the limit.
    fn scan(&self, from: i32, to: i32, best: &mut Best) {
        let slack = best.slack;
        let out_of_reach = |gap: f64, limit: f64| self.residual + gap * gap > limit + slack;
        for e in from..=to {
            let step = pow2(e);
            if out_of_reach((step * self.s_min - self.fit).max(0.0), best.limit) {
                break;
            }
            let mut z = [0.0; MAX_P];
            let mut outside = 0.0;
            for (z, &t) in z.iter_mut().zip(self.t) {
                *z = t / step;
                let clamped = z.clamp(f64::from(Q_MIN), f64::from(Q_MAX));
                outside += (*z - clamped) * (*z - clamped);
            }
            // ‖U(t − 2^e·q)‖ ≥ σ_min·‖t − 2^e·q‖, and clamping t is the closest point of the box.
            if out_of_reach(step * self.s_min * outside.sqrt(), best.limit) {
                continue;
            }
            let mut q = Quantized { e, q: [0; MAX_P] };
            self.enumerate(self.p - 1, &z, 0.0, &mut q, best);
        }
    }

    /// Fixes q_j (and recursively the coefficients below it) given those above j in `q`, where
    /// the coordinates above j already add `used` to `‖Lᵀ(z − q)‖²`.
    fn enumerate(&self, j: usize, z: &[f64; MAX_P], used: f64, q: &mut Quantized, best: &mut Best) {
        let slack = best.slack;
        let step2 = pow2(2 * q.e);
        let ljj = self.l[j][j];
        let above: f64 = (j + 1..self.p)
            .map(|k| self.l[k][j] * (z[k] - f64::from(q.q[k])))
            .sum();
        let centre = z[j] + above / ljj;
        let room = (best.limit + slack - self.residual) / step2 - used;
        if room < 0.0 {
            return;
        }
        let half = room.sqrt() / ljj;
        let lo = (centre - half).ceil().max(f64::from(Q_MIN));
        let hi = (centre + half).floor().min(f64::from(Q_MAX));
        if lo > hi {
            return;
        }
        for qj in lo as i32..=hi as i32 {
            let d = ljj * (centre - f64::from(qj));
            let used = used + d * d;
            // The limit may have tightened since the interval was computed.
            if used > (best.limit + slack - self.residual) / step2 {
                continue;
            }
            q.q[j] = qj as i8;
            if j == 0 {
                if fits_below(self.v, self.p, q, self.denom, self.max_abs) {
                    let err = weighted_error(self.w, self.sw, self.v, self.p, q, self.denom);
                    best.offer(err, *q);
                }
            } else {
                self.enumerate(j - 1, z, used, q, best);
            }
        }
        q.q[j] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exponent-field `pow2` must be `powi`'s value bit for bit, in range and past it
    /// (subnormal, zero and infinite results).
    #[test]
    fn pow2_is_powi_bit_for_bit() {
        for e in -1100..=1100 {
            assert_eq!(pow2(e).to_bits(), f64::powi(2.0, e).to_bits(), "2^{e}");
        }
    }

    /// The closest lattice point of a seed, by brute force: every exponent of `range`, every q
    /// of the box, errors in the decoder's arithmetic; the smallest error, ties to the lower
    /// exponent.
    fn closest_by_brute_force(fit: &BlockFit<'_>, range: ExpRange) -> (f64, Quantized) {
        let p = fit.p;
        let mut best = (
            f64::INFINITY,
            Quantized {
                e: range.lo,
                q: [0; MAX_P],
            },
        );
        for e in range.lo..=range.hi {
            let mut q = Quantized { e, q: [0; MAX_P] };
            q.q[..p].fill(Q_MIN as i8);
            loop {
                let err = weighted_error(fit.w, fit.sw, fit.v, p, &q, fit.denom);
                if err < best.0 {
                    best = (err, q);
                }
                // The next q of [−8, 7]^P, as an odometer.
                let Some(j) = (0..p).find(|&j| i32::from(q.q[j]) < Q_MAX) else {
                    break;
                };
                q.q[j] += 1;
                q.q[..j].fill(Q_MIN as i8);
            }
        }
        best
    }

    /// The most nearly singular bases of the 6,4,16 menu entry (C − P = 2), over a range from
    /// far below their blocks to far above, with the search's limit at the zero point's error:
    /// the exact encoder, which goes down from its hint there, still reaches the brute-force
    /// closest point (error bit for bit, exponent and coefficients). One such seed and block of
    /// the benchmark's data once cost 31 M lattice points, nearly all the menu samples' time.
    #[test]
    fn nearly_singular_bases_reach_the_closest_point_from_far_below() {
        let (c, p) = (6, 4);
        let basis = crate::core::basis::Basis::for_k(16);
        let denom = basis.denom();
        let mut v = vec![0i64; c * p];
        let mut u = vec![0.0; c * p];
        // σ_min of each seed's U, from the Frobenius norm of L⁻¹; the five smallest.
        let mut seeds: Vec<(f64, usize)> = (0..basis.period())
            .filter_map(|idx| {
                basis.centred_at(idx, &mut v);
                for (u, &x) in u.iter_mut().zip(&v) {
                    *u = x as f64 / denom;
                }
                let inv = Cholesky::of_columns(&u, c, p).inverse_lower()?;
                Some((1.0 / inv.iter().map(|x| x * x).sum::<f64>().sqrt(), idx))
            })
            .collect();
        seeds.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The benchmark's block and seed, then the worst-conditioned seeds on other blocks.
        let weights = crate::core::random::gaussian(24, 1.0, 0x5EED1A);
        let mut cases = vec![(
            basis.index_of(26904),
            [
                0.19206775724887848,
                0.8995969891548157,
                0.5919970870018005,
                0.5688176155090332,
                -1.523695707321167,
                0.6408517360687256,
            ],
        )];
        for (i, &(_, idx)) in seeds.iter().take(4).enumerate() {
            let w: [f64; 6] = std::array::from_fn(|k| f64::from(weights[i * c + k]));
            cases.push((idx, w));
        }
        let range = ExpRange::new(-40, 24);
        for (idx, w) in cases {
            basis.centred_at(idx, &mut v);
            for (u, &x) in u.iter_mut().zip(&v) {
                *u = x as f64 / denom;
            }
            let mut t = [0.0; MAX_P];
            crate::core::lstsq::solve(&u, &w, c, p, &mut t[..p]);
            let fit = BlockFit {
                w: &w,
                sw: None,
                v: &v,
                p,
                t: &t[..p],
                denom,
            };
            let (err, quant) = best_quantization(&fit, range, Rounding::Exact);
            let (b_err, b_quant) = closest_by_brute_force(&fit, range);
            assert_eq!(
                (err.to_bits(), quant),
                (b_err.to_bits(), b_quant),
                "seed {}: exact {err:e}, brute force {b_err:e}",
                basis.state_at(idx)
            );
        }
    }

    #[test]
    fn inline_rounding_matches_f64_round() {
        let mut xs = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            -4503599627370495.5,
            4503599627370496.0,
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            7.499999999999999,
            7.5,
            -8.5,
            -8.500000000000002,
        ];
        let mut x = 1e-9f64;
        while x < 1e17 {
            xs.extend([x, -x, x + 0.5, -x - 0.5, x.next_up(), (-x).next_down()]);
            x *= 1.37;
        }
        for x in xs {
            assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "{x:e}");
        }
        assert!(round_half_away(f64::NAN).is_nan());
    }

    #[test]
    fn rounding_clamps_and_rounds_half_away() {
        assert_eq!(round_q(2.5), 3);
        assert_eq!(round_q(-2.5), -3);
        assert_eq!(round_q(7.4), 7);
        assert_eq!(round_q(7.6), 7);
        assert_eq!(round_q(-8.4), -8);
        assert_eq!(round_q(-100.0), -8);
    }

    #[test]
    fn e_star_is_the_smallest_fitting_exponent() {
        // 7 fits at e=0; 7.5 rounds to 8 and needs e=1.
        assert_eq!(e_star(&[7.0, 1.0]), Some(0));
        assert_eq!(e_star(&[7.5]), Some(1));
        // −8 fits at e=0, −8.5 rounds to −9 and does not.
        assert_eq!(e_star(&[-8.0]), Some(0));
        assert_eq!(e_star(&[-8.5]), Some(1));
        assert_eq!(e_star(&[0.25]), Some(-4));
        assert_eq!(e_star(&[-0.25]), Some(-5));
        assert_eq!(e_star(&[0.0, 0.0]), None);
    }

    #[test]
    fn reconstruction_is_integer_sum_scaled() {
        // K=3: half=4, denom=3. v = [[1,-2],[3,0]], q = [2,-1], e = 1.
        let v = [1, -2, 3, 0];
        let mut q = [0i8; MAX_P];
        q[0] = 2;
        q[1] = -1;
        let qz = Quantized { e: 1, q };
        let mut out = [0.0; 2];
        reconstruct_into(&v, 2, &qz, 3.0, &mut out);
        assert_eq!(out, [4.0 / 3.0 * 2.0, 6.0 / 3.0 * 2.0]);
        let err = quantized_error(&[0.0, 0.0], &v, 2, &qz, 3.0);
        assert!((err - (out[0] * out[0] + out[1] * out[1])).abs() < 1e-12);
    }

    /// The unweighted two-coefficient problem of `w`, `v` and `t` (denominator 1).
    fn plain_fit<'a>(w: &'a [f64], v: &'a [i64], t: &'a [f64]) -> BlockFit<'a> {
        BlockFit {
            w,
            sw: None,
            v,
            p: 2,
            t,
            denom: 1.0,
        }
    }

    #[test]
    fn best_quantization_respects_range() {
        let v = [1, 0, 0, 1];
        let w = [100.0, -3.0];
        let t = [100.0, -3.0];
        let nearest = Rounding::Nearest;
        let fit = plain_fit(&w, &v, &t);
        let (_, q) = best_quantization(&fit, ExpRange::from_base(-8), nearest);
        assert!(q.e <= 7 && q.e >= -8);
        let (_, q) = best_quantization(&fit, ExpRange::from_base(-20), nearest);
        assert!(q.e <= -5);
        assert_eq!(q.q[0], 7, "clipped at the top of the range");
    }

    #[test]
    fn refinement_finds_a_better_neighbour() {
        // Two nearly parallel columns: rounding t coordinate-wise is poor, a ±1 move fixes it.
        let v = [10, 9, 10, 11];
        let w = [10.0 * 2.6 + 9.0 * 1.4, 10.0 * 2.6 + 11.0 * 1.4];
        let mut t = [0.0; 2];
        let u: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        crate::core::lstsq::solve(&u, &w, 2, 2, &mut t);
        let range = ExpRange::from_base(-4);
        let fit = plain_fit(&w, &v, &t);
        let (plain, _) = best_quantization(&fit, range, Rounding::Nearest);
        let (refined, q) = best_quantization(&fit, range, Rounding::Refined);
        assert!(refined <= plain);
        assert_eq!(refined, quantized_error(&w, &v, 2, &q, 1.0));
        // At the same exponent no single ±1 move improves the refined answer.
        let mut resid = [0.0; 2];
        let err = residual_into(&w, None, &v, 2, &q, 1.0, &mut resid);
        assert_eq!(err, refined);
        let (again, _) = refine(&fit, (q, refined), f64::INFINITY, &mut resid);
        assert_eq!(again, refined);
    }
}
