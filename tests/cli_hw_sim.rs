//! `seedlm hw-sim` end to end: the JSON report, and the message without a toolchain.

use std::process::Command;

fn seedlm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seedlm"))
}

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
