//! Short vectors of every seed's quantization lattice, for blocks far below the exponent range
//! (as in a tensor with an outlier): there a seed's non-zero quantizations can beat the all-zero
//! one only through its few shortest lattice vectors, so a table of those settles the block
//! without a scan (docs/DESIGN.md §5).

use super::Tables;
use crate::core::basis::Basis;
use crate::core::config::{MAX_C, MAX_P};

/// Largest norm `‖U(s)q‖` the table tries to cover (in U's units, entries in [−1, 1]).
const RADIUS: f64 = 1.5;
/// Most entries kept; the radius shrinks until the table fits.
const MAX_ENTRIES: usize = 1 << 18;
/// Most enumeration nodes per attempt, so a configuration with many short vectors (large P)
/// shrinks the radius instead of enumerating for long.
const MAX_NODES: usize = 64 * MAX_ENTRIES;
/// Entries per group, stored structure-of-arrays so the dot products run eight to a vector.
const GROUP: usize = 8;
/// f32 unit roundoff.
const U32: f64 = f32::EPSILON as f64 / 2.0;

/// For every well-conditioned seed s (the flagged ones are not listed), every `q ∈ ℤ^P`, up to
/// sign, with `0 < ‖U(s)q‖ ≤ radius`, sorted by that norm.
#[derive(Debug)]
pub(super) struct ShortVectors {
    /// Every lattice vector of norm at most this is listed.
    pub(super) radius: f64,
    c: usize,
    /// Per entry: the seed index and `‖U(s)q‖²` (f64, from the exact integer basis).
    idx: Vec<u32>,
    norm2: Vec<f64>,
    /// Per entry, half its squared norm in f32 (padding: +∞), for the vector prefilter.
    half2: Vec<f32>,
    /// `U(s)q` in f32, group g's coordinate i of lane l at `(g·C + i)·GROUP + l`.
    v: Vec<f32>,
}

impl ShortVectors {
    /// The table for the tables' configuration (C×P blocks of `basis`), or `None` when 2^K is
    /// too large for it to stay small.
    pub(super) fn build(tables: &Tables, basis: &Basis, c: usize, p: usize) -> Option<Self> {
        if basis.k() > 16 {
            return None;
        }
        let mut radius = RADIUS;
        loop {
            if let Some(entries) = enumerate(tables, basis, c, p, radius) {
                return Some(Self::from_entries(&entries, c, radius));
            }
            radius *= 0.75;
        }
    }

    fn from_entries(entries: &[(f64, u32, [f32; MAX_C])], c: usize, radius: f64) -> Self {
        // Sorted through a permutation: the entries themselves are large to move.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&entries[a], &entries[b]);
            a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
        });
        let entries: Vec<&(f64, u32, [f32; MAX_C])> = order.iter().map(|&e| &entries[e]).collect();
        let groups = entries.len().div_ceil(GROUP);
        let mut v = vec![0.0f32; groups * GROUP * c];
        let mut half2 = vec![f32::INFINITY; groups * GROUP];
        for (e, (n2, _, x)) in entries.iter().enumerate() {
            let (g, l) = (e / GROUP, e % GROUP);
            for (i, &xi) in x[..c].iter().enumerate() {
                v[(g * c + i) * GROUP + l] = xi;
            }
            half2[e] = (n2 / 2.0) as f32;
        }
        ShortVectors {
            radius,
            c,
            idx: entries.iter().map(|e| e.1).collect(),
            norm2: entries.iter().map(|e| e.0).collect(),
            half2,
            v,
        }
    }

    /// Whether the table settles a block of squared norm `norm2` (f32, in the units of `step`,
    /// the lowest exponent's step): every lattice vector that could reach within `‖w‖` of w,
    /// i.e. of norm below `2‖w‖/step`, is listed.
    pub(super) fn covers(&self, norm2: f32, step: f64) -> bool {
        reach(norm2, self.c, step) <= self.radius
    }

    /// For each listed vector whose quantization at the lowest exponent might beat the all-zero
    /// one, `f(lower, idx)`: `lower` is a lower bound on that point's squared error
    /// `‖w − step·U(s)q‖²` (the units of `w`, normalised so max|w| ∈ [1, 2)). Every non-zero
    /// quantization of a seed with no call has an error of at least `norm2`. Needs
    /// [`Self::covers`].
    pub(super) fn candidates(
        &self,
        w: &[f32],
        norm2: f32,
        step: f64,
        avx2: bool,
        f: &mut impl FnMut(f64, usize),
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: a searcher runs an AVX2 or AVX-512 kernel only where the CPU has AVX2 and FMA.
            unsafe { self.candidates_avx2(w, norm2, step, f) };
            return;
        }
        let _ = avx2;
        self.candidates_body(w, norm2, step, f);
    }

    /// [`Self::candidates`] compiled for AVX2, so the eight-lane loops become vector code.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn candidates_avx2(
        &self,
        w: &[f32],
        norm2: f32,
        step: f64,
        f: &mut impl FnMut(f64, usize),
    ) {
        self.candidates_body(w, norm2, step, f);
    }

    #[inline(always)]
    fn candidates_body(&self, w: &[f32], norm2: f32, step: f64, f: &mut impl FnMut(f64, usize)) {
        let c = self.c;
        let reach = reach(norm2, c, step);
        let count = self.norm2.partition_point(|&n2| n2 <= reach * reach);
        let norm2 = f64::from(norm2);
        // The f32 dot product w·v is within (C + 2)·u·‖w‖‖v‖ of the exact one (v rounded to
        // f32, then C products and sums), and 2·step·‖v‖ ≤ 2·reach·step ≈ 4‖w‖: so the gain
        // 2·step·|w·v| − step²‖v‖² is off by at most 4(C + 2)·u·‖w‖², and ‖w‖² in f32 by C·u.
        // Doubled for safety.
        let margin = 2.0 * (5 * c + 9) as f64 * U32 * norm2;
        // A quick f32 test first: |w·v| > step·‖v‖²/2 − margin/(2·step), loosened further for
        // its own rounding, so only a handful of entries reach the f64 bound.
        let slack = (margin / (2.0 * step)) as f32 * 2.0;
        let step32 = step as f32;
        let groups = count.div_ceil(GROUP);
        let vs = self.v[..groups * GROUP * c].chunks_exact(GROUP * c);
        for (g, (gv, half2)) in vs.zip(self.half2.chunks_exact(GROUP)).enumerate() {
            let mut d = [0.0f32; GROUP];
            for (col, &wi) in gv.chunks_exact(GROUP).zip(&w[..c]) {
                let col: &[f32; GROUP] = col.try_into().expect("a whole group");
                for l in 0..GROUP {
                    d[l] += col[l] * wi;
                }
            }
            let half2: &[f32; GROUP] = half2.try_into().expect("a whole group");
            let mut hits = 0u32;
            for l in 0..GROUP {
                let need = step32 * half2[l] * (1.0 - 4.0 * f32::EPSILON) - slack;
                hits |= u32::from(d[l].abs() > need) << l;
            }
            while hits != 0 {
                let l = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                let e = g * GROUP + l;
                let gain = 2.0 * step * f64::from(d[l].abs()) - step * step * self.norm2[e];
                if gain + margin > 0.0 {
                    f(norm2 - gain - margin, self.idx[e] as usize);
                }
            }
        }
    }
}

