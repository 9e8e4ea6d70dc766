//! The model open in the app: its tensors, where their originals are read from, and their
//! compression results.
//!
//! A document opened from a model file holds its headers and the memory map, no weights: each
//! view or job reads what it needs through [`Source`], converts it to f32 for itself and drops
//! it when done.

use crate::core::basis::Basis;
use crate::core::config::Config;
use crate::eval::Family;
use crate::io::dtype::Dtype;
use crate::io::error::ModelError;
use crate::io::job_plan::TextId;
use crate::io::model::Model;
use crate::io::packed::{PackedModel, decode_range, pack_blocks};
use crate::search::compress::{BlockCode, CompressedTensor, ErrorStats};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A memory-mapped model and the bytes read and converted from it so far.
#[derive(Debug)]
pub struct Mapped {
    model: Model,
    converted: AtomicU64,
}

impl Mapped {
    /// Shares `model` among the tensors of a document.
    pub fn new(model: Model) -> Arc<Self> {
        Arc::new(Mapped {
            model,
            converted: AtomicU64::new(0),
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Stored bytes read and converted to f32 since it was opened.
    pub fn converted_bytes(&self) -> u64 {
        self.converted.load(Ordering::Relaxed)
    }
}

/// Where a tensor's original weights are read from. Cloning shares, never copies.
#[derive(Clone, Debug)]
pub enum Source {
    /// Weights held in memory (the synthetic model, a packed file's plain tensors).
    Memory(Arc<Vec<f32>>),
    /// Tensor `.1` (an index into [`Model::tensors`]) of a memory-mapped model.
    Mapped(Arc<Mapped>, usize),
    /// Plain float tensor `.1` (an index into [`PackedModel::tensors`]) of a mapped packed file.
    Packed(Arc<PackedModel>, usize),
}

impl Source {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Source::Memory(v) => v.len(),
            Source::Mapped(m, i) => m.model.tensors()[*i].numel(),
            Source::Packed(p, i) => p.tensors()[*i].shape.iter().product(),
        }
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype its weights are stored in (F32 for weights held in memory).
    pub fn dtype(&self) -> crate::io::dtype::Dtype {
        match self {
            Source::Memory(_) => crate::io::dtype::Dtype::F32,
            Source::Mapped(m, i) => m.model.tensors()[*i].dtype,
            Source::Packed(p, i) => p.tensors()[*i].dtype,
        }
    }

    /// Elements `elems` (row-major) as f32; an error is one readable line naming file and
    /// tensor.
    pub fn read_range(&self, elems: Range<usize>) -> Result<Vec<f32>, String> {
        match self {
            Source::Memory(v) => v
                .get(elems.clone())
                .map(<[f32]>::to_vec)
                .ok_or_else(|| format!("elements {elems:?} asked of a tensor of {}", v.len())),
            Source::Mapped(m, i) => {
                let t = &m.model.tensors()[*i];
                let out = m.model.range_to_f32(t, elems).map_err(|e| e.to_string())?;
                let bytes = (out.len() * t.dtype.bitsize() / 8) as u64;
                m.converted.fetch_add(bytes, Ordering::Relaxed);
                Ok(out)
            }
            Source::Packed(p, i) => {
                let t = &p.tensors()[*i];
                let width = t.dtype.bitsize() / 8;
                p.stored_bytes(t)
                    .get(elems.start * width..elems.end * width)
                    .and_then(|b| crate::io::dtype::to_f32(t.dtype, b))
                    .ok_or_else(|| {
                        format!(
                            "{}: tensor '{}': elements {elems:?} of a {} tensor of {} cannot be read as f32",
                            p.path().display(),
                            t.name,
                            t.dtype,
                            self.len()
                        )
                    })
            }
        }
    }

    /// The whole tensor as f32 (for a job that needs all of it).
    pub fn read(&self) -> Result<Vec<f32>, String> {
        self.read_range(0..self.len())
    }

    /// The model file and its tensor, for a tensor read from one.
    pub fn mapped(&self) -> Option<(&Model, &crate::io::model::TensorEntry)> {
        match self {
            Source::Mapped(m, i) => Some((&m.model, &m.model.tensors()[*i])),
            Source::Memory(_) | Source::Packed(..) => None,
        }
    }

    /// The stored little-endian bytes when they can be handed on without conversion.
    pub fn stored_bytes(&self) -> Option<&[u8]> {
        match self {
            Source::Memory(_) => None,
            Source::Mapped(m, i) => Some(m.model.bytes(&m.model.tensors()[*i])),
            Source::Packed(p, i) => Some(p.stored_bytes(&p.tensors()[*i])),
        }
    }
}

/// The error figures a result keeps: the totals and each block's relative MSE, what the
/// histograms and the block inspector read (half the size of [`ErrorStats`]' per-block sums).
#[derive(Clone, Debug, PartialEq)]
pub struct Errors {
    /// Σ (w − ŵ)².
    pub sq_err: f64,
    /// Σ w².
    pub sq_norm: f64,
    block_relmse: Vec<f32>,
}

impl Errors {
    /// Keeps what the app shows of `s`.
    pub fn new(s: &ErrorStats) -> Self {
        Errors {
            sq_err: s.sq_err,
            sq_norm: s.sq_norm,
            block_relmse: (0..s.block_sq_err.len())
                .map(|b| s.block_relmse(b) as f32)
                .collect(),
        }
    }

    /// Relative MSE of the tensor.
    pub fn relmse(&self) -> f64 {
        crate::search::compress::relmse(self.sq_err, self.sq_norm)
    }

    /// SNR of the tensor in dB.
    pub fn snr_db(&self) -> f64 {
        crate::search::compress::snr_db(self.relmse())
    }

    /// Relative MSE of block `b`.
    pub fn block_relmse(&self, b: usize) -> f64 {
        f64::from(self.block_relmse[b])
    }
}

/// A compressed tensor held at its packed size: the records of the packed format
/// (`io::packed::pack_blocks`, 4 B a block at (8,3,16) where a [`BlockCode`] takes 16 B), its
/// blocks decoded when a view or job asks for them. The records of a packed file opened in the
/// app stay in its memory map and are checked when first read, so a large file opens at once.
#[derive(Clone, Debug)]
pub struct PackedCodes {
    /// Configuration used.
    pub config: Config,
    /// Exponent of code E = 0.
    pub e_base: i32,
    /// Number of original elements.
    pub len: usize,
    blocks: usize,
    records: Records,
}

/// Where a [`PackedCodes`]' records are.
#[derive(Clone, Debug)]
enum Records {
    /// Packed from codes this session (valid by construction).
    Owned(Vec<u8>),
    /// Tensor `.1` (an index into [`PackedModel::tensors`]) of a mapped packed file.
    File(Arc<PackedModel>, usize),
}

impl PackedCodes {
    /// Packs `t`.
    pub fn new(t: &CompressedTensor) -> Self {
        PackedCodes {
            config: t.config,
            e_base: t.e_base,
            len: t.len,
            blocks: t.num_blocks(),
            records: Records::Owned(pack_blocks(t)),
        }
    }

    /// The compressed tensor `t` of the packed file `file`, its records left in the file
    /// (`None` when `t` is stored as it was).
    pub fn in_file(file: &Arc<PackedModel>, t: usize) -> Option<Self> {
        let pt = &file.tensors()[t];
        let m = pt.packed.as_ref()?;
        Some(PackedCodes {
            config: m.config(),
            e_base: m.e_base,
            len: pt.shape.iter().product(),
            blocks: m.blocks,
            records: Records::File(file.clone(), t),
        })
    }

    /// Number of blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks
    }

    /// The packed records; an error when they come from a file and fail their check.
    pub fn records(&self) -> Result<&[u8], ModelError> {
        match &self.records {
            Records::Owned(r) => Ok(r),
            Records::File(f, t) => f
                .records(&f.tensors()[*t])
                .expect("in_file holds compressed tensors only"),
        }
    }

    /// The codes of blocks `range`.
    pub fn blocks(&self, range: Range<usize>) -> Result<Vec<BlockCode>, ModelError> {
        // Records packed here or checked by `records` decode.
        Ok(decode_range(self.records()?, self.config, range).expect("checked records decode"))
    }

    /// The code of block `b`.
    pub fn block(&self, b: usize) -> Result<BlockCode, ModelError> {
        Ok(self.blocks(b..b + 1)?[0])
    }

    /// Blocks `range` as a compressed tensor of their own (its `len` clipped to the tensor's).
    fn slice(&self, range: Range<usize>) -> Result<CompressedTensor, ModelError> {
        let c = self.config.c;
        Ok(CompressedTensor {
            config: self.config,
            e_base: self.e_base,
            len: (range.end * c).min(self.len) - range.start * c,
            blocks: self.blocks(range)?,
        })
    }

    /// All the codes, decoded (for an export, a simulation: a tensor at a time).
    pub fn unpack(&self) -> Result<CompressedTensor, ModelError> {
        self.slice(0..self.blocks)
    }

    /// Reconstructs block `b` into `out` (C long), as [`CompressedTensor::reconstruct_block`].
    pub fn reconstruct_block(
        &self,
        basis: &Basis,
        b: usize,
        out: &mut [f64],
    ) -> Result<(), ModelError> {
        self.slice(b..b + 1)?.reconstruct_block(basis, 0, out);
        Ok(())
    }

    /// Elements `elems` of ŵ, decoding only the blocks that hold them.
    pub fn reconstruct_range(&self, elems: Range<usize>) -> Result<Vec<f32>, ModelError> {
        let c = self.config.c;
        let end = elems.end.min(self.len);
        if elems.start >= end {
            return Ok(Vec::new());
        }
        let first = elems.start / c;
        Ok(self
            .slice(first..end.div_ceil(c))?
            .reconstruct_range(elems.start - first * c..end - first * c))
    }

    /// The reconstructed tensor ŵ.
    pub fn reconstruct(&self) -> Result<Vec<f32>, ModelError> {
        Ok(self.unpack()?.reconstruct())
    }
}

/// A compression result kept for one tensor: its codes and error figures, no reconstruction
/// (decoded from the codes by whoever needs it, see [`TensorResult::reconstruction`]).
#[derive(Debug)]
pub struct TensorResult {
    /// Seeds, exponents and coefficients, packed.
    pub compressed: PackedCodes,
    /// Error figures against the original (`None` when the original is unknown, e.g. a packed
    /// file opened on its own).
    pub stats: Option<Errors>,
    /// The relative MSE a packed file stored for the tensor, when `stats` is unknown.
    pub stored_relmse: Option<f64>,
    /// Distinguishes successive results of the same tensor (for cached textures).
    pub generation: u64,
    /// The text its search was weighted by (input moments measured on it), `None` for
    /// data-free codes. A packed file's record gives only the text's file name as its path.
    pub calibration: Option<TextId>,
}

impl TensorResult {
    /// Whether its search was calibrated.
    pub fn calibrated(&self) -> bool {
        self.calibration.is_some()
    }

