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

/// A packed file with a 4-bit [8, 256] tensor, 3-bit [4, 200] and [4, 256] ones, a [16, 512]
/// one of C=6, P=4, K=16 (a `--target-bpw` menu entry without RTL) and a plain one.
fn packed_fixture(dir: &std::path::Path) -> std::path::PathBuf {
    use seedlm::io::dtype::Dtype;
    use seedlm::io::packed::{CompressedEntry, PlainEntry, write_packed};
    let path = dir.join("model.seedlm.safetensors");
    let w = seedlm::hw::sim::random_tensor(Config::FOUR_BIT, 8, 256, 31);
    let v = seedlm::hw::sim::random_tensor(Config::THREE_BIT, 4, 200, 32);
    let u = seedlm::hw::sim::random_tensor(Config::THREE_BIT, 4, 256, 33);
    let m = seedlm::hw::sim::random_tensor(MENU_6_4, 16, 512, 34);
    let bias = vec![0u8; 8 * 4];
    let order: Vec<String> = ["w", "v", "u", "m", "bias"].map(String::from).to_vec();
    write_packed(
        &path,
        &[
            CompressedEntry::new("w", &[8, 256], Dtype::F32, &w, None),
            CompressedEntry::new("v", &[4, 200], Dtype::F32, &v, None),
            CompressedEntry::new("u", &[4, 256], Dtype::F32, &u, None),
            CompressedEntry::new("m", &[16, 512], Dtype::F32, &m, None),
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
    assert_eq!(v["estimated"], false);
    // At least one cycle per beat: 2048 weights are 64 FP16 beats, 16 SeedLM beats.
    assert!(v["reference_cycles"].as_u64().unwrap() > 64);
    assert!(v["seedlm_cycles"].as_u64().unwrap() > 16);
    assert_eq!(v["crosscheck_ok"], true);

    let v = report("v");
    assert_eq!(v["preset"], "3bit");
    assert_eq!(v["crosscheck_ok"], true);
    assert!(v["speedup"].is_null(), "no reference at a width of 200");
    // A 3-bit tensor as wide as the 4-bit design takes has the reference's speed-up too.
    let u = report("u");
    assert_eq!(u["preset"], "3bit");
    assert_eq!(u["crosscheck_ok"], true);
    let (r, q) = (
        u["reference_cycles"].as_u64().unwrap(),
        u["seedlm_cycles"].as_u64().unwrap(),
    );
    assert!((u["speedup"].as_f64().unwrap() - r as f64 / q as f64).abs() < 1e-12);

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

/// A `--target-bpw` menu entry without RTL.
const MENU_6_4: Config = Config { c: 6, p: 4, k: 16 };

#[test]
fn tensor_without_rtl_gets_a_labelled_estimate() {
    use seedlm::hw::{estimate, sim::DdrParams};
    let dir = tempfile::tempdir().unwrap();
    let path = packed_fixture(dir.path());
    let spec = format!("{}:m", path.display());
    // No simulator runs: it works without the toolchain.
    let run = |args: &[&str]| {
        seedlm()
            .args(["hw-sim", "--tensor", &spec])
            .args(args)
            .env("PATH", "")
            .output()
            .unwrap()
    };
    let out = run(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["estimated"], true);
    assert!(v["preset"].is_null());
    assert_eq!(
        (v["config"]["c"].as_u64(), v["config"]["p"].as_u64()),
        (Some(6), Some(4))
    );
    let ddr = DdrParams::default();
    let want = estimate::estimate(MENU_6_4, 16, 512, &ddr)
        .unwrap()
        .seedlm_cycles();
    assert_eq!(v["seedlm_cycles"].as_u64(), Some(want));
    // 8192 weights: 1366 records of 36 bits, 97 beats, 15 records (90 MACs) a cycle.
    assert_eq!(
        (
            v["beats"].as_u64(),
            v["records_per_cycle"].as_u64(),
            v["macs"].as_u64()
        ),
        (Some(97), Some(15), Some(90))
    );
    let r = v["reference_cycles"].as_u64().unwrap();
    assert_eq!(Some(r), estimate::reference_cycles(16, 512, &ddr));
    assert!((v["speedup"].as_f64().unwrap() - r as f64 / want as f64).abs() < 1e-12);
    assert!(v["crosscheck_ok"].is_null(), "nothing was simulated");

    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "m (16×512): SeedLM {want} cycles, reference {r} cycles"
        )) && stdout.contains("(estimate, no RTL for C=6, P=4, K=16"),
        "{stdout}"
    );
    // The log says why nothing was simulated; the figures' note is printed once, on stdout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("16×512: no RTL for C=6, P=4, K=16; cycles estimated, not simulated")
            && !stderr.contains("(estimate, "),
        "{stderr}"
    );
    let out = run(&["--fp16"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("variant is of the 4-bit datapath, not the C=6, P=4, K=16"),
        "{stderr}"
    );
}

