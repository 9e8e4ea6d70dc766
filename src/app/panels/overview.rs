//! Overview tab: per-layer error chart, model totals, the queue, and export.

use super::Tab;
use super::config_name;
use crate::app::command::{Command, ExportKind, TabId};
use crate::app::format::human_bytes;
use crate::app::jobs::human_duration;
use crate::app::state::{AppState, Group};
use crate::app::work::JobKind;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The overview's own state.
pub struct Overview {
    snr: bool,
    export_path: String,
}

impl Default for Overview {
    fn default() -> Self {
        Overview {
            snr: true,
            export_path: "model.seedlm.safetensors".into(),
        }
    }
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
            ui.label("Size before")
                .on_hover_text("Stored size of every tensor as opened");
            ui.label(human_bytes(t.bytes_before));
            ui.end_row();
            ui.label("Size after")
                .on_hover_text("Compressed tensors at their packed size, others as stored");
            ui.label(human_bytes(t.bytes_after));
            ui.end_row();
            group_rows(ui, "", &t.all);
            // Mixed settings: each configuration's own figures, so none is averaged away.
            if t.per_config.len() > 1 {
                for (cfg, g) in &t.per_config {
                    ui.strong(format!("{} ({} tensors)", config_name(*cfg), g.tensors));
                    ui.label(cfg.to_string());
                    ui.end_row();
                    group_rows(ui, "  ", g);
                }
            }
        });
}

fn group_rows(ui: &mut egui::Ui, indent: &str, g: &Group) {
    ui.label(format!("{indent}Bits per weight"))
        .on_hover_text("Over the compressed tensors");
    ui.label(
        g.bits_per_weight()
            .map_or("—".into(), |b| format!("{b:.3}")),
    );
    ui.end_row();
    ui.label(format!("{indent}Relative MSE"))
        .on_hover_text("Σ(w−ŵ)²/Σw² over the compressed tensors");
    ui.label(g.relmse().map_or("—".into(), |(r, exact)| {
        let snr = crate::search::compress::snr_db(r);
        if exact {
            format!("{r:.5} ({snr:.2} dB)")
        } else {
            format!("≈{r:.5} ({snr:.2} dB), from the errors stored per tensor")
        }
    }));
    ui.end_row();
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
            ui.label(format!("{:.0} blocks/s", job.job.rate()));
            ui.label(match job.job.eta() {
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
        }
        None => {
            ui.label("Nothing running. Select tensors on the left and press Compress.");
        }
    }
}

impl Overview {
    fn export(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let l = ui.label("Export to");
            ui.add(egui::TextEdit::singleline(&mut self.export_path).desired_width(320.0))
                .labelled_by(l.id)
                .on_hover_text("Destination file; it is written to a temporary file and renamed");
            let path = PathBuf::from(self.export_path.trim());
            let running = state.running(JobKind::Export);
            let ok = !self.export_path.trim().is_empty() && running.is_none();
            if ui
                .add_enabled(ok, egui::Button::new("Export packed"))
                .on_hover_text("The SeedLM packed file: seeds, exponents and coefficients")
                .clicked()
            {
                out.push(Command::Export {
                    kind: ExportKind::Packed,
                    path: path.clone(),
                });
            }
            if ui
                .add_enabled(ok, egui::Button::new("Export decompressed"))
                .on_hover_text("A safetensors model with compressed tensors replaced by ŵ")
                .clicked()
            {
                out.push(Command::Export {
                    kind: ExportKind::Decompressed,
                    path,
                });
            }
            if let Some(j) = running {
                super::job_progress(ui, j, JobKind::Export, out);
            }
        });
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
