//! The app's sidecar (issue 12): compressed tensors are kept beside the model as they finish;
//! an app closed mid-job, reopened on the same model, offers to resume, reads what finished
//! (no search) and compresses the rest, and exports the very bytes `seedlm compress` writes.
//! A sidecar of another model is not offered, and a tensor is kept at the settings it was
//! last compressed with.

use crate::helpers::ui;
use crate::helpers::ui::{click, harness_with_sidecars, wait_idle};
use crate::helpers::{T, gaussian, pieces, run, s, text, write_model};
use egui_kittest::kittest::Queryable;
use seedlm::app::Studio;
use seedlm::app::command::{Command, ExportKind};
use seedlm::core::config::Config;
use seedlm::core::control::Control;
use seedlm::io::dtype::Dtype;
use seedlm::io::model::Model;
use seedlm::io::shard::{Sidecar, SidecarTensor};
use seedlm::search::compress::compress;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Four 384×384 demo tensors, compressed in this order.
const NAMES: [&str; 4] = [
    "encoder.layer.0.attention.self.key.weight",
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.attention.self.value.weight",
    "encoder.layer.0.attention.output.dense.weight",
];

/// The 4-bit checkpoint directory of `model`'s sidecar.
fn ckpt_4bit(model: &Path) -> PathBuf {
    Sidecar::beside(model)
        .root()
        .join("c8-p3-k16")
        .join("shard-0000-of-0001")
}

/// The app opened on `model` with sidecars on, once it is open.
fn open(model: &Path) -> egui_kittest::Harness<'static, Studio> {
    let mut h = harness_with_sidecars(Studio::new(Some(model.to_path_buf())));
    wait_idle(&mut h, ui::SMALL_JOB);
    assert_eq!(h.state().state.doc.path.as_deref(), Some(model));
    h
}

fn indices(h: &egui_kittest::Harness<'_, Studio>, names: &[&str]) -> Vec<usize> {
    let doc = &h.state().state.doc;
    names.iter().map(|n| doc.find(n).unwrap()).collect()
}

/// Every path under `dir`, to tell whether anything was written there.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.extend(tree(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn the_demo_keeps_its_sidecar_in_the_user_data_folder_and_offers_it_back() {
    let data = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = root.join(seedlm::app::loader::DEMO_MODEL);
    let assets = tree(&root.join("assets"));
    // As `seedlm` with no arguments opens it, with the user's data folder in a temporary one.
    let open_demo = || {
        let mut studio = Studio::with_document(seedlm::app::loader::synthetic());
        studio.state.data_dir = Some(data.path().to_path_buf());
        studio.state.apply(Command::OpenDemo);
        harness_with_sidecars(studio)
    };
    let mut h = open_demo();
    assert!(h.state().state.resume.is_none(), "nothing to resume yet");
    let idx = indices(&h, &NAMES[..2]);
    h.state_mut().state.apply(Command::Compress(idx));
    wait_idle(&mut h, ui::JOB);
    drop(h);

    let kept = Sidecar::in_folder(data.path(), &demo);
    let ckpt = kept.root().join("c8-p3-k16").join("shard-0000-of-0001");
    assert_eq!(pieces(&ckpt), 2, "both tensors are kept in the data folder");
    assert_eq!(
        tree(&root.join("assets")),
        assets,
        "nothing is written into the checkout"
    );

    let h = open_demo();
    let offer = h.state().state.resume.clone().expect("a resume offer");
    assert_eq!(offer.sidecar, kept);
    assert_eq!(offer.finished.len(), 2);
    h.get_by_label_contains("An earlier session left 2 compressed tensor(s)");
}

