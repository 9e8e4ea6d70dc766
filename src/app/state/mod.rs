//! The app state: the open document, selection, settings, running jobs and messages, and the
//! one place where commands change it.
//!
//! Split as rerun splits its `App`: the state and what the panels ask of it here, the one
//! place where commands change it in `commands`, the compression queue and its resume sidecar
//! in `queue`, what finished jobs bring in `finish`, and the totals the views show in `totals`.

use super::command::TabId;
use super::document::Document;
use super::eta::{self, AllocationWork};
use super::jobs::{CompressJob, Job};
use super::work::{self, JobKind, Output, Results, ResumeOffer};
use crate::core::config::Config;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

mod commands;
mod finish;
mod queue;
mod totals;

pub use queue::user_data_dir;
pub use totals::{Group, Totals};

/// Recent files kept in the menu.
const MAX_RECENT: usize = 8;

/// How a tensor is compressed: its configuration, and the text its search is calibrated on.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The configuration.
    pub config: Config,
    /// The calibration text (`None`: data-free).
    pub calibration: Option<PathBuf>,
}

/// Where a tensor stands.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorStatus {
    /// Not compressed.
    Original,
    /// Waiting for compression.
    Queued,
    /// Being compressed; fraction done in [0, 1].
    Running(f32),
    /// Compressed; SNR in dB if the original is known.
    Compressed(Option<f64>),
}

/// A message shown to the user.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Whether it reports a failure.
    pub error: bool,
    /// The text, one line.
    pub text: String,
}

/// The block shown by the block inspector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Tensor index.
    pub tensor: usize,
    /// Block index in the tensor.
    pub block: usize,
}

/// What the app keeps between sessions, saved as one value (a field missing from what an
/// earlier build saved takes its default).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Saved {
    /// Recently opened paths, newest first.
    pub recent: Vec<PathBuf>,
    /// Dark theme.
    pub dark: bool,
    /// The folder sidecars are kept in
    /// ([`Sidecar::in_folder`](crate::io::shard::Sidecar::in_folder)); `None`: beside each
    /// model.
    pub sidecar_dir: Option<PathBuf>,
}

impl Default for Saved {
    fn default() -> Self {
        Saved {
            recent: Vec::new(),
            dark: true,
            sidecar_dir: None,
        }
    }
}

/// Storage key of [`Saved`].
const SAVED_KEY: &str = "saved";

impl Saved {
    /// What `storage` keeps. Builds before [`Saved`] kept its fields under three keys of their
    /// own: those are read when it has none, so an upgrade keeps the user's settings.
    pub fn load(storage: &dyn eframe::Storage) -> Saved {
        eframe::get_value(storage, SAVED_KEY).unwrap_or_else(|| {
            let d = Saved::default();
            Saved {
                recent: eframe::get_value(storage, "recent_files").unwrap_or(d.recent),
                dark: eframe::get_value(storage, "dark_theme").unwrap_or(d.dark),
                sidecar_dir: eframe::get_value(storage, "sidecar_dir").unwrap_or(d.sidecar_dir),
            }
        })
    }

    /// Keeps it in `storage`.
    pub fn store(&self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SAVED_KEY, self);
    }
}

