//! What the tabs ask to have computed in the background, how each request becomes a
//! [`Job`], and where finished results are kept ([`Results`]), keyed to the document they
//! were computed on.

use super::allocate::allocate;
use super::baselines::{BaselineRun, Input, baselines};
use super::document::{Document, Source, TensorResult};
use super::generate;
use super::jobs::{Ctx, Job};
use super::prepare::{Prepared, prepare};
use super::quality;
use crate::eval::calibration::{self, Calibration};
use crate::hw::report::{self, HwTable, TensorReport};
use crate::hw::resources::ResourceTable;
use crate::hw::sim::DdrParams;
use crate::hw::synth;
use crate::infer::generate::Sampling;
use crate::io::shard::{self, FolderStatus, Sidecar, SidecarTensor};
use crate::study::allocate::Allocation;
use crate::study::baselines::{Measured, Method};
use crate::study::compare;
use crate::study::explore::{self, Options, Point};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Matrix sizes of the paper's Table 5.
pub const TABLE5_SIZES: [usize; 3] = [512, 1024, 2048];

/// Identifies a tensor state, so a view prepared for an older one is not shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorKey {
    /// The document's id.
    pub doc: u64,
    /// The tensor's index in the document.
    pub tensor: usize,
    /// Its result's generation (0: not compressed).
    pub generation: u64,
}

/// What a file dialog is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Open a model.
    Open,
    /// Open a model directory or a shard folder.
    OpenFolder,
    /// Export to the chosen file.
    Export(super::export::ExportKind),
    /// Choose the calibration text of the compression settings.
    Calibration,
}

/// A piece of background work a panel asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// The paper's Table 5 on the Verilator model.
    HwTable,
    /// The Verilator model on this compressed tensor.
    HwTensor(usize),
    /// The designs' FPGA resources, synthesised with Yosys (the paper's Table 4).
    HwResources,
    /// A design-space grid.
    Explore(Options),
    /// The baselines on these tensors.
    Baselines {
        /// Tensor indices.
        tensors: Vec<usize>,
        /// Methods to run.
        methods: Vec<Method>,
        /// The text the calibrated methods are calibrated on (they need one).
        calibration: Option<PathBuf>,
    },
    /// Heatmaps and histograms of this tensor, for the Tensor tab.
    Prepare(usize),
    /// The compressed state against the original by outputs, for the Quality tab; with
    /// `per_layer` also each tensor and layer alone.
    Quality {
        /// Also each tensor and each layer alone.
        per_layer: bool,
        /// What decoder LMs score.
        inputs: quality::TextChoice,
    },
    /// The original and the compressed state continue a prompt, for the Generate tab.
    Generate {
        /// The prompt.
        prompt: String,
        /// Tokens to generate at most.
        max_tokens: usize,
        /// How each model picks its tokens (the same draws for both).
        sampling: Sampling,
    },
    /// A file dialog.
    Dialog(Purpose),
    /// Read the progress of this shard folder again.
    Shards(PathBuf),
    /// A configuration per tensor from the bit-budget menu (data-free), so that these
    /// tensors average at most `target_bpw`; each is then queued for compression with its own.
    Allocate {
        /// Tensor indices.
        tensors: Vec<usize>,
        /// Packed bits per compressed weight, at most.
        target_bpw: f64,
    },
    /// The input moments of the open model on this calibration text, for calibrated
    /// compression.
    Calibrate(PathBuf),
}

/// Which job: at most one of each kind runs at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobKind {
    /// Opening a model.
    Open,
    /// Writing an export.
    Export,
    /// A hardware simulation.
    Hardware,
    /// A design-space grid.
    Explore,
    /// A baselines comparison.
    Baselines,
    /// Tensor-tab preparation.
    Prepare,
    /// A function-space evaluation.
    Quality,
    /// Two continuations of a prompt.
    Generate,
    /// A file dialog.
    Dialog,
    /// Reading a shard folder's progress.
    Shards,
    /// A bit allocation.
    Allocate,
    /// Measuring a calibration's moments.
    Calibrate,
}

impl Work {
    /// The kind of job this work runs as.
    pub fn kind(&self) -> JobKind {
        match self {
            Work::HwTable | Work::HwTensor(_) | Work::HwResources => JobKind::Hardware,
            Work::Explore(_) => JobKind::Explore,
            Work::Baselines { .. } => JobKind::Baselines,
            Work::Prepare(_) => JobKind::Prepare,
            Work::Quality { .. } => JobKind::Quality,
            Work::Generate { .. } => JobKind::Generate,
            Work::Dialog(_) => JobKind::Dialog,
            Work::Shards(_) => JobKind::Shards,
            Work::Allocate { .. } => JobKind::Allocate,
            Work::Calibrate(_) => JobKind::Calibrate,
        }
    }
}

