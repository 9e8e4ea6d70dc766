//! The Baselines tab's job: every method on the selected tensors, in weight and function space.

use super::document::{Source, TensorResult};
use super::jobs::Ctx;
use super::quality::APP_TOKENS;
use crate::eval::calibration;
use crate::eval::{Evaluator, Figures, Inputs, Overlay};
use crate::study::baselines::{Measured, Method};
use crate::study::compare::{self, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A tensor handed to a baselines run: name, shape, where its weights are read from.
pub type Input = (String, Vec<usize>, Source);

/// What a baselines run found.
pub struct BaselineRun {
    /// Rows per tensor and method, totals last.
    pub rows: Vec<Row>,
    /// Per method, the model's outputs with the tensors compressed by it (the rest original)
    /// against the original's; or why the model cannot be run.
    pub function: Result<Vec<(Method, Figures)>, String>,
    /// The tensors as the document holds them compressed (each with its own configuration,
    /// e.g. from Allocate): error and storage, and the outputs' figures when the model can be
    /// run. `None` unless every tensor of the run is compressed.
    pub current: Option<(Measured, Option<Figures>)>,
}

/// Every method on every tensor, then the totals, then each method's function-space figures
/// (and the document's own compressed state's, `current`) when the model on disk can be run.
pub fn baselines(
    path: Option<PathBuf>,
    inputs: &[Input],
    methods: &[Method],
    calibration: Option<PathBuf>,
    current: Option<Vec<(Measured, Arc<TensorResult>)>>,
    ctx: &Ctx<()>,
) -> Result<BaselineRun, String> {
    let evaluator = match &path {
        Some(p) => Evaluator::open_model(p).map_err(|e| e.to_string()),
        None => Err("not a model on disk".to_string()),
    };
    let moments = match calibration.filter(|_| methods.iter().any(|m| m.is_calibrated())) {
        Some(text) => {
            let ev = evaluator
                .as_ref()
                .map_err(|e| format!("calibration needs the model to run: {e}"))?;
            let c = calibration::calibrate(ev, &text, ctx.control()).map_err(|e| e.to_string())?;
            ctx.log(&format!(
                "calibrated on {}: {} tensors' input moments",
                text.display(),
                c.moments.len()
            ));
            // Progress now counts the search's blocks.
            ctx.progress().done.store(0, Ordering::Relaxed);
            c.moments
        }
        None => Default::default(),
    };
    // The document's own compressed tensors join the model run as one more candidate.
    let mut extra = Vec::new();
    let current = match current {
        Some(results) => {
            let mut m = Measured::default();
            let mut overlay = Overlay::new();
            for ((name, _, _), (measured, r)) in inputs.iter().zip(&results) {
                m = m.add(measured);
                if evaluator.is_ok() {
                    overlay.push((name.clone(), r.reconstruction().map_err(|e| e.to_string())?));
                }
            }
            if evaluator.is_ok() {
                extra.push(overlay);
            }
            Some(m)
        }
        None => None,
    };
    let tensors: Vec<compare::Tensor> = inputs
        .iter()
        .map(|(name, shape, _)| compare::Tensor {
            name: name.clone(),
            shape: shape.clone(),
        })
        .collect();
    let source = path.as_deref().unwrap_or(Path::new("."));
    let request = compare::Request {
        tensors: &tensors,
        methods,
        moments: &moments,
        function: evaluator.as_ref().ok().map(|ev| compare::FunctionSpace {
            evaluator: ev,
            source,
            inputs: Inputs {
                max_tokens: Some(APP_TOKENS),
                ..Default::default()
            },
            extra,
        }),
    };
    let mut read = |i: usize| inputs[i].2.read();
    let outcome =
        compare::run(request, &mut read, ctx.control(), &mut |_| {}).map_err(|e| e.to_string())?;
    let (rows, mut figures) = (outcome.rows, outcome.function);
    let mut current_figures = None;
    let function = match evaluator {
        Ok(_) => {
            if current.is_some() {
                current_figures = figures.pop();
            }
            Ok(methods.iter().copied().zip(figures).collect())
        }
        Err(e) => Err(e),
    };
    Ok(BaselineRun {
        rows,
        function,
        current: current.map(|m| (m, current_figures)),
    })
}
