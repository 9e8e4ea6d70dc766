//! The plan of a sharded or resumable compression with `--target-bpw` and/or `--calibrate`
//! (docs/cluster.md, FORMAT.md §9): what is measured once on the whole model (each tensor's
//! configuration from the bit budget, each linear layer's input moments) and read by every
//! shard, kept in the shard folder's `job.json` and `moments.safetensors`. The plan records
//! the SHA-256 of every input tensor and of the texts it was measured on, so a shard, a
//! resumed run or the merge refuses it once the input or a text changed.

use crate::core::config::Config;
use crate::io::container::{MappedSafetensors, OutTensor, Payload, write_atomic};
use crate::io::dtype::Dtype;
use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::shard::{JOB_FILE, ShardJobSpec, claim_folder, read_shard_job, tensor_hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The moments file inside a shard folder.
pub const MOMENTS_FILE: &str = "moments.safetensors";

/// A text a plan was measured on: where it was and its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextId {
    /// Absolute path when the plan was made.
    pub path: PathBuf,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

impl TextId {
    /// The identity of the text file at `path`.
    pub fn of(path: &Path) -> Result<TextId, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, "cannot read", e))?;
        Ok(TextId {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            sha256: hex(&Sha256::digest(&bytes)),
        })
    }
}

/// The options a plan is made for; a run asking for other options cannot use it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// `--target-bpw`.
    pub target_bpw: Option<f64>,
    /// Where α comes from with `--target-bpw`: `text`, `vocabulary` or `none`.
    pub sensitivity: Option<String>,
    /// `--sensitivity-text`.
    pub sensitivity_text: Option<TextId>,
    /// `--calibrate`.
    pub calibration: Option<TextId>,
}

impl PlanOptions {
    /// Why a run with options `asked` cannot use a plan made for these (`None` when it can),
    /// naming `job` (the plan's job.json) and, for a text that changed, the text.
    pub fn refusal(&self, asked: &PlanOptions, job: &Path) -> Option<ModelError> {
        let texts = [
            (&self.sensitivity_text, &asked.sensitivity_text),
            (&self.calibration, &asked.calibration),
        ];
        for (made, now) in texts {
            if let (Some(made), Some(now)) = (made, now)
                && made.sha256 != now.sha256
            {
                let what = if made.path == now.path {
                    "changed since".to_string()
                } else {
                    format!("is not {}, the text of", made.path.display())
                };
                return Some(ModelError::file(
                    &now.path,
                    format!(
                        "{what} the plan in {} was made; remove the shard folder and make the plan again",
                        job.display()
                    ),
                ));
            }
        }
        let show = |b: Option<f64>| b.map_or_else(|| "none".to_string(), |b| b.to_string());
        let mode = |o: &PlanOptions| match o.calibration {
            Some(_) => "calibrated",
            None => "data-free",
        };
        let mut differ = Vec::new();
        if self.target_bpw.map(f64::to_bits) != asked.target_bpw.map(f64::to_bits) {
            differ.push(format!(
                "--target-bpw {} instead of {}",
                show(self.target_bpw),
                show(asked.target_bpw)
            ));
        }
        if self.sensitivity != asked.sensitivity
            || self.sensitivity_text.is_some() != asked.sensitivity_text.is_some()
        {
            let s = |o: &PlanOptions| o.sensitivity.clone().unwrap_or_else(|| "none".into());
            differ.push(format!("sensitivity {} instead of {}", s(self), s(asked)));
        }
        if self.calibration.is_some() != asked.calibration.is_some() {
            differ.push(format!("{} instead of {}", mode(self), mode(asked)));
        }
        (!differ.is_empty()).then(|| {
            ModelError::file(
                job,
                format!(
                    "the shard folder holds a plan for other options ({}); use another output or remove the folder",
                    differ.join(", ")
                ),
            )
        })
    }

    /// The options in words, as on the command line.
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        if let Some(b) = self.target_bpw {
            out.push(format!("--target-bpw {b}"));
        }
        match (&self.sensitivity_text, self.sensitivity.as_deref()) {
            (Some(t), _) => out.push(format!("--sensitivity-text {}", t.path.display())),
            (None, Some(s)) if self.target_bpw.is_some() => out.push(format!("--sensitivity {s}")),
            _ => {}
        }
        if let Some(t) = &self.calibration {
            out.push(format!("--calibrate {}", t.path.display()));
        }
        if out.is_empty() {
            "no plan".into()
        } else {
            out.join(" ")
        }
    }
}

