//! The one place where commands change the app state.

use super::queue::sidecar_for;
use super::{AppState, BlockRef};
use crate::app::command::{Command, ExportKind, SelectMode};
use crate::app::document::Document;
use crate::app::eta::AllocationWork;
use crate::app::export;
use crate::app::jobs::Job;
use crate::app::loader;
use crate::app::work::{self, JobKind, Output, ResumeOffer, Work};
use crate::io::shard;
use std::path::PathBuf;

impl AppState {
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

    pub(super) fn select(&mut self, tensor: usize, mode: SelectMode) {
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

    pub(super) fn open(&mut self, path: PathBuf) {
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
    pub(super) fn start(&mut self, kind: JobKind, job: Job<Output>) {
        if let Some(old) = self.jobs.insert(kind, job) {
            old.cancel();
        }
    }

    /// Whether a job of `kind` runs already (said in a message).
    pub(super) fn refuse(&mut self, kind: JobKind) -> bool {
        let Some(j) = self.jobs.get(&kind) else {
            return false;
        };
        let text = format!("{} is still running", j.label);
        self.message(true, text);
        true
    }

    pub(super) fn run(&mut self, w: Work) {
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

    pub(super) fn replace_doc(&mut self, doc: Document) {
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

    pub(super) fn export(&mut self, kind: ExportKind, path: PathBuf) {
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
}
