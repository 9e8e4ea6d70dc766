//! The job of a shard folder (`job.json`): the tensors and their blocks, the partition into
//! balanced shards, and the input's identity hashes; reading a folder's job and claiming a folder.

use super::{JOB_FILE, LAYOUT_VERSION, MAX_COST, MAX_SHARDS, hex, read_json, write_json_atomic};
use crate::core::config::Config;
use crate::io::dtype::Dtype;
use crate::io::error::ModelError;
use crate::io::job_plan::JobPlan;
use crate::io::model::Model;
use crate::io::model_job::Plan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// One tensor a job compresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardJobTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Dtype name.
    pub dtype: String,
    /// Blocks at its configuration's C.
    pub blocks: usize,
    /// Its own configuration, when a plan's bit budget chose it (else the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Config>,
    /// Predicted search cost of one of its blocks ([`crate::search::block_cost`]), which the
    /// partition balances; absent for a job of one configuration (every block alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
}

/// A sharded compression job: what every part and checkpoint of it records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardJobSpec {
    /// [`LAYOUT_VERSION`] of the writer.
    pub layout: u32,
    /// The input model (absolute); informational, the identity is `model_hash`.
    pub input: PathBuf,
    /// Configuration.
    pub config: Config,
    /// Number of shards N.
    pub shards: usize,
    /// SHA-256 of the input's header: every tensor's name, dtype and shape, and its metadata.
    pub model_hash: String,
    /// The tensors compressed, in plan order.
    pub tensors: Vec<ShardJobTensor>,
    /// Blocks in all.
    pub total_blocks: u64,
    /// What a plan step measured for every shard (`--target-bpw`, `--calibrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<JobPlan>,
}

/// A block range `[start, end)` of tensor `tensor` (an index into [`ShardJobSpec::tensors`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Index into the job's tensors.
    pub tensor: usize,
    /// First block.
    pub start: usize,
    /// One past the last block.
    pub end: usize,
}

impl Range {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range holds no block.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl ShardJobSpec {
    /// The job compressing `plan` of `model` at `cfg` in `shards` shards.
    pub fn new(
        model: &Model,
        plan: &Plan,
        cfg: Config,
        shards: usize,
    ) -> Result<ShardJobSpec, ModelError> {
        let input = std::fs::canonicalize(model.path())
            .map_err(|e| ModelError::io(model.path(), "cannot resolve the path", e))?;
        let mut tensors = Vec::with_capacity(plan.compress.len());
        for name in &plan.compress {
            let t = model
                .get(name)
                .ok_or_else(|| ModelError::tensor(model.path(), name, "not in the model"))?;
            tensors.push(ShardJobTensor {
                name: name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.to_string(),
                blocks: t.numel().div_ceil(cfg.c),
                config: None,
                cost: None,
            });
        }
        Ok(ShardJobSpec {
            layout: LAYOUT_VERSION,
            input,
            config: cfg,
            shards,
            model_hash: model_hash(model),
            tensors,
            total_blocks: plan.total_blocks,
            plan: None,
        })
    }

    /// This job following `plan`, with `configs` (one per tensor, in order) when the plan's
    /// bit budget chose them: each tensor's blocks counted at its configuration and weighted by
    /// its predicted cost, so the shards are balanced in time.
    pub fn with_plan(mut self, configs: Option<&[Config]>, plan: JobPlan) -> ShardJobSpec {
        if let Some(configs) = configs {
            assert_eq!(configs.len(), self.tensors.len(), "one config per tensor");
            for (t, &cfg) in self.tensors.iter_mut().zip(configs) {
                let numel: usize = t.shape.iter().product();
                t.blocks = numel.div_ceil(cfg.c);
                t.config = Some(cfg);
                t.cost = Some(crate::search::block_cost(cfg));
            }
            self.total_blocks = self.tensors.iter().map(|t| t.blocks as u64).sum();
        }
        self.plan = Some(plan);
        self
    }

    /// The configuration of tensor `i`.
    pub fn config_of(&self, i: usize) -> Config {
        self.tensors[i].config.unwrap_or(self.config)
    }

    /// The configuration of the tensor named `name`, if the job compresses it.
    pub fn config_named(&self, name: &str) -> Option<Config> {
        let i = self.tensors.iter().position(|t| t.name == name)?;
        Some(self.config_of(i))
    }

