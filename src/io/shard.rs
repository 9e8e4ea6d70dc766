//! Sharded compression (docs/cluster.md, FORMAT.md §9): the planned blocks of a model split
//! into N balanced shards that run anywhere, resume after a kill, and merge into the packed file
//! a single-machine compression writes, byte for byte.
//!
//! Layout of the shard folder `OUT.shards/`: `job.json` (the job), `shard-IIII-of-NNNN/` (a
//! running shard's checkpoint: `progress.json` and one `piece-…` file per finished block range)
//! and `part-IIII-of-NNNN.safetensors` (a finished shard). Every file is written atomically,
//! and every piece and part is sealed with a checksum of its records and description, verified
//! by whoever reads it: merge and status refuse a damaged one, a resumed shard searches it again.
//!
//! The app's [`Sidecar`] keeps such one-shard folders beside a model, one per configuration, a
//! piece per finished tensor, so that an interrupted session resumes.

use crate::core::config::Config;
use crate::core::control::Control;
use crate::io::container::{
    MappedSafetensors, OutTensor, Payload, parent_dir, partial_file, write_atomic,
};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::io::job_plan::{JobPlan, PlanOptions, TextId};
use crate::io::model::Model;
use crate::io::model_job::{
    JobError, Plan, TensorReport, moments_of, tensor_error, write_compressed_out,
};
use crate::io::packed::{
    KEY_CHECKSUM, PackedOut, StoredTensor, check_packed, decode_range, file_checksum, pack_blocks,
    packed_len, unpack_blocks,
};
use crate::search::Searcher;
use crate::search::compress::{
    BlockCode, CompressedTensor, ErrorSums, check_finite, choose_e_base, pad_blocks, search_blocks,
    search_blocks_weighted, snr_db,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Appended to the output path to name its shard folder.
pub const FOLDER_SUFFIX: &str = ".shards";
/// The job description inside a shard folder.
pub const JOB_FILE: &str = "job.json";
/// A running shard's progress inside its checkpoint directory.
pub const PROGRESS_FILE: &str = "progress.json";
/// The file a running shard holds locked inside its checkpoint directory.
pub const LOCK_FILE: &str = "lock";
/// Version of the shard-folder layout; parts and checkpoints of another version are refused.
/// Version 2 seals every part and piece with a checksum of its records and metadata.
pub const LAYOUT_VERSION: u32 = 2;
/// Most shards a job may have (a job.json claiming more is refused, not allocated for).
pub const MAX_SHARDS: usize = 1 << 20;
/// Largest predicted cost of a block a job may record (a 4-bit preset block costs 100).
pub const MAX_COST: u64 = 1_000_000;
/// Blocks per checkpoint piece by default: about 1 MiB of records, seconds of work per core.
pub const DEFAULT_CHECKPOINT_BLOCKS: usize = 1 << 18;
/// `__metadata__` key of a part's description (a JSON [`PartMeta`]).
const KEY_PART: &str = "seedlm.part";
/// `__metadata__` key of a checkpoint piece's description (a JSON [`PieceMeta`]).
const KEY_PIECE: &str = "seedlm.piece";
/// Name of the records tensor in a piece file.
const PIECE_TENSOR: &str = "records";
/// A shard whose progress file is older than this is reported as stopped.
const STALE_SECS: u64 = 120;
/// How often a running shard rewrites its progress file.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// One tensor a job compresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Dtype name.
    pub dtype: String,
    /// Blocks at its configuration's C.
    pub blocks: usize,
    /// Its own configuration, when a plan's bit budget chose it (else the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Config>,
    /// Predicted search cost of one of its blocks ([`crate::search::block_cost`]), which the
    /// partition balances; absent for a job of one configuration (every block alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
}

/// A sharded compression job: what every part and checkpoint of it records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// [`LAYOUT_VERSION`] of the writer.
    pub layout: u32,
    /// The input model (absolute); informational, the identity is `model_hash`.
    pub input: PathBuf,
    /// Configuration.
    pub config: Config,
    /// Number of shards N.
    pub shards: usize,
    /// SHA-256 of the input's header: every tensor's name, dtype and shape, and its metadata.
    pub model_hash: String,
    /// The tensors compressed, in plan order.
    pub tensors: Vec<JobTensor>,
    /// Blocks in all.
    pub total_blocks: u64,
    /// What a plan step measured for every shard (`--target-bpw`, `--calibrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<JobPlan>,
}

/// A block range `[start, end)` of tensor `tensor` (an index into [`JobSpec::tensors`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Index into the job's tensors.
    pub tensor: usize,
    /// First block.
    pub start: usize,
    /// One past the last block.
    pub end: usize,
}

impl Range {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range holds no block.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl JobSpec {
    /// The job compressing `plan` of `model` at `cfg` in `shards` shards.
    pub fn new(
        model: &Model,
        plan: &Plan,
        cfg: Config,
        shards: usize,
    ) -> Result<JobSpec, ModelError> {
        let input = std::fs::canonicalize(model.path())
            .map_err(|e| ModelError::io(model.path(), "cannot resolve the path", e))?;
        let mut tensors = Vec::with_capacity(plan.compress.len());
        for name in &plan.compress {
            let t = model
                .get(name)
                .ok_or_else(|| ModelError::tensor(model.path(), name, "not in the model"))?;
            tensors.push(JobTensor {
                name: name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.to_string(),
                blocks: t.numel().div_ceil(cfg.c),
                config: None,
                cost: None,
            });
        }
        Ok(JobSpec {
            layout: LAYOUT_VERSION,
            input,
            config: cfg,
            shards,
            model_hash: model_hash(model),
            tensors,
            total_blocks: plan.total_blocks,
            plan: None,
        })
    }

    /// This job following `plan`, with `configs` (one per tensor, in order) when the plan's
    /// bit budget chose them: each tensor's blocks counted at its configuration and weighted by
    /// its predicted cost, so the shards are balanced in time.
    pub fn with_plan(mut self, configs: Option<&[Config]>, plan: JobPlan) -> JobSpec {
        if let Some(configs) = configs {
            assert_eq!(configs.len(), self.tensors.len(), "one config per tensor");
            for (t, &cfg) in self.tensors.iter_mut().zip(configs) {
                let numel: usize = t.shape.iter().product();
                t.blocks = numel.div_ceil(cfg.c);
                t.config = Some(cfg);
                t.cost = Some(crate::search::block_cost(cfg));
            }
            self.total_blocks = self.tensors.iter().map(|t| t.blocks as u64).sum();
        }
        self.plan = Some(plan);
        self
    }

    /// The configuration of tensor `i`.
    pub fn config_of(&self, i: usize) -> Config {
        self.tensors[i].config.unwrap_or(self.config)
    }

    /// The configuration of the tensor named `name`, if the job compresses it.
    pub fn config_named(&self, name: &str) -> Option<Config> {
        let i = self.tensors.iter().position(|t| t.name == name)?;
        Some(self.config_of(i))
    }

    /// Every configuration the job uses, in words (`C,P,K`, or a count when a plan chose one
    /// per tensor).
    pub fn config_text(&self) -> String {
        let mut all: Vec<Config> = (0..self.tensors.len()).map(|i| self.config_of(i)).collect();
        all.sort_by_key(|c| (c.c, c.p, c.k));
        all.dedup();
        match all.as_slice() {
            [one] => one.to_string(),
            [] => self.config.to_string(),
            many => format!("{} configurations", many.len()),
        }
    }

    /// Why `other` is not this job (`None` when it is): all but the input path must agree.
    pub fn mismatch(&self, other: &JobSpec) -> Option<String> {
        if other.layout != self.layout {
            Some(format!(
                "shard layout version {} instead of {}",
                other.layout, self.layout
            ))
        } else if other.model_hash != self.model_hash {
            Some(format!(
                "made from a different input ({}; its tensors or metadata differ)",
                other.input.display()
            ))
        } else if other.config != self.config {
            Some(format!(
                "configuration {} instead of {}",
                other.config, self.config
            ))
        } else if other.shards != self.shards {
            Some(format!(
                "{} shards instead of {}",
                other.shards, self.shards
            ))
        } else if other.tensors != self.tensors {
            Some("a different selection of tensors or configurations".into())
        } else if other.plan.as_ref().map(|p| &p.options) != self.plan.as_ref().map(|p| &p.options)
        {
            Some(
                match (&other.plan, &self.plan) {
                    (None, Some(_)) => "no plan instead of a plan",
                    (Some(_), None) => "a plan instead of none",
                    _ => "a plan for other options",
                }
                .into(),
            )
        } else if other.plan != self.plan {
            Some("another plan (made from other data)".into())
        } else {
            None
        }
    }

