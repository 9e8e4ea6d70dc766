//! `seedlm compare`: SeedLM against the data-free baselines on a model's tensors.

use super::stdout::column_width;
use crate::core::control::{Control, Progress};
use crate::eval::{Evaluator, Figures, Inputs};
use crate::io::error::{MAX_SHOWN, ModelError, abbreviate};
use crate::io::model::Model;
use crate::io::selection::Selection;
use crate::search::compress::snr_db;
use crate::study::baselines::Method;
use crate::study::compare::{self, Row};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// Arguments of `seedlm compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Model: a .safetensors file or a model directory.
    pub file: PathBuf,
    /// Compare only tensors whose name matches this regular expression (replaces the default
    /// rule: 2-D float `.weight` tensors that are not embeddings, norms or the LM head).
    #[arg(long)]
    pub include: Option<String>,
    /// Leave out tensors whose name matches this regular expression.
    #[arg(long)]
    pub exclude: Option<String>,
    /// Methods to run, comma-separated (default: all but the larger-P SeedLM presets
    /// seedlm-4bit-p6, seedlm-4bit-p8 and seedlm-3bit-p7). The SeedLM presets run the exact
    /// search and take nearly all of the time.
    #[arg(long, value_delimiter = ',', default_values_t = Method::defaults())]
    pub methods: Vec<Method>,
    /// Print one JSON array of objects (tensor, method, bits_per_weight, relmse, snr_db,
    /// weights); the rows with tensor "total" sum over tensors (and with --eval hold the
    /// function-space figures under "eval").
    #[arg(long)]
    pub json: bool,
    /// Also run the model with each method's reconstruction of the selected tensors (the rest
    /// original) and compare its outputs with the original's (docs/DESIGN.md §4): mean cosine
    /// for encoders, KL for decoder LMs, on the bundled inputs. Needs config.json and
    /// tokenizer.json beside the weights, and memory for one reconstruction per method.
    #[arg(long)]
    pub eval: bool,
    /// Calibrate on this text file, as `compress --calibrate` does (needs config.json and
    /// tokenizer.json beside the weights): each paper preset in --methods gets its calibrated
    /// counterpart (seedlm-4bit-cal, seedlm-3bit-cal) beside it. Never calibrate on the text you
    /// evaluate on.
    #[arg(long, value_name = "TEXT")]
    pub calibrate: Option<PathBuf>,
    /// With --eval, decoder LMs: the text to score (default: the bundled chapters of Pride and
    /// Prejudice). Choose a text like the model's training data.
    #[arg(long, value_name = "FILE", requires = "eval")]
    pub text: Option<PathBuf>,
    /// With --eval, decoder LMs: tokens per window (default: 512, or the model's positions
    /// when fewer).
    #[arg(long, requires = "eval")]
    pub ctx: Option<usize>,
}

