//! `seedlm slurm`: sbatch scripts for a sharded compression (a job array) and its merge (a job
//! that waits for the array with `--dependency=afterok`), optionally submitted. With
//! `--target-bpw` or `--calibrate` a plan job runs first and the array waits for it.

use crate::io::model::Model;
use crate::io::model_job::plan;
use crate::io::shard::read_plan;
use crate::io::shard::{ShardJobSpec, claim_folder, folder_of};
use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Arguments of `seedlm slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// A .safetensors file or a Hugging Face model directory.
    pub input: PathBuf,
    /// The packed model the merge job writes; shards go to OUTPUT.shards/.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Number of shards (array tasks).
    #[arg(long)]
    pub shards: usize,
    /// CPUs per array task (the search threads of each shard).
    #[arg(long, default_value_t = 4)]
    pub cpus_per_task: usize,
    /// Time limit of each task, in Slurm's format (for example 2:00:00).
    #[arg(long, default_value = "24:00:00")]
    pub time: String,
    /// Slurm partition (default: the cluster's default).
    #[arg(long)]
    pub partition: Option<String>,
    /// Memory per task, in Slurm's format (for example 16G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Slurm account to charge.
    #[arg(long)]
    pub account: Option<String>,
    /// Quality of service.
    #[arg(long)]
    pub qos: Option<String>,
    /// Any other sbatch option, written as an `#SBATCH` line of both scripts (for example
    /// `--sbatch=--constraint=avx2`); repeatable.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
    /// Configuration and tensor selection, as for `compress`.
    #[command(flatten)]
    pub what: super::compress::WhatArgs,
    /// The bit budget and calibration, measured once by a plan job before the array.
    #[command(flatten)]
    pub plan: super::plan_step::PlanArgs,
    /// The seedlm binary the jobs run (default: this one); it must be visible on the nodes.
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Submit both jobs with sbatch and print their ids.
    #[arg(long)]
    pub submit: bool,
}

/// The array script's file name inside the shard folder.
pub const COMPRESS_SCRIPT: &str = "compress.sbatch";
/// The merge script's file name inside the shard folder.
pub const MERGE_SCRIPT: &str = "merge.sbatch";
/// The plan script's file name inside the shard folder (with `--target-bpw` / `--calibrate`).
pub const PLAN_SCRIPT: &str = "plan.sbatch";

/// Quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-,=:+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Refuses a value with a control character: a newline (or carriage return) would end a
/// comment or `#SBATCH` line of a script and start a command; quoting cannot make that safe.
fn script_safe(what: &str, value: &str) -> anyhow::Result<()> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!(
            "{what} {:?} holds the control character {:?}, which cannot be written into a Slurm script; rename it",
            value,
            c
        );
    }
    Ok(())
}

fn abs(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p)
        .with_context(|| format!("{}: cannot make the path absolute", p.display()))
}

