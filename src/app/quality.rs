//! The Quality tab's work: the open model's original against its in-app compression state (every
//! compressed tensor's reconstruction applied, nothing exported), compared by their outputs with
//! the eval engine (docs/DESIGN.md §4), and the function-space effect of each compressed tensor
//! and each layer applied alone.

use super::document::{Document, TensorResult, kind_of, layer_of};
use super::jobs::Ctx;
use crate::eval::weights::Weights;
use crate::eval::{EvalError, Evaluator, Family, Figures, Inputs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Decoder LMs: tokens of the bundled text scored per network run in the app (the CLI scores
/// all of it by default); enough for stable figures, short enough for one run per tensor.
pub const APP_TOKENS: usize = 4096;

/// What a decoder LM scores in a Quality run, as `compare --eval` takes it: the text (`None`:
/// the bundled one) and the window (`None`: the engine's default, at most the model's
/// positions). Encoders score the bundled sentences either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextChoice {
    /// A UTF-8 text file.
    pub text: Option<PathBuf>,
    /// Tokens per window.
    pub ctx: Option<usize>,
}

impl TextChoice {
    /// The engine's inputs: the text read (on the job's thread), at most [`APP_TOKENS`] of it.
    fn inputs(&self) -> Result<Inputs, String> {
        let text = self
            .text
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("{}: cannot read the text ({e})", p.display()))
            })
            .transpose()?;
        Ok(Inputs {
            text,
            ctx: self.ctx,
            max_tokens: Some(APP_TOKENS),
            ..Default::default()
        })
    }
}

/// Which compressed state a report was computed on: (tensor name, result generation), sorted.
pub type StateKey = Vec<(String, u64)>;

/// What a Quality run needs from the document, taken on the UI thread without copying weights.
pub struct Snapshot {
    path: PathBuf,
    tensors: Vec<(String, Arc<TensorResult>)>,
    key: StateKey,
}

/// One compressed tensor applied alone.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEffect {
    /// Tensor name.
    pub name: String,
    /// Layer number parsed from the name.
    pub layer: Option<usize>,
    /// Tensor kind (`attention.self.query`, `mlp.down_proj`, …).
    pub kind: String,
    /// Weight-space relative MSE (docs/DESIGN.md §1).
    pub relmse: f64,
    /// The figures of the original with only this tensor compressed.
    pub figures: Figures,
}

/// One layer's compressed tensors applied together, alone.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerEffect {
    /// Layer number.
    pub layer: usize,
    /// Compressed tensors in it.
    pub tensors: usize,
    /// The figures of the original with only this layer's tensors compressed.
    pub figures: Figures,
}

/// A finished Quality run.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Encoder or decoder LM.
    pub family: Family,
    /// Every compressed tensor applied, against the original.
    pub figures: Figures,
    /// Per tensor (empty without per-layer sensitivity), in the model's file order.
    pub tensors: Vec<TensorEffect>,
    /// Per layer, by layer number.
    pub layers: Vec<LayerEffect>,
    /// The state it was computed on.
    pub key: StateKey,
}

/// The compressed state of `doc` as a [`StateKey`].
pub fn state_key(doc: &Document) -> StateKey {
    let mut key: StateKey = doc
        .tensors
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.result.as_ref()?.generation)))
        .collect();
    key.sort();
    key
}

