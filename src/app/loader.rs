//! Opening models for the app (through the engine's model and packed-file readers): the bundled
//! demo model, safetensors files, model directories and packed files.

use super::document::{Document, Mapped, PackedCodes, RawEntry, Source, TensorEntry, TensorResult};
use crate::core::control::Control;
use crate::eval::{self, Family};
use crate::io::dtype::{self, Dtype};
use crate::io::job_plan::TextId;
use crate::io::opened::{self, Opened};
use crate::io::packed::PackedModel;
use crate::io::selection::default_rule;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Where the bundled demo model lives, relative to the crate root.
pub const DEMO_MODEL: &str = "assets/demo/model.safetensors";

/// Whether `path` is the bundled demo model (its checkout must stay as it is).
pub fn is_demo(path: &Path) -> bool {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_MODEL);
    match (path.canonicalize(), demo.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The bundled demo model if present (it is when run from the source tree), else a small
/// synthetic one built in memory.
pub fn demo() -> Document {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_MODEL);
    match load(&path, Control::unwatched()) {
        Ok(doc) => doc,
        Err(_) => synthetic(),
    }
}

/// A deterministic transformer-shaped model: 4 layers of q/k/v/o (64×64) and up/down (128×64,
/// 64×128) with Gaussian weights, per-row scales and a few outliers, as LLM weights have.
pub fn synthetic() -> Document {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let normal = Normal::new(0.0f32, 1.0).expect("unit normal");
    let mut tensors = Vec::new();
    for layer in 0..4 {
        for (kind, rows, cols) in [
            ("self_attn.q_proj", 64, 64),
            ("self_attn.k_proj", 64, 64),
            ("self_attn.v_proj", 64, 64),
            ("self_attn.o_proj", 64, 64),
            ("mlp.up_proj", 128, 64),
            ("mlp.down_proj", 64, 128),
        ] {
            let mut data = Vec::with_capacity(rows * cols);
            for _ in 0..rows {
                let row_scale = 0.02 * (1.0 + 0.5 * normal.sample(&mut rng).abs());
                for _ in 0..cols {
                    let mut x = normal.sample(&mut rng) * row_scale;
                    if rand::Rng::random_ratio(&mut rng, 1, 200) {
                        x *= 8.0;
                    }
                    data.push(x);
                }
            }
            tensors.push(TensorEntry {
                name: format!("model.layers.{layer}.{kind}.weight"),
                shape: vec![rows, cols],
                dtype: Dtype::F32,
                source: Some(Source::Memory(Arc::new(data))),
                result: None,
                compressible: true,
            });
        }
    }
    Document::new(None, "synthetic demo model".into(), tensors)
}

/// Opens a model file, a model directory or a packed file, counting the tensors taken in the
/// progress and stopping when cancelled. A model is read by its headers only: its tensors are memory-mapped and read
/// when a view or job asks for them. A packed file's header is checked at once, each
/// compressed tensor's data as it is decoded (the CLI's `decompress` checks all up front).
pub fn load(path: &Path, ctl: Control<'_>) -> anyhow::Result<Document> {
    let title = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let model = match opened::open_headers(path)? {
        Opened::Plain(m) => Mapped::new(m),
        Opened::Packed(p) => {
            let mut doc = load_packed(p, path, title, ctl)?;
            doc.family = family_of(path);
            return Ok(doc);
        }
    };
    let mut tensors = Vec::new();
    let mut extra = Vec::new();
    let all = model.model().tensors();
    ctl.progress
        .total
        .store(all.len() as u64, Ordering::Relaxed);
    for (i, t) in all.iter().enumerate() {
        taken(path, ctl)?;
        if dtype::is_float(t.dtype) {
            tensors.push(TensorEntry {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                source: Some(Source::Mapped(model.clone(), i)),
                result: None,
                compressible: default_rule(&t.name, &t.shape, t.dtype),
            });
        } else {
            extra.push(raw(&t.name, &t.shape, t.dtype, model.model().bytes(t)));
        }
    }
    let mut doc = Document::new(Some(path.to_path_buf()), title, tensors);
    doc.order = model
        .model()
        .tensors()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    doc.extra = extra;
    doc.metadata = model.model().metadata();
    doc.mapped = Some(model);
    doc.family = family_of(path);
    Ok(doc)
}

/// The kind of network the config.json beside `path` names, or why it cannot be run.
fn family_of(path: &Path) -> Result<Family, String> {
    let dir = eval::model_dir(path).map_err(|e| e.to_string())?;
    let config = dir.join("config.json");
    eval::family(
        &config,
        &eval::read_json(&config).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// A packed file: compressed tensors come with their codes and reconstruction but no original.
/// Nothing is read but the header: records and plain tensors stay in the map, each compressed
/// tensor's records checked when a view or job first reads them.
fn load_packed(
    p: PackedModel,
    path: &Path,
    title: String,
    ctl: Control<'_>,
) -> anyhow::Result<Document> {
    let p = Arc::new(p);
    // Which tensors a calibrated compression weighted, and by what text.
    let record = p.calibration_record();
    let calibration_of = |name: &str| {
        let r = record
            .as_ref()
            .filter(|r| r.tensors.iter().any(|t| t == name))?;
        Some(TextId {
            path: r.text.clone().into(),
            sha256: r.sha256.clone(),
        })
    };
    let mut tensors = Vec::new();
    let mut extra = Vec::new();
    ctl.progress
        .total
        .store(p.tensors().len() as u64, Ordering::Relaxed);
    for (i, t) in p.tensors().iter().enumerate() {
        taken(path, ctl)?;
        let entry = |source, result| TensorEntry {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            source,
            result,
            compressible: default_rule(&t.name, &t.shape, t.dtype),
        };
        match PackedCodes::in_file(&p, i) {
            Some(compressed) => tensors.push(entry(
                None,
                Some(Arc::new(TensorResult {
                    compressed,
                    stats: None,
                    stored_relmse: t.packed.as_ref().and_then(|m| m.relmse),
                    generation: i as u64 + 1,
                    calibration: calibration_of(&t.name),
                })),
            )),
            None if dtype::is_float(t.dtype) => {
                tensors.push(entry(Some(Source::Packed(p.clone(), i)), None));
            }
            None => extra.push(raw(&t.name, &t.shape, t.dtype, p.stored_bytes(t))),
        }
    }
    let mut doc = Document::new(Some(path.to_path_buf()), title, tensors);
    doc.order = p.tensors().iter().map(|t| t.name.clone()).collect();
    doc.extra = extra;
    doc.metadata = p.source_metadata();
    Ok(doc)
}

/// Counts one more tensor taken in; an error once the open is cancelled (a model opened later
/// replaces this one).
fn taken(path: &Path, ctl: Control<'_>) -> anyhow::Result<()> {
    if ctl.cancelled() {
        anyhow::bail!("{}: opening cancelled", path.display());
    }
    ctl.progress.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn raw(name: &str, shape: &[usize], dtype: Dtype, bytes: &[u8]) -> RawEntry {
    RawEntry {
        name: name.to_string(),
        shape: shape.to_vec(),
        dtype,
        bytes: Arc::new(bytes.to_vec()),
    }
}
