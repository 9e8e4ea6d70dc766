//! The scan: scores of every seed of a tile for a few blocks at once, by the AVX2 kernel where the
//! CPU has it and the portable one elsewhere. Both compute the same scores.

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
pub(super) mod portable;

use super::{NB, Normalised, RBUF, Searcher, TILE};
use crate::core::config::MAX_C;

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

/// Working memory of one kernel call: correlations and scores of `NB` blocks.
pub(super) struct Scratch {
    pub(super) r: [[f32; RBUF]; NB],
    pub(super) scores: [[f32; TILE]; NB],
}

impl Scratch {
    pub(super) fn new() -> Box<Self> {
        Box::new(Scratch {
            r: [[0.0; RBUF]; NB],
            scores: [[0.0; TILE]; NB],
        })
    }
}

/// The `NB` blocks of one kernel call, as floats and as fixed-point pairs; unused lanes are zero.
pub(super) struct Lanes {
    pub(super) w: [[f32; MAX_C]; NB],
    pub(super) pairs: [[i32; MAX_C / 2]; NB],
}

impl Lanes {
    pub(super) fn of<'a>(blocks: impl IntoIterator<Item = &'a Normalised>) -> Self {
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

impl Searcher {
    /// Scores of the TILE seeds starting at cycle position `t0` for the first `used` (1 to `NB`)
    /// blocks of `lanes` into `scratch.scores`, and per block whether any score exceeds its
    /// threshold (never for the unused ones).
    pub(super) fn tile_scores(
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
                portable::scalar_tile_scores(&self.tables, self.cfg.p, c, lanes, b, t0, scratch);
                scratch.scores[b].iter().any(|&s| s > thr[b])
            }
        })
    }
}
