//! The desktop app (egui). It drives the engine through background jobs and never blocks.

use std::path::PathBuf;
use std::process::ExitCode;

/// Opens the app on `path`, or on the bundled demo model.
pub fn run(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let _ = path;
    anyhow::bail!("the app is not built yet")
}
