//! The desktop app (egui). It drives the engine through background jobs and never blocks.
//!
//! [`state::AppState`] holds everything; panels (`panels/`, one file each) read it and return
//! [`command::Command`]s, which [`Studio::show`] applies after drawing. Formatting helpers that
//! panels and jobs share live in [`mod@format`], so that neither imports the other.
//!
//! A new tab with a background job takes these edits:
//! 1. `panels/<name>.rs`: a struct implementing [`panels::Tab`], listed in
//!    [`panels::default_tabs`], with a [`command::TabId`] variant for its [`panels::Tab::id`].
//! 2. [`work::Work`]: a variant with what the job needs, and its arm in [`work::Work::kind`].
//! 3. [`work::JobKind`]: a variant, if the job is not one of an existing kind (one of each
//!    kind runs at a time).
//! 4. [`work::Output`]: a variant for what the job hands back.
//! 5. [`work::spawn`]: the arm that reads the document and starts `Job::spawn` with the job's
//!    body (an engine call; a long body goes in a file of its own, as `quality.rs`,
//!    `allocate.rs`, `baselines.rs` and `prepare.rs`).
//! 6. [`work::Results`]: a field for the result, and its arm in `AppState::finish`
//!    (`state/finish.rs`), which stores the [`work::Output`] there and posts the message.
//! 7. The tab pushes [`command::Command::Run`] with the work, shows `state.running(kind)`
//!    with [`panels::job_progress`], and draws its result from `state.results`.
//!
//! May use: every engine folder. Nothing in the engine uses it.

pub mod allocate;
pub mod baselines;
pub mod command;
pub mod document;
pub mod eta;
pub mod export;
pub mod format;
pub mod generate;
pub mod heatmap;
pub mod jobs;
pub mod loader;
pub mod panels;
pub mod prepare;
pub mod quality;
pub mod state;
pub mod work;

use command::Command;
use panels::{Tab, menu::MenuPanel, settings::SettingsPanel, tree::TreePanel};
use state::AppState;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Frame interval of an animation a tab plays (the LFSR walkthrough).
const ANIMATION: Duration = Duration::from_millis(50);

/// The app: its state, the side panels and the central tabs.
pub struct Studio {
    /// Everything panels read; public so tests can inspect it.
    pub state: AppState,
    menu: MenuPanel,
    tree: TreePanel,
    settings: SettingsPanel,
    tabs: Vec<Box<dyn Tab>>,
    /// Time the UI thread spends on frames (shown in the status bar).
    load: UiLoad,
    /// The window title last sent.
    title: String,
    /// Tensors to compress once the model being opened is open (`gui --compress`).
    pending: Vec<String>,
    pending_view: Option<String>,
    /// Frames drawn so far.
    frames: u64,
    /// The measurement of `gui --exit-when-done`, when asked for.
    bench: Option<Bench>,
    /// Where a request to close the window stands while work runs.
    quit: Quit,
}

/// A request to close the window while work runs: asked about first, as it stops the work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quit {
    /// No request pending.
    #[default]
    None,
    /// The window asked to close; the user is asked to confirm.
    Asking,
    /// The user confirmed: the next close goes through.
    Confirmed,
}

/// What `gui --exit-when-done` measures: the compression `gui --compress` started, from the
/// frame that started it to the frame that saw it end.
#[derive(Debug, Default)]
struct Bench {
    /// When the compression started, the UI thread's CPU time and the frame count then.
    start: Option<(Instant, Option<Duration>, u64)>,
    /// The tensors it compresses.
    tensors: Vec<usize>,
    /// The tensor whose Tensor-tab view it waits for.
    view: Option<usize>,
    /// The summary, once the work has ended.
    summary: Option<Summary>,
}

/// The one-line summary `seedlm gui --exit-when-done` prints (for benchmarks and tests).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Blocks compressed.
    pub blocks: u64,
    /// Wall time of the work asked for: the compression, and the first view of `--view`'s
    /// tensor (its heatmaps and histograms ready).
    pub seconds: f64,
    /// CPU time the UI thread took meanwhile (`None` where the OS does not tell).
    pub ui_cpu_seconds: Option<f64>,
    /// Frames drawn meanwhile.
    pub frames: u64,
}

impl Summary {
    /// Blocks compressed per second of wall time.
    pub fn blocks_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.blocks as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The summary as one line of JSON, with the rates derived from it.
    pub fn line(&self) -> String {
        let per_s = |n: f64| {
            if self.seconds > 0.0 {
                n / self.seconds
            } else {
                0.0
            }
        };
        serde_json::json!({
            "blocks": self.blocks,
            "seconds": self.seconds,
            "blocks_per_s": self.blocks_per_s(),
            "ui_cpu_seconds": self.ui_cpu_seconds,
            "ui_core_share": self.ui_cpu_seconds.map(per_s),
            "frames": self.frames,
            "frames_per_s": per_s(self.frames as f64),
        })
        .to_string()
    }
}

