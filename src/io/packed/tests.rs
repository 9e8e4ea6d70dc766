//! The packed format's tests: record layouts, and forged files the reader refuses.

use super::*;
use crate::core::config::{Config, MAX_P};
use crate::io::container::{MappedSafetensors, OutTensor, Payload, write_atomic};
use crate::io::dtype::Dtype;
use crate::search::compress::{BlockCode, CompressedTensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn code(seed: u32, e: u8, q: &[i8]) -> BlockCode {
    let mut c = BlockCode {
        seed,
        e_code: e,
        q: [0; MAX_P],
    };
    c.q[..q.len()].copy_from_slice(q);
    c
}

#[test]
fn four_bit_record_is_the_fixed_u32_layout() {
    let c = code(0xACE1, 9, &[-8, 7, -1]);
    let r = encode_record(&c, Config::FOUR_BIT);
    // Nibbles from the top: q2=-1 (f), q1=7, q0=-8 (8), E=9, then seed ACE1.
    assert_eq!(r, 0xF789_ACE1);
    assert_eq!(decode_record(r, Config::FOUR_BIT), c);
}

#[test]
fn three_bit_records_pack_to_36_bits() {
    let cfg = Config::THREE_BIT;
    let blocks: Vec<BlockCode> = (0..5)
        .map(|i| code(1 + i * 4099, (i % 16) as u8, &[i as i8 - 3, -8, 7, 2]))
        .collect();
    let t = CompressedTensor {
        config: cfg,
        e_base: -7,
        len: 60,
        blocks: blocks.clone(),
    };
    let bytes = pack_blocks(&t);
    assert_eq!(bytes.len(), (5 * 36usize).div_ceil(8));
    assert_eq!(unpack_blocks(&bytes, cfg, 5).unwrap(), blocks);
    // Record 1 starts at bit 36: low nibble of byte 4 is the top of record 0.
    assert_eq!(
        u32::from(bytes[4] >> 4) | u32::from(bytes[5]) << 4,
        blocks[1].seed & 0xfff
    );
    assert!(unpack_blocks(&bytes[..bytes.len() - 1], cfg, 5).is_err());
    let zero_seed = pack_blocks(&CompressedTensor {
        blocks: vec![code(0, 0, &[])],
        len: 12,
        ..t
    });
    assert!(
        unpack_blocks(&zero_seed, cfg, 1)
            .unwrap_err()
            .contains("seed 0")
    );
}

type Forge = Box<dyn FnOnce(&mut PackedMeta, &mut Vec<u8>)>;

/// A 16-weight tensor of two 4-bit records, the second at the top exponent code.
fn two_blocks(e_base: i32) -> CompressedTensor {
    CompressedTensor {
        config: Config::FOUR_BIT,
        e_base,
        len: 16,
        blocks: vec![code(5, 3, &[1, -2, 3]), code(77, 15, &[-8, 7, 0])],
    }
}

/// Writes a one-tensor packed file and lets `forge` edit its metadata and packed bytes.
/// With `reseal`, the forger also recomputes both metadata checksums, as a buggy writer
/// would, so the other checks are what refuses it.
fn forge_file(
    reseal: bool,
    forge: impl FnOnce(&mut PackedMeta, &mut Vec<u8>),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.seedlm");
    let t = two_blocks(-10);
    let e = CompressedEntry::new("w", &[2, 8], Dtype::F16, &t, Some(0.01));
    write_packed(
        &path,
        std::slice::from_ref(&e),
        &[],
        &["w".into()],
        &BTreeMap::new(),
    )
    .unwrap();
    let good = PackedModel::open(&path).unwrap();
    assert_eq!(good.version(), FORMAT_VERSION);
    assert_eq!(good.compressed(good.get("w").unwrap()).unwrap().unwrap(), t);
    drop(good);
    let file = MappedSafetensors::open(&path).unwrap();
    let mut meta = file.metadata().clone();
    let key = format!("{KEY_TENSOR_PREFIX}w");
    let mut m: PackedMeta = serde_json::from_str(&meta[&key]).unwrap();
    let mut bytes = file.bytes(&file.tensors()[0]).to_vec();
    drop(file);
    forge(&mut m, &mut bytes);
    if reseal {
        m.meta_crc32 = Some(crc32fast::hash(&m.canonical()));
    }
    meta.insert(key, serde_json::to_string(&m).unwrap());
    if reseal {
        seal(&mut meta, &bytes);
    }
    rewrite(&path, meta, bytes);
    (dir, path)
}

/// Recomputes the file checksum of a one-tensor file `w` holding `bytes`.
fn seal(meta: &mut BTreeMap<String, String>, bytes: &[u8]) {
    let shape = [bytes.len()];
    let mut st = [StoredTensor {
        name: "w",
        dtype: Dtype::U8,
        shape: &shape,
        crc32: crc32fast::hash(bytes),
    }];
    let sum = crc32fast::hash(&file_canonical(&mut st, meta));
    meta.insert(KEY_CHECKSUM.into(), sum.to_string());
}

/// Writes the one-tensor file `w` anew.
fn rewrite(path: &Path, meta: BTreeMap<String, String>, bytes: Vec<u8>) {
    let out = vec![OutTensor {
        name: "w".into(),
        dtype: Dtype::U8,
        shape: vec![bytes.len()],
        data: Payload::Owned(bytes),
    }];
    write_atomic(path, out, &meta).unwrap();
}

/// What FORMAT.md §1–§2 allow and the reader once took anyway: a tensor's metadata as an
/// array of its fields, and a `seedlm.*` key it does not know (dropped on decompression).
/// Both are refused, sealed as a writer would seal them (issue 23, item 19).
#[test]
fn metadata_arrays_and_unknown_format_keys_are_refused() {
    type Edit = fn(&mut BTreeMap<String, String>);
    let edits: [(&str, Edit); 2] = [
        ("not a JSON object", |meta| {
            let key = format!("{KEY_TENSOR_PREFIX}w");
            let m: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&meta[&key]).unwrap();
            let fields: Vec<_> = m.into_iter().map(|(_, v)| v).collect();
            meta.insert(key, serde_json::to_string(&fields).unwrap());
        }),
        (
            "unknown packed-format metadata key 'seedlm.extra'",
            |meta| {
                meta.insert("seedlm.extra".into(), "1".into());
            },
        ),
    ];
    for (want, edit) in edits {
        let (_dir, path) = forge_file(true, |_, _| {});
        let file = MappedSafetensors::open(&path).unwrap();
        let mut meta = file.metadata().clone();
        let bytes = file.bytes(&file.tensors()[0]).to_vec();
        drop(file);
        edit(&mut meta);
        seal(&mut meta, &bytes);
        rewrite(&path, meta, bytes);
        let err = PackedModel::open(&path).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains("forged.seedlm"), "{err}");
    }
}

