//! Runs an engine job while a progress bar on stderr follows its done/total counters.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Runs `job` on a scoped thread and draws `done`/`total` (in `unit`) until it returns or
/// panics; `job` may put a message (the tensor at work) on the bar. The bar is hidden when
/// stderr is not a terminal.
pub fn watch<T: Send>(
    unit: &str,
    done: &AtomicU64,
    total: &AtomicU64,
    job: impl FnOnce(&ProgressBar) -> T + Send,
) -> T {
    let bar = ProgressBar::new(0);
    let template =
        format!("{{wide_bar}} {{pos}}/{{len}} {unit}  {{per_sec}}  ETA {{eta}}  {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    let out = std::thread::scope(|s| {
        let handle = s.spawn(|| job(&bar));
        while !handle.is_finished() {
            bar.set_length(total.load(Ordering::Relaxed));
            bar.set_position(done.load(Ordering::Relaxed));
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

/// A cancel flag raised by Ctrl-C, so a long run stops at the next chunk instead of dying.
pub fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        eprintln!("warning: Ctrl-C will not stop cleanly: {e}");
    }
    cancel
}
