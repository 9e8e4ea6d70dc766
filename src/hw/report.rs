//! Simulation reports: runs a compressed tensor on the datapath of its preset (or estimates a
//! tensor of a configuration without RTL, [`crate::hw::estimate`]), cross-checks the
//! outputs against the bit-exact [`crate::hw::model`] (and [`crate::hw::fp16`]) and the weights
//! against the engine's reconstruction, measures each output's error against the exact product
//! ([`crate::hw::accuracy`]), and assembles the table `seedlm hw-sim` and the app's Hardware tab
//! show. Every run takes `fp16`: also run the FP16-converting variant of the 4-bit datapath.

use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::hw::accuracy::{OutputError, exact_output, output_error};
use crate::hw::build::HwError;
use crate::hw::design::{Design, FOUR_BIT, THREE_BIT, random_tensor, random_x};
use crate::hw::estimate::{Estimate, estimate_tensor};
use crate::hw::paper::{PaperRow, paper_row};
use crate::hw::sim::{DdrParams, SimInput, SimOutput, simulate};
use crate::hw::{fp16, model};
use crate::search::compress::CompressedTensor;
use std::sync::atomic::{AtomicBool, Ordering};

/// The outcome of the cross-check of one simulation against the Rust models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossCheck {
    /// SeedLM outputs equal [`model::seedlm_matvec`] bit for bit.
    pub seedlm_outputs: bool,
    /// Reference outputs equal [`model::reference_matvec`] bit for bit (true when the
    /// reference did not run).
    pub reference_outputs: bool,
    /// The FP16-converting variant's outputs equal [`fp16::fp16_matvec`] bit for bit (true when
    /// it did not run).
    pub fp16_outputs: bool,
    /// The hardware's weights equal the engine's `CompressedTensor::reconstruct()` exactly
    /// (after the f32 rounding both share).
    pub weights: bool,
}

impl CrossCheck {
    /// Everything agrees.
    pub fn ok(&self) -> bool {
        self.seedlm_outputs && self.reference_outputs && self.fp16_outputs && self.weights
    }
}

/// Checks a simulation of `input` (made from tensor `t`) against the Rust models.
pub fn cross_check(t: &CompressedTensor, input: &SimInput, out: &SimOutput) -> CrossCheck {
    let (d, rows, cols) = (&input.design, input.rows, input.cols);
    let seedlm_outputs =
        out.seedlm.y == model::seedlm_matvec(d, &input.records, rows, cols, &input.x);
    let reference_outputs = match (&input.reference, &out.reference) {
        (Some(w), Some(r)) => r.y == model::reference_matvec(w, rows, cols, &input.x),
        (None, None) => true,
        _ => false,
    };
    let fp16_outputs = match &out.fp16 {
        Some(r) => {
            input.fp16
                && r.y == fp16::fp16_matvec(&input.records, rows, cols, &input.x, input.e_base)
        }
        None => !input.fp16,
    };
    let weights = model::reconstruct(d, &input.records, t.len, input.e_base) == t.reconstruct();
    CrossCheck {
        seedlm_outputs,
        reference_outputs,
        fp16_outputs,
        weights,
    }
}

/// The error of each datapath's real output against the exact `y = Wx` of the stored weights
/// (the reference's weights are the FP16 rounding of the engine's f32 reconstruction).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Errors {
    /// The SeedLM datapath (fixed point).
    pub seedlm: OutputError,
    /// The FP16 reference, if it ran.
    pub reference: Option<OutputError>,
    /// The FP16-converting variant, if it ran.
    pub fp16: Option<OutputError>,
}

/// Measures the errors of a simulation of `input`.
pub fn errors(input: &SimInput, out: &SimOutput) -> Errors {
    let exact = exact_output(
        &input.design,
        &input.records,
        (input.rows, input.cols),
        &input.x,
        input.e_base,
    );
    let err = |got: Vec<f64>| output_error(&got, &exact);
    Errors {
        seedlm: err(out
            .seedlm
            .y
            .iter()
            .map(|&v| model::seedlm_output_value(v, input.e_base))
            .collect()),
        reference: out.reference.as_ref().map(|r| {
            err(r
                .y
                .iter()
                .map(|&v| model::reference_output_value(v))
                .collect())
        }),
        fp16: out
            .fp16
            .as_ref()
            .map(|r| err(r.y.iter().map(|&v| fp16::fp16_output_value(v)).collect())),
    }
}

/// The result of simulating one matrix on one design.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeReport {
    /// The SeedLM datapath.
    pub design: Design,
    /// Rows of the matrix.
    pub rows: usize,
    /// Columns of the matrix.
    pub cols: usize,
    /// Simulated cycle counts and outputs.
    pub sim: SimOutput,
    /// Cross-check against the Rust models.
    pub check: CrossCheck,
    /// Output errors against the exact product.
    pub errors: Errors,
    /// The paper's figures for this size, if the reference ran, the matrix is square and
    /// Table 5 has it.
    pub paper: Option<PaperRow>,
}

