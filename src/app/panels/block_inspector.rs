//! Block inspector: one block's w and ŵ, its seed (hex and register bits), exponent and
//! coefficients, the P basis columns U(s) scaled by t̂ that sum to ŵ, and a trial seed typed by
//! hand to see why the search chose the seed it did.

use super::Tab;
use crate::app::command::{Command, TabId};
use crate::app::document::PackedCodes;
use crate::app::state::{AppState, BlockRef};
use crate::core::basis::Basis;
use crate::core::quant::{ExpRange, pow2};
use crate::search::fit::{SeedFit, fit_seed};
use egui::Color32;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

/// The inspector's own state.
#[derive(Default)]
pub struct BlockInspector {
    index_text: String,
    trial_text: String,
    /// The block shown (with its document and result) when the trial was made.
    shown: Option<(u64, u64, BlockRef)>,
    trial: Option<Result<SeedFit, String>>,
}

impl Tab for BlockInspector {
    fn id(&self) -> TabId {
        TabId::Block
    }

    fn title(&self) -> &'static str {
        "Block inspector"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        let Some(ti) = state.inspect.map(|b| b.tensor).or(state.focus) else {
            ui.label("Select a compressed tensor, then click a block on its heatmap or type a block index.");
            return;
        };
        let t = &state.doc.tensors[ti];
        ui.heading(&t.name);
        let Some(res) = &t.result else {
            ui.label("This tensor is not compressed yet: compress it to inspect its blocks.");
            return;
        };
        let ct = &res.compressed;
        let n = ct.num_blocks();
        if n == 0 {
            ui.label("This tensor is empty.");
            return;
        }
        // A block index from an earlier result (other settings) may be past the end.
        let current = state.inspect.filter(|b| b.tensor == ti && b.block < n);
        let key = current.map(|b| (state.doc.id, res.generation, b));
        if key != self.shown {
            self.shown = key;
            self.trial = None;
            if let Some(b) = current {
                self.index_text = b.block.to_string();
            }
        }
        ui.horizontal(|ui| {
            let l = ui.label("Block index");
            let resp = ui
                .add(egui::TextEdit::singleline(&mut self.index_text).desired_width(80.0))
                .labelled_by(l.id)
                .on_hover_text(format!("0 to {}; press Enter or Show", n - 1));
            let enter = resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Show").clicked() || enter {
                match self.index_text.trim().parse::<usize>() {
                    Ok(b) if b < n => out.push(Command::Inspect {
                        tensor: ti,
                        block: b,
                    }),
                    _ => self.trial = Some(Err(format!("block index must be 0 to {}", n - 1))),
                }
            }
            if let Some(b) = current {
                if ui
                    .add_enabled(b.block > 0, egui::Button::new("< previous"))
                    .clicked()
                {
                    out.push(Command::Inspect {
                        tensor: ti,
                        block: b.block - 1,
                    });
                }
                if ui
                    .add_enabled(b.block + 1 < n, egui::Button::new("next >"))
                    .clicked()
                {
                    out.push(Command::Inspect {
                        tensor: ti,
                        block: b.block + 1,
                    });
                }
            }
            if let Some(stats) = &res.stats
                && ui
                    .button("worst block")
                    .on_hover_text("Jump to the block with the largest relative error")
                    .clicked()
            {
                let worst =
                    (0..n).max_by(|&a, &b| stats.block_relmse(a).total_cmp(&stats.block_relmse(b)));
                if let Some(block) = worst {
                    out.push(Command::Inspect { tensor: ti, block });
                }
            }
            ui.label(format!("{n} blocks"));
        });
        let Some(BlockRef { block: b, .. }) = current else {
            ui.label("Type a block index, or click a block on the Tensor tab's heatmaps.");
            return;
        };
        let cfg = ct.config;
        let (c, p) = (cfg.c, cfg.p);
        let basis = Basis::for_k(cfg.k);
        // ŵ by the decoder's exact arithmetic.
        let mut what = vec![0.0f64; c];
        let code = match ct
            .reconstruct_block(&basis, b, &mut what)
            .and_then(|()| ct.block(b))
        {
            Ok(code) => code,
            // A packed file's records that fail their check on this first read.
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e.to_string());
                return;
            }
        };
        let e = ct.e_base + i32::from(code.e_code);
        let range = ExpRange::from_base(ct.e_base);
        // w, zero-padded like the encoder pads the last block.
        let w: Option<Vec<f32>> = t.source.as_ref().and_then(|s| {
            let n = s.len();
            let mut v = s.read_range((b * c).min(n)..((b + 1) * c).min(n)).ok()?;
            v.resize(c, 0.0);
            Some(v)
        });
        let chosen = w.as_ref().and_then(|w| fit_seed(cfg, w, code.seed, range));
        let norm2: Option<f64> = w
            .as_ref()
            .map(|w| w.iter().map(|&x| f64::from(x).powi(2)).sum());
        let that: Vec<f64> = code.q[..p]
            .iter()
            .map(|&q| f64::from(q) * pow2(e))
            .collect();
        egui::Grid::new("block_facts")
            .num_columns(2)
            .striped(true)
            .show(ui, |ui| {
                ui.label("Seed")
                    .on_hover_text("The LFSR register state the basis grows from");
                ui.label(format!(
                    "0x{:0w$X} ({})",
                    code.seed,
                    code.seed,
                    w = (cfg.k as usize).div_ceil(4)
                ));
                ui.end_row();
                ui.label("Register")
                    .on_hover_text("The seed's K register bits, bit K−1 first");
                ui.vertical(|ui| {
                    ui.monospace(format!("{:0k$b}", code.seed, k = cfg.k as usize));
                    ui.monospace(tap_marks(cfg.k))
                        .on_hover_text("^ marks the tap bits XORed into the new bit at each step");
                });
                ui.end_row();
                ui.label("Exponent")
                    .on_hover_text("Stored 4-bit code E; e = e_base + E");
                ui.label(format!(
                    "E = {}, e = {} + {} = {e}",
                    code.e_code, ct.e_base, code.e_code
                ));
                ui.end_row();
                ui.label("Coefficients q")
                    .on_hover_text("4-bit two's complement, in [−8, 7]");
                ui.monospace(format!("{:?}", &code.q[..p]));
                ui.end_row();
                ui.label(t_hat_rule(ui));
                ui.monospace(fmt_vec(&that));
                ui.end_row();
                if let (Some(fit), Some(n2)) = (&chosen, norm2) {
                    ui.label("Block error")
                        .on_hover_text("|w − ŵ|² and relative to |w|²");
                    ui.label(format!(
                        "|w − ŵ|² = {:.4e}, relative {:.5}",
                        fit.result.err,
                        crate::search::compress::relmse(fit.result.err, n2)
                    ));
                    ui.end_row();
                }
            });
        // Room above the data for the legend, which would cover bars and lines otherwise.
        let top = what
            .iter()
            .map(|x| x.abs())
            .chain(w.iter().flatten().map(|&x| f64::from(x).abs()))
            .chain(that.iter().map(|x| x.abs()))
            .fold(0.0, f64::max);
        ui.columns(2, |col| {
            col[0].label("w (blue) and ŵ (orange) per position");
            block_plot("w_vs_what", top).show(&mut col[0], |plot| {
                if let Some(w) = &w {
                    plot.bar_chart(bars(
                        "w",
                        w.iter().map(|&x| f64::from(x)),
                        -0.2,
                        Color32::from_rgb(80, 140, 255),
                    ));
                }
                plot.bar_chart(bars(
                    "ŵ",
                    what.iter().copied(),
                    0.0,
                    Color32::from_rgb(255, 150, 60),
                ));
                if let Some(Ok(fit)) = &self.trial {
                    let mut tw = vec![0.0; c];
                    let mut v = vec![0i64; c * p];
                    basis.centred_at(basis.index_of(fit.result.seed), &mut v);
                    crate::core::quant::reconstruct_into(
                        &v,
                        p,
                        &fit.result.quant,
                        basis.denom(),
                        &mut tw,
                    );
                    plot.bar_chart(bars(
                        "ŵ (trial seed)",
                        tw.into_iter(),
                        0.2,
                        Color32::from_rgb(90, 200, 120),
                    ));
                }
            });
            col[1].label("U(s) columns scaled by q·2^e: the parts that sum to ŵ");
            let u = basis.u_matrix(code.seed, c, p);
            block_plot("parts", top).show(&mut col[1], |plot| {
                for j in 0..p {
                    let pts: Vec<[f64; 2]> =
                        (0..c).map(|i| [i as f64, u[i * p + j] * that[j]]).collect();
                    plot.line(
                        Line::new(part_name(j), PlotPoints::new(pts))
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                }
                let sum: Vec<[f64; 2]> = (0..c).map(|i| [i as f64, what[i]]).collect();
                plot.line(Line::new("ŵ = Σ parts", PlotPoints::new(sum)).width(3.0));
            });
        });
        ui.separator();
        let shown = ShownBlock {
            ct,
            block: b,
            w: w.as_deref(),
            chosen: chosen.as_ref(),
            norm2,
        };
        self.trial_ui(ui, &shown);
    }
}

