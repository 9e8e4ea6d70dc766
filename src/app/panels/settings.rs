//! Compression settings and actions: preset or custom (C, P, K) with the bit budget shown live,
//! the calibration text; compress selected / all; cancel.

use super::{job_progress, progress_text};
use crate::app::command::Command;
use crate::app::state::AppState;
use crate::app::work::{JobKind, Purpose, Work};
use crate::core::config::Config;
use crate::study::allocate::MENU;
use std::path::PathBuf;

/// Largest K offered in the app: the exact search visits 2^K − 1 seeds per block.
const MAX_K_UI: u32 = 20;

/// The custom fields (kept while a preset is chosen) and the bit budget to allocate.
pub struct SettingsPanel {
    custom: bool,
    c: usize,
    p: usize,
    k: u32,
    target_bpw: f64,
    sidecar_dir: String,
    /// The calibration text's path as typed, and the setting it was last made from or sent as
    /// (so a path picked in a dialog replaces what was typed).
    calibration: String,
    calibration_seen: Option<PathBuf>,
}

impl Default for SettingsPanel {
    fn default() -> Self {
        let Config { c, p, k } = Config::FOUR_BIT;
        SettingsPanel {
            custom: false,
            c,
            p,
            k,
            target_bpw: 4.0,
            sidecar_dir: String::new(),
            calibration: String::new(),
            calibration_seen: None,
        }
    }
}

