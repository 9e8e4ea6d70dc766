//! Whole models: compress a model into a packed file and decompress a packed file into a plain
//! safetensors model, tensor by tensor, so peak memory stays near one tensor in f32 plus the
//! compressed outputs. Directories in give directories out, with the whole tree of non-weight
//! files copied and `config.json` marked as a SeedLM-quantized model (restored on the way back).

use crate::core::config::Config;
use crate::core::control::Control;
use crate::core::quant::Rounding;
use crate::io::container::{
    OutTensor, PARTIAL_PREFIX, PartialDir, Payload, parent_dir, partial_file,
    remove_stale_partials, write_atomic,
};
use crate::io::dtype::{self, Dtype};
use crate::io::error::ModelError;
use crate::io::model::{INDEX_FILE, MODEL_FILE, Model, TensorEntry};
use crate::io::packed::{
    CompressedEntry, FORMAT_NAME, FORMAT_VERSION, KEY_ALLOCATION, PackedModel, PackedOut,
    PlainEntry, is_packed, write_packed_out,
};
use crate::io::selection::Selection;
use crate::search::Searcher;
use crate::search::compress::{
    CompressError, CompressedTensor, ErrorStats, compress_weighted, compress_with,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Why a whole-model job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Bad input or output.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
}

/// The tensors a compression will process.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Names of the tensors to compress, in model order.
    pub compress: Vec<String>,
    /// Blocks to search in all.
    pub total_blocks: u64,
}

/// Picks the tensors `selection` compresses; a selected tensor that is not F32/F16/BF16 is an
/// error naming file and tensor, and so is a model that is already a packed file.
pub fn plan(model: &Model, selection: &Selection, cfg: Config) -> Result<Plan, ModelError> {
    if let Some(f) = model.files().iter().find(|f| is_packed(f)) {
        return Err(ModelError::file(
            f.path(),
            "is already a SeedLM packed file (decompress it first)",
        ));
    }
    let mut names = Vec::new();
    let mut total_blocks = 0u64;
    for t in model.tensors() {
        if !selection.selects(&t.name, &t.shape, t.dtype) {
            continue;
        }
        if !dtype::is_float(t.dtype) {
            return Err(ModelError::tensor(
                model.file_of(t),
                &t.name,
                format!(
                    "selected for compression but its dtype {} is not supported (only F32, F16 and BF16)",
                    t.dtype
                ),
            ));
        }
        total_blocks += t.numel().div_ceil(cfg.c) as u64;
        names.push(t.name.clone());
    }
    Ok(Plan {
        compress: names,
        total_blocks,
    })
}

/// What compressing one tensor gave.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Original dtype.
    pub dtype: Dtype,
    /// Number of blocks.
    pub blocks: usize,
    /// Relative MSE against the original (as f32).
    pub relmse: f64,
    /// SNR in dB.
    pub snr_db: f64,
    /// Wall-clock seconds spent.
    pub seconds: f64,
    /// Bytes in the source file.
    pub original_bytes: usize,
    /// Bytes of packed records.
    pub packed_bytes: usize,
}

/// The compressed tensors of a model, ready to write.
#[derive(Clone, Debug)]
pub struct CompressedModel {
    /// Compressed tensors, in plan order.
    pub entries: Vec<CompressedEntry>,
    /// One report per entry.
    pub reports: Vec<TensorReport>,
    /// How the search was steered, recorded as [`crate::io::packed::KEY_CALIBRATION`]: `None`
    /// for the data-free search.
    pub calibration: Option<String>,
    /// The bit allocation that chose the configurations, as JSON for
    /// [`crate::io::packed::KEY_ALLOCATION`] (`None` for one configuration throughout).
    pub allocation: Option<String>,
}

impl CompressedModel {
    /// The metadata keys saying how the codes were chosen (calibration, allocation), for
    /// [`write_compressed_out`].
    pub fn records(&self) -> BTreeMap<String, String> {
        records(self.calibration.as_deref(), self.allocation.as_deref())
    }
}

