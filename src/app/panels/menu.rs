//! The top bar: File menu (open, recent, export), a path field for when no file dialog is
//! available, and the theme switch.

use crate::app::command::{Command, ExportKind};
use crate::app::state::AppState;
use crate::app::work::{JobKind, Purpose, Work};
use std::path::PathBuf;

/// The top bar's own state: the path field.
#[derive(Default)]
pub struct MenuPanel {
    path: String,
}

impl MenuPanel {
    /// Draws the bar.
    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let dialog = |p| Command::Run(Work::Dialog(p));
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .button("Open…")
                    .on_hover_text("Open a model file, directory or packed file")
                    .clicked()
                {
                    out.push(dialog(Purpose::Open));
                }
                if ui
                    .button("Open folder…")
                    .on_hover_text(
                        "Open a model directory, or a shard folder (OUTPUT.shards) to follow a \
                         sharded compression",
                    )
                    .clicked()
                {
                    out.push(dialog(Purpose::OpenFolder));
                }
                if ui.button("Open demo model").clicked() {
                    out.push(Command::OpenDemo);
                }
                ui.menu_button("Recent", |ui| {
                    if state.saved.recent.is_empty() {
                        ui.label("(none)");
                    }
                    for p in &state.saved.recent {
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
                    out.push(dialog(Purpose::Export(ExportKind::Packed)));
                }
                if ui
                    .button("Export decompressed…")
                    .on_hover_text("Save a safetensors model with compressed tensors replaced by ŵ")
                    .clicked()
                {
                    out.push(dialog(Purpose::Export(ExportKind::Decompressed)));
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("View", |ui| {
                let mut dark = state.saved.dark;
                if ui.checkbox(&mut dark, "Dark theme").changed() {
                    out.push(Command::SetDark(dark));
                }
            });
            ui.separator();
            let label = ui.label("Path");
            let resp = ui
                .add(
                    egui::TextEdit::singleline(&mut self.path)
                        .hint_text("a model file or directory, a packed file or a shard folder")
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
            let (shown, kept) = (state.doc.tensors.len(), state.doc.extra.len());
            if kept == 0 {
                ui.label(format!("{} — {shown} tensors", state.doc.title));
            } else {
                // Non-float tensors (token ids, masks) are not in the tree but are exported.
                ui.label(format!(
                    "{} — {} tensors ({shown} in the tree, {kept} non-float kept as they are)",
                    state.doc.title,
                    shown + kept
                ))
                .on_hover_text(
                    state
                        .doc
                        .extra
                        .iter()
                        .map(|e| format!("{} ({})", e.name, e.dtype))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            if let Some(j) = state.running(JobKind::Open) {
                ui.label(format!("{}…", j.label));
            }
        });
    }
}
