//! Sharded compression: `compress --shard`, `merge`, `status`; merged files byte-identical to
//! a single-machine compression, resume after a kill, refusals that name the part.

use crate::helpers::{
    T, fails, gaussian, kill_after_pieces, run, running_after_pieces, s, seedlm, small_model, text,
    write_model,
};
use seedlm::io::dtype::Dtype;
use std::path::{Path, PathBuf};

/// Compresses `model` on one machine into `dir/full.safetensors` and returns its bytes.
fn single(model: &Path, dir: &Path, extra: &[&str]) -> Vec<u8> {
    let out = dir.join("full.safetensors");
    let o = run(&[&["compress", s(model), "-o", s(&out)], extra].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::read(out).unwrap()
}

/// Runs shard `i` of `n` of `model` into `out`'s shard folder; returns stdout.
fn shard(model: &Path, out: &Path, i: usize, n: usize, extra: &[&str]) -> String {
    let spec = format!("{i}/{n}");
    let o = run(&[
        &["compress", s(model), "-o", s(out), "--shard", &spec],
        extra,
    ]
    .concat());
    assert!(o.status.success(), "shard {spec}: {}", text(&o.stderr));
    text(&o.stdout)
}

fn folder(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.shards", out.display()))
}

fn merge(out: &Path) -> Vec<u8> {
    let o = run(&["merge", s(&folder(out)), "-o", s(out)]);
    assert!(o.status.success(), "merge: {}", text(&o.stderr));
    std::fs::read(seedlm::io::packed::packed_file_path(out)).unwrap()
}

fn small(dir: &Path) -> PathBuf {
    let p = dir.join("model.safetensors");
    write_model(&p, &small_model());
    p
}

#[test]
fn merged_shards_are_byte_identical_for_1_2_3_shards() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let want = single(&model, dir.path(), &[]);
    for n in 1..=3 {
        let out = dir.path().join(format!("n{n}.safetensors"));
        // Any order.
        for i in (0..n).rev() {
            shard(&model, &out, i, n, &[]);
        }
        let parts = std::fs::read_dir(folder(&out)).unwrap().count();
        assert!(parts > n, "job.json and {n} parts");
        assert!(merge(&out) == want, "{n} shards differ from one run");
    }
    // 57 blocks in 3 shards: the 16×24 tensor (3 blocks a row) is split by rows.
    let part = std::fs::read(
        folder(&dir.path().join("n3.safetensors")).join("part-0001-of-0003.safetensors"),
    )
    .unwrap();
    let header = text(&part[8..8 + u64::from_le_bytes(part[..8].try_into().unwrap()) as usize]);
    assert!(header.contains("layers.0.q_proj.weight@1"), "{header}");
}

