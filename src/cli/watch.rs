//! Runs an engine job while a progress bar on stderr follows its done/total counters.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Seconds between plain progress lines when stderr is not a terminal (a log file, a Slurm
/// job's output); the environment variable [`PROGRESS_SECS_VAR`] overrides it.
pub const PROGRESS_SECS: f64 = 30.0;
/// Environment variable setting the seconds between plain progress lines.
pub const PROGRESS_SECS_VAR: &str = "SEEDLM_PROGRESS_SECS";

/// Runs `job` on a scoped thread and draws `done`/`total` (in `unit`) until it returns or
/// panics; `job` may put a message (the tensor at work) on the bar, or [`restart`] it counting
/// something else. When stderr is not a
/// terminal the bar is hidden and a plain line is written every [`PROGRESS_SECS`] instead, so
/// a log still shows how far a long run is.
pub fn watch<T: Send>(
    unit: &str,
    done: &AtomicU64,
    total: &AtomicU64,
    job: impl FnOnce(&ProgressBar) -> T + Send,
) -> T {
    let bar = ProgressBar::new(0);
    // The unit is the bar's prefix, so that a job can restart the bar in another one.
    if let Ok(style) =
        ProgressStyle::with_template("{wide_bar} {pos}/{len} {prefix}  {per_sec}  ETA {eta}  {msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(unit.to_string());
    let plain = (!std::io::stderr().is_terminal()).then(|| {
        std::env::var(PROGRESS_SECS_VAR)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(
                Duration::from_secs_f64(PROGRESS_SECS),
                Duration::from_secs_f64,
            )
    });
    let mut last = Instant::now();
    let out = std::thread::scope(|s| {
        let handle = s.spawn(|| job(&bar));
        while !handle.is_finished() {
            let (d, t) = (done.load(Ordering::Relaxed), total.load(Ordering::Relaxed));
            bar.set_length(t);
            bar.set_position(d);
            // Quiet until the job has said how much there is to do.
            if let Some(every) = plain
                && t > 0
                && last.elapsed() >= every
            {
                last = Instant::now();
                eprintln!(
                    "{}",
                    plain_line(&bar.prefix(), d, t, bar.elapsed(), &bar.message())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        handle.join()
    });
    bar.finish_and_clear();
    match out {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Starts `bar` of [`watch`] again from zero, now counting `unit` (a job's next stage): rate and
/// ETA are the new stage's own.
pub fn restart(bar: &ProgressBar, unit: &str) {
    bar.reset();
    bar.set_prefix(unit.to_string());
}

/// One progress line for a log: `done/total unit (percent), rate, ETA, message`.
fn plain_line(unit: &str, done: u64, total: u64, elapsed: Duration, msg: &str) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let mut line = format!("progress: {done}/{total} {unit}");
    if total > 0 {
        line.push_str(&format!(" ({:.1} %)", 100.0 * done as f64 / total as f64));
    }
    line.push_str(&format!(", {rate:.0} {unit}/s"));
    if rate > 0.0 && total > done {
        let eta = Duration::from_secs_f64((total - done) as f64 / rate);
        line.push_str(&format!(", ETA {}", indicatif::HumanDuration(eta)));
    }
    if !msg.is_empty() {
        line.push_str(&format!("  {msg}"));
    }
    line
}

/// A cancel flag raised by Ctrl-C, so a long run stops at the next chunk instead of dying.
pub fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("warning: Ctrl-C will not stop cleanly: {e}");
    }
    cancel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_has_count_share_rate_eta_and_message() {
        let l = plain_line("blocks", 250, 1000, Duration::from_secs(10), "q_proj");
        assert_eq!(
            l,
            "progress: 250/1000 blocks (25.0 %), 25 blocks/s, ETA 30 seconds  q_proj"
        );
        // Nothing known yet: no share, no ETA.
        let l = plain_line("runs", 0, 0, Duration::ZERO, "");
        assert_eq!(l, "progress: 0/0 runs, 0 runs/s");
    }
}
