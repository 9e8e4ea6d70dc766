//! Background work: one job type for everything the app does off the UI thread (opening,
//! exporting, compressing, the tabs' runs, heatmap preparation, file dialogs).
//!
//! A [`Job`] runs on [`pool`], the one rayon pool of the app (one thread per core), so the
//! engine's parallel loops inside a job share the same threads and never oversubscribe the
//! cores. The work gets a [`Ctx`]: a cancel flag, progress counters, a log and a channel for
//! intermediate events. The UI polls without waiting; the job asks for a repaint when it sends
//! something or ends, and the app repaints at most [`PROGRESS_REPAINT`] apart while jobs run.
//!
//! Only a file dialog, which waits on the user rather than computes, gets its own thread
//! ([`Job::spawn_waiting`]): it would otherwise hold a pool thread for as long as it is open.

use super::document::{PackedCodes, Source};
use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::eval::calibration::Calibration;
use crate::io::job_plan::TextId;
use crate::io::model_job::{compress_tensor, moments_of};
use crate::io::shard::{Sidecar, tensor_hash};
use crate::search::Searcher;
use crate::search::compress::{CompressError, ErrorStats};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Log lines a job keeps (older ones are dropped).
const LOG_LINES: usize = 200;
/// Longest wait between repaints while a job reports progress (once a second: each frame's
/// CPU, the UI thread's and the GL driver's, is taken from the work it shows; under Xvfb 2
/// frames a second kept the app at 80 % of the CLI's blocks/s, scripts/app_throughput.sh).
pub const PROGRESS_REPAINT: Duration = Duration::from_secs(1);

/// The rayon pool all background work runs on: one thread per core (the UI thread is not in
/// it).
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores())
            .thread_name(|i| format!("seedlm-worker-{i}"))
            .build()
            .expect("a rayon pool can be built")
    })
}

/// The machine's cores, as the standard library counts them.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The work returned its result.
    Done(T),
    /// The work failed; one readable line.
    Failed(String),
    /// The work stopped because it was asked to.
    Cancelled,
}

enum Msg<T, E> {
    Event(E),
    End(Outcome<T>),
}

/// What a job and its handle share.
struct Shared {
    cancel: AtomicBool,
    progress: Progress,
    log: Mutex<VecDeque<String>>,
    repaint: Option<egui::Context>,
}

/// What the work sees: its cancel flag, progress, log, and a channel for events of type `E`.
pub struct Ctx<E> {
    shared: Arc<Shared>,
    send: Box<dyn Fn(E) + Send + Sync>,
}

impl<E> Ctx<E> {
    /// The flag the engine's loops check; raised by [`Job::cancel`].
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.shared.cancel
    }

    /// Whether the job was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.shared.cancel.load(Ordering::Relaxed)
    }

    /// Progress counters the UI reads.
    pub fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    /// The progress and cancel flag to hand to the engine.
    pub fn control(&self) -> Control<'_> {
        Control::new(&self.shared.progress, &self.shared.cancel)
    }

    /// Appends a line to the job's log.
    pub fn log(&self, line: &str) {
        let mut l = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == LOG_LINES {
            l.pop_front();
        }
        l.push_back(line.to_string());
    }

    /// Sends an event to the UI (ignored once the UI has dropped the job).
    pub fn send(&self, event: E) {
        (self.send)(event);
        if let Some(c) = &self.shared.repaint {
            c.request_repaint_after(PROGRESS_REPAINT);
        }
    }
}

/// A background job ending with a `T`, sending events of type `E` on the way.
pub struct Job<T, E = ()> {
    rx: Receiver<Msg<T, E>>,
    shared: Arc<Shared>,
    started: Instant,
    /// What the job does, for the status bar and its messages ("Baselines", "export").
    pub label: String,
    /// The document the job's result belongs to (`None` when it depends on no document).
    pub doc: Option<u64>,
}

impl<T: Send + 'static, E: Send + 'static> Job<T, E> {
    /// Runs `work` on [`pool`]. `repaint` is woken when the job sends an event or ends.
    pub fn spawn(
        label: impl Into<String>,
        doc: Option<u64>,
        repaint: Option<egui::Context>,
        work: impl FnOnce(&Ctx<E>) -> Result<T, String> + Send + 'static,
    ) -> Self {
        Self::start(label, doc, repaint, work, |run| pool().spawn(run))
    }