#[test]
fn three_bit_and_a_directory_merge_identically() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_model(&input.join("model.safetensors"), &small_model());
    std::fs::write(input.join("config.json"), "{}").unwrap();
    let full = dir.path().join("full");
    let o = run(&["compress", s(&input), "-o", s(&full), "--bits", "3"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = dir.path().join("out");
    for i in 0..2 {
        shard(&input, &out, i, 2, &["--bits", "3"]);
    }
    merge(&out);
    for f in ["model.safetensors", "config.json"] {
        assert!(
            std::fs::read(full.join(f)).unwrap() == std::fs::read(out.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn finished_shard_run_again_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 2, &[]);
    let part = folder(&out).join("part-0000-of-0002.safetensors");
    let before = (
        std::fs::read(&part).unwrap(),
        std::fs::metadata(&part).unwrap().modified().unwrap(),
    );
    let again = shard(&model, &out, 0, 2, &[]);
    assert!(
        again.contains("already finished") && again.contains("nothing to do"),
        "{again}"
    );
    let after = (
        std::fs::read(&part).unwrap(),
        std::fs::metadata(&part).unwrap().modified().unwrap(),
    );
    assert!(before == after, "the part was rewritten");
    // Another configuration into the same folder is refused, naming job.json.
    let err = fails(&[
        "compress",
        s(&model),
        "-o",
        s(&out),
        "--shard",
        "1/2",
        "--bits",
        "3",
    ]);
    assert!(
        err.contains("job.json") && err.contains("another job"),
        "{err}"
    );
}

/// A model of 16 704 blocks: seconds on one thread, long enough to kill between checkpoints.
fn big(dir: &Path) -> PathBuf {
    let model = dir.join("big.safetensors");
    write_model(
        &model,
        &[
            T::float(
                "a.weight",
                Dtype::F32,
                &[256, 512],
                &gaussian(256 * 512, 0.02, 7),
            ),
            T::float(
                "b.weight",
                Dtype::F16,
                &[64, 40],
                &gaussian(64 * 40, 0.1, 8),
            ),
        ],
    );
    model
}

#[test]
fn killed_shard_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let model = big(dir.path());
    let want = single(&model, dir.path(), &[]);
    let out = dir.path().join("o.safetensors");
    let args = shard_args(&model, &out, &["--checkpoint-blocks", "512"]);
    let ckpt = folder(&out).join("shard-0000-of-0001");
    let kept = kill_after_pieces(&args, &ckpt, 3);
    assert!(!folder(&out).join("part-0000-of-0001.safetensors").exists());
    // Status sees the stopped shard's checkpointed blocks.
    let st = text(&run(&["status", s(&out)]).stdout);
    assert!(st.contains("stopped"), "{st}");
    assert!(
        st.contains(&format!("total  {}/16704 blocks", kept * 512)),
        "{st}"
    );
    let resumed = shard(
        &model,
        &out,
        0,
        1,
        &["--threads", "2", "--checkpoint-blocks", "4096"],
    );
    let line = resumed
        .lines()
        .find(|l| l.contains("resumed with"))
        .unwrap_or_else(|| panic!("{resumed}"));
    let done: u64 = line
        .split("resumed with ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3 * 512..16_704).contains(&done), "{line} ({kept} pieces)");
    assert!(
        !ckpt.exists(),
        "the checkpoint is removed once the part is written"
    );
    assert!(merge(&out) == want, "resumed result differs from one run");
}

#[test]
fn a_killed_resumable_compress_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let model = big(dir.path());
    let want = single(&model, dir.path(), &[]);
    let out = dir.path().join("r.safetensors");
    let args = [
        "compress",
        s(&model),
        "-o",
        s(&out),
        "--resume",
        "--threads",
        "1",
        "--checkpoint-blocks",
        "512",
    ];
    let ckpt = folder(&out).join("shard-0000-of-0001");
    kill_after_pieces(&args, &ckpt, 3);
    assert!(!out.exists(), "a killed run writes no output");
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stdout);
    assert!(said.contains("resumed with"), "{said}");
    let file = seedlm::io::packed::packed_file_path(&out);
    assert!(
        std::fs::read(file).unwrap() == want,
        "resumed result differs from one run"
    );
    assert!(
        !folder(&out).exists(),
        "the checkpoint folder is removed once the output is written"
    );
}

#[test]
fn merge_names_missing_duplicated_and_foreign_parts() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 3, &[]);
    shard(&model, &out, 2, 3, &[]);
    let err = fails(&["merge", s(&folder(&out)), "-o", s(&out)]);
    assert!(
        err.contains("1 of 3 parts missing") && err.contains("part-0001-of-0003"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");

    // The same part twice under another name.
    let f = folder(&out);
    std::fs::copy(
        f.join("part-0000-of-0003.safetensors"),
        f.join("part-0000-of-0003 (copy).safetensors"),
    )
    .unwrap();
    shard(&model, &out, 1, 3, &[]);
    let err = fails(&["merge", s(&f), "-o", s(&out)]);
    assert!(err.contains("duplicates shard 0"), "{err}");
    std::fs::remove_file(f.join("part-0000-of-0003 (copy).safetensors")).unwrap();

    // Shard 1 of another job put in place of ours: merge refuses, naming it and why.
    let refused = |model: &Path, name: &str, extra: &[&str]| -> String {
        let other = dir.path().join(name);
        shard(model, &other, 1, 3, extra);
        let part = "part-0001-of-0003.safetensors";
        std::fs::copy(folder(&other).join(part), f.join(part)).unwrap();
        let err = fails(&["merge", s(&f), "-o", s(&out)]);
        assert!(err.contains(part), "{err}");
        err
    };
    // The same model at another configuration.
    let err = refused(&model, "three.safetensors", &["--bits", "3"]);
    assert!(err.contains("configuration C=12"), "{err}");
    // Another model with the same names and shapes but other weights.
    let mut tensors = small_model();
    tensors[0] = T::float(
        "layers.0.q_proj.weight",
        Dtype::F16,
        &[16, 24],
        &gaussian(384, 0.02, 99),
    );
    let model2 = dir.path().join("model2.safetensors");
    write_model(&model2, &tensors);
    let err = refused(&model2, "o2.safetensors", &[]);
    assert!(
        err.contains("layers.0.q_proj.weight") && err.contains("other data"),
        "{err}"
    );
    // A model with other tensors.
    let model3 = dir.path().join("model3.safetensors");
    write_model(&model3, &small_model()[..2]);
    let err = refused(&model3, "o3.safetensors", &[]);
    assert!(err.contains("different input"), "{err}");
    assert!(!out.exists(), "nothing written");

    // Put right, it merges.
    std::fs::remove_file(f.join("part-0001-of-0003.safetensors")).unwrap();
    shard(&model, &out, 1, 3, &[]);
    assert!(merge(&out) == single(&model, dir.path(), &[]));
}

#[test]
fn status_counts_shards_and_bad_shard_arguments_fail() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 1, 2, &[]);
    let st = text(&run(&["status", s(&out)]).stdout);
    assert!(
        st.contains("not started") && st.contains("finished"),
        "{st}"
    );
    assert!(st.contains("1/2 shards finished"), "{st}");
    // The folder itself works too.
    let st2 = text(&run(&["status", s(&folder(&out))]).stdout);
    assert_eq!(st, st2);
    let err = fails(&["status", s(&dir.path().join("nothing"))]);
    assert!(err.contains("not a shard folder"), "{err}");
    for bad in ["2/2", "x", "1/0"] {
        let err = fails(&["compress", s(&model), "-o", s(&out), "--shard", bad]);
        assert!(err.contains("--shard"), "{bad}: {err}");
    }
    // Outside Slurm and Kubernetes, auto needs an index from the environment.
    let o = seedlm()
        .args(["compress", s(&model), "-o", s(&out), "--shard", "auto"])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert!(
        text(&o.stderr).contains("SLURM_ARRAY_TASK_ID"),
        "{}",
        text(&o.stderr)
    );
    // A Kubernetes Indexed Job: JOB_COMPLETION_INDEX with --shards.
    let o = seedlm()
        .args([
            "compress",
            s(&model),
            "-o",
            s(&out),
            "--shard",
            "auto",
            "--shards",
            "2",
        ])
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env("JOB_COMPLETION_INDEX", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(merge(&out) == single(&model, dir.path(), &[]));
}

