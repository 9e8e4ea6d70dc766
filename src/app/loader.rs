//! Opening models for the app: the bundled demo model, safetensors files and directories.

use super::document::{Document, TensorEntry};
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the bundled demo model lives, relative to the crate root.
pub const DEMO_MODEL: &str = "assets/demo/model.safetensors";

/// The bundled demo model if present, else a small synthetic one built in memory.
pub fn demo() -> Document {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_MODEL);
    match load(&path) {
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
                dtype: "F32".into(),
                original: Some(Arc::new(data)),
                result: None,
            });
        }
    }
    Document::new(None, "synthetic demo model".into(), tensors)
}

/// Opens a safetensors file, or every `*.safetensors` file of a directory.
pub fn load(path: &Path) -> anyhow::Result<Document> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}: cannot list directory", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        v.sort();
        if v.is_empty() {
            bail!(
                "{}: no .safetensors files in this directory",
                path.display()
            );
        }
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut tensors = Vec::new();
    for f in &files {
        read_safetensors(f, &mut tensors)?;
    }
    let title = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    Ok(Document::new(Some(path.to_path_buf()), title, tensors))
}

fn read_safetensors(path: &Path, out: &mut Vec<TensorEntry>) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    for (name, view) in st.iter() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            safetensors::Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            safetensors::Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            // Integer tensors (token ids, masks) are not weights to compress.
            _ => continue,
        };
        out.push(TensorEntry {
            name: name.to_string(),
            shape: view.shape().to_vec(),
            dtype: format!("{:?}", view.dtype()),
            original: Some(Arc::new(data)),
            result: None,
        });
    }
    Ok(())
}