    /// Runs `work` on a thread of its own: for work that waits on the user, not the CPU.
    pub fn spawn_waiting(
        label: impl Into<String>,
        repaint: Option<egui::Context>,
        work: impl FnOnce(&Ctx<E>) -> Result<T, String> + Send + 'static,
    ) -> Self {
        Self::start(label, None, repaint, work, |run| {
            std::thread::spawn(run);
        })
    }

    fn start(
        label: impl Into<String>,
        doc: Option<u64>,
        repaint: Option<egui::Context>,
        work: impl FnOnce(&Ctx<E>) -> Result<T, String> + Send + 'static,
        run: impl FnOnce(Box<dyn FnOnce() + Send>),
    ) -> Self {
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            cancel: AtomicBool::new(false),
            progress: Progress::default(),
            log: Mutex::new(VecDeque::new()),
            repaint,
        });
        let s = shared.clone();
        run(Box::new(move || {
            let events = tx.clone();
            let ctx = Ctx {
                shared: s.clone(),
                // Sends fail only when the UI has dropped the job; the work is moot then.
                send: Box::new(move |e| {
                    let _ = events.send(Msg::Event(e));
                }),
            };
            let res = catch_unwind(AssertUnwindSafe(|| work(&ctx)));
            let end = match res {
                Ok(Ok(v)) => Outcome::Done(v),
                Ok(Err(_)) if s.cancel.load(Ordering::Relaxed) => Outcome::Cancelled,
                Ok(Err(e)) => Outcome::Failed(e),
                Err(_) => Outcome::Failed("the background worker stopped unexpectedly".into()),
            };
            let _ = tx.send(Msg::End(end));
            if let Some(c) = &s.repaint {
                c.request_repaint();
            }
        }));
        Job {
            rx,
            shared,
            started: Instant::now(),
            label: label.into(),
            doc,
        }
    }

    /// Events that arrived since the last call, and the outcome once the job has ended
    /// (returned once).
    pub fn poll(&self) -> (Vec<E>, Option<Outcome<T>>) {
        let mut events = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Event(e)) => events.push(e),
                Ok(Msg::End(o)) => return (events, Some(o)),
                Err(TryRecvError::Empty) => return (events, None),
                Err(TryRecvError::Disconnected) => {
                    let lost = Outcome::Failed("the background worker stopped".into());
                    return (events, Some(lost));
                }
            }
        }
    }

    /// The outcome once the job has ended, for jobs without events.
    pub fn finished(&self) -> Option<Outcome<T>> {
        self.poll().1
    }
}

impl<T, E> Job<T, E> {
    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether [`Job::cancel`] was called.
    pub fn cancelling(&self) -> bool {
        self.shared.cancel.load(Ordering::Relaxed)
    }

    /// (done, total) as reported by the work.
    pub fn progress(&self) -> (u64, u64) {
        let p = &self.shared.progress;
        (
            p.done.load(Ordering::Relaxed),
            p.total.load(Ordering::Relaxed),
        )
    }

    /// The job's log so far.
    pub fn log(&self) -> Vec<String> {
        let l = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().cloned().collect()
    }

    /// Time since the job started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Units of progress per second so far.
    pub fn rate(&self) -> f64 {
        self.rate_of(self.progress().0)
    }

    /// `units` per second of the job's time so far.
    fn rate_of(&self, units: u64) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 { units as f64 / secs } else { 0.0 }
    }

    /// Estimated time left (`None` before any progress).
    pub fn eta(&self) -> Option<Duration> {
        self.eta_at(self.rate())
    }

    /// Time left for what remains at `rate` units per second (`None` before any progress).
    fn eta_at(&self, rate: f64) -> Option<Duration> {
        let (done, total) = self.progress();
        (done > 0 && rate > 0.0)
            .then(|| Duration::from_secs_f64(total.saturating_sub(done) as f64 / rate))
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
        compressed: PackedCodes,
        /// Error figures.
        stats: ErrorStats,
        /// Whether the codes were read from the sidecar rather than searched.
        loaded: bool,
        /// The text the search was weighted by (`None`: data-free).
        calibration: Option<TextId>,
    },
    /// `tensor` is compressed but could not be kept in the sidecar.
    Unsaved {
        /// Tensor index.
        tensor: usize,
        /// Readable reason.
        error: String,
    },
    /// `tensor` could not be compressed.
    Failed {
        /// Tensor index.
        tensor: usize,
        /// Readable reason.
        error: String,
    },
}

