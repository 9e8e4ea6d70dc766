//! The app's bit allocation job: `compress --target-bpw` (data-free) on the selected tensors.

use super::document::{Mapped, Source};
use super::jobs::Ctx;
use crate::study::allocate::{self, Allocation, Stage};
use std::path::PathBuf;
use std::sync::Arc;

/// The data-free allocation of `inputs` (index, name, weights) at `target_bpw`
/// ([`allocate::run`]): α measured on random words of the vocabulary of `model` (its path and
/// map) when it can be run, else 1.
pub fn allocate(
    inputs: &[(usize, String, Source)],
    model: Option<(PathBuf, Arc<Mapped>)>,
    target_bpw: f64,
    ctx: &Ctx<()>,
) -> Result<Allocation, String> {
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
    allocate::run(request, &mut read, ctx.control(), &mut stage).map_err(|e| e.to_string())
}