/// The metadata keys saying how the codes were chosen: the calibration record
/// ([`crate::io::packed::KEY_CALIBRATION`]) and the allocation's JSON ([`KEY_ALLOCATION`]), each
/// when there is one.
pub fn records(calibration: Option<&str>, allocation: Option<&str>) -> BTreeMap<String, String> {
    let keys = [
        (crate::io::packed::KEY_CALIBRATION, calibration),
        (KEY_ALLOCATION, allocation),
    ];
    keys.into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
        .collect()
}

/// Compresses the planned tensors of `model` on the current rayon pool, choosing coefficients by
/// `rounding`. A 2-D tensor with an entry in `moments` (per-input-channel importances, as many
/// as its rows are long, e.g. from [`crate::eval::Evaluator::input_moments`]) is searched under
/// that activation-weighted objective ([`compress_weighted`]); every other one data-free.
/// `on_start` is called with each tensor's name as it begins.
pub fn compress_model(
    model: &Model,
    plan: &Plan,
    cfg: Config,
    rounding: Rounding,
    moments: &HashMap<String, Vec<f64>>,
    ctl: Control<'_>,
    on_start: impl FnMut(&str),
) -> Result<CompressedModel, JobError> {
    let configs = vec![cfg; plan.compress.len()];
    compress_model_with(model, plan, &configs, rounding, moments, ctl, on_start)
}

/// [`compress_model`] with a configuration per planned tensor (`configs[i]` for
/// `plan.compress[i]`), as a bit allocation chooses them.
pub fn compress_model_with(
    model: &Model,
    plan: &Plan,
    configs: &[Config],
    rounding: Rounding,
    moments: &HashMap<String, Vec<f64>>,
    ctl: Control<'_>,
    mut on_start: impl FnMut(&str),
) -> Result<CompressedModel, JobError> {
    assert_eq!(configs.len(), plan.compress.len(), "one config per tensor");
    let mut tensors = Vec::with_capacity(plan.compress.len());
    for name in &plan.compress {
        let t = model
            .get(name)
            .ok_or_else(|| ModelError::tensor(model.path(), name, "not in the model"))?;
        tensors.push(t);
    }
    let total: u64 = tensors
        .iter()
        .zip(configs)
        .map(|(t, cfg)| t.numel().div_ceil(cfg.c) as u64)
        .sum();
    ctl.progress.total.fetch_add(total, Ordering::Relaxed);
    let mut entries = Vec::with_capacity(plan.compress.len());
    let mut reports = Vec::with_capacity(plan.compress.len());
    // One searcher per configuration: building its tables costs far more than a small tensor.
    let mut searchers: Vec<Searcher> = Vec::new();
    for (t, &cfg) in tensors.into_iter().zip(configs) {
        let name = &t.name;
        let at = match searchers.iter().position(|s| s.config() == cfg) {
            Some(at) => at,
            None => {
                searchers.push(Searcher::with_rounding(cfg, rounding));
                searchers.len() - 1
            }
        };
        // Codes that decode within what the tensor's dtype holds.
        let searcher = &searchers[at].below(dtype::overflow_bound(t.dtype));
        on_start(name);
        let start = Instant::now();
        let data = model.to_f32(t)?;
        let (tensor, stats, _) = compress_tensor(&data, name, &t.shape, moments, searcher, ctl)
            .map_err(|e| tensor_error(model, t, e))?;
        let relmse = stats.relmse();
        reports.push(TensorReport {
            name: name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            blocks: tensor.num_blocks(),
            relmse,
            snr_db: stats.snr_db(),
            seconds: start.elapsed().as_secs_f64(),
            original_bytes: t.byte_size,
            packed_bytes: crate::io::packed::packed_len(cfg, tensor.num_blocks()),
        });
        entries.push(CompressedEntry::new(
            name,
            &t.shape,
            t.dtype,
            &tensor,
            Some(relmse),
        ));
    }
    Ok(CompressedModel {
        entries,
        reports,
        calibration: None,
        allocation: None,
    })
}

