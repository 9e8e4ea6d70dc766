//! `seedlm eval`: the original and a candidate model compared by their outputs (docs/DESIGN.md §4).

use crate::core::control::{Control, Progress};
use crate::eval::encoder::parse_sentences;
use crate::eval::{EvalError, Evaluator, Family, Figures, Inputs, TensorEffect};
use anyhow::{Context, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `seedlm eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The original model directory (config.json, tokenizer.json, weights).
    pub original: PathBuf,
    /// The candidate: a packed file or directory (decoded in memory), or a plain safetensors
    /// file or directory. Tensors it lacks are taken from ORIGINAL.
    pub candidate: PathBuf,
    /// Encoders: sentences to embed, one per line (default: the bundled set of 50).
    #[arg(long, value_name = "FILE")]
    pub sentences: Option<PathBuf>,
    /// Decoder LMs: text to score (default: the bundled chapters of Pride and Prejudice).
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Decoder LMs: tokens per window, at most the model's max_position_embeddings (default:
    /// 512, or the model's positions when fewer).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Decoder LMs: score only the first N tokens of the text.
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also measure each changed tensor applied alone (one more network run per tensor) and
    /// list its effect beside its weight-space relative MSE.
    #[arg(long)]
    pub per_layer: bool,
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the {what}", path.display()))
}

/// Runs `seedlm eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("cannot start worker threads")?;
    let inputs = Inputs {
        sentences: match &args.sentences {
            Some(p) => Some(parse_sentences(&read(p, "sentences")?)),
            None => None,
        },
        text: match &args.text {
            Some(p) => Some(read(p, "text")?),
            None => None,
        },
        ctx: args.ctx,
        max_tokens: args.max_tokens,
    };
    let cancel = super::watch::cancel_on_ctrl_c();
    eprintln!(
        "loading {} and {}",
        args.original.display(),
        args.candidate.display()
    );
    let (evaluator, candidate) = pool.install(|| -> anyhow::Result<_> {
        let evaluator = Evaluator::open(&args.original)?;
        let candidate = evaluator.weights().candidate(&args.candidate)?;
        Ok((evaluator, candidate))
    })?;
    let changed = candidate.changed().len();
    eprintln!("{} tensors differ from the original; Ctrl-C stops", changed);
    let progress = Progress::default();
    let unit = match evaluator.family() {
        Family::Encoder => "batches",
        Family::Decoder => "windows",
    };
    let result = super::watch::watch(unit, &progress.done, &progress.total, |_| {
        pool.install(|| {
            evaluator.evaluate(
                &candidate,
                args.per_layer,
                &inputs,
                Control::new(&progress, &cancel),
            )
        })
    });
    let (figures, effects) = match result {
        Ok(r) => r,
        Err(EvalError::Cancelled) => {
            eprintln!("cancelled");
            return Ok(ExitCode::from(130));
        }
        Err(EvalError::Model(e)) => return Err(e.into()),
    };
    if let Figures::Decoder(f) = &figures
        && let Some(w) = f.misfit()
    {
        eprintln!("warning: {w}");
    }
    let text = if args.json {
        let mut obj = serde_json::to_value(&figures)?;
        obj["changed_tensors"] = changed.into();
        if args.per_layer {
            obj["per_layer"] = serde_json::to_value(&effects)?;
        }
        serde_json::to_string_pretty(&obj)? + "\n"
    } else {
        report(&figures, changed, &effects, args.per_layer)
    };
    super::stdout::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn report(figures: &Figures, changed: usize, effects: &[TensorEffect], per_layer: bool) -> String {
    let mut out = String::new();
    for f in figures.rows() {
        out += &format!("{:<21}{}\n", f.name, f.value);
    }
    out += &format!("changed tensors      {changed}\n");
    if per_layer {
        let w = effects
            .iter()
            .map(|e| e.tensor.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let effect = match figures {
            Figures::Encoder(_) => "Δ mean cosine",
            Figures::Decoder(_) => "Δ KL (nats)",
        };
        out += &format!("\n{:<w$}  {:>10}  {:>14}\n", "tensor", "rel. MSE", effect);
        for e in effects {
            let d = e.figures.effect();
            out += &format!("{:<w$}  {:>10.3e}  {:>14.3e}\n", e.tensor, e.relmse, d);
        }
    }
    out
}
