//! LFSR walkthrough tab: a small register stepped by hand or played (taps, XOR, shift), its whole
//! state cycle drawn as in the paper's Figure 3 with the seed marked, and V(s) filling C×P from
//! the states after the seed, normalised into U(s). Then the same for the real K = 16 register
//! with a seed the user picks or takes from the block inspector.

use super::Tab;
use crate::app::command::{Command, TabId};
use crate::app::state::AppState;
use crate::study::walkthrough::{Cell, SMALL_K, Step, Walkthrough, binary};
use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2};

/// Register length of the second part: the one SeedLM uses.
const BIG_K: u32 = 16;

/// The walkthrough's own state.
pub struct LfsrWalkthrough {
    k: u32,
    seed: u32,
    c: usize,
    p: usize,
    /// Steps taken from the seed.
    steps: usize,
    playing: bool,
    /// Steps per second while playing.
    speed: f64,
    last_tick: Option<f64>,
    big_seed: u32,
}

impl Default for LfsrWalkthrough {
    /// Starts on the paper's Figure 3: K = 3, seed 4, a 4×2 V(s).
    fn default() -> Self {
        let f = Walkthrough::figure3();
        let (c, p) = f.shape();
        LfsrWalkthrough {
            k: f.k(),
            seed: f.seed(),
            c,
            p,
            steps: 0,
            playing: false,
            speed: 2.0,
            last_tick: None,
            big_seed: 0xACE1,
        }
    }
}

impl Tab for LfsrWalkthrough {
    fn id(&self) -> TabId {
        TabId::Walkthrough
    }

    fn title(&self) -> &'static str {
        "LFSR walkthrough"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.small(ui);
            ui.separator();
            self.big(ui, state, out);
        });
    }

    fn busy(&self) -> bool {
        self.playing
    }
}

impl LfsrWalkthrough {
    fn walkthrough(&self) -> Walkthrough {
        // Controls keep every field in range; Figure 3 is the fallback if they ever do not.
        Walkthrough::new(self.k, self.seed, self.c, self.p)
            .unwrap_or_else(|_| Walkthrough::figure3())
    }

