//! Tensor tab: heatmaps of the original, reconstructed and error matrices (zoom and pan through
//! egui_plot; click a block to inspect it) and histograms of weights, block errors, seeds,
//! exponents and coefficients.

use super::{Tab, histogram_chart, tick_label, tick_spacer};
use crate::app::command::{Command, TabId};
use crate::app::document::TensorEntry;
use crate::app::heatmap::Scale;
use crate::app::prepare::{Hists, Prepared};
use crate::app::state::AppState;
use crate::app::work::{TensorKey, Work, tensor_key};
use egui::{Color32, TextureHandle, TextureOptions};
use egui_plot::{HoverPosition, Legend, PlotImage, PlotPoint, PlotPoints, Polygon};
use std::sync::Arc;

/// What is on screen, rebuilt only when the tensor or its result changes.
struct Cached {
    key: TensorKey,
    textures: [Option<TextureHandle>; 3],
    prepared: Arc<Prepared>,
}

/// The tensor tab's own state: the textures of the tensor shown, and what the heatmaps showed
/// on the last frame.
#[derive(Default)]
pub struct TensorView {
    cache: Option<Cached>,
    /// Plot bounds of the heatmaps (they move together).
    bounds: Option<egui_plot::PlotBounds>,
    /// The (row, column) under the pointer.
    hover: Option<(usize, usize)>,
}

impl Tab for TensorView {
    fn id(&self) -> TabId {
        TabId::Tensor
    }

    fn title(&self) -> &'static str {
        "Tensor"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let Some(ti) = state.focus else {
            ui.label("Click a tensor in the tree to see it here.");
            return;
        };
        let t = &state.doc.tensors[ti];
        header(ui, t);
        if t.is_empty() {
            return;
        }
        let key = tensor_key(&state.doc, ti);
        if self.cache.as_ref().is_none_or(|c| c.key != key) {
            self.prepare(ui.ctx(), key, state, out);
        }
        let Some(cache) = self.cache.as_ref().filter(|c| c.key == key) else {
            ui.horizontal(|ui| {
                ui.label("preparing heatmaps and histograms…");
            });
            return;
        };
        let (rows, cols) = t.matrix_dims();
        let c = t.result.as_ref().map_or(1, |r| r.compressed.config.c);
        let marked = state.inspect.filter(|b| b.tensor == ti).map(|b| b.block);
        let link = ui.scope_id().with("heatmaps");
        let (mut bounds, mut hover) = (None, None);
        ui.columns(3, |col| {
            for (((ui, title), tex), image) in col
                .iter_mut()
                .zip(["original w", "reconstructed ŵ", "error |w − ŵ|"])
                .zip(&cache.textures)
                .zip(&cache.prepared.images)
            {
                ui.label(title);
                let Some(tex) = tex else {
                    ui.label("(not available)");
                    continue;
                };
                // Not aspect-locked: a tall matrix (lm_head) fills the plot on open and after a
                // double-click instead of showing a slice of its rows.
                let resp = super::page_plot(title)
                    .height(260.0)
                    .link_axis(link, true)
                    .link_cursor(link, true)
                    .y_axis_formatter(|m, _| row_tick(m.value))
                    .label_formatter(|h| {
                        let (HoverPosition::NearDataPoint { position: p, .. }
                        | HoverPosition::Elsewhere { position: p }) = h;
                        let (row, col) = cell_at(*p, rows, cols)?;
                        Some(format!("row {row}, col {col}\n{}", values_at(t, row, col)))
                    })
                    .show(ui, |plot| {
                        plot.image(PlotImage::new(
                            title,
                            tex.id(),
                            PlotPoint::new(cols as f64 / 2.0, -(rows as f64) / 2.0),
                            [cols as f32, rows as f32],
                        ));
                        if let Some(b) = marked {
                            plot.polygon(block_outline(b, c, cols));
                        }
                    });
                let transform = resp.transform;
                if let Some((_, scale)) = image {
                    legend_bar(ui, scale, transform.frame().x_range());
                }
                bounds.get_or_insert(*transform.bounds());
                if let Some(pos) = resp.response.hover_pos() {
                    hover = cell_at(transform.value_from_position(pos), rows, cols);
                }
                let resp = resp
                    .response
                    .on_hover_text("Drag to pan, scroll to zoom, click a block to inspect it");
                if resp.clicked()
                    && t.result.is_some()
                    && let Some(pos) = resp.interact_pointer_pos()
                    && let Some(block) = block_at(transform.value_from_position(pos), rows, cols, c)
                {
                    out.push(Command::Inspect { tensor: ti, block });
                    out.push(Command::ShowTab(TabId::Block));
                }
            }
        });
        self.bounds = bounds;
        self.hover = hover;
        if let Some(b) = &self.bounds {
            ui.label(shown_range(b, rows, cols));
        }
        if let Some((n, all)) = cache.prepared.sampled {
            ui.weak(format!(
                "Heatmaps and weight histograms drawn from {n} evenly spaced rows of {all}"
            ));
        }
        match self.hover {
            Some((row, col)) => {
                ui.label(format!("row {row}, col {col}: {}", values_at(t, row, col)))
            }
            None => ui.weak(
                "Point at a heatmap to read the values under the cursor; double-click to fit.",
            ),
        };
        histograms(ui, &cache.prepared.hists);
    }
}

