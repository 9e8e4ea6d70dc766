//! Writing results to stdout: a closed pipe (`seedlm … | head`) ends the output quietly.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout; a reader that went away is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The width in characters of a table column holding `cells`, at least `min`.
pub fn column_width(cells: &[String], min: usize) -> usize {
    cells
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0)
        .max(min)
}