/// The block the inspector shows, as the trial seed is set against it.
struct ShownBlock<'a> {
    ct: &'a PackedCodes,
    block: usize,
    /// Its original weights, zero-padded (`None` when the source is not available).
    w: Option<&'a [f32]>,
    /// The fit of the seed the search chose.
    chosen: Option<&'a SeedFit>,
    /// |w|².
    norm2: Option<f64>,
}

impl BlockInspector {
    fn trial_ui(&mut self, ui: &mut egui::Ui, shown: &ShownBlock<'_>) {
        let (ct, b) = (shown.ct, shown.block);
        let cfg = ct.config;
        ui.heading("Try another seed");
        let Some(w) = shown.w else {
            ui.label("The original weights are not available, so other seeds cannot be scored.");
            return;
        };
        let mut go = None;
        ui.horizontal(|ui| {
            let l = ui.label("Trial seed");
            let resp = ui
                .add(
                    egui::TextEdit::singleline(&mut self.trial_text)
                        .desired_width(100.0)
                        .hint_text("0xACE1 or 44257"),
                )
                .labelled_by(l.id)
                .on_hover_text(format!(
                    "A register state from 1 to {} (hex with 0x, or decimal)",
                    cfg.period()
                ));
            let enter = resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui
                .button("Try")
                .on_hover_text("Fit this block with the trial seed")
                .clicked()
                || enter
            {
                go = Some(parse_seed(&self.trial_text));
            }
            let base = match &self.trial {
                Some(Ok(f)) => f.result.seed,
                // Decoded already by `ui`, which returns before this on an error.
                _ => ct.block(b).map_or(1, |code| code.seed),
            };
            let top = cfg.period() as u32;
            if ui.button("seed − 1").clicked() {
                go = Some(Some(if base <= 1 { top } else { base - 1 }));
            }
            if ui.button("seed + 1").clicked() {
                go = Some(Some(if base >= top { 1 } else { base + 1 }));
            }
        });
        if let Some(seed) = go {
            let range = ExpRange::from_base(ct.e_base);
            self.trial = Some(match seed.and_then(|s| fit_seed(cfg, w, s, range)) {
                Some(fit) => {
                    self.trial_text = format!("0x{:X}", fit.result.seed);
                    Ok(fit)
                }
                None => Err(format!(
                    "not a seed: enter a register state from 1 to {}",
                    cfg.period()
                )),
            });
        }
        match &self.trial {
            Some(Ok(fit)) => {
                let n2 = shown.norm2.unwrap_or(0.0);
                ui.label(format!(
                    "Trial seed 0x{:X}: e = {}, q = {:?}, |w − ŵ|² = {:.4e} (relative {:.5}); least-squares floor before quantizing {:.4e}",
                    fit.result.seed,
                    fit.result.quant.e,
                    &fit.result.quant.q[..cfg.p],
                    fit.result.err,
                    crate::search::compress::relmse(fit.result.err, n2),
                    fit.residual
                ));
                if let Some(best) = shown.chosen {
                    let ratio = if best.result.err > 0.0 {
                        fit.result.err / best.result.err
                    } else {
                        f64::INFINITY
                    };
                    ui.label(if fit.result.seed == best.result.seed {
                        "This is the seed the search chose.".to_string()
                    } else {
                        format!(
                            "The search's seed 0x{:X} gives {:.4e}: the trial seed's error is {ratio:.2}× larger. The search tried all {} seeds and kept the smallest quantized error.",
                            best.result.seed,
                            best.result.err,
                            cfg.period()
                        )
                    });
                }
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {
                ui.label("Type a seed to see how well it reconstructs this block.");
            }
        }
    }
}

/// Parses "0x1F2E", "1f2e" with 0x only, or decimal.
fn parse_seed(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A line with `^` under the register's tap bits (bit K−1 leftmost, as the register is shown).
fn tap_marks(k: u32) -> String {
    let taps = crate::core::lfsr::taps(k).unwrap_or(&[]);
    (0..k)
        .rev()
        .map(|bit| if taps.contains(&bit) { '^' } else { ' ' })
        .collect()
}

fn fmt_vec(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.4e}")).collect();
    format!("[{}]", parts.join(", "))
}

fn bars(name: &str, v: impl Iterator<Item = f64>, offset: f64, color: Color32) -> BarChart {
    BarChart::new(
        name,
        v.enumerate()
            .map(|(i, y)| Bar::new(i as f64 + offset, y).width(0.2))
            .collect(),
    )
    .color(color)
}

/// "t̂ = q·2ᵉ" drawn from glyphs egui's bundled fonts have: they lack the combining hat and a
/// superscript e, so the hat (ˆ) is pulled back over the t and the e is set small and raised.
pub fn t_hat_rule(ui: &egui::Ui) -> egui::text::LayoutJob {
    use egui::text::{LayoutJob, TextFormat};
    let font = egui::TextStyle::Body.resolve(ui.style());
    let color = ui.visuals().text_color();
    let t_width = ui.fonts_mut(|f| f.glyph_width(&font, 't'));
    let hat_width = ui.fonts_mut(|f| f.glyph_width(&font, HAT));
    let normal = TextFormat::simple(font.clone(), color);
    let mut job = LayoutJob::default();
    // The spacing applies between the two letters of this section: it moves the hat back.
    job.append(
        &format!("t{HAT}"),
        0.0,
        TextFormat {
            extra_letter_spacing: -(t_width + hat_width) / 2.0,
            ..normal.clone()
        },
    );
    job.append(" = q·2", 0.0, normal);
    let small = egui::FontId::new(font.size * 0.7, font.family);
    job.append(
        "e",
        0.0,
        TextFormat {
            valign: egui::Align::TOP,
            ..TextFormat::simple(small, color)
        },
    );
    job
}

/// The hat drawn over t (U+02C6, which the bundled fonts have).
const HAT: char = '\u{2C6}';

/// The legend name of basis column `j` scaled by its coefficient: "U[:,0]·q₀·2^e" (t̂ cannot
/// be drawn in a legend with the bundled fonts; 2^e is a power, as the caret says).
pub fn part_name(j: usize) -> String {
    let sub: String = j
        .to_string()
        .chars()
        .filter_map(|d| d.to_digit(10).and_then(|d| char::from_u32(0x2080 + d)))
        .collect();
    format!("U[:,{j}]·q{sub}·2^e")
}

/// A plot over the positions of one block, with room above the bars for the legend.
fn block_plot(id: &str, top: f64) -> Plot<'_> {
    super::page_plot(id)
        .height(300.0)
        .include_y(-top)
        .include_y(top * 1.9)
        .legend(Legend::default())
        .x_axis_label("position in block")
        .x_grid_spacer(super::tick_spacer(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_marks_sit_under_the_tap_bits() {
        // K=16 taps are bits 0, 1, 3 and 12 (docs/DESIGN.md); bit 15 is leftmost.
        assert_eq!(tap_marks(16), "   ^        ^ ^^");
    }

    #[test]
    fn notation_uses_glyphs_the_bundled_fonts_have() {
        assert_eq!(part_name(0), "U[:,0]·q₀·2^e");
        assert_eq!(part_name(12), "U[:,12]·q₁₂·2^e");
        let ctx = egui::Context::default();
        let mut text = String::new();
        ctx.run_ui(Default::default(), |ui| {
            text = t_hat_rule(ui).text;
        })
        .textures_delta
        .clear();
        assert_eq!(text, "tˆ = q·2e");
        // Nothing shows as a missing-glyph box.
        let font = egui::FontId::proportional(14.0);
        let all = format!("{text}{}", part_name(12));
        let missing: Vec<char> = all
            .chars()
            .filter(|&c| !ctx.fonts_mut(|f| f.has_glyph(&font, c)))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn seeds_parse_in_hex_and_decimal() {
        assert_eq!(parse_seed("0xACE1"), Some(0xACE1));
        assert_eq!(parse_seed(" 44257 "), Some(44257));
        assert_eq!(parse_seed("zz"), None);
    }
}
