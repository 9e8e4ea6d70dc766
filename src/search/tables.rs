//! Per-configuration scan tables: the normalised state sequence, L(s)⁻¹ for every well-conditioned
//! seed, orthonormal bases of the flagged (ill-conditioned) ones, and the integer state pairs.
//! Built once per configuration and shared by every searcher of it.

#[cfg(target_arch = "x86_64")]
use super::kernel::avx2;
use super::kernel::{Kernel, portable};
use super::short::ShortVectors;
use super::{DELTA, DELTA_MAX, FLAG_GROUP, FLAG_SHARE, RBUF, TILE};
use crate::core::basis::Basis;
use crate::core::config::{Config, MAX_C, MAX_P};
use crate::core::lstsq::{LANES, LaneMatrix, factor_lanes};
use std::sync::OnceLock;

/// Bytes the scan tables of `cfg` take at their peak while built, the basis of its K and the
/// flagged seeds' bases at their most included: the figure to hold against the machine's
/// memory before building them (16 M seeds at K = 24).
pub fn table_bytes(cfg: Config) -> u64 {
    let n = (1u64 << cfg.k) - 1;
    let entries = (cfg.p * (cfg.p + 1) / 2) as u64;
    // Per seed: the state (f32, and f64 while the tables are built), L⁻¹ (f32) and L (f64)
    // entries, σ (f32), the bound (f64, twice while the margin is chosen), the basis' state and
    // index (u32 each), and for the integer path the state pairs (i32).
    let per_seed = 4 + 8 + 12 * entries + 4 + 16 + 8 + if cfg.k <= 16 { 4 } else { 0 };
    let flagged = n / FLAG_SHARE as u64 * (cfg.c * cfg.p * 4) as u64;
    // Padding to whole tiles and flag groups.
    let padding = ((TILE + RBUF + MAX_C * MAX_P + 8) * 8 * (1 + entries as usize)
        + FLAG_GROUP * cfg.c * cfg.p * 4) as u64;
    n * per_seed + flagged + padding
}

/// Refuses a configuration whose scan tables ([`table_bytes`]) would not fit in `available`
/// bytes, with both figures.
pub fn check_table_memory(cfg: Config, available: u64) -> Result<(), String> {
    let need = table_bytes(cfg);
    if need <= available {
        return Ok(());
    }
    let gb = |b: u64| b as f64 / 1e9;
    Err(format!(
        "the search tables of {cfg} need about {:.1} GB, more than the {:.1} GB of memory available; choose a smaller K",
        gb(need),
        gb(available)
    ))
}

/// Per-configuration tables for the scan: built once and shared by every search of that config.
#[derive(Debug)]
pub struct Tables {
    pub(super) n: usize,
    pub(super) n_pad: usize,
    /// Normalised states in cycle order, extended cyclically past the end.
    pub(super) x: Vec<f32>,
    /// Lower triangle of L⁻¹ as structure-of-arrays: entry `e` of seed index `i` is at
    /// `e * n_pad + i`. Zero for ill-conditioned and padding seeds. On the integer path it is
    /// premultiplied by the unit of the integer correlations, which saves the kernel a multiply.
    pub(super) linv: Aligned,
    /// Seed indices scored through an orthonormal basis instead of L⁻¹.
    pub(super) flagged: Vec<u32>,
    /// Lower triangle of L(s) in f64, entry `e * n + i` for seed index i (row-major (j, k ≤ j),
    /// as `linv`; zero for flagged seeds): the quantization lattice in the scan's coordinates.
    pub(super) l: Vec<f64>,
    /// Per seed index, a lower bound on σ_min(U(s)) (zero for flagged seeds): every non-zero
    /// quantization `2^e·U(s)·q` is at least `2^e_lo·sigma` long.
    pub(super) sigma: Vec<f32>,
    /// `flagged.len()` rounded up to whole [`FLAG_GROUP`]s.
    pub(super) f_pad: usize,
    /// Orthonormal bases of the flagged seeds, structure-of-arrays by group of [`FLAG_GROUP`]:
    /// entry (i, j) of flagged seed f is at `(f / G · C·P + i·P + j) · G + f % G`. A group is one
    /// run of memory: with a stride of `f_pad` floats (a multiple of 4 KB) its C·P lines fell in
    /// one L1 set.
    pub(super) fq: Vec<f32>,
    /// Bound on the scan's score error relative to ‖w‖², for seeds it covers.
    pub(super) delta: f32,
    /// For K ≤ 16: centred states as int16 pairs `(v[m], v[m + P])` packed in an i32, the
    /// operand layout of `vpmaddwd`, so the correlation runs exactly in integers.
    pub(super) pairs: Option<Vec<i32>>,
    /// Fixed-point bits of the weights in the integer correlation.
    pub(super) w_shift: i32,
    /// Short lattice vectors of every seed, built the first time a block lies far below its
    /// exponent range.
    pub(super) short: OnceLock<Option<ShortVectors>>,
}