/// CPU time (user and system) the calling thread has used, from Linux's
/// `/proc/thread-self/schedstat` (nanoseconds on a CPU); `None` elsewhere.
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// The UI thread's share of a core: the time spent drawing frames over the last second.
#[derive(Debug, Default)]
pub struct UiLoad {
    frames: std::collections::VecDeque<(Instant, Duration)>,
}

impl UiLoad {
    /// The window the share is taken over.
    const WINDOW: Duration = Duration::from_secs(1);

    /// Records a frame that started at `start` and took `took`.
    pub fn record(&mut self, start: Instant, took: Duration) {
        self.frames.push_back((start, took));
        while self
            .frames
            .front()
            .is_some_and(|(t, _)| start.duration_since(*t) > Self::WINDOW)
        {
            self.frames.pop_front();
        }
    }

    /// Fraction of one core the frames of the last second took (an idle app draws none).
    pub fn share(&self, now: Instant) -> f64 {
        let busy: Duration = self
            .frames
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= Self::WINDOW)
            .map(|(_, d)| *d)
            .sum();
        busy.as_secs_f64() / Self::WINDOW.as_secs_f64()
    }

    /// The last frame's time.
    pub fn last(&self) -> Duration {
        self.frames.back().map_or(Duration::ZERO, |(_, d)| *d)
    }
}

impl Studio {
    /// The app opening `path` in the background, or showing the demo model.
    pub fn new(path: Option<PathBuf>) -> Self {
        match path {
            Some(p) => {
                let empty = document::Document::new(None, "no model".into(), Vec::new());
                let mut studio = Studio::with_document(empty);
                studio.state.apply(Command::Open(p));
                studio
            }
            None => {
                let empty = document::Document::new(None, "no model".into(), Vec::new());
                let mut studio = Studio::with_document(empty);
                // The demo's sidecar, if any, is offered as an opened model's is.
                studio.state.apply(Command::OpenDemo);
                studio
            }
        }
    }

    /// The app showing `doc`.
    pub fn with_document(doc: document::Document) -> Self {
        Studio {
            state: AppState::new(doc),
            menu: MenuPanel::default(),
            tree: TreePanel::default(),
            settings: SettingsPanel::default(),
            tabs: panels::default_tabs(),
            load: UiLoad::default(),
            title: String::new(),
            pending: Vec::new(),
            pending_view: None,
            frames: 0,
            bench: None,
            quit: Quit::None,
        }
    }

    /// For benchmarks and tests (`gui --exit-when-done`): once the model is open and the
    /// tensors of [`Studio::compress_when_open`] are compressed, prints a [`Summary`] of that
    /// compression on stdout and closes the window.
    pub fn exit_when_done(&mut self) {
        self.bench = Some(Bench::default());
    }

    /// The summary of `--exit-when-done`, once the work has ended.
    pub fn summary(&self) -> Option<&Summary> {
        self.bench.as_ref()?.summary.as_ref()
    }

    /// Compresses the tensors named `names` with the current settings as soon as no model is
    /// opening any more (at once if none is); names the model lacks are said in a message.
    pub fn compress_when_open(&mut self, names: Vec<String>) {
        self.pending = names;
    }

    /// Shows the tensor named `name` on the Tensor tab as soon as no model is opening any more
    /// (with [`Studio::exit_when_done`], the summary waits for its first view).
    pub fn view_when_open(&mut self, name: String) {
        self.pending_view = Some(name);
    }

    fn start_pending(&mut self) {
        if self.state.running(work::JobKind::Open).is_some() {
            return;
        }
        if let Some(name) = self.pending_view.take() {
            match self.state.doc.find(&name) {
                Some(i) => {
                    self.state.apply(Command::Select {
                        tensor: i,
                        mode: command::SelectMode::Replace,
                    });
                    self.state.apply(Command::ShowTab(command::TabId::Tensor));
                    if let Some(b) = &mut self.bench {
                        b.view = Some(i);
                    }
                }
                None => {
                    let text = format!("--view: no tensor '{name}' in {}", self.state.doc.title);
                    self.state.message(true, text);
                }
            }
        }
        if self.pending.is_empty() {
            return;
        }
        let mut found = Vec::new();
        for name in std::mem::take(&mut self.pending) {
            match self.state.doc.find(&name) {
                Some(i) => found.push(i),
                None => {
                    let text =
                        format!("--compress: no tensor '{name}' in {}", self.state.doc.title);
                    self.state.message(true, text);
                }
            }
        }
        if let Some(b) = &mut self.bench {
            b.tensors = found.clone();
        }
        if !found.is_empty() {
            self.state.apply(Command::Compress(found));
        }
    }

