//! The app state: the open document, selection, settings, running jobs and messages, and the
//! one place where commands change it.

use super::command::{Command, ExportKind, SelectMode, TabId};
use super::document::{Document, Errors, TensorResult};
use super::eta::{self, AllocationWork};
use super::export;
use super::format::{file_name, human_duration};
use super::jobs::{CompressEvent, CompressJob, Input, Job, Outcome};
use super::loader;
use super::work::{self, JobKind, Keyed, Output, Purpose, Results, ResumeOffer, ShardView, Work};
use crate::core::config::Config;
use crate::io::job_plan::TextId;
use crate::io::shard::{self, FolderStatus, Sidecar, SidecarTensor};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// The folder sidecars are kept in ([`Sidecar::in_folder`]); `None`: beside each model.
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
    /// ([`Sidecar::beside`]) as they finish, and offered again when it is reopened.
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

    /// Applies one command.
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Open(path) => self.open(path),
            Command::OpenDemo => {
                self.replace_doc(loader::demo());
                self.resume = self.sidecar().and_then(|s| ResumeOffer::find(s, &self.doc));
            }
            Command::Select { tensor, mode } => self.select(tensor, mode),
            Command::SelectOnly(v) => {
                self.selection = v.into_iter().collect();
                if self.focus.is_none_or(|f| !self.selection.contains(&f)) {
                    self.focus = self.selection.first().copied().or(self.focus);
                }
            }
            Command::ShowTab(t) => self.tab = t,
            Command::SetConfig(c) => self.config = c,
            Command::SetCalibration(p) => self.calibration = p,
            Command::SetSidecarDir(d) => {
                self.message(
                    false,
                    match &d {
                        Some(d) => format!("resume sidecars now go to {}", d.display()),
                        None => "resume sidecars now go beside each model".into(),
                    },
                );
                self.saved.sidecar_dir = d;
            }
            Command::Compress(tensors) => self.enqueue(tensors),
            Command::Cancel => self.cancel(),
            Command::Inspect { tensor, block } => {
                self.inspect = Some(BlockRef { tensor, block });
                self.focus = Some(tensor);
            }
            Command::Export { kind, path } => self.export(kind, path),
            Command::Resume => self.resume(),
            Command::DiscardResume => {
                if let Some(offer) = self.resume.take() {
                    let root = offer.sidecar.root().display().to_string();
                    match offer.sidecar.discard() {
                        Ok(()) => self.message(false, format!("removed {root}")),
                        Err(e) => self.message(true, e.to_string()),
                    }
                }
            }
            Command::Run(w) => self.run(w),
            Command::Stop(kind) => {
                if let Some(j) = self.jobs.get(&kind) {
                    j.cancel();
                }
            }
            Command::SetDark(d) => self.saved.dark = d,
            Command::DismissMessage(i) => {
                if i < self.messages.len() {
                    self.messages.remove(i);
                }
            }
        }
    }

    fn select(&mut self, tensor: usize, mode: SelectMode) {
        if tensor >= self.doc.tensors.len() {
            return;
        }
        match mode {
            SelectMode::Replace => {
                self.selection.clear();
                self.selection.insert(tensor);
            }
            SelectMode::Toggle => {
                if !self.selection.remove(&tensor) {
                    self.selection.insert(tensor);
                }
            }
            SelectMode::Range => {
                let a = self.focus.unwrap_or(tensor);
                self.selection.extend(a.min(tensor)..=a.max(tensor));
            }
        }
        self.focus = Some(tensor);
    }

    fn open(&mut self, path: PathBuf) {
        let label = format!("opening {}", path.display());
        let sidecars = self.sidecars;
        let dir = self.saved.sidecar_dir.clone();
        let data = self.data_dir.clone();
        let job = Job::spawn(label, None, self.repaint.clone(), move |ctx| {
            // A shard folder (or the output it will merge into) opens in the Shards tab.
            if let Some(folder) = shard::find_folder(&path) {
                let st = shard::status(&folder).map_err(|e| e.to_string())?;
                return Ok(Output::Shards(folder, Ok(Box::new(st))));
            }
            let doc = loader::load(&path, ctx.control()).map_err(|e| e.to_string())?;
            let offer = sidecars
                .then(|| sidecar_for(dir.as_deref(), data.as_deref(), &path))
                .flatten()
                .and_then(|s| ResumeOffer::find(s, &doc));
            Ok(Output::Opened(path, Box::new(doc), offer))
        });
        self.start(JobKind::Open, job);
    }

    /// Keeps `job` as the running job of `kind`; one still running of that kind is stopped
    /// and forgotten (a model opened later wins over one still opening).
    fn start(&mut self, kind: JobKind, job: Job<Output>) {
        if let Some(old) = self.jobs.insert(kind, job) {
            old.cancel();
        }
    }

    /// Whether a job of `kind` runs already (said in a message).
    fn refuse(&mut self, kind: JobKind) -> bool {
        let Some(j) = self.jobs.get(&kind) else {
            return false;
        };
        let text = format!("{} is still running", j.label);
        self.message(true, text);
        true
    }

    fn run(&mut self, w: Work) {
        let kind = w.kind();
        // A newer tensor supersedes the one being prepared; other work runs one at a time.
        if kind != JobKind::Prepare && self.refuse(kind) {
            return;
        }
        if let Work::Prepare(i) = w
            && i < self.doc.tensors.len()
        {
            self.preparing = Some(work::tensor_key(&self.doc, i));
        }
        if let Work::Allocate {
            tensors,
            target_bpw,
        } = &w
        {
            let sizes: Vec<usize> = tensors
                .iter()
                .filter_map(|&i| self.doc.tensors.get(i).filter(|t| t.source.is_some()))
                .map(|t| t.len())
                .collect();
            self.allocating = Some(AllocationWork::new(&sizes, *target_bpw));
        }
        match work::spawn(w, &self.doc, self.repaint.clone()) {
            Ok(job) => self.start(kind, job),
            Err(e) => self.message(true, e),
        }
    }

    fn replace_doc(&mut self, doc: Document) {
        // Running work refers to the old document: stop it and forget it.
        self.cancel();
        self.job = None;
        let old = self.doc.id;
        self.jobs.retain(|_, j| {
            let stale = j.doc == Some(old);
            if stale {
                j.cancel();
            }
            !stale
        });
        self.results.keep_doc(doc.id);
        self.doc = doc;
        self.selection.clear();
        self.focus = None;
        self.inspect = None;
        self.queue.clear();
        self.resume = None;
    }

    /// The sidecar of the open model ([`sidecar_for`]), when it is a model file and sidecars
    /// are on.
    fn sidecar(&self) -> Option<Sidecar> {
        let path = self.doc.path.as_ref()?;
        (self.sidecars && self.doc.mapped.is_some())
            .then(|| {
                sidecar_for(
                    self.saved.sidecar_dir.as_deref(),
                    self.data_dir.as_deref(),
                    path,
                )
            })
            .flatten()
    }

    /// Takes up the sidecar's offer: its finished tensors (read, not searched) and those
    /// still to do are queued at the settings they were asked with, except tensors that have
    /// a result already.
    fn resume(&mut self) {
        let Some(offer) = self.resume.take() else {
            return;
        };
        let mut n = 0;
        for t in offer.finished.iter().chain(&offer.pending) {
            let Some(i) = self.doc.find(&t.name) else {
                continue;
            };
            if self.doc.tensors[i].result.is_none() && !self.queue.iter().any(|(q, _)| *q == i) {
                let settings = Settings {
                    config: t.config,
                    calibration: t.calibration.clone(),
                };
                self.queue.push_back((i, settings));
                n += 1;
            }
        }
        self.message(
            false,
            format!(
                "resuming {n} tensor(s) from {}",
                offer.sidecar.root().display()
            ),
        );
        self.start_next();
        self.save_pending();
    }

    /// Writes the tensors asked for and not finished (the running job's and the queue's) to
    /// the sidecar, so a resume knows them.
    fn save_pending(&mut self) {
        let Some(sidecar) = self.sidecar() else {
            return;
        };
        let mut left: Vec<SidecarTensor> = Vec::new();
        if let Some(job) = &self.job {
            let from = job
                .current
                .and_then(|(cur, _)| job.tensors.iter().position(|&t| t == cur))
                .unwrap_or(0);
            let calibration = job.calibration.as_ref().map(|c| c.text.path.clone());
            left.extend(job.tensors[from..].iter().map(|&t| SidecarTensor {
                name: self.doc.tensors[t].name.clone(),
                config: job.config,
                calibration: calibration.clone(),
            }));
        }
        left.extend(self.queue.iter().map(|(t, s)| SidecarTensor {
            name: self.doc.tensors[*t].name.clone(),
            config: s.config,
            calibration: s.calibration.clone(),
        }));
        if let Err(e) = sidecar.set_pending(&left) {
            self.message(true, e.to_string());
        }
    }

    fn enqueue(&mut self, tensors: Vec<usize>) {
        let cfg = self.config;
        self.enqueue_with(tensors.into_iter().map(|t| (t, cfg)).collect());
    }

    /// Queues each tensor with its own configuration and the calibration of the settings (a
    /// tensor already queued keeps its place). A tensor compressed at that configuration with
    /// the same calibration already (data-free, or weighted by a text of the same SHA-256) is
    /// skipped: the search is deterministic, so it would find the same codes again.
    fn enqueue_with(&mut self, tensors: Vec<(usize, Config)>) {
        let mut skipped = 0;
        let mut done = 0;
        // The calibration asked for, by its text's hash (`None`: unreadable, never matched).
        let wanted = match &self.calibration {
            None => Some(None),
            Some(text) => TextId::of(text).ok().map(|t| Some(t.sha256)),
        };
        for (t, config) in tensors {
            let Some(entry) = self.doc.tensors.get(t) else {
                continue;
            };
            if entry.source.is_none() || entry.is_empty() {
                skipped += 1;
                continue;
            }
            if let (Some(r), Some(wanted)) = (&entry.result, &wanted)
                && r.compressed.config == config
                && r.calibration.as_ref().map(|c| &c.sha256) == wanted.as_ref()
            {
                done += 1;
                continue;
            }
            if !self.queue.iter().any(|(q, _)| *q == t) {
                let calibration = self.calibration.clone();
                self.queue.push_back((
                    t,
                    Settings {
                        config,
                        calibration,
                    },
                ));
            }
        }
        if skipped > 0 {
            self.message(
                false,
                format!("{skipped} tensor(s) skipped: no original weights to compress"),
            );
        }
        if done > 0 {
            self.message(
                false,
                format!("{done} tensor(s) skipped: already compressed with these settings"),
            );
        }
        self.start_next();
        self.save_pending();
    }

    /// Starts the next job from the queue: consecutive tensors with the same settings. A
    /// calibrated one waits for its text's moments, measured once per document and text.
    fn start_next(&mut self) {
        if self.job.is_some() {
            return;
        }
        let Some((_, settings)) = self.queue.front().cloned() else {
            return;
        };
        let calibration = match &settings.calibration {
            None => None,
            Some(text) => match &self.results.calibration {
                Some(k) if k.doc == self.doc.id && k.value.0 == *text => Some(k.value.1.clone()),
                _ => {
                    if !self.jobs.contains_key(&JobKind::Calibrate) {
                        self.run(Work::Calibrate(text.clone()));
                        // It could not start (said in a message): nothing can use that text.
                        if !self.jobs.contains_key(&JobKind::Calibrate) {
                            self.drop_calibrated();
                        }
                    }
                    return;
                }
            },
        };
        let mut inputs = Vec::new();
        while let Some((t, s)) = self.queue.front() {
            if *s != settings {
                break;
            }
            let e = &self.doc.tensors[*t];
            if let Some(src) = &e.source {
                inputs.push(Input {
                    tensor: *t,
                    name: e.name.clone(),
                    shape: e.shape.clone(),
                    source: src.clone(),
                });
            }
            self.queue.pop_front();
        }
        self.job = Some(CompressJob::spawn(
            inputs,
            settings.config,
            calibration,
            self.doc.id,
            self.sidecar(),
            self.repaint.clone(),
        ));
    }

    /// Drops the calibrated tensors from the queue once their moments cannot be measured, and
    /// goes on with the rest.
    fn drop_calibrated(&mut self) {
        self.queue.retain(|(_, s)| s.calibration.is_none());
        self.save_pending();
        self.start_next();
    }

    fn cancel(&mut self) {
        self.queue.clear();
        if let Some(job) = &self.job {
            job.job.cancel();
        }
        if let Some(j) = self.jobs.get(&JobKind::Calibrate) {
            j.cancel();
        }
        self.save_pending();
    }

    fn export(&mut self, kind: ExportKind, path: PathBuf) {
        if self.refuse(JobKind::Export) {
            return;
        }
        let inputs = export::snapshot(&self.doc);
        let job = Job::spawn("export", None, self.repaint.clone(), move |ctx| {
            export::write(kind, &inputs, &path, ctx.control())
                .map(Output::Exported)
                .map_err(|e| e.to_string())
        });
        self.start(JobKind::Export, job);
    }

    /// Collects what background work reported; call once per frame.
    pub fn poll(&mut self) {
        self.poll_compress();
        self.refresh_shards();
        let ended: Vec<(JobKind, Job<Output>, Outcome<Output>)> = {
            let done: Vec<(JobKind, Outcome<Output>)> = self
                .jobs
                .iter()
                .filter_map(|(k, j)| Some((*k, j.finished()?)))
                .collect();
            done.into_iter()
                .filter_map(|(k, o)| Some((k, self.jobs.remove(&k)?, o)))
                .collect()
        };
        for (kind, job, outcome) in ended {
            self.finish(kind, &job, outcome);
        }
    }

    /// Takes in what a finished job produced; failures and cancellations become messages.
    fn finish(&mut self, kind: JobKind, job: &Job<Output>, outcome: Outcome<Output>) {
        if kind == JobKind::Hardware {
            self.results.hw_log = job.log();
        }
        let label = &job.label;
        if kind == JobKind::Calibrate && !matches!(outcome, Outcome::Done(_)) {
            self.drop_calibrated();
        }
        let out = match outcome {
            Outcome::Done(out) => out,
            Outcome::Cancelled => {
                self.message(false, format!("{label} cancelled"));
                return;
            }
            Outcome::Failed(e) => {
                let text = match kind {
                    JobKind::Open => e,
                    JobKind::Export => format!("export failed: {e}"),
                    _ => format!("{label} failed: {e}"),
                };
                self.message(true, text);
                return;
            }
        };
        // A result computed on a model no longer open is dropped.
        if job.doc.is_some_and(|d| d != self.doc.id) {
            return;
        }
        let doc = self.doc.id;
        let took = done_in(job.elapsed());
        match out {
            Output::Opened(path, doc, offer) => {
                self.replace_doc(*doc);
                self.resume = offer;
                self.saved.recent.retain(|p| *p != path);
                self.saved.recent.insert(0, path.clone());
                self.saved.recent.truncate(MAX_RECENT);
                self.message(false, format!("opened {}", path.display()));
            }
            Output::Exported(msg) => self.message(false, msg),
            Output::HwTable(t) => {
                self.results.hw_table = Some(t);
                self.message(false, format!("{label}: {took}"));
            }
            Output::HwResources(t) => {
                self.results.hw_resources = Some(t);
                self.message(false, format!("{label}: {took}"));
            }
            Output::HwTensor(name, r) => {
                self.results.hw_tensor = Some(Keyed {
                    doc,
                    value: (name, r),
                });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Explore(o, p) => {
                self.results.explore = Some((o, p));
                self.message(false, format!("{label}: {took}"));
            }
            Output::Baselines(run) => {
                self.results.baselines = Some(Keyed { doc, value: *run });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Allocated(tensors, a) => {
                self.message(
                    false,
                    format!(
                        "allocated {} tensors to {:.3} bits/weight (target {}, {}); compressing",
                        tensors.len(),
                        a.bits_per_weight,
                        a.target_bpw,
                        a.sensitivity
                    ),
                );
                // Grouped by configuration: each group runs as one job.
                let mut jobs: Vec<(usize, Config)> = tensors.into_iter().zip(a.configs()).collect();
                jobs.sort_by_key(|&(t, c)| (c.c, c.p, c.k, t));
                self.enqueue_with(jobs);
            }
            Output::Quality(r) => {
                self.results.quality = Some(Keyed { doc, value: *r });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Generated(r) => {
                self.results.generate = Some(Keyed { doc, value: *r });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Prepared(key, p) => self.results.prepared = Some((key, p)),
            Output::Calibrated(text, c) => {
                self.message(
                    false,
                    format!(
                        "{label}: {} tensors' input moments, {took}",
                        c.moments.len()
                    ),
                );
                self.results.calibration = Some(Keyed {
                    doc,
                    value: (text, c),
                });
                self.start_next();
            }
            Output::Picked(purpose, path, shown) => match path {
                Some(path) => self.apply(match purpose {
                    Purpose::Open | Purpose::OpenFolder => Command::Open(path),
                    Purpose::Export(kind) => Command::Export { kind, path },
                    Purpose::Calibration => Command::SetCalibration(Some(path)),
                }),
                None if !shown => self.message(true, work::NO_DIALOG),
                None => {}
            },
            Output::Shards(folder, st) => self.take_shards(kind, folder, st),
        }
    }

    /// Takes in a shard folder's progress: opened (shown in the Shards tab) or read again.
    fn take_shards(
        &mut self,
        kind: JobKind,
        folder: PathBuf,
        st: Result<Box<FolderStatus>, String>,
    ) {
        let read_at = std::time::Instant::now();
        if kind == JobKind::Open {
            // Opening reports failures itself, so only a reading is here.
            if let Ok(status) = st {
                self.message(false, format!("opened shard folder {}", folder.display()));
                self.results.shards = Some(ShardView {
                    folder,
                    status,
                    error: None,
                    read_at,
                });
                self.tab = TabId::Shards;
            }
            return;
        }
        // A reading of a folder no longer shown is dropped.
        let Some(v) = self.results.shards.as_mut().filter(|v| v.folder == folder) else {
            return;
        };
        v.read_at = read_at;
        match st {
            Ok(status) => {
                v.status = status;
                v.error = None;
            }
            Err(e) => v.error = Some(e),
        }
    }

    /// Reads the shown shard folder again every [`work::SHARD_REFRESH`] while its tab is open.
    fn refresh_shards(&mut self) {
        let Some(v) = &mut self.results.shards else {
            return;
        };
        if self.tab != TabId::Shards
            || self.jobs.contains_key(&JobKind::Shards)
            || v.read_at.elapsed() < work::SHARD_REFRESH
        {
            return;
        }
        v.read_at = std::time::Instant::now();
        let folder = v.folder.clone();
        self.run(Work::Shards(folder));
    }

    fn poll_compress(&mut self) {
        let Some(job) = &mut self.job else { return };
        let cfg = match &job.calibration {
            Some(c) => format!("{}, calibrated on {}", job.config, file_name(&c.text.path)),
            None => job.config.to_string(),
        };
        let (events, end) = job.poll();
        let took = done_in(job.job.elapsed());
        let loaded = job.loaded;
        for ev in events {
            match ev {
                CompressEvent::Started { .. } => {}
                CompressEvent::Done {
                    tensor,
                    compressed,
                    stats,
                    calibration,
                    ..
                } => {
                    self.generation += 1;
                    self.doc.tensors[tensor].result = Some(Arc::new(TensorResult {
                        compressed,
                        stats: Some(Errors::new(&stats)),
                        stored_relmse: None,
                        generation: self.generation,
                        calibration,
                    }));
                }
                CompressEvent::Failed { tensor, error } => {
                    let name = self.doc.tensors[tensor].name.clone();
                    self.message(true, format!("{name}: {error}"));
                }
                CompressEvent::Unsaved { tensor, error } => {
                    let name = self.doc.tensors[tensor].name.clone();
                    self.message(true, format!("{name} is not kept in the sidecar: {error}"));
                }
            }
        }
        let Some(end) = end else { return };
        self.job = None;
        match end {
            Outcome::Done(()) if loaded > 0 => self.message(
                false,
                format!("compression ({cfg}): {took}, {loaded} tensor(s) read from the sidecar"),
            ),
            Outcome::Done(()) => self.message(false, format!("compression ({cfg}): {took}")),
            Outcome::Cancelled => self.message(false, format!("compression ({cfg}) cancelled")),
            Outcome::Failed(e) => self.message(true, format!("compression ({cfg}) failed: {e}")),
        }
        self.start_next();
        self.save_pending();
    }

    /// Totals over the model, overall and per compression configuration.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for e in &self.doc.tensors {
            let before = e.original_bytes();
            t.bytes_before += before;
            let Some(r) = &e.result else {
                t.bytes_after += before;
                continue;
            };
            let cfg = r.compressed.config;
            let bits = r.bits();
            t.bytes_after += bits.div_ceil(8);
            let i = match t.per_config.iter().position(|(c, _)| *c == cfg) {
                Some(i) => i,
                None => {
                    t.per_config.push((cfg, Group::default()));
                    t.per_config.len() - 1
                }
            };
            for g in [&mut t.all, &mut t.per_config[i].1] {
                g.add(e.len() as u64, bits, r);
            }
        }
        t
    }

    /// The figures of the compressed tensors among `tensors` (a tree group's, say).
    pub fn group(&self, tensors: impl IntoIterator<Item = usize>) -> Group {
        let mut g = Group::default();
        for i in tensors {
            let e = &self.doc.tensors[i];
            if let Some(r) = &e.result {
                g.add(e.len() as u64, r.bits(), r);
            }
        }
        g
    }
}

/// Whole-model figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Bytes of the stored originals.
    pub bytes_before: u64,
    /// Bytes with compressed tensors at their packed size and the rest as stored.
    pub bytes_after: u64,
    /// All compressed tensors.
    pub all: Group,
    /// Compressed tensors by configuration, in the order first met.
    pub per_config: Vec<(Config, Group)>,
}

