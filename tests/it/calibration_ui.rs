//! Calibration in the app (issue 26): a calibration text in the compression settings makes the
//! app measure the model's input moments once, as a background job, and search each tensor
//! with them, giving exactly the codes of `seedlm compress --calibrate` with the same text; the
//! resume sidecar keeps calibrated and data-free codes apart; the tree and the Overview say
//! which tensors are calibrated.

use crate::helpers::ui::{self, harness_with_sidecars, painted_texts, type_into, wait_idle};
use crate::helpers::{run, s, small_model, text, write_model};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use seedlm::app::Studio;
use seedlm::app::command::Command;
use seedlm::core::config::Config;
use seedlm::core::control::{Control, Progress};
use seedlm::io::job_plan::TextId;
use seedlm::io::model::Model;
use seedlm::io::packed::PackedModel;
use seedlm::io::shard::{Sidecar, SidecarTensor};
use seedlm::search::compress::{CompressedTensor, compress};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// A 384×384 projection of the demo: its calibrated search stays short.
const TENSOR: &str = "encoder.layer.0.attention.self.query.weight";

fn calibration_text(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const CALIB: &str = "She walked to the window and looked out at the rain for a long while.\n\n\
                     He said nothing, then laughed, and the letter lay unopened on the table.\n";

/// The codes of `TENSOR` in the app's document.
fn codes(h: &Harness<'_, Studio>) -> (CompressedTensor, bool) {
    let doc = &h.state().state.doc;
    let r = doc.tensors[doc.find(TENSOR).unwrap()]
        .result
        .clone()
        .expect("compressed");
    (r.compressed.unpack().unwrap(), r.calibrated())
}

/// Compresses `TENSOR` with the app's current settings and waits for it; the seconds it took.
fn compress_it(h: &mut Harness<'_, Studio>) -> f64 {
    let i = h.state().state.doc.find(TENSOR).unwrap();
    let started = Instant::now();
    h.state_mut().state.apply(Command::Compress(vec![i]));
    h.step();
    wait_idle(h, ui::MODEL_RUN);
    started.elapsed().as_secs_f64()
}

fn messages(h: &Harness<'_, Studio>) -> Vec<String> {
    let s = &h.state().state;
    s.messages.iter().map(|m| m.text.clone()).collect()
}

#[test]
fn the_apps_calibrated_compression_gives_the_codes_of_compress_calibrate() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calibration_text(dir.path(), "calib.txt", CALIB);

    // The CLI's calibrated codes of the tensor.
    let out = dir.path().join("cli");
    let include = format!("^{}$", TENSOR.replace('.', r"\."));
    let started = Instant::now();
    let o = run(&[
        "compress",
        s(&crate::helpers::demo_dir()),
        "-o",
        s(&out),
        "--include",
        &include,
        "--calibrate",
        s(&calib),
    ]);
    let cli_secs = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let p = PackedModel::open(&out.join("model.safetensors")).unwrap();
    let cli = p.compressed(p.get(TENSOR).unwrap()).unwrap().unwrap();

    // The demo in the app, its sidecar in a temporary data folder.
    let mut studio = Studio::with_document(seedlm::app::loader::synthetic());
    studio.state.data_dir = Some(dir.path().join("data"));
    studio.state.apply(Command::OpenDemo);
    let mut h = harness_with_sidecars(studio);
    h.run_steps(2);

    // Data-free first: the sidecar then holds the tensor's data-free codes.
    compress_it(&mut h);
    let (plain, calibrated) = codes(&h);
    assert!(!calibrated);
    let model = Model::open(&crate::helpers::demo_model()).unwrap();
    let data = model.to_f32(model.get(TENSOR).unwrap()).unwrap();
    let none = AtomicBool::new(false);
    let engine = compress(
        &data,
        Config::FOUR_BIT,
        Control::new(&Progress::default(), &none),
    )
    .unwrap();
    assert_eq!(plain, engine.0);
    assert_ne!(plain, cli, "calibration changes the codes");

    // The calibration text typed in the settings: the moments are measured, then the tensor is
    // searched with them, not read from the data-free sidecar.
    type_into(&mut h, "Calibration text", s(&calib));
    assert_eq!(
        h.state().state.calibration.as_deref(),
        Some(calib.as_path())
    );
    let app_secs = compress_it(&mut h);
    let msgs = messages(&h);
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("calibrating on calib.txt:")),
        "{msgs:?}"
    );
    assert!(
        !msgs.iter().any(|m| m.contains("read from the sidecar")),
        "{msgs:?}"
    );
    let (got, calibrated) = codes(&h);
    assert!(calibrated);
    assert_eq!(got, cli, "the app's calibrated codes are the CLI's");
    eprintln!("calibrated {TENSOR}: app {app_secs:.1} s (moments and search), CLI {cli_secs:.1} s");

    // The tree marks it and its layer's header counts it; the Overview counts it.
    type_into(&mut h, "Filter", "layer.0.attention.self.query");
    h.run_steps(2);
    let painted = painted_texts(&h);
    let shown = |needle: &str| painted.iter().any(|(t, _)| t.contains(needle));
    assert!(shown("dB, 4-bit cal"), "no calibrated marker in the tree");
    assert!(
        shown("1 compressed (4-bit), 1 cal"),
        "no count in the header"
    );
    assert_eq!(h.state().state.totals().all.calibrated, 1);

    // Again with the same text: the result records the text's hash, so nothing runs.
    compress_it(&mut h);
    let msgs = messages(&h);
    assert_eq!(
        msgs.iter()
            .filter(|m| m.starts_with("calibrating on"))
            .count(),
        1,
        "{msgs:?}"
    );
    assert_eq!(
        msgs.last().unwrap(),
        "1 tensor(s) skipped: already compressed with these settings",
        "{msgs:?}"
    );
    assert_eq!(codes(&h), (cli.clone(), true));

    // Exported and opened again, the packed file says which tensor is calibrated, on what.
    let exported = dir.path().join("exported.safetensors");
    h.state_mut().state.apply(Command::Export {
        kind: seedlm::app::command::ExportKind::Packed,
        path: exported.clone(),
    });
    wait_idle(&mut h, ui::JOB);
    let record = PackedModel::open(&exported)
        .unwrap()
        .calibration_record()
        .unwrap();
    assert_eq!(record.tensors, [TENSOR]);
    assert_eq!(record.text, "calib.txt");
    assert_eq!(record.sha256, TextId::of(&calib).unwrap().sha256);

    // Data-free again: the calibrated codes are not offered; the search runs afresh.
    h.get_by_label("Calibration text").click();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::Backspace);
    h.run_steps(2);
    assert_eq!(h.state().state.calibration, None);
    compress_it(&mut h);
    assert!(
        !messages(&h)
            .last()
            .unwrap()
            .contains("read from the sidecar"),
        "{:?}",
        messages(&h)
    );
    assert_eq!(codes(&h), (plain, false));
    assert_eq!(h.state().state.totals().all.calibrated, 0);

    // The CLI's calibrated file opened in the app: its tensor shows as calibrated, on its text
    // (known by name and hash), and the tree marks it.
    h.state_mut()
        .state
        .apply(Command::Open(out.join("model.safetensors")));
    wait_idle(&mut h, ui::JOB);
    assert_eq!(h.state().state.totals().all.calibrated, 1);
    let doc = &h.state().state.doc;
    let r = doc.tensors[doc.find(TENSOR).unwrap()]
        .result
        .clone()
        .unwrap();
    let text = r.calibration.clone().expect("calibrated");
    assert_eq!(text.path, Path::new("calib.txt"));
    assert_eq!(text.sha256, TextId::of(&calib).unwrap().sha256);
    type_into(&mut h, "Filter", "layer.0.attention.self.query");
    h.run_steps(2);
    let painted = painted_texts(&h);
    assert!(
        painted.iter().any(|(t, _)| t.contains("4-bit cal")),
        "no calibrated marker in the tree"
    );
}

