//! Writing packed files: the tensors to write, their metadata and the file checksum, atomically.

use super::records::records;
use super::{
    FORMAT_NAME, FORMAT_VERSION, KEY_ALLOCATION, KEY_CALIBRATION, KEY_CHECKSUM, KEY_FORMAT,
    KEY_ORDER, KEY_TENSOR_PREFIX, KEY_VERSION, PackedMeta, StoredTensor, file_checksum,
    pack_blocks, packed_len, plausible_relmse,
};
use crate::core::config::Config;
use crate::io::container::{OutTensor, Payload, write_atomic};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::search::compress::CompressedTensor;
use std::collections::BTreeMap;
use std::path::Path;

/// What a packed file records of a compressed tensor besides its records and their CRC.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressedHead {
    /// Original name.
    pub name: String,
    /// Original shape.
    pub shape: Vec<usize>,
    /// Original dtype (F32, F16 or BF16).
    pub dtype: Dtype,
    /// Configuration.
    pub config: Config,
    /// Exponent of code E = 0.
    pub e_base: i32,
    /// Number of blocks.
    pub blocks: usize,
    /// Relative MSE measured when compressing.
    pub relmse: Option<f64>,
}

impl CompressedHead {
    /// Number of original weights.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no weights.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A compressed tensor to write, held packed (K + 4 + 4P bits a block) so that a whole model's
/// worth of them costs no more memory than the output file.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressedEntry {
    /// What the file records of it.
    pub head: CompressedHead,
    /// The packed records.
    pub packed: Vec<u8>,
}

impl CompressedEntry {
    /// Packs `tensor`, the compressed form of a tensor of `shape` and `dtype`.
    pub fn new(
        name: &str,
        shape: &[usize],
        dtype: Dtype,
        tensor: &CompressedTensor,
        relmse: Option<f64>,
    ) -> Self {
        CompressedEntry {
            head: CompressedHead {
                name: name.to_string(),
                shape: shape.to_vec(),
                dtype,
                config: tensor.config,
                e_base: tensor.e_base,
                blocks: tensor.blocks.len(),
                relmse,
            },
            packed: pack_blocks(tensor),
        }
    }

    /// The compressed tensor, unpacked.
    pub fn tensor(&self) -> CompressedTensor {
        let h = &self.head;
        CompressedTensor {
            config: h.config,
            e_base: h.e_base,
            len: h.len(),
            blocks: records(&self.packed, h.config, 0..h.blocks).collect(),
        }
    }

    /// The entry as a tensor to write, its records borrowed.
    pub fn out(&self) -> PackedOut<'_> {
        PackedOut {
            head: self.head.clone(),
            crc32: crc32fast::hash(&self.packed),
            records: Payload::Bytes(&self.packed),
        }
    }
}

/// A tensor stored as it was.
#[derive(Clone, Debug)]
pub struct PlainEntry<'a> {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Dtype.
    pub dtype: Dtype,
    /// Raw little-endian bytes.
    pub data: &'a [u8],
}

/// A compressed tensor to write: the fields its metadata records, and its packed records.
pub struct PackedOut<'a> {
    /// What the file records of it.
    pub head: CompressedHead,
    /// CRC-32 of the packed records.
    pub crc32: u32,
    /// The packed records, [`packed_len`] bytes (checked while written).
    pub records: Payload<'a>,
}

/// Writes a packed file atomically. `order` is the source model's tensor order (kept for
/// listings); `metadata` is the source's `__metadata__`, carried along.
pub fn write_packed(
    path: &Path,
    compressed: &[CompressedEntry],
    plain: &[PlainEntry<'_>],
    order: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let out = compressed.iter().map(CompressedEntry::out).collect();
    write_packed_out(path, out, plain, order, metadata)
}

/// [`write_packed`] with each compressed tensor's header fields given and its records written
/// as they come (a merge streams them from the shard parts).
pub fn write_packed_out(
    path: &Path,
    compressed: Vec<PackedOut<'_>>,
    plain: &[PlainEntry<'_>],
    order: &[String],
    metadata: &BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let mut meta: BTreeMap<String, String> = metadata
        .iter()
        // How the codes were chosen is kept; the source's own seedlm.* keys are not.
        .filter(|(k, _)| {
            !k.starts_with("seedlm.") || [KEY_CALIBRATION, KEY_ALLOCATION].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    meta.insert(KEY_FORMAT.into(), FORMAT_NAME.into());
    meta.insert(KEY_VERSION.into(), FORMAT_VERSION.to_string());
    meta.insert(KEY_ORDER.into(), serde_json::json!(order).to_string());
    let mut out = Vec::with_capacity(compressed.len() + plain.len());
    let mut crcs = Vec::with_capacity(compressed.len() + plain.len());
    for PackedOut {
        head: h,
        crc32,
        records,
    } in compressed
    {
        let cfg = h.config;
        if h.blocks != h.len().div_ceil(cfg.c) || !dtype::is_float(h.dtype) {
            return Err(ModelError::tensor(
                path,
                &h.name,
                "shape, dtype or packed size does not match the compressed tensor",
            ));
        }
        let mut m = PackedMeta {
            name: h.name.clone(),
            shape: h.shape,
            dtype: h.dtype.to_string(),
            c: cfg.c,
            p: cfg.p,
            k: cfg.k,
            e_base: h.e_base,
            blocks: h.blocks,
            crc32,
            // A figure the reader would refuse is left out rather than written.
            relmse: h.relmse.filter(|&r| plausible_relmse(r)),
            meta_crc32: None,
        };
        m.meta_crc32 = Some(crc32fast::hash(&m.canonical()));
        meta.insert(
            format!("{KEY_TENSOR_PREFIX}{}", h.name),
            serde_json::to_string(&m).expect("plain struct serializes"),
        );
        crcs.push(crc32);
        out.push(OutTensor {
            name: h.name,
            dtype: Dtype::U8,
            shape: vec![packed_len(cfg, h.blocks)],
            data: records,
        });
    }
    for p in plain {
        crcs.push(crc32fast::hash(p.data));
        out.push(OutTensor {
            name: p.name.clone(),
            dtype: p.dtype,
            shape: p.shape.clone(),
            data: Payload::Bytes(p.data),
        });
    }
    write_checksummed(path, out, crcs, meta)
}

/// Writes `tensors` (whose data have the CRC-32s `crcs`) and `meta` atomically, sealed with
/// [`KEY_CHECKSUM`]: the file checksum of FORMAT.md §1 over every tensor's name, shape and
/// CRC-32 and every metadata key and value. Packed files, shard parts and pieces are written
/// this way.
pub fn write_checksummed(
    path: &Path,
    tensors: Vec<OutTensor<'_>>,
    crcs: Vec<u32>,
    mut meta: BTreeMap<String, String>,
) -> Result<(), ModelError> {
    let stored = tensors.iter().zip(crcs).map(|(t, crc32)| StoredTensor {
        name: &t.name,
        dtype: t.dtype,
        shape: &t.shape,
        crc32,
    });
    let checksum = file_checksum(stored, &meta);
    meta.insert(KEY_CHECKSUM.into(), checksum.to_string());
    write_atomic(path, tensors, &meta)
}
