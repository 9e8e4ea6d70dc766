//! UI tests: drive the real app (state, panels, background jobs) through egui_kittest, headless.

use crate::helpers::ui;
use crate::helpers::ui::{click, harness, tiny, type_into, wait_idle};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use seedlm::app::{Studio, loader};
use seedlm::core::config::Config;
use seedlm::core::control::{Control, Progress};
use seedlm::io::dtype;
use seedlm::io::packed::PackedModel;
use seedlm::search::compress::compress;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Index of the smallest linear-layer weight of the model (quick to compress).
fn small_tensor(s: &Studio) -> usize {
    ui::smallest_tensor(s, |t| t.compressible)
}

#[test]
fn compress_inspect_and_export_a_tensor() {
    // Open the bundled demo model through the path field, as a user would.
    let mut h = harness(Studio::with_document(loader::synthetic()));
    h.step();
    type_into(
        &mut h,
        "Path",
        crate::helpers::demo_model().to_str().unwrap(),
    );
    click(&mut h, "Open");
    wait_idle(&mut h, ui::JOB);
    assert_eq!(
        h.state().state.doc.path.as_deref(),
        Some(crate::helpers::demo_model().as_path())
    );
    let ti = small_tensor(h.state());
    let name = h.state().state.doc.tensors[ti].name.clone();
    let data = h.state().state.doc.tensors[ti]
        .source
        .clone()
        .unwrap()
        .read()
        .unwrap();

    // Select it in the tree and compress it with the default 4-bit preset.
    click(&mut h, &name);
    assert!(h.state().state.selection.contains(&ti));
    h.get_by_label("Compress selected (1)").click();
    h.step();
    assert!(h.state().busy(), "compression runs in the background");
    wait_idle(&mut h, ui::JOB);

    // The SNR shown is the engine's figure for the same tensor.
    let (engine, stats) = compress(&data, Config::FOUR_BIT, Control::unwatched()).unwrap();
    let shown = format!("SNR: {:.2} dB", stats.snr_db());
    click(&mut h, "Tensor");
    h.get_by_label_contains(&shown);
    let result = h.state().state.doc.tensors[ti].result.clone().unwrap();
    assert_eq!(
        result.compressed.unpack().unwrap(),
        engine,
        "the app's codes are the engine's"
    );

    // Block inspector on block 5: its seed is the engine's.
    click(&mut h, "Block inspector");
    type_into(&mut h, "Block index", "5");
    click(&mut h, "Show");
    let seed = engine.blocks[5].seed;
    h.get_by_label_contains(&format!("0x{seed:04X} ({seed})"));

    // A hand-typed seed is scored; its error is no smaller than the search's.
    type_into(&mut h, "Trial seed", "0x1");
    click(&mut h, "Try");
    h.get_by_label_contains("Trial seed 0x1:");

    // Export the packed file; it decodes to the same codes and reconstruction.
    let dir = tempfile::tempdir().unwrap();
    let packed = dir.path().join("model.seedlm.safetensors");
    click(&mut h, "Overview");
    type_into(&mut h, "Packed file", packed.to_str().unwrap());
    click(&mut h, "Export packed");
    wait_idle(&mut h, ui::JOB);
    h.get_by_label_contains("wrote packed file");
    let p = PackedModel::open(&packed).expect("the packed file exists and verifies");
    let pt = p.get(&name).unwrap();
    assert_eq!(p.compressed(pt).unwrap().unwrap(), engine);
    assert_eq!(p.to_f32(pt).unwrap(), result.reconstruction().unwrap());
    assert_eq!(
        p.tensors().len(),
        seedlm::io::model::Model::open(&crate::helpers::demo_model())
            .unwrap()
            .tensors()
            .len()
    );

    // And a decompressed model: ŵ rounded to the tensor's own dtype.
    let out = dir.path().join("decompressed.safetensors");
    type_into(&mut h, "Decompressed file", out.to_str().unwrap());
    click(&mut h, "Export decompressed");
    wait_idle(&mut h, ui::JOB);
    let m = seedlm::io::model::Model::open(&out).expect("the export exists");
    let dt = m.get(&name).unwrap();
    let want = dtype::to_f32(
        dt.dtype,
        &dtype::from_f32(dt.dtype, &result.reconstruction().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(m.to_f32(dt).unwrap(), want);

    // The packed file opens in the app, its tensor compressed with the same codes.
    type_into(&mut h, "Path", packed.to_str().unwrap());
    click(&mut h, "Open");
    wait_idle(&mut h, ui::JOB);
    let doc = &h.state().state.doc;
    let t = &doc.tensors[doc.find(&name).unwrap()];
    assert!(t.source.is_none());
    assert_eq!(
        t.result.as_ref().unwrap().compressed.unpack().unwrap(),
        engine
    );
}

#[test]
fn cancel_leaves_tensors_as_they_were() {
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    click(&mut h, "Compress all");
    assert!(h.state().busy());
    h.get_by_label("Cancel").click();
    wait_idle(&mut h, ui::JOB);
    let s = &h.state().state;
    assert!(s.job.is_none() && s.queue.is_empty());
    // Whatever finished before the cancel is complete; nothing is half-done.
    for t in &s.doc.tensors {
        if let Some(r) = &t.result {
            assert_eq!(r.reconstruction().unwrap().len(), t.len());
        }
    }
    assert!(s.messages.iter().any(|m| m.text.contains("cancelled")));
}

#[test]
fn a_bad_path_is_a_readable_error() {
    let mut h = harness(Studio::with_document(loader::synthetic()));
    h.step();
    type_into(&mut h, "Path", "/nonexistent/model.safetensors");
    h.get_by_label("Open").click();
    wait_idle(&mut h, ui::JOB);
    let msg = h.state().state.messages.last().expect("a message").clone();
    assert!(msg.error, "{msg:?}");
    assert!(
        msg.text.starts_with("/nonexistent/model.safetensors: "),
        "{msg:?}"
    );
    // It is on screen, and the model shown is unchanged.
    h.get_by_label(&msg.text);
    assert!(h.state().state.doc.path.is_none());

    // A failed export is a message too, and leaves no file behind.
    let bad = std::path::Path::new("/nonexistent/dir/out.safetensors");
    type_into(&mut h, "Decompressed file", bad.to_str().unwrap());
    click(&mut h, "Export decompressed");
    wait_idle(&mut h, ui::JOB);
    let msg = h.state().state.messages.last().expect("a message").clone();
    assert!(
        msg.error
            && msg
                .text
                .starts_with("export failed: /nonexistent/dir/out.safetensors"),
        "{msg:?}"
    );
    assert!(!bad.exists());
}

#[test]
fn tree_sorts_naturally_and_multi_selects() {
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = |l: usize| format!("model.layers.{l}.mlp.up_proj.weight");
    let y = |h: &Harness<'_, Studio>, l: usize| h.get_by_label(&name(l)).rect().top();
    assert!(
        y(&h, 1) < y(&h, 2) && y(&h, 2) < y(&h, 10),
        "layer 2 is listed before layer 10"
    );

    click(&mut h, &name(1));
    h.get_by_label(&name(10))
        .click_modifiers(egui::Modifiers::COMMAND);
    h.run_steps(2);
    let sel = |h: &Harness<'_, Studio>| {
        h.state()
            .state
            .selection
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(sel(&h), vec![0, 2], "Ctrl+click adds");
    h.get_by_label(&name(1))
        .click_modifiers(egui::Modifiers::SHIFT);
    h.run_steps(2);
    assert_eq!(
        sel(&h),
        vec![0, 1, 2],
        "Shift+click extends from the last click"
    );
    h.get_by_label(&name(2))
        .click_modifiers(egui::Modifiers::COMMAND);
    h.run_steps(2);
    assert_eq!(sel(&h), vec![0, 2], "Ctrl+click removes");
    h.get_by_label("Compress selected (2)");
}

#[test]
fn recompressing_with_other_settings_replaces_the_result() {
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = "model.layers.2.mlp.up_proj.weight";
    click(&mut h, name);
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::JOB);
    let first = h.state().state.doc.tensors[1].result.clone().unwrap();
    assert_eq!(first.compressed.config, Config::FOUR_BIT);

    click(&mut h, "3-bit");
    h.get_by_label_contains("C=12 P=4 K=16 (3.000 bits/weight), 36 bits per block");
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::JOB);
    let second = h.state().state.doc.tensors[1].result.clone().unwrap();
    assert_eq!(second.compressed.config, Config::THREE_BIT);
    assert!(second.generation > first.generation);
    let data = h.state().state.doc.tensors[1]
        .source
        .clone()
        .unwrap()
        .read()
        .unwrap();
    let (engine, _) = compress(&data, Config::THREE_BIT, Control::unwatched()).unwrap();
    assert_eq!(second.compressed.unpack().unwrap(), engine);
    // The overview's model total (only this tensor is compressed) shows the new SNR.
    let snr = second.stats.as_ref().unwrap().snr_db();
    h.get_by_label_contains(&format!("({snr:.2} dB)"));
}

