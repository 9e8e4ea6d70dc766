//! Runs the bundled RTL in Verilator: writes the inputs (the DDR stream of a design's records,
//! the FP16 reference's weights, the input vector), runs the simulators built by
//! [`crate::hw::build`] as killable child processes and reads back cycle counts and outputs.
//! Every datapath runs through the same harness (`hdl/tb/mvm_main.cpp`) and the same code here;
//! the cross-checks and reports are in [`crate::hw::report`].
//!
//! Every entry point takes a log callback (build output and status lines) and a cancel flag, so
//! it can run on a background thread.

pub use crate::hw::build::{HwError, INSTALL_HINT, Toolchain, build, cache_root, check_toolchain};
pub use crate::hw::design::{Design, FOUR_BIT, THREE_BIT, random_tensor, random_x};
pub use crate::hw::paper::{PAPER_TABLE5, PaperRow, paper_row};
pub use crate::hw::rtl::Target;

use crate::hw::build::{io_err, wait_child};
use crate::hw::design::reference_takes;
use crate::hw::{fp16, model};
use crate::search::compress::CompressedTensor;
use half::f16;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How long one simulator run may take.
const SIM_TIMEOUT: Duration = Duration::from_secs(300);

/// DDR model parameters of the harness, in 200 MHz cycles (calibration in `hdl/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DdrParams {
    /// First-read latency, from the read request to the first beat.
    pub ddr_latency: u64,
    /// Extra latency before a SeedLM design's first beat (the paper's deeper pipeline).
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

/// The inputs of one simulation: a SeedLM design's records and, where the design runs beside
/// it, the FP16 reference of the same matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SimInput {
    /// The datapath the records are for.
    pub design: Design,
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
    /// Block records of the row-major flattened matrix.
    pub records: Vec<u64>,
    /// Exponent of code E = 0 (scales the SeedLM output; not needed by the hardware).
    pub e_base: i32,
    /// FP16 weights (raw bits), row-major, for the reference datapath, if it runs.
    pub reference: Option<Vec<u16>>,
    /// Also run the 4-bit records on the FP16-converting variant of the datapath
    /// ([`Target::SeedlmFp16Mvm`]).
    pub fp16: bool,
    /// The input vector, int16.
    pub x: Vec<i16>,
}

impl SimInput {
    /// Builds the inputs from a compressed `rows × cols` tensor on the datapath of its preset:
    /// its records, its FP16-rounded reconstruction for the reference (where the reference takes
    /// its shape), and `x`. `fp16` adds the
    /// FP16-converting variant, which only the 4-bit preset has.
    pub fn from_tensor(
        t: &CompressedTensor,
        rows: usize,
        cols: usize,
        x: Vec<i16>,
        fp16: bool,
    ) -> Result<SimInput, HwError> {
        let design = Design::for_config(t.config)?;
        let records = design.records(t, rows, cols)?;
        if x.len() != cols {
            return Err(HwError::Sim(format!(
                "the input vector has {} elements, not {cols}",
                x.len()
            )));
        }
        if fp16 && design != fp16::DESIGN {
            return Err(fp16::variant_refused(design.name));
        }
        let reference = (design.with_reference || reference_takes(rows, cols)).then(|| {
            t.reconstruct()
                .iter()
                .map(|&w| f16::from_f32(w).to_bits())
                .collect()
        });
        Ok(SimInput {
            design,
            rows,
            cols,
            records,
            e_base: t.e_base,
            reference,
            fp16,
            x,
        })
    }
}

/// What one datapath's run reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Run<Y> {
    /// Cycles from the first DDR read to the last output write.
    pub cycles: u64,
    /// Cycles its DDR stream spent in refresh.
    pub refresh_stalls: u64,
    /// Outputs, the accumulator's integers (see [`model`]).
    pub y: Vec<Y>,
}

