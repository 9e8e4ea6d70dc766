//! The command line: a thin layer over the engine. Each subcommand lives in its own file;
//! [`plan_step`] is the plan step several of them share.
//!
//! May use: every engine folder (and [`crate::app`] to open the app). Nothing in the engine uses it.

pub mod bench;
pub mod bench_infer;
pub mod compare;
pub mod compress;
pub mod decompress;
pub mod eval;
pub mod explore;
pub mod generate;
pub mod hw_sim;
pub mod inspect;
pub mod merge;
pub mod output;
pub mod plan;
pub mod plan_step;
pub mod shard;
pub mod slurm;
pub mod status;
pub mod stdout;
pub mod watch;

use crate::core::quant::Rounding;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// How a candidate seed's exponent and coefficients are chosen (`--encoder`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Encoder {
    /// The closest point of the format's lattice (every exponent, every q), for P ≤ 4; larger P
    /// use `fast`.
    #[default]
    Exact,
    /// Round at e*−1, e*, e*+1, then move single coefficients by ±1 (about 5 % faster).
    Fast,
}

impl Encoder {
    /// The engine's rounding rule for this choice.
    pub fn rounding(self) -> Rounding {
        match self {
            Encoder::Exact => Rounding::Exact,
            Encoder::Fast => Rounding::Refined,
        }
    }
}

/// SeedLM Studio: compress LLM weights into LFSR seeds, inspect the result, and simulate the
/// hardware decompressor. Run with no subcommand to open the app on the bundled demo model.
#[derive(Debug, Parser)]
#[command(name = "seedlm", version, about, long_about = None)]
pub struct Cli {
    /// What to do; with none, the app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the app on a model file, model directory, packed file or shard folder.
    Gui {
        /// File or folder to open (default: the bundled demo model).
        path: Option<PathBuf>,
        /// Compress this tensor (by name, repeatable) once the model is open, as "Compress
        /// selected" would; used by scripts/memory.sh to drive the app.
        #[arg(long = "compress", value_name = "TENSOR")]
        compress: Vec<String>,
        /// Show this tensor on the Tensor tab once the model is open; with --exit-when-done
        /// the summary waits for its heatmaps and histograms (scripts/memory.sh times it).
        #[arg(long, value_name = "TENSOR")]
        view: Option<String>,
        /// For benchmarks and tests: once the model is open and the --compress tensors are
        /// done, print one JSON line (blocks, seconds, blocks/s, UI thread CPU seconds, frames
        /// drawn) and quit; used by scripts/app_throughput.sh.
        #[arg(long)]
        exit_when_done: bool,
    },
    /// Measure the exact search: blocks/s and relative MSE on N(0,1) blocks.
    Bench(bench::BenchArgs),
    /// Measure the inference kernels: matrix–vector products per stored form (f16, presets).
    BenchInfer(bench_infer::BenchInferArgs),
    /// Compress a model into a packed file.
    Compress(compress::CompressArgs),
    /// Decompress a packed file into a plain safetensors model.
    Decompress(decompress::DecompressArgs),
    /// List the tensors of a model or packed file.
    Inspect(inspect::InspectArgs),
    /// Simulate the hardware decompressor and the FP16 reference in Verilator (Table 5).
    HwSim(hw_sim::HwSimArgs),
    /// Compare SeedLM with data-free baselines (RTN int4/int3, NF4) per tensor and in total.
    Compare(compare::CompareArgs),
    /// Design-space explorer: every (C, P, K) of a bit budget, measured on N(0, 1) blocks.
    Explore(explore::ExploreArgs),
    /// Merge the parts of a sharded compression into the packed model.
    Merge(merge::MergeArgs),
    /// Measure the plan of a sharded `--target-bpw` / `--calibrate` compression once, before
    /// its shards: each tensor's configuration and the calibration's moments.
    Plan(plan::PlanCmdArgs),
    /// Write (and optionally submit) Slurm jobs that compress a model in shards and merge them.
    Slurm(slurm::SlurmArgs),
    /// Progress of a sharded compression: per shard and in total, blocks/s and ETA.
    Status(status::StatusArgs),
    /// Compare a compressed model with the original by their outputs (embeddings, next tokens).
    Eval(eval::EvalArgs),
    /// Run a plain or packed decoder LM on a prompt: tokens stream to stdout, speed and memory
    /// to stderr.
    Generate(generate::GenerateArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => crate::app::run(None, Vec::new(), None, false),
        Some(Command::Gui {
            path,
            compress,
            view,
            exit_when_done,
        }) => crate::app::run(path, compress, view, exit_when_done),
        Some(Command::Bench(args)) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Some(Command::BenchInfer(args)) => bench_infer::run(args).map(|()| ExitCode::SUCCESS),
        Some(Command::Compress(args)) => compress::run(args),
        Some(Command::Decompress(args)) => decompress::run(args),
        Some(Command::Inspect(args)) => inspect::run(args),
        Some(Command::HwSim(args)) => hw_sim::run(args),
        Some(Command::Compare(args)) => compare::run(args),
        Some(Command::Explore(args)) => explore::run(args),
        Some(Command::Merge(args)) => merge::run(args),
        Some(Command::Plan(args)) => plan::run(args),
        Some(Command::Slurm(args)) => slurm::run(args),
        Some(Command::Status(args)) => status::run(args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Generate(args)) => generate::run(args),
    }
}
