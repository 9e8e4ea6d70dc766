//! Decoder LMs of the Llama family (`llama`, `mistral`, `qwen2`): RMSNorm, rotary embeddings
//! (plain or Llama 3 scaled), grouped-query causal attention (with Mistral's sliding window),
//! SwiGLU MLP, tied or untied head. Written on candle ops rather than taken from
//! candle-transformers, whose Llama and Mistral return only the last position's logits: the
//! protocol of docs/DESIGN.md §4 scores every position of a window in one pass.

use super::weights::Weights;
use super::{EvalError, candle_err, check, read_tokenizer};
use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::search::compress::Progress;
use candle_core::{D, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear_b};
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
}

/// Rotary embedding frequencies.
#[derive(Clone, Debug, PartialEq)]
struct Rope {
    theta: f64,
    /// Llama 3 scaling: factor, low and high frequency factors, original context.
    llama3: Option<(f64, f64, f64, f64)>,
}

/// The shape of a Llama-family network, from `config.json`.
#[derive(Clone, Debug, PartialEq)]
struct Shape {
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f64,
    rope: Rope,
    tied: bool,
    qkv_bias: bool,
    o_bias: bool,
    mlp_bias: bool,
    sliding_window: Option<usize>,
}

fn parse_shape(path: &Path, c: &Value) -> Result<Shape, ModelError> {
    let bad = |what: String| ModelError::file(path, what);
    let int = |key: &str| -> Result<Option<usize>, ModelError> {
        match c.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&v| v > 0)
                .map(|v| Some(v as usize))
                .ok_or_else(|| bad(format!("'{key}' must be a positive integer"))),
        }
    };
    let need = |key: &str| int(key)?.ok_or_else(|| bad(format!("'{key}' is missing")));
    let flag = |key: &str| c.get(key).and_then(Value::as_bool).unwrap_or(false);
    let arch = c
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("llama");
    if let Some(act) = c.get("hidden_act").and_then(Value::as_str)
        && act != "silu"
    {
        return Err(bad(format!(
            "hidden_act '{act}' is not supported (only silu)"
        )));
    }
    let (hidden, heads) = (need("hidden_size")?, need("num_attention_heads")?);
    let kv_heads = int("num_key_value_heads")?.unwrap_or(heads);
    if heads % kv_heads != 0 {
        return Err(bad(format!(
            "{heads} attention heads are not a multiple of {kv_heads} key/value heads"
        )));
    }
    let head_dim = int("head_dim")?.unwrap_or(hidden / heads);
    if head_dim % 2 != 0 {
        return Err(bad(format!("head_dim {head_dim} is odd")));
    }
    // transformers 5 writes `rope_parameters`; older configs `rope_theta` and `rope_scaling`.
    let params = c.get("rope_parameters").filter(|v| v.is_object());
    let scaling = params.or(c.get("rope_scaling").filter(|v| v.is_object()));
    let num = |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(Value::as_f64);
    let theta = num(params, "rope_theta")
        .or(num(Some(c), "rope_theta"))
        .unwrap_or(10_000.0);
    let rope_type = scaling
        .and_then(|s| s.get("rope_type").or(s.get("type")))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let llama3 = match rope_type {
        "default" => None,
        "llama3" => {
            let get = |k: &str| {
                num(scaling, k).ok_or_else(|| bad(format!("llama3 rope scaling lacks '{k}'")))
            };
            Some((
                get("factor")?,
                get("low_freq_factor")?,
                get("high_freq_factor")?,
                get("original_max_position_embeddings")?,
            ))
        }
        other => return Err(bad(format!("rope type '{other}' is not supported"))),
    };
    let sliding_window = match arch {
        "mistral" => int("sliding_window")?,
        "qwen2" if flag("use_sliding_window") => {
            return Err(bad("qwen2 with use_sliding_window is not supported".into()));
        }
        _ => None,
    };
    let attention_bias = flag("attention_bias");
    Ok(Shape {
        vocab: need("vocab_size")?,
        hidden,
        intermediate: need("intermediate_size")?,
        layers: need("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        eps: c
            .get("rms_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-6),
        rope: Rope { theta, llama3 },
        tied: flag("tie_word_embeddings"),
        qkv_bias: arch == "qwen2" || attention_bias,
        o_bias: attention_bias,
        mlp_bias: flag("mlp_bias"),
        sliding_window,
    })
}

impl Rope {
    /// Inverse frequencies of the `dim / 2` rotated pairs (transformers' formulas).
    fn inv_freq(&self, dim: usize) -> Vec<f64> {
        (0..dim / 2)
            .map(|i| {
                let f = 1.0 / self.theta.powf((2 * i) as f64 / dim as f64);
                let Some((factor, low, high, old)) = self.llama3 else {
                    return f;
                };
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < old / high {
                    f
                } else if wavelen > old / low {
                    f / factor
                } else {
                    let smooth = (old / wavelen - low) / (high - low);
                    (1.0 - smooth) * f / factor + smooth * f
                }
            })
            .collect()
    }

    /// cos and sin tables, `[n, dim / 2]`.
    fn tables(&self, n: usize, dim: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let inv = self.inv_freq(dim);
        let angles: Vec<f64> = (0..n)
            .flat_map(|p| inv.iter().map(move |f| p as f64 * f))
            .collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos() as f32).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin() as f32).collect();
        let shape = (n, dim / 2);
        Ok((
            Tensor::from_vec(cos, shape, &Device::Cpu)?,
            Tensor::from_vec(sin, shape, &Device::Cpu)?,
        ))
    }
}

