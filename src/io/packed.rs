//! The packed file: a valid safetensors file holding SeedLM-compressed tensors (FORMAT.md).
//!
//! Each compressed tensor is stored under its original name as a 1-D U8 tensor of block records,
//! K + 4 + 4P bits each, back to back in a little-endian bit stream; its original shape, dtype,
//! configuration, exponent base, block count and CRC32 live in `__metadata__`. Every other
//! tensor is stored unchanged. From version 2 each tensor's metadata carries a CRC-32 of its
//! canonical form and the file one over every header entry, metadata value and tensor's bytes,
//! so that no single edit of a packed file decodes to a different model.

use crate::core::bits::{BitWriter, read_bits};
use crate::core::config::{Config, MAX_C, MAX_P};
use crate::core::lfsr::Lfsr;
use crate::core::quant::{Quantized, pow2, reconstruct_into};
use crate::io::container::{MappedSafetensors, OutTensor, Payload, RawTensor, write_atomic};
use crate::io::dtype::{self, Dtype};
use crate::io::error::{ModelError, shape_text};
use crate::io::job_plan::TextId;
use crate::io::model::MODEL_FILE;
use crate::search::compress::{BlockCode, CompressedTensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `__metadata__` key marking a packed file; its value is [`FORMAT_NAME`].
pub const KEY_FORMAT: &str = "seedlm.format";
/// Value of [`KEY_FORMAT`].
pub const FORMAT_NAME: &str = "seedlm-packed";
/// `__metadata__` key of the format version (decimal).
pub const KEY_VERSION: &str = "seedlm.version";
/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The versions this build reads: 1 (no metadata checksums) and 2.
pub const READ_VERSIONS: [u32; 2] = [1, 2];
/// `__metadata__` key of the file checksum (version 2): the CRC-32, in decimal, of the file's
/// canonical content ([`file_canonical`]).
pub const KEY_CHECKSUM: &str = "seedlm.checksum";
/// `__metadata__` key of the tensor order of the source model (a JSON array of names).
pub const KEY_ORDER: &str = "seedlm.order";
/// `__metadata__` key saying how the search was steered, when it was not data-free: a JSON
/// object `{"mode": "activation-diagonal", "text": NAME, "sha256": HEX, "tensors": [NAMES]}`
/// ([`CalibrationRecord`], `seedlm compress --calibrate`). Informational: the decoder does not
/// read it.
pub const KEY_CALIBRATION: &str = "seedlm.calibration";
/// Prefix of the per-tensor `__metadata__` keys; the rest of the key is the tensor name.
pub const KEY_TENSOR_PREFIX: &str = "seedlm.tensor.";
/// Key of the bit allocation that chose each tensor's configuration (`compress --target-bpw`),
/// a JSON object; informative only, the per-tensor metadata is what decodes.
pub const KEY_ALLOCATION: &str = "seedlm.allocation";
/// The `seedlm.*` metadata keys a packed file may hold besides the per-tensor ones.
const KNOWN_KEYS: [&str; 6] = [
    KEY_FORMAT,
    KEY_VERSION,
    KEY_CHECKSUM,
    KEY_ORDER,
    KEY_CALIBRATION,
    KEY_ALLOCATION,
];
/// The [`KEY_CALIBRATION`] record: the text a calibrated search was weighted by, and which
/// tensors were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibrationRecord {
    /// How the search was steered (`activation-diagonal`).
    pub mode: String,
    /// The text's file name.
    pub text: String,
    /// SHA-256 of the text's bytes, lower-case hex.
    pub sha256: String,
    /// The compressed tensors whose search was weighted, in the order compressed (files written
    /// before this list existed hold a count here, read as an empty list).
    pub tensors: Vec<String>,
}

impl CalibrationRecord {
    /// The record of `tensors` searched weighted by the input moments measured on `text` (the
    /// diagonal of their second moments, mode `activation-diagonal`).
    pub fn weighted_by(text: &TextId, tensors: Vec<String>) -> CalibrationRecord {
        CalibrationRecord {
            mode: "activation-diagonal".into(),
            text: text.path.file_name().map_or_else(
                || text.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            sha256: text.sha256.clone(),
            tensors,
        }
    }

    /// The record as stored: a JSON object with the fields `mode`, `text`, `sha256` and
    /// `tensors` (an array of names).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "mode": self.mode,
            "text": self.text,
            "sha256": self.sha256,
            "tensors": self.tensors,
        })
        .to_string()
    }

    /// Reads a stored record; `None` when it is not an object with string `mode`, `text` and
    /// `sha256`. A `tensors` that is not an array of names (a count, in older files) reads as
    /// none named.
    pub fn parse(json: &str) -> Option<CalibrationRecord> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let text = |k: &str| v.get(k)?.as_str().map(str::to_string);
        let tensors = match v.get("tensors") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Some(CalibrationRecord {
            mode: text("mode")?,
            text: text("text")?,
            sha256: text("sha256")?,
            tensors,
        })
    }
}

/// Largest |e_base| accepted from a file.
pub const MAX_ABS_E_BASE: i32 = 1000;

/// Per-tensor metadata of a compressed tensor (a JSON object in `__metadata__`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedMeta {
    /// Original tensor name.
    pub name: String,
    /// Original shape.
    pub shape: Vec<usize>,
    /// Original dtype name (`F32`, `F16` or `BF16`).
    pub dtype: String,
    /// Block size C.
    pub c: usize,
    /// Coefficients per block P.
    pub p: usize,
    /// LFSR length K.
    pub k: u32,
    /// Exponent of code E = 0.
    pub e_base: i32,
    /// Number of block records.
    pub blocks: usize,
    /// CRC-32 (IEEE) of the packed bytes.
    pub crc32: u32,
    /// Relative MSE measured when compressing, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relmse: Option<f64>,
    /// CRC-32 of [`PackedMeta::canonical`] (version 2; absent in version 1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_crc32: Option<u32>,
}

/// Appends one field of a canonical form: its byte length in decimal, `:`, then the bytes.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// A shape as a canonical field value: the dimensions in decimal, joined by commas.
fn shape_field(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl PackedMeta {
    /// The canonical form of every field but `meta_crc32` (FORMAT.md §2): the fields `name`,
    /// `shape`, `dtype`, `c`, `p`, `k`, `e_base`, `blocks`, `crc32` and `relmse` (its IEEE-754
    /// bits as 16 lower-case hex digits, empty when absent), each as a length-prefixed field.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, self.name.as_bytes());
        field(&mut out, shape_field(&self.shape).as_bytes());
        for v in [
            self.dtype.clone(),
            self.c.to_string(),
            self.p.to_string(),
            self.k.to_string(),
            self.e_base.to_string(),
            self.blocks.to_string(),
            self.crc32.to_string(),
            self.relmse
                .map_or(String::new(), |r| format!("{:016x}", r.to_bits())),
        ] {
            field(&mut out, v.as_bytes());
        }
        out
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        Config {
            c: self.c,
            p: self.p,
            k: self.k,
        }
    }
}

