//! Merging a folder's finished parts into the packed file a single-machine compression writes,
//! byte for byte.

use super::part_path;
use super::plan::{ShardJobSpec, model_hash, read_shard_job, tensor_hash};
use super::run::pack_codes;
use super::sealed::{PartMeta, PartRange, range_key, read_part};
use crate::core::config::Config;
use crate::core::control::Control;
use crate::io::container::{MappedSafetensors, Payload};
use crate::io::dtype::{self};
use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::model_job::{JobError, TensorReport, write_compressed_out};
use crate::io::packed::{
    CompressedHead, PackedOut, check_packed, decode_range, pack_blocks, packed_len,
};
use crate::search::compress::{BlockCode, CompressedTensor, ErrorSums, snr_db};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The finished parts in `folder`, each with its description, checked to be of `spec`'s job,
/// one per shard, none missing and each holding exactly its shard's ranges.
fn collect_parts(
    folder: &Path,
    spec: &ShardJobSpec,
) -> Result<Vec<(PartMeta, MappedSafetensors)>, ModelError> {
    let n = spec.shards;
    let mut by_shard: Vec<Option<(PartMeta, MappedSafetensors)>> = (0..n).map(|_| None).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| ModelError::io(folder, "cannot list", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("part-") && name.ends_with(".safetensors")
        })
        .collect();
    files.sort();
    for path in files {
        let (meta, file) = read_part(&path)?;
        if let Some(why) = spec.mismatch(&meta.job) {
            return Err(ModelError::file(
                &path,
                format!("belongs to a different job: {why}"),
            ));
        }
        let slot = by_shard.get_mut(meta.shard).ok_or_else(|| {
            ModelError::file(&path, format!("claims shard {} of {n}", meta.shard))
        })?;
        if let Some((_, other)) = slot {
            return Err(ModelError::file(
                &path,
                format!(
                    "duplicates shard {} of {n}, already held by {}",
                    meta.shard,
                    other.path().display()
                ),
            ));
        }
        *slot = Some((meta, file));
    }
    let missing: Vec<usize> = (0..n).filter(|&i| by_shard[i].is_none()).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|&i| {
                part_path(Path::new(""), i, n)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        return Err(ModelError::file(
            folder,
            format!(
                "{} of {n} parts missing: {} (run those shards, then merge again)",
                missing.len(),
                names.join(", ")
            ),
        ));
    }
    let partition = spec.partition();
    let parts: Vec<(PartMeta, MappedSafetensors)> = by_shard.into_iter().flatten().collect();
    for ((meta, file), want) in parts.iter().zip(&partition) {
        let holds: Vec<(&str, usize, usize)> = meta
            .ranges
            .iter()
            .map(|r| (r.tensor.as_str(), r.start, r.end))
            .collect();
        let should: Vec<(&str, usize, usize)> = want
            .iter()
            .map(|r| (spec.tensors[r.tensor].name.as_str(), r.start, r.end))
            .collect();
        if holds != should {
            return Err(ModelError::file(
                file.path(),
                format!(
                    "does not hold the block ranges of shard {} of {n}",
                    meta.shard
                ),
            ));
        }
    }
    Ok(parts)
}

/// Blocks a merge reads, checks and writes at a time: a multiple of 8, so that each piece of a
/// tensor's records starts on a byte, and small enough that memory stays at a few MiB and a
/// cancel acts within milliseconds.
const MERGE_BLOCKS: usize = 1 << 16;

/// A compressed tensor's records as the parts hold them, its ranges in block order.
struct Held<'a> {
    config: Config,
    e_base: i32,
    blocks: usize,
    /// Each range, the part holding it and its packed records there.
    ranges: Vec<(&'a PartRange, &'a MappedSafetensors, &'a [u8])>,
}