impl Tables {
    pub(super) fn build(cfg: Config, basis: &Basis) -> Tables {
        Self::build_weighted(cfg, basis, None)
    }

    /// The tables of the weighted problem `‖sw ⊙ (w − U(s)·t)‖²` (`sw` C long, positive, at most
    /// 1), which is the plain one for `w' = sw ⊙ w` and `U' = diag(sw)·U(s)`: L⁻¹, L and σ are
    /// those of U', the flagged bases those of U' with row i divided by `sw_i`, so that both
    /// scores take `z = sw² ⊙ w` (`U'ᵀw' = U(s)ᵀz`, one correlation as before). The correlation
    /// runs in f32: fixed point on z would lose the rows of small weight.
    pub(super) fn build_weighted(cfg: Config, basis: &Basis, sw: Option<&[f64]>) -> Tables {
        let (c, p) = (cfg.c, cfg.p);
        let n = basis.period();
        let n_pad = n.div_ceil(TILE) * TILE;
        let ext = n_pad + RBUF + MAX_C * MAX_P + 8;
        // The normalised states once, not C·P divisions per seed: U(s) of seed index i is
        // `xs[Basis::span(i, C·P)]` (the values `Basis::fill_u_at` gives), row k scaled by
        // `sw[k]` (by 1, exactly, when plain).
        let xs = basis.normalized_cycle(ext);
        let x: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
        let integer = cfg.k <= 16 && sw.is_none();
        // An integer correlation is in units of 1 / ((2^(K−1) − 1)·2^S) of the normalised one.
        let r_unit = if integer {
            1.0 / (basis.denom() * crate::core::quant::pow2(weight_shift(c)))
        } else {
            1.0
        };
        let entries = p * (p + 1) / 2;
        let mut linv = Aligned::zeroed(entries * n_pad);
        let mut l = vec![0.0f64; entries * n];
        let mut sigma = vec![0.0f32; n];
        // The margin needs every seed's bound before any seed is placed: each seed's entries
        // go in as it is factored, and those of the seeds the margin flags are cleared after.
        // Keeping the factors instead took some 600 bytes a seed (12 GB at K = 24).
        let ones = [1.0; MAX_C];
        let mut bounds = vec![f64::INFINITY; n];
        factor_seeds(
            &mut SeedFactors {
                xs: &xs,
                sw: sw.unwrap_or(&ones[..c]),
                bound: ScoreBound::new(c, p),
                r_unit,
                n_pad,
                linv: &mut linv,
                l: &mut l,
                sigma: &mut sigma,
                bounds: &mut bounds,
            },
            p,
        );
        let delta = margin_for(&bounds);
        // A seed without an inverse has an infinite bound.
        let flagged: Vec<u32> = (0..n as u32)
            .filter(|&idx| bounds[idx as usize].is_nan() || bounds[idx as usize] > delta)
            .collect();
        // One entry at a time: seed by seed, the stores went to 2·P(P+1)/2 distant lines.
        for e in 0..entries {
            let (linv, l) = (&mut linv[e * n_pad..][..n], &mut l[e * n..][..n]);
            for &idx in &flagged {
                linv[idx as usize] = 0.0;
                l[idx as usize] = 0.0;
            }
        }
        for &idx in &flagged {
            sigma[idx as usize] = 0.0;
        }
        let f_pad = flagged.len().div_ceil(FLAG_GROUP) * FLAG_GROUP;
        let mut fq = vec![0.0f32; c * p * f_pad];
        flagged_bases(&xs, sw.unwrap_or(&ones[..c]), p, &flagged, &mut fq);
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
            l,
            sigma,
            f_pad,
            fq,
            delta: delta as f32,
            pairs,
            w_shift: weight_shift(c),
            short: OnceLock::new(),
        }
    }

    /// Scores of the flagged seeds, `out.len() == f_pad`: ‖Qᵀw‖² with Q orthonormal, so the
    /// rounding error is at most ~2·C·√P·u·‖w‖², far inside `delta`.
    pub(super) fn flagged_scores(&self, w: &[f32], p: usize, kernel: Kernel, out: &mut [f32]) {
        self.flagged_scores_each(&[w], p, kernel, |_, f0, scores| {
            out[f0..f0 + FLAG_GROUP].copy_from_slice(scores)
        });
    }

    /// [`Self::flagged_scores`] of each block of `ws`, a group of [`FLAG_GROUP`] seeds at a time:
    /// `visit(b, f0, scores)` takes block b's scores of flagged seeds f0 … f0 + FLAG_GROUP − 1,
    /// in rising f0 for each block. A group's bases (4 KB at (11,6,16)) stay in L1 for every
    /// block; scored block by block, all of them (1 MB there) came from L3 for each block.
    pub(super) fn flagged_scores_each(
        &self,
        ws: &[&[f32]],
        p: usize,
        kernel: Kernel,
        mut visit: impl FnMut(usize, usize, &[f32; FLAG_GROUP]),
    ) {
        match p {
            1 => self.flagged_each::<1>(ws, kernel, &mut visit),
            2 => self.flagged_each::<2>(ws, kernel, &mut visit),
            3 => self.flagged_each::<3>(ws, kernel, &mut visit),
            4 => self.flagged_each::<4>(ws, kernel, &mut visit),
            5 => self.flagged_each::<5>(ws, kernel, &mut visit),
            6 => self.flagged_each::<6>(ws, kernel, &mut visit),
            7 => self.flagged_each::<7>(ws, kernel, &mut visit),
            _ => self.flagged_each::<8>(ws, kernel, &mut visit),
        }
    }

    /// [`Self::flagged_scores_each`] for P fixed at compile time, so a group's 2·P accumulator
    /// vectors stay in registers.
    fn flagged_each<const P: usize>(
        &self,
        ws: &[&[f32]],
        kernel: Kernel,
        visit: &mut impl FnMut(usize, usize, &[f32; FLAG_GROUP]),
    ) {
        let Some(c) = ws.first().map(|w| w.len()) else {
            return;
        };
        for (g, fq) in self.fq.chunks_exact(c * P * FLAG_GROUP).enumerate() {
            let f0 = g * FLAG_GROUP;
            for (b, w) in ws.iter().enumerate() {
                #[cfg(target_arch = "x86_64")]
                if kernel.has_avx2() {
                    // SAFETY: a searcher runs an AVX2 or AVX-512 kernel only where the CPU has
                    // AVX2.
                    visit(b, f0, &unsafe { avx2::flagged_group::<P>(fq, w) });
                    continue;
                }
                visit(b, f0, &portable::flagged_group::<P>(fq, w));
            }
        }
    }

    /// The scan's coordinates `y = L⁻¹b` of seed `t0 + m` from the tile's correlations `r`, as
    /// the kernels compute them before squaring.
    pub(super) fn scan_coordinates(
        &self,
        r: &[f32],
        p: usize,
        t0: usize,
        m: usize,
    ) -> [f32; MAX_P] {
        let mut y = [0.0f32; MAX_P];
        let mut e = 0;
        for (j, yj) in y.iter_mut().enumerate().take(p) {
            for k in 0..=j {
                *yj += self.linv[e * self.n_pad + t0 + m] * r[m + k];
                e += 1;
            }
        }
        y
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

/// Floats whose first one starts a cache line. Rows of `n_pad` (a multiple of 16) floats then
/// start cache lines too, so no 16-float vector load of a tile straddles two lines.
#[derive(Debug)]
pub(super) struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn zeroed(len: usize) -> Aligned {
        const LINE: usize = 64 / size_of::<f32>();
        let buf = vec![0.0f32; len + LINE - 1];
        // A Vec's buffer never moves unless it grows, and this one never does.
        let start = buf.as_ptr().align_offset(64);
        Aligned { buf, start, len }
    }
}

