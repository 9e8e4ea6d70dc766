//! Tensor tab: heatmaps of the original, reconstructed and error matrices (zoom and pan through
//! egui_plot; click a block to inspect it) and histograms of weights, block errors, seeds,
//! exponents and coefficients.

use super::{Tab, histogram, histogram_chart};
use crate::app::command::{Command, TabId};
use crate::app::document::TensorEntry;
use crate::app::heatmap::{MAX_SIDE, Pool, colorize, pool, scale_limit};
use crate::app::state::AppState;
use egui::{Color32, TextureHandle, TextureOptions};
use egui_plot::{HoverPosition, Legend, Plot, PlotImage, PlotPoint, PlotPoints, Polygon};

/// Histograms and textures of one tensor state, rebuilt only when the tensor or its result
/// changes.
struct Cached {
    key: (u64, usize, u64),
    original: Option<TextureHandle>,
    recon: Option<TextureHandle>,
    error: Option<TextureHandle>,
    weights: Vec<(f64, f64)>,
    weights_recon: Vec<(f64, f64)>,
    block_err: Vec<(f64, f64)>,
    seeds: Vec<(f64, f64)>,
    exps: Vec<(f64, f64)>,
    qs: Vec<(f64, f64)>,
}

/// The tensor tab's own state.
#[derive(Default)]
pub struct TensorView {
    cache: Option<Cached>,
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
        let key = (state.doc.id, ti, t.result.as_ref().map_or(0, |r| r.generation));
        if self.cache.as_ref().is_none_or(|c| c.key != key) {
            self.cache = Some(build(ui.ctx(), key, t));
        }
        let Some(cache) = &self.cache else { return };
        let (rows, cols) = t.matrix_dims();
        let c = t.result.as_ref().map_or(1, |r| r.compressed.config.c);
        let marked = state.inspect.filter(|b| b.tensor == ti).map(|b| b.block);
        let link = ui.scope_id().with("heatmaps");
        ui.columns(3, |col| {
            for (ui, (title, tex)) in col.iter_mut().zip([
                ("original w", &cache.original),
                ("reconstructed ŵ", &cache.recon),
                ("error |w − ŵ|", &cache.error),
            ]) {
                ui.label(title);
                let Some(tex) = tex else {
                    ui.label("(not available)");
                    continue;
                };
                let resp = Plot::new(title)
                    .height(260.0)
                    .data_aspect(1.0)
                    .link_axis(link, true)
                    .link_cursor(link, true)
                    .y_axis_formatter(|m, _| format!("{}", -m.value))
                    .label_formatter(|h| {
                        let (HoverPosition::NearDataPoint { position: p, .. }
                        | HoverPosition::Elsewhere { position: p }) = h;
                        Some(format!("row {}, col {}", (-p.y).floor(), p.x.floor()))
                    })
                    .show(ui, |plot| {
                        plot.image(PlotImage::new(
                            title,
                            tex.id(),
                            PlotPoint::new(cols as f64 / 2.0, -(rows as f64) / 2.0),
                            [cols as f32, rows as f32],
                        ));
                        if let Some(b) = marked {
                            let start = b * c;
                            let (r, c0) = ((start / cols) as f64, (start % cols) as f64);
                            let c1 = (c0 + c as f64).min(cols as f64);
                            plot.polygon(
                                Polygon::new(
                                    "inspected block",
                                    PlotPoints::new(vec![
                                        [c0, -r],
                                        [c1, -r],
                                        [c1, -r - 1.0],
                                        [c0, -r - 1.0],
                                    ]),
                                )
                                .stroke(egui::Stroke::new(2.0, Color32::GREEN))
                                .fill_color(Color32::TRANSPARENT),
                            );
                        }
                    });
                let transform = resp.transform;
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
        histograms(ui, cache);
    }
}

/// The block under plot point `p` (x = column, y = −row) of a `rows × cols` matrix cut into
/// blocks of `c` consecutive elements.
pub fn block_at(p: PlotPoint, rows: usize, cols: usize, c: usize) -> Option<usize> {
    let (col, row) = (p.x.floor(), (-p.y).floor());
    let inside = col >= 0.0 && row >= 0.0 && (col as usize) < cols && (row as usize) < rows;
    inside.then(|| (row as usize * cols + col as usize) / c.max(1))
}

fn header(ui: &mut egui::Ui, t: &TensorEntry) {
    ui.heading(&t.name);
    let shape = t
        .shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    ui.label(format!("shape {shape}, {}, {} weights", t.dtype, t.len()));
    match &t.result {
        Some(r) => {
            let cfg = r.compressed.config;
            ui.label(format!(
                "compressed with {cfg}, {} blocks, e_base {}",
                r.compressed.num_blocks(),
                r.compressed.e_base
            ));
            if let Some(s) = &r.stats {
                ui.label(format!(
                    "SNR: {:.2} dB, relative MSE {:.6}",
                    s.snr_db(),
                    s.relmse()
                ));
            }
        }
        None => {
            ui.label("not compressed yet");
        }
    }
}

fn texture(
    ctx: &egui::Context,
    name: String,
    data: &[f32],
    rows: usize,
    cols: usize,
    how: Pool,
) -> TextureHandle {
    let p = pool(data, rows, cols, MAX_SIDE, how);
    let limit = scale_limit(&p.values);
    ctx.load_texture(
        name,
        colorize(&p, limit, how == Pool::Mean),
        TextureOptions::NEAREST,
    )
}

fn build(ctx: &egui::Context, key: (u64, usize, u64), t: &TensorEntry) -> Cached {
    let (rows, cols) = t.matrix_dims();
    let orig = t.original.as_deref().map(Vec::as_slice);
    let res = t.result.as_deref();
    let recon = res.map(|r| r.recon.as_slice());
    let err: Option<Vec<f32>> = match (orig, recon) {
        (Some(o), Some(r)) => Some(o.iter().zip(r).map(|(a, b)| a - b).collect()),
        _ => None,
    };
    let name = |s: &str| format!("{}:{s}:{:?}", t.name, key);
    let lim = orig
        .or(recon)
        .map_or(1.0, |v| v.iter().fold(0.0f32, |m, x| m.max(x.abs())))
        .max(f32::MIN_POSITIVE) as f64;
    let weights = |v: Option<&[f32]>| {
        v.map_or_else(Vec::new, |v| {
            histogram(v.iter().map(|&x| f64::from(x)), -lim, lim, 81)
        })
    };
    let (mut block_err, mut seeds, mut exps, mut qs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Some(r) = res {
        let ct = &r.compressed;
        let p = ct.config.p;
        if let Some(s) = &r.stats {
            block_err = histogram(
                (0..ct.num_blocks()).map(|b| s.block_relmse(b).max(1e-12).log10()),
                -5.0,
                1.0,
                60,
            );
        }
        let top = (1u64 << ct.config.k) as f64;
        seeds = histogram(ct.blocks.iter().map(|b| f64::from(b.seed)), 0.0, top, 64);
        exps = histogram(
            (0..ct.num_blocks()).map(|b| f64::from(ct.exponent(b))),
            f64::from(ct.e_base) - 0.5,
            f64::from(ct.e_base) + 15.5,
            16,
        );
        qs = histogram(
            ct.blocks
                .iter()
                .flat_map(|b| b.q[..p].iter().map(|&q| f64::from(q))),
            -8.5,
            7.5,
            16,
        );
    }
    Cached {
        key,
        original: orig.map(|o| texture(ctx, name("w"), o, rows, cols, Pool::Mean)),
        recon: recon.map(|r| texture(ctx, name("recon"), r, rows, cols, Pool::Mean)),
        error: err.map(|e| texture(ctx, name("err"), &e, rows, cols, Pool::Rms)),
        weights: weights(orig),
        weights_recon: weights(recon),
        block_err,
        seeds,
        exps,
        qs,
    }
}

fn histograms(ui: &mut egui::Ui, c: &Cached) {
    ui.separator();
    let blue = Color32::from_rgba_unmultiplied(80, 140, 255, 150);
    let orange = Color32::from_rgba_unmultiplied(255, 150, 60, 150);
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.columns(2, |col| {
            hist_plot(
                &mut col[0],
                "Weights: original vs reconstructed",
                "value",
                |p| {
                    p.bar_chart(histogram_chart("original w", &c.weights, blue));
                    p.bar_chart(histogram_chart("reconstructed ŵ", &c.weights_recon, orange));
                },
            );
            hist_plot(
                &mut col[1],
                "Per-block error",
                "log10 relative MSE of a block",
                |p| {
                    p.bar_chart(histogram_chart("blocks", &c.block_err, orange));
                },
            );
        });
        ui.columns(3, |col| {
            hist_plot(
                &mut col[0],
                "Seeds (uniform use of the seed space?)",
                "seed",
                |p| {
                    p.bar_chart(histogram_chart("seeds", &c.seeds, blue));
                },
            );
            hist_plot(&mut col[1], "Exponents e", "e", |p| {
                p.bar_chart(histogram_chart("exponents", &c.exps, blue));
            });
            hist_plot(&mut col[2], "Coefficients q", "q", |p| {
                p.bar_chart(histogram_chart("q", &c.qs, blue));
            });
        });
    });
}

fn hist_plot(
    ui: &mut egui::Ui,
    title: &str,
    x: &str,
    add: impl FnOnce(&mut egui_plot::PlotUi<'_>),
) {
    ui.label(title);
    Plot::new(title)
        .height(170.0)
        .legend(Legend::default())
        .x_axis_label(x)
        .allow_scroll(false)
        .show(ui, add);
}