/// What one simulation reports.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOutput {
    /// The SeedLM datapath (64-bit outputs).
    pub seedlm: Run<i64>,
    /// The FP16 reference datapath (80-bit outputs), if it ran.
    pub reference: Option<Run<i128>>,
    /// The FP16-converting variant of the 4-bit datapath (80-bit outputs), if it ran.
    pub fp16: Option<Run<i128>>,
}

/// Builds (or reuses) the simulators and runs `input` on its SeedLM datapath and, if it has
/// FP16 weights, on the reference datapath, and if asked on the FP16-converting variant.
pub fn simulate(
    input: &SimInput,
    ddr: &DdrParams,
    log: &mut dyn FnMut(&str),
    cancel: &AtomicBool,
) -> Result<SimOutput, HwError> {
    let (rows, cols, design) = (input.rows, input.cols, &input.design);
    design.check_shape(rows, cols)?;
    if input.records.len() != design.blocks(rows, cols)
        || input.x.len() != cols
        || input
            .reference
            .as_ref()
            .is_some_and(|w| w.len() != rows * cols)
    {
        return Err(HwError::Sim(format!(
            "inputs do not match a {rows}×{cols} matrix"
        )));
    }
    let e_base = i8::try_from(input.e_base).map_err(|_| {
        HwError::Sim(format!(
            "the exponent base {} does not fit the hardware's 8 bits",
            input.e_base
        ))
    })?;
    let shared = Shared {
        x: input.x.iter().flat_map(|v| v.to_le_bytes()).collect(),
        rows,
        cols,
        e_base,
        ddr,
        cancel,
    };
    let mut run = |target: Target, stream: &[u8], latency: u64, acc_bits: u32| {
        let exe = build(target, log, cancel)?;
        run_datapath(&exe, stream, latency, acc_bits, &shared)
    };
    let stream = design.stream(&input.records);
    let s = run(
        design.target,
        &stream,
        ddr.ddr_latency + ddr.fill_latency,
        model::SEEDLM_ACC_BITS,
    )?;
    let seedlm = Run {
        cycles: s.cycles,
        refresh_stalls: s.refresh_stalls,
        y: s.y.into_iter().map(|v| v as i64).collect(),
    };
    let reference = match &input.reference {
        Some(w) => {
            let stream: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let latency = ddr.ddr_latency;
            Some(run(
                Target::RefMvm,
                &stream,
                latency,
                model::REFERENCE_ACC_BITS,
            )?)
        }
        None => None,
    };
    let fp16 = if input.fp16 {
        Some(run(
            Target::SeedlmFp16Mvm,
            &stream,
            ddr.ddr_latency + ddr.fill_latency,
            model::REFERENCE_ACC_BITS,
        )?)
    } else {
        None
    };
    Ok(SimOutput {
        seedlm,
        reference,
        fp16,
    })
}

/// What every datapath of one simulation shares: the input vector (little-endian int16), the
/// matrix shape, the tensor's exponent base, the DDR model and the cancel flag.
struct Shared<'a> {
    x: Vec<u8>,
    rows: usize,
    cols: usize,
    e_base: i8,
    ddr: &'a DdrParams,
    cancel: &'a AtomicBool,
}

