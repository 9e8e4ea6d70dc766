//! The plan step of a compression (shared by `compress`, `plan`, `slurm` and a shard run that
//! plans its own folder): the `--target-bpw` allocation and the `--calibrate` moments, measured
//! once on the whole model.

use super::stdout::column_width;
use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::core::quant::Rounding;
use crate::eval::calibration::Calibration;
use crate::io::error::{MAX_SHOWN, abbreviate};
use crate::io::job_plan::{PlanOptions, TextId};
use crate::io::model::Model;
use crate::io::model_job::{JobError, Plan, moments_of, tensor_error};
use crate::study::allocate::{self, Allocation, MENU};
use anyhow::{Context, bail};
use clap::Args;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What a plan step measures once on the whole model (shared by `compress`, `plan` and
/// `slurm`): the bit budget's configuration of each tensor and the calibration's moments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Calibrate on this text file: run the model on it (paragraphs, for BERT encoders), and
    /// search each linear layer's blocks for the smallest error weighted by its input channels'
    /// second moments E[x_j²] instead of the plain one (default: data-free). Never calibrate on
    /// the text you evaluate on.
    #[arg(long, value_name = "TEXT")]
    pub calibrate: Option<PathBuf>,
    /// Give each tensor its own configuration from the allocation menu so the packed bits
    /// average at most B per compressed weight, more where the model is most sensitive
    /// (instead of --bits/--config).
    #[arg(long, value_name = "B", conflicts_with_all = ["bits", "config"])]
    pub target_bpw: Option<f64>,
    /// Text measuring each tensor's sensitivity for --target-bpw: its first lines as sentences
    /// (encoders) or its first tokens (decoders). Not the evaluation sentences. Without it the
    /// sensitivities come from --sensitivity.
    #[arg(long, value_name = "FILE", requires = "target_bpw")]
    pub sensitivity_text: Option<PathBuf>,
    /// Data-free sensitivities for --target-bpw without --sensitivity-text: `vocabulary` runs
    /// the model on random words of its own vocabulary (needs config.json and tokenizer.json;
    /// without them it falls back to `none`), `none` weighs every tensor's relative MSE alike.
    #[arg(long, value_enum, default_value_t = Sensitivity::Vocabulary, requires = "target_bpw")]
    pub sensitivity: Sensitivity,
}

impl PlanArgs {
    /// Whether there is anything to plan.
    pub fn any(&self) -> bool {
        self.target_bpw.is_some() || self.calibrate.is_some()
    }

    /// The options as a plan records them (the texts read and hashed).
    pub fn options(&self) -> anyhow::Result<PlanOptions> {
        let sensitivity = self.target_bpw.map(|_| {
            match (&self.sensitivity_text, self.sensitivity) {
                (Some(_), _) => "text",
                (None, Sensitivity::Vocabulary) => "vocabulary",
                (None, Sensitivity::None) => "none",
            }
            .to_string()
        });
        Ok(PlanOptions {
            target_bpw: self.target_bpw,
            sensitivity,
            sensitivity_text: self
                .sensitivity_text
                .as_deref()
                .map(TextId::of)
                .transpose()?,
            calibration: self.calibrate.as_deref().map(TextId::of).transpose()?,
        })
    }

    /// The options as command-line arguments, for the scripts `seedlm slurm` writes.
    pub fn to_args(&self) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let path = |p: &std::path::Path| -> anyhow::Result<String> {
            Ok(std::path::absolute(p)
                .with_context(|| format!("{}: cannot make the path absolute", p.display()))?
                .to_string_lossy()
                .into_owned())
        };
        if let Some(b) = self.target_bpw {
            out.extend(["--target-bpw".into(), b.to_string()]);
            match &self.sensitivity_text {
                Some(t) => out.extend(["--sensitivity-text".into(), path(t)?]),
                None if self.sensitivity == Sensitivity::None => {
                    out.extend(["--sensitivity".into(), "none".into()])
                }
                None => {}
            }
        }
        if let Some(t) = &self.calibrate {
            out.extend(["--calibrate".into(), path(t)?]);
        }
        Ok(out)
    }
}

/// What a plan measured: the allocation (with `--target-bpw`), the moments and the record of
/// the calibration (with `--calibrate`), and the wall time of each phase.
pub struct Planned {
    /// The bit allocation.
    pub allocation: Option<Allocation>,
    /// Per-input-channel moments by tensor name.
    pub moments: HashMap<String, Vec<f64>>,
    /// The `seedlm.calibration` record.
    pub calibration: Option<String>,
    /// Each phase that ran and its wall seconds, in order.
    pub phases: Vec<(&'static str, f64)>,
}

impl Planned {
    /// The configuration of each planned tensor (`cfg` for all without an allocation).
    pub fn configs(&self, plan: &Plan, cfg: Config) -> Vec<Config> {
        match &self.allocation {
            Some(a) => a.configs(),
            None => vec![cfg; plan.compress.len()],
        }
    }

