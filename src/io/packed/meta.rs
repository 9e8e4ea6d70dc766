//! What a packed file records of a compressed tensor ([`PackedMeta`]), and the canonical
//! forms its checksums cover (FORMAT.md §1–§2).

use super::KEY_CHECKSUM;
use crate::core::config::Config;
use crate::io::dtype::Dtype;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest |e_base| accepted from a file.
pub const MAX_ABS_E_BASE: i32 = 1000;

/// Per-tensor metadata of a compressed tensor (a JSON object in `__metadata__`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackedMeta {
    /// Original tensor name.
    pub name: String,
    /// Original shape.
    pub shape: Vec<usize>,
    /// Original dtype name (`F32`, `F16` or `BF16`).
    pub dtype: String,
    /// Block size C.
    pub c: usize,
    /// Coefficients per block P.
    pub p: usize,
    /// LFSR length K.
    pub k: u32,
    /// Exponent of code E = 0.
    pub e_base: i32,
    /// Number of block records.
    pub blocks: usize,
    /// CRC-32 (IEEE) of the packed bytes.
    pub crc32: u32,
    /// Relative MSE measured when compressing, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relmse: Option<f64>,
    /// CRC-32 of [`PackedMeta::canonical`] (version 2; absent in version 1 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_crc32: Option<u32>,
}

/// Appends one field of a canonical form: its byte length in decimal, `:`, then the bytes.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{}:", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// A shape as a canonical field value: the dimensions in decimal, joined by commas.
fn shape_field(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl PackedMeta {
    /// The canonical form of every field but `meta_crc32` (FORMAT.md §2): the fields `name`,
    /// `shape`, `dtype`, `c`, `p`, `k`, `e_base`, `blocks`, `crc32` and `relmse` (its IEEE-754
    /// bits as 16 lower-case hex digits, empty when absent), each as a length-prefixed field.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, self.name.as_bytes());
        field(&mut out, shape_field(&self.shape).as_bytes());
        for v in [
            self.dtype.clone(),
            self.c.to_string(),
            self.p.to_string(),
            self.k.to_string(),
            self.e_base.to_string(),
            self.blocks.to_string(),
            self.crc32.to_string(),
            self.relmse
                .map_or(String::new(), |r| format!("{:016x}", r.to_bits())),
        ] {
            field(&mut out, v.as_bytes());
        }
        out
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        Config {
            c: self.c,
            p: self.p,
            k: self.k,
        }
    }
}

/// One tensor as the file checksum sees it: name, stored dtype and shape, CRC-32 of its bytes.
pub struct StoredTensor<'a> {
    /// Name in the file.
    pub name: &'a str,
    /// Stored dtype (`U8` for a packed tensor).
    pub dtype: Dtype,
    /// Stored shape.
    pub shape: &'a [usize],
    /// CRC-32 of the stored bytes.
    pub crc32: u32,
}

/// The canonical content of a packed file that [`KEY_CHECKSUM`] protects (FORMAT.md §1): for
/// each tensor in byte order of its name the fields name, dtype, shape and the CRC-32 of its
/// bytes; then for each `__metadata__` key but [`KEY_CHECKSUM`], in byte order, key and value.
/// Data offsets are left out: the data section is contiguous and each tensor's bytes are bound
/// to its name by their CRC, so no other valid layout decodes differently.
pub fn file_canonical(
    tensors: &mut [StoredTensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    tensors.sort_by(|a, b| a.name.cmp(b.name));
    let mut out = Vec::new();
    for t in tensors.iter() {
        field(&mut out, t.name.as_bytes());
        field(&mut out, t.dtype.to_string().as_bytes());
        field(&mut out, shape_field(t.shape).as_bytes());
        field(&mut out, t.crc32.to_string().as_bytes());
    }
    for (k, v) in metadata.iter().filter(|(k, _)| *k != KEY_CHECKSUM) {
        field(&mut out, k.as_bytes());
        field(&mut out, v.as_bytes());
    }
    out
}

/// The file checksum ([`KEY_CHECKSUM`]) of `tensors` and `metadata`: the CRC-32 of their
/// [`file_canonical`] form.
pub fn file_checksum<'a>(
    tensors: impl IntoIterator<Item = StoredTensor<'a>>,
    metadata: &BTreeMap<String, String>,
) -> u32 {
    let mut stored: Vec<StoredTensor<'a>> = tensors.into_iter().collect();
    crc32fast::hash(&file_canonical(&mut stored, metadata))
}
