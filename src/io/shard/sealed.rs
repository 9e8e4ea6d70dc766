//! The sealed files of a shard folder: finished parts and checkpoint pieces, each sealed with a
//! checksum of its records and description and checked when read (once per file version).

use super::plan::ShardJobSpec;
use super::{KEY_PART, LAYOUT_VERSION};
use crate::core::config::Config;
use crate::io::container::{MappedSafetensors, OutTensor, Payload};
use crate::io::error::ModelError;
use crate::io::packed::{
    KEY_CHECKSUM, StoredTensor, file_checksum, unpack_blocks, write_checksummed,
};
use crate::search::compress::BlockCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// One block range held by a part, with what it was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartRange {
    /// Tensor name.
    pub tensor: String,
    /// First block.
    pub start: usize,
    /// One past the last block.
    pub end: usize,
    /// The whole tensor's exponent base.
    pub e_base: i32,
    /// [`tensor_hash`] of the source tensor.
    pub hash: String,
}

/// The description of a finished part (`__metadata__["seedlm.part"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartMeta {
    /// The job.
    pub job: ShardJobSpec,
    /// Shard index I (from 0).
    pub shard: usize,
    /// The ranges it holds, each stored as a U8 tensor named `TENSOR@START`.
    pub ranges: Vec<PartRange>,
}

/// The description of a checkpoint piece (`__metadata__["seedlm.piece"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct PieceMeta {
    /// [`ShardJobSpec::id`].
    pub(super) job: String,
    #[serde(flatten)]
    pub(super) range: PartRange,
}

pub(super) fn range_key(tensor: &str, start: usize) -> String {
    format!("{tensor}@{start}")
}

/// Writes a part or piece atomically: its record tensors (`U8`) and its description `md`,
/// sealed as a packed file is ([`write_checksummed`], FORMAT.md §9).
pub(super) fn write_sealed(
    path: &Path,
    tensors: Vec<OutTensor<'_>>,
    md: BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let crcs: Vec<u32> = tensors
        .iter()
        .map(|t| match &t.data {
            Payload::Bytes(b) => crc32fast::hash(b),
            Payload::Owned(b) => crc32fast::hash(b),
            _ => unreachable!("shard files hold records in memory"),
        })
        .collect();
    write_checksummed(path, tensors, crcs, md)
}

/// Opens a part or piece and checks its [`KEY_CHECKSUM`] against its records and metadata
/// (reads the whole file); a damaged file is refused with an error naming it.
pub fn open_sealed(path: &Path) -> Result<MappedSafetensors, ModelError> {
    let file = MappedSafetensors::open(path).map_err(|e| match e {
        ModelError::Io { .. } => e,
        _ => ModelError::file(path, format!("damaged: {}", reason_of(&e))),
    })?;
    let Some(stored) = file.metadata().get(KEY_CHECKSUM) else {
        return Err(ModelError::file(
            path,
            format!(
                "damaged: no {KEY_CHECKSUM} (or written by a seedlm older than shard layout {LAYOUT_VERSION})"
            ),
        ));
    };
    let crcs: Vec<u32> = file
        .tensors()
        .iter()
        .map(|t| crc32fast::hash(file.bytes(t)))
        .collect();
    let st = file
        .tensors()
        .iter()
        .zip(crcs)
        .map(|(t, crc32)| StoredTensor {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            crc32,
        });
    let want = file_checksum(st, file.metadata()).to_string();
    if *stored != want {
        return Err(ModelError::file(
            path,
            format!(
                "damaged: its records or metadata changed after it was written ({KEY_CHECKSUM} is '{stored}', the content gives {want})"
            ),
        ));
    }
    Ok(file)
}

/// The reason of a file error, without the path it names (the caller names the file).
fn reason_of(e: &ModelError) -> String {
    match e {
        ModelError::File { reason, .. } => reason.clone(),
        ModelError::Tensor { tensor, reason, .. } => format!("tensor '{tensor}': {reason}"),
        ModelError::Io { .. } => e.to_string(),
    }
}

/// Size, modification time and inode of a file, which change when it is replaced or edited.
type Stamp = (u64, Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.len(), m.modified().ok(), ino))
}

/// Shard files [`status`] has verified, with the [`Stamp`] they had then: the app reads a
/// folder's status every second, and a part or piece is read in full only once. `merge` and a
/// shard run verify afresh.
static VERIFIED: Mutex<BTreeMap<PathBuf, Stamp>> = Mutex::new(BTreeMap::new());

/// [`open_sealed`], or when `cached` and the file is unchanged since [`status`] last verified
/// it, only [`MappedSafetensors::open`].
pub(super) fn open_checked(path: &Path, cached: bool) -> Result<MappedSafetensors, ModelError> {
    if !cached {
        return open_sealed(path);
    }
    let before = stamp(path);
    let known =
        before.is_some() && VERIFIED.lock().ok().and_then(|m| m.get(path).copied()) == before;
    if known && let Ok(file) = MappedSafetensors::open(path) {
        return Ok(file);
    }
    let file = open_sealed(path)?;
    if let (Some(st), Ok(mut m)) = (before, VERIFIED.lock())
        && stamp(path) == Some(st)
    {
        m.insert(path.to_path_buf(), st);
    }
    Ok(file)
}

/// Reads and checks a part file: its checksum, its description and the mapped records.
pub fn read_part(path: &Path) -> Result<(PartMeta, MappedSafetensors), ModelError> {
    read_part_checked(path, false)
}

pub(super) fn read_part_checked(
    path: &Path,
    cached: bool,
) -> Result<(PartMeta, MappedSafetensors), ModelError> {
    let file = open_checked(path, cached)?;
    let meta = file.metadata().get(KEY_PART).ok_or_else(|| {
        ModelError::file(path, "not a SeedLM shard part (no seedlm.part metadata)")
    })?;
    let meta: PartMeta = serde_json::from_str(meta)
        .map_err(|e| ModelError::file(path, format!("malformed part metadata ({e})")))?;
    Ok((meta, file))
}

/// The codes of `r` stored in `file` under `key`.
pub(super) fn codes_in(
    file: &MappedSafetensors,
    key: &str,
    r: &PartRange,
    cfg: Config,
) -> Result<Vec<BlockCode>, ModelError> {
    let t = file
        .tensors()
        .iter()
        .find(|t| t.name == key)
        .ok_or_else(|| ModelError::tensor(file.path(), key, "is described but not stored"))?;
    unpack_blocks(file.bytes(t), cfg, r.end - r.start)
        .map_err(|e| ModelError::tensor(file.path(), key, e))
}
