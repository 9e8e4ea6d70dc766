//! Where a network's tensors come from: a model opened in its stored form (a plain safetensors
//! model or a packed file, memory-mapped), handing out matrices that borrow the map.

use crate::infer::matrix::Matrix;
use crate::io::dtype;
use crate::io::error::{ModelError, shape_text};
use crate::io::opened::{Opened, open_headers};
use std::path::{Path, PathBuf};

/// Named tensors a network is built from.
pub trait Source {
    /// Tensor `name` as a `rows × cols` matrix in its stored form (a tensor of any rank whose
    /// first dimension is `rows` and whose other dimensions multiply to `cols`).
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'_>, ModelError>;

    /// Whether the source has tensor `name`.
    fn has(&self, name: &str) -> bool;

    /// A small tensor (a norm's scale, a bias) of `len` values, as f32.
    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let m = self.matrix(name, 1, len)?;
        let mut out = vec![0.0; len];
        m.decode_rows(0, &mut out);
        Ok(out)
    }
}

/// A model file or directory opened for running: plain tensors are read where they lie,
/// packed ones stay records (their checksums are checked when first used).
#[derive(Debug)]
pub struct StoredModel {
    path: PathBuf,
    opened: Opened,
}

impl StoredModel {
    /// Opens a plain safetensors model (file, directory or shards) or a packed file or
    /// directory, reading headers only.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        Ok(StoredModel {
            path: path.to_path_buf(),
            opened: open_headers(path)?,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it is a packed file.
    pub fn is_packed(&self) -> bool {
        matches!(self.opened, Opened::Packed(_))
    }

    /// The float tensors (packed ones included) in file order: name and shape.
    pub fn float_tensors(&self) -> Vec<(String, Vec<usize>)> {
        match &self.opened {
            Opened::Plain(m) => m
                .tensors()
                .iter()
                .filter(|t| dtype::is_float(t.dtype))
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect(),
            Opened::Packed(p) => p
                .tensors()
                .iter()
                .filter(|t| t.packed.is_some() || dtype::is_float(t.dtype))
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect(),
        }
    }

    /// Tensor `name` decoded to f32 (a packed tensor's exact reconstruction).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let missing = || ModelError::tensor(&self.path, name, "is missing");
        match &self.opened {
            Opened::Plain(m) => m.to_f32(m.get(name).ok_or_else(missing)?),
            Opened::Packed(p) => p.to_f32(p.get(name).ok_or_else(missing)?),
        }
    }

    /// Bytes of all its tensors as stored.
    pub fn stored_bytes(&self) -> u64 {
        match &self.opened {
            Opened::Plain(m) => m.tensors().iter().map(|t| t.byte_size as u64).sum(),
            Opened::Packed(p) => p.tensors().iter().map(|t| t.stored_bytes as u64).sum(),
        }
    }
}

/// Checks that `shape` is `rows` by `cols` (rank 1: one row).
fn check_shape(
    path: &Path,
    name: &str,
    shape: &[usize],
    rows: usize,
    cols: usize,
) -> Result<(), ModelError> {
    let first = if shape.len() > 1 { shape[0] } else { 1 };
    let rest: usize = shape.iter().skip(usize::from(shape.len() > 1)).product();
    if (first, rest) == (rows, cols) {
        Ok(())
    } else {
        Err(ModelError::tensor(
            path,
            name,
            format!(
                "has shape {}, the network needs {rows}×{cols}",
                shape_text(shape)
            ),
        ))
    }
}

impl Source for StoredModel {
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'_>, ModelError> {
        let missing = || ModelError::tensor(&self.path, name, "is missing (the network needs it)");
        let not_float = |d| {
            ModelError::tensor(
                &self.path,
                name,
                format!("dtype {d} is not F32, F16 or BF16"),
            )
        };
        match &self.opened {
            Opened::Plain(m) => {
                let t = m.get(name).ok_or_else(missing)?;
                check_shape(m.file_of(t), name, &t.shape, rows, cols)?;
                Matrix::dense(t.dtype, m.bytes(t), rows, cols).ok_or_else(|| not_float(t.dtype))
            }
            Opened::Packed(p) => {
                let t = p.get(name).ok_or_else(missing)?;
                check_shape(p.path(), name, &t.shape, rows, cols)?;
                match (&t.packed, p.records(t)) {
                    (Some(meta), Some(records)) => Ok(Matrix::packed(meta, records?, rows, cols)),
                    _ if dtype::is_float(t.dtype) => {
                        Matrix::dense(t.dtype, p.stored_bytes(t), rows, cols)
                            .ok_or_else(|| not_float(t.dtype))
                    }
                    _ => Err(not_float(t.dtype)),
                }
            }
        }
    }

    fn has(&self, name: &str) -> bool {
        match &self.opened {
            Opened::Plain(m) => m.get(name).is_some(),
            Opened::Packed(p) => p.get(name).is_some(),
        }
    }
}
