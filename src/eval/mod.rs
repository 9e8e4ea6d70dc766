//! Function-space evaluation (docs/DESIGN.md §4): run the original and a compressed model on the same
//! input and compare their outputs — sentence embeddings for BERT-family encoders, next-token
//! distributions for decoder LMs (`llama`, `mistral`, `qwen2`).
//!
//! Both families run on the inference engine ([`crate::infer`]) from the weights as stored: the
//! original's memory-mapped tensors in any float dtype, a candidate's changed tensors from its
//! file (a packed file runs from its records) or from values held in memory, tensors missing from
//! the candidate taken from the original. Tokenization uses each model's `tokenizer.json`
//! through the `tokenizers` crate.
//!
//! May use: [`crate::core`], [`crate::search`], [`crate::io`] and [`crate::infer`]. Knows nothing
//! of the app or CLI.

pub mod calibration;
pub mod decoder;
pub mod divergence;
pub mod encoder;
pub mod weights;

use crate::core::control::Control;
use crate::io::error::ModelError;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use weights::Weights;

/// Why an evaluation stopped.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A model file, config or tokenizer is missing or malformed, or inference failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
}

/// Fails with [`EvalError::Cancelled`] once `cancel` is raised.
pub(crate) fn check(cancel: &AtomicBool) -> Result<(), EvalError> {
    if cancel.load(Ordering::Relaxed) {
        Err(EvalError::Cancelled)
    } else {
        Ok(())
    }
}

/// Turns a candle error into a one-line error naming `path`.
pub(crate) fn candle_err(path: &Path, what: &str) -> impl FnOnce(candle_core::Error) -> EvalError {
    move |e| ModelError::file(path, format!("{what}: {e}")).into()
}

/// Which kind of network a model directory holds, from its `config.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// A BERT-family sentence encoder.
    Encoder,
    /// A decoder-only language model.
    Decoder,
}

/// The architecture named by a `config.json`: its `model_type`, else its first `architectures`
/// entry. Unsupported ones are an error that names them.
pub fn family(config_path: &Path, config: &serde_json::Value) -> Result<Family, ModelError> {
    let model_type = config.get("model_type").and_then(|v| v.as_str());
    let arch = config
        .get("architectures")
        .and_then(|v| v.get(0))
        .and_then(|v| v.as_str());
    let by_arch = arch.map(|a| {
        if a.starts_with("Bert") {
            "bert"
        } else if a.starts_with("Llama") {
            "llama"
        } else if a.starts_with("Mistral") {
            "mistral"
        } else if a.starts_with("Qwen2For") || a == "Qwen2Model" {
            "qwen2"
        } else {
            a
        }
    });
    match model_type.or(by_arch) {
        Some("bert") => Ok(Family::Encoder),
        Some("llama" | "mistral" | "qwen2") => Ok(Family::Decoder),
        other => Err(ModelError::file(
            config_path,
            format!(
                "unsupported architecture '{}'{}: evaluation supports bert, llama, mistral and qwen2",
                other.unwrap_or("(none given)"),
                arch.map(|a| format!(" ({a})")).unwrap_or_default()
            ),
        )),
    }
}

/// Reads and parses a JSON file of a model directory.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, "cannot read", e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::file(path, format!("not valid JSON ({e})")))
}

/// The directory of the model `path` (a model directory, or a weights file in one) belongs
/// to, or a plain error when it lacks config.json or tokenizer.json, which running it needs.
pub fn model_dir(path: &Path) -> Result<&Path, ModelError> {
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    for (file, what) in [
        ("config.json", "its architecture"),
        ("tokenizer.json", "its tokenizer"),
    ] {
        if !dir.join(file).is_file() {
            let reason = format!("no {file} beside the weights (evaluation needs {what})");
            return Err(ModelError::file(dir, reason));
        }
    }
    Ok(dir)
}

