//! Comparing SeedLM with the data-free baselines tensor by tensor, with totals over tensors.

use crate::search::compress::Progress;
use crate::study::baselines::{self, BaselineError, Measured, Method};
use std::sync::atomic::{AtomicBool, Ordering};

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
#[allow(clippy::too_many_arguments)]
pub fn compare_tensor(
    name: &str,
    data: &[f32],
    shape: &[usize],
    methods: &[Method],
    moments: Option<&[f64]>,
    progress: &Progress,
    cancel: &AtomicBool,
    keep: &mut dyn FnMut(Method, Vec<f32>),
) -> Result<Vec<Row>, BaselineError> {
    let dims = matrix_shape(shape);
    methods
        .iter()
        .map(|&method| {
            if cancel.load(Ordering::Relaxed) {
                return Err(BaselineError::Cancelled);
            }
            let (measured, recon) =
                baselines::measure(method, data, dims, moments, progress, cancel)?;
            keep(method, recon);
            Ok(Row {
                tensor: name.to_string(),
                method,
                measured,
            })
        })
        .collect()
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

    fn run(name: &str, data: &[f32], shape: &[usize], methods: &[Method]) -> Vec<Row> {
        compare_tensor(
            name,
            data,
            shape,
            methods,
            None,
            &Progress::default(),
            &AtomicBool::new(false),
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
            &progress,
            &AtomicBool::new(false),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(progress.done.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn errors_and_cancel_pass_through() {
        let err = compare_tensor(
            "t",
            &[1.0, f32::INFINITY],
            &[2],
            &[Method::Rtn4Row],
            None,
            &Progress::default(),
            &AtomicBool::new(false),
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
            &Progress::default(),
            &AtomicBool::new(true),
            &mut |_, _| {},
        );
        assert_eq!(err, Err(BaselineError::Cancelled));
    }
}
