//! Hardware tab: the bundled Verilator model of the decompressor (paper §4.2, Table 5). Runs
//! the simulation in the background with the build's output shown, a table like Table 5 with
//! the paper's numbers beside ours, a cycles-vs-size plot, and the selected compressed tensor.

use super::Tab;
use crate::app::command::{Command, TabId};
use crate::app::jobs::Task;
use crate::app::state::AppState;
use crate::hw::sim::{self, DdrParams, HwError, HwTable, TensorReport};
use egui_plot::{Legend, Line, MarkerShape, Plot, PlotPoints, Points};

/// Marker colour of the paper's figures.
const PAPER_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 160, 40);
use std::sync::{Arc, Mutex};

/// Matrix sizes of the paper's Table 5.
const SIZES: [usize; 3] = [512, 1024, 2048];
/// Build and simulation output lines kept for display.
const LOG_LINES: usize = 200;

/// What a finished run produced.
enum Outcome {
    Table(HwTable),
    Tensor(String, TensorReport),
}

/// The Hardware tab's own state.
#[derive(Default)]
pub struct Hardware {
    task: Option<Task<Result<Outcome, HwError>>>,
    log: Arc<Mutex<Vec<String>>>,
    table: Option<HwTable>,
    tensor: Option<(String, TensorReport)>,
    error: Option<String>,
}

impl Tab for Hardware {
    fn id(&self) -> TabId {
        TabId::Hardware
    }

    fn title(&self) -> &'static str {
        "Hardware"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, _out: &mut Vec<Command>) {
        self.poll();
        ui.label(
            "Cycle counts of the bundled RTL decompressor, simulated with Verilator: an FP16 \
             matrix–vector design (32 MACs) against SeedLM's (LFSR bases rebuilt on chip, 128 \
             MACs), both fed by a 512-bit DDR port at 200 MHz, as in the paper's Table 5.",
        );
        self.controls(ui, state);
        if let Some(e) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        ui.separator();
        if let Some(t) = &self.table {
            table(ui, t);
            plot(ui, t);
        } else {
            ui.label("Press Run Table 5 to build the model and simulate.");
        }
        if let Some((name, report)) = &self.tensor {
            ui.separator();
            tensor_report(ui, name, report);
        }
        self.log_view(ui);
    }

    fn busy(&self) -> bool {
        self.task.is_some()
    }
}

impl Hardware {
    fn poll(&mut self) {
        let Some(task) = &self.task else { return };
        let Some(res) = task.poll() else { return };
        self.task = None;
        match res {
            Ok(Ok(Outcome::Table(t))) => self.table = Some(t),
            Ok(Ok(Outcome::Tensor(name, r))) => self.tensor = Some((name, r)),
            Ok(Err(e)) => self.error = Some(e.to_string()),
            Err(e) => self.error = Some(e),
        }
    }

    /// Starts `work` in the background with a fresh log.
    fn start(
        &mut self,
        work: impl FnOnce(
            &mut dyn FnMut(&str),
            &std::sync::atomic::AtomicBool,
        ) -> Result<Outcome, HwError>
        + Send
        + 'static,
    ) {
        self.error = None;
        let log = Arc::new(Mutex::new(Vec::new()));
        self.log = log.clone();
        self.task = Some(Task::spawn(move |cancel, _| {
            let mut sink = |line: &str| {
                let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
                if l.len() == LOG_LINES {
                    l.remove(0);
                }
                l.push(line.to_string());
            };
            work(&mut sink, cancel)
        }));
    }

    fn controls(&mut self, ui: &mut egui::Ui, state: &AppState) {
        let selected = state.focus.and_then(|i| {
            let t = state.doc.tensors.get(i)?;
            Some((t.name.clone(), t.shape.clone(), t.result.clone()?))
        });
        ui.horizontal(|ui| {
            if let Some(task) = &self.task {
                if ui.button("Cancel").clicked() {
                    task.cancel();
                }
                ui.spinner();
                ui.label(format!("running, {:.0} s", task.elapsed()));
                return;
            }
            if ui
                .button("Run Table 5")
                .on_hover_text(
                    "Build the Verilator model (once; cached) and simulate 512, 1024 and 2048 \
                     square matrices of random valid blocks, plus a cross-check on a matrix \
                     compressed by the engine.",
                )
                .clicked()
            {
                self.start(|log, cancel| {
                    sim::run_table(&SIZES, &DdrParams::default(), log, cancel).map(Outcome::Table)
                });
            }
            let tip = "Simulate the tensor selected in the tree (compressed with a preset) and \
                       check the hardware's outputs bit for bit against the Rust model.";
            match selected {
                Some((name, shape, result)) => {
                    if ui
                        .button(format!("Run on {name}"))
                        .on_hover_text(tip)
                        .clicked()
                    {
                        self.start(move |log, cancel| {
                            sim::run_compressed_tensor(
                                &result.compressed,
                                &shape,
                                1,
                                &DdrParams::default(),
                                log,
                                cancel,
                            )
                            .map(|r| Outcome::Tensor(name, r))
                        });
                    }
                }
                None => {
                    ui.add_enabled(false, egui::Button::new("Run on selected tensor"))
                        .on_disabled_hover_text("Select a compressed tensor in the tree first.");
                }
            }
        });
    }