/// Whether a table could cover a block of squared norm `norm2` (as [`ShortVectors::covers`]),
/// before any table is built.
pub(super) fn within_reach(norm2: f32, c: usize, step: f64) -> bool {
    reach(norm2, c, step) <= RADIUS
}

/// `2‖w‖/step`, rounded up: the longest lattice vector (in U's units) whose quantization could
/// come within ‖w‖ of w.
fn reach(norm2: f32, c: usize, step: f64) -> f64 {
    2.0 * (f64::from(norm2) * (1.0 + (c + 2) as f64 * U32)).sqrt() / step * (1.0 + 1e-9)
}

/// Every entry of the table of `radius`, or `None` if there would be more than
/// [`MAX_ENTRIES`] or finding them takes more than [`MAX_NODES`] steps.
fn enumerate(
    tables: &Tables,
    basis: &Basis,
    c: usize,
    p: usize,
    radius: f64,
) -> Option<Vec<(f64, u32, [f32; MAX_C])>> {
    let mut entries = Vec::new();
    let mut v = vec![0i64; c * p];
    let denom = basis.denom();
    let mut budget = MAX_NODES;
    for idx in 0..tables.n {
        if tables.l[idx] == 0.0 {
            continue;
        }
        let l = |k: usize, j: usize| tables.l[(k * (k + 1) / 2 + j) * tables.n + idx];
        basis.centred_at(idx, &mut v);
        let mut q = [0i64; MAX_P];
        // The f64 factor L is within ~1e-15 of exact for these well-conditioned seeds; the
        // slack keeps every vector at most `radius` long, and exact norms decide below.
        let room = radius * radius * (1.0 + 1e-6);
        let mut overflow = false;
        let done = lattice_points(&l, p, p - 1, room, &mut q, &mut budget, &mut |q| {
            // One of ±q: the one whose last non-zero coefficient is positive.
            if q[..p]
                .iter()
                .rev()
                .find(|&&x| x != 0)
                .is_some_and(|&x| x < 0)
            {
                return;
            }
            let mut x = [0.0f32; MAX_C];
            let mut n2 = 0.0;
            for (i, xi) in x[..c].iter_mut().enumerate() {
                let s: i64 = (0..p).map(|j| v[i * p + j] * q[j]).sum();
                let s = s as f64 / denom;
                n2 += s * s;
                *xi = s as f32;
            }
            if n2 <= radius * radius {
                entries.push((n2, idx as u32, x));
                overflow |= entries.len() > MAX_ENTRIES;
            }
        });
        if overflow || !done {
            return None;
        }
    }
    Some(entries)
}

/// Calls `f` with every non-zero `q` (coefficients `0..=j` free, those above j as given) whose
/// point `Lᵀq` lies within squared distance `room` of the origin (Fincke–Pohst enumeration
/// over the triangular Lᵀ, `l(k, j)` the entries of L). False if it ran out of `budget` nodes
/// first.
fn lattice_points(
    l: &impl Fn(usize, usize) -> f64,
    p: usize,
    j: usize,
    room: f64,
    q: &mut [i64; MAX_P],
    budget: &mut usize,
    f: &mut impl FnMut(&[i64; MAX_P]),
) -> bool {
    let ljj = l(j, j);
    let above: f64 = (j + 1..p).map(|k| l(k, j) * q[k] as f64).sum();
    let centre = -above / ljj;
    let half = room.sqrt() / ljj;
    let (lo, hi) = (
        (centre - half).ceil() as i64,
        (centre + half).floor() as i64,
    );
    for qj in lo..=hi {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let d = (qj as f64 - centre) * ljj;
        let left = room - d * d;
        if left < 0.0 {
            continue;
        }
        q[j] = qj;
        if j > 0 {
            if !lattice_points(l, p, j - 1, left, q, budget, f) {
                return false;
            }
        } else if q[..p].iter().any(|&x| x != 0) {
            f(q);
        }
    }
    q[j] = 0;
    true
}