#[test]
fn merge_cancelled_inside_its_one_tensor_leaves_nothing() {
    use seedlm::core::control::{Control, Progress};
    use seedlm::io::model_job::JobError;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    // One tensor of 524 288 blocks (K = 4 keeps the search quick): a merge that looked at its
    // cancel flag only between tensors would write it all.
    let n = 2048 * 2048;
    write_model(
        &model,
        &[T::float(
            "w.weight",
            Dtype::F32,
            &[2048, 2048],
            &gaussian(n, 0.02, 5),
        )],
    );
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 1, &["--config", "8,3,4"]);
    let before = crate::helpers::listing(dir.path());
    let progress = Progress::default();
    let cancel = AtomicBool::new(false);
    let ended = AtomicBool::new(false);
    let merged = std::thread::scope(|s| {
        // Cancel as soon as the first blocks of the tensor are counted.
        s.spawn(|| {
            while progress.done.load(Ordering::Relaxed) == 0 && !ended.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
            cancel.store(true, Ordering::Relaxed);
        });
        let r =
            seedlm::io::shard::merge(&folder(&out), None, &out, Control::new(&progress, &cancel));
        ended.store(true, Ordering::Relaxed);
        r
    });
    assert!(
        matches!(merged, Err(JobError::Cancelled)),
        "{:?}",
        merged.map(|(file, _)| file)
    );
    assert_eq!(
        crate::helpers::listing(dir.path()),
        before,
        "no output and no partial file"
    );
}

