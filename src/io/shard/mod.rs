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
//!
//! One file per concern: `plan` (the folder's [`ShardJobSpec`] and its partition), `sealed` (parts
//! and pieces sealed with checksums), `run` (one shard, checkpointed), `merge`, `status`, and
//! `sidecar`; the folder's paths and JSON files are here.

use crate::io::container::{PARTIAL_PREFIX, PARTIAL_SUFFIX, parent_dir, partial_file};
use crate::io::error::ModelError;
use crate::io::job_plan::hex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod merge;
mod plan;
mod planned;
mod run;
mod sealed;
mod sidecar;
mod status;

pub use merge::merge;
pub use plan::{
    Range, ShardJobSpec, ShardJobTensor, claim_folder, model_hash, read_shard_job, tensor_hash,
};
pub use planned::{input_hashes, read_plan, write_plan};
pub use run::{ShardOutcome, ShardProgress, ShardRun, run_shard};
pub use sealed::{PartMeta, PartRange, open_sealed, read_part};
pub use sidecar::{SIDECAR_SUFFIX, Sidecar, SidecarTensor};
pub use status::{Eta, FolderStatus, ShardState, ShardStatus, find_folder, status};

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

/// Removes shard folder, checkpoint or sidecar `path` (gone already is fine). A folder given as
/// a link (to scratch space, say) is the user's: what the shards wrote into it goes, then the
/// link, and the folder it names stays with anything else in it. Links inside a linked folder
/// are removed, not followed, so a link loop ends.
pub fn remove_folder(path: &Path) -> std::io::Result<()> {
    remove_tree(path, true)
}

fn remove_tree(path: &Path, follow: bool) -> std::io::Result<()> {
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    let linked = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) => m.file_type().is_symlink(),
    };
    if linked && !follow {
        return gone(std::fs::remove_file(path));
    }
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let p = entry.path();
                if linked && !written_by_shards(&p) {
                    continue;
                }
                let kind = entry.file_type()?;
                if kind.is_dir() || kind.is_symlink() {
                    remove_tree(&p, !linked)?;
                } else {
                    gone(std::fs::remove_file(&p))?;
                }
            }
        }
        // A link to a file or to nothing: only the link goes.
        Err(e)
            if linked
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    gone(if linked {
        std::fs::remove_file(path)
    } else {
        std::fs::remove_dir(path)
    })
}

/// Whether `path`, in a shard folder, checkpoint or sidecar, is something they write: the
/// job, parts, checkpoints, pieces, progress, lock, partial files, and a sidecar's list and
/// shard folders.
fn written_by_shards(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let file = |prefix: &str, suffix: &str| name.starts_with(prefix) && name.ends_with(suffix);
    [JOB_FILE, PROGRESS_FILE, LOCK_FILE, sidecar::PENDING_FILE].contains(&name.as_ref())
        || file("part-", ".safetensors")
        || file("piece-", ".safetensors")
        || (file("shard-", "") && name.contains("-of-"))
        || file(PARTIAL_PREFIX, PARTIAL_SUFFIX)
        || path.join(JOB_FILE).is_file()
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

#[cfg(test)]
mod tests {
    use super::run::gaps;
    use super::*;
    use crate::core::config::Config;

    fn spec(shapes: &[&[usize]], c: usize, shards: usize) -> ShardJobSpec {
        let tensors: Vec<ShardJobTensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| ShardJobTensor {
                name: format!("t{i}"),
                shape: s.to_vec(),
                dtype: "F32".into(),
                blocks: s.iter().product::<usize>().div_ceil(c),
                config: None,
                cost: None,
            })
            .collect();
        ShardJobSpec {
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
    fn check_tiles(s: &ShardJobSpec) {
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
