//! `seedlm bench`: search speed and quality on N(0,1) blocks.

use crate::core::config::Config;
use crate::search::Kernel;
use clap::Args;

/// Arguments of `seedlm bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Preset: 4 (C=8, P=3, K=16) or 3 (C=12, P=4, K=16).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(3..=4))]
    pub bits: u32,
    /// Custom configuration C,P,K (overrides --bits).
    #[arg(long)]
    pub config: Option<Config>,
    /// Number of blocks.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub blocks: u64,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Untimed runs first, so thread start-up and CPU clock ramp-up are not measured.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub warmup: u64,
    /// Timed runs; the reported speed is their median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeat: u64,
    /// Scan kernel: avx512, avx2 or portable (what CPUs without AVX2 get). Default: the one
    /// every command runs (the fastest this CPU has, or SEEDLM_KERNEL's if the CPU has it).
    #[arg(long)]
    pub kernel: Option<Kernel>,
    /// How a candidate seed's coefficients are chosen: `exact` (the closest lattice point) or
    /// `fast` (rounding and ±1 moves).
    #[arg(long, value_enum, default_value_t = super::Encoder::default())]
    pub encoder: super::Encoder,
    /// Search the blocks as the rows of this length of one weight under synthetic calibration
    /// moments (log-normal, fixed seed), as `compress --calibrate` searches a layer: one set of
    /// weighted tables per column offset, built inside the timed runs.
    #[arg(long, value_name = "WIDTH", value_parser = clap::value_parser!(u64).range(1..))]
    pub calibrated_width: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let cfg = match args.config {
        Some(c) => c,
        None => Config::preset(args.bits).expect("clap allows only 4 or 3"),
    };
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t as usize,
    );
    let kernel = args.kernel.unwrap_or_else(Kernel::chosen);
    let r = crate::study::bench::run(
        cfg,
        kernel,
        args.encoder.rounding(),
        args.blocks as usize,
        threads,
        args.warmup as usize,
        args.repeat as usize,
        args.calibrated_width.map(|w| w as usize),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("config        {cfg}");
        println!("kernel        {}", r.kernel);
        println!("encoder       {}", r.encoder);
        let tables = crate::search::Searcher::new(cfg);
        let tables = tables.tables();
        println!(
            "scan margin   {:.1e} of ‖w‖², {} seeds scored through orthonormal bases",
            tables.delta(),
            tables.flagged()
        );
        if let Some(w) = r.calibrated_width {
            println!("calibrated    rows of {w} under synthetic moments (relative MSE unweighted)");
        }
        println!("blocks        {} ({} threads)", r.blocks, r.threads);
        let runs: Vec<String> = r
            .runs_blocks_per_s
            .iter()
            .map(|b| format!("{b:.0}"))
            .collect();
        println!(
            "speed         {:.0} blocks/s  (median of {} timed runs after {} warm-up: {})",
            r.blocks_per_s,
            runs.len(),
            r.warmup,
            runs.join(", ")
        );
        println!("time          {:.3} s per run (median)", r.seconds);
        println!(
            "relative MSE  {:.5}  (SNR {:.2} dB)",
            r.relmse,
            crate::search::compress::snr_db(r.relmse)
        );
        println!("rescans       {} blocks needed a second scan", r.rescans);
    }
    Ok(())
}