/// The error opening a file [`forge_file`] forged gives.
fn open_forged(reseal: bool, forge: impl FnOnce(&mut PackedMeta, &mut Vec<u8>)) -> String {
    let (_dir, path) = forge_file(reseal, forge);
    let err = PackedModel::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("forged.seedlm") && (err.contains("'w'") || err.contains("file checksum")),
        "{err}"
    );
    err
}

#[test]
fn metadata_edits_are_caught_by_the_checksums() {
    // Same block count, one weight fewer: only the metadata checksum can tell.
    let err = open_forged(false, |m, _| m.shape = vec![15]);
    assert!(err.contains("metadata checksum"), "{err}");
    let err = open_forged(false, |m, _| m.relmse = Some(0.5));
    assert!(err.contains("metadata checksum"), "{err}");
    // A consistent tensor entry whose data changed with its CRC: the file checksum.
    let err = open_forged(false, |m, b| {
        b[0] ^= 4;
        m.crc32 = crc32fast::hash(b);
        m.meta_crc32 = Some(crc32fast::hash(&m.canonical()));
    });
    assert!(err.contains("file checksum"), "{err}");
}

#[test]
fn a_header_open_reads_no_data_and_checks_a_tensor_when_it_is_read() {
    // One flipped bit of data: the full open refuses the file; the header open does not
    // look at the data, and reading the tensor fails naming file, tensor and reason.
    let (_dir, path) = forge_file(false, |_, b| b[0] ^= 4);
    let err = PackedModel::open(&path).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch: CRC32"), "{err}");
    let p = PackedModel::open_headers(&path).unwrap();
    let w = p.get("w").unwrap();
    for _ in 0..2 {
        let err = p.compressed(w).unwrap().unwrap_err().to_string();
        assert!(
            err.contains("forged.seedlm")
                && err.contains("'w'")
                && err.contains("checksum mismatch: CRC32"),
            "{err}"
        );
    }
    // Records that reconstruct out of F16's range are refused when read, too.
    let (_dir, path) = forge_file(true, |m, _| m.e_base = 5);
    let p = PackedModel::open_headers(&path).unwrap();
    let err = p.compressed(p.get("w").unwrap()).unwrap().unwrap_err();
    assert!(err.to_string().contains("not finite in F16"), "{err}");
    // The metadata is still checked at open.
    let (_dir, path) = forge_file(false, |m, _| m.shape = vec![15]);
    let err = PackedModel::open_headers(&path).unwrap_err().to_string();
    assert!(err.contains("metadata checksum"), "{err}");
    // An intact file reads the same either way.
    let (_dir, path) = forge_file(false, |_, _| {});
    let (lazy, full) = (
        PackedModel::open_headers(&path).unwrap(),
        PackedModel::open(&path).unwrap(),
    );
    let (a, b) = (lazy.get("w").unwrap(), full.get("w").unwrap());
    assert_eq!(
        lazy.compressed(a).unwrap().unwrap(),
        full.compressed(b).unwrap().unwrap()
    );
}