/// One block record as an integer: seed in bits [K−1:0], E in [K+3:K], q_j (4-bit two's
/// complement) in [K+4+4j+3 : K+4+4j].
pub fn encode_record(code: &BlockCode, cfg: Config) -> u64 {
    let mut r = u64::from(code.seed) | u64::from(code.e_code & 0xf) << cfg.k;
    for j in 0..cfg.p {
        r |= u64::from(code.q[j] as u8 & 0xf) << (cfg.k + 4 + 4 * j as u32);
    }
    r
}

/// The inverse of [`encode_record`].
pub fn decode_record(r: u64, cfg: Config) -> BlockCode {
    let mut q = [0i8; MAX_P];
    for (j, qj) in q.iter_mut().enumerate().take(cfg.p) {
        let nib = ((r >> (cfg.k + 4 + 4 * j as u32)) & 0xf) as i8;
        *qj = (nib << 4) >> 4;
    }
    BlockCode {
        seed: (r & ((1u64 << cfg.k) - 1)) as u32,
        e_code: ((r >> cfg.k) & 0xf) as u8,
        q,
    }
}

/// Bytes taken by `blocks` records of `cfg` (`usize::MAX` if that does not fit, which no
/// buffer can match).
pub fn packed_len(cfg: Config, blocks: usize) -> usize {
    let bits = blocks as u128 * u128::from(cfg.block_bits());
    usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX)
}

/// Packs the block records of `t` (unused bits of the last byte are zero).
pub fn pack_blocks(t: &CompressedTensor) -> Vec<u8> {
    pack_records(
        t.blocks.iter().map(|b| encode_record(b, t.config)),
        t.config,
    )
}

/// Packs encoded records of `cfg` back to back, LSB first, as the file stores them (unused bits
/// of the last byte are zero); the hardware's DDR stream is these bytes too.
pub fn pack_records(records: impl ExactSizeIterator<Item = u64>, cfg: Config) -> Vec<u8> {
    let bits = cfg.block_bits();
    let mut w = BitWriter::with_capacity(records.len() as u64 * u64::from(bits));
    for r in records {
        w.push(r, bits);
    }
    w.into_bytes()
}

/// Unpacks `blocks` records; fails on a wrong length or a seed outside [1, 2^K − 1].
pub fn unpack_blocks(bytes: &[u8], cfg: Config, blocks: usize) -> Result<Vec<BlockCode>, String> {
    check_packed(bytes, cfg, blocks)?;
    decode_range(bytes, cfg, 0..blocks)
}

/// Checks that `bytes` are `blocks` records of `cfg` long, with the unused bits of the last byte
/// zero.
pub fn check_packed(bytes: &[u8], cfg: Config, blocks: usize) -> Result<(), String> {
    let want = packed_len(cfg, blocks);
    if bytes.len() != want {
        return Err(format!(
            "packed data is {} bytes, {blocks} records need {want} (truncated or corrupt)",
            bytes.len()
        ));
    }
    let used = (blocks as u64 * u64::from(cfg.block_bits()) % 8) as u32;
    if used != 0 && bytes.last().is_some_and(|&b| b >> used != 0) {
        return Err(format!(
            "the unused high {} bits of the last byte are not zero (corrupt file)",
            8 - used
        ));
    }
    Ok(())
}

/// Decodes records `range` of `bytes` (checked by [`check_packed`] to hold them); fails on a
/// seed outside [1, 2^K − 1] before it allocates the codes (a forged file's bad first record
/// cost a decoded copy of the whole tensor, issue 23).
pub fn decode_range(
    bytes: &[u8],
    cfg: Config,
    range: std::ops::Range<usize>,
) -> Result<Vec<BlockCode>, String> {
    check_seeds(bytes, cfg, range.clone())?;
    Ok(records(bytes, cfg, range).collect())
}

/// Refuses a record of `range` whose seed is 0, not an LFSR state.
fn check_seeds(bytes: &[u8], cfg: Config, range: std::ops::Range<usize>) -> Result<(), String> {
    use rayon::prelude::*;
    // Only the seed field (the low K bits of a record), in parallel chunks: decoding whole
    // records one by one took a quarter of a packed model's first prompt.
    const CHUNK: usize = 1 << 20;
    let bits = u64::from(cfg.block_bits());
    let zero = |i: usize| read_bits(bytes, i as u64 * bits, cfg.k).is_some_and(|s| s == 0);
    let first_zero = (range.start..range.end)
        .step_by(CHUNK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .find_map_first(|at| (at..(at + CHUNK).min(range.end)).find(|&i| zero(i)));
    match first_zero {
        Some(i) => Err(format!("record {i} has seed 0, which is not an LFSR state")),
        None => Ok(()),
    }
}

/// The records of `range` that `bytes` holds, decoded one at a time, without validation.
fn records(
    bytes: &[u8],
    cfg: Config,
    range: std::ops::Range<usize>,
) -> impl Iterator<Item = BlockCode> + '_ {
    let bits = cfg.block_bits();
    range
        .map_while(move |i| read_bits(bytes, i as u64 * u64::from(bits), bits))
        .map(move |r| decode_record(r, cfg))
}

/// What a packed file records of a compressed tensor besides its records and their CRC.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressedHead {
    /// Original name.
    pub name: String,
    /// Original shape.
    pub shape: Vec<usize>,
    /// Original dtype (F32, F16 or BF16).
    pub dtype: Dtype,
    /// Configuration.
    pub config: Config,
    /// Exponent of code E = 0.
    pub e_base: i32,
    /// Number of blocks.
    pub blocks: usize,
    /// Relative MSE measured when compressing.
    pub relmse: Option<f64>,
}

impl CompressedHead {
    /// Number of original weights.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no weights.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A compressed tensor to write, held packed (K + 4 + 4P bits a block) so that a whole model's
/// worth of them costs no more memory than the output file.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressedEntry {
    /// What the file records of it.
    pub head: CompressedHead,
    /// The packed records.
    pub packed: Vec<u8>,
}

impl CompressedEntry {
    /// Packs `tensor`, the compressed form of a tensor of `shape` and `dtype`.
    pub fn new(
        name: &str,
        shape: &[usize],
        dtype: Dtype,
        tensor: &CompressedTensor,
        relmse: Option<f64>,
    ) -> Self {
        CompressedEntry {
            head: CompressedHead {
                name: name.to_string(),
                shape: shape.to_vec(),
                dtype,
                config: tensor.config,
                e_base: tensor.e_base,
                blocks: tensor.blocks.len(),
                relmse,
            },
            packed: pack_blocks(tensor),
        }
    }

