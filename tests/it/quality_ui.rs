//! The Quality tab driven through egui_kittest: a run on the demo model (all-MiniLM-L6-v2) fills
//! the figures and the per-layer chart with the eval engine's numbers, Cancel stops it, and a
//! model that cannot be evaluated is a readable message.

use crate::helpers::ui;
use crate::helpers::ui::{click, harness, wait_idle};
use crate::helpers::{T, write_model};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use seedlm::app::command::{Command, TabId};
use seedlm::app::{Studio, loader};
use seedlm::core::control::{Control, Progress};
use seedlm::eval::{Evaluator, Figures, Inputs};
use seedlm::io::dtype::Dtype;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// The demo model with `names` compressed at the 4-bit preset, on the Quality tab.
fn compressed_demo(names: &[&str]) -> Harness<'static, Studio> {
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    let doc = &h.state().state.doc;
    let idx: Vec<usize> = names.iter().map(|n| doc.find(n).expect(n)).collect();
    h.state_mut().state.apply(Command::Compress(idx));
    wait_idle(&mut h, ui::MODEL_RUN);
    h.state_mut().state.apply(Command::ShowTab(TabId::Quality));
    h.run_steps(2);
    h
}

const QUERY: &str = "encoder.layer.0.attention.self.query.weight";
const KEY: &str = "encoder.layer.0.attention.self.key.weight";
const VALUE: &str = "encoder.layer.3.attention.self.value.weight";

fn last_message(h: &Harness<'_, Studio>) -> seedlm::app::state::Message {
    h.state().state.messages.last().expect("a message").clone()
}

#[test]
fn a_run_fills_the_figures_and_the_per_layer_chart_with_the_engines_numbers() {
    let mut h = compressed_demo(&[QUERY, KEY, VALUE]);
    click(&mut h, "Run quality check");
    assert!(
        h.state()
            .state
            .running(seedlm::app::work::JobKind::Quality)
            .is_some(),
        "the run is a background job"
    );
    wait_idle(&mut h, ui::MODEL_RUN);
    let msg = last_message(&h);
    assert!(
        !msg.error && msg.text.starts_with("Quality: done in"),
        "{msg:?}"
    );
    let report = h
        .state()
        .state
        .results
        .quality
        .as_ref()
        .unwrap()
        .value
        .clone();

    // Per tensor, in file order, and per layer: layer 0 of two tensors is its own run, layer 3
    // of one tensor is that tensor's.
    let names: Vec<&str> = report.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, [KEY, QUERY, VALUE], "the file's order");
    let layers: Vec<(usize, usize)> = report.layers.iter().map(|l| (l.layer, l.tensors)).collect();
    assert_eq!(layers, [(0, 2), (3, 1)]);
    assert_eq!(report.layers[1].figures, report.tensors[2].figures);

    // The same figures as the eval engine on the same reconstructions.
    let ev = Evaluator::open(&crate::helpers::demo_dir()).unwrap();
    let doc = &h.state().state.doc;
    let recon = [QUERY, KEY, VALUE].map(|n| {
        let t = &doc.tensors[doc.find(n).unwrap()];
        Ok((
            n.to_string(),
            t.result.as_ref().unwrap().reconstruction().unwrap(),
        ))
    });
    let cand = ev.weights().overlay(Path::new("app"), recon).unwrap();
    let (whole, effects) = ev
        .evaluate(&cand, true, &Inputs::default(), Control::unwatched())
        .unwrap();
    assert_eq!(report.figures, whole);
    for (t, e) in report.tensors.iter().zip(&effects) {
        assert_eq!(
            (&t.name, t.relmse, &t.figures),
            (&e.tensor, e.relmse, &e.figures)
        );
    }
    let Figures::Encoder(f) = &whole else {
        panic!("MiniLM is an encoder")
    };
    // Three 4-bit tensors move the embeddings a little, not a lot; each alone moves them less.
    assert!(f.mean_cosine < 0.99999 && f.mean_cosine > 0.98, "{f:?}");
    for e in &effects {
        assert!(e.figures.effect() > f.mean_cosine - 1.0, "{e:?}");
        assert!(e.figures.effect() < 0.0, "{e:?}");
    }

    // On screen: the figures, the chart's series (the legend names them), the table.
    h.get_by_label(&format!("{:.6}", f.mean_cosine));
    h.get_by_label("whole layer");
    h.get_by_label("Most sensitive tensors (1 − mean cosine when compressed alone)");
    assert!(
        h.query_by_label("Compressed tensors with a layer number appear here.")
            .is_none()
    );

    // Compressing another tensor makes the report stale, and says so.
    let other = h
        .state()
        .state
        .doc
        .find("encoder.layer.5.attention.self.key.weight")
        .unwrap();
    h.state_mut().state.apply(Command::Compress(vec![other]));
    wait_idle(&mut h, ui::MODEL_RUN);
    h.get_by_label("Computed on an earlier compression state: run again to update.");
}

