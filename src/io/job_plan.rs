//! The plan of a sharded or resumable compression with `--target-bpw` and/or `--calibrate`
//! (docs/cluster.md, FORMAT.md §9): what is measured once on the whole model (each tensor's
//! configuration from the bit budget, each linear layer's input moments) and read by every
//! shard, kept in the shard folder's `job.json` and `moments.safetensors`. The plan records
//! the SHA-256 of every input tensor and of the texts it was measured on, so a shard, a
//! resumed run or the merge refuses it once the input or a text changed. Writing, reading and
//! checking it in a shard folder is [`crate::io::shard`]'s.

use crate::io::container::{OutTensor, Payload, write_atomic};
use crate::io::dtype::Dtype;
use crate::io::error::ModelError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

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
    /// [`tensor_hash`](crate::io::shard::tensor_hash) of every tensor of the input, by name: the plan was measured on all of
    /// them.
    pub input: BTreeMap<String, String>,
}

/// Lower-case hex of `bytes`: how SHA-256 digests and cache keys are written everywhere.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

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