#[test]
fn an_app_closed_mid_job_resumes_from_its_sidecar_to_the_bytes_of_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    let demo = crate::helpers::demo_model();
    std::fs::copy(&demo, &model).unwrap();

    // Compress the four tensors and close the app once two are done.
    let mut h = open(&model);
    assert!(h.state().state.resume.is_none(), "nothing to resume yet");
    let idx = indices(&h, &NAMES);
    h.state_mut().state.apply(Command::Compress(idx));
    let ckpt = ckpt_4bit(&model);
    let deadline = Instant::now() + ui::JOB;
    while pieces(&ckpt) < 2 {
        assert!(Instant::now() < deadline, "no tensor was kept");
        assert!(h.state().busy(), "the job ended before the app was closed");
        std::thread::sleep(Duration::from_millis(10));
        h.step();
    }
    drop(h);
    // The closed app's job stops within a chunk; let it.
    std::thread::sleep(Duration::from_millis(500));
    let kept = pieces(&ckpt);
    assert!((2..4).contains(&kept), "{kept} tensors kept");
    let sidecar = Sidecar::beside(&model);
    let pending: Vec<String> = sidecar.pending().into_iter().map(|t| t.name).collect();
    // The closing app recorded the tensors not finished then (one may have finished since).
    assert!(pending.len() >= 4 - kept, "{pending:?}");
    assert_eq!(
        pending,
        NAMES[4 - pending.len()..],
        "the unfinished request is recorded"
    );

    // Reopened: the app offers what finished and what is left, and resumes on a click.
    let mut h = open(&model);
    let offer = h.state().state.resume.clone().expect("a resume offer");
    assert_eq!(offer.finished.len(), kept);
    assert_eq!(offer.pending.len(), 4 - kept);
    assert!(
        offer.finished.iter().all(|t| t.config == Config::FOUR_BIT),
        "{offer:?}"
    );
    h.get_by_label_contains(&format!(
        "An earlier session left {kept} compressed tensor(s)"
    ));
    click(&mut h, "Resume");
    wait_idle(&mut h, ui::JOB);
    let st = &h.state().state;
    assert!(st.resume.is_none() && h.query_by_label("Resume").is_none());
    assert!(
        st.messages.iter().any(|m| m
            .text
            .ends_with(&format!(", {kept} tensor(s) read from the sidecar"))),
        "{:?}",
        st.messages
    );
    for n in NAMES {
        assert!(st.doc.tensors[st.doc.find(n).unwrap()].result.is_some());
    }
    assert_eq!(pieces(&ckpt), 4);
    assert!(sidecar.pending().is_empty(), "nothing is left to do");

    // The export is byte for byte the command line's compression of the same tensors.
    let app_out = dir.path().join("app.seedlm.safetensors");
    h.state_mut().state.apply(Command::Export {
        kind: ExportKind::Packed,
        path: app_out.clone(),
    });
    wait_idle(&mut h, ui::JOB);
    let cli_out = dir.path().join("cli.seedlm.safetensors");
    let regex = r"^encoder\.layer\.0\.attention\.(self\.(key|query|value)|output\.dense)\.weight$";
    let o = run(&["compress", s(&model), "-o", s(&cli_out), "--include", regex]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        std::fs::read(&app_out).unwrap() == std::fs::read(&cli_out).unwrap(),
        "the resumed export differs from seedlm compress"
    );

    // Discard removes the sidecar; the model opens with nothing to offer.
    drop(h);
    let mut h = open(&model);
    click(&mut h, "Discard");
    assert!(!sidecar.root().exists());
    drop(h);
    assert!(open(&model).state().state.resume.is_none());
}

#[test]
fn a_sidecar_of_another_model_is_not_offered_and_settings_key_the_kept_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let a = gaussian(64 * 48, 0.02, 1);
    let b = gaussian(32 * 48, 0.05, 2);
    let tensors = |extra: bool| {
        let mut v = vec![
            T::float("layers.0.q_proj.weight", Dtype::F16, &[64, 48], &a),
            T::float("layers.0.k_proj.weight", Dtype::F32, &[32, 48], &b),
        ];
        if extra {
            v.push(T::float(
                "layers.0.v_proj.weight",
                Dtype::F32,
                &[32, 48],
                &b,
            ));
        }
        v
    };
    write_model(&model, &tensors(false));
    let mut h = open(&model);
    let idx = indices(&h, &["layers.0.q_proj.weight", "layers.0.k_proj.weight"]);
    h.state_mut().state.apply(Command::Compress(idx.clone()));
    wait_idle(&mut h, ui::SMALL_JOB);
    drop(h);
    let sidecar = Sidecar::beside(&model);
    let at = |names: &[&str], config| -> Vec<SidecarTensor> {
        names
            .iter()
            .map(|n| SidecarTensor {
                name: n.to_string(),
                config,
                calibration: None,
            })
            .collect()
    };
    let m = Model::open(&model).unwrap();
    let finished = |m: &Model| {
        let mut v = sidecar.finished(m);
        v.sort_by(|x, y| x.name.cmp(&y.name));
        v
    };
    let both = ["layers.0.k_proj.weight", "layers.0.q_proj.weight"];
    assert_eq!(finished(&m), at(&both, Config::FOUR_BIT));

    // Recompressed at 3 bits: searched anew (not read from the 4-bit piece) and kept at 3 bits.
    let mut h = open(&model);
    assert!(h.state().state.resume.is_some());
    h.state_mut()
        .state
        .apply(Command::SetConfig(Config::THREE_BIT));
    h.state_mut().state.apply(Command::Compress(vec![idx[0]]));
    wait_idle(&mut h, ui::SMALL_JOB);
    let st = &h.state().state;
    let (want, _) = compress(
        &m.to_f32(m.get(both[1]).unwrap()).unwrap(),
        Config::THREE_BIT,
        Control::unwatched(),
    )
    .unwrap();
    assert_eq!(
        st.doc.tensors[idx[0]]
            .result
            .as_ref()
            .unwrap()
            .compressed
            .unpack()
            .unwrap(),
        want
    );
    assert!(
        !st.messages
            .iter()
            .any(|m| m.text.contains("read from the sidecar"))
    );
    drop(h);
    let mut kept = at(&both[..1], Config::FOUR_BIT);
    kept.extend(at(&both[1..], Config::THREE_BIT));
    assert_eq!(finished(&m), kept);

    // Another model at the same path (a tensor more): its sidecar is not offered.
    write_model(&model, &tensors(true));
    let h = open(&model);
    assert!(h.state().state.resume.is_none());
    assert!(h.query_by_label("Resume").is_none());
    assert!(finished(&Model::open(&model).unwrap()).is_empty());
}

