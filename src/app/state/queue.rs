//! The compression queue, and the resume sidecar that keeps what it finishes.

use super::{AppState, Settings};
use crate::app::jobs::{CompressJob, Input};
use crate::app::loader;
use crate::app::work::{JobKind, Work};
use crate::core::config::Config;
use crate::io::job_plan::TextId;
use crate::io::shard::{Sidecar, SidecarTensor};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

impl AppState {
    /// The sidecar of the open model ([`sidecar_for`]), when it is a model file and sidecars
    /// are on.
    pub(super) fn sidecar(&self) -> Option<Sidecar> {
        let path = self.doc.path.as_ref()?;
        (self.sidecars && self.doc.mapped.is_some())
            .then(|| {
                sidecar_for(
                    self.saved.sidecar_dir.as_deref(),
                    self.data_dir.as_deref(),
                    path,
                )
            })
            .flatten()
    }

    /// Takes up the sidecar's offer: its finished tensors (read, not searched) and those
    /// still to do are queued at the settings they were asked with, except tensors that have
    /// a result already.
    pub(super) fn resume(&mut self) {
        let Some(offer) = self.resume.take() else {
            return;
        };
        let mut n = 0;
        for t in offer.finished.iter().chain(&offer.pending) {
            let Some(i) = self.doc.find(&t.name) else {
                continue;
            };
            if self.doc.tensors[i].result.is_none() && !self.queue.iter().any(|(q, _)| *q == i) {
                let settings = Settings {
                    config: t.config,
                    calibration: t.calibration.clone(),
                };
                self.queue.push_back((i, settings));
                n += 1;
            }
        }
        self.message(
            false,
            format!(
                "resuming {n} tensor(s) from {}",
                offer.sidecar.root().display()
            ),
        );
        self.start_next();
        self.save_pending();
    }

    /// Writes the tensors asked for and not finished (the running job's and the queue's) to
    /// the sidecar, so a resume knows them.
    pub(super) fn save_pending(&mut self) {
        let Some(sidecar) = self.sidecar() else {
            return;
        };
        let mut left: Vec<SidecarTensor> = Vec::new();
        if let Some(job) = &self.job {
            let from = job
                .current
                .and_then(|(cur, _)| job.tensors.iter().position(|&t| t == cur))
                .unwrap_or(0);
            let calibration = job.calibration.as_ref().map(|c| c.text.path.clone());
            left.extend(job.tensors[from..].iter().map(|&t| SidecarTensor {
                name: self.doc.tensors[t].name.clone(),
                config: job.config,
                calibration: calibration.clone(),
            }));
        }
        left.extend(self.queue.iter().map(|(t, s)| SidecarTensor {
            name: self.doc.tensors[*t].name.clone(),
            config: s.config,
            calibration: s.calibration.clone(),
        }));
        if let Err(e) = sidecar.set_pending(&left) {
            self.message(true, e.to_string());
        }
    }

    pub(super) fn enqueue(&mut self, tensors: Vec<usize>) {
        let cfg = self.config;
        self.enqueue_with(tensors.into_iter().map(|t| (t, cfg)).collect());
    }

    /// Queues each tensor with its own configuration and the calibration of the settings (a
    /// tensor already queued keeps its place). A tensor compressed at that configuration with
    /// the same calibration already (data-free, or weighted by a text of the same SHA-256) is
    /// skipped: the search is deterministic, so it would find the same codes again.
    pub(super) fn enqueue_with(&mut self, tensors: Vec<(usize, Config)>) {
        let mut skipped = 0;
        let mut done = 0;
        // The calibration asked for, by its text's hash (`None`: unreadable, never matched).
        let wanted = match &self.calibration {
            None => Some(None),
            Some(text) => TextId::of(text).ok().map(|t| Some(t.sha256)),
        };
        for (t, config) in tensors {
            let Some(entry) = self.doc.tensors.get(t) else {
                continue;
            };
            if entry.source.is_none() || entry.is_empty() {
                skipped += 1;
                continue;
            }
            if let (Some(r), Some(wanted)) = (&entry.result, &wanted)
                && r.compressed.config == config
                && r.calibration.as_ref().map(|c| &c.sha256) == wanted.as_ref()
            {
                done += 1;
                continue;
            }
            if !self.queue.iter().any(|(q, _)| *q == t) {
                let calibration = self.calibration.clone();
                self.queue.push_back((
                    t,
                    Settings {
                        config,
                        calibration,
                    },
                ));
            }
        }
        if skipped > 0 {
            self.message(
                false,
                format!("{skipped} tensor(s) skipped: no original weights to compress"),
            );
        }
        if done > 0 {
            self.message(
                false,
                format!("{done} tensor(s) skipped: already compressed with these settings"),
            );
        }
        self.start_next();
        self.save_pending();
    }

