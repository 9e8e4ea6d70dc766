//! The bottom bar: messages (errors in the error colour, dismissable) and background work.

use crate::app::UiLoad;
use crate::app::command::Command;
use crate::app::format::human_duration;
use crate::app::panels::progress_text;
use crate::app::state::AppState;
use crate::app::work::JobKind;
use std::time::Instant;

/// Messages shown at once.
const SHOWN: usize = 3;

/// Draws the status bar.
pub fn ui(ui: &mut egui::Ui, state: &AppState, load: &UiLoad, out: &mut Vec<Command>) {
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
        ui.label(format!(
            "UI {:.0} % of a core ({:.1} ms a frame)",
            load.share(Instant::now()) * 100.0,
            load.last().as_secs_f64() * 1e3
        ))
        .on_hover_text(
            "Time the UI thread spent drawing frames over the last second, and on the last \
             frame (the GL driver's own time not counted); work runs on background threads",
        );
        ui.separator();
        let kernel = crate::search::Kernel::chosen();
        ui.label(format!("search: {kernel}")).on_hover_text(
            "The seed search's scan kernel: the widest vector instructions this CPU has \
             (avx512, avx2, or portable code elsewhere), or the SEEDLM_KERNEL environment \
             variable's choice",
        );
        ui.separator();
        let mut idle = true;
        if let Some(job) = &state.job {
            let (done, total) = job.blocks();
            ui.label(format!(
                "compressing ({}): {done}/{total} blocks, {:.0} blocks/s",
                job.config,
                job.rate()
            ));
            idle = false;
        }
        for (kind, job) in &state.jobs {
            // The tensor tab says itself that it is preparing; the Shards tab that it reads.
            if matches!(kind, JobKind::Prepare | JobKind::Shards) {
                continue;
            }
            if !idle {
                ui.separator();
            }
            ui.label(progress_text(job));
            idle = false;
        }
        // A job's own ETA covers only itself: say what everything queued after it takes.
        let more = state.job.is_some() && !state.queue.is_empty()
            || state.running(JobKind::Allocate).is_some();
        if more && let Some(d) = state.time_left_in_all() {
            ui.separator();
            ui.label(format!("all queued: {} left", human_duration(d)));
        }
        if idle {
            ui.label("idle");
        }
    });
}
