//! Whole models: compress a model into a packed file and decompress a packed file into a plain
//! safetensors model, tensor by tensor, so peak memory stays near one tensor in f32 plus the
//! compressed outputs. Directories in give directories out, with the non-weight files copied.

use crate::core::config::Config;
use crate::io::container::{OutTensor, Payload, write_atomic};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::io::model::{INDEX_FILE, MODEL_FILE, Model, TensorEntry};
use crate::io::packed::{CompressedEntry, PackedModel, PlainEntry, is_packed, write_packed};
use crate::io::selection::Selection;
use crate::search::compress::{CompressError, Progress, compress};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Why a whole-model job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Bad input or output.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
}

/// The tensors a compression will process.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Names of the tensors to compress, in model order.
    pub compress: Vec<String>,
    /// Blocks to search in all.
    pub total_blocks: u64,
}

/// Picks the tensors `selection` compresses; a selected tensor that is not F32/F16/BF16 is an
/// error naming file and tensor, and so is a model that is already a packed file.
pub fn plan(model: &Model, selection: &Selection, cfg: Config) -> Result<Plan, ModelError> {
    if let Some(f) = model.files().iter().find(|f| is_packed(f)) {
        return Err(ModelError::file(
            f.path(),
            "is already a SeedLM packed file (decompress it first)",
        ));
    }
    let mut names = Vec::new();
    let mut total_blocks = 0u64;
    for t in model.tensors() {
        if !selection.selects(&t.name, &t.shape, t.dtype) {
            continue;
        }
        if !dtype::is_float(t.dtype) {
            return Err(ModelError::tensor(
                model.file_of(t),
                &t.name,
                format!(
                    "selected for compression but its dtype {} is not supported (only F32, F16 and BF16)",
                    t.dtype
                ),
            ));
        }
        total_blocks += t.numel().div_ceil(cfg.c) as u64;
        names.push(t.name.clone());
    }
    Ok(Plan {
        compress: names,
        total_blocks,
    })
}

/// What compressing one tensor gave.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Original dtype.
    pub dtype: Dtype,
    /// Number of blocks.
    pub blocks: usize,
    /// Relative MSE against the original (as f32).
    pub relmse: f64,
    /// SNR in dB.
    pub snr_db: f64,
    /// Wall-clock seconds spent.
    pub seconds: f64,
    /// Bytes in the source file.
    pub original_bytes: usize,
    /// Bytes of packed records.
    pub packed_bytes: usize,
}

/// The compressed tensors of a model, ready to write.
#[derive(Clone, Debug)]
pub struct CompressedModel {
    /// Compressed tensors, in plan order.
    pub entries: Vec<CompressedEntry>,
    /// One report per entry.
    pub reports: Vec<TensorReport>,
}

/// Compresses the planned tensors of `model` on the current rayon pool. `on_start` is called
/// with each tensor's name as it begins.
pub fn compress_model(
    model: &Model,
    plan: &Plan,
    cfg: Config,
    progress: &Progress,
    cancel: &AtomicBool,
    mut on_start: impl FnMut(&str),
) -> Result<CompressedModel, JobError> {
    progress
        .total
        .fetch_add(plan.total_blocks, Ordering::Relaxed);
    let mut entries = Vec::with_capacity(plan.compress.len());
    let mut reports = Vec::with_capacity(plan.compress.len());
    for name in &plan.compress {
        let t = model
            .get(name)
            .ok_or_else(|| ModelError::tensor(model.path(), name, "not in the model"))?;
        on_start(name);
        let start = Instant::now();
        let data = model.to_f32(t)?;
        let (tensor, stats) =
            compress(&data, cfg, progress, cancel).map_err(|e| tensor_error(model, t, e))?;
        let relmse = stats.relmse();
        reports.push(TensorReport {
            name: name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            blocks: tensor.num_blocks(),
            relmse,
            snr_db: stats.snr_db(),
            seconds: start.elapsed().as_secs_f64(),
            original_bytes: t.byte_size,
            packed_bytes: crate::io::packed::packed_len(cfg, tensor.num_blocks()),
        });
        entries.push(CompressedEntry::new(
            name,
            &t.shape,
            t.dtype,
            &tensor,
            Some(relmse),
        ));
    }
    Ok(CompressedModel { entries, reports })
}