    /// Every configuration the job uses, in words (`C,P,K`, or a count when a plan chose one
    /// per tensor).
    pub fn config_text(&self) -> String {
        let mut all: Vec<Config> = (0..self.tensors.len()).map(|i| self.config_of(i)).collect();
        all.sort_by_key(|c| (c.c, c.p, c.k));
        all.dedup();
        match all.as_slice() {
            [one] => one.to_string(),
            [] => self.config.to_string(),
            many => format!("{} configurations", many.len()),
        }
    }

    /// Why `other` is not this job (`None` when it is): all but the input path must agree.
    pub fn mismatch(&self, other: &ShardJobSpec) -> Option<String> {
        if other.layout != self.layout {
            Some(format!(
                "shard layout version {} instead of {}",
                other.layout, self.layout
            ))
        } else if other.model_hash != self.model_hash {
            Some(format!(
                "made from a different input ({}; its tensors or metadata differ)",
                other.input.display()
            ))
        } else if other.config != self.config {
            Some(format!(
                "configuration {} instead of {}",
                other.config, self.config
            ))
        } else if other.shards != self.shards {
            Some(format!(
                "{} shards instead of {}",
                other.shards, self.shards
            ))
        } else if other.tensors != self.tensors {
            Some("a different selection of tensors or configurations".into())
        } else if other.plan.as_ref().map(|p| &p.options) != self.plan.as_ref().map(|p| &p.options)
        {
            Some(
                match (&other.plan, &self.plan) {
                    (None, Some(_)) => "no plan instead of a plan",
                    (Some(_), None) => "a plan instead of none",
                    _ => "a plan for other options",
                }
                .into(),
            )
        } else if other.plan != self.plan {
            Some("another plan (made from other data)".into())
        } else {
            None
        }
    }

