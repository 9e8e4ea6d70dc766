//! Baselines tab: SeedLM's presets against the data-free methods a user would pick instead
//! (round-to-nearest int4/int3, NF4) on the selected tensors, as a rate–distortion plot with the
//! Gaussian bound 2^(−2M), and a table per method, in total and per tensor; with a calibration
//! text also the calibrated presets; beside them the tensors as the document holds them
//! compressed (e.g. a bit allocation), once all are.

use super::{Tab, job_progress};
use crate::app::baselines::BaselineRun;
use crate::app::command::{Command, TabId};
use crate::app::state::AppState;
use crate::app::work::{JobKind, Work};
use crate::eval::Figures;
use crate::search::compress::snr_db;
use crate::study::baselines::{Measured, Method};
use crate::study::compare::{self, Row};
use crate::study::explore::gaussian_bound;
use egui_plot::{Legend, Line, LineStyle, MarkerShape, PlotPoints, Points};
use std::path::PathBuf;

/// The baselines tab's own widget state: which methods to run, and the calibration text's path
/// as typed.
pub struct Baselines {
    enabled: Vec<(Method, bool)>,
    calibration: String,
}

impl Default for Baselines {
    fn default() -> Self {
        Baselines {
            enabled: Method::ALL
                .iter()
                .map(|&m| (m, Method::defaults().contains(&m) || m.is_calibrated()))
                .collect(),
            calibration: String::new(),
        }
    }
}

impl Tab for Baselines {
    fn id(&self) -> TabId {
        TabId::Baselines
    }

    fn title(&self) -> &'static str {
        "Baselines"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let inputs = selected(state);
        let weights: usize = inputs.iter().map(|&i| state.doc.tensors[i].len()).sum();
        ui.label(format!(
            "Data-free methods, and with a calibration text the calibrated SeedLM presets, on \
             the selected tensors ({} tensor(s), {weights} weights). Round-to-nearest stores an FP16 scale and a b-bit zero point per group; NF4 an \
             FP16 absmax per 64 weights; bits per weight include them. When the model on disk \
             can be run (config.json and tokenizer.json beside it), each method's tensors are \
             also put into the model and its outputs compared with the original's.",
            inputs.len()
        ));
        let text = PathBuf::from(self.calibration.trim());
        let calibrated = text.is_file();
        ui.horizontal_wrapped(|ui| {
            for (m, on) in &mut self.enabled {
                let r = ui.add_enabled(
                    calibrated || !m.is_calibrated(),
                    egui::Checkbox::new(on, m.name()),
                );
                if m.is_calibrated() {
                    r.on_hover_text(
                        "The paper's preset searched for the smallest error weighted by each \
                         input channel's mean square on the calibration text (as compress \
                         --calibrate); not data-free",
                    )
                    .on_disabled_hover_text("Type the path of a calibration text file below");
                } else if m.is_larger_p() {
                    r.on_hover_text(
                        "Larger-P preset (software only, no RTL): exact seed search, 2.5–10 \
                         times the paper's presets' time per weight",
                    );
                } else if m.is_seedlm() {
                    r.on_hover_text("Exact seed search: nearly all of the time");
                }
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("Text for the -cal methods");
            ui.add(
                egui::TextEdit::singleline(&mut self.calibration)
                    .hint_text("a text file for the -cal methods; never the evaluation sentences"),
            )
            .labelled_by(l.id);
        });
        self.controls(ui, state, inputs, calibrated.then_some(text), out);
        let Some(run) = state.results.baselines.as_ref().map(|k| &k.value) else {
            return;
        };
        ui.separator();
        let rows = &run.rows;
        let totals: Vec<&Row> = rows.iter().filter(|r| r.tensor == compare::TOTAL).collect();
        ui.columns(2, |cols| {
            table(&mut cols[0], &totals, rows, run);
            plot(&mut cols[1], &totals, run.current.as_ref().map(|c| &c.0));
        });
    }
}

