//! Design-space explorer tab (the paper's §3.4): every (C, P, K) of a bit budget measured on
//! N(0, 1) blocks in the background, as a table and a plot, with the paper's choice marked and
//! a button that sends a configuration to the compression settings.

use super::{Tab, job_progress};
use crate::app::command::{Command, TabId};
use crate::app::state::AppState;
use crate::app::work::{JobKind, Work};
use crate::study::explore::{self, Options, Point};
use egui_plot::{HLine, HoverPosition, Legend, Line, LineStyle, MarkerShape, PlotPoints, Points};

/// Marker colour of the paper's choice.
const PAPER_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 160, 40);

/// The explorer's own widget state: the options of the next run.
pub struct Explorer {
    opts: Options,
}

impl Default for Explorer {
    fn default() -> Self {
        Explorer {
            // K ≤ 12 by default here: a grid then takes about a second.
            opts: Options {
                max_k: 12,
                ..Options::new(4)
            },
        }
    }
}

impl Tab for Explorer {
    fn id(&self) -> TabId {
        TabId::Explorer
    }

    fn title(&self) -> &'static str {
        "Design space"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.label(
            "For a budget of M bits per weight, every valid (C, P, K) with M·C = K + 4 + 4P, \
             measured by the exact seed search on N(0, 1) blocks (the paper's §3.4).",
        );
        self.controls(ui, state, out);
        let Some((opts, points)) = &state.results.explore else {
            return;
        };
        ui.separator();
        ui.columns(2, |cols| {
            table(&mut cols[0], opts, points, state, out);
            plot(&mut cols[1], opts, points);
        });
    }
}

impl Explorer {
    fn controls(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let job = state.running(JobKind::Explore);
        let running = job.is_some();
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                ui.label("M (bits/weight)");
                ui.add(egui::DragValue::new(&mut self.opts.bits).range(1..=8));
                ui.label("max K");
                ui.add(egui::DragValue::new(&mut self.opts.max_k).range(2..=explore::MAX_K))
                    .on_hover_text(
                        "The search tries 2^K seeds a block: each extra bit of K doubles the \
                         time. The paper's choice (K = 16) is measured whatever the cap.",
                    );
                ui.label("blocks per point");
                ui.add(egui::DragValue::new(&mut self.opts.blocks).range(8..=65536));
            });
        });
        ui.horizontal(|ui| {
            if let Some(j) = job {
                job_progress(ui, j, JobKind::Explore, out);
                return;
            }
            if ui.button("Run").clicked() {
                out.push(Command::Run(Work::Explore(self.opts)));
            }
            ui.label(format!(
                "{} configurations: K ≤ {} to stay interactive, plus the paper's choice",
                explore::points(&self.opts).len(),
                self.opts.max_k
            ));
        });
        if let Some(j) = job {
            let (done, total) = j.progress();
            ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32));
        }
    }
}

fn table(
    ui: &mut egui::Ui,
    opts: &Options,
    points: &[Point],
    state: &AppState,
    out: &mut Vec<Command>,
) {
    let best = points
        .iter()
        .map(|p| p.relmse)
        .fold(f64::INFINITY, f64::min);
    ui.label(format!(
        "M = {}: {} configurations, {} blocks each; Gaussian bound 2^(−2M) = {:.5}",
        opts.bits,
        points.len(),
        opts.blocks,
        explore::gaussian_bound(f64::from(opts.bits))
    ));
    egui::ScrollArea::vertical()
        .id_salt("explore_table")
        .show(ui, |ui| {
            egui::Grid::new("explore_grid")
                .striped(true)
                .show(ui, |ui| {
                    for h in ["C", "P", "K", "bits/block", "relMSE", "SNR dB", "", ""] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for p in points {
                        let cfg = p.config;
                        ui.label(cfg.c.to_string());
                        ui.label(cfg.p.to_string());
                        ui.label(cfg.k.to_string());
                        ui.label(cfg.block_bits().to_string());
                        ui.label(format!("{:.5}", p.relmse));
                        ui.label(format!("{:.2}", crate::search::compress::snr_db(p.relmse)));
                        let mut marks = Vec::new();
                        if p.relmse == best {
                            marks.push("best");
                        }
                        if p.paper {
                            marks.push("paper (Table 1)");
                        }
                        ui.label(marks.join(", "));
                        let current = state.config == cfg;
                        let label = format!("Use {},{},{}", cfg.c, cfg.p, cfg.k);
                        if ui
                            .add_enabled(!current, egui::Button::new(label))
                            .on_hover_text("Send (C, P, K) to the compression settings")
                            .clicked()
                        {
                            out.push(Command::SetConfig(cfg));
                        }
                        ui.end_row();
                    }
                });
        });
}