#[test]
fn reconstructions_must_be_finite_in_the_dtype() {
    // Code 15 with q = [-8, 7, 0]: |ŵ| reaches about 8·2^(e_base+15); F16 ends at 65504.
    let err = open_forged(true, |m, _| m.e_base = 5);
    assert!(err.contains("not finite in F16"), "{err}");
    let err = open_forged(true, |m, _| m.e_base = 1000);
    assert!(err.contains("not finite"), "{err}");
    // F32 holds the same records at e_base 5 (and the bound alone would not refuse it).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f32.seedlm");
    let t = two_blocks(5);
    let e = CompressedEntry::new("w", &[2, 8], Dtype::F32, &t, None);
    write_packed(&path, &[e], &[], &["w".into()], &BTreeMap::new()).unwrap();
    assert!(PackedModel::open(&path).is_ok());
}

#[test]
fn version_1_files_without_checksums_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.seedlm");
    let t = two_blocks(-10);
    let e = CompressedEntry::new("w", &[2, 8], Dtype::F16, &t, Some(0.01));
    write_packed(&path, &[e], &[], &["w".into()], &BTreeMap::new()).unwrap();
    let file = MappedSafetensors::open(&path).unwrap();
    let mut meta = file.metadata().clone();
    let bytes = file.bytes(&file.tensors()[0]).to_vec();
    drop(file);
    let key = format!("{KEY_TENSOR_PREFIX}w");
    let mut m: PackedMeta = serde_json::from_str(&meta[&key]).unwrap();
    m.meta_crc32 = None;
    meta.insert(key, serde_json::to_string(&m).unwrap());
    meta.insert(KEY_VERSION.into(), "1".into());
    let checksum = meta.remove(KEY_CHECKSUM).unwrap();
    let write = |meta: &BTreeMap<String, String>| {
        let out = vec![OutTensor {
            name: "w".into(),
            dtype: Dtype::U8,
            shape: vec![bytes.len()],
            data: Payload::Bytes(&bytes),
        }];
        write_atomic(&path, out, meta).unwrap();
    };
    write(&meta);
    let v1 = PackedModel::open(&path).unwrap();
    assert_eq!(v1.version(), 1);
    assert_eq!(v1.compressed(v1.get("w").unwrap()).unwrap().unwrap(), t);
    drop(v1);
    // A checksum in a version 1 file means the version field was damaged.
    meta.insert(KEY_CHECKSUM.into(), checksum);
    write(&meta);
    let err = PackedModel::open(&path).unwrap_err().to_string();
    assert!(err.contains("version 1 files do not have"), "{err}");
}

