//! Comparing SeedLM with the data-free baselines tensor by tensor, with totals over tensors,
//! and with the model run on each method's reconstructions ([`run`], for the CLI and the app).

use crate::core::control::Control;
use crate::eval::{EvalError, Evaluator, Figures, Inputs, Overlay};
use crate::study::baselines::{self, BaselineError, Measured, Method};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;

/// One method on one tensor, or on all of them (`tensor` = [`TOTAL`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Tensor name, or [`TOTAL`].
    pub tensor: String,
    /// The method.
    pub method: Method,
    /// Error sums and storage.
    pub measured: Measured,
}

/// The tensor name of total rows.
pub const TOTAL: &str = "total";

/// The `[rows, cols]` a tensor of `shape` is quantized as: the last dimension is the row (the
/// input dimension of a `[out, in]` weight), every leading dimension is folded into rows.
pub fn matrix_shape(shape: &[usize]) -> (usize, usize) {
    match shape.split_last() {
        None => (1, 1),
        Some((&cols, lead)) => (lead.iter().product(), cols),
    }
}

/// SeedLM blocks `methods` will search on a tensor of `numel` weights: the unit of
/// [`Progress`], because the seed search is nearly all of the time.
pub fn search_blocks(numel: usize, methods: &[Method]) -> u64 {
    methods
        .iter()
        .filter_map(|m| m.scheme().seedlm().map(|cfg| numel.div_ceil(cfg.c) as u64))
        .sum()
}

/// Measures every method on one tensor (`data` row-major with `shape`); calibrated methods
/// weigh its columns by `moments` (see [`baselines::measure`]).
/// Each method's reconstruction ŵ is handed to `keep` as it is made.
pub fn compare_tensor(
    name: &str,
    data: &[f32],
    shape: &[usize],
    methods: &[Method],
    moments: Option<&[f64]>,
    ctl: Control<'_>,
    keep: &mut dyn FnMut(Method, Vec<f32>),
) -> Result<Vec<Row>, BaselineError> {
    let dims = matrix_shape(shape);
    methods
        .iter()
        .map(|&method| {
            if ctl.cancelled() {
                return Err(BaselineError::Cancelled);
            }
            let (measured, recon) = baselines::measure(method, data, dims, moments, ctl)?;
            keep(method, recon);
            Ok(Row {
                tensor: name.to_string(),
                method,
                measured,
            })
        })
        .collect()
}

/// A calibrated method without a calibration text, the one check both front ends make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} needs a calibration text")]
pub struct NeedsText(pub Method);

/// Refuses `methods` when one is calibrated and no calibration text is given.
pub fn check_calibration(methods: &[Method], has_text: bool) -> Result<(), NeedsText> {
    match methods.iter().find(|m| m.is_calibrated()) {
        Some(&m) if !has_text => Err(NeedsText(m)),
        _ => Ok(()),
    }
}

/// `asked` with each paper preset's calibrated twin right after it (unless asked already);
/// `None` when no method of `asked` has a twin.
pub fn with_calibrated_twins(asked: &[Method]) -> Option<Vec<Method>> {
    let mut methods = asked.to_vec();
    for (i, m) in asked.iter().enumerate().rev() {
        if let Some(c) = m.calibrated().filter(|c| !methods.contains(c)) {
            methods.insert(i + 1, c);
        }
    }
    methods.iter().any(|m| m.is_calibrated()).then_some(methods)
}

/// A tensor of a comparison; its weights are read when its turn comes.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Its name in the model.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// The model run of a comparison: the original with each method's reconstructions in place of
/// the compared tensors, against the original (docs/DESIGN.md §4).
pub struct FunctionSpace<'a> {
    /// The original model.
    pub evaluator: &'a Evaluator,
    /// The original's path, whose tensors the reconstructions replace.
    pub source: &'a Path,
    /// The inputs run.
    pub inputs: Inputs,
    /// Further candidates measured after the methods' (the app's own compressed tensors).
    pub extra: Vec<Overlay>,
}

