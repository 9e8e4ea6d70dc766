//! Generate tab: where does compression change what the model says? The original and the
//! in-app compression state (every compressed tensor applied, nothing exported) continue the
//! same prompt side by side; each compressed token is tinted by the divergence of the two
//! models' next-token distributions at its position (docs/DESIGN.md §5), and pointing at it
//! shows both models' most likely next tokens.

use super::{Tab, job_progress};
use crate::app::command::{Command, TabId};
use crate::app::generate::{MAX_TOKENS, Run};
use crate::app::quality;
use crate::app::state::AppState;
use crate::app::work::{JobKind, Work};
use crate::eval::Family;
use crate::eval::divergence::{Continuation, Likely, Position, TOP};
use crate::infer::generate::Sampling;
use egui::{Color32, RichText};

/// KL (nats) at the bottom of the colour scale's log part: smaller ones look alike.
const KL_FLOOR: f64 = 1e-3;
/// KL (nats) at the top of the colour scale; larger ones take its last colour.
const KL_TOP: f64 = 1.0;

/// The Generate tab's own widget state.
pub struct Generate {
    prompt: String,
    max_tokens: usize,
    sampling: Sampling,
}

impl Default for Generate {
    fn default() -> Self {
        Generate {
            prompt: "It is a truth universally acknowledged, that".into(),
            max_tokens: 48,
            sampling: Sampling::default(),
        }
    }
}

impl Tab for Generate {
    fn id(&self) -> TabId {
        TabId::Generate
    }

    fn title(&self) -> &'static str {
        "Generate"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.label(
            "The original model and its current compressed state (every compressed tensor \
             applied) each continue the prompt: greedily at temperature 0, else sampled with the same \
             seed for both. Each compressed token is tinted by \
             KL(p_original || p_compressed) of the next-token distributions at its position, \
             both models reading the compressed continuation; point at a token to see both \
             models' five most likely next tokens there.",
        );
        let why = match &state.doc.family {
            Ok(Family::Decoder) => None,
            Ok(Family::Encoder) => Some(format!(
                "{} is an encoder (BERT family), which does not generate text: open a decoder \
                 LM (llama, mistral, qwen2)",
                state.doc.title
            )),
            Err(e) => Some(e.clone()),
        };
        if let Some(why) = why {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("Generate is unavailable: {why}."),
            );
            return;
        }
        self.controls(ui, state, out);
        let Some(run) = state.results.generate.as_ref().map(|k| &k.value) else {
            return;
        };
        if run.key != quality::state_key(&state.doc) {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "Computed on an earlier compression state: generate again to update.",
            );
        }
        ui.separator();
        result(ui, run);
    }
}

impl Generate {
    fn controls(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            let l = ui.label("Prompt");
            ui.add(
                egui::TextEdit::multiline(&mut self.prompt)
                    .desired_rows(2)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            if let Some(j) = state.running(JobKind::Generate) {
                job_progress(ui, j, JobKind::Generate, out);
                let (done, total) = j.progress();
                ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32));
                return;
            }
            let l = ui.label("Max tokens");
            ui.add(egui::DragValue::new(&mut self.max_tokens).range(1..=MAX_TOKENS))
                .labelled_by(l.id);
            let l = ui.label("Temperature");
            ui.add(
                egui::DragValue::new(&mut self.sampling.temperature)
                    .range(0.0..=2.0)
                    .speed(0.05),
            )
            .labelled_by(l.id)
            .on_hover_text("0 is greedy: the most likely token, ties to the lowest id");
            let sampled = self.sampling.temperature > 0.0;
            ui.add_enabled_ui(sampled, |ui| {
                let l = ui.label("Top-p");
                ui.add(
                    egui::DragValue::new(&mut self.sampling.top_p)
                        .range(0.05..=1.0)
                        .speed(0.01),
                )
                .labelled_by(l.id);
                let l = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.sampling.seed))
                    .labelled_by(l.id);
            });
            let compressed = state
                .doc
                .tensors
                .iter()
                .filter(|t| t.result.is_some())
                .count();
            let go = ui
                .add_enabled(compressed > 0, egui::Button::new("Generate continuations"))
                .on_disabled_hover_text("Compress some tensors first");
            if go.clicked() {
                out.push(Command::Run(Work::Generate {
                    prompt: self.prompt.clone(),
                    max_tokens: self.max_tokens,
                    sampling: self.sampling,
                }));
            }
            ui.label(format!("{compressed} compressed tensor(s)"));
        });
    }
}

/// The two continuations side by side and the colour scale.
fn result(ui: &mut egui::Ui, run: &Run) {
    let d = &run.divergence;
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!("Prompt ({} tokens):", d.prompt.len()));
        ui.label(&run.prompt);
        let s = &run.sampling;
        ui.weak(if s.temperature > 0.0 {
            format!(
                "(sampled at temperature {}, top-p {}, seed {})",
                s.temperature, s.top_p, s.seed
            )
        } else {
            "(greedy)".into()
        });
    });
    legend(ui);
    ui.columns(2, |cols| {
        continuation(&mut cols[0], "Original", &d.original, None);
        continuation(
            &mut cols[1],
            "Compressed",
            &d.compressed,
            Some(&d.positions),
        );
    });
}