/// Reads `tokenizer.json`, with no padding and no truncation of its own.
pub(crate) fn read_tokenizer(dir: &Path) -> Result<tokenizers::Tokenizer, ModelError> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Err(ModelError::file(
            dir,
            "no tokenizer.json in this directory (needed to evaluate)",
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ModelError::io(&path, "cannot read the tokenizer", e))?;
    // Parsed as JSON first: the tokenizers crate panics on some syntax errors (a control
    // character in a decoder's string), and read from the value under catch_unwind for the
    // `expect`s it keeps on well-formed JSON of the wrong shape.
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::file(&path, format!("not valid JSON ({e})")))?;
    let mut tok = quiet_catch_unwind(|| serde_json::from_value::<tokenizers::Tokenizer>(value))
        .map_err(|_| ModelError::file(&path, "not a usable tokenizer (its reader gave up)"))?
        .map_err(|e| ModelError::file(&path, format!("not a usable tokenizer ({e})")))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| ModelError::file(&path, format!("cannot disable truncation ({e})")))?;
    Ok(tok)
}

/// Runs `f`, turning a panic into `Err` without the panic message (a third-party reader's
/// panic on a user's file is reported as that file's error instead).
fn quiet_catch_unwind<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out
}

/// The paragraphs of `text` (runs of non-blank lines, joined by spaces).
pub fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim).chain([""]) {
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(cur.join(" "));
                cur.clear();
            }
        } else {
            cur.push(line);
        }
    }
    out
}

/// Tensor replacements held in memory: (name, row-major values), see [`Weights::overlay`].
pub type Overlay = Vec<(String, Vec<f32>)>;

/// An original model opened for evaluation: its network description, tokenizer and weights.
pub enum Evaluator {
    /// A sentence encoder.
    Encoder(encoder::Encoder),
    /// A decoder LM.
    Decoder(decoder::Decoder),
}

/// What to feed the model.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Encoders: the sentences (default: the bundled set).
    pub sentences: Option<Vec<String>>,
    /// Decoders: the text (default: the bundled text).
    pub text: Option<String>,
    /// Decoders: tokens per window (docs/DESIGN.md §4); by default [`DEFAULT_CTX`], at most
    /// the model's positions.
    pub ctx: Option<usize>,
    /// Decoders: use at most this many tokens of the text (all when `None`).
    pub max_tokens: Option<usize>,
}

/// The bundled default inputs.
pub const DEFAULT_SENTENCES: &str = include_str!("../../assets/eval/sentences.txt");
/// The bundled default text (public domain; see assets/README.md).
pub const DEFAULT_TEXT: &str = include_str!("../../assets/eval/pride-and-prejudice.txt");
/// Default decoder window (docs/DESIGN.md §4).
pub const DEFAULT_CTX: usize = 512;

/// Model-level figures of one candidate against the original.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Figures {
    /// Encoder figures.
    Encoder(encoder::EncoderFigures),
    /// Decoder figures.
    Decoder(decoder::DecoderFigures),
}

/// The function-space effect of compressing one tensor alone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorEffect {
    /// Tensor name.
    pub tensor: String,
    /// Weight-space relative MSE of that tensor (docs/DESIGN.md §1).
    pub relmse: f64,
    /// Decoders: KL(original ‖ this variant), which is also its change from the original's 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_kl: Option<f64>,
    /// Encoders: mean cosine of this variant minus 1 (the original against itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_mean_cosine: Option<f64>,
    /// The variant's full figures.
    pub figures: Figures,
}

impl Evaluator {
    /// Opens the model directory `dir` (config.json, tokenizer.json, weights).
    pub fn open(dir: &Path) -> Result<Self, EvalError> {
        if !dir.is_dir() {
            return Err(ModelError::file(
                dir,
                "the original must be a model directory (config.json, tokenizer.json, weights)",
            )
            .into());
        }
        let config_path = dir.join("config.json");
        let config = read_json(&config_path)?;
        match family(&config_path, &config)? {
            Family::Encoder => Ok(Evaluator::Encoder(encoder::Encoder::open(dir, &config)?)),
            Family::Decoder => Ok(Evaluator::Decoder(decoder::Decoder::open(dir, &config)?)),
        }
    }

    /// Opens the model that `path` (a model directory, or a weights file in one) belongs to,
    /// saying plainly when its directory lacks config.json or tokenizer.json.
    pub fn open_model(path: &Path) -> Result<Self, EvalError> {
        Self::open(model_dir(path)?)
    }