impl Baselines {
    fn controls(
        &mut self,
        ui: &mut egui::Ui,
        state: &AppState,
        inputs: Vec<usize>,
        calibration: Option<PathBuf>,
        out: &mut Vec<Command>,
    ) {
        let methods: Vec<Method> = self
            .enabled
            .iter()
            .filter(|&&(m, on)| on && (calibration.is_some() || !m.is_calibrated()))
            .map(|(m, _)| *m)
            .collect();
        ui.horizontal(|ui| {
            if let Some(j) = state.running(JobKind::Baselines) {
                job_progress(ui, j, JobKind::Baselines, out);
                let (done, total) = j.progress();
                ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32));
                return;
            }
            let ready = !inputs.is_empty() && !methods.is_empty();
            if ui
                .add_enabled(ready, egui::Button::new("Compare"))
                .on_disabled_hover_text("Select tensors on the left and at least one method")
                .clicked()
            {
                out.push(Command::Run(Work::Baselines {
                    tensors: inputs,
                    methods,
                    calibration,
                }));
            }
        });
    }
}

/// The selected tensors that have original weights (or the focused one if none is selected).
fn selected(state: &AppState) -> Vec<usize> {
    let mut idx: Vec<usize> = state.selection.iter().copied().collect();
    if idx.is_empty() {
        idx.extend(state.focus);
    }
    idx.retain(|&i| {
        state
            .doc
            .tensors
            .get(i)
            .is_some_and(|t| t.source.is_some() && !t.is_empty())
    });
    idx
}

/// Name of the document's own compressed state in the table and plot.
const AS_COMPRESSED: &str = "as compressed";