#[test]
fn cancel_stops_a_run_and_keeps_no_result() {
    let mut h = compressed_demo(&[QUERY]);
    click(&mut h, "Run quality check");
    // The compression's Cancel (settings panel) is disabled; the tab's is the enabled one.
    h.get_all_by_label("Cancel")
        .find(|n| !n.accesskit_node().is_disabled())
        .expect("the tab's Cancel")
        .click();
    wait_idle(&mut h, ui::MODEL_RUN);
    let s = &h.state().state;
    assert!(s.results.quality.is_none());
    let msg = last_message(&h);
    assert_eq!((msg.error, msg.text.as_str()), (false, "Quality cancelled"));
}

#[test]
fn models_that_cannot_be_evaluated_say_why() {
    // The synthetic model is not on disk.
    let mut h = harness(Studio::with_document(loader::synthetic()));
    h.step();
    h.state_mut().state.apply(Command::Compress(vec![0]));
    wait_idle(&mut h, ui::MODEL_RUN);
    h.state_mut().state.apply(Command::ShowTab(TabId::Quality));
    h.run_steps(2);
    click(&mut h, "Run quality check");
    let msg = last_message(&h);
    assert!(
        msg.error && msg.text.contains("not a model on disk"),
        "{msg:?}"
    );

    // A model directory without a tokenizer, then one of an unsupported architecture.
    let dir = tempfile::tempdir().unwrap();
    let name = "model.layers.0.mlp.up_proj.weight";
    let w = crate::helpers::gaussian(64 * 64, 0.02, 7);
    write_model(
        &dir.path().join("model.safetensors"),
        &[T::float(name, Dtype::F32, &[64, 64], &w)],
    );
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let run = |h: &mut Harness<'_, Studio>| {
        h.state_mut()
            .state
            .apply(Command::Open(dir.path().to_path_buf()));
        wait_idle(h, ui::MODEL_RUN);
        h.state_mut().state.apply(Command::Compress(vec![0]));
        wait_idle(h, ui::MODEL_RUN);
        click(h, "Run quality check");
        wait_idle(h, ui::MODEL_RUN);
        last_message(h)
    };
    let msg = run(&mut h);
    assert!(msg.error, "{msg:?}");
    assert!(msg.text.contains("no tokenizer.json"), "{msg:?}");
    std::fs::copy(
        crate::helpers::demo_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let msg = run(&mut h);
    assert!(msg.error, "{msg:?}");
    assert!(
        msg.text.contains("unsupported architecture 'gpt2'"),
        "{msg:?}"
    );
    // The message is on screen.
    h.get_by_label(&msg.text);
}

/// Runs the data-free Baselines job on `tensors` with `methods`, on the Baselines tab, and
/// waits for it.
fn run_baselines(
    h: &mut Harness<'_, Studio>,
    tensors: Vec<usize>,
    methods: &[seedlm::study::baselines::Method],
) {
    h.state_mut()
        .state
        .apply(Command::Run(seedlm::app::work::Work::Baselines {
            tensors,
            methods: methods.to_vec(),
            calibration: None,
        }));
    h.state_mut()
        .state
        .apply(Command::ShowTab(TabId::Baselines));
    wait_idle(h, ui::MODEL_RUN);
}