/// What a run on `doc` needs, or why it cannot run (one readable line starting with `what`,
/// the run's name).
pub fn snapshot(doc: &Document, what: &str) -> Result<Snapshot, String> {
    let Some(path) = doc.path.clone() else {
        return Err(format!(
            "{what}: '{}' is not a model on disk; open a model directory (config.json, \
             tokenizer.json and weights), compress tensors, then run",
            doc.title
        ));
    };
    let compressed: Vec<_> = doc.tensors.iter().filter(|t| t.result.is_some()).collect();
    if compressed.is_empty() {
        return Err(format!(
            "{what}: no tensor is compressed yet; compress some first"
        ));
    }
    if compressed.iter().any(|t| t.source.is_none()) {
        return Err(format!(
            "{what}: {} was opened as a packed file, without the original weights; open the \
             original model, compress it in the app, then run (or use `seedlm eval ORIGINAL \
             PACKED`)",
            path.display()
        ));
    }
    let tensors = compressed
        .iter()
        .filter_map(|t| Some((t.name.clone(), t.result.clone()?)))
        .collect();
    Ok(Snapshot {
        path,
        tensors,
        key: state_key(doc),
    })
}

impl Snapshot {
    /// The model's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The compressed state it was taken of.
    pub fn key(&self) -> &StateKey {
        &self.key
    }

    /// The original's weights in `evaluator` with every compressed tensor's reconstruction
    /// in place of its own.
    pub fn candidate(&self, evaluator: &Evaluator) -> Result<Weights, String> {
        let recon = self
            .tensors
            .iter()
            .map(|(name, r)| Ok((name.clone(), r.reconstruction()?)));
        evaluator
            .weights()
            .overlay(&self.path, recon)
            .map_err(|e| e.to_string())
    }
}

/// Runs the comparison on what `choice` says; with `per_layer` also each tensor and each layer
/// alone (one more network run each). Progress counts batches (or windows) times networks run.
pub fn run(
    snap: Snapshot,
    per_layer: bool,
    choice: &TextChoice,
    ctx: &Ctx<()>,
) -> Result<Report, String> {
    let inputs = choice.inputs()?;
    let failed = |e: EvalError| e.to_string();
    let evaluator = Evaluator::open_model(&snap.path).map_err(failed)?;
    let candidate = snap.candidate(&evaluator)?;
    let changed = candidate.changed().to_vec();
    let mut layers: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for c in &changed {
        if let Some(l) = layer_of(&c.name) {
            layers.entry(l).or_default().push(&c.name);
        }
    }
    let mut groups: Vec<Vec<&str>> = Vec::new();
    if per_layer {
        groups.extend(changed.iter().map(|c| vec![c.name.as_str()]));
        // A layer of one tensor is that tensor's run: no second run for it.
        groups.extend(layers.values().filter(|g| g.len() > 1).cloned());
    }
    let (figures, rest) = evaluator
        .sensitivity(&candidate, &groups, &inputs, ctx.control())
        .map_err(failed)?;
    let mut rest = rest.into_iter();
    let tensors: Vec<TensorEffect> = if per_layer {
        changed
            .iter()
            .zip(rest.by_ref())
            .map(|(c, figures)| TensorEffect {
                name: c.name.clone(),
                layer: layer_of(&c.name),
                kind: kind_of(&c.name),
                relmse: c.relmse,
                figures,
            })
            .collect()
    } else {
        Vec::new()
    };
    let layers = if per_layer {
        layers
            .iter()
            .filter_map(|(&layer, names)| {
                let figures = if names.len() > 1 {
                    rest.next()?
                } else {
                    tensors.iter().find(|t| t.name == names[0])?.figures.clone()
                };
                Some(LayerEffect {
                    layer,
                    tensors: names.len(),
                    figures,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Report {
        family: evaluator.family(),
        figures,
        tensors,
        layers,
        key: snap.key,
    })
}

/// How far outputs moved, as a positive number to draw on a log axis: 1 − mean cosine for
/// encoders, KL in nats for decoders.
pub fn distance(f: &Figures) -> f64 {
    match f {
        Figures::Encoder(e) => 1.0 - e.mean_cosine,
        Figures::Decoder(d) => d.kl,
    }
}

/// The name of [`distance`] for a family, for axis labels.
pub fn distance_name(family: Family) -> &'static str {
    match family {
        Family::Encoder => "1 − mean cosine",
        Family::Decoder => "KL (nats)",
    }
}
