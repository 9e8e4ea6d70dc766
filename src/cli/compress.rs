//! `seedlm compress`: a model file or directory in, a packed file or directory out.

use super::plan_step::{PlanArgs, PlanInput, make_plan};
use super::stdout::column_width;
use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::io::error::{MAX_SHOWN, abbreviate, shape_text};
use crate::io::model::Model;
use crate::io::model_job::{JobError, TensorReport, compress_model_with, plan, write_compressed};
use crate::io::selection::Selection;
use anyhow::{Context, bail};
use clap::Args;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What a compression job does: the configuration and which tensors it compresses (shared by
/// `compress` and `slurm`).
#[derive(Debug, Args)]
pub struct WhatArgs {
    /// Bits per weight preset: 4 (C=8, P=3, K=16) or 3 (C=12, P=4, K=16).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(3..=4))]
    pub bits: u32,
    /// Explicit configuration C,P,K (overrides --bits).
    #[arg(long, value_name = "C,P,K")]
    pub config: Option<Config>,
    /// Compress exactly the tensors whose names match this regex (replaces the default rule).
    #[arg(long, value_name = "REGEX")]
    pub include: Option<String>,
    /// Do not compress tensors whose names match this regex.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Option<String>,
}

impl WhatArgs {
    /// The configuration: `--config`, else the `--bits` preset; one whose search tables would
    /// not fit in the memory available now is refused before any work.
    pub fn config(&self) -> anyhow::Result<Config> {
        let cfg = match self.config {
            Some(c) => c,
            None => Config::preset(self.bits).context("--bits must be 4 or 3")?,
        };
        if let Some(available) = memory_available() {
            crate::search::check_table_memory(cfg, available)
                .map_err(|e| anyhow::anyhow!("--config {},{},{}: {e}", cfg.c, cfg.p, cfg.k))?;
        }
        Ok(cfg)
    }

    /// The tensor selection of `--include` / `--exclude`.
    pub fn selection(&self) -> anyhow::Result<Selection> {
        Ok(Selection::new(
            self.include.as_deref(),
            self.exclude.as_deref(),
        )?)
    }
}

/// Arguments of `seedlm compress`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("checkpointed").args(["shard", "resume"])))]
pub struct CompressArgs {
    /// A .safetensors file or a Hugging Face model directory.
    pub input: PathBuf,
    /// The packed file to write (a directory when INPUT is one).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Configuration and tensor selection.
    #[command(flatten)]
    pub what: WhatArgs,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run shard I of N (I from 0) into OUTPUT.shards/, resumable; `auto` reads the index from
    /// Slurm (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX). Then
    /// `seedlm merge OUTPUT.shards -o OUTPUT`.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Number of shards, for `--shard auto` outside a Slurm array.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<usize>,
    /// Blocks per checkpoint piece of a shard or a resumable run (what a kill at most loses).
    #[arg(long, value_name = "BLOCKS", default_value_t = crate::io::shard::DEFAULT_CHECKPOINT_BLOCKS, requires = "checkpointed")]
    pub checkpoint_blocks: usize,
    /// Keep finished blocks in OUTPUT.shards/ (a shard folder of one shard, FORMAT.md §9) and
    /// resume from them when run again after a kill or Ctrl-C; the folder is removed once
    /// OUTPUT is written, byte-identical to a run without --resume.
    #[arg(long)]
    pub resume: bool,
    /// How a candidate seed's exponent and coefficients are chosen: `exact` (the closest point
    /// of the format's lattice) or `fast` (rounding and ±1 moves). The decoder reads both.
    #[arg(long, value_enum, default_value_t = super::Encoder::default())]
    pub encoder: super::Encoder,
    /// The bit budget and calibration.
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Replace an existing output directory that is not empty (only once the new one is
    /// complete).
    #[arg(long)]
    pub force: bool,
    /// Print the per-tensor table and the totals as one JSON object instead of text.
    #[arg(long, conflicts_with_all = ["shard", "resume"])]
    pub json: bool,
}

/// Runs `seedlm compress`.
pub fn run(args: CompressArgs) -> anyhow::Result<ExitCode> {
    // Every phase counts in the time reported, the allocation's measurements included.
    let started = Instant::now();
    let cfg = args.what.config()?;
    let selection = args.what.selection()?;
    let model = Model::open(&args.input)?;
    let plan = plan(&model, &selection, cfg)?;
    super::output::check(&args.input, &args.output, args.force)?;
    if plan.compress.is_empty() {
        eprintln!("warning: no tensor is selected for compression; every tensor is passed through");
    }
    if let Some(method) = crate::io::model_job::quantized_by(&args.input) {
        eprintln!(
            "warning: {}: config.json has a quantization_config ({method}): the weights are \
             already quantized, and compressing them again is rarely meant",
            args.input.display()
        );
    }
    let pool = thread_pool(args.threads)?;

    let cancel = super::watch::cancel_on_ctrl_c();
    if args.shard.is_some() || args.resume {
        // Every shard and resumed piece must search alike; they use the default encoder.
        if args.encoder != super::Encoder::default() {
            bail!(
                "--encoder fast cannot be combined with --shard or --resume: they use the exact encoder"
            );
        }
        // A resumable run on one machine is shard 0 of 1, merged at once.
        let job = super::shard::ShardJob {
            input: &args.input,
            model: &model,
            plan: &plan,
            cfg,
            planned: &args.plan,
            shard: args.shard.as_deref().unwrap_or("0/1"),
            shards: args.shards,
            output: &args.output,
            checkpoint_blocks: args.checkpoint_blocks,
            pool: &pool,
        };
        let code = super::shard::run(&job, &cancel)?;
        if !args.resume || code != ExitCode::SUCCESS {
            return Ok(code);
        }
        return merge_resumed(&args.output, &pool, &cancel);
    }
    let planned = if args.plan.any() {
        let on = PlanInput {
            input: &args.input,
            model: &model,
            plan: &plan,
            rounding: args.encoder.rounding(),
            pool: &pool,
        };
        match make_plan(&on, &args.plan, &cancel)? {
            Some(p) => {
                // With --json, stdout holds the one JSON object.
                match p.allocation_table() {
                    Some(t) if args.json => eprint!("{t}"),
                    Some(t) => super::stdout::print(&t)?,
                    None => {}
                }
                Some(p)
            }
            None => {
                eprintln!("cancelled: no output written");
                return Ok(ExitCode::from(130));
            }
        }
    } else {
        None
    };
    let allocation = planned.as_ref().and_then(|p| p.allocation.as_ref());
    let configs = match &planned {
        Some(p) => p.configs(&plan, cfg),
        None => vec![cfg; plan.compress.len()],
    };
    let at = match allocation {
        Some(a) => format!("{:.3} bits/weight as allocated", a.bits_per_weight),
        None => cfg.to_string(),
    };
    eprintln!(
        "compressing {} tensors at {at}; Ctrl-C stops without writing",
        plan.compress.len(),
    );
    let searching = Instant::now();
    let no_moments = HashMap::new();
    let moments = planned.as_ref().map_or(&no_moments, |p| &p.moments);
    let progress = Progress::default();
    let result = super::watch::watch("blocks", &progress.done, &progress.total, |bar| {
        pool.install(|| {
            compress_model_with(
                &model,
                &plan,
                &configs,
                args.encoder.rounding(),
                moments,
                Control::new(&progress, &cancel),
                |name| bar.set_message(name.to_string()),
            )
        })
    });
    let compressed = match result {
        // A Ctrl-C that lands after the last block still means "no output".
        Ok(_) if cancel.load(Ordering::Relaxed) => {
            eprintln!("cancelled: no output written");
            return Ok(ExitCode::from(130));
        }
        Ok(c) => crate::io::model_job::CompressedModel {
            calibration: planned.as_ref().and_then(|p| p.calibration.clone()),
            allocation: allocation.map(serde_json::to_string).transpose()?,
            ..c
        },
        Err(JobError::Cancelled) => {
            eprintln!("cancelled: no output written");
            return Ok(ExitCode::from(130));
        }
        Err(JobError::Model(e)) => return Err(e.into()),
    };
    let search_secs = searching.elapsed().as_secs_f64();
    let file = write_compressed(&model, &compressed, &args.output)?;
    let elapsed = started.elapsed().as_secs_f64();

    let before: u64 = model
        .files()
        .iter()
        .filter_map(|f| std::fs::metadata(f.path()).ok())
        .map(|m| m.len())
        .sum();
    let after = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let weights: usize = compressed.entries.iter().map(|e| e.head.len()).sum();
    let packed: usize = compressed.reports.iter().map(|r| r.packed_bytes).sum();
    let bpw = (weights > 0).then(|| packed as f64 * 8.0 / weights as f64);
    let phases: serde_json::Map<String, serde_json::Value> = planned
        .iter()
        .flat_map(|p| &p.phases)
        .map(|(name, s)| (name.to_string(), (*s).into()))
        .chain([("search".to_string(), search_secs.into())])
        .collect();
    if args.json {
        let tensors: Vec<serde_json::Value> = compressed
            .reports
            .iter()
            .zip(&compressed.entries)
            .map(|(r, e)| {
                serde_json::json!({
                    "tensor": r.name,
                    "shape": r.shape,
                    "dtype": r.dtype.to_string(),
                    "config": {"c": e.head.config.c, "p": e.head.config.p, "k": e.head.config.k},
                    "blocks": r.blocks,
                    "relmse": r.relmse,
                    "snr_db": r.snr_db,
                    "seconds": r.seconds,
                    "original_bytes": r.original_bytes,
                    "packed_bytes": r.packed_bytes,
                })
            })
            .collect();
        let out = serde_json::json!({
            "output": file,
            "tensors": tensors,
            "totals": {
                "compressed": compressed.entries.len(),
                "passed_through": model.tensors().len() - compressed.entries.len(),
                "bytes_before": before,
                "bytes_after": after,
                "compressed_weights": weights,
                "bits_per_weight": bpw,
                "seconds": elapsed,
                "phase_seconds": phases,
            },
        });
        super::stdout::print(&format!("{out}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = table(&compressed.reports);
    out += "\n";
    match allocation {
        Some(a) => {
            let mut distinct = configs.clone();
            distinct.sort_by_key(|c| (c.c, c.p, c.k));
            distinct.dedup();
            let _ = writeln!(
                out,
                "config      allocated to --target-bpw {} ({} configurations; α from {})",
                a.target_bpw,
                distinct.len(),
                a.sensitivity
            );
        }
        None => {
            let _ = writeln!(out, "config      {cfg}");
        }
    }
    let _ = writeln!(
        out,
        "tensors     {} compressed, {} passed through",
        compressed.entries.len(),
        model.tensors().len() - compressed.entries.len()
    );
    let _ = writeln!(
        out,
        "bytes       {before} before, {after} after ({:.2}x smaller)",
        before as f64 / after.max(1) as f64
    );
    if let Some(bpw) = bpw {
        let _ = writeln!(
            out,
            "bits/weight {bpw:.3} over {weights} compressed weights"
        );
    }
    if let Some(p) = &planned {
        let _ = writeln!(
            out,
            "phases      {}, search {search_secs:.1} s",
            p.phases_text()
        );
    }
    let _ = writeln!(out, "time        {elapsed:.1} s");
    let _ = writeln!(out, "wrote       {}", file.display());
    super::stdout::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Merges the one-shard folder of a `--resume` run into `output` and removes the folder.
fn merge_resumed(
    output: &std::path::Path,
    pool: &rayon::ThreadPool,
    cancel: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<ExitCode> {
    let folder = crate::io::shard::folder_of(output);
    let progress = Progress::default();
    let merged = pool.install(|| {
        crate::io::shard::merge(&folder, None, output, Control::new(&progress, cancel))
    });
    let file = match merged {
        Ok((file, _)) => file,
        Err(JobError::Cancelled) => {
            eprintln!("cancelled: finished blocks kept in {}", folder.display());
            return Ok(ExitCode::from(130));
        }
        Err(JobError::Model(e)) => return Err(e.into()),
    };
    crate::io::shard::remove_folder(&folder)
        .with_context(|| format!("{}: cannot remove the checkpoint folder", folder.display()))?;
    println!("wrote {}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// A worker pool of `threads` threads (default: all cores).
pub fn thread_pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        pool = pool.num_threads(n);
    }
    pool.build().context("cannot start worker threads")
}

/// One line per compressed tensor (long names and shapes abbreviated).
fn table(reports: &[TensorReport]) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        return out;
    }
    let names: Vec<String> = reports
        .iter()
        .map(|r| abbreviate(&r.name, MAX_SHOWN))
        .collect();
    let shapes: Vec<String> = reports.iter().map(|r| shape_text(&r.shape)).collect();
    let nw = column_width(&names, 6);
    let sw = column_width(&shapes, 5);
    let _ = writeln!(
        out,
        "{:<nw$}  {:<sw$}  {:>9}  {:>10}  {:>7}  {:>8}",
        "tensor", "shape", "blocks", "rel. MSE", "SNR dB", "time s"
    );
    for ((r, name), shape) in reports.iter().zip(&names).zip(&shapes) {
        let _ = writeln!(
            out,
            "{:<nw$}  {:<sw$}  {:>9}  {:>10.3e}  {:>7.2}  {:>8.2}",
            name, shape, r.blocks, r.relmse, r.snr_db, r.seconds
        );
    }
    out
}

/// Bytes of memory available to a new process (Linux's `MemAvailable`), when known.
fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
