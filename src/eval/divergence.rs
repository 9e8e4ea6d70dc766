//! Where compression changes what a decoder LM says (docs/DESIGN.md §5): the original and a
//! compressed model each continue the same prompt, and each token of the compressed model's
//! continuation gets its divergence KL(p_original ‖ p_compressed) at its position (both models
//! scoring the compressed model's own continuation) and each model's most likely next tokens.

use super::{EvalError, Family, candle_err, family, read_json, read_tokenizer};
use crate::core::control::Control;
use crate::infer::generate::{GenerateError, Sampling, Stats, generate};
use crate::infer::kernel::Kernel;
use crate::infer::llama::{Cache, Logits, Net, Shape, parse_shape};
use crate::infer::source::Source;
use crate::io::error::ModelError;
use candle_core::D;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Next tokens listed per position and model.
pub const TOP: usize = 5;

/// A decoder LM's description for generation: its shape, tokenizer and special tokens, from
/// its directory (config.json, tokenizer.json).
pub struct Lm {
    dir: PathBuf,
    shape: Shape,
    tokenizer: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
}

/// One model's continuation of the prompt.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Continuation {
    /// The generated token ids.
    pub tokens: Vec<u32>,
    /// The text each token adds (empty when it only begins a character the next completes).
    pub pieces: Vec<String>,
    /// Timings of the generation.
    pub stats: Stats,
}

/// A likely next token.
#[derive(Clone, Debug, PartialEq)]
pub struct Likely {
    /// Token id.
    pub id: u32,
    /// Its text.
    pub text: String,
    /// Its probability.
    pub prob: f32,
}

/// How the two models see one position of the compressed continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    /// KL(p_original ‖ p_compressed) of the next-token distributions, in nats.
    pub kl: f64,
    /// The original's [`TOP`] most likely next tokens, most likely first (ties: lowest id).
    pub original: Vec<Likely>,
    /// The compressed model's.
    pub compressed: Vec<Likely>,
}

/// Both continuations of one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The prompt's token ids (BOS included when the config names one).
    pub prompt: Vec<u32>,
    /// The original's continuation.
    pub original: Continuation,
    /// The compressed model's continuation.
    pub compressed: Continuation,
    /// Per token of the compressed continuation: the position it was chosen at.
    pub positions: Vec<Position>,
}

impl Lm {
    /// Reads the decoder LM description in `dir`; an encoder or another architecture is a
    /// one-line error.
    pub fn open(dir: &Path) -> Result<Self, EvalError> {
        let config_path = dir.join("config.json");
        let config = read_json(&config_path)?;
        if family(&config_path, &config)? != Family::Decoder {
            return Err(ModelError::file(
                &config_path,
                "generation runs decoder LMs (llama, mistral, qwen2); this is an encoder",
            )
            .into());
        }
        let id = |key: &str| config.get(key).and_then(|v| v.as_u64()).map(|v| v as u32);
        Ok(Lm {
            dir: dir.to_path_buf(),
            shape: parse_shape(&config_path, &config)?,
            tokenizer: read_tokenizer(dir)?,
            bos: id("bos_token_id"),
            eos: id("eos_token_id"),
        })
    }