    /// Why the job's counts cannot be (`None` when they agree): at least one shard and at most
    /// [`MAX_SHARDS`], each tensor's blocks its shape's at the job's C, `total_blocks` their sum.
    pub fn inconsistency(&self) -> Option<String> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Some(format!("{} shards (from 1 to {MAX_SHARDS})", self.shards));
        }
        let mut total = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            if let Err(e) = self.config_of(i).validate() {
                return Some(format!("tensor '{}' has configuration {e}", t.name));
            }
            if let Some(c) = t.cost.filter(|&c| c == 0 || c > MAX_COST) {
                return Some(format!(
                    "tensor '{}' has cost {c} (from 1 to {MAX_COST})",
                    t.name
                ));
            }
            let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel.map(|n| n.div_ceil(self.config_of(i).c)) != Some(t.blocks) {
                return Some(format!(
                    "tensor '{}' of shape {:?} cannot have {} blocks",
                    t.name, t.shape, t.blocks
                ));
            }
            total = total.saturating_add(t.blocks as u64);
        }
        (total != self.total_blocks).then(|| {
            format!(
                "total_blocks {} is not the tensors' {total}",
                self.total_blocks
            )
        })
    }

    /// A short identity of the job (SHA-256 of everything [`JobSpec::mismatch`] compares).
    pub fn id(&self) -> String {
        let mut key = serde_json::json!([
            self.layout,
            self.model_hash,
            self.config,
            self.shards,
            self.tensors
        ]);
        // A job without a plan keeps the identity it always had.
        if let (Some(plan), Some(k)) = (&self.plan, key.as_array_mut()) {
            k.push(serde_json::json!(plan));
        }
        hex(&Sha256::digest(key.to_string().as_bytes()))
    }

    /// The block ranges of every shard. The model's blocks, in plan order, each weighing its
    /// tensor's predicted cost (1 in a job of one configuration), are cut at `i·total/N` of the
    /// summed cost for i = 1…N−1, each cut moved to the nearest row boundary of the tensor it
    /// falls in (a boundary where a block starts a row), so shards differ by at most a row or
    /// so of work and a tensor larger than a fair share is split by row ranges.
    pub fn partition(&self) -> Vec<Vec<Range>> {
        let n = self.shards.max(1);
        let mut offsets = Vec::with_capacity(self.tensors.len() + 1);
        // Where each tensor starts in the summed cost.
        let mut weighed = Vec::with_capacity(self.tensors.len() + 1);
        let (mut acc, mut cost) = (0usize, 0u128);
        for t in &self.tensors {
            offsets.push(acc);
            weighed.push(cost);
            acc += t.blocks;
            cost += t.blocks as u128 * u128::from(t.cost.unwrap_or(1).max(1));
        }
        offsets.push(acc);
        weighed.push(cost);
        let snap = |g: u128| -> usize {
            let j = weighed[1..].partition_point(|&end| end <= g);
            if j >= self.tensors.len() {
                return acc;
            }
            let t = &self.tensors[j];
            let unit = split_unit(t, self.config_of(j).c);
            let local = ((g - weighed[j]) / u128::from(t.cost.unwrap_or(1).max(1))) as usize;
            offsets[j] + ((local + unit / 2) / unit * unit).min(t.blocks)
        };
        let mut cuts = vec![0usize];
        for i in 1..n {
            cuts.push(snap(i as u128 * cost / n as u128));
        }
        cuts.push(acc);
        cuts.windows(2)
            .map(|w| {
                let (lo, hi) = (w[0], w[1]);
                (0..self.tensors.len())
                    .map(|j| Range {
                        tensor: j,
                        start: lo.clamp(offsets[j], offsets[j + 1]) - offsets[j],
                        end: hi.clamp(offsets[j], offsets[j + 1]) - offsets[j],
                    })
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .collect()
    }
}

/// Blocks between two allowed cuts in `t`: the fewest whole rows that are also whole blocks
/// (one row when C divides the row length). 1-D tensors are not split.
fn split_unit(t: &JobTensor, c: usize) -> usize {
    let cols = match t.shape.as_slice() {
        [_, .., last] if *last > 0 => *last,
        _ => return t.blocks.max(1),
    };
    (cols / gcd(cols, c)).max(1)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a model's header: every tensor's name, dtype and shape, in order, and the
/// metadata.
pub fn model_hash(model: &Model) -> String {
    let mut h = Sha256::new();
    for t in model.tensors() {
        h.update(serde_json::json!([t.name, t.dtype.to_string(), t.shape]).to_string());
        h.update(b"\n");
    }
    h.update(serde_json::json!(model.metadata()).to_string());
    hex(&h.finalize())
}

/// Bytes hashed between two looks at the cancel flag.
const HASH_PIECE: usize = 64 << 20;

/// SHA-256 of one tensor's header (name, dtype, shape) and data; `None` when `cancel` was
/// raised on the way (a large tensor takes a while).
pub fn tensor_hash(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
    cancel: &AtomicBool,
) -> Option<String> {
    let mut h = Sha256::new();
    h.update(serde_json::json!([name, dtype.to_string(), shape]).to_string());
    h.update(b"\n");
    for piece in data.chunks(HASH_PIECE) {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        h.update(piece);
    }
    Some(hex(&h.finalize()))
}

/// The shard folder of output `out`: `OUT.shards` beside it.
pub fn folder_of(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(FOLDER_SUFFIX);
    PathBuf::from(s)
}

/// The finished part of shard `i` of `n`.
pub fn part_path(folder: &Path, i: usize, n: usize) -> PathBuf {
    folder.join(format!("part-{i:04}-of-{n:04}.safetensors"))
}

/// The checkpoint directory of shard `i` of `n` (present while it is unfinished).
pub fn checkpoint_dir(folder: &Path, i: usize, n: usize) -> PathBuf {
    folder.join(format!("shard-{i:04}-of-{n:04}"))
}

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
    pub job: JobSpec,
    /// Shard index I (from 0).
    pub shard: usize,
    /// The ranges it holds, each stored as a U8 tensor named `TENSOR@START`.
    pub ranges: Vec<PartRange>,
}

/// The description of a checkpoint piece (`__metadata__["seedlm.piece"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PieceMeta {
    /// [`JobSpec::id`].
    job: String,
    #[serde(flatten)]
    range: PartRange,
}

fn range_key(tensor: &str, start: usize) -> String {
    format!("{tensor}@{start}")
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), ModelError> {
    // A partial file gets the mode of any new file, as parts do, so colleagues can read it.
    let tmp = partial_file(parent_dir(path))
        .map_err(|e| ModelError::io(path, "cannot create a temporary file beside it", e))?;
    serde_json::to_writer_pretty(tmp.as_file(), value)
        .map_err(|e| ModelError::io(path, "cannot write", e.into()))?;
    tmp.persist(path)
        .map_err(|e| ModelError::io(path, "cannot move into place", e.error))?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read(path).map_err(|e| ModelError::io(path, "cannot read", e))?;
    serde_json::from_slice(&text).map_err(|e| ModelError::file(path, format!("malformed ({e})")))
}

/// Reads the job of a shard folder.
pub fn read_job(folder: &Path) -> Result<JobSpec, ModelError> {
    let path = folder.join(JOB_FILE);
    if !path.is_file() {
        return Err(ModelError::file(
            folder,
            format!("not a shard folder (no {JOB_FILE}; no shard has started)"),
        ));
    }
    let spec: JobSpec = read_json(&path)?;
    if let Some(why) = spec.inconsistency() {
        return Err(ModelError::file(&path, format!("malformed job: {why}")));
    }
    if spec.layout != LAYOUT_VERSION {
        return Err(ModelError::file(
            &path,
            format!(
                "shard folder of layout version {}, this seedlm reads version {LAYOUT_VERSION}; run the shards again with this version",
                spec.layout
            ),
        ));
    }
    Ok(spec)
}

/// Creates the shard folder and writes `job.json`, or checks that the folder already holds
/// this job.
pub fn claim_folder(folder: &Path, spec: &JobSpec) -> Result<(), ModelError> {
    std::fs::create_dir_all(folder)
        .map_err(|e| ModelError::io(folder, "cannot create directory", e))?;
    let path = folder.join(JOB_FILE);
    if path.is_file() {
        let existing: JobSpec = read_json(&path)?;
        if let Some(why) = existing.mismatch(spec) {
            return Err(ModelError::file(
                &path,
                format!(
                    "the shard folder holds another job ({why} than this run); use another output or remove the folder"
                ),
            ));
        }
        return Ok(());
    }
    write_json_atomic(&path, spec)
}

