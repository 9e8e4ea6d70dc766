//! One file per panel. Side panels and tabs read [`AppState`] and push [`Command`]s; they keep
//! only their own widget state (text fields, cached textures).
//!
//! How to add a tab, and a background job for it: the recipe in [`crate::app`]'s module doc.

pub mod baselines;
pub mod block_inspector;
pub mod explorer;
pub mod generate;
pub mod hardware;
pub mod menu;
pub mod overview;
pub mod quality;
pub mod settings;
pub mod shards;
pub mod status;
pub mod tensor_view;
pub mod tree;
pub mod walkthrough;

use super::command::{Command, TabId};
use super::format::human_duration;
use super::jobs::Job;
use super::state::AppState;
use super::work::JobKind;
use std::collections::BTreeMap;

/// A central tab.
pub trait Tab {
    /// Which tab this is.
    fn id(&self) -> TabId;
    /// The tab's title in the tab bar.
    fn title(&self) -> &'static str;
    /// Draws the tab; requests go to `out`.
    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>);
    /// Whether the tab animates (the app then keeps repainting while it is shown).
    fn busy(&self) -> bool {
        false
    }
}

/// The tabs, in tab-bar order.
pub fn default_tabs() -> Vec<Box<dyn Tab>> {
    vec![
        Box::new(overview::Overview::default()),
        Box::new(tensor_view::TensorView::default()),
        Box::new(block_inspector::BlockInspector::default()),
        Box::new(quality::Quality::default()),
        Box::new(generate::Generate::default()),
        Box::new(walkthrough::LfsrWalkthrough::default()),
        Box::new(explorer::Explorer::default()),
        Box::new(baselines::Baselines::default()),
        Box::new(hardware::Hardware),
        Box::new(shards::Shards),
    ]
}

/// A bar chart of a histogram.
pub fn histogram_chart(
    name: &str,
    hist: &[(f64, f64)],
    color: egui::Color32,
) -> egui_plot::BarChart {
    let width = if hist.len() > 1 {
        hist[1].0 - hist[0].0
    } else {
        1.0
    };
    egui_plot::BarChart::new(
        name,
        hist.iter()
            .map(|&(x, c)| egui_plot::Bar::new(x, c).width(width * 0.95))
            .collect(),
    )
    .color(color)
}

/// A running job's Cancel button and progress: "120/400 blocks, 3 s, about 8 s left", or the
/// time it has run when it reports no progress.
pub fn job_progress<T>(ui: &mut egui::Ui, job: &Job<T>, kind: JobKind, out: &mut Vec<Command>) {
    let cancel = ui.add_enabled(!job.cancelling(), egui::Button::new("Cancel"));
    if cancel.clicked() {
        out.push(Command::Stop(kind));
    }
    ui.label(progress_text(job));
}

/// What a job has done so far, in words.
pub fn progress_text<T, E>(job: &Job<T, E>) -> String {
    let (done, total) = job.progress();
    let secs = job.elapsed().as_secs();
    let mut s = if total > 0 {
        format!("{}: {done}/{total}, {secs} s", job.label)
    } else {
        format!("{}: running, {secs} s", job.label)
    };
    if job.cancelling() {
        s.push_str(", stopping…");
    } else if total > 0
        && let Some(eta) = job.eta()
    {
        s.push_str(&format!(", {} left", human_duration(eta)));
    }
    s
}

/// A configuration's short name: "4-bit", "3-bit", a larger-P preset's ("4bit-p6") or
/// "C=6 P=2 K=12".
pub fn config_name(cfg: crate::core::config::Config) -> String {
    use crate::core::config::Config;
    match cfg {
        Config::FOUR_BIT => "4-bit".into(),
        Config::THREE_BIT => "3-bit".into(),
        c => Config::LARGER_P.iter().find(|(_, p)| *p == c).map_or_else(
            || format!("C={} P={} K={}", c.c, c.p, c.k),
            |(n, _)| n.to_string(),
        ),
    }
}

/// Points closer than this to the pointer are "under" it.
const HOVER_RADIUS: f32 = 12.0;

/// Shows what `points` (plot position, description) has under the pointer below a plot, or a
/// hint: plot markers' own hover labels need the pointer exactly on a line, this does not.
pub fn hover_line<R>(
    ui: &mut egui::Ui,
    resp: &egui_plot::PlotResponse<R>,
    points: &[([f64; 2], String)],
) {
    let near = resp.response.hover_pos().and_then(|pos| {
        points
            .iter()
            .map(|(p, text)| {
                let at = resp
                    .transform
                    .position_from_point(&egui_plot::PlotPoint::new(p[0], p[1]));
                (at.distance(pos), text)
            })
            .filter(|(d, _)| *d <= HOVER_RADIUS)
            .min_by(|a, b| a.0.total_cmp(&b.0))
    });
    match near {
        Some((_, text)) => ui.label(text),
        None => ui.weak("Point at a marker to read its figures."),
    };
}

