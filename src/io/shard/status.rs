//! The state of a shard folder, shard by shard (done, running, stopped, damaged), with progress
//! and ETA, as `seedlm shard status` prints it.

use super::plan::{ShardJobSpec, read_shard_job};
use super::run::{ShardProgress, now_secs, scan_pieces};
use super::sealed::read_part_checked;
use super::{JOB_FILE, PROGRESS_FILE, STALE_SECS, checkpoint_dir, folder_of, part_path, read_json};
use crate::io::container::parent_dir;
use crate::io::error::ModelError;
use std::path::{Path, PathBuf};

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
    pub spec: ShardJobSpec,
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

/// Refuses a damaged part, or one of another job, as merge would refuse it.
fn check_part(part: &Path, spec: &ShardJobSpec) -> Result<(), ModelError> {
    let (meta, _) = read_part_checked(part, true)?;
    match spec.mismatch(&meta.job) {
        Some(why) => Err(ModelError::file(
            part,
            format!("belongs to a different job: {why}"),
        )),
        None => Ok(()),
    }
}

/// The state of every shard of the job in `folder`.
pub fn status(folder: &Path) -> Result<FolderStatus, ModelError> {
    let spec = read_shard_job(folder)?;
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
        // A part or checkpoint that cannot be read (a link to itself, say) is named, not taken
        // for a shard not started.
        let present = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        if present(&part) {
            check_part(&part, &spec)?;
            st.state = ShardState::Finished;
            st.done = total;
        } else if present(&ckpt) {
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
    // Parts the job does not name (of another shard count, copies) are looked at too, as merge
    // looks at every part.
    let named: Vec<PathBuf> = (0..n).map(|i| part_path(folder, i, n)).collect();
    let entries =
        std::fs::read_dir(folder).map_err(|e| ModelError::io(folder, "cannot list", e))?;
    let mut others: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("part-") && name.ends_with(".safetensors") && !named.contains(p)
        })
        .collect();
    others.sort();
    for part in others {
        check_part(&part, &spec)?;
    }
    Ok(FolderStatus {
        folder: folder.to_path_buf(),
        spec,
        shards: out,
    })
}