/// `bytes` with the last digit of the first `"e_base":N` of its header changed (the header keeps
/// its length).
fn edit_e_base(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let n = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let key = b"\\\"e_base\\\":";
    let at = out[..n]
        .windows(key.len())
        .position(|w| w == key)
        .expect("a description with an e_base")
        + key.len();
    let mut digit = if out[at] == b'-' { at + 1 } else { at };
    while out[digit + 1].is_ascii_digit() {
        digit += 1;
    }
    out[digit] = if out[digit] == b'9' {
        b'8'
    } else {
        out[digit] + 1
    };
    out
}

/// Merges `out`'s shard folder through the library; the error as text.
fn merge_lib(out: &Path) -> Result<(), String> {
    use seedlm::core::control::Control;

    seedlm::io::shard::merge(&folder(out), None, out, Control::unwatched())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_damaged_part_is_refused_by_merge_and_status_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let want = single(&model, dir.path(), &[]);
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 2, &[]);
    shard(&model, &out, 1, 2, &[]);
    let part = folder(&out).join("part-0000-of-0002.safetensors");
    let good = std::fs::read(&part).unwrap();
    let data_start = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let refused = |what: &str| {
        let err = merge_lib(&out).expect_err(what);
        assert!(
            err.contains("part-0000-of-0002.safetensors") && !err.contains('\n'),
            "{what}: {err}"
        );
        assert!(!out.exists(), "{what}: merge wrote an output");
        err
    };
    // Every bit of every record: each flip is refused (without the checksum all were merged).
    for i in data_start..good.len() {
        for bit in [0, 3, 7] {
            let mut bytes = good.clone();
            bytes[i] ^= 1 << bit;
            std::fs::write(&part, &bytes).unwrap();
            let err = refused(&format!("byte {i} bit {bit}"));
            assert!(err.contains("damaged"), "{err}");
        }
    }
    // The exponent base of a range in the description.
    std::fs::write(&part, edit_e_base(&good)).unwrap();
    let err = refused("e_base");
    assert!(err.contains("damaged"), "{err}");
    // status and the CLI merge say the same in one line.
    let err = fails(&["status", s(&out)]);
    assert!(
        err.contains("part-0000-of-0002.safetensors") && err.contains("damaged"),
        "{err}"
    );
    let err = fails(&["merge", s(&folder(&out)), "-o", s(&out)]);
    assert!(err.contains("part-0000-of-0002.safetensors"), "{err}");
    // Random damage anywhere in the file: refused, or (an edit the checksum cannot see, such
    // as JSON whitespace) merged to exactly the bytes of one run.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
    let mut merged = 0;
    for _ in 0..300 {
        let mut bytes = good.clone();
        let i = rng.random_range(0..bytes.len());
        bytes[i] ^= 1 << rng.random_range(0..8);
        std::fs::write(&part, &bytes).unwrap();
        match merge_lib(&out) {
            Err(e) => assert!(e.contains("part-0000-of-0002"), "byte {i}: {e}"),
            Ok(()) => {
                merged += 1;
                assert!(
                    std::fs::read(&out).unwrap() == want,
                    "byte {i}: other weights"
                );
                std::fs::remove_file(&out).unwrap();
            }
        }
    }
    assert!(merged < 30, "{merged} of 300 damaged parts merged");
    // A damaged part is made again by its shard, then merges as one run would.
    std::fs::write(&part, edit_e_base(&good)).unwrap();
    let o = run(&["compress", s(&model), "-o", s(&out), "--shard", "0/2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("part-0000-of-0002.safetensors: damaged"),
        "{}",
        text(&o.stderr)
    );
    assert!(merge(&out) == want);
}

