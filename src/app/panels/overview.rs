//! Overview tab: per-layer error chart, model totals, the queue, and export.

use super::Tab;
use super::{config_name, progress_text};
use crate::app::command::{Command, ExportKind, TabId};
use crate::app::format::human_bytes;
use crate::app::format::human_duration;
use crate::app::state::{AppState, Group};
use crate::app::work::JobKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The overview's own state.
pub struct Overview {
    snr: bool,
    /// Where each export goes: its own file, so one never replaces the other.
    packed_path: String,
    plain_path: String,
    /// The model the export paths were proposed for; another model proposes its own.
    proposed_for: Option<Option<PathBuf>>,
    /// An export whose file exists, waiting for the user to say it may be replaced.
    confirm: Option<(ExportKind, PathBuf)>,
}

impl Default for Overview {
    fn default() -> Self {
        Overview {
            snr: true,
            packed_path: String::new(),
            plain_path: String::new(),
            proposed_for: None,
            confirm: None,
        }
    }
}

/// The export files proposed for the model at `model` (packed, decompressed): beside it, named
/// after it; in the working directory for a model that has no file.
pub fn export_names(model: Option<&Path>) -> (PathBuf, PathBuf) {
    let (dir, stem) = match model {
        Some(p) if p.is_dir() => (
            p.parent().unwrap_or(Path::new(".")).to_path_buf(),
            p.file_name()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned()),
        ),
        Some(p) => (
            p.parent().unwrap_or(Path::new(".")).to_path_buf(),
            p.file_stem()
                .map_or("model".into(), |n| n.to_string_lossy().into_owned()),
        ),
        None => (PathBuf::new(), "model".into()),
    };
    (
        dir.join(format!("{stem}.seedlm.safetensors")),
        dir.join(format!("{stem}.decompressed.safetensors")),
    )
}

impl Tab for Overview {
    fn id(&self) -> TabId {
        TabId::Overview
    }

    fn title(&self) -> &'static str {
        "Overview"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.columns(2, |cols| {
            totals(&mut cols[0], state);
            queue(&mut cols[1], state);
        });
        ui.separator();
        self.export(ui, state, out);
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("Per-layer error:");
            ui.selectable_value(&mut self.snr, true, "SNR (dB)")
                .on_hover_text("−10·log10(relative MSE): higher is better");
            ui.selectable_value(&mut self.snr, false, "relative MSE")
                .on_hover_text("Σ(w−ŵ)²/Σw²: lower is better");
        });
        self.layer_chart(ui, state);
    }
}

fn totals(ui: &mut egui::Ui, state: &AppState) {
    ui.heading("Model");
    let t = state.totals();
    let n = state.doc.tensors.len();
    egui::Grid::new("totals")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            ui.label("Tensors compressed");
            ui.label(format!("{} / {n}", t.all.tensors));
            ui.end_row();
            ui.label("Calibrated").on_hover_text(
                "Compressed tensors searched for the smallest error weighted by their input \
                 channels' mean squares on a calibration text (marked \"cal\" in the tree); \
                 the rest data-free",
            );
            ui.label(format!("{} / {}", t.all.calibrated, t.all.tensors));
            ui.end_row();
            ui.label("Size before")
                .on_hover_text("Stored size of every tensor as opened");
            ui.label(human_bytes(t.bytes_before));
            ui.end_row();
            ui.label("Size after")
                .on_hover_text("Compressed tensors at their packed size, others as stored");
            ui.label(human_bytes(t.bytes_after));
            ui.end_row();
            ui.label("Bits per weight")
                .on_hover_text("Over the compressed tensors");
            ui.label(bits_text(&t.all));
            ui.end_row();
            ui.label("Relative MSE")
                .on_hover_text("Σ(w−ŵ)²/Σw² over the compressed tensors");
            ui.label(relmse_text(&t.all));
            ui.end_row();
        });
    // Mixed settings: each configuration's own figures, so none is averaged away, a row each so
    // that a bit budget's eight or so leave the per-layer chart room below.
    if t.per_config.len() > 1 {
        ui.add_space(ui.spacing().item_spacing.y);
        egui::Grid::new("per_config")
            .num_columns(3)
            .striped(true)
            .show(ui, |ui| {
                ui.strong("Configuration");
                ui.strong("Bits per weight");
                ui.strong("Relative MSE");
                ui.end_row();
                for (cfg, g) in &t.per_config {
                    ui.label(format!("{} ({} tensors)", config_name(*cfg), g.tensors))
                        .on_hover_text(cfg.to_string());
                    ui.label(bits_text(g));
                    ui.label(relmse_text(g));
                    ui.end_row();
                }
            });
    }
}

/// A group's bits per weight, or a dash before any tensor is compressed.
fn bits_text(g: &Group) -> String {
    g.bits_per_weight()
        .map_or("—".into(), |b| format!("{b:.3}"))
}

/// A group's relative MSE and SNR, or a dash before any tensor is compressed.
fn relmse_text(g: &Group) -> String {
    g.relmse().map_or("—".into(), |(r, exact)| {
        let snr = crate::search::compress::snr_db(r);
        if exact {
            format!("{r:.5} ({snr:.2} dB)")
        } else {
            format!("≈{r:.5} ({snr:.2} dB), from the errors stored per tensor")
        }
    })
}

