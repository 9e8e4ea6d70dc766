//! Background work. Nothing here runs on the UI thread: each job runs on its own thread (the
//! compression on a shared rayon pool), reports through a channel and stops when its cancel flag
//! is raised. The UI polls without waiting.

use crate::core::config::Config;
use crate::search::compress::{CompressError, CompressedTensor, ErrorStats, Progress, compress};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The rayon pool all compression runs on (one thread per core; the UI thread is not in it).
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("seedlm-worker-{i}"))
            .build()
            .expect("a rayon pool can be built")
    })
}

/// A single-result background task with progress and cancel, for any panel to use: spawn it,
/// then call [`Task::poll`] every frame until it yields the result.
pub struct Task<T> {
    rx: Receiver<T>,
    cancel: Arc<AtomicBool>,
    progress: Arc<Progress>,
    started: Instant,
}

impl<T: Send + 'static> Task<T> {
    /// Runs `work(cancel, progress)` on a new thread.
    pub fn spawn(work: impl FnOnce(&AtomicBool, &Progress) -> T + Send + 'static) -> Self {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (c, p) = (cancel.clone(), progress.clone());
        std::thread::spawn(move || {
            // The receiver may be gone if the app dropped the task; nothing to report then.
            let _ = tx.send(work(&c, &p));
        });
        Task {
            rx,
            cancel,
            progress,
            started: Instant::now(),
        }
    }

    /// The result once the work is done (returned once). A worker that died without a result
    /// yields `Some(Err)` through `lost`.
    pub fn poll(&self) -> Option<Result<T, String>> {
        match self.rx.try_recv() {
            Ok(v) => Some(Ok(v)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err("the background worker stopped".into())),
        }
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// (done, total) as reported by the work.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.progress.done.load(Ordering::Relaxed),
            self.progress.total.load(Ordering::Relaxed),
        )
    }

    /// Seconds since the task started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// What a compression job reports.
#[derive(Debug)]
pub enum CompressEvent {
    /// Work on `tensor` began.
    Started {
        /// Tensor index.
        tensor: usize,
    },
    /// `tensor` is compressed.
    Done {
        /// Tensor index.
        tensor: usize,
        /// The codes.
        compressed: CompressedTensor,
        /// Error figures.
        stats: ErrorStats,
        /// Reconstruction.
        recon: Vec<f32>,
    },
    /// `tensor` could not be compressed.
    Failed {
        /// Tensor index.
        tensor: usize,
        /// Readable reason.
        error: String,
    },
    /// The job ended (after its last tensor, or on cancel).
    Finished {
        /// Whether it stopped because of the cancel flag.
        cancelled: bool,
    },
}

/// A running compression of a list of tensors, one after the other, each across the pool.
pub struct CompressJob {
    /// Tensor indices, in order.
    pub tensors: Vec<usize>,
    /// Settings used.
    pub config: Config,
    /// Blocks done over the whole job, and the job's total.
    pub progress: Arc<Progress>,
    /// Raised to stop.
    pub cancel: Arc<AtomicBool>,
    /// The tensor being compressed and the job's block count when it started.
    pub current: Option<(usize, u64)>,
    /// When the job started.
    pub started: Instant,
    rx: Receiver<CompressEvent>,
}

impl CompressJob {
    /// Starts compressing `inputs` (tensor index and its weights) with `config`.
    pub fn spawn(inputs: Vec<(usize, Arc<Vec<f32>>)>, config: Config) -> Self {
        let (tx, rx) = channel();
        let progress = Arc::new(Progress::default());
        let total: u64 = inputs
            .iter()
            .map(|(_, d)| d.len().div_ceil(config.c) as u64)
            .sum();
        progress.total.store(total, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let tensors = inputs.iter().map(|(i, _)| *i).collect();
        let (p, c) = (progress.clone(), cancel.clone());
        std::thread::spawn(move || run_compress(inputs, config, &p, &c, &tx));
        CompressJob {
            tensors,
            config,
            progress,
            cancel,
            current: None,
            started: Instant::now(),
            rx,
        }
    }

    /// Events that arrived since the last call.
    pub fn poll(&mut self) -> Vec<CompressEvent> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(ev) => out.push(ev),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // A worker that died (it never should) still ends the job.
                    if !out
                        .iter()
                        .any(|e| matches!(e, CompressEvent::Finished { .. }))
                    {
                        out.push(CompressEvent::Finished { cancelled: true });
                    }
                    break;
                }
            }
        }
        for ev in &out {
            if let CompressEvent::Started { tensor } = ev {
                self.current = Some((*tensor, self.progress.done.load(Ordering::Relaxed)));
            }
        }
        out
    }

    /// (blocks done, blocks in all).
    pub fn blocks(&self) -> (u64, u64) {
        (
            self.progress.done.load(Ordering::Relaxed),
            self.progress.total.load(Ordering::Relaxed),
        )
    }

    /// Blocks per second so far.
    pub fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.blocks().0 as f64 / secs
        } else {
            0.0
        }
    }

    /// Estimated seconds left (`None` before any block is done).
    pub fn eta(&self) -> Option<f64> {
        let (done, total) = self.blocks();
        let rate = self.rate();
        (done > 0 && rate > 0.0).then(|| total.saturating_sub(done) as f64 / rate)
    }
}

fn run_compress(
    inputs: Vec<(usize, Arc<Vec<f32>>)>,
    config: Config,
    progress: &Progress,
    cancel: &AtomicBool,
    tx: &Sender<CompressEvent>,
) {
    // Sends fail only when the app has dropped the job; then the work is moot.
    let mut cancelled = false;
    for (tensor, data) in inputs {
        if cancel.load(Ordering::Relaxed) {
            cancelled = true;
            break;
        }
        let _ = tx.send(CompressEvent::Started { tensor });
        match pool().install(|| compress(&data, config, progress, cancel)) {
            Ok((compressed, stats)) => {
                let recon = pool().install(|| compressed.reconstruct());
                let _ = tx.send(CompressEvent::Done {
                    tensor,
                    compressed,
                    stats,
                    recon,
                });
            }
            Err(CompressError::Cancelled) => {
                cancelled = true;
                break;
            }
            Err(e) => {
                let _ = tx.send(CompressEvent::Failed {
                    tensor,
                    error: e.to_string(),
                });
            }
        }
    }
    let _ = tx.send(CompressEvent::Finished { cancelled });
}