/// A one-shard run of the big model killed after three checkpoint pieces.
struct Interrupted {
    model: PathBuf,
    /// What one uninterrupted run writes.
    want: Vec<u8>,
    out: PathBuf,
    /// The shard's checkpoint folder.
    ckpt: PathBuf,
    /// Its pieces' names, in order.
    pieces: Vec<String>,
}

/// The run of [`Interrupted`], in `dir`.
fn interrupted(dir: &Path) -> Interrupted {
    let model = big(dir);
    let want = single(&model, dir, &[]);
    let out = dir.join("o.safetensors");
    let ckpt = folder(&out).join("shard-0000-of-0001");
    kill_after_pieces(
        &shard_args(&model, &out, &["--checkpoint-blocks", "512"]),
        &ckpt,
        3,
    );
    let mut pieces = crate::helpers::listing(&ckpt);
    pieces.retain(|n| n.starts_with("piece-"));
    Interrupted {
        model,
        want,
        out,
        ckpt,
        pieces,
    }
}

/// The arguments of the one-shard, one-thread run of `model` into `out`, then `extra`.
fn shard_args<'a>(model: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let base = [
        "compress",
        s(model),
        "-o",
        s(out),
        "--shard",
        "0/1",
        "--threads",
        "1",
    ];
    [&base[..], extra].concat()
}

/// Runs [`Interrupted`]'s shard again, as a resume.
fn resume(model: &Path, out: &Path) -> std::process::Output {
    run(&shard_args(model, out, &[]))
}

#[test]
fn a_damaged_checkpoint_piece_is_refused_by_status_and_redone_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let Interrupted {
        model,
        want,
        out,
        ckpt,
        pieces: names,
    } = interrupted(dir.path());
    let (first, second) = (ckpt.join(&names[0]), ckpt.join(&names[1]));
    // One flipped bit in the records of one piece, and one edited e_base in another.
    let mut bytes = std::fs::read(&first).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x10;
    std::fs::write(&first, bytes).unwrap();
    std::fs::write(&second, edit_e_base(&std::fs::read(&second).unwrap())).unwrap();
    let err = fails(&["status", s(&out)]);
    assert!(err.contains(&names[0]) && err.contains("damaged"), "{err}");
    // The resumed shard names both, searches their blocks again and ends as one run.
    let o = resume(&model, &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stderr);
    for name in &names[..2] {
        assert!(said.contains(&format!("{name}: damaged")), "{said}");
    }
    assert!(merge(&out) == want, "resumed result differs from one run");
}

#[test]
fn tensors_of_no_elements_merge_as_one_run_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("empty.safetensors");
    write_model(
        &model,
        &[
            T::float("a.weight", Dtype::F32, &[0, 8], &[]),
            T::float("b.weight", Dtype::F16, &[8, 0], &[]),
            T::float("c.weight", Dtype::BF16, &[1, 0], &[]),
            T::float("d.weight", Dtype::F32, &[4, 8], &gaussian(32, 0.1, 6)),
        ],
    );
    let want = single(&model, dir.path(), &[]);
    let out = dir.path().join("o.safetensors");
    for i in 0..2 {
        shard(&model, &out, i, 2, &[]);
    }
    assert!(merge(&out) == want, "merge differs from one run");
}

