//! Checking where a command will write before it starts working.

use crate::io::model_job::check_output;
use std::path::Path;

/// Refuses an unusable `output` for `input` before any work (see [`check_output`]; `force`
/// allows replacing an existing output directory) and says which leftovers of interrupted runs
/// it removed.
pub fn check(input: &Path, output: &Path, force: bool) -> anyhow::Result<()> {
    for p in check_output(input, output, force)? {
        eprintln!(
            "note: removed {}, a partial file left by an interrupted run",
            p.display()
        );
    }
    Ok(())
}