/// Writes a part or piece atomically: its record tensors (`U8`) and its description `md`,
/// sealed with [`KEY_CHECKSUM`], the file checksum of FORMAT.md §1 over every tensor's name,
/// shape and CRC-32 and every metadata key and value (FORMAT.md §9).
fn write_sealed(
    path: &Path,
    tensors: Vec<OutTensor<'_>>,
    mut md: BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let crcs: Vec<u32> = tensors
        .iter()
        .map(|t| match &t.data {
            Payload::Bytes(b) => crc32fast::hash(b),
            Payload::Owned(b) => crc32fast::hash(b),
            _ => unreachable!("shard files hold records in memory"),
        })
        .collect();
    let stored = tensors.iter().zip(crcs).map(|(t, crc32)| StoredTensor {
        name: &t.name,
        dtype: t.dtype,
        shape: &t.shape,
        crc32,
    });
    let sum = file_checksum(stored, &md);
    md.insert(KEY_CHECKSUM.into(), sum.to_string());
    write_atomic(path, tensors, &md)
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
fn open_checked(path: &Path, cached: bool) -> Result<MappedSafetensors, ModelError> {
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

fn read_part_checked(
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
fn codes_in(
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

/// What a shard run did.
#[derive(Clone, Debug, PartialEq)]
pub enum ShardOutcome {
    /// The part was written now; `resumed` blocks came from an earlier run's checkpoint.
    Finished {
        /// The part file.
        part: PathBuf,
        /// Blocks in the shard.
        blocks: u64,
        /// Blocks already done by an earlier run.
        resumed: u64,
        /// The damaged checkpoint pieces (or part) found, each with why: removed and searched
        /// again.
        redone: Vec<String>,
    },
    /// The part was already there: nothing was done.
    AlreadyDone {
        /// The part file.
        part: PathBuf,
    },
}

/// Progress of a shard as written to its `progress.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardProgress {
    /// Blocks done, the checkpointed ones included.
    pub done: u64,
    /// Blocks in the shard.
    pub total: u64,
    /// Blocks per second in the current run.
    pub blocks_per_s: f64,
    /// When it was written (seconds since the Unix epoch).
    pub updated: u64,
    /// The host it runs on.
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
}

impl ShardProgress {
    /// Whether the writer is known to have ended: it ran on this host and its process is gone.
    fn ended(&self) -> bool {
        self.host == host_name() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// One shard of a job to run.
pub struct ShardRun<'a> {
    /// The opened input.
    pub model: &'a Model,
    /// The job (from [`JobSpec::new`] on this input).
    pub spec: &'a JobSpec,
    /// The shard folder.
    pub folder: &'a Path,
    /// Shard index I.
    pub shard: usize,
    /// Blocks per checkpoint piece.
    pub checkpoint_blocks: usize,
    /// The plan's input moments by tensor name ([`JobPlan::read_moments`]; empty without
    /// calibration): a tensor with moments is searched under the activation-weighted objective.
    pub moments: &'a HashMap<String, Vec<f64>>,
}

/// The checkpoint pieces on disk in `dir`: those intact, each with its range, and those
/// damaged (a checksum, description or record length that does not hold), each with why.
struct Pieces {
    intact: Vec<(PartRange, PathBuf)>,
    damaged: Vec<(PathBuf, ModelError)>,
}

impl Pieces {
    /// The intact pieces, or the first damaged one as an error.
    fn all_intact(self) -> Result<Vec<(PartRange, PathBuf)>, ModelError> {
        match self.damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(self.intact),
        }
    }
}

/// Checkpoint pieces already on disk, each verified (checksum, description, records at its
/// tensor's configuration in `spec`) and checked to be of job `spec`; `cached` as in
/// [`open_checked`]. A piece of another job is an error.
fn scan_pieces(dir: &Path, spec: &JobSpec, cached: bool) -> Result<Pieces, ModelError> {
    let job = spec.id();
    let mut out = Pieces {
        intact: Vec::new(),
        damaged: Vec::new(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| ModelError::io(dir, "cannot list", e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| ModelError::io(dir, "cannot list", e))?
            .path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("piece-") && name.ends_with(".safetensors")) {
            continue;
        }
        let meta = match read_piece(&path, spec, cached) {
            Ok(m) => m,
            Err(e @ ModelError::Io { .. }) => return Err(e),
            Err(e) => {
                out.damaged.push((path, e));
                continue;
            }
        };
        if meta.job != job {
            return Err(ModelError::file(
                &path,
                "checkpoint of another job (other input or configuration); remove the shard folder",
            ));
        }
        out.intact.push((meta.range, path));
    }
    out.intact.sort_by_key(|(r, _)| (r.tensor.clone(), r.start));
    out.damaged.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Checkpoint pieces already on disk, validated against the job; a damaged one is an error.
fn read_pieces(dir: &Path, spec: &JobSpec) -> Result<Vec<(PartRange, PathBuf)>, ModelError> {
    scan_pieces(dir, spec, false)?.all_intact()
}

/// The description of the piece at `path` of job `spec`, its checksum and records verified.
fn read_piece(path: &Path, spec: &JobSpec, cached: bool) -> Result<PieceMeta, ModelError> {
    let file = open_checked(path, cached)?;
    let meta: PieceMeta = file
        .metadata()
        .get(KEY_PIECE)
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(|| ModelError::file(path, "not a SeedLM checkpoint piece"))?;
    if meta.range.start >= meta.range.end {
        return Err(ModelError::file(
            path,
            "checkpoint piece holds no block range",
        ));
    }
    let t = file
        .tensors()
        .iter()
        .find(|t| t.name == PIECE_TENSOR && t.dtype == Dtype::U8)
        .ok_or_else(|| ModelError::tensor(path, PIECE_TENSOR, "is described but not stored"))?;
    // A piece of a tensor the job does not hold is checked as the job's own, and refused by
    // whoever gathers it.
    let cfg = spec.config_named(&meta.range.tensor).unwrap_or(spec.config);
    check_packed(file.bytes(t), cfg, meta.range.end - meta.range.start)
        .map_err(|e| ModelError::tensor(path, PIECE_TENSOR, e))?;
    Ok(meta)
}

/// Runs one shard: resumes from its checkpoint, searches the blocks still missing (a piece of
/// at most `checkpoint_blocks` at a time, each written atomically as it finishes), then writes
/// the part and removes the checkpoint. A shard whose part exists is not run again.
pub fn run_shard(
    run: &ShardRun<'_>,
    ctl: Control<'_>,
    mut on_start: impl FnMut(&str),
) -> Result<ShardOutcome, JobError> {
    let spec = run.spec;
    let n = spec.shards;
    if run.shard >= n {
        return Err(ModelError::file(
            run.folder,
            format!(
                "shard {} does not exist: shards go from 0 to {}",
                run.shard,
                n - 1
            ),
        )
        .into());
    }
    claim_folder(run.folder, spec)?;
    let ckpt = checkpoint_dir(run.folder, run.shard, n);
    // Held until the shard returns; everything below runs as the shard's only process.
    let _lock = lock_shard(&ckpt, run.shard, n)?;
    let part = part_path(run.folder, run.shard, n);
    let mut redone = Vec::new();
    if part.is_file() {
        match read_part(&part) {
            Ok((meta, _)) => {
                if let Some(why) = spec.mismatch(&meta.job) {
                    return Err(
                        ModelError::file(&part, format!("belongs to another job: {why}")).into(),
                    );
                }
                // The directory was made only to hold the lock.
                let _ = std::fs::remove_dir_all(&ckpt);
                return Ok(ShardOutcome::AlreadyDone { part });
            }
            Err(e @ ModelError::Io { .. }) => return Err(e.into()),
            // A damaged part is made again.
            Err(e) => {
                std::fs::remove_file(&part)
                    .map_err(|err| ModelError::io(&part, "cannot remove the damaged part", err))?;
                redone.push(e.to_string());
            }
        }
    }
    let job = spec.id();
    let scanned = scan_pieces(&ckpt, spec, false)?;
    // A damaged piece is removed and its blocks searched again.
    for (path, e) in scanned.damaged {
        std::fs::remove_file(&path)
            .map_err(|err| ModelError::io(&path, "cannot remove the damaged piece", err))?;
        redone.push(e.to_string());
    }
    let pieces = scanned.intact;
    let ranges = spec.partition().swap_remove(run.shard);
    let total: u64 = ranges.iter().map(|r| r.len() as u64).sum();
    let resumed: u64 = pieces.iter().map(|(r, _)| (r.end - r.start) as u64).sum();
    ctl.progress.total.fetch_add(total, Ordering::Relaxed);
    ctl.progress.done.fetch_add(resumed, Ordering::Relaxed);
    let base_done = ctl.progress.done.load(Ordering::Relaxed) - resumed;

    let started = Instant::now();
    let write_progress = || {
        let done = ctl.progress.done.load(Ordering::Relaxed) - base_done;
        let secs = started.elapsed().as_secs_f64();
        let p = ShardProgress {
            done,
            total,
            blocks_per_s: if secs > 0.0 {
                (done - resumed) as f64 / secs
            } else {
                0.0
            },
            updated: now_secs(),
            host: host_name(),
            pid: std::process::id(),
        };
        write_json_atomic(&ckpt.join(PROGRESS_FILE), &p)
    };
    write_progress()?;
    let finished = AtomicBool::new(false);
    let searched = std::thread::scope(|s| {
        s.spawn(|| {
            let mut last = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= PROGRESS_EVERY {
                    // Progress is advisory: a failed write must not stop the work.
                    let _ = write_progress();
                    last = Instant::now();
                }
            }
        });
        let r = search_ranges(run, &ranges, &pieces, &ckpt, &job, ctl, &mut on_start);
        finished.store(true, Ordering::Relaxed);
        r
    });
    searched?;
    write_progress()?;
    write_part(run, &ranges, &ckpt, &part)?;
    // The part is complete; a leftover checkpoint would only be ignored.
    let _ = std::fs::remove_dir_all(&ckpt);
    Ok(ShardOutcome::Finished {
        part,
        blocks: total,
        resumed,
        redone,
    })
}

/// Creates the checkpoint directory `ckpt` of shard `shard` of `n` and locks its [`LOCK_FILE`],
/// so that a second process on the same shard stops at once, naming the first, instead of
/// racing it and leaving a checkpoint behind. The lock (`flock`, which Linux NFS clients
/// forward to the server) ends with the returned file, also when the process is killed.
fn lock_shard(ckpt: &Path, shard: usize, n: usize) -> Result<std::fs::File, ModelError> {
    use std::os::unix::fs::MetadataExt;
    let path = ckpt.join(LOCK_FILE);
    // A holder that finishes removes the directory: a lock taken on its removed file guards
    // nothing, so take it again on the new one (once per finish, so a few tries suffice).
    for _ in 0..8 {
        std::fs::create_dir_all(ckpt)
            .map_err(|e| ModelError::io(ckpt, "cannot create directory", e))?;
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ModelError::io(&path, "cannot create", e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let by = read_json::<ShardProgress>(&ckpt.join(PROGRESS_FILE))
                    .map(|p| format!(" (process {} on {})", p.pid, p.host))
                    .unwrap_or_default();
                return Err(ModelError::file(
                    ckpt,
                    format!(
                        "shard {shard} of {n} is already running{by}; wait for it to finish, or stop it and run again"
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(ModelError::io(&path, "cannot lock", e));
            }
        }
        let held = file.metadata().map(|m| (m.dev(), m.ino()));
        let now = std::fs::metadata(&path).map(|m| (m.dev(), m.ino()));
        if let (Ok(held), Ok(now)) = (held, now)
            && held == now
        {
            return Ok(file);
        }
    }
    Err(ModelError::file(
        ckpt,
        "the checkpoint directory keeps being removed while this shard starts; is another process running it?",
    ))
}

/// Searches the blocks of `ranges` not yet in `pieces`, writing a piece per step.
fn search_ranges(
    run: &ShardRun<'_>,
    ranges: &[Range],
    pieces: &[(PartRange, PathBuf)],
    ckpt: &Path,
    job: &str,
    ctl: Control<'_>,
    on_start: &mut impl FnMut(&str),
) -> Result<(), JobError> {
    let spec = run.spec;
    // One searcher per configuration: building its tables costs far more than a small range.
    let mut searchers: Vec<Searcher> = Vec::new();
    let step = run.checkpoint_blocks.max(1);
    for r in ranges {
        let cfg = spec.config_of(r.tensor);
        let c = cfg.c;
        let name = &spec.tensors[r.tensor].name;
        let have: Vec<&PartRange> = pieces
            .iter()
            .map(|(p, _)| p)
            .filter(|p| &p.tensor == name)
            .collect();
        let missing = gaps(r.start, r.end, &have);
        if missing.is_empty() {
            continue;
        }
        if ctl.cancelled() {
            return Err(JobError::Cancelled);
        }
        on_start(name);
        let t = run
            .model
            .get(name)
            .ok_or_else(|| ModelError::tensor(run.model.path(), name, "not in the model"))?;
        let data = run.model.to_f32(t)?;
        check_finite(&data).map_err(|e| tensor_error(run.model, t, e))?;
        let hash = tensor_hash(name, t.dtype, &t.shape, run.model.bytes(t), ctl.cancel)
            .ok_or(JobError::Cancelled)?;
        if let Some(plan) = &spec.plan {
            plan.check_tensor(run.model, name, &hash, run.folder)?;
        }
        let padded = pad_blocks(&data, c).into_owned();
        drop(data);
        let at = match searchers.iter().position(|s| s.config() == cfg) {
            Some(at) => at,
            None => {
                searchers.push(Searcher::new(cfg));
                searchers.len() - 1
            }
        };
        // Codes that decode within what the tensor's dtype holds, as a whole-model run's.
        let searcher = searchers[at].below(dtype::overflow_bound(t.dtype));
        let weights = moments_of(run.moments, name, &t.shape);
        // The whole tensor's exponent base, so a row range codes as in a whole-tensor run.
        let e_base = choose_e_base(&searcher, &padded);
        if let Some(p) = have.iter().find(|p| p.hash != hash || p.e_base != e_base) {
            return Err(ModelError::tensor(
                ckpt,
                &p.tensor,
                "the checkpoint was made from other data than the input now holds; remove the shard folder",
            )
            .into());
        }
        // A calibrated search builds a table per column offset, which smaller pieces would
        // build again: each missing range of a calibrated tensor is one piece.
        let step = if weights.is_some() { usize::MAX } else { step };
        for (lo, hi) in missing {
            let mut s = lo;
            while s < hi {
                let e = s.saturating_add(step).min(hi);
                let blocks = &padded[s * c..e * c];
                let codes = match weights {
                    Some(d) => search_blocks_weighted(&searcher, blocks, s, d, e_base, ctl),
                    None => search_blocks(&searcher, blocks, e_base, ctl),
                }
                .map_err(|err| tensor_error(run.model, t, err))?;
                let meta = PieceMeta {
                    job: job.to_string(),
                    range: PartRange {
                        tensor: name.clone(),
                        start: s,
                        end: e,
                        e_base,
                        hash: hash.clone(),
                    },
                };
                write_piece(ckpt, r.tensor, &meta, &pack_codes(cfg, e_base, codes))?;
                s = e;
            }
        }
    }
    Ok(())
}

/// Writes checkpoint piece `meta` of tensor `index` (in the job's order) atomically.
fn write_piece(
    ckpt: &Path,
    index: usize,
    meta: &PieceMeta,
    bytes: &[u8],
) -> Result<(), ModelError> {
    let path = ckpt.join(format!(
        "piece-{index:05}-{:012}.safetensors",
        meta.range.start
    ));
    let md = BTreeMap::from([(
        KEY_PIECE.to_string(),
        serde_json::to_string(meta).expect("plain struct serializes"),
    )]);
    write_sealed(&path, vec![records(PIECE_TENSOR.into(), bytes)], md)
}

/// The parts of `[start, end)` not covered by `have`.
fn gaps(start: usize, end: usize, have: &[&PartRange]) -> Vec<(usize, usize)> {
    let mut covered: Vec<(usize, usize)> = have
        .iter()
        .map(|p| (p.start.max(start), p.end.min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    covered.sort_unstable();
    let mut out = Vec::new();
    let mut at = start;
    for (a, b) in covered {
        if a > at {
            out.push((at, a));
        }
        at = at.max(b);
    }
    if at < end {
        out.push((at, end));
    }
    out
}

fn pack_codes(config: Config, e_base: i32, blocks: Vec<BlockCode>) -> Vec<u8> {
    let len = blocks.len() * config.c;
    pack_blocks(&CompressedTensor {
        config,
        e_base,
        len,
        blocks,
    })
}

fn records(name: String, bytes: &[u8]) -> OutTensor<'_> {
    OutTensor {
        name,
        dtype: Dtype::U8,
        shape: vec![bytes.len()],
        data: Payload::Bytes(bytes),
    }
}

/// Gathers the checkpoint pieces of every range into the part file.
fn write_part(
    run: &ShardRun<'_>,
    ranges: &[Range],
    ckpt: &Path,
    part: &Path,
) -> Result<(), ModelError> {
    let pieces = read_pieces(ckpt, run.spec)?;
    let mut metas = Vec::with_capacity(ranges.len());
    let mut data = Vec::with_capacity(ranges.len());
    for r in ranges {
        let cfg = run.spec.config_of(r.tensor);
        let name = &run.spec.tensors[r.tensor].name;
        let mut codes = Vec::with_capacity(r.len());
        let mut first: Option<PartRange> = None;
        for (p, path) in pieces.iter().filter(|(p, _)| &p.tensor == name) {
            if p.end <= r.start || p.start >= r.end {
                continue;
            }
            if p.start != r.start + codes.len() {
                return Err(ModelError::tensor(
                    path,
                    name,
                    "checkpoint pieces do not join up; remove the shard folder",
                ));
            }
            let file = open_sealed(path)?;
            codes.extend(codes_in(&file, PIECE_TENSOR, p, cfg)?);
            first.get_or_insert_with(|| p.clone());
        }
        let first = match first {
            Some(f) if codes.len() == r.len() => f,
            _ => {
                return Err(ModelError::tensor(
                    ckpt,
                    name,
                    "checkpoint is incomplete after the run",
                ));
            }
        };
        data.push(pack_codes(cfg, first.e_base, codes));
        metas.push(PartRange {
            tensor: name.clone(),
            start: r.start,
            end: r.end,
            e_base: first.e_base,
            hash: first.hash,
        });
    }
    let meta = PartMeta {
        job: run.spec.clone(),
        shard: run.shard,
        ranges: metas,
    };
    let out = meta
        .ranges
        .iter()
        .zip(&data)
        .map(|(r, bytes)| records(range_key(&r.tensor, r.start), bytes))
        .collect();
    let md = BTreeMap::from([(
        KEY_PART.to_string(),
        serde_json::to_string(&meta).expect("plain struct serializes"),
    )]);
    write_sealed(part, out, md)
}

/// The finished parts in `folder`, each with its description, checked to be of `spec`'s job,
/// one per shard, none missing and each holding exactly its shard's ranges.
fn collect_parts(
    folder: &Path,
    spec: &JobSpec,
) -> Result<Vec<(PartMeta, MappedSafetensors)>, ModelError> {
    let n = spec.shards;
    let mut by_shard: Vec<Option<(PartMeta, MappedSafetensors)>> = (0..n).map(|_| None).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| ModelError::io(folder, "cannot list", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("part-") && name.ends_with(".safetensors")
        })
        .collect();
    files.sort();
    for path in files {
        let (meta, file) = read_part(&path)?;
        if let Some(why) = spec.mismatch(&meta.job) {
            return Err(ModelError::file(
                &path,
                format!("belongs to a different job: {why}"),
            ));
        }
        let slot = by_shard.get_mut(meta.shard).ok_or_else(|| {
            ModelError::file(&path, format!("claims shard {} of {n}", meta.shard))
        })?;
        if let Some((_, other)) = slot {
            return Err(ModelError::file(
                &path,
                format!(
                    "duplicates shard {} of {n}, already held by {}",
                    meta.shard,
                    other.path().display()
                ),
            ));
        }
        *slot = Some((meta, file));
    }
    let missing: Vec<usize> = (0..n).filter(|&i| by_shard[i].is_none()).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|&i| {
                part_path(Path::new(""), i, n)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        return Err(ModelError::file(
            folder,
            format!(
                "{} of {n} parts missing: {} (run those shards, then merge again)",
                missing.len(),
                names.join(", ")
            ),
        ));
    }
    let partition = spec.partition();
    let parts: Vec<(PartMeta, MappedSafetensors)> = by_shard.into_iter().flatten().collect();
    for ((meta, file), want) in parts.iter().zip(&partition) {
        let holds: Vec<(&str, usize, usize)> = meta
            .ranges
            .iter()
            .map(|r| (r.tensor.as_str(), r.start, r.end))
            .collect();
        let should: Vec<(&str, usize, usize)> = want
            .iter()
            .map(|r| (spec.tensors[r.tensor].name.as_str(), r.start, r.end))
            .collect();
        if holds != should {
            return Err(ModelError::file(
                file.path(),
                format!(
                    "does not hold the block ranges of shard {} of {n}",
                    meta.shard
                ),
            ));
        }
    }
    Ok(parts)
}

/// Blocks a merge reads, checks and writes at a time: a multiple of 8, so that each piece of a
/// tensor's records starts on a byte, and small enough that memory stays at a few MiB and a
/// cancel acts within milliseconds.
const MERGE_BLOCKS: usize = 1 << 16;

/// A compressed tensor's records as the parts hold them, its ranges in block order.
struct Held<'a> {
    config: Config,
    e_base: i32,
    blocks: usize,
    /// Each range, the part holding it and its packed records there.
    ranges: Vec<(&'a PartRange, &'a MappedSafetensors, &'a [u8])>,
}

impl Held<'_> {
    /// The codes of blocks `[a, b)`.
    fn codes(&self, a: usize, b: usize) -> Result<Vec<BlockCode>, ModelError> {
        let mut out = Vec::with_capacity(b - a);
        for (r, f, bytes) in &self.ranges {
            let (lo, hi) = (a.max(r.start), b.min(r.end));
            if lo < hi {
                let codes = decode_range(bytes, self.config, lo - r.start..hi - r.start)
                    .map_err(|e| ModelError::tensor(f.path(), &range_key(&r.tensor, r.start), e))?;
                out.extend(codes);
            }
        }
        Ok(out)
    }

    /// The pieces of at most [`MERGE_BLOCKS`] blocks, as (first block, one past the last).
    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let n = self.blocks;
        (0..n)
            .step_by(MERGE_BLOCKS)
            .map(move |a| (a, (a + MERGE_BLOCKS).min(n)))
    }

    /// The packed records of blocks `[a, b)` (`a` a multiple of 8: they start on a byte).
    fn records(&self, a: usize, b: usize) -> Result<Vec<u8>, ModelError> {
        Ok(pack_codes(self.config, self.e_base, self.codes(a, b)?))
    }
}

/// Checks a shard folder and writes the packed model it adds up to at `output` (a directory
/// when the input was one), byte-identical to a single-machine compression of the input.
/// `input` overrides the input path the job recorded (the same model elsewhere).
///
/// It streams: a first pass over each tensor's records, a piece at a time, takes the CRC and
/// the error figures the header needs; a second writes the records from the parts into the
/// output. Memory stays near one piece ([`MERGE_BLOCKS`] blocks), whatever the model's size.
/// `ctl.progress` counts each block twice, once a pass.
pub fn merge(
    folder: &Path,
    input: Option<&Path>,
    output: &Path,
    ctl: Control<'_>,
) -> Result<(PathBuf, Vec<TensorReport>), JobError> {
    let spec = read_job(folder)?;
    let parts = collect_parts(folder, &spec)?;
    let input = input.unwrap_or(&spec.input);
    let model = Model::open(input)?;
    if model_hash(&model) != spec.model_hash {
        return Err(ModelError::file(
            input,
            "is not the model the shards were made from (its tensors or metadata differ)",
        )
        .into());
    }
    // A plan is checked against every tensor of the input (it was measured through all of
    // them): here those not compressed, below each compressed one as it is hashed.
    let compressed: Vec<&str> = spec.tensors.iter().map(|t| t.name.as_str()).collect();
    if let Some(plan) = &spec.plan
        && !plan.check_input(&model, folder, &compressed, ctl.cancel)?
    {
        return Err(JobError::Cancelled);
    }
    ctl.progress
        .total
        .fetch_add(2 * spec.total_blocks, Ordering::Relaxed);
    let mut outs = Vec::with_capacity(spec.tensors.len());
    let mut reports = Vec::with_capacity(spec.tensors.len());
    for (i, jt) in spec.tensors.iter().enumerate() {
        if ctl.cancelled() {
            return Err(JobError::Cancelled);
        }
        let cfg = spec.config_of(i);
        let start = Instant::now();
        let t = model
            .get(&jt.name)
            .ok_or_else(|| ModelError::tensor(input, &jt.name, "not in the model"))?;
        let mut held: Vec<(&PartRange, &MappedSafetensors)> = parts
            .iter()
            .flat_map(|(m, f)| m.ranges.iter().map(move |r| (r, f)))
            .filter(|(r, _)| r.tensor == jt.name)
            .collect();
        held.sort_by_key(|(r, _)| r.start);
        let hash = tensor_hash(&t.name, t.dtype, &t.shape, model.bytes(t), ctl.cancel)
            .ok_or(JobError::Cancelled)?;
        if let Some(plan) = &spec.plan {
            plan.check_tensor(&model, &t.name, &hash, folder)?;
        }
        // No range: a tensor of no elements, whose e_base `choose_e_base` gives as for all zeros.
        let e_base = held
            .first()
            .map_or(crate::core::quant::DEFAULT_E_BASE, |(r, _)| r.e_base);
        let mut ranges = Vec::with_capacity(held.len());
        let mut next = 0;
        for (r, f) in held {
            if r.hash != hash || r.e_base != e_base {
                return Err(ModelError::tensor(
                    f.path(),
                    &jt.name,
                    format!("was made from other data than {} holds", input.display()),
                )
                .into());
            }
            let key = range_key(&r.tensor, r.start);
            let stored =
                f.tensors().iter().find(|s| s.name == key).ok_or_else(|| {
                    ModelError::tensor(f.path(), &key, "is described but not stored")
                })?;
            let bytes = f.bytes(stored);
            check_packed(bytes, cfg, r.end - r.start)
                .map_err(|e| ModelError::tensor(f.path(), &key, e))?;
            if r.start != next {
                break;
            }
            next = r.end;
            ranges.push((r, f, bytes));
        }
        if next != jt.blocks {
            return Err(
                ModelError::tensor(folder, &jt.name, "parts do not cover every block").into(),
            );
        }
        let held = Held {
            config: cfg,
            e_base,
            blocks: jt.blocks,
            ranges,
        };
        let not_float = || ModelError::tensor(model.file_of(t), &t.name, "is not F32, F16 or BF16");
        let bytes_of = |elems: usize| dtype::byte_len(t.dtype, elems).ok_or_else(not_float);
        let data = model.bytes(t);
        let numel = t.numel();
        let mut crc = crc32fast::Hasher::new();
        let mut sums = ErrorSums::default();
        for (a, b) in held.pieces() {
            if ctl.cancelled() {
                return Err(JobError::Cancelled);
            }
            let codes = held.codes(a, b)?;
            let (lo, hi) = (a * cfg.c, (b * cfg.c).min(numel));
            let original = dtype::to_f32(t.dtype, &data[bytes_of(lo)?..bytes_of(hi)?])
                .ok_or_else(not_float)?;
            let piece = CompressedTensor {
                config: cfg,
                e_base,
                len: hi - lo,
                blocks: codes,
            };
            crc.update(&pack_blocks(&piece));
            sums.add(&original, &piece.reconstruct(), cfg.c);
            ctl.progress
                .done
                .fetch_add((b - a) as u64, Ordering::Relaxed);
        }
        let relmse = sums.relmse();
        reports.push(TensorReport {
            name: jt.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            blocks: jt.blocks,
            relmse,
            snr_db: snr_db(relmse),
            seconds: start.elapsed().as_secs_f64(),
            original_bytes: t.byte_size,
            packed_bytes: packed_len(cfg, jt.blocks),
        });
        let pieces = held.pieces().map(move |(a, b)| {
            if ctl.cancelled() {
                return Err(ModelError::file(folder, "cancelled"));
            }
            let bytes = held.records(a, b)?;
            ctl.progress
                .done
                .fetch_add((b - a) as u64, Ordering::Relaxed);
            Ok(bytes)
        });
        outs.push(PackedOut {
            name: jt.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            config: cfg,
            e_base,
            blocks: jt.blocks,
            crc32: crc.finalize(),
            relmse: Some(relmse),
            records: Payload::Pieces(Box::new(pieces)),
        });
    }
    let records = spec.plan.map(|p| p.records).unwrap_or_default();
    match write_compressed_out(&model, outs, &records, output) {
        Ok(file) => Ok((file, reports)),
        Err(_) if ctl.cancelled() => Err(JobError::Cancelled),
        Err(e) => Err(e.into()),
    }
}

/// Where a shard stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardState {
    /// Nothing on disk yet.
    NotStarted,
    /// Its progress file is recent.
    Running,
    /// It has a checkpoint but its process ended or has not written progress for a while
    /// (killed or cancelled).
    Stopped,
    /// Its part is written.
    Finished,
}

impl ShardState {
    /// The state in words, as `seedlm status` and the app show it.
    pub fn name(self) -> &'static str {
        match self {
            ShardState::NotStarted => "not started",
            ShardState::Running => "running",
            ShardState::Stopped => "stopped",
            ShardState::Finished => "finished",
        }
    }
}

/// Time left for a shard or a whole job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Eta {
    /// Nothing is left.
    Done,
    /// Seconds left at the current rate.
    Secs(f64),
    /// Work is left but nothing runs, so no rate is known.
    Unknown,
}

