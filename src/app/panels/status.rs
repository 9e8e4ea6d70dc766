//! The bottom bar: messages (errors in the error colour, dismissable) and background work.

use crate::app::command::Command;
use crate::app::state::AppState;
use std::time::Duration;

/// Messages shown at once.
const SHOWN: usize = 3;

/// Draws the status bar.
pub fn ui(ui: &mut egui::Ui, state: &AppState, frame: Duration, out: &mut Vec<Command>) {
    let n = state.messages.len();
    for (i, m) in state
        .messages
        .iter()
        .enumerate()
        .skip(n.saturating_sub(SHOWN))
    {
        ui.horizontal(|ui| {
            if ui
                .small_button("Dismiss")
                .on_hover_text("Dismiss this message")
                .clicked()
            {
                out.push(Command::DismissMessage(i));
            }
            if m.error {
                ui.colored_label(ui.visuals().error_fg_color, &m.text);
            } else {
                ui.label(&m.text);
            }
        });
    }
    ui.horizontal(|ui| {
        ui.label(format!("UI {:.1} ms", frame.as_secs_f64() * 1e3))
            .on_hover_text(
                "Time the UI thread spent on the last frame; work runs on background threads",
            );
        ui.separator();
        if let Some(job) = &state.job {
            let (done, total) = job.blocks();
            ui.spinner();
            ui.label(format!(
                "compressing ({}): {done}/{total} blocks, {:.0} blocks/s",
                job.config,
                job.rate()
            ));
        } else {
            ui.label("idle");
        }
        if let Some(t) = &state.exporting {
            let (done, total) = t.progress();
            ui.separator();
            ui.spinner();
            ui.label(format!("exporting: {done}/{total} tensors"));
        }
    });
}
