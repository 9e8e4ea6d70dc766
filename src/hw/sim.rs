//! Runs the bundled RTL in Verilator: writes the inputs (packed blocks of a real tensor or
//! random valid ones, and the input vector), runs the simulators built by [`crate::hw::build`] as
//! killable child processes, reads back cycle counts and outputs, and cross-checks them against
//! the bit-exact [`crate::hw::model`] and the engine's reconstruction.
//!
//! Every entry point takes a log callback (build output and status lines) and a cancel flag, so
//! it can run on a background thread.

pub use crate::hw::build::{
    HwError, INSTALL_HINT, Target, Toolchain, build, cache_root, check_toolchain,
};

use crate::core::config::Config;
use crate::hw::build::{io_err, wait_child};
use crate::hw::model;
use crate::search::compress::{BlockCode, CompressedTensor};
use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One row of the paper's Table 5 (cycles at 200 MHz).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperRow {
    /// Square matrix size.
    pub size: usize,
    /// FP16 reference design cycles.
    pub reference_cycles: u64,
    /// SeedLM design cycles.
    pub seedlm_cycles: u64,
    /// Speed-up as printed.
    pub speedup: f64,
}

/// The paper's Table 5.
pub const PAPER_TABLE5: [PaperRow; 3] = [
    PaperRow {
        size: 512,
        reference_cycles: 8593,
        seedlm_cycles: 2341,
        speedup: 3.67,
    },
    PaperRow {
        size: 1024,
        reference_cycles: 34201,
        seedlm_cycles: 8723,
        speedup: 3.92,
    },
    PaperRow {
        size: 2048,
        reference_cycles: 136559,
        seedlm_cycles: 34331,
        speedup: 3.98,
    },
];

/// The paper's row for a square size, if Table 5 has one.
pub fn paper_row(size: usize) -> Option<PaperRow> {
    PAPER_TABLE5.iter().copied().find(|r| r.size == size)
}

/// DDR model parameters of the harness, in 200 MHz cycles (calibration in `hdl/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdrParams {
    /// First-read latency, from the read request to the first beat.
    pub ddr_latency: u64,
    /// Extra latency before the SeedLM design's first beat (the paper's deeper pipeline).
    pub fill_latency: u64,
    /// Refresh interval.
    pub refresh_period: u64,
    /// Cycles without data per refresh.
    pub refresh_cycles: u64,
}

impl Default for DdrParams {
    fn default() -> Self {
        DdrParams {
            ddr_latency: 60,
            fill_latency: 160,
            refresh_period: 1560,
            refresh_cycles: 62,
        }
    }
}

/// The inputs of one simulation: the same matrix for both datapaths.
#[derive(Clone, Debug, PartialEq)]
pub struct SimInput {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs), a multiple of 128.
    pub cols: usize,
    /// SeedLM block records, row-major (`cols / 8` a row).
    pub records: Vec<u32>,
    /// Exponent of code E = 0 (scales the SeedLM output; not needed by the hardware).
    pub e_base: i32,
    /// FP16 weights (raw bits), row-major, for the reference datapath.
    pub reference: Vec<u16>,
    /// The input vector, int16.
    pub x: Vec<i16>,
}

impl SimInput {
    /// Builds the inputs from a 4-bit compressed `rows × cols` tensor: its records for SeedLM,
    /// its FP16-rounded reconstruction for the reference, and `x`.
    pub fn from_tensor(
        t: &CompressedTensor,
        rows: usize,
        cols: usize,
        x: Vec<i16>,
    ) -> Result<SimInput, HwError> {
        let records = model::pack_tensor(t, rows, cols)?;
        if x.len() != cols {
            return Err(HwError::Sim(format!(
                "the input vector has {} elements, not {cols}",
                x.len()
            )));
        }
        let reference = t
            .reconstruct()
            .iter()
            .map(|&w| f16::from_f32(w).to_bits())
            .collect();
        Ok(SimInput {
            rows,
            cols,
            records,
            e_base: t.e_base,
            reference,
            x,
        })
    }
}

