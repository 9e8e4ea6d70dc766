//! `seedlm hw-sim`: simulates the bundled RTL of both matrix–vector designs in Verilator and
//! prints their cycle counts beside the paper's Table 5, or a packed tensor's (estimated for a
//! configuration without RTL, [`crate::hw::estimate`]), or (`--resources`) synthesises them
//! with Yosys and prints their FPGA resources beside its Table 4.

use crate::hw::report::{self, HwTable, SizeReport, TensorReport};
use crate::hw::resources::{Part, ResourceTable, Usage};
use crate::hw::sim::{self, DdrParams};
use crate::hw::synth::{self, FAMILY, SYNTH_SIZE};
use crate::io::packed::PackedModel;
use anyhow::{anyhow, bail};
use std::path::Path;
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
    /// Simulate a compressed tensor of a packed file instead, as FILE:NAME (4-bit: rows of whole
    /// 128-weight beats; 3-bit: at least 180 columns). A tensor of another configuration (a
    /// --target-bpw file's) has no RTL: it gets an estimate from the DDR model, marked as such.
    #[arg(long, value_name = "FILE:NAME")]
    pub tensor: Option<String>,
    /// Synthesise the designs with Yosys (UltraScale+) and print their FPGA resources per part
    /// beside the paper's Table 4, instead of simulating.
    #[arg(long, conflicts_with_all = ["sizes", "tensor"])]
    pub resources: bool,
    /// Also run the FP16-converting variant of the 4-bit design (each weight rounded to FP16
    /// before the MACs, as in the paper) beside the fixed-point one, and print both designs'
    /// output error against the exact product; with --resources, synthesise it too.
    #[arg(long)]
    pub fp16: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `seedlm hw-sim`.