    fn log_view(&self, ui: &mut egui::Ui) {
        let lines = self.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if lines.is_empty() {
            return;
        }
        egui::CollapsingHeader::new("Build and simulation output")
            .default_open(self.task.is_some())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("hw_log")
                    .max_height(160.0)
                    .stick_to_bottom(true)
                    .show(ui, |ui| {
                        for l in &lines {
                            ui.monospace(l);
                        }
                    });
            });
    }
}

fn check_text(ok: bool) -> &'static str {
    if ok { "bit-exact" } else { "MISMATCH" }
}

fn table(ui: &mut egui::Ui, t: &HwTable) {
    ui.strong("Cycles from the first DDR read to the last output write");
    egui::Grid::new("hw_table").striped(true).show(ui, |ui| {
        for h in [
            "size",
            "FP16 ref.",
            "(paper)",
            "SeedLM 4-bit",
            "(paper)",
            "speed-up",
            "(paper)",
            "SeedLM 3-bit",
            "speed-up",
            "cross-check",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for row in &t.rows {
            let f = &row.four;
            let paper = f.paper;
            ui.label(format!("{}×{}", f.rows, f.cols));
            ui.label(f.reference_cycles().map_or("—".into(), |c| c.to_string()));
            ui.weak(paper.map_or("—".into(), |p| p.reference_cycles.to_string()));
            ui.label(f.seedlm_cycles().to_string());
            ui.weak(paper.map_or("—".into(), |p| p.seedlm_cycles.to_string()));
            ui.label(f.speedup().map_or("—".into(), |s| format!("{s:.2}×")));
            ui.weak(paper.map_or("—".into(), |p| format!("{:.2}×", p.speedup)));
            ui.label(
                row.three
                    .as_ref()
                    .map_or("—".into(), |r| r.seedlm_cycles().to_string()),
            );
            ui.label(row.speedup3().map_or("—".into(), |s| format!("{s:.2}×")));
            ui.label(check_text(row.ok()));
            ui.end_row();
        }
    });
    let c = &t.compressed;
    ui.label(format!(
        "Engine-compressed {}×{} matrix: outputs {} against the Rust model; weights equal the \
         engine's reconstruction: {}",
        c.rows,
        c.cols,
        check_text(c.check.seedlm_outputs && c.check.reference_outputs),
        if c.check.weights { "yes" } else { "NO" }
    ));
}

/// Cycles against matrix size (log–log), ours as lines, the paper's as markers.
fn plot(ui: &mut egui::Ui, t: &HwTable) {
    let log2 = |v: f64| v.log2();
    let ours = |f: &dyn Fn(&sim::TableRow) -> Option<u64>| -> Vec<[f64; 2]> {
        t.rows
            .iter()
            .filter_map(|r| Some([log2(r.four.rows as f64), log2(f(r)? as f64)]))
            .collect()
    };
    let reference = ours(&|r| r.four.reference_cycles());
    let seedlm = ours(&|r| Some(r.four.seedlm_cycles()));
    let three = ours(&|r| r.three.as_ref().map(|x| x.seedlm_cycles()));
    let paper = |f: fn(&sim::PaperRow) -> u64| -> Vec<[f64; 2]> {
        sim::PAPER_TABLE5
            .iter()
            .map(|p| [log2(p.size as f64), log2(f(p) as f64)])
            .collect()
    };
    Plot::new("hw_plot")
        .legend(Legend::default())
        .height(280.0)
        .x_axis_label("matrix size (log2 N)")
        .y_axis_label("cycles (log2)")
        .x_axis_formatter(|m, _| format!("{}", 2f64.powf(m.value).round()))
        .y_axis_formatter(|m, _| format!("{:.0}", 2f64.powf(m.value)))
        .show(ui, |plot| {
            plot.line(Line::new("FP16 reference", PlotPoints::new(reference)));
            plot.line(Line::new("SeedLM 4-bit", PlotPoints::new(seedlm)));
            plot.line(Line::new("SeedLM 3-bit", PlotPoints::new(three)));
            plot.points(
                Points::new(
                    "paper (Table 5)",
                    PlotPoints::new(paper(|p| p.reference_cycles)),
                )
                .shape(MarkerShape::Diamond)
                .color(PAPER_COLOR)
                .radius(5.0),
            );
            plot.points(
                Points::new(
                    "paper (Table 5)",
                    PlotPoints::new(paper(|p| p.seedlm_cycles)),
                )
                .shape(MarkerShape::Diamond)
                .color(PAPER_COLOR)
                .radius(5.0),
            );
        });
}

fn tensor_report(ui: &mut egui::Ui, name: &str, s: &TensorReport) {
    let reference = s
        .reference_cycles()
        .map_or(String::new(), |c| format!("FP16 reference {c} cycles, "));
    let speedup = s
        .speedup()
        .map_or(String::new(), |x| format!(", speed-up {x:.2}×"));
    ui.label(format!(
        "{name} ({}×{}): {reference}SeedLM {} {} cycles{speedup}; outputs {}, weights equal the \
         engine's reconstruction: {}",
        s.rows,
        s.cols,
        s.design.name,
        s.seedlm_cycles(),
        check_text(s.check.seedlm_outputs && s.check.reference_outputs),
        if s.check.weights { "yes" } else { "NO" }
    ));
}
