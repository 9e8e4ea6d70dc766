//! `seedlm hw-sim`: simulates the bundled RTL of both matrix–vector designs in Verilator and
//! prints their cycle counts beside the paper's Table 5.

use crate::compress::{Progress, compress};
use crate::config::Config;
use crate::hwmodel;
use crate::hwsim::{self, DdrParams, SizeReport, ThreeBitReport};
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Arguments of `seedlm hw-sim`.
#[derive(Debug, clap::Args)]
pub struct HwSimArgs {
    /// Square matrix sizes to simulate (multiples of 128, at most 8192), filled with random
    /// valid block codes.
    #[arg(long, value_delimiter = ',', default_value = "512,1024,2048")]
    pub sizes: Vec<usize>,
    /// Simulate a compressed tensor of a packed file instead, as FILE:NAME.
    #[arg(long, value_name = "FILE:NAME")]
    pub tensor: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Rows and columns of the real compressed matrix the cross-check always runs on.
const CHECK_ROWS: usize = 16;
const CHECK_COLS: usize = 128;

/// Runs `seedlm hw-sim`.
pub fn run(args: HwSimArgs) -> anyhow::Result<ExitCode> {
    if let Some(spec) = &args.tensor {
        bail!(
            "--tensor {spec}: simulating a tensor from a packed file is not available yet (it \
             needs the packed-file reader); run without --tensor for random block codes"
        );
    }
    // Ctrl-C raises the cancel flag, which kills the build or simulation child cleanly.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    // Fails only if a handler is already installed, which then handles Ctrl-C itself.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    let ddr = DdrParams::default();
    let json = args.json;
    let mut log = |line: &str| {
        if !json {
            eprintln!("{line}");
        }
    };
    let real = compressed_check(&ddr, &mut log, &cancel)?;
    let reports = hwsim::run_random_sizes(&args.sizes, &ddr, &mut log, &cancel)?;
    // The 3-bit datapath needs rows of at least one 180-weight group.
    let mut three = Vec::with_capacity(args.sizes.len());
    for &n in &args.sizes {
        three.push(match hwmodel::check_shape3(n, n) {
            Ok(()) => hwsim::run_random_sizes3(&[n], &ddr, &mut log, &cancel)?.pop(),
            Err(_) => None,
        });
    }
    let all_ok = real.check.ok()
        && reports.iter().all(|r| r.check.ok())
        && three.iter().flatten().all(|r| r.ok());
    if json {
        let sizes: Vec<_> = reports
            .iter()
            .zip(&three)
            .map(|(r, t)| {
                serde_json::json!({
                    "size": r.rows,
                    "reference_cycles": r.sim.reference_cycles,
                    "seedlm_cycles": r.sim.seedlm_cycles,
                    "speedup": r.speedup,
                    "crosscheck_ok": r.check.ok(),
                    "seedlm3_cycles": t.as_ref().map(|t| t.sim.cycles),
                    "speedup3": t.as_ref().map(|t| r.sim.reference_cycles as f64 / t.sim.cycles as f64),
                    "crosscheck3_ok": t.as_ref().map(|t| t.ok()),
                })
            })
            .collect();
        let obj = serde_json::json!({
            "sizes": sizes,
            "compressed_crosscheck": {
                "rows": real.rows,
                "cols": real.cols,
                "crosscheck_ok": real.check.ok(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        print_table(&reports, &three, &real);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Compresses a small N(0,1) matrix with the engine and simulates it, so the cross-check also
/// covers real search output.
fn compressed_check(
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> anyhow::Result<SizeReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    let data: Vec<f32> = (0..CHECK_ROWS * CHECK_COLS)
        .map(|_| normal.sample(&mut rng))
        .collect();
    log(&format!(
        "compressing a {CHECK_ROWS}×{CHECK_COLS} N(0,1) matrix for the cross-check"
    ));
    let (t, _) = compress(&data, Config::FOUR_BIT, &Progress::default(), cancel)
        .context("compressing the cross-check matrix")?;
    let x = hwsim::random_x(CHECK_COLS, 6);
    Ok(hwsim::run_tensor(
        &t, CHECK_ROWS, CHECK_COLS, x, ddr, log, cancel,
    )?)
}

fn print_table(reports: &[SizeReport], three: &[Option<ThreeBitReport>], real: &SizeReport) {
    let paper = |r: &SizeReport, f: &dyn Fn(&hwsim::PaperRow) -> String| {
        r.paper.as_ref().map_or("-".to_string(), f)
    };
    println!(
        "{:>6}  {:>10} {:>10}  {:>8} {:>8}  {:>8} {:>7}  cross-check",
        "size", "reference", "(paper)", "SeedLM", "(paper)", "speed-up", "(paper)"
    );
    for r in reports {
        println!(
            "{:>6}  {:>10} {:>10}  {:>8} {:>8}  {:>8.2} {:>7}  {}",
            r.rows,
            r.sim.reference_cycles,
            paper(r, &|p| p.reference_cycles.to_string()),
            r.sim.seedlm_cycles,
            paper(r, &|p| p.seedlm_cycles.to_string()),
            r.speedup,
            paper(r, &|p| format!("{:.2}", p.speedup)),
            if r.check.ok() { "passed" } else { "FAILED" },
        );
    }
    println!("\n3-bit preset (36-bit blocks through a gearbox; not in the paper's Table 5):");
    println!(
        "{:>6}  {:>10}  {:>8}  cross-check",
        "size", "SeedLM", "speed-up"
    );
    for (r, t) in reports.iter().zip(three) {
        let Some(t) = t else {
            println!("{:>6}  (columns must be at least 180)", r.rows);
            continue;
        };
        println!(
            "{:>6}  {:>10}  {:>8.2}  {}",
            t.rows,
            t.sim.cycles,
            r.sim.reference_cycles as f64 / t.sim.cycles as f64,
            if t.ok() { "passed" } else { "FAILED" },
        );
    }
    println!(
        "cross-check on an engine-compressed {}×{} N(0,1) matrix: {}",
        real.rows,
        real.cols,
        if real.check.ok() { "passed" } else { "FAILED" }
    );
    println!("cycles at 200 MHz, from the first DDR read to the last output write");
}