    /// Why the job's counts cannot be (`None` when they agree): at least one shard and at most
    /// [`MAX_SHARDS`], each tensor's blocks its shape's at the job's C, `total_blocks` their sum.
    pub fn inconsistency(&self) -> Option<String> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Some(format!("{} shards (from 1 to {MAX_SHARDS})", self.shards));
        }
        let mut total = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            if let Err(e) = self.config_of(i).validate() {
                return Some(format!("tensor '{}' has configuration {e}", t.name));
            }
            if let Some(c) = t.cost.filter(|&c| c == 0 || c > MAX_COST) {
                return Some(format!(
                    "tensor '{}' has cost {c} (from 1 to {MAX_COST})",
                    t.name
                ));
            }
            let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if numel.map(|n| n.div_ceil(self.config_of(i).c)) != Some(t.blocks) {
                return Some(format!(
                    "tensor '{}' of shape {:?} cannot have {} blocks",
                    t.name, t.shape, t.blocks
                ));
            }
            total = total.saturating_add(t.blocks as u64);
        }
        (total != self.total_blocks).then(|| {
            format!(
                "total_blocks {} is not the tensors' {total}",
                self.total_blocks
            )
        })
    }

    /// A short identity of the job (SHA-256 of everything [`ShardJobSpec::mismatch`] compares).
    pub fn id(&self) -> String {
        let mut key = serde_json::json!([
            self.layout,
            self.model_hash,
            self.config,
            self.shards,
            self.tensors
        ]);
        // A job without a plan keeps the identity it always had.
        if let (Some(plan), Some(k)) = (&self.plan, key.as_array_mut()) {
            k.push(serde_json::json!(plan));
        }
        hex(&Sha256::digest(key.to_string().as_bytes()))
    }

    /// The block ranges of every shard. The model's blocks, in plan order, each weighing its
    /// tensor's predicted cost (1 in a job of one configuration), are cut at `i·total/N` of the
    /// summed cost for i = 1…N−1, each cut moved to the nearest row boundary of the tensor it
    /// falls in (a boundary where a block starts a row), so shards differ by at most a row or
    /// so of work and a tensor larger than a fair share is split by row ranges.
    pub fn partition(&self) -> Vec<Vec<Range>> {
        let n = self.shards.max(1);
        let mut offsets = Vec::with_capacity(self.tensors.len() + 1);
        // Where each tensor starts in the summed cost.
        let mut weighed = Vec::with_capacity(self.tensors.len() + 1);
        let (mut acc, mut cost) = (0usize, 0u128);
        for t in &self.tensors {
            offsets.push(acc);
            weighed.push(cost);
            acc += t.blocks;
            cost += t.blocks as u128 * u128::from(t.cost.unwrap_or(1).max(1));
        }
        offsets.push(acc);
        weighed.push(cost);
        let snap = |g: u128| -> usize {
            let j = weighed[1..].partition_point(|&end| end <= g);
            if j >= self.tensors.len() {
                return acc;
            }
            let t = &self.tensors[j];
            let unit = split_unit(t, self.config_of(j).c);
            let local = ((g - weighed[j]) / u128::from(t.cost.unwrap_or(1).max(1))) as usize;
            offsets[j] + ((local + unit / 2) / unit * unit).min(t.blocks)
        };
        let mut cuts = vec![0usize];
        for i in 1..n {
            cuts.push(snap(i as u128 * cost / n as u128));
        }
        cuts.push(acc);
        cuts.windows(2)
            .map(|w| {
                let (lo, hi) = (w[0], w[1]);
                (0..self.tensors.len())
                    .map(|j| Range {
                        tensor: j,
                        start: lo.clamp(offsets[j], offsets[j + 1]) - offsets[j],
                        end: hi.clamp(offsets[j], offsets[j + 1]) - offsets[j],
                    })
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .collect()
    }
}

/// Blocks between two allowed cuts in `t`: the fewest whole rows that are also whole blocks
/// (one row when C divides the row length). 1-D tensors are not split.
fn split_unit(t: &ShardJobTensor, c: usize) -> usize {
    let cols = match t.shape.as_slice() {
        [_, .., last] if *last > 0 => *last,
        _ => return t.blocks.max(1),
    };
    (cols / gcd(cols, c)).max(1)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// SHA-256 of a model's header: every tensor's name, dtype and shape, in order, and the
/// metadata.
pub fn model_hash(model: &Model) -> String {
    let mut h = Sha256::new();
    for t in model.tensors() {
        h.update(serde_json::json!([t.name, t.dtype.to_string(), t.shape]).to_string());
        h.update(b"\n");
    }
    h.update(serde_json::json!(model.metadata()).to_string());
    hex(&h.finalize())
}

/// Bytes hashed between two looks at the cancel flag.
const HASH_PIECE: usize = 64 << 20;

/// SHA-256 of one tensor's header (name, dtype, shape) and data; `None` when `cancel` was
/// raised on the way (a large tensor takes a while).
pub fn tensor_hash(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
    cancel: &AtomicBool,
) -> Option<String> {
    let mut h = Sha256::new();
    h.update(serde_json::json!([name, dtype.to_string(), shape]).to_string());
    h.update(b"\n");
    for piece in data.chunks(HASH_PIECE) {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        h.update(piece);
    }
    Some(hex(&h.finalize()))
}

/// Reads the job of a shard folder.
pub fn read_shard_job(folder: &Path) -> Result<ShardJobSpec, ModelError> {
    let path = folder.join(JOB_FILE);
    if !path.is_file() {
        return Err(ModelError::file(
            folder,
            format!("not a shard folder (no {JOB_FILE}; no shard has started)"),
        ));
    }
    let spec: ShardJobSpec = read_json(&path)?;
    if let Some(why) = spec.inconsistency() {
        return Err(ModelError::file(&path, format!("malformed job: {why}")));
    }
    if spec.layout != LAYOUT_VERSION {
        return Err(ModelError::file(
            &path,
            format!(
                "shard folder of layout version {}, this seedlm reads version {LAYOUT_VERSION}; run the shards again with this version",
                spec.layout
            ),
        ));
    }
    Ok(spec)
}

/// Creates the shard folder and writes `job.json`, or checks that the folder already holds
/// this job.
pub fn claim_folder(folder: &Path, spec: &ShardJobSpec) -> Result<(), ModelError> {
    std::fs::create_dir_all(folder)
        .map_err(|e| ModelError::io(folder, "cannot create directory", e))?;
    let path = folder.join(JOB_FILE);
    if path.is_file() {
        let existing: ShardJobSpec = read_json(&path)?;
        if let Some(why) = existing.mismatch(spec) {
            return Err(ModelError::file(
                &path,
                format!(
                    "the shard folder holds another job ({why} than this run); use another output or remove the folder"
                ),
            ));
        }
        return Ok(());
    }
    write_json_atomic(&path, spec)
}