#[test]
fn cancelling_the_calibration_drops_the_calibrated_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calibration_text(dir.path(), "calib.txt", &CALIB.repeat(40));
    let mut studio = Studio::new(None);
    studio.state.sidecars = false;
    studio.state.resume = None;
    let mut h = harness_with_sidecars(studio);
    h.run_steps(2);
    h.state_mut()
        .state
        .apply(Command::SetCalibration(Some(calib)));
    let i = h.state().state.doc.find(TENSOR).unwrap();
    h.state_mut().state.apply(Command::Compress(vec![i]));
    h.step();
    assert!(
        h.state()
            .state
            .running(seedlm::app::work::JobKind::Calibrate)
            .is_some(),
        "the moments are measured first, in the background"
    );
    h.state_mut().state.apply(Command::Cancel);
    wait_idle(&mut h, ui::JOB);
    let st = &h.state().state;
    assert!(st.queue.is_empty() && st.job.is_none());
    assert!(st.doc.tensors[i].result.is_none());
    assert!(
        st.messages.iter().any(|m| m.text.ends_with("cancelled")),
        "{:?}",
        messages(&h)
    );
}

#[test]
fn the_sidecar_offers_codes_only_to_a_run_with_the_same_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_model(&path, &small_model());
    let model = Model::open(&path).unwrap();
    let name = "layers.0.q_proj.weight";
    let data = model.to_f32(model.get(name).unwrap()).unwrap();
    let none = AtomicBool::new(false);
    let (codes, _) = compress(
        &data,
        Config::FOUR_BIT,
        Control::new(&Progress::default(), &none),
    )
    .unwrap();
    let text_a = calibration_text(dir.path(), "a.txt", "one text");
    let text_b = calibration_text(dir.path(), "b.txt", "another text");
    let (a, b) = (TextId::of(&text_a).unwrap(), TextId::of(&text_b).unwrap());
    let sidecar = Sidecar::beside(&path);
    let load = |cal: Option<&TextId>| {
        sidecar
            .load(&model, Config::FOUR_BIT, cal, name, "h")
            .unwrap()
    };

    // Made without calibration: not offered to a calibrated run.
    sidecar.save(&model, name, "h", None, &codes).unwrap();
    assert_eq!(load(None), Some(codes.clone()));
    assert_eq!(load(Some(&a)), None);

    // Made calibrated on a: offered to a run on a (wherever the text now is), not to a
    // data-free run nor to one on another text; the data-free codes are gone.
    sidecar.save(&model, name, "h", Some(&a), &codes).unwrap();
    assert_eq!(load(Some(&a)), Some(codes.clone()));
    let moved = TextId {
        path: dir.path().join("moved.txt"),
        ..a.clone()
    };
    assert_eq!(load(Some(&moved)), Some(codes.clone()));
    assert_eq!(load(None), None);
    assert_eq!(load(Some(&b)), None);
    // A resume knows which text to measure again.
    assert_eq!(
        sidecar.finished(&model),
        vec![SidecarTensor {
            name: name.into(),
            config: Config::FOUR_BIT,
            calibration: Some(a.path.clone()),
        }]
    );
}

