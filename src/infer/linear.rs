//! What the networks share: a linear layer on a stored-form [`Matrix`], small vectors (norms,
//! biases) read as f32, and the hook a calibration forward hands each linear layer's input to.

use crate::infer::kernel::Kernel;
use crate::infer::matrix::Matrix;
use crate::infer::source::Source;
use crate::io::error::ModelError;
use candle_core::{Device, Tensor};
use std::path::Path;

/// What a calibration forward hands each linear layer's input (`[.., in]`) to, with its weight
/// tensor's name.
pub(crate) type Sink<'s> = dyn FnMut(&str, &Tensor) -> candle_core::Result<()> + 's;

/// A linear layer: its weight in stored form and an optional bias.
pub(crate) struct Linear<'a> {
    pub(crate) w: Matrix<'a>,
    pub(crate) b: Option<Tensor>,
}

impl<'a> Linear<'a> {
    /// Layer `name` (`name.weight`, and `name.bias` when `bias`) of `src`, `rows × cols`.
    pub(crate) fn load(
        src: &'a dyn Source,
        name: &str,
        rows: usize,
        cols: usize,
        bias: bool,
    ) -> Result<Self, ModelError> {
        Ok(Linear {
            w: src.matrix(&format!("{name}.weight"), rows, cols)?,
            b: if bias {
                Some(vector(src, &format!("{name}.bias"), rows)?)
            } else {
                None
            },
        })
    }

    /// `x·Wᵀ + b` for `x` of `[.., in]` (any leading dimensions), as `[.., out]`.
    pub(crate) fn forward(&self, kernel: Kernel, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut dims = x.dims().to_vec();
        let n = x.elem_count() / self.w.cols().max(1);
        let y = self
            .w
            .matmul(kernel, &x.flatten_all()?.to_vec1::<f32>()?, n)?;
        if let Some(last) = dims.last_mut() {
            *last = self.w.rows();
        }
        let y = y.reshape(dims)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// A small tensor (a norm's scale, a bias) of `len` values as an f32 tensor.
pub(crate) fn vector(src: &dyn Source, name: &str, len: usize) -> Result<Tensor, ModelError> {
    let v = src.vector(name, len)?;
    Tensor::from_vec(v, len, &Device::Cpu)
        .map_err(|e| ModelError::file(Path::new(name), e.to_string()))
}
