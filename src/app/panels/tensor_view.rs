//! Tensor tab: heatmaps of the original, reconstructed and error matrices (zoom and pan through
//! egui_plot; click a block to inspect it) and histograms of weights, block errors, seeds,
//! exponents and coefficients.

use super::{Tab, histogram, histogram_chart};
use crate::app::command::{Command, TabId};
use crate::app::document::{TensorEntry, TensorResult};
use crate::app::heatmap::{MAX_SIDE, Pool, colorize, pool, scale_limit};
use crate::app::jobs::Task;
use crate::app::state::AppState;
use egui::{Color32, TextureHandle, TextureOptions};
use egui_plot::{HoverPosition, Legend, Plot, PlotImage, PlotPoint, PlotPoints, Polygon};

/// Identifies a tensor state: document, tensor index, result generation.
type Key = (u64, usize, u64);

/// Histograms as (bin centre, count).
struct Hists {
    weights: Vec<(f64, f64)>,
    weights_recon: Vec<(f64, f64)>,
    block_err: Vec<(f64, f64)>,
    seeds: Vec<(f64, f64)>,
    exps: Vec<(f64, f64)>,
    qs: Vec<(f64, f64)>,
}

/// Heatmap images (original, reconstructed, error) and histograms of one tensor state,
/// computed on a background thread since large tensors take a while.
struct Prepared {
    images: [Option<egui::ColorImage>; 3],
    hists: Hists,
}

/// What is on screen, rebuilt only when the tensor or its result changes.
struct Cached {
    key: Key,
    textures: [Option<TextureHandle>; 3],
    hists: Hists,
}

/// The tensor tab's own state.
#[derive(Default)]
pub struct TensorView {
    cache: Option<Cached>,
    pending: Option<(Key, Task<Prepared>)>,
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
        let key = (
            state.doc.id,
            ti,
            t.result.as_ref().map_or(0, |r| r.generation),
        );
        if self.cache.as_ref().is_none_or(|c| c.key != key) {
            self.prepare(ui.ctx(), key, t);
        }
        let Some(cache) = self.cache.as_ref().filter(|c| c.key == key) else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("preparing heatmaps and histograms…");
            });
            return;
        };
        let (rows, cols) = t.matrix_dims();
        let c = t.result.as_ref().map_or(1, |r| r.compressed.config.c);
        let marked = state.inspect.filter(|b| b.tensor == ti).map(|b| b.block);
        let link = ui.scope_id().with("heatmaps");
        ui.columns(3, |col| {
            for ((ui, title), tex) in col
                .iter_mut()
                .zip(["original w", "reconstructed ŵ", "error |w − ŵ|"])
                .zip(&cache.textures)
            {
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
                            plot.polygon(block_outline(b, c, cols));
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
        histograms(ui, &cache.hists);
    }

    fn busy(&self) -> bool {
        self.pending.is_some()
    }
}

impl TensorView {
    /// Starts, or collects, the background preparation of tensor state `key`.
    fn prepare(&mut self, ctx: &egui::Context, key: Key, t: &TensorEntry) {
        if self.pending.as_ref().is_none_or(|(k, _)| *k != key) {
            let (orig, res, dims) = (t.original.clone(), t.result.clone(), t.matrix_dims());
            let task = Task::spawn(move |_, _| {
                prepare(orig.as_deref().map(Vec::as_slice), res.as_deref(), dims)
            });
            self.pending = Some((key, task));
        }
        let Some((_, task)) = &self.pending else {
            return;
        };
        let Some(done) = task.poll() else { return };
        self.pending = None;
        // Only a panicking worker yields no result; the tab then stays empty.
        let Ok(p) = done else { return };
        let [a, b, c] = p.images;
        let load = |img: Option<egui::ColorImage>, what: &str| {
            img.map(|i| {
                ctx.load_texture(
                    format!("{}:{what}:{key:?}", t.name),
                    i,
                    TextureOptions::NEAREST,
                )
            })
        };
        self.cache = Some(Cached {
            key,
            textures: [load(a, "w"), load(b, "recon"), load(c, "err")],
            hists: p.hists,
        });
    }
}

/// The block under plot point `p` (x = column, y = −row) of a `rows × cols` matrix cut into
/// blocks of `c` consecutive elements.
pub fn block_at(p: PlotPoint, rows: usize, cols: usize, c: usize) -> Option<usize> {
    let (col, row) = (p.x.floor(), (-p.y).floor());
    let inside = col >= 0.0 && row >= 0.0 && (col as usize) < cols && (row as usize) < rows;
    inside.then(|| (row as usize * cols + col as usize) / c.max(1))
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
    let shape = t
        .shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
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
                None => ui.label("opened from a packed file: the original is not available"),
            };
        }
        None => {
            ui.label("not compressed yet");
        }
    }
}

fn image(data: &[f32], (rows, cols): (usize, usize), how: Pool) -> egui::ColorImage {
    let p = pool(data, rows, cols, MAX_SIDE, how);
    let limit = scale_limit(&p.values);
    colorize(&p, limit, how == Pool::Mean)
}

fn prepare(orig: Option<&[f32]>, res: Option<&TensorResult>, dims: (usize, usize)) -> Prepared {
    let recon = res.map(|r| r.recon.as_slice());
    let err: Option<Vec<f32>> = match (orig, recon) {
        (Some(o), Some(r)) => Some(o.iter().zip(r).map(|(a, b)| a - b).collect()),
        _ => None,
    };
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
    Prepared {
        images: [
            orig.map(|o| image(o, dims, Pool::Mean)),
            recon.map(|r| image(r, dims, Pool::Mean)),
            err.map(|e| image(&e, dims, Pool::Rms)),
        ],
        hists: Hists {
            weights: weights(orig),
            weights_recon: weights(recon),
            block_err,
            seeds,
            exps,
            qs,
        },
    }
}

fn histograms(ui: &mut egui::Ui, c: &Hists) {
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
                    let pts: Vec<[f64; 2]> = c.weights_recon.iter().map(|&(x, n)| [x, n]).collect();
                    p.line(
                        egui_plot::Line::new("reconstructed ŵ", PlotPoints::new(pts))
                            .color(orange)
                            .width(2.0),
                    );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_map_to_blocks() {
        // 4×16 matrix, blocks of 8: row 1, column 9 is element 25, block 3.
        assert_eq!(block_at(PlotPoint::new(9.5, -1.5), 4, 16, 8), Some(3));
        assert_eq!(block_at(PlotPoint::new(0.1, -0.1), 4, 16, 8), Some(0));
        assert_eq!(block_at(PlotPoint::new(16.5, -1.0), 4, 16, 8), None);
        assert_eq!(block_at(PlotPoint::new(3.0, 0.5), 4, 16, 8), None);
    }
}