    /// The original's weights.
    pub fn weights(&self) -> &Weights {
        match self {
            Evaluator::Encoder(e) => e.weights(),
            Evaluator::Decoder(d) => d.weights(),
        }
    }

    /// Which kind of network this is.
    pub fn family(&self) -> Family {
        match self {
            Evaluator::Encoder(_) => Family::Encoder,
            Evaluator::Decoder(_) => Family::Decoder,
        }
    }

    /// The directory it was opened from.
    pub fn dir(&self) -> &Path {
        match self {
            Evaluator::Encoder(e) => &e.dir,
            Evaluator::Decoder(d) => &d.dir,
        }
    }

    /// Calibration statistics for an activation-weighted compression: the second moment E[x_j²]
    /// of each input channel of every linear layer, by weight tensor name, measured on `text`
    /// (`source` names it in errors). Encoders embed its paragraphs (blank-line separated, each
    /// truncated as the tokenizer truncates); `ctl.progress` counts batches. Decoders read it as one
    /// token stream in windows of [`DEFAULT_CTX`], every position counted; `ctl.progress` counts
    /// windows.
    pub fn input_moments(
        &self,
        source: &Path,
        text: &str,
        ctl: Control<'_>,
    ) -> Result<HashMap<String, Vec<f64>>, EvalError> {
        match self {
            Evaluator::Encoder(e) => {
                let paragraphs = paragraphs(text);
                if paragraphs.is_empty() {
                    return Err(ModelError::file(source, "calibration text is empty").into());
                }
                e.input_moments(&paragraphs, ctl)
            }
            Evaluator::Decoder(d) => {
                let tokens = d.tokenize(text)?;
                if tokens.len() < 2 {
                    return Err(ModelError::file(
                        source,
                        "calibration text has fewer than 2 tokens",
                    )
                    .into());
                }
                d.input_moments(&tokens, None, ctl)
            }
        }
    }

    /// Compares the original with each of `variants` (complete weight sets, e.g. from
    /// [`Weights::overlay`] or [`Weights::candidate`]) on `inputs`. `ctl.progress` counts batches or windows times networks run;
    /// raising `ctl.cancel` stops within about one layer of one batch.
    pub fn compare(
        &self,
        variants: &[Weights],
        inputs: &Inputs,
        ctl: Control<'_>,
    ) -> Result<Vec<Figures>, EvalError> {
        match self {
            Evaluator::Encoder(e) => {
                let sentences = match &inputs.sentences {
                    Some(s) => s.clone(),
                    None => encoder::parse_sentences(DEFAULT_SENTENCES),
                };
                Ok(e.compare(variants, &sentences, ctl)?
                    .into_iter()
                    .map(Figures::Encoder)
                    .collect())
            }
            Evaluator::Decoder(d) => {
                let text = inputs.text.as_deref().unwrap_or(DEFAULT_TEXT);
                let mut tokens = d.tokenize(text)?;
                if let Some(m) = inputs.max_tokens {
                    tokens.truncate(m);
                }
                Ok(d.compare(variants, &tokens, inputs.ctx, ctl)?
                    .into_iter()
                    .map(Figures::Decoder)
                    .collect())
            }
        }
    }

    /// The figures of each candidate of `overlays` (tensor replacements laid over the original
    /// with [`Weights::overlay`]; `source` names them in errors), from one pass over the inputs.
    pub fn compare_overlays(
        &self,
        source: &Path,
        overlays: Vec<Overlay>,
        inputs: &Inputs,
        ctl: Control<'_>,
    ) -> Result<Vec<Figures>, EvalError> {
        let variants = overlays
            .into_iter()
            .map(|o| self.weights().overlay(source, o.into_iter().map(Ok)))
            .collect::<Result<Vec<_>, _>>()?;
        self.compare(&variants, inputs, ctl)
    }

