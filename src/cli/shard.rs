//! `seedlm compress … --shard I/N|auto`: one shard of a sharded compression.

use super::plan_step::{PlanArgs, PlanInput, Planned, make_plan};
use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::io::model::Model;
use crate::io::model_job::{JobError, Plan};
use crate::io::shard::{
    JOB_FILE, ShardJobSpec, ShardOutcome, ShardRun, checkpoint_dir, folder_of, input_hashes,
    read_plan, run_shard, write_plan,
};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

/// What `compress` hands to a shard run.
pub struct ShardJob<'a> {
    /// The input's path.
    pub input: &'a Path,
    /// The opened input.
    pub model: &'a Model,
    /// The tensors to compress.
    pub plan: &'a Plan,
    /// Configuration.
    pub cfg: Config,
    /// The bit budget and calibration, planned once for every shard.
    pub planned: &'a PlanArgs,
    /// The `--shard` value.
    pub shard: &'a str,
    /// The `--shards` value.
    pub shards: Option<usize>,
    /// The final output; the shard folder is beside it.
    pub output: &'a Path,
    /// Blocks per checkpoint piece.
    pub checkpoint_blocks: usize,
    /// The worker threads the search runs on.
    pub pool: &'a rayon::ThreadPool,
}

/// Shard index and count from `--shard` (`I/N` or `auto`) and `--shards`; `env` reads the
/// environment (Slurm job arrays, Kubernetes Indexed Jobs).
pub fn resolve(
    arg: &str,
    shards: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(usize, usize)> {
    let num = |name: &str| -> anyhow::Result<Option<usize>> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .with_context(|| format!("{name}={v} is not a number"))
            })
            .transpose()
    };
    let (i, n) = if arg == "auto" {
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = match num("SLURM_ARRAY_TASK_COUNT")? {
                Some(c) => c,
                None => match num("SLURM_ARRAY_TASK_MAX")? {
                    Some(max) if max >= min => max - min + 1,
                    _ => bail!(
                        "--shard auto: SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX is"
                    ),
                },
            };
            if id < min {
                bail!("--shard auto: SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}");
            }
            (id - min, count)
        } else if let Some(id) = num("JOB_COMPLETION_INDEX")? {
            let n = shards.context("--shard auto with JOB_COMPLETION_INDEX needs --shards N")?;
            (id, n)
        } else {
            bail!(
                "--shard auto needs SLURM_ARRAY_TASK_ID (a Slurm job array) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job); outside those give --shard I/N"
            );
        }
    } else {
        let (i, n) = arg
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)))
            .with_context(|| {
                format!("--shard '{arg}' is not I/N (for example 0/4, I from 0) or auto")
            })?;
        (i, n)
    };
    if n == 0 || n > crate::io::shard::MAX_SHARDS {
        bail!(
            "--shard: the number of shards must be from 1 to {}",
            crate::io::shard::MAX_SHARDS
        );
    }
    if i >= n {
        bail!(
            "--shard: shard {i} does not exist, shards of {n} go from 0 to {}",
            n - 1
        );
    }
    if let Some(s) = shards
        && s != n
    {
        bail!("--shards {s} does not match the {n} shards of --shard");
    }
    Ok((i, n))
}

/// A job of `n` shards as its shard folder holds it.
pub struct FolderJob {
    /// The job.
    pub spec: ShardJobSpec,
    /// Its plan's moments (empty without calibration).
    pub moments: HashMap<String, Vec<f64>>,
    /// What the plan step measured, when it ran now (`None`: the folder held the plan).
    pub planned_now: Option<Planned>,
}

