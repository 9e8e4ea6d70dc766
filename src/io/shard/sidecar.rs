//! The app's resume [`Sidecar`]: a one-shard folder beside a model per configuration, a piece
//! per finished tensor, so that an interrupted session resumes.

use super::plan::{ShardJobSpec, claim_folder, read_shard_job};
use super::run::{scan_pieces, write_piece};
use super::sealed::{PartRange, PieceMeta, codes_in, open_sealed};
use super::{JOB_FILE, LAYOUT_VERSION, PIECE_TENSOR, checkpoint_dir, read_json, write_json_atomic};
use crate::core::config::Config;
use crate::io::dtype::{self};
use crate::io::error::ModelError;
use crate::io::job_plan::{JobPlan, PlanOptions, TextId};
use crate::io::model::Model;
use crate::io::model_job::Plan;
use crate::io::packed::pack_blocks;
use crate::search::compress::CompressedTensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Appended to a model's path to name the app's sidecar beside it.
pub const SIDECAR_SUFFIX: &str = ".seedlm-resume";

/// The sidecar's list of tensors asked for and not yet finished.
pub(super) const PENDING_FILE: &str = "pending.json";

/// The app's sidecar: the compressed tensors of one model kept on disk as they finish, so a
/// closed, crashed or killed app loses at most the tensor in progress.
///
/// It holds one shard folder of one shard per configuration and calibration (`c8-p3-k16/`
/// data-free, `c8-p3-k16-cal-<SHA-256 prefix>/` calibrated on a text; the layout and piece
/// files a `compress --resume` run keeps, [`status`] reads it), whose job lists every float
/// tensor of the model (and the calibration text's identity in its plan) and whose pieces are
/// whole tensors, and `pending.json`, the tensors asked for and not finished yet. A tensor is
/// held at one configuration and calibration at a time, so calibrated and data-free codes
/// never mix.
/// Both the app and the shards search with the default (exact) encoder, which the layout
/// version stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    root: PathBuf,
}

/// A tensor a sidecar holds or is asked to compress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SidecarTensor {
    /// Tensor name.
    pub name: String,
    /// Its configuration.
    pub config: Config,
    /// The text its search is calibrated on (`None`: data-free): where to measure the moments
    /// again. The sidecar tells texts apart by their SHA-256 ([`Sidecar::load`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<PathBuf>,
}

impl Sidecar {
    /// The sidecar beside model `path` (a file or a model directory): `PATH.seedlm-resume`.
    pub fn beside(path: &Path) -> Sidecar {
        let mut s = path.as_os_str().to_owned();
        s.push(SIDECAR_SUFFIX);
        Sidecar {
            root: PathBuf::from(s),
        }
    }

    /// The sidecar of model `path` kept in folder `dir` instead (for a model on a read-only
    /// or shared disk): `DIR/NAME-HASH.seedlm-resume`, the hash of the model's absolute path
    /// telling apart models of the same name.
    pub fn in_folder(dir: &Path, path: &Path) -> Sidecar {
        use sha2::{Digest, Sha256};
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let hash = Sha256::digest(abs.as_os_str().as_encoded_bytes());
        let name = path
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        let short = crate::io::job_plan::hex(&hash[..6]);
        Sidecar {
            root: dir.join(format!("{name}-{short}{SIDECAR_SUFFIX}")),
        }
    }

    /// The sidecar of model `path`: in `dir` when one is chosen, else beside the model.
    pub fn for_model(dir: Option<&Path>, path: &Path) -> Sidecar {
        match dir {
            Some(d) => Sidecar::in_folder(d, path),
            None => Sidecar::beside(path),
        }
    }

