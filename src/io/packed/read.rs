//! Reading packed files: [`PackedModel`] opens and verifies one (FORMAT.md §2, "A reader
//! checks").

use super::records::{check_seeds, records};
use super::{
    CalibrationRecord, FORMAT_NAME, FORMAT_VERSION, KEY_ALLOCATION, KEY_CALIBRATION, KEY_CHECKSUM,
    KEY_FORMAT, KEY_ORDER, KEY_TENSOR_PREFIX, KEY_VERSION, KNOWN_KEYS, MAX_ABS_E_BASE, PackedMeta,
    READ_VERSIONS, StoredTensor, check_packed, file_checksum, packed_len, unpack_blocks,
};
use crate::core::config::{Config, MAX_C};
use crate::core::lfsr::Lfsr;
use crate::core::quant::{Quantized, pow2, reconstruct_into};
use crate::io::container::{MappedSafetensors, RawTensor};
use crate::io::dtype::{self, Dtype};
use crate::io::error::{ModelError, shape_text};
use crate::io::model::MODEL_FILE;
use crate::search::compress::{BlockCode, CompressedTensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
        // Plain notation would spell 1e308 in 309 digits.
        let shown = if r.abs() < 1e6 {
            r.to_string()
        } else {
            format!("{r:e}")
        };
        return Err(format!(
            "recorded relative MSE {shown} is outside [0, {MAX_RELMSE}] (corrupt file)"
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
