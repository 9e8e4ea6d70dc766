//! What the tabs ask to have computed in the background, how each request becomes a
//! [`Job`], and where finished results are kept ([`Results`]), keyed to the document they
//! were computed on.

use super::document::{Document, Mapped, Source, TensorResult};
use super::format::histogram;
use super::generate;
use super::heatmap::{MAX_SIDE, Pool, Scale, colorize, pool, scale_limit};
use super::jobs::{Ctx, Job};
use super::quality::{self, APP_TOKENS};
use crate::eval::calibration::{self, Calibration};
use crate::eval::{Evaluator, Figures, Inputs, Overlay};
use crate::hw::report::{self, HwTable, TensorReport};
use crate::hw::resources::ResourceTable;
use crate::hw::sim::DdrParams;
use crate::hw::synth;
use crate::infer::generate::Sampling;
use crate::io::shard::{self, FolderStatus, Sidecar, SidecarTensor};
use crate::study::allocate::Allocation;
use crate::study::baselines::{Measured, Method};
use crate::study::compare::{self, Row};
use crate::study::explore::{self, Options, Point};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Matrix sizes of the paper's Table 5.
pub const TABLE5_SIZES: [usize; 3] = [512, 1024, 2048];

/// A tensor handed to a baselines run: name, shape, where its weights are read from.
type Input = (String, Vec<usize>, Source);

/// Elements a view reads of one tensor at most (32 MB as f32); taller matrices are sampled by
/// evenly spaced rows.
pub const VIEW_ELEMS: usize = 8 << 20;

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
    HwTable(HwTable),
    /// A tensor's simulation.
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
            .map(Output::HwTable)
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
                allocate(&inputs, model, target_bpw, ctx)
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

/// What a baselines run found.
pub struct BaselineRun {
    /// Rows per tensor and method, totals last.
    pub rows: Vec<Row>,
    /// Per method, the model's outputs with the tensors compressed by it (the rest original)
    /// against the original's; or why the model cannot be run.
    pub function: Result<Vec<(Method, Figures)>, String>,
    /// The tensors as the document holds them compressed (each with its own configuration,
    /// e.g. from Allocate): error and storage, and the outputs' figures when the model can be
    /// run. `None` unless every tensor of the run is compressed.
    pub current: Option<(Measured, Option<Figures>)>,
}

/// The data-free allocation of `inputs` (index, name, weights) at `target_bpw`
/// ([`allocate::run`]): α measured on random words of the vocabulary of `model` (its path and
/// map) when it can be run, else 1.
fn allocate(
    inputs: &[(usize, String, Source)],
    model: Option<(PathBuf, Arc<Mapped>)>,
    target_bpw: f64,
    ctx: &Ctx<()>,
) -> Result<Output, String> {
    use crate::study::allocate::{self, Stage};
    let names: Vec<String> = inputs.iter().map(|(_, n, _)| n.clone()).collect();
    let sizes: Vec<usize> = inputs.iter().map(|(_, _, s)| s.len()).collect();
    let request = allocate::Request {
        names: &names,
        sizes: &sizes,
        target_bpw,
        sensitivity: model.as_ref().map(|(path, mapped)| allocate::Sensitivity {
            input: path,
            model: mapped.model(),
            text: allocate::Text::Vocabulary,
        }),
        rounding: crate::core::quant::Rounding::default(),
    };
    let mut read = |i: usize| inputs[i].2.read();
    let mut stage = |s: Stage<'_>| match s {
        Stage::DataFree(why) => ctx.log(&format!("{why}: every tensor's relMSE weighs alike")),
        Stage::Sensitivity => {
            ctx.log("measuring each tensor's sensitivity on random words of the vocabulary")
        }
        Stage::Menu { .. } => {}
        Stage::Tensor(name) => ctx.log(&format!("measuring the menu on a sample of {name}")),
    };
    let a =
        allocate::run(request, &mut read, ctx.control(), &mut stage).map_err(|e| e.to_string())?;
    let idx = inputs.iter().map(|(i, _, _)| *i).collect();
    Ok(Output::Allocated(idx, Box::new(a)))
}

