//! Model → packed file → model, through the library: bit-exact against the engine's
//! reconstruction, for every dtype, configuration and layout the packed format supports.

use crate::helpers::{T, gaussian, listing, small_model, write_model};
use seedlm::core::config::Config;
use seedlm::core::control::Control;
use seedlm::core::quant::Rounding;
use seedlm::io::dtype::{self, Dtype};
use seedlm::io::model::Model;
use seedlm::io::model_job::{
    CompressedModel, compress_model, decompress_model, plan, write_compressed,
};
use seedlm::io::packed::PackedModel;
use seedlm::io::selection::Selection;
use seedlm::search::compress::CompressedTensor;
use std::path::Path;

fn compress_path(input: &Path, cfg: Config, sel: &Selection) -> (Model, CompressedModel) {
    let model = Model::open(input).unwrap();
    let plan = plan(&model, sel, cfg).unwrap();
    let c = compress_model(
        &model,
        &plan,
        cfg,
        Rounding::default(),
        &Default::default(),
        Control::unwatched(),
        |_| {},
    )
    .unwrap();
    (model, c)
}

/// Checks the packed file against the in-memory result, then the decompressed file against
/// `reconstruct()` rounded to each tensor's dtype (or `out_dtype`).
fn check_round_trip(
    model: &Model,
    c: &CompressedModel,
    packed_path: &Path,
    out: &Path,
    out_dtype: Option<Dtype>,
) {
    let packed = PackedModel::open(packed_path).unwrap();
    assert_eq!(packed.tensors().len(), model.tensors().len());
    for e in &c.entries {
        let t = packed.get(&e.head.name).unwrap();
        assert_eq!(t.shape, e.head.shape);
        assert_eq!(t.dtype, e.head.dtype);
        let back: CompressedTensor = packed.compressed(t).unwrap().unwrap();
        assert_eq!(
            back,
            e.tensor(),
            "{}: block codes survive packing",
            e.head.name
        );
        // The stored figure reads back bit for bit (serde_json's float_roundtrip parser).
        let (read, wrote) = (
            t.packed.as_ref().unwrap().relmse.unwrap(),
            e.head.relmse.unwrap(),
        );
        assert_eq!(read.to_bits(), wrote.to_bits(), "{read} vs {wrote}");
    }
    decompress_model(&packed, out, out_dtype).unwrap();
    let dec = Model::open(out).unwrap();
    assert_eq!(dec.tensors().len(), model.tensors().len());
    assert_eq!(dec.metadata().get("format").map(String::as_str), Some("pt"));
    for t in model.tensors() {
        let d = dec.get(&t.name).unwrap();
        assert_eq!(d.shape, t.shape, "{}", t.name);
        let want_dtype = match out_dtype {
            Some(o) if dtype::is_float(t.dtype) => o,
            _ => t.dtype,
        };
        assert_eq!(d.dtype, want_dtype, "{}", t.name);
        let want: Vec<u8> = match c.entries.iter().find(|e| e.head.name == t.name) {
            Some(e) => dtype::from_f32(want_dtype, &e.tensor().reconstruct()).unwrap(),
            None if want_dtype == t.dtype => model.bytes(t).to_vec(),
            None => dtype::from_f32(want_dtype, &model.to_f32(t).unwrap()).unwrap(),
        };
        assert!(dec.bytes(d) == want.as_slice(), "{}: bytes differ", t.name);
    }
}

#[test]
fn default_selection_round_trips_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let (model, c) = compress_path(&input, Config::FOUR_BIT, &Selection::default());
    let names: Vec<&str> = c.entries.iter().map(|e| e.head.name.as_str()).collect();
    assert_eq!(names, ["layers.0.q_proj.weight", "layers.0.mlp.weight"]);
    assert_eq!(c.entries[1].head.blocks, 9, "65 elements → 9 blocks");
    for r in &c.reports {
        assert!(
            r.relmse > 0.0 && r.relmse < 0.05,
            "{}: {}",
            r.name,
            r.relmse
        );
    }
    let packed = dir.path().join("p.seedlm");
    write_compressed(&model, &c, &packed).unwrap();
    // 384 + 65 weights at 4 bits: 48 + 9 blocks of 4 bytes.
    let p = PackedModel::open(&packed).unwrap();
    assert_eq!(
        p.get("layers.0.q_proj.weight").unwrap().stored_bytes,
        48 * 4
    );
    assert_eq!(p.get("layers.0.mlp.weight").unwrap().stored_bytes, 9 * 4);
    let order: Vec<&str> = p.tensors().iter().map(|t| t.name.as_str()).collect();
    let src: Vec<&str> = model.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(order, src, "listing keeps the source order");
    check_round_trip(
        &model,
        &c,
        &packed,
        &dir.path().join("out.safetensors"),
        None,
    );
    check_round_trip(
        &model,
        &c,
        &packed,
        &dir.path().join("out32.safetensors"),
        Some(Dtype::F32),
    );
    check_round_trip(
        &model,
        &c,
        &packed,
        &dir.path().join("outbf.safetensors"),
        Some(Dtype::BF16),
    );
}