#[test]
fn theme_switch_follows_the_view_menu() {
    let mut h = harness(tiny());
    h.run_steps(2);
    assert!(h.state().state.saved.dark);
    click(&mut h, "View");
    click(&mut h, "Dark theme");
    assert!(!h.state().state.saved.dark);
    assert_eq!(h.ctx.theme(), egui::Theme::Light);
}

#[test]
fn status_bar_names_the_search_kernel() {
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = seedlm::search::Kernel::chosen().name();
    h.get_by_label(&format!("search: {name}"));
}

/// A file dropped on the window, as the windowing layer hands it over.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_dropped_file_opens_and_joins_the_recent_files() {
    // Write the tiny model out, then drop the file on the app.
    let mut h = harness(tiny());
    h.run_steps(2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.safetensors");
    type_into(&mut h, "Decompressed file", file.to_str().unwrap());
    click(&mut h, "Export decompressed");
    wait_idle(&mut h, ui::JOB);
    assert!(h.state().state.doc.path.is_none());

    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(file.clone())));
    h.step();
    wait_idle(&mut h, ui::JOB);
    let s = &h.state().state;
    assert_eq!(s.doc.path.as_deref(), Some(file.as_path()));
    assert_eq!(s.doc.tensors.len(), 3);
    assert_eq!(s.saved.recent.first(), Some(&file));
    click(&mut h, "File");
    click(&mut h, "Recent");
    h.get_by_label(file.to_str().unwrap());
}

#[test]
fn a_tab_result_is_dropped_when_another_model_opens() {
    use seedlm::app::command::{Command, SelectMode};
    let mut h = harness(tiny());
    h.run_steps(2);
    h.state_mut().state.apply(Command::Select {
        tensor: 0,
        mode: SelectMode::Replace,
    });
    click(&mut h, "Baselines");
    click(&mut h, "Compare");
    wait_idle(&mut h, ui::JOB);
    h.get_by_label("All selected tensors");
    assert!(h.state().state.results.baselines.is_some());

    // Another model: the rows computed on the tiny one are gone, from the state and the tab.
    h.state_mut().state.apply(Command::OpenDemo);
    h.run_steps(2);
    assert!(h.state().state.results.baselines.is_none());
    assert!(h.query_by_label("All selected tensors").is_none());

    // A run still going when the model changes is stopped, and its rows never show.
    let ti = small_tensor(h.state());
    h.state_mut().state.apply(Command::Select {
        tensor: ti,
        mode: SelectMode::Replace,
    });
    h.run_steps(2);
    click(&mut h, "Compare");
    h.state_mut().state.apply(Command::OpenDemo);
    wait_idle(&mut h, ui::JOB);
    assert!(h.state().state.results.baselines.is_none());
    assert!(h.query_by_label("All selected tensors").is_none());
}

#[test]
fn export_can_be_cancelled_and_leaves_no_file() {
    use seedlm::app::command::{Command, ExportKind};
    use seedlm::app::work::JobKind;
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.safetensors");
    h.state_mut().state.apply(Command::Export {
        kind: ExportKind::Decompressed,
        path: path.clone(),
    });
    // Stopped at once, as the export's Cancel button does: a loaded machine could otherwise
    // finish the export before the next frame.
    h.state_mut().state.apply(Command::Stop(JobKind::Export));
    h.run_steps(1);
    if h.state().state.running(JobKind::Export).is_some() {
        // Still winding down: its progress says so, in the Overview and the status bar.
        assert_eq!(h.query_all_by_label_contains("stopping…").count(), 2);
    }
    wait_idle(&mut h, ui::JOB);
    let msg = h.state().state.messages.last().expect("a message").clone();
    assert_eq!(msg.text, "export cancelled", "{msg:?}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temp file left"
    );
}