/// Every method on every tensor, then the totals, then each method's function-space figures
/// (and the document's own compressed state's, `current`) when the model on disk can be run.
fn baselines(
    path: Option<PathBuf>,
    inputs: &[Input],
    methods: &[Method],
    calibration: Option<PathBuf>,
    current: Option<Vec<(Measured, Arc<TensorResult>)>>,
    ctx: &Ctx<()>,
) -> Result<BaselineRun, String> {
    let evaluator = match &path {
        Some(p) => Evaluator::open_model(p).map_err(|e| e.to_string()),
        None => Err("not a model on disk".to_string()),
    };
    let moments = match calibration.filter(|_| methods.iter().any(|m| m.is_calibrated())) {
        Some(text) => {
            let ev = evaluator
                .as_ref()
                .map_err(|e| format!("calibration needs the model to run: {e}"))?;
            let c = calibration::calibrate(ev, &text, ctx.control()).map_err(|e| e.to_string())?;
            ctx.log(&format!(
                "calibrated on {}: {} tensors' input moments",
                text.display(),
                c.moments.len()
            ));
            // Progress now counts the search's blocks.
            ctx.progress().done.store(0, Ordering::Relaxed);
            c.moments
        }
        None => Default::default(),
    };
    // The document's own compressed tensors join the model run as one more candidate.
    let mut extra = Vec::new();
    let current = match current {
        Some(results) => {
            let mut m = Measured::default();
            let mut overlay = Overlay::new();
            for ((name, _, _), (measured, r)) in inputs.iter().zip(&results) {
                m = m.add(measured);
                if evaluator.is_ok() {
                    overlay.push((name.clone(), r.reconstruction().map_err(|e| e.to_string())?));
                }
            }
            if evaluator.is_ok() {
                extra.push(overlay);
            }
            Some(m)
        }
        None => None,
    };
    let tensors: Vec<compare::Tensor> = inputs
        .iter()
        .map(|(name, shape, _)| compare::Tensor {
            name: name.clone(),
            shape: shape.clone(),
        })
        .collect();
    let source = path.as_deref().unwrap_or(Path::new("."));
    let request = compare::Request {
        tensors: &tensors,
        methods,
        moments: &moments,
        function: evaluator.as_ref().ok().map(|ev| compare::FunctionSpace {
            evaluator: ev,
            source,
            inputs: Inputs {
                max_tokens: Some(APP_TOKENS),
                ..Default::default()
            },
            extra,
        }),
    };
    let mut read = |i: usize| inputs[i].2.read();
    let outcome =
        compare::run(request, &mut read, ctx.control(), &mut |_| {}).map_err(|e| e.to_string())?;
    let (rows, mut figures) = (outcome.rows, outcome.function);
    let mut current_figures = None;
    let function = match evaluator {
        Ok(_) => {
            if current.is_some() {
                current_figures = figures.pop();
            }
            Ok(methods.iter().copied().zip(figures).collect())
        }
        Err(e) => Err(e),
    };
    Ok(BaselineRun {
        rows,
        function,
        current: current.map(|m| (m, current_figures)),
    })
}

/// Histograms as (bin centre, count).
pub struct Hists {
    /// Original weights.
    pub weights: Vec<(f64, f64)>,
    /// Reconstructed weights.
    pub weights_recon: Vec<(f64, f64)>,
    /// log10 relative MSE per block.
    pub block_err: Vec<(f64, f64)>,
    /// Seeds chosen.
    pub seeds: Vec<(f64, f64)>,
    /// Exponents e.
    pub exps: Vec<(f64, f64)>,
    /// Coefficients q.
    pub qs: Vec<(f64, f64)>,
}

/// Heatmap images (original, reconstructed, error) and histograms of one tensor state.
pub struct Prepared {
    /// w, ŵ and |w − ŵ| (pooled), where known, with the scale each is coloured on.
    pub images: [Option<(egui::ColorImage, Scale)>; 3],
    /// The histograms.
    pub hists: Hists,
    /// Rows read of the matrix's rows, when it was too large to read whole.
    pub sampled: Option<(usize, usize)>,
}

fn image(data: &[f32], (rows, cols): (usize, usize), how: Pool) -> (egui::ColorImage, Scale) {
    let p = pool(data, rows, cols, MAX_SIDE, how);
    let scale = Scale {
        limit: scale_limit(&p.values),
        signed: how == Pool::Mean,
    };
    (colorize(&p, scale), scale)
}

/// The rows a view reads of a `rows × cols` matrix: all of them when they hold at most
/// [`VIEW_ELEMS`] elements, else that many elements' worth of evenly spaced rows.
pub fn view_rows(rows: usize, cols: usize) -> Vec<usize> {
    let n = (VIEW_ELEMS / cols.max(1)).clamp(1, rows.max(1));
    (0..n).map(|i| i * rows / n).collect()
}

