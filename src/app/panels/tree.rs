//! The tensor tree: tensors grouped by layer, in natural order, with status; filter and
//! multi-select (Ctrl+click toggles, Shift+click extends).

use crate::app::command::{Command, SelectMode};
use crate::app::panels::{config_name, human_bytes};
use crate::app::state::{AppState, TensorStatus};
use egui::{RichText, Role, WidgetInfo};

/// The tree's own widget state.
#[derive(Default)]
pub struct TreePanel {
    filter: String,
}

impl TreePanel {
    /// Draws the tree.
    pub fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let label = ui.label("Filter");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("part of a name, e.g. q_proj")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id)
            .on_hover_text("Show only tensors whose name contains this text");
        });
        let needle = self.filter.to_lowercase();
        let visible: Vec<usize> = (0..state.doc.tensors.len())
            .filter(|&i| state.doc.tensors[i].name.to_lowercase().contains(&needle))
            .collect();
        ui.horizontal(|ui| {
            if ui
                .button("Select shown")
                .on_hover_text("Select every tensor the filter shows")
                .clicked()
            {
                out.push(Command::SelectOnly(visible.clone()));
            }
            if ui.button("Select none").clicked() {
                out.push(Command::SelectOnly(Vec::new()));
            }
            ui.label(format!("{} selected", state.selection.len()));
        });
        ui.separator();
        if visible.is_empty() && !state.doc.tensors.is_empty() {
            // A filter kept from another model may match nothing here: say so, offer a way out.
            ui.label(format!(
                "No tensor name contains “{}” ({} tensors hidden by the filter).",
                self.filter,
                state.doc.tensors.len()
            ));
            if ui.button("Clear filter").clicked() {
                self.filter.clear();
            }
            return;
        }
        // Group consecutive tensors (already in natural order) by layer.
        let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
        for &i in &visible {
            let layer = state.doc.tensors[i].layer();
            match groups.last_mut() {
                Some((l, v)) if *l == layer => v.push(i),
                _ => groups.push((layer, vec![i])),
            }
        }
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show(ui, |ui| {
                // One line per tensor; the tooltip has everything a truncated row hides.
                ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
                let mut titles: Vec<String> = Vec::new();
                for (layer, members) in groups {
                    let mut title = match layer {
                        Some(l) => format!("layer {l}"),
                        None => group_name(members.iter().map(|&i| &state.doc.tensors[i].name)),
                    };
                    // Groups outside the layers are named by what they share; never twice alike.
                    let same = titles.iter().filter(|t| **t == title).count();
                    titles.push(title.clone());
                    if same > 0 {
                        title = format!("{title} #{}", same + 1);
                    }
                    let id = ui.make_persistent_id((&title, members[0]));
                    egui::CollapsingHeader::new(format!("{title} ({})", members.len()))
                        .id_salt(id)
                        .default_open(true)
                        .open((!needle.is_empty()).then_some(true))
                        .show(ui, |ui| {
                            for i in members {
                                self.row(ui, state, i, out);
                            }
                        });
                }
            });
    }

    fn row(&self, ui: &mut egui::Ui, state: &AppState, i: usize, out: &mut Vec<Command>) {
        let t = &state.doc.tensors[i];
        let short = match t.layer() {
            Some(l) => t
                .name
                .split_once(&format!(".{l}."))
                .map_or(t.name.as_str(), |(_, rest)| rest),
            None => t.name.as_str(),
        };
        let shape = t.dims();
        let status = state.status(i);
        let cfg = t.result.as_ref().map_or(String::new(), |r| {
            format!(", {}", config_name(r.compressed.config))
        });
        let status_text = match &status {
            TensorStatus::Original => String::new(),
            TensorStatus::Queued => "queued".into(),
            TensorStatus::Running(f) => format!("{:.0}%", f * 100.0),
            TensorStatus::Compressed(Some(snr)) => format!("{snr:.2} dB{cfg}"),
            TensorStatus::Compressed(None) => format!("packed{cfg}"),
        };
        let selected = state.selection.contains(&i);
        let text = RichText::new(format!(
            "{short}  {status_text}  [{shape}] {} {}",
            t.dtype,
            human_bytes(t.original_bytes())
        ));
        let text = if matches!(status, TensorStatus::Compressed(_)) {
            text.strong()
        } else {
            text
        };
        let resp = ui.selectable_label(selected, text).on_hover_text(format!(
            "{}\nshape {shape}, {}, {}\n{}",
            t.name,
            t.dtype,
            human_bytes(t.original_bytes()),
            match status {
                TensorStatus::Original => "not compressed".to_string(),
                TensorStatus::Compressed(Some(s)) => format!("compressed, SNR {s:.2} dB"),
                _ => status_text.clone(),
            }
        ));
        // Screen readers (and UI tests) get the full name rather than the shortened one.
        let name = t.name.clone();
        resp.widget_info(|| WidgetInfo::selected(Role::Button, true, selected, &name));
        if resp.clicked() {
            let m = ui.input(|inp| inp.modifiers);
            let mode = if m.shift {
                SelectMode::Range
            } else if m.command {
                SelectMode::Toggle
            } else {
                SelectMode::Replace
            };
            out.push(Command::Select { tensor: i, mode });
        }
    }
}

/// The name of a group of tensors outside the layers: the first name component all of them
/// share (`embeddings`, `pooler`), or "other".
pub fn group_name<'a>(mut names: impl Iterator<Item = &'a String>) -> String {
    let Some(first) = names.next() else {
        return "other".into();
    };
    let head = |n: &'a String| n.split('.').next().unwrap_or_default();
    let h = head(first);
    if names.all(|n| head(n) == h) && !h.is_empty() {
        h.to_string()
    } else {
        "other".into()
    }
}