/// Random valid block codes for a `rows × cols` 4-bit tensor (seeds 1..=65535, any E and q),
/// reproducible from `seed`.
pub fn random_tensor(rows: usize, cols: usize, seed: u64) -> CompressedTensor {
    random_codes(Config::FOUR_BIT, rows * cols, seed)
}

/// `len` weights' worth of uniformly random valid block codes of `cfg`, with the paper's
/// exponent range.
fn random_codes(cfg: Config, len: usize, seed: u64) -> CompressedTensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks = (0..len.div_ceil(cfg.c))
        .map(|_| {
            let mut q = [0i8; crate::core::config::MAX_P];
            for v in &mut q[..cfg.p] {
                *v = rng.random_range(-8..=7);
            }
            BlockCode {
                seed: rng.random_range(1..=(1u32 << cfg.k) - 1),
                e_code: rng.random_range(0..=15),
                q,
            }
        })
        .collect();
    CompressedTensor {
        config: cfg,
        e_base: crate::core::quant::DEFAULT_E_BASE,
        len,
        blocks,
    }
}

/// A random full-range int16 input vector, reproducible from `seed`.
pub fn random_x(cols: usize, seed: u64) -> Vec<i16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..cols).map(|_| rng.random()).collect()
}

/// What one simulation reports.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOutput {
    /// SeedLM design: cycles from the first DDR read to the last output write.
    pub seedlm_cycles: u64,
    /// Reference design: the same.
    pub reference_cycles: u64,
    /// Cycles the SeedLM design's DDR stream spent in refresh.
    pub seedlm_refresh_stalls: u64,
    /// Cycles the reference design's DDR stream spent in refresh.
    pub reference_refresh_stalls: u64,
    /// SeedLM outputs (64-bit integers, see [`hwmodel`]).
    pub y_seedlm: Vec<i64>,
    /// Reference outputs (80-bit integers, see [`hwmodel`]).
    pub y_reference: Vec<i128>,
}

/// Runs the matrix–vector simulator `exe` (from [`build`]) on `input`.
pub fn simulate(
    exe: &Path,
    input: &SimInput,
    ddr: &DdrParams,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<SimOutput, HwError> {
    let (rows, cols) = (input.rows, input.cols);
    model::check_shape(rows, cols)?;
    if input.records.len() != rows * cols / model::C
        || input.reference.len() != rows * cols
        || input.x.len() != cols
    {
        return Err(HwError::Sim(format!(
            "inputs do not match a {rows}×{cols} matrix"
        )));
    }
    let dir = tempfile::tempdir().map_err(io_err("creating a temp dir"))?;
    let write = |name: &str, bytes: Vec<u8>| -> Result<PathBuf, HwError> {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).map_err(io_err(p.display().to_string()))?;
        Ok(p)
    };
    let seedlm = write(
        "seedlm.bin",
        input.records.iter().flat_map(|r| r.to_le_bytes()).collect(),
    )?;
    let reference = write(
        "reference.bin",
        input
            .reference
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect(),
    )?;
    let x = write(
        "x.bin",
        input.x.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )?;
    let mut args = shape_args(rows, cols);
    args.extend([
        "--seedlm".into(),
        seedlm.into(),
        "--ref".into(),
        reference.into(),
    ]);
    args.extend(["--x".into(), x.into()]);
    let text = run_sim(exe, dir.path(), args, ddr, timeout, cancel)?;
    parse_output(&text, rows)
}

fn shape_args(rows: usize, cols: usize) -> Vec<std::ffi::OsString> {
    vec![
        "--rows".into(),
        rows.to_string().into(),
        "--cols".into(),
        cols.to_string().into(),
    ]
}

