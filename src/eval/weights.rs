//! Weight sets held in memory as f32 buffers: an original model's, and a candidate's (a packed
//! file decoded in memory, or a plain safetensors model) laid over the original. A set is a
//! [`Source`] for the inference engine's networks.

use crate::infer::matrix::Matrix;
use crate::infer::source::Source;
use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::opened::{Opened, open};
use crate::search::compress::relmse;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One tensor of a candidate whose values differ from the original's.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    /// Tensor name.
    pub name: String,
    /// Relative MSE against the original (docs/DESIGN.md §1).
    pub relmse: f64,
}

/// One tensor's values (row-major f32, shared between sets) and shape.
#[derive(Clone, Debug)]
struct Values {
    data: Arc<[f32]>,
    shape: Vec<usize>,
}

/// A complete set of float weights, by name, on the CPU in f32. Cloning shares the tensors.
#[derive(Clone, Debug)]
pub struct Weights {
    tensors: HashMap<String, Values>,
    /// Names in file order.
    order: Vec<String>,
    /// Tensors that differ from the original this set was laid over (empty for an original).
    changed: Vec<Changed>,
}

impl Weights {
    /// Every float tensor of `model` converted to f32 (integer buffers such as BERT's
    /// `position_ids` are left out: the networks make their own).
    pub fn from_model(model: &Model) -> Result<Self, ModelError> {
        let mut w = Weights {
            tensors: HashMap::new(),
            order: Vec::new(),
            changed: Vec::new(),
        };
        for t in model.tensors() {
            if !crate::io::dtype::is_float(t.dtype) {
                continue;
            }
            let data = model.to_f32(t)?;
            w.tensors.insert(
                t.name.clone(),
                Values {
                    data: data.into(),
                    shape: t.shape.clone(),
                },
            );
            w.order.push(t.name.clone());
        }
        Ok(w)
    }

    /// The candidate at `path` (a packed file or directory, decoded in memory, or a plain
    /// safetensors file or directory) laid over `self`: its float tensors replace the original's
    /// of the same name, and tensors it lacks stay the original's. A tensor the original does not
    /// have, or of another shape, is an error.
    pub fn candidate(&self, path: &Path) -> Result<Self, ModelError> {
        let mut out = self.clone();
        match open(path)? {
            Opened::Plain(m) => {
                for t in m.tensors() {
                    if crate::io::dtype::is_float(t.dtype) {
                        out.put(self, m.file_of(t), &t.name, &t.shape, m.to_f32(t)?)?;
                    }
                }
            }
            Opened::Packed(p) => {
                for t in p.tensors() {
                    if t.packed.is_some() || crate::io::dtype::is_float(t.dtype) {
                        out.put(self, p.path(), &t.name, &t.shape, p.to_f32(t)?)?;
                    }
                }
            }
        }
        out.sort_changed(self);
        Ok(out)
    }

    /// `self` with the tensors of `replaced` (name, row-major values) put in place of its own:
    /// a candidate held in memory, e.g. the app's reconstructions. `source` names where they
    /// come from in errors; a name `self` lacks, or a wrong length, is an error.
    pub fn overlay(
        &self,
        source: &Path,
        replaced: impl IntoIterator<Item = Result<(String, Vec<f32>), ModelError>>,
    ) -> Result<Self, ModelError> {
        let mut out = self.clone();
        for r in replaced {
            let (name, data) = r?;
            let shape = match self.tensors.get(&name) {
                Some(t) if t.data.len() == data.len() => t.shape.clone(),
                Some(t) => {
                    return Err(ModelError::tensor(
                        source,
                        &name,
                        format!("has {} values, the original {}", data.len(), t.data.len()),
                    ));
                }
                None => vec![data.len()],
            };
            out.put(self, source, &name, &shape, data)?;
        }
        out.sort_changed(self);
        Ok(out)
    }

    /// Puts `data` in place of tensor `name` of `base`, noting it as changed when it differs.
    fn put(
        &mut self,
        base: &Weights,
        file: &Path,
        name: &str,
        shape: &[usize],
        data: Vec<f32>,
    ) -> Result<(), ModelError> {
        let Some(orig) = base.tensors.get(name) else {
            return Err(ModelError::tensor(
                file,
                name,
                "is not a tensor of the original",
            ));
        };
        if orig.shape != shape {
            return Err(ModelError::tensor(
                file,
                name,
                format!("has shape {shape:?}, the original {:?}", orig.shape),
            ));
        }
        let before = &orig.data;
        if before
            .iter()
            .zip(&data)
            .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            let (mut err, mut norm) = (0f64, 0f64);
            for (&a, &b) in before.iter().zip(&data) {
                err += (f64::from(a) - f64::from(b)).powi(2);
                norm += f64::from(a).powi(2);
            }
            self.changed.retain(|c| c.name != name);
            self.changed.push(Changed {
                name: name.to_string(),
                relmse: relmse(err, norm),
            });
        }
        self.tensors.insert(
            name.to_string(),
            Values {
                data: data.into(),
                shape: shape.to_vec(),
            },
        );
        Ok(())
    }

    /// Orders the changed tensors as `base`'s file order.
    fn sort_changed(&mut self, base: &Weights) {
        let rank: HashMap<&str, usize> = base
            .order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        self.changed
            .sort_by_key(|c| rank.get(c.name.as_str()).copied().unwrap_or(usize::MAX));
    }

    /// The tensors that differ from the original, in the original's file order.
    pub fn changed(&self) -> &[Changed] {
        &self.changed
    }

    /// `self` with the tensors `names` taken from `other` (names it lacks are skipped).
    pub fn with_tensors_from(&self, other: &Weights, names: &[&str]) -> Weights {
        let mut out = self.clone();
        for &name in names {
            if let Some(t) = other.tensors.get(name) {
                out.tensors.insert(name.to_string(), t.clone());
            }
        }
        out.changed = other
            .changed
            .iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .cloned()
            .collect();
        out
    }

    /// Tensor names in file order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// A candle variable builder over copies of these tensors (f32, CPU).
    pub fn var_builder(&self) -> VarBuilder<'static> {
        let tensors = self
            .tensors
            .iter()
            .filter_map(|(name, v)| {
                let t = Tensor::from_slice(&v.data, v.shape.as_slice(), &Device::Cpu).ok()?;
                Some((name.clone(), t))
            })
            .collect();
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
    }
}

impl Source for Weights {
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'_>, ModelError> {
        let v = self.tensors.get(name).ok_or_else(|| {
            ModelError::tensor(
                Path::new("the weight set"),
                name,
                "is missing (the network needs it)",
            )
        })?;
        let first = if v.shape.len() > 1 { v.shape[0] } else { 1 };
        Matrix::dense(
            crate::io::dtype::Dtype::F32,
            bytemuck::cast_slice(&v.data),
            rows,
            cols,
        )
        .filter(|_| first == rows)
        .ok_or_else(|| {
            ModelError::tensor(
                Path::new("the weight set"),
                name,
                format!("has shape {:?}, the network needs {rows}×{cols}", v.shape),
            )
        })
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
