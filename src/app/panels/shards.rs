//! Shards tab: the progress of a sharded compression (a shard folder opened like a model), per
//! shard and in total, with the figures `seedlm status` prints (both come from
//! [`crate::io::shard::status`]). The state reads the folder again in the background every
//! [`crate::app::work::SHARD_REFRESH`] while the tab is shown.

use super::Tab;
use crate::app::command::{Command, TabId};
use crate::app::state::AppState;
use crate::app::work::{Purpose, ShardView, Work};
use crate::io::shard::ShardState;

/// Rows of the shard table drawn at once are those in view; this is one row's height.
const ROW_HEIGHT: f32 = 20.0;

/// The Shards tab (the folder and its progress live in the state).
#[derive(Default)]
pub struct Shards;

impl Tab for Shards {
    fn id(&self) -> TabId {
        TabId::Shards
    }

    fn title(&self) -> &'static str {
        "Shards"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        match &state.results.shards {
            Some(v) => view(ui, v),
            None => {
                ui.label(
                    "Follow a sharded compression (seedlm compress --shard, seedlm slurm): open \
                     its shard folder, OUTPUT.shards, or the OUTPUT it will be merged into, \
                     with File > Open folder… or the Path field.",
                );
                if ui.button("Open folder…").clicked() {
                    out.push(Command::Run(Work::Dialog(Purpose::OpenFolder)));
                }
            }
        }
    }
}

fn view(ui: &mut egui::Ui, v: &ShardView) {
    let st = &v.status;
    let spec = &st.spec;
    ui.heading(v.folder.display().to_string());
    ui.label(format!(
        "{} blocks of {} tensors at {} in {} shards, input {}",
        spec.total_blocks,
        spec.tensors.len(),
        spec.config_text(),
        spec.shards,
        spec.input.display()
    ));
    if let Some(p) = &spec.plan {
        ui.label(format!("plan made for {}", p.options.describe()));
    }
    ui.add(egui::ProgressBar::new((st.percent() / 100.0) as f32).show_percentage());
    ui.label(st.summary());
    match &v.error {
        Some(e) => {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("reading the folder again failed (figures above are older): {e}"),
            );
        }
        None => {
            ui.weak(format!(
                "read {:.0} s ago; read again every second while this tab is shown",
                v.read_at.elapsed().as_secs_f64()
            ));
        }
    }
    ui.separator();
    let head = [
        "shard",
        "state",
        "done/blocks",
        "%",
        "blocks/s",
        "ETA",
        "host",
    ];
    egui::ScrollArea::vertical().show_rows(ui, ROW_HEIGHT, st.shards.len(), |ui, rows| {
        egui::Grid::new("shard_rows")
            .striped(true)
            .min_row_height(ROW_HEIGHT)
            .show(ui, |ui| {
                for h in head {
                    ui.strong(h);
                }
                ui.end_row();
                for s in &st.shards[rows] {
                    ui.label(format!("shard {}", s.shard));
                    let state = s.state.name();
                    match s.state {
                        ShardState::Finished => ui.label(state),
                        ShardState::Running => ui.strong(state),
                        ShardState::Stopped => ui.colored_label(ui.visuals().warn_fg_color, state),
                        ShardState::NotStarted => ui.weak(state),
                    };
                    ui.label(format!("{}/{}", s.done, s.total));
                    ui.label(format!("{:.1} %", s.percent()));
                    ui.label(s.rate_text());
                    ui.label(s.eta().text());
                    ui.label(s.host.as_deref().unwrap_or("-"));
                    ui.end_row();
                }
            });
    });
}