/// The job of `job` in `n` shards: one configuration throughout, or with `--target-bpw` or
/// `--calibrate` the plan in the shard folder, checked against the options, the texts and
/// (when `make`) the whole input. When the folder holds no plan yet, `make` measures it now and
/// writes it; without `make` that is an error saying how to make it. `None` when cancelled.
pub fn folder_job(
    job: &ShardJob<'_>,
    n: usize,
    make: bool,
    cancel: &AtomicBool,
) -> anyhow::Result<Option<FolderJob>> {
    let base = ShardJobSpec::new(job.model, job.plan, job.cfg, n)?;
    let mut out = FolderJob {
        spec: base,
        moments: HashMap::new(),
        planned_now: None,
    };
    if !job.planned.any() {
        return Ok(Some(out));
    }
    let asked = job.planned.options()?;
    let folder = folder_of(job.output);
    if let Some(spec) = read_plan(&folder, &out.spec, &asked)? {
        let plan = spec.plan.as_ref().expect("read_plan gives a planned job");
        // A run on one machine reads the whole input anyway; shards check their own tensors.
        if make && !plan.check_input(job.model, &folder, &[], cancel)? {
            return Ok(None);
        }
        out.moments = plan.read_moments(&folder)?;
        out.spec = spec;
        return Ok(Some(out));
    }
    if !make {
        bail!(
            "{}: no plan yet for {} (--target-bpw and --calibrate are measured once for every shard); make it first with `seedlm plan {} -o {} --shards {n} ...` with the same options (the plan job of `seedlm slurm` does)",
            folder.join(JOB_FILE).display(),
            asked.describe(),
            job.input.display(),
            job.output.display()
        );
    }
    let on = PlanInput {
        input: job.input,
        model: job.model,
        plan: job.plan,
        rounding: crate::core::quant::Rounding::default(),
        pool: job.pool,
    };
    let Some(planned) = make_plan(&on, job.planned, cancel)? else {
        return Ok(None);
    };
    if let Some(t) = planned.allocation_table() {
        super::stdout::print(&t)?;
    }
    let Some(input) = input_hashes(job.model, &[], cancel) else {
        return Ok(None);
    };
    let configs = planned
        .allocation
        .is_some()
        .then(|| planned.configs(job.plan, job.cfg));
    // Only the compressed tensors' moments are read again.
    out.moments = planned
        .moments
        .iter()
        .filter(|(k, _)| job.plan.compress.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.spec = write_plan(
        &folder,
        out.spec,
        configs.as_deref(),
        asked,
        planned.records()?,
        &out.moments,
        input,
    )?;
    out.planned_now = Some(planned);
    Ok(Some(out))
}

/// Runs one shard on `job.pool`.
pub fn run(job: &ShardJob<'_>, cancel: &AtomicBool) -> anyhow::Result<ExitCode> {
    let (i, n) = resolve(job.shard, job.shards, |k| std::env::var(k).ok())?;
    // A run on one machine (shard 0 of 1) makes its own plan; a shard of many reads it.
    let Some(fj) = folder_job(job, n, n == 1, cancel)? else {
        eprintln!("cancelled: no output written");
        return Ok(ExitCode::from(130));
    };
    if let Some(p) = &fj.planned_now {
        eprintln!("plan: {}", p.phases_text());
    }
    let folder = folder_of(job.output);
    let run = ShardRun {
        model: job.model,
        spec: &fj.spec,
        folder: &folder,
        shard: i,
        checkpoint_blocks: job.checkpoint_blocks,
        moments: &fj.moments,
    };
    let progress = Progress::default();
    let result = super::watch::watch("blocks", &progress.done, &progress.total, |_| {
        job.pool
            .install(|| run_shard(&run, Control::new(&progress, cancel), |_| {}))
    });
    match result {
        Ok(ShardOutcome::AlreadyDone { part }) => {
            println!(
                "shard {i}/{n} is already finished ({}): nothing to do",
                part.display()
            );
        }
        Ok(ShardOutcome::Finished {
            part,
            blocks,
            resumed,
            redone,
        }) => {
            for why in redone {
                eprintln!("note: {why}; removed, and its blocks searched again");
            }
            if resumed > 0 {
                println!("shard {i}/{n}: resumed with {resumed} of {blocks} blocks already done");
            }
            println!("shard {i}/{n}: {blocks} blocks, wrote {}", part.display());
        }
        Err(JobError::Cancelled) => {
            eprintln!(
                "cancelled: finished pieces kept in {}; run the same command again to resume",
                checkpoint_dir(&folder, i, n).display()
            );
            return Ok(ExitCode::from(130));
        }
        Err(JobError::Model(e)) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn explicit_and_auto_indices() {
        assert_eq!(resolve("2/5", None, env(&[])).unwrap(), (2, 5));
        assert!(resolve("5/5", None, env(&[])).is_err());
        assert!(resolve("1/0", None, env(&[])).is_err());
        assert!(resolve("x", None, env(&[])).is_err());
        assert!(resolve("1/4", Some(3), env(&[])).is_err());
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(resolve("auto", None, env(&slurm)).unwrap(), (3, 4));
        let minmax = [
            ("SLURM_ARRAY_TASK_ID", "11"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_MAX", "12"),
        ];
        assert_eq!(resolve("auto", None, env(&minmax)).unwrap(), (1, 3));
        let k8s = [("JOB_COMPLETION_INDEX", "1")];
        assert_eq!(resolve("auto", Some(2), env(&k8s)).unwrap(), (1, 2));
        assert!(resolve("auto", None, env(&k8s)).is_err());
        assert!(resolve("auto", None, env(&[])).is_err());
    }
}
