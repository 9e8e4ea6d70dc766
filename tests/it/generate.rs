//! `seedlm generate`: a packed model runs from its records and says what its decompressed copy
//! says.

use crate::helpers::{run, s, text};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name)
}

/// `generate --json` of `model` with the fixture's config and tokenizer: its token ids.
fn tokens(model: &Path, original: &Path, extra: &[&str]) -> Vec<u64> {
    let mut args = vec![
        "generate",
        s(model),
        "--original",
        s(original),
        "--prompt",
        "It is a truth universally acknowledged",
        "--max-tokens",
        "64",
        "--ignore-eos",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert!(v["generate_tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

/// Greedy generation on a packed model (fused kernels, never expanded) gives the same 64 tokens
/// as on its decompressed f32 copy, on each decoder fixture and with every kernel forced.
#[test]
fn packed_model_generates_what_its_decompressed_copy_generates() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["llama", "mistral", "qwen2"] {
        let original = fixture(name);
        let packed = dir.path().join(format!("{name}-packed"));
        let plain = dir.path().join(format!("{name}-plain"));
        for args in [
            vec!["compress", s(&original), "-o", s(&packed), "--bits", "4"],
            vec!["decompress", s(&packed), "-o", s(&plain), "--dtype", "f32"],
        ] {
            let out = run(&args);
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let want = tokens(&plain, &original, &[]);
        assert_eq!(want.len(), 64, "{name}");
        for kernel in seedlm::infer::kernel::Kernel::available() {
            let got = tokens(&packed, &original, &["--kernel", kernel.name()]);
            assert_eq!(got, want, "{name}, kernel {}", kernel.name());
        }
        // The original model generates something else: the test can tell models apart.
        assert_ne!(tokens(&original, &original, &[]), want, "{name}");
    }
}

/// Sampling is reproducible for a seed and differs between seeds; bad arguments are one-line
/// errors.
#[test]
fn sampling_repeats_with_its_seed_and_bad_arguments_are_refused() {
    let llama = fixture("llama");
    let a = tokens(&llama, &llama, &["--temperature", "1.0", "--seed", "3"]);
    assert_eq!(
        a,
        tokens(&llama, &llama, &["--temperature", "1.0", "--seed", "3"])
    );
    assert_ne!(
        a,
        tokens(&llama, &llama, &["--temperature", "1.0", "--seed", "4"])
    );
    for (args, want) in [
        (vec!["--top-p", "0"], "--top-p"),
        (vec!["--temperature=-1"], "--temperature"),
        (vec!["--kernel", "vliw"], "kernel 'vliw'"),
    ] {
        let mut all = vec!["generate", s(&llama), "--prompt", "hello"];
        all.extend(args);
        let out = run(&all);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    }
    let demo = crate::helpers::demo_dir();
    let out = run(&["generate", s(&demo), "--prompt", "hello"]);
    assert!(
        text(&out.stderr).contains("encoder"),
        "{}",
        text(&out.stderr)
    );
}

/// Each compressed tensor's configuration in `model`'s packed file (`inspect --json`).
fn configs(model: &Path) -> Vec<(String, Value)> {
    let out = run(&["inspect", "--json", s(model)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["compressed"] == Value::Bool(true))
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["config"].clone()))
        .collect()
}

/// `bench-infer --synthetic --target-bpw` gives each linear layer the configuration that
/// `compress --target-bpw --sensitivity none` gives it (a mix, not one preset), and the file
/// runs.
#[test]
fn a_synthetic_budget_copy_has_the_allocation_of_compress() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixture("llama");
    let synthetic = dir.path().join("synthetic.safetensors");
    let compressed = dir.path().join("compressed.safetensors");
    for args in [
        vec![
            "bench-infer",
            "--synthetic",
            s(&original),
            "--target-bpw",
            "4.0",
            "-o",
            s(&synthetic),
        ],
        vec![
            "compress",
            s(&original),
            "--target-bpw",
            "4.0",
            "--sensitivity",
            "none",
            "-o",
            s(&compressed),
        ],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let want = configs(&compressed);
    assert_eq!(want.len(), 14);
    let kinds: std::collections::BTreeSet<String> =
        want.iter().map(|(_, c)| c.to_string()).collect();
    assert!(kinds.len() > 1, "the allocation is a mix: {kinds:?}");
    assert_eq!(configs(&synthetic), want);
    let ran = tokens(&synthetic, &original, &[]);
    assert_eq!(ran.len(), 64);
}