#[test]
fn sidecars_go_to_the_folder_the_user_picks_and_are_offered_from_there() {
    use crate::helpers::ui::type_into;
    let dir = tempfile::tempdir().unwrap();
    let picked = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    let w = gaussian(64 * 64, 0.02, 9);
    write_model(
        &model,
        &[T::float(
            "layers.0.q_proj.weight",
            Dtype::F32,
            &[64, 64],
            &w,
        )],
    );

    // Picked under Resume sidecar, then a compression keeps its tensor there.
    let mut h = open(&model);
    click(&mut h, "Resume sidecar");
    h.get_by_label("Kept beside each model (MODEL.seedlm-resume)");
    type_into(&mut h, "Sidecar folder", picked.path().to_str().unwrap());
    click(&mut h, "Use folder");
    assert_eq!(
        h.state().state.saved.sidecar_dir.as_deref(),
        Some(picked.path())
    );
    h.state_mut().state.apply(Command::Compress(vec![0]));
    wait_idle(&mut h, ui::SMALL_JOB);
    let kept = Sidecar::in_folder(picked.path(), &model);
    let ckpt = kept.root().join("c8-p3-k16").join("shard-0000-of-0001");
    assert_eq!(pieces(&ckpt), 1);
    assert!(
        !Sidecar::beside(&model).root().exists(),
        "nothing beside the model"
    );
    drop(h);

    // Opened again with that folder chosen, the model is offered its tensor back.
    let mut studio = Studio::with_document(seedlm::app::loader::synthetic());
    studio.state.saved.sidecar_dir = Some(picked.path().to_path_buf());
    studio.state.apply(Command::Open(model.clone()));
    let mut h = harness_with_sidecars(studio);
    wait_idle(&mut h, ui::SMALL_JOB);
    let offer = h
        .state()
        .state
        .resume
        .clone()
        .expect("offered from the picked folder");
    assert_eq!(offer.finished.len(), 1);
    // Another model of the same name elsewhere gets a sidecar of its own there.
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        Sidecar::in_folder(picked.path(), &other.path().join("model.safetensors")).root(),
        kept.root()
    );
}

/// Tensors read back from the sidecar count as done but not as searched: right after a resume
/// the rate showed 111k blocks/s (issue 23, item 17).
#[test]
fn the_rate_counts_only_blocks_searched_in_this_run() {
    use seedlm::app::jobs::{CompressJob, Input, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let name = "layers.0.q_proj.weight";
    write_model(
        &model,
        &[T::float(
            name,
            Dtype::F32,
            &[64, 64],
            &gaussian(4096, 0.02, 5),
        )],
    );
    let mut h = open(&model);
    let idx = indices(&h, &[name]);
    h.state_mut().state.apply(Command::Compress(idx.clone()));
    wait_idle(&mut h, ui::SMALL_JOB);
    drop(h);

    let h = open(&model);
    let doc = &h.state().state.doc;
    let t = &doc.tensors[idx[0]];
    let input = Input {
        tensor: idx[0],
        name: t.name.clone(),
        shape: t.shape.clone(),
        source: t.source.clone().unwrap(),
    };
    let mut job = CompressJob::spawn(
        vec![input],
        Config::FOUR_BIT,
        None,
        doc.id,
        Some(Sidecar::beside(&model)),
        None,
    );
    let deadline = Instant::now() + ui::SMALL_JOB;
    let end = loop {
        if let (_, Some(end)) = job.poll() {
            break end;
        }
        assert!(Instant::now() < deadline, "the job never ended");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(matches!(end, Outcome::Done(())));
    assert_eq!(job.loaded, 1, "read from the sidecar");
    assert_eq!(job.blocks().0, 512, "its blocks are done");
    assert_eq!(job.rate(), 0.0, "but none was searched");
    assert_eq!(job.eta(), None);
}