/// Compresses `data`, tensor `name` of `shape`, with `searcher`: under the activation-weighted
/// objective when `moments` holds moments that fit it ([`moments_of`]), else data-free. The
/// one per-tensor step of `compress` and the app; the flag says whether it was calibrated.
pub fn compress_tensor(
    data: &[f32],
    name: &str,
    shape: &[usize],
    moments: &HashMap<String, Vec<f64>>,
    searcher: &Searcher,
    ctl: Control<'_>,
) -> Result<(CompressedTensor, ErrorStats, bool), CompressError> {
    match moments_of(moments, name, shape) {
        Some(d) => compress_weighted(data, d, searcher, ctl).map(|(t, s)| (t, s, true)),
        None => compress_with(data, searcher, ctl).map(|(t, s)| (t, s, false)),
    }
}

/// The moments in `moments` that steer the search of tensor `name` of `shape`: those of a 2-D
/// weight whose rows they fit (any other tensor is searched data-free).
pub fn moments_of<'a>(
    moments: &'a HashMap<String, Vec<f64>>,
    name: &str,
    shape: &[usize],
) -> Option<&'a [f64]> {
    match (moments.get(name), shape) {
        (Some(d), &[_, cols]) if d.len() == cols => Some(d),
        _ => None,
    }
}

/// A compression error on tensor `t` of `model` as a job error naming file and tensor.
pub fn tensor_error(model: &Model, t: &TensorEntry, e: CompressError) -> JobError {
    match e {
        CompressError::Cancelled => JobError::Cancelled,
        CompressError::NonFinite { index, value } => JobError::Model(ModelError::tensor(
            model.file_of(t),
            &t.name,
            format!(
                "weight {value} at element {index} (index {:?}) is not finite",
                unravel(index, &t.shape)
            ),
        )),
    }
}

/// The row-major multi-index of flat element `index` in `shape`.
pub fn unravel(mut index: usize, shape: &[usize]) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (o, &d) in out.iter_mut().zip(shape).rev() {
        if d > 0 {
            *o = index % d;
            index /= d;
        }
    }
    out
}

