//! A planned job in its shard folder: the plan written beside the job (`job.json` and the
//! moments file), read back for a run that asks for the same options, and the input and the
//! moments checked against it before a shard, a resumed run or the merge uses them.

use super::JOB_FILE;
use super::plan::{ShardJobSpec, claim_folder, read_shard_job, tensor_hash};
use crate::core::config::Config;
use crate::io::container::MappedSafetensors;
use crate::io::dtype::Dtype;
use crate::io::error::ModelError;
use crate::io::job_plan::{JobPlan, MOMENTS_FILE, PlanOptions, hex, write_moments};
use crate::io::model::Model;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::AtomicBool;

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
    use crate::io::job_plan::PlanOptions;

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
}
