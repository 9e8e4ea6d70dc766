//! `seedlm merge`: the parts of a sharded compression into one packed model.

use crate::core::control::{Control, Progress};
use crate::io::container::remove_stale_partials;
use crate::io::model_job::JobError;
use crate::io::shard::merge;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `seedlm merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard folder (OUTPUT.shards, as `compress --shard` wrote it).
    pub shards: PathBuf,
    /// The packed file to write (a directory when the input model was one).
    #[arg(short, long)]
    pub output: PathBuf,
    /// The input model, when it is no longer at the path the shards recorded.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replace an existing output directory that is not empty (only once the new one is
    /// complete).
    #[arg(long)]
    pub force: bool,
}

/// Runs `seedlm merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let pool = super::compress::thread_pool(args.threads)?;
    let spec = crate::io::shard::read_shard_job(&args.shards)?;
    let input = args.input.clone().unwrap_or(spec.input);
    super::output::check(&input, &args.output, args.force)?;
    // Leftovers of killed shard runs (FORMAT.md §8), in the folder and its checkpoints.
    let mut dirs = vec![args.shards.clone()];
    dirs.extend(
        std::fs::read_dir(&args.shards)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir()),
    );
    for dir in dirs {
        for p in remove_stale_partials(&dir) {
            eprintln!(
                "note: removed {}, a partial file left by an interrupted run",
                p.display()
            );
        }
    }
    let cancel = super::watch::cancel_on_ctrl_c();
    let progress = Progress::default();
    let started = Instant::now();
    // Each block is counted twice: checked, then written.
    let result = super::watch::watch("blocks, 2 passes", &progress.done, &progress.total, |_| {
        pool.install(|| {
            merge(
                &args.shards,
                args.input.as_deref(),
                &args.output,
                Control::new(&progress, &cancel),
            )
        })
    });
    let (file, reports) = match result {
        Ok(r) => r,
        Err(JobError::Cancelled) => {
            eprintln!("cancelled: no output written");
            return Ok(ExitCode::from(130));
        }
        Err(JobError::Model(e)) => return Err(e.into()),
    };
    let blocks: usize = reports.iter().map(|r| r.blocks).sum();
    println!(
        "merged {} compressed tensors ({blocks} blocks) in {:.1} s",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    println!("wrote {}", file.display());
    Ok(ExitCode::SUCCESS)
}