/// Runs a matrix–vector simulator with `args` and the DDR parameters; returns the
/// text of its output file.
fn run_sim(
    exe: &Path,
    dir: &Path,
    args: Vec<std::ffi::OsString>,
    ddr: &DdrParams,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<String, HwError> {
    let out = dir.join("out.txt");
    let err_path = dir.join("stderr.txt");
    let err_file = std::fs::File::create(&err_path).map_err(io_err("creating stderr file"))?;
    let mut child = Command::new(exe)
        .args(args)
        .arg("--out")
        .arg(&out)
        .args([
            "--ddr-latency",
            &ddr.ddr_latency.to_string(),
            "--fill-latency",
            &ddr.fill_latency.to_string(),
            "--refresh-period",
            &ddr.refresh_period.to_string(),
            "--refresh-cycles",
            &ddr.refresh_cycles.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .map_err(io_err(format!("starting {}", exe.display())))?;
    let status = wait_child(&mut child, "the simulation", timeout, cancel)?;
    if !status.success() {
        let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
        return Err(HwError::Sim(format!("{status}: {}", msg.trim())));
    }
    std::fs::read_to_string(&out).map_err(io_err(out.display().to_string()))
}

fn parse_output(text: &str, rows: usize) -> Result<SimOutput, HwError> {
    let bad = |line: &str| HwError::Sim(format!("unexpected simulator output line `{line}`"));
    let mut o = SimOutput {
        seedlm_cycles: 0,
        reference_cycles: 0,
        seedlm_refresh_stalls: 0,
        reference_refresh_stalls: 0,
        y_seedlm: Vec::with_capacity(rows),
        y_reference: Vec::with_capacity(rows),
    };
    for line in text.lines() {
        let (key, val) = line.split_once(' ').ok_or_else(|| bad(line))?;
        let num = || val.parse::<u64>().map_err(|_| bad(line));
        match key {
            "seedlm_cycles" => o.seedlm_cycles = num()?,
            "reference_cycles" => o.reference_cycles = num()?,
            "seedlm_refresh_stalls" => o.seedlm_refresh_stalls = num()?,
            "reference_refresh_stalls" => o.reference_refresh_stalls = num()?,
            "ys" => o
                .y_seedlm
                .push(u64::from_str_radix(val, 16).map_err(|_| bad(line))? as i64),
            "yr" => {
                let raw = u128::from_str_radix(val, 16).map_err(|_| bad(line))?;
                let s = 128 - model::REFERENCE_ACC_BITS;
                o.y_reference.push(((raw << s) as i128) >> s);
            }
            _ => return Err(bad(line)),
        }
    }
    if o.y_seedlm.len() != rows || o.y_reference.len() != rows || o.seedlm_cycles == 0 {
        return Err(HwError::Sim(format!(
            "the simulator returned {} outputs for {rows} rows",
            o.y_seedlm.len()
        )));
    }
    Ok(o)
}

/// The outcome of the cross-check of one simulation against the Rust models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossCheck {
    /// SeedLM outputs equal [`model::seedlm_matvec`] bit for bit.
    pub seedlm_outputs: bool,
    /// Reference outputs equal [`model::reference_matvec`] bit for bit.
    pub reference_outputs: bool,
    /// The hardware's weights equal the engine's `CompressedTensor::reconstruct()` exactly
    /// (after the f32 rounding both share).
    pub weights: bool,
}

impl CrossCheck {
    /// Everything agrees.
    pub fn ok(&self) -> bool {
        self.seedlm_outputs && self.reference_outputs && self.weights
    }
}

/// Checks a simulation of `input` (made from tensor `t`) against the Rust models.
pub fn cross_check(t: &CompressedTensor, input: &SimInput, out: &SimOutput) -> CrossCheck {
    let (rows, cols) = (input.rows, input.cols);
    let seedlm_outputs = out.y_seedlm == model::seedlm_matvec(&input.records, rows, cols, &input.x);
    let reference_outputs =
        out.y_reference == model::reference_matvec(&input.reference, rows, cols, &input.x);
    let weights = model::reconstruct(&input.records, input.e_base) == t.reconstruct();
    CrossCheck {
        seedlm_outputs,
        reference_outputs,
        weights,
    }
}

/// The result for one matrix size.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeReport {
    /// Rows of the matrix.
    pub rows: usize,
    /// Columns of the matrix.
    pub cols: usize,
    /// Simulated cycle counts and outputs.
    pub sim: SimOutput,
    /// Reference cycles over SeedLM cycles.
    pub speedup: f64,
    /// Cross-check against the Rust models.
    pub check: CrossCheck,
    /// The paper's figures for this size, if square and in Table 5.
    pub paper: Option<PaperRow>,
}

/// Builds (or reuses) the simulator, simulates tensor `t` as a `rows × cols` matrix with input
/// `x`, and cross-checks the result.
pub fn run_tensor(
    t: &CompressedTensor,
    rows: usize,
    cols: usize,
    x: Vec<i16>,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<SizeReport, HwError> {
    let input = SimInput::from_tensor(t, rows, cols, x)?;
    let exe = build(Target::MatVec, log, cancel)?;
    log(&format!("simulating a {rows}×{cols} matrix"));
    let sim = simulate(&exe, &input, ddr, Duration::from_secs(300), cancel)?;
    let check = cross_check(t, &input, &sim);
    log(&format!(
        "{rows}×{cols}: reference {} cycles, SeedLM {} cycles, cross-check {}",
        sim.reference_cycles,
        sim.seedlm_cycles,
        if check.ok() { "passed" } else { "FAILED" }
    ));
    Ok(SizeReport {
        rows,
        cols,
        speedup: sim.reference_cycles as f64 / sim.seedlm_cycles as f64,
        paper: (rows == cols).then(|| paper_row(rows)).flatten(),
        sim,
        check,
    })
}

/// Simulates square matrices of random valid block codes (seeded by the size) for each size.
pub fn run_random_sizes(
    sizes: &[usize],
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<Vec<SizeReport>, HwError> {
    let mut out = Vec::with_capacity(sizes.len());
    for &n in sizes {
        model::check_shape(n, n)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(HwError::Cancelled);
        }
        let t = random_tensor(n, n, n as u64);
        out.push(run_tensor(
            &t,
            n,
            n,
            random_x(n, n as u64 + 1),
            ddr,
            log,
            cancel,
        )?);
    }
    Ok(out)
}

/// The inputs of a 3-bit simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct Sim3Input {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs), 180..=8192.
    pub cols: usize,
    /// 36-bit block records of the row-major flattened matrix.
    pub records: Vec<u64>,
    /// Exponent of code E = 0 (scales the output; not needed by the hardware).
    pub e_base: i32,
    /// The input vector, int16.
    pub x: Vec<i16>,
}

impl Sim3Input {
    /// Builds the inputs from a 3-bit compressed `rows × cols` tensor and `x`.
    pub fn from_tensor(
        t: &CompressedTensor,
        rows: usize,
        cols: usize,
        x: Vec<i16>,
    ) -> Result<Sim3Input, HwError> {
        let records = model::pack_tensor3(t, rows, cols)?;
        if x.len() != cols {
            return Err(HwError::Sim(format!(
                "the input vector has {} elements, not {cols}",
                x.len()
            )));
        }
        Ok(Sim3Input {
            rows,
            cols,
            records,
            e_base: t.e_base,
            x,
        })
    }
}

/// Random valid 3-bit block codes for a `rows × cols` tensor, reproducible from `seed`.
pub fn random_tensor3(rows: usize, cols: usize, seed: u64) -> CompressedTensor {
    random_codes(Config::THREE_BIT, rows * cols, seed)
}

/// What a 3-bit simulation reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Sim3Output {
    /// Cycles from the first DDR read to the last output write.
    pub cycles: u64,
    /// Cycles the DDR stream spent in refresh.
    pub refresh_stalls: u64,
    /// Outputs (64-bit integers, see [`model::seedlm3_matvec`]).
    pub y: Vec<i64>,
}

