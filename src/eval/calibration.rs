//! Calibration for the activation-weighted search (`compress --calibrate`, and the calibrated
//! methods of `compare` and the Baselines tab): a text file run through the model for the second
//! moments of each linear layer's inputs, and the record that names it in a packed file.

use super::{EvalError, Evaluator};
use crate::core::control::Control;
use crate::io::error::ModelError;
use crate::io::job_plan::{TextId, hex};
use crate::io::packed::CalibrationRecord;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// What a calibration pass measured.
pub struct Calibration {
    /// E[x_j²] of each input channel of every linear layer reached, by weight tensor name.
    pub moments: HashMap<String, Vec<f64>>,
    /// The text measured: its absolute path and the SHA-256 of the bytes read.
    pub text: TextId,
}

impl Calibration {
    /// The `seedlm.calibration` record of a search weighted by these moments: the mode, the
    /// text's file name and SHA-256, and the `tensors` that were weighted.
    pub fn record(&self, tensors: Vec<String>) -> CalibrationRecord {
        CalibrationRecord::weighted_by(&self.text, tensors)
    }
}

/// The calibration of the model at `model` (a model directory, or a weights file in one) on
/// the text at `text`: the one entry point of `compress --calibrate`, the plan step and the
/// app, so all measure the same moments.
pub fn calibrate_model(
    model: &Path,
    text: &Path,
    ctl: Control<'_>,
) -> Result<Calibration, EvalError> {
    calibrate(&Evaluator::open_model(model)?, text, ctl)
}

/// Reads the UTF-8 text at `path` and measures its moments with `evaluator` (see
/// [`Evaluator::input_moments`] for how each family reads it).
pub fn calibrate(
    evaluator: &Evaluator,
    path: &Path,
    ctl: Control<'_>,
) -> Result<Calibration, EvalError> {
    let bytes =
        std::fs::read(path).map_err(|e| ModelError::file(path, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ModelError::file(path, "calibration text is not UTF-8"))?;
    let moments = evaluator.input_moments(path, text, ctl)?;
    let text = TextId {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        sha256: hex(&Sha256::digest(&bytes)),
    };
    Ok(Calibration { moments, text })
}