impl SettingsPanel {
    /// Draws the settings.
    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.heading("Compression");
        let cur = state.config;
        // The paper's presets (with RTL), then the larger-P points (software only).
        let hardware = [("4-bit", Config::FOUR_BIT), ("3-bit", Config::THREE_BIT)];
        let presets: Vec<(&str, Config, String)> = hardware
            .into_iter()
            .map(|(name, cfg)| (name, cfg, preset_tip(cfg, "the paper's preset, with RTL")))
            .chain(Config::LARGER_P.into_iter().map(|(name, cfg)| {
                let why = "lower error than the paper's preset on weights, slower to \
                           compress; software only (no RTL datapath)";
                (name, cfg, preset_tip(cfg, why))
            }))
            .collect();
        if !presets.iter().any(|(_, cfg, _)| *cfg == cur) {
            // Settings may come from elsewhere (e.g. another tab): show them as custom.
            self.custom = true;
            Config {
                c: self.c,
                p: self.p,
                k: self.k,
            } = cur;
        }
        ui.horizontal_wrapped(|ui| {
            for (name, cfg, tip) in presets {
                if ui
                    .selectable_label(!self.custom && cur == cfg, name)
                    .on_hover_text(tip)
                    .clicked()
                {
                    self.custom = false;
                    out.push(Command::SetConfig(cfg));
                }
            }
            if ui
                .selectable_label(self.custom, "custom")
                .on_hover_text("Choose C (block size), P (coefficients) and K (LFSR bits)")
                .clicked()
            {
                self.custom = true;
                self.push_custom(out);
            }
        });
        if self.custom {
            let mut changed = false;
            egui::Grid::new("custom_cfg").num_columns(2).show(ui, |ui| {
                for (name, tip, value, range) in [
                    (
                        "C",
                        "weights per block",
                        &mut self.c,
                        1..=crate::core::config::MAX_C,
                    ),
                    (
                        "P",
                        "coefficients per block (basis columns)",
                        &mut self.p,
                        1..=crate::core::config::MAX_P,
                    ),
                ] {
                    let l = ui.label(name).on_hover_text(tip);
                    changed |= ui
                        .add(egui::DragValue::new(value).range(range))
                        .labelled_by(l.id)
                        .on_hover_text(tip)
                        .changed();
                    ui.end_row();
                }
                let l = ui
                    .label("K")
                    .on_hover_text("LFSR register bits; 2^K − 1 seeds");
                changed |= ui
                    .add(egui::DragValue::new(&mut self.k).range(2..=MAX_K_UI))
                    .labelled_by(l.id)
                    .on_hover_text("LFSR register bits; the exact search tries 2^K − 1 seeds")
                    .changed();
                ui.end_row();
            });
            if changed {
                self.push_custom(out);
            }
            if let Err(e) = Config::new(self.c, self.p, self.k) {
                ui.colored_label(ui.visuals().error_fg_color, e.to_string());
            }
        }
        ui.label(format!("{cur}, {} bits per block", cur.block_bits()))
            .on_hover_text(
                "A block costs K + 4 + 4P bits (seed, exponent, coefficients) for C weights",
            );
        self.calibration_ui(ui, state, out);
        ui.horizontal(|ui| {
            let sel: Vec<usize> = state.selection.iter().copied().collect();
            if ui
                .add_enabled(
                    !sel.is_empty(),
                    egui::Button::new(format!("Compress selected ({})", sel.len())),
                )
                .on_hover_text(
                    "Compress the selected tensors with these settings, replacing earlier results",
                )
                .clicked()
            {
                out.push(Command::Compress(sel));
            }
            if ui
                .button("Compress all")
                .on_hover_text(
                    "Compress every linear-layer weight (2-D float tensors other than embeddings, \
                     norms and the LM head) with these settings",
                )
                .clicked()
            {
                let all = state.doc.tensors.iter().enumerate();
                out.push(Command::Compress(
                    all.filter(|(_, t)| t.compressible)
                        .map(|(i, _)| i)
                        .collect(),
                ));
            }
        });
        self.allocate_ui(ui, state, out);
        egui::CollapsingHeader::new("Resume sidecar")
            .id_salt("sidecar")
            .show(ui, |ui| self.sidecar_ui(ui, state, out));
        if ui
            .add_enabled(
                state.job.is_some()
                    || !state.queue.is_empty()
                    || state.running(JobKind::Calibrate).is_some(),
                egui::Button::new("Cancel"),
            )
            .on_hover_text(
                "Stop the running compression (and the calibration it waits for); tensors \
                 keep their previous state",
            )
            .clicked()
        {
            out.push(Command::Cancel);
        }
        // Drawn idle too: a bar that appeared with a job pushed the tree down by its height
        // just as a click was landing on it.
        match &state.job {
            Some(job) => {
                let (done, total) = job.blocks();
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .text(format!("{done}/{total} blocks")),
                );
            }
            None => {
                // A progress bar's height (egui's default for one).
                let size = egui::vec2(ui.available_width(), ui.spacing().interact_size.y);
                ui.add_sized(
                    size,
                    egui::Label::new(egui::RichText::new("no compression running").weak()),
                );
            }
        }
    }

    /// The calibration text: none (data-free search) or a text file whose input moments weight
    /// each linear layer's search, typed or picked in a dialog.
    fn calibration_ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        if state.calibration != self.calibration_seen {
            self.calibration_seen = state.calibration.clone();
            self.calibration = state
                .calibration
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string());
        }
        let tip = "Search each linear layer's blocks for the smallest error weighted by its \
                   input channels' mean squares on this text (as compress --calibrate), \
                   measured once per model and text before the first tensor; empty: none, the \
                   data-free search. Never calibrate on the text you evaluate on.";
        ui.horizontal(|ui| {
            let l = ui.label("Calibration text").on_hover_text(tip);
            // Right to left, so the field takes what the button leaves and the panel never grows.
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let picking = state.running(JobKind::Dialog).is_some();
                if ui
                    .add_enabled(!picking, egui::Button::new("Browse…"))
                    .on_hover_text("Choose the calibration text in a file dialog")
                    .clicked()
                {
                    out.push(Command::Run(Work::Dialog(Purpose::Calibration)));
                }
                let edit = ui
                    .add(
                        egui::TextEdit::singleline(&mut self.calibration)
                            .hint_text("none (data-free)")
                            .desired_width(ui.available_width()),
                    )
                    .labelled_by(l.id)
                    .on_hover_text(tip);
                if edit.changed() {
                    let path = PathBuf::from(self.calibration.trim());
                    let want = path.is_file().then_some(path);
                    self.calibration_seen = want.clone();
                    out.push(Command::SetCalibration(want));
                }
            });
        });
        let typed = self.calibration.trim();
        if !typed.is_empty() && state.calibration.is_none() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "not a file: compressions stay data-free",
            );
        }
        if let Some(j) = state.running(JobKind::Calibrate) {
            let (done, total) = j.progress();
            ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32))
                .on_hover_text(progress_text(j));
            ui.label(progress_text(j));
        }
    }

    /// The bit budget: a configuration per tensor from the menu so that the selected tensors
    /// (or every linear layer) average at most B bits, then each compressed with its own.
    fn allocate_ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let sel: Vec<usize> = if state.selection.is_empty() {
            let all = state.doc.tensors.iter().enumerate();
            all.filter(|(_, t)| t.compressible)
                .map(|(i, _)| i)
                .collect()
        } else {
            state.selection.iter().copied().collect()
        };
        let (lo, hi) = menu_range();
        ui.horizontal(|ui| {
            if let Some(j) = state.running(JobKind::Allocate) {
                job_progress(ui, j, JobKind::Allocate, out);
                return;
            }
            let clicked = ui
                .add_enabled(
                    !sel.is_empty(),
                    egui::Button::new(format!("Allocate {} tensor(s) to", sel.len())),
                )
                .on_hover_text(
                    "Measure every configuration of the bit-budget menu on a sample of each \
                     tensor (the selected ones, or every linear layer if none is selected), \
                     choose one per tensor so that they average at most this many bits per \
                     weight with the least summed effect, then compress each with its own. \
                     The effect is each tensor's error weighed by how much it moves the \
                     model's outputs on random words of its own vocabulary (data-free), or the \
                     error alone when the model cannot be run. Change a tensor's choice by \
                     selecting it and compressing it with another preset.",
                )
                .clicked();
            ui.add(
                egui::DragValue::new(&mut self.target_bpw)
                    .range(lo..=hi)
                    .speed(0.01)
                    .fixed_decimals(2),
            )
            .on_hover_text("The budget: packed bits per compressed weight, at most");
            ui.label("bits/weight");
            if clicked {
                out.push(Command::Run(Work::Allocate {
                    tensors: sel,
                    target_bpw: self.target_bpw,
                }));
            }
        });
    }

    /// Where compressed tensors are kept as they finish: beside each model, or in a folder
    /// the user picks (a model on a read-only or shared disk).
    fn sidecar_ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.label(match &state.saved.sidecar_dir {
            Some(d) => format!("Kept in {}", d.display()),
            None => "Kept beside each model (MODEL.seedlm-resume)".into(),
        });
        if let (None, Some(d)) = (&state.saved.sidecar_dir, &state.data_dir) {
            ui.weak(format!(
                "The demo's and those of models in read-only folders: in {}",
                d.display()
            ));
        }
        if ui
            .add_enabled(
                state.saved.sidecar_dir.is_some(),
                egui::Button::new("Beside each model"),
            )
            .clicked()
        {
            out.push(Command::SetSidecarDir(None));
        }
        ui.horizontal(|ui| {
            let l = ui.label("Sidecar folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.sidecar_dir)
                    .hint_text("a folder for every model's sidecar"),
            )
            .labelled_by(l.id);
            let dir = PathBuf::from(self.sidecar_dir.trim());
            if ui
                .add_enabled(dir.is_dir(), egui::Button::new("Use folder"))
                .on_disabled_hover_text("Type the path of an existing folder")
                .clicked()
            {
                out.push(Command::SetSidecarDir(Some(dir)));
            }
        });
    }

    fn push_custom(&self, out: &mut Vec<Command>) {
        if let Ok(cfg) = Config::new(self.c, self.p, self.k) {
            out.push(Command::SetConfig(cfg));
        }
    }
}

/// A preset's hover text: its fields, bit budget and `why`.
fn preset_tip(cfg: Config, why: &str) -> String {
    let Config { c, p, k } = cfg;
    format!(
        "C={c}, P={p}, K={k}: {} bits per block of {c} weights ({:.2} bits a weight); {why}",
        cfg.block_bits(),
        cfg.bits_per_weight()
    )
}

/// The bits per weight the menu spans (cheapest to dearest entry).
fn menu_range() -> (f64, f64) {
    let bpw = MENU.iter().map(Config::bits_per_weight);
    (
        bpw.clone().fold(f64::INFINITY, f64::min),
        bpw.fold(0.0, f64::max),
    )
}