/// Compresses the tiny model's tensor `i` with the settings chosen by the button `preset`.
fn compress_one(h: &mut Harness<'_, Studio>, i: usize, preset: &str) {
    use seedlm::app::command::{Command, SelectMode};
    click(h, preset);
    h.state_mut().state.apply(Command::Select {
        tensor: i,
        mode: SelectMode::Replace,
    });
    h.run_steps(2);
    click(h, "Compress selected (1)");
    wait_idle(h, ui::JOB);
}

#[test]
fn a_packed_file_shows_its_stored_errors() {
    use seedlm::app::panels::overview::layer_series;
    let mut h = harness(tiny());
    h.run_steps(2);
    compress_one(&mut h, 1, "4-bit");
    let stats = h.state().state.doc.tensors[1].result.clone().unwrap();
    let rel = stats.stats.as_ref().unwrap().relmse();
    let dir = tempfile::tempdir().unwrap();
    let packed = dir.path().join("tiny.seedlm.safetensors");
    type_into(&mut h, "Packed file", packed.to_str().unwrap());
    click(&mut h, "Export packed");
    wait_idle(&mut h, ui::JOB);
    type_into(&mut h, "Path", packed.to_str().unwrap());
    click(&mut h, "Open");
    wait_idle(&mut h, ui::JOB);
    assert_eq!(h.state().state.doc.path.as_deref(), Some(packed.as_path()));
    click(&mut h, "Overview");

    // The stored figure, not "0.00000 (inf dB)".
    let snr = seedlm::search::compress::snr_db(rel);
    h.get_by_label(&format!(
        "≈{rel:.5} ({snr:.2} dB), from the errors stored per tensor"
    ));
    assert!(h.query_by_label_contains("inf dB").is_none());
    // The per-layer chart has the tensor's point, and the tree its SNR.
    let series = layer_series(&h.state().state, true);
    assert_eq!(series.values().flatten().count(), 1, "{series:?}");
    let [layer, y] = series.values().next().unwrap()[0];
    assert_eq!(layer, 2.0);
    assert!((y - snr).abs() < 1e-9);
    // The Tensor tab gives the stored figure too.
    h.state_mut()
        .state
        .apply(seedlm::app::command::Command::Select {
            tensor: 1,
            mode: seedlm::app::command::SelectMode::Replace,
        });
    click(&mut h, "Tensor");
    h.get_by_label_contains(&format!("SNR: {snr:.2} dB, relative MSE {rel:.6} (stored"));
    // No empty axes for what a packed file cannot show.
    wait_idle(&mut h, ui::SMALL_JOB);
    h.get_by_label("(the original is not available: no per-block errors)");
}

#[test]
fn mixed_presets_are_shown_per_configuration() {
    use seedlm::app::panels::overview::layer_series;
    let mut h = harness(tiny());
    h.run_steps(2);
    compress_one(&mut h, 0, "4-bit");
    compress_one(&mut h, 1, "3-bit");
    // A larger-P preset is offered beside the paper's and named as such.
    compress_one(&mut h, 2, "4bit-p6");
    let cfg = |i: usize| {
        h.state().state.doc.tensors[i]
            .result
            .as_ref()
            .unwrap()
            .compressed
            .config
    };
    assert_eq!(
        [cfg(0), cfg(1), cfg(2)],
        [Config::FOUR_BIT, Config::THREE_BIT, Config::FOUR_BIT_P6]
    );
    click(&mut h, "Overview");
    h.get_by_label("4-bit (1 tensors)");
    h.get_by_label("3-bit (1 tensors)");
    h.get_by_label("4bit-p6 (1 tensors)");
    // Each configuration's bits per weight (16×16 weights: 32 blocks of 32 bits, 22 of 36),
    // beside the overall mix.
    h.get_by_label("4.000");
    h.get_by_label(&format!("{:.3}", 22.0 * 36.0 / 256.0));
    h.get_by_label(&format!(
        "{:.3}",
        (32.0 * 32.0 + 22.0 * 36.0 + 24.0 * 44.0) / 768.0
    ));
    let keys: Vec<String> = layer_series(&h.state().state, true).into_keys().collect();
    assert_eq!(
        keys,
        vec![
            "mlp.up_proj (3-bit)",
            "mlp.up_proj (4-bit)",
            "mlp.up_proj (4bit-p6)"
        ]
    );
    // Each relative MSE is its own tensor's.
    let t = &h.state().state.doc.tensors;
    for i in [0, 1, 2] {
        let rel = t[i].result.as_ref().unwrap().relmse().unwrap();
        h.get_by_label_contains(&format!("{rel:.5} ("));
    }
}