impl SizeReport {
    /// SeedLM cycles.
    pub fn seedlm_cycles(&self) -> u64 {
        self.sim.seedlm.cycles
    }

    /// FP16 reference cycles, if the reference ran.
    pub fn reference_cycles(&self) -> Option<u64> {
        self.sim.reference.as_ref().map(|r| r.cycles)
    }

    /// Cycles of the FP16-converting variant, if it ran.
    pub fn fp16_cycles(&self) -> Option<u64> {
        self.sim.fp16.as_ref().map(|r| r.cycles)
    }

    /// Reference cycles over SeedLM cycles, if the reference ran.
    pub fn speedup(&self) -> Option<f64> {
        self.reference_cycles()
            .map(|r| r as f64 / self.seedlm_cycles() as f64)
    }
}

/// The cycles of one compressed tensor: simulated on the datapath of its preset, or estimated
/// for a configuration that has no RTL.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorReport {
    /// Simulated and cross-checked.
    Simulated(Box<SizeReport>),
    /// Estimated from the DDR model ([`crate::hw::estimate`]).
    Estimated(Estimate),
}

impl TensorReport {
    /// Rows and columns of the matrix.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            TensorReport::Simulated(r) => (r.rows, r.cols),
            TensorReport::Estimated(e) => (e.rows, e.cols),
        }
    }

    /// SeedLM cycles.
    pub fn seedlm_cycles(&self) -> u64 {
        match self {
            TensorReport::Simulated(r) => r.seedlm_cycles(),
            TensorReport::Estimated(e) => e.seedlm_cycles(),
        }
    }

    /// FP16 reference cycles, if the reference takes the shape.
    pub fn reference_cycles(&self) -> Option<u64> {
        match self {
            TensorReport::Simulated(r) => r.reference_cycles(),
            TensorReport::Estimated(e) => e.reference_cycles,
        }
    }

    /// Reference cycles over SeedLM cycles, if the reference takes the shape.
    pub fn speedup(&self) -> Option<f64> {
        match self {
            TensorReport::Simulated(r) => r.speedup(),
            TensorReport::Estimated(e) => e.speedup(),
        }
    }
}