/// A tensor handed to a compression: its index, name and shape, and where its weights are read
/// from.
pub struct Input {
    /// Tensor index.
    pub tensor: usize,
    /// Tensor name (the calibration's moments are found by it).
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// The original weights.
    pub source: Source,
}

/// A running compression of a list of tensors, one after the other, each across the pool.
pub struct CompressJob {
    /// Tensor indices, in order.
    pub tensors: Vec<usize>,
    /// Settings used.
    pub config: Config,
    /// The calibration the search is weighted by (`None`: data-free).
    pub calibration: Option<Arc<Calibration>>,
    /// The tensor being compressed and the job's block count when it started.
    pub current: Option<(usize, u64)>,
    /// Tensors whose codes came from the sidecar.
    pub loaded: usize,
    /// Blocks of those tensors: counted as done, but not searched in this run.
    loaded_blocks: u64,
    /// The job; its progress counts blocks.
    pub job: Job<(), CompressEvent>,
}

impl CompressJob {
    /// Starts compressing `inputs` of document `doc`, each with its moments in `calibration`
    /// when it has some there (the engine's [`compress_tensor`]); each tensor is read when its
    /// turn comes and dropped when done. With a `sidecar`, a tensor it holds at `config` and
    /// this calibration from the same data is read from it instead of searched, and each tensor
    /// searched is written to it as it finishes.
    pub fn spawn(
        inputs: Vec<Input>,
        config: Config,
        calibration: Option<Arc<Calibration>>,
        doc: u64,
        sidecar: Option<Sidecar>,
        repaint: Option<egui::Context>,
    ) -> Self {
        let total: u64 = inputs
            .iter()
            .map(|t| t.source.len().div_ceil(config.c) as u64)
            .sum();
        let tensors = inputs.iter().map(|t| t.tensor).collect();
        let label = match &calibration {
            Some(c) => format!(
                "compressing ({config}, calibrated on {})",
                super::format::file_name(&c.text.path)
            ),
            None => format!("compressing ({config})"),
        };
        let cal = calibration.clone();
        let job = Job::spawn(label, Some(doc), repaint, move |ctx| {
            ctx.progress().total.store(total, Ordering::Relaxed);
            run_compress(inputs, config, cal.as_deref(), sidecar.as_ref(), ctx)
        });
        CompressJob {
            tensors,
            config,
            calibration,
            current: None,
            loaded: 0,
            loaded_blocks: 0,
            job,
        }
    }

    /// Events that arrived since the last call, and the outcome once the job has ended.
    pub fn poll(&mut self) -> (Vec<CompressEvent>, Option<Outcome<()>>) {
        let (events, end) = self.job.poll();
        for ev in &events {
            match ev {
                CompressEvent::Started { tensor } => {
                    self.current = Some((*tensor, self.job.progress().0));
                }
                CompressEvent::Done {
                    loaded: true,
                    compressed,
                    ..
                } => {
                    self.loaded += 1;
                    self.loaded_blocks += compressed.num_blocks() as u64;
                }
                _ => {}
            }
        }
        (events, end)
    }

    /// (blocks done, blocks in all).
    pub fn blocks(&self) -> (u64, u64) {
        self.job.progress()
    }

    /// Blocks searched per second: blocks read from the sidecar take no search, and counting
    /// them showed 111k blocks/s right after a resume (issue 23).
    pub fn rate(&self) -> f64 {
        let searched = self.blocks().0.saturating_sub(self.loaded_blocks);
        self.job.rate_of(searched)
    }

    /// Estimated time left at [`CompressJob::rate`] (`None` before any block is searched).
    pub fn eta(&self) -> Option<Duration> {
        self.job.eta_at(self.rate())
    }
}