/// Grid lines and tick labels on 1-2-5 steps, labelled steps at least [`LABEL_GAP`] apart, so
/// an axis always carries several labels (egui_plot's default powers of ten often leave one).
/// `integer` axes (seeds, exponents, block sizes) never get fractional steps.
pub fn tick_spacer(integer: bool) -> Box<dyn Fn(egui_plot::GridInput) -> Vec<egui_plot::GridMark>> {
    spacer(integer, LABEL_GAP)
}

/// [`tick_spacer`] with labelled steps at least `gap` points apart.
fn spacer(
    integer: bool,
    gap: f32,
) -> Box<dyn Fn(egui_plot::GridInput) -> Vec<egui_plot::GridMark>> {
    egui_plot::uniform_grid_spacer(move |input| {
        // `base_step_size` spans the plot's minimum grid spacing of 8 points.
        let per_point = input.base_step_size / 8.0;
        let mut large = nice_step(per_point * f64::from(gap));
        if integer {
            large = large.max(1.0);
        }
        let small = if integer {
            (large / 5.0).max(1.0)
        } else {
            large / 5.0
        };
        // An integer axis labelled every 5 has no whole half step.
        let half = if integer && (large / 2.0).fract() != 0.0 {
            small
        } else {
            (large / 2.0).max(small)
        };
        [small, half, large]
    })
}

/// A tick label with as many decimals as its step needs ("-0.4", not "-0").
pub fn tick_label(m: egui_plot::GridMark) -> String {
    let decimals = (-m.step_size.log10().floor()).max(0.0) as usize;
    let v = if m.value.abs() < m.step_size * 1e-6 {
        0.0
    } else {
        m.value
    };
    format!("{v:.decimals$}")
}

/// Points between labelled ticks (egui_plot draws x labels fully from 80 points apart).
const LABEL_GAP: f32 = 85.0;