#[test]
fn baselines_give_each_methods_function_space_figure() {
    use seedlm::study::baselines::{Method, measure};
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    let ti = h.state().state.doc.find(VALUE).unwrap();
    let methods = vec![Method::Rtn4G128, Method::Rtn3G128];
    run_baselines(&mut h, vec![ti], &methods);
    let run = &h.state().state.results.baselines.as_ref().unwrap().value;
    let function = run.function.as_ref().expect("the demo model can be run");
    let got: Vec<Method> = function.iter().map(|(m, _)| *m).collect();
    assert_eq!(got, methods);

    // The eval engine's figure for the same reconstruction; 3 bits hurt more than 4.
    let ev = Evaluator::open_model(&h.state().state.doc.path.clone().unwrap()).unwrap();
    let t = &h.state().state.doc.tensors[ti];
    let (_, recon) = measure(
        Method::Rtn4G128,
        &t.source.as_ref().unwrap().read().unwrap(),
        (t.shape[0], t.shape[1]),
        None,
        Control::unwatched(),
    )
    .unwrap();
    let want = ev
        .compare_overlays(
            Path::new("x"),
            vec![vec![(VALUE.to_string(), recon)]],
            &Inputs::default(),
            Control::unwatched(),
        )
        .unwrap();
    assert_eq!(function[0].1, want[0]);
    let (a, b) = (function[0].1.effect(), function[1].1.effect());
    assert!(b < a && a < 0.0, "{a} {b}");
    h.get_by_label("mean cosine");
}

#[test]
fn baselines_set_the_documents_own_compressed_state_beside_the_methods() {
    use seedlm::study::baselines::Method;
    // VALUE compressed in the app at the default 4-bit preset, then compared with the same
    // preset: the same exact search, so the same error, storage and outputs.
    let mut h = compressed_demo(&[VALUE]);
    let ti = h.state().state.doc.find(VALUE).unwrap();
    run_baselines(&mut h, vec![ti], &[Method::Rtn4G128, Method::SeedLm4]);
    let run = &h.state().state.results.baselines.as_ref().unwrap().value;
    let (measured, figures) = run.current.as_ref().expect("VALUE is compressed");
    let seedlm = run
        .rows
        .iter()
        .find(|r| r.tensor == seedlm::study::compare::TOTAL && r.method == Method::SeedLm4)
        .unwrap();
    assert_eq!(*measured, seedlm.measured);
    let function = run.function.as_ref().expect("the demo model can be run");
    assert_eq!(figures.as_ref(), Some(&function[1].1));
    // In the table and in the plot's legend.
    assert_eq!(h.query_all_by_label("as compressed").count(), 2);
    // Not every input compressed: no such row.
    let other = h.state().state.doc.find(KEY).unwrap();
    run_baselines(&mut h, vec![ti, other], &[Method::Rtn4G128]);
    let run = &h.state().state.results.baselines.as_ref().unwrap().value;
    assert!(run.current.is_none());
}