#[test]
fn a_tall_matrix_fits_its_heatmap_and_shows_the_value_under_the_cursor() {
    use egui_kittest::kittest::NodeT;
    use seedlm::app::command::{Command, SelectMode};
    use seedlm::app::document::{Document, Source, TensorEntry};
    let data: Vec<f32> = (0..2048 * 16).map(|i| i as f32 / 1000.0).collect();
    let doc = Document::new(
        None,
        "tall".into(),
        vec![TensorEntry {
            name: "lm_head.weight".into(),
            shape: vec![2048, 16],
            dtype: dtype::Dtype::F32,
            source: Some(Source::Memory(std::sync::Arc::new(data))),
            result: None,
            compressible: false,
        }],
    );
    let mut h = harness(Studio::with_document(doc));
    h.step();
    h.state_mut().state.apply(Command::Select {
        tensor: 0,
        mode: SelectMode::Replace,
    });
    click(&mut h, "Tensor");
    wait_idle(&mut h, ui::SMALL_JOB);
    // Every row is in view, not a square slice of them.
    h.get_by_label("rows 0–2047 of 2048, columns 0–15 of 16 shown");
    // An uncompressed tensor has no seeds, exponents or errors: the charts say so.
    assert_eq!(
        h.query_all_by_label("(not compressed: nothing to show)")
            .count(),
        4
    );

    // Point at the middle of the heatmap: the label gives that cell's value.
    // The heatmap's title (the histogram's legend has the same words, further down).
    let title = h.query_all_by_label("original w").next().unwrap().rect();
    let at = egui::pos2(title.center().x, title.bottom() + 130.0);
    h.input_mut().events.push(egui::Event::PointerMoved(at));
    h.run_steps(3);
    let node = h
        .query_all_by_label_contains(": w = ")
        .next()
        .expect("the value under the cursor");
    let shown = node
        .accesskit_node()
        .label()
        .or_else(|| node.value())
        .unwrap();
    // "row R, col C: w = V": V is the weight at (R, C).
    let nums: Vec<f64> = shown
        .split(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .filter_map(|x| x.parse().ok())
        .collect();
    let (row, col, w) = (nums[0], nums[1], nums[2]);
    assert!(row > 100.0, "{shown}");
    assert!((w - (row * 16.0 + col) / 1000.0).abs() < 1e-6, "{shown}");
}

#[test]
fn the_tree_names_its_groups_counts_hidden_tensors_and_says_when_nothing_matches() {
    use crate::helpers::{T, gaussian, write_model};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bert.safetensors");
    let f32_ = dtype::Dtype::F32;
    write_model(
        &file,
        &[
            T::float(
                "embeddings.word.weight",
                f32_,
                &[8, 16],
                &gaussian(128, 0.1, 1),
            ),
            T::ids("embeddings.position_ids", 8),
            T::float(
                "encoder.layer.0.q.weight",
                f32_,
                &[16, 16],
                &gaussian(256, 0.1, 2),
            ),
            T::float(
                "pooler.dense.weight",
                f32_,
                &[16, 16],
                &gaussian(256, 0.1, 3),
            ),
        ],
    );
    let mut h = harness(tiny());
    h.run_steps(2);
    type_into(&mut h, "Filter", "zzz");
    type_into(&mut h, "Path", file.to_str().unwrap());
    click(&mut h, "Open");
    wait_idle(&mut h, ui::SMALL_JOB);
    // The filter kept from the tiny model matches nothing here, and says so.
    h.get_by_label("No tensor name contains “zzz” (3 tensors hidden by the filter).");
    click(&mut h, "Clear filter");
    // The groups before and after the layers are named by what they hold.
    h.get_by_label("embeddings.word (1)");
    h.get_by_label("layer 0 (1)");
    h.get_by_label("pooler.dense (1)");
    assert!(h.query_by_label_contains("other").is_none());
    // The header counts what export writes: the I64 tensor too.
    h.get_by_label("bert.safetensors — 4 tensors (3 in the tree, 1 non-float kept as they are)");
}

#[test]
fn open_without_a_file_dialog_points_to_the_path_field() {
    // Headless, as under Xvfb: no session bus (so no desktop portal) and no zenity.
    let no_dialog = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
        && std::process::Command::new("zenity")
            .arg("--version")
            .output()
            .is_err();
    assert!(no_dialog, "this test needs a machine without a file dialog");
    let mut h = harness(tiny());
    h.run_steps(2);
    click(&mut h, "File");
    click(&mut h, "Open…");
    wait_idle(&mut h, ui::SMALL_JOB);
    let msg = h.state().state.messages.last().expect("a message").clone();
    assert!(msg.error, "{msg:?}");
    assert!(msg.text.contains("no file dialog is available"), "{msg:?}");
    assert!(msg.text.contains("Path field"), "{msg:?}");
    h.get_by_label(&msg.text);
}

#[test]
fn an_opened_model_holds_no_weights_until_a_view_or_job_reads_them() {
    use crate::helpers::{T, gaussian, write_model};
    use seedlm::app::command::{Command, SelectMode};
    use seedlm::app::document::Source;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let names = [
        "layers.0.q_proj.weight",
        "layers.0.k_proj.weight",
        "layers.0.v_proj.weight",
    ];
    let tensors: Vec<T> = (0..3)
        .map(|i| {
            T::float(
                names[i],
                dtype::Dtype::F16,
                &[32, 64],
                &gaussian(2048, 0.02, i as u64),
            )
        })
        .collect();
    write_model(&path, &tensors);

    let (progress, cancel) = (Progress::default(), AtomicBool::new(false));
    let doc = loader::load(&path, Control::new(&progress, &cancel)).unwrap();
    assert_eq!(doc.converted_bytes(), 0, "opening reads headers only");
    // The status bar shows the tensors taken in so far while a model opens.
    let read = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((read(&progress.done), read(&progress.total)), (3, 3));
    // A cancelled open (a model opened later replaces it) stops, naming the file.
    let raised = AtomicBool::new(true);
    let err = loader::load(&path, Control::new(&Progress::default(), &raised)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: opening cancelled", path.display())
    );
    assert!(
        doc.tensors
            .iter()
            .all(|t| matches!(t.source, Some(Source::Mapped(..)))),
        "every tensor is read from the map, none held in memory"
    );
    let per_tensor = doc.tensors[0].original_bytes();
    let mut h = harness(Studio::with_document(doc));
    h.step();
    assert_eq!(
        h.state().state.doc.converted_bytes(),
        0,
        "drawing the tree reads nothing"
    );

    // The Tensor tab reads the tensor it shows (once, for its heatmaps and histograms).
    h.state_mut().state.apply(Command::Select {
        tensor: 1,
        mode: SelectMode::Replace,
    });
    click(&mut h, "Tensor");
    wait_idle(&mut h, ui::SMALL_JOB);
    let viewed = h.state().state.doc.converted_bytes();
    assert_eq!(viewed, per_tensor, "the view read its one tensor");

    // A compression reads the tensors it compresses, one at a time.
    h.state_mut().state.apply(Command::Compress(vec![0, 2]));
    wait_idle(&mut h, ui::SMALL_JOB);
    let s = &h.state().state;
    assert!(s.doc.tensors[0].result.is_some() && s.doc.tensors[2].result.is_some());
    assert_eq!(s.doc.converted_bytes(), viewed + 2 * per_tensor);
}

#[test]
fn a_packed_file_opens_by_header_and_checks_a_tensor_when_first_read() {
    use crate::helpers::gaussian;
    use seedlm::app::document::Source;
    use seedlm::io::packed::{CompressedEntry, PlainEntry, write_packed};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.seedlm.safetensors");
    let codes = |seed| {
        let w = gaussian(1024, 0.02, seed);
        compress(&w, Config::FOUR_BIT, Control::unwatched())
            .unwrap()
            .0
    };
    let (good, bad) = (codes(1), codes(2));
    let entry = |name: &str, t| CompressedEntry::new(name, &[16, 64], dtype::Dtype::F32, t, None);
    let norm = gaussian(64, 1.0, 3);
    let norm_bytes = dtype::from_f32(dtype::Dtype::F16, &norm).unwrap();
    let names = ["q.weight", "k.weight", "norm.weight"].map(String::from);
    write_packed(
        &path,
        &[entry(&names[0], &good), entry(&names[1], &bad)],
        &[PlainEntry {
            name: names[2].clone(),
            shape: vec![64],
            dtype: dtype::Dtype::F16,
            data: &norm_bytes,
        }],
        &names,
        &Default::default(),
    )
    .unwrap();
    // Damage one record of k.weight (its CRC no longer matches).
    let mut bytes = std::fs::read(&path).unwrap();
    let records = seedlm::io::packed::pack_blocks(&bad);
    let at = bytes
        .windows(records.len())
        .position(|w| w == records.as_slice())
        .unwrap();
    bytes[at + 7] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    // It opens: nothing but the header is read, so the damage is not seen yet.
    let doc = loader::load(&path, Control::unwatched()).expect("opens by header");
    let tensor = |name: &str| &doc.tensors[doc.find(name).unwrap()];
    let result = |name: &str| tensor(name).result.as_ref().unwrap();
    assert_eq!(result("q.weight").compressed.unpack().unwrap(), good);
    let err = result("k.weight")
        .compressed
        .records()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("k.weight") && err.contains("checksum"),
        "{err}"
    );
    assert!(result("k.weight").reconstruction().is_err());
    // The plain tensor is read from the map in its stored dtype, not held as f32.
    let src = tensor("norm.weight").source.as_ref().unwrap();
    assert!(matches!(src, Source::Packed(..)));
    let f16 = |v: &[f32]| {
        dtype::to_f32(
            dtype::Dtype::F16,
            &dtype::from_f32(dtype::Dtype::F16, v).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(src.read_range(5..9).unwrap(), f16(&norm[5..9]));
}

#[test]
fn tensors_named_on_the_command_line_are_compressed_once_the_model_is_open() {
    use crate::helpers::{small_model, write_model};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_model(&path, &small_model());
    let mut studio = Studio::new(Some(path));
    let name = "layers.0.q_proj.weight";
    studio.compress_when_open(vec![name.into(), "no.such.weight".into()]);
    let mut h = harness(studio);
    wait_idle(&mut h, ui::SMALL_JOB);
    let s = h.state();
    let doc = &s.state.doc;
    let done: Vec<&str> = doc
        .tensors
        .iter()
        .filter(|t| t.result.is_some())
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(done, [name]);
    assert!(
        s.window_title().ends_with(" tensors — 1 compressed"),
        "{}",
        s.window_title()
    );
    let msg = &s.state.messages;
    assert!(
        msg.iter()
            .any(|m| m.error
                && m.text == "--compress: no tensor 'no.such.weight' in model.safetensors"),
        "{msg:?}"
    );
}

#[test]
fn exit_when_done_sums_up_the_compression_it_waited_for() {
    use crate::helpers::{small_model, write_model};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_model(&path, &small_model());
    let mut studio = Studio::new(Some(path));
    let names = ["layers.0.q_proj.weight", "layers.0.mlp.weight"];
    studio.compress_when_open(names.iter().map(|n| n.to_string()).collect());
    studio.exit_when_done();
    let mut h = harness(studio);
    wait_idle(&mut h, ui::SMALL_JOB);
    h.run_steps(2);
    let s = h.state();
    let doc = &s.state.doc;
    let blocks: usize = names
        .iter()
        .map(|n| doc.tensors[doc.find(n).unwrap()].len().div_ceil(8))
        .sum();
    assert_eq!(blocks, 48 + 9, "4-bit blocks of 8 weights");
    let sum = s
        .summary()
        .expect("the work has ended, so the summary is there");
    assert_eq!(sum.blocks, blocks as u64);
    assert!(sum.seconds > 0.0 && sum.frames >= 1, "{sum:?}");
    assert!((sum.blocks_per_s() - sum.blocks as f64 / sum.seconds).abs() < 1e-6);
    let line: serde_json::Value = serde_json::from_str(&sum.line()).unwrap();
    assert_eq!(line["blocks"], blocks as u64);
    assert_eq!(line["frames"], sum.frames);
}

#[test]
fn block_plots_keep_their_ticks_when_the_trial_seed_is_shown() {
    use crate::helpers::ui::painted_texts;
    let mut h = harness(tiny());
    h.run_steps(2);
    compress_one(&mut h, 0, "4-bit");
    click(&mut h, "Block inspector");
    type_into(&mut h, "Block index", "3");
    click(&mut h, "Show");
    // The x axes' tick labels, next to each axis title: whole positions 0 to C − 1 = 7.
    let positions = |h: &Harness<'_, Studio>| {
        let texts = painted_texts(h);
        let titles: Vec<f32> = texts
            .iter()
            .filter(|(t, _)| t == "position in block")
            .map(|(_, at)| at.y)
            .collect();
        assert_eq!(titles.len(), 2, "both block plots are drawn");
        let mut ticks: Vec<u32> = texts
            .iter()
            .filter(|(_, at)| titles.iter().any(|&y| (at.y - y).abs() < 40.0))
            .filter_map(|(t, _)| t.parse().ok())
            .filter(|&x| x < 8)
            .collect();
        ticks.sort_unstable();
        ticks
    };
    let before = positions(&h);
    assert!(
        before.len() >= 4,
        "ticks before the trial: {before:?} in {:?}",
        painted_texts(&h)
    );
    type_into(&mut h, "Trial seed", "0x1");
    click(&mut h, "Try");
    h.get_by_label_contains("Trial seed 0x1:");
    h.run_steps(2);
    let after = positions(&h);
    assert!(
        after.len() >= 4 && before.iter().all(|x| after.contains(x)),
        "ticks before the trial {before:?}, after {after:?}"
    );
}

#[test]
fn allocate_gives_each_tensor_the_engines_choice_within_the_budget() {
    use seedlm::study::allocate::{self, Allocation, DATA_FREE, MENU, TensorOptions};
    let mut h = harness(tiny());
    h.run_steps(2);
    // No selection: every linear layer (the three of the tiny model), at the default 4 bits.
    click(&mut h, "Allocate 3 tensor(s) to");
    wait_idle(&mut h, ui::JOB);
    let s = &h.state().state;
    assert!(
        s.messages
            .iter()
            .any(|m| m.text.starts_with("allocated 3 tensors to")),
        "{:?}",
        s.messages
    );
    // The engine's allocation of the same tensors.
    let searchers = allocate::searchers(MENU, Default::default());
    let (mut options, mut relmse) = (Vec::new(), Vec::new());
    for t in &s.doc.tensors {
        let data = t.source.as_ref().unwrap().read().unwrap();
        let r = allocate::sample_relmse(&data, &searchers, Control::unwatched()).unwrap();
        options.push(TensorOptions::new(&t.name, data.len(), MENU, &r, 1.0));
        relmse.push(r);
    }
    let want = Allocation::solve(&options, MENU, &relmse, 4.0, DATA_FREE).unwrap();
    let got: Vec<Config> = s
        .doc
        .tensors
        .iter()
        .map(|t| t.result.as_ref().expect("compressed").compressed.config)
        .collect();
    assert_eq!(got, want.configs());
    let bits: u64 = s
        .doc
        .tensors
        .iter()
        .map(|t| t.result.as_ref().unwrap().bits())
        .sum();
    assert!(bits as f64 <= 4.0 * 768.0, "{bits} bits");
}

#[test]
fn allocate_on_a_model_that_can_run_weighs_tensors_by_their_measured_effect() {
    use seedlm::app::command::Command;
    use seedlm::io::model::Model;
    use seedlm::study::allocate::{self, Allocation, MENU};
    let mut h = harness(Studio::new(Some(crate::helpers::demo_model())));
    wait_idle(&mut h, ui::JOB);
    let names = [
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.5.attention.self.value.weight",
    ];
    let doc = &h.state().state.doc;
    let picked: Vec<usize> = names.iter().map(|n| doc.find(n).expect(n)).collect();
    h.state_mut().state.apply(Command::SelectOnly(picked));
    h.run_steps(2);
    click(&mut h, "Allocate 2 tensor(s) to");
    wait_idle(&mut h, ui::MODEL_RUN);
    let s = &h.state().state;
    let msg = s
        .messages
        .iter()
        .find(|m| m.text.starts_with("allocated 2 tensors to"))
        .unwrap_or_else(|| panic!("{:?}", s.messages));
    assert!(
        msg.text.contains("random words of the model's vocabulary"),
        "{}",
        msg.text
    );
    // The engine's allocation of the same tensors with the same data-free sensitivities.
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let model = Model::open(&crate::helpers::demo_model()).unwrap();
    let text = allocate::vocabulary_for(&crate::helpers::demo_model())
        .unwrap()
        .unwrap();
    let (none, progress) = (AtomicBool::new(false), Progress::default());
    let (alphas, label) = allocate::measure_sensitivities(
        &crate::helpers::demo_model(),
        &model,
        &names,
        &text,
        None,
        Control::new(&progress, &none),
    )
    .unwrap();
    assert!(msg.text.contains(&label), "{}", msg.text);
    // Progress counts the tensors measured, never past its total.
    let counted = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((counted(&progress.done), counted(&progress.total)), (2, 2));
    let progress = Progress::default();
    let searchers = allocate::searchers(MENU, Default::default());
    let mut relmse = Vec::new();
    let mut sizes = Vec::new();
    for n in &names {
        let data = model.to_f32(model.get(n).unwrap()).unwrap();
        relmse.push(
            allocate::sample_relmse(&data, &searchers, Control::new(&progress, &none)).unwrap(),
        );
        sizes.push(data.len());
    }
    let want =
        Allocation::from_measurements(&names, &sizes, &relmse, &alphas, 4.0, &label).unwrap();
    let got: Vec<Config> = names
        .iter()
        .map(|n| {
            let t = &s.doc.tensors[s.doc.find(n).unwrap()];
            t.result.as_ref().expect("compressed").compressed.config
        })
        .collect();
    assert_eq!(got, want.configs());
}

#[test]
fn exit_when_done_waits_for_the_first_view_of_the_tensor_asked_for() {
    use crate::helpers::{small_model, write_model};
    use seedlm::app::command::TabId;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_model(&path, &small_model());
    let mut studio = Studio::new(Some(path));
    let name = "layers.0.q_proj.weight";
    studio.view_when_open(name.into());
    studio.exit_when_done();
    let mut h = harness(studio);
    let mut steps = 0;
    while h.state().summary().is_none() {
        assert!(steps < 10_000, "no summary");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
        steps += 1;
    }
    let s = &h.state().state;
    let i = s.doc.find(name).unwrap();
    assert_eq!(s.tab, TabId::Tensor);
    assert!(s.selection.contains(&i));
    // The summary came once the view's heatmaps and histograms were there, not before.
    let (key, _) = s.results.prepared.as_ref().expect("the view is ready");
    assert_eq!(key.tensor, i);
    assert_eq!(h.state().summary().unwrap().blocks, 0);
}

/// Each export has its own file beside the model, so Export decompressed no longer replaces the
/// packed file; an existing file is replaced only when the user says so, and the message names
/// the full path (issue 23, item 12).
#[test]
fn exports_go_to_their_own_files_beside_the_model_and_ask_before_replacing() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.safetensors");
    crate::helpers::write_model(&model, &crate::helpers::small_model());
    let mut h = harness(Studio::with_document(loader::synthetic()));
    h.step();
    type_into(&mut h, "Path", model.to_str().unwrap());
    click(&mut h, "Open");
    wait_idle(&mut h, ui::JOB);
    click(&mut h, "Overview");
    let packed = dir.path().join("tiny.seedlm.safetensors");
    let plain = dir.path().join("tiny.decompressed.safetensors");
    click(&mut h, "Export packed");
    wait_idle(&mut h, ui::JOB);
    let first = std::fs::read(&packed).expect("the packed file beside the model");
    let msg = &h.state().state.messages.last().unwrap().text;
    assert!(msg.contains(&packed.display().to_string()), "{msg}");
    click(&mut h, "Export decompressed");
    wait_idle(&mut h, ui::JOB);
    assert!(plain.is_file());
    assert_eq!(
        std::fs::read(&packed).unwrap(),
        first,
        "the packed file is kept"
    );

    // Exporting onto an existing file asks first; "Keep it" leaves it untouched.
    std::fs::write(&packed, b"the user's file").unwrap();
    click(&mut h, "Export packed");
    wait_idle(&mut h, ui::JOB);
    h.get_by_label(&format!("{} exists. Replace it?", packed.display()));
    click(&mut h, "Keep it");
    wait_idle(&mut h, ui::JOB);
    assert_eq!(std::fs::read(&packed).unwrap(), b"the user's file");
    click(&mut h, "Export packed");
    click(&mut h, "Replace");
    wait_idle(&mut h, ui::JOB);
    assert_eq!(std::fs::read(&packed).unwrap(), first);
}

