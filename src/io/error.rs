//! Errors reading or writing model and packed files: each names the file, the tensor when there
//! is one, and the reason, on one line.

use std::path::{Path, PathBuf};

/// Why a model or packed file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The operating system refused (missing file, permissions, disk full, ...).
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file as a whole is malformed.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// One tensor is malformed or cannot be handled.
    #[error("{}: tensor '{tensor}': {reason}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Why.
        reason: String,
    },
}

impl ModelError {
    /// An I/O error on `path` while doing `what`.
    pub fn io(path: &Path, what: &'static str, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }

    /// A whole-file error.
    pub fn file(path: &Path, reason: impl Into<String>) -> Self {
        ModelError::File {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A tensor error.
    pub fn tensor(path: &Path, tensor: &str, reason: impl Into<String>) -> Self {
        ModelError::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }
}
