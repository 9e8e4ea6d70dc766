//! BERT-family encoders run from their stored weights, as Hugging Face's `BertModel` computes
//! them: word, position and token-type embeddings with a LayerNorm, then layers of
//! bidirectional attention over the unmasked positions and a GELU (or ReLU) MLP, each with a
//! residual LayerNorm. The linear layers are [`Matrix`] products on the stored form (a packed
//! tensor is never expanded to f32); the embeddings are read a row per token.

use crate::infer::kernel::Kernel;
use crate::infer::linear::{Linear, Sink, vector};
use crate::infer::matrix::Matrix;
use crate::infer::source::Source;
use crate::io::error::ModelError;
use candle_core::{D, Device, Tensor};

/// The MLP's activation (`hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

/// The shape of a BERT network, from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BertShape {
    pub(crate) vocab: usize,
    pub(crate) hidden: usize,
    pub(crate) intermediate: usize,
    pub(crate) layers: usize,
    pub(crate) heads: usize,
    pub(crate) positions: usize,
    pub(crate) token_types: usize,
    pub(crate) eps: f64,
    pub(crate) act: Act,
}

/// A LayerNorm's scale and shift.
struct Norm {
    w: Tensor,
    b: Tensor,
}

impl Norm {
    fn load(src: &dyn Source, name: &str, len: usize) -> Result<Self, ModelError> {
        Ok(Norm {
            w: vector(src, &format!("{name}.weight"), len)?,
            b: vector(src, &format!("{name}.bias"), len)?,
        })
    }

    fn forward(&self, x: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.w, &self.b, eps as f32)
    }
}

struct Layer<'a> {
    q: Linear<'a>,
    k: Linear<'a>,
    v: Linear<'a>,
    o: Linear<'a>,
    attn_norm: Norm,
    up: Linear<'a>,
    down: Linear<'a>,
    out_norm: Norm,
}

/// An encoder network over one weight source.
pub struct BertNet<'a> {
    shape: BertShape,
    kernel: Kernel,
    /// The tensors' name prefix (`""` or e.g. `"bert."`).
    prefix: String,
    words: Matrix<'a>,
    positions: Matrix<'a>,
    types: Matrix<'a>,
    embed_norm: Norm,
    layers: Vec<Layer<'a>>,
}

impl<'a> BertNet<'a> {
    /// Builds the network of `shape` over `src` (tensor names after `prefix`), whose products
    /// run on `kernel`. A missing tensor or one of the wrong shape is an error naming it.
    pub(crate) fn load(
        shape: &BertShape,
        src: &'a dyn Source,
        prefix: &str,
        kernel: Kernel,
    ) -> Result<Self, ModelError> {
        let s = shape;
        let (h, inter) = (s.hidden, s.intermediate);
        let emb = |part: &str, rows| src.matrix(&format!("{prefix}embeddings.{part}"), rows, h);
        // Not `with_capacity`: the count is the config's, unchecked until a layer is missing.
        let mut layers = Vec::new();
        for i in 0..s.layers {
            let l = format!("{prefix}encoder.layer.{i}");
            let lin = |part: &str, rows, cols| {
                Linear::load(src, &format!("{l}.{part}"), rows, cols, true)
            };
            layers.push(Layer {
                q: lin("attention.self.query", h, h)?,
                k: lin("attention.self.key", h, h)?,
                v: lin("attention.self.value", h, h)?,
                o: lin("attention.output.dense", h, h)?,
                attn_norm: Norm::load(src, &format!("{l}.attention.output.LayerNorm"), h)?,
                up: lin("intermediate.dense", inter, h)?,
                down: lin("output.dense", h, inter)?,
                out_norm: Norm::load(src, &format!("{l}.output.LayerNorm"), h)?,
            });
        }
        Ok(BertNet {
            shape: s.clone(),
            kernel,
            prefix: prefix.to_string(),
            words: emb("word_embeddings.weight", s.vocab)?,
            positions: emb("position_embeddings.weight", s.positions)?,
            types: emb("token_type_embeddings.weight", s.token_types)?,
            embed_norm: Norm::load(src, &format!("{prefix}embeddings.LayerNorm"), h)?,
            layers,
        })
    }