impl Eta {
    /// The time left for `left` blocks at `rate` blocks/s.
    fn of(left: u64, rate: f64) -> Eta {
        if left == 0 {
            Eta::Done
        } else if rate > 0.0 {
            Eta::Secs(left as f64 / rate)
        } else {
            Eta::Unknown
        }
    }

    /// `done`, `H:MM:SS`, or `-` when unknown.
    pub fn text(self) -> String {
        match self {
            Eta::Done => "done".into(),
            Eta::Secs(secs) => {
                let s = secs.round() as u64;
                format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
            }
            Eta::Unknown => "-".into(),
        }
    }
}

/// `done` of `total` in percent (100 for nothing to do).
fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    }
}

/// One shard's line of `seedlm status`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardStatus {
    /// Shard index.
    pub shard: usize,
    /// State.
    pub state: ShardState,
    /// Blocks done (for a stopped shard: those checkpointed).
    pub done: u64,
    /// Blocks in the shard.
    pub total: u64,
    /// Blocks per second while running.
    pub blocks_per_s: Option<f64>,
    /// The host it last ran on.
    pub host: Option<String>,
}

impl ShardStatus {
    /// Percent of the shard's blocks done.
    pub fn percent(&self) -> f64 {
        percent(self.done, self.total)
    }