struct Layer {
    input_norm: Tensor,
    post_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// What a calibration forward hands each linear layer's input to, with its weight's name.
type Sink<'a> = dyn FnMut(&str, &Tensor) -> candle_core::Result<()> + 'a;

/// A network built over one weight set.
struct Net {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: Tensor,
}

impl Net {
    fn load(s: &Shape, vb: VarBuilder) -> candle_core::Result<Self> {
        let m = vb.pp("model");
        let embed = m.get((s.vocab, s.hidden), "embed_tokens.weight")?;
        let (qd, kvd) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
        let mut layers = Vec::with_capacity(s.layers);
        for i in 0..s.layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let f = l.pp("mlp");
            layers.push(Layer {
                input_norm: l.get(s.hidden, "input_layernorm.weight")?,
                post_norm: l.get(s.hidden, "post_attention_layernorm.weight")?,
                q: linear_b(s.hidden, qd, s.qkv_bias, a.pp("q_proj"))?,
                k: linear_b(s.hidden, kvd, s.qkv_bias, a.pp("k_proj"))?,
                v: linear_b(s.hidden, kvd, s.qkv_bias, a.pp("v_proj"))?,
                o: linear_b(qd, s.hidden, s.o_bias, a.pp("o_proj"))?,
                gate: linear_b(s.hidden, s.intermediate, s.mlp_bias, f.pp("gate_proj"))?,
                up: linear_b(s.hidden, s.intermediate, s.mlp_bias, f.pp("up_proj"))?,
                down: linear_b(s.intermediate, s.hidden, s.mlp_bias, f.pp("down_proj"))?,
            });
        }
        let head = if s.tied {
            embed.clone()
        } else {
            vb.get((s.vocab, s.hidden), "lm_head.weight")?
        };
        Ok(Net {
            embed,
            layers,
            norm: m.get(s.hidden, "norm.weight")?,
            head,
        })
    }