/// "Compress all" again at the settings the tensors have skips them: the search is
/// deterministic, and it recompressed them (issue 23, item 17). Other settings still replace.
#[test]
fn compressing_again_at_the_same_settings_is_skipped() {
    let mut h = harness(tiny());
    h.run_steps(2);
    click(&mut h, "Compress all");
    wait_idle(&mut h, ui::SMALL_JOB);
    let results = |h: &Harness<'_, Studio>| -> Vec<_> {
        let doc = &h.state().state.doc;
        doc.tensors
            .iter()
            .map(|t| t.result.clone().unwrap())
            .collect()
    };
    let first = results(&h);
    click(&mut h, "Compress all");
    assert!(!h.state().busy(), "nothing to do");
    let s = &h.state().state;
    assert_eq!(
        s.messages.last().unwrap().text,
        "3 tensor(s) skipped: already compressed with these settings"
    );
    for (a, b) in first.iter().zip(results(&h)) {
        assert!(std::sync::Arc::ptr_eq(a, &b), "the result is kept");
    }
    click(&mut h, "3-bit");
    click(&mut h, "Compress all");
    wait_idle(&mut h, ui::SMALL_JOB);
    assert!(
        results(&h)
            .iter()
            .all(|r| r.compressed.config == Config::THREE_BIT)
    );
}

