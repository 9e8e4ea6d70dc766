//! What the command line does with files and directories (issue 11): whole directory trees,
//! config.json marking, permissions, refusing to overwrite the input, checking the output
//! before the work, leftovers of killed runs, metadata integrity, and listings.

use crate::helpers::{T, fails, gaussian, run, s, seedlm, small_model, text, tree, write_model};
use seedlm::io::dtype::Dtype;
use seedlm::io::model::Model;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A sentence-transformers-like directory: weights, config, a pooling sub-folder, a nested
/// dense layer in its own safetensors file, and a `.git` folder that must not be copied.
fn model_dir(root: &Path) -> PathBuf {
    let src = root.join("model");
    std::fs::create_dir_all(src.join("1_Pooling")).unwrap();
    std::fs::create_dir_all(src.join("2_Dense")).unwrap();
    std::fs::create_dir_all(src.join(".git/objects")).unwrap();
    write_model(&src.join("model.safetensors"), &small_model());
    std::fs::write(
        src.join("config.json"),
        "{\n  \"model_type\": \"bert\",\n    \"hidden_size\": 24 }",
    )
    .unwrap();
    std::fs::write(src.join("modules.json"), "[]").unwrap();
    std::fs::write(
        src.join("1_Pooling/config.json"),
        "{\"pooling_mode_mean_tokens\": true}",
    )
    .unwrap();
    write_model(
        &src.join("2_Dense/model.safetensors"),
        &[T::float(
            "linear.weight",
            Dtype::F32,
            &[2, 2],
            &[1.0, 2.0, 3.0, 4.0],
        )],
    );
    std::fs::write(src.join(".git/objects/blob"), "big").unwrap();
    src
}

