//! `seedlm plan`: the plan step of a sharded compression with `--target-bpw` and/or
//! `--calibrate`, run once before the shards: it measures the bit budget's configuration of
//! each tensor and the calibration's moments and writes them into OUTPUT.shards/.

use super::compress::{WhatArgs, thread_pool};
use super::plan_step::PlanArgs;
use super::shard::{FolderJob, ShardJob, folder_job};
use crate::io::model::Model;
use crate::io::model_job::plan;
use crate::io::shard::{JOB_FILE, folder_of};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `seedlm plan`.
#[derive(Debug, Args)]
pub struct PlanCmdArgs {
    /// A .safetensors file or a Hugging Face model directory.
    pub input: PathBuf,
    /// The packed model the merge writes; the plan goes to OUTPUT.shards/.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of shards the plan is balanced for.
    #[arg(long)]
    pub shards: usize,
    /// Configuration and tensor selection, as for `compress`.
    #[command(flatten)]
    pub what: WhatArgs,
    /// The bit budget and calibration (at least one).
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `seedlm plan`.
pub fn run(args: PlanCmdArgs) -> anyhow::Result<ExitCode> {
    if !args.plan.any() {
        bail!("nothing to plan: give --target-bpw B and/or --calibrate TEXT");
    }
    if args.shards == 0 || args.shards > crate::io::shard::MAX_SHARDS {
        bail!(
            "--shards must be from 1 to {}",
            crate::io::shard::MAX_SHARDS
        );
    }
    let cfg = args.what.config()?;
    let selection = args.what.selection()?;
    let model = Model::open(&args.input)?;
    let plan = plan(&model, &selection, cfg)?;
    let pool = thread_pool(args.threads)?;
    let cancel = super::watch::cancel_on_ctrl_c();
    let job = ShardJob {
        input: &args.input,
        model: &model,
        plan: &plan,
        cfg,
        planned: &args.plan,
        shard: "0/1",
        shards: Some(args.shards),
        output: &args.output,
        checkpoint_blocks: crate::io::shard::DEFAULT_CHECKPOINT_BLOCKS,
        pool: &pool,
    };
    let Some(FolderJob {
        spec, planned_now, ..
    }) = folder_job(&job, args.shards, true, &cancel)?
    else {
        eprintln!("cancelled: no plan written");
        return Ok(ExitCode::from(130));
    };
    let path = folder_of(&args.output).join(JOB_FILE);
    match planned_now {
        Some(p) => println!(
            "wrote {}: {} for {} blocks of {} tensors at {} in {} shards ({})",
            path.display(),
            args.plan.options()?.describe(),
            spec.total_blocks,
            spec.tensors.len(),
            spec.config_text(),
            spec.shards,
            p.phases_text()
        ),
        None => println!("{} already holds this plan: nothing to do", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}