/// `path` with symlinks and `..` resolved, also when it does not exist yet (then its nearest
/// existing ancestor is resolved and the rest appended).
fn resolved(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut p = path;
    loop {
        if let Ok(c) = std::fs::canonicalize(p) {
            return rest.iter().rev().fold(c, |acc, r| acc.join(r));
        }
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                p = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Whether two existing paths are the same file (also through hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    resolved(a) == resolved(b)
}

/// Checks, before any work starts, that `output` can receive what `input` gives (a file, or
/// a directory when `input` is one; an existing directory that is not empty only with `force`):
/// not the input itself or a path inside the input
/// directory (also through symlinks), not an existing directory where a file is expected, in
/// a directory that exists and is writable. Removes the partial files that killed runs left
/// in the output directory and returns them, for the caller to report.
pub fn check_output(input: &Path, output: &Path, force: bool) -> Result<Vec<PathBuf>, ModelError> {
    let refuse = |reason: String| Err(ModelError::file(output, reason));
    let input_is_dir = input.is_dir();
    let (input_r, output_r) = (resolved(input), resolved(output));
    if input_is_dir {
        if output.exists() && !output.is_dir() {
            return refuse(
                "the input is a directory, so the output must be a directory too".into(),
            );
        }
        if output_r.starts_with(&input_r) {
            return refuse(format!(
                "is the input directory {} or inside it; write the output elsewhere",
                input.display()
            ));
        }
        check_links(input)?;
        let holds_files = std::fs::read_dir(output).is_ok_and(|mut d| d.next().is_some());
        if holds_files && !force {
            return refuse(
                "exists and is not empty; give --force to replace it (it is replaced only once the new one is complete)".into(),
            );
        }
    } else {
        if output.is_dir() {
            return refuse("is a directory; give the name of the file to write".into());
        }
        if output_r == input_r || (output.exists() && same_file(input, output)) {
            return refuse(format!(
                "is the input file {}; write the output elsewhere",
                input.display()
            ));
        }
    }
    // The directory the output goes into, or for a new output directory its nearest existing
    // ancestor (created on writing).
    // A directory output is written beside it and renamed into place.
    let mut dir = parent_dir(output).to_path_buf();
    if input_is_dir {
        while !dir.exists() {
            dir = parent_dir(&dir).to_path_buf();
        }
    }
    if !dir.is_dir() {
        return refuse(format!(
            "cannot write here: {} does not exist or is not a directory",
            dir.display()
        ));
    }
    partial_file(&dir).map_err(|e| ModelError::io(output, "cannot write into its directory", e))?;
    Ok(remove_stale_partials(&dir))
}

/// Writes the packed file for `model` and `compressed` to `output` (a directory when the model
/// came from one, with the non-weight files copied along and config.json marked as a
/// SeedLM-quantized model). Returns the file written.
pub fn write_compressed(
    model: &Model,
    compressed: &CompressedModel,
    output: &Path,
) -> Result<PathBuf, ModelError> {
    let out = compressed
        .entries
        .iter()
        .map(CompressedEntry::out)
        .collect();
    write_compressed_out(model, out, &compressed.records(), output)
}

/// [`write_compressed`] with the compressed tensors' records written as they come
/// ([`write_packed_out`]), and the bit allocation's JSON when there is one.
pub fn write_compressed_out(
    model: &Model,
    compressed: Vec<PackedOut<'_>>,
    records: &BTreeMap<String, String>,
    output: &Path,
) -> Result<PathBuf, ModelError> {
    let mut metadata = model.metadata();
    metadata.extend(records.iter().map(|(k, v)| (k.clone(), v.clone())));
    let done: HashSet<&str> = compressed.iter().map(|e| e.head.name.as_str()).collect();
    let plain: Vec<PlainEntry<'_>> = model
        .tensors()
        .iter()
        .filter(|t| !done.contains(t.name.as_str()))
        .map(|t| PlainEntry {
            name: t.name.clone(),
            shape: t.shape.clone(),
            dtype: t.dtype,
            data: model.bytes(t),
        })
        .collect();
    let mut configs: Vec<Config> = compressed.iter().map(|e| e.head.config).collect();
    configs.sort_by_key(|c| (c.c, c.p, c.k));
    configs.dedup();
    let order: Vec<String> = model.tensors().iter().map(|t| t.name.clone()).collect();
    if !model.is_dir() {
        write_packed_out(output, compressed, &plain, &order, &metadata)?;
        return Ok(output.to_path_buf());
    }
    // A directory appears whole or not at all.
    let dir = PartialDir::begin(output)?;
    write_packed_out(
        &dir.path().join(MODEL_FILE),
        compressed,
        &plain,
        &order,
        &metadata,
    )?;
    let mut skip: Vec<OsString> = model
        .files()
        .iter()
        .filter_map(|f| f.path().file_name().map(OsString::from))
        .collect();
    skip.extend([INDEX_FILE.into(), MODEL_FILE.into(), CONFIG_FILE.into()]);
    copy_aux_files(model.path(), dir.path(), &skip)?;
    mark_config(model.path(), dir.path(), &configs)?;
    dir.finish()?;
    Ok(output.join(MODEL_FILE))
}

/// The model configuration file of a Hugging Face model directory.
pub const CONFIG_FILE: &str = "config.json";
/// `quant_method` of the `quantization_config` that packed directories' config.json carried
/// before the [`MARK`] object replaced it; still recognised, so those decompress as before.
pub const QUANT_METHOD: &str = "seedlm";
/// Key of a packed directory's config.json holding its description (FORMAT.md §7). Hugging Face
/// loaders do not read it, where an unknown `quantization_config` made transformers warn and
/// then fail on every packed tensor's shape.
const MARK: &str = "seedlm";
/// Key of [`MARK`] (or of the old `quantization_config`) holding the source's config.json text,
/// restored verbatim.
const ORIGINAL_CONFIG: &str = "original_config";
/// The config.json key naming the weights file transformers loads. It refuses a name that is not
/// a safetensors file before any other work, printing it at the end of that one error line, so
/// a packed directory's says what it is and what to do instead.
const TRANSFORMERS_WEIGHTS: &str = "transformers_weights";
/// Value of [`TRANSFORMERS_WEIGHTS`] in a packed directory's config.json.
const TRANSFORMERS_REFUSAL: &str = "this is a SeedLM-packed model, whose compressed weights \
     transformers cannot read: run `seedlm decompress <this directory> -o <new directory>` and \
     load the new directory";

/// Writes `dst/config.json`: the source's with a [`MARK`] object describing the SeedLM-packed
/// weights and [`TRANSFORMERS_WEIGHTS`] set so that transformers refuses the directory in one
/// line (FORMAT.md §7); the source's `quantization_config`, if any, is dropped, since its method
/// no longer describes these weights. A config.json that is not a JSON object is copied
/// unchanged.
fn mark_config(src: &Path, dst: &Path, configs: &[Config]) -> Result<(), ModelError> {
    let from = src.join(CONFIG_FILE);
    if !from.is_file() {
        return Ok(());
    }
    let text = std::fs::read(&from).map_err(|e| ModelError::io(&from, "cannot read", e))?;
    let parsed = std::str::from_utf8(&text).ok().and_then(|t| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(t)
            .ok()
            .map(|m| (t, m))
    });
    let out = match parsed {
        Some((original, mut config)) => {
            let cfgs: Vec<serde_json::Value> = configs
                .iter()
                .map(|c| serde_json::json!({"c": c.c, "p": c.p, "k": c.k, "bits_per_weight": c.bits_per_weight()}))
                .collect();
            let mark = serde_json::json!({
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "weights": MODEL_FILE,
                "configs": cfgs,
                ORIGINAL_CONFIG: original,
            });
            config.remove("quantization_config");
            config.insert(MARK.into(), mark);
            config.insert(TRANSFORMERS_WEIGHTS.into(), TRANSFORMERS_REFUSAL.into());
            let mut s = serde_json::to_string_pretty(&config).expect("a JSON map serializes");
            s.push('\n');
            s.into_bytes()
        }
        None => text,
    };
    write_file_atomic(&dst.join(CONFIG_FILE), &out)
}

/// The `quant_method` of the `quantization_config` in the config.json of the model at `input`
/// (a model directory, or a weights file in one): its weights are already quantized by that
/// method (`"unknown"` when it names none). `None` without one, or for SeedLM's own old mark.
pub fn quantized_by(input: &Path) -> Option<String> {
    let dir = if input.is_dir() {
        input
    } else {
        input.parent()?
    };
    let text = std::fs::read(dir.join(CONFIG_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let q = v.get("quantization_config")?;
    let method = q
        .get("quant_method")
        .and_then(|m| m.as_str())
        .unwrap_or("unknown");
    (method != QUANT_METHOD).then(|| method.to_string())
}

/// The source config.json text a marked `config.json` (see [`mark_config`]) keeps, under
/// [`MARK`] or, in directories packed before it, the `quantization_config` of [`QUANT_METHOD`];
/// `None` for any other content.
fn original_config(text: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    let mark = match v.get(MARK) {
        Some(mark) => mark,
        None => {
            let q = v.get("quantization_config")?;
            if q.get("quant_method")?.as_str()? != QUANT_METHOD {
                return None;
            }
            q
        }
    };
    Some(mark.get(ORIGINAL_CONFIG)?.as_str()?.to_string())
}

/// Copies the non-weight files of the packed directory `src` into `dst` for decompression,
/// with config.json restored to the source model's.
pub fn copy_packed_dir_files(src: &Path, dst: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let skip: Vec<OsString> = vec![MODEL_FILE.into(), CONFIG_FILE.into()];
    let mut copied = copy_aux_files(src, dst, &skip)?;
    let from = src.join(CONFIG_FILE);
    if from.is_file() {
        let text = std::fs::read(&from).map_err(|e| ModelError::io(&from, "cannot read", e))?;
        let to = dst.join(CONFIG_FILE);
        match original_config(&text) {
            Some(original) => write_file_atomic(&to, original.as_bytes())?,
            None => write_file_atomic(&to, &text)?,
        }
        copied.push(to);
        copied.sort();
    }
    Ok(copied)
}

/// Writes `bytes` to `path` through a partial file renamed into place.
fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    use std::io::Write;
    let mut tmp = partial_file(parent_dir(path))
        .map_err(|e| ModelError::io(path, "cannot create a temporary file beside it", e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| ModelError::io(path, "cannot write", e))?;
    tmp.persist(path)
        .map_err(|e| ModelError::io(path, "cannot move into place", e.error))?;
    Ok(())
}

/// Writes a plain safetensors model reconstructed from `packed` to `output_file`: compressed
/// tensors as the engine's exact reconstruction rounded to their original dtype (or to
/// `dtype`), plain tensors as stored (floating ones, F64 included, converted to `dtype` when
/// given). A value that would become infinite in the output dtype is an error.
pub fn decompress_model(
    packed: &PackedModel,
    output_file: &Path,
    dtype: Option<Dtype>,
) -> Result<(), ModelError> {
    let mut out = Vec::with_capacity(packed.tensors().len());
    for t in packed.tensors() {
        let target = match dtype {
            Some(d) if dtype::is_floating(t.dtype) => d,
            _ => t.dtype,
        };
        let unfit = move |(i, v): (usize, f64)| {
            ModelError::tensor(
                packed.path(),
                &t.name,
                format!(
                    "weight {v} at element {i} does not fit in {target} (choose a wider --dtype)"
                ),
            )
        };
        let data = if t.packed.is_none() && target == t.dtype {
            Payload::Bytes(packed.stored_bytes(t))
        } else if t.packed.is_none() && t.dtype == Dtype::F64 {
            Payload::Lazy(Box::new(move || {
                // Checked as f64: a value beyond even f32's range must be refused, not made inf.
                let bytes = packed.stored_bytes(t);
                if let Some(bad) = dtype::first_unfit(target, dtype::f64_values(bytes)) {
                    return Err(unfit(bad));
                }
                Ok(dtype::from_f64_bytes(target, bytes).expect("target is a float dtype"))
            }))
        } else {
            Payload::Lazy(Box::new(move || {
                let values = packed.to_f32(t)?;
                if let Some(bad) = dtype::first_unfit(target, values.iter().map(|&v| f64::from(v)))
                {
                    return Err(unfit(bad));
                }
                Ok(dtype::from_f32(target, &values).expect("target is a float dtype"))
            }))
        };
        out.push(OutTensor {
            name: t.name.clone(),
            dtype: target,
            shape: t.shape.clone(),
            data,
        });
    }
    write_atomic(output_file, out, &packed.source_metadata())
}

/// Deepest folder level copied; deeper trees are refused (a symlink loop, most likely).
const MAX_DEPTH: usize = 32;

/// Copies the files of the model directory `src` into `dst`, sub-folders included with the
/// same structure (sentence-transformers' `1_Pooling/`, ...), each file atomically. Skipped:
/// the top-level entries named in `skip` (the weights, the shard index), hidden folders
/// (`.git`, `.cache`) and partial files of interrupted runs. Returns the files copied, sorted.
pub fn copy_aux_files(
    src: &Path,
    dst: &Path,
    skip: &[OsString],
) -> Result<Vec<PathBuf>, ModelError> {
    check_links(src)?;
    let mut copied = Vec::new();
    copy_tree(src, dst, skip, 0, &mut copied)?;
    copied.sort();
    Ok(copied)
}

/// Refuses a model directory `root` holding a folder link that leads outside it (its files
/// would be copied into the output) or to a folder above the link (a loop), naming the link.
/// Links to files are followed as before (a Hugging Face cache links every file to a blob
/// outside the snapshot folder); hidden folders are not copied and not checked.
pub fn check_links(root: &Path) -> Result<(), ModelError> {
    let top = std::fs::canonicalize(root)
        .map_err(|e| ModelError::io(root, "cannot resolve the path", e))?;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| ModelError::io(&dir, "cannot list", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ModelError::io(&dir, "cannot list", e))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_symlink() && path.is_dir() {
                let target = std::fs::canonicalize(&path)
                    .map_err(|e| ModelError::io(&path, "cannot resolve the link", e))?;
                let here = std::fs::canonicalize(&dir)
                    .map_err(|e| ModelError::io(&dir, "cannot resolve the path", e))?;
                let why = if !target.starts_with(&top) {
                    "leads outside the model directory"
                } else if here.starts_with(&target) {
                    "leads to a folder above it (a loop)"
                } else {
                    continue;
                };
                return Err(ModelError::file(
                    &path,
                    format!(
                        "a folder link to {} {why}; not copied (copy the files in instead)",
                        target.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn copy_tree(
    src: &Path,
    dst: &Path,
    skip: &[OsString],
    depth: usize,
    copied: &mut Vec<PathBuf>,
) -> Result<(), ModelError> {
    if depth > MAX_DEPTH {
        return Err(ModelError::file(
            src,
            format!("more than {MAX_DEPTH} folder levels (a symlink loop?)"),
        ));
    }
    let entries = std::fs::read_dir(src).map_err(|e| ModelError::io(src, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(src, "cannot list", e))?;
        let from = entry.path();
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if (depth == 0 && skip.contains(&name)) || name_str.starts_with(PARTIAL_PREFIX) {
            continue;
        }
        let to = dst.join(&name);
        if from.is_dir() {
            if name_str.starts_with('.') {
                continue;
            }
            std::fs::create_dir_all(&to)
                .map_err(|e| ModelError::io(&to, "cannot create directory", e))?;
            copy_tree(&from, &to, skip, depth + 1, copied)?;
        } else if from.is_file() {
            let tmp = partial_file(dst)
                .map_err(|e| ModelError::io(dst, "cannot create a temporary file", e))?;
            std::fs::copy(&from, tmp.path())
                .map_err(|e| ModelError::io(&from, "cannot copy", e))?;
            tmp.persist(&to)
                .map_err(|e| ModelError::io(&to, "cannot move into place", e.error))?;
            copied.push(to);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(13, &[4, 5]), vec![2, 3]);
        assert_eq!(unravel(0, &[4, 5]), vec![0, 0]);
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
    }

    /// transformers must refuse a packed directory in its one line that prints
    /// `transformers_weights`, so no `quantization_config` may lead it to a quantizer first,
    /// and the value must not pass its check for a safetensors file name.
    #[test]
    fn marked_config_makes_transformers_refuse_and_keeps_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        let source = r#"{"model_type": "bert", "quantization_config": {"quant_method": "gptq"}}"#;
        std::fs::write(src.join(CONFIG_FILE), source).unwrap();
        mark_config(&src, &dst, &[Config::FOUR_BIT]).unwrap();
        let text = std::fs::read(dst.join(CONFIG_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["model_type"], "bert");
        assert!(v.get("quantization_config").is_none(), "{v}");
        let refusal = v[TRANSFORMERS_WEIGHTS].as_str().unwrap();
        assert!(
            !refusal.ends_with(".safetensors") && !refusal.ends_with(".safetensors.index.json")
        );
        assert!(refusal.contains("SeedLM-packed") && refusal.contains("seedlm decompress"));
        assert!(!refusal.contains('\n'), "one line: {refusal}");
        assert_eq!(v[MARK]["format"], FORMAT_NAME);
        assert_eq!(
            v[MARK]["configs"],
            serde_json::json!([{"c": 8, "p": 3, "k": 16, "bits_per_weight": 4.0}])
        );
        assert_eq!(original_config(&text).as_deref(), Some(source));
    }

    /// Directories packed before the mark moved out of `quantization_config` restore alike.
    #[test]
    fn old_quantization_config_marks_still_give_the_original() {
        let old = r#"{"quantization_config": {"quant_method": "seedlm", "original_config": "{}"}}"#;
        assert_eq!(original_config(old.as_bytes()).as_deref(), Some("{}"));
        let other = r#"{"quantization_config": {"quant_method": "gptq", "original_config": "{}"}}"#;
        assert_eq!(original_config(other.as_bytes()), None);
    }
}