    fn small(&mut self, ui: &mut egui::Ui) {
        ui.heading(format!(
            "A small register (K from {} to {})",
            SMALL_K.start(),
            SMALL_K.end()
        ));
        let before = (self.k, self.seed, self.c, self.p);
        ui.horizontal(|ui| {
            ui.label("K");
            ui.add(egui::Slider::new(&mut self.k, SMALL_K.clone()));
            let max = (1u32 << self.k) - 1;
            self.seed = self.seed.clamp(1, max);
            ui.label("seed s");
            ui.add(egui::DragValue::new(&mut self.seed).range(1..=max))
                .on_hover_text("The stored seed is the register state, from 1 to 2^K − 1");
            ui.label("C");
            ui.add(egui::DragValue::new(&mut self.c).range(1..=8));
            ui.label("P");
            ui.add(egui::DragValue::new(&mut self.p).range(1..=8));
            if ui
                .button("Figure 3")
                .on_hover_text("K = 3, seed 4, C = 4, P = 2")
                .clicked()
            {
                *self = LfsrWalkthrough {
                    big_seed: self.big_seed,
                    ..Default::default()
                };
            }
        });
        if before != (self.k, self.seed, self.c, self.p) {
            self.steps = 0;
            self.playing = false;
        }
        let w = self.walkthrough();
        let cycle = w.cycle();
        ui.horizontal(|ui| {
            if ui.button("Step").clicked() {
                self.steps += 1;
            }
            let play = if self.playing { "Pause" } else { "Play" };
            if ui.button(play).clicked() {
                self.playing = !self.playing;
                self.last_tick = None;
            }
            if ui.button("Reset").clicked() {
                self.steps = 0;
                self.playing = false;
            }
            ui.label("speed");
            ui.add(
                egui::Slider::new(&mut self.speed, 0.5..=20.0)
                    .suffix(" steps/s")
                    .logarithmic(true),
            );
        });
        self.tick(ui);
        // The register returns to the seed after one period: show the position on the cycle.
        let pos = self.steps % cycle.len();
        let state = cycle[pos];
        let step = w.step_from(state);
        ui.label(format!(
            "After {} step(s): state {} = {} (binary). Taps (Table 6): {}",
            self.steps,
            state,
            binary(&step.bits),
            w.taps()
                .iter()
                .map(|t| format!("b{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        register(ui, &step, w.k());
        ui.monospace(format!("Next step: {}", step.equation()));
        ui.label("The feedback bit is the XOR of the tapped bits; every bit moves one place right (b0 drops out) and the feedback enters at the top.");
        ui.add_space(8.0);
        ui.columns(2, |cols| {
            cols[0].label(format!(
                "The whole cycle: {} states (2^{} − 1), seed {} circled",
                cycle.len(),
                w.k(),
                w.seed()
            ));
            cycle_diagram(&mut cols[0], &cycle, pos);
            fill(&mut cols[1], &w, self.steps);
        });
    }

    fn tick(&mut self, ui: &egui::Ui) {
        if !self.playing {
            return;
        }
        let now = ui.input(|i| i.time);
        match self.last_tick {
            None => self.last_tick = Some(now),
            Some(t) if now - t >= 1.0 / self.speed => {
                self.steps += 1;
                self.last_tick = Some(now);
            }
            Some(_) => {}
        }
    }

    fn big(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.heading(format!("The real register: K = {BIG_K}"));
        let inspected = inspected_block(state);
        let cfg = inspected.map_or(state.config, |(_, c)| c);
        ui.horizontal(|ui| {
            ui.label("seed s");
            ui.add(
                egui::DragValue::new(&mut self.big_seed)
                    .range(1..=(1u32 << BIG_K) - 1)
                    .hexadecimal(4, false, true),
            );
            if let Some((seed, _)) = inspected {
                if ui
                    .button(format!("Seed of the inspected block (0x{seed:04X})"))
                    .clicked()
                {
                    self.big_seed = seed;
                }
                if ui.button("Open block inspector").clicked() {
                    out.push(Command::ShowTab(TabId::Block));
                }
            } else {
                ui.label("(inspect a block of a compressed tensor to take its seed)");
            }
        });
        if cfg.k != BIG_K {
            ui.label(format!(
                "The current settings use K = {}; this part shows K = {BIG_K}.",
                cfg.k
            ));
        }
        let Ok(w) = Walkthrough::new(BIG_K, self.big_seed, cfg.c, cfg.p) else {
            return;
        };
        let step = w.step_from(w.seed());
        register(ui, &step, BIG_K);
        for s in w.steps(3) {
            ui.monospace(s.equation());
        }
        ui.label(format!(
            "V(s) for C = {}, P = {} (the settings' block shape) takes the {} states after the seed:",
            cfg.c,
            cfg.p,
            cfg.c * cfg.p
        ));
        fill(ui, &w, cfg.c * cfg.p);
    }
}

/// The seed and configuration of the block the inspector shows, if it is compressed.
fn inspected_block(state: &AppState) -> Option<(u32, crate::core::config::Config)> {
    let b = state.inspect?;
    let res = state.doc.tensors.get(b.tensor)?.result.as_ref()?;
    let code =
        (b.block < res.compressed.num_blocks()).then(|| res.compressed.block(b.block).ok())??;
    Some((code.seed, res.compressed.config))
}

/// Draws the register's bits, most significant on the left, taps highlighted, with the feedback
/// bit about to enter at the top.
fn register(ui: &mut egui::Ui, step: &Step, k: u32) {
    let cell = if k > 8 { 30.0 } else { 40.0 };
    let size = Vec2::new(cell * (k as f32 + 2.5), cell * 1.9);
    let (resp, painter) = ui.allocate_painter(size, Sense::hover());
    let v = ui.visuals();
    let tap_fill = Color32::from_rgb(230, 160, 40);
    let font = FontId::monospace(cell * 0.45);
    let small = FontId::proportional(cell * 0.3);
    let origin = resp.rect.min + Vec2::new(cell * 1.8, cell * 0.2);
    for i in 0..k {
        // Bit k−1 is drawn first (leftmost).
        let col = (k - 1 - i) as f32;
        let r = Rect::from_min_size(
            origin + Vec2::new(col * cell, 0.0),
            Vec2::splat(cell * 0.92),
        );
        let tapped = step.taps.iter().any(|(t, _)| *t == i);
        let fill = if tapped { tap_fill } else { v.extreme_bg_color };
        painter.rect_filled(r, 3.0, fill);
        painter.rect_stroke(
            r,
            3.0,
            v.widgets.noninteractive.fg_stroke,
            StrokeKind::Inside,
        );
        let text = if tapped {
            Color32::BLACK
        } else {
            v.text_color()
        };
        painter.text(
            r.center(),
            Align2::CENTER_CENTER,
            step.bits[i as usize],
            font.clone(),
            text,
        );
        painter.text(
            r.center_bottom() + Vec2::new(0.0, cell * 0.25),
            Align2::CENTER_CENTER,
            format!("b{i}"),
            small.clone(),
            v.weak_text_color(),
        );
    }
    // The feedback bit enters at the left (bit K−1).
    let fb = Rect::from_min_size(
        resp.rect.min + Vec2::new(0.0, cell * 0.2),
        Vec2::splat(cell * 0.92),
    );
    painter.rect_stroke(fb, 3.0, Stroke::new(2.0, tap_fill), StrokeKind::Inside);
    painter.text(
        fb.center(),
        Align2::CENTER_CENTER,
        step.feedback,
        font,
        v.text_color(),
    );
    painter.text(
        fb.center_bottom() + Vec2::new(0.0, cell * 0.25),
        Align2::CENTER_CENTER,
        "fb",
        small,
        v.weak_text_color(),
    );
    painter.arrow(
        fb.right_center(),
        Vec2::new(cell * 0.75, 0.0),
        Stroke::new(2.0, tap_fill),
    );
}

/// The state cycle on a circle, seed circled thick, the current state filled, arrows in the
/// stepping direction. States are labelled while there is room.
fn cycle_diagram(ui: &mut egui::Ui, cycle: &[u32], pos: usize) {
    let side = ui.available_width().clamp(200.0, 420.0);
    let (resp, painter) = ui.allocate_painter(Vec2::splat(side), Sense::hover());
    let v = ui.visuals();
    let n = cycle.len();
    let centre = resp.rect.center();
    let radius = side * 0.40;
    let labelled = n <= 31;
    let dot = if labelled {
        (side * 0.045).min(16.0)
    } else {
        3.0
    };
    let at = |i: usize| {
        let a = std::f32::consts::TAU * i as f32 / n as f32 - std::f32::consts::FRAC_PI_2;
        centre + radius * Vec2::new(a.cos(), a.sin())
    };
    let accent = Color32::from_rgb(230, 160, 40);
    for i in 0..n {
        let (a, b) = (at(i), at((i + 1) % n));
        let d = b - a;
        let trim = d.normalized() * (dot + 2.0);
        if labelled {
            painter.arrow(
                a + trim,
                d - 2.0 * trim,
                Stroke::new(1.0, v.weak_text_color()),
            );
        } else {
            painter.line_segment([a, b], Stroke::new(1.0, v.weak_text_color()));
        }
    }
    for (i, &s) in cycle.iter().enumerate() {
        let p: Pos2 = at(i);
        let fill = if i == pos { accent } else { v.extreme_bg_color };
        painter.circle_filled(p, dot, fill);
        // The seed (index 0) gets the thick circle of Figure 3.
        let stroke = if i == 0 {
            Stroke::new(4.0, v.strong_text_color())
        } else {
            Stroke::new(1.0, v.text_color())
        };
        painter.circle_stroke(p, dot, stroke);
        if labelled {
            let text = if i == pos {
                Color32::BLACK
            } else {
                v.text_color()
            };
            painter.text(
                p,
                Align2::CENTER_CENTER,
                s,
                FontId::proportional(dot * 0.9),
                text,
            );
        }
    }
    if !labelled {
        painter.text(
            centre,
            Align2::CENTER_CENTER,
            format!("state {}", cycle[pos]),
            FontId::proportional(16.0),
            v.text_color(),
        );
    }
}

/// V(s) filled row by row up to `steps` states after the seed, and U(s) beside it.
fn fill(ui: &mut egui::Ui, w: &Walkthrough, steps: usize) {
    let (c, p) = w.shape();
    let cells = w.cells();
    let shown = steps.min(cells.len());
    let half = 1u64 << (w.k() - 1);
    ui.label(format!(
        "V(s), {c}×{p}, row by row from the states after s = {}: {shown} of {} filled",
        w.seed(),
        cells.len()
    ));
    ui.label(format!("U(s) = (V(s) − {half}) / {}", (half - 1).max(1)));
    // One grid for both matrices, so each row of U(s) sits beside the row of V(s) it maps.
    let accent = Color32::from_rgb(230, 160, 40);
    let cell = |ui: &mut egui::Ui, c: &Cell, text: String| {
        if c.step > shown {
            ui.monospace("·");
        } else if c.step == shown {
            ui.label(egui::RichText::new(text).monospace().color(accent));
        } else {
            ui.monospace(text);
        }
    };
    egui::Grid::new(("v_u_matrix", w.k()))
        .striped(true)
        .show(ui, |ui| {
            for row in cells.chunks(p) {
                for c in row {
                    cell(ui, c, c.v.to_string());
                }
                ui.monospace("->");
                for c in row {
                    cell(ui, c, format!("{:+.3}", c.u));
                }
                ui.end_row();
            }
        });
}
