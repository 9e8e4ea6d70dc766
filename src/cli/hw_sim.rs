//! `seedlm hw-sim`: simulates the bundled RTL of both matrix–vector designs in Verilator and
//! prints their cycle counts beside the paper's Table 5.

use crate::hwsim::{self, DdrParams, HwTable, SizeReport, ThreeBitReport};
use anyhow::bail;
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
    let json = args.json;
    let mut log = |line: &str| {
        if !json {
            eprintln!("{line}");
        }
    };
    let table = hwsim::run_table(&args.sizes, &DdrParams::default(), &mut log, &cancel)?;
    if json {
        let sizes: Vec<_> = table
            .rows
            .iter()
            .map(|row| {
                let r = &row.four;
                let t = row.three.as_ref();
                serde_json::json!({
                    "size": r.rows,
                    "reference_cycles": r.sim.reference_cycles,
                    "seedlm_cycles": r.sim.seedlm_cycles,
                    "speedup": r.speedup,
                    "crosscheck_ok": r.check.ok(),
                    "seedlm3_cycles": t.map(|t| t.sim.cycles),
                    "speedup3": row.speedup3(),
                    "crosscheck3_ok": t.map(ThreeBitReport::ok),
                })
            })
            .collect();
        let obj = serde_json::json!({
            "sizes": sizes,
            "compressed_crosscheck": {
                "rows": table.compressed.rows,
                "cols": table.compressed.cols,
                "crosscheck_ok": table.compressed.check.ok(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        print_table(&table);
    }
    Ok(if table.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_table(table: &HwTable) {
    let real = &table.compressed;
    let paper = |r: &SizeReport, f: &dyn Fn(&hwsim::PaperRow) -> String| {
        r.paper.as_ref().map_or("-".to_string(), f)
    };
    println!(
        "{:>6}  {:>10} {:>10}  {:>8} {:>8}  {:>8} {:>7}  cross-check",
        "size", "reference", "(paper)", "SeedLM", "(paper)", "speed-up", "(paper)"
    );
    for r in table.rows.iter().map(|row| &row.four) {
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
    for row in &table.rows {
        match (&row.three, row.speedup3()) {
            (Some(t), Some(speedup)) => println!(
                "{:>6}  {:>10}  {:>8.2}  {}",
                t.rows,
                t.sim.cycles,
                speedup,
                if t.ok() { "passed" } else { "FAILED" },
            ),
            _ => println!("{:>6}  (columns must be at least 180)", row.four.rows),
        }
    }
    println!(
        "cross-check on an engine-compressed {}×{} N(0,1) matrix: {}",
        real.rows,
        real.cols,
        if real.check.ok() { "passed" } else { "FAILED" }
    );
    println!("cycles at 200 MHz, from the first DDR read to the last output write");
}
