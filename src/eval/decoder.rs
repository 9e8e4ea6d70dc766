//! Decoder LMs of the Llama family (`llama`, `mistral`, `qwen2`): RMSNorm, rotary embeddings
//! (plain or Llama 3 scaled), grouped-query causal attention (with Mistral's sliding window),
//! SwiGLU MLP, tied or untied head. Written on candle ops rather than taken from
//! candle-transformers, whose Llama and Mistral return only the last position's logits: the
//! protocol of docs/DESIGN.md §4 scores every position of a window in one pass.

use super::weights::Weights;
use super::{DEFAULT_CTX, EvalError, candle_err, check, read_tokenizer};
use crate::core::control::Control;
use crate::infer::kernel::Kernel;
use crate::infer::llama::{Net, Shape, parse_shape};
use crate::infer::source::Source;
use crate::io::error::ModelError;
use candle_core::{D, Device, Tensor};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Model-level figures of one decoder candidate against the original (docs/DESIGN.md §4).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecoderFigures {
    /// exp(mean NLL) of the original over the scored positions.
    pub ppl_original: f64,
    /// exp(mean NLL) of the candidate.
    pub ppl_candidate: f64,
    /// Mean over scored positions of KL(p_original ‖ p_candidate), in nats.
    pub kl: f64,
    /// Fraction of scored positions where both argmax tokens agree.
    pub top1: f64,
    /// Tokens of text evaluated.
    pub tokens: usize,
    /// Positions scored (tokens 2…n of each window).
    pub scored: usize,
    /// Window length.
    pub ctx: usize,
    /// Tokens in the model's vocabulary.
    pub vocab: usize,
}

impl DecoderFigures {
    /// A warning when the original's perplexity is at least half the vocabulary, near or above
    /// a uniform guess: the text does not fit the model, and a compressed copy can then even
    /// score "better", so the figures say little.
    pub fn misfit(&self) -> Option<String> {
        (self.ppl_original >= self.vocab as f64 / 2.0).then(|| {
            format!(
                "the original's perplexity {:.0} is near or above a uniform guess over its {} tokens: the text does not fit the model, so these figures say little; score a text like its training data",
                self.ppl_original, self.vocab
            )
        })
    }
}

/// A decoder LM opened for evaluation.
pub struct Decoder {
    pub(crate) dir: PathBuf,
    shape: Shape,
    tokenizer: tokenizers::Tokenizer,
    pub(crate) weights: Weights,
}

/// Per-window outputs of the original that every variant is compared with.
struct Reference {
    logp: Tensor,
    argmax: Vec<u32>,
}

/// Log-probabilities `[n − 1, vocab]` of the scored positions, and the NLL of each next token.
fn log_probs(logits: &Tensor, window: &[u32]) -> candle_core::Result<(Tensor, Vec<f32>)> {
    let n = window.len();
    let logp = candle_nn::ops::log_softmax(&logits.narrow(0, 0, n - 1)?, D::Minus1)?;
    let next = Tensor::from_slice(&window[1..], (n - 1, 1), &Device::Cpu)?;
    let nll = logp.gather(&next, 1)?.squeeze(1)?.neg()?.to_vec1()?;
    Ok((logp, nll))
}

impl Decoder {
    /// The original's weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Opens the decoder LM in `dir` whose parsed `config.json` is `config`.
    pub fn open(dir: &Path, config: &Value) -> Result<Self, EvalError> {
        let shape = parse_shape(&dir.join("config.json"), config)?;
        let decoder = Decoder {
            dir: dir.to_path_buf(),
            tokenizer: read_tokenizer(dir)?,
            weights: Weights::open(dir)?,
            shape,
        };
        decoder.net(&decoder.weights)?;
        Ok(decoder)
    }