    /// Starts the measurement of `--exit-when-done` once the model is open (and the
    /// compression asked for has started), and ends it, closing the window, when all work has.
    fn measure(&mut self, ctx: &egui::Context) {
        let Some(b) = &mut self.bench else { return };
        if b.summary.is_some()
            || !self.pending.is_empty()
            || self.state.running(work::JobKind::Open).is_some()
        {
            return;
        }
        let Some((at, cpu, frames)) = b.start else {
            b.start = Some((Instant::now(), thread_cpu_time(), self.frames));
            // With nothing to compress no job would wake the next frame, which ends it.
            ctx.request_repaint();
            return;
        };
        let viewed = b.view.is_none_or(|i| {
            let r = &self.state.results;
            r.prepared.as_ref().is_some_and(|(k, _)| k.tensor == i)
        });
        if self.state.busy() || !viewed {
            return;
        }
        let doc = &self.state.doc;
        let blocks = b
            .tensors
            .iter()
            .filter_map(|&i| doc.tensors.get(i)?.result.as_ref())
            .map(|r| r.compressed.num_blocks() as u64)
            .sum();
        let ui_cpu = thread_cpu_time().zip(cpu).map(|(now, then)| now - then);
        let summary = Summary {
            blocks,
            seconds: at.elapsed().as_secs_f64(),
            ui_cpu_seconds: ui_cpu.map(|d| d.as_secs_f64()),
            frames: self.frames - frames,
        };
        println!("{}", summary.line());
        b.summary = Some(summary);
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    /// Draws one frame and applies what the panels asked for.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        let ctx = ui.ctx().clone();
        if self.state.repaint.is_none() {
            self.state.repaint = Some(ctx.clone());
        }
        self.frames += 1;
        self.state.poll();
        self.start_pending();
        self.measure(&ctx);
        let theme = if self.state.saved.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        };
        if ctx.theme() != theme {
            ctx.set_theme(theme);
        }
        let mut out = Vec::new();
        // Files dropped on the window open like File → Open.
        for f in ctx.input(|i| i.raw.dropped_files.clone()) {
            out.push(Command::Open(f.path().to_path_buf()));
        }
        let state = &self.state;
        egui::Panel::top("menu").show(ui, |ui| self.menu.ui(ui, state, &mut out));
        if let Some(offer) = &state.resume {
            egui::Panel::top("resume").show(ui, |ui| resume_banner(ui, offer, &mut out));
        }
        let load = &self.load;
        egui::Panel::bottom("status").show(ui, |ui| panels::status::ui(ui, state, load, &mut out));
        egui::Panel::left("tree")
            .resizable(true)
            .default_size(430.0)
            .show(ui, |ui| {
                self.settings.ui(ui, state, &mut out);
                ui.separator();
                self.tree.ui(ui, state, &mut out);
            });
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                for tab in &self.tabs {
                    if ui
                        .selectable_label(state.tab == tab.id(), tab.title())
                        .clicked()
                    {
                        out.push(Command::ShowTab(tab.id()));
                    }
                }
            });
            ui.separator();
            if let Some(tab) = self.tabs.iter_mut().find(|t| t.id() == state.tab) {
                // Every tab scrolls, so nothing is pushed out of a small window; the page is
                // as tall as the view for tabs that size their plots to the height there is.
                egui::ScrollArea::vertical()
                    .id_salt("tab page")
                    .auto_shrink(false)
                    .show(ui, |ui| tab.ui(ui, state, &mut out));
            }
        });
        if ctx.input(|i| !i.raw.hovered_files.is_empty()) {
            drop_hint(&ctx);
        }
        self.confirm_quit(&ctx);
        for cmd in out {
            self.state.apply(cmd);
        }
        let title = self.window_title();
        if self.title != title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        // Jobs wake the UI when they send something or end; progress counters change without
        // telling, so they are looked at a few times a second while work runs.
        if self.state.busy() {
            ctx.request_repaint_after(jobs::PROGRESS_REPAINT);
        }
        // An open Shards tab wakes itself to read its folder again.
        if self.state.tab == command::TabId::Shards && self.state.results.shards.is_some() {
            ctx.request_repaint_after(work::SHARD_REFRESH);
        }
        if self
            .tabs
            .iter()
            .any(|t| t.id() == self.state.tab && t.busy())
        {
            ctx.request_repaint_after(ANIMATION);
        }
        self.load.record(started, started.elapsed());
    }

    /// The window title: the model and its tensor count, e.g.
    /// `SeedLM Studio — TinyLlama — 201 tensors`, and how many are compressed once some are
    /// (`— 7 compressed`).
    pub fn window_title(&self) -> String {
        let doc = &self.state.doc;
        let n = doc.tensors.len() + doc.extra.len();
        let done = doc.tensors.iter().filter(|t| t.result.is_some()).count();
        let title = format!("SeedLM Studio — {} — {n} tensors", doc.title);
        if done > 0 {
            format!("{title} — {done} compressed")
        } else {
            title
        }
    }

    /// Where a request to close the window stands.
    pub fn quit(&self) -> Quit {
        self.quit
    }

    /// Holds a close request back while work runs (`ViewportCommand::CancelClose`) and asks
    /// whether to stop it; quitting mid-job lost the work without a word.
    fn confirm_quit(&mut self, ctx: &egui::Context) {
        let unfinished = self.state.unfinished();
        if ctx.input(|i| i.viewport().close_requested()) {
            if self.quit == Quit::Confirmed || unfinished.is_empty() {
                return;
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.quit = Quit::Asking;
        }
        if self.quit != Quit::Asking {
            return;
        }
        if unfinished.is_empty() {
            // The work ended while the question was up: nothing left to lose.
            self.quit = Quit::Confirmed;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        egui::Modal::new(egui::Id::unique("confirm quit")).show(ctx, |ui| {
            ui.heading("Quit while work runs?");
            ui.label(format!("Quitting stops: {}.", unfinished.join(", ")));
            ui.label(
                "Tensors already compressed stay in the model's resume sidecar, if it keeps one.",
            );
            ui.horizontal(|ui| {
                if ui.button("Quit anyway").clicked() {
                    self.quit = Quit::Confirmed;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                if ui.button("Keep working").clicked() {
                    self.quit = Quit::None;
                }
            });
        });
    }

    /// Whether background work runs or the shown tab animates.
    pub fn busy(&self) -> bool {
        let tab = self.tabs.iter().find(|t| t.id() == self.state.tab);
        self.state.busy() || tab.is_some_and(|t| t.busy())
    }
}

/// The offer of an earlier session's sidecar: what it holds, Resume and Discard.
fn resume_banner(ui: &mut egui::Ui, offer: &work::ResumeOffer, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        ui.label(offer.text());
        if ui.button("Resume").clicked() {
            out.push(Command::Resume);
        }
        if ui.button("Discard").clicked() {
            out.push(Command::DiscardResume);
        }
    });
}