impl TensorView {
    /// Asks for, or takes up, the background preparation of tensor state `key`.
    fn prepare(
        &mut self,
        ctx: &egui::Context,
        key: TensorKey,
        state: &AppState,
        out: &mut Vec<Command>,
    ) {
        let Some((k, p)) = state.results.prepared.as_ref().filter(|(k, _)| *k == key) else {
            // Asked once per tensor state (a failed preparation is not retried every frame).
            if state.preparing != Some(key) {
                out.push(Command::Run(Work::Prepare(key.tensor)));
            }
            return;
        };
        let name = &state.doc.tensors[key.tensor].name;
        let load = |img: &Option<(egui::ColorImage, Scale)>, what: &str| {
            img.as_ref().map(|(i, _)| {
                ctx.load_texture(
                    format!("{name}:{what}:{k:?}"),
                    i.clone(),
                    TextureOptions::NEAREST,
                )
            })
        };
        let [a, b, c] = &p.images;
        self.cache = Some(Cached {
            key,
            textures: [load(a, "w"), load(b, "recon"), load(c, "err")],
            prepared: p.clone(),
        });
    }
}

/// The block under plot point `p` (x = column, y = −row) of a `rows × cols` matrix cut into
/// blocks of `c` consecutive elements.
pub fn block_at(p: PlotPoint, rows: usize, cols: usize, c: usize) -> Option<usize> {
    cell_at(p, rows, cols).map(|(row, col)| (row * cols + col) / c.max(1))
}

/// The matrix cell under plot point `p`.
fn cell_at(p: PlotPoint, rows: usize, cols: usize) -> Option<(usize, usize)> {
    let (col, row) = (p.x.floor(), (-p.y).floor());
    let inside = col >= 0.0 && row >= 0.0 && (col as usize) < cols && (row as usize) < rows;
    inside.then_some((row as usize, col as usize))
}

/// "w = …, ŵ = …, w − ŵ = …" at one cell, as far as each is known.
fn values_at(t: &TensorEntry, row: usize, col: usize) -> String {
    let i = row * t.matrix_dims().1 + col;
    // One element each, read where it is stored: cheap enough for every frame of a hover.
    let w = t
        .source
        .as_ref()
        .and_then(|s| s.read_range(i..i + 1).ok()?.first().copied());
    let r = t.result.as_ref().and_then(|r| {
        r.compressed
            .reconstruct_range(i..i + 1)
            .ok()?
            .first()
            .copied()
    });
    let mut parts = Vec::new();
    if let Some(w) = w {
        parts.push(format!("w = {w:.6}"));
    }
    if let Some(r) = r {
        parts.push(format!("ŵ = {r:.6}"));
    }
    if let (Some(w), Some(r)) = (w, r) {
        parts.push(format!("w − ŵ = {:.6}", w - r));
    }
    parts.join(", ")
}