fn run_compress(
    inputs: Vec<Input>,
    config: Config,
    calibration: Option<&Calibration>,
    sidecar: Option<&Sidecar>,
    ctx: &Ctx<CompressEvent>,
) -> Result<(), String> {
    let none = HashMap::new();
    let moments = calibration.map_or(&none, |c| &c.moments);
    let text = calibration.map(|c| &c.text);
    for Input {
        tensor,
        name,
        shape,
        source: src,
    } in inputs
    {
        if ctx.cancelled() {
            return Err("cancelled".into());
        }
        ctx.send(CompressEvent::Started { tensor });
        let data = match src.read() {
            Ok(d) => d,
            Err(error) => {
                let blocks = src.len().div_ceil(config.c) as u64;
                ctx.progress().done.fetch_add(blocks, Ordering::Relaxed);
                ctx.send(CompressEvent::Failed { tensor, error });
                continue;
            }
        };
        // Only a tensor of a model file can be kept: the sidecar names it by its data's hash.
        let kept = match (sidecar, src.mapped()) {
            (Some(s), Some((model, t))) => {
                let hash = tensor_hash(
                    &t.name,
                    t.dtype,
                    &t.shape,
                    model.bytes(t),
                    ctx.cancel_flag(),
                )
                .ok_or("cancelled")?;
                Some((s, model, t, hash))
            }
            _ => None,
        };
        if let Some((s, model, t, hash)) = &kept {
            match s.load(model, config, text, &t.name, hash) {
                Ok(Some(compressed)) => {
                    let stats = ErrorStats::measure(&data, &compressed.reconstruct(), config.c);
                    let blocks = compressed.num_blocks() as u64;
                    // Told before counted, so the rate never counts them as searched.
                    ctx.send(CompressEvent::Done {
                        tensor,
                        compressed: PackedCodes::new(&compressed),
                        stats,
                        loaded: true,
                        calibration: text
                            .filter(|_| moments_of(moments, &name, &shape).is_some())
                            .cloned(),
                    });
                    ctx.progress().done.fetch_add(blocks, Ordering::Relaxed);
                    continue;
                }
                Ok(None) => {}
                // An unreadable piece is searched again (and rewritten).
                Err(e) => ctx.log(&e.to_string()),
            }
        }
        // Codes that decode within what the tensor's dtype holds, as the CLI's.
        let searcher = Searcher::new(config).below(crate::io::dtype::overflow_bound(src.dtype()));
        let searched = compress_tensor(&data, &name, &shape, moments, &searcher, ctx.control());
        match searched {
            Ok((compressed, stats, calibrated)) => {
                if let Some((s, model, t, hash)) = &kept
                    && let Err(e) = s.save(model, &t.name, hash, text, &compressed)
                {
                    ctx.send(CompressEvent::Unsaved {
                        tensor,
                        error: e.to_string(),
                    });
                }
                ctx.send(CompressEvent::Done {
                    tensor,
                    compressed: PackedCodes::new(&compressed),
                    stats,
                    loaded: false,
                    calibration: text.filter(|_| calibrated).cloned(),
                })
            }
            Err(CompressError::Cancelled) => return Err("cancelled".into()),
            Err(e) => ctx.send(CompressEvent::Failed {
                tensor,
                error: e.to_string(),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait<T: Send + 'static, E: Send + 'static>(job: &Job<T, E>) -> (Vec<E>, Outcome<T>) {
        let mut events = Vec::new();
        loop {
            let (mut ev, end) = job.poll();
            events.append(&mut ev);
            if let Some(o) = end {
                return (events, o);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn jobs_run_on_the_one_pool_sized_to_the_cores() {
        assert_eq!(pool().current_num_threads(), cores());
        let job: Job<(Option<String>, bool)> = Job::spawn("t", None, None, |_| {
            let name = std::thread::current().name().map(str::to_string);
            // The engine's parallel loops inside a job use the same pool.
            let inner =
                rayon::current_num_threads() == cores() && rayon::current_thread_index().is_some();
            Ok((name, inner))
        });
        let Outcome::Done((name, inner)) = wait(&job).1 else {
            panic!("the job ends");
        };
        assert!(name.unwrap().starts_with("seedlm-worker-"));
        assert!(inner);
    }

    #[test]
    fn events_come_before_the_end_and_errors_and_cancel_are_told_apart() {
        let job: Job<u32, u32> = Job::spawn("t", None, None, |ctx| {
            ctx.send(1);
            ctx.send(2);
            ctx.log("hello");
            Ok(3)
        });
        let (ev, end) = wait(&job);
        assert_eq!(ev, vec![1, 2]);
        assert!(matches!(end, Outcome::Done(3)));
        assert_eq!(job.log(), vec!["hello".to_string()]);

        let failing: Job<()> = Job::spawn("t", None, None, |_| Err("bad input".into()));
        assert!(matches!(wait(&failing).1, Outcome::Failed(e) if e == "bad input"));

        let cancelled: Job<()> = Job::spawn("t", None, None, |ctx| {
            while !ctx.cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err("stopped".into())
        });
        cancelled.cancel();
        assert!(matches!(wait(&cancelled).1, Outcome::Cancelled));

        let panicking: Job<()> = Job::spawn("t", None, None, |_| panic!("boom"));
        assert!(matches!(wait(&panicking).1, Outcome::Failed(_)));
    }
}