fn queue(ui: &mut egui::Ui, state: &AppState) {
    ui.heading("Queue");
    match &state.job {
        Some(job) => {
            let (done, total) = job.blocks();
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .text(format!("{done}/{total} blocks"))
                    .show_percentage(),
            );
            ui.label(format!("{:.0} blocks/s", job.rate()));
            ui.label(match job.eta() {
                Some(d) => format!("{} left", human_duration(d)),
                None => "estimating time left…".into(),
            });
            if let Some((t, _)) = job.current {
                ui.label(format!("now: {}", state.doc.tensors[t].name));
            }
            ui.label(format!(
                "{} tensor(s) in this job ({}), {} waiting",
                job.tensors.len(),
                job.config,
                state.queue.len()
            ));
            if !state.queue.is_empty()
                && let Some(d) = state.time_left_in_all()
            {
                ui.label(format!("everything queued: {} left", human_duration(d)));
            }
        }
        // Measuring (the calibration's moments, the allocation's menu) is the first phase of a
        // compression: said, not hidden behind "Nothing running" for as long as it takes.
        None => match state.running(JobKind::Calibrate) {
            Some(j) => {
                ui.label(progress_text(j));
                ui.label(format!(
                    "{} tensor(s) wait for the calibration's moments",
                    state.queue.len()
                ));
            }
            None => match state.running(JobKind::Allocate) {
                Some(j) => {
                    ui.label(progress_text(j));
                    ui.label(match state.time_left_in_all() {
                        Some(d) => format!(
                            "Allocate in all (sensitivities, menu samples, compression): {} left",
                            human_duration(d)
                        ),
                        None => "Allocate in all: timed once its menu samples start".into(),
                    })
                    .on_hover_text(
                        "The sensitivities, then each menu configuration on a sample of each \
                         tensor, then each tensor compressed at the configuration chosen \
                         (predicted until chosen: the configuration nearest the budget)",
                    );
                    ui.label("then each tensor is queued here");
                }
                None => {
                    ui.label("Nothing running. Select tensors on the left and press Compress.");
                }
            },
        },
    }
}

impl Overview {
    fn export(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let model = state.doc.path.clone();
        if self.proposed_for.as_ref() != Some(&model) {
            let (packed, plain) = export_names(model.as_deref());
            self.packed_path = packed.display().to_string();
            self.plain_path = plain.display().to_string();
            self.proposed_for = Some(model);
            self.confirm = None;
        }
        let running = state.running(JobKind::Export);
        let rows = [
            (
                ExportKind::Packed,
                "Packed file",
                "Export packed",
                "The SeedLM packed file: seeds, exponents and coefficients",
            ),
            (
                ExportKind::Decompressed,
                "Decompressed file",
                "Export decompressed",
                "A safetensors model with compressed tensors replaced by ŵ",
            ),
        ];
        egui::Grid::new("export").num_columns(3).show(ui, |ui| {
            for (kind, label, button, hint) in rows {
                let text = match kind {
                    ExportKind::Packed => &mut self.packed_path,
                    ExportKind::Decompressed => &mut self.plain_path,
                };
                let l = ui.label(label);
                // Sized, not a desired width: a grid cell caps that at its column's width,
                // which the first frame set to a few characters.
                let size = [420.0, ui.spacing().interact_size.y];
                ui.add_sized(size, egui::TextEdit::singleline(text))
                    .labelled_by(l.id)
                    .on_hover_text(
                        "Destination file; it is written to a temporary file and renamed",
                    );
                let path = PathBuf::from(text.trim());
                let ok = !text.trim().is_empty() && running.is_none();
                if ui
                    .add_enabled(ok, egui::Button::new(button))
                    .on_hover_text(hint)
                    .clicked()
                {
                    if path.exists() {
                        self.confirm = Some((kind, path));
                    } else {
                        self.confirm = None;
                        out.push(Command::Export { kind, path });
                    }
                }
                ui.end_row();
            }
        });
        if let Some((kind, path)) = self.confirm.clone() {
            ui.horizontal(|ui| {
                let full = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    format!("{} exists. Replace it?", full.display()),
                );
                if ui.button("Replace").clicked() {
                    self.confirm = None;
                    out.push(Command::Export { kind, path });
                }
                if ui.button("Keep it").clicked() {
                    self.confirm = None;
                }
            });
        }
        if let Some(j) = running {
            super::job_progress(ui, j, JobKind::Export, out);
        }
    }

    fn layer_chart(&self, ui: &mut egui::Ui, state: &AppState) {
        let series = layer_series(state, self.snr);
        if series.is_empty() {
            // No empty axes: say what would be drawn.
            ui.label("Compressed tensors with a layer number appear here.");
            return;
        }
        let y = if self.snr { "SNR (dB)" } else { "relative MSE" };
        super::layer_plot(ui, "layer_chart", series, y, false);
    }
}

/// The per-layer chart's series: (layer, SNR dB or relative MSE) per kind of tensor, and per
/// configuration when tensors were compressed with different ones.
pub fn layer_series(state: &AppState, snr: bool) -> BTreeMap<String, Vec<[f64; 2]>> {
    let configs: Vec<_> = state.totals().per_config;
    let mut series: BTreeMap<String, Vec<[f64; 2]>> = BTreeMap::new();
    for t in &state.doc.tensors {
        let (Some(layer), Some(r)) = (t.layer(), &t.result) else {
            continue;
        };
        let (Some(rel), Some(db)) = (r.relmse(), r.snr_db()) else {
            continue;
        };
        let name = if configs.len() > 1 {
            format!("{} ({})", t.kind(), config_name(r.compressed.config))
        } else {
            t.kind()
        };
        let y = if snr { db } else { rel };
        series.entry(name).or_default().push([layer as f64, y]);
    }
    series
}