impl std::ops::Deref for Aligned {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// What [`factor_seeds`] reads and fills for every seed index `idx < bounds.len()`: U(s) is
/// `xs[Basis::span(idx, C·P)]` with row i scaled by `sw[i]`; entry e of L⁻¹ (times `r_unit`)
/// goes to `linv[e·n_pad + idx]`, of L to `l[e·n + idx]`, and σ and the score error bound to
/// `sigma[idx]` and `bounds[idx]`. A rank-deficient seed gets an infinite bound, so the margin
/// flags it and its other entries, meaningless, are cleared.
struct SeedFactors<'a> {
    xs: &'a [f64],
    sw: &'a [f64],
    bound: ScoreBound,
    r_unit: f64,
    n_pad: usize,
    linv: &'a mut [f32],
    l: &'a mut [f64],
    sigma: &'a mut [f32],
    bounds: &'a mut [f64],
}

/// Factors every seed's weighted Gram matrix, [`LANES`] seeds at a time, on AVX2 where the CPU
/// has it (the same values: no operation is fused).
fn factor_seeds(f: &mut SeedFactors, p: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { factor_seeds_avx2(f, p) };
    }
    factor_seeds_any(f, p)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn factor_seeds_avx2(f: &mut SeedFactors, p: usize) {
    factor_seeds_any(f, p)
}

