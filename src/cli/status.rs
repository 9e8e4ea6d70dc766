//! `seedlm status`: progress of a sharded compression, per shard and in total.

use crate::io::shard::{JOB_FILE, find_folder, folder_of, status};
use clap::Args;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `seedlm status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The output of the sharded compression, or its shard folder (OUTPUT.shards).
    pub output: PathBuf,
}

/// Runs `seedlm status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let folder = find_folder(&args.output).unwrap_or_else(|| folder_of(&args.output));
    let plan_script = folder.join(super::slurm::PLAN_SCRIPT);
    if !folder.join(JOB_FILE).is_file() && plan_script.is_file() {
        println!(
            "{}: plan  not made yet (its job, {}, has not finished); the shards start after it",
            folder.display(),
            plan_script.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let st = status(&folder)?;
    let spec = &st.spec;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} blocks of {} tensors at {} in {} shards",
        folder.display(),
        spec.total_blocks,
        spec.tensors.len(),
        spec.config_text(),
        spec.shards
    );
    if let Some(p) = &spec.plan {
        let moments = match p.moments {
            Some(_) => format!(", moments in {}", crate::io::job_plan::MOMENTS_FILE),
            None => String::new(),
        };
        let _ = writeln!(out, "plan   made for {}{moments}", p.options.describe());
    }
    let _ = writeln!(
        out,
        "{:>5}  {:<11}  {:>12}  {:>12}  {:>6}  {:>10}  {:>9}  host",
        "shard", "state", "done", "blocks", "%", "blocks/s", "ETA"
    );
    for s in &st.shards {
        let _ = writeln!(
            out,
            "{:>5}  {:<11}  {:>12}  {:>12}  {:>6.1}  {:>10}  {:>9}  {}",
            s.shard,
            s.state.name(),
            s.done,
            s.total,
            s.percent(),
            s.rate_text(),
            s.eta().text(),
            s.host.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "{}", st.summary());
    super::stdout::print(&out)?;
    Ok(ExitCode::SUCCESS)
}