/// A compression error on tensor `t` of `model` as a job error naming file and tensor.
pub fn tensor_error(model: &Model, t: &TensorEntry, e: CompressError) -> JobError {
    match e {
        CompressError::Cancelled => JobError::Cancelled,
        CompressError::NonFinite { index, value } => JobError::Model(ModelError::tensor(
            model.file_of(t),
            &t.name,
            format!(
                "weight {value} at element {index} (index {:?}) is not finite",
                unravel(index, &t.shape)
            ),
        )),
    }
}

/// The row-major multi-index of flat element `index` in `shape`.
pub fn unravel(mut index: usize, shape: &[usize]) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (o, &d) in out.iter_mut().zip(shape).rev() {
        if d > 0 {
            *o = index % d;
            index /= d;
        }
    }
    out
}

/// The file to write for `output`: itself, or `output/model.safetensors` when the input was a
/// directory (then `output` is created as a directory if needed).
pub fn output_file(input_is_dir: bool, output: &Path) -> Result<PathBuf, ModelError> {
    if !input_is_dir {
        return Ok(output.to_path_buf());
    }
    if output.exists() && !output.is_dir() {
        return Err(ModelError::file(
            output,
            "the input is a directory, so the output must be a directory too",
        ));
    }
    std::fs::create_dir_all(output)
        .map_err(|e| ModelError::io(output, "cannot create directory", e))?;
    Ok(output.join(MODEL_FILE))
}

/// Writes the packed file for `model` and `compressed` to `output` (a directory when the model
/// came from one, with config and tokenizer files copied along). Returns the file written.
pub fn write_compressed(
    model: &Model,
    compressed: &CompressedModel,
    output: &Path,
) -> Result<PathBuf, ModelError> {
    let done: HashSet<&str> = compressed.entries.iter().map(|e| e.name.as_str()).collect();
    let plain: Vec<PlainEntry<'_>> = model
        .tensors()
        .iter()
        .filter(|t| !done.contains(t.name.as_str()))
        .map(|t| PlainEntry {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            data: model.bytes(t),
        })
        .collect();
    let order: Vec<String> = model.tensors().iter().map(|t| t.name.clone()).collect();
    let file = output_file(model.is_dir(), output)?;
    write_packed(
        &file,
        &compressed.entries,
        &plain,
        &order,
        &model.metadata(),
    )?;
    if model.is_dir() {
        copy_aux_files(model.path(), output)?;
    }
    Ok(file)
}

/// Writes a plain safetensors model reconstructed from `packed` to `output_file`: compressed
/// tensors as the engine's exact reconstruction rounded to their original dtype (or to
/// `dtype`), plain tensors as stored (float ones converted to `dtype` when given).
pub fn decompress_model(
    packed: &PackedModel,
    output_file: &Path,
    dtype: Option<Dtype>,
) -> Result<(), ModelError> {
    let mut out = Vec::with_capacity(packed.tensors().len());
    for t in packed.tensors() {
        let target = match dtype {
            Some(d) if dtype::is_float(t.dtype) => d,
            _ => t.dtype,
        };
        let data = if t.packed.is_none() && target == t.dtype {
            Payload::Bytes(packed.stored_bytes(t))
        } else {
            Payload::Lazy(Box::new(move || {
                let values = packed.to_f32(t)?;
                Ok(dtype::from_f32(target, &values).expect("target is a float dtype"))
            }))
        };
        out.push(OutTensor {
            name: t.name.clone(),
            dtype: target,
            shape: t.shape.clone(),
            data,
        });
    }
    write_atomic(output_file, out, &packed.source_metadata())
}

/// Copies the regular files of `src` other than safetensors weights and the shard index (so
/// config.json, tokenizer files, ...) into `dst`, each atomically. Returns the files copied.
pub fn copy_aux_files(src: &Path, dst: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let entries = std::fs::read_dir(src).map_err(|e| ModelError::io(src, "cannot list", e))?;
    let mut copied = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(src, "cannot list", e))?;
        let from = entry.path();
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if !from.is_file() || name_str.ends_with(".safetensors") || name_str == INDEX_FILE {
            continue;
        }
        let to = dst.join(&name);
        if to == from {
            continue;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".seedlm-")
            .tempfile_in(dst)
            .map_err(|e| ModelError::io(dst, "cannot create a temporary file", e))?;
        std::fs::copy(&from, tmp.path()).map_err(|e| ModelError::io(&from, "cannot copy", e))?;
        tmp.persist(&to)
            .map_err(|e| ModelError::io(&to, "cannot move into place", e.error))?;
        copied.push(to);
    }
    copied.sort();
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(13, &[4, 5]), vec![2, 3]);
        assert_eq!(unravel(0, &[4, 5]), vec![0, 0]);
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
    }
}
