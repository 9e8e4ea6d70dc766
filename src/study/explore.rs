//! Design-space explorer (the paper's §3.4): for a bit budget of M bits per weight, every valid
//! (C, P, K) with `M·C = K + 4 + 4P`, and each one's expected relative error, measured by the
//! exact search on N(0, 1) blocks drawn from a fixed seed.
//!
//! The search costs 2^K seeds a block, so the grid is capped at K ≤ [`DEFAULT_MAX_K`] unless
//! asked otherwise (each extra bit of K doubles a point's time); the paper's choice (Table 1) is
//! always measured, so a lower cap still shows it.

use crate::core::config::{Config, MAX_C, MAX_P};
use crate::core::control::Control;
use crate::core::quant::ExpRange;
use crate::search::{BATCH, Searcher};
use rayon::prelude::*;
use std::sync::atomic::Ordering;

/// Default largest K of the grid: K ≤ 16 covers the paper's choices and a 256-block grid takes
/// a few seconds on two cores.
pub const DEFAULT_MAX_K: u32 = 16;
/// Largest K the explorer accepts: K = 20 already costs 16 times K = 16 per block.
pub const MAX_K: u32 = 20;
/// Default number of N(0, 1) blocks measured per point.
pub const DEFAULT_BLOCKS: usize = 256;
/// Seed of the Gaussian blocks: every run measures the same blocks.
pub const DATA_SEED: u64 = 0x005E_ED1A;
/// Blocks searched between progress updates and cancel checks.
const STEP: usize = 4 * BATCH;

/// What to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Bit budget M per weight.
    pub bits: u32,
    /// Largest K of the grid.
    pub max_k: u32,
    /// N(0, 1) blocks per point.
    pub blocks: usize,
}

impl Options {
    /// The defaults for a bit budget.
    pub fn new(bits: u32) -> Options {
        Options {
            bits,
            max_k: DEFAULT_MAX_K,
            blocks: DEFAULT_BLOCKS,
        }
    }
}

/// Why a grid could not be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExploreError {
    /// No valid configuration has this budget.
    #[error("no valid (C, P, K) spends exactly {bits} bits per weight with K ≤ {max_k}")]
    Empty {
        /// Bit budget asked for.
        bits: u32,
        /// K cap asked for.
        max_k: u32,
    },
    /// Zero blocks asked for.
    #[error("the number of blocks must be at least 1")]
    NoBlocks,
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
}

/// One measured point of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The configuration.
    pub config: Config,
    /// Expected relative error Σ‖w − ŵ‖² / Σ‖w‖² over the measured blocks.
    pub relmse: f64,
    /// Whether this is the paper's choice for the budget (Table 1).
    pub paper: bool,
}

/// The paper's choice for `bits` (Table 1): (12, 4, 16) at 3 bits, (8, 3, 16) at 4 bits.
pub fn paper_choice(bits: u32) -> Option<Config> {
    Config::preset(bits)
}

/// Every valid (C, P, K) with `bits·C = K + 4 + 4P` and K ≤ `max_k`, ordered by C then P.
pub fn grid(bits: u32, max_k: u32) -> Vec<Config> {
    let mut out = Vec::new();
    for c in 1..=MAX_C {
        for p in 1..=MAX_P.min(c) {
            let Some(k) = (bits as usize * c).checked_sub(4 + 4 * p) else {
                continue;
            };
            let Ok(k) = u32::try_from(k) else { continue };
            if k <= max_k
                && let Ok(cfg) = Config::new(c, p, k)
            {
                out.push(cfg);
            }
        }
    }
    out
}

/// The grid for `opts`, with the paper's choice appended if the K cap leaves it out; the flag
/// marks the paper's choice.
pub fn points(opts: &Options) -> Vec<(Config, bool)> {
    let paper = paper_choice(opts.bits);
    let mut pts: Vec<(Config, bool)> = grid(opts.bits, opts.max_k)
        .into_iter()
        .map(|c| (c, Some(c) == paper))
        .collect();
    if let Some(p) = paper
        && !pts.iter().any(|(c, _)| *c == p)
    {
        pts.push((p, true));
    }
    pts
}

