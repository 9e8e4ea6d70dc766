//! The app's Shards tab on a real shard folder: `seedlm compress --shard` runs, one finished
//! and one killed, opened through the Path field; the tab shows what `seedlm status` prints and
//! follows the folder as the second shard finishes.

use crate::helpers::ui;
use crate::helpers::ui::{click, harness, type_into, wait_idle};
use crate::helpers::{T, gaussian, kill_after_pieces, run, s, text, write_model};
use egui_kittest::kittest::Queryable;
use seedlm::app::command::TabId;
use seedlm::app::{Studio, loader};
use seedlm::io::dtype::Dtype;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs shard `i` of 2 of `model` into `out`'s shard folder with `extra` arguments.
fn shard_args<'a>(model: &'a Path, out: &'a Path, i: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    [
        &["compress", s(model), "-o", s(out), "--shard", i][..],
        extra,
    ]
    .concat()
}

/// (shard, state, done, blocks) of each shard line of `seedlm status`, and its total line.
fn cli_status(out: &Path) -> (Vec<(String, String, u64, u64)>, String) {
    let o = run(&["status", s(out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let st = text(&o.stdout);
    let rows = st
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            // "    1  stopped      1536  16544  9.3  -  -  host": the state may be two words.
            let (head, rest) = l.trim().split_once("  ").unwrap();
            let rest = rest.trim_start();
            let (state, nums) = rest.split_at(11.min(rest.len()));
            let nums: Vec<&str> = nums.split_whitespace().collect();
            (
                head.to_string(),
                state.trim().to_string(),
                nums[0].parse().unwrap(),
                nums[1].parse().unwrap(),
            )
        })
        .collect();
    let total = st.lines().find(|l| l.starts_with("total")).unwrap();
    (rows, total.to_string())
}

#[test]
fn shards_tab_shows_a_shard_folder_and_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    // 33 088 blocks: each shard takes about a second on one thread.
    write_model(
        &model,
        &[
            T::float(
                "a.weight",
                Dtype::F32,
                &[512, 512],
                &gaussian(512 * 512, 0.02, 3),
            ),
            T::float(
                "b.weight",
                Dtype::F16,
                &[64, 40],
                &gaussian(64 * 40, 0.1, 4),
            ),
        ],
    );
    let out = dir.path().join("o.safetensors");
    let o = run(&shard_args(&model, &out, "0/2", &[]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let slow = ["--threads", "1", "--checkpoint-blocks", "512"];
    let folder = dir.path().join("o.safetensors.shards");
    let ckpt = folder.join("shard-0001-of-0002");
    let kept = kill_after_pieces(&shard_args(&model, &out, "1/2", &slow), &ckpt, 1) as u64;

    // What the command line says: shard 0 finished, shard 1 stopped at its checkpoint.
    let (rows, total) = cli_status(&out);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].1, "finished");
    assert_eq!(rows[0].2, rows[0].3);
    assert_eq!(rows[1].1, "stopped");
    assert_eq!(rows[1].2, kept * 512);
    assert_eq!(rows[0].3 + rows[1].3, 33_088);

    // The output path (not merged yet) opens as its shard folder, in the Shards tab.
    let mut h = harness(Studio::with_document(loader::synthetic()));
    h.step();
    type_into(&mut h, "Path", s(&out));
    click(&mut h, "Open");
    wait_idle(&mut h, ui::SMALL_JOB);
    assert_eq!(h.state().state.tab, TabId::Shards);
    h.get_by_label(s(&folder));
    h.get_by_label(&format!("opened shard folder {}", folder.display()));
    h.get_by_label_contains("33088 blocks of 2 tensors");
    for (shard, state, done, blocks) in &rows {
        h.get_by_label(&format!("shard {shard}"));
        h.get_by_label(state);
        h.get_by_label(&format!("{done}/{blocks}"));
    }
    h.get_by_label("done");
    h.get_by_label(&total);

    // The tab reads the folder again: once shard 1 has finished, it says so.
    let o = run(&shard_args(&model, &out, "1/2", &[]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (rows, total) = cli_status(&out);
    assert!(total.contains("2/2 shards finished"), "{total}");
    let deadline = Instant::now() + crate::helpers::SMALL_JOB;
    while h.query_by_label(&total).is_none() {
        assert!(
            Instant::now() < deadline,
            "the Shards tab never showed {total}"
        );
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    h.get_by_label(&format!("{}/{}", rows[1].3, rows[1].3));
    assert!(h.query_by_label("stopped").is_none());
}

/// The tab before a folder is opened says how to open one, in glyphs egui's default fonts have
/// (its "→" was drawn as a box; the harness panics on a missing glyph).
#[test]
fn the_empty_shards_tab_draws_every_glyph() {
    let mut h = harness(Studio::with_document(loader::synthetic()));
    h.step();
    click(&mut h, "Shards");
    h.get_by_label_contains("File > Open folder");
    h.get_by_label("Open folder…");
}