/// One model's continuation under its speed; with `positions`, each token tinted by its
/// divergence and showing both top lists on hover.
fn continuation(ui: &mut egui::Ui, name: &str, c: &Continuation, positions: Option<&[Position]>) {
    let mut head = format!(
        "{name}: {} tokens at {:.1} tokens/s (prompt {:.1} tokens/s)",
        c.tokens.len(),
        c.stats.generate_rate(),
        c.stats.prompt_rate()
    );
    if let Some(p) = positions.filter(|p| !p.is_empty()) {
        let mean = p.iter().map(|p| p.kl).sum::<f64>() / p.len() as f64;
        head += &format!(", mean KL {mean:.4} nats");
    }
    ui.strong(head);
    ui.horizontal_wrapped(|ui| {
        // A hairline between tokens shows where each one starts.
        ui.spacing_mut().item_spacing.x = 1.0;
        for (i, piece) in c.pieces.iter().enumerate() {
            let text = RichText::new(shown(ui.ctx(), piece)).monospace();
            match positions.and_then(|p| p.get(i)) {
                None => {
                    ui.label(text);
                }
                Some(p) => {
                    let tinted = text.color(Color32::BLACK).background_color(tint(p.kl));
                    ui.label(tinted)
                        .on_hover_ui(|ui| top_lists(ui, p, c.tokens[i], piece));
                }
            }
        }
    });
}

/// A token's text as drawn in `ctx`'s monospace font: line breaks, tabs and characters no
/// font can draw escaped, an empty piece (a token that only begins a character) as a dot.
pub fn shown(ctx: &egui::Context, piece: &str) -> String {
    if piece.is_empty() {
        return "·".into();
    }
    let font = egui::TextStyle::Monospace.resolve(&ctx.global_style());
    ctx.fonts_mut(|f| {
        piece
            .chars()
            .map(|c| match c {
                '\n' => "\\n".into(),
                '\t' => "\\t".into(),
                c if f.has_glyph(&font, c) => c.to_string(),
                c => c.escape_unicode().to_string(),
            })
            .collect()
    })
}

/// The colour of a divergence: a log scale from [`KL_FLOOR`] to [`KL_TOP`] nats.
fn tint(kl: f64) -> Color32 {
    let t = scale(kl);
    let c = colorous::YELLOW_ORANGE_RED.eval_continuous(0.05 + 0.85 * t);
    Color32::from_rgb(c.r, c.g, c.b)
}

/// Where `kl` sits on the colour scale, in [0, 1].
fn scale(kl: f64) -> f64 {
    ((1.0 + kl.max(0.0) / KL_FLOOR).log10() / (1.0 + KL_TOP / KL_FLOOR).log10()).min(1.0)
}

/// The colour scale with its ticks.
fn legend(ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.label("KL (nats):");
        let (rect, _) = ui.allocate_exact_size(egui::vec2(300.0, 28.0), egui::Sense::hover());
        let bar = egui::Rect::from_min_size(rect.min, egui::vec2(rect.width(), 12.0));
        let painter = ui.painter_at(rect);
        let steps = 60;
        for s in 0..steps {
            let (a, b) = (s as f32 / steps as f32, (s + 1) as f32 / steps as f32);
            let x = |t: f32| bar.left() + t * bar.width();
            let cell = egui::Rect::from_x_y_ranges(x(a)..=x(b), bar.y_range());
            // The colour at the cell's middle, mapped back from the scale to a KL.
            let mid = f64::from(a + b) / 2.0;
            let kl = KL_FLOOR * ((1.0 + KL_TOP / KL_FLOOR).powf(mid) - 1.0);
            painter.rect_filled(cell, 0.0, tint(kl));
        }
        let color = ui.visuals().text_color();
        for (kl, label) in [(0.0, "0"), (0.01, "0.01"), (0.1, "0.1"), (KL_TOP, "1")] {
            let x = bar.left() + scale(kl) as f32 * bar.width();
            let align = if kl >= KL_TOP {
                egui::Align2::RIGHT_TOP
            } else if kl <= 0.0 {
                egui::Align2::LEFT_TOP
            } else {
                egui::Align2::CENTER_TOP
            };
            painter.text(
                egui::pos2(x, bar.bottom() + 1.0),
                align,
                label,
                egui::FontId::proportional(11.0),
                color,
            );
        }
    });
}

/// Both models' most likely next tokens at one position; `chosen` is the compressed model's
/// token there and `piece` its text.
fn top_lists(ui: &mut egui::Ui, p: &Position, chosen: u32, piece: &str) {
    ui.label(format!(
        "The compressed model chose \"{}\" (underlined below)",
        shown(ui.ctx(), piece)
    ));
    ui.label(format!("KL(p_original || p_compressed) = {:.4} nats", p.kl));
    egui::Grid::new("generate_top")
        .num_columns(4)
        .striped(true)
        .show(ui, |ui| {
            ui.strong("original");
            ui.strong("p");
            ui.strong("compressed");
            ui.strong("p");
            ui.end_row();
            for i in 0..TOP {
                for list in [&p.original, &p.compressed] {
                    match list.get(i) {
                        Some(l) => likely(ui, l, l.id == chosen),
                        None => {
                            ui.label("");
                            ui.label("");
                        }
                    }
                }
                ui.end_row();
            }
        });
}

/// One entry of a top list: the token's text quoted (spaces show) and its probability.
fn likely(ui: &mut egui::Ui, l: &Likely, chosen: bool) {
    let text = RichText::new(format!("\"{}\"", shown(ui.ctx(), &l.text))).monospace();
    ui.label(if chosen {
        text.strong().underline()
    } else {
        text
    });
    ui.label(format!("{:.3}", l.prob));
}
