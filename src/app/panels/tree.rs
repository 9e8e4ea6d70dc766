//! The tensor tree: tensors grouped by layer, in natural order, with status; filter and
//! multi-select (Ctrl+click toggles, Shift+click extends). Each group's header sums up its
//! compressed tensors, so a large model's groups can stay folded (they start so).

use crate::app::command::{Command, SelectMode};
use crate::app::format::human_bytes;
use crate::app::panels::config_name;
use crate::app::state::{AppState, TensorStatus};
use egui::{RichText, Role, WidgetInfo};

/// Trees of more tensors than this start with their groups folded: 32 layers of a decoder
/// are 288 rows, the demo's 6 layers 103.
const OPEN_UP_TO: usize = 150;

/// The tree's own widget state.
#[derive(Default)]
pub struct TreePanel {
    filter: String,
    /// Set by "Unfold all" / "Fold all" for the next frame.
    open_all: Option<bool>,
    /// How rows are ordered.
    sort: Sort,
}

/// How the tree orders its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Sort {
    /// Grouped by layer, in natural order.
    #[default]
    Name,
    /// One list, the largest relative MSE first; tensors not compressed after, by name.
    Error,
}

/// `visible` (in natural order) with the largest relative MSE first and tensors without one
/// after, in their order.
fn by_error(state: &AppState, visible: &[usize]) -> Vec<usize> {
    let err = |i: usize| {
        state.doc.tensors[i]
            .result
            .as_ref()
            .and_then(|r| r.relmse())
    };
    let mut v = visible.to_vec();
    // Stable: ties and tensors without a figure keep their natural order.
    v.sort_by(|&a, &b| match (err(a), err(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    v
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
        ui.horizontal(|ui| {
            let grouped = self.sort == Sort::Name;
            if ui
                .add_enabled(grouped, egui::Button::new("Unfold all"))
                .clicked()
            {
                self.open_all = Some(true);
            }
            if ui
                .add_enabled(grouped, egui::Button::new("Fold all"))
                .clicked()
            {
                self.open_all = Some(false);
            }
            ui.separator();
            ui.label("Sort");
            ui.selectable_value(&mut self.sort, Sort::Name, "by name")
                .on_hover_text("Grouped by layer, in natural order");
            ui.selectable_value(&mut self.sort, Sort::Error, "by error")
                .on_hover_text(
                    "One list, the largest relative MSE first; tensors not compressed last",
                );
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
        if self.sort == Sort::Error {
            egui::ScrollArea::vertical()
                .id_salt("by error")
                .auto_shrink(false)
                .show(ui, |ui| {
                    ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
                    for i in by_error(state, &visible) {
                        self.row(ui, state, i, true, out);
                    }
                });
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
        let default_open = state.doc.tensors.len() <= OPEN_UP_TO;
        // A filter shows what it matches; a button folds or unfolds once.
        let open = if needle.is_empty() {
            self.open_all.take()
        } else {
            Some(true)
        };
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
                    let header = format!(
                        "{title} ({}){}",
                        members.len(),
                        group_summary(state, &members)
                    );
                    let mut tip = group_tooltip(state, layer, &members);
                    // Laid out cut to the panel's width: a header would otherwise widen the
                    // panel and push the central one aside. The tooltip has it in full.
                    let width =
                        ui.available_width() - ui.spacing().indent - ui.spacing().button_padding.x;
                    let galley = egui::WidgetText::from(header.as_str()).into_galley(
                        ui,
                        Some(egui::TextWrapMode::Truncate),
                        width,
                        egui::TextStyle::Button,
                    );
                    if galley.elided {
                        tip = format!("{header}\n{tip}");
                    }
                    egui::CollapsingHeader::new(galley)
                        .id_salt(id)
                        .default_open(default_open)
                        .open(open)
                        .show(ui, |ui| {
                            for i in members {
                                self.row(ui, state, i, false, out);
                            }
                        })
                        .header_response
                        .on_hover_text(tip);
                }
            });
    }

    /// Tensor `i`'s row; named in full in a flat list, without its layer under a layer's header.
    fn row(
        &self,
        ui: &mut egui::Ui,
        state: &AppState,
        i: usize,
        flat: bool,
        out: &mut Vec<Command>,
    ) {
        let t = &state.doc.tensors[i];
        let short = match t.layer().filter(|_| !flat) {
            Some(l) => t
                .name
                .split_once(&format!(".{l}."))
                .map_or(t.name.as_str(), |(_, rest)| rest),
            None => t.name.as_str(),
        };
        let shape = t.dims();
        let status = state.status(i);
        let cfg = t.result.as_ref().map_or(String::new(), |r| {
            let cal = if r.calibrated() { " cal" } else { "" };
            format!(", {}{cal}", config_name(r.compressed.config))
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
                TensorStatus::Compressed(Some(s)) => format!(
                    "compressed, SNR {s:.2} dB{}",
                    if t.result.as_ref().is_some_and(|r| r.calibrated()) {
                        ", search calibrated on a text (cal)"
                    } else {
                        ""
                    }
                ),
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

/// What a group header says of its tensors after their count: how many are compressed, with
/// which configuration(s) and their pooled relative MSE, and how many wait; empty if neither.
fn group_summary(state: &AppState, members: &[usize]) -> String {
    let waiting = members
        .iter()
        .filter(|&&i| {
            matches!(
                state.status(i),
                TensorStatus::Queued | TensorStatus::Running(_)
            )
        })
        .count();
    let mut configs: Vec<String> = Vec::new();
    for r in members
        .iter()
        .filter_map(|&i| state.doc.tensors[i].result.as_ref())
    {
        let name = config_name(r.compressed.config);
        if !configs.contains(&name) {
            configs.push(name);
        }
    }
    let mut parts = Vec::new();
    let g = state.group(members.iter().copied());
    if g.tensors > 0 {
        let cfg = if configs.len() <= 2 {
            configs.join(" / ")
        } else {
            format!("{} configurations", configs.len())
        };
        let rel = g.relmse().map_or(String::new(), |(r, exact)| {
            format!(", relMSE {}{r:.5}", if exact { "" } else { "≈" })
        });
        let cal = match g.calibrated {
            0 => String::new(),
            n => format!(", {n} cal"),
        };
        parts.push(format!("{} compressed ({cfg}){cal}{rel}", g.tensors));
    }
    if waiting > 0 {
        parts.push(format!("{waiting} waiting"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

/// Parts a group title names before it says "+N more" (its tooltip lists every tensor).
const TITLE_PARTS: usize = 3;
/// Names a group's tooltip lists.
const TOOLTIP_NAMES: usize = 12;

/// The title of a group of tensors outside the layers, by what is in it: the dotted prefix all
/// of them share, then what follows it ("embeddings: word_embeddings, LayerNorm"), without the
/// `.weight`/`.bias` ending; a lone tensor by its name ("model.embed_tokens"). "other" and a
/// bare "model" said nothing of what the group holds.
pub fn group_name<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<Vec<&str>> = names.map(|n| n.split('.').collect()).collect();
    let Some(first) = names.first() else {
        return String::new();
    };
    // Shared leading components, short of a whole name.
    let shortest = names.iter().map(Vec::len).min().unwrap_or(0);
    let shared = (0..shortest.saturating_sub(1))
        .take_while(|&i| names.iter().all(|n| n[i] == first[i]))
        .count();
    let prefix = first[..shared].join(".");
    let mut parts: Vec<String> = Vec::new();
    for n in &names {
        let mut rest = &n[shared..];
        if rest.len() > 1 && matches!(rest.last(), Some(&("weight" | "bias"))) {
            rest = &rest[..rest.len() - 1];
        }
        let part = rest.join(".");
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if let [one] = names.as_slice() {
        let bare = match one.as_slice() {
            [head @ .., "weight" | "bias"] if !head.is_empty() => head,
            all => all,
        };
        return bare.join(".");
    }
    let mut listed = parts[..parts.len().min(TITLE_PARTS)].join(", ");
    if parts.len() > TITLE_PARTS {
        listed.push_str(&format!(" +{} more", parts.len() - TITLE_PARTS));
    }
    if prefix.is_empty() {
        listed
    } else {
        format!("{prefix}: {listed}")
    }
}

/// A group header's tooltip: what the group is and the tensors in it.
fn group_tooltip(state: &AppState, layer: Option<usize>, members: &[usize]) -> String {
    let mut text = match layer {
        Some(l) => format!("Tensors of layer {l}:"),
        None => "Tensors outside the numbered layers:".into(),
    };
    for &i in members.iter().take(TOOLTIP_NAMES) {
        text.push_str(&format!("\n{}", state.doc.tensors[i].name));
    }
    if members.len() > TOOLTIP_NAMES {
        text.push_str(&format!("\n… and {} more", members.len() - TOOLTIP_NAMES));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title(names: &[&str]) -> String {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        group_name(names.iter())
    }

    #[test]
    fn groups_outside_the_layers_say_what_they_hold() {
        // A Llama's groups were "model" and "other".
        assert_eq!(title(&["model.embed_tokens.weight"]), "model.embed_tokens");
        assert_eq!(
            title(&["model.norm.weight", "lm_head.weight"]),
            "model.norm, lm_head"
        );
        assert_eq!(
            title(&[
                "embeddings.word_embeddings.weight",
                "embeddings.position_embeddings.weight",
                "embeddings.token_type_embeddings.weight",
                "embeddings.LayerNorm.weight",
                "embeddings.LayerNorm.bias",
            ]),
            "embeddings: word_embeddings, position_embeddings, token_type_embeddings +1 more"
        );
        assert_eq!(
            title(&["pooler.dense.weight", "pooler.dense.bias"]),
            "pooler.dense: weight, bias"
        );
    }
}