fn table(ui: &mut egui::Ui, totals: &[&Row], rows: &[Row], run: &BaselineRun) {
    ui.strong("All selected tensors");
    let function = &run.function;
    let figures = function.as_ref().ok();
    let family = figures.and_then(|f| f.first()).map(|(_, f)| f);
    egui::Grid::new("baseline_totals")
        .striped(true)
        .show(ui, |ui| {
            for h in ["method", "bits/weight", "relMSE", "SNR dB"] {
                ui.strong(h);
            }
            match family {
                Some(Figures::Encoder(_)) => {
                    ui.strong("mean cosine").on_hover_text(
                        "The model's sentence embeddings with these tensors compressed by the \
                         method (the rest original) against the original's",
                    );
                }
                Some(Figures::Decoder(_)) => {
                    ui.strong("KL (nats)").on_hover_text(
                        "KL(p_original ‖ p_compressed) of next-token distributions with these \
                         tensors compressed by the method (the rest original)",
                    );
                }
                None => {}
            }
            ui.end_row();
            for r in totals {
                row(ui, None, r);
                if let Some(f) = figures {
                    let f = f.iter().find(|(m, _)| *m == r.method);
                    ui.label(f.map_or("—".into(), |(_, f)| figure_text(f)));
                }
                ui.end_row();
            }
            if let Some((m, f)) = &run.current {
                ui.label(AS_COMPRESSED).on_hover_text(
                    "These tensors as they are compressed now, each with its own \
                     configuration (e.g. chosen by Allocate)",
                );
                measured_cells(ui, m);
                if figures.is_some() {
                    ui.label(f.as_ref().map_or("—".into(), figure_text));
                }
                ui.end_row();
            }
        });
    if let Err(e) = function {
        ui.weak(format!("No function-space figures: {e}"));
    }
    egui::CollapsingHeader::new("Per tensor").show(ui, |ui| {
        egui::ScrollArea::vertical()
            .id_salt("baseline_rows")
            .max_height(400.0)
            .show(ui, |ui| {
                egui::Grid::new("baseline_rows_grid")
                    .striped(true)
                    .show(ui, |ui| {
                        for h in ["tensor", "method", "bits/weight", "relMSE", "SNR dB"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for r in rows.iter().filter(|r| r.tensor != compare::TOTAL) {
                            row(ui, Some(&r.tensor), r);
                            ui.end_row();
                        }
                    });
            });
    });
}

/// The function-space figure of one column: mean cosine or KL.
fn figure_text(f: &Figures) -> String {
    match f {
        Figures::Encoder(e) => format!("{:.4}", e.mean_cosine),
        Figures::Decoder(d) => format!("{:.5}", d.kl),
    }
}

fn row(ui: &mut egui::Ui, tensor: Option<&str>, r: &Row) {
    if let Some(t) = tensor {
        ui.label(t);
    }
    ui.label(r.method.name());
    measured_cells(ui, &r.measured);
}

/// Bits per weight, relMSE and SNR.
fn measured_cells(ui: &mut egui::Ui, m: &Measured) {
    ui.label(format!("{:.3}", m.bits_per_weight()));
    ui.label(format!("{:.5}", m.relmse()));
    ui.label(format!("{:.2}", snr_db(m.relmse())));
}

/// Rate–distortion: relMSE (log scale) against bits per weight, one marker per method, and the
/// Gaussian bound 2^(−2M) over the measured rates only (drawn wider, it squeezes the markers).
fn plot(ui: &mut egui::Ui, totals: &[&Row], current: Option<&Measured>) {
    let log = |x: f64| x.max(1e-12).log10();
    let points: Vec<(&str, &Measured)> = totals
        .iter()
        .map(|r| (r.method.name(), &r.measured))
        .chain(current.map(|m| (AS_COMPRESSED, m)))
        .collect();
    let rates = points.iter().map(|(_, m)| m.bits_per_weight());
    let lo = rates.clone().fold(f64::INFINITY, f64::min) - 0.1;
    let hi = rates.fold(f64::NEG_INFINITY, f64::max) + 0.1;
    let at = |m: &Measured| [m.bits_per_weight(), log(m.relmse())];
    let strong = ui.visuals().strong_text_color();
    let described: Vec<([f64; 2], String)> = points
        .iter()
        .map(|(name, m)| {
            let text = format!(
                "{name}: {:.3} bits/weight, relMSE {:.5} ({:.2} dB)",
                m.bits_per_weight(),
                m.relmse(),
                snr_db(m.relmse())
            );
            (at(m), text)
        })
        .collect();
    // The legend sits in a top corner: keep the data below it (a row per method and the bound).
    let rows = points.len() + 1;
    let height = plot_height(rows);
    let ys: Vec<f64> = described.iter().map(|(at, _)| at[1]).collect();
    let top = y_top(&ys, rows, height);
    let resp = super::page_plot("baselines_plot")
        .height(height)
        .legend(Legend::default().position(egui_plot::Corner::RightTop))
        .x_axis_label("bits per weight")
        .y_axis_label("relative MSE")
        .include_y(top.unwrap_or(0.0))
        .y_axis_formatter(|m, _| format!("{:.4}", 10f64.powf(m.value)))
        .show(ui, |plot| {
            if lo < hi {
                let bound: Vec<[f64; 2]> = (0..=20)
                    .map(|i| {
                        let m = lo + (hi - lo) * f64::from(i) / 20.0;
                        [m, log(gaussian_bound(m))]
                    })
                    .collect();
                plot.line(
                    Line::new("Gaussian bound 2^(−2M)", PlotPoints::new(bound))
                        .color(BOUND_COLOR)
                        .style(LineStyle::dashed_loose()),
                );
            }
            // A ring drawn first: the method it coincides with (4-bit, when the model was
            // compressed so) stays visible inside it rather than hidden under it.
            if let Some(m) = current {
                plot.points(
                    Points::new(AS_COMPRESSED, PlotPoints::new(vec![at(m)]))
                        .shape(MarkerShape::Circle)
                        .filled(false)
                        .color(strong)
                        .radius(AS_COMPRESSED_RADIUS),
                );
            }
            for r in totals {
                plot.points(
                    Points::new(r.method.name(), PlotPoints::new(vec![at(&r.measured)]))
                        .shape(marker(r.method))
                        .color(color(r.method))
                        .radius(radius(r.method)),
                );
            }
        });
    super::hover_line(ui, &resp, &described);
}

/// The Gaussian bound's colour: a neutral grey, fixed so that it never takes a method's colour
/// from the plot's automatic palette.
const BOUND_COLOR: egui::Color32 = egui::Color32::from_rgb(140, 140, 140);

/// Radius of the ring around the document's own figures: outside every method's marker.
const AS_COMPRESSED_RADIUS: f32 = 12.0;

/// A method's marker radius: SeedLM's larger, to read at a glance.
fn radius(m: Method) -> f32 {
    if m.is_seedlm() { 8.0 } else { 5.0 }
}

/// A marker per family: circles for the baselines, diamonds for the paper's presets, squares
/// for the larger-P ones, triangles for the calibrated ones.
fn marker(m: Method) -> MarkerShape {
    if m.is_calibrated() {
        MarkerShape::Up
    } else if m.is_larger_p() {
        MarkerShape::Square
    } else if m.is_seedlm() {
        MarkerShape::Diamond
    } else {
        MarkerShape::Circle
    }
}

/// RGB distance under which two colours of the plot read as one.
const CLOSE: f64 = 70.0;

/// One colour per method, at least [`CLOSE`] apart from every other method's: the legend shows
/// only colours, and a colour shared by a baseline and a preset named either. Taken from the
/// category palettes in order, without greys (they read as "disabled").
fn color(m: Method) -> egui::Color32 {
    let distance = |a: &colorous::Color, b: &colorous::Color| {
        [(a.r, b.r), (a.g, b.g), (a.b, b.b)]
            .iter()
            .map(|&(p, q)| (f64::from(p) - f64::from(q)).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut palette: Vec<colorous::Color> = Vec::new();
    let all = colorous::CATEGORY10
        .iter()
        .chain(&colorous::DARK2)
        .chain(&colorous::PAIRED);
    for c in all.filter(|c| !(c.r == c.g && c.g == c.b)) {
        if palette.iter().all(|p| distance(p, c) > CLOSE) {
            palette.push(*c);
        }
    }
    let i = Method::ALL.iter().position(|&x| x == m).unwrap_or(0);
    let c = palette[i % palette.len()];
    egui::Color32::from_rgb(c.r, c.g, c.b)
}

/// The top of the plot's log10 relMSE axis for data `ys` and a legend of `rows` in a plot
/// `height` points tall: room for the legend, but never above relative MSE 1 (as bad as
/// storing zeros) unless a point is: a tall legend ran the axis to 100.
fn y_top(ys: &[f64], rows: usize, height: f32) -> Option<f64> {
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let top = super::legend_headroom_for(ys.iter().copied(), rows, height)?;
    Some(top.min(hi.max(0.0)))
}

/// The plot's height: the legend (a row per entry) takes at most half of it.
fn plot_height(rows: usize) -> f32 {
    (2.0 * (rows as f32 * 20.0 + 16.0) + 40.0).max(360.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gaussian_bound_has_a_colour_no_method_takes() {
        // Left to the plot's palette, the bound took whatever colour came next.
        assert!(Method::ALL.iter().all(|&m| color(m) != BOUND_COLOR));
    }

    #[test]
    fn every_method_has_its_own_colour_and_the_as_compressed_ring_hides_none() {
        // int4 and SeedLM 4-bit shared a colour, and the legend shows only colours.
        for (i, &a) in Method::ALL.iter().enumerate() {
            for &b in &Method::ALL[i + 1..] {
                let (x, y) = (color(a), color(b));
                let d: f64 = [(x.r(), y.r()), (x.g(), y.g()), (x.b(), y.b())]
                    .iter()
                    .map(|&(p, q)| (f64::from(p) - f64::from(q)).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(d > CLOSE, "{a:?} and {b:?}: {x:?} vs {y:?}");
            }
        }
        assert!(
            Method::ALL
                .iter()
                .all(|&m| radius(m) < AS_COMPRESSED_RADIUS)
        );
    }

    #[test]
    fn the_relmse_axis_stops_at_one_unless_a_point_is_above() {
        // Nine methods and the bound between relMSE 0.001 and 0.03: the axis ran to 100.
        let ys = [-3.0, -2.5, -2.2, -1.9, -1.6, -1.52];
        let rows = 10;
        let top = y_top(&ys, rows, plot_height(rows)).unwrap();
        assert!(top > -1.52 && top <= 0.0, "{top}");
        assert_eq!(y_top(&[-1.0, 0.5], 3, 360.0).unwrap(), 0.5);
    }
}
