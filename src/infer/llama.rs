//! Decoder LMs of the Llama family (`llama`, `mistral`, `qwen2`) run from their stored weights:
//! RMSNorm, rotary embeddings (plain or Llama 3 scaled), grouped-query causal attention (with
//! Mistral's sliding window) over a KV cache, SwiGLU MLP, tied or untied head. The linear layers
//! are [`Matrix`] products on the stored form; the small ops run on candle. A whole window in
//! one call scores every position (docs/DESIGN.md §4); generation feeds one token at a time.

use crate::infer::kernel::Kernel;
use crate::infer::linear::{Linear, Sink, vector};
use crate::infer::matrix::Matrix;
use crate::infer::source::Source;
use crate::io::error::ModelError;
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Rotary embedding frequencies.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rope {
    pub(crate) theta: f64,
    /// Llama 3 scaling: factor, low and high frequency factors, original context.
    pub(crate) llama3: Option<(f64, f64, f64, f64)>,
}

/// The shape of a Llama-family network, from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shape {
    pub(crate) vocab: usize,
    pub(crate) hidden: usize,
    pub(crate) intermediate: usize,
    pub(crate) layers: usize,
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) eps: f64,
    pub(crate) rope: Rope,
    pub(crate) tied: bool,
    pub(crate) qkv_bias: bool,
    pub(crate) o_bias: bool,
    pub(crate) mlp_bias: bool,
    pub(crate) sliding_window: Option<usize>,
    /// Positions the model was trained for (`max_position_embeddings`), when config.json says.
    pub(crate) max_positions: Option<usize>,
}

