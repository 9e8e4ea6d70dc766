//! The model open in the app: its tensors, their originals and their compression results.

use crate::io::dtype::Dtype;
use crate::search::compress::{CompressedTensor, ErrorStats};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A compression result kept for one tensor.
#[derive(Debug)]
pub struct TensorResult {
    /// Seeds, exponents and coefficients.
    pub compressed: CompressedTensor,
    /// Error figures against the original (`None` when the original is unknown, e.g. a packed
    /// file opened on its own).
    pub stats: Option<ErrorStats>,
    /// The relative MSE a packed file stored for the tensor, when `stats` is unknown.
    pub stored_relmse: Option<f64>,
    /// The reconstruction ŵ; read it through [`TensorResult::reconstruction`].
    pub recon: Vec<f32>,
    /// Distinguishes successive results of the same tensor (for cached textures).
    pub generation: u64,
}

impl TensorResult {
    /// The relative MSE: measured against the original, or as stored in a packed file.
    pub fn relmse(&self) -> Option<f64> {
        self.stats
            .as_ref()
            .map(|s| s.relmse())
            .or(self.stored_relmse)
    }

    /// The reconstruction ŵ, row-major: the one place that reads it, so how it is kept can
    /// change without touching its readers.
    pub fn reconstruction(&self) -> &[f32] {
        &self.recon
    }

    /// The SNR in dB, from [`TensorResult::relmse`].
    pub fn snr_db(&self) -> Option<f64> {
        self.relmse().map(crate::search::compress::snr_db)
    }
}

/// One tensor of the open model.
#[derive(Debug)]
pub struct TensorEntry {
    /// Full tensor name.
    pub name: String,
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Stored element type.
    pub dtype: Dtype,
    /// Original weights, row-major; `None` for a tensor known only in compressed form.
    pub original: Option<Arc<Vec<f32>>>,
    /// The latest compression result.
    pub result: Option<Arc<TensorResult>>,
    /// Whether the default selection rule compresses it (linear-layer weights).
    pub compressible: bool,
}

impl TensorEntry {
    /// The shape as people write it: "384×1536".
    pub fn dims(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        dims.join("×")
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes taken by the stored original.
    pub fn original_bytes(&self) -> u64 {
        (self.len() * self.dtype.bitsize()).div_ceil(8) as u64
    }

    /// (rows, columns) of the matrix view: the last dimension is the column axis.
    pub fn matrix_dims(&self) -> (usize, usize) {
        match self.shape.split_last() {
            Some((&cols, rest)) if cols > 0 => (rest.iter().product::<usize>().max(1), cols),
            _ => (1, self.len().max(1)),
        }
    }

    /// The layer index parsed from the name (`…layers.12…`, `…h.3…`, `…blocks.0…`).
    pub fn layer(&self) -> Option<usize> {
        layer_of(&self.name)
    }

    /// Short kind of tensor for grouping series, e.g. `q_proj`, `up_proj`, `weight`.
    pub fn kind(&self) -> String {
        kind_of(&self.name)
    }
}

/// The layer number in a tensor name: the first all-digit dot-separated component.
pub fn layer_of(name: &str) -> Option<usize> {
    name.split('.').find_map(|p| p.parse().ok())
}

/// The tensor kind, the same in every layer: the name after the layer number, without a
/// trailing `.weight` (`model.layers.3.self_attn.q_proj.weight` → `self_attn.q_proj`).
pub fn kind_of(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    let start = parts
        .iter()
        .position(|p| p.parse::<usize>().is_ok())
        .map_or(0, |i| i + 1);
    let rest = parts[start..].join(".");
    rest.strip_suffix(".weight")
        .map_or(rest.clone(), str::to_string)
}

/// The model open in the app.
#[derive(Debug)]
pub struct Document {
    /// Unique per document opened in this process (keys caches of derived data).
    pub id: u64,
    /// Where it came from (`None` for the built-in synthetic model).
    pub path: Option<PathBuf>,
    /// Title shown in the window.
    pub title: String,
    /// Float tensors, in natural name order.
    pub tensors: Vec<TensorEntry>,
    /// Other tensors (integer ids, masks), carried through exports unchanged.
    pub extra: Vec<RawEntry>,
    /// The source's tensor order (kept in packed files for listings).
    pub order: Vec<String>,
    /// The source's `__metadata__`.
    pub metadata: BTreeMap<String, String>,
}

/// A tensor kept as raw bytes.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Dtype,
    /// Little-endian bytes.
    pub bytes: Arc<Vec<u8>>,
}

impl Document {
    /// Builds a document from tensors in source order, sorting them naturally by name.
    pub fn new(path: Option<PathBuf>, title: String, mut tensors: Vec<TensorEntry>) -> Self {
        let order = tensors.iter().map(|t| t.name.clone()).collect();
        tensors.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Document {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            path,
            title,
            tensors,
            extra: Vec::new(),
            order,
            metadata: BTreeMap::new(),
        }
    }

    /// Index of the tensor named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }
}

pub use crate::io::model::natural_cmp;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut v = vec![
            "layers.10.q",
            "layers.2.q",
            "layers.1.v",
            "embed",
            "layers.02.k",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "embed",
                "layers.1.v",
                "layers.02.k",
                "layers.2.q",
                "layers.10.q"
            ]
        );
    }

    #[test]
    fn layer_and_kind_come_from_the_name() {
        assert_eq!(
            layer_of("model.layers.12.self_attn.q_proj.weight"),
            Some(12)
        );
        assert_eq!(
            kind_of("model.layers.12.self_attn.q_proj.weight"),
            "self_attn.q_proj"
        );
        assert_eq!(
            kind_of("encoder.layer.0.output.dense.bias"),
            "output.dense.bias"
        );
        assert_eq!(layer_of("lm_head.weight"), None);
        assert_eq!(kind_of("lm_head.weight"), "lm_head");
    }
}