/// Facets of the per-layer chart share their axes, the one with a legend too (issue 23).
#[test]
fn per_layer_facets_share_their_axes() {
    use seedlm::app::document::{Document, Source, TensorEntry};
    use seedlm::app::panels::{layer_facets, layer_plot_id, overview::layer_series};
    let kinds = ["self_attn.q_proj", "self_attn.k_proj", "mlp.up_proj"];
    let tensors = (0..2)
        .flat_map(|l| kinds.iter().map(move |k| (l, k)))
        .enumerate()
        .map(|(n, (l, k))| TensorEntry {
            name: format!("model.layers.{l}.{k}.weight"),
            shape: vec![16, 16],
            dtype: dtype::Dtype::F32,
            source: Some(Source::Memory(std::sync::Arc::new(
                crate::helpers::gaussian(256, 0.02 * (n + 1) as f32, n as u64),
            ))),
            result: None,
            compressible: true,
        })
        .collect();
    let mut h = harness(Studio::with_document(Document::new(
        None,
        "facets".into(),
        tensors,
    )));
    h.run_steps(2);
    click(&mut h, "Compress all");
    wait_idle(&mut h, ui::SMALL_JOB);
    // Layer 0's q_proj at 3 bits: its facet gets two lines and a legend, the others one.
    click(&mut h, "model.layers.0.self_attn.q_proj.weight");
    click(&mut h, "3-bit");
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::SMALL_JOB);
    h.run_steps(3);
    let facets = layer_facets(layer_series(&h.state().state, true));
    assert_eq!(facets.len(), 3);
    assert_eq!(facets["self_attn.q_proj"].len(), 2);
    let bounds: Vec<[f64; 4]> = facets
        .keys()
        .map(|f| {
            let id = layer_plot_id(&format!("layer_chart {f}"));
            let m = egui_plot::PlotMemory::load(&h.ctx, id).expect("the facet is drawn");
            let b = m.bounds();
            [b.min()[0], b.max()[0], b.min()[1], b.max()[1]]
        })
        .collect();
    assert!(bounds.iter().all(|b| *b == bounds[0]), "{bounds:?}");
}