    /// The network over `weights`.
    fn net<'w>(&self, weights: &'w Weights) -> Result<Net<'w>, EvalError> {
        check_layers(&self.dir, &self.shape, weights)?;
        Net::load(&self.shape, weights, Kernel::best_available()).map_err(|e| {
            ModelError::file(
                &self.dir,
                format!("the weights do not fit config.json: {e}"),
            )
            .into()
        })
    }

    /// The whole text tokenized once, no special tokens added (docs/DESIGN.md §4).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EvalError> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| {
            ModelError::file(
                &self.dir.join("tokenizer.json"),
                format!("cannot tokenize: {e}"),
            )
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// The window length: `ctx`, or by default [`DEFAULT_CTX`] cut to the positions the model
    /// was trained for. A window asked for beyond them is refused: the network has learned
    /// nothing there, and its figures would be noise.
    pub fn window(&self, ctx: Option<usize>) -> Result<usize, EvalError> {
        let Some(ctx) = ctx else {
            return Ok(DEFAULT_CTX.min(self.shape.max_positions.unwrap_or(usize::MAX)));
        };
        if ctx < 2 {
            return Err(
                ModelError::file(&self.dir, "the window (ctx) must be at least 2 tokens").into(),
            );
        }
        if let Some(max) = self.shape.max_positions.filter(|&m| ctx > m) {
            return Err(ModelError::file(
                &self.dir.join("config.json"),
                format!(
                    "a window of {ctx} tokens is longer than the {max} positions the model was trained for (max_position_embeddings); choose a shorter ctx"
                ),
            )
            .into());
        }
        Ok(ctx)
    }

    /// `tokens` cut into windows of `ctx` (a last one of fewer than 2 tokens dropped), after
    /// checking that there is one and that every id is in the vocabulary.
    fn windows<'t>(&self, tokens: &'t [u32], ctx: usize) -> Result<Vec<&'t [u32]>, EvalError> {
        let windows: Vec<&[u32]> = tokens.chunks(ctx).filter(|w| w.len() >= 2).collect();
        if windows.is_empty() {
            return Err(ModelError::file(&self.dir, "the text has fewer than 2 tokens").into());
        }
        check_vocab(&self.dir, tokens, self.shape.vocab)?;
        Ok(windows)
    }

    /// The second moment E[x_j²] of each input channel j of every linear layer, by weight
    /// tensor name, over every position of `tokens` cut into windows of [`Decoder::window`]
    /// `ctx`, with the original weights. Adds one to `progress.done` per window (and sets its
    /// total).
    pub fn input_moments(
        &self,
        tokens: &[u32],
        ctx: Option<usize>,
        ctl: Control<'_>,
    ) -> Result<HashMap<String, Vec<f64>>, EvalError> {
        let windows = self.windows(tokens, self.window(ctx)?)?;
        let fail = |what| candle_err(&self.dir, what);
        let net = self.net(&self.weights)?;
        ctl.progress
            .total
            .store(windows.len() as u64, Ordering::Relaxed);
        let mut sums: HashMap<String, Vec<f64>> = HashMap::new();
        let mut sink = |name: &str, x: &Tensor| -> candle_core::Result<()> {
            let s = x.sqr()?.sum(0)?.to_vec1::<f32>()?;
            let acc = sums.entry(name.to_string()).or_insert(vec![0.0; s.len()]);
            for (a, v) in acc.iter_mut().zip(s) {
                *a += f64::from(v);
            }
            Ok(())
        };
        for w in &windows {
            net.logits(w, ctl.cancel, Some(&mut sink))
                .map_err(fail("calibration forward failed"))?
                .ok_or(EvalError::Cancelled)?;
            ctl.progress.done.fetch_add(1, Ordering::Relaxed);
        }
        let positions = windows.iter().map(|w| w.len()).sum::<usize>() as f64;
        for v in sums.values_mut() {
            v.iter_mut().for_each(|x| *x /= positions);
        }
        Ok(sums)
    }

    /// Log-probabilities `[n, vocab]` of every position of `window` under `weights`.
    pub fn window_log_probs(
        &self,
        weights: &Weights,
        window: &[u32],
        cancel: &AtomicBool,
    ) -> Result<Tensor, EvalError> {
        let logits = self
            .net(weights)?
            .logits(window, cancel, None)
            .map_err(candle_err(&self.dir, "inference failed"))?
            .ok_or(EvalError::Cancelled)?;
        candle_nn::ops::log_softmax(&logits, D::Minus1)
            .map_err(candle_err(&self.dir, "inference failed"))
    }

    /// Compares the original with each variant over `tokens` cut into windows of
    /// [`Decoder::window`] `ctx` (docs/DESIGN.md §4). `ctl.progress` counts windows times networks
    /// run.
    pub fn compare(
        &self,
        variants: &[Weights],
        tokens: &[u32],
        ctx: Option<usize>,
        ctl: Control<'_>,
    ) -> Result<Vec<DecoderFigures>, EvalError> {
        let ctx = self.window(ctx)?;
        let windows = self.windows(tokens, ctx)?;
        let fail = |what| candle_err(&self.dir, what);
        let nets = std::iter::once(&self.weights)
            .chain(variants)
            .map(|w| self.net(w))
            .collect::<Result<Vec<Net>, _>>()?;
        ctl.progress
            .total
            .store((windows.len() * nets.len()) as u64, Ordering::Relaxed);
        let mut nll_orig = 0f64;
        // Per variant: NLL sum, KL sum, agreeing positions.
        let mut sums = vec![(0f64, 0f64, 0usize); variants.len()];
        let mut scored = 0usize;
        let run = |net: &Net, w: &[u32]| -> Result<(Tensor, Vec<f32>), EvalError> {
            check(ctl.cancel)?;
            let logits = net
                .logits(w, ctl.cancel, None)
                .map_err(fail("inference failed"))?
                .ok_or(EvalError::Cancelled)?;
            let out = log_probs(&logits, w).map_err(fail("inference failed"))?;
            ctl.progress.done.fetch_add(1, Ordering::Relaxed);
            Ok(out)
        };
        for w in &windows {
            let (logp, nll) = run(&nets[0], w)?;
            nll_orig += nll.iter().map(|&x| f64::from(x)).sum::<f64>();
            scored += w.len() - 1;
            let reference = Reference {
                argmax: logp
                    .argmax(D::Minus1)
                    .and_then(|t| t.to_vec1())
                    .map_err(fail("inference failed"))?,
                logp,
            };
            for (net, sum) in nets[1..].iter().zip(&mut sums) {
                let (logp, nll) = run(net, w)?;
                let stats = (|| -> candle_core::Result<(f64, usize)> {
                    let diff = (&reference.logp - &logp)?;
                    let kl: Vec<f32> = (reference.logp.exp()? * diff)?.sum(D::Minus1)?.to_vec1()?;
                    let argmax: Vec<u32> = logp.argmax(D::Minus1)?.to_vec1()?;
                    let agree = argmax
                        .iter()
                        .zip(&reference.argmax)
                        .filter(|(a, b)| a == b)
                        .count();
                    Ok((kl.iter().map(|&x| f64::from(x)).sum(), agree))
                })()
                .map_err(fail("inference failed"))?;
                sum.0 += nll.iter().map(|&x| f64::from(x)).sum::<f64>();
                sum.1 += stats.0;
                sum.2 += stats.1;
            }
        }
        let n = scored as f64;
        Ok(sums
            .into_iter()
            .map(|(nll, kl, agree)| DecoderFigures {
                ppl_original: (nll_orig / n).exp(),
                ppl_candidate: (nll / n).exp(),
                kl: kl / n,
                top1: agree as f64 / n,
                tokens: tokens.len(),
                scored,
                ctx,
                vocab: self.shape.vocab,
            })
            .collect())
    }
}