    /// Logits `[n, vocab]` of every position of `ids`; `None` once `cancel` is raised (checked
    /// before each layer). `sink`, when given, sees the input `[n, in]` of every linear layer
    /// with its weight tensor's name (for calibration).
    fn logits(
        &self,
        s: &Shape,
        ids: &[u32],
        cancel: &AtomicBool,
        mut sink: Option<&mut Sink>,
    ) -> candle_core::Result<Option<Tensor>> {
        let n = ids.len();
        let dev = Device::Cpu;
        let (cos, sin) = s.rope.tables(n, s.head_dim)?;
        let mask: Vec<f32> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                let visible = j <= i && s.sliding_window.is_none_or(|w| i - j < w);
                if visible { 0.0 } else { f32::NEG_INFINITY }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, n), &dev)?;
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let rep = s.heads / s.kv_heads;
        let heads = |x: Tensor, h: usize| -> candle_core::Result<Tensor> {
            x.reshape((1, n, h, s.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let ids = Tensor::from_slice(ids, n, &dev)?;
        let mut x = self.embed.index_select(&ids, 0)?;
        let mut see = |i: usize, parts: &[&str], x: &Tensor| -> candle_core::Result<()> {
            if let Some(sink) = sink.as_mut() {
                for part in parts {
                    sink(&format!("model.layers.{i}.{part}.weight"), x)?;
                }
            }
            Ok(())
        };
        for (i, l) in self.layers.iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let h = candle_nn::ops::rms_norm(&x, &l.input_norm, s.eps as f32)?;
            see(
                i,
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
                &h,
            )?;
            let q = heads(l.q.forward(&h)?, s.heads)?;
            let k = heads(l.k.forward(&h)?, s.kv_heads)?;
            let v = heads(l.v.forward(&h)?, s.kv_heads)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            let k = candle_transformers::utils::repeat_kv(k, rep)?.contiguous()?;
            let v = candle_transformers::utils::repeat_kv(v, rep)?.contiguous()?;
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((n, s.heads * s.head_dim))?;
            see(i, &["self_attn.o_proj"], &y)?;
            x = (x + l.o.forward(&y)?)?;
            let h = candle_nn::ops::rms_norm(&x, &l.post_norm, s.eps as f32)?;
            see(i, &["mlp.gate_proj", "mlp.up_proj"], &h)?;
            let g = (candle_nn::ops::silu(&l.gate.forward(&h)?)? * l.up.forward(&h)?)?;
            see(i, &["mlp.down_proj"], &g)?;
            x = (&x + l.down.forward(&g)?)?;
        }
        let x = candle_nn::ops::rms_norm(&x, &self.norm, s.eps as f32)?;
        Ok(Some(x.matmul(&self.head.t()?)?))
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
            weights: Weights::from_model(&Model::open(dir)?)?,
            shape,
        };
        Net::load(&decoder.shape, decoder.weights.var_builder())
            .map_err(candle_err(dir, "the weights do not fit config.json"))?;
        Ok(decoder)
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

    /// `tokens` cut into windows of `ctx` (a last one of fewer than 2 tokens dropped), after
    /// checking that there is one and that every id is in the vocabulary.
    fn windows<'t>(&self, tokens: &'t [u32], ctx: usize) -> Result<Vec<&'t [u32]>, EvalError> {
        if ctx < 2 {
            return Err(
                ModelError::file(&self.dir, "the window (ctx) must be at least 2 tokens").into(),
            );
        }
        let windows: Vec<&[u32]> = tokens.chunks(ctx).filter(|w| w.len() >= 2).collect();
        if windows.is_empty() {
            return Err(ModelError::file(&self.dir, "the text has fewer than 2 tokens").into());
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.shape.vocab) {
            return Err(ModelError::file(
                &self.dir,
                format!(
                    "token id {bad} is outside the model's vocabulary of {}",
                    self.shape.vocab
                ),
            )
            .into());
        }
        Ok(windows)
    }

    /// The second moment E[x_j²] of each input channel j of every linear layer, by weight
    /// tensor name, over every position of `tokens` cut into windows of `ctx`, with the
    /// original weights. Adds one to `progress.done` per window (and sets its total).
    pub fn input_moments(
        &self,
        tokens: &[u32],
        ctx: usize,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<HashMap<String, Vec<f64>>, EvalError> {
        let windows = self.windows(tokens, ctx)?;
        let fail = |what| candle_err(&self.dir, what);
        let net = Net::load(&self.shape, self.weights.var_builder())
            .map_err(fail("the weights do not fit config.json"))?;
        progress
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
            net.logits(&self.shape, w, cancel, Some(&mut sink))
                .map_err(fail("calibration forward failed"))?
                .ok_or(EvalError::Cancelled)?;
            progress.done.fetch_add(1, Ordering::Relaxed);
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
        let net = Net::load(&self.shape, weights.var_builder())
            .map_err(candle_err(&self.dir, "the weights do not fit config.json"))?;
        let logits = net
            .logits(&self.shape, window, cancel, None)
            .map_err(candle_err(&self.dir, "inference failed"))?
            .ok_or(EvalError::Cancelled)?;
        candle_nn::ops::log_softmax(&logits, D::Minus1)
            .map_err(candle_err(&self.dir, "inference failed"))
    }

    /// Compares the original with each variant over `tokens` cut into windows of `ctx`
    /// (docs/DESIGN.md §4). `progress` counts windows times networks run.
    pub fn compare(
        &self,
        variants: &[Weights],
        tokens: &[u32],
        ctx: usize,
        progress: &Progress,
        cancel: &AtomicBool,
    ) -> Result<Vec<DecoderFigures>, EvalError> {
        let windows = self.windows(tokens, ctx)?;
        let fail = |what| candle_err(&self.dir, what);
        let nets = std::iter::once(&self.weights)
            .chain(variants)
            .map(|w| Net::load(&self.shape, w.var_builder()))
            .collect::<candle_core::Result<Vec<Net>>>()
            .map_err(fail("the weights do not fit config.json"))?;
        progress
            .total
            .store((windows.len() * nets.len()) as u64, Ordering::Relaxed);
        let mut nll_orig = 0f64;
        // Per variant: NLL sum, KL sum, agreeing positions.
        let mut sums = vec![(0f64, 0f64, 0usize); variants.len()];
        let mut scored = 0usize;
        let run = |net: &Net, w: &[u32]| -> Result<(Tensor, Vec<f32>), EvalError> {
            check(cancel)?;
            let logits = net
                .logits(&self.shape, w, cancel, None)
                .map_err(fail("inference failed"))?
                .ok_or(EvalError::Cancelled)?;
            let out = log_probs(&logits, w).map_err(fail("inference failed"))?;
            progress.done.fetch_add(1, Ordering::Relaxed);
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
            })
            .collect())
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
            .input_moments(&tokens, 5, &Progress::default(), &AtomicBool::new(false))
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
        let vb = dec.weights.var_builder();
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

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let plain = Rope {
            theta: 10_000.0,
            llama3: None,
        }
        .inv_freq(16);
        let scaled = Rope {
            theta: 10_000.0,
            llama3: Some((8.0, 1.0, 4.0, 64.0)),
        }
        .inv_freq(16);
        // Wavelength 2π < 64 / 4: unchanged; the longest (> 64): divided by the factor.
        assert_eq!(scaled[0], plain[0]);
        assert!((scaled[7] - plain[7] / 8.0).abs() < 1e-15);
        assert!(
            scaled
                .iter()
                .zip(&plain)
                .all(|(s, p)| s <= p && *s >= p / 8.0)
        );
    }
}