pub(crate) fn parse_shape(path: &Path, c: &Value) -> Result<Shape, ModelError> {
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
    let eps = match c.get("rms_norm_eps") {
        None | Some(Value::Null) => 1e-6,
        Some(v) => v
            .as_f64()
            .filter(|e| e.is_finite() && *e > 0.0)
            .ok_or_else(|| bad(format!("'rms_norm_eps' {v} must be a positive number")))?,
    };
    Ok(Shape {
        vocab: need("vocab_size")?,
        hidden,
        intermediate: need("intermediate_size")?,
        layers: need("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        eps,
        rope: Rope { theta, llama3 },
        tied: flag("tie_word_embeddings"),
        qkv_bias: arch == "qwen2" || attention_bias,
        o_bias: attention_bias,
        mlp_bias: flag("mlp_bias"),
        sliding_window,
        max_positions: int("max_position_embeddings")?,
    })
}

impl Rope {
    /// Inverse frequencies of the `dim / 2` rotated pairs (transformers' formulas).
    pub(crate) fn inv_freq(&self, dim: usize) -> Vec<f64> {
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
    pub(crate) fn tables(&self, n: usize, dim: usize) -> candle_core::Result<(Tensor, Tensor)> {
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
struct Layer<'a> {
    input_norm: Tensor,
    post_norm: Tensor,
    q: Linear<'a>,
    k: Linear<'a>,
    v: Linear<'a>,
    o: Linear<'a>,
    gate: Linear<'a>,
    up: Linear<'a>,
    down: Linear<'a>,
}

/// Keys and values of the positions seen so far, per layer: buffers `[1, kv_heads, capacity,
/// head_dim]` whose first `len` positions are filled. A token's keys are written in place, and
/// the capacity doubles when full, so a token does not copy the whole cache (`Tensor::cat` did,
/// in every layer).
#[derive(Default)]
pub struct Cache {
    kv: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl Cache {
    /// Layer `i`'s keys and values (`[1, kv_heads, n, head_dim]`) written after the positions
    /// held; returns those of every position so far.
    fn append(
        &mut self,
        i: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (held, total) = (self.len, self.len + k.dim(2)?);
        let room = match self.kv.get(i) {
            Some((bk, _)) => bk.dim(2)? >= total,
            None => false,
        };
        if !room {
            // The first feed gets exactly its length (a scored window needs no more); growth
            // doubles.
            let old = self.kv.get(i).cloned();
            let cap = old
                .as_ref()
                .map_or(Ok(total), |(bk, _)| bk.dim(2).map(|c| total.max(2 * c)))?;
            let grow = |old: Option<&Tensor>, new: &Tensor| -> candle_core::Result<Tensor> {
                let (b, h, _, d) = new.dims4()?;
                let buf = Tensor::zeros((b, h, cap, d), new.dtype(), new.device())?;
                if let Some(old) = old {
                    buf.slice_set(&old.narrow(2, 0, held)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let bufs = (
                grow(old.as_ref().map(|o| &o.0), k)?,
                grow(old.as_ref().map(|o| &o.1), v)?,
            );
            match self.kv.get_mut(i) {
                Some(slot) => *slot = bufs,
                None => self.kv.push(bufs),
            }
        }
        let (bk, bv) = &self.kv[i];
        bk.slice_set(&k.contiguous()?, 2, held)?;
        bv.slice_set(&v.contiguous()?, 2, held)?;
        Ok((bk.narrow(2, 0, total)?, bv.narrow(2, 0, total)?))
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which positions' logits a forward returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Every position fed (scoring a window).
    All,
    /// Only the last one (generation).
    Last,
    /// Those from this position on (scoring a continuation: the head's product and the logits
    /// of a long prompt, `[n, vocab]` f32, are left out).
    From(usize),
}

/// Bytes of attention scores computed at once (see [`Net::forward`]).
const ATTENTION_BYTES: usize = 16 << 20;

/// A decoder network over one weight source.
pub struct Net<'a> {
    shape: Shape,
    kernel: Kernel,
    embed: Matrix<'a>,
    layers: Vec<Layer<'a>>,
    norm: Tensor,
    /// `None` when the head is tied to the embedding.
    head: Option<Matrix<'a>>,
    /// Bytes of attention scores computed at once ([`ATTENTION_BYTES`]; tests lower it).
    attention_bytes: usize,
}

impl<'a> Net<'a> {
    /// Builds the network of `shape` over `src`, whose products run on `kernel`.
    pub(crate) fn load(
        shape: &Shape,
        src: &'a dyn Source,
        kernel: Kernel,
    ) -> Result<Self, ModelError> {
        let s = shape;
        let linear = |name: String, rows: usize, cols: usize, bias: bool| {
            Linear::load(src, &name, rows, cols, bias)
        };
        let (qd, kvd) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
        // Not `with_capacity`: the count is the config's, unchecked until a layer is missing.
        let mut layers = Vec::new();
        for i in 0..s.layers {
            let l = format!("model.layers.{i}");
            let (a, f) = (format!("{l}.self_attn"), format!("{l}.mlp"));
            layers.push(Layer {
                input_norm: vector(src, &format!("{l}.input_layernorm.weight"), s.hidden)?,
                post_norm: vector(
                    src,
                    &format!("{l}.post_attention_layernorm.weight"),
                    s.hidden,
                )?,
                q: linear(format!("{a}.q_proj"), qd, s.hidden, s.qkv_bias)?,
                k: linear(format!("{a}.k_proj"), kvd, s.hidden, s.qkv_bias)?,
                v: linear(format!("{a}.v_proj"), kvd, s.hidden, s.qkv_bias)?,
                o: linear(format!("{a}.o_proj"), s.hidden, qd, s.o_bias)?,
                gate: linear(
                    format!("{f}.gate_proj"),
                    s.intermediate,
                    s.hidden,
                    s.mlp_bias,
                )?,
                up: linear(format!("{f}.up_proj"), s.intermediate, s.hidden, s.mlp_bias)?,
                down: linear(
                    format!("{f}.down_proj"),
                    s.hidden,
                    s.intermediate,
                    s.mlp_bias,
                )?,
            });
        }
        let head = if s.tied && !src.has("lm_head.weight") {
            None
        } else {
            Some(src.matrix("lm_head.weight", s.vocab, s.hidden)?)
        };
        Ok(Net {
            shape: s.clone(),
            kernel,
            embed: src.matrix("model.embed_tokens.weight", s.vocab, s.hidden)?,
            layers,
            norm: vector(src, "model.norm.weight", s.hidden)?,
            head,
            attention_bytes: ATTENTION_BYTES,
        })
    }

    /// Bytes of its weight matrices as stored.
    pub fn stored_bytes(&self) -> usize {
        let lin = |l: &Layer| {
            [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .iter()
                .map(|x| x.w.stored_bytes())
                .sum::<usize>()
        };
        self.embed.stored_bytes()
            + self.head.as_ref().map_or(0, Matrix::stored_bytes)
            + self.layers.iter().map(lin).sum::<usize>()
    }

    /// Feeds `ids` after the positions in `cache` (which it extends) and returns their logits,
    /// `[n, vocab]` (or the rows [`Logits`] asks for); `None` once `cancel` is raised (checked
    /// before each layer); an error for no `ids`. `sink`, when given, sees the input `[n, in]`
    /// of every linear layer with its weight tensor's name (for calibration).
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        cache: &mut Cache,
        which: Logits,
        cancel: &AtomicBool,
        mut sink: Option<&mut Sink>,
    ) -> candle_core::Result<Option<Tensor>> {
        let s = &self.shape;
        if ids.is_empty() {
            return Err(candle_core::Error::Msg("no tokens to feed".into()));
        }
        let (n, start) = (ids.len(), cache.len);
        let total = start + n;
        let dev = Device::Cpu;
        let (cos, sin) = s.rope.tables(total, s.head_dim)?;
        let (cos, sin) = (cos.narrow(0, start, n)?, sin.narrow(0, start, n)?);
        let scale = 1.0 / (s.head_dim as f64).sqrt();
        let rep = s.heads / s.kv_heads;
        // Attention runs over blocks of query positions so that its scores stay near
        // `attention_bytes`: a whole 2 800-token prompt's scores were 1 GB a layer (3.2 GB
        // resident for a 0.5 GB model), and 8.6 GB at 8 k tokens on an 8B shape.
        let per_row = s.heads * total * size_of::<f32>();
        let block = (self.attention_bytes / per_row).clamp(1, n);
        let heads = |x: Tensor, h: usize| -> candle_core::Result<Tensor> {
            x.reshape((1, n, h, s.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let mut x = vec![0f32; n * s.hidden];
        for (row, &id) in x.chunks_exact_mut(s.hidden).zip(ids) {
            self.embed.decode_rows(id as usize, row);
        }
        let mut x = Tensor::from_vec(x, (n, s.hidden), &dev)?;
        let mut see = |i: usize, parts: &[&str], x: &Tensor| -> candle_core::Result<()> {
            if let Some(sink) = sink.as_mut() {
                for part in parts {
                    sink(&format!("model.layers.{i}.{part}.weight"), x)?;
                }
            }
            Ok(())
        };
        let kernel = self.kernel;
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
            let q = heads(l.q.forward(kernel, &h)?, s.heads)?;
            let k = heads(l.k.forward(kernel, &h)?, s.kv_heads)?;
            let v = heads(l.v.forward(kernel, &h)?, s.kv_heads)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            let (k, v) = cache.append(i, &k, &v)?;
            // The `rep` query heads that share a key–value head are its rows (the heads are
            // contiguous per group), so the cache is read as it is, not copied `rep` times per
            // token (at a 1 k context that copy was as many bytes as the weights).
            let q = q.reshape((1, s.kv_heads, rep, n, s.head_dim))?;
            let mut ys = Vec::with_capacity(n.div_ceil(block));
            for a in (0..n).step_by(block) {
                let len = block.min(n - a);
                // Keys that no query of the block sees (later positions, or before a sliding
                // window) are left out rather than masked.
                let (first, last) = (start + a, start + a + len);
                let lo = s
                    .sliding_window
                    .map_or(0, |w| (first + 1).saturating_sub(w));
                let mask: Vec<f32> = (0..len * (last - lo))
                    .map(|at| {
                        let (i, j) = (first + at / (last - lo), lo + at % (last - lo));
                        let visible = j <= i && s.sliding_window.is_none_or(|w| i - j < w);
                        if visible { 0.0 } else { f32::NEG_INFINITY }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, (len, last - lo), &dev)?;
                let qb = q
                    .narrow(3, a, len)?
                    .reshape((1, s.kv_heads, rep * len, s.head_dim))?;
                let (kb, vb) = (k.narrow(2, lo, last - lo)?, v.narrow(2, lo, last - lo)?);
                let att = (qb.matmul(&kb.t()?)? * scale)?
                    .reshape((1, s.kv_heads, rep, len, last - lo))?
                    .broadcast_add(&mask)?;
                let att = candle_nn::ops::softmax_last_dim(&att)?.reshape((
                    1,
                    s.kv_heads,
                    rep * len,
                    last - lo,
                ))?;
                ys.push(
                    att.matmul(&vb)?
                        .reshape((1, s.heads, len, s.head_dim))?
                        .transpose(1, 2)?
                        .reshape((len, s.heads * s.head_dim))?,
                );
            }
            let y = Tensor::cat(&ys, 0)?;
            see(i, &["self_attn.o_proj"], &y)?;
            x = (x + l.o.forward(kernel, &y)?)?;
            let h = candle_nn::ops::rms_norm(&x, &l.post_norm, s.eps as f32)?;
            see(i, &["mlp.gate_proj", "mlp.up_proj"], &h)?;
            let g = (candle_nn::ops::silu(&l.gate.forward(kernel, &h)?)?
                * l.up.forward(kernel, &h)?)?;
            see(i, &["mlp.down_proj"], &g)?;
            x = (&x + l.down.forward(kernel, &g)?)?;
        }
        cache.len = total;
        let x = match which {
            Logits::All => x,
            Logits::Last => x.narrow(0, n - 1, 1)?,
            Logits::From(p) => x.narrow(0, p, n.saturating_sub(p))?,
        };
        let x = candle_nn::ops::rms_norm(&x, &self.norm, s.eps as f32)?;
        let rows = x.dim(0)?;
        let head = self.head.as_ref().unwrap_or(&self.embed);
        Ok(Some(head.matmul(
            kernel,
            &x.flatten_all()?.to_vec1::<f32>()?,
            rows,
        )?))
    }

    /// Logits `[n, vocab]` of every position of `ids` from an empty cache.
    pub(crate) fn logits(
        &self,
        ids: &[u32],
        cancel: &AtomicBool,
        sink: Option<&mut Sink>,
    ) -> candle_core::Result<Option<Tensor>> {
        self.forward(ids, &mut Cache::default(), Logits::All, cancel, sink)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::infer::source::StoredModel;

    /// The shape and weights of the eval fixture `name` (llama, mistral or qwen2).
    pub(crate) fn fixture(name: &str) -> (Shape, StoredModel) {
        let dir = Path::new("tests/fixtures/eval").join(name);
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let shape = parse_shape(&dir, &serde_json::from_str(&text).unwrap()).unwrap();
        (shape, StoredModel::open(&dir).unwrap())
    }

    /// Feeding a window token by token over the KV cache, or running its attention in blocks
    /// of query positions, gives the logits of the whole window in one pass, on the llama (GQA,
    /// llama3 rope) and mistral (sliding window) fixtures; asking for the positions from one on
    /// gives those rows, and feeding no tokens is an error.
    #[test]
    fn cached_decoding_gives_the_full_window_logits() {
        for name in ["llama", "mistral"] {
            let (shape, model) = fixture(name);
            let mut net = Net::load(&shape, &model, Kernel::best_available()).unwrap();
            let ids: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % shape.vocab as u32).collect();
            let stop = AtomicBool::new(false);
            let window = |net: &Net| {
                net.logits(&ids, &stop, None)
                    .unwrap()
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap()
            };
            let full = window(&net);
            let near = |rows: &[Vec<f32>], what: &str| {
                assert_eq!(rows.len(), full.len(), "{name} {what}");
                for (p, (a, b)) in rows.iter().zip(&full).enumerate() {
                    let worst = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0f32, f32::max);
                    assert!(worst < 1e-4, "{name} {what} position {p}: {worst}");
                }
            };
            // The window's attention in blocks of 1 and of 7 query positions (the last block
            // short; mistral's 6-position sliding window leaves out the keys before it).
            let row_bytes = shape.heads * ids.len() * size_of::<f32>();
            for rows in [1, 7] {
                net.attention_bytes = rows * row_bytes;
                near(&window(&net), &format!("blocks of {rows}"));
            }
            net.attention_bytes = ATTENTION_BYTES;
            let tail = net
                .forward(&ids, &mut Cache::default(), Logits::From(33), &stop, None)
                .unwrap()
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(tail, full[33..], "{name} logits from position 33");
            let none = net.forward(&[], &mut Cache::default(), Logits::Last, &stop, None);
            assert!(none.is_err(), "{name}: no tokens is an error, not a panic");
            let mut cache = Cache::default();
            // A prompt of 5, then one token at a time.
            let first = net
                .forward(&ids[..5], &mut cache, Logits::All, &stop, None)
                .unwrap()
                .unwrap();
            let mut rows = first.to_vec2::<f32>().unwrap();
            for &id in &ids[5..] {
                let l = net
                    .forward(&[id], &mut cache, Logits::Last, &stop, None)
                    .unwrap()
                    .unwrap();
                rows.extend(l.to_vec2::<f32>().unwrap());
            }
            assert_eq!(cache.len(), ids.len());
            near(&rows, "token by token");
        }
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
