//! Random but valid SeedLM records: the weights of the speed measurements ([`super::bench`])
//! and of the kernels' tests (the kernels' work does not depend on the values).

use crate::core::config::Config;
use crate::io::packed::{PackedMeta, encode_record, pack_records};
use crate::search::compress::BlockCode;
pub use crate::search::compress::random_codes;

/// The metadata and records of a `rows × cols` tensor of `codes`, exponent base `e_base`.
pub fn packed_tensor(
    cfg: Config,
    rows: usize,
    cols: usize,
    e_base: i32,
    codes: &[BlockCode],
) -> (PackedMeta, Vec<u8>) {
    let records = pack_records(codes.iter().map(|b| encode_record(b, cfg)), cfg);
    let meta = PackedMeta {
        name: "w".into(),
        shape: vec![rows, cols],
        dtype: "F32".into(),
        c: cfg.c,
        p: cfg.p,
        k: cfg.k,
        e_base,
        blocks: codes.len(),
        crc32: crc32fast::hash(&records),
        relmse: None,
        meta_crc32: None,
    };
    (meta, records)
}