    /// The compressed tensor, unpacked.
    pub fn tensor(&self) -> CompressedTensor {
        let h = &self.head;
        CompressedTensor {
            config: h.config,
            e_base: h.e_base,
            len: h.len(),
            blocks: records(&self.packed, h.config, 0..h.blocks).collect(),
        }
    }

    /// The entry as a tensor to write, its records borrowed.
    pub fn out(&self) -> PackedOut<'_> {
        PackedOut {
            head: self.head.clone(),
            crc32: crc32fast::hash(&self.packed),
            records: Payload::Bytes(&self.packed),
        }
    }
}

/// A tensor stored as it was.
#[derive(Clone, Debug)]
pub struct PlainEntry<'a> {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Dtype.
    pub dtype: Dtype,
    /// Raw little-endian bytes.
    pub data: &'a [u8],
}

/// One tensor as the file checksum sees it: name, stored dtype and shape, CRC-32 of its bytes.
pub struct StoredTensor<'a> {
    /// Name in the file.
    pub name: &'a str,
    /// Stored dtype (`U8` for a packed tensor).
    pub dtype: Dtype,
    /// Stored shape.
    pub shape: &'a [usize],
    /// CRC-32 of the stored bytes.
    pub crc32: u32,
}

/// The canonical content of a packed file that [`KEY_CHECKSUM`] protects (FORMAT.md §1): for
/// each tensor in byte order of its name the fields name, dtype, shape and the CRC-32 of its
/// bytes; then for each `__metadata__` key but [`KEY_CHECKSUM`], in byte order, key and value.
/// Data offsets are left out: the data section is contiguous and each tensor's bytes are bound
/// to its name by their CRC, so no other valid layout decodes differently.
pub fn file_canonical(
    tensors: &mut [StoredTensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    tensors.sort_by(|a, b| a.name.cmp(b.name));
    let mut out = Vec::new();
    for t in tensors.iter() {
        field(&mut out, t.name.as_bytes());
        field(&mut out, t.dtype.to_string().as_bytes());
        field(&mut out, shape_field(t.shape).as_bytes());
        field(&mut out, t.crc32.to_string().as_bytes());
    }
    for (k, v) in metadata.iter().filter(|(k, _)| *k != KEY_CHECKSUM) {
        field(&mut out, k.as_bytes());
        field(&mut out, v.as_bytes());
    }
    out
}

/// The file checksum ([`KEY_CHECKSUM`]) of `tensors` and `metadata`: the CRC-32 of their
/// [`file_canonical`] form.
pub fn file_checksum<'a>(
    tensors: impl IntoIterator<Item = StoredTensor<'a>>,
    metadata: &BTreeMap<String, String>,
) -> u32 {
    let mut stored: Vec<StoredTensor<'a>> = tensors.into_iter().collect();
    crc32fast::hash(&file_canonical(&mut stored, metadata))
}

/// A compressed tensor to write: the fields its metadata records, and its packed records.
pub struct PackedOut<'a> {
    /// What the file records of it.
    pub head: CompressedHead,
    /// CRC-32 of the packed records.
    pub crc32: u32,
    /// The packed records, [`packed_len`] bytes (checked while written).
    pub records: Payload<'a>,
}

/// Writes a packed file atomically. `order` is the source model's tensor order (kept for
/// listings); `metadata` is the source's `__metadata__`, carried along.
pub fn write_packed(
    path: &Path,
    compressed: &[CompressedEntry],
    plain: &[PlainEntry<'_>],
    order: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let out = compressed.iter().map(CompressedEntry::out).collect();
    write_packed_out(path, out, plain, order, metadata)
}

/// [`write_packed`] with each compressed tensor's header fields given and its records written
/// as they come (a merge streams them from the shard parts).
pub fn write_packed_out(
    path: &Path,
    compressed: Vec<PackedOut<'_>>,
    plain: &[PlainEntry<'_>],
    order: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let mut meta: BTreeMap<String, String> = metadata
        .iter()
        // How the codes were chosen is kept; the source's own seedlm.* keys are not.
        .filter(|(k, _)| {
            !k.starts_with("seedlm.") || [KEY_CALIBRATION, KEY_ALLOCATION].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.insert(KEY_FORMAT.into(), FORMAT_NAME.into());
    meta.insert(KEY_VERSION.into(), FORMAT_VERSION.to_string());
    meta.insert(KEY_ORDER.into(), serde_json::json!(order).to_string());
    let mut out = Vec::with_capacity(compressed.len() + plain.len());
    let mut crcs = Vec::with_capacity(compressed.len() + plain.len());
    for PackedOut {
        head: h,
        crc32,
        records,
    } in compressed
    {
        let cfg = h.config;
        if h.blocks != h.len().div_ceil(cfg.c) || !dtype::is_float(h.dtype) {
            return Err(ModelError::tensor(
                path,
                &h.name,
                "shape, dtype or packed size does not match the compressed tensor",
            ));
        }
        let mut m = PackedMeta {
            name: h.name.clone(),
            shape: h.shape,
            dtype: h.dtype.to_string(),
            c: cfg.c,
            p: cfg.p,
            k: cfg.k,
            e_base: h.e_base,
            blocks: h.blocks,
            crc32,
            // A figure the reader would refuse is left out rather than written.
            relmse: h.relmse.filter(|&r| plausible_relmse(r)),
            meta_crc32: None,
        };
        m.meta_crc32 = Some(crc32fast::hash(&m.canonical()));
        meta.insert(
            format!("{KEY_TENSOR_PREFIX}{}", h.name),
            serde_json::to_string(&m).expect("plain struct serializes"),
        );
        crcs.push(crc32);
        out.push(OutTensor {
            name: h.name,
            dtype: Dtype::U8,
            shape: vec![packed_len(cfg, h.blocks)],
            data: records,
        });
    }
    for p in plain {
        crcs.push(crc32fast::hash(p.data));
        out.push(OutTensor {
            name: p.name.clone(),
            dtype: p.dtype,
            shape: p.shape.clone(),
            data: Payload::Bytes(p.data),
        });
    }
    write_checksummed(path, out, crcs, meta)
}

/// Writes `tensors` (whose data have the CRC-32s `crcs`) and `meta` atomically, sealed with
/// [`KEY_CHECKSUM`]: the file checksum of FORMAT.md §1 over every tensor's name, shape and
/// CRC-32 and every metadata key and value. Packed files, shard parts and pieces are written
/// this way.
pub fn write_checksummed(
    path: &Path,
    tensors: Vec<OutTensor<'_>>,
    crcs: Vec<u32>,
    mut meta: BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let stored = tensors.iter().zip(crcs).map(|(t, crc32)| StoredTensor {
        name: &t.name,
        dtype: t.dtype,
        shape: &t.shape,
        crc32,
    });
    let checksum = file_checksum(stored, &meta);
    meta.insert(KEY_CHECKSUM.into(), checksum.to_string());
    write_atomic(path, tensors, &meta)
}

/// One tensor of a packed file.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedTensor {
    /// Name.
    pub name: String,
    /// Original shape.
    pub shape: Vec<usize>,
    /// Original dtype.
    pub dtype: Dtype,
    /// Bytes stored in the file.
    pub stored_bytes: usize,
    /// Compression metadata; `None` for a tensor stored as it was.
    pub packed: Option<PackedMeta>,
    raw: usize,
}

/// An opened packed file: fully verified ([`PackedModel::open`]), or verified but for its
/// data, which is checked tensor by tensor when first read ([`PackedModel::open_headers`]).
#[derive(Debug)]
pub struct PackedModel {
    file: MappedSafetensors,
    tensors: Vec<PackedTensor>,
    version: u32,
    by_name: HashMap<String, usize>,
    /// Per file tensor: whether its data passed its CRC and range checks (set at open by a
    /// full check, else at the first read of a compressed tensor).
    checked: Vec<OnceLock<Result<(), String>>>,
}

/// When a packed file's tensor data is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCheck {
    /// At open: every tensor's CRC and range, and the file checksum (reads the whole file).
    AtOpen,
    /// A compressed tensor's CRC and range when it is first read; the header and metadata
    /// are still checked at open. A plain tensor has no CRC of its own (only the file
    /// checksum covers it), so its data is not checked.
    OnRead,
}

/// The file a packed path names: the path itself, or `model.safetensors` inside a directory.
pub fn packed_file_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_path_buf()
    }
}