/// Figures of a group of compressed tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// Tensors.
    pub tensors: usize,
    /// Tensors whose search was calibrated.
    pub calibrated: usize,
    /// Weights.
    pub weights: u64,
    /// Bits of their block records.
    pub bits: u64,
    /// Σ(w−ŵ)² over tensors whose original is known.
    pub sq_err: f64,
    /// Σw² over the same tensors.
    pub sq_norm: f64,
    /// Σ relMSE·weights over tensors known only by their stored figure, and their weights.
    pub stored: (f64, u64),
}

impl Group {
    fn add(&mut self, weights: u64, bits: u64, r: &TensorResult) {
        self.tensors += 1;
        self.calibrated += usize::from(r.calibrated());
        self.weights += weights;
        self.bits += bits;
        match (&r.stats, r.stored_relmse) {
            (Some(s), _) => {
                self.sq_err += s.sq_err;
                self.sq_norm += s.sq_norm;
            }
            (None, Some(m)) => {
                self.stored.0 += m * weights as f64;
                self.stored.1 += weights;
            }
            (None, None) => {}
        }
    }

    /// Bits per weight.
    pub fn bits_per_weight(&self) -> Option<f64> {
        (self.weights > 0).then(|| self.bits as f64 / self.weights as f64)
    }

    /// Relative MSE, and whether it is exact: Σ(w−ŵ)²/Σw² when every original is known,
    /// else the stored per-tensor figures averaged by weight count (with the measured ones).
    pub fn relmse(&self) -> Option<(f64, bool)> {
        let measured = (self.sq_norm > 0.0)
            .then(|| crate::search::compress::relmse(self.sq_err, self.sq_norm));
        let (sum, n) = self.stored;
        match (measured, n) {
            (m, 0) => m.map(|m| (m, true)),
            (None, n) => Some((sum / n as f64, false)),
            (Some(m), n) => {
                let known = self.weights.saturating_sub(n) as f64;
                Some(((m * known + sum) / (known + n as f64), false))
            }
        }
    }
}

