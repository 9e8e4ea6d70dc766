//! The plan step of `--target-bpw` and `--calibrate` (issue 26): `seedlm plan`, then shards
//! that each search their tensors at the plan's configurations and moments, and a merge that
//! writes the bytes of a single-machine `compress` with the same options; a `--resume` run
//! killed with SIGKILL and run again gives them too; a plan whose input or text changed is
//! refused, naming the file.

use crate::helpers::{fails, pieces, run, s, seedlm, text};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The llama fixture (a directory: config, tokenizer, weights).
fn llama() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/llama")
}

/// Two tensors of different widths: a bit budget gives them different configurations and a
/// calibrated search stays short (it builds a table per column offset).
const INCLUDE: &str = r"layers\.0\.self_attn\.k_proj|layers\.1\.self_attn\.q_proj";

fn folder(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.shards", out.display()))
}

fn calibration_text(dir: &Path) -> PathBuf {
    let p = dir.join("calib.txt");
    std::fs::write(
        &p,
        "She walked to the window and looked out at the rain for a long while.\n\n\
         He said nothing, then laughed, and the letter lay unopened on the table.\n",
    )
    .unwrap();
    p
}

/// The arguments as a command line takes them.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `seedlm args` and returns its stdout and stderr, asserting success.
fn ok(args: &[&str]) -> (String, String) {
    let o = run(args);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{args:?}: {err}");
    (out, err)
}