    /// Blocks per second as shown: `-` when the shard is not running.
    pub fn rate_text(&self) -> String {
        self.blocks_per_s.map_or("-".into(), |r| format!("{r:.0}"))
    }

    /// Time left at the shard's current rate.
    pub fn eta(&self) -> Eta {
        if self.state == ShardState::Finished {
            return Eta::Done;
        }
        Eta::of(
            self.total.saturating_sub(self.done),
            self.blocks_per_s.unwrap_or(0.0),
        )
    }
}

/// A shard folder's progress: the job, every shard's state and the totals over them.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderStatus {
    /// The shard folder.
    pub folder: PathBuf,
    /// Its job.
    pub spec: JobSpec,
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardStatus>,
}

impl FolderStatus {
    /// Blocks done over all shards.
    pub fn done(&self) -> u64 {
        self.shards.iter().map(|s| s.done).sum()
    }

    /// Percent of the job's blocks done.
    pub fn percent(&self) -> f64 {
        percent(self.done(), self.spec.total_blocks)
    }

    /// Shards whose part is written.
    pub fn finished(&self) -> usize {
        self.shards
            .iter()
            .filter(|s| s.state == ShardState::Finished)
            .count()
    }

    /// Blocks per second of the running shards together.
    pub fn blocks_per_s(&self) -> f64 {
        // Folded from +0: an empty f64 sum is −0, which prints as "-0".
        self.shards
            .iter()
            .filter_map(|s| s.blocks_per_s)
            .fold(0.0, |a, r| a + r)
    }