#[inline(always)]
fn factor_seeds_any(f: &mut SeedFactors, p: usize) {
    match p {
        1 => factor_seeds_p::<1>(f),
        2 => factor_seeds_p::<2>(f),
        3 => factor_seeds_p::<3>(f),
        4 => factor_seeds_p::<4>(f),
        5 => factor_seeds_p::<5>(f),
        6 => factor_seeds_p::<6>(f),
        7 => factor_seeds_p::<7>(f),
        _ => factor_seeds_p::<8>(f),
    }
}

/// Seeds whose rows [`factor_seeds_p`] scales at a time. Scaled in the lane loop, the compiler
/// shared the products of overlapping rows through the stack and stalled on reading them.
const RUN: usize = 256;

/// [`factor_seeds`] for P fixed at compile time. Per seed, the Gram matrix sums row products in
/// row order, then [`factor_lanes`] factors it, exactly as `Cholesky::of_columns` and
/// `inverse_lower` do for one seed.
#[inline(always)]
fn factor_seeds_p<const P: usize>(f: &mut SeedFactors) {
    let n = f.bounds.len();
    let mut scaled = vec![[0.0; RUN + MAX_P + LANES]; f.sw.len()];
    for run0 in (0..n).step_by(RUN) {
        for (i, (row, &s)) in scaled.iter_mut().zip(f.sw).enumerate() {
            let from = &f.xs[run0 + 1 + i * P..][..RUN + P + LANES];
            for (v, &x) in row.iter_mut().zip(from) {
                *v = x * s;
            }
        }
        for idx0 in (run0..n.min(run0 + RUN)).step_by(LANES) {
            factor_chunk::<P>(f, &scaled, run0, idx0);
        }
    }
}

/// [`factor_seeds_p`] for seeds `idx0 … idx0 + LANES − 1` (those below n), whose rows are in
/// `scaled` from seed `run0` on.
#[inline(always)]
fn factor_chunk<const P: usize>(
    f: &mut SeedFactors,
    scaled: &[[f64; RUN + MAX_P + LANES]],
    run0: usize,
    idx0: usize,
) {
    let n = f.bounds.len();
    let mut g: LaneMatrix<P> = [[[0.0; LANES]; P]; P];
    for row in scaled {
        let row = &row[idx0 - run0..][..P + LANES];
        let mut u = [[0.0; LANES]; P];
        for (a, ua) in u.iter_mut().enumerate() {
            ua.copy_from_slice(&row[a..a + LANES]);
        }
        for a in 0..P {
            for b in 0..=a {
                for t in 0..LANES {
                    g[a][b][t] += u[a][t] * u[b][t];
                }
            }
        }
    }
    let fac = factor_lanes(&g);
    let (mut inv_sq, mut l_sq) = ([0.0; LANES], [0.0; LANES]);
    let lanes = LANES.min(n - idx0);
    let mut e = 0;
    for j in 0..P {
        for k in 0..=j {
            let (v, w) = (&fac.inv[j][k], &fac.l[j][k]);
            for t in 0..LANES {
                inv_sq[t] += v[t] * v[t];
                l_sq[t] += w[t] * w[t];
            }
            // A deficient seed's entries are written too: flagged, they are cleared.
            let linv = &mut f.linv[e * f.n_pad + idx0..][..lanes];
            for (o, v) in linv.iter_mut().zip(v) {
                *o = (v * f.r_unit) as f32;
            }
            f.l[e * n + idx0..][..lanes].copy_from_slice(&w[..lanes]);
            e += 1;
        }
    }
    let mut q = [0.0; LANES];
    let mut bound = [0.0; LANES];
    for t in 0..LANES {
        // σ_min(U) = σ_min(L) ≥ 1/‖L⁻¹‖_F, shaded down for rounding (below).
        let inv_norm = f64::sqrt(inv_sq[t]);
        q[t] = (1.0 - 1e-6) / inv_norm;
        bound[t] = f.bound.of(inv_norm, f64::sqrt(l_sq[t]));
    }
    for t in 0..lanes {
        f.sigma[idx0 + t] = (q[t] as f32).next_down();
        f.bounds[idx0 + t] = if fac.deficient[t] {
            f64::INFINITY
        } else {
            bound[t]
        };
    }
}