/// Runs the 3-bit simulator `exe` (from [`build`] with [`Target::MatVec3`]) on `input`.
pub fn simulate3(
    exe: &Path,
    input: &Sim3Input,
    ddr: &DdrParams,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Sim3Output, HwError> {
    let (rows, cols) = (input.rows, input.cols);
    model::check_shape3(rows, cols)?;
    if input.records.len() != (rows * cols).div_ceil(model::C3) || input.x.len() != cols {
        return Err(HwError::Sim(format!(
            "inputs do not match a {rows}×{cols} matrix"
        )));
    }
    let dir = tempfile::tempdir().map_err(io_err("creating a temp dir"))?;
    let seedlm = dir.path().join("seedlm3.bin");
    std::fs::write(&seedlm, model::pack_stream3(&input.records))
        .map_err(io_err(seedlm.display().to_string()))?;
    let x = dir.path().join("x.bin");
    let xb: Vec<u8> = input.x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&x, xb).map_err(io_err(x.display().to_string()))?;
    let mut args = shape_args(rows, cols);
    args.extend(["--seedlm".into(), seedlm.into(), "--x".into(), x.into()]);
    let text = run_sim(exe, dir.path(), args, ddr, timeout, cancel)?;
    parse_output3(&text, rows)
}

fn parse_output3(text: &str, rows: usize) -> Result<Sim3Output, HwError> {
    let bad = |line: &str| HwError::Sim(format!("unexpected simulator output line `{line}`"));
    let mut o = Sim3Output {
        cycles: 0,
        refresh_stalls: 0,
        y: Vec::with_capacity(rows),
    };
    for line in text.lines() {
        let (key, val) = line.split_once(' ').ok_or_else(|| bad(line))?;
        let num = || val.parse::<u64>().map_err(|_| bad(line));
        match key {
            "seedlm3_cycles" => o.cycles = num()?,
            "seedlm3_refresh_stalls" => o.refresh_stalls = num()?,
            "ys" => {
                o.y.push(u64::from_str_radix(val, 16).map_err(|_| bad(line))? as i64)
            }
            _ => return Err(bad(line)),
        }
    }
    if o.y.len() != rows || o.cycles == 0 {
        return Err(HwError::Sim(format!(
            "the simulator returned {} outputs for {rows} rows",
            o.y.len()
        )));
    }
    Ok(o)
}