    /// The relative MSE: measured against the original, or as stored in a packed file.
    pub fn relmse(&self) -> Option<f64> {
        self.stats
            .as_ref()
            .map(|s| s.relmse())
            .or(self.stored_relmse)
    }

    /// The SNR in dB, from [`TensorResult::relmse`].
    pub fn snr_db(&self) -> Option<f64> {
        self.relmse().map(crate::search::compress::snr_db)
    }

    /// Bits of its block records.
    pub fn bits(&self) -> u64 {
        self.compressed.num_blocks() as u64 * u64::from(self.compressed.config.block_bits())
    }

    /// The reconstruction ŵ of the whole tensor, decoded now from the codes (views of part of
    /// a tensor decode only that part, `CompressedTensor::reconstruct_range`).
    pub fn reconstruction(&self) -> Result<Vec<f32>, ModelError> {
        self.compressed.reconstruct()
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
    /// Where the original weights are read from; `None` for a tensor known only in
    /// compressed form.
    pub source: Option<Source>,
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
    /// The mapped model the tensors are read from, if any.
    pub mapped: Option<Arc<Mapped>>,
    /// The kind of network its config.json names, or why it cannot be run (one line).
    pub family: Result<Family, String>,
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
            mapped: None,
            family: Err("it is not a model on disk".into()),
        }
    }