/// Everything the panels read.
pub struct AppState {
    /// The open model.
    pub doc: Document,
    /// Selected tensors.
    pub selection: BTreeSet<usize>,
    /// The last clicked tensor: the one the Tensor tab shows, and the anchor of Shift+click.
    pub focus: Option<usize>,
    /// Settings for the next compression.
    pub config: Config,
    /// The calibration text of the next compression (`None`: data-free).
    pub calibration: Option<PathBuf>,
    /// The running compression.
    pub job: Option<CompressJob>,
    /// Tensors waiting for the next job, with the settings asked for.
    pub queue: VecDeque<(usize, Settings)>,
    /// The block inspector's block.
    pub inspect: Option<BlockRef>,
    /// The central tab shown.
    pub tab: TabId,
    /// Messages, newest last.
    pub messages: Vec<Message>,
    /// What is kept between sessions: recent paths, theme, sidecar folder.
    pub saved: Saved,
    /// Background jobs other than the compression, at most one of each kind.
    pub jobs: BTreeMap<JobKind, Job<Output>>,
    /// What finished jobs produced.
    pub results: Results,
    /// The tensor state the running preparation job is for.
    pub preparing: Option<work::TensorKey>,
    /// Woken by jobs when they have something to show (set by the app on its first frame).
    pub repaint: Option<egui::Context>,
    /// Whether compressed tensors of a model file are kept in a sidecar beside it
    /// ([`Sidecar::beside`](crate::io::shard::Sidecar::beside)) as they finish, and offered
    /// again when it is reopened.
    pub sidecars: bool,
    /// Where sidecars of the bundled demo and of models in read-only folders go when no
    /// folder is chosen ([`user_data_dir`]); `None`: such models keep none.
    pub data_dir: Option<PathBuf>,
    /// What the open model's sidecar offers to resume, until taken or discarded.
    pub resume: Option<ResumeOffer>,
    /// What the bit allocation last started has to search, for the time left of all of it.
    pub allocating: Option<AllocationWork>,
    generation: u64,
}

impl Drop for AppState {
    /// A closing app stops its compression: what finished is in the sidecar already.
    fn drop(&mut self) {
        self.cancel();
    }
}

impl AppState {
    /// A state showing `doc`.
    pub fn new(doc: Document) -> Self {
        AppState {
            doc,
            selection: BTreeSet::new(),
            focus: None,
            config: Config::FOUR_BIT,
            calibration: None,
            job: None,
            queue: VecDeque::new(),
            inspect: None,
            tab: TabId::Overview,
            messages: Vec::new(),
            saved: Saved::default(),
            jobs: BTreeMap::new(),
            results: Results::default(),
            preparing: None,
            repaint: None,
            sidecars: true,
            data_dir: user_data_dir(|k| std::env::var_os(k)),
            resume: None,
            allocating: None,
            generation: 0,
        }
    }

    /// Whether any background work is running (the UI keeps repainting while it is).
    pub fn busy(&self) -> bool {
        self.job.is_some() || !self.jobs.is_empty()
    }

    /// What quitting now would stop, in words ("compressing (C=8 P=3 K=16)", "Quality"):
    /// the compression, its queue and the runs a user waits for; not the quick or repeatable
    /// reads (a tensor's heatmaps, a shard folder's progress, a file dialog).
    pub fn unfinished(&self) -> Vec<String> {
        let mut v: Vec<String> = self.job.iter().map(|j| j.job.label.clone()).collect();
        if !self.queue.is_empty() {
            v.push(format!("{} tensor(s) queued", self.queue.len()));
        }
        v.extend(
            self.jobs
                .iter()
                .filter(|(k, _)| !matches!(k, JobKind::Prepare | JobKind::Shards | JobKind::Dialog))
                .map(|(_, j)| j.label.clone()),
        );
        v
    }

    /// The running job of this kind.
    pub fn running(&self, kind: JobKind) -> Option<&Job<Output>> {
        self.jobs.get(&kind)
    }

    /// The time left of everything queued: the compression running and every tensor waiting
    /// (each at its own configuration), and a bit allocation's phases before them, their
    /// compression predicted. Search is priced at the rate of the search running (the
    /// compression's, or the menu's); `None` while there is none yet to price it, e.g. while
    /// the sensitivities are measured.
    pub fn time_left_in_all(&self) -> Option<Duration> {
        let mut work = 0.0;
        let mut rate = None;
        if let Some(job) = &self.job {
            let (done, total) = job.blocks();
            work += eta::work(total.saturating_sub(done), job.config);
            rate = Some(eta::work(1, job.config) * job.rate());
        }
        for (t, s) in &self.queue {
            let blocks = self
                .doc
                .tensors
                .get(*t)
                .map_or(0, |e| e.len().div_ceil(s.config.c));
            work += eta::work(blocks as u64, s.config);
        }
        let mut phase = Duration::ZERO;
        if let (Some(j), Some(a)) = (self.running(JobKind::Allocate), &self.allocating) {
            let (done, total) = j.progress();
            // The menu phase counts its sample blocks; the sensitivities count tensors.
            if total == a.menu_blocks {
                work += a.left_in_menu(done);
                rate = rate.or((done > 0).then(|| a.menu_rate(j.rate())));
            } else {
                phase = j.eta()?;
                work += a.menu_work + a.compress_work;
            }
        }
        eta::time_left(phase, work, rate)
    }