/// What a comparison runs.
pub struct Request<'a> {
    /// The tensors compared.
    pub tensors: &'a [Tensor],
    /// The methods, in the order of the rows.
    pub methods: &'a [Method],
    /// Per tensor name, the input moments the calibrated methods weigh columns by.
    pub moments: &'a HashMap<String, Vec<f64>>,
    /// The model run, when function-space figures are wanted.
    pub function: Option<FunctionSpace<'a>>,
}

/// What a comparison found.
#[derive(Debug)]
pub struct Outcome {
    /// Rows per tensor and method, then [`totals`].
    pub rows: Vec<Row>,
    /// With [`Request::function`]: the figures of each method in order, then of each extra
    /// candidate.
    pub function: Vec<Figures>,
}

/// What a comparison is doing, for its progress display: [`Progress`] counts the search's
/// SeedLM blocks, then (from 0 again) the model run's batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The methods on the tensors.
    Search,
    /// The model runs.
    Model,
}

/// Why a comparison stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompareError<E> {
    /// Reading tensor `index`'s weights failed.
    #[error(transparent)]
    Read(E),
    /// A method failed on tensor `index` (a cancel among them).
    #[error("tensor '{name}': {error}")]
    Tensor {
        /// The tensor's index in [`Request::tensors`].
        index: usize,
        /// Its name.
        name: String,
        /// What went wrong.
        error: BaselineError,
    },
    /// The model run failed or was cancelled.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// Measures every method on every tensor (weights from `read(index)`), adds the totals, and
/// with [`Request::function`] runs the model with each method's reconstructions. `stage` hears
/// when a stage starts.
pub fn run<E>(
    request: Request<'_>,
    read: &mut dyn FnMut(usize) -> Result<Vec<f32>, E>,
    ctl: Control<'_>,
    stage: &mut dyn FnMut(Stage),
) -> Result<Outcome, CompareError<E>> {
    let Request {
        tensors,
        methods,
        moments,
        function,
    } = request;
    stage(Stage::Search);
    let total: u64 = tensors
        .iter()
        .map(|t| search_blocks(t.shape.iter().product(), methods))
        .sum();
    ctl.progress.total.store(total, Ordering::Relaxed);
    // Reconstructions are kept only for the model run: one per method and tensor.
    let mut kept: Vec<Overlay> = vec![Vec::new(); methods.len()];
    let mut rows = Vec::new();
    for (index, t) in tensors.iter().enumerate() {
        let data = read(index).map_err(CompareError::Read)?;
        let mut keep = |m: Method, recon: Vec<f32>| {
            if let (Some(_), Some(i)) = (&function, methods.iter().position(|&x| x == m)) {
                kept[i].push((t.name.clone(), recon));
            }
        };
        let r = compare_tensor(
            &t.name,
            &data,
            &t.shape,
            methods,
            moments.get(&t.name).map(Vec::as_slice),
            ctl,
            &mut keep,
        )
        .map_err(|error| CompareError::Tensor {
            index,
            name: t.name.clone(),
            error,
        })?;
        rows.extend(r);
    }
    rows.extend(totals(&rows));
    let figures = match function {
        Some(f) => {
            stage(Stage::Model);
            ctl.progress.done.store(0, Ordering::Relaxed);
            kept.extend(f.extra);
            f.evaluator
                .compare_overlays(f.source, kept, &f.inputs, ctl)?
        }
        None => Vec::new(),
    };
    Ok(Outcome {
        rows,
        function: figures,
    })
}