    /// Stored bytes of the mapped model read and converted to f32 so far (0 for a document
    /// not read from a model file).
    pub fn converted_bytes(&self) -> u64 {
        self.mapped.as_ref().map_or(0, |m| m.converted_bytes())
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
    fn packed_codes_hold_the_packed_size_and_decode_to_the_codes() {
        use crate::core::control::Control;
        use crate::search::compress::compress;

        // 301 weights: the last block of each configuration is padded.
        let w: Vec<f32> = (0..301)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 900.0)
            .collect();
        for cfg in [Config::FOUR_BIT, Config::THREE_BIT] {
            let (t, _) = compress(&w, cfg, Control::unwatched()).unwrap();
            let p = PackedCodes::new(&t);
            let n = t.num_blocks();
            assert_eq!(
                p.records().unwrap().len(),
                crate::io::packed::packed_len(cfg, n)
            );
            assert_eq!(p.unpack().unwrap(), t);
            assert_eq!(p.reconstruct().unwrap(), t.reconstruct());
            for b in [0, 5, n - 1] {
                assert_eq!(p.block(b).unwrap(), t.blocks[b]);
            }
            for r in [0..301, 3..17, 290..301, 100..100, 299..400] {
                assert_eq!(
                    p.reconstruct_range(r.clone()).unwrap(),
                    t.reconstruct_range(r)
                );
            }
            let basis = Basis::for_k(cfg.k);
            let (mut a, mut b) = (vec![0.0; cfg.c], vec![0.0; cfg.c]);
            p.reconstruct_block(&basis, n - 1, &mut a).unwrap();
            t.reconstruct_block(&basis, n - 1, &mut b);
            assert_eq!(a, b);
        }
    }

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