    /// Model-level figures of `candidate`, and with `per_tensor` also the effect of each changed
    /// tensor applied alone, all from one pass over the inputs.
    pub fn evaluate(
        &self,
        candidate: &Weights,
        per_tensor: bool,
        inputs: &Inputs,
        ctl: Control<'_>,
    ) -> Result<(Figures, Vec<TensorEffect>), EvalError> {
        let changed = if per_tensor {
            candidate.changed().to_vec()
        } else {
            Vec::new()
        };
        let groups: Vec<Vec<&str>> = changed.iter().map(|c| vec![c.name.as_str()]).collect();
        let (figures, rest) = self.sensitivity(candidate, &groups, inputs, ctl)?;
        let effects = changed
            .iter()
            .zip(rest)
            .map(|(c, figures)| TensorEffect {
                tensor: c.name.clone(),
                relmse: c.relmse,
                delta_kl: figures.delta_kl(),
                delta_mean_cosine: figures.delta_mean_cosine(),
                figures,
            })
            .collect();
        Ok((figures, effects))
    }

    /// Model-level figures of `candidate`, then those of the original with only each group of
    /// tensors taken from `candidate`, all from one pass over the inputs.
    pub fn sensitivity(
        &self,
        candidate: &Weights,
        groups: &[Vec<&str>],
        inputs: &Inputs,
        ctl: Control<'_>,
    ) -> Result<(Figures, Vec<Figures>), EvalError> {
        let original = self.weights();
        let mut variants = vec![candidate.clone()];
        for g in groups {
            variants.push(original.with_tensors_from(candidate, g));
        }
        let mut figures = self.compare(&variants, inputs, ctl)?;
        let rest = figures.split_off(1);
        Ok((figures.remove(0), rest))
    }
}

/// One model-level figure as the front ends show it: name, what it means, and its value
/// formatted once, for the CLI's report and the Quality tab alike.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// Short name, lower case ("mean cosine").
    pub name: &'static str,
    /// What it measures, in one sentence.
    pub hint: &'static str,
    /// The value, at the precision it is shown with.
    pub value: String,
}

impl Figures {
    /// Every figure in display order, the input counts first.
    pub fn rows(&self) -> Vec<Figure> {
        let row = |name, hint, value| Figure { name, hint, value };
        match self {
            Figures::Encoder(f) => vec![
                row(
                    "sentences",
                    "Embedded by each model",
                    f.sentences.to_string(),
                ),
                row(
                    "mean cosine",
                    "Mean over sentences of cos(original embedding, compressed embedding)",
                    format!("{:.6}", f.mean_cosine),
                ),
                row(
                    "min cosine",
                    "The least similar sentence",
                    format!("{:.6}", f.min_cosine),
                ),
                row(
                    "similarity Spearman",
                    "Rank correlation of the two pairwise similarity matrices: does the \
                     compressed model still rank sentence pairs alike?",
                    f.similarity_spearman
                        .map_or("undefined".into(), |r| format!("{r:.6}")),
                ),
            ],
            Figures::Decoder(f) => vec![
                row(
                    "tokens",
                    "Scored in windows, every token after a window's first",
                    format!("{} ({} scored, windows of {})", f.tokens, f.scored, f.ctx),
                ),
                row(
                    "perplexity original",
                    "exp(mean negative log-likelihood) of the text, original model",
                    format!("{:.4}", f.ppl_original),
                ),
                row(
                    "perplexity candidate",
                    "exp(mean negative log-likelihood) of the text, compressed model",
                    format!("{:.4}", f.ppl_candidate),
                ),
                row(
                    "KL (nats)",
                    "Mean over positions of KL(p_original ‖ p_compressed)",
                    format!("{:.6}", f.kl),
                ),
                row(
                    "top-1 agreement",
                    "Positions where both models predict the same next token",
                    format!("{:.4}", f.top1),
                ),
            ],
        }
    }

    /// The figures a comparison of candidates shows, one column each: its heading and the
    /// value as [`Figures::rows`] formats it.
    pub fn columns(&self) -> Vec<(&'static str, String)> {
        let shown: [(&str, &str); 3] = match self {
            Figures::Encoder(_) => [
                ("mean cos", "mean cosine"),
                ("min cos", "min cosine"),
                ("Spearman", "similarity Spearman"),
            ],
            Figures::Decoder(_) => [
                ("KL (nats)", "KL (nats)"),
                ("top-1", "top-1 agreement"),
                ("ppl", "perplexity candidate"),
            ],
        };
        let rows = self.rows();
        shown
            .into_iter()
            .filter_map(|(heading, name)| {
                let row = rows.iter().find(|r| r.name == name)?;
                Some((heading, row.value.clone()))
            })
            .collect()
    }