/// Fills `fq` ([`Tables::fq`]'s layout) with orthonormal bases of the `flagged` seeds' U(s), row
/// i scaled by `sw[i]` and divided by it after, [`LANES`] seeds at a time on AVX2 where the CPU
/// has it: with the margin widened, a weighted table flags one seed in [`FLAG_SHARE`].
fn flagged_bases(xs: &[f64], sw: &[f64], p: usize, flagged: &[u32], fq: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { flagged_bases_avx2(xs, sw, p, flagged, fq) };
    }
    flagged_bases_any(xs, sw, p, flagged, fq)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn flagged_bases_avx2(xs: &[f64], sw: &[f64], p: usize, flagged: &[u32], fq: &mut [f32]) {
    flagged_bases_any(xs, sw, p, flagged, fq)
}

#[inline(always)]
fn flagged_bases_any(xs: &[f64], sw: &[f64], p: usize, flagged: &[u32], fq: &mut [f32]) {
    match p {
        1 => flagged_bases_p::<1>(xs, sw, flagged, fq),
        2 => flagged_bases_p::<2>(xs, sw, flagged, fq),
        3 => flagged_bases_p::<3>(xs, sw, flagged, fq),
        4 => flagged_bases_p::<4>(xs, sw, flagged, fq),
        5 => flagged_bases_p::<5>(xs, sw, flagged, fq),
        6 => flagged_bases_p::<6>(xs, sw, flagged, fq),
        7 => flagged_bases_p::<7>(xs, sw, flagged, fq),
        _ => flagged_bases_p::<8>(xs, sw, flagged, fq),
    }
}

/// [`flagged_bases`] for P fixed at compile time: per lane the operations of `orthonormalise`
/// in its order (sums from −0.0, as `Iterator::sum` of f64), so bit for bit its bases.
#[inline(always)]
fn flagged_bases_p<const P: usize>(xs: &[f64], sw: &[f64], flagged: &[u32], fq: &mut [f32]) {
    let c = sw.len();
    let mut u = vec![[[0.0f64; LANES]; P]; c];
    let sum = |u: &[[[f64; LANES]; P]], j: usize, k: usize| {
        let mut s = [-0.0; LANES];
        for row in u {
            for t in 0..LANES {
                s[t] += row[j][t] * row[k][t];
            }
        }
        s
    };
    for (chunk, seeds) in flagged.chunks(LANES).enumerate() {
        for t in 0..LANES {
            // A last, partial chunk repeats its last seed in the spare lanes.
            let idx = seeds[t.min(seeds.len() - 1)] as usize;
            for (i, (row, &s)) in u.iter_mut().zip(sw).enumerate() {
                for (a, v) in row.iter_mut().enumerate() {
                    v[t] = xs[idx + 1 + i * P + a] * s;
                }
            }
        }
        for j in 0..P {
            let norm0 = sum(&u, j, j).map(f64::sqrt);
            for k in 0..j {
                let d = sum(&u, j, k);
                for row in u.iter_mut() {
                    for t in 0..LANES {
                        row[j][t] -= d[t] * row[k][t];
                    }
                }
            }
            let norm = sum(&u, j, j).map(f64::sqrt);
            let mut scale = [0.0; LANES];
            for t in 0..LANES {
                scale[t] = if norm[t] > 1e-10 * norm0[t] {
                    1.0 / norm[t]
                } else {
                    0.0
                };
            }
            for row in u.iter_mut() {
                for t in 0..LANES {
                    row[j][t] *= scale[t];
                }
            }
        }
        let f0 = chunk * LANES;
        let group = &mut fq[f0 / FLAG_GROUP * c * P * FLAG_GROUP..][..c * P * FLAG_GROUP];
        for (i, (row, &s)) in u.iter().zip(sw).enumerate() {
            for (a, v) in row.iter().enumerate() {
                let out = &mut group[(i * P + a) * FLAG_GROUP + f0 % FLAG_GROUP..][..seeds.len()];
                for (o, v) in out.iter_mut().zip(v) {
                    *o = (v / s) as f32;
                }
            }
        }
    }
}

