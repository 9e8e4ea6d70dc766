//! The `seedlm` command line end to end: compress, inspect, decompress, and every bad input
//! giving a one-line error that names the file, a non-zero exit, no panic and no output file.

use crate::helpers::{T, fails, gaussian, listing, run, s, seedlm, small_model, text, write_model};
use seedlm::io::dtype::Dtype;
use seedlm::io::model::Model;
use seedlm::io::packed::PackedModel;
use seedlm::search::Kernel;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn compress_inspect_decompress() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let packed = dir.path().join("p.seedlm");
    let output = dir.path().join("out.safetensors");
    write_model(&input, &small_model());

    let out = run(&["compress", s(&input), "-o", s(&packed), "--threads", "1"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("layers.0.q_proj.weight"), "{stdout}");
    assert!(stdout.contains("[16, 24]"), "{stdout}");
    // 449 weights in 57 blocks: the partial last block of the 65-element tensor costs a bit.
    assert!(stdout.contains("bits/weight 4.062"), "{stdout}");
    assert!(
        stdout.contains("2 compressed, 3 passed through"),
        "{stdout}"
    );

    let out = run(&["inspect", s(&packed)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success());
    let line = stdout
        .lines()
        .find(|l| l.starts_with("layers.0.mlp.weight"))
        .unwrap();
    assert!(
        line.contains("BF16") && line.contains("compressed") && line.contains("8,3,16"),
        "{line}"
    );
    assert!(stdout.contains("5 tensors (2 compressed)"), "{stdout}");

    let out = run(&["inspect", s(&packed), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["packed"], true);
    let tensors = json["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 5);
    let q = tensors
        .iter()
        .find(|t| t["name"] == "layers.0.q_proj.weight")
        .unwrap();
    assert_eq!(q["blocks"], 48);
    assert_eq!(q["bytes"], 192);
    let relmse = q["relmse"].as_f64().unwrap();
    assert!(relmse > 0.0 && relmse < 0.05);

    let out = run(&["decompress", s(&packed), "-o", s(&output), "--dtype", "f32"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p = PackedModel::open(&packed).unwrap();
    let m = Model::open(&output).unwrap();
    for t in p.tensors().iter().filter(|t| t.packed.is_some()) {
        let want = p.compressed(t).unwrap().unwrap().reconstruct();
        let d = m.get(&t.name).unwrap();
        assert_eq!(d.dtype, Dtype::F32);
        assert_eq!(m.to_f32(d).unwrap(), want, "{}", t.name);
    }

    let out = run(&["inspect", s(&input), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["packed"], false);
}

#[test]
fn directories_carry_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    write_model(&src.join("model.safetensors"), &small_model());
    std::fs::write(src.join("config.json"), "{}").unwrap();
    std::fs::write(src.join("tokenizer_config.json"), "{}").unwrap();
    let packed = dir.path().join("packed");
    let plain = dir.path().join("plain");
    assert!(
        run(&["compress", s(&src), "-o", s(&packed), "--bits", "3"])
            .status
            .success()
    );
    assert_eq!(
        listing(&packed),
        ["config.json", "model.safetensors", "tokenizer_config.json"]
    );
    let out = run(&["decompress", s(&packed), "-o", s(&plain)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(listing(&plain), listing(&packed));
    let m = Model::open(&plain).unwrap();
    assert_eq!(m.get("layers.0.mlp.weight").unwrap().dtype, Dtype::BF16);
    let p = PackedModel::open(&packed).unwrap();
    assert_eq!(
        p.get("layers.0.mlp.weight")
            .unwrap()
            .packed
            .as_ref()
            .unwrap()
            .c,
        12
    );
}

#[test]
fn malformed_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    write_model(&good, &small_model());
    let bytes = std::fs::read(&good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();

    let mut garbage = 16u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"this is not json");
    let mut oversized = bytes.clone();
    oversized[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    // Same header length, but one tensor's end offset pushed far past the data.
    let (s0, e0) = {
        let v: serde_json::Value = serde_json::from_str(header).unwrap();
        let o = &v["position_ids"]["data_offsets"];
        (o[0].as_u64().unwrap(), o[1].as_u64().unwrap())
    };
    let from = format!("[{s0},{e0}]");
    let to = format!("[{s0},{}]", e0 + 9_000_000);
    assert!(header.contains(&from));
    let shifted = header.replacen(&from, &to, 1);
    let mut bad_offsets = ((shifted.len()) as u64).to_le_bytes().to_vec();
    bad_offsets.extend_from_slice(shifted.as_bytes());
    bad_offsets.extend_from_slice(&bytes[8 + header_len..]);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.safetensors",
            bytes[..bytes.len() - 10].to_vec(),
            "truncated",
        ),
        ("tiny.safetensors", bytes[..5].to_vec(), "truncated"),
        (
            "cut_header.safetensors",
            bytes[..40].to_vec(),
            "runs past the end",
        ),
        ("garbage.safetensors", garbage, "not a JSON object"),
        ("oversized.safetensors", oversized, "exceeds"),
        ("offsets.safetensors", bad_offsets, "out of range"),
    ];
    for (name, data, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let out = dir.path().join(format!("{name}.out"));
        for args in [
            vec!["compress", s(&path), "-o", s(&out)],
            vec!["inspect", s(&path)],
        ] {
            let err = fails(&args);
            assert!(err.contains(name) && err.contains(want), "{name}: {err}");
        }
        assert!(!out.exists());
    }
    let err = fails(&[
        "compress",
        s(&dir.path().join("missing.safetensors")),
        "-o",
        "x",
    ]);
    assert!(err.contains("missing.safetensors"), "{err}");
}

#[test]
fn unsupported_dtype_and_non_finite_weights_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let out = dir.path().join("out.seedlm");
    let err = fails(&[
        "compress",
        s(&input),
        "-o",
        s(&out),
        "--include",
        "position_ids",
    ]);
    assert!(err.contains("position_ids") && err.contains("I64"), "{err}");

    for (bad, word) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let mut v = gaussian(48, 1.0, 5);
        v[11] = bad;
        let path = dir.path().join("nonfinite.safetensors");
        write_model(&path, &[T::float("w.weight", Dtype::F32, &[4, 12], &v)]);
        let err = fails(&["compress", s(&path), "-o", s(&out)]);
        assert!(
            err.contains("w.weight")
                && err.contains("element 11")
                && err.contains("[0, 11]")
                && err.contains(word),
            "{err}"
        );
    }
    assert!(!out.exists());
    let err = fails(&["compress", s(&input), "-o", s(&out), "--include", "("]);
    assert!(
        err.contains("--include") && err.contains("unclosed group"),
        "{err}"
    );
    let out = run(&[
        "compress",
        s(&input),
        "-o",
        s(&dir.path().join("x")),
        "--bits",
        "5",
    ]);
    assert!(!out.status.success());
}

#[test]
fn corrupt_packed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("p.seedlm");
    assert!(
        run(&["compress", s(&input), "-o", s(&packed)])
            .status
            .success()
    );
    let bytes = std::fs::read(&packed).unwrap();
    let p = PackedModel::open(&packed).unwrap();
    let t = p.get("layers.0.q_proj.weight").unwrap();
    let data = p.stored_bytes(t);
    // Locate the packed records in the file by content and flip one bit in the middle.
    let at = bytes.windows(data.len()).position(|w| w == data).unwrap() + data.len() / 2;
    drop(p);
    let mut flipped = bytes.clone();
    flipped[at] ^= 0x10;
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let v2 = header.replacen("\"seedlm.version\":\"2\"", "\"seedlm.version\":\"9\"", 1);
    assert_ne!(v2, header);
    let mut future = bytes[..8].to_vec();
    future.extend_from_slice(v2.as_bytes());
    future.extend_from_slice(&bytes[8 + header_len..]);

    let out = dir.path().join("out.safetensors");
    for (name, data, want) in [
        ("flipped.seedlm", flipped, "checksum"),
        ("future.seedlm", future, "version '9'"),
        ("cut.seedlm", bytes[..bytes.len() - 3].to_vec(), "truncated"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let err = fails(&["decompress", s(&path), "-o", s(&out)]);
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
        assert!(!out.exists());
    }
    // A packed file is not compressed twice, and a plain model is not a packed file.
    let err = fails(&["compress", s(&packed), "-o", s(&out)]);
    assert!(err.contains("already a SeedLM packed file"), "{err}");
    let err = fails(&["decompress", s(&input), "-o", s(&out)]);
    assert!(err.contains("not a SeedLM packed file"), "{err}");
}

#[test]
fn unwritable_output_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let missing = dir.path().join("no/such/dir/p.seedlm");
    let err = fails(&["compress", s(&input), "-o", s(&missing)]);
    assert!(err.contains("p.seedlm"), "{err}");
    // An existing directory cannot be replaced by the output file.
    let blocker = dir.path().join("blocker");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep.txt"), "x").unwrap();
    let err = fails(&["compress", s(&input), "-o", s(&blocker)]);
    assert!(err.contains("blocker"), "{err}");
    assert_eq!(
        listing(dir.path()),
        ["blocker", "in.safetensors"],
        "no temporary files left"
    );
    assert_eq!(listing(&blocker), ["keep.txt"]);
    // A directory input with a file in the way of the output directory.
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(&input, src.join("model.safetensors")).unwrap();
    let err = fails(&["compress", s(&src), "-o", s(&input)]);
    assert!(err.contains("must be a directory"), "{err}");
}

#[test]
fn ctrl_c_stops_cleanly_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.safetensors");
    // 40 000 blocks: many seconds of search, far longer than the signal takes to arrive.
    write_model(
        &input,
        &[T::float(
            "big.weight",
            Dtype::F16,
            &[400, 800],
            &gaussian(320_000, 0.02, 7),
        )],
    );
    let out = dir.path().join("out.seedlm");
    let mut child = seedlm()
        .args(["compress", s(&input), "-o", s(&out), "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("Ctrl-C"), "{first}");
    let (code, rest) = crate::helpers::interrupt(&mut child, &mut stderr);
    assert_eq!(code, Some(130), "{rest}");
    assert!(rest.contains("cancelled"), "{rest}");
    assert!(!out.exists());
    assert_eq!(listing(dir.path()), ["big.safetensors"]);
}

/// `seedlm bench` on 48 blocks, one thread, no warm-up, with `extra` arguments: its JSON.
fn bench_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench",
        "--blocks",
        "48",
        "--threads",
        "1",
        "--warmup",
        "0",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_reports_json_with_median_of_timed_runs() {
    let v = bench_json(&["--repeat", "3"]);
    for key in [
        "blocks_per_s",
        "relmse",
        "bits",
        "blocks",
        "threads",
        "seconds",
        "rescans",
        "kernel",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["blocks"], 48);
    assert_eq!(v["bits"], 4.0);
    let runs: Vec<f64> = v["runs_blocks_per_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!(runs.len(), 3);
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = v["blocks_per_s"].as_f64().unwrap();
    assert!(
        (median - sorted[1]).abs() <= 1e-6 * median,
        "{median} vs {runs:?}"
    );
    // The N(0,1) quality on so few blocks is near the 20 000-block figure of docs/DESIGN.md §3.
    let relmse = v["relmse"].as_f64().unwrap();
    assert!((0.008..0.022).contains(&relmse), "relmse {relmse}");

    let err = fails(&["bench", "--repeat", "0"]);
    assert!(err.contains("repeat"), "{err}");

    // By default the chosen kernel runs (the fastest, unless SEEDLM_KERNEL names another this
    // CPU has); every kernel this CPU has finds the same optimum, so the same error, bit for bit.
    assert_eq!(v["kernel"], Kernel::chosen().name());
    let by_env = |value: &str| {
        let out = seedlm()
            .args([
                "bench", "--blocks", "8", "--warmup", "0", "--repeat", "1", "--json",
            ])
            .env("SEEDLM_KERNEL", value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["kernel"].as_str().unwrap().to_string()
    };
    assert_eq!(by_env("portable"), "portable");
    assert_eq!(by_env("avx3"), Kernel::best_available().name());
    for kernel in Kernel::supported() {
        let k = bench_json(&["--repeat", "1", "--kernel", kernel.name()]);
        assert_eq!(k["kernel"], kernel.name());
        assert_eq!(k["relmse"], v["relmse"], "{kernel}");
    }
    let err = fails(&["bench", "--kernel", "avx3"]);
    assert!(err.contains("avx512, avx2, portable"), "{err}");
    if let Some(missing) = Kernel::ALL.into_iter().find(|k| !k.runs_here()) {
        let err = fails(&["bench", "--kernel", missing.name()]);
        assert!(err.contains("cannot run"), "{err}");
    }
}

/// `bench --calibrated-width` searches the same blocks as the rows of a layer under uneven
/// moments: the plain exact search has the least unweighted error on every block, so the
/// calibrated one's is never below it; a width of 0 is refused.
#[test]
fn bench_searches_a_calibrated_layer_of_any_width() {
    let plain = bench_json(&["--repeat", "1"]);
    assert_eq!(plain["calibrated_width"], serde_json::Value::Null);
    for width in ["13", "384"] {
        let cal = bench_json(&["--repeat", "1", "--calibrated-width", width]);
        assert_eq!(cal["calibrated_width"].to_string(), width);
        assert_eq!(cal["blocks"], 48);
        let (p, c) = (
            plain["relmse"].as_f64().unwrap(),
            cal["relmse"].as_f64().unwrap(),
        );
        assert!(c >= p * (1.0 - 1e-12), "width {width}: {c} below plain {p}");
    }
    let err = fails(&["bench", "--calibrated-width", "0"]);
    assert!(err.contains("calibrated-width"), "{err}");
}

/// `--encoder fast` writes a file the decoder reads like any other, and is refused with
/// `--shard`, whose pieces must all search alike.
#[test]
fn encoder_choice_and_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("fast.seedlm");
    let out = run(&["compress", s(&input), "-o", s(&packed), "--encoder", "fast"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(PackedModel::open(&packed).unwrap().tensors().len(), 5);
    let sharded = dir.path().join("sharded.seedlm");
    let err = fails(&[
        "compress",
        s(&input),
        "-o",
        s(&sharded),
        "--encoder",
        "fast",
        "--shard",
        "0/2",
    ]);
    assert!(
        err.contains("--encoder fast cannot be combined with --shard"),
        "{err}"
    );
}

/// The `seedlm.allocation` of a packed file and its tensors' (C, P, K), by name.
fn allocation_of(packed: &std::path::Path) -> (serde_json::Value, Vec<(String, [usize; 3])>) {
    let p = PackedModel::open(packed).unwrap();
    let a: serde_json::Value = serde_json::from_str(p.allocation().expect("allocation")).unwrap();
    let cfgs = p
        .tensors()
        .iter()
        .filter_map(|t| {
            let c = p.compressed(t)?.unwrap().config;
            Some((t.name.clone(), [c.c, c.p, c.k as usize]))
        })
        .collect();
    (a, cfgs)
}

#[test]
fn target_bpw_allocates_a_config_per_tensor_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("a.seedlm");
    let args = |out: &std::path::Path| {
        let mut v = vec!["compress", s(&input), "-o"];
        v.push(s(out));
        v.extend(["--target-bpw", "3.5", "--encoder", "fast"]);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let out = seedlm().args(args(&packed)).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("allocation  "), "{stdout}");
    assert!(stdout.contains("allocated to --target-bpw 3.5"), "{stdout}");

    let (a, cfgs) = allocation_of(&packed);
    // This model cannot be run (no config.json): the vocabulary probe says so and falls back.
    let err = text(&out.stderr);
    assert!(
        err.contains("note: ") && err.contains("no config.json"),
        "{err}"
    );
    assert!(
        a["sensitivity"]
            .as_str()
            .unwrap()
            .starts_with("data-free (α = 1")
    );
    let bpw = a["bits_per_weight"].as_f64().unwrap();
    // The cheapest choice is 2.655 here: the budget buys upgrades.
    assert!(bpw <= 3.5 && bpw > 3.2, "{a}");
    let weights = 384 + 65;
    let p = PackedModel::open(&packed).unwrap();
    let bytes: usize = p
        .tensors()
        .iter()
        .filter(|t| t.packed.is_some())
        .map(|t| p.stored_bytes(t).len())
        .sum();
    assert_eq!(bytes as f64 * 8.0 / weights as f64, bpw);
    // The file decodes with the configurations the allocation recorded.
    for choice in a["tensors"].as_array().unwrap() {
        let name = choice["tensor"].as_str().unwrap();
        let c = &choice["config"];
        let want = [
            c["c"].as_u64().unwrap() as usize,
            c["p"].as_u64().unwrap() as usize,
            c["k"].as_u64().unwrap() as usize,
        ];
        assert!(cfgs.contains(&(name.to_string(), want)), "{name}: {cfgs:?}");
    }
    let plain = dir.path().join("plain.safetensors");
    let out = run(&["decompress", s(&packed), "-o", s(&plain), "--dtype", "f32"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = Model::open(&plain).unwrap();
    for t in p.tensors().iter().filter(|t| t.packed.is_some()) {
        let want = p.compressed(t).unwrap().unwrap().reconstruct();
        assert_eq!(m.to_f32(m.get(&t.name).unwrap()).unwrap(), want);
    }
    assert!(
        Model::open(&plain)
            .unwrap()
            .metadata()
            .keys()
            .all(|k| !k.starts_with("seedlm."))
    );

    // Deterministic: a second run writes the same bytes.
    let again = dir.path().join("b.seedlm");
    assert!(
        seedlm()
            .args(args(&again))
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(
        std::fs::read(&packed).unwrap(),
        std::fs::read(&again).unwrap()
    );

    let err = fails(&[
        "compress",
        s(&input),
        "-o",
        s(&dir.path().join("x")),
        "--target-bpw",
        "2.5",
    ]);
    assert!(
        err.contains("--target-bpw 2.5 is below the menu's minimum of 2.655"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_log_gets_plain_progress_lines_where_a_terminal_gets_a_bar() {
    // Stderr is a pipe here, as in a Slurm job's output file.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let w = gaussian(64 * 256, 0.02, 5);
    write_model(
        &input,
        &[T::float(
            "layers.0.q_proj.weight",
            Dtype::F32,
            &[64, 256],
            &w,
        )],
    );
    let packed = dir.path().join("p.seedlm");
    let out = seedlm()
        .args(["compress", s(&input), "-o", s(&packed), "--threads", "1"])
        .env("SEEDLM_PROGRESS_SECS", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!(!lines.is_empty(), "{err}");
    assert!(lines.iter().all(|l| l.contains("/2048 blocks")), "{err}");
    assert!(!err.contains('\r'), "no bar redraws in a log: {err:?}");
}

#[test]
fn target_bpw_measures_data_free_sensitivities_on_the_models_own_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let demo = crate::helpers::demo_dir();
    let packed = dir.path().join("v.seedlm");
    let include = r"^encoder\.layer\.[05]\.attention\.self\.(query|value)\.weight$";
    let out = seedlm()
        .args(["compress", s(&demo), "-o", s(&packed), "--include", include])
        .args(["--target-bpw", "3.5", "--encoder", "fast"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("on random words of its vocabulary (data-free)"),
        "{err}"
    );
    let (a, _) = allocation_of(&packed);
    assert!(
        a["sensitivity"]
            .as_str()
            .unwrap()
            .starts_with("data-free: random words of the model's vocabulary (-Δ mean cosine)"),
        "{a}"
    );
    // Measured effects, not the α = 1 of weight error alone: the four tensors' effect per unit
    // of sample error differ.
    let per_unit: Vec<f64> = a["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["predicted_effect"].as_f64().unwrap() / c["sample_relmse"].as_f64().unwrap())
        .collect();
    assert_eq!(per_unit.len(), 4);
    assert!(
        per_unit
            .iter()
            .any(|&x| (x - per_unit[0]).abs() > 1e-3 * per_unit[0]),
        "{per_unit:?}"
    );
}

/// Peak memory in KB of `seedlm args`, from GNU time (which scripts/memory.sh uses too), and
/// its stderr; the command must succeed when `succeeds`, else fail.
fn timed_peak_kb(args: &[&str], succeeds: bool) -> (u64, String) {
    let o = std::process::Command::new("/usr/bin/time")
        .args(["-f", "peak %M KB", env!("CARGO_BIN_EXE_seedlm")])
        .args(args)
        .output()
        .expect("GNU time (/usr/bin/time) runs");
    let err = text(&o.stderr);
    assert_eq!(o.status.success(), succeeds, "{err}");
    let kb = err
        .lines()
        .find_map(|l| l.strip_prefix("peak ")?.strip_suffix(" KB")?.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    (kb, err)
}

/// Peak memory in KB of `seedlm args`, which must succeed.
fn peak_kb(args: &[&str]) -> u64 {
    timed_peak_kb(args, true).0
}

/// A (sparse) tensor of 256 MiB of zeros is compressed with neither a padded copy (its blocks
/// are whole) nor a whole reconstruction to measure its error: peak memory stays under 3× the
/// tensor, where it was 4.3× (issue 23, item 8).
#[test]
fn compress_holds_few_copies_of_a_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("zero.safetensors");
    let bytes: u64 = 1 << 28;
    let mut header = format!(
        r#"{{"z.weight":{{"dtype":"F32","shape":[8192,8192],"data_offsets":[0,{bytes}]}}}}"#
    )
    .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend_from_slice(&header);
    std::fs::write(&input, &head).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap();
    f.set_len(head.len() as u64 + bytes).unwrap();
    let out = dir.path().join("z.seedlm");
    let kb = peak_kb(&["compress", s(&input), "-o", s(&out)]);
    assert!(
        kb * 1024 < 3 * bytes,
        "peak {kb} KB for a {bytes}-byte tensor"
    );
}

/// A K = 20 search on a tiny tensor stays in a few bytes a seed: the tables no longer keep
/// every seed's factorisation while the margin is chosen (760 MB before, about 120 MB now;
/// issue 23, item 7).
#[test]
fn large_k_tables_take_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(
        &input,
        &[T::float(
            "w.weight",
            Dtype::F32,
            &[8, 64],
            &gaussian(512, 0.02, 1),
        )],
    );
    let out = dir.path().join("o.seedlm");
    let kb = peak_kb(&[
        "compress",
        s(&input),
        "-o",
        s(&out),
        "--config",
        "8,3,20",
        "--threads",
        "1",
    ]);
    // 2^20 seeds: 300 MB is under 300 bytes a seed; the factors alone took 600.
    assert!(kb < 300_000, "peak {kb} KB");
}

/// A (sparse) tensor of 2^40 weights, far beyond memory, is a one-line error naming it, not an
/// abort on a failed allocation (issue 23, item 8).
#[test]
fn a_tensor_larger_than_memory_is_an_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("huge.safetensors");
    let n: u64 = 1 << 40;
    let mut header = format!(
        r#"{{"w.weight":{{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,{}]}}}}"#,
        4 * n
    )
    .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    std::fs::write(&input, &bytes).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap();
    f.set_len(bytes.len() as u64 + 4 * n).unwrap();
    let out = dir.path().join("o.seedlm");
    let err = fails(&["compress", s(&input), "-o", s(&out)]);
    assert!(
        err.contains("huge.safetensors")
            && err.contains("'w.weight'")
            && err.contains("its f32 copy of 4398.0 GB cannot be allocated"),
        "{err}"
    );
    assert!(!out.exists());
}

/// `compress --json` prints the per-tensor table and the totals as one JSON object that agrees
/// with the file written (issue 23, item 18).
#[test]
fn compress_json_lists_every_tensor_and_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("p.seedlm");
    let out = run(&[
        "compress",
        s(&input),
        "-o",
        s(&packed),
        "--bits",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = PackedModel::open(&packed).unwrap();
    let compressed: Vec<_> = file
        .tensors()
        .iter()
        .filter(|t| t.packed.is_some())
        .collect();
    let rows = j["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), compressed.len());
    for row in rows {
        let t = file.get(row["tensor"].as_str().unwrap()).unwrap();
        let m = t.packed.as_ref().unwrap();
        assert_eq!(row["shape"], serde_json::json!(m.shape));
        assert_eq!(row["config"], serde_json::json!({"c": 12, "p": 4, "k": 16}));
        assert_eq!(row["blocks"], m.blocks);
        assert_eq!(row["relmse"].as_f64(), m.relmse);
        assert_eq!(row["packed_bytes"], t.stored_bytes);
    }
    let totals = &j["totals"];
    assert_eq!(totals["compressed"], compressed.len());
    assert_eq!(
        totals["passed_through"],
        file.tensors().len() - compressed.len()
    );
    assert_eq!(
        totals["bytes_after"],
        std::fs::metadata(&packed).unwrap().len()
    );
    let bpw = totals["bits_per_weight"].as_f64().unwrap();
    assert!((3.0..3.1).contains(&bpw), "{bpw}");
    assert_eq!(
        totals["phase_seconds"].as_object().map(|p| p.len()),
        Some(1),
        "{totals}"
    );
    assert_eq!(j["output"], s(&packed));
}

/// `compress --target-bpw --json`: stdout is the one JSON object (the allocation's table goes to
/// stderr), and its totals carry each phase's wall time.
#[test]
fn compress_target_bpw_json_is_one_object_with_its_phase_times() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("p.seedlm");
    let out = run(&[
        "compress",
        s(&input),
        "-o",
        s(&packed),
        "--target-bpw",
        "3.5",
        "--encoder",
        "fast",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        text(&out.stderr).contains("allocation  "),
        "{}",
        text(&out.stderr)
    );
    let phases = j["totals"]["phase_seconds"].as_object().unwrap();
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["menu samples", "search", "sensitivity"],
        "{phases:?}"
    );
    let sum: f64 = phases.values().map(|v| v.as_f64().unwrap()).sum();
    assert!(sum <= j["totals"]["seconds"].as_f64().unwrap(), "{j}");
}

/// A header of 200 000 empty tensors (12 MB) is read and written without a JSON tree of it:
/// `compress` peaked at 410 MB before (34 headers' worth), 219 MB after; 1.4 M entries took
/// 2.7 GB, now 1.3 GB (issue 23, item 8).
#[test]
fn a_header_of_many_empty_tensors_takes_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.safetensors");
    let entries: Vec<String> = (0..200_000)
        .map(|i| format!(r#""t.{i:07}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#))
        .collect();
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    std::fs::write(&input, &bytes).unwrap();
    let out = dir.path().join("many.seedlm");
    let kb = peak_kb(&["compress", s(&input), "-o", s(&out)]);
    let limit = HEADER_MEMORY_FACTOR * header.len() as u64;
    assert!(
        kb * 1024 < limit,
        "peak {kb} KB for a {}-byte header",
        header.len()
    );
}

/// Peak memory of [`a_header_of_many_empty_tensors_takes_bounded_memory`], in header sizes.
const HEADER_MEMORY_FACTOR: u64 = 25;

/// A packed tensor whose first record is damaged is refused before its records are decoded
/// into memory: checking them decoded a copy of 16 bytes a block first (issue 23, item 8).
#[test]
fn a_damaged_packed_tensor_is_refused_before_it_is_decoded() {
    use seedlm::core::config::Config;
    use seedlm::io::packed::{CompressedEntry, CompressedHead, packed_len, write_packed};
    let dir = tempfile::tempdir().unwrap();
    let packed = dir.path().join("p.seedlm.safetensors");
    let blocks = 1 << 23;
    let cfg = Config::FOUR_BIT;
    let len = packed_len(cfg, blocks);
    let name = "w.weight".to_string();
    let entry = CompressedEntry {
        head: CompressedHead {
            name: name.clone(),
            shape: vec![8192, 8192],
            dtype: Dtype::F32,
            config: cfg,
            e_base: 0,
            blocks,
            relmse: None,
        },
        // Every record has seed 0, the first one included.
        packed: vec![0; len],
    };
    write_packed(&packed, &[entry], &[], &[name], &Default::default()).unwrap();
    let out = dir.path().join("out.safetensors");
    let (kb, err) = timed_peak_kb(&["decompress", s(&packed), "-o", s(&out)], false);
    assert!(err.contains("record 0 has seed 0"), "{err}");
    assert!(
        kb * 1024 < 4 * len as u64,
        "peak {kb} KB for {len} bytes of records"
    );
}
