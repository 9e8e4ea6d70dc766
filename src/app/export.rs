//! Exports through the engine's writers: the packed file of the compressed tensors, or a
//! decompressed safetensors model (compressed tensors replaced by ŵ in their original dtype).
//! Both are written to a temporary file beside the target and renamed into place.

use super::document::{Document, RawEntry, Source, TensorResult};
use crate::core::control::Control;
use crate::io::container::{OutTensor, Payload, write_atomic};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::io::job_plan::TextId;
use crate::io::packed::{
    CalibrationRecord, CompressedEntry, CompressedHead, KEY_CALIBRATION, PlainEntry, write_packed,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// The SeedLM packed file of the compressed tensors.
    Packed,
    /// A safetensors model with compressed tensors replaced by their reconstruction.
    Decompressed,
}

/// One float tensor as handed to the export thread (the data is shared, not copied).
pub struct ExportTensor {
    name: String,
    shape: Vec<usize>,
    dtype: Dtype,
    source: Option<Source>,
    result: Option<Arc<TensorResult>>,
}

/// What an export needs from the document.
pub struct Snapshot {
    tensors: Vec<ExportTensor>,
    extra: Vec<RawEntry>,
    order: Vec<String>,
    metadata: BTreeMap<String, String>,
}

/// Takes what an export needs from the document (cheap: the data is shared).
pub fn snapshot(doc: &Document) -> Snapshot {
    Snapshot {
        tensors: doc
            .tensors
            .iter()
            .map(|t| ExportTensor {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                source: t.source.clone(),
                result: t.result.clone(),
            })
            .collect(),
        extra: doc.extra.clone(),
        order: doc.order.clone(),
        metadata: doc.metadata.clone(),
    }
}

/// Writes `snap` to `path`; returns a one-line summary. The progress counts tensors.
pub fn write(
    kind: ExportKind,
    snap: &Snapshot,
    path: &Path,
    ctl: Control<'_>,
) -> anyhow::Result<String> {
    let n = snap.tensors.len() + snap.extra.len();
    ctl.progress.total.store(n as u64, Ordering::Relaxed);
    let compressed = snap.tensors.iter().filter(|t| t.result.is_some()).count();
    match kind {
        ExportKind::Packed => write_packed_file(snap, path, ctl)?,
        ExportKind::Decompressed => write_decompressed(snap, path, ctl)?,
    }
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let what = match kind {
        ExportKind::Packed => "packed file",
        ExportKind::Decompressed => "decompressed model",
    };
    // The full path: a relative one says nothing of where the file went.
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(format!(
        "wrote {what} {} ({}, {n} tensors, {compressed} compressed)",
        full.display(),
        super::format::human_bytes(size)
    ))
}

fn check(path: &Path, ctl: Control<'_>) -> Result<(), ModelError> {
    if ctl.cancelled() {
        return Err(ModelError::file(path, "export cancelled"));
    }
    ctl.progress.done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn write_packed_file(snap: &Snapshot, path: &Path, ctl: Control<'_>) -> Result<(), ModelError> {
    let mut compressed = Vec::new();
    let mut plain_bytes: Vec<(&ExportTensor, Cow<'_, [u8]>)> = Vec::new();
    for t in &snap.tensors {
        check(path, ctl)?;
        match (&t.result, &t.source) {
            (Some(r), _) => compressed.push(CompressedEntry {
                head: CompressedHead {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.dtype,
                    config: r.compressed.config,
                    e_base: r.compressed.e_base,
                    blocks: r.compressed.num_blocks(),
                    relmse: r.stats.as_ref().map(|s| s.relmse()),
                },
                packed: r.compressed.records()?.to_vec(),
            }),
            (None, Some(src)) => {
                // A mapped tensor goes out as stored, straight from the map.
                let bytes = match src.stored_bytes() {
                    Some(b) => Cow::Borrowed(b),
                    None => Cow::Owned(to_stored(path, t, src)?),
                };
                plain_bytes.push((t, bytes));
            }
            (None, None) => return Err(ModelError::tensor(path, &t.name, "no weights to write")),
        }
    }
    let mut plain: Vec<PlainEntry<'_>> = plain_bytes
        .iter()
        .map(|(t, b)| PlainEntry {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            data: b,
        })
        .collect();
    for e in &snap.extra {
        check(path, ctl)?;
        plain.push(PlainEntry {
            name: e.name.clone(),
            shape: e.shape.clone(),
            dtype: e.dtype,
            data: &e.bytes,
        });
    }
    let mut metadata = snap.metadata.clone();
    if let Some(record) = calibration_record(snap) {
        metadata.insert(KEY_CALIBRATION.into(), record.to_json());
    }
    write_packed(path, &compressed, &plain, &snap.order, &metadata)
}

/// The record naming the calibrated tensors, when every calibrated one was weighted by the same
/// text (the record names one text; with codes of several, none is recorded).
fn calibration_record(snap: &Snapshot) -> Option<CalibrationRecord> {
    let calibrated: Vec<(&str, &TextId)> = snap
        .tensors
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.result.as_ref()?.calibration.as_ref()?)))
        .collect();
    let (_, text) = calibrated.first()?;
    if calibrated.iter().any(|(_, t)| t.sha256 != text.sha256) {
        return None;
    }
    let names = calibrated.iter().map(|(n, _)| n.to_string()).collect();
    Some(CalibrationRecord::weighted_by(text, names))
}

fn write_decompressed(snap: &Snapshot, path: &Path, ctl: Control<'_>) -> Result<(), ModelError> {
    let mut out = Vec::new();
    for t in &snap.tensors {
        // Converted lazily, one tensor at a time, as the writer reaches it.
        out.push(OutTensor {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: Payload::Lazy(Box::new(move || {
                check(path, ctl)?;
                match (&t.result, &t.source) {
                    (Some(r), _) => from_f32(path, t, &r.reconstruction()?),
                    (None, Some(src)) => match src.stored_bytes() {
                        Some(b) => Ok(b.to_vec()),
                        None => to_stored(path, t, src),
                    },
                    (None, None) => Err(ModelError::tensor(path, &t.name, "no weights to write")),
                }
            })),
        });
    }
    for e in &snap.extra {
        check(path, ctl)?;
        out.push(OutTensor {
            name: e.name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
            data: Payload::Bytes(&e.bytes),
        });
    }
    write_atomic(path, out, &snap.metadata)
}

/// `values` in `t`'s stored dtype.
fn from_f32(path: &Path, t: &ExportTensor, values: &[f32]) -> Result<Vec<u8>, ModelError> {
    dtype::from_f32(t.dtype, values)
        .ok_or_else(|| ModelError::tensor(path, &t.name, "not a float tensor"))
}

/// `t`'s original read from `src`, in its stored dtype.
fn to_stored(path: &Path, t: &ExportTensor, src: &Source) -> Result<Vec<u8>, ModelError> {
    let values = src
        .read()
        .map_err(|e| ModelError::tensor(path, &t.name, e))?;
    from_f32(path, t, &values)
}