    /// Time left for the whole job at the running shards' combined rate.
    pub fn eta(&self) -> Eta {
        Eta::of(
            self.spec.total_blocks.saturating_sub(self.done()),
            self.blocks_per_s(),
        )
    }

    /// The totals in one line, as `seedlm status` ends and the app shows them.
    pub fn summary(&self) -> String {
        let eta = match self.eta() {
            Eta::Unknown => "unknown (no shard running)".to_string(),
            e => e.text(),
        };
        format!(
            "total  {}/{} blocks ({:.1} %), {}/{} shards finished, {:.0} blocks/s, ETA {eta}",
            self.done(),
            self.spec.total_blocks,
            self.percent(),
            self.finished(),
            self.spec.shards,
            self.blocks_per_s(),
        )
    }
}

/// The shard folder `path` names, if it names one: the folder itself, its `job.json`, or an
/// output that does not exist (yet) whose shard folder does.
pub fn find_folder(path: &Path) -> Option<PathBuf> {
    let is_folder = |p: &Path| p.join(JOB_FILE).is_file();
    if is_folder(path) {
        return Some(path.to_path_buf());
    }
    if path.file_name().is_some_and(|n| n == JOB_FILE) && path.is_file() {
        return Some(parent_dir(path).to_path_buf());
    }
    let folder = folder_of(path);
    (!path.exists() && is_folder(&folder)).then_some(folder)
}

/// The state of every shard of the job in `folder`.
pub fn status(folder: &Path) -> Result<FolderStatus, ModelError> {
    let spec = read_job(folder)?;
    let n = spec.shards;
    let now = now_secs();
    let mut out = Vec::with_capacity(n);
    for (i, ranges) in spec.partition().into_iter().enumerate() {
        let total: u64 = ranges.iter().map(|r| r.len() as u64).sum();
        let mut st = ShardStatus {
            shard: i,
            state: ShardState::NotStarted,
            done: 0,
            total,
            blocks_per_s: None,
            host: None,
        };
        let ckpt = checkpoint_dir(folder, i, n);
        let part = part_path(folder, i, n);
        if part.is_file() {
            // A damaged part, or one of another job, is refused as merge would refuse it.
            let (meta, _) = read_part_checked(&part, true)?;
            if let Some(why) = spec.mismatch(&meta.job) {
                return Err(ModelError::file(
                    &part,
                    format!("belongs to a different job: {why}"),
                ));
            }
            st.state = ShardState::Finished;
            st.done = total;
        } else if ckpt.is_dir() {
            let saved: u64 = scan_pieces(&ckpt, &spec, true)?
                .all_intact()?
                .iter()
                .map(|(r, _)| (r.end - r.start) as u64)
                .sum();
            let p: Option<ShardProgress> = read_json(&ckpt.join(PROGRESS_FILE)).ok();
            match p {
                Some(p) if now.saturating_sub(p.updated) <= STALE_SECS && !p.ended() => {
                    st.state = ShardState::Running;
                    st.done = p.done.max(saved);
                    st.blocks_per_s = Some(p.blocks_per_s);
                    st.host = Some(p.host);
                }
                p => {
                    st.state = ShardState::Stopped;
                    st.done = saved;
                    st.host = p.map(|p| p.host);
                }
            }
        }
        out.push(st);
    }
    Ok(FolderStatus {
        folder: folder.to_path_buf(),
        spec,
        shards: out,
    })
}

/// Appended to a model's path to name the app's sidecar beside it.
pub const SIDECAR_SUFFIX: &str = ".seedlm-resume";
/// The sidecar's list of tensors asked for and not yet finished.
const PENDING_FILE: &str = "pending.json";

