//! Helpers shared by the UI tests: a headless harness on the real app, clicking by label, and
//! stepping frames until background work ends.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use seedlm::app::Studio;
use std::time::{Duration, Instant};

pub use super::{HW_BUILD, JOB, MODEL_RUN, SMALL_JOB};

/// A headless harness drawing `studio` at a desktop-like size, with sidecars off: tests must
/// leave nothing beside the bundled demo model ([`harness_with_sidecars`] keeps them).
pub fn harness(mut studio: Studio) -> Harness<'static, Studio> {
    studio.state.sidecars = false;
    // The user's own demo sidecar may have been offered already; it is not the test's.
    studio.state.resume = None;
    harness_with_sidecars(studio)
}

/// [`harness`] keeping compressed tensors in a sidecar beside the model, as the app does.
pub fn harness_with_sidecars(studio: Studio) -> Harness<'static, Studio> {
    Harness::builder()
        .with_size([1500.0, 1000.0])
        .build_ui_state(|ui, s: &mut Studio| s.show(ui), studio)
}

/// Clicks the widget labelled `label` and lets the app apply the click.
pub fn click(h: &mut Harness<'_, Studio>, label: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
}

/// Focuses the text field labelled `label`, replaces its text with `text` and lets the app
/// see it.
pub fn type_into(h: &mut Harness<'_, Studio>, label: &str, text: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.get_by_label(label).type_text(text);
    h.step();
}

/// Steps frames until no background work runs; `limit` guards against a hang.
pub fn wait_idle(h: &mut Harness<'_, Studio>, limit: Duration) {
    let deadline = Instant::now() + limit;
    h.step();
    while h.state().busy() {
        assert!(Instant::now() < deadline, "background work did not finish");
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    h.run_steps(2);
}

/// Index of the smallest tensor of `s`'s document that `keep` accepts (quick to compress or
/// view).
pub fn smallest_tensor(
    s: &Studio,
    keep: impl Fn(&seedlm::app::document::TensorEntry) -> bool,
) -> usize {
    let t = &s.state.doc.tensors;
    (0..t.len())
        .filter(|&i| keep(&t[i]))
        .min_by_key(|&i| t[i].len())
        .expect("the model has such a tensor")
}

/// A tiny model with layers 1, 2 and 10, so natural order matters.
pub fn tiny() -> Studio {
    tiny_named([10, 2, 1].map(|l| format!("model.layers.{l}.mlp.up_proj.weight")))
}

/// A tiny model of 16×16 F32 tensors named `names`, in that order.
pub fn tiny_named(names: impl IntoIterator<Item = String>) -> Studio {
    use seedlm::app::document::Document;
    let tensors = names
        .into_iter()
        .map(|n| tiny_tensor(n, &[16, 16]))
        .collect();
    Studio::with_document(Document::new(None, "tiny".into(), tensors))
}

/// An F32 tensor of `shape` held in memory, values spread over [−0.5, 0.5].
pub fn tiny_tensor(name: String, shape: &[usize]) -> seedlm::app::document::TensorEntry {
    use seedlm::app::document::{Source, TensorEntry};
    TensorEntry {
        name,
        shape: shape.to_vec(),
        dtype: seedlm::io::dtype::Dtype::F32,
        source: Some(Source::Memory(std::sync::Arc::new(
            (0..shape.iter().product())
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 100.0)
                .collect(),
        ))),
        result: None,
        compressible: true,
    }
}

/// Every text the last frame painted, with its top-left corner (plot tick labels among them,
/// which have no widget).
pub fn painted_texts(h: &Harness<'_, Studio>) -> Vec<(String, egui::Pos2)> {
    fn collect(shape: &egui::Shape, out: &mut Vec<(String, egui::Pos2)>) {
        match shape {
            egui::Shape::Text(t) => out.push((t.galley.text().to_owned(), t.pos)),
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| collect(s, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for clipped in &h.output().shapes {
        collect(&clipped.shape, &mut out);
    }
    out
}