/// A calibrated tensor kept in the sidecar is offered again after the app closes, with its
/// text: Resume measures the moments again and reads the codes back, calibrated.
#[test]
fn a_resumed_calibrated_tensor_is_read_back_calibrated() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calibration_text(dir.path(), "calib.txt", CALIB);
    let open_demo = || {
        let mut studio = Studio::with_document(seedlm::app::loader::synthetic());
        studio.state.data_dir = Some(dir.path().join("data"));
        studio.state.apply(Command::OpenDemo);
        let mut h = harness_with_sidecars(studio);
        h.run_steps(2);
        h
    };
    let mut h = open_demo();
    h.state_mut()
        .state
        .apply(Command::SetCalibration(Some(calib.clone())));
    compress_it(&mut h);
    let searched = codes(&h);
    assert!(searched.1);
    drop(h);

    let mut h = open_demo();
    let offer = h
        .state()
        .state
        .resume
        .clone()
        .expect("the sidecar is offered");
    assert_eq!(offer.finished.len(), 1);
    assert_eq!(
        offer.finished[0].calibration.as_deref(),
        Some(std::path::absolute(&calib).unwrap().as_path())
    );
    h.state_mut().state.apply(Command::Resume);
    h.step();
    wait_idle(&mut h, ui::MODEL_RUN);
    let msgs = messages(&h);
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("calibrating on calib.txt:")),
        "{msgs:?}"
    );
    assert!(
        msgs.last()
            .unwrap()
            .contains("1 tensor(s) read from the sidecar"),
        "{msgs:?}"
    );
    assert_eq!(codes(&h), searched);
}
