//! Hardware tab: the bundled Verilator model of the decompressor (paper §4.2, Table 5). Runs
//! the simulation in the background with the build's output shown, a table like Table 5 with
//! the paper's numbers beside ours, a cycles-vs-size plot, and the selected compressed tensor;
//! beside it the designs' FPGA resources synthesised with Yosys, per part like Table 4, as a
//! table and a bar chart.

use super::{Tab, job_progress};
use crate::app::command::{Command, TabId};
use crate::app::state::AppState;
use crate::app::work::{JobKind, Work};
use crate::hw::report::{self, HwTable, TensorReport};
use crate::hw::resources::{Part, ResourceTable, Usage};
use crate::hw::sim;
use crate::hw::synth::{FAMILY, SYNTH_SIZE};
use egui_plot::{Bar, BarChart, Legend, Line, MarkerShape, PlotPoints, Points};

/// Marker colour of the paper's figures.
const PAPER_COLOR: egui::Color32 = egui::Color32::from_rgb(230, 160, 40);

/// The Hardware tab (its results and log live in the state).
#[derive(Default)]
pub struct Hardware;

impl Tab for Hardware {
    fn id(&self) -> TabId {
        TabId::Hardware
    }

    fn title(&self) -> &'static str {
        "Hardware"
    }

    fn ui(&mut self, ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
        ui.label(
            "Cycle counts of the bundled RTL decompressor, simulated with Verilator: an FP16 \
             matrix–vector design (32 MACs) against SeedLM's (LFSR bases rebuilt on chip, 128 \
             MACs), both fed by a 512-bit DDR port at 200 MHz, as in the paper's Table 5.",
        );
        let running = state.running(JobKind::Hardware);
        controls(ui, state, out);
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("hw_tab")
            .show(ui, |ui| {
                match (&state.results.hw_table, running) {
                    (Some(t), _) => {
                        table(ui, t);
                        plot(ui, t);
                    }
                    (None, Some(j)) if j.label.contains("Table 5") => {
                        ui.label(format!("{}: building and simulating…", j.label));
                    }
                    _ => {
                        ui.label("Press Run Table 5 to build the model and simulate.");
                    }
                }
                ui.separator();
                match (&state.results.hw_resources, running) {
                    // The table and, beside it, the chart.
                    (Some(r), _) => {
                        ui.horizontal_top(|ui| {
                            ui.vertical(|ui| resources_table(ui, r));
                            ui.vertical(|ui| resources_chart(ui, r));
                        });
                    }
                    (None, Some(j)) if j.label.contains("Table 4") => {
                        ui.label(format!("{}: synthesising…", j.label));
                    }
                    _ => {
                        ui.label("Press Run Table 4 to synthesise the designs with Yosys.");
                    }
                }
                if let Some(k) = &state.results.hw_tensor {
                    let (name, report) = &k.value;
                    ui.separator();
                    tensor_report(ui, name, report);
                }
                let lines = running.map_or_else(|| state.results.hw_log.clone(), |j| j.log());
                log_view(ui, &lines, running.is_some());
            });
    }
}

fn controls(ui: &mut egui::Ui, state: &AppState, out: &mut Vec<Command>) {
    let selected = state.focus.and_then(|i| {
        let t = state.doc.tensors.get(i)?;
        t.result.as_ref().map(|_| (i, t.name.clone()))
    });
    ui.horizontal(|ui| {
        if let Some(job) = state.running(JobKind::Hardware) {
            job_progress(ui, job, JobKind::Hardware, out);
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
            out.push(Command::Run(Work::HwTable));
        }
        if ui
            .button("Run Table 4")
            .on_hover_text(
                "Synthesise the FP16 reference and the 4-bit and 3-bit SeedLM designs with \
                 Yosys for an UltraScale+ FPGA (once; cached) and list their LUTs, FFs, BRAM and \
                 DSPs per part beside the paper's Table 4.",
            )
            .clicked()
        {
            out.push(Command::Run(Work::HwResources));
        }
        let tip = "Simulate the tensor selected in the tree (compressed with a preset) and \
                   check the hardware's outputs bit for bit against the Rust model; a tensor of \
                   another configuration has no RTL and gets an estimate from the DDR model.";
        match selected {
            Some((i, name)) => {
                if ui
                    .button(format!("Run on {name}"))
                    .on_hover_text(tip)
                    .clicked()
                {
                    out.push(Command::Run(Work::HwTensor(i)));
                }
            }
            None => {
                ui.add_enabled(false, egui::Button::new("Run on selected tensor"))
                    .on_disabled_hover_text("Select a compressed tensor in the tree first.");
            }
        }
    });
}