#[test]
fn other_configs_round_trip_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    // 3-bit (36-bit records) and an odd configuration (K=12: 12+4+8 = 24-bit records, C=10).
    for cfg in [Config::THREE_BIT, Config::new(10, 2, 12).unwrap()] {
        let (model, c) = compress_path(&input, cfg, &Selection::default());
        let packed = dir.path().join(format!("p{}.seedlm", cfg.c));
        write_compressed(&model, &c, &packed).unwrap();
        let p = PackedModel::open(&packed).unwrap();
        let t = p.get("layers.0.mlp.weight").unwrap();
        let blocks = 65usize.div_ceil(cfg.c);
        assert_eq!(
            t.stored_bytes,
            (blocks * cfg.block_bits() as usize).div_ceil(8)
        );
        check_round_trip(
            &model,
            &c,
            &packed,
            &dir.path().join("out.safetensors"),
            None,
        );
    }
}

#[test]
fn zero_blocks_and_extreme_scales() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    let mut with_zeros = gaussian(256, 0.1, 9);
    with_zeros[64..128].fill(0.0);
    let scales = [1e-6f32, 1e-3, 1.0, 1e3];
    let names = ["s0.weight", "s1.weight", "s2.weight", "s3.weight"];
    let mut tensors = vec![
        T::float("zeros.weight", Dtype::F32, &[8, 32], &with_zeros),
        T::float("allzero.weight", Dtype::F16, &[4, 8], &[0.0; 32]),
    ];
    let base = gaussian(256, 1.0, 10);
    for (name, s) in names.iter().zip(scales) {
        let v: Vec<f32> = base.iter().map(|x| x * s).collect();
        tensors.push(T::float(name, Dtype::F32, &[8, 32], &v));
    }
    write_model(&input, &tensors);
    let (model, c) = compress_path(&input, Config::FOUR_BIT, &Selection::default());
    assert_eq!(c.entries.len(), 6);
    let z = &c.entries[0];
    let recon = z.tensor().reconstruct();
    assert!(
        recon[64..128].iter().all(|&x| x == 0.0),
        "zero blocks stay zero"
    );
    assert!(c.reports[0].relmse < 0.05);
    let allzero = c
        .entries
        .iter()
        .find(|e| e.head.name == "allzero.weight")
        .unwrap();
    assert!(allzero.tensor().reconstruct().iter().all(|&x| x == 0.0));
    let mut e_bases = Vec::new();
    for name in names {
        let r = c.reports.iter().find(|r| r.name == name).unwrap();
        assert!(r.relmse < 0.05, "{name}: relmse {}", r.relmse);
        e_bases.push(
            c.entries
                .iter()
                .find(|e| e.head.name == name)
                .unwrap()
                .head
                .e_base,
        );
    }
    assert!(
        e_bases.windows(2).all(|w| w[0] < w[1]),
        "e_base follows scale: {e_bases:?}"
    );
    let packed = dir.path().join("p.seedlm");
    write_compressed(&model, &c, &packed).unwrap();
    check_round_trip(
        &model,
        &c,
        &packed,
        &dir.path().join("out.safetensors"),
        None,
    );
}

