//! Writing what the app holds: a decompressed safetensors model (compressed tensors replaced
//! by ŵ). Files are written to a temporary file beside the target and renamed into place.

use super::command::ExportKind;
use super::document::{Document, TensorResult};
use crate::compress::Progress;
use anyhow::{Context, bail};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One tensor as handed to the export thread.
pub struct ExportTensor {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    original: Option<Arc<Vec<f32>>>,
    result: Option<Arc<TensorResult>>,
}

/// Takes what an export needs from the document (cheap: the data is shared).
pub fn snapshot(doc: &Document) -> Vec<ExportTensor> {
    doc.tensors
        .iter()
        .map(|t| ExportTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype.clone(),
            original: t.original.clone(),
            result: t.result.clone(),
        })
        .collect()
}

/// Writes `tensors` to `path`; returns a one-line summary.
pub fn write(
    kind: ExportKind,
    tensors: &[ExportTensor],
    path: &Path,
    cancel: &AtomicBool,
    progress: &Progress,
) -> anyhow::Result<String> {
    match kind {
        ExportKind::Decompressed => write_decompressed(tensors, path, cancel, progress),
        ExportKind::Packed => bail!("{}: packed export is not available yet", path.display()),
    }
}

fn write_decompressed(
    tensors: &[ExportTensor],
    path: &Path,
    cancel: &AtomicBool,
    progress: &Progress,
) -> anyhow::Result<String> {
    progress
        .total
        .store(tensors.len() as u64, Ordering::Relaxed);
    let mut bufs: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut replaced = 0;
    for t in tensors {
        if cancel.load(Ordering::Relaxed) {
            bail!("cancelled");
        }
        let values: &[f32] = match (&t.result, &t.original) {
            (Some(r), _) => {
                replaced += 1;
                &r.recon
            }
            (None, Some(o)) => o,
            (None, None) => bail!("{}: no weights to write", t.name),
        };
        // Keep half-precision tensors in their dtype; everything else is written as F32.
        let (dtype, bytes) = match t.dtype.as_str() {
            "F16" => (
                safetensors::Dtype::F16,
                values
                    .iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect(),
            ),
            "BF16" => (
                safetensors::Dtype::BF16,
                values
                    .iter()
                    .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                    .collect(),
            ),
            _ => (
                safetensors::Dtype::F32,
                values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        };
        bufs.push((t.name.clone(), dtype, t.shape.clone(), bytes));
        progress.done.fetch_add(1, Ordering::Relaxed);
    }
    let views = bufs
        .iter()
        .map(|(n, d, s, b)| {
            Ok((
                n.as_str(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .with_context(|| format!("{}: cannot build the file", path.display()))?;
    let bytes = safetensors::serialize(views, None)
        .with_context(|| format!("{}: cannot build the file", path.display()))?;
    write_atomically(path, &bytes)?;
    Ok(format!(
        "wrote {} ({} tensors, {replaced} reconstructed from SeedLM codes)",
        path.display(),
        tensors.len()
    ))
}

/// Writes `bytes` to a temporary file in `path`'s directory, then renames it to `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "{}: cannot create a file in {}",
            path.display(),
            dir.display()
        )
    })?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .with_context(|| format!("{}: write failed", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("{}: cannot rename into place", path.display()))?;
    Ok(())
}