pub fn run(args: HwSimArgs) -> anyhow::Result<ExitCode> {
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
    if let Some(spec) = &args.tensor {
        return run_packed_tensor(spec, args.fp16, json, &mut log, &cancel);
    }
    if args.resources {
        let table = synth::run_resources(args.fp16, &mut log, &cancel)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&resources_json(&table))?);
        } else {
            print_resources(&table);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let table = report::run_table(
        &args.sizes,
        args.fp16,
        &DdrParams::default(),
        &mut log,
        &cancel,
    )?;
    if json {
        let sizes: Vec<_> = table
            .rows
            .iter()
            .map(|row| {
                let r = &row.four;
                let t = row.three.as_ref();
                serde_json::json!({
                    "size": r.rows,
                    "reference_cycles": r.reference_cycles(),
                    "seedlm_cycles": r.seedlm_cycles(),
                    "speedup": r.speedup(),
                    "fp16_cycles": r.fp16_cycles(),
                    "crosscheck_ok": r.check.ok(),
                    "errors": r.errors,
                    "seedlm3_cycles": t.map(SizeReport::seedlm_cycles),
                    "speedup3": row.speedup3(),
                    "crosscheck3_ok": t.map(|t| t.check.ok()),
                })
            })
            .collect();
        let obj = serde_json::json!({
            "sizes": sizes,
            "compressed_crosscheck": {
                "rows": table.compressed.rows,
                "cols": table.compressed.cols,
                "crosscheck_ok": table.compressed.check.ok(),
                "errors": table.compressed.errors,
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

/// Simulates one compressed tensor of a packed file, given as FILE:NAME.
fn run_packed_tensor(
    spec: &str,
    fp16: bool,
    json: bool,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> anyhow::Result<ExitCode> {
    // The name is after the last colon: tensor names have none, paths might.
    let Some((file, name)) = spec
        .rsplit_once(':')
        .filter(|(f, n)| !f.is_empty() && !n.is_empty())
    else {
        bail!("--tensor {spec}: expected FILE:NAME");
    };
    let packed = PackedModel::open(Path::new(file))?;
    let Some(t) = packed.get(name) else {
        bail!("{file}: no tensor named {name}");
    };
    let Some(compressed) = packed.compressed(t) else {
        bail!("{file}: tensor {name} is stored uncompressed; the hardware runs compressed tensors");
    };
    let compressed = compressed?;
    let ddr = DdrParams::default();
    let report = report::run_compressed_tensor(&compressed, &t.shape, 1, fp16, &ddr, log, cancel)
        .map_err(|e| anyhow!("{file}: tensor {name}: {e}"))?;
    let ((rows, cols), cfg) = (report.shape(), compressed.config);
    let mut obj = serde_json::json!({
        "tensor": name,
        "preset": cfg.preset_name(),
        "config": cfg,
        "e_base": compressed.e_base,
        "rows": rows,
        "cols": cols,
        "reference_cycles": report.reference_cycles(),
        "seedlm_cycles": report.seedlm_cycles(),
        "speedup": report.speedup(),
    });
    let reference = match (report.reference_cycles(), report.speedup()) {
        (Some(c), Some(s)) => format!("reference {c} cycles, speed-up {s:.2}"),
        _ => "no FP16 reference (it takes widths that are multiples of 128)".into(),
    };
    let ok = match &report {
        TensorReport::Simulated(r) => {
            if !json {
                println!(
                    "{name} ({rows}×{cols}, {}): SeedLM {} cycles, {reference}, cross-check {}",
                    r.design.name,
                    r.seedlm_cycles(),
                    verdict(r.check.ok())
                );
                print_errors(r);
            }
            extend(
                &mut obj,
                serde_json::json!({
                    "estimated": false,
                    "fp16_cycles": r.fp16_cycles(),
                    "crosscheck_ok": r.check.ok(),
                    "errors": r.errors,
                }),
            );
            r.check.ok()
        }
        TensorReport::Estimated(e) => {
            if !json {
                println!(
                    "{name} ({rows}×{cols}): SeedLM {} cycles, {reference} ({})",
                    e.seedlm_cycles(),
                    e.note()
                );
            }
            extend(
                &mut obj,
                serde_json::json!({
                    "estimated": true,
                    "note": e.note(),
                    "records_per_cycle": e.records_per_cycle,
                    "macs": e.macs(),
                    "beats": e.beats,
                }),
            );
            true
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&obj)?);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Adds the fields of the JSON object `more` to the JSON object `obj`.
fn extend(obj: &mut serde_json::Value, more: serde_json::Value) {
    if let (Some(o), serde_json::Value::Object(m)) = (obj.as_object_mut(), more) {
        o.extend(m);
    }
}

fn print_table(table: &HwTable) {
    let real = &table.compressed;
    let paper = |r: &SizeReport, f: &dyn Fn(&sim::PaperRow) -> String| {
        r.paper.as_ref().map_or("-".to_string(), f)
    };
    println!(
        "{:>6}  {:>10} {:>10}  {:>8} {:>8}  {:>8} {:>7}  cross-check",
        "size", "reference", "(paper)", "SeedLM", "(paper)", "speed-up", "(paper)"
    );
    for r in table.rows.iter().map(|row| &row.four) {
        println!(
            "{:>6}  {:>10} {:>10}  {:>8} {:>8}  {:>8} {:>7}  {}",
            r.rows,
            r.reference_cycles().map_or("-".into(), |c| c.to_string()),
            paper(r, &|p| p.reference_cycles.to_string()),
            r.seedlm_cycles(),
            paper(r, &|p| p.seedlm_cycles.to_string()),
            r.speedup().map_or("-".into(), |s| format!("{s:.2}")),
            paper(r, &|p| format!("{:.2}", p.speedup)),
            verdict(r.check.ok()),
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
                t.seedlm_cycles(),
                speedup,
                verdict(t.check.ok()),
            ),
            _ => println!("{:>6}  (columns must be at least 180)", row.four.rows),
        }
    }
    for r in table.rows.iter().map(|row| &row.four) {
        if let Some(c) = r.fp16_cycles() {
            println!(
                "{}: the FP16-converting 4-bit design (weights rounded to FP16 before the MACs) \
                 takes {c} cycles",
                r.rows
            );
            print_errors(r);
        }
    }
    println!(
        "cross-check on an engine-compressed {}×{} N(0,1) matrix: {}",
        real.rows,
        real.cols,
        verdict(real.check.ok())
    );
    println!("cycles at 200 MHz, from the first DDR read to the last output write");
}

/// The relative error of y = Wx of each design that ran, against the exact product.
fn print_errors(r: &SizeReport) {
    let e = &r.errors;
    let designs = [
        ("fixed point", Some(e.seedlm)),
        ("FP16-converting", e.fp16),
        ("FP16 reference", e.reference),
    ];
    for (name, err) in designs {
        if let Some(err) = err {
            println!(
                "  {name:<16} relative error of y: max {:.3e}, mean {:.3e} per output; \
                 ‖Δy‖/‖y‖ {:.3e}",
                err.max_rel, err.mean_rel, err.norm_rel
            );
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "passed" } else { "FAILED" }
}

fn usage_json(u: &Usage) -> serde_json::Value {
    serde_json::json!({ "luts": u.luts, "ffs": u.ffs, "bram": u.bram, "dsps": u.dsps })
}

fn resources_json(t: &ResourceTable) -> serde_json::Value {
    let designs: Vec<_> = t
        .designs
        .iter()
        .map(|d| {
            let parts: serde_json::Map<_, _> = Part::ALL
                .iter()
                .map(|&p| (p.key().to_string(), usage_json(&d.part(p))))
                .collect();
            let paper = d.paper().map(|pt| {
                let mut m: serde_json::Map<_, _> = Part::ALL
                    .iter()
                    .filter_map(|&p| Some((p.key().to_string(), usage_json(&p.paper(pt)?))))
                    .collect();
                m.insert("total".into(), usage_json(&Usage::from_paper(&pt.total)));
                m
            });
            serde_json::json!({
                "design": d.target.name(),
                "label": d.label(),
                "parts": parts,
                "total": usage_json(&d.total()),
                "paper": paper,
                "logic_depth": d.logic_depth,
            })
        })
        .collect();
    serde_json::json!({
        "tool": t.tool,
        "family": FAMILY,
        "max_cols": SYNTH_SIZE,
        "max_rows": SYNTH_SIZE,
        "designs": designs,
    })
}

fn print_resources(t: &ResourceTable) {
    println!(
        "FPGA resources: {}, synth_xilinx -family {FAMILY} (UltraScale+), MaxCols = MaxRows = \
         {SYNTH_SIZE}; (paper) = Table 4",
        t.tool
    );
    println!(
        "{:<15} {:<26} {:>7} {:>7}  {:>6} {:>6}  {:>5} {:>5}  {:>4} {:>5}",
        "design", "part", "LUTs", "(paper)", "FFs", "(paper)", "BRAM", "(p.)", "DSPs", "(p.)"
    );
    for d in &t.designs {
        let rows = Part::ALL
            .iter()
            .map(|&p| (p.label(), d.part(p), d.paper().and_then(|pt| p.paper(pt))))
            .chain([(
                "total",
                d.total(),
                d.paper().map(|pt| Usage::from_paper(&pt.total)),
            )]);
        for (i, (part, ours, paper)) in rows.enumerate() {
            let p = |f: &dyn Fn(&Usage) -> String| paper.as_ref().map_or("-".into(), f);
            println!(
                "{:<15} {:<26} {:>7} {:>7}  {:>6} {:>6}  {:>5} {:>5}  {:>4} {:>5}",
                if i == 0 { d.label() } else { "" },
                part,
                ours.luts,
                p(&|u| u.luts.to_string()),
                ours.ffs,
                p(&|u| u.ffs.to_string()),
                ours.bram,
                p(&|u| u.bram.to_string()),
                ours.dsps,
                p(&|u| u.dsps.to_string()),
            );
        }
    }
    for d in &t.designs {
        if let Some(depth) = d.logic_depth {
            println!(
                "{}: longest combinational path {depth} cells (Yosys ltp; a logic depth, not a \
                 timing)",
                d.label()
            );
        }
    }
    println!(
        "the 3-bit design's activation file (a simulation model, one read port per lane) is \
         left out; the paper has no 3-bit design"
    );
}