/// The smallest 1, 2 or 5 × 10^k at least `x`.
pub fn nice_step(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&s| s >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// The y a plot should include so that the top of it stays free for the legend: the data's top
/// plus 45 % of its span (one unit when every point has the same y). `None` without data.
pub fn legend_headroom(ys: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (lo, hi) = ys
        .into_iter()
        .filter(|y| y.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
    (lo <= hi).then_some(hi + if hi > lo { 0.45 * (hi - lo) } else { 1.0 })
}

/// A colour of the category palette, by series index.
pub fn series_color(i: usize) -> egui::Color32 {
    let c = colorous::CATEGORY10[i % colorous::CATEGORY10.len()];
    egui::Color32::from_rgb(c.r, c.g, c.b)
}

/// Facets of a chart over layers drawn side by side rather than as lines of one plot: from
/// three kinds of tensor on, lines of one plot tangle and their legend covers them.
const FACETS_FROM: usize = 3;
/// Narrowest facet, in points: room for a layer label every 5 layers at 32 layers.
const FACET_WIDTH: f32 = 380.0;
/// Lowest facet, in points: a few y labels and the layer axis.
const FACET_HEIGHT: f32 = 120.0;
/// Points between labelled layer ticks: layer numbers are short.
const LAYER_LABEL_GAP: f32 = 36.0;

/// The facets of a chart over layers: a series named `kind (config)` is drawn as the line
/// `config` in the facet `kind`, any other as the only line of its own facet.
pub fn layer_facets(
    series: BTreeMap<String, Vec<[f64; 2]>>,
) -> BTreeMap<String, BTreeMap<String, Vec<[f64; 2]>>> {
    let mut facets: BTreeMap<String, BTreeMap<String, Vec<[f64; 2]>>> = BTreeMap::new();
    for (name, pts) in series {
        let (facet, line) = match name.strip_suffix(')').and_then(|n| n.split_once(" (")) {
            Some((kind, cfg)) => (kind.to_string(), cfg.to_string()),
            None => (name.clone(), name),
        };
        facets.entry(facet).or_default().insert(line, pts);
    }
    facets
}

/// Grid lines of a layer axis: whole layers, labelled every 1, 2, 5, 10… layers as room allows.
pub fn layer_ticks() -> Box<dyn Fn(egui_plot::GridInput) -> Vec<egui_plot::GridMark>> {
    spacer(true, LAYER_LABEL_GAP)
}

/// A chart over layers: one line with markers per series of (layer, y) points. Few kinds share
/// one plot with a legend in the room kept above the data; more get a facet each (see
/// [`layer_facets`]), on a grid with the same axes, titled by kind. With `log`, y is drawn as
/// log10 and labelled in its own units (the legend room is then reserved in decades).
pub fn layer_plot(
    ui: &mut egui::Ui,
    id: &str,
    series: BTreeMap<String, Vec<[f64; 2]>>,
    y_label: &str,
    log: bool,
) {
    let facets: Vec<(String, Lines)> = layer_facets(series)
        .into_iter()
        .map(|(facet, lines)| {
            let lines = lines
                .into_iter()
                .map(|(k, pts)| {
                    let mut pts: Vec<[f64; 2]> = pts
                        .into_iter()
                        .map(|[x, y]| [x, if log { y.max(1e-12).log10() } else { y }])
                        .collect();
                    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
                    (k, pts)
                })
                .collect();
            (facet, lines)
        })
        .collect();
    let all = || {
        facets
            .iter()
            .flat_map(|(_, l)| l.iter().flat_map(|(_, p)| p))
    };
    let (x0, x1) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p[0]), b.max(p[0]))
    });
    let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p[1]), b.max(p[1]))
    });
    if !(x0 <= x1 && lo <= hi) {
        return;
    }
    let mut frame = LayerFrame {
        y_label,
        log,
        x: [x0, x1],
        y: [lo, hi],
        top: hi,
        link: None,
    };
    if facets.len() < FACETS_FROM {
        // One legend: lines keep their kind.
        let lines: Lines = facets
            .into_iter()
            .flat_map(|(facet, lines)| {
                lines.into_iter().map(move |(line, pts)| {
                    let name = if line == facet {
                        line
                    } else {
                        format!("{facet} ({line})")
                    };
                    (name, pts)
                })
            })
            .collect();
        // Below what is above it, the page scrolls to a plot of at least the lowest height.
        let height = ui
            .available_height()
            .max(FACET_HEIGHT)
            .max(legend_height(lines.len()));
        frame.top = legend_headroom_for([lo, hi], lines.len(), height).unwrap_or(hi);
        frame.show(ui, id, lines, height, true, [true, true]);
        return;
    }
    let n = facets.len();
    let cols = ((ui.available_width() / FACET_WIDTH) as usize).clamp(1, n);
    let rows = n.div_ceil(cols);
    // A title row per facet row; facets share the height there is, never below the lowest.
    let title = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
    // Every facet on the same axes: room for the tallest legend in all of them (a facet with
    // a legend ran higher than one without), and zooming or panning one moves them all.
    let most = facets.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let height = ((ui.available_height() / rows as f32) - title - ui.spacing().item_spacing.y)
        .max(FACET_HEIGHT)
        .max(legend_height(most));
    if most > 1 {
        frame.top = legend_headroom_for([lo, hi], most, height).unwrap_or(hi);
    }
    frame.link = Some(egui::Id::unique((id, "facets")));
    egui::ScrollArea::vertical()
        .id_salt((id, "facets"))
        .auto_shrink(false)
        // A row of facets at least, however much is above it: the page scrolls to it.
        .min_scrolled_height(height + title)
        .show(ui, |ui| {
            let mut facets = facets.into_iter().enumerate().peekable();
            for row in 0..rows {
                ui.columns(cols, |columns| {
                    for (col, ui) in columns.iter_mut().enumerate() {
                        let Some((i, (facet, lines))) = facets.next_if(|(i, _)| i / cols == row)
                        else {
                            break;
                        };
                        ui.label(facet.as_str());
                        // Axis titles once: layer under the lowest facet of a column, y on the left.
                        let titles = [i + cols >= n, col == 0];
                        let legend = lines.len() > 1;
                        let plot_id = format!("{id} {facet}");
                        frame.show(ui, &plot_id, lines, height, legend, titles);
                    }
                });
            }
        });
}

/// A plot on a scrolling tab: the plain wheel scrolls the tab, Ctrl+wheel zooms the plot and
/// dragging pans it (a wheel that panned plots left pages unreachable, issue 23).
pub fn page_plot<'a>(id: impl egui::AsIdSalt) -> egui_plot::Plot<'a> {
    egui_plot::Plot::new(id).allow_scroll(false)
}

/// Named lines of (layer, y) points.
type Lines = Vec<(String, Vec<[f64; 2]>)>;