    /// The token that ends a continuation (the config's eos_token_id), if any.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// `prompt` tokenized with no special tokens, after the config's BOS token when it names
    /// one (docs/DESIGN.md §5); an id outside the vocabulary is an error.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>, EvalError> {
        let enc = self.tokenizer.encode(prompt, false).map_err(|e| {
            ModelError::file(
                &self.dir.join("tokenizer.json"),
                format!("cannot tokenize the prompt: {e}"),
            )
        })?;
        let ids: Vec<u32> = self.bos.into_iter().chain(enc.get_ids().to_vec()).collect();
        super::decoder::check_vocab(&self.dir, &ids, self.shape.vocab)?;
        Ok(ids)
    }

    /// The network over `src`, its products on `kernel`.
    pub fn net<'s>(&self, src: &'s dyn Source, kernel: Kernel) -> Result<Net<'s>, EvalError> {
        super::decoder::check_layers(&self.dir, &self.shape, src)?;
        Net::load(&self.shape, src, kernel).map_err(|e| {
            ModelError::file(
                &self.dir,
                format!("the weights do not fit config.json: {e}"),
            )
            .into()
        })
    }

    /// The text of `ids`.
    pub fn text(&self, ids: &[u32]) -> Result<String, EvalError> {
        self.tokenizer.decode(ids, false).map_err(|e| {
            ModelError::file(
                &self.dir.join("tokenizer.json"),
                format!("cannot decode tokens: {e}"),
            )
            .into()
        })
    }

    /// The text each of `tokens` adds to those before it: decoding them one by one would
    /// split characters that span tokens and lose the spaces some tokenizers put back.
    fn pieces(&self, tokens: &[u32]) -> Result<Vec<String>, EvalError> {
        let mut shown = String::new();
        (0..tokens.len())
            .map(|i| self.next_piece(&tokens[..=i], &mut shown, i + 1 == tokens.len()))
            .collect()
    }

    /// The text the last of `tokens` adds to `shown` (the text of the tokens before it, as
    /// shown so far), updating `shown`. Trailing replacement characters may be the start of a
    /// character the next tokens complete: they wait, unless `last`.
    pub fn next_piece(
        &self,
        tokens: &[u32],
        shown: &mut String,
        last: bool,
    ) -> Result<String, EvalError> {
        let text = self.text(tokens)?;
        let stable = if last {
            &text
        } else {
            text.trim_end_matches(char::REPLACEMENT_CHARACTER)
        };
        let piece = match stable.strip_prefix(shown.as_str()) {
            Some(new) => new.to_string(),
            None => self.text(&tokens[tokens.len().saturating_sub(1)..])?,
        };
        *shown = stable.to_string();
        Ok(piece)
    }

    /// Generates up to `max_tokens` after `prompt` (ids from [`Lm::prompt_ids`]) with
    /// `original` and with `compressed`, each stopping at the EOS token, then scores the
    /// compressed continuation with both in one batched forward each. `ctl.progress` counts
    /// generated tokens, then the two scoring forwards; raising `ctl.cancel` stops within a layer.
    pub fn diverge(
        &self,
        original: &dyn Source,
        compressed: &dyn Source,
        prompt: &[u32],
        max_tokens: usize,
        sampling: &Sampling,
        ctl: Control<'_>,
    ) -> Result<Divergence, EvalError> {
        let nets = [
            self.net(original, Kernel::best_available())?,
            self.net(compressed, Kernel::best_available())?,
        ];
        ctl.progress
            .total
            .store(2 * max_tokens as u64 + 2, Ordering::Relaxed);
        let mut runs = Vec::with_capacity(2);
        for (i, net) in nets.iter().enumerate() {
            let (tokens, stats) = generate(
                net,
                prompt,
                max_tokens,
                self.eos,
                sampling,
                ctl.cancel,
                |_| {
                    ctl.progress.done.fetch_add(1, Ordering::Relaxed);
                },
            )
            .map_err(|e| self.generate_err(e))?;
            // A continuation that stopped at EOS leaves its share of the count undone.
            let done = (i as u64 + 1) * max_tokens as u64;
            ctl.progress.done.store(done, Ordering::Relaxed);
            runs.push(Continuation {
                pieces: self.pieces(&tokens)?,
                tokens,
                stats,
            });
        }
        let compressed_run = runs.pop().unwrap_or_default();
        let original_run = runs.pop().unwrap_or_default();
        let positions = self.score(&nets, prompt, &compressed_run.tokens, ctl)?;
        Ok(Divergence {
            prompt: prompt.to_vec(),
            original: original_run,
            compressed: compressed_run,
            positions,
        })
    }

    /// Each network's log-probabilities at the positions `continuation` was chosen at
    /// (the last prompt token's and each continuation token's but the last), then per
    /// position the divergence and both top lists.
    fn score(
        &self,
        nets: &[Net; 2],
        prompt: &[u32],
        continuation: &[u32],
        ctl: Control<'_>,
    ) -> Result<Vec<Position>, EvalError> {
        let Some((_, scored)) = continuation.split_last() else {
            return Ok(Vec::new());
        };
        let ids: Vec<u32> = prompt.iter().chain(scored).copied().collect();
        let mut logp = Vec::with_capacity(2);
        for net in nets {
            let rows = (|| {
                let from = Logits::From(prompt.len() - 1);
                let Some(logits) =
                    net.forward(&ids, &mut Cache::default(), from, ctl.cancel, None)?
                else {
                    return Ok(None);
                };
                candle_nn::ops::log_softmax(&logits, D::Minus1)?
                    .to_vec2::<f32>()
                    .map(Some)
            })()
            .map_err(candle_err(&self.dir, "inference failed"))?
            .ok_or(EvalError::Cancelled)?;
            ctl.progress.done.fetch_add(1, Ordering::Relaxed);
            logp.push(rows);
        }
        logp[0]
            .iter()
            .zip(&logp[1])
            .map(|(o, c)| {
                let kl = o
                    .iter()
                    .zip(c)
                    .map(|(&a, &b)| f64::from(a).exp() * (f64::from(a) - f64::from(b)))
                    .sum();
                Ok(Position {
                    kl,
                    original: self.top(o)?,
                    compressed: self.top(c)?,
                })
            })
            .collect()
    }

    /// The [`TOP`] most likely tokens of one position's log-probabilities.
    fn top(&self, logp: &[f32]) -> Result<Vec<Likely>, EvalError> {
        let mut ids: Vec<u32> = (0..logp.len() as u32).collect();
        ids.sort_by(|&a, &b| {
            logp[b as usize]
                .total_cmp(&logp[a as usize])
                .then(a.cmp(&b))
        });
        ids.into_iter()
            .take(TOP)
            .map(|id| {
                Ok(Likely {
                    id,
                    text: self.text(&[id])?,
                    prob: logp[id as usize].exp(),
                })
            })
            .collect()
    }

    fn generate_err(&self, e: GenerateError) -> EvalError {
        match e {
            GenerateError::Cancelled => EvalError::Cancelled,
            GenerateError::EmptyPrompt => ModelError::file(&self.dir, e.to_string()).into(),
            GenerateError::Candle(c) => candle_err(&self.dir, "inference failed")(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::config::Config;
    use crate::eval::weights::Weights;
    use crate::io::model::Model;
    use crate::search::compress::compress;
    use std::sync::atomic::AtomicBool;

    const DIR: &str = "tests/fixtures/eval/llama";
    const PROMPT: &str = "It is a truth universally acknowledged";

    fn run(lm: &Lm, a: &Weights, b: &Weights, n: usize, s: &Sampling) -> Divergence {
        let ids = lm.prompt_ids(PROMPT).unwrap();
        lm.diverge(a, b, &ids, n, s, Control::unwatched()).unwrap()
    }

    /// The original against itself: the same continuation twice, no divergence anywhere, and
    /// the same top lists, headed by the greedy token.
    #[test]
    fn a_model_against_itself_never_diverges() {
        let lm = Lm::open(Path::new(DIR)).unwrap();
        let w = Weights::open(Path::new(DIR)).unwrap();
        let d = run(&lm, &w, &w, 24, &Sampling::default());
        assert_eq!(d.prompt[0], lm.bos.unwrap());
        assert_eq!(d.original.tokens, d.compressed.tokens);
        assert_eq!(d.positions.len(), d.compressed.tokens.len());
        assert!(!d.positions.is_empty());
        for (p, &t) in d.positions.iter().zip(&d.compressed.tokens) {
            assert_eq!(p.kl, 0.0);
            assert_eq!(p.original, p.compressed);
            assert_eq!(p.original.len(), TOP);
            assert_eq!(p.compressed[0].id, t, "greedy picks the most likely token");
            assert!(p.original.windows(2).all(|w| w[0].prob >= w[1].prob));
        }
        let text: String = d.compressed.pieces.concat();
        assert_eq!(text, lm.text(&d.compressed.tokens).unwrap());
    }

    /// Every linear layer at 3 bits: the compressed continuation is `generate`'s on the same
    /// weights, and the original's distribution differs from it somewhere.
    #[test]
    fn a_three_bit_model_diverges_and_continues_as_generate_does() {
        let lm = Lm::open(Path::new(DIR)).unwrap();
        let model = Model::open(Path::new(DIR)).unwrap();
        let w = Weights::open(Path::new(DIR)).unwrap();
        let none = AtomicBool::new(false);
        let recon = model
            .tensors()
            .iter()
            .filter(|t| t.name.contains("_proj."))
            .map(|t| {
                let data = model.to_f32(t)?;
                let (c, _) = compress(&data, Config::THREE_BIT, Control::unwatched())
                    .expect("the search runs");
                Ok((t.name.clone(), c.reconstruct()))
            });
        let cand = w.overlay(Path::new("test"), recon).unwrap();
        assert_eq!(cand.changed().len(), 7 * lm.shape.layers);
        let sampling = Sampling {
            temperature: 0.8,
            top_p: 0.95,
            seed: 3,
        };
        for s in [Sampling::default(), sampling] {
            let d = run(&lm, &w, &cand, 32, &s);
            let net = lm.net(&cand, Kernel::best_available()).unwrap();
            let (want, _) = generate(&net, &d.prompt, 32, lm.eos, &s, &none, |_| {}).unwrap();
            assert_eq!(d.compressed.tokens, want);
            let (orig, _) = generate(
                &lm.net(&w, Kernel::best_available()).unwrap(),
                &d.prompt,
                32,
                lm.eos,
                &s,
                &none,
                |_| {},
            )
            .unwrap();
            assert_eq!(d.original.tokens, orig);
            assert!(d.positions.iter().all(|p| p.kl >= -1e-6));
            assert!(d.positions.iter().any(|p| p.kl > 1e-4), "{:?}", d.positions);
        }
    }
}