fn log_view(ui: &mut egui::Ui, lines: &[String], running: bool) {
    if lines.is_empty() {
        return;
    }
    egui::CollapsingHeader::new("Build and simulation output")
        .default_open(running)
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("hw_log")
                .max_height(160.0)
                .stick_to_bottom(true)
                .show(ui, |ui| {
                    for l in lines {
                        ui.monospace(l);
                    }
                });
        });
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
    let ours = |f: &dyn Fn(&report::TableRow) -> Option<u64>| -> Vec<[f64; 2]> {
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
    // Cycles grow from bottom left to top right: the top left is free for the legend.
    super::page_plot("hw_plot")
        .legend(Legend::default().position(egui_plot::Corner::LeftTop))
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

fn tensor_report(ui: &mut egui::Ui, name: &str, report: &TensorReport) {
    let (rows, cols) = report.shape();
    let reference = report
        .reference_cycles()
        .map_or(String::new(), |c| format!("FP16 reference {c} cycles, "));
    let speedup = report
        .speedup()
        .map_or(String::new(), |x| format!(", speed-up {x:.2}×"));
    let (design, detail) = match report {
        TensorReport::Simulated(s) => (
            format!(" {}", s.design.name),
            format!(
                "; outputs {}, weights equal the engine's reconstruction: {}",
                check_text(s.check.seedlm_outputs && s.check.reference_outputs),
                if s.check.weights { "yes" } else { "NO" }
            ),
        ),
        TensorReport::Estimated(e) => (String::new(), format!(" ({})", e.note())),
    };
    ui.label(format!(
        "{name} ({rows}×{cols}): {reference}SeedLM{design} {} cycles{speedup}{detail}",
        report.seedlm_cycles()
    ));
}

/// Our figures beside the paper's, per design and part.
fn resources_table(ui: &mut egui::Ui, r: &ResourceTable) {
    ui.strong("FPGA resources per part (the paper's Table 4)");
    ui.weak(format!(
        "{}, synth_xilinx -family {FAMILY} (UltraScale+), MaxCols = MaxRows = {SYNTH_SIZE}; \
         (paper) in grey",
        r.tool
    ));
    egui::Grid::new("hw_resources")
        .striped(true)
        .show(ui, |ui| {
            for h in [
                "design", "part", "LUTs", "(paper)", "FFs", "(paper)", "BRAM", "(paper)", "DSPs",
                "(paper)",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for d in &r.designs {
                let rows = Part::ALL
                    .iter()
                    .map(|&p| (p.label(), d.part(p), d.paper().and_then(|t| p.paper(t))))
                    .chain([(
                        "total",
                        d.total(),
                        d.paper().map(|t| Usage::from_paper(&t.total)),
                    )]);
                for (i, (part, ours, paper)) in rows.enumerate() {
                    ui.label(if i == 0 { d.label() } else { "" });
                    ui.label(part);
                    let p = |f: &dyn Fn(&Usage) -> String| paper.as_ref().map_or("—".into(), f);
                    ui.label(ours.luts.to_string());
                    ui.weak(p(&|u| u.luts.to_string()));
                    ui.label(ours.ffs.to_string());
                    ui.weak(p(&|u| u.ffs.to_string()));
                    ui.label(ours.bram.to_string());
                    ui.weak(p(&|u| u.bram.to_string()));
                    ui.label(ours.dsps.to_string());
                    ui.weak(p(&|u| u.dsps.to_string()));
                    ui.end_row();
                }
            }
        });
    for d in &r.designs {
        if let Some(depth) = d.logic_depth {
            ui.label(format!(
                "{}: longest combinational path {depth} cells (Yosys ltp; a logic depth, not a \
                 timing)",
                d.label()
            ));
        }
    }
}

/// Thousands of LUTs per design, ours and the paper's, stacked by part.
fn resources_chart(ui: &mut egui::Ui, r: &ResourceTable) {
    // Columns: each design, then the paper's figures for it where Table 4 has them.
    let mut columns: Vec<(String, [f64; 4])> = Vec::new();
    let kluts = |u: Usage| u.luts as f64 / 1000.0;
    for d in &r.designs {
        columns.push((d.label().to_string(), Part::ALL.map(|p| kluts(d.part(p)))));
        if let Some(t) = d.paper() {
            let named = Part::ALL.map(|p| p.paper(t).map_or(0.0, kluts));
            // The paper has no "other" column: the rest of its total, where there is one.
            let rest = (kluts(Usage::from_paper(&t.total)) - named.iter().sum::<f64>()).max(0.0);
            columns.push((
                format!("{} (paper)", d.label()),
                [named[0], named[1], named[2], rest],
            ));
        }
    }
    let names: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
    let mut charts: Vec<BarChart> = Vec::new();
    for (k, part) in Part::ALL.iter().enumerate() {
        let bars = columns
            .iter()
            .enumerate()
            .map(|(x, c)| Bar::new(x as f64, c.1[k]).width(0.7).name(&c.0))
            .collect();
        let refs: Vec<&BarChart> = charts.iter().collect();
        let chart = BarChart::new(part.label(), bars).stack_on(&refs);
        charts.push(chart);
    }
    super::page_plot("hw_resources_plot")
        .legend(Legend::default().position(egui_plot::Corner::LeftTop))
        .height(300.0)
        .width(ui.available_width().clamp(200.0, 520.0))
        .y_axis_label("thousand LUTs")
        .x_axis_formatter(move |m, _| {
            let i = m.value.round();
            if (m.value - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .show(ui, |plot| {
            for c in charts {
                plot.bar_chart(c);
            }
        });
}
