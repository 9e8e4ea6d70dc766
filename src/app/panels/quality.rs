//! Quality tab: does the compressed model still work? The in-app compression state (every
//! compressed tensor applied, nothing exported) against the original by their outputs
//! (docs/DESIGN.md §4): model-level figures, the function-space effect of each tensor and layer
//! compressed alone drawn over layers beside the weight-space error, and each tensor's weight
//! error against its effect.

use super::overview::layer_series;
use super::{Tab, hover_line, job_progress, layer_plot, legend_headroom_for, series_color};
use crate::app::command::{Command, TabId};
use crate::app::quality::{self, APP_TOKENS, Report, TextChoice, distance, distance_name};
use crate::app::state::AppState;
use crate::app::work::{JobKind, Work};
use crate::eval::{DEFAULT_CTX, Figures};
use egui_plot::{Legend, PlotPoints, Points};
use std::collections::BTreeMap;

/// Tensors listed in the "most sensitive" table.
const TOP: usize = 10;

/// Longest window offered (the engine refuses one longer than the model's positions).
const MAX_CTX_UI: usize = 32768;

/// The Quality tab's own widget state.
pub struct Quality {
    per_layer: bool,
    /// The text file decoder LMs score, as typed (empty: the bundled text).
    text: String,
    /// Tokens per window (0: the engine's default).
    ctx: usize,
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            per_layer: true,
            text: String::new(),
            ctx: 0,
        }
    }
}

impl Tab for Quality {
    fn id(&self) -> TabId {
        TabId::Quality
    }

    fn title(&self) -> &'static str {
        "Quality"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.label(format!(
            "Runs the original model and its current compressed state (every compressed tensor \
             applied) on the same inputs and compares their outputs: sentence embeddings for \
             encoders (the bundled 50 sentences), next-token distributions for decoder LMs (the \
             first {APP_TOKENS} tokens of the text chosen below). Needs the model's config.json and \
             tokenizer.json beside its weights."
        ));
        self.controls(ui, state, out);
        let Some(report) = state.results.quality.as_ref().map(|k| &k.value) else {
            return;
        };
        if report.key != quality::state_key(&state.doc) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "Computed on an earlier compression state: run again to update.",
            );
        }
        ui.separator();
        figures(ui, report);
        if report.tensors.is_empty() {
            return;
        }
        ui.separator();
        ui.columns(2, |cols| {
            sensitivity_chart(&mut cols[0], report);
            cols[1].strong("Weight space: relative MSE per layer");
            layer_plot(
                &mut cols[1],
                "quality_weight_layers",
                layer_series(state, false),
                "relative MSE",
                true,
            );
        });
        ui.columns(2, |cols| {
            scatter(&mut cols[0], report);
            top_tensors(&mut cols[1], report);
        });
    }
}

impl Quality {
    fn controls(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let compressed = state
            .doc
            .tensors
            .iter()
            .filter(|t| t.result.is_some())
            .count();
        ui.horizontal(|ui| {
            if let Some(j) = state.running(JobKind::Quality) {
                job_progress(ui, j, JobKind::Quality, out);
                let (done, total) = j.progress();
                ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32));
                return;
            }
            ui.checkbox(&mut self.per_layer, "Per-layer sensitivity")
                .on_hover_text(
                    "Also run the original with only one tensor, then only one layer, \
                     compressed: one more network run each",
                );
            let run = ui
                .add_enabled(compressed > 0, egui::Button::new("Run quality check"))
                .on_disabled_hover_text("Compress some tensors first");
            if run.clicked() {
                let text = self.text.trim();
                out.push(Command::Run(Work::Quality {
                    per_layer: self.per_layer,
                    inputs: TextChoice {
                        text: (!text.is_empty()).then(|| text.into()),
                        ctx: (self.ctx > 0).then_some(self.ctx),
                    },
                }));
            }
            ui.label(format!("{compressed} compressed tensor(s)"));
        });
        ui.horizontal(|ui| {
            let l = ui.label("Text");
            ui.add(
                egui::TextEdit::singleline(&mut self.text)
                    .hint_text("the bundled Pride and Prejudice")
                    .desired_width(320.0),
            )
            .labelled_by(l.id)
            .on_hover_text(
                "Decoder LMs: a UTF-8 text file to score, like the model's training data \
                 (a text the model does not fit scores near a uniform guess, and says so)",
            );
            let l = ui.label("Context");
            ui.add(
                egui::DragValue::new(&mut self.ctx)
                    .range(0..=MAX_CTX_UI)
                    .custom_formatter(|v, _| {
                        if v == 0.0 {
                            "default".into()
                        } else {
                            format!("{v:.0}")
                        }
                    }),
            )
            .labelled_by(l.id)
            .on_hover_text(format!(
                "Decoder LMs: tokens per window; default {DEFAULT_CTX}, at most the model's \
                 positions"
            ));
        });
    }
}