/// Rows `rows` (ascending) of a matrix with `cols` columns, read through `read` (an element
/// range to its values) one run of consecutive rows at a time, runs in parallel.
fn read_rows(
    rows: &[usize],
    cols: usize,
    read: impl Fn(std::ops::Range<usize>) -> Result<Vec<f32>, String> + Sync,
) -> Result<Vec<f32>, String> {
    use rayon::prelude::*;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &r in rows {
        match runs.last_mut() {
            Some((_, end)) if *end == r => *end += 1,
            _ => runs.push((r, r + 1)),
        }
    }
    // Runs of at most 64 rows, so one long run is still read in parallel.
    let pieces: Vec<(usize, usize)> = runs
        .iter()
        .flat_map(|&(a, b)| (a..b).step_by(64).map(move |s| (s, (s + 64).min(b))))
        .collect();
    let parts: Vec<Vec<f32>> = pieces
        .par_iter()
        .map(|&(a, b)| read(a * cols..b * cols))
        .collect::<Result<_, _>>()?;
    Ok(parts.concat())
}

/// Computes the Tensor tab's images and histograms from the rows [`view_rows`] picks, read
/// from `src` and decoded from `res` (slow for large tensors: run it as a job).
pub fn prepare(
    src: Option<&Source>,
    res: Option<&TensorResult>,
    dims: (usize, usize),
) -> Result<Prepared, String> {
    let (rows, cols) = dims;
    let picked = view_rows(rows, cols);
    let shown = (picked.len(), cols);
    let orig = src
        .map(|s| read_rows(&picked, cols, |r| s.read_range(r)))
        .transpose()?;
    let recon = res
        .map(|r| {
            read_rows(&picked, cols, |e| {
                r.compressed.reconstruct_range(e).map_err(|e| e.to_string())
            })
        })
        .transpose()?;
    let (orig, recon) = (orig.as_deref(), recon.as_deref());
    let err: Option<Vec<f32>> = match (orig, recon) {
        (Some(o), Some(r)) => Some(o.iter().zip(r).map(|(a, b)| a - b).collect()),
        _ => None,
    };
    let lim = orig
        .or(recon)
        .map_or(1.0, |v| v.iter().fold(0.0f32, |m, x| m.max(x.abs())))
        .max(f32::MIN_POSITIVE) as f64;
    let weights = |v: Option<&[f32]>| {
        v.map_or_else(Vec::new, |v| {
            histogram(v.iter().map(|&x| f64::from(x)), -lim, lim, 81)
        })
    };
    let (mut block_err, mut seeds, mut exps, mut qs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Some(r) = res {
        // Decoded for the histograms only; dropped with them.
        let ct = &r.compressed.unpack().map_err(|e| e.to_string())?;
        let p = ct.config.p;
        if let Some(s) = &r.stats {
            block_err = histogram(
                (0..ct.num_blocks()).map(|b| s.block_relmse(b).max(1e-12).log10()),
                -5.0,
                1.0,
                60,
            );
        }
        let top = (1u64 << ct.config.k) as f64;
        seeds = histogram(ct.blocks.iter().map(|b| f64::from(b.seed)), 0.0, top, 64);
        exps = histogram(
            (0..ct.num_blocks()).map(|b| f64::from(ct.exponent(b))),
            f64::from(ct.e_base) - 0.5,
            f64::from(ct.e_base) + 15.5,
            16,
        );
        qs = histogram(
            ct.blocks
                .iter()
                .flat_map(|b| b.q[..p].iter().map(|&q| f64::from(q))),
            -8.5,
            7.5,
            16,
        );
    }
    Ok(Prepared {
        images: [
            orig.map(|o| image(o, shown, Pool::Mean)),
            recon.map(|r| image(r, shown, Pool::Mean)),
            err.map(|e| image(&e, shown, Pool::Rms)),
        ],
        hists: Hists {
            weights: weights(orig),
            weights_recon: weights(recon),
            block_err,
            seeds,
            exps,
            qs,
        },
        sampled: (picked.len() < rows).then_some((picked.len(), rows)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_small_matrices_whole_and_sample_tall_ones() {
        assert_eq!(view_rows(3, 5), vec![0, 1, 2]);
        let tall = view_rows(128_256, 4096);
        assert_eq!(tall.len(), VIEW_ELEMS / 4096);
        assert!(tall.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tall[0], 0);
        assert!(*tall.last().unwrap() >= 128_256 - 128_256 / tall.len() - 1);
        // A single row wider than the budget is still read.
        assert_eq!(view_rows(1, VIEW_ELEMS * 2), vec![0]);
    }

    #[test]
    fn sampled_rows_are_read_in_order() {
        let data: Vec<f32> = (0..200 * 3).map(|x| x as f32).collect();
        let rows: Vec<usize> = (0..200).filter(|r| r % 7 != 3).collect();
        let got = read_rows(&rows, 3, |r| Ok(data[r].to_vec())).unwrap();
        let want: Vec<f32> = rows
            .iter()
            .flat_map(|&r| data[r * 3..r * 3 + 3].to_vec())
            .collect();
        assert_eq!(got, want);
    }
}