/// Whether the file claims to be a packed file: it has a `seedlm.` metadata key. A damaged
/// marker still counts, so such a file is verified (and refused) rather than read as a model.
pub fn is_packed(file: &MappedSafetensors) -> bool {
    file.metadata().keys().any(|k| k.starts_with("seedlm."))
}

impl PackedModel {
    /// Opens a packed file (or a directory holding one as `model.safetensors`) and verifies
    /// the format version, every tensor's metadata, length and checksum.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        Self::from_file(
            MappedSafetensors::open(&packed_file_path(path))?,
            DataCheck::AtOpen,
        )
    }

    /// Opens a packed file reading its header only (an 8B model opens in a moment): the
    /// format, metadata checksums, shapes and lengths are verified, each compressed tensor's
    /// data when [`PackedModel::compressed`] first reads it ([`DataCheck::OnRead`]).
    pub fn open_headers(path: &Path) -> Result<Self, ModelError> {
        Self::from_file(
            MappedSafetensors::open(&packed_file_path(path))?,
            DataCheck::OnRead,
        )
    }

    /// Verifies an already mapped file as a packed file (FORMAT.md §2, "A reader checks"),
    /// its data when `check` says.
    pub fn from_file(file: MappedSafetensors, check: DataCheck) -> Result<Self, ModelError> {
        let path = file.path().to_path_buf();
        let meta = file.metadata();
        let whole = |reason: String| ModelError::file(&path, reason);
        if meta.get(KEY_FORMAT).map(String::as_str) != Some(FORMAT_NAME) {
            return Err(whole(format!(
                "not a SeedLM packed file (no {KEY_FORMAT}={FORMAT_NAME} metadata)"
            )));
        }
        let version_text = meta.get(KEY_VERSION).map(String::as_str).unwrap_or("");
        // Compared as text, so that "+1" or "01" are not taken for 1.
        let version = READ_VERSIONS
            .into_iter()
            .find(|v| v.to_string() == version_text)
            .ok_or_else(|| {
                whole(format!(
                    "packed format version '{version_text}' is not supported (this build reads versions 1 and {FORMAT_VERSION})"
                ))
            })?;
        let checked = version >= 2;
        let full = check == DataCheck::AtOpen;
        let crcs: Vec<u32> = if full {
            file.tensors()
                .iter()
                .map(|t| crc32fast::hash(file.bytes(t)))
                .collect()
        } else {
            Vec::new()
        };
        let raw_index: HashMap<&str, usize> = file
            .tensors()
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        let mut packed: HashMap<String, PackedMeta> = HashMap::new();
        for (key, value) in meta {
            let Some(name) = key.strip_prefix(KEY_TENSOR_PREFIX) else {
                // A key of the format that this reader does not know would be dropped on
                // decompression, so it is refused (FORMAT.md §1).
                if key.starts_with("seedlm.") && !KNOWN_KEYS.contains(&key.as_str()) {
                    return Err(whole(format!(
                        "unknown packed-format metadata key '{key}' (damaged, or from a newer seedlm)"
                    )));
                }
                continue;
            };
            let bad = |reason: String| ModelError::tensor(&path, name, reason);
            // serde would also take an array of the fields; the format says object.
            let m: PackedMeta = serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| "not a JSON object".to_string())
                .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                .map_err(|e| bad(format!("malformed packed metadata ({e})")))?;
            match (checked, m.meta_crc32) {
                (true, None) => {
                    return Err(bad(
                        "packed metadata has no meta_crc32 (required from version 2)".into(),
                    ));
                }
                (true, Some(c)) if c != crc32fast::hash(&m.canonical()) => {
                    return Err(bad(format!(
                        "metadata checksum mismatch: meta_crc32 {c} does not match the metadata (corrupt file)"
                    )));
                }
                (false, Some(_)) => {
                    return Err(bad(
                        "packed metadata has a meta_crc32, which version 1 files do not have (corrupt version field?)".into()
                    ));
                }
                _ => {}
            }
            let &ri = raw_index
                .get(name)
                .ok_or_else(|| bad("has packed metadata but no data in the file".into()))?;
            let raw = &file.tensors()[ri];
            verify_header(&m, raw, file.bytes(raw).len()).map_err(bad)?;
            if full {
                verify_data(&m, file.bytes(raw), crcs[ri]).map_err(bad)?;
            }
            packed.insert(name.to_string(), m);
        }
        match (checked, meta.get(KEY_CHECKSUM)) {
            (true, None) => {
                return Err(whole(format!(
                    "no {KEY_CHECKSUM} metadata (required from version 2)"
                )));
            }
            // Every tensor's CRC is needed; a check on read leaves it out.
            (true, Some(_)) if !full => {}
            (true, Some(stored)) => {
                let st = file
                    .tensors()
                    .iter()
                    .zip(&crcs)
                    .map(|(t, &crc32)| StoredTensor {
                        name: &t.name,
                        dtype: t.dtype,
                        shape: &t.shape,
                        crc32,
                    });
                let want = file_checksum(st, meta).to_string();
                if *stored != want {
                    return Err(whole(format!(
                        "file checksum mismatch: the header or a tensor's data changed ({KEY_CHECKSUM} is '{stored}', the content gives {want}; corrupt file)"
                    )));
                }
            }
            (false, Some(_)) => {
                return Err(whole(format!(
                    "has {KEY_CHECKSUM}, which version 1 files do not have (corrupt version field?)"
                )));
            }
            (false, None) => {}
        }
        let order: Vec<String> = meta
            .get(KEY_ORDER)
            .ok_or_else(|| whole(format!("no {KEY_ORDER} metadata")))
            .and_then(|o| {
                serde_json::from_str(o)
                    .map_err(|_| whole(format!("{KEY_ORDER} is not a JSON array of names")))
            })?;
        let mut rank: HashMap<&str, usize> = HashMap::with_capacity(order.len());
        for (i, n) in order.iter().enumerate() {
            if rank.insert(n.as_str(), i).is_some() {
                return Err(ModelError::tensor(
                    &path,
                    n,
                    format!("is listed twice in {KEY_ORDER}"),
                ));
            }
            if !raw_index.contains_key(n.as_str()) {
                return Err(ModelError::tensor(
                    &path,
                    n,
                    format!("is listed in {KEY_ORDER} but not in the file"),
                ));
            }
        }
        let mut tensors = Vec::with_capacity(file.tensors().len());
        for (ri, t) in file.tensors().iter().enumerate() {
            if !rank.contains_key(t.name.as_str()) {
                return Err(ModelError::tensor(
                    &path,
                    &t.name,
                    format!("is in the file but not listed in {KEY_ORDER}"),
                ));
            }
            tensors.push(match packed.remove(&t.name) {
                Some(m) => PackedTensor {
                    name: t.name.clone(),
                    shape: m.shape.clone(),
                    dtype: dtype::parse(&m.dtype).expect("verified"),
                    stored_bytes: t.byte_size(),
                    packed: Some(m),
                    raw: ri,
                },
                None => PackedTensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    dtype: t.dtype,
                    stored_bytes: t.byte_size(),
                    packed: None,
                    raw: ri,
                },
            });
        }
        tensors.sort_by_key(|t| rank[t.name.as_str()]);
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let checked = (0..file.tensors().len())
            .map(|_| {
                if full {
                    OnceLock::from(Ok(()))
                } else {
                    OnceLock::new()
                }
            })
            .collect();
        Ok(PackedModel {
            file,
            tensors,
            version,
            by_name,
            checked,
        })
    }

    /// The format version of the file (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The packed file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Every tensor, in the source model's order.
    pub fn tensors(&self) -> &[PackedTensor] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&PackedTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The [`KEY_CALIBRATION`] record of a calibrated compression (`None`: data-free).
    pub fn calibration(&self) -> Option<&str> {
        self.file
            .metadata()
            .get(KEY_CALIBRATION)
            .map(String::as_str)
    }

    /// The [`KEY_CALIBRATION`] record parsed (`None`: data-free, or a record it cannot read).
    pub fn calibration_record(&self) -> Option<CalibrationRecord> {
        CalibrationRecord::parse(self.calibration()?)
    }

    /// The source model's `__metadata__` (the packed-format keys removed).
    pub fn source_metadata(&self) -> BTreeMap<String, String> {
        self.file
            .metadata()
            .iter()
            .filter(|(k, _)| !k.starts_with("seedlm."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The bit allocation's JSON ([`KEY_ALLOCATION`]), when `compress --target-bpw` wrote one.
    pub fn allocation(&self) -> Option<&str> {
        self.file.metadata().get(KEY_ALLOCATION).map(String::as_str)
    }

    /// The stored bytes of `t` (packed records, or the plain tensor's data).
    pub fn stored_bytes(&self, t: &PackedTensor) -> &[u8] {
        self.file.bytes(&self.file.tensors()[t.raw])
    }

    /// The compressed tensor `t`, or `None` when it is stored as it was; its data is checked
    /// first if the open did not ([`DataCheck::OnRead`]).
    pub fn compressed(&self, t: &PackedTensor) -> Option<Result<CompressedTensor, ModelError>> {
        let m = t.packed.as_ref()?;
        let cfg = m.config();
        Some(self.records(t)?.and_then(|bytes| {
            unpack_blocks(bytes, cfg, m.blocks)
                .map(|blocks| CompressedTensor {
                    config: cfg,
                    e_base: m.e_base,
                    len: t.shape.iter().product(),
                    blocks,
                })
                .map_err(|r| ModelError::tensor(self.path(), &t.name, r))
        }))
    }

    /// The block records of the compressed tensor `t` (`None` when it is stored as it was),
    /// checked first if the open did not ([`DataCheck::OnRead`]): once checked they decode.
    pub fn records(&self, t: &PackedTensor) -> Option<Result<&[u8], ModelError>> {
        let m = t.packed.as_ref()?;
        let bytes = self.stored_bytes(t);
        let check =
            self.checked[t.raw].get_or_init(|| verify_data(m, bytes, crc32fast::hash(bytes)));
        Some(match check {
            Ok(()) => Ok(bytes),
            Err(r) => Err(ModelError::tensor(self.path(), &t.name, r.clone())),
        })
    }

    /// `t` as f32: the exact reconstruction for a compressed tensor, the stored values for a
    /// plain float tensor; an error for a plain non-float tensor.
    pub fn to_f32(&self, t: &PackedTensor) -> Result<Vec<f32>, ModelError> {
        match self.compressed(t) {
            Some(c) => Ok(c?.reconstruct()),
            None => dtype::to_f32(t.dtype, self.stored_bytes(t)).ok_or_else(|| {
                ModelError::tensor(
                    self.path(),
                    &t.name,
                    format!("dtype {} is not a float type", t.dtype),
                )
            }),
        }
    }
}

/// Largest recorded relative MSE a file may hold (FORMAT.md §2). Storing zeros scores 1; a
/// search 20 dB worse than that is broken, so a larger figure (1e308, say) is a damaged or
/// forged file, not a measurement.
pub const MAX_RELMSE: f64 = 100.0;

/// Whether `r` can be a recorded relative MSE: in [0, [`MAX_RELMSE`]] (so finite).
pub fn plausible_relmse(r: f64) -> bool {
    (0.0..=MAX_RELMSE).contains(&r)
}

/// Checks a compressed tensor's metadata against its stored tensor (`len` bytes).
fn verify_header(m: &PackedMeta, raw: &RawTensor, len: usize) -> Result<(), String> {
    if raw.name != m.name {
        return Err(format!("packed metadata names tensor '{}'", m.name));
    }
    if raw.dtype != Dtype::U8 || raw.shape.len() != 1 {
        return Err(format!(
            "packed data must be a 1-D U8 tensor, found {} {}",
            raw.dtype,
            shape_text(&raw.shape)
        ));
    }
    if !dtype::parse(&m.dtype).is_some_and(dtype::is_float) {
        return Err(format!(
            "original dtype '{}' is not F32, F16 or BF16",
            m.dtype
        ));
    }
    if let Some(r) = m.relmse.filter(|&r| !plausible_relmse(r)) {
        return Err(format!(
            "recorded relative MSE {r} is outside [0, {MAX_RELMSE}] (corrupt file)"
        ));
    }
    let cfg = Config::new(m.c, m.p, m.k).map_err(|e| e.to_string())?;
    if !(-MAX_ABS_E_BASE..=MAX_ABS_E_BASE).contains(&m.e_base) {
        return Err(format!("e_base {} is out of range", m.e_base));
    }
    let numel = m
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("original shape overflows")?;
    if m.blocks != numel.div_ceil(cfg.c) {
        return Err(format!(
            "{} blocks recorded, shape {} at C={} needs {}",
            m.blocks,
            shape_text(&m.shape),
            cfg.c,
            numel.div_ceil(cfg.c)
        ));
    }
    let want = packed_len(cfg, m.blocks);
    if len != want {
        return Err(format!(
            "packed data is {len} bytes, {} records need {want} (truncated or corrupt)",
            m.blocks
        ));
    }
    Ok(())
}

/// Checks a compressed tensor's data (whose CRC-32 is `crc`; its header passed
/// [`verify_header`]): the checksum, and that every weight reconstructs to a finite value.
fn verify_data(m: &PackedMeta, bytes: &[u8], crc: u32) -> Result<(), String> {
    if crc != m.crc32 {
        return Err(format!(
            "checksum mismatch: CRC32 is {crc:08x}, metadata says {:08x} (corrupt file)",
            m.crc32
        ));
    }
    let cfg = m.config();
    let numel = m.shape.iter().product();
    let dt = dtype::parse(&m.dtype).ok_or("unknown original dtype")?;
    // Record by record: checking allocates nothing.
    check_packed(bytes, cfg, m.blocks)?;
    check_seeds(bytes, cfg, 0..m.blocks)?;
    check_finite(records(bytes, cfg, 0..m.blocks), cfg, m.e_base, numel, dt)
}

/// Refuses a tensor any of whose weights reconstructs to a value that is not finite in `dt`.
/// `|ŵ_i| ≤ Σ_j |q_j| · 2^e` (a centred state is at most 2^(K−1) − 1 in size), so only records
/// where that bound exceeds the dtype's range are decoded to check.
fn check_finite(
    codes: impl Iterator<Item = BlockCode>,
    cfg: Config,
    e_base: i32,
    numel: usize,
    dt: Dtype,
) -> Result<(), String> {
    let limit = dtype::max_finite(dt);
    // No record can pass the bound below when the largest exponent and coefficients cannot.
    if 8.0 * cfg.p as f64 * pow2(e_base + 15) <= limit {
        return Ok(());
    }
    let half = 1i64 << (cfg.k - 1);
    // Once per exponent code, not per block: `powi` was an eighth of loading a model.
    let scales: [f64; 16] = std::array::from_fn(|e| pow2(e_base + e as i32));
    for (b, code) in codes.enumerate() {
        let e = e_base + i32::from(code.e_code);
        let bound: f64 = code.q[..cfg.p]
            .iter()
            .map(|&q| f64::from(q.unsigned_abs()))
            .sum::<f64>()
            * scales[usize::from(code.e_code & 15)];
        if bound <= limit {
            continue;
        }
        let v: Vec<i64> = Lfsr::new(cfg.k, code.seed)
            .states(cfg.c * cfg.p)
            .into_iter()
            .map(|s| i64::from(s) - half)
            .collect();
        let mut out = [0.0f64; MAX_C];
        let quant = Quantized { e, q: code.q };
        reconstruct_into(&v, cfg.p, &quant, (half - 1) as f64, &mut out[..cfg.c]);
        let weights = numel.saturating_sub(b * cfg.c).min(cfg.c);
        if let Some(i) = out[..weights]
            .iter()
            .position(|&x| !dtype::fits(dt, x as f32))
        {
            return Err(format!(
                "block {b} reconstructs weight {} to {:e}, which is not finite in {dt} (e_base {e_base} too large; corrupt file)",
                b * cfg.c + i,
                out[i]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(seed: u32, e: u8, q: &[i8]) -> BlockCode {
        let mut c = BlockCode {
            seed,
            e_code: e,
            q: [0; MAX_P],
        };
        c.q[..q.len()].copy_from_slice(q);
        c
    }

    #[test]
    fn four_bit_record_is_the_fixed_u32_layout() {
        let c = code(0xACE1, 9, &[-8, 7, -1]);
        let r = encode_record(&c, Config::FOUR_BIT);
        // Nibbles from the top: q2=-1 (f), q1=7, q0=-8 (8), E=9, then seed ACE1.
        assert_eq!(r, 0xF789_ACE1);
        assert_eq!(decode_record(r, Config::FOUR_BIT), c);
    }

    #[test]
    fn three_bit_records_pack_to_36_bits() {
        let cfg = Config::THREE_BIT;
        let blocks: Vec<BlockCode> = (0..5)
            .map(|i| code(1 + i * 4099, (i % 16) as u8, &[i as i8 - 3, -8, 7, 2]))
            .collect();
        let t = CompressedTensor {
            config: cfg,
            e_base: -7,
            len: 60,
            blocks: blocks.clone(),
        };
        let bytes = pack_blocks(&t);
        assert_eq!(bytes.len(), (5 * 36usize).div_ceil(8));
        assert_eq!(unpack_blocks(&bytes, cfg, 5).unwrap(), blocks);
        // Record 1 starts at bit 36: low nibble of byte 4 is the top of record 0.
        assert_eq!(
            u32::from(bytes[4] >> 4) | u32::from(bytes[5]) << 4,
            blocks[1].seed & 0xfff
        );
        assert!(unpack_blocks(&bytes[..bytes.len() - 1], cfg, 5).is_err());
        let zero_seed = pack_blocks(&CompressedTensor {
            blocks: vec![code(0, 0, &[])],
            len: 12,
            ..t
        });
        assert!(
            unpack_blocks(&zero_seed, cfg, 1)
                .unwrap_err()
                .contains("seed 0")
        );
    }

    type Forge = Box<dyn FnOnce(&mut PackedMeta, &mut Vec<u8>)>;

    /// A 16-weight tensor of two 4-bit records, the second at the top exponent code.
    fn two_blocks(e_base: i32) -> CompressedTensor {
        CompressedTensor {
            config: Config::FOUR_BIT,
            e_base,
            len: 16,
            blocks: vec![code(5, 3, &[1, -2, 3]), code(77, 15, &[-8, 7, 0])],
        }
    }

    /// Writes a one-tensor packed file and lets `forge` edit its metadata and packed bytes.
    /// With `reseal`, the forger also recomputes both metadata checksums, as a buggy writer
    /// would, so the other checks are what refuses it.
    fn forge_file(
        reseal: bool,
        forge: impl FnOnce(&mut PackedMeta, &mut Vec<u8>),
    ) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forged.seedlm");
        let t = two_blocks(-10);
        let e = CompressedEntry::new("w", &[2, 8], Dtype::F16, &t, Some(0.01));
        write_packed(
            &path,
            std::slice::from_ref(&e),
            &[],
            &["w".into()],
            &BTreeMap::new(),
        )
        .unwrap();
        let good = PackedModel::open(&path).unwrap();
        assert_eq!(good.version(), FORMAT_VERSION);
        assert_eq!(good.compressed(good.get("w").unwrap()).unwrap().unwrap(), t);
        drop(good);
        let file = MappedSafetensors::open(&path).unwrap();
        let mut meta = file.metadata().clone();
        let key = format!("{KEY_TENSOR_PREFIX}w");
        let mut m: PackedMeta = serde_json::from_str(&meta[&key]).unwrap();
        let mut bytes = file.bytes(&file.tensors()[0]).to_vec();
        drop(file);
        forge(&mut m, &mut bytes);
        if reseal {
            m.meta_crc32 = Some(crc32fast::hash(&m.canonical()));
        }
        meta.insert(key, serde_json::to_string(&m).unwrap());
        if reseal {
            seal(&mut meta, &bytes);
        }
        rewrite(&path, meta, bytes);
        (dir, path)
    }

    /// Recomputes the file checksum of a one-tensor file `w` holding `bytes`.
    fn seal(meta: &mut BTreeMap<String, String>, bytes: &[u8]) {
        let shape = [bytes.len()];
        let mut st = [StoredTensor {
            name: "w",
            dtype: Dtype::U8,
            shape: &shape,
            crc32: crc32fast::hash(bytes),
        }];
        let sum = crc32fast::hash(&file_canonical(&mut st, meta));
        meta.insert(KEY_CHECKSUM.into(), sum.to_string());
    }

    /// Writes the one-tensor file `w` anew.
    fn rewrite(path: &Path, meta: BTreeMap<String, String>, bytes: Vec<u8>) {
        let out = vec![OutTensor {
            name: "w".into(),
            dtype: Dtype::U8,
            shape: vec![bytes.len()],
            data: Payload::Owned(bytes),
        }];
        write_atomic(path, out, &meta).unwrap();
    }

    /// What FORMAT.md §1–§2 allow and the reader once took anyway: a tensor's metadata as an
    /// array of its fields, and a `seedlm.*` key it does not know (dropped on decompression).
    /// Both are refused, sealed as a writer would seal them (issue 23, item 19).
    #[test]
    fn metadata_arrays_and_unknown_format_keys_are_refused() {
        type Edit = fn(&mut BTreeMap<String, String>);
        let edits: [(&str, Edit); 2] = [
            ("not a JSON object", |meta| {
                let key = format!("{KEY_TENSOR_PREFIX}w");
                let m: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&meta[&key]).unwrap();
                let fields: Vec<_> = m.into_iter().map(|(_, v)| v).collect();
                meta.insert(key, serde_json::to_string(&fields).unwrap());
            }),
            (
                "unknown packed-format metadata key 'seedlm.extra'",
                |meta| {
                    meta.insert("seedlm.extra".into(), "1".into());
                },
            ),
        ];
        for (want, edit) in edits {
            let (_dir, path) = forge_file(true, |_, _| {});
            let file = MappedSafetensors::open(&path).unwrap();
            let mut meta = file.metadata().clone();
            let bytes = file.bytes(&file.tensors()[0]).to_vec();
            drop(file);
            edit(&mut meta);
            seal(&mut meta, &bytes);
            rewrite(&path, meta, bytes);
            let err = PackedModel::open(&path).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("forged.seedlm"), "{err}");
        }
    }

    /// The error opening a file [`forge_file`] forged gives.
    fn open_forged(reseal: bool, forge: impl FnOnce(&mut PackedMeta, &mut Vec<u8>)) -> String {
        let (_dir, path) = forge_file(reseal, forge);
        let err = PackedModel::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("forged.seedlm") && (err.contains("'w'") || err.contains("file checksum")),
            "{err}"
        );
        err
    }

    #[test]
    fn metadata_edits_are_caught_by_the_checksums() {
        // Same block count, one weight fewer: only the metadata checksum can tell.
        let err = open_forged(false, |m, _| m.shape = vec![15]);
        assert!(err.contains("metadata checksum"), "{err}");
        let err = open_forged(false, |m, _| m.relmse = Some(0.5));
        assert!(err.contains("metadata checksum"), "{err}");
        // A consistent tensor entry whose data changed with its CRC: the file checksum.
        let err = open_forged(false, |m, b| {
            b[0] ^= 4;
            m.crc32 = crc32fast::hash(b);
            m.meta_crc32 = Some(crc32fast::hash(&m.canonical()));
        });
        assert!(err.contains("file checksum"), "{err}");
    }

    #[test]
    fn a_header_open_reads_no_data_and_checks_a_tensor_when_it_is_read() {
        // One flipped bit of data: the full open refuses the file; the header open does not
        // look at the data, and reading the tensor fails naming file, tensor and reason.
        let (_dir, path) = forge_file(false, |_, b| b[0] ^= 4);
        let err = PackedModel::open(&path).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch: CRC32"), "{err}");
        let p = PackedModel::open_headers(&path).unwrap();
        let w = p.get("w").unwrap();
        for _ in 0..2 {
            let err = p.compressed(w).unwrap().unwrap_err().to_string();
            assert!(
                err.contains("forged.seedlm")
                    && err.contains("'w'")
                    && err.contains("checksum mismatch: CRC32"),
                "{err}"
            );
        }
        // Records that reconstruct out of F16's range are refused when read, too.
        let (_dir, path) = forge_file(true, |m, _| m.e_base = 5);
        let p = PackedModel::open_headers(&path).unwrap();
        let err = p.compressed(p.get("w").unwrap()).unwrap().unwrap_err();
        assert!(err.to_string().contains("not finite in F16"), "{err}");
        // The metadata is still checked at open.
        let (_dir, path) = forge_file(false, |m, _| m.shape = vec![15]);
        let err = PackedModel::open_headers(&path).unwrap_err().to_string();
        assert!(err.contains("metadata checksum"), "{err}");
        // An intact file reads the same either way.
        let (_dir, path) = forge_file(false, |_, _| {});
        let (lazy, full) = (
            PackedModel::open_headers(&path).unwrap(),
            PackedModel::open(&path).unwrap(),
        );
        let (a, b) = (lazy.get("w").unwrap(), full.get("w").unwrap());
        assert_eq!(
            lazy.compressed(a).unwrap().unwrap(),
            full.compressed(b).unwrap().unwrap()
        );
    }

    #[test]
    fn reconstructions_must_be_finite_in_the_dtype() {
        // Code 15 with q = [-8, 7, 0]: |ŵ| reaches about 8·2^(e_base+15); F16 ends at 65504.
        let err = open_forged(true, |m, _| m.e_base = 5);
        assert!(err.contains("not finite in F16"), "{err}");
        let err = open_forged(true, |m, _| m.e_base = 1000);
        assert!(err.contains("not finite"), "{err}");
        // F32 holds the same records at e_base 5 (and the bound alone would not refuse it).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f32.seedlm");
        let t = two_blocks(5);
        let e = CompressedEntry::new("w", &[2, 8], Dtype::F32, &t, None);
        write_packed(&path, &[e], &[], &["w".into()], &BTreeMap::new()).unwrap();
        assert!(PackedModel::open(&path).is_ok());
    }

    #[test]
    fn version_1_files_without_checksums_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.seedlm");
        let t = two_blocks(-10);
        let e = CompressedEntry::new("w", &[2, 8], Dtype::F16, &t, Some(0.01));
        write_packed(&path, &[e], &[], &["w".into()], &BTreeMap::new()).unwrap();
        let file = MappedSafetensors::open(&path).unwrap();
        let mut meta = file.metadata().clone();
        let bytes = file.bytes(&file.tensors()[0]).to_vec();
        drop(file);
        let key = format!("{KEY_TENSOR_PREFIX}w");
        let mut m: PackedMeta = serde_json::from_str(&meta[&key]).unwrap();
        m.meta_crc32 = None;
        meta.insert(key, serde_json::to_string(&m).unwrap());
        meta.insert(KEY_VERSION.into(), "1".into());
        let checksum = meta.remove(KEY_CHECKSUM).unwrap();
        let write = |meta: &BTreeMap<String, String>| {
            let out = vec![OutTensor {
                name: "w".into(),
                dtype: Dtype::U8,
                shape: vec![bytes.len()],
                data: Payload::Bytes(&bytes),
            }];
            write_atomic(&path, out, meta).unwrap();
        };
        write(&meta);
        let v1 = PackedModel::open(&path).unwrap();
        assert_eq!(v1.version(), 1);
        assert_eq!(v1.compressed(v1.get("w").unwrap()).unwrap().unwrap(), t);
        drop(v1);
        // A checksum in a version 1 file means the version field was damaged.
        meta.insert(KEY_CHECKSUM.into(), checksum);
        write(&meta);
        let err = PackedModel::open(&path).unwrap_err().to_string();
        assert!(err.contains("version 1 files do not have"), "{err}");
    }

    #[test]
    fn the_order_lists_exactly_the_file_s_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("order.seedlm");
        let data = [1u8, 2];
        let plain = [PlainEntry {
            name: "x".into(),
            shape: vec![2],
            dtype: Dtype::U8,
            data: &data,
        }];
        let none = BTreeMap::new();
        for (order, want) in [
            (
                vec!["x", "ghost"],
                "'ghost': is listed in seedlm.order but not in the file",
            ),
            (vec![], "'x': is in the file but not listed"),
            (vec!["x", "x"], "listed twice"),
        ] {
            let order: Vec<String> = order.into_iter().map(String::from).collect();
            write_packed(&path, &[], &plain, &order, &none).unwrap();
            let err = PackedModel::open(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        write_packed(&path, &[], &plain, &["x".into()], &none).unwrap();
        assert!(PackedModel::open(&path).is_ok());
    }

    #[test]
    fn padding_bits_must_be_zero() {
        let cfg = Config::THREE_BIT;
        let t = CompressedTensor {
            config: cfg,
            e_base: -7,
            len: 12,
            blocks: vec![code(9, 1, &[1, 2, 3, 4])],
        };
        let mut bytes = pack_blocks(&t);
        assert_eq!(bytes.len(), 5, "36 bits: 4 unused in the last byte");
        assert!(unpack_blocks(&bytes, cfg, 1).is_ok());
        bytes[4] |= 0x10;
        let err = unpack_blocks(&bytes, cfg, 1).unwrap_err();
        assert!(err.contains("unused high 4 bits"), "{err}");
    }

    #[test]
    fn forged_metadata_is_refused_without_panicking() {
        let cases: Vec<(Forge, &str)> = vec![
            (Box::new(|m, _| m.shape = vec![1 << 62, 1 << 10]), "shape"),
            (Box::new(|m, _| m.shape = vec![usize::MAX / 2, 2]), "blocks"),
            (Box::new(|m, _| m.blocks = 3), "blocks"),
            (Box::new(|m, _| m.c = 0), "C=0"),
            (Box::new(|m, _| m.k = 30), "K=30"),
            (Box::new(|m, _| m.e_base = i32::MIN), "e_base"),
            (Box::new(|m, _| m.name = "v".into()), "names tensor 'v'"),
            (Box::new(|m, _| m.dtype = "I8".into()), "dtype"),
            (Box::new(|m, _| m.relmse = Some(-1.0)), "relative MSE -1"),
            (Box::new(|m, _| m.relmse = Some(1e308)), "outside [0, 100]"),
            (Box::new(|m, _| m.relmse = Some(100.5)), "outside [0, 100]"),
            (Box::new(|m, _| m.crc32 ^= 1), "checksum"),
            (Box::new(|_, b| b.push(0)), "truncated or corrupt"),
            (
                Box::new(|m, b| {
                    b[0] = 0;
                    b[1] = 0;
                    m.crc32 = crc32fast::hash(b);
                }),
                "seed 0",
            ),
        ];
        for (forge, want) in cases {
            let err = open_forged(true, forge);
            assert!(err.contains(want), "wanted '{want}' in: {err}");
        }
    }
}
