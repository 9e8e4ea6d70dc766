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