fn text(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// Runs `seedlm slurm`.
pub fn run(args: SlurmArgs) -> anyhow::Result<ExitCode> {
    if args.shards == 0 || args.shards > crate::io::shard::MAX_SHARDS {
        bail!(
            "--shards must be from 1 to {}",
            crate::io::shard::MAX_SHARDS
        );
    }
    if args.cpus_per_task == 0 {
        bail!("--cpus-per-task must be at least 1");
    }
    let cfg = args.what.config()?;
    let selection = args.what.selection()?;
    let model = Model::open(&args.input)?;
    let plan = plan(&model, &selection, cfg)?;
    let spec = ShardJobSpec::new(&model, &plan, cfg, args.shards)?;
    let output = abs(&args.output)?;
    let folder = folder_of(&output);
    let bin = match &args.bin {
        Some(b) => abs(b)?,
        None => std::env::current_exe().context("cannot find the seedlm binary")?,
    };
    // Everything the scripts hold, checked before anything is written.
    for (what, p) in [
        ("the input path", &spec.input),
        ("the output path", &output),
        ("the seedlm binary's path", &bin),
    ] {
        script_safe(what, &p.to_string_lossy())?;
    }
    let options = [
        ("--include", args.what.include.as_deref()),
        ("--exclude", args.what.exclude.as_deref()),
        ("--partition", args.partition.as_deref()),
        ("--time", Some(args.time.as_str())),
        ("--mem", args.mem.as_deref()),
        ("--account", args.account.as_deref()),
        ("--qos", args.qos.as_deref()),
    ];
    for (what, value) in options {
        if let Some(v) = value {
            script_safe(what, v)?;
        }
    }
    for extra in &args.sbatch {
        script_safe("--sbatch", extra)?;
    }
    let planned = args.plan.any();
    let plan_args = args.plan.to_args()?;
    for a in &plan_args {
        script_safe("a plan option", a)?;
    }
    if planned {
        // The plan job writes job.json; a folder holding another job is refused now.
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("{}: cannot create directory", folder.display()))?;
        read_plan(&folder, &spec, &args.plan.options()?)?;
    } else {
        claim_folder(&folder, &spec)?;
    }
    let logs = folder.join("logs");
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("{}: cannot create directory", logs.display()))?;

    // A bit budget chooses each tensor's configuration: --config would conflict with it.
    let mut select = match args.plan.target_bpw {
        Some(_) => String::new(),
        None => format!(" --config {},{},{}", cfg.c, cfg.p, cfg.k),
    };
    for a in &plan_args {
        select += &format!(" {}", quote(a));
    }
    if let Some(i) = &args.what.include {
        select += &format!(" --include {}", quote(i));
    }
    if let Some(e) = &args.what.exclude {
        select += &format!(" --exclude {}", quote(e));
    }
    // The optional #SBATCH lines both scripts share.
    let mut sbatch_lines = String::new();
    for (name, value) in [
        ("partition", &args.partition),
        ("mem", &args.mem),
        ("account", &args.account),
        ("qos", &args.qos),
    ] {
        if let Some(v) = value {
            sbatch_lines += &format!("#SBATCH --{name}={v}\n");
        }
    }
    for extra in &args.sbatch {
        sbatch_lines += &format!("#SBATCH {extra}\n");
    }
    let n = args.shards;
    let what = match planned {
        true => args.plan.options()?.describe(),
        false => format!(
            "{} blocks of {} tensors at {cfg}",
            spec.total_blocks,
            spec.tensors.len()
        ),
    };
    let compress = format!(
        "#!/bin/bash
# SeedLM sharded compression: {what}, in {n} shards.
# Each array task compresses one shard into {folder}/ and can be rerun: it resumes from its
# checkpoint, and a finished shard does nothing. Progress: seedlm status {out}
#SBATCH --job-name=seedlm-compress
#SBATCH --array=0-{last}
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
{sbatch_lines}#SBATCH --output={logs}/compress-%A_%a.log
set -euo pipefail
exec {bin} compress {input} -o {out}{select} \\
  --shard auto --shards {n} --threads \"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"
",
        folder = text(&folder),
        out = text(&output),
        last = n - 1,
        cpus = args.cpus_per_task,
        time = args.time,
        logs = logs.display(),
        bin = text(&bin),
        input = text(&spec.input),
    );
    let merge = format!(
        "#!/bin/bash
# SeedLM merge: checks the {n} parts in {folder}/ and writes the packed model.
# Submitted to run after every array task succeeded (--dependency=afterok:ARRAY_JOB_ID).
#SBATCH --job-name=seedlm-merge
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
{sbatch_lines}#SBATCH --output={logs}/merge-%j.log
set -euo pipefail
exec {bin} merge {folder} -o {out} --threads \"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"
",
        folder = text(&folder),
        out = text(&output),
        cpus = args.cpus_per_task,
        time = args.time,
        logs = logs.display(),
        bin = text(&bin),
    );
    let plan_script = format!(
        "#!/bin/bash
# SeedLM plan: {what}, measured once on one node for the {n} shards into {folder}/.
# Submitted before the array, which waits for it (--dependency=afterok:PLAN_JOB_ID); rerunning
# it is safe: a folder holding this plan is left as it is.
#SBATCH --job-name=seedlm-plan
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
{sbatch_lines}#SBATCH --output={logs}/plan-%j.log
set -euo pipefail
exec {bin} plan {input} -o {out}{select} \\
  --shards {n} --threads \"${{SLURM_CPUS_PER_TASK:-{cpus}}}\"
",
        folder = text(&folder),
        out = text(&output),
        cpus = args.cpus_per_task,
        time = args.time,
        logs = logs.display(),
        bin = text(&bin),
        input = text(&spec.input),
    );
    let compress_path = folder.join(COMPRESS_SCRIPT);
    let merge_path = folder.join(MERGE_SCRIPT);
    let plan_path = folder.join(PLAN_SCRIPT);
    let mut scripts = vec![(&compress_path, &compress), (&merge_path, &merge)];
    if planned {
        scripts.insert(0, (&plan_path, &plan_script));
    }
    for (path, body) in scripts {
        std::fs::write(path, body).with_context(|| format!("{}: cannot write", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !args.submit {
        let chain = format!(
            "jid=$(sbatch --parsable {}) && sbatch --dependency=afterok:${{jid%%;*}} {}",
            text(&compress_path),
            text(&merge_path)
        );
        match planned {
            true => println!(
                "submit with: pid=$(sbatch --parsable {}) && jid=$(sbatch --parsable --dependency=afterok:${{pid%%;*}} {}) && sbatch --dependency=afterok:${{jid%%;*}} {}",
                text(&plan_path),
                text(&compress_path),
                text(&merge_path)
            ),
            false => println!("submit with: {chain}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut array_args = Vec::new();
    if planned {
        let plan_id = sbatch(&[&plan_path.to_string_lossy()])?;
        println!("submitted plan job {plan_id}");
        array_args.push(format!("--dependency=afterok:{plan_id}"));
    }
    array_args.push(compress_path.to_string_lossy().into_owned());
    let refs: Vec<&str> = array_args.iter().map(String::as_str).collect();
    let array = sbatch(&refs)?;
    let dep = format!("--dependency=afterok:{array}");
    let merge_id = sbatch(&[&dep, &merge_path.to_string_lossy()])?;
    match planned {
        true => println!("submitted compress array job {array} ({n} tasks, after the plan)"),
        false => println!("submitted compress array job {array} ({n} tasks)"),
    }
    println!("submitted merge job {merge_id} (runs after all tasks succeed)");
    Ok(ExitCode::SUCCESS)
}

/// Runs `sbatch --parsable ARGS` and returns the job id it prints.
fn sbatch(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .context("cannot run sbatch (is Slurm installed and on PATH?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "sbatch {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; ")
        );
    }
    // --parsable prints "ID" or "ID;CLUSTER".
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed '{}', not a job id", stdout.trim());
    }
    Ok(id)
}
