//! `seedlm status`: progress of a sharded compression, per shard and in total.

use crate::io::shard::{JOB_FILE, ShardState, folder_of, status};
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
    let folder = if args.output.join(JOB_FILE).is_file() {
        args.output.clone()
    } else {
        folder_of(&args.output)
    };
    let (spec, shards) = status(&folder)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} blocks of {} tensors at {} in {} shards",
        folder.display(),
        spec.total_blocks,
        spec.tensors.len(),
        spec.config,
        spec.shards
    );
    let _ = writeln!(
        out,
        "{:>5}  {:<11}  {:>12}  {:>12}  {:>6}  {:>10}  host",
        "shard", "state", "done", "blocks", "%", "blocks/s"
    );
    let mut rate = 0.0;
    for s in &shards {
        let state = match s.state {
            ShardState::NotStarted => "not started",
            ShardState::Running => "running",
            ShardState::Stopped => "stopped",
            ShardState::Finished => "finished",
        };
        let r = s.blocks_per_s.unwrap_or(0.0);
        rate += r;
        let _ = writeln!(
            out,
            "{:>5}  {:<11}  {:>12}  {:>12}  {:>6.1}  {:>10}  {}",
            s.shard,
            state,
            s.done,
            s.total,
            percent(s.done, s.total),
            s.blocks_per_s.map_or("-".into(), |r| format!("{r:.0}")),
            s.host.as_deref().unwrap_or("-")
        );
    }
    let done: u64 = shards.iter().map(|s| s.done).sum();
    let finished = shards
        .iter()
        .filter(|s| s.state == ShardState::Finished)
        .count();
    let left = spec.total_blocks.saturating_sub(done);
    let eta = if left == 0 {
        "done".to_string()
    } else if rate > 0.0 {
        hms(left as f64 / rate)
    } else {
        "unknown (no shard running)".to_string()
    };
    let _ = writeln!(
        out,
        "total  {done}/{} blocks ({:.1} %), {finished}/{} shards finished, {rate:.0} blocks/s, ETA {eta}",
        spec.total_blocks,
        percent(done, spec.total_blocks),
        spec.shards
    );
    super::stdout::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}

fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