/// `n` blocks of `c` N(0, 1) values; the same prefix for every C, so points share their data.
pub fn gaussian_blocks(n: usize, c: usize) -> Vec<f32> {
    crate::core::random::gaussian(n * c, 1.0, DATA_SEED)
}

/// Measures every point of `opts` on the current rayon pool. `progress.total` is set to the
/// blocks to search in all, and `done` advances as blocks finish; raising `ctl.cancel` stops within a few blocks per worker.
pub fn explore(opts: &Options, ctl: Control<'_>) -> Result<Vec<Point>, ExploreError> {
    if opts.blocks == 0 {
        return Err(ExploreError::NoBlocks);
    }
    let pts = points(opts);
    if pts.is_empty() {
        return Err(ExploreError::Empty {
            bits: opts.bits,
            max_k: opts.max_k,
        });
    }
    ctl.progress
        .total
        .store((pts.len() * opts.blocks) as u64, Ordering::Relaxed);
    pts.par_iter()
        .map(|&(config, paper)| {
            let relmse = measure(config, opts.blocks, ctl)?;
            Ok(Point {
                config,
                relmse,
                paper,
            })
        })
        .collect()
}

/// Expected relative error of `cfg` on `blocks` Gaussian blocks.
///
/// The exponent range is left open: the per-tensor range of 16 codes never binds on blocks of
/// one distribution, and leaving it open keeps points independent of how many blocks are drawn.
pub fn measure(cfg: Config, blocks: usize, ctl: Control<'_>) -> Result<f64, ExploreError> {
    let searcher = Searcher::new(cfg);
    let data = gaussian_blocks(blocks, cfg.c);
    let sq_norm: f64 = data.iter().map(|&x| f64::from(x).powi(2)).sum();
    let mut sq_err = 0.0;
    for chunk in data.chunks(STEP * cfg.c) {
        if ctl.cancelled() {
            return Err(ExploreError::Cancelled);
        }
        let n = chunk.len() / cfg.c;
        let res = searcher.search_all(chunk, ExpRange::UNBOUNDED);
        sq_err += res.iter().map(|r| r.err).sum::<f64>();
        ctl.progress.done.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok(crate::search::compress::relmse(sq_err, sq_norm))
}

/// The rate–distortion bound of a Gaussian source at `bits` per sample: 2^(−2M).
pub fn gaussian_bound(bits: f64) -> f64 {
    (-2.0 * bits).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::control::Progress;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn every_point_spends_exactly_the_budget() {
        for bits in 1..=6 {
            let g = grid(bits, 16);
            assert!(!g.is_empty(), "M={bits}");
            for cfg in &g {
                assert_eq!(cfg.block_bits() as usize, bits as usize * cfg.c, "{cfg}");
                assert_eq!(cfg.bits_per_weight(), f64::from(bits));
                assert!(cfg.k <= 16 && cfg.p <= cfg.c);
            }
        }
    }

    #[test]
    fn grid_is_complete_for_4_bits() {
        // 4C = K + 4 + 4P forces K ≡ 0 (mod 4); with K ≤ 16: K ∈ {4, 8, 12, 16} and
        // C = (K + 4)/4 + P with P ≤ min(8, C). That is 8 values of P for each of 4 K's.
        let g = grid(4, 16);
        assert_eq!(g.len(), 32);
        assert!(g.contains(&Config::FOUR_BIT));
        assert!(g.contains(&Config { c: 3, p: 1, k: 4 }));
        assert!(g.contains(&Config { c: 13, p: 8, k: 16 }));
        // With the cap at 12, the K = 16 points go.
        assert_eq!(grid(4, 12).len(), 24);
    }

    #[test]
    fn grid_for_3_bits_by_hand() {
        // 3C = K + 4 + 4P with K ≤ 6: C=3: K=1 (no taps); C=4: P=1 → K=4; C=5: P=1 → K=7 (too
        // big), P=2 → K=3; C=6: P=2 → K=6, P=3 → K=2; C=7: P=3 → K=5; C=8: P=4 → K=4; …
        let g = grid(3, 6);
        let has = |c, p, k| g.contains(&Config { c, p, k });
        assert!(has(4, 1, 4) && has(5, 2, 3) && has(6, 2, 6) && has(6, 3, 2) && has(7, 3, 5));
        assert!(!g.iter().any(|c| c.k > 6 || c.k < 2));
        for cfg in &g {
            assert_eq!(3 * cfg.c as u32, cfg.k + 4 + 4 * cfg.p as u32);
        }
    }

    #[test]
    fn paper_choice_is_marked_and_added_past_the_cap() {
        let capped = Options {
            max_k: 12,
            ..Options::new(3)
        };
        let pts = points(&capped);
        assert!(!grid(3, 12).contains(&Config::THREE_BIT));
        let marked: Vec<_> = pts.iter().filter(|(_, p)| *p).collect();
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[0].0, Config::THREE_BIT);
        let opts = Options {
            max_k: 16,
            ..Options::new(4)
        };
        let pts = points(&opts);
        assert_eq!(pts.len(), 32);
        assert_eq!(pts.iter().filter(|(_, p)| *p).count(), 1);
        assert!(points(&Options::new(5)).iter().all(|(_, p)| !p));
    }

    #[test]
    fn small_grid_runs_and_counts_progress() {
        let opts = Options {
            bits: 4,
            max_k: 8,
            blocks: 40,
        };
        let progress = Progress::default();
        let pts = explore(&opts, Control::new(&progress, &AtomicBool::new(false))).unwrap();
        // 16 grid points with K ∈ {4, 8}, plus the paper's (8, 3, 16).
        assert_eq!(pts.len(), 17);
        assert_eq!(progress.done.load(Ordering::Relaxed), 17 * 40);
        assert_eq!(progress.total.load(Ordering::Relaxed), 17 * 40);
        for p in &pts {
            assert!(p.relmse > 0.0 && p.relmse < 1.0, "{:?}", p);
        }
        // docs/DESIGN.md §3: the 4-bit preset reaches ≈ 0.0144 on N(0, 1), above the bound 2^−8.
        let at = |c, p, k| pts.iter().find(|x| x.config == Config { c, p, k }).unwrap();
        assert!(at(8, 3, 16).relmse < 0.03);
        assert!(at(8, 3, 16).relmse > gaussian_bound(4.0));
    }

    #[test]
    fn measurement_is_deterministic() {
        let cfg = Config::new(6, 2, 12).unwrap();
        let p = Progress::default();
        let no = AtomicBool::new(false);
        assert_eq!(
            measure(cfg, 50, Control::new(&p, &no)),
            measure(cfg, 50, Control::new(&p, &no))
        );
    }

    #[test]
    fn cancel_and_bad_options() {
        let opts = Options::new(4);
        let p = Progress::default();
        assert_eq!(
            explore(&opts, Control::new(&p, &AtomicBool::new(true))),
            Err(ExploreError::Cancelled)
        );
        let none = Options { blocks: 0, ..opts };
        assert_eq!(
            explore(&none, Control::new(&p, &AtomicBool::new(false))),
            Err(ExploreError::NoBlocks)
        );
        // 9C − 4P ≥ 5C ≥ 15 for C ≥ 3, and C ≤ 2 leaves K ≥ 10: nothing fits K ≤ 4.
        let tiny = Options {
            bits: 9,
            max_k: 4,
            blocks: 1,
        };
        assert!(matches!(
            explore(&tiny, Control::new(&p, &AtomicBool::new(false))),
            Err(ExploreError::Empty { .. })
        ));
    }

    #[test]
    fn bound_is_two_to_minus_two_m() {
        assert_eq!(gaussian_bound(4.0), 1.0 / 256.0);
        assert_eq!(gaussian_bound(3.0), 1.0 / 64.0);
    }
}
