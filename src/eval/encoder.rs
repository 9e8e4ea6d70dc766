//! BERT-family sentence encoders, embedding as sentence-transformers does (docs/DESIGN.md §4): the
//! tokenizer with its special tokens, truncation to `max_seq_length`, the pooling of
//! `modules.json` / `1_Pooling/config.json` (mean over the attention mask by default), then L2
//! normalisation.

use super::weights::Weights;
use super::{EvalError, candle_err, check, read_json, read_tokenizer};
use crate::core::control::Control;
use crate::infer::bert::{Act, BertNet, BertShape};
use crate::infer::kernel::Kernel;
use crate::io::error::ModelError;
use candle_core::{D, DType, Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Sentences embedded per forward pass.
const BATCH: usize = 16;

/// One pooling mode of sentence-transformers' `Pooling` module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pool {
    Cls,
    Max,
    Mean,
    MeanSqrtLen,
}

/// Model-level figures of one encoder candidate against the original.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EncoderFigures {
    /// Mean over sentences of cos(e_original, e_candidate).
    pub mean_cosine: f64,
    /// Minimum over sentences of the same.
    pub min_cosine: f64,
    /// Spearman correlation of the upper triangles of the two pairwise cosine-similarity
    /// matrices (`None` when undefined: fewer than 2 pairs or constant similarities).
    pub similarity_spearman: Option<f64>,
    /// Sentences embedded.
    pub sentences: usize,
}

/// A BERT-family encoder opened for evaluation.
pub struct Encoder {
    pub(crate) dir: PathBuf,
    shape: BertShape,
    /// The tensors' name prefix (`""`, or e.g. `"bert."`).
    prefix: String,
    pad: u32,
    tokenizer: tokenizers::Tokenizer,
    pooling: Vec<Pool>,
    pub(crate) weights: Weights,
}

/// Splits a sentence file: one sentence per line, blank lines skipped.
pub fn parse_sentences(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The pooling modes in the order sentence-transformers concatenates them.
fn pooling(dir: &Path) -> Result<Vec<Pool>, ModelError> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(vec![Pool::Mean]);
    }
    let modules = read_json(&modules_path)?;
    let mut pool_dir = None;
    for m in modules.as_array().into_iter().flatten() {
        let kind = m.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let path = m.get("path").and_then(|t| t.as_str()).unwrap_or("");
        match kind.rsplit('.').next().unwrap_or("") {
            "Transformer" | "Normalize" => {}
            "Pooling" => {
                // A module lives in the model directory: no absolute path, no `..`.
                let inside = std::path::Path::new(path).components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::CurDir
                    )
                });
                if !inside {
                    return Err(ModelError::file(
                        &modules_path,
                        format!("module path '{path}' leads outside the model directory"),
                    ));
                }
                pool_dir = Some(dir.join(path))
            }
            other => {
                return Err(ModelError::file(
                    &modules_path,
                    format!(
                        "module '{other}' is not supported (only Transformer, Pooling, Normalize)"
                    ),
                ));
            }
        }
    }
    let Some(pool_dir) = pool_dir else {
        return Ok(vec![Pool::Mean]);
    };
    let cfg_path = pool_dir.join("config.json");
    let cfg = read_json(&cfg_path)?;
    let on = |key: &str| cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    for key in ["pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"] {
        if on(key) {
            return Err(ModelError::file(
                &cfg_path,
                format!("{key} is not supported"),
            ));
        }
    }
    let modes: Vec<Pool> = [
        ("pooling_mode_cls_token", Pool::Cls),
        ("pooling_mode_max_tokens", Pool::Max),
        ("pooling_mode_mean_tokens", Pool::Mean),
        ("pooling_mode_mean_sqrt_len_tokens", Pool::MeanSqrtLen),
    ]
    .into_iter()
    .filter(|(k, _)| on(k))
    .map(|(_, p)| p)
    .collect();
    Ok(if modes.is_empty() {
        vec![Pool::Mean]
    } else {
        modes
    })
}

/// The name prefix of an encoder's tensors (`""`, or e.g. `"bert."`).
fn prefix(names: &[String]) -> String {
    let probe = "encoder.layer.0.attention.self.query.weight";
    names
        .iter()
        .find_map(|n| n.strip_suffix(probe))
        .unwrap_or("")
        .to_string()
}