/// Runs `seedlm args` (a `--resume` run) and kills it with SIGKILL once its checkpoint holds
/// `n` pieces. The plan is measured first, which takes a while on a busy machine.
fn kill_after(args: &[&str], ckpt: &Path, n: usize) {
    let mut child = seedlm()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while pieces(ckpt) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        assert!(
            start.elapsed() < crate::helpers::WHOLE_MODEL,
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every file under `dir` (sub-folders included) with its bytes, by relative path.
fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// One mode (`extra` options) on `model`'s tensors matching `include`: a single run, 3 shards
/// after a plan, and a resumed run killed mid-shard all write the same files.
fn same_bytes_three_ways(model: &Path, include: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let calib = calibration_text(dir.path());
    let extra: Vec<&str> = extra
        .iter()
        .map(|&a| if a == "CALIB" { s(&calib) } else { a })
        .collect();
    let with = |args: &[&str]| -> Vec<String> {
        [args, &["--include", include], &extra]
            .concat()
            .into_iter()
            .map(String::from)
            .collect()
    };
    let call = |v: Vec<String>| ok(&strs(&v));

    let single = dir.path().join("single");
    let (out, _) = call(with(&["compress", s(model), "-o", s(&single)]));
    assert!(out.contains("phases      "), "{out}");
    let want = files_in(&single);
    assert!(want.iter().any(|(n, _)| n == "model.safetensors"));

    // Three shards after the plan, run in any order.
    let sharded = dir.path().join("sharded");
    let (out, _) = call(with(&[
        "plan",
        s(model),
        "-o",
        s(&sharded),
        "--shards",
        "3",
    ]));
    assert!(out.contains("job.json"), "{out}");
    for i in [2, 0, 1] {
        let spec = format!("{i}/3");
        call(with(&[
            "compress",
            s(model),
            "-o",
            s(&sharded),
            "--shard",
            &spec,
        ]));
    }
    let st = ok(&["status", s(&sharded)]).0;
    assert!(
        st.contains("plan   made for") && st.contains("3/3 shards finished"),
        "{st}"
    );
    ok(&["merge", s(&folder(&sharded)), "-o", s(&sharded)]);
    assert!(
        files_in(&sharded) == want,
        "3 shards differ from the single run"
    );

    // A resumable run killed with SIGKILL mid-shard, then run again: it keeps its plan.
    let resumed = dir.path().join("resumed");
    let run_args = with(&[
        "compress",
        s(model),
        "-o",
        s(&resumed),
        "--resume",
        "--threads",
        "1",
        "--checkpoint-blocks",
        "16",
    ]);
    let a = strs(&run_args);
    kill_after(&a, &folder(&resumed).join("shard-0000-of-0001"), 1);
    assert!(!resumed.exists(), "a killed run writes no output");
    assert!(folder(&resumed).join("job.json").is_file());
    let (_, err) = ok(&a);
    assert!(
        !err.contains("measuring") && !err.contains("calibrating"),
        "the plan was measured again: {err}"
    );
    assert!(
        files_in(&resumed) == want,
        "the resumed run differs from the single run"
    );
    assert!(
        !folder(&resumed).exists(),
        "the checkpoint folder is removed"
    );
}

#[test]
fn target_bpw_sharded_and_resumed_give_the_single_run_bytes() {
    same_bytes_three_ways(&llama(), INCLUDE, &["--target-bpw", "4.0"]);
}

#[test]
fn calibrate_sharded_and_resumed_give_the_single_run_bytes() {
    same_bytes_three_ways(&llama(), INCLUDE, &["--calibrate", "CALIB"]);
}

#[test]
fn target_bpw_with_calibrate_sharded_and_resumed_give_the_single_run_bytes() {
    same_bytes_three_ways(
        &llama(),
        INCLUDE,
        &["--target-bpw", "4.0", "--calibrate", "CALIB"],
    );
}

/// The demo (all-MiniLM-L6-v2, a BERT encoder: moments measured on paragraphs), two of its
/// 384×384 projections to keep the calibrated search short.
#[test]
fn calibrate_on_the_demo_sharded_and_resumed_gives_the_single_run_bytes() {
    let demo = crate::helpers::demo_dir();
    same_bytes_three_ways(
        &demo,
        r"^encoder\.layer\.[01]\.attention\.self\.query\.weight$",
        &["--calibrate", "CALIB"],
    );
}

/// Adds 1 to the first weight of tensor `name` of the F32 safetensors file `path`.
fn bump(path: &Path, name: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + n;
    let x = f32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) + 1.0;
    bytes[start..start + 4].copy_from_slice(&x.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_plan_is_refused_once_its_input_or_text_changed() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("llama");
    std::fs::create_dir(&model).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(llama().join(f), model.join(f)).unwrap();
    }
    let calib = calibration_text(dir.path());
    let out = dir.path().join("out");
    let opts = ["--include", INCLUDE, "--calibrate", s(&calib)];
    let shard = |i: &str| -> Vec<String> {
        [
            &["compress", s(&model), "-o", s(&out), "--shard", i][..],
            &opts[..],
        ]
        .concat()
        .into_iter()
        .map(String::from)
        .collect()
    };

    // No plan yet: a shard of several says how to make it, and writes nothing.
    let first = shard("0/2");
    let a = strs(&first);
    let err = fails(&a);
    assert!(
        err.contains("job.json") && err.contains("no plan yet") && err.contains("seedlm plan"),
        "{err}"
    );
    assert!(!folder(&out).exists(), "nothing written");
    ok(&[
        &["plan", s(&model), "-o", s(&out), "--shards", "2"][..],
        &opts[..],
    ]
    .concat());
    // A plan for other options is refused, naming job.json.
    let err = fails(&[
        "plan",
        s(&model),
        "-o",
        s(&out),
        "--shards",
        "2",
        "--include",
        INCLUDE,
        "--target-bpw",
        "4",
        "--calibrate",
        s(&calib),
    ]);
    assert!(
        err.contains("job.json") && err.contains("--target-bpw none instead of 4"),
        "{err}"
    );

    // The text changed: refused, naming it.
    let before = std::fs::read(&calib).unwrap();
    std::fs::write(&calib, "Another text altogether.\n").unwrap();
    let err = fails(&a);
    assert!(
        err.contains("calib.txt") && err.contains("changed since the plan"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::write(&calib, &before).unwrap();

    // A compressed tensor changed: its shard refuses, naming the file and the tensor.
    let file = model.join("model.safetensors");
    let original = std::fs::read(&file).unwrap();
    bump(&file, "model.layers.0.self_attn.k_proj.weight");
    let err = fails(&a);
    assert!(
        err.contains("model.safetensors")
            && err.contains("model.layers.0.self_attn.k_proj.weight")
            && err.contains("changed since the plan"),
        "{err}"
    );
    std::fs::write(&file, &original).unwrap();
    for i in ["0/2", "1/2"] {
        ok(&strs(&shard(i)));
    }

    // A tensor the shards never read (the embedding) changed after them: the merge refuses
    // and writes nothing, since the moments were measured through it.
    bump(&file, "model.embed_tokens.weight");
    let err = fails(&["merge", s(&folder(&out)), "-o", s(&out)]);
    assert!(
        err.contains("model.safetensors")
            && err.contains("model.embed_tokens.weight")
            && err.contains("changed since the plan"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
    std::fs::write(&file, &original).unwrap();

    // The moments file was edited: refused, naming it.
    let moments = folder(&out).join("moments.safetensors");
    let mut m = std::fs::read(&moments).unwrap();
    let last = m.len() - 1;
    m[last] ^= 1;
    std::fs::write(&moments, &m).unwrap();
    std::fs::remove_file(folder(&out).join("part-0000-of-0002.safetensors")).unwrap();
    let err = fails(&a);
    assert!(
        err.contains("moments.safetensors") && err.contains("changed since the plan"),
        "{err}"
    );
}

/// `seedlm slurm` with a bit budget and calibration writes the plan job before the array (the
/// array's shards repeat the plan options, without --config), writes no job.json itself, and
/// `status` says the plan is not made yet.
#[test]
fn slurm_writes_a_plan_job_and_status_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let calib = calibration_text(dir.path());
    let out = dir.path().join("out");
    let model = llama();
    let (stdout, _) = ok(&[
        "slurm",
        s(&model),
        "-o",
        s(&out),
        "--shards",
        "3",
        "--include",
        INCLUDE,
        "--target-bpw",
        "4.0",
        "--calibrate",
        s(&calib),
    ]);
    let f = folder(&out);
    assert!(
        stdout.contains("pid=$(sbatch --parsable") && stdout.contains("plan.sbatch"),
        "{stdout}"
    );
    assert!(!f.join("job.json").exists(), "the plan job writes job.json");
    let plan = std::fs::read_to_string(f.join("plan.sbatch")).unwrap();
    let array = std::fs::read_to_string(f.join("compress.sbatch")).unwrap();
    for script in [&plan, &array] {
        assert!(
            script.contains("--target-bpw 4 ")
                && script.contains(&format!("--calibrate {}", s(&calib)))
                && !script.contains("--config"),
            "{script}"
        );
    }
    assert!(
        plan.contains(" plan ") && plan.contains("--shards 3"),
        "{plan}"
    );
    assert!(array.contains("--shard auto"), "{array}");
    let st = ok(&["status", s(&out)]).0;
    assert!(
        st.contains("not made yet") && st.contains("plan.sbatch"),
        "{st}"
    );
}