/// Runs every method on every selected tensor and prints the rows and totals.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let model = Model::open(&args.file)?;
    let selection = Selection::new(args.include.as_deref(), args.exclude.as_deref())
        .context("invalid --include/--exclude pattern")?;
    let tensors: Vec<_> = model
        .tensors()
        .iter()
        .filter(|t| selection.selects(&t.name, &t.shape, t.dtype))
        .collect();
    if tensors.is_empty() {
        anyhow::bail!("{}: no tensor is selected", args.file.display());
    }
    let methods = match &args.calibrate {
        Some(_) => compare::with_calibrated_twins(&args.methods).ok_or_else(|| {
            anyhow::anyhow!(
                "--calibrate needs seedlm-4bit or seedlm-3bit in --methods: it adds their calibrated twins"
            )
        })?,
        None => {
            compare::check_calibration(&args.methods, false)
                .map_err(|e| anyhow::anyhow!("{e}: add --calibrate TEXT"))?;
            args.methods.clone()
        }
    };
    // Fail before the search when the model cannot be run.
    let evaluator = match args.eval {
        true => Some(Evaluator::open_model(&args.file)?),
        false => None,
    };
    let cancel = super::watch::cancel_on_ctrl_c();
    let moments = match &args.calibrate {
        Some(text) => {
            // The evaluator of --eval serves both: one copy of the weights in memory.
            let opened;
            let ev = match &evaluator {
                Some(ev) => ev,
                None => {
                    opened = Evaluator::open_model(&args.file)?;
                    &opened
                }
            };
            let measured = super::plan_step::calibrate(text, |progress| {
                crate::eval::calibration::calibrate(ev, text, Control::new(progress, &cancel))
            })?;
            match measured {
                Some(c) if !cancel.load(Ordering::Relaxed) => c.moments,
                _ => {
                    eprintln!("cancelled");
                    return Ok(ExitCode::from(130));
                }
            }
        }
        None => Default::default(),
    };
    let compared: Vec<compare::Tensor> = tensors
        .iter()
        .map(|t| compare::Tensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
        })
        .collect();
    let inputs = Inputs {
        text: match &args.text {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read the text", p.display()))?,
            ),
            None => None,
        },
        ctx: args.ctx,
        ..Default::default()
    };
    let request = compare::Request {
        tensors: &compared,
        methods: &methods,
        moments: &moments,
        function: evaluator.as_ref().map(|ev| compare::FunctionSpace {
            evaluator: ev,
            source: &args.file,
            inputs,
            extra: Vec::new(),
        }),
    };
    let progress = Progress::default();
    let outcome = super::watch::watch("blocks", &progress.done, &progress.total, |bar| {
        let mut read = |i: usize| model.to_f32(tensors[i]);
        let mut stage = |s: compare::Stage| {
            if s == compare::Stage::Model {
                super::watch::restart(bar, "batches");
            }
        };
        compare::run(
            request,
            &mut read,
            Control::new(&progress, &cancel),
            &mut stage,
        )
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(compare::CompareError::Read(e)) => return Err(e.into()),
        Err(compare::CompareError::Tensor { index, name, error }) => {
            let file = model.file_of(tensors[index]);
            return Err(ModelError::tensor(file, &name, error.to_string()).into());
        }
        Err(compare::CompareError::Eval(e)) => return Err(e.into()),
    };
    let rows = outcome.rows;
    let function: Vec<(Method, Figures)> = methods.iter().copied().zip(outcome.function).collect();
    let text = if args.json {
        let mut json = to_json(&rows);
        for obj in json.as_array_mut().into_iter().flatten() {
            let found = function
                .iter()
                .find(|(m, _)| obj["tensor"] == compare::TOTAL && obj["method"] == m.name());
            if let Some((_, f)) = found {
                obj["eval"] = serde_json::to_value(f)?;
            }
        }
        serde_json::to_string_pretty(&json)? + "\n"
    } else {
        table(&rows) + &function_table(&function)
    };
    super::stdout::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The rows as JSON objects.
fn to_json(rows: &[Row]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            serde_json::json!({
                "tensor": r.tensor,
                "method": r.method.name(),
                "bits_per_weight": r.measured.bits_per_weight(),
                "relmse": r.measured.relmse(),
                "snr_db": snr_db(r.measured.relmse()),
                "weights": r.measured.len,
            })
        })
        .collect()
}

/// The function-space figures per method, as a text table (empty without them).
fn function_table(function: &[(Method, Figures)]) -> String {
    let Some((_, first)) = function.first() else {
        return String::new();
    };
    if let Figures::Decoder(d) = first
        && let Some(w) = d.misfit()
    {
        eprintln!("warning: {w}");
    }
    let candidates: Vec<(&str, &Figures)> = function.iter().map(|(m, f)| (m.name(), f)).collect();
    String::from("\nfunction space (the selected tensors compressed, the rest original)\n")
        + &crate::eval::figures_table("method", &candidates)
}

/// The rows as a text table, one line per tensor and method.
fn table(rows: &[Row]) -> String {
    let names: Vec<String> = rows
        .iter()
        .map(|r| abbreviate(&r.tensor, MAX_SHOWN))
        .collect();
    let width = column_width(&names, 6);
    let mut s = format!(
        "{:<width$}  {:<15} {:>7} {:>10} {:>7}\n",
        "tensor", "method", "bits/w", "relMSE", "SNR dB"
    );
    for (r, name) in rows.iter().zip(&names) {
        s += &format!(
            "{:<width$}  {:<15} {:>7.3} {:>10.5} {:>7.2}\n",
            name,
            r.method.name(),
            r.measured.bits_per_weight(),
            r.measured.relmse(),
            snr_db(r.measured.relmse())
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::baselines::Measured;

    fn row(tensor: &str) -> Row {
        Row {
            tensor: tensor.into(),
            method: Method::Nf4G64,
            measured: Measured {
                sq_err: 1.0,
                sq_norm: 100.0,
                bits: 17,
                len: 4,
            },
        }
    }

    #[test]
    fn json_has_the_documented_keys() {
        let v = to_json(&[row("layer.weight"), row("total")]);
        let a = v.as_array().unwrap();
        assert_eq!(a[0]["tensor"], "layer.weight");
        assert_eq!(a[0]["method"], "nf4-g64");
        assert_eq!(a[0]["bits_per_weight"], 4.25);
        assert_eq!(a[0]["relmse"], 0.01);
        assert_eq!(a[1]["tensor"], "total");
    }

    #[test]
    fn table_has_a_line_per_row() {
        let t = table(&[row("a.weight"), row("total")]);
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("a.weight") && lines[1].contains("4.250"));
        assert!(lines[2].contains("0.01000") && lines[2].contains("20.00"));
    }

    #[test]
    fn huge_tensor_names_do_not_break_the_table() {
        let long = "w".repeat(70_000);
        let t = table(&[row(&long)]);
        assert!(t.len() < 1000 && t.contains("(70000 bytes)"), "{}", t.len());
    }
}