#[test]
fn merge_removes_partial_files_that_killed_runs_left() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 1, &[]);
    let stale = [
        folder(&out).join(".seedlm-partial-a.tmp"),
        dir.path().join(".seedlm-partial-b.tmp"),
    ];
    for p in &stale {
        std::fs::write(p, b"half").unwrap();
    }
    let o = run(&["merge", s(&folder(&out)), "-o", s(&out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for p in &stale {
        assert!(!p.exists(), "{} left", p.display());
        assert!(text(&o.stderr).contains(s(p)), "{}", text(&o.stderr));
    }
}

/// A job.json whose counts cannot be (2^64 − 1 shards or blocks) is refused by status and
/// merge in one line naming it, not allocated for (issue 23, item 9).
#[test]
fn impossible_job_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 2, &[]);
    let job = folder(&out).join("job.json");
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&job).unwrap()).unwrap();
    for (key, value) in [
        ("shards", serde_json::json!(u64::MAX)),
        ("total_blocks", serde_json::json!(u64::MAX)),
        ("shards", serde_json::json!(0)),
    ] {
        let mut bad = good.clone();
        bad[key] = value;
        std::fs::write(&job, bad.to_string()).unwrap();
        for cmd in [
            vec!["status", s(&out)],
            vec!["merge", s(&folder(&out)), "-o", s(&out)],
        ] {
            let err = fails(&cmd);
            assert!(
                err.contains("job.json") && err.contains("malformed"),
                "{key}: {err}"
            );
        }
    }
    // A tensor's block count that its shape cannot have.
    let mut bad = good.clone();
    bad["tensors"][0]["blocks"] = serde_json::json!(u64::MAX);
    std::fs::write(&job, bad.to_string()).unwrap();
    let err = fails(&["status", s(&out)]);
    assert!(err.contains("cannot have"), "{err}");
}

/// job.json and progress files get the mode of any new file, as parts do, so that colleagues
/// on a shared cluster can run status and merge (issue 23, item 11).
#[cfg(unix)]
#[test]
fn job_json_is_as_readable_as_the_parts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 2, &[]);
    let mode = |name: &str| {
        std::fs::metadata(folder(&out).join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("job.json"), mode("part-0000-of-0002.safetensors"));
}

/// A second process on a running shard stops at once, naming the first, and the first
/// finishes undisturbed, leaving no checkpoint behind (issue 23, item 11).
#[test]
fn a_second_run_of_a_running_shard_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let model = big(dir.path());
    let want = single(&model, dir.path(), &[]);
    let out = dir.path().join("o.safetensors");
    let args = shard_args(&model, &out, &["--checkpoint-blocks", "256"]);
    let ckpt = folder(&out).join("shard-0000-of-0001");
    let mut first = running_after_pieces(&args, &ckpt, 1);
    let second = run(&args);
    let still_running = first.try_wait().unwrap().is_none();
    assert!(first.wait().unwrap().success());
    // Only a refusal while the first was still searching says anything.
    assert!(
        still_running,
        "the first run ended before the second started"
    );
    assert!(!second.status.success());
    let err = text(&second.stderr);
    assert!(err.contains("shard 0 of 1 is already running"), "{err}");
    assert!(err.contains(&format!("process {}", first.id())), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!ckpt.exists(), "no checkpoint is left behind");
    assert!(
        merge(&out) == want,
        "the first run's result differs from one run"
    );
}

