//! Weight sets for evaluation: an original model as its files store it (memory-mapped, never
//! copied), and candidates laid over it, whose tensors that differ come from the candidate's
//! file (a packed file is run from its records) or from values held in memory (the app's
//! reconstructions). A set is a [`Source`] for the inference engine's networks, so evaluating a
//! candidate costs about the size of the files it reads.

use crate::infer::matrix::Matrix;
use crate::infer::source::{Source, StoredModel};
use crate::io::dtype::Dtype;
use crate::io::error::ModelError;
use crate::search::compress::relmse;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Values a candidate's tensor is compared with the original's in at a time.
const CHUNK_VALUES: usize = 1 << 16;

/// One tensor of a candidate whose values differ from the original's.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    /// Tensor name.
    pub name: String,
    /// Relative MSE against the original (docs/DESIGN.md §1).
    pub relmse: f64,
}

/// Where a tensor that replaces the original's comes from.
#[derive(Clone, Debug)]
enum Replacement {
    /// Values held in memory (row-major f32).
    Values(Arc<[f32]>),
    /// The tensor of the same name in a candidate's file.
    File(Arc<StoredModel>),
}

/// A complete set of float weights by name: the original's, with some replaced. Cloning shares
/// everything.
#[derive(Clone, Debug)]
pub struct Weights {
    base: Arc<StoredModel>,
    /// Shapes of the original's float tensors.
    shapes: HashMap<String, Vec<usize>>,
    /// Names in file order.
    order: Vec<String>,
    replaced: HashMap<String, Replacement>,
    /// Tensors that differ from the original this set was laid over (empty for an original).
    changed: Vec<Changed>,
}

impl Weights {
    /// The original model at `path` (a model directory or safetensors file), as stored. Only
    /// its float tensors are part of the set (integer buffers such as BERT's `position_ids`
    /// are left out: the networks make their own).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let base = StoredModel::open(path)?;
        let tensors = base.float_tensors();
        Ok(Weights {
            shapes: tensors.iter().cloned().collect(),
            order: tensors.into_iter().map(|(n, _)| n).collect(),
            base: Arc::new(base),
            replaced: HashMap::new(),
            changed: Vec::new(),
        })
    }

    /// The candidate at `path` (a packed file or directory, or a plain safetensors file or
    /// directory) laid over `self`: its float tensors replace the original's of the same name,
    /// and tensors it lacks stay the original's. A tensor the original does not have, or of
    /// another shape, is an error. Tensors are compared one at a time (memory: one tensor).
    pub fn candidate(&self, path: &Path) -> Result<Self, ModelError> {
        let file = Arc::new(StoredModel::open(path)?);
        let mut out = self.clone();
        for (name, shape) in file.float_tensors() {
            out.put(self, path, &name, &shape, Replacement::File(file.clone()))?;
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
            let shape = match self.shapes.get(&name) {
                Some(s) if s.iter().product::<usize>() == data.len() => s.clone(),
                Some(s) => {
                    return Err(ModelError::tensor(
                        source,
                        &name,
                        format!(
                            "has {} values, the original {}",
                            data.len(),
                            s.iter().product::<usize>()
                        ),
                    ));
                }
                None => vec![data.len()],
            };
            out.put(
                self,
                source,
                &name,
                &shape,
                Replacement::Values(data.into()),
            )?;
        }
        out.sort_changed(self);
        Ok(out)
    }

    /// Puts `with` in place of tensor `name` of `base` when its values differ from the
    /// original's, noting it as changed. The two are compared a few rows at a time, so this
    /// holds no whole tensor in f32.
    fn put(
        &mut self,
        base: &Weights,
        file: &Path,
        name: &str,
        shape: &[usize],
        with: Replacement,
    ) -> Result<(), ModelError> {
        let Some(orig) = base.shapes.get(name) else {
            return Err(ModelError::tensor(
                file,
                name,
                "is not a tensor of the original",
            ));
        };
        if orig != shape {
            return Err(ModelError::tensor(
                file,
                name,
                format!("has shape {shape:?}, the original {orig:?}"),
            ));
        }
        let rows = if shape.len() > 1 { shape[0] } else { 1 };
        let cols = shape.iter().product::<usize>() / rows.max(1);
        let new = match &with {
            Replacement::File(f) => f.matrix(name, rows, cols)?,
            Replacement::Values(v) => {
                Matrix::dense(Dtype::F32, bytemuck::cast_slice(v), rows, cols).ok_or_else(|| {
                    ModelError::tensor(file, name, "has the wrong number of values")
                })?
            }
        };
        let old = base.matrix(name, rows, cols)?;
        self.changed.retain(|c| c.name != name);
        let (mut same, mut err, mut norm) = (true, 0f64, 0f64);
        let step = (CHUNK_VALUES / cols.max(1)).max(1);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for first in (0..rows).step_by(step) {
            let n = step.min(rows - first) * cols;
            a.resize(n, 0.0);
            b.resize(n, 0.0);
            old.decode_rows(first, &mut a);
            new.decode_rows(first, &mut b);
            for (&x, &y) in a.iter().zip(&b) {
                same &= x.to_bits() == y.to_bits();
                err += (f64::from(x) - f64::from(y)).powi(2);
                norm += f64::from(x).powi(2);
            }
        }
        if !same {
            self.changed.push(Changed {
                name: name.to_string(),
                relmse: relmse(err, norm),
            });
            self.replaced.insert(name.to_string(), with);
        } else {
            self.replaced.remove(name);
        }
        Ok(())
    }

    /// Tensor `name` of this set decoded to f32.
    #[cfg(test)]
    fn values(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        match self.replaced.get(name) {
            Some(Replacement::Values(v)) => Ok(v.to_vec()),
            Some(Replacement::File(f)) => f.to_f32(name),
            None => self.base.to_f32(name),
        }
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
            match other.replaced.get(name) {
                Some(r) => out.replaced.insert(name.to_string(), r.clone()),
                None => out.replaced.remove(name),
            };
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

    /// A candle variable builder over f32 copies of every tensor: the reference networks of
    /// the tests (the engine runs every network from the stored form).
    #[cfg(test)]
    pub fn var_builder(&self) -> Result<candle_nn::VarBuilder<'static>, ModelError> {
        use candle_core::{DType, Device, Tensor};
        let mut tensors = HashMap::new();
        for name in &self.order {
            let t = Tensor::from_vec(
                self.values(name)?,
                self.shapes[name].as_slice(),
                &Device::Cpu,
            )
            .map_err(|e| {
                ModelError::tensor(
                    self.base.path(),
                    name,
                    format!("cannot hold it in memory: {e}"),
                )
            })?;
            tensors.insert(name.clone(), t);
        }
        Ok(candle_nn::VarBuilder::from_tensors(
            tensors,
            DType::F32,
            &Device::Cpu,
        ))
    }
}

impl Source for Weights {
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'_>, ModelError> {
        match self.replaced.get(name) {
            Some(Replacement::File(f)) => f.matrix(name, rows, cols),
            Some(Replacement::Values(v)) => {
                let first = self
                    .shapes
                    .get(name)
                    .filter(|s| s.len() > 1)
                    .map_or(1, |s| s[0]);
                Matrix::dense(Dtype::F32, bytemuck::cast_slice(v), rows, cols)
                    .filter(|_| first == rows)
                    .ok_or_else(|| {
                        ModelError::tensor(
                            self.base.path(),
                            name,
                            format!("has {} values, the network needs {rows}×{cols}", v.len()),
                        )
                    })
            }
            None => self.base.matrix(name, rows, cols),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }
}
