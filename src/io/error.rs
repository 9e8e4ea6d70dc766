//! Errors reading or writing model and packed files: each names the file, the tensor when there
//! is one, and the reason, on one line of readable length.

use std::path::{Path, PathBuf};

/// Longest tensor name or reason shown in full in an error; longer ones keep their two ends.
pub const MAX_SHOWN: usize = 200;

/// Why a model or packed file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The operating system refused (missing file, permissions, disk full, ...). The OS error
    /// is part of the message and deliberately not a `source`, so that printing the error chain
    /// does not say it twice.
    #[error("{}: {what}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// The file as a whole is malformed.
    #[error("{}: {}", path.display(), abbreviate(reason, MAX_SHOWN))]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// One tensor is malformed or cannot be handled.
    #[error("{}: tensor '{}': {}", path.display(), abbreviate(tensor, MAX_SHOWN), abbreviate(reason, MAX_SHOWN))]
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
    pub fn io(path: &Path, what: &'static str, cause: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            what,
            cause,
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

/// `text` if it has at most `max` characters, else its first and last `max / 2` characters
/// around "…" and the full length, all on one line (newlines shown as `\n`).
pub fn abbreviate(text: &str, max: usize) -> String {
    let one_line = |s: &str| s.replace('\n', "\\n");
    let n = text.chars().count();
    if n <= max {
        return one_line(text);
    }
    let head: String = text.chars().take(max / 2).collect();
    let tail: String = text.chars().skip(n - max / 2).collect();
    format!(
        "{}…{} ({} bytes)",
        one_line(&head),
        one_line(&tail),
        text.len()
    )
}

/// A shape as `[a, b, c]`, with long shapes cut to their first and last dimensions.
pub fn shape_text(shape: &[usize]) -> String {
    const SHOWN: usize = 8;
    if shape.len() <= SHOWN {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..SHOWN / 2].iter().map(usize::to_string).collect();
    let tail: Vec<String> = shape[shape.len() - SHOWN / 2..]
        .iter()
        .map(usize::to_string)
        .collect();
    format!(
        "[{}, …, {}] ({} dimensions)",
        head.join(", "),
        tail.join(", "),
        shape.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_name_their_cause_once_in_the_chain() {
        let e = ModelError::io(
            Path::new("x.safetensors"),
            "cannot open",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        let chained = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chained.matches("not found").count(), 1, "{chained}");
    }

    #[test]
    fn long_names_reasons_and_shapes_are_cut() {
        let name = "n".repeat(70_000);
        let e = ModelError::tensor(Path::new("f"), &name, format!("a\nb {}", "r".repeat(500)));
        let s = e.to_string();
        assert!(s.len() < 600 && !s.contains('\n'), "{s}");
        assert!(s.contains("(70000 bytes)"), "{s}");
        let shape = vec![1usize; 100_000];
        let t = shape_text(&shape);
        assert_eq!(t, "[1, 1, 1, 1, …, 1, 1, 1, 1] (100000 dimensions)");
        assert_eq!(shape_text(&[2, 3]), "[2, 3]");
        assert_eq!(abbreviate("short", 10), "short");
    }
}