/// The app's sidecar: the compressed tensors of one model kept on disk as they finish, so a
/// closed, crashed or killed app loses at most the tensor in progress.
///
/// It holds one shard folder of one shard per configuration and calibration (`c8-p3-k16/`
/// data-free, `c8-p3-k16-cal-<SHA-256 prefix>/` calibrated on a text; the layout and piece
/// files a `compress --resume` run keeps, [`status`] reads it), whose job lists every float
/// tensor of the model (and the calibration text's identity in its plan) and whose pieces are
/// whole tensors, and `pending.json`, the tensors asked for and not finished yet. A tensor is
/// held at one configuration and calibration at a time, so calibrated and data-free codes
/// never mix.
/// Both the app and the shards search with the default (exact) encoder, which the layout
/// version stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    root: PathBuf,
}

/// A tensor a sidecar holds or is asked to compress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SidecarTensor {
    /// Tensor name.
    pub name: String,
    /// Its configuration.
    pub config: Config,
    /// The text its search is calibrated on (`None`: data-free): where to measure the moments
    /// again. The sidecar tells texts apart by their SHA-256 ([`Sidecar::load`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PathBuf>,
}

impl Sidecar {
    /// The sidecar beside model `path` (a file or a model directory): `PATH.seedlm-resume`.
    pub fn beside(path: &Path) -> Sidecar {
        let mut s = path.as_os_str().to_owned();
        s.push(SIDECAR_SUFFIX);
        Sidecar {
            root: PathBuf::from(s),
        }
    }

    /// The sidecar of model `path` kept in folder `dir` instead (for a model on a read-only
    /// or shared disk): `DIR/NAME-HASH.seedlm-resume`, the hash of the model's absolute path
    /// telling apart models of the same name.
    pub fn in_folder(dir: &Path, path: &Path) -> Sidecar {
        use sha2::{Digest, Sha256};
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let hash = Sha256::digest(abs.as_os_str().as_encoded_bytes());
        let name = path
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        Sidecar {
            root: dir.join(format!("{name}-{short}{SIDECAR_SUFFIX}")),
        }
    }

    /// The sidecar of model `path`: in `dir` when one is chosen, else beside the model.
    pub fn for_model(dir: Option<&Path>, path: &Path) -> Sidecar {
        match dir {
            Some(d) => Sidecar::in_folder(d, path),
            None => Sidecar::beside(path),
        }
    }