/// One total row per method (in the order methods first appear): sums of error and storage
/// over every tensor, so the total relative MSE weighs tensors by their energy.
pub fn totals(rows: &[Row]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for r in rows.iter().filter(|r| r.tensor != TOTAL) {
        match out.iter_mut().find(|t| t.method == r.method) {
            Some(t) => t.measured = t.measured.add(&r.measured),
            None => out.push(Row {
                tensor: TOTAL.to_string(),
                ..r.clone()
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::control::Progress;
    use std::sync::atomic::AtomicBool;

    fn run(name: &str, data: &[f32], shape: &[usize], methods: &[Method]) -> Vec<Row> {
        compare_tensor(
            name,
            data,
            shape,
            methods,
            None,
            Control::unwatched(),
            &mut |_, _| {},
        )
        .unwrap()
    }

    #[test]
    fn shapes_fold_into_rows() {
        assert_eq!(matrix_shape(&[4, 6]), (4, 6));
        assert_eq!(matrix_shape(&[7]), (1, 7));
        assert_eq!(matrix_shape(&[2, 3, 5]), (6, 5));
        assert_eq!(matrix_shape(&[]), (1, 1));
    }

    #[test]
    fn rows_per_method_and_totals_sum() {
        // Tensor a: the hand case of baselines (rtn4-row errs 0.16 of 183.76, 40 bits);
        // tensor b: [0, 15] is exact (scale 1), 2×4 + 20 = 28 bits.
        let methods = [Method::Rtn4Row, Method::Nf4G64];
        let mut rows = run("a", &[-3.0, 0.0, 5.0, 12.0, 2.4], &[1, 5], &methods);
        rows.extend(run("b", &[0.0, 15.0], &[2], &methods));
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].tensor, "a");
        assert_eq!(rows[3].method, Method::Nf4G64);
        let t = totals(&rows);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].tensor, TOTAL);
        assert_eq!(t[0].method, Method::Rtn4Row);
        let m = t[0].measured;
        assert!((m.sq_err - 0.16).abs() < 1e-6);
        assert!((m.sq_norm - (183.76 + 225.0)).abs() < 1e-4);
        assert_eq!((m.bits, m.len), (40 + 28, 7));
        // Totals are sums, not averages of per-tensor figures.
        assert_eq!(t[1].measured, rows[1].measured.add(&rows[3].measured));
    }

    #[test]
    fn progress_counts_seedlm_blocks() {
        let methods = [Method::Rtn3G32, Method::SeedLm4, Method::SeedLm3];
        // 96 weights: 12 blocks of 8 and 8 blocks of 12.
        assert_eq!(search_blocks(96, &methods), 20);
        let data: Vec<f32> = (0..96).map(|i| (i as f32 * 0.71).sin()).collect();
        let progress = Progress::default();
        compare_tensor(
            "t",
            &data,
            &[4, 24],
            &methods,
            None,
            Control::new(&progress, &AtomicBool::new(false)),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(progress.done.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn calibrated_methods_need_a_text_and_twins_follow_their_presets() {
        let asked = [Method::SeedLm4, Method::Nf4G64, Method::SeedLm3];
        assert_eq!(check_calibration(&asked, false), Ok(()));
        let cal = Method::SeedLm4.calibrated().unwrap();
        assert_eq!(check_calibration(&[cal], false), Err(NeedsText(cal)));
        assert!(
            NeedsText(cal)
                .to_string()
                .ends_with("needs a calibration text")
        );
        assert_eq!(check_calibration(&[cal], true), Ok(()));
        let twins = with_calibrated_twins(&asked).unwrap();
        let cal3 = Method::SeedLm3.calibrated().unwrap();
        assert_eq!(
            twins,
            [Method::SeedLm4, cal, Method::Nf4G64, Method::SeedLm3, cal3]
        );
        // A twin asked already is not added again; no preset, no twins.
        assert_eq!(
            with_calibrated_twins(&[Method::SeedLm4, cal])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(with_calibrated_twins(&[Method::Nf4G64]), None);
    }

    #[test]
    fn errors_and_cancel_pass_through() {
        let err = compare_tensor(
            "t",
            &[1.0, f32::INFINITY],
            &[2],
            &[Method::Rtn4Row],
            None,
            Control::unwatched(),
            &mut |_, _| {},
        );
        assert!(matches!(
            err,
            Err(BaselineError::NonFinite { index: 1, .. })
        ));
        let err = compare_tensor(
            "t",
            &[1.0; 4],
            &[4],
            &[Method::Rtn4Row],
            None,
            Control::new(&Progress::default(), &AtomicBool::new(true)),
            &mut |_, _| {},
        );
        assert_eq!(err, Err(BaselineError::Cancelled));
    }
}