/// Checked ranges of `hw-sim --resources --json` (Yosys 0.70, `synth_xilinx -family xcup`,
/// MaxCols = MaxRows = 2048): per design and part, LUTs and FFs within ±25 % of the figures
/// measured when the check was set (docs/hardware.md), so that a module that doubles fails,
/// and DSPs and BRAM exactly.
/// (design, part, LUTs, FFs, BRAM, DSPs)
const RESOURCES: [(&str, &str, u64, u64, f64, u64); 12] = [
    ("ref_mvm", "mac", 9858, 578, 0.0, 32),
    ("ref_mvm", "lfsr", 0, 0, 0.0, 0),
    ("ref_mvm", "pre_mac", 0, 0, 0.0, 0),
    ("ref_mvm", "other", 5433, 1167, 0.0, 0),
    ("seedlm_mvm", "mac", 9336, 3774, 0.0, 128),
    ("seedlm_mvm", "lfsr", 624, 0, 0.0, 0),
    ("seedlm_mvm", "pre_mac", 5504, 0, 0.0, 384),
    ("seedlm_mvm", "other", 5999, 2683, 0.0, 0),
    ("seedlm3_mvm", "mac", 90693, 6208, 0.0, 182),
    ("seedlm3_mvm", "lfsr", 1140, 0, 0.0, 0),
    ("seedlm3_mvm", "pre_mac", 12603, 0, 0.0, 720),
    ("seedlm3_mvm", "other", 3774, 110, 0.0, 0),
];

#[test]
fn resources_json_stays_in_its_checked_ranges() {
    let out = seedlm()
        .args(["hw-sim", "--resources", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["family"], "xcup");
    let designs = v["designs"].as_array().unwrap();
    let names: Vec<_> = designs
        .iter()
        .map(|d| d["design"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ref_mvm", "seedlm_mvm", "seedlm3_mvm"]);
    let design = |name: &str| designs.iter().find(|d| d["design"] == name).unwrap();
    for (name, part, luts, ffs, bram, dsps) in RESOURCES {
        let u = &design(name)["parts"][part];
        let within = |key: &str, want: u64| {
            let got = u[key].as_u64().unwrap();
            let (lo, hi) = (want * 3 / 4, want * 5 / 4);
            assert!(
                (lo..=hi).contains(&got),
                "{name} {part} {key}: {got} outside {lo}..={hi}"
            );
        };
        within("luts", luts);
        within("ffs", ffs);
        assert_eq!(u["bram"].as_f64().unwrap(), bram, "{name} {part} BRAM");
        assert_eq!(u["dsps"].as_u64().unwrap(), dsps, "{name} {part} DSPs");
    }
    // The totals are the parts' sums; the paper's columns ride along for the two it has.
    for d in designs {
        let sum: u64 = ["mac", "lfsr", "pre_mac", "other"]
            .iter()
            .map(|p| d["parts"][p]["luts"].as_u64().unwrap())
            .sum();
        assert_eq!(d["total"]["luts"].as_u64().unwrap(), sum);
        assert!(d["logic_depth"].as_u64().unwrap() > 0);
    }
    assert_eq!(design("ref_mvm")["paper"]["total"]["luts"], 20800);
    assert_eq!(design("seedlm_mvm")["paper"]["lfsr"]["bram"], 144.0);
    assert!(design("seedlm3_mvm")["paper"].is_null());
}

#[test]
fn resources_without_yosys_say_how_to_install_it() {
    let out = seedlm()
        .args(["hw-sim", "--resources"])
        .env("PATH", "")
        .env_remove("SEEDLM_YOSYS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("Yosys with read_slang not found") && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
}

#[test]
fn fp16_variant_of_a_packed_tensor_reports_its_cycles_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = packed_fixture(dir.path());
    let run = |name: &str| {
        seedlm()
            .args(["hw-sim", "--json", "--fp16", "--tensor"])
            .arg(format!("{}:{name}", path.display()))
            .output()
            .unwrap()
    };
    let out = run("w");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["crosscheck_ok"], true);
    // The conversion sits in the same pipeline stage: the same cycles.
    assert_eq!(v["fp16_cycles"], v["seedlm_cycles"]);
    let err = |design: &str, key: &str| v["errors"][design][key].as_f64().unwrap();
    assert_eq!(err("seedlm", "max_rel"), 0.0, "fixed point is exact");
    let fp16 = err("fp16", "norm_rel");
    assert!(fp16 > 1e-6 && fp16 < 1e-2, "{fp16}");
    assert!(err("fp16", "max_rel") >= err("fp16", "mean_rel"));
    // Only the 4-bit datapath has the variant.
    let out = run("v");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("variant is of the 4-bit datapath"),
        "{stderr}"
    );
}
