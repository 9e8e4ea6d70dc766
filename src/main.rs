//! `seedlm`: with no arguments, the desktop app; with a subcommand, the command line.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = seedlm::cli::Cli::parse();
    match seedlm::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
