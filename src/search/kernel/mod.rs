//! The scan: scores of every seed of a tile for a few blocks at once, by the widest vector
//! kernel the CPU has (AVX-512, AVX2) and the portable one elsewhere. The vector kernels'
//! scores are the same bit for bit, the portable one's within the same margin.

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;
pub(super) mod portable;

use super::{NB, Normalised, RBUF, Searcher, TILE, topk};
use crate::core::config::MAX_C;
use std::sync::OnceLock;

/// The scan kernel a [`Searcher`] runs. All find the same optimum; only their speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 F, BW and VNNI intrinsics, on x86-64 CPUs that have them (and so AVX2 and FMA).
    Avx512,
    /// AVX2 and FMA intrinsics, on x86-64 CPUs that have them.
    Avx2,
    /// Plain Rust for any CPU, vectorised only as far as the compiler manages.
    Portable,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2, Kernel::Portable];

    /// The fastest kernel this CPU can run.
    pub fn best_available() -> Kernel {
        Self::supported().next().unwrap_or(Kernel::Portable)
    }

    /// The kernel searchers run: the one named by the `SEEDLM_KERNEL` environment variable if
    /// this CPU can run it (so any command, e.g. `compress`, can be run and compared on each
    /// kernel), else the fastest. `seedlm bench` and the app's status bar name it.
    pub fn chosen() -> Kernel {
        static CHOSEN: OnceLock<Kernel> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            std::env::var("SEEDLM_KERNEL")
                .ok()
                .and_then(|name| name.parse::<Kernel>().ok())
                .filter(|k| k.runs_here())
                .unwrap_or_else(Kernel::best_available)
        })
    }

    /// The kernels this CPU can run, fastest first (always ending with the portable one).
    pub fn supported() -> impl Iterator<Item = Kernel> {
        Self::ALL.into_iter().filter(|k| k.runs_here())
    }

    /// Whether this CPU can run the kernel.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            match self {
                Kernel::Avx512 => avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
                Kernel::Avx2 => avx2,
                Kernel::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Portable
        }
    }

    /// Whether the kernel's CPU has AVX2 and FMA, which the helpers around the scan (the
    /// flagged seeds' scores, the short vectors, the threshold masks) use.
    pub(super) fn has_avx2(self) -> bool {
        matches!(self, Kernel::Avx512 | Kernel::Avx2)
    }

    /// Lower-case name, as the benchmark and the app report it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernel {
    type Err = String;

    /// A kernel by its [`Kernel::name`].
    fn from_str(s: &str) -> Result<Kernel, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kernel {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// Working memory of one kernel call: correlations and scores of `NB` blocks, and for each
/// block with a hit the bit masks of its scores above the threshold ([`topk::above_words`]'s
/// layout). Rows start cache lines (RBUF and TILE are multiples of 16 floats), so whole-vector
/// stores never straddle two.
#[repr(align(64))]
pub(super) struct Scratch {
    pub(super) r: [[f32; RBUF]; NB],
    pub(super) scores: [[f32; TILE]; NB],
    pub(super) masks: [[u64; TILE / 64]; NB],
}

impl Scratch {
    pub(super) fn new() -> Box<Self> {
        Box::new(Scratch {
            r: [[0.0; RBUF]; NB],
            scores: [[0.0; TILE]; NB],
            masks: [[0; TILE / 64]; NB],
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
    /// threshold (never for the unused ones); for the blocks where one does, the masks of those
    /// scores into `scratch.masks`.
    pub(super) fn tile_scores(
        &self,
        lanes: &Lanes,
        used: usize,
        t0: usize,
        thr: &[f32; NB],
        scratch: &mut Scratch,
    ) -> [bool; NB] {
        let hits = self.kernel_scores(lanes, used, t0, thr, scratch);
        // The AVX-512 kernel makes the masks as it scores (a compare into a mask register is
        // cheap there); the others leave them to the few tiles with a hit, where a mask per
        // vector would cost them a slow `movmskps` each.
        if self.kernel != Kernel::Avx512 {
            for (b, _) in hits.iter().enumerate().filter(|(_, h)| **h) {
                scratch.masks[b] = topk::above_words(&scratch.scores[b], thr[b], self.kernel);
            }
        }
        hits
    }

    /// [`Searcher::tile_scores`] on this searcher's kernel.
    fn kernel_scores(
        &self,
        lanes: &Lanes,
        used: usize,
        t0: usize,
        thr: &[f32; NB],
        scratch: &mut Scratch,
    ) -> [bool; NB] {
        let c = self.cfg.c;
        #[cfg(target_arch = "x86_64")]
        if self.kernel.has_avx2() {
            let t = &self.tables;
            macro_rules! kernel {
                ($m:ident, $p:literal, $c:literal) => {
                    // A lone block (a rescan, or a search of one block) gets a kernel of its
                    // own rather than NB − 1 empty lanes.
                    match (t.pairs.is_some(), used) {
                        (true, 1) => {
                            $m::tile_scores_i16::<$p, $c, 1>(t, lanes, c, t0, thr, scratch)
                        }
                        (true, _) => {
                            $m::tile_scores_i16::<$p, $c, NB>(t, lanes, c, t0, thr, scratch)
                        }
                        (false, 1) => $m::tile_scores::<$p, $c, 1>(t, lanes, c, t0, thr, scratch),
                        (false, _) => $m::tile_scores::<$p, $c, NB>(t, lanes, c, t0, thr, scratch),
                    }
                };
            }
            macro_rules! by_config {
                ($m:ident) => {
                    match (c, self.cfg.p) {
                        // The presets get C fixed at compile time.
                        (8, 3) => kernel!($m, 3, 8),
                        (12, 4) => kernel!($m, 4, 12),
                        (_, 1) => kernel!($m, 1, 0),
                        (_, 2) => kernel!($m, 2, 0),
                        (_, 3) => kernel!($m, 3, 0),
                        (_, 4) => kernel!($m, 4, 0),
                        (_, 5) => kernel!($m, 5, 0),
                        (_, 6) => kernel!($m, 6, 0),
                        (_, 7) => kernel!($m, 7, 0),
                        _ => kernel!($m, 8, 0),
                    }
                };
            }
            // SAFETY: a searcher runs a kernel only where the CPU has its features (see
            // `Kernel::runs_here`); indices stay inside the extended tables (see `Tables::build`).
            return unsafe {
                if self.kernel == Kernel::Avx512 {
                    by_config!(avx512)
                } else {
                    by_config!(avx2)
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