/// What a finished job hands back.
pub enum Output {
    /// A model opened from this path, and what its sidecar offers to resume.
    Opened(PathBuf, Box<Document>, Option<ResumeOffer>),
    /// An export's one-line summary.
    Exported(String),
    /// Table 5.
    HwTable(Box<HwTable>),
    /// A tensor's simulation or estimate.
    HwTensor(String, TensorReport),
    /// The designs' synthesised resources.
    HwResources(ResourceTable),
    /// A design-space grid and its options.
    Explore(Options, Vec<Point>),
    /// A baselines comparison.
    Baselines(Box<BaselineRun>),
    /// A tensor's heatmaps and histograms.
    Prepared(TensorKey, Arc<Prepared>),
    /// A Quality run.
    Quality(Box<quality::Report>),
    /// A Generate run.
    Generated(Box<generate::Run>),
    /// A dialog's choice, and whether a dialog could be shown at all.
    Picked(Purpose, Option<PathBuf>, bool),
    /// A shard folder's progress, or why it could not be read.
    Shards(PathBuf, Result<Box<FolderStatus>, String>),
    /// A bit allocation: the tensors (indices) and their configurations, in order.
    Allocated(Vec<usize>, Box<Allocation>),
    /// The moments measured on the calibration text at this path.
    Calibrated(PathBuf, Arc<Calibration>),
}

/// What an earlier session left in a model's sidecar.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeOffer {
    /// The sidecar.
    pub sidecar: Sidecar,
    /// Tensors it holds finished.
    pub finished: Vec<SidecarTensor>,
    /// Tensors asked for and not finished.
    pub pending: Vec<SidecarTensor>,
}

impl ResumeOffer {
    /// What `sidecar` offers for `doc` (`None` when nothing): finished tensors of its model
    /// at the settings they were made with, and those still to do.
    pub fn find(sidecar: Sidecar, doc: &Document) -> Option<ResumeOffer> {
        let model = doc.mapped.as_ref()?.model();
        let finished = sidecar.finished(model);
        let pending: Vec<SidecarTensor> = sidecar
            .pending()
            .into_iter()
            .filter(|p| doc.find(&p.name).is_some() && !finished.contains(p))
            .collect();
        (!finished.is_empty() || !pending.is_empty()).then_some(ResumeOffer {
            sidecar,
            finished,
            pending,
        })
    }

    /// The offer in one line, for the banner.
    pub fn text(&self) -> String {
        let mut t = format!(
            "An earlier session left {} compressed tensor(s) in {}",
            self.finished.len(),
            self.sidecar.root().display()
        );
        if !self.pending.is_empty() {
            t += &format!(" and {} still to compress", self.pending.len());
        }
        t + "."
    }
}

/// How often the Shards tab reads its folder again while it is shown.
pub const SHARD_REFRESH: Duration = Duration::from_secs(1);

/// The shard folder the Shards tab follows: its last reading and when it was asked for.
pub struct ShardView {
    /// The shard folder.
    pub folder: PathBuf,
    /// The last progress read.
    pub status: Box<FolderStatus>,
    /// Why the last reading failed, if it did (the progress shown is then older).
    pub error: Option<String>,
    /// When the last reading was started or taken in.
    pub read_at: Instant,
}

/// A result that belongs to one document.
pub struct Keyed<T> {
    /// The document's id.
    pub doc: u64,
    /// The result.
    pub value: T,
}

/// Finished results of the tabs' jobs. Those computed on a model are keyed to its document and
/// dropped when another model opens; the design space and Table 5 depend on no model.
#[derive(Default)]
pub struct Results {
    /// The last Table 5 run.
    pub hw_table: Option<HwTable>,
    /// The last tensor simulation: tensor name and report.
    pub hw_tensor: Option<Keyed<(String, TensorReport)>>,
    /// The last synthesis of the designs (Table 4).
    pub hw_resources: Option<ResourceTable>,
    /// The log of the last hardware run.
    pub hw_log: Vec<String>,
    /// The last design-space grid.
    pub explore: Option<(Options, Vec<Point>)>,
    /// The last baselines run.
    pub baselines: Option<Keyed<BaselineRun>>,
    /// The Tensor tab's last preparation.
    pub prepared: Option<(TensorKey, Arc<Prepared>)>,
    /// The shard folder opened last (it depends on no model).
    pub shards: Option<ShardView>,
    /// The last Quality run.
    pub quality: Option<Keyed<quality::Report>>,
    /// The last Generate run.
    pub generate: Option<Keyed<generate::Run>>,
    /// The last calibration measured, and the path of its text: calibrated compressions of
    /// the document reuse it.
    pub calibration: Option<Keyed<(PathBuf, Arc<Calibration>)>>,
}

