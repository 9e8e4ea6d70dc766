//! The top bar: File menu (open, recent, export), a path field for when no file dialog is
//! available, and the theme switch.

use crate::app::command::{Command, ExportKind};
use crate::app::jobs::Task;
use crate::app::state::AppState;
use std::path::PathBuf;

/// What a file dialog was opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Open,
    Export(ExportKind),
}

/// The top bar's own state: the path field and a file dialog running on its own thread.
#[derive(Default)]
pub struct MenuPanel {
    path: String,
    dialog: Option<(Purpose, Task<Option<PathBuf>>)>,
}

impl MenuPanel {
    /// Whether a file dialog is open.
    pub fn busy(&self) -> bool {
        self.dialog.is_some()
    }

    /// Draws the bar.
    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        self.poll_dialog(out);
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .button("Open…")
                    .on_hover_text("Open a model file, directory or packed file")
                    .clicked()
                {
                    self.start_dialog(Purpose::Open);
                }
                if ui.button("Open demo model").clicked() {
                    out.push(Command::OpenDemo);
                }
                ui.menu_button("Recent", |ui| {
                    if state.recent.is_empty() {
                        ui.label("(none)");
                    }
                    for p in &state.recent {
                        if ui.button(p.display().to_string()).clicked() {
                            out.push(Command::Open(p.clone()));
                        }
                    }
                });
                ui.separator();
                if ui
                    .button("Export packed…")
                    .on_hover_text("Save the SeedLM packed file of the compressed tensors")
                    .clicked()
                {
                    self.start_dialog(Purpose::Export(ExportKind::Packed));
                }
                if ui
                    .button("Export decompressed…")
                    .on_hover_text("Save a safetensors model with compressed tensors replaced by ŵ")
                    .clicked()
                {
                    self.start_dialog(Purpose::Export(ExportKind::Decompressed));
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                let mut dark = state.dark;
                if ui.checkbox(&mut dark, "Dark theme").changed() {
                    out.push(Command::SetDark(dark));
                }
            });
            ui.separator();
            let label = ui.label("Path");
            let resp = ui
                .add(
                    egui::TextEdit::singleline(&mut self.path)
                        .hint_text("model.safetensors, a model directory or a packed file")
                        .desired_width(360.0),
                )
                .labelled_by(label.id)
                .on_hover_text(
                    "Type a path and press Enter (or Open) when no file dialog is available",
                );
            let enter = resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Open").clicked() || enter) && !self.path.trim().is_empty() {
                out.push(Command::Open(PathBuf::from(self.path.trim())));
            }
            ui.separator();
            ui.label(format!(
                "{} — {} tensors",
                state.doc.title,
                state.doc.tensors.len()
            ));
            if let Some((p, _)) = &state.loading {
                ui.spinner();
                ui.label(format!("opening {}…", p.display()));
            }
        });
    }

    fn start_dialog(&mut self, purpose: Purpose) {
        if self.dialog.is_some() {
            return;
        }
        // The dialog runs on its own thread so the UI keeps drawing while it is open.
        let task = Task::spawn(move |_, _| {
            let d = rfd::FileDialog::new();
            match purpose {
                Purpose::Open => d
                    .add_filter("models", &["safetensors", "seedlm"])
                    .pick_file(),
                Purpose::Export(ExportKind::Packed) => {
                    d.set_file_name("model.seedlm.safetensors").save_file()
                }
                Purpose::Export(ExportKind::Decompressed) => d
                    .set_file_name("model.decompressed.safetensors")
                    .save_file(),
            }
        });
        self.dialog = Some((purpose, task));
    }

    fn poll_dialog(&mut self, out: &mut Vec<Command>) {
        let Some((purpose, task)) = &self.dialog else {
            return;
        };
        let Some(res) = task.poll() else { return };
        let purpose = *purpose;
        self.dialog = None;
        if let Ok(Some(path)) = res {
            out.push(match purpose {
                Purpose::Open => Command::Open(path),
                Purpose::Export(kind) => Command::Export { kind, path },
            });
        }
    }
}