/// What the facets of a chart over layers share: the data's ranges, axis titles and scale.
struct LayerFrame<'a> {
    y_label: &'a str,
    log: bool,
    x: [f64; 2],
    y: [f64; 2],
    /// The top of the y axis: the data's, or above it to leave room for a legend.
    top: f64,
    /// The group whose plots zoom and pan together.
    link: Option<egui::Id>,
}

impl LayerFrame<'_> {
    /// One plot of `lines`, `height` points tall (its id [`layer_plot_id`] of `id`), with a
    /// legend if asked and the x and y axis titles as `titles` says.
    fn show(
        &self,
        ui: &mut egui::Ui,
        id: &str,
        lines: Lines,
        height: f32,
        legend: bool,
        titles: [bool; 2],
    ) {
        use egui_plot::{AxisHints, Legend, Line, PlotPoints, Points};
        let [lo, hi] = self.y;
        let x_axis = AxisHints::new_x()
            .label(if titles[0] { "layer" } else { "" })
            .formatter(|m, _| tick_label(m))
            .label_spacing(LAYER_LABEL_GAP * 0.7..=LAYER_LABEL_GAP);
        let mut plot = page_plot(id)
            .id(layer_plot_id(id))
            .height(height)
            .include_x(self.x[0])
            .include_x(self.x[1])
            .include_y(self.top)
            .include_y(lo - (hi - lo).max(1e-9) * 0.05)
            .custom_x_axes(vec![x_axis])
            .x_grid_spacer(layer_ticks())
            .y_axis_label(if titles[1] { self.y_label } else { "" });
        if legend {
            plot = plot.legend(Legend::default());
        }
        if let Some(group) = self.link {
            plot = plot.link_axis(group, [true, true]);
        }
        if self.log {
            plot = plot.y_axis_formatter(|m, _| log_tick(m));
        }
        plot.show(ui, |plot| {
            for (i, (kind, pts)) in lines.into_iter().enumerate() {
                let color = series_color(i);
                plot.line(Line::new(kind.clone(), PlotPoints::new(pts.clone())).color(color));
                plot.points(
                    Points::new(kind, PlotPoints::new(pts))
                        .radius(3.5)
                        .color(color),
                );
            }
        });
    }
}

/// The egui id of the plot [`layer_plot`] draws as `id` (a chart's own, or `"{id} {facet}"`
/// for a facet), under which its `egui_plot::PlotMemory` is kept.
pub fn layer_plot_id(id: &str) -> egui::Id {
    egui::Id::unique(("layer plot", id))
}

/// The label of a mark on a log10 axis, as `1.42e-2`, with as many digits as its neighbours need
/// to read apart (a narrow range printed every mark as the same `1.4e-2`).
pub fn log_tick(mark: egui_plot::GridMark) -> String {
    let gap = 10f64.powf(mark.step_size) - 1.0;
    let digits = (-gap.log10()).ceil().clamp(1.0, 4.0) as usize;
    format!("{:.*e}", digits, 10f64.powf(mark.value))
}

/// Height of one legend row and the legend's frame, in points (egui_plot's body text).
const LEGEND_ROW: f64 = 20.0;
const LEGEND_FRAME: f64 = 16.0;
/// Height the axes of a plot take, in points.
const PLOT_AXES: f64 = 40.0;

/// Lowest height of a plot with a legend of `entries` rows that leaves the data at least half of
/// it: lower, the legend's headroom squeezed the lines of a bit budget's five configurations
/// into a fifth of a facet.
fn legend_height(entries: usize) -> f32 {
    if entries < 2 {
        return 0.0;
    }
    (2.0 * legend_box(entries) + PLOT_AXES) as f32
}

/// Height of a legend of `entries` rows, frame included, in points.
fn legend_box(entries: usize) -> f64 {
    entries as f64 * LEGEND_ROW + LEGEND_FRAME
}

