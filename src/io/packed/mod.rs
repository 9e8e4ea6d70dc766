//! The packed file: a valid safetensors file holding SeedLM-compressed tensors (FORMAT.md).
//!
//! Each compressed tensor is stored under its original name as a 1-D U8 tensor of block records,
//! K + 4 + 4P bits each, back to back in a little-endian bit stream; its original shape, dtype,
//! configuration, exponent base, block count and CRC32 live in `__metadata__`. Every other
//! tensor is stored unchanged. From version 2 each tensor's metadata carries a CRC-32 of its
//! canonical form and the file one over every header entry, metadata value and tensor's bytes,
//! so that no single edit of a packed file decodes to a different model.
//!
//! One file per concern: `records` (the block records), `meta` (a tensor's metadata and the
//! canonical forms the checksums cover), `calibration` (the calibration record), `write` and
//! `read`; the format's metadata keys are here.

mod calibration;
mod meta;
mod read;
mod records;
mod write;

#[cfg(test)]
mod tests;

pub use calibration::CalibrationRecord;
pub use meta::{MAX_ABS_E_BASE, PackedMeta, StoredTensor, file_canonical, file_checksum};
pub use read::{
    DataCheck, MAX_RELMSE, PackedModel, PackedTensor, is_packed, packed_file_path, plausible_relmse,
};
pub use records::{
    check_packed, decode_range, decode_record, encode_record, pack_blocks, pack_records,
    packed_len, unpack_blocks,
};
pub use write::{
    CompressedEntry, CompressedHead, PackedOut, PlainEntry, write_checksummed, write_packed,
    write_packed_out,
};

/// `__metadata__` key marking a packed file; its value is [`FORMAT_NAME`].
pub const KEY_FORMAT: &str = "seedlm.format";
/// Value of [`KEY_FORMAT`].
pub const FORMAT_NAME: &str = "seedlm-packed";
/// `__metadata__` key of the format version (decimal).
pub const KEY_VERSION: &str = "seedlm.version";
/// The format version this build writes.
pub const FORMAT_VERSION: u32 = 2;
/// The versions this build reads: 1 (no metadata checksums) and 2.
pub const READ_VERSIONS: [u32; 2] = [1, 2];
/// `__metadata__` key of the file checksum (version 2): the CRC-32, in decimal, of the file's
/// canonical content ([`file_canonical`]).
pub const KEY_CHECKSUM: &str = "seedlm.checksum";
/// `__metadata__` key of the tensor order of the source model (a JSON array of names).
pub const KEY_ORDER: &str = "seedlm.order";
/// `__metadata__` key saying how the search was steered, when it was not data-free: a JSON
/// object `{"mode": "activation-diagonal", "text": NAME, "sha256": HEX, "tensors": [NAMES]}`
/// ([`CalibrationRecord`], `seedlm compress --calibrate`). Informational: the decoder does not
/// read it.
pub const KEY_CALIBRATION: &str = "seedlm.calibration";
/// Prefix of the per-tensor `__metadata__` keys; the rest of the key is the tensor name.
pub const KEY_TENSOR_PREFIX: &str = "seedlm.tensor.";
/// Key of the bit allocation that chose each tensor's configuration (`compress --target-bpw`),
/// a JSON object; informative only, the per-tensor metadata is what decodes.
pub const KEY_ALLOCATION: &str = "seedlm.allocation";
/// The `seedlm.*` metadata keys a packed file may hold besides the per-tensor ones.
const KNOWN_KEYS: [&str; 6] = [
    KEY_FORMAT,
    KEY_VERSION,
    KEY_CHECKSUM,
    KEY_ORDER,
    KEY_CALIBRATION,
    KEY_ALLOCATION,
];
