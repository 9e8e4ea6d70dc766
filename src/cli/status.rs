//! `seedlm status`: progress of a sharded compression, per shard and in total.

use crate::io::shard::{find_folder, folder_of, status};
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
    let st = status(&folder)?;
    let spec = &st.spec;
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
