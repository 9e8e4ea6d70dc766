//! UI test of the Hardware tab: the Table 5 run and a run on a compressed tensor, through the
//! real app and the real Verilator model (built once, cached), and the estimate a tensor of a
//! configuration without RTL gets.

use crate::helpers::ui;
use crate::helpers::ui::{click, harness, tiny, wait_idle};
use egui_kittest::kittest::Queryable;
use seedlm::app::{Studio, loader};

#[test]
fn hardware_tab_runs_table5_and_a_compressed_tensor() {
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    click(&mut h, "Hardware");
    click(&mut h, "Run Table 5");
    assert!(h.state().busy(), "the simulation runs in the background");
    // While it runs, the tab and the status bar say so (the status bar is not "idle").
    assert!(h.query_by_label_contains("Press Run Table 5").is_none());
    h.get_by_label("Hardware (Table 5): building and simulating…");
    let running = h.query_all_by_label_contains("Hardware (Table 5): running, ");
    assert_eq!(running.count(), 2, "beside Cancel, and in the status bar");
    assert!(h.query_by_label("idle").is_none());
    wait_idle(&mut h, ui::HW_BUILD);
    h.get_by_label_contains("Hardware (Table 5): done in ");
    h.get_by_label("idle");
    // Our simulated cycle counts beside the paper's, every size cross-checked bit for bit.
    let ours: Vec<u64> = {
        let table = h
            .state()
            .state
            .results
            .hw_table
            .as_ref()
            .expect("Table 5 ran");
        assert_eq!(table.rows.len(), 3, "one row per size");
        table
            .rows
            .iter()
            .flat_map(|r| {
                let three = r.three.as_ref().map(|t| t.seedlm_cycles());
                [
                    r.four.reference_cycles(),
                    Some(r.four.seedlm_cycles()),
                    three,
                ]
            })
            .map(|c| c.expect("every size has all three designs"))
            .collect()
    };
    let paper: Vec<u64> = seedlm::hw::paper::PAPER_TABLE5
        .iter()
        .flat_map(|p| [p.reference_cycles, p.seedlm_cycles])
        .collect();
    for c in &ours {
        // Ours differ from the paper's, so the label found is the simulator's column.
        assert!(!paper.contains(c), "{c} is a paper figure");
        h.get_by_label(&c.to_string());
    }
    let exact = h.query_all_by_label("bit-exact").count();
    assert_eq!(exact, 3, "one cross-check per size");
    assert!(h.query_all_by_label_contains("MISMATCH").next().is_none());
    // The 2048 speed-up matches the paper's 3.98: ours and the paper's column both show it.
    assert_eq!(h.query_all_by_label("3.98×").count(), 2);

    // Compress the smallest linear layer, select it, and simulate it.
    let ti = ui::smallest_tensor(h.state(), |t| t.compressible);
    let name = h.state().state.doc.tensors[ti].name.clone();
    click(&mut h, &name);
    h.get_by_label("Compress selected (1)").click();
    wait_idle(&mut h, ui::HW_BUILD);
    click(&mut h, "Hardware");
    click(&mut h, &format!("Run on {name}"));
    wait_idle(&mut h, ui::HW_BUILD);
    h.get_by_label_contains(&format!("{name} ("));
    h.get_by_label_contains("outputs bit-exact, weights equal the engine's reconstruction: yes");
}

#[test]
fn a_failing_hardware_run_reaches_the_message_list() {
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = "model.layers.1.mlp.up_proj.weight";
    click(&mut h, name);
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::HW_BUILD);
    click(&mut h, "Hardware");
    h.get_by_label("Press Run Table 5 to build the model and simulate.");
    // 16 columns: the 4-bit design takes rows of a multiple of 128 weights.
    click(&mut h, &format!("Run on {name}"));
    wait_idle(&mut h, ui::HW_BUILD);
    let msg = h.state().state.messages.last().expect("a message").clone();
    assert!(msg.error, "{msg:?}");
    assert!(
        msg.text
            .starts_with(&format!("Hardware ({name}) failed: {name}: ")),
        "{msg:?}"
    );
    h.get_by_label(&msg.text);
}

#[test]
fn hardware_tab_synthesises_the_designs_beside_table4() {
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    click(&mut h, "Hardware");
    h.get_by_label("Press Run Table 4 to synthesise the designs with Yosys.");
    click(&mut h, "Run Table 4");
    assert!(h.state().busy(), "the synthesis runs in the background");
    h.get_by_label("Hardware (Table 4): synthesising…");
    wait_idle(&mut h, ui::HW_BUILD);
    h.get_by_label_contains("Hardware (Table 4): done in ");
    // Each design has its parts and a total; the paper's totals stand beside ours. A part is
    // named once per design and once in the chart's legend.
    assert_eq!(h.query_all_by_label("LFSR decompress").count(), 4);
    assert_eq!(h.query_all_by_label("total").count(), 3);
    h.get_by_label("120105");
    h.get_by_label("20800");
    assert_eq!(
        h.query_all_by_label_contains("longest combinational path")
            .count(),
        3
    );
}

#[test]
fn a_tensor_without_rtl_shows_its_labelled_estimate() {
    use seedlm::app::command::Command;
    use seedlm::app::document::Document;
    use seedlm::core::config::Config;
    use seedlm::hw::{estimate, report::TensorReport, sim::DdrParams};
    // One 2×128 tensor, compressed with a `--target-bpw` menu entry that has no RTL.
    let name = "model.layers.0.mlp.up_proj.weight";
    let tensor = ui::tiny_tensor(name.into(), &[2, 128]);
    let mut h = harness(Studio::with_document(Document::new(
        None,
        "menu".into(),
        vec![tensor],
    )));
    let cfg = Config { c: 6, p: 4, k: 16 };
    h.state_mut().state.apply(Command::SetConfig(cfg));
    h.run_steps(2);
    click(&mut h, name);
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::JOB);
    click(&mut h, "Hardware");
    click(&mut h, &format!("Run on {name}"));
    wait_idle(&mut h, ui::JOB);
    let e = match &h
        .state()
        .state
        .results
        .hw_tensor
        .as_ref()
        .expect("it ran")
        .value
    {
        (_, TensorReport::Estimated(e)) => *e,
        other => panic!("{other:?}"),
    };
    let ddr = DdrParams::default();
    assert_eq!(e, estimate::estimate(cfg, 2, 128, &ddr).unwrap());
    let reference = estimate::reference_cycles(2, 128, &ddr).expect("a 4-bit width");
    h.get_by_label_contains(&format!(
        "{name} (2×128): FP16 reference {reference} cycles, SeedLM {} cycles, speed-up",
        e.seedlm.cycles
    ));
    h.get_by_label_contains("(estimate, no RTL for C=6, P=4, K=16: ");
}
