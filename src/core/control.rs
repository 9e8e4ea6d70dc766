//! What a long computation is steered by: a progress counter it advances and a cancel flag it
//! checks. The engine's loops take one [`Control`] instead of the two as separate arguments.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Progress of a running computation, shared with whoever displays it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Units (blocks, tokens, tensors) done so far.
    pub done: AtomicU64,
    /// Units to do in all.
    pub total: AtomicU64,
}

/// The progress a computation reports to and the flag that stops it, borrowed from their owner
/// (a job's shared state, or the CLI's Ctrl-C handler). Copied freely: it is two references.
#[derive(Debug, Clone, Copy)]
pub struct Control<'a> {
    /// Advanced as work finishes.
    pub progress: &'a Progress,
    /// Raised to stop; loops check it between chunks of work.
    pub cancel: &'a AtomicBool,
}

/// The progress behind [`Control::unwatched`]: advanced, never read.
static UNWATCHED: Progress = Progress {
    done: AtomicU64::new(0),
    total: AtomicU64::new(0),
};
/// The flag behind [`Control::unwatched`]: never raised.
static NEVER: AtomicBool = AtomicBool::new(false);

impl<'a> Control<'a> {
    /// The control of `progress` and `cancel`.
    pub fn new(progress: &'a Progress, cancel: &'a AtomicBool) -> Self {
        Control { progress, cancel }
    }

    /// True once cancel has been raised.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The same cancel flag with another progress counter (a phase counted on its own).
    pub fn with_progress<'b>(&self, progress: &'b Progress) -> Control<'b>
    where
        'a: 'b,
    {
        Control {
            progress,
            cancel: self.cancel,
        }
    }
}

impl Control<'static> {
    /// A control nobody watches or cancels (tests, one-shot tools).
    pub fn unwatched() -> Self {
        Control {
            progress: &UNWATCHED,
            cancel: &NEVER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_reads_the_flag_and_counts_into_its_owners_progress() {
        let (progress, cancel) = (Progress::default(), AtomicBool::new(false));
        let ctl = Control::new(&progress, &cancel);
        ctl.progress.done.fetch_add(3, Ordering::Relaxed);
        assert!(!ctl.cancelled());
        cancel.store(true, Ordering::Relaxed);
        assert!(ctl.cancelled());
        let phase = Progress::default();
        let other = ctl.with_progress(&phase);
        other.progress.done.fetch_add(2, Ordering::Relaxed);
        assert!(other.cancelled());
        assert_eq!(progress.done.load(Ordering::Relaxed), 3);
        assert_eq!(phase.done.load(Ordering::Relaxed), 2);
        assert!(!Control::unwatched().cancelled());
    }
}