#[test]
fn sharded_directory_in_gives_directory_out() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    let mut tensors = small_model();
    let second = tensors.split_off(2);
    write_model(&src.join("model-00001-of-00002.safetensors"), &tensors);
    write_model(&src.join("model-00002-of-00002.safetensors"), &second);
    let mut map = serde_json::Map::new();
    for t in &tensors {
        map.insert(t.name.into(), "model-00001-of-00002.safetensors".into());
    }
    for t in &second {
        map.insert(t.name.into(), "model-00002-of-00002.safetensors".into());
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(src.join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::write(src.join("config.json"), "{\"model_type\": \"toy\"}").unwrap();
    std::fs::write(src.join("tokenizer.json"), "{}").unwrap();

    let (model, c) = compress_path(&src, Config::FOUR_BIT, &Selection::default());
    assert_eq!(model.files().len(), 2);
    assert_eq!(c.entries.len(), 2);
    let out = dir.path().join("packed");
    let file = write_compressed(&model, &c, &out).unwrap();
    assert_eq!(file, out.join("model.safetensors"));
    assert_eq!(
        listing(&out),
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    // config.json is marked as SeedLM-packed and keeps the original to restore it.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "toy");
    assert_eq!(
        config["seedlm"]["original_config"],
        "{\"model_type\": \"toy\"}"
    );
    // The packed directory opens as a packed model; decompressing it matches reconstruct().
    check_round_trip(
        &model,
        &c,
        &out,
        &dir.path().join("plain.safetensors"),
        None,
    );
}

/// Weights at the top of their dtype's range (F16 65504, BF16 and F32 about 3.4e38) compress
/// into files that decode: the encoder never picks a code whose reconstruction the dtype cannot
/// hold, and the reconstruction stays close (the search still minimises the error among the
/// codes that fit).
#[test]
fn weights_at_the_edge_of_their_dtype_compress_into_files_that_decode() {
    use crate::helpers::{run, s, text};
    let dir = tempfile::tempdir().unwrap();
    let n = 64 * 64;
    let with_one = |v: f32| {
        let mut g = gaussian(n, 1.0, 17);
        g[100] = v;
        g
    };
    let alternating =
        |v: f32| -> Vec<f32> { (0..n).map(|i| if i % 2 == 0 { v } else { -v }).collect() };
    let bf16_max = half::bf16::MAX.to_f32();
    let cases: Vec<(&str, Dtype, Vec<f32>)> = vec![
        ("f16-outlier", Dtype::F16, with_one(65000.0)),
        ("f16-constant", Dtype::F16, vec![65000.0; n]),
        ("f16-alternating", Dtype::F16, alternating(65504.0)),
        ("bf16-outlier", Dtype::BF16, with_one(3.3e38)),
        ("bf16-constant", Dtype::BF16, vec![bf16_max; n]),
        ("bf16-alternating", Dtype::BF16, alternating(bf16_max)),
        ("f32-alternating", Dtype::F32, alternating(f32::MAX)),
    ];
    for (name, dt, values) in cases {
        let input = dir.path().join(format!("{name}.safetensors"));
        let stored = dtype::to_f32(dt, &dtype::from_f32(dt, &values).unwrap()).unwrap();
        write_model(&input, &[T::float("w.weight", dt, &[64, 64], &values)]);
        for bits in ["4", "3"] {
            let what = format!("{name} at {bits} bits");
            let packed = dir.path().join(format!("{name}-{bits}.seedlm"));
            let plain = dir.path().join(format!("{name}-{bits}.safetensors"));
            let o = run(&["compress", s(&input), "-o", s(&packed), "--bits", bits]);
            assert!(o.status.success(), "{what}: {}", text(&o.stderr));
            let o = run(&["inspect", s(&packed)]);
            assert!(o.status.success(), "{what}: inspect: {}", text(&o.stderr));
            let o = run(&["decompress", s(&packed), "-o", s(&plain)]);
            assert!(
                o.status.success(),
                "{what}: decompress: {}",
                text(&o.stderr)
            );
            let m = Model::open(&plain).unwrap();
            let got = m.to_f32(m.get("w.weight").unwrap()).unwrap();
            let (mut err, mut norm) = (0.0f64, 0.0f64);
            for (&a, &b) in stored.iter().zip(&got) {
                assert!(b.is_finite() && dtype::fits(dt, b), "{what}: {b}");
                // Relative to the largest weight, so that f32::MAX squares stay finite.
                let (a, b) = (f64::from(a) / 1e30, f64::from(b) / 1e30);
                err += (a - b) * (a - b);
                norm += a * a;
            }
            assert!(err / norm < 0.05, "{what}: relative MSE {}", err / norm);
        }
    }
}

/// A plain input whose header is exactly at the readers' limit is readable, but its packed
/// header (with the format's keys added) would be over it: compress refuses to write a file no
/// reader opens.
#[test]
fn a_packed_header_over_the_readers_limit_is_not_written() {
    use crate::helpers::{fails, s};
    use seedlm::io::container::MAX_HEADER_LEN;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big-header.safetensors");
    let entry = r#""w":{"dtype":"F32","shape":[2,8],"data_offsets":[0,64]}"#;
    let frame = format!(r#"{{"__metadata__":{{"pad":""}},{entry}}}"#);
    let pad = "x".repeat(MAX_HEADER_LEN as usize - frame.len());
    let header = format!(r#"{{"__metadata__":{{"pad":"{pad}"}},{entry}}}"#);
    assert_eq!(header.len() as u64, MAX_HEADER_LEN);
    let mut bytes = MAX_HEADER_LEN.to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(gaussian(16, 1.0, 3).iter().flat_map(|x| x.to_le_bytes()));
    std::fs::write(&input, bytes).unwrap();
    assert!(Model::open(&input).is_ok(), "the input is readable");
    let out = dir.path().join("out.seedlm");
    let err = fails(&["compress", s(&input), "-o", s(&out)]);
    assert!(
        err.contains("out.seedlm") && err.contains("100000000-byte limit"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), ["big-header.safetensors"]);
}