#[test]
fn directories_keep_their_whole_tree_and_config_json_is_marked_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let src = model_dir(dir.path());
    let packed = dir.path().join("packed");
    let plain = dir.path().join("plain");
    let out = run(&["compress", s(&src), "-o", s(&packed)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = [
        "1_Pooling/config.json",
        "2_Dense/model.safetensors",
        "config.json",
        "model.safetensors",
        "modules.json",
    ];
    assert_eq!(tree(&packed), want);
    for f in ["1_Pooling/config.json", "2_Dense/model.safetensors"] {
        assert_eq!(
            std::fs::read(packed.join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    // Described under "seedlm", with no quantization_config sending transformers to a quantizer;
    // transformers_weights makes it refuse the directory with the value's advice.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(packed.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "bert");
    assert!(config.get("quantization_config").is_none(), "{config}");
    let refusal = config["transformers_weights"].as_str().unwrap();
    assert!(refusal.contains("seedlm decompress"), "{refusal}");
    let q = &config["seedlm"];
    assert_eq!(q["format"], "seedlm-packed");
    assert_eq!(q["format_version"], 2);
    assert_eq!(
        q["configs"],
        serde_json::json!([{"c": 8, "p": 3, "k": 16, "bits_per_weight": 4.0}])
    );

    let out = run(&["decompress", s(&packed), "-o", s(&plain)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(tree(&plain), want);
    for f in [
        "config.json",
        "1_Pooling/config.json",
        "2_Dense/model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(plain.join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f} is restored exactly"
        );
    }
}

#[cfg(unix)]
#[test]
fn output_files_honour_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("p.seedlm");
    let plain = dir.path().join("out.safetensors");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let with_umask = |umask: &str, args: &[&str]| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_seedlm"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    with_umask("027", &["compress", s(&input), "-o", s(&packed)]);
    assert_eq!(mode(&packed), 0o640);
    with_umask("002", &["decompress", s(&packed), "-o", s(&plain)]);
    assert_eq!(mode(&plain), 0o664);
    // A replaced file gets the same mode a new one would.
    std::fs::set_permissions(&packed, std::fs::Permissions::from_mode(0o644)).unwrap();
    with_umask("022", &["compress", s(&input), "-o", s(&packed)]);
    assert_eq!(mode(&packed), 0o644);
}

#[test]
fn the_input_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let original = std::fs::read(&input).unwrap();
    let packed = dir.path().join("p.seedlm");
    assert!(
        run(&["compress", s(&input), "-o", s(&packed)])
            .status
            .success()
    );
    let packed_bytes = std::fs::read(&packed).unwrap();
    let link = dir.path().join("link.safetensors");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&input, &link).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(&input, &link).unwrap();
    let dotted = dir.path().join(".").join("in.safetensors");
    for out in [&input, &dotted] {
        let err = fails(&["compress", s(&input), "-o", s(out)]);
        assert!(err.contains("is the input file"), "{err}");
    }
    #[cfg(unix)]
    {
        let err = fails(&["compress", s(&link), "-o", s(&input)]);
        assert!(err.contains("is the input file"), "{err}");
    }
    let err = fails(&["decompress", s(&packed), "-o", s(&packed)]);
    assert!(err.contains("is the input file"), "{err}");
    // A directory cannot be written into itself or below itself.
    let src = model_dir(dir.path());
    let src_before = tree(&src);
    for out in [src.clone(), src.join("packed"), src.join("1_Pooling")] {
        let err = fails(&["compress", s(&src), "-o", s(&out)]);
        assert!(err.contains("inside it"), "{err}");
    }
    assert_eq!(tree(&src), src_before);
    assert_eq!(std::fs::read(&input).unwrap(), original);
    assert_eq!(std::fs::read(&packed).unwrap(), packed_bytes);
}

#[test]
fn a_bad_output_location_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let blocker = dir.path().join("blocker");
    std::fs::create_dir(&blocker).unwrap();
    let missing = dir.path().join("no/such/dir/p.seedlm");
    let through_file = input.join("p.seedlm");
    for (out, want) in [
        (&missing, "does not exist"),
        (&blocker, "is a directory"),
        (&through_file, "does not exist"),
    ] {
        let o = run(&["compress", s(&input), "-o", s(out)]);
        let err = text(&o.stderr);
        assert!(!o.status.success());
        assert!(err.contains(want), "{err}");
        // Refused before the search started: no "compressing N tensors" line.
        assert!(!err.contains("compressing"), "{err}");
    }
    let packed = dir.path().join("p.seedlm");
    assert!(
        run(&["compress", s(&input), "-o", s(&packed)])
            .status
            .success()
    );
    let err = fails(&["decompress", s(&packed), "-o", s(&blocker)]);
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn partial_files_of_killed_runs_are_recognisable_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let leftover = dir.path().join(".seedlm-partial-AbC123.tmp");
    std::fs::write(&leftover, b"half a file").unwrap();
    let packed = dir.path().join("p.seedlm");
    let out = run(&["compress", s(&input), "-o", s(&packed)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!leftover.exists());
    let err = text(&out.stderr);
    assert!(
        err.contains(".seedlm-partial-AbC123.tmp") && err.contains("interrupted"),
        "{err}"
    );
}

/// The packed file's header text and the rest of the file.
fn split(bytes: &[u8]) -> (String, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (
        String::from_utf8(bytes[8..8 + n].to_vec()).unwrap(),
        bytes[8 + n..].to_vec(),
    )
}

/// A file with `header` (padded to a multiple of 8) and `data`.
fn join(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.trim_end().as_bytes().to_vec();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut v = (h.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(&h);
    v.extend_from_slice(data);
    v
}

#[test]
fn edited_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(
        &input,
        &[
            T::float("a.weight", Dtype::F32, &[24, 64], &gaussian(1536, 0.02, 1)),
            T::float("b.weight", Dtype::F32, &[7, 13], &gaussian(91, 0.02, 2)),
        ],
    );
    let packed = dir.path().join("p.seedlm");
    assert!(
        run(&[
            "compress",
            s(&input),
            "-o",
            s(&packed),
            "--include",
            "weight"
        ])
        .status
        .success()
    );
    let (header, data) = split(&std::fs::read(&packed).unwrap());
    let edits: Vec<(&str, String, &str)> = vec![
        // One flipped bit in a key: the tensor would be read as a plain U8[768]. The key is
        // not one of the format's, which is found before the checksum is.
        (
            "key.seedlm",
            header.replacen("seedlm.tensor.a", "seedlm.tdnsor.a", 1),
            "unknown packed-format metadata key 'seedlm.tdnsor.a.weight'",
        ),
        // Same block count (12 blocks of 8), one weight silently dropped.
        (
            "shape.seedlm",
            header.replacen("[7,13]", "[90]", 1),
            "checksum",
        ),
        (
            "version.seedlm",
            header.replacen("\"seedlm.version\":\"2\"", "\"seedlm.version\":\"+2\"", 1),
            "version '+2'",
        ),
        (
            "order.seedlm",
            header.replacen(
                "[\\\"a.weight\\\",\\\"b.weight\\\"]",
                "[\\\"a.weight\\\"]",
                1,
            ),
            "checksum",
        ),
    ];
    let out = dir.path().join("out.safetensors");
    for (name, edited, want) in edits {
        assert_ne!(edited, header, "{name}: the edit applies");
        let path = dir.path().join(name);
        std::fs::write(&path, join(&edited, &data)).unwrap();
        for args in [
            vec!["decompress", s(&path), "-o", s(&out)],
            vec!["inspect", s(&path)],
        ] {
            let err = fails(&args);
            assert!(err.contains(name) && err.contains(want), "{name}: {err}");
        }
        assert!(!out.exists());
    }
    // Trailing bytes after the last tensor, as the reference reader also refuses.
    let path = dir.path().join("trailing.seedlm");
    let mut longer = data.clone();
    longer.push(0);
    std::fs::write(&path, join(&header, &longer)).unwrap();
    let err = fails(&["inspect", s(&path)]);
    assert!(err.contains("trailing bytes"), "{err}");
}

#[test]
fn dtype_converts_f64_tensors_too() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let mut tensors = small_model();
    tensors.push(T {
        name: "rotary.inv_freq",
        dtype: Dtype::F64,
        shape: vec![2],
        bytes: [0.5f64, -0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    });
    write_model(&input, &tensors);
    let packed = dir.path().join("p.seedlm");
    let plain = dir.path().join("out.safetensors");
    assert!(
        run(&["compress", s(&input), "-o", s(&packed)])
            .status
            .success()
    );
    let out = run(&["decompress", s(&packed), "-o", s(&plain), "--dtype", "f16"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = Model::open(&plain).unwrap();
    let t = m.get("rotary.inv_freq").unwrap();
    assert_eq!(t.dtype, Dtype::F16);
    assert_eq!(m.to_f32(t).unwrap(), [0.5, -0.25]);
    assert_eq!(m.get("position_ids").unwrap().dtype, Dtype::I64);

    // A plain F64 value the dtype asked for cannot hold is refused as a plain F32 one is
    // (FORMAT.md §6), not written as inf: 1e39 in F32, 65520 in F16 (issue 23, item 19).
    for (value, to, wider) in [(1e39, "f32", None), (65520.0, "f16", Some("f32"))] {
        let input = dir.path().join(format!("{to}.safetensors"));
        write_model(
            &input,
            &[T {
                name: "big.scale",
                dtype: Dtype::F64,
                shape: vec![2],
                bytes: [1.0f64, value]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            }],
        );
        let packed = dir.path().join(format!("{to}.seedlm"));
        assert!(
            run(&["compress", s(&input), "-o", s(&packed)])
                .status
                .success()
        );
        let out = dir.path().join(format!("{to}.out.safetensors"));
        let err = fails(&["decompress", s(&packed), "-o", s(&out), "--dtype", to]);
        let dt = to.to_uppercase();
        assert!(
            err.contains("big.scale")
                && err.contains(&format!("weight {value} at element 1 does not fit in {dt}")),
            "{err}"
        );
        assert!(!out.exists());
        if let Some(wider) = wider {
            let o = run(&["decompress", s(&packed), "-o", s(&out), "--dtype", wider]);
            assert!(o.status.success(), "{}", text(&o.stderr));
        }
    }
}

#[test]
fn values_beyond_the_output_dtype_are_an_error_not_inf() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let big: Vec<f32> = gaussian(64, 1.0, 4).iter().map(|v| v * 1e5).collect();
    write_model(&input, &[T::float("big.weight", Dtype::F32, &[8, 8], &big)]);
    let packed = dir.path().join("p.seedlm");
    assert!(
        run(&["compress", s(&input), "-o", s(&packed)])
            .status
            .success()
    );
    let out = dir.path().join("out.safetensors");
    let err = fails(&["decompress", s(&packed), "-o", s(&out), "--dtype", "f16"]);
    assert!(
        err.contains("big.weight") && err.contains("does not fit in F16"),
        "{err}"
    );
    assert!(!out.exists());
    assert!(
        run(&["decompress", s(&packed), "-o", s(&out), "--dtype", "bf16"])
            .status
            .success()
    );
}

#[test]
fn huge_names_and_closed_pipes_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let long: &'static str = Box::leak(format!("{}.weight", "x".repeat(70_000)).into_boxed_str());
    write_model(
        &input,
        &[T::float(long, Dtype::F32, &[2, 8], &gaussian(16, 0.1, 3))],
    );
    let packed = dir.path().join("p.seedlm");
    let out = run(&["compress", s(&input), "-o", s(&packed)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(70007 bytes)"));
    for path in [&input, &packed] {
        let out = run(&["inspect", s(path)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).lines().all(|l| l.len() < 1000));
    }
    let out = run(&["compare", s(&input), "--methods", "rtn4-row"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A listing far longer than a pipe holds, read one line and closed.
    let names: Vec<&'static str> = (0..3000)
        .map(|i| &*Box::leak(format!("layers.{i}.norm.weight").into_boxed_str()))
        .collect();
    let many: Vec<T> = names
        .iter()
        .map(|n| T::float(n, Dtype::F32, &[1], &[1.0]))
        .collect();
    let big = dir.path().join("many.safetensors");
    write_model(&big, &many);
    let mut child = seedlm()
        .args(["inspect", s(&big)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}

#[test]
fn errors_are_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&[
        "compress",
        s(&dir.path().join("missing.safetensors")),
        "-o",
        s(&dir.path().join("x")),
    ]);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    let shape = vec!["1"; 100_000].join(",");
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{shape}],"data_offsets":[0,8]}}}}"#);
    let path = dir.path().join("long.safetensors");
    std::fs::write(&path, join(&header, &[0; 8])).unwrap();
    let err = fails(&["inspect", s(&path)]);
    assert!(
        err.len() < 1000 && err.contains("100000 dimensions"),
        "{err}"
    );
}

#[test]
fn inspect_shows_the_format_totals_the_default_rule_and_natural_order() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    let w = |name| T::float(name, Dtype::BF16, &[4, 8], &gaussian(32, 0.02, 9));
    // Layer 10 in the first shard, layer 2 in the second.
    write_model(
        &src.join("model-00001-of-00002.safetensors"),
        &[
            w("layers.10.q.weight"),
            T::float("layers.10.norm.weight", Dtype::F32, &[8], &[1.0; 8]),
        ],
    );
    write_model(
        &src.join("model-00002-of-00002.safetensors"),
        &[w("layers.2.q.weight")],
    );
    let index = serde_json::json!({"weight_map": {
        "layers.10.q.weight": "model-00001-of-00002.safetensors",
        "layers.10.norm.weight": "model-00001-of-00002.safetensors",
        "layers.2.q.weight": "model-00002-of-00002.safetensors"}});
    std::fs::write(src.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let out = run(&["inspect", s(&src)]);
    let table = text(&out.stdout);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(
        names[..3],
        [
            "layers.2.q.weight",
            "layers.10.norm.weight",
            "layers.10.q.weight"
        ],
        "{table}"
    );
    let q = table
        .lines()
        .find(|l| l.starts_with("layers.2.q.weight"))
        .unwrap();
    assert!(q.contains("would compress"), "{q}");
    assert!(
        table.contains("the default rule would compress 2 of them"),
        "{table}"
    );

    let packed = dir.path().join("packed");
    assert!(
        run(&["compress", s(&src), "-o", s(&packed)])
            .status
            .success()
    );
    let table = text(&run(&["inspect", s(&packed)]).stdout);
    assert!(
        table.starts_with("format seedlm-packed version 2\n"),
        "{table}"
    );
    let q = table
        .lines()
        .find(|l| l.starts_with("layers.2.q.weight"))
        .unwrap();
    assert!(
        q.contains("packed (from BF16)") && q.contains("compressed"),
        "{q}"
    );
    // 64 BF16 weights (128 bytes) in 32 bytes of records, plus the 32-byte F32 norm.
    assert!(
        table.contains("64 bytes of tensor data, 160 in the original dtypes (2.50x smaller)"),
        "{table}"
    );
    assert!(
        table.contains("4.000 bits per compressed weight"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["inspect", s(&packed), "--json"]).stdout).unwrap();
    assert_eq!(
        json["format"],
        serde_json::json!({"name": "seedlm-packed", "version": 2})
    );
    let t = &json["tensors"][0];
    assert_eq!(t["name"], "layers.2.q.weight");
    assert_eq!(t["config"], serde_json::json!({"c": 8, "p": 3, "k": 16}));
    assert_eq!(
        (t["dtype"].as_str(), t["stored_dtype"].as_str()),
        (Some("BF16"), Some("U8"))
    );
    assert_eq!(json["totals"]["original_bytes"], 160);
    assert_eq!(json["totals"]["bytes"], 64);
    assert_eq!(json["totals"]["bits_per_weight"], 4.0);
}

/// Directory outputs (issue 23, item 4) are written beside the target and renamed into place:
/// a run that fails half-way leaves nothing, an existing output is refused before any work
/// unless `--force`, and leftovers of killed runs beside it are removed.
#[test]
fn directory_outputs_appear_whole_and_replace_only_with_force() {
    let root = tempfile::tempdir().unwrap();
    let src = model_dir(root.path());
    let out = root.path().join("out");
    let o = run(&["compress", s(&src), "-o", s(&out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = tree(&out);
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let listing = || crate::helpers::listing(root.path());
    assert_eq!(listing(), ["model", "out"], "no partial directory left");
    // An existing output is refused at once, untouched.
    let err = fails(&["compress", s(&src), "-o", s(&out), "--bits", "3"]);
    assert!(err.contains("--force") && err.contains("out"), "{err}");
    assert!(std::fs::read(out.join("model.safetensors")).unwrap() == bytes);
    // With --force it is replaced; stale partials of killed runs beside it are removed.
    let stale_dir = root.path().join(".seedlm-partial-killed.tmp");
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("model.safetensors"), b"half").unwrap();
    std::fs::write(root.path().join(".seedlm-partial-file.tmp"), b"half").unwrap();
    let o = run(&["compress", s(&src), "-o", s(&out), "--bits", "3", "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("seedlm-partial-killed.tmp"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(listing(), ["model", "out"]);
    assert_eq!(tree(&out), before);
    assert!(std::fs::read(out.join("model.safetensors")).unwrap() != bytes);
    // Decompression too; one that fails half-way (a weight too large for --dtype f16) leaves no
    // directory behind.
    let plain = root.path().join("plain");
    let o = run(&["decompress", s(&out), "-o", s(&plain)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = fails(&["decompress", s(&out), "-o", s(&plain)]);
    assert!(err.contains("--force"), "{err}");
    let big = root.path().join("big");
    std::fs::create_dir(&big).unwrap();
    write_model(
        &big.join("model.safetensors"),
        &[T::float("x.weight", Dtype::F32, &[8, 8], &[1e6; 64])],
    );
    let packed = root.path().join("big-packed");
    assert!(
        run(&["compress", s(&big), "-o", s(&packed)])
            .status
            .success()
    );
    let half = root.path().join("half");
    let err = fails(&["decompress", s(&packed), "-o", s(&half), "--dtype", "f16"]);
    assert!(err.contains("F16"), "{err}");
    assert_eq!(listing(), ["big", "big-packed", "model", "out", "plain"]);
}

/// A folder link inside a model directory that leads outside it, or back up to a folder above
/// it (a loop), is refused before any work, naming the link; nothing is written (issue 23,
/// item 6). Links inside the tree are followed as before.
#[cfg(unix)]
#[test]
fn folder_links_out_of_the_model_directory_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("secret.txt"), b"not the model's").unwrap();
    for (name, target) in [
        ("sub/link", elsewhere.clone()),
        ("sub/loop", PathBuf::from("..")),
    ] {
        let src = model_dir(&root.path().join(name.replace('/', "-")));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::os::unix::fs::symlink(&target, src.join(name)).unwrap();
        let out = root.path().join(format!("out-{}", name.replace('/', "-")));
        let err = fails(&["compress", s(&src), "-o", s(&out)]);
        assert!(err.contains(name) && err.contains("folder link"), "{err}");
        assert!(!out.exists(), "{name}: output written");
    }
    // A link to a folder inside the tree is fine.
    let src = model_dir(&root.path().join("inside"));
    std::os::unix::fs::symlink("1_Pooling", src.join("pooling-link")).unwrap();
    let out = root.path().join("out-inside");
    let o = run(&["compress", s(&src), "-o", s(&out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.join("pooling-link/config.json").is_file());
}

/// A model whose config.json has a `quantization_config` is compressed with a warning naming the
/// method (its weights are already quantized); SeedLM's own mark and a plain config give none.
#[test]
fn compressing_an_already_quantized_model_warns() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("m");
    std::fs::create_dir(&src).unwrap();
    write_model(&src.join("model.safetensors"), &small_model());
    let warned = |config: &str, out: &str| {
        std::fs::write(src.join("config.json"), config).unwrap();
        let o = run(&["compress", s(&src), "-o", s(&dir.path().join(out))]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        err.lines()
            .find(|l| l.contains("quantization_config"))
            .map(str::to_string)
    };
    let line = warned(
        r#"{"quantization_config": {"quant_method": "gptq", "bits": 4}}"#,
        "a",
    )
    .expect("a warning");
    assert!(
        line.starts_with("warning: ") && line.contains("(gptq)") && line.contains(s(&src)),
        "{line}"
    );
    assert_eq!(warned(r#"{"hidden_size": 8}"#, "b"), None);
    let own = r#"{"quantization_config": {"quant_method": "seedlm"}}"#;
    assert_eq!(warned(own, "c"), None);
}