/// Refuses a config.json (of the model in `dir`) counting more layers than `src` holds, before
/// the network reserves room for each (2^64 − 1 layers aborted on a capacity overflow).
pub(super) fn check_layers(dir: &Path, shape: &Shape, src: &dyn Source) -> Result<(), EvalError> {
    let Some(last) = shape.layers.checked_sub(1) else {
        return Ok(());
    };
    let name = format!("model.layers.{last}.input_layernorm.weight");
    if src.has(&name) {
        return Ok(());
    }
    Err(ModelError::file(
        &dir.join("config.json"),
        format!(
            "num_hidden_layers is {}, but the weights have no layer {last} (no {name})",
            shape.layers
        ),
    )
    .into())
}

/// Refuses an id outside a vocabulary of `vocab` tokens (the model in `dir` would index past
/// its embedding).
pub(super) fn check_vocab(dir: &Path, ids: &[u32], vocab: usize) -> Result<(), EvalError> {
    match ids.iter().find(|&&t| t as usize >= vocab) {
        Some(&bad) => Err(ModelError::file(
            dir,
            format!("token id {bad} is outside the model's vocabulary of {vocab}"),
        )
        .into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calibration sees every linear layer's input once per layer at its weight's input width,
    /// and the first layer's q_proj moment is the mean square of RMSNorm(embedding)·γ computed
    /// here by hand, over both windows of the token stream.
    #[test]
    fn input_moments_are_each_linear_layers_mean_square_input() {
        let dir = Path::new("tests/fixtures/eval/llama");
        let config = super::super::read_json(&dir.join("config.json")).unwrap();
        let dec = Decoder::open(dir, &config).unwrap();
        let tokens = dec
            .tokenize("It is a truth universally acknowledged.")
            .unwrap();
        assert!(tokens.len() > 5);
        let moments = dec
            .input_moments(&tokens, Some(5), Control::unwatched())
            .unwrap();
        assert_eq!(moments.len(), 7 * dec.shape.layers);
        for (name, width) in [
            ("model.layers.1.self_attn.k_proj.weight", dec.shape.hidden),
            (
                "model.layers.0.self_attn.o_proj.weight",
                dec.shape.heads * dec.shape.head_dim,
            ),
            (
                "model.layers.1.mlp.down_proj.weight",
                dec.shape.intermediate,
            ),
        ] {
            assert_eq!(moments[name].len(), width, "{name}");
        }
        let h = dec.shape.hidden;
        let vb = dec.weights.var_builder().unwrap();
        let get = |shape: &[usize], name: &str| {
            vb.get(shape, name)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .unwrap()
        };
        let embed = get(&[dec.shape.vocab, h], "model.embed_tokens.weight");
        let gamma = get(&[h], "model.layers.0.input_layernorm.weight");
        let kept = tokens.len() - usize::from(tokens.len() % 5 == 1);
        let mut want = vec![0f64; h];
        for &t in &tokens[..kept] {
            let row = &embed[t as usize * h..][..h];
            let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / h as f64;
            let r = 1.0 / (ms + dec.shape.eps).sqrt();
            for (j, w) in want.iter_mut().enumerate() {
                *w += (f64::from(row[j]) * r * f64::from(gamma[j])).powi(2) / kept as f64;
            }
        }
        let got = &moments["model.layers.0.self_attn.q_proj.weight"];
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * w.max(1e-3), "{g} vs {w}");
        }
        assert_eq!(got, &moments["model.layers.0.self_attn.v_proj.weight"]);
    }
}
