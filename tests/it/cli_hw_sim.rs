//! `seedlm hw-sim` end to end: the JSON report, and the message without a toolchain.

use crate::helpers::seedlm;
use seedlm::core::config::Config;

#[test]
fn json_report_lists_each_size() {
    let out = seedlm()
        .args(["hw-sim", "--sizes", "256,512", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sizes = v["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for (s, want) in sizes.iter().zip([256, 512]) {
        assert_eq!(s["size"], want);
        let r = s["reference_cycles"].as_u64().unwrap();
        let q = s["seedlm_cycles"].as_u64().unwrap();
        // At least one cycle per beat (32 and 128 weights a beat); SeedLM is faster.
        assert!(
            r > (want * want / 32) as u64 && q > (want * want / 128) as u64,
            "{r} {q}"
        );
        assert!(r > q, "{r} {q}");
        assert!((s["speedup"].as_f64().unwrap() - r as f64 / q as f64).abs() < 1e-12);
        assert_eq!(s["crosscheck_ok"], true);
        let q3 = s["seedlm3_cycles"].as_u64().unwrap();
        assert!(q3 < q, "3-bit blocks need fewer beats: {q3} vs {q}");
        assert_eq!(s["crosscheck3_ok"], true);
    }
    assert_eq!(v["compressed_crosscheck"]["crosscheck_ok"], true);
}

#[test]
fn bad_size_and_missing_toolchain_are_one_line_errors() {
    let out = seedlm()
        .args(["hw-sim", "--sizes", "500"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("500×500") && stderr.contains("multiple of 128"),
        "{stderr}"
    );

    let out = seedlm().args(["hw-sim"]).env("PATH", "").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("verilator not found") && stderr.contains("apt-get install verilator"),
        "{stderr}"
    );
}

/// A packed file with a 4-bit [8, 256] tensor, a 3-bit [4, 200] tensor and a plain one.
fn packed_fixture(dir: &std::path::Path) -> std::path::PathBuf {
    use seedlm::io::dtype::Dtype;
    use seedlm::io::packed::{CompressedEntry, PlainEntry, write_packed};
    let path = dir.join("model.seedlm.safetensors");
    let w = seedlm::hw::sim::random_tensor(Config::FOUR_BIT, 8, 256, 31);
    let v = seedlm::hw::sim::random_tensor(Config::THREE_BIT, 4, 200, 32);
    let bias = vec![0u8; 8 * 4];
    let order: Vec<String> = ["w", "v", "bias"].map(String::from).to_vec();
    write_packed(
        &path,
        &[
            CompressedEntry::new("w", &[8, 256], Dtype::F32, &w, None),
            CompressedEntry::new("v", &[4, 200], Dtype::F32, &v, None),
        ],
        &[PlainEntry {
            name: "bias".into(),
            shape: vec![8],
            dtype: Dtype::F32,
            data: &bias,
        }],
        &order,
        &Default::default(),
    )
    .unwrap();
    path
}

#[test]
fn tensor_of_a_packed_file_is_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let path = packed_fixture(dir.path());
    let spec = |name: &str| format!("{}:{name}", path.display());

    // Runs `hw-sim --json --tensor` on one tensor of the file and parses its report.
    let report = |name: &str| -> serde_json::Value {
        let out = seedlm()
            .args(["hw-sim", "--json", "--tensor", &spec(name)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let v = report("w");
    assert_eq!(
        (v["rows"].as_u64(), v["cols"].as_u64()),
        (Some(8), Some(256))
    );
    assert_eq!(v["preset"], "4bit");
    // At least one cycle per beat: 2048 weights are 64 FP16 beats, 16 SeedLM beats.
    assert!(v["reference_cycles"].as_u64().unwrap() > 64);
    assert!(v["seedlm_cycles"].as_u64().unwrap() > 16);
    assert_eq!(v["crosscheck_ok"], true);

    let v = report("v");
    assert_eq!(v["preset"], "3bit");
    assert_eq!(v["crosscheck_ok"], true);

    for (name, want) in [
        ("bias", "stored uncompressed"),
        ("nope", "no tensor named nope"),
    ] {
        let out = seedlm()
            .args(["hw-sim", "--tensor", &spec(name)])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(want) && stderr.contains("model.seedlm"),
            "{stderr}"
        );
    }
}