/// An input job.json records that cannot be read (moved, or the path edited) is named with
/// where it came from and what to do, not as a bare "cannot open" of a path the user never
/// typed (found by scripts/fuzz_readers.py); --input then merges.
#[test]
fn a_recorded_input_that_is_gone_is_named_with_its_job_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 1, &[]);
    let moved = dir.path().join("moved.safetensors");
    std::fs::rename(&model, &moved).unwrap();
    let err = fails(&["merge", s(&folder(&out)), "-o", s(&out)]);
    assert!(
        err.contains(s(&model))
            && err.contains("job.json: the input it records cannot be read")
            && err.contains("give --input"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    let o = run(&[
        "merge",
        s(&folder(&out)),
        "-o",
        s(&out),
        "--input",
        s(&moved),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// A checkpoint piece copied over another's name (its seal intact) holds blocks its name does
/// not: status refused it as damaged (it counted 105 % done before), and the resumed shard
/// searches the blocks again instead of refusing the folder (found by
/// scripts/fuzz_readers.py).
#[test]
fn a_piece_under_another_piece_s_name_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let Interrupted {
        model,
        want,
        out,
        ckpt,
        pieces: names,
    } = interrupted(dir.path());
    std::fs::copy(ckpt.join(&names[1]), ckpt.join(&names[0])).unwrap();
    let err = fails(&["status", s(&out)]);
    assert!(
        err.contains(&names[0]) && err.contains("damaged") && err.contains(&names[1]),
        "{err}"
    );
    let o = resume(&model, &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let said = text(&o.stderr);
    assert!(said.contains(&format!("{}: damaged", names[0])), "{said}");
    assert!(merge(&out) == want, "resumed result differs from one run");
}

/// A job.json whose shard count was edited no longer names the parts on disk: status refuses
/// them as merge does, where it reported every shard "not started" beside them (found by
/// scripts/fuzz_readers.py).
#[test]
fn status_refuses_parts_that_job_json_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 0, 2, &[]);
    shard(&model, &out, 1, 2, &[]);
    let job = folder(&out).join("job.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&job).unwrap()).unwrap();
    v["shards"] = 4.into();
    std::fs::write(&job, v.to_string()).unwrap();
    for cmd in ["status", "merge"] {
        let err = match cmd {
            "status" => fails(&["status", s(&out)]),
            _ => fails(&["merge", s(&folder(&out)), "-o", s(&out)]),
        };
        assert!(
            err.contains("part-0000-of-0002.safetensors")
                && err.contains("belongs to a different job"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn a_shard_folder_or_checkpoint_given_as_a_link_is_emptied_of_what_the_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let want = single(&model, dir.path(), &[]);
    // A folder on scratch space, holding a file of the user's.
    let scratch = |name: &str| {
        let d = dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("keep.txt"), "mine").unwrap();
        d
    };
    // The checkpoint of a --resume run given as a link, then its whole shard folder.
    let ckpt_out = dir.path().join("c.safetensors");
    std::fs::create_dir(folder(&ckpt_out)).unwrap();
    std::os::unix::fs::symlink(
        scratch("ckpt"),
        folder(&ckpt_out).join("shard-0000-of-0001"),
    )
    .unwrap();
    let folder_out = dir.path().join("f.safetensors");
    std::os::unix::fs::symlink(scratch("shards"), folder(&folder_out)).unwrap();
    for out in [&ckpt_out, &folder_out] {
        let o = run(&["compress", s(&model), "-o", s(out), "--resume"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(std::fs::read(out).unwrap() == want, "differs from one run");
        assert!(
            std::fs::symlink_metadata(folder(out)).is_err(),
            "the shard folder is removed once the output is written"
        );
    }
    for name in ["ckpt", "shards"] {
        let left = crate::helpers::listing(&dir.path().join("scratch").join(name));
        assert!(left == ["keep.txt"], "{name}: {left:?}");
    }
}

#[test]
fn a_part_or_checkpoint_linked_to_itself_is_named_by_status_not_shown_as_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let model = small(dir.path());
    let out = dir.path().join("o.safetensors");
    shard(&model, &out, 1, 2, &[]);
    for name in ["part-0000-of-0002.safetensors", "shard-0000-of-0002"] {
        let link = folder(&out).join(name);
        std::os::unix::fs::symlink(name, &link).unwrap();
        let err = fails(&["status", s(&out)]);
        assert!(
            err.contains(name) && err.contains("symbolic links"),
            "{name}: {err}"
        );
        std::fs::remove_file(link).unwrap();
    }
    let st = text(&run(&["status", s(&out)]).stdout);
    assert!(st.contains("not started"), "{st}");
}