/// What a plan step measured, as `job.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPlan {
    /// The options it was made for.
    pub options: PlanOptions,
    /// The packed output's metadata records (`seedlm.allocation`, `seedlm.calibration`), as a
    /// single-machine run writes them.
    pub records: BTreeMap<String, String>,
    /// SHA-256 of [`MOMENTS_FILE`] when calibrated.
    pub moments: Option<String>,
    /// [`tensor_hash`] of every tensor of the input, by name: the plan was measured on all of
    /// them.
    pub input: BTreeMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`tensor_hash`] of every tensor of `model` but those named in `except`; `None` when
/// `cancel` was raised.
pub fn input_hashes(
    model: &Model,
    except: &[&str],
    cancel: &AtomicBool,
) -> Option<BTreeMap<String, String>> {
    model
        .tensors()
        .iter()
        .filter(|t| !except.contains(&t.name.as_str()))
        .map(|t| {
            tensor_hash(&t.name, t.dtype, &t.shape, model.bytes(t), cancel)
                .map(|h| (t.name.clone(), h))
        })
        .collect()
}

impl JobPlan {
    /// Checks that tensor `name` of `model` has the hash `hash` it had when the plan was made.
    pub fn check_tensor(
        &self,
        model: &Model,
        name: &str,
        hash: &str,
        folder: &Path,
    ) -> Result<(), ModelError> {
        if self.input.get(name).is_some_and(|h| h == hash) {
            return Ok(());
        }
        let file = model.get(name).map_or_else(
            || model.path().to_path_buf(),
            |t| model.file_of(t).to_path_buf(),
        );
        Err(ModelError::tensor(
            &file,
            name,
            format!(
                "changed since the plan in {} was made; remove the shard folder and make the plan again",
                folder.join(JOB_FILE).display()
            ),
        ))
    }

    /// Checks every tensor of `model` but those named in `except` (the caller checks them
    /// with [`JobPlan::check_tensor`]) against the plan; `Ok(false)` when `cancel` was raised.
    pub fn check_input(
        &self,
        model: &Model,
        folder: &Path,
        except: &[&str],
        cancel: &AtomicBool,
    ) -> Result<bool, ModelError> {
        let Some(now) = input_hashes(model, except, cancel) else {
            return Ok(false);
        };
        let gone = self
            .input
            .keys()
            .find(|n| !now.contains_key(*n) && !except.contains(&n.as_str()));
        if let Some(name) = gone {
            return Err(ModelError::tensor(
                model.path(),
                name,
                format!(
                    "is gone since the plan in {} was made",
                    folder.join(JOB_FILE).display()
                ),
            ));
        }
        for (name, hash) in &now {
            self.check_tensor(model, name, hash, folder)?;
        }
        Ok(true)
    }

    /// The moments of the plan, read from `folder` and checked against the recorded SHA-256
    /// (empty when the plan has none).
    pub fn read_moments(&self, folder: &Path) -> Result<HashMap<String, Vec<f64>>, ModelError> {
        let Some(want) = &self.moments else {
            return Ok(HashMap::new());
        };
        let path = folder.join(MOMENTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, "cannot read", e))?;
        if hex(&Sha256::digest(&bytes)) != *want {
            return Err(ModelError::file(
                &path,
                format!(
                    "changed since the plan in {} was made (its SHA-256 differs); remove the shard folder and make the plan again",
                    folder.join(JOB_FILE).display()
                ),
            ));
        }
        drop(bytes);
        let file = MappedSafetensors::open(&path)?;
        let mut out = HashMap::new();
        for t in file.tensors() {
            if t.dtype != Dtype::F64 {
                return Err(ModelError::tensor(&path, &t.name, "is not F64"));
            }
            let v = file
                .bytes(t)
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            out.insert(t.name.clone(), v);
        }
        Ok(out)
    }
}