/// "rows 0–2047 of 2048, columns 0–15 of 16 shown": the part of the matrix in view.
fn shown_range(b: &egui_plot::PlotBounds, rows: usize, cols: usize) -> String {
    let span = |lo: f64, hi: f64, n: usize| {
        let a = lo.floor().clamp(0.0, n as f64 - 1.0) as usize;
        let z = (hi.ceil() - 1.0).clamp(0.0, n as f64 - 1.0) as usize;
        (a, z)
    };
    let (r0, r1) = span(-b.max()[1], -b.min()[1], rows);
    let (c0, c1) = span(b.min()[0], b.max()[0], cols);
    format!("rows {r0}–{r1} of {rows}, columns {c0}–{c1} of {cols} shown")
}

/// An outline around block `b` (its first row when it wraps).
fn block_outline(b: usize, c: usize, cols: usize) -> Polygon<'static> {
    let start = b * c;
    let (r, c0) = ((start / cols) as f64, (start % cols) as f64);
    let c1 = (c0 + c as f64).min(cols as f64);
    Polygon::new(
        "inspected block",
        PlotPoints::new(vec![[c0, -r], [c1, -r], [c1, -r - 1.0], [c0, -r - 1.0]]),
    )
    .stroke(egui::Stroke::new(2.0, Color32::GREEN))
    .fill_color(Color32::TRANSPARENT)
}

fn header(ui: &mut egui::Ui, t: &TensorEntry) {
    ui.heading(&t.name);
    let shape = t.dims();
    ui.label(format!("shape {shape}, {}, {} weights", t.dtype, t.len()));
    match &t.result {
        Some(r) => {
            ui.label(format!(
                "compressed with {}, {} blocks, e_base {}",
                r.compressed.config,
                r.compressed.num_blocks(),
                r.compressed.e_base
            ));
            match &r.stats {
                Some(s) => ui.label(format!(
                    "SNR: {:.2} dB, relative MSE {:.6}",
                    s.snr_db(),
                    s.relmse()
                )),
                None => ui.label(match r.relmse() {
                    Some(m) => format!(
                        "SNR: {:.2} dB, relative MSE {m:.6} (stored in the packed file; the \
                         original is not available)",
                        crate::search::compress::snr_db(m)
                    ),
                    None => "opened from a packed file: the original is not available".into(),
                }),
            };
        }
        None => {
            ui.label("not compressed yet");
        }
    }
}

fn histograms(ui: &mut egui::Ui, c: &Hists) {
    ui.separator();
    let blue = Color32::from_rgba_unmultiplied(80, 140, 255, 150);
    let orange = Color32::from_rgba_unmultiplied(255, 150, 60, 150);
    let not_compressed = "(not compressed: nothing to show)";
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.columns(2, |col| {
            let both = !c.weights.is_empty() && !c.weights_recon.is_empty();
            let h = Hist {
                title: "Weights: original vs reconstructed",
                x: "value",
                integer: false,
                // Two series: their legend goes top left, where the bell curve leaves room.
                legend: both,
                empty: None,
            };
            h.show(&mut col[0], |p| {
                p.bar_chart(histogram_chart("original w", &c.weights, blue));
                let pts: Vec<[f64; 2]> = c.weights_recon.iter().map(|&(x, n)| [x, n]).collect();
                p.line(
                    egui_plot::Line::new("reconstructed ŵ", PlotPoints::new(pts))
                        .color(orange)
                        .width(2.0),
                );
            });
            let h = Hist {
                title: "Per-block error",
                x: "log10 relative MSE of a block",
                integer: false,
                legend: false,
                empty: c.block_err.is_empty().then_some(if c.seeds.is_empty() {
                    not_compressed
                } else {
                    "(the original is not available: no per-block errors)"
                }),
            };
            h.show(&mut col[1], |p| {
                p.bar_chart(histogram_chart("blocks", &c.block_err, orange));
            });
        });
        ui.columns(3, |col| {
            let empty = c.seeds.is_empty().then_some(not_compressed);
            let charts = [
                ("Seeds (uniform use of the seed space?)", "seed", &c.seeds),
                ("Exponents e", "e", &c.exps),
                ("Coefficients q", "q", &c.qs),
            ];
            for (ui, (title, x, data)) in col.iter_mut().zip(charts) {
                let h = Hist {
                    title,
                    x,
                    integer: true,
                    legend: false,
                    empty,
                };
                h.show(ui, |p| {
                    p.bar_chart(histogram_chart(x, data, blue));
                });
            }
        });
    });
}