/// Heatmaps carry a colour scale: a bar labelled with the values of its ends (issue 23).
#[test]
fn heatmaps_show_their_colour_scale() {
    use seedlm::app::heatmap::{Pool, Scale, pool, scale_limit};
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = "model.layers.1.mlp.up_proj.weight";
    click(&mut h, name);
    click(&mut h, "Tensor");
    wait_idle(&mut h, ui::SMALL_JOB);
    let i = h.state().state.doc.find(name).unwrap();
    let data = h.state().state.doc.tensors[i]
        .source
        .clone()
        .unwrap()
        .read()
        .unwrap();
    let p = pool(&data, 16, 16, 512, Pool::Mean);
    let scale = Scale {
        limit: scale_limit(&p.values),
        signed: true,
    };
    let painted: Vec<String> = ui::painted_texts(&h).into_iter().map(|t| t.0).collect();
    for (_, tick) in scale.ticks() {
        assert!(painted.contains(&tick), "{tick} not in {painted:?}");
    }
}

/// Closing the window while a compression runs asks first (egui's CancelClose holds the close
/// back); once nothing runs, a close goes through (issue 23, item 17).
#[test]
fn quitting_mid_job_asks_first() {
    use seedlm::app::Quit;
    let close = |h: &mut Harness<'_, Studio>| {
        let root = h.input_mut().viewports.get_mut(&egui::ViewportId::ROOT);
        root.unwrap().events.push(egui::ViewportEvent::Close);
        h.step();
        let out = &h.output().viewport_output[&egui::ViewportId::ROOT];
        out.commands
            .iter()
            .any(|c| matches!(c, egui::ViewportCommand::CancelClose))
    };
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    click(&mut h, "Compress all");
    assert!(h.state().busy());
    assert!(close(&mut h), "the close is held back");
    assert_eq!(h.state().quit(), Quit::Asking);
    h.step();
    h.get_by_label_contains("Quitting stops: compressing");
    h.get_by_label("Quit anyway");
    click(&mut h, "Keep working");
    assert_eq!(h.state().quit(), Quit::None);
    assert!(h.state().state.job.is_some(), "the work goes on");

    h.state_mut()
        .state
        .apply(seedlm::app::command::Command::Cancel);
    wait_idle(&mut h, ui::JOB);
    assert!(!close(&mut h), "nothing runs: the window closes");
    assert_eq!(h.state().quit(), Quit::None);
}