impl Held<'_> {
    /// The codes of blocks `[a, b)`.
    fn codes(&self, a: usize, b: usize) -> Result<Vec<BlockCode>, ModelError> {
        let mut out = Vec::with_capacity(b - a);
        for (r, f, bytes) in &self.ranges {
            let (lo, hi) = (a.max(r.start), b.min(r.end));
            if lo < hi {
                let codes = decode_range(bytes, self.config, lo - r.start..hi - r.start)
                    .map_err(|e| ModelError::tensor(f.path(), &range_key(&r.tensor, r.start), e))?;
                out.extend(codes);
            }
        }
        Ok(out)
    }

    /// The pieces of at most [`MERGE_BLOCKS`] blocks, as (first block, one past the last).
    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let n = self.blocks;
        (0..n)
            .step_by(MERGE_BLOCKS)
            .map(move |a| (a, (a + MERGE_BLOCKS).min(n)))
    }

    /// The packed records of blocks `[a, b)` (`a` a multiple of 8: they start on a byte).
    fn records(&self, a: usize, b: usize) -> Result<Vec<u8>, ModelError> {
        Ok(pack_codes(self.config, self.e_base, self.codes(a, b)?))
    }
}

/// Checks a shard folder and writes the packed model it adds up to at `output` (a directory
/// when the input was one), byte-identical to a single-machine compression of the input.
/// `input` overrides the input path the job recorded (the same model elsewhere).
///
/// It streams: a first pass over each tensor's records, a piece at a time, takes the CRC and
/// the error figures the header needs; a second writes the records from the parts into the
/// output. Memory stays near one piece ([`MERGE_BLOCKS`] blocks), whatever the model's size.
/// `ctl.progress` counts each block twice, once a pass.
pub fn merge(
    folder: &Path,
    input: Option<&Path>,
    output: &Path,
    ctl: Control<'_>,
) -> Result<(PathBuf, Vec<TensorReport>), JobError> {
    let spec = read_shard_job(folder)?;
    let parts = collect_parts(folder, &spec)?;
    let model = match input {
        Some(input) => Model::open(input)?,
        // The recorded path is informational: a failure says where it came from and what to do.
        None => Model::open(&spec.input).map_err(|e| {
            ModelError::file(
                &folder.join("job.json"),
                format!(
                    "the input it records cannot be read ({e}); give --input with the model's path"
                ),
            )
        })?,
    };
    let input = input.unwrap_or(&spec.input);
    if model_hash(&model) != spec.model_hash {
        return Err(ModelError::file(
            input,
            "is not the model the shards were made from (its tensors or metadata differ)",
        )
        .into());
    }
    // A plan is checked against every tensor of the input (it was measured through all of
    // them): here those not compressed, below each compressed one as it is hashed.
    let compressed: Vec<&str> = spec.tensors.iter().map(|t| t.name.as_str()).collect();
    if let Some(plan) = &spec.plan
        && !plan.check_input(&model, folder, &compressed, ctl.cancel)?
    {
        return Err(JobError::Cancelled);
    }
    ctl.progress
        .total
        .fetch_add(2 * spec.total_blocks, Ordering::Relaxed);
    let mut outs = Vec::with_capacity(spec.tensors.len());
    let mut reports = Vec::with_capacity(spec.tensors.len());
    for (i, jt) in spec.tensors.iter().enumerate() {
        if ctl.cancelled() {
            return Err(JobError::Cancelled);
        }
        let cfg = spec.config_of(i);
        let start = Instant::now();
        let t = model
            .get(&jt.name)
            .ok_or_else(|| ModelError::tensor(input, &jt.name, "not in the model"))?;
        let mut held: Vec<(&PartRange, &MappedSafetensors)> = parts
            .iter()
            .flat_map(|(m, f)| m.ranges.iter().map(move |r| (r, f)))
            .filter(|(r, _)| r.tensor == jt.name)
            .collect();
        held.sort_by_key(|(r, _)| r.start);
        let hash = tensor_hash(&t.name, t.dtype, &t.shape, model.bytes(t), ctl.cancel)
            .ok_or(JobError::Cancelled)?;
        if let Some(plan) = &spec.plan {
            plan.check_tensor(&model, &t.name, &hash, folder)?;
        }
        // No range: a tensor of no elements, whose e_base `choose_e_base` gives as for all zeros.
        let e_base = held
            .first()
            .map_or(crate::core::quant::DEFAULT_E_BASE, |(r, _)| r.e_base);
        let mut ranges = Vec::with_capacity(held.len());
        let mut next = 0;
        for (r, f) in held {
            if r.hash != hash || r.e_base != e_base {
                return Err(ModelError::tensor(
                    f.path(),
                    &jt.name,
                    format!("was made from other data than {} holds", input.display()),
                )
                .into());
            }
            let key = range_key(&r.tensor, r.start);
            let stored =
                f.tensors().iter().find(|s| s.name == key).ok_or_else(|| {
                    ModelError::tensor(f.path(), &key, "is described but not stored")
                })?;
            let bytes = f.bytes(stored);
            check_packed(bytes, cfg, r.end - r.start)
                .map_err(|e| ModelError::tensor(f.path(), &key, e))?;
            if r.start != next {
                break;
            }
            next = r.end;
            ranges.push((r, f, bytes));
        }
        if next != jt.blocks {
            return Err(
                ModelError::tensor(folder, &jt.name, "parts do not cover every block").into(),
            );
        }
        let held = Held {
            config: cfg,
            e_base,
            blocks: jt.blocks,
            ranges,
        };
        let not_float = || ModelError::tensor(model.file_of(t), &t.name, "is not F32, F16 or BF16");
        let bytes_of = |elems: usize| dtype::byte_len(t.dtype, elems).ok_or_else(not_float);
        let data = model.bytes(t);
        let numel = t.numel();
        let mut crc = crc32fast::Hasher::new();
        let mut sums = ErrorSums::default();
        for (a, b) in held.pieces() {
            if ctl.cancelled() {
                return Err(JobError::Cancelled);
            }
            let codes = held.codes(a, b)?;
            let (lo, hi) = (a * cfg.c, (b * cfg.c).min(numel));
            let original = dtype::to_f32(t.dtype, &data[bytes_of(lo)?..bytes_of(hi)?])
                .ok_or_else(not_float)?;
            let piece = CompressedTensor {
                config: cfg,
                e_base,
                len: hi - lo,
                blocks: codes,
            };
            crc.update(&pack_blocks(&piece));
            sums.add(&original, &piece.reconstruct(), cfg.c);
            ctl.progress
                .done
                .fetch_add((b - a) as u64, Ordering::Relaxed);
        }
        let relmse = sums.relmse();
        reports.push(TensorReport {
            name: jt.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            blocks: jt.blocks,
            relmse,
            snr_db: snr_db(relmse),
            seconds: start.elapsed().as_secs_f64(),
            original_bytes: t.byte_size,
            packed_bytes: packed_len(cfg, jt.blocks),
        });
        let pieces = held.pieces().map(move |(a, b)| {
            if ctl.cancelled() {
                return Err(ModelError::file(folder, "cancelled"));
            }
            let bytes = held.records(a, b)?;
            ctl.progress
                .done
                .fetch_add((b - a) as u64, Ordering::Relaxed);
            Ok(bytes)
        });
        outs.push(PackedOut {
            head: CompressedHead {
                name: jt.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype,
                config: cfg,
                e_base,
                blocks: jt.blocks,
                relmse: Some(relmse),
            },
            crc32: crc.finalize(),
            records: Payload::Pieces(Box::new(pieces)),
        });
    }
    let records = spec.plan.map(|p| p.records).unwrap_or_default();
    match write_compressed_out(&model, outs, &records, output) {
        Ok(file) => Ok((file, reports)),
        Err(_) if ctl.cancelled() => Err(JobError::Cancelled),
        Err(e) => Err(e.into()),
    }
}