/// "done in 3 s" for a job that took `d`.
fn done_in(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 9.95 {
        format!("done in {s:.1} s")
    } else if s < 90.0 {
        format!("done in {s:.0} s")
    } else {
        format!("done in {}", human_duration(d).trim_start_matches("about "))
    }
}

/// The sidecar of model `path`: in `dir` when the user chose one; else beside the model,
/// except for the bundled demo and models in a read-only folder, whose sidecars go to `data`
/// (`None` when there is none: nothing is written into a checkout).
fn sidecar_for(dir: Option<&Path>, data: Option<&Path>, path: &Path) -> Option<Sidecar> {
    if let Some(d) = dir {
        return Some(Sidecar::in_folder(d, path));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Creating a file is the one test of writability that sees ACLs and read-only mounts.
    if loader::is_demo(path) || tempfile::tempfile_in(folder).is_err() {
        return data.map(|d| Sidecar::in_folder(d, path));
    }
    Some(Sidecar::beside(path))
}

/// The user's folder for sidecars that cannot sit beside their model, from the environment
/// `var`: `$XDG_DATA_HOME/seedlm/resume`, else `$HOME/.local/share/seedlm/resume`, else
/// the same under `%LOCALAPPDATA%`. Relative values are ignored, as the XDG spec says.
pub fn user_data_dir(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let abs = |k: &str| var(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = abs("XDG_DATA_HOME")
        .or_else(|| abs("HOME").map(|h| h.join(".local").join("share")))
        .or_else(|| abs("LOCALAPPDATA"))?;
    Some(base.join("seedlm").join("resume"))
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

    #[test]
    fn short_jobs_say_tenths_of_a_second() {
        assert_eq!(done_in(Duration::from_millis(40)), "done in 0.0 s");
        assert_eq!(done_in(Duration::from_millis(420)), "done in 0.4 s");
        assert_eq!(done_in(Duration::from_secs(12)), "done in 12 s");
        assert_eq!(done_in(Duration::from_secs(170)), "done in 3 min");
    }

    #[test]
    fn the_data_folder_follows_xdg_then_home_and_ignores_relative_values() {
        let got = |pairs: &[(&str, &str)]| {
            user_data_dir(|k| pairs.iter().find(|p| p.0 == k).map(|p| OsString::from(p.1)))
        };
        let xdg = [("XDG_DATA_HOME", "/x/data"), ("HOME", "/h")];
        assert_eq!(got(&xdg), Some(PathBuf::from("/x/data/seedlm/resume")));
        let home = [("XDG_DATA_HOME", "rel"), ("HOME", "/h")];
        assert_eq!(
            got(&home),
            Some(PathBuf::from("/h/.local/share/seedlm/resume"))
        );
        assert_eq!(got(&[("HOME", "")]), None);
    }
}