/// The model-level figures of the whole compressed state.
fn figures(ui: &mut egui::Ui, report: &Report) {
    ui.strong(format!(
        "All {} compressed tensor(s) applied, against the original",
        report.key.len()
    ));
    if let Figures::Decoder(f) = &report.figures
        && let Some(w) = f.misfit()
    {
        ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {w}"));
    }
    egui::Grid::new("quality_figures")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for f in report.figures.rows() {
                // Capitalised as a grid label; the same name the CLI prints.
                let mut name = f.name.to_string();
                name[..1].make_ascii_uppercase();
                ui.label(name).on_hover_text(f.hint);
                ui.label(f.value);
                ui.end_row();
            }
        });
}

/// The effect of each tensor alone by layer, one series per kind, and of each whole layer.
fn sensitivity_chart(ui: &mut egui::Ui, report: &Report) {
    let name = distance_name(report.family);
    ui.strong(format!(
        "Function space: {name} with only that tensor or layer compressed"
    ));
    let mut series: BTreeMap<String, Vec<[f64; 2]>> = BTreeMap::new();
    for t in &report.tensors {
        if let Some(l) = t.layer {
            let p = [l as f64, distance(&t.figures)];
            series.entry(t.kind.clone()).or_default().push(p);
        }
    }
    if report.layers.iter().any(|l| l.tensors > 1) {
        let whole = report
            .layers
            .iter()
            .map(|l| [l.layer as f64, distance(&l.figures)])
            .collect();
        series.insert("whole layer".into(), whole);
    }
    if series.is_empty() {
        ui.label("Compressed tensors with a layer number appear here.");
        return;
    }
    layer_plot(ui, "quality_layers", series, name, true);
}

/// Each tensor's weight-space relative MSE against its function-space effect (log–log).
fn scatter(ui: &mut egui::Ui, report: &Report) {
    let name = distance_name(report.family);
    ui.strong("Weight error against effect, one marker per tensor");
    let log = |x: f64| x.max(1e-12).log10();
    let kinds: Vec<&str> = {
        let mut k: Vec<&str> = report.tensors.iter().map(|t| t.kind.as_str()).collect();
        k.sort();
        k.dedup();
        k
    };
    let described: Vec<([f64; 2], String)> = report
        .tensors
        .iter()
        .map(|t| {
            let d = distance(&t.figures);
            let text = format!("{}: relative MSE {:.3e}, {name} {d:.3e}", t.name, t.relmse);
            ([log(t.relmse), log(d)], text)
        })
        .collect();
    let height = 320.0;
    let top = legend_headroom_for(described.iter().map(|(p, _)| p[1]), kinds.len(), height);
    let resp = super::page_plot("quality_scatter")
        .height(height)
        .legend(Legend::default())
        .include_y(top.unwrap_or(0.0))
        .x_axis_label("relative MSE (weights)")
        .y_axis_label(name)
        .x_axis_formatter(|m, _| super::log_tick(m))
        .y_axis_formatter(|m, _| super::log_tick(m))
        .show(ui, |plot| {
            for (i, kind) in kinds.iter().enumerate() {
                let pts: Vec<[f64; 2]> = report
                    .tensors
                    .iter()
                    .zip(&described)
                    .filter(|(t, _)| t.kind == *kind)
                    .map(|(_, (p, _))| *p)
                    .collect();
                plot.points(
                    Points::new(*kind, PlotPoints::new(pts))
                        .radius(4.0)
                        .color(series_color(i)),
                );
            }
        });
    hover_line(ui, &resp, &described);
}

/// The tensors whose compression alone moves the outputs most.
fn top_tensors(ui: &mut egui::Ui, report: &Report) {
    let name = distance_name(report.family);
    ui.strong(format!(
        "Most sensitive tensors ({name} when compressed alone)"
    ));
    let mut rows: Vec<_> = report.tensors.iter().collect();
    rows.sort_by(|a, b| distance(&b.figures).total_cmp(&distance(&a.figures)));
    egui::Grid::new("quality_top").striped(true).show(ui, |ui| {
        for h in ["tensor", "relative MSE", name] {
            ui.strong(h);
        }
        ui.end_row();
        for t in rows.into_iter().take(TOP) {
            ui.label(&t.name);
            ui.label(format!("{:.3e}", t.relmse));
            ui.label(format!("{:.3e}", distance(&t.figures)));
            ui.end_row();
        }
    });
}