    /// Decoders: KL(original ‖ candidate), which is also its change from the original's 0.
    pub fn delta_kl(&self) -> Option<f64> {
        match self {
            Figures::Decoder(d) => Some(d.kl),
            Figures::Encoder(_) => None,
        }
    }

    /// Encoders: mean cosine minus 1 (the original against itself).
    pub fn delta_mean_cosine(&self) -> Option<f64> {
        match self {
            Figures::Encoder(e) => Some(e.mean_cosine - 1.0),
            Figures::Decoder(_) => None,
        }
    }

    /// The one figure that says how far the candidate's outputs moved: Δ mean cosine for
    /// encoders, KL for decoders.
    pub fn effect(&self) -> f64 {
        match self {
            Figures::Decoder(d) => d.kl,
            Figures::Encoder(e) => e.mean_cosine - 1.0,
        }
    }
}

/// Candidates' figures as a text table: a line per candidate, named in a first column headed
/// `label`, then [`Figures::columns`] (those of the first candidate's family).
pub fn figures_table(label: &str, candidates: &[(&str, &Figures)]) -> String {
    let Some((_, first)) = candidates.first() else {
        return String::new();
    };
    let line = |name: &str, cells: &[&str]| {
        let mut s = format!("{name:<15}");
        for (i, cell) in cells.iter().enumerate() {
            let width = if i == 0 { 11 } else { 10 };
            s += &format!(" {cell:>width$}");
        }
        s + "\n"
    };
    let headings: Vec<&str> = first.columns().iter().map(|(h, _)| *h).collect();
    let mut s = line(label, &headings);
    for (name, figures) in candidates {
        let columns = figures.columns();
        let cells: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
        s += &line(name, &cells);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder's figures with every value distinct.
    fn decoder_figures() -> Figures {
        Figures::Decoder(decoder::DecoderFigures {
            ppl_original: 10.0,
            ppl_candidate: 12.5,
            kl: 0.25,
            top1: 0.8,
            tokens: 100,
            scored: 98,
            ctx: 50,
            vocab: 300,
        })
    }

    #[test]
    fn rows_name_every_figure_once_counts_first() {
        let e = Figures::Encoder(encoder::EncoderFigures {
            mean_cosine: 0.97,
            min_cosine: 0.9,
            similarity_spearman: None,
            sentences: 50,
        });
        let rows = e.rows();
        let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "sentences",
                "mean cosine",
                "min cosine",
                "similarity Spearman"
            ]
        );
        assert_eq!(rows[1].value, "0.970000");
        assert_eq!(rows[3].value, "undefined");
        let d = decoder_figures();
        let rows = d.rows();
        assert_eq!(rows[0].value, "100 (98 scored, windows of 50)");
        assert_eq!(rows[2].name, "perplexity candidate");
        assert_eq!(rows[2].value, "12.5000");
        assert_eq!(rows.len(), 5);
    }

    #[test]
    fn figures_table_has_a_line_per_candidate_with_the_rows_values() {
        let e = |mean_cosine| {
            Figures::Encoder(encoder::EncoderFigures {
                mean_cosine,
                min_cosine: 0.5,
                similarity_spearman: None,
                sentences: 50,
            })
        };
        let (a, b) = (e(0.97), e(0.875));
        let t = figures_table("method", &[("a", &a), ("b", &b)]);
        assert_eq!(
            t,
            "method             mean cos    min cos   Spearman\n\
             a                  0.970000   0.500000  undefined\n\
             b                  0.875000   0.500000  undefined\n"
        );
        let d = decoder_figures();
        let t = figures_table("method", &[("seedlm-3bit", &d)]);
        assert_eq!(
            t.lines().collect::<Vec<_>>(),
            [
                "method            KL (nats)      top-1        ppl",
                "seedlm-3bit        0.250000     0.8000    12.5000"
            ]
        );
        assert_eq!(figures_table("method", &[]), "");
    }

    #[test]
    fn paragraphs_join_lines_and_skip_blanks() {
        assert_eq!(paragraphs("a\nb\n\n\n c \n"), vec!["a b", "c"]);
        assert!(paragraphs(" \n\n").is_empty());
    }
}