/// The calibrated methods in the Baselines tab: enabled once a text file is typed, searched as
/// the engine searches with that text's moments (not the plain preset's codes), and given a
/// function-space figure like every other method.
#[test]
fn baselines_run_the_calibrated_methods_on_the_typed_text() {
    use crate::helpers::ui::type_into;
    use seedlm::study::baselines::{Method, measure};
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("calib.txt");
    std::fs::write(
        &text,
        "She walked to the window and looked out at the rain for a long while.\n\n\
         He said nothing, then laughed, and the letter lay unopened on the table.",
    )
    .unwrap();
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    let ti = h.state().state.doc.find(VALUE).unwrap();
    for c in [
        Command::SelectOnly(vec![ti]),
        Command::ShowTab(TabId::Baselines),
    ] {
        h.state_mut().state.apply(c);
    }
    h.run_steps(2);
    let cal = |h: &Harness<'_, Studio>| {
        h.get_by_label("seedlm-4bit-cal")
            .accesskit_node()
            .is_disabled()
    };
    assert!(cal(&h), "no text yet");
    type_into(&mut h, "Text for the -cal methods", text.to_str().unwrap());
    h.run_steps(2);
    assert!(!cal(&h));
    // Only the 4-bit preset and its calibrated twin, to keep the search short: the tab ticks
    // the defaults and the calibrated methods.
    let keep = [Method::SeedLm4, Method::SeedLm4Cal];
    for m in Method::ALL {
        if (Method::defaults().contains(&m) || m.is_calibrated()) && !keep.contains(&m) {
            click(&mut h, m.name());
        }
    }
    click(&mut h, "Compare");
    wait_idle(&mut h, ui::MODEL_RUN);
    let run = &h.state().state.results.baselines.as_ref().unwrap().value;
    let total = |m: Method| {
        run.rows
            .iter()
            .find(|r| r.tensor == seedlm::study::compare::TOTAL && r.method == m)
            .unwrap_or_else(|| panic!("no {m} row"))
            .measured
    };
    let path = h.state().state.doc.path.clone().unwrap();
    let ev = Evaluator::open_model(&path).unwrap();
    let none = AtomicBool::new(false);
    let c =
        seedlm::eval::calibration::calibrate(&ev, &text, Control::new(&Progress::default(), &none))
            .unwrap();
    let t = &h.state().state.doc.tensors[ti];
    let data = t.source.as_ref().unwrap().read().unwrap();
    let want = |m: Method| {
        let d = c.moments[VALUE].as_slice();
        measure(
            m,
            &data,
            (t.shape[0], t.shape[1]),
            Some(d),
            Control::new(&Progress::default(), &none),
        )
        .unwrap()
        .0
    };
    assert_eq!(total(Method::SeedLm4Cal), want(Method::SeedLm4Cal));
    assert_eq!(total(Method::SeedLm4), want(Method::SeedLm4));
    assert_ne!(total(Method::SeedLm4Cal), total(Method::SeedLm4));
    let function = run.function.as_ref().expect("the demo model can be run");
    let got: Vec<Method> = function.iter().map(|(m, _)| *m).collect();
    assert_eq!(got, [Method::SeedLm4, Method::SeedLm4Cal]);
    assert!(function[1].1.effect() < 0.0);
    // Its marker is in the plot's legend and its row in the table.
    assert_eq!(h.query_all_by_label("seedlm-4bit-cal").count(), 3);
}

/// A decoder LM is scored on the text and window typed in the tab, as `compare --eval --text
/// --ctx` would (it always scored the bundled text at the default window, issue 23, item 14).
#[test]
fn a_decoder_is_scored_on_the_text_and_window_chosen_in_the_tab() {
    let llama = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/llama");
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "the cat sat on the mat and the dog ran. ".repeat(20)).unwrap();
    let mut h = harness(Studio::new(Some(llama.clone())));
    wait_idle(&mut h, ui::SMALL_JOB);
    let i = ui::smallest_tensor(h.state(), |t| t.compressible);
    h.state_mut().state.apply(Command::Compress(vec![i]));
    wait_idle(&mut h, ui::SMALL_JOB);
    h.state_mut().state.apply(Command::ShowTab(TabId::Quality));
    h.run_steps(2);
    h.get_by_label("Per-layer sensitivity").click();
    h.run_steps(2);
    ui::type_into(&mut h, "Text", text.to_str().unwrap());
    ui::type_into(&mut h, "Context", "64");
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    click(&mut h, "Run quality check");
    wait_idle(&mut h, ui::MODEL_RUN);
    let report = &h
        .state()
        .state
        .results
        .quality
        .as_ref()
        .expect("a report")
        .value;
    let Figures::Decoder(f) = &report.figures else {
        panic!("the llama fixture is a decoder");
    };
    let Evaluator::Decoder(d) = Evaluator::open(&llama).unwrap() else {
        panic!("a decoder");
    };
    let tokens = d
        .tokenize(&std::fs::read_to_string(&text).unwrap())
        .unwrap();
    assert_eq!(f.ctx, 64);
    assert_eq!(f.tokens, tokens.len());
}
