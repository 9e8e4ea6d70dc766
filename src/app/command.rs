//! What panels ask the app to do. Panels only read the state and push commands; the app applies
//! them in one place after the frame's widgets are laid out.

pub use super::export::ExportKind;
use crate::core::config::Config;
use std::path::PathBuf;

/// Which central tab is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TabId {
    /// Whole-model figures and the queue.
    Overview,
    /// Heatmaps and histograms of one tensor.
    Tensor,
    /// One block: seed, basis, coefficients, trial seeds.
    Block,
    /// The LFSR walkthrough.
    Walkthrough,
    /// The design-space explorer.
    Explorer,
    /// SeedLM against the data-free baselines.
    Baselines,
    /// The Verilator simulation of the decompressor.
    Hardware,
    /// Progress of a sharded compression (a shard folder).
    Shards,
    /// The compressed model against the original by its outputs.
    Quality,
    /// The original and the compressed model continuing a prompt.
    Generate,
}

/// How a click in the tensor tree changes the selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectMode {
    /// Select only this tensor.
    Replace,
    /// Add or remove this tensor (Ctrl+click).
    Toggle,
    /// Extend from the last clicked tensor (Shift+click).
    Range,
}

/// A request from a panel.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Open a model file, model directory or packed file (in the background).
    Open(PathBuf),
    /// Open the bundled demo model.
    OpenDemo,
    /// Change the tree selection; the clicked tensor becomes the one the Tensor tab shows.
    Select {
        /// Tensor index.
        tensor: usize,
        /// How the click combines with the selection.
        mode: SelectMode,
    },
    /// Select exactly these tensors (e.g. all tensors matching the filter).
    SelectOnly(Vec<usize>),
    /// Show a central tab.
    ShowTab(TabId),
    /// Use these compression settings for the next compressions.
    SetConfig(Config),
    /// Calibrate the next compressions on this text file (`None`: data-free).
    SetCalibration(Option<PathBuf>),
    /// Keep resume sidecars in this folder (`None`: beside each model), from the next
    /// compression or opening on.
    SetSidecarDir(Option<PathBuf>),
    /// Compress these tensors (queued behind a running job).
    Compress(Vec<usize>),
    /// Stop the running compression and drop the queue; tensors keep their previous state.
    Cancel,
    /// Show block `block` of tensor `tensor` in the block inspector.
    Inspect {
        /// Tensor index.
        tensor: usize,
        /// Block index.
        block: usize,
    },
    /// Write the compressed model to `path`.
    Export {
        /// Packed or decompressed.
        kind: ExportKind,
        /// Destination file.
        path: PathBuf,
    },
    /// Dark (true) or light theme.
    SetDark(bool),
    /// Remove the message at this index.
    DismissMessage(usize),
    /// Resume what the model's sidecar offers: load its finished tensors, queue the rest.
    Resume,
    /// Remove the model's sidecar and what it holds.
    DiscardResume,
    /// Start background work for a tab.
    Run(super::work::Work),
    /// Ask the running job of this kind to stop (an export, a tab's run).
    Stop(super::work::JobKind),
}