/// Darkens the window and says what dropping will do while files are dragged over it.
fn drop_hint(ctx: &egui::Context) {
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop_hint"),
    ));
    let rect = ctx.content_rect();
    painter.rect_filled(rect, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        "Drop a model, model directory, packed file or shard folder to open it",
        egui::FontId::proportional(24.0),
        egui::Color32::WHITE,
    );
}

impl eframe::App for Studio {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.state.saved.store(storage);
    }
}

/// Opens the app on `path`, or on the bundled demo model, and compresses the tensors named in
/// `compress` once it is open (and shows `view` on the Tensor tab); with `exit_when_done`
/// (benchmarks, tests), prints a [`Summary`] of that and quits once it is done.
pub fn run(
    path: Option<PathBuf>,
    compress: Vec<String>,
    view: Option<String>,
    exit_when_done: bool,
) -> anyhow::Result<ExitCode> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Glow,
        viewport: egui::ViewportBuilder::default()
            .with_title("SeedLM Studio")
            .with_inner_size([1500.0, 950.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "SeedLM Studio",
        options,
        Box::new(move |cc| {
            let mut studio = Studio::new(path);
            studio.compress_when_open(compress);
            if let Some(v) = view {
                studio.view_when_open(v);
            }
            if exit_when_done {
                studio.exit_when_done();
            }
            if let Some(s) = cc.storage {
                studio.state.saved = state::Saved::load(s);
            }
            Ok(Box::new(studio))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot start the app: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_load_is_the_share_of_the_last_second() {
        let mut load = UiLoad::default();
        let t0 = Instant::now();
        assert_eq!(load.share(t0), 0.0);
        // Ten frames of 20 ms over one second: a fifth of a core.
        for i in 0..10 {
            load.record(
                t0 + Duration::from_millis(100 * i),
                Duration::from_millis(20),
            );
        }
        let now = t0 + Duration::from_millis(950);
        assert!((load.share(now) - 0.2).abs() < 1e-9, "{}", load.share(now));
        assert_eq!(load.last(), Duration::from_millis(20));
        // Two seconds later with no frame drawn, the app is idle.
        assert_eq!(load.share(t0 + Duration::from_secs(3)), 0.0);
    }

    #[test]
    fn the_window_title_names_the_model_and_its_tensor_count() {
        // The demo model (all-MiniLM-L6-v2) has 103 float tensors and one I64 buffer, all of
        // which export writes.
        let studio = Studio::with_document(loader::demo());
        let title = studio.window_title();
        assert!(title.starts_with("SeedLM Studio — "), "{title}");
        assert!(title.ends_with(" — 104 tensors"), "{title}");
    }
}