impl Results {
    /// Drops what was computed on another document than `doc`.
    pub fn keep_doc(&mut self, doc: u64) {
        if self.hw_tensor.as_ref().is_some_and(|k| k.doc != doc) {
            self.hw_tensor = None;
        }
        if self.baselines.as_ref().is_some_and(|k| k.doc != doc) {
            self.baselines = None;
        }
        if self.quality.as_ref().is_some_and(|k| k.doc != doc) {
            self.quality = None;
        }
        if self.generate.as_ref().is_some_and(|k| k.doc != doc) {
            self.generate = None;
        }
        if self.prepared.as_ref().is_some_and(|(k, _)| k.doc != doc) {
            self.prepared = None;
        }
        if self.calibration.as_ref().is_some_and(|k| k.doc != doc) {
            self.calibration = None;
        }
    }
}

/// The key of tensor `i`'s current state in `doc`.
pub fn tensor_key(doc: &Document, i: usize) -> TensorKey {
    TensorKey {
        doc: doc.id,
        tensor: i,
        generation: doc.tensors[i].result.as_ref().map_or(0, |r| r.generation),
    }
}

/// Starts `work` on `doc`; `Err` is a readable reason it cannot start.
pub fn spawn(
    work: Work,
    doc: &Document,
    repaint: Option<egui::Context>,
) -> Result<Job<Output>, String> {
    let id = Some(doc.id);
    Ok(match work {
        Work::HwTable => Job::spawn("Hardware (Table 5)", None, repaint, |ctx: &Ctx<()>| {
            let log = &mut |l: &str| ctx.log(l);
            report::run_table(
                &TABLE5_SIZES,
                false,
                &DdrParams::default(),
                log,
                ctx.cancel_flag(),
            )
            .map(|t| Output::HwTable(Box::new(t)))
            .map_err(|e| e.to_string())
        }),
        Work::HwResources => Job::spawn("Hardware (Table 4)", None, repaint, |ctx: &Ctx<()>| {
            let log = &mut |l: &str| ctx.log(l);
            synth::run_resources(false, log, ctx.cancel_flag())
                .map(Output::HwResources)
                .map_err(|e| e.to_string())
        }),
        Work::HwTensor(i) => {
            let t = doc.tensors.get(i).ok_or("no such tensor")?;
            let r = t
                .result
                .clone()
                .ok_or(format!("{}: not compressed", t.name))?;
            let (name, shape) = (t.name.clone(), t.shape.clone());
            Job::spawn(format!("Hardware ({name})"), id, repaint, move |ctx| {
                let log = &mut |l: &str| ctx.log(l);
                let ddr = DdrParams::default();
                let codes = r.compressed.unpack().map_err(|e| e.to_string())?;
                report::run_compressed_tensor(
                    &codes,
                    &shape,
                    1,
                    false,
                    &ddr,
                    log,
                    ctx.cancel_flag(),
                )
                .map(|rep| Output::HwTensor(name.clone(), rep))
                .map_err(|e| format!("{name}: {e}"))
            })
        }
        Work::Explore(opts) => Job::spawn("Design space", None, repaint, move |ctx| {
            explore::explore(&opts, ctx.control())
                .map(|p| Output::Explore(opts, p))
                .map_err(|e| e.to_string())
        }),
        Work::Baselines {
            tensors,
            methods,
            calibration,
        } => {
            compare::check_calibration(&methods, calibration.is_some())
                .map_err(|e| e.to_string())?;
            let inputs: Vec<Input> = tensors
                .iter()
                .filter_map(|&i| {
                    let t = doc.tensors.get(i)?;
                    Some((t.name.clone(), t.shape.clone(), t.source.clone()?))
                })
                .collect();
            let path = doc.path.clone();
            // The document's own state joins the run when every input is compressed.
            let current: Option<Vec<(Measured, Arc<TensorResult>)>> = tensors
                .iter()
                .map(|&i| {
                    let t = doc.tensors.get(i)?;
                    t.source.as_ref()?;
                    let r = t.result.clone()?;
                    let e = r.stats.as_ref()?;
                    let m = Measured {
                        sq_err: e.sq_err,
                        sq_norm: e.sq_norm,
                        bits: r.bits(),
                        len: t.len() as u64,
                    };
                    Some((m, r))
                })
                .collect();
            Job::spawn("Baselines", id, repaint, move |ctx| {
                baselines(path, &inputs, &methods, calibration, current, ctx)
                    .map(|b| Output::Baselines(Box::new(b)))
            })
        }
        Work::Allocate {
            tensors,
            target_bpw,
        } => {
            let inputs: Vec<(usize, String, Source)> = tensors
                .iter()
                .filter_map(|&i| {
                    let t = doc.tensors.get(i)?;
                    Some((i, t.name.clone(), t.source.clone()?))
                })
                .collect();
            if inputs.is_empty() {
                return Err("none of these tensors has original weights to compress".into());
            }
            let model = doc.path.clone().zip(doc.mapped.clone());
            Job::spawn("Bit allocation", id, repaint, move |ctx| {
                let a = allocate(&inputs, model, target_bpw, ctx)?;
                let idx = inputs.iter().map(|(i, _, _)| *i).collect();
                Ok(Output::Allocated(idx, Box::new(a)))
            })
        }
        Work::Calibrate(text) => {
            let model = doc
                .path
                .clone()
                .filter(|_| doc.mapped.is_some())
                .ok_or("calibration runs the model: open a model file or directory")?;
            let label = format!("calibrating on {}", super::format::file_name(&text));
            Job::spawn(label, id, repaint, move |ctx| {
                calibration::calibrate_model(&model, &text, ctx.control())
                    .map(|c| Output::Calibrated(text.clone(), Arc::new(c)))
                    .map_err(|e| e.to_string())
            })
        }
        Work::Prepare(i) => {
            let t = doc.tensors.get(i).ok_or("no such tensor")?;
            let key = tensor_key(doc, i);
            let (src, res, dims) = (t.source.clone(), t.result.clone(), t.matrix_dims());
            let name = t.name.clone();
            Job::spawn("preparing heatmaps", id, repaint, move |_| {
                let p = prepare(src.as_ref(), res.as_deref(), dims)
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok(Output::Prepared(key, Arc::new(p)))
            })
        }
        Work::Shards(folder) => Job::spawn("reading shard progress", None, repaint, move |_| {
            let st = shard::status(&folder)
                .map(Box::new)
                .map_err(|e| e.to_string());
            Ok(Output::Shards(folder, st))
        }),
        Work::Quality { per_layer, inputs } => {
            let snap = quality::snapshot(doc, "Quality")?;
            Job::spawn("Quality", id, repaint, move |ctx| {
                quality::run(snap, per_layer, &inputs, ctx).map(|r| Output::Quality(Box::new(r)))
            })
        }
        Work::Generate {
            prompt,
            max_tokens,
            sampling,
        } => {
            let snap = quality::snapshot(doc, "Generate")?;
            Job::spawn("Generate", id, repaint, move |ctx| {
                generate::run(snap, prompt, max_tokens, sampling, ctx)
                    .map(|r| Output::Generated(Box::new(r)))
            })
        }
        Work::Dialog(purpose) => {
            if !dialog_possible() {
                return Err(NO_DIALOG.into());
            }
            Job::spawn_waiting("file dialog", repaint, move |_| {
                let started = std::time::Instant::now();
                let path = pick(purpose);
                // A dialog that could not open returns at once; no one cancels that fast.
                let shown = path.is_some() || started.elapsed().as_secs_f64() > 0.5;
                Ok(Output::Picked(purpose, path, shown))
            })
        }
    })
}

/// Said when no file dialog can be shown.
pub const NO_DIALOG: &str = "no file dialog is available here (no desktop portal or zenity): \
                             type the path in the Path field at the top and press Enter";

/// Whether a file dialog can open: on Linux rfd needs a desktop portal on the session bus, or
/// zenity.
fn dialog_possible() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let zenity = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("zenity").is_file()));
    zenity || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
}

fn pick(purpose: Purpose) -> Option<PathBuf> {
    use super::export::ExportKind;
    let d = rfd::FileDialog::new();
    match purpose {
        Purpose::Open => d
            .add_filter("models", &["safetensors", "seedlm"])
            .add_filter("shard folder (its job.json)", &["json"])
            .pick_file(),
        Purpose::OpenFolder => d.pick_folder(),
        Purpose::Calibration => d.pick_file(),
        Purpose::Export(ExportKind::Packed) => {
            d.set_file_name("model.seedlm.safetensors").save_file()
        }
        Purpose::Export(ExportKind::Decompressed) => d
            .set_file_name("model.decompressed.safetensors")
            .save_file(),
    }
}