/// Builds (or reuses) the simulators, simulates tensor `t` as `input` lays it out (a
/// [`SimInput::from_tensor`] of it) on the datapath of its preset, and cross-checks the result.
pub fn run_tensor(
    t: &CompressedTensor,
    input: SimInput,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<SizeReport, HwError> {
    let (rows, cols) = (input.rows, input.cols);
    let design = input.design;
    log(&format!(
        "simulating a {rows}×{cols} matrix on the {} design",
        design.name
    ));
    let sim = simulate(&input, ddr, log, cancel)?;
    let check = cross_check(t, &input, &sim);
    let errors = errors(&input, &sim);
    let report = SizeReport {
        design,
        rows,
        cols,
        paper: (design.with_reference && rows == cols)
            .then(|| paper_row(rows))
            .flatten(),
        sim,
        check,
        errors,
    };
    let reference = report
        .reference_cycles()
        .map_or(String::new(), |c| format!("reference {c} cycles, "));
    let fp16 = report
        .fp16_cycles()
        .map_or(String::new(), |c| format!(", FP16-converting {c}"));
    log(&format!(
        "{rows}×{cols} {}: {reference}SeedLM {} cycles{fp16}, cross-check {}",
        design.name,
        report.seedlm_cycles(),
        if report.check.ok() {
            "passed"
        } else {
            "FAILED"
        }
    ));
    Ok(report)
}

/// Simulates square matrices of random valid block codes (seeded by the size) on `design`.
pub fn run_random_sizes(
    design: &Design,
    sizes: &[usize],
    fp16: bool,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<Vec<SizeReport>, HwError> {
    let mut out = Vec::with_capacity(sizes.len());
    for &n in sizes {
        design.check_shape(n, n)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(HwError::Cancelled);
        }
        let t = random_tensor(design.config, n, n, n as u64);
        let input = SimInput::from_tensor(&t, n, n, random_x(n, n as u64 + 1), fp16)?;
        out.push(run_tensor(&t, input, ddr, log, cancel)?);
    }
    Ok(out)
}

/// Rows and columns of the engine-compressed matrix [`run_compressed_check`] simulates.
pub const CHECK_SHAPE: (usize, usize) = (16, 128);

/// Compresses a small N(0,1) matrix ([`CHECK_SHAPE`]) with the engine's 4-bit preset and
/// simulates it, so the cross-check also covers real search output, not only random codes.
pub fn run_compressed_check(
    fp16: bool,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<SizeReport, HwError> {
    let (rows, cols) = CHECK_SHAPE;
    let data = crate::core::random::gaussian(rows * cols, 1.0, 5);
    log(&format!(
        "compressing a {rows}×{cols} N(0,1) matrix for the cross-check"
    ));
    let (t, _) = crate::search::compress::compress(
        &data,
        Config::FOUR_BIT,
        Control::new(&Progress::default(), cancel),
    )
    .map_err(|e| match e {
        crate::search::compress::CompressError::Cancelled => HwError::Cancelled,
        other => HwError::Sim(format!("compressing the cross-check matrix: {other}")),
    })?;
    let input = SimInput::from_tensor(&t, rows, cols, random_x(cols, 6), fp16)?;
    run_tensor(&t, input, ddr, log, cancel)
}

/// One size of the hardware table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    /// The 4-bit design with the FP16 reference beside it (Table 5).
    pub four: SizeReport,
    /// The 3-bit design, when the size fits it (columns ≥ 180).
    pub three: Option<SizeReport>,
}

impl TableRow {
    /// Reference cycles over 3-bit SeedLM cycles.
    pub fn speedup3(&self) -> Option<f64> {
        let reference = self.four.reference_cycles()?;
        self.three
            .as_ref()
            .map(|t| reference as f64 / t.seedlm_cycles() as f64)
    }

    /// Every cross-check of this size passed.
    pub fn ok(&self) -> bool {
        self.four.check.ok() && self.three.as_ref().is_none_or(|t| t.check.ok())
    }
}

/// Everything `seedlm hw-sim` and the app's Hardware tab show.
#[derive(Clone, Debug, PartialEq)]
pub struct HwTable {
    /// The engine-compressed matrix's cross-check ([`run_compressed_check`]).
    pub compressed: SizeReport,
    /// One row per size, random valid codes.
    pub rows: Vec<TableRow>,
}

impl HwTable {
    /// Every cross-check passed.
    pub fn ok(&self) -> bool {
        self.compressed.check.ok() && self.rows.iter().all(TableRow::ok)
    }
}

/// Runs the whole table: the compressed cross-check, then for each square size the 4-bit
/// design with the reference (and with `fp16` its FP16-converting variant) and, where the size
/// fits, the 3-bit design.
pub fn run_table(
    sizes: &[usize],
    fp16: bool,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<HwTable, HwError> {
    for &n in sizes {
        FOUR_BIT.check_shape(n, n)?;
    }
    let compressed = run_compressed_check(fp16, ddr, log, cancel)?;
    let mut rows = Vec::with_capacity(sizes.len());
    for &n in sizes {
        let four = run_random_sizes(&FOUR_BIT, &[n], fp16, ddr, log, cancel)?.remove(0);
        let three = match THREE_BIT.check_shape(n, n) {
            Ok(()) => run_random_sizes(&THREE_BIT, &[n], false, ddr, log, cancel)?.pop(),
            Err(_) => None,
        };
        rows.push(TableRow { four, three });
    }
    Ok(HwTable { compressed, rows })
}

/// The matrix a tensor of `shape` is simulated as: rows = the product of the leading
/// dimensions, columns = the last one (the blocks run along it); a vector is one row.
pub fn matrix_shape(shape: &[usize]) -> Option<(usize, usize)> {
    let (&cols, lead) = shape.split_last()?;
    Some((lead.iter().product(), cols))
}

/// Simulates a compressed tensor of the given shape with a random int16 input vector (seeded
/// by `seed`) on the datapath of its preset, or, for a configuration without RTL, estimates its
/// cycles (which needs no simulator).
pub fn run_compressed_tensor(
    t: &CompressedTensor,
    shape: &[usize],
    seed: u64,
    fp16: bool,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<TensorReport, HwError> {
    let (rows, cols) = matrix_shape(shape).unwrap_or((0, 0));
    let Ok(design) = Design::for_config(t.config) else {
        let e = estimate_tensor(t, rows, cols, ddr)?;
        if fp16 {
            return Err(fp16::variant_refused(&format!(
                "C={}, P={}, K={} configuration, which has no RTL",
                e.config.c, e.config.p, e.config.k
            )));
        }
        // The result line carries the figures and their note; the log only says why no
        // simulation ran, so the two never print the same text.
        log(&format!(
            "{rows}×{cols}: no RTL for C={}, P={}, K={}; cycles estimated, not simulated",
            e.config.c, e.config.p, e.config.k
        ));
        return Ok(TensorReport::Estimated(e));
    };
    design.check_shape(rows, cols)?;
    let input = SimInput::from_tensor(t, rows, cols, random_x(cols, seed), fp16)?;
    run_tensor(t, input, ddr, log, cancel).map(|r| TensorReport::Simulated(Box::new(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_of_tensor_shapes() {
        assert_eq!(matrix_shape(&[384, 1536]), Some((384, 1536)));
        assert_eq!(matrix_shape(&[2, 3, 256]), Some((6, 256)));
        assert_eq!(matrix_shape(&[512]), Some((1, 512)));
        assert_eq!(matrix_shape(&[]), None);
    }
}
