//! What finished background jobs bring into the app state.

use super::{AppState, MAX_RECENT};
use crate::app::command::{Command, TabId};
use crate::app::document::{Errors, TensorResult};
use crate::app::format::{file_name, human_duration};
use crate::app::jobs::{CompressEvent, Job, Outcome};
use crate::app::work::{self, JobKind, Keyed, Output, Purpose, ShardView, Work};
use crate::core::config::Config;
use crate::io::shard::FolderStatus;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

impl AppState {
    /// Collects what background work reported; call once per frame.
    pub fn poll(&mut self) {
        self.poll_compress();
        self.refresh_shards();
        let ended: Vec<(JobKind, Job<Output>, Outcome<Output>)> = {
            let done: Vec<(JobKind, Outcome<Output>)> = self
                .jobs
                .iter()
                .filter_map(|(k, j)| Some((*k, j.finished()?)))
                .collect();
            done.into_iter()
                .filter_map(|(k, o)| Some((k, self.jobs.remove(&k)?, o)))
                .collect()
        };
        for (kind, job, outcome) in ended {
            self.finish(kind, &job, outcome);
        }
    }

    /// Takes in what a finished job produced; failures and cancellations become messages.
    pub(super) fn finish(&mut self, kind: JobKind, job: &Job<Output>, outcome: Outcome<Output>) {
        if kind == JobKind::Hardware {
            self.results.hw_log = job.log();
        }
        let label = &job.label;
        if kind == JobKind::Calibrate && !matches!(outcome, Outcome::Done(_)) {
            self.drop_calibrated();
        }
        let out = match outcome {
            Outcome::Done(out) => out,
            Outcome::Cancelled => {
                self.message(false, format!("{label} cancelled"));
                return;
            }
            Outcome::Failed(e) => {
                let text = match kind {
                    JobKind::Open => e,
                    JobKind::Export => format!("export failed: {e}"),
                    _ => format!("{label} failed: {e}"),
                };
                self.message(true, text);
                return;
            }
        };
        // A result computed on a model no longer open is dropped.
        if job.doc.is_some_and(|d| d != self.doc.id) {
            return;
        }
        let doc = self.doc.id;
        let took = done_in(job.elapsed());
        match out {
            Output::Opened(path, doc, offer) => {
                self.replace_doc(*doc);
                self.resume = offer;
                self.saved.recent.retain(|p| *p != path);
                self.saved.recent.insert(0, path.clone());
                self.saved.recent.truncate(MAX_RECENT);
                self.message(false, format!("opened {}", path.display()));
            }
            Output::Exported(msg) => self.message(false, msg),
            Output::HwTable(t) => {
                self.results.hw_table = Some(*t);
                self.message(false, format!("{label}: {took}"));
            }
            Output::HwResources(t) => {
                self.results.hw_resources = Some(t);
                self.message(false, format!("{label}: {took}"));
            }
            Output::HwTensor(name, r) => {
                self.results.hw_tensor = Some(Keyed {
                    doc,
                    value: (name, r),
                });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Explore(o, p) => {
                self.results.explore = Some((o, p));
                self.message(false, format!("{label}: {took}"));
            }
            Output::Baselines(run) => {
                self.results.baselines = Some(Keyed { doc, value: *run });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Allocated(tensors, a) => {
                self.message(
                    false,
                    format!(
                        "allocated {} tensors to {:.3} bits/weight (target {}, {}); compressing",
                        tensors.len(),
                        a.bits_per_weight,
                        a.target_bpw,
                        a.sensitivity
                    ),
                );
                // Grouped by configuration: each group runs as one job.
                let mut jobs: Vec<(usize, Config)> = tensors.into_iter().zip(a.configs()).collect();
                jobs.sort_by_key(|&(t, c)| (c.c, c.p, c.k, t));
                self.enqueue_with(jobs);
            }
            Output::Quality(r) => {
                self.results.quality = Some(Keyed { doc, value: *r });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Generated(r) => {
                self.results.generate = Some(Keyed { doc, value: *r });
                self.message(false, format!("{label}: {took}"));
            }
            Output::Prepared(key, p) => self.results.prepared = Some((key, p)),
            Output::Calibrated(text, c) => {
                self.message(
                    false,
                    format!(
                        "{label}: {} tensors' input moments, {took}",
                        c.moments.len()
                    ),
                );
                self.results.calibration = Some(Keyed {
                    doc,
                    value: (text, c),
                });
                self.start_next();
            }
            Output::Picked(purpose, path, shown) => match path {
                Some(path) => self.apply(match purpose {
                    Purpose::Open | Purpose::OpenFolder => Command::Open(path),
                    Purpose::Export(kind) => Command::Export { kind, path },
                    Purpose::Calibration => Command::SetCalibration(Some(path)),
                }),
                None if !shown => self.message(true, work::NO_DIALOG),
                None => {}
            },
            Output::Shards(folder, st) => self.take_shards(kind, folder, st),
        }
    }

    /// Takes in a shard folder's progress: opened (shown in the Shards tab) or read again.
    pub(super) fn take_shards(
        &mut self,
        kind: JobKind,
        folder: PathBuf,
        st: Result<Box<FolderStatus>, String>,
    ) {
        let read_at = std::time::Instant::now();
        if kind == JobKind::Open {
            // Opening reports failures itself, so only a reading is here.
            if let Ok(status) = st {
                self.message(false, format!("opened shard folder {}", folder.display()));
                self.results.shards = Some(ShardView {
                    folder,
                    status,
                    error: None,
                    read_at,
                });
                self.tab = TabId::Shards;
            }
            return;
        }
        // A reading of a folder no longer shown is dropped.
        let Some(v) = self.results.shards.as_mut().filter(|v| v.folder == folder) else {
            return;
        };
        v.read_at = read_at;
        match st {
            Ok(status) => {
                v.status = status;
                v.error = None;
            }
            Err(e) => v.error = Some(e),
        }
    }

    /// Reads the shown shard folder again every [`work::SHARD_REFRESH`] while its tab is open.
    pub(super) fn refresh_shards(&mut self) {
        let Some(v) = &mut self.results.shards else {
            return;
        };
        if self.tab != TabId::Shards
            || self.jobs.contains_key(&JobKind::Shards)
            || v.read_at.elapsed() < work::SHARD_REFRESH
        {
            return;
        }
        v.read_at = std::time::Instant::now();
        let folder = v.folder.clone();
        self.run(Work::Shards(folder));
    }

    pub(super) fn poll_compress(&mut self) {
        let Some(job) = &mut self.job else { return };
        let cfg = match &job.calibration {
            Some(c) => format!("{}, calibrated on {}", job.config, file_name(&c.text.path)),
            None => job.config.to_string(),
        };
        let (events, end) = job.poll();
        let took = done_in(job.job.elapsed());
        let loaded = job.loaded;
        for ev in events {
            match ev {
                CompressEvent::Started { .. } => {}
                CompressEvent::Done {
                    tensor,
                    compressed,
                    stats,
                    calibration,
                    ..
                } => {
                    self.generation += 1;
                    self.doc.tensors[tensor].result = Some(Arc::new(TensorResult {
                        compressed,
                        stats: Some(Errors::new(&stats)),
                        stored_relmse: None,
                        generation: self.generation,
                        calibration,
                    }));
                }
                CompressEvent::Failed { tensor, error } => {
                    let name = self.doc.tensors[tensor].name.clone();
                    self.message(true, format!("{name}: {error}"));
                }
                CompressEvent::Unsaved { tensor, error } => {
                    let name = self.doc.tensors[tensor].name.clone();
                    self.message(true, format!("{name} is not kept in the sidecar: {error}"));
                }
            }
        }
        let Some(end) = end else { return };
        self.job = None;
        match end {
            Outcome::Done(()) if loaded > 0 => self.message(
                false,
                format!("compression ({cfg}): {took}, {loaded} tensor(s) read from the sidecar"),
            ),
            Outcome::Done(()) => self.message(false, format!("compression ({cfg}): {took}")),
            Outcome::Cancelled => self.message(false, format!("compression ({cfg}) cancelled")),
            Outcome::Failed(e) => self.message(true, format!("compression ({cfg}) failed: {e}")),
        }
        self.start_next();
        self.save_pending();
    }
}

/// "done in 3 s" for a job that took `d`.
fn done_in(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 9.95 {
        format!("done in {s:.1} s")
    } else if s < 90.0 {
        format!("done in {s:.0} s")
    } else {
        format!("done in {}", human_duration(d).trim_start_matches("about "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jobs_say_tenths_of_a_second() {
        assert_eq!(done_in(Duration::from_millis(40)), "done in 0.0 s");
        assert_eq!(done_in(Duration::from_millis(420)), "done in 0.4 s");
        assert_eq!(done_in(Duration::from_secs(12)), "done in 12 s");
        assert_eq!(done_in(Duration::from_secs(170)), "done in 3 min");
    }
}