    /// The last hidden states `[b, len, hidden]` of a batch of `b` sentences padded to `len`
    /// tokens (`ids` row-major, token type 0), attending only where `mask` (`[b, len]`, 1 or 0)
    /// is 1. `sink`, when given, sees the input `[b, len, in]` of every linear layer with its
    /// weight tensor's name (for calibration).
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        mask: &Tensor,
        mut sink: Option<&mut Sink>,
    ) -> candle_core::Result<Tensor> {
        let s = &self.shape;
        let (b, len) = mask.dims2()?;
        if ids.len() != b * len {
            candle_core::bail!("{} token ids for a {b}×{len} batch", ids.len());
        }
        if len > s.positions {
            candle_core::bail!("{len} tokens, but the model has {} positions", s.positions);
        }
        let mut x = vec![0f32; ids.len() * s.hidden];
        // The batch's positions are decoded once, not once per sentence.
        let (mut pos, mut typ) = (vec![0f32; len * s.hidden], vec![0f32; s.hidden]);
        self.positions.decode_rows(0, &mut pos);
        self.types.decode_rows(0, &mut typ);
        for (k, (row, &id)) in x.chunks_exact_mut(s.hidden).zip(ids).enumerate() {
            if id as usize >= s.vocab {
                candle_core::bail!("token id {id} is outside the vocabulary of {}", s.vocab);
            }
            self.words.decode_rows(id as usize, row);
            let pos = &pos[(k % len) * s.hidden..][..s.hidden];
            // BERT adds the token type before the position, as the reference does.
            for ((v, &t), &p) in row.iter_mut().zip(&typ).zip(pos) {
                *v = (*v + t) + p;
            }
        }
        let x = Tensor::from_vec(x, (b, len, s.hidden), &Device::Cpu)?;
        let mut x = self.embed_norm.forward(&x, s.eps)?;
        // 0 where a position may be attended to, the most negative f32 where it is padding.
        let masked =
            ((mask.ones_like()? - mask)? * f64::from(f32::MIN))?.reshape((b, 1, 1, len))?;
        let (heads, hd) = (s.heads, s.hidden / s.heads);
        let split = |t: Tensor| {
            t.reshape((b, len, heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let kernel = self.kernel;
        for (i, l) in self.layers.iter().enumerate() {
            let mut see = |parts: &[&str], t: &Tensor| -> candle_core::Result<()> {
                if let Some(sink) = sink.as_mut() {
                    for part in parts {
                        sink(
                            &format!("{}encoder.layer.{i}.{part}.weight", self.prefix),
                            t,
                        )?;
                    }
                }
                Ok(())
            };
            see(
                &[
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                ],
                &x,
            )?;
            let q = split(l.q.forward(kernel, &x)?)?;
            let k = split(l.k.forward(kernel, &x)?)?;
            let v = split(l.v.forward(kernel, &x)?)?;
            let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&masked)?;
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .flatten_from(D::Minus2)?;
            see(&["attention.output.dense"], &ctx)?;
            let a = l
                .attn_norm
                .forward(&(l.o.forward(kernel, &ctx)? + &x)?, s.eps)?;
            see(&["intermediate.dense"], &a)?;
            let g = l.up.forward(kernel, &a)?;
            let g = match s.act {
                Act::Gelu => g.gelu_erf()?,
                Act::GeluTanh => g.gelu()?,
                Act::Relu => g.relu()?,
            };
            see(&["output.dense"], &g)?;
            x = l
                .out_norm
                .forward(&(l.down.forward(kernel, &g)? + a)?, s.eps)?;
        }
        Ok(x)
    }
}
