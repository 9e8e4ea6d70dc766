//! Random but valid SeedLM records: the weights of the speed measurements ([`super::bench`])
//! and of the kernels' tests (the kernels' work does not depend on the values).

use crate::core::config::{Config, MAX_P};
use crate::io::packed::{PackedMeta, encode_record, pack_records};
use crate::search::compress::BlockCode;
use rand::{Rng, SeedableRng};

/// `n` random block codes of `cfg` (valid seeds, any exponent and coefficients).
pub fn random_codes(cfg: Config, n: usize, seed: u64) -> Vec<BlockCode> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut q = [0i8; MAX_P];
            q[..cfg.p]
                .iter_mut()
                .for_each(|v| *v = rng.random_range(-8..=7));
            BlockCode {
                seed: rng.random_range(1..1u32 << cfg.k),
                e_code: rng.random_range(0..16),
                q,
            }
        })
        .collect()
}

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
