//! Block records: one block code as K + 4 + 4P bits, packed back to back LSB first
//! (FORMAT.md §3), and their checks.

use crate::core::bits::{BitWriter, read_bits};
use crate::core::config::{Config, MAX_P};
use crate::search::compress::{BlockCode, CompressedTensor};

/// One block record as an integer: seed in bits [K−1:0], E in [K+3:K], q_j (4-bit two's
/// complement) in [K+4+4j+3 : K+4+4j].
pub fn encode_record(code: &BlockCode, cfg: Config) -> u64 {
    let mut r = u64::from(code.seed) | u64::from(code.e_code & 0xf) << cfg.k;
    for j in 0..cfg.p {
        r |= u64::from(code.q[j] as u8 & 0xf) << (cfg.k + 4 + 4 * j as u32);
    }
    r
}

/// The inverse of [`encode_record`].
pub fn decode_record(r: u64, cfg: Config) -> BlockCode {
    let mut q = [0i8; MAX_P];
    for (j, qj) in q.iter_mut().enumerate().take(cfg.p) {
        let nib = ((r >> (cfg.k + 4 + 4 * j as u32)) & 0xf) as i8;
        *qj = (nib << 4) >> 4;
    }
    BlockCode {
        seed: (r & ((1u64 << cfg.k) - 1)) as u32,
        e_code: ((r >> cfg.k) & 0xf) as u8,
        q,
    }
}

/// Bytes taken by `blocks` records of `cfg` (`usize::MAX` if that does not fit, which no
/// buffer can match).
pub fn packed_len(cfg: Config, blocks: usize) -> usize {
    let bits = blocks as u128 * u128::from(cfg.block_bits());
    usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX)
}

/// Packs the block records of `t` (unused bits of the last byte are zero).
pub fn pack_blocks(t: &CompressedTensor) -> Vec<u8> {
    pack_records(
        t.blocks.iter().map(|b| encode_record(b, t.config)),
        t.config,
    )
}

/// Packs encoded records of `cfg` back to back, LSB first, as the file stores them (unused bits
/// of the last byte are zero); the hardware's DDR stream is these bytes too.
pub fn pack_records(records: impl ExactSizeIterator<Item = u64>, cfg: Config) -> Vec<u8> {
    let bits = cfg.block_bits();
    let mut w = BitWriter::with_capacity(records.len() as u64 * u64::from(bits));
    for r in records {
        w.push(r, bits);
    }
    w.into_bytes()
}

/// Unpacks `blocks` records; fails on a wrong length or a seed outside [1, 2^K − 1].
pub fn unpack_blocks(bytes: &[u8], cfg: Config, blocks: usize) -> Result<Vec<BlockCode>, String> {
    check_packed(bytes, cfg, blocks)?;
    decode_range(bytes, cfg, 0..blocks)
}

/// Checks that `bytes` are `blocks` records of `cfg` long, with the unused bits of the last byte
/// zero.
pub fn check_packed(bytes: &[u8], cfg: Config, blocks: usize) -> Result<(), String> {
    let want = packed_len(cfg, blocks);
    if bytes.len() != want {
        return Err(format!(
            "packed data is {} bytes, {blocks} records need {want} (truncated or corrupt)",
            bytes.len()
        ));
    }
    let used = (blocks as u64 * u64::from(cfg.block_bits()) % 8) as u32;
    if used != 0 && bytes.last().is_some_and(|&b| b >> used != 0) {
        return Err(format!(
            "the unused high {} bits of the last byte are not zero (corrupt file)",
            8 - used
        ));
    }
    Ok(())
}

/// Decodes records `range` of `bytes` (checked by [`check_packed`] to hold them); fails on a
/// seed outside [1, 2^K − 1] before it allocates the codes (a forged file's bad first record
/// cost a decoded copy of the whole tensor, issue 23).
pub fn decode_range(
    bytes: &[u8],
    cfg: Config,
    range: std::ops::Range<usize>,
) -> Result<Vec<BlockCode>, String> {
    check_seeds(bytes, cfg, range.clone())?;
    Ok(records(bytes, cfg, range).collect())
}

/// Refuses a record of `range` whose seed is 0, not an LFSR state.
pub(super) fn check_seeds(
    bytes: &[u8],
    cfg: Config,
    range: std::ops::Range<usize>,
) -> Result<(), String> {
    use rayon::prelude::*;
    // Only the seed field (the low K bits of a record), in parallel chunks: decoding whole
    // records one by one took a quarter of a packed model's first prompt.
    const CHUNK: usize = 1 << 20;
    let bits = u64::from(cfg.block_bits());
    let zero = |i: usize| read_bits(bytes, i as u64 * bits, cfg.k).is_some_and(|s| s == 0);
    let first_zero = (range.start..range.end)
        .step_by(CHUNK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .find_map_first(|at| (at..(at + CHUNK).min(range.end)).find(|&i| zero(i)));
    match first_zero {
        Some(i) => Err(format!("record {i} has seed 0, which is not an LFSR state")),
        None => Ok(()),
    }
}

/// The records of `range` that `bytes` holds, decoded one at a time, without validation.
pub(super) fn records(
    bytes: &[u8],
    cfg: Config,
    range: std::ops::Range<usize>,
) -> impl Iterator<Item = BlockCode> + '_ {
    let bits = cfg.block_bits();
    range
        .map_while(move |i| read_bits(bytes, i as u64 * u64::from(bits), bits))
        .map(move |r| decode_record(r, cfg))
}