/// Writes `moments` (one F64 tensor each) to `folder`'s [`MOMENTS_FILE`] atomically and returns
/// the file's SHA-256.
pub fn write_moments(
    folder: &Path,
    moments: &HashMap<String, Vec<f64>>,
) -> Result<String, ModelError> {
    let path = folder.join(MOMENTS_FILE);
    let mut names: Vec<&String> = moments.keys().collect();
    names.sort();
    let tensors = names
        .into_iter()
        .map(|n| {
            let v = &moments[n];
            OutTensor {
                name: n.clone(),
                dtype: Dtype::F64,
                shape: vec![v.len()],
                data: Payload::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            }
        })
        .collect();
    write_atomic(&path, tensors, &BTreeMap::new())?;
    let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, "cannot read", e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// Writes the plan of job `base` into its shard folder `folder`: the moments file (when
/// calibrated) and `job.json` with `configs` (one per tensor, when a bit budget chose them),
/// the options, the output's metadata `records` and the input's tensor hashes `input`.
/// Returns the planned job. A folder holding another job is refused (naming its job.json).
pub fn write_plan(
    folder: &Path,
    base: ShardJobSpec,
    configs: Option<&[Config]>,
    options: PlanOptions,
    records: BTreeMap<String, String>,
    moments: &HashMap<String, Vec<f64>>,
    input: BTreeMap<String, String>,
) -> Result<ShardJobSpec, ModelError> {
    std::fs::create_dir_all(folder)
        .map_err(|e| ModelError::io(folder, "cannot create directory", e))?;
    let sha = match options.calibration {
        Some(_) => Some(write_moments(folder, moments)?),
        None => None,
    };
    let spec = base.with_plan(
        configs,
        JobPlan {
            options,
            records,
            moments: sha,
            input,
        },
    );
    claim_folder(folder, &spec)?;
    Ok(spec)
}

/// The planned job in `folder` for a run of job `base` (made without a plan) asking for
/// `asked`, when the folder holds one: `None` when it holds no job yet. A plan made for other
/// options, another input, selection or shard count, or from a text that changed since, is
/// refused with an error naming the file.
pub fn read_plan(
    folder: &Path,
    base: &ShardJobSpec,
    asked: &PlanOptions,
) -> Result<Option<ShardJobSpec>, ModelError> {
    let path = folder.join(JOB_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let existing = read_shard_job(folder)?;
    let Some(plan) = &existing.plan else {
        return Err(ModelError::file(
            &path,
            "the shard folder holds a job without a plan (no --target-bpw or --calibrate); use another output or remove the folder",
        ));
    };
    if let Some(e) = plan.options.refusal(asked, &path) {
        return Err(e);
    }
    let configs: Vec<Config> = (0..existing.tensors.len())
        .map(|i| existing.config_of(i))
        .collect();
    let planned = existing.tensors.iter().any(|t| t.config.is_some());
    let want = base
        .clone()
        .with_plan(planned.then_some(configs.as_slice()), plan.clone());
    if let Some(why) = existing.mismatch(&want) {
        return Err(ModelError::file(
            &path,
            format!(
                "the shard folder holds another job ({why} than this run); use another output or remove the folder"
            ),
        ));
    }
    Ok(Some(existing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(moments: Option<String>) -> JobPlan {
        JobPlan {
            options: PlanOptions {
                target_bpw: None,
                sensitivity: None,
                sensitivity_text: None,
                calibration: None,
            },
            records: BTreeMap::new(),
            moments,
            input: BTreeMap::new(),
        }
    }

    #[test]
    fn moments_round_trip_exactly_and_an_edited_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let moments = HashMap::from([
            ("a.weight".to_string(), vec![0.1, 1e-300, 3.0]),
            ("b.weight".to_string(), vec![f64::MIN_POSITIVE; 5]),
        ]);
        let sha = write_moments(dir.path(), &moments).unwrap();
        let p = plan(Some(sha));
        assert_eq!(p.read_moments(dir.path()).unwrap(), moments);
        assert!(plan(None).read_moments(dir.path()).unwrap().is_empty());
        let path = dir.path().join(MOMENTS_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = p.read_moments(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(MOMENTS_FILE) && err.contains("changed since the plan"),
            "{err}"
        );
    }

    #[test]
    fn refusal_names_the_changed_text_or_the_other_options() {
        let text = |path: &str, sha: &str| TextId {
            path: PathBuf::from(path),
            sha256: sha.into(),
        };
        let made = PlanOptions {
            target_bpw: Some(4.0),
            sensitivity: Some("vocabulary".into()),
            sensitivity_text: None,
            calibration: Some(text("/t/calib.txt", "aa")),
        };
        let job = Path::new("/o.shards/job.json");
        assert!(made.refusal(&made, job).is_none());
        // The same text elsewhere is the same text.
        let mut moved = made.clone();
        moved.calibration = Some(text("/u/copy.txt", "aa"));
        assert!(made.refusal(&moved, job).is_none());
        let mut changed = made.clone();
        changed.calibration = Some(text("/t/calib.txt", "bb"));
        let err = made.refusal(&changed, job).unwrap().to_string();
        assert!(
            err.starts_with("/t/calib.txt")
                && err.contains("changed since the plan in /o.shards/job.json"),
            "{err}"
        );
        let mut other = made.clone();
        other.target_bpw = Some(3.5);
        let err = made.refusal(&other, job).unwrap().to_string();
        assert_eq!(
            err,
            "/o.shards/job.json: the shard folder holds a plan for other options (--target-bpw 4 instead of 3.5); use another output or remove the folder"
        );
        other.calibration = None;
        let err = made.refusal(&other, job).unwrap().to_string();
        assert!(
            err.contains("(--target-bpw 4 instead of 3.5, calibrated instead of data-free)"),
            "{err}"
        );
    }
}