#[test]
fn the_order_lists_exactly_the_file_s_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.seedlm");
    let data = [1u8, 2];
    let plain = [PlainEntry {
        name: "x".into(),
        shape: vec![2],
        dtype: Dtype::U8,
        data: &data,
    }];
    let none = BTreeMap::new();
    for (order, want) in [
        (
            vec!["x", "ghost"],
            "'ghost': is listed in seedlm.order but not in the file",
        ),
        (vec![], "'x': is in the file but not listed"),
        (vec!["x", "x"], "listed twice"),
    ] {
        let order: Vec<String> = order.into_iter().map(String::from).collect();
        write_packed(&path, &[], &plain, &order, &none).unwrap();
        let err = PackedModel::open(&path).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    write_packed(&path, &[], &plain, &["x".into()], &none).unwrap();
    assert!(PackedModel::open(&path).is_ok());
}

#[test]
fn padding_bits_must_be_zero() {
    let cfg = Config::THREE_BIT;
    let t = CompressedTensor {
        config: cfg,
        e_base: -7,
        len: 12,
        blocks: vec![code(9, 1, &[1, 2, 3, 4])],
    };
    let mut bytes = pack_blocks(&t);
    assert_eq!(bytes.len(), 5, "36 bits: 4 unused in the last byte");
    assert!(unpack_blocks(&bytes, cfg, 1).is_ok());
    bytes[4] |= 0x10;
    let err = unpack_blocks(&bytes, cfg, 1).unwrap_err();
    assert!(err.contains("unused high 4 bits"), "{err}");
}

#[test]
fn forged_metadata_is_refused_without_panicking() {
    let cases: Vec<(Forge, &str)> = vec![
        (Box::new(|m, _| m.shape = vec![1 << 62, 1 << 10]), "shape"),
        (Box::new(|m, _| m.shape = vec![usize::MAX / 2, 2]), "blocks"),
        (Box::new(|m, _| m.blocks = 3), "blocks"),
        (Box::new(|m, _| m.c = 0), "C=0"),
        (Box::new(|m, _| m.k = 30), "K=30"),
        (Box::new(|m, _| m.e_base = i32::MIN), "e_base"),
        (Box::new(|m, _| m.name = "v".into()), "names tensor 'v'"),
        (Box::new(|m, _| m.dtype = "I8".into()), "dtype"),
        (Box::new(|m, _| m.relmse = Some(-1.0)), "relative MSE -1"),
        (Box::new(|m, _| m.relmse = Some(1e308)), "1e308 is outside"),
        (Box::new(|m, _| m.relmse = Some(100.5)), "outside [0, 100]"),
        (Box::new(|m, _| m.crc32 ^= 1), "checksum"),
        (Box::new(|_, b| b.push(0)), "truncated or corrupt"),
        (
            Box::new(|m, b| {
                b[0] = 0;
                b[1] = 0;
                m.crc32 = crc32fast::hash(b);
            }),
            "seed 0",
        ),
    ];
    for (forge, want) in cases {
        let err = open_forged(true, forge);
        assert!(err.contains(want), "wanted '{want}' in: {err}");
    }
}