/// The result of a 3-bit simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreeBitReport {
    /// Rows of the matrix.
    pub rows: usize,
    /// Columns of the matrix.
    pub cols: usize,
    /// Simulated cycles and outputs.
    pub sim: Sim3Output,
    /// Outputs equal [`model::seedlm3_matvec`] bit for bit.
    pub outputs_ok: bool,
    /// The hardware's weights equal the engine's `CompressedTensor::reconstruct()` exactly.
    pub weights_ok: bool,
}

impl ThreeBitReport {
    /// Both cross-checks passed.
    pub fn ok(&self) -> bool {
        self.outputs_ok && self.weights_ok
    }
}

/// Builds (or reuses) the 3-bit simulator, simulates tensor `t` as a `rows × cols` matrix with
/// input `x`, and cross-checks the result.
pub fn run_tensor3(
    t: &CompressedTensor,
    rows: usize,
    cols: usize,
    x: Vec<i16>,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<ThreeBitReport, HwError> {
    let input = Sim3Input::from_tensor(t, rows, cols, x)?;
    let exe = build(Target::MatVec3, log, cancel)?;
    log(&format!("simulating a {rows}×{cols} matrix, 3-bit preset"));
    let sim = simulate3(&exe, &input, ddr, Duration::from_secs(300), cancel)?;
    let outputs_ok = sim.y == model::seedlm3_matvec(&input.records, rows, cols, &input.x);
    let weights_ok = model::reconstruct3(&input.records, t.len, input.e_base) == t.reconstruct();
    let report = ThreeBitReport {
        rows,
        cols,
        sim,
        outputs_ok,
        weights_ok,
    };
    log(&format!(
        "{rows}×{cols} 3-bit: SeedLM {} cycles, cross-check {}",
        report.sim.cycles,
        if report.ok() { "passed" } else { "FAILED" }
    ));
    Ok(report)
}

/// Simulates square matrices of random valid 3-bit block codes (seeded by the size).
pub fn run_random_sizes3(
    sizes: &[usize],
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<Vec<ThreeBitReport>, HwError> {
    let mut out = Vec::with_capacity(sizes.len());
    for &n in sizes {
        model::check_shape3(n, n)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(HwError::Cancelled);
        }
        let t = random_tensor3(n, n, n as u64 + 2);
        out.push(run_tensor3(
            &t,
            n,
            n,
            random_x(n, n as u64 + 1),
            ddr,
            log,
            cancel,
        )?);
    }
    Ok(out)
}

/// Rows and columns of the engine-compressed matrix [`run_compressed_check`] simulates.
pub const CHECK_SHAPE: (usize, usize) = (16, 128);

/// Compresses a small N(0,1) matrix ([`CHECK_SHAPE`]) with the engine's 4-bit preset and
/// simulates it, so the cross-check also covers real search output, not only random codes.
pub fn run_compressed_check(
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<SizeReport, HwError> {
    let (rows, cols) = CHECK_SHAPE;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let normal = rand_distr::Normal::new(0.0f32, 1.0).expect("valid normal");
    let data: Vec<f32> = (0..rows * cols)
        .map(|_| rand_distr::Distribution::sample(&normal, &mut rng))
        .collect();
    log(&format!(
        "compressing a {rows}×{cols} N(0,1) matrix for the cross-check"
    ));
    let (t, _) = crate::search::compress::compress(
        &data,
        Config::FOUR_BIT,
        &crate::search::compress::Progress::default(),
        cancel,
    )
    .map_err(|e| match e {
        crate::search::compress::CompressError::Cancelled => HwError::Cancelled,
        other => HwError::Sim(format!("compressing the cross-check matrix: {other}")),
    })?;
    run_tensor(&t, rows, cols, random_x(cols, 6), ddr, log, cancel)
}

/// One size of the hardware table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    /// Both 4-bit-preset designs (Table 5).
    pub four: SizeReport,
    /// The 3-bit design, when the size fits it (columns ≥ 180).
    pub three: Option<ThreeBitReport>,
}

impl TableRow {
    /// Reference cycles over 3-bit SeedLM cycles.
    pub fn speedup3(&self) -> Option<f64> {
        self.three
            .as_ref()
            .map(|t| self.four.sim.reference_cycles as f64 / t.sim.cycles as f64)
    }

    /// Every cross-check of this size passed.
    pub fn ok(&self) -> bool {
        self.four.check.ok() && self.three.as_ref().is_none_or(ThreeBitReport::ok)
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

/// Runs the whole table: the compressed cross-check, then for each square size both 4-bit
/// designs and, where the size fits, the 3-bit design.
pub fn run_table(
    sizes: &[usize],
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<HwTable, HwError> {
    for &n in sizes {
        model::check_shape(n, n)?;
    }
    let compressed = run_compressed_check(ddr, log, cancel)?;
    let mut rows = Vec::with_capacity(sizes.len());
    for &n in sizes {
        let four = run_random_sizes(&[n], ddr, log, cancel)?.remove(0);
        let three = match model::check_shape3(n, n) {
            Ok(()) => run_random_sizes3(&[n], ddr, log, cancel)?.pop(),
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

/// The result of simulating one compressed tensor, by its preset.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorReport {
    /// A 4-bit tensor: both designs of Table 5.
    FourBit(SizeReport),
    /// A 3-bit tensor: the 3-bit design (the FP16 reference runs on the 4-bit top only).
    ThreeBit(ThreeBitReport),
}

impl TensorReport {
    /// Every cross-check passed.
    pub fn ok(&self) -> bool {
        match self {
            TensorReport::FourBit(r) => r.check.ok(),
            TensorReport::ThreeBit(r) => r.ok(),
        }
    }
}

/// Simulates a compressed tensor of the given shape with a random int16 input vector (seeded
/// by `seed`), on the datapath of its preset.
pub fn run_compressed_tensor(
    t: &CompressedTensor,
    shape: &[usize],
    seed: u64,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<TensorReport, HwError> {
    let (rows, cols) = matrix_shape(shape).ok_or(model::ShapeError::Shape { rows: 0, cols: 0 })?;
    let x = random_x(cols, seed);
    if t.config == Config::THREE_BIT {
        run_tensor3(t, rows, cols, x, ddr, log, cancel).map(TensorReport::ThreeBit)
    } else {
        run_tensor(t, rows, cols, x, ddr, log, cancel).map(TensorReport::FourBit)
    }
}

/// Runs the LFSR unit simulator (from [`build`] with [`Target::LfsrUnit`]) on `seeds` and returns
/// the 24 states the RTL produces after each.
pub fn lfsr_unit_states(
    exe: &Path,
    seeds: &[u16],
    cancel: &AtomicBool,
) -> Result<Vec<[u16; model::STATES]>, HwError> {
    let dir = tempfile::tempdir().map_err(io_err("creating a temp dir"))?;
    let input: String = seeds.iter().map(|s| format!("{s}\n")).collect();
    let in_path = dir.path().join("seeds.txt");
    let out_path = dir.path().join("states.txt");
    std::fs::write(&in_path, input).map_err(io_err(in_path.display().to_string()))?;
    let stdin = std::fs::File::open(&in_path).map_err(io_err(in_path.display().to_string()))?;
    let stdout =
        std::fs::File::create(&out_path).map_err(io_err(out_path.display().to_string()))?;
    let mut child = Command::new(exe)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(format!("starting {}", exe.display())))?;
    let status = wait_child(
        &mut child,
        "the LFSR simulation",
        Duration::from_secs(120),
        cancel,
    )?;
    if !status.success() {
        return Err(HwError::Sim(format!("LFSR simulator: {status}")));
    }
    let text =
        std::fs::read_to_string(&out_path).map_err(io_err(out_path.display().to_string()))?;
    let bad = |l: &str| HwError::Sim(format!("unexpected LFSR simulator output `{l}`"));
    let rows: Vec<[u16; model::STATES]> = text
        .lines()
        .map(|l| {
            let v: Vec<u16> = l
                .split_whitespace()
                .map(|h| u16::from_str_radix(h, 16))
                .collect::<Result<_, _>>()
                .map_err(|_| bad(l))?;
            v.try_into().map_err(|_| bad(l))
        })
        .collect::<Result<_, _>>()?;
    if rows.len() != seeds.len() {
        return Err(HwError::Sim(format!(
            "the LFSR simulator answered {} of {} seeds",
            rows.len(),
            seeds.len()
        )));
    }
    Ok(rows)
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

    #[test]
    fn output_parsing_sign_extends() {
        let text = "seedlm_cycles 10\nreference_cycles 30\nseedlm_refresh_stalls 1\n\
                    reference_refresh_stalls 2\nys ffffffffffffffff\nyr ffff00000000000000ff\n";
        let o = parse_output(text, 1).unwrap();
        assert_eq!(o.y_seedlm, [-1]);
        assert_eq!(o.y_reference, [-(1i128 << 64) + 255]);
        assert_eq!((o.seedlm_cycles, o.reference_cycles), (10, 30));
        assert!(parse_output("seedlm_cycles x\n", 0).is_err());
        assert!(parse_output(text, 2).is_err(), "row count is checked");
    }

    #[test]
    fn random_tensor_is_valid_and_reproducible() {
        let a = random_tensor(4, 128, 7);
        assert_eq!(a, random_tensor(4, 128, 7));
        assert_eq!(a.blocks.len(), 64);
        assert!(
            a.blocks
                .iter()
                .all(|b| b.seed >= 1 && b.seed <= 0xFFFF && b.e_code < 16)
        );
        assert!(SimInput::from_tensor(&a, 4, 128, random_x(128, 1)).is_ok());
        assert!(matches!(
            SimInput::from_tensor(&a, 8, 64, random_x(64, 1)),
            Err(HwError::Shape(_))
        ));
    }
}