/// The tree stays where it is when a compression starts and ends: a progress bar that
/// appeared above it moved it by its height under the pointer (issue 23, item 17).
#[test]
fn the_tree_does_not_move_when_a_job_starts_or_ends() {
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = "model.layers.10.mlp.up_proj.weight";
    let y = |h: &Harness<'_, Studio>| h.get_by_label(name).rect().top();
    let idle = y(&h);
    click(&mut h, "Compress all");
    assert!(h.state().busy());
    assert_eq!(y(&h), idle);
    wait_idle(&mut h, ui::SMALL_JOB);
    assert_eq!(y(&h), idle);
}

/// The tree sorts by error: one list, the largest relative MSE first, tensors not compressed
/// last (issue 23, item 17).
#[test]
fn the_tree_sorts_by_error() {
    let mut h = harness(tiny());
    h.run_steps(2);
    let name = |l: usize| format!("model.layers.{l}.mlp.up_proj.weight");
    // Layer 10 at 3 bits (the larger error), layer 2 at 4 bits, layer 1 not compressed.
    click(&mut h, &name(10));
    click(&mut h, "3-bit");
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::SMALL_JOB);
    click(&mut h, &name(2));
    click(&mut h, "4-bit");
    click(&mut h, "Compress selected (1)");
    wait_idle(&mut h, ui::SMALL_JOB);
    let y = |h: &Harness<'_, Studio>, l: usize| h.get_by_label(&name(l)).rect().top();
    assert!(
        y(&h, 1) < y(&h, 2) && y(&h, 2) < y(&h, 10),
        "by name at first"
    );
    click(&mut h, "by error");
    assert!(y(&h, 10) < y(&h, 2) && y(&h, 2) < y(&h, 1), "worst first");
    click(&mut h, "by name");
    assert!(y(&h, 1) < y(&h, 2));
}

/// While a bit allocation measures, the queue shows its progress rather than "Nothing
/// running" (issue 23, item 15).
#[test]
fn the_queue_shows_an_allocation_while_it_measures() {
    use seedlm::app::work::JobKind;
    let mut h = harness(Studio::with_document(loader::demo()));
    h.step();
    click(&mut h, "Allocate 37 tensor(s) to");
    assert!(
        h.state().state.running(JobKind::Allocate).is_some(),
        "37 tensors take a while to measure"
    );
    assert!(h.query_by_label_contains("Nothing running").is_none());
    // Beside the Allocate button, in the status bar, and now in the queue.
    assert_eq!(h.get_all_by_label_contains("Bit allocation: ").count(), 3);
    h.get_by_label("then each tensor is queued here");
    // The sensitivities come first: no search has run yet to time the rest by.
    h.get_by_label("Allocate in all: timed once its menu samples start");
    h.state_mut()
        .state
        .apply(seedlm::app::command::Command::Stop(JobKind::Allocate));
    wait_idle(&mut h, ui::JOB);
}

/// Once its menu samples run, an allocation's time left covers them and the compression after
/// them, not only the phase running (issue 23, item 15).
#[test]
fn an_allocations_time_left_covers_the_menu_and_the_compression_after_it() {
    use seedlm::app::work::JobKind;
    // Without its path the model cannot be run: no sensitivities, the menu starts at once.
    let mut doc = loader::demo();
    doc.path = None;
    let mut h = harness(Studio::with_document(doc));
    h.step();
    click(&mut h, "Allocate 37 tensor(s) to");
    let started = std::time::Instant::now();
    while h.state().state.time_left_in_all().is_none() {
        assert!(started.elapsed() < ui::JOB, "no menu progress");
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    h.run_steps(2);
    let st = &h.state().state;
    let job = st.running(JobKind::Allocate).expect("still measuring");
    let (all, own) = (st.time_left_in_all().unwrap(), job.eta().unwrap());
    // The 4-bit compression of 10.8 M weights after the menu takes about as long as the whole
    // menu at its own rate, so the time left of all is about twice the menu's or more.
    assert!(
        all.as_secs_f64() > 1.5 * own.as_secs_f64(),
        "{all:?} vs the menu's {own:?}"
    );
    h.get_by_label_contains("Allocate in all (sensitivities, menu samples, compression): about");
    h.get_by_label_contains("all queued: about");
    h.state_mut()
        .state
        .apply(seedlm::app::command::Command::Stop(JobKind::Allocate));
    wait_idle(&mut h, ui::JOB);
}

/// The Overview's export paths are wide enough to read a path in (a grid cell once held them at
/// about four characters, from the first frame's column width), and stay so as frames go by.
#[test]
fn the_export_path_fields_are_wide_enough_to_read() {
    let mut h = harness(Studio::with_document(loader::demo()));
    h.run_steps(4);
    // A body-text character is about 7 px wide: 300 px hold some 40.
    for label in ["Packed file", "Decompressed file"] {
        let width = h.get_by_label(label).rect().width();
        assert!(width >= 300.0, "{label}: {width} px");
    }
}

/// The left panel keeps its width whatever the tree holds: a group header wider than the panel
/// (a long shared name, and its summary once "Compress all" is done) is cut with "…", shown in
/// full on hover, and the central panel is not pushed aside (issue 23, item 17).
#[test]
fn long_tree_headers_do_not_widen_the_left_panel() {
    let central = |h: &Harness<'_, Studio>| h.get_by_label("Overview").rect().left();
    let mut short = harness(tiny());
    short.run_steps(3);
    let long_name = "encoder.a_module_whose_name_is_far_longer_than_the_left_panel_is_wide";
    let names = [1, 2].map(|i| format!("{long_name}.part{i}.weight"));
    let mut h = harness(ui::tiny_named(
        names
            .iter()
            .cloned()
            .chain(["model.layers.0.mlp.up_proj.weight".into()]),
    ));
    h.run_steps(3);
    let x = central(&short);
    assert_eq!(central(&h), x, "a long group name widened the panel");
    click(&mut h, "Compress all");
    wait_idle(&mut h, ui::SMALL_JOB);
    h.run_steps(3);
    assert_eq!(central(&h), x, "a long header summary widened the panel");
    // The header is cut on screen, named in full for screen readers and on hover.
    let header = h.get_by_label_contains("(2): 2 compressed");
    assert!(header.rect().right() <= x, "{:?} past {x}", header.rect());
    let painted = ui::painted_texts(&h);
    assert!(
        painted
            .iter()
            .any(|(t, _)| t.contains("a_module_whose_name") && t.contains("2 compressed")),
        "the header names its group and its summary"
    );
}
