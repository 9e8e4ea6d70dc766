//! The search benchmark: exact compression of N(0,1) blocks from a fixed RNG seed.

use crate::compress::{CompressError, Progress, compress};
use crate::config::Config;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// RNG seed of the benchmark data, fixed so runs are comparable.
pub const DATA_SEED: u64 = 0x005E_ED1A;

/// One benchmark run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Block size C.
    #[serde(rename = "C")]
    pub c: usize,
    /// Latent dimension P.
    #[serde(rename = "P")]
    pub p: usize,
    /// Register length K.
    #[serde(rename = "K")]
    pub k: u32,
    /// Bits per weight.
    pub bits: f64,
    /// Blocks compressed.
    pub blocks: usize,
    /// Worker threads.
    pub threads: usize,
    /// Wall time of the compression, seconds.
    pub seconds: f64,
    /// Blocks per second.
    pub blocks_per_s: f64,
    /// Relative MSE Σ(w−ŵ)²/Σw².
    pub relmse: f64,
    /// Blocks whose top candidates did not prove the optimum and needed a second scan.
    pub rescans: u64,
}

/// `blocks` blocks of N(0,1) weights for `cfg`, always the same for the same arguments.
pub fn gaussian_data(cfg: Config, blocks: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(DATA_SEED);
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    (0..blocks * cfg.c)
        .map(|_| normal.sample(&mut rng))
        .collect()
}

/// Compresses `blocks` Gaussian blocks with `threads` workers and times it.
pub fn run(cfg: Config, blocks: usize, threads: usize) -> anyhow::Result<BenchReport> {
    let data = gaussian_data(cfg, blocks);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    // Build the shared tables outside the timed region: they are a one-off per config.
    crate::search::Searcher::new(cfg);
    let rescans0 = crate::search::rescans();
    let start = Instant::now();
    let (_, stats) = pool
        .install(|| compress(&data, cfg, &Progress::default(), &AtomicBool::new(false)))
        .map_err(|e: CompressError| anyhow::anyhow!("benchmark compression failed: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(BenchReport {
        c: cfg.c,
        p: cfg.p,
        k: cfg.k,
        bits: cfg.bits_per_weight(),
        blocks,
        threads,
        seconds,
        blocks_per_s: blocks as f64 / seconds,
        relmse: stats.relmse(),
        rescans: crate::search::rescans() - rescans0,
    })
}