impl Encoder {
    /// The original's weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Opens the encoder in `dir` whose parsed `config.json` is `config`.
    pub fn open(dir: &Path, config: &serde_json::Value) -> Result<Self, EvalError> {
        let config_path = dir.join("config.json");
        let cfg: Config = serde_json::from_value(config.clone())
            .map_err(|e| ModelError::file(&config_path, format!("not a BERT config ({e})")))?;
        // Values no BERT can have: refused rather than divided by or run as a no-op.
        let bad = |what: String| ModelError::file(&config_path, what);
        let heads = cfg.num_attention_heads;
        if heads == 0 || !cfg.hidden_size.is_multiple_of(heads) {
            return Err(bad(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {heads}",
                cfg.hidden_size
            ))
            .into());
        }
        if cfg.num_hidden_layers == 0 {
            return Err(bad("num_hidden_layers is 0: there is no layer to evaluate".into()).into());
        }
        if !(cfg.layer_norm_eps > 0.0 && cfg.layer_norm_eps.is_finite()) {
            return Err(bad(format!(
                "layer_norm_eps {} must be a positive number",
                cfg.layer_norm_eps
            ))
            .into());
        }
        let st_path = dir.join("sentence_bert_config.json");
        let max_len = if st_path.is_file() {
            read_json(&st_path)?
                .get("max_seq_length")
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
        } else {
            None
        }
        .unwrap_or(cfg.max_position_embeddings)
        .min(cfg.max_position_embeddings);
        let mut tokenizer = read_tokenizer(dir)?;
        // The tokenizers crate subtracts its special tokens from the length unchecked.
        let special = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        if max_len <= special {
            return Err(ModelError::file(
                &st_path,
                format!(
                    "max_seq_length {max_len} leaves no room for a token beside the tokenizer's {special} special tokens"
                ),
            )
            .into());
        }
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| ModelError::file(dir, format!("cannot set truncation ({e})")))?;
        let weights = Weights::open(dir)?;
        let encoder = Encoder {
            dir: dir.to_path_buf(),
            tokenizer,
            pooling: pooling(dir)?,
            prefix: prefix(weights.names()),
            pad: cfg.pad_token_id as u32,
            shape: BertShape {
                vocab: cfg.vocab_size,
                hidden: cfg.hidden_size,
                intermediate: cfg.intermediate_size,
                layers: cfg.num_hidden_layers,
                heads,
                positions: cfg.max_position_embeddings,
                token_types: cfg.type_vocab_size,
                eps: cfg.layer_norm_eps,
                act: match cfg.hidden_act {
                    HiddenAct::Gelu => Act::Gelu,
                    HiddenAct::GeluApproximate => Act::GeluTanh,
                    HiddenAct::Relu => Act::Relu,
                },
            },
            weights,
        };
        // Fail now, naming the tensor, rather than on the first sentence.
        encoder.net(&encoder.weights)?;
        Ok(encoder)
    }

    /// The network over `weights`, run from their stored form.
    fn net<'w>(&self, weights: &'w Weights) -> Result<BertNet<'w>, EvalError> {
        Ok(BertNet::load(
            &self.shape,
            weights,
            &self.prefix,
            Kernel::best_available(),
        )?)
    }

    /// Token ids of each sentence, special tokens added, truncated to `max_seq_length` (the
    /// tokenizer keeps the closing special token, as sentence-transformers' does).
    fn tokenize(&self, sentences: &[String]) -> Result<Vec<Vec<u32>>, EvalError> {
        let path = self.dir.join("tokenizer.json");
        sentences
            .iter()
            .map(|s| {
                let enc = self
                    .tokenizer
                    .encode(s.as_str(), true)
                    .map_err(|e| ModelError::file(&path, format!("cannot tokenize '{s}': {e}")))?;
                let ids = enc.get_ids().to_vec();
                Ok(ids)
            })
            .collect()
    }

    /// Embeddings of `ids` (already tokenized sentences) with `weights`, L2-normalised, one row
    /// per sentence. Adds one to `progress.done` per batch.
    fn embed_ids(
        &self,
        weights: &Weights,
        ids: &[Vec<u32>],
        ctl: Control<'_>,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        let net = self.net(weights)?;
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(BATCH) {
            check(ctl.cancel)?;
            let rows = self
                .embed_batch(&net, batch)
                .map_err(candle_err(&self.dir, "encoder inference failed"))?;
            out.extend(rows);
            ctl.progress.done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }

    /// Token ids (row-major) and attention mask of a batch, padded to its longest sentence.
    fn batch_tensors(&self, batch: &[Vec<u32>]) -> candle_core::Result<(Vec<u32>, Tensor)> {
        let len = batch.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for s in batch {
            ids.extend(
                s.iter()
                    .copied()
                    .chain(std::iter::repeat_n(self.pad, len - s.len())),
            );
            mask.extend((0..len).map(|i| if i < s.len() { 1f32 } else { 0.0 }));
        }
        let mask = Tensor::from_vec(mask, (batch.len(), len), &Device::Cpu)?;
        Ok((ids, mask))
    }

    fn embed_batch(&self, net: &BertNet, batch: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (ids, mask) = self.batch_tensors(batch)?;
        let hidden = net.forward(&ids, &mask, None)?; // [b, len, h]
        let m = mask.unsqueeze(2)?; // [b, len, 1]
        let mut parts = Vec::new();
        for p in &self.pooling {
            parts.push(match p {
                Pool::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
                Pool::Max => {
                    // Padding gets a very negative value so it never wins, as in s-t.
                    let off = ((m.ones_like()? - &m)? * -1e9)?;
                    hidden.broadcast_add(&off)?.max(1)?
                }
                Pool::Mean | Pool::MeanSqrtLen => {
                    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                    let n = mask.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
                    let n = if *p == Pool::Mean { n } else { n.sqrt()? };
                    sum.broadcast_div(&n)?
                }
            });
        }
        let pooled = Tensor::cat(&parts, D::Minus1)?;
        let norm = pooled
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        pooled.broadcast_div(&norm)?.to_dtype(DType::F32)?.to_vec2()
    }

    /// The second moment E[x_j²] of each input channel j of every linear layer the encoder
    /// runs, by weight tensor name, over the tokens (padding excluded) of `texts`, with the
    /// original weights. Adds one to `progress.done` per batch (and sets its total).
    pub fn input_moments(
        &self,
        texts: &[String],
        ctl: Control<'_>,
    ) -> Result<HashMap<String, Vec<f64>>, EvalError> {
        let ids = self.tokenize(texts)?;
        let net = self.net(&self.weights)?;
        ctl.progress
            .total
            .store(ids.len().div_ceil(BATCH) as u64, Ordering::Relaxed);
        let mut sums: HashMap<String, Vec<f64>> = HashMap::new();
        let mut tokens = 0.0f64;
        for batch in ids.chunks(BATCH) {
            check(ctl.cancel)?;
            let mut run = || -> candle_core::Result<f64> {
                let (ids, mask) = self.batch_tensors(batch)?;
                let m = mask.unsqueeze(2)?;
                let mut sink = |name: &str, x: &Tensor| {
                    // A cancel stops the batch at its next linear layer (a batch takes seconds).
                    if ctl.cancelled() {
                        return Err(candle_core::Error::Msg("cancelled".into()));
                    }
                    let s = x.sqr()?.broadcast_mul(&m)?.sum((0, 1))?.to_vec1::<f32>()?;
                    let acc = sums.entry(name.to_string()).or_insert(vec![0.0; s.len()]);
                    for (a, v) in acc.iter_mut().zip(s) {
                        *a += f64::from(v);
                    }
                    Ok(())
                };
                net.forward(&ids, &mask, Some(&mut sink))?;
                mask.sum_all()?.to_scalar::<f32>().map(f64::from)
            };
            let counted = run();
            check(ctl.cancel)?;
            tokens += counted.map_err(candle_err(&self.dir, "calibration forward failed"))?;
            ctl.progress.done.fetch_add(1, Ordering::Relaxed);
        }
        for v in sums.values_mut() {
            v.iter_mut().for_each(|x| *x /= tokens.max(1.0));
        }
        Ok(sums)
    }

    /// Embeddings of `sentences` with `weights` as sentence-transformers makes them.
    pub fn embed(
        &self,
        weights: &Weights,
        sentences: &[String],
        ctl: Control<'_>,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        let ids = self.tokenize(sentences)?;
        self.embed_ids(weights, &ids, ctl)
    }

    /// Compares the original's embeddings of `sentences` with each variant's.
    pub fn compare(
        &self,
        variants: &[Weights],
        sentences: &[String],
        ctl: Control<'_>,
    ) -> Result<Vec<EncoderFigures>, EvalError> {
        if sentences.is_empty() {
            return Err(ModelError::file(&self.dir, "no sentences to embed").into());
        }
        let ids = self.tokenize(sentences)?;
        let batches = ids.len().div_ceil(BATCH) as u64;
        ctl.progress
            .total
            .store(batches * (variants.len() as u64 + 1), Ordering::Relaxed);
        let base = self.embed_ids(&self.weights, &ids, ctl)?;
        let base_sim = similarities(&base);
        variants
            .iter()
            .map(|w| {
                let emb = self.embed_ids(w, &ids, ctl)?;
                let cos: Vec<f64> = base.iter().zip(&emb).map(|(a, b)| cosine(a, b)).collect();
                Ok(EncoderFigures {
                    mean_cosine: cos.iter().sum::<f64>() / cos.len() as f64,
                    min_cosine: cos.iter().copied().fold(f64::INFINITY, f64::min),
                    similarity_spearman: spearman(&base_sim, &similarities(&emb)),
                    sentences: sentences.len(),
                })
            })
            .collect()
    }
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// The upper triangle (i < j, row by row) of the pairwise cosine-similarity matrix.
fn similarities(emb: &[Vec<f32>]) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..emb.len() {
        for j in i + 1..emb.len() {
            out.push(cosine(&emb[i], &emb[j]));
        }
    }
    out
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson correlation of tie-averaged ranks); `None` when
/// undefined.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in ra.iter().zip(&rb) {
        ab += (x - mean) * (y - mean);
        aa += (x - mean).powi(2);
        bb += (y - mean).powi(2);
    }
    (aa > 0.0 && bb > 0.0).then(|| ab / (aa * bb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_matches_hand_computed_values() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        // Ranks [1, 2, 3, 4] against [2, 1, 4, 3]: 1 - 6·4 / (4·15) = 0.6.
        let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[0.2, 0.1, 0.4, 0.3]).unwrap();
        assert!((r - 0.6).abs() < 1e-12, "{r}");
        assert_eq!(ranks(&[5.0, 1.0, 5.0]), vec![2.5, 1.0, 2.5]);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    /// Our network, run from the stored weights, computes what candle-transformers' `BertModel`
    /// computes on f32 copies of them: the same last hidden states on the demo model; and its
    /// hook sees every linear layer's input once per layer, with its weight's input width.
    #[test]
    fn the_stored_form_network_equals_the_reference_bert() {
        use candle_transformers::models::bert::BertModel;
        let dir = Path::new("assets/demo");
        let config = read_json(&dir.join("config.json")).unwrap();
        let enc = Encoder::open(dir, &config).unwrap();
        let texts = ["It is a truth universally acknowledged.", "A wife."].map(String::from);
        let ids = enc.tokenize(&texts).unwrap();
        let (ids, mask) = enc.batch_tensors(&ids).unwrap();
        let cfg: Config = serde_json::from_value(config).unwrap();
        let model = BertModel::load(enc.weights.var_builder().unwrap(), &cfg).unwrap();
        let ids_t = Tensor::from_vec(ids.clone(), mask.dims2().unwrap(), &Device::Cpu).unwrap();
        let want = model
            .forward(&ids_t, &ids_t.zeros_like().unwrap(), Some(&mask))
            .unwrap();
        let mut seen = Vec::new();
        let got = enc
            .net(&enc.weights)
            .unwrap()
            .forward(
                &ids,
                &mask,
                Some(&mut |name: &str, x: &Tensor| {
                    seen.push((name.to_string(), x.dim(2)?));
                    Ok(())
                }),
            )
            .unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        assert_eq!(seen.len(), 6 * 6);
        assert!(seen.contains(&("encoder.layer.5.output.dense.weight".into(), 1536)));
        assert!(seen.contains(&("encoder.layer.0.attention.self.key.weight".into(), 384)));
        let moments = enc.input_moments(&texts, Control::unwatched()).unwrap();
        assert_eq!(moments.len(), 36);
        assert!(
            moments
                .values()
                .flatten()
                .all(|&m| m.is_finite() && m >= 0.0)
        );
    }

    #[test]
    fn sentences_skip_blank_lines() {
        assert_eq!(parse_sentences(" a \n\n b\n"), vec!["a", "b"]);
    }

    #[test]
    fn a_module_path_outside_the_model_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for path in ["../../../etc", "/etc", "1_Pooling/../../x"] {
            let modules = serde_json::json!([
                {"type": "sentence_transformers.models.Pooling", "path": path}
            ]);
            std::fs::write(dir.path().join("modules.json"), modules.to_string()).unwrap();
            let err = pooling(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains("modules.json") && err.contains("outside"),
                "{err}"
            );
        }
    }
}