/// relMSE (log scale) against C, one line per P, the paper's choice and the best point marked,
/// the Gaussian bound as a dashed line.
fn plot(ui: &mut egui::Ui, opts: &Options, points: &[Point]) {
    let log = |x: f64| x.max(1e-12).log10();
    let described: Vec<([f64; 2], String)> = points
        .iter()
        .map(|x| {
            let c = x.config;
            let text = format!(
                "C = {}, P = {}, K = {} ({} bits a block): relMSE {:.5} ({:.2} dB){}",
                c.c,
                c.p,
                c.k,
                c.block_bits(),
                x.relmse,
                crate::search::compress::snr_db(x.relmse),
                if x.paper { ", the paper's choice" } else { "" }
            );
            ([c.c as f64, log(x.relmse)], text)
        })
        .collect();
    // The legend sits in a top corner: keep the data below it. Rows: one per P, the paper's
    // point, the best one and the bound.
    let mut ps: Vec<usize> = points
        .iter()
        .filter(|x| !x.paper)
        .map(|x| x.config.p)
        .collect();
    ps.sort_unstable();
    ps.dedup();
    // As tall as the column allows (less the hover line): eleven legend rows in a 360-point plot
    // left the data its lowest quarter.
    let line = ui.text_style_height(&egui::TextStyle::Body) + 2.0 * ui.spacing().item_spacing.y;
    let height = (ui.available_height() - line).max(360.0);
    let top =
        super::legend_headroom_for(described.iter().map(|(at, _)| at[1]), ps.len() + 3, height);
    let resp = super::page_plot("explore_plot")
        .height(height)
        .legend(Legend::default())
        .x_axis_label("block size C")
        .x_grid_spacer(super::tick_spacer(true))
        .y_axis_label("relative MSE")
        .include_y(top.unwrap_or(0.0))
        .y_axis_formatter(|m, _| super::log_tick(m))
        .label_formatter(|h| match h {
            HoverPosition::NearDataPoint {
                plot_name,
                position: p,
                ..
            } => Some(format!(
                "{plot_name}\nC = {:.0}, relMSE = {:.5}",
                p.x,
                10f64.powf(p.y)
            )),
            HoverPosition::Elsewhere { .. } => None,
        })
        .show(ui, |plot| {
            for p in 1..=crate::core::config::MAX_P {
                let pts: Vec<[f64; 2]> = points
                    .iter()
                    .filter(|x| x.config.p == p && !x.paper)
                    .map(|x| [x.config.c as f64, log(x.relmse)])
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                // Line and markers of one P share a colour (and so one legend entry).
                let c = colorous::TABLEAU10[(p - 1) % 10];
                let color = egui::Color32::from_rgb(c.r, c.g, c.b);
                plot.line(Line::new(format!("P = {p}"), PlotPoints::new(pts.clone())).color(color));
                plot.points(
                    Points::new(format!("P = {p}"), PlotPoints::new(pts))
                        .radius(3.0)
                        .color(color),
                );
            }
            let paper: Vec<[f64; 2]> = points
                .iter()
                .filter(|x| x.paper)
                .map(|x| [x.config.c as f64, log(x.relmse)])
                .collect();
            plot.points(
                Points::new("paper (Table 1)", PlotPoints::new(paper))
                    .shape(MarkerShape::Diamond)
                    .radius(8.0)
                    .color(PAPER_COLOR),
            );
            if let Some(b) = points.iter().min_by(|a, b| a.relmse.total_cmp(&b.relmse)) {
                plot.points(
                    Points::new(
                        "best",
                        PlotPoints::new(vec![[b.config.c as f64, log(b.relmse)]]),
                    )
                    .shape(MarkerShape::Asterisk)
                    .radius(9.0),
                );
            }
            plot.hline(
                HLine::new(
                    "bound 2^(−2M)",
                    log(explore::gaussian_bound(f64::from(opts.bits))),
                )
                .style(LineStyle::dashed_loose()),
            );
        });
    super::hover_line(ui, &resp, &described);
}
