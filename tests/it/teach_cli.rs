//! `seedlm explore` and `seedlm compare` through the binary: JSON keys, totals, errors.

use crate::helpers::{T, run, write_model};
use seedlm::io::dtype::Dtype;
use std::path::Path;

/// A one-tensor F32 model.
fn write_one(path: &Path, name: &'static str, rows: usize, cols: usize, data: &[f32]) {
    write_model(path, &[T::float(name, Dtype::F32, &[rows, cols], data)]);
}

#[test]
fn explore_json_lists_the_grid() {
    let out = run(&[
        "explore", "--bits", "4", "--max-k", "8", "--blocks", "16", "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pts = v.as_array().unwrap();
    // K ∈ {4, 8}: 16 grid points, plus the paper's (8, 3, 16).
    assert_eq!(pts.len(), 17);
    for p in pts {
        let (c, pp, k) = (
            p["C"].as_u64().unwrap(),
            p["P"].as_u64().unwrap(),
            p["K"].as_u64().unwrap(),
        );
        assert_eq!(4 * c, k + 4 + 4 * pp);
        assert_eq!(p["bits"], 4.0);
        assert!(p["relmse"].as_f64().unwrap() > 0.0);
    }
    let paper: Vec<_> = pts.iter().filter(|p| p["paper"] == true).collect();
    assert_eq!(paper.len(), 1);
    assert_eq!(
        (paper[0]["C"].as_u64(), paper[0]["K"].as_u64()),
        (Some(8), Some(16))
    );
}

#[test]
fn compare_json_has_rows_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    // One row [-3, 0, 5, 12, 2.4] per the baselines' hand case, repeated on 2 rows.
    let row = [-3.0f32, 0.0, 5.0, 12.0, 2.4];
    let data: Vec<f32> = row.iter().chain(row.iter()).copied().collect();
    write_one(&path, "layer.weight", 2, 5, &data);
    let out = run(&[
        "compare",
        path.to_str().unwrap(),
        "--methods",
        "rtn4-row,nf4-g64",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let total = rows
        .iter()
        .find(|r| r["tensor"] == "total" && r["method"] == "rtn4-row")
        .unwrap();
    // Per row: 0.4² error of 183.76, 5·4 + 20 bits.
    let relmse = total["relmse"].as_f64().unwrap();
    assert!((relmse - 0.16 / (9.0 + 25.0 + 144.0 + 5.76)).abs() < 1e-6);
    assert_eq!(total["bits_per_weight"], 8.0);
}

#[test]
fn compare_errors_are_one_line() {
    let out = run(&["compare", "/nonexistent/model.safetensors"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/model.safetensors"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_one(&path, "layer.weight", 1, 2, &[1.0, f32::NAN]);
    let out = run(&["compare", path.to_str().unwrap(), "--methods", "nf4-g64"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("layer.weight") && err.contains("not finite"),
        "{err}"
    );
}
