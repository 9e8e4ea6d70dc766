//! The command line: a thin layer over the engine. Each subcommand lives in its own file.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Open the app on a model file, model directory or packed file.
    Gui {
        /// File or directory to open (default: the bundled demo model).
        path: Option<PathBuf>,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => crate::app::run(None),
        Some(Command::Gui { path }) => crate::app::run(path),
    }
}
