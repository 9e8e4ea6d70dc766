//! Running one shard: its checkpoint directory, lock and progress file, a piece per finished
//! block range, resuming after a kill, and the finished part.

use super::plan::{Range, ShardJobSpec, claim_folder, tensor_hash};
use super::sealed::{
    PartMeta, PartRange, PieceMeta, codes_in, open_checked, open_sealed, range_key, read_part,
    write_sealed,
};
use super::{
    KEY_PART, KEY_PIECE, LOCK_FILE, PIECE_TENSOR, PROGRESS_EVERY, PROGRESS_FILE, checkpoint_dir,
    part_path, read_json, write_json_atomic,
};
use crate::core::config::Config;
use crate::core::control::Control;
use crate::io::container::{OutTensor, Payload};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::model_job::{JobError, moments_of, tensor_error};
use crate::io::packed::{check_packed, pack_blocks};
use crate::search::Searcher;
use crate::search::compress::{
    BlockCode, CompressedTensor, check_finite, choose_e_base, pad_blocks, search_blocks,
    search_blocks_weighted,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    pub(super) fn ended(&self) -> bool {
        self.host == host_name() && !Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

pub(super) fn now_secs() -> u64 {
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
    /// The job (from [`ShardJobSpec::new`] on this input).
    pub spec: &'a ShardJobSpec,
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
pub(super) struct Pieces {
    pub(super) intact: Vec<(PartRange, PathBuf)>,
    damaged: Vec<(PathBuf, ModelError)>,
}

impl Pieces {
    /// The intact pieces, or the first damaged one as an error.
    pub(super) fn all_intact(self) -> Result<Vec<(PartRange, PathBuf)>, ModelError> {
        match self.damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(self.intact),
        }
    }
}

/// Checkpoint pieces already on disk, each verified (checksum, description, records at its
/// tensor's configuration in `spec`) and checked to be of job `spec`; `cached` as in
/// [`open_checked`]. A piece of another job is an error.
pub(super) fn scan_pieces(
    dir: &Path,
    spec: &ShardJobSpec,
    cached: bool,
) -> Result<Pieces, ModelError> {
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
fn read_pieces(dir: &Path, spec: &ShardJobSpec) -> Result<Vec<(PartRange, PathBuf)>, ModelError> {
    scan_pieces(dir, spec, false)?.all_intact()
}

/// The description of the piece at `path` of job `spec`, its checksum and records verified.
fn read_piece(path: &Path, spec: &ShardJobSpec, cached: bool) -> Result<PieceMeta, ModelError> {
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
    // A piece copied or renamed onto another's name would be counted twice and overlap.
    if let Some(index) = spec
        .tensors
        .iter()
        .position(|t| t.name == meta.range.tensor)
    {
        let expected = piece_file_name(index, meta.range.start);
        if path.file_name() != Some(std::ffi::OsStr::new(&expected)) {
            return Err(ModelError::file(
                path,
                format!("damaged: it holds the blocks of {expected}, not those its name says"),
            ));
        }
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
                let _ = super::remove_folder(&ckpt);
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
    let _ = super::remove_folder(&ckpt);
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

/// The file name of the checkpoint piece of tensor `index` (in the job's order) starting at
/// block `start`.
fn piece_file_name(index: usize, start: usize) -> String {
    format!("piece-{index:05}-{start:012}.safetensors")
}

/// Writes checkpoint piece `meta` of tensor `index` (in the job's order) atomically.
pub(super) fn write_piece(
    ckpt: &Path,
    index: usize,
    meta: &PieceMeta,
    bytes: &[u8],
) -> Result<(), ModelError> {
    let path = ckpt.join(piece_file_name(index, meta.range.start));
    let md = BTreeMap::from([(
        KEY_PIECE.to_string(),
        serde_json::to_string(meta).expect("plain struct serializes"),
    )]);
    write_sealed(&path, vec![records(PIECE_TENSOR.into(), bytes)], md)
}

/// The parts of `[start, end)` not covered by `have`.
pub(super) fn gaps(start: usize, end: usize, have: &[&PartRange]) -> Vec<(usize, usize)> {
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

pub(super) fn pack_codes(config: Config, e_base: i32, blocks: Vec<BlockCode>) -> Vec<u8> {
    let len = blocks.len() * config.c;
    pack_blocks(&CompressedTensor {
        config,
        e_base,
        len,
        blocks,
    })
}

pub(super) fn records(name: String, bytes: &[u8]) -> OutTensor<'_> {
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