    /// The status of tensor `i`.
    pub fn status(&self, i: usize) -> TensorStatus {
        if let Some(job) = &self.job {
            if let Some((cur, start)) = job.current
                && cur == i
            {
                let blocks = self.doc.tensors[i].len().div_ceil(job.config.c).max(1) as f64;
                let done = job.blocks().0.saturating_sub(start) as f64;
                return TensorStatus::Running((done / blocks).clamp(0.0, 1.0) as f32);
            }
            if job.tensors.contains(&i) && !self.done_in_job(i) {
                return TensorStatus::Queued;
            }
        }
        if self.queue.iter().any(|(t, _)| *t == i) {
            return TensorStatus::Queued;
        }
        match &self.doc.tensors[i].result {
            Some(r) => TensorStatus::Compressed(r.snr_db()),
            None => TensorStatus::Original,
        }
    }

    fn done_in_job(&self, i: usize) -> bool {
        // Tensors before the current one in the job's order are finished.
        let Some(job) = &self.job else { return false };
        let Some((cur, _)) = job.current else {
            return false;
        };
        let pos = |t| job.tensors.iter().position(|&x| x == t);
        matches!((pos(i), pos(cur)), (Some(a), Some(b)) if a < b)
    }

    /// Adds a message.
    pub fn message(&mut self, error: bool, text: impl Into<String>) {
        self.messages.push(Message {
            error,
            text: text.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept_round_trips_and_a_missing_field_takes_its_default() {
        let saved = Saved {
            recent: vec![PathBuf::from("/m/a.safetensors")],
            dark: false,
            sidecar_dir: Some(PathBuf::from("/scratch")),
        };
        let text = serde_json::to_string(&saved).unwrap();
        assert_eq!(serde_json::from_str::<Saved>(&text).unwrap(), saved);
        let partial: Saved = serde_json::from_str(r#"{"recent": ["/m/b"]}"#).unwrap();
        assert_eq!(partial.recent, [PathBuf::from("/m/b")]);
        assert!(partial.dark && partial.sidecar_dir.is_none());
    }

    /// A key–value store, as eframe's file storage is.
    #[derive(Default)]
    struct Memory(std::collections::HashMap<String, String>);

    impl eframe::Storage for Memory {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.into(), value);
        }
        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }
        fn flush(&mut self) {}
    }

    #[test]
    fn settings_an_earlier_build_kept_under_three_keys_are_read_until_saved_anew() {
        let mut old = Memory::default();
        assert_eq!(Saved::load(&old), Saved::default());
        eframe::set_value(&mut old, "recent_files", &vec![PathBuf::from("/m/a")]);
        eframe::set_value(&mut old, "dark_theme", &false);
        eframe::set_value(&mut old, "sidecar_dir", &Some(PathBuf::from("/scratch")));
        let upgraded = Saved::load(&old);
        let expected = Saved {
            recent: vec![PathBuf::from("/m/a")],
            dark: false,
            sidecar_dir: Some(PathBuf::from("/scratch")),
        };
        assert_eq!(upgraded, expected);
        // Once saved under the one key, that is what is read.
        let newer = Saved {
            dark: true,
            ..expected
        };
        newer.store(&mut old);
        assert_eq!(Saved::load(&old), newer);
    }
}