/// The scan's relative score margin for seeds whose bounds (relative to ‖w‖²) are `bounds`: at
/// least [`DELTA`], and widened up to [`DELTA_MAX`] until at most one seed in [`FLAG_SHARE`] is
/// left to the slower orthonormal scoring. At P ≥ 6 most seeds' bounds exceed `DELTA` (U(s) is
/// near square), and scoring them all through orthonormal bases took 87% of the search; a margin
/// of 10⁻³ is a tenth of the quantization error there, so it costs the pruning little.
fn margin_for(bounds: &[f64]) -> f64 {
    let keep = bounds.len() - bounds.len() / FLAG_SHARE;
    // The keep-th smallest bound is at most DELTA when that many are: no selection needed.
    if keep == 0 || bounds.iter().filter(|&&b| b <= DELTA).count() >= keep {
        return DELTA;
    }
    let mut bounds = bounds.to_vec();
    let (_, nth, _) = bounds.select_nth_unstable_by(keep - 1, f64::total_cmp);
    nth.clamp(DELTA, DELTA_MAX)
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
/// `|Δb_j| ≤ (C+1)·u·Σ_i|U_ij·w_i| ≤ (C+1)·u·‖U_j‖·‖w‖` (Cauchy–Schwarz on column j), and
/// `|Δb| ≤ (C+1)·u·‖U‖_F·‖w‖`; L⁻¹ amplifies that by `‖L⁻¹‖₂ = 1/σ_min(U)`; rounding L⁻¹ and
/// the P-term products adds `(P+1)·√P·u·‖L⁻¹‖₂·‖b‖` with `‖b‖ ≤ σ_max(U)·‖w‖`; then
/// `Δ|y|² ≤ 2‖y‖·|Δy| + P·u·‖y‖²` with `‖y‖ ≤ ‖w‖`, plus C·u for ‖w‖² itself. `‖U‖_F = ‖L‖_F`
/// (both square to the Gram matrix's trace) bounds σ_max(U), and ‖L⁻¹‖_F bounds 1/σ_min.
///
/// Weighted, the scan correlates `z = sw ⊙ w'` with U, and `Σ_i|U_ij·z_i| = Σ_i|U'_ij·w'_i|`
/// for `U' = diag(sw)·U`, whose L the tables hold: the same bound, relative to ‖w'‖². It once
/// bounded `Σ_i|U_ij·w_i|` by `Σ_i|w_i| ≤ √C·‖w‖` (entries of U at most 1), some √(C·P)/‖U‖_F
/// times looser: 1.7× at the 4-bit preset, more under small weights, whose wider margins let
/// more seeds through the scan.
#[derive(Clone, Copy)]
struct ScoreBound {
    /// `C + 1 + (P+1)·√P`.
    amp: f64,
    p: f64,
    c: f64,
}

impl ScoreBound {
    fn new(c: usize, p: usize) -> ScoreBound {
        let (c, p) = (c as f64, p as f64);
        ScoreBound {
            amp: c + 1.0 + (p + 1.0) * p.sqrt(),
            p,
            c,
        }
    }

    /// The bound of a seed whose L⁻¹ and L have Frobenius norms `inv_norm` and `l_norm`.
    #[inline(always)]
    fn of(&self, inv_norm: f64, l_norm: f64) -> f64 {
        let u = f64::from(f32::EPSILON) / 2.0;
        let dy = inv_norm * l_norm * self.amp * u;
        2.0 * (2.0 * dy + self.p * u + self.c * u)
    }
}

/// Modified Gram–Schmidt on the columns of row-major C×P `u`, in place. A column dependent on
/// earlier ones becomes zero, so the non-zero columns are an orthonormal basis of span U. One
/// matrix at a time: the tests' oracle of [`flagged_bases`].
#[cfg(test)]
pub(super) fn orthonormalise(u: &mut [f64], c: usize, p: usize) {
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