/// As [`legend_headroom`], with room for a legend of `entries` rows in a plot `height` points
/// tall (its axes take about 40): however many rows, the legend ends above the data's top.
pub fn legend_headroom_for(
    ys: impl IntoIterator<Item = f64>,
    entries: usize,
    height: f32,
) -> Option<f64> {
    let ys: Vec<f64> = ys.into_iter().filter(|y| y.is_finite()).collect();
    let base = legend_headroom(ys.iter().copied())?;
    let (lo, hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let share = (legend_box(entries) / (f64::from(height) - PLOT_AXES).max(1.0)).min(0.8);
    // The data fill the rest; 10 % more for the plot's own margins.
    Some(base.max(hi + 1.1 * span * share / (1.0 - share)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_of_a_narrow_range_read_apart() {
        let mark = |value: f64, step_size: f64| egui_plot::GridMark { value, step_size };
        // Decades: one digit. Marks 0.005 decades apart (1.2 %): two digits, all different.
        assert_eq!(log_tick(mark(-2.0, 1.0)), "1.0e-2");
        let labels: Vec<String> = (0..4)
            .map(|i| log_tick(mark(-1.85 + 0.005 * f64::from(i), 0.005)))
            .collect();
        assert!(labels.iter().all(|l| l.len() == 7), "{labels:?}");
        let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
        assert_eq!(distinct.len(), 4, "{labels:?}");
    }

    #[test]
    fn legends_get_room_above_the_data() {
        assert_eq!(legend_headroom([]), None);
        assert_eq!(legend_headroom([f64::NAN]), None);
        assert_eq!(legend_headroom([-2.0, 0.0]), Some(0.9));
        assert_eq!(legend_headroom([3.0, 3.0]), Some(4.0));
        // A tall legend (nine rows in a 360-point plot, as the design space at M = 3 has)
        // needs more than 45 % of the span: the rows take 196 of the 320 points.
        let tall = legend_headroom_for([-2.0, 0.0], 9, 360.0).unwrap();
        let share = (9.0 * LEGEND_ROW + LEGEND_FRAME) / 320.0;
        assert!(tall > 2.0 * share / (1.0 - share), "{tall}");
        assert_eq!(legend_headroom_for([-2.0, 0.0], 1, 360.0), Some(0.9));
        assert_eq!(legend_headroom_for([], 9, 360.0), None);
    }

    #[test]
    fn ticks_step_by_one_two_five() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(12000.0), 20000.0);
        assert_eq!(nice_step(1.0), 1.0);
        // A 400-point axis over 0..65536 (seeds) gets labels every 20000: four of them.
        let marks = tick_spacer(true)(egui_plot::GridInput {
            bounds: (0.0, 65536.0),
            base_step_size: 65536.0 / 400.0 * 8.0,
        });
        let largest = marks.iter().map(|m| m.step_size).fold(0.0, f64::max);
        assert_eq!(largest, 20000.0);
        let labelled = marks.iter().filter(|m| m.step_size == largest).count();
        assert_eq!(labelled, 4, "0, 20000, 40000, 60000");
        // An integer axis over block sizes 4..13 steps by 5 at most: no mark at 2.5 or 7.5.
        let marks = tick_spacer(true)(egui_plot::GridInput {
            bounds: (2.0, 14.0),
            base_step_size: 12.0 / 300.0 * 8.0,
        });
        assert!(!marks.is_empty());
        for m in &marks {
            assert_eq!(m.value.fract(), 0.0, "{m:?}");
            assert_eq!(m.step_size.fract(), 0.0, "{m:?}");
        }
        let mark = |value, step_size| egui_plot::GridMark { value, step_size };
        assert_eq!(tick_label(mark(-0.4, 0.2)), "-0.4");
        assert_eq!(tick_label(mark(1e-17, 0.2)), "0.0");
        assert_eq!(tick_label(mark(40000.0, 20000.0)), "40000");
    }

    #[test]
    fn kinds_get_a_facet_each_with_a_line_per_configuration() {
        let pts = |y: f64| vec![[0.0, y], [1.0, y]];
        let series: BTreeMap<String, Vec<[f64; 2]>> = [
            ("mlp.up_proj (4-bit)", pts(1.0)),
            ("mlp.up_proj (C=6 P=2 K=12)", pts(2.0)),
            ("self_attn.q_proj", pts(3.0)),
            ("whole layer", pts(4.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let facets = layer_facets(series);
        let names: Vec<&str> = facets.keys().map(String::as_str).collect();
        assert_eq!(names, ["mlp.up_proj", "self_attn.q_proj", "whole layer"]);
        let lines: Vec<&str> = facets["mlp.up_proj"].keys().map(String::as_str).collect();
        assert_eq!(lines, ["4-bit", "C=6 P=2 K=12"]);
        assert_eq!(facets["whole layer"]["whole layer"], pts(4.0));
    }

    #[test]
    fn layer_axes_label_every_few_whole_layers() {
        // 34 layers' width (32 and the margins) over a 500-point facet, and over 120 points.
        let labelled = |points: f64| {
            let marks = layer_ticks()(egui_plot::GridInput {
                bounds: (-1.0, 33.0),
                base_step_size: 34.0 / points * 8.0,
            });
            assert!(marks.iter().all(|m| m.value.fract() == 0.0), "{marks:?}");
            marks.iter().map(|m| m.step_size).fold(0.0, f64::max)
        };
        assert_eq!(labelled(500.0), 5.0);
        assert_eq!(labelled(120.0), 20.0);
    }
}
