//! UI tests at a decoder's scale (issue 12): 32 layers × 7 kinds of tensor, the per-layer chart
//! faceted by kind with layer ticks, and the tree's folded per-layer groups.

use crate::helpers::ui::{click, harness, painted_texts, type_into};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use seedlm::app::Studio;
use seedlm::app::document::{Document, Errors, PackedCodes, Source, TensorEntry, TensorResult};
use seedlm::core::config::Config;
use seedlm::core::control::Control;
use seedlm::search::compress::compress;
use std::sync::Arc;

const LAYERS: usize = 32;
const KINDS: [&str; 7] = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// A Llama-shaped model of 8×8 tensors, every one compressed (4-bit, layer 5 at 3-bit): one
/// real result per configuration, its error scaled per tensor so that the points differ.
fn llama() -> Studio {
    let data: Vec<f32> = (0..64)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 100.0)
        .collect();
    let result = |cfg: Config| {
        let (c, s) = compress(&data, cfg, Control::unwatched()).unwrap();
        (c, Errors::new(&s))
    };
    let (four, three) = (result(Config::FOUR_BIT), result(Config::THREE_BIT));
    let mut tensors = Vec::new();
    for l in 0..LAYERS {
        for (k, kind) in KINDS.iter().enumerate() {
            let (c, e) = if l == 5 { &three } else { &four };
            let mut stats = e.clone();
            stats.sq_err *= 1.0 + 0.01 * (l + k) as f64;
            tensors.push(TensorEntry {
                name: format!("model.layers.{l}.{kind}.weight"),
                shape: vec![8, 8],
                dtype: seedlm::io::dtype::Dtype::F32,
                source: Some(Source::Memory(Arc::new(data.clone()))),
                result: Some(Arc::new(TensorResult {
                    compressed: PackedCodes::new(c),
                    stats: Some(stats),
                    stored_relmse: None,
                    generation: 0,
                    calibration: None,
                })),
                compressible: true,
            });
        }
    }
    Studio::with_document(Document::new(None, "llama".into(), tensors))
}

#[test]
fn the_per_layer_chart_has_a_facet_per_kind_with_layer_ticks() {
    let mut h = harness(llama());
    h.run_steps(3);
    click(&mut h, "Overview");
    // One titled facet per kind, though the two configurations make 14 series.
    for kind in KINDS {
        h.get_by_label(kind);
    }
    let texts = painted_texts(&h);
    // The layer axis is titled under the lowest facet of each column (of two columns here,
    // the one of the 7th facet is scrolled out of sight).
    let titles: Vec<f32> = texts
        .iter()
        .filter(|(t, _)| t == "layer")
        .map(|(_, at)| at.y)
        .collect();
    assert!(!titles.is_empty(), "{texts:?}");
    // Its tick labels, just above the title: whole layers, every few of the 32.
    let near: Vec<&str> = texts
        .iter()
        .filter(|(_, at)| titles.iter().any(|&y| (0.0..30.0).contains(&(y - at.y))))
        .filter(|(t, _)| t.parse::<f64>().is_ok())
        .map(|(t, _)| t.as_str())
        .collect();
    let mut ticks: Vec<u32> = near.iter().filter_map(|t| t.parse().ok()).collect();
    assert_eq!(ticks.len(), near.len(), "no fractional layer: {near:?}");
    ticks.sort_unstable();
    ticks.dedup();
    assert!(ticks.len() >= 6, "ticks {ticks:?}");
    assert!(ticks.iter().all(|&t| t < LAYERS as u32), "ticks {ticks:?}");
    let step = ticks[1] - ticks[0];
    assert!(step <= 5, "a label every {step} layers: {ticks:?}");
}

/// Whether the tree shows the row of tensor `name` (rows are labelled by full name).
fn shown(h: &Harness<'_, Studio>, name: &str) -> bool {
    h.query_by_label(name).is_some()
}