    /// The sidecar folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn folder(&self, cfg: Config, calibration: Option<&TextId>) -> PathBuf {
        let mut name = format!("c{}-p{}-k{}", cfg.c, cfg.p, cfg.k);
        if let Some(t) = calibration {
            name += "-cal-";
            name.extend(t.sha256.chars().take(16));
        }
        self.root.join(name)
    }

    /// The job of `model` at `cfg` with `calibration`: every float tensor, one shard.
    fn spec(
        model: &Model,
        cfg: Config,
        calibration: Option<&TextId>,
    ) -> Result<ShardJobSpec, ModelError> {
        let names: Vec<String> = model
            .tensors()
            .iter()
            .filter(|t| dtype::is_float(t.dtype) && t.numel() > 0)
            .map(|t| t.name.clone())
            .collect();
        let total_blocks = model
            .tensors()
            .iter()
            .filter(|t| names.contains(&t.name))
            .map(|t| t.numel().div_ceil(cfg.c) as u64)
            .sum();
        let plan = Plan {
            compress: names,
            total_blocks,
        };
        let spec = ShardJobSpec::new(model, &plan, cfg, 1)?;
        Ok(match calibration {
            Some(t) => spec.with_plan(
                None,
                JobPlan {
                    options: PlanOptions {
                        target_bpw: None,
                        sensitivity: None,
                        sensitivity_text: None,
                        calibration: Some(t.clone()),
                    },
                    records: BTreeMap::new(),
                    moments: None,
                    input: BTreeMap::new(),
                },
            ),
            None => spec,
        })
    }

    /// The calibration a job was made with.
    fn calibration_of(spec: &ShardJobSpec) -> Option<&TextId> {
        spec.plan.as_ref()?.options.calibration.as_ref()
    }

    /// The job in `folder` when it is `model`'s at `cfg`, calibrated on a text of the same
    /// SHA-256 as `calibration` (wherever it was then) or data-free like it.
    fn job_in(
        folder: &Path,
        model: &Model,
        cfg: Config,
        calibration: Option<&TextId>,
    ) -> Option<ShardJobSpec> {
        let found = read_shard_job(folder).ok()?;
        let kept = Self::calibration_of(&found);
        if kept.map(|t| &t.sha256) != calibration.map(|t| &t.sha256) {
            return None;
        }
        let want = Self::spec(model, cfg, kept).ok()?;
        want.mismatch(&found).is_none().then_some(found)
    }

    /// The jobs of `model` the sidecar holds, each in its own folder (others are passed over).
    fn jobs(&self, model: &Model) -> Vec<ShardJobSpec> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<ShardJobSpec> = entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                let found = read_shard_job(&path).ok()?;
                let cal = Self::calibration_of(&found);
                let folder = self.folder(found.config, cal);
                (folder == path).then(|| Self::job_in(&folder, model, found.config, cal))?
            })
            .collect();
        out.sort_by_key(|s| {
            let cal = Self::calibration_of(s).map(|t| t.sha256.clone());
            (s.config.c, s.config.p, s.config.k, cal)
        });
        out
    }

    /// The finished tensors of `model` the sidecar holds, in the model's order within each
    /// configuration. Pieces of other jobs are passed over; their data is checked when loaded.
    pub fn finished(&self, model: &Model) -> Vec<SidecarTensor> {
        let mut out = Vec::new();
        for spec in self.jobs(model) {
            let calibration = Self::calibration_of(&spec);
            let ckpt = checkpoint_dir(&self.folder(spec.config, calibration), 0, 1);
            // Damaged pieces are passed over: their tensors are compressed again.
            let Ok(pieces) = scan_pieces(&ckpt, &spec, true) else {
                continue;
            };
            let pieces = pieces.intact;
            for t in &spec.tensors {
                if pieces.iter().any(|(r, _)| r.tensor == t.name) {
                    out.push(SidecarTensor {
                        name: t.name.clone(),
                        config: spec.config,
                        calibration: calibration.map(|t| t.path.clone()),
                    });
                }
            }
        }
        out
    }

    /// Tensor `name` of `model` at `cfg` with `calibration` (`None`: data-free) if the
    /// sidecar holds it, made from data of [`tensor_hash`] `hash`.
    pub fn load(
        &self,
        model: &Model,
        cfg: Config,
        calibration: Option<&TextId>,
        name: &str,
        hash: &str,
    ) -> Result<Option<CompressedTensor>, ModelError> {
        let folder = self.folder(cfg, calibration);
        let Some(spec) = Self::job_in(&folder, model, cfg, calibration) else {
            return Ok(None);
        };
        let ckpt = checkpoint_dir(&folder, 0, 1);
        let Some(t) = spec.tensors.iter().find(|t| t.name == name) else {
            return Ok(None);
        };
        let Ok(pieces) = scan_pieces(&ckpt, &spec, false) else {
            return Ok(None);
        };
        let pieces = pieces.intact;
        let Some((r, path)) = pieces
            .iter()
            .find(|(r, _)| r.tensor == name && r.start == 0 && r.end == t.blocks)
        else {
            return Ok(None);
        };
        if r.hash != hash {
            return Ok(None);
        }
        let file = open_sealed(path)?;
        let blocks = codes_in(&file, PIECE_TENSOR, r, cfg)?;
        let len = t.shape.iter().product();
        Ok(Some(CompressedTensor {
            config: cfg,
            e_base: r.e_base,
            len,
            blocks,
        }))
    }

    /// Writes compressed tensor `name` of `model` (its data of [`tensor_hash`] `hash`,
    /// searched with `calibration`, `None` for data-free) atomically, and forgets it at every
    /// other configuration and calibration.
    pub fn save(
        &self,
        model: &Model,
        name: &str,
        hash: &str,
        calibration: Option<&TextId>,
        tensor: &CompressedTensor,
    ) -> Result<(), ModelError> {
        let cfg = tensor.config;
        let folder = self.folder(cfg, calibration);
        // A folder of the same text keeps the path it was first made with.
        let spec = match Self::job_in(&folder, model, cfg, calibration) {
            Some(kept) => kept,
            None => Self::spec(model, cfg, calibration)?,
        };
        let index = spec
            .tensors
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| ModelError::tensor(model.path(), name, "is not a float tensor"))?;
        // What an older layout kept cannot be read any more: start this configuration afresh.
        if read_json::<ShardJobSpec>(&folder.join(JOB_FILE))
            .is_ok_and(|j| j.layout != LAYOUT_VERSION)
        {
            super::remove_folder(&folder)
                .map_err(|e| ModelError::io(&folder, "cannot remove", e))?;
        }
        claim_folder(&folder, &spec)?;
        let ckpt = checkpoint_dir(&folder, 0, 1);
        std::fs::create_dir_all(&ckpt)
            .map_err(|e| ModelError::io(&ckpt, "cannot create directory", e))?;
        let meta = PieceMeta {
            job: spec.id(),
            range: PartRange {
                tensor: name.to_string(),
                start: 0,
                end: tensor.num_blocks(),
                e_base: tensor.e_base,
                hash: hash.to_string(),
            },
        };
        write_piece(&ckpt, index, &meta, &pack_blocks(tensor))?;
        let sha = |c: Option<&TextId>| c.map(|t| t.sha256.clone());
        let others = self
            .jobs(model)
            .into_iter()
            .filter(|s| (s.config, sha(Self::calibration_of(s))) != (cfg, sha(calibration)));
        for other in others {
            let dir = checkpoint_dir(
                &self.folder(other.config, Self::calibration_of(&other)),
                0,
                1,
            );
            let pieces = scan_pieces(&dir, &other, false);
            for (r, path) in pieces.map(|p| p.intact).unwrap_or_default() {
                if r.tensor == name {
                    std::fs::remove_file(&path)
                        .map_err(|e| ModelError::io(&path, "cannot remove", e))?;
                }
            }
        }
        Ok(())
    }

    /// The tensors asked for and not finished when the list was last written.
    pub fn pending(&self) -> Vec<SidecarTensor> {
        read_json(&self.root.join(PENDING_FILE)).unwrap_or_default()
    }

    /// Replaces the list of tensors asked for (removed when empty), atomically.
    pub fn set_pending(&self, tensors: &[SidecarTensor]) -> Result<(), ModelError> {
        let path = self.root.join(PENDING_FILE);
        if tensors.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(ModelError::io(&path, "cannot remove", e))
                }
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(&self.root)
            .map_err(|e| ModelError::io(&self.root, "cannot create directory", e))?;
        write_json_atomic(&path, &tensors)
    }

    /// Removes the sidecar and all it holds.
    pub fn discard(&self) -> Result<(), ModelError> {
        super::remove_folder(&self.root).map_err(|e| ModelError::io(&self.root, "cannot remove", e))
    }
}