/// Runs one matrix–vector simulator on a DDR stream with the DDR latency `latency`; returns its
/// cycles and its outputs sign-extended from `acc_bits`.
fn run_datapath(
    exe: &Path,
    stream: &[u8],
    latency: u64,
    acc_bits: u32,
    shared: &Shared<'_>,
) -> Result<Run<i128>, HwError> {
    let Shared {
        ref x,
        rows,
        cols,
        e_base,
        ddr,
        cancel,
    } = *shared;
    let dir = tempfile::tempdir().map_err(io_err("creating a temp dir"))?;
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).map_err(io_err(p.display().to_string()))?;
        Ok::<_, HwError>(p)
    };
    let weights = write("weights.bin", stream)?;
    let x = write("x.bin", x)?;
    let out = dir.path().join("out.txt");
    let err_path = dir.path().join("stderr.txt");
    let err_file = std::fs::File::create(&err_path).map_err(io_err("creating stderr file"))?;
    let mut child = Command::new(exe)
        .args(["--rows", &rows.to_string(), "--cols", &cols.to_string()])
        .arg("--weights")
        .arg(&weights)
        .arg("--x")
        .arg(&x)
        .arg("--out")
        .arg(&out)
        .args([
            "--latency",
            &latency.to_string(),
            "--refresh-period",
            &ddr.refresh_period.to_string(),
            "--refresh-cycles",
            &ddr.refresh_cycles.to_string(),
            "--e-base",
            &e_base.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .map_err(io_err(format!("starting {}", exe.display())))?;
    let status = wait_child(&mut child, "the simulation", SIM_TIMEOUT, cancel)?;
    if !status.success() {
        let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
        return Err(HwError::Sim(format!("{status}: {}", msg.trim())));
    }
    let text = std::fs::read_to_string(&out).map_err(io_err(out.display().to_string()))?;
    parse_output(&text, rows, acc_bits)
}

/// Parses the harness's output: `cycles N`, `refresh_stalls N`, then `y HEX` per row.
fn parse_output(text: &str, rows: usize, acc_bits: u32) -> Result<Run<i128>, HwError> {
    let bad = |line: &str| HwError::Sim(format!("unexpected simulator output line `{line}`"));
    let mut o = Run {
        cycles: 0,
        refresh_stalls: 0,
        y: Vec::with_capacity(rows),
    };
    for line in text.lines() {
        let (key, val) = line.split_once(' ').ok_or_else(|| bad(line))?;
        let num = || val.parse::<u64>().map_err(|_| bad(line));
        match key {
            "cycles" => o.cycles = num()?,
            "refresh_stalls" => o.refresh_stalls = num()?,
            "y" => {
                let raw = u128::from_str_radix(val, 16).map_err(|_| bad(line))?;
                o.y.push(model::wrap_signed(raw as i128, acc_bits));
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
    use crate::core::config::Config;

    #[test]
    fn output_parsing_sign_extends() {
        let text = "cycles 10\nrefresh_stalls 1\ny ffffffffffffffff\n";
        let o = parse_output(text, 1, 64).unwrap();
        assert_eq!(o.y, [-1]);
        assert_eq!((o.cycles, o.refresh_stalls), (10, 1));
        let wide = parse_output("cycles 30\ny 0000ffff00000000000000ff\n", 1, 80).unwrap();
        assert_eq!(wide.y, [-(1i128 << 64) + 255]);
        assert!(parse_output("cycles x\n", 0, 64).is_err());
        assert!(parse_output(text, 2, 64).is_err(), "row count is checked");
    }

    #[test]
    fn random_tensor_is_valid_and_reproducible() {
        let a = random_tensor(Config::FOUR_BIT, 4, 128, 7);
        assert_eq!(a, random_tensor(Config::FOUR_BIT, 4, 128, 7));
        assert_eq!(a.blocks.len(), 64);
        assert!(
            a.blocks
                .iter()
                .all(|b| b.seed >= 1 && b.seed <= 0xFFFF && b.e_code < 16)
        );
        assert!(SimInput::from_tensor(&a, 4, 128, random_x(128, 1), true).is_ok());
        assert!(matches!(
            SimInput::from_tensor(&a, 8, 64, random_x(64, 1), false),
            Err(HwError::Shape(_))
        ));
        let b = random_tensor(Config::THREE_BIT, 5, 200, 7);
        assert_eq!(b.blocks.len(), 84, "1000 weights in blocks of 12");
        let input = SimInput::from_tensor(&b, 5, 200, random_x(200, 1), false).unwrap();
        assert_eq!((input.design, input.reference), (THREE_BIT, None));
        // Only the 4-bit datapath has an FP16-converting variant.
        assert!(SimInput::from_tensor(&b, 5, 200, random_x(200, 1), true).is_err());
    }
}