#[test]
fn a_large_tree_starts_folded_with_each_group_summed_up() {
    let mut h = harness(llama());
    h.run_steps(3);
    let s = &h.state().state;
    let rel = |l: usize| {
        let g = s.group((0..KINDS.len()).map(|k| l * KINDS.len() + k));
        g.relmse().unwrap().0
    };
    let (r0, r5) = (rel(0), rel(5));
    // Folded: 32 headers, no rows; each header counts, names the configuration, and pools
    // the relative MSE of its tensors.
    h.get_by_label(&format!(
        "layer 0 (7): 7 compressed (4-bit), relMSE {r0:.5}"
    ));
    h.get_by_label(&format!(
        "layer 5 (7): 7 compressed (3-bit), relMSE {r5:.5}"
    ));
    h.get_by_label_contains("layer 31 (7): 7 compressed");
    let row = "model.layers.31.mlp.down_proj.weight";
    assert!(!shown(&h, row), "groups of a 224-tensor tree start folded");
    // The filter opens what it matches, with each row's configuration on it.
    type_into(&mut h, "Filter", "layers.31.mlp.down");
    h.run_steps(2);
    assert!(shown(&h, row));
    assert!(
        painted_texts(&h)
            .iter()
            .any(|(t, _)| t.starts_with("mlp.down_proj.weight") && t.contains("dB, 4-bit")),
        "the row names its configuration"
    );
    type_into(&mut h, "Filter", "");
    h.key_press(egui::Key::Backspace);
    h.run_steps(2);
    click(&mut h, "Unfold all");
    h.run_steps(2);
    assert!(shown(&h, "model.layers.0.self_attn.q_proj.weight"));
    click(&mut h, "Fold all");
    h.run_steps(2);
    assert!(!shown(&h, "model.layers.0.self_attn.q_proj.weight"));
}

/// Height of a facet of the llama fixture's per-layer chart below its title, with its layer
/// ticks: plots whose legends list several configurations keep half their height for the data.
const FACET_BOX: f32 = 190.0;

/// The numbers painted in the `w`×`h` box below the title `label`, relative to the title.
fn ticks_under(h: &Harness<'_, Studio>, label: &str, w: f32, ht: f32) -> (egui::Rect, Vec<String>) {
    let title = h.get_by_label(label).rect();
    let area = egui::Rect::from_min_size(
        title.left_bottom() - egui::vec2(60.0, 0.0),
        egui::vec2(w, ht),
    );
    let mut out: Vec<String> = painted_texts(h)
        .into_iter()
        .filter(|(t, at)| area.contains(*at) && t.parse::<f64>().is_ok())
        .map(|(t, at)| {
            format!(
                "{t} at {:.0},{:.0}",
                at.x - title.left(),
                at.y - title.top()
            )
        })
        .collect();
    out.sort();
    (title, out)
}

#[test]
fn the_wheel_scrolls_the_page_and_leaves_the_plots_as_they_were() {
    let mut h = harness(llama());
    h.run_steps(3);
    click(&mut h, "Overview");
    // A facet of the second row: scrolled up a little, it stays in view.
    let top = |k: &&str| h.get_by_label(k).rect().top();
    let first = KINDS.iter().map(top).fold(f32::INFINITY, f32::min);
    let label = *KINDS
        .iter()
        .filter(|k| top(k) > first)
        .min_by(|a, b| top(a).total_cmp(&top(b)))
        .unwrap();
    let (before, ticks) = ticks_under(&h, label, 300.0, FACET_BOX);
    // Both axes' ticks are in the box.
    assert!(ticks.len() >= 4, "{ticks:?}");
    let at = before.left_bottom() + egui::vec2(120.0, 50.0);
    h.input_mut().events.push(egui::Event::PointerMoved(at));
    h.run_steps(2);
    h.input_mut().events.push(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, -40.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(30);
    let (after, moved) = ticks_under(&h, label, 300.0, FACET_BOX);
    assert!(
        after.top() < before.top() - 20.0,
        "the page scrolled: {before:?} → {after:?}"
    );
    // The plot's axes did not pan: the same ticks at the same places within it.
    assert_eq!(moved, ticks);
}

#[test]
fn a_tab_taller_than_the_window_scrolls_to_its_chart() {
    let mut studio = llama();
    studio.state.sidecars = false;
    // A window half as tall: the summary above the chart fills most of it.
    let mut h = Harness::builder()
        .with_size([1500.0, 500.0])
        .build_ui_state(|ui, s: &mut Studio| s.show(ui), studio);
    h.run_steps(3);
    click(&mut h, "Overview");
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1500.0, 500.0));
    // The page under the tab bar, left of any plot.
    let at = h.get_by_label("Overview").rect().left_bottom() + egui::vec2(10.0, 40.0);
    h.input_mut().events.push(egui::Event::PointerMoved(at));
    h.run_steps(2);
    h.input_mut().events.push(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, -1000.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(60);
    // A whole facet is in view: the title, the y ticks beside its plot and the layer ticks under it.
    let top = |k: &&str| h.get_by_label(k).rect().top();
    let label = KINDS
        .iter()
        .min_by(|a, b| top(a).total_cmp(&top(b)))
        .unwrap();
    let (title, ticks) = ticks_under(&h, label, 300.0, FACET_BOX);
    let under = title.left_bottom() + egui::vec2(0.0, FACET_BOX);
    assert!(
        window.contains(title.min) && window.contains(under),
        "{title:?}"
    );
    assert!(ticks.len() >= 4, "{ticks:?}");
}