    /// Starts the next job from the queue: consecutive tensors with the same settings. A
    /// calibrated one waits for its text's moments, measured once per document and text.
    pub(super) fn start_next(&mut self) {
        if self.job.is_some() {
            return;
        }
        let Some((_, settings)) = self.queue.front().cloned() else {
            return;
        };
        let calibration = match &settings.calibration {
            None => None,
            Some(text) => match &self.results.calibration {
                Some(k) if k.doc == self.doc.id && k.value.0 == *text => Some(k.value.1.clone()),
                _ => {
                    if !self.jobs.contains_key(&JobKind::Calibrate) {
                        self.run(Work::Calibrate(text.clone()));
                        // It could not start (said in a message): nothing can use that text.
                        if !self.jobs.contains_key(&JobKind::Calibrate) {
                            self.drop_calibrated();
                        }
                    }
                    return;
                }
            },
        };
        let mut inputs = Vec::new();
        while let Some((t, s)) = self.queue.front() {
            if *s != settings {
                break;
            }
            let e = &self.doc.tensors[*t];
            if let Some(src) = &e.source {
                inputs.push(Input {
                    tensor: *t,
                    name: e.name.clone(),
                    shape: e.shape.clone(),
                    source: src.clone(),
                });
            }
            self.queue.pop_front();
        }
        self.job = Some(CompressJob::spawn(
            inputs,
            settings.config,
            calibration,
            self.doc.id,
            self.sidecar(),
            self.repaint.clone(),
        ));
    }

    /// Drops the calibrated tensors from the queue once their moments cannot be measured, and
    /// goes on with the rest.
    pub(super) fn drop_calibrated(&mut self) {
        self.queue.retain(|(_, s)| s.calibration.is_none());
        self.save_pending();
        self.start_next();
    }

    pub(super) fn cancel(&mut self) {
        self.queue.clear();
        if let Some(job) = &self.job {
            job.job.cancel();
        }
        if let Some(j) = self.jobs.get(&JobKind::Calibrate) {
            j.cancel();
        }
        self.save_pending();
    }
}

/// The sidecar of model `path`: in `dir` when the user chose one; else beside the model,
/// except for the bundled demo and models in a read-only folder, whose sidecars go to `data`
/// (`None` when there is none: nothing is written into a checkout).
pub(super) fn sidecar_for(dir: Option<&Path>, data: Option<&Path>, path: &Path) -> Option<Sidecar> {
    if let Some(d) = dir {
        return Some(Sidecar::in_folder(d, path));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Creating a file is the one test of writability that sees ACLs and read-only mounts.
    if loader::is_demo(path) || tempfile::tempfile_in(folder).is_err() {
        return data.map(|d| Sidecar::in_folder(d, path));
    }
    Some(Sidecar::beside(path))
}

/// The user's folder for sidecars that cannot sit beside their model, from the environment
/// `var`: `$XDG_DATA_HOME/seedlm/resume`, else `$HOME/.local/share/seedlm/resume`, else
/// the same under `%LOCALAPPDATA%`. Relative values are ignored, as the XDG spec says.
pub fn user_data_dir(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let abs = |k: &str| var(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = abs("XDG_DATA_HOME")
        .or_else(|| abs("HOME").map(|h| h.join(".local").join("share")))
        .or_else(|| abs("LOCALAPPDATA"))?;
    Some(base.join("seedlm").join("resume"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_folder_follows_xdg_then_home_and_ignores_relative_values() {
        let got = |pairs: &[(&str, &str)]| {
            user_data_dir(|k| pairs.iter().find(|p| p.0 == k).map(|p| OsString::from(p.1)))
        };
        let xdg = [("XDG_DATA_HOME", "/x/data"), ("HOME", "/h")];
        assert_eq!(got(&xdg), Some(PathBuf::from("/x/data/seedlm/resume")));
        let home = [("XDG_DATA_HOME", "rel"), ("HOME", "/h")];
        assert_eq!(
            got(&home),
            Some(PathBuf::from("/h/.local/share/seedlm/resume"))
        );
        assert_eq!(got(&[("HOME", "")]), None);
    }
}