/// One histogram's frame.
struct Hist<'a> {
    title: &'a str,
    x: &'a str,
    /// Whether the x axis counts whole units.
    integer: bool,
    legend: bool,
    /// Said instead of drawing empty axes.
    empty: Option<&'a str>,
}

impl Hist<'_> {
    fn show(&self, ui: &mut egui::Ui, add: impl FnOnce(&mut egui_plot::PlotUi<'_>)) {
        ui.label(self.title);
        if let Some(why) = self.empty {
            ui.weak(why);
            return;
        }
        let mut plot = super::page_plot(self.title)
            .height(170.0)
            .x_axis_label(self.x)
            .x_grid_spacer(tick_spacer(self.integer))
            .x_axis_formatter(|m, _| tick_label(m))
            .allow_scroll(false);
        if self.legend {
            plot = plot.legend(Legend::default().position(egui_plot::Corner::LeftTop));
        }
        plot.show(ui, add);
    }
}

/// Height of a heatmap's colour bar, in points.
const BAR_HEIGHT: f32 = 10.0;
/// Colour steps drawn along the bar.
const BAR_STEPS: usize = 64;

/// A heatmap's colour scale: a bar of its colours as wide as the heatmap (`x`, its frame's
/// span) with the values of its ends and middle below.
fn legend_bar(ui: &mut egui::Ui, scale: &Scale, x: egui::Rangef) {
    let font = egui::TextStyle::Small.resolve(ui.style());
    let text_h = ui.text_style_height(&egui::TextStyle::Small);
    let (rect, resp) = ui.allocate_exact_size(
        egui::vec2(ui.available_width(), BAR_HEIGHT + 2.0 + text_h),
        egui::Sense::hover(),
    );
    let painter = ui.painter_at(rect);
    let rect = egui::Rect::from_x_y_ranges(x, rect.y_range());
    let [lo, hi] = scale.range();
    let step = rect.width() / BAR_STEPS as f32;
    for i in 0..BAR_STEPS {
        let v = lo + (hi - lo) * (i as f32 + 0.5) / BAR_STEPS as f32;
        let x = rect.left() + step * i as f32;
        let cell = egui::Rect::from_min_size(
            egui::pos2(x, rect.top()),
            egui::vec2(step + 0.5, BAR_HEIGHT),
        );
        painter.rect_filled(cell, 0.0, scale.color(v));
    }
    let color = ui.visuals().text_color();
    let y = rect.top() + BAR_HEIGHT + 2.0;
    for ((v, text), align) in scale.ticks().into_iter().zip([
        egui::Align2::LEFT_TOP,
        egui::Align2::CENTER_TOP,
        egui::Align2::RIGHT_TOP,
    ]) {
        let x = rect.left() + rect.width() * (v - lo) / (hi - lo);
        painter.text(egui::pos2(x, y), align, text, font.clone(), color);
    }
    resp.on_hover_text(
        "Colour scale; values beyond its ends (the 99th percentile of |value|) take the end colours",
    );
}

/// The label of a heatmap row tick: rows are drawn downwards at y = −row ("0", never "-0").
fn row_tick(y: f64) -> String {
    format!("{}", 0.0 - y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_rows_are_labelled_without_a_minus_zero() {
        assert_eq!(row_tick(0.0), "0");
        assert_eq!(row_tick(-0.0), "0");
        assert_eq!(row_tick(-12.0), "12");
    }

    #[test]
    fn clicks_map_to_blocks() {
        // 4×16 matrix, blocks of 8: row 1, column 9 is element 25, block 3.
        assert_eq!(block_at(PlotPoint::new(9.5, -1.5), 4, 16, 8), Some(3));
        assert_eq!(block_at(PlotPoint::new(0.1, -0.1), 4, 16, 8), Some(0));
        assert_eq!(block_at(PlotPoint::new(16.5, -1.0), 4, 16, 8), None);
        assert_eq!(block_at(PlotPoint::new(3.0, 0.5), 4, 16, 8), None);
    }
}
