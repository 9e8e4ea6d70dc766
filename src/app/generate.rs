//! The Generate tab's work: the open model's original and its in-app compression state each
//! continue a prompt, and the compressed continuation is scored token by token against the
//! original with the eval engine (docs/DESIGN.md §5).

use super::jobs::Ctx;
use super::quality::{Snapshot, StateKey};
use crate::eval::divergence::{Divergence, Lm};
use crate::eval::{Evaluator, model_dir};
use crate::infer::generate::Sampling;

/// Tokens a continuation may have at most in the app.
pub const MAX_TOKENS: usize = 512;

/// A finished Generate run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The prompt as typed.
    pub prompt: String,
    /// How the tokens were picked.
    pub sampling: Sampling,
    /// Both continuations and the compressed one's divergence.
    pub divergence: Divergence,
    /// The compressed state it was computed on.
    pub key: StateKey,
}

/// Continues `prompt` for up to `max_tokens` with the original and the compressed state of
/// `snap`, each picking its tokens by `sampling`. Progress counts generated tokens, then the
/// two scoring forwards.
pub fn run(
    snap: Snapshot,
    prompt: String,
    max_tokens: usize,
    sampling: Sampling,
    ctx: &Ctx<()>,
) -> Result<Run, String> {
    let failed = |e: crate::eval::EvalError| e.to_string();
    // The description first: an encoder is refused before its weights are read.
    let lm = Lm::open(model_dir(snap.path()).map_err(|e| e.to_string())?).map_err(failed)?;
    let ids = lm.prompt_ids(&prompt).map_err(failed)?;
    let evaluator = Evaluator::open_model(snap.path()).map_err(failed)?;
    let candidate = snap.candidate(&evaluator)?;
    let divergence = lm
        .diverge(
            evaluator.weights(),
            &candidate,
            &ids,
            max_tokens.min(MAX_TOKENS),
            &sampling,
            ctx.control(),
        )
        .map_err(failed)?;
    Ok(Run {
        prompt,
        sampling,
        divergence,
        key: snap.key().clone(),
    })
}