    /// The sidecar folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn folder(&self, cfg: Config, calibration: Option<&TextId>) -> PathBuf {
        let mut name = format!("c{}-p{}-k{}", cfg.c, cfg.p, cfg.k);
        if let Some(t) = calibration {
            name += "-cal-";
            name.extend(t.sha256.chars().take(16));
        }
        self.root.join(name)
    }

    /// The job of `model` at `cfg` with `calibration`: every float tensor, one shard.
    fn spec(
        model: &Model,
        cfg: Config,
        calibration: Option<&TextId>,
    ) -> Result<JobSpec, ModelError> {
        let names: Vec<String> = model
            .tensors()
            .iter()
            .filter(|t| dtype::is_float(t.dtype) && t.numel() > 0)
            .map(|t| t.name.clone())
            .collect();
        let total_blocks = model
            .tensors()
            .iter()
            .filter(|t| names.contains(&t.name))
            .map(|t| t.numel().div_ceil(cfg.c) as u64)
            .sum();
        let plan = Plan {
            compress: names,
            total_blocks,
        };
        let spec = JobSpec::new(model, &plan, cfg, 1)?;
        Ok(match calibration {
            Some(t) => spec.with_plan(
                None,
                JobPlan {
                    options: PlanOptions {
                        target_bpw: None,
                        sensitivity: None,
                        sensitivity_text: None,
                        calibration: Some(t.clone()),
                    },
                    records: BTreeMap::new(),
                    moments: None,
                    input: BTreeMap::new(),
                },
            ),
            None => spec,
        })
    }

    /// The calibration a job was made with.
    fn calibration_of(spec: &JobSpec) -> Option<&TextId> {
        spec.plan.as_ref()?.options.calibration.as_ref()
    }

    /// The job in `folder` when it is `model`'s at `cfg`, calibrated on a text of the same
    /// SHA-256 as `calibration` (wherever it was then) or data-free like it.
    fn job_in(
        folder: &Path,
        model: &Model,
        cfg: Config,
        calibration: Option<&TextId>,
    ) -> Option<JobSpec> {
        let found = read_job(folder).ok()?;
        let kept = Self::calibration_of(&found);
        if kept.map(|t| &t.sha256) != calibration.map(|t| &t.sha256) {
            return None;
        }
        let want = Self::spec(model, cfg, kept).ok()?;
        want.mismatch(&found).is_none().then_some(found)
    }

    /// The jobs of `model` the sidecar holds, each in its own folder (others are passed over).
    fn jobs(&self, model: &Model) -> Vec<JobSpec> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<JobSpec> = entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let found = read_job(&path).ok()?;
                let cal = Self::calibration_of(&found);
                let folder = self.folder(found.config, cal);
                (folder == path).then(|| Self::job_in(&folder, model, found.config, cal))?
            })
            .collect();
        out.sort_by_key(|s| {
            let cal = Self::calibration_of(s).map(|t| t.sha256.clone());
            (s.config.c, s.config.p, s.config.k, cal)
        });
        out
    }

    /// The finished tensors of `model` the sidecar holds, in the model's order within each
    /// configuration. Pieces of other jobs are passed over; their data is checked when loaded.
    pub fn finished(&self, model: &Model) -> Vec<SidecarTensor> {
        let mut out = Vec::new();
        for spec in self.jobs(model) {
            let calibration = Self::calibration_of(&spec);
            let ckpt = checkpoint_dir(&self.folder(spec.config, calibration), 0, 1);
            // Damaged pieces are passed over: their tensors are compressed again.
            let Ok(pieces) = scan_pieces(&ckpt, &spec, true) else {
                continue;
            };
            let pieces = pieces.intact;
            for t in &spec.tensors {
                if pieces.iter().any(|(r, _)| r.tensor == t.name) {
                    out.push(SidecarTensor {
                        name: t.name.clone(),
                        config: spec.config,
                        calibration: calibration.map(|t| t.path.clone()),
                    });
                }
            }
        }
        out
    }

    /// Tensor `name` of `model` at `cfg` with `calibration` (`None`: data-free) if the
    /// sidecar holds it, made from data of [`tensor_hash`] `hash`.
    pub fn load(
        &self,
        model: &Model,
        cfg: Config,
        calibration: Option<&TextId>,
        name: &str,
        hash: &str,
    ) -> Result<Option<CompressedTensor>, ModelError> {
        let folder = self.folder(cfg, calibration);
        let Some(spec) = Self::job_in(&folder, model, cfg, calibration) else {
            return Ok(None);
        };
        let ckpt = checkpoint_dir(&folder, 0, 1);
        let Some(t) = spec.tensors.iter().find(|t| t.name == name) else {
            return Ok(None);
        };
        let Ok(pieces) = scan_pieces(&ckpt, &spec, false) else {
            return Ok(None);
        };
        let pieces = pieces.intact;
        let Some((r, path)) = pieces
            .iter()
            .find(|(r, _)| r.tensor == name && r.start == 0 && r.end == t.blocks)
        else {
            return Ok(None);
        };
        if r.hash != hash {
            return Ok(None);
        }
        let file = open_sealed(path)?;
        let blocks = codes_in(&file, PIECE_TENSOR, r, cfg)?;
        let len = t.shape.iter().product();
        Ok(Some(CompressedTensor {
            config: cfg,
            e_base: r.e_base,
            len,
            blocks,
        }))
    }

    /// Writes compressed tensor `name` of `model` (its data of [`tensor_hash`] `hash`,
    /// searched with `calibration`, `None` for data-free) atomically, and forgets it at every
    /// other configuration and calibration.
    pub fn save(
        &self,
        model: &Model,
        name: &str,
        hash: &str,
        calibration: Option<&TextId>,
        tensor: &CompressedTensor,
    ) -> Result<(), ModelError> {
        let cfg = tensor.config;
        let folder = self.folder(cfg, calibration);
        // A folder of the same text keeps the path it was first made with.
        let spec = match Self::job_in(&folder, model, cfg, calibration) {
            Some(kept) => kept,
            None => Self::spec(model, cfg, calibration)?,
        };
        let index = spec
            .tensors
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| ModelError::tensor(model.path(), name, "is not a float tensor"))?;
        // What an older layout kept cannot be read any more: start this configuration afresh.
        if read_json::<JobSpec>(&folder.join(JOB_FILE)).is_ok_and(|j| j.layout != LAYOUT_VERSION) {
            std::fs::remove_dir_all(&folder)
                .map_err(|e| ModelError::io(&folder, "cannot remove", e))?;
        }
        claim_folder(&folder, &spec)?;
        let ckpt = checkpoint_dir(&folder, 0, 1);
        std::fs::create_dir_all(&ckpt)
            .map_err(|e| ModelError::io(&ckpt, "cannot create directory", e))?;
        let meta = PieceMeta {
            job: spec.id(),
            range: PartRange {
                tensor: name.to_string(),
                start: 0,
                end: tensor.num_blocks(),
                e_base: tensor.e_base,
                hash: hash.to_string(),
            },
        };
        write_piece(&ckpt, index, &meta, &pack_blocks(tensor))?;
        let sha = |c: Option<&TextId>| c.map(|t| t.sha256.clone());
        let others = self
            .jobs(model)
            .into_iter()
            .filter(|s| (s.config, sha(Self::calibration_of(s))) != (cfg, sha(calibration)));
        for other in others {
            let dir = checkpoint_dir(
                &self.folder(other.config, Self::calibration_of(&other)),
                0,
                1,
            );
            let pieces = scan_pieces(&dir, &other, false);
            for (r, path) in pieces.map(|p| p.intact).unwrap_or_default() {
                if r.tensor == name {
                    std::fs::remove_file(&path)
                        .map_err(|e| ModelError::io(&path, "cannot remove", e))?;
                }
            }
        }
        Ok(())
    }

    /// The tensors asked for and not finished when the list was last written.
    pub fn pending(&self) -> Vec<SidecarTensor> {
        read_json(&self.root.join(PENDING_FILE)).unwrap_or_default()
    }

    /// Replaces the list of tensors asked for (removed when empty), atomically.
    pub fn set_pending(&self, tensors: &[SidecarTensor]) -> Result<(), ModelError> {
        let path = self.root.join(PENDING_FILE);
        if tensors.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(ModelError::io(&path, "cannot remove", e))
                }
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(&self.root)
            .map_err(|e| ModelError::io(&self.root, "cannot create directory", e))?;
        write_json_atomic(&path, &tensors)
    }

    /// Removes the sidecar and all it holds.
    pub fn discard(&self) -> Result<(), ModelError> {
        match std::fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ModelError::io(&self.root, "cannot remove", e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shapes: &[&[usize]], c: usize, shards: usize) -> JobSpec {
        let tensors: Vec<JobTensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| JobTensor {
                name: format!("t{i}"),
                shape: s.to_vec(),
                dtype: "F32".into(),
                blocks: s.iter().product::<usize>().div_ceil(c),
                config: None,
                cost: None,
            })
            .collect();
        JobSpec {
            plan: None,
            layout: LAYOUT_VERSION,
            input: PathBuf::from("/m"),
            config: Config::new(c, 3, 16).unwrap(),
            shards,
            model_hash: "h".into(),
            total_blocks: tensors.iter().map(|t| t.blocks as u64).sum(),
            tensors,
        }
    }

    /// Every block exactly once, in order, cuts on row starts.
    fn check_tiles(s: &JobSpec) {
        let parts = s.partition();
        assert_eq!(parts.len(), s.shards);
        let mut next = vec![0usize; s.tensors.len()];
        for r in parts.iter().flatten() {
            assert_eq!(r.start, next[r.tensor], "{r:?}");
            let t = &s.tensors[r.tensor];
            if r.end != t.blocks {
                let cols = *t.shape.last().unwrap();
                assert_eq!(r.end * s.config.c % cols, 0, "cut inside a row: {r:?}");
            }
            next[r.tensor] = r.end;
        }
        for (t, n) in s.tensors.iter().zip(next) {
            assert_eq!(n, t.blocks);
        }
    }

    #[test]
    fn partition_tiles_and_balances() {
        let s = spec(&[&[384, 384], &[1536, 384], &[384, 1536], &[16, 24]], 8, 4);
        check_tiles(&s);
        let sizes: Vec<u64> = s
            .partition()
            .iter()
            .map(|p| p.iter().map(|r| r.len() as u64).sum())
            .collect();
        let mean = s.total_blocks as f64 / 4.0;
        for &z in &sizes {
            // Within one row (1536 / 8 = 192 blocks) of a fair share.
            assert!((z as f64 - mean).abs() <= 192.0, "{sizes:?}");
        }
        // The 1536×384 tensor is larger than a fair share and split by rows.
        let holders = s
            .partition()
            .iter()
            .filter(|p| p.iter().any(|r| r.tensor == 1))
            .count();
        assert!(holders >= 2);
    }

    #[test]
    fn partition_balances_the_predicted_cost_of_each_tensors_configuration() {
        // Two tensors of 128 rows of 8 blocks: the first at a configuration costing 13 times
        // the second's a block.
        let mut s = spec(&[&[128, 64], &[128, 64]], 8, 2);
        let cost =
            |p: &[Range]| -> u64 { p.iter().map(|r| r.len() as u64 * [13, 1][r.tensor]).sum() };
        // By blocks alone, each shard holds one tensor: 13 to 1.
        let by_blocks: Vec<u64> = s.partition().iter().map(|p| cost(p)).collect();
        assert_eq!(by_blocks, vec![13 * 1024, 1024]);
        s.tensors[0].cost = Some(13);
        check_tiles(&s);
        let parts = s.partition();
        let costs: Vec<u64> = parts.iter().map(|p| cost(p)).collect();
        // Within one row (8 blocks of the costly tensor) of half the total.
        let half = (13 * 1024 + 1024) / 2;
        for &c in &costs {
            assert!(c.abs_diff(half) <= 8 * 13, "{costs:?}");
        }
        // The costly tensor is split by rows; the cheap one stays whole in the second shard.
        assert!(parts[1].iter().any(|r| r.tensor == 0));
        assert_eq!(
            parts[1].last().map(|r| (r.tensor, r.len())),
            Some((1, 1024))
        );
    }

    #[test]
    fn partition_handles_odd_rows_and_tiny_models() {
        // Rows of 13 at C = 8: a cut every 13 blocks (8 rows).
        check_tiles(&spec(&[&[40, 13], &[7], &[3, 5]], 8, 3));
        // More shards than blocks: some are empty, still every block once.
        let s = spec(&[&[2, 8]], 8, 5);
        check_tiles(&s);
        assert_eq!(s.partition().iter().filter(|p| p.is_empty()).count(), 3);
        check_tiles(&spec(&[&[16, 24]], 8, 1));
    }

    #[test]
    fn gaps_are_the_uncovered_parts() {
        let r = |start, end| PartRange {
            tensor: "t".into(),
            start,
            end,
            e_base: 0,
            hash: String::new(),
        };
        let (a, b) = (r(2, 4), r(6, 9));
        assert_eq!(gaps(0, 10, &[&a, &b]), vec![(0, 2), (4, 6), (9, 10)]);
        assert_eq!(gaps(2, 4, &[&a]), vec![]);
        assert_eq!(gaps(0, 3, &[]), vec![(0, 3)]);
    }

    #[test]
    fn totals_add_the_running_rates_and_eta_follows() {
        let s = |shard, state, done, total, rate| ShardStatus {
            shard,
            state,
            done,
            total,
            blocks_per_s: rate,
            host: None,
        };
        let mut st = FolderStatus {
            folder: PathBuf::from("/o.shards"),
            spec: spec(&[&[300, 8]], 8, 3),
            shards: vec![
                s(0, ShardState::Finished, 100, 100, None),
                s(1, ShardState::Running, 40, 100, Some(20.0)),
                s(2, ShardState::Stopped, 10, 100, None),
            ],
        };
        assert_eq!(
            (st.done(), st.finished(), st.blocks_per_s()),
            (150, 1, 20.0)
        );
        assert_eq!(st.eta(), Eta::Secs(7.5));
        assert_eq!(st.shards[0].eta(), Eta::Done);
        assert_eq!(st.shards[1].eta().text(), "0:00:03");
        assert_eq!(st.shards[2].eta(), Eta::Unknown);
        assert_eq!(
            st.summary(),
            "total  150/300 blocks (50.0 %), 1/3 shards finished, 20 blocks/s, ETA 0:00:08"
        );
        assert_eq!(Eta::Secs(3725.0).text(), "1:02:05");
        st.shards[1].state = ShardState::Stopped;
        st.shards[1].blocks_per_s = None;
        assert!(st.summary().ends_with("ETA unknown (no shard running)"));
        assert!(
            st.summary().contains(", 0 blocks/s,"),
            "no shard running: {}",
            st.summary()
        );
    }

    #[test]
    fn mismatch_names_the_difference() {
        let a = spec(&[&[16, 24]], 8, 2);
        let mut b = a.clone();
        b.input = PathBuf::from("/elsewhere");
        assert_eq!(a.mismatch(&b), None);
        assert_eq!(a.id(), b.id());
        b.config = Config::new(8, 4, 16).unwrap();
        assert!(a.mismatch(&b).unwrap().contains("configuration"));
        assert_ne!(a.id(), b.id());
        let mut c = a.clone();
        c.model_hash = "other".into();
        assert!(a.mismatch(&c).unwrap().contains("different input"));
    }
}