    /// The metadata records the packed output carries.
    pub fn records(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let allocation = self
            .allocation
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        Ok(crate::io::model_job::records(
            self.calibration.as_deref(),
            allocation.as_deref(),
        ))
    }

    /// The allocation's table, one line per tensor (`None` without `--target-bpw`).
    pub fn allocation_table(&self) -> Option<String> {
        self.allocation.as_ref().map(allocation_table)
    }

    /// The phases' wall times in one line.
    pub fn phases_text(&self) -> String {
        self.phases
            .iter()
            .map(|(name, s)| format!("{name} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a plan step measures on: the input at its path, the tensors to compress, the encoder's
/// rounding and the worker threads.
#[derive(Clone, Copy)]
pub struct PlanInput<'a> {
    /// The input's path.
    pub input: &'a Path,
    /// The opened input.
    pub model: &'a Model,
    /// The tensors to compress.
    pub plan: &'a Plan,
    /// How the menu samples round.
    pub rounding: Rounding,
    /// The worker threads.
    pub pool: &'a rayon::ThreadPool,
}

/// Runs the plan of `opts` for `on.plan` of `on.model` on `on.pool`: the `--target-bpw`
/// allocation (sensitivities, menu samples, solve) and the `--calibrate` moments. `None` when
/// cancelled.
pub fn make_plan(
    on: &PlanInput<'_>,
    opts: &PlanArgs,
    cancel: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<Option<Planned>> {
    let PlanInput {
        input, model, plan, ..
    } = *on;
    let mut planned = Planned {
        allocation: None,
        moments: HashMap::new(),
        calibration: None,
        phases: Vec::new(),
    };
    if let Some(b) = opts.target_bpw {
        match allocate(on, opts, b, cancel, &mut planned.phases)? {
            Some(a) => planned.allocation = Some(a),
            None => return Ok(None),
        }
    }
    if let Some(text) = &opts.calibrate {
        let started = Instant::now();
        let measured = calibrate(text, |progress| {
            crate::eval::calibration::calibrate_model(input, text, Control::new(progress, cancel))
        })?;
        planned
            .phases
            .push(("calibration", started.elapsed().as_secs_f64()));
        if let Some(c) = measured {
            // The record names the tensors the moments will steer.
            let weighted = plan
                .compress
                .iter()
                .filter(|n| {
                    model
                        .get(n)
                        .is_some_and(|t| moments_of(&c.moments, n, &t.shape).is_some())
                })
                .cloned()
                .collect();
            planned.calibration = Some(c.record(weighted).to_json());
            planned.moments = c.moments;
        }
    }
    Ok((!cancel.load(Ordering::Relaxed)).then_some(planned))
}

/// Where `--target-bpw` takes sensitivities from when no text is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sensitivity {
    /// The model's outputs on random words of its vocabulary (no data).
    Vocabulary,
    /// None: α = 1, the summed relative MSE is minimised.
    None,
}

/// The calibration pass of `--calibrate` on `text`, `measure` run under a progress bar (it
/// counts passes); `None` when cancelled.
pub(super) fn calibrate(
    text: &std::path::Path,
    measure: impl FnOnce(&Progress) -> Result<Calibration, crate::eval::EvalError> + Send,
) -> anyhow::Result<Option<Calibration>> {
    let progress = Progress::default();
    eprintln!("calibrating on {}", text.display());
    match super::watch::watch("passes", &progress.done, &progress.total, |_| {
        measure(&progress)
    }) {
        Ok(c) => Ok(Some(c)),
        Err(crate::eval::EvalError::Cancelled) => Ok(None),
        Err(crate::eval::EvalError::Model(e)) => Err(e.into()),
    }
}

/// Refuses `target` before any work: not a positive number, or below what the cheapest menu
/// entry spends on the planned tensors.
fn check_target(model: &Model, plan: &Plan, target: f64) -> anyhow::Result<()> {
    if !target.is_finite() || target <= 0.0 {
        bail!("--target-bpw must be a positive number of bits per weight, not {target}");
    }
    let sizes = plan
        .compress
        .iter()
        .map(|n| (n.as_str(), model.get(n).map_or(0, |t| t.numel())));
    allocate::check_budget(sizes, target)?;
    Ok(())
}

/// The `--target-bpw` allocation of the planned tensors ([`allocate::run`]), printed as a
/// table; `None` when cancelled. The wall time of each phase is pushed to `phases`.
fn allocate(
    on: &PlanInput<'_>,
    opts: &PlanArgs,
    target: f64,
    cancel: &std::sync::atomic::AtomicBool,
    phases: &mut Vec<(&'static str, f64)>,
) -> anyhow::Result<Option<Allocation>> {
    let PlanInput {
        input,
        model,
        plan,
        rounding,
        pool,
    } = *on;
    check_target(model, plan, target)?;
    let names = &plan.compress;
    let sizes: Vec<usize> = names
        .iter()
        .map(|n| model.get(n).map_or(0, |t| t.numel()))
        .collect();
    let text = match (&opts.sensitivity_text, opts.sensitivity) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the sensitivity text", path.display()))?;
            Some(allocate::Text::File { path, text })
        }
        (None, Sensitivity::Vocabulary) => Some(allocate::Text::Vocabulary),
        (None, Sensitivity::None) => None,
    };
    let from = match &text {
        Some(allocate::Text::File { path, .. }) => path.display().to_string(),
        _ => "random words of its vocabulary (data-free)".to_string(),
    };
    let request = allocate::Request {
        names,
        sizes: &sizes,
        target_bpw: target,
        sensitivity: text.map(|text| allocate::Sensitivity { input, model, text }),
        rounding,
    };
    let mut started = Instant::now();
    let progress = Progress::default();
    let r = super::watch::watch("tensors", &progress.done, &progress.total, |bar| {
        let mut read = allocate::read_from(model, names);
        let mut stage = |s: allocate::Stage<'_>| match s {
            allocate::Stage::DataFree(why) => bar.suspend(|| {
                eprintln!("note: {why}: the allocation weighs every tensor's relative MSE alike")
            }),
            allocate::Stage::Sensitivity => bar.suspend(|| {
                eprintln!(
                    "measuring the sensitivity of {} tensors on {from}",
                    names.len()
                )
            }),
            allocate::Stage::Menu { blocks } => {
                phases.push(("sensitivity", started.elapsed().as_secs_f64()));
                started = Instant::now();
                super::watch::restart(bar, "blocks");
                bar.suspend(|| {
                    eprintln!(
                        "measuring {} configurations on a sample of each tensor ({blocks} blocks)",
                        MENU.len()
                    )
                });
            }
            allocate::Stage::Tensor(n) => bar.set_message(n.to_string()),
        };
        pool.install(|| {
            allocate::run(
                request,
                &mut read,
                Control::new(&progress, cancel),
                &mut stage,
            )
        })
    });
    let a = match r {
        Ok(a) => a,
        Err(allocate::AllocateError::Eval(crate::eval::EvalError::Cancelled)) => return Ok(None),
        Err(allocate::AllocateError::Eval(crate::eval::EvalError::Model(e))) => {
            return Err(e.into());
        }
        Err(allocate::AllocateError::Read(e)) => return Err(e.into()),
        Err(allocate::AllocateError::Tensor { index, error, .. }) => {
            let t = model.get(&names[index]).context("a planned tensor")?;
            match tensor_error(model, t, error) {
                JobError::Cancelled => return Ok(None),
                JobError::Model(e) => return Err(e.into()),
            }
        }
        Err(allocate::AllocateError::Budget(e)) => return Err(e.into()),
    };
    phases.push(("menu samples", started.elapsed().as_secs_f64()));
    Ok(Some(a))
}

/// One line per tensor of an allocation: its configuration, bits and predictions.
fn allocation_table(a: &Allocation) -> String {
    let names: Vec<String> = a
        .tensors
        .iter()
        .map(|c| abbreviate(&c.tensor, MAX_SHOWN))
        .collect();
    let nw = column_width(&names, 6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<nw$}  {:>9}  {:>6}  {:>11}  {:>12}",
        "tensor", "C,P,K", "bits", "sample MSE", "pred. effect"
    );
    for (c, name) in a.tensors.iter().zip(&names) {
        let cfg = format!("{},{},{}", c.config.c, c.config.p, c.config.k);
        let _ = writeln!(
            out,
            "{name:<nw$}  {cfg:>9}  {:>6.3}  {:>11.3e}  {:>12.3e}",
            c.bits_per_weight, c.sample_relmse, c.predicted_effect
        );
    }
    let _ = writeln!(
        out,
        "allocation  {:.4} bits/weight (target {}), predicted effect {:.3e}, α from {}\n",
        a.bits_per_weight,
        a.target_bpw,
        a.predicted_effect(),
        a.sensitivity
    );
    out
}
