//! A bit budget across tensors (`compress --target-bpw B`): each tensor gets a configuration
//! from [`MENU`] so that the packed bits over all compressed weights average at most B, with
//! the configurations put where they buy the most.
//!
//! Model: compressing tensor t with configuration c moves the network's output by
//! effect_t(c) ≈ α_t · relMSE_t(c), and effects add up over tensors. relMSE_t(c) is measured
//! by compressing a fixed sample of each tensor's weights ([`sample`]) with every menu entry.
//! α_t comes from the evaluator ([`sensitivities`]): the output change when tensor t alone gets
//! seeded Gaussian noise of a known relMSE, on text the caller gives (never the evaluation
//! sentences). Without text α_t = 1 (data-free: the sum of relMSEs is minimised).
//!
//! The budget is solved by greedy marginal-gain allocation on each tensor's lower convex hull
//! of (bits, effect), which is the Lagrangian solution: it is optimal among allocations that
//! use exactly the bits it spends, stops at most one hull step short of the budget, and is
//! deterministic (ties go to the earlier tensor). An exact multiple-choice knapsack would need
//! a table over the bit total, far larger than the gap it could close.
//!
//! May also use [`crate::eval`] (the sensitivities).

use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::core::quant::Rounding;
use crate::eval::{EvalError, Evaluator, Inputs, encoder::parse_sentences};
use crate::io::model::Model;
use crate::io::packed::packed_len;
use crate::search::Searcher;
use crate::search::compress::{CompressError, compress_with};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::Path;

// The menu lives in core so that the kernels' tests cover it without depending on study.
pub use crate::core::config::MENU;

/// Weights of each tensor compressed per menu entry to estimate its relMSE.
pub const SAMPLE_WEIGHTS: usize = 4096;
/// Consecutive weights per piece of the sample (a multiple of most menu C, and of 8 and 12).
const SAMPLE_PIECE: usize = 512;
/// relMSE of the noise laid on a tensor to measure its sensitivity (about the 3-bit preset's).
pub const PROBE_RELMSE: f64 = 0.02;
/// Encoders: lines of the sensitivity text used as sentences.
pub const SENSITIVITY_LINES: usize = 64;
/// Decoders: tokens of the sensitivity text scored.
pub const SENSITIVITY_TOKENS: usize = 1024;
/// Sensitivity overlays evaluated per pass (bounds the noisy copies held in memory).
const OVERLAYS_PER_PASS: usize = 8;

/// Evenly spaced pieces of `data`, [`SAMPLE_WEIGHTS`] weights in all (all of `data` when it is
/// no longer): every menu entry is measured on the same weights.
pub fn sample(data: &[f32]) -> Vec<f32> {
    if data.len() <= SAMPLE_WEIGHTS {
        return data.to_vec();
    }
    let pieces = SAMPLE_WEIGHTS / SAMPLE_PIECE;
    let stride = (data.len() - SAMPLE_PIECE) / (pieces - 1);
    (0..pieces)
        .flat_map(|i| &data[i * stride..i * stride + SAMPLE_PIECE])
        .copied()
        .collect()
}

/// Blocks [`sample_relmse`] searches for a tensor of `numel` weights, one searcher per `menu`
/// entry.
pub fn sample_blocks(numel: usize, menu: &[Config]) -> u64 {
    let n = numel.min(SAMPLE_WEIGHTS);
    menu.iter().map(|c| n.div_ceil(c.c) as u64).sum()
}

/// Refuses `target_bpw` before any search when even the cheapest menu entry (the first)
/// overspends it on tensors of `weights` (name, weight count).
pub fn check_budget<'a>(
    weights: impl IntoIterator<Item = (&'a str, usize)>,
    target_bpw: f64,
) -> Result<(), BudgetError> {
    let cheapest: Vec<TensorOptions> = weights
        .into_iter()
        .map(|(n, w)| TensorOptions::new(n, w, &MENU[..1], &[0.0], 1.0))
        .collect();
    solve(&cheapest, target_bpw).map(|_| ())
}

/// One searcher per menu entry, to share among every tensor measured: building its tables
/// costs far more than searching a sample.
pub fn searchers(menu: &[Config], rounding: Rounding) -> Vec<Searcher> {
    menu.iter()
        .map(|&cfg| Searcher::with_rounding(cfg, rounding))
        .collect()
}

/// relMSE of each of `searchers` on the [`sample`] of `data` (progress in blocks, as
/// [`sample_blocks`] counts them).
pub fn sample_relmse(
    data: &[f32],
    searchers: &[Searcher],
    ctl: Control<'_>,
) -> Result<Vec<f64>, CompressError> {
    let s = sample(data);
    searchers
        .iter()
        .map(|searcher| Ok(compress_with(&s, searcher, ctl)?.1.relmse()))
        .collect()
}

/// What to feed the evaluator to measure sensitivities, from a text file's contents: its first
/// [`SENSITIVITY_LINES`] non-empty lines as sentences (encoders), its first
/// [`SENSITIVITY_TOKENS`] tokens (decoders).
pub fn sensitivity_inputs(text: &str) -> Inputs {
    let mut sentences = parse_sentences(text);
    sentences.truncate(SENSITIVITY_LINES);
    Inputs {
        sentences: Some(sentences),
        text: Some(text.to_string()),
        ctx: None,
        max_tokens: Some(SENSITIVITY_TOKENS),
    }
}

/// α_t for each tensor `names` of `model`: the output change (−Δ mean cosine for encoders, KL
/// for decoders) per unit relMSE when that tensor alone gets seeded Gaussian noise of relMSE
/// [`PROBE_RELMSE`], measured by `evaluator` (the same model) on `inputs`. `ctl.progress` counts
/// tensors measured.
pub fn sensitivities(
    evaluator: &Evaluator,
    model: &Model,
    names: &[String],
    inputs: &Inputs,
    ctl: Control<'_>,
) -> Result<Vec<f64>, EvalError> {
    let mut out = Vec::with_capacity(names.len());
    ctl.progress
        .total
        .store(names.len() as u64, std::sync::atomic::Ordering::Relaxed);
    for (pass, chunk) in names.chunks(OVERLAYS_PER_PASS).enumerate() {
        let mut overlays = Vec::with_capacity(chunk.len());
        let mut relmses = Vec::with_capacity(chunk.len());
        for (i, name) in chunk.iter().enumerate() {
            let t = model.get(name).ok_or_else(|| {
                crate::io::error::ModelError::tensor(model.path(), name, "not in the model")
            })?;
            let data = model.to_f32(t)?;
            let (noisy, r) = with_noise(&data, PROBE_RELMSE, (pass * OVERLAYS_PER_PASS + i) as u64);
            overlays.push(vec![(name.clone(), noisy)]);
            relmses.push(r);
        }
        // The evaluator counts one pass's batches; the caller sees tensors measured.
        let figures = evaluator.compare_overlays(
            model.path(),
            overlays,
            inputs,
            ctl.with_progress(&Progress::default()),
        )?;
        ctl.progress
            .done
            .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for (f, r) in figures.iter().zip(relmses) {
            // Noise too small to move the outputs still counts a little, so no α is zero.
            let effect = f.effect().abs().max(f64::MIN_POSITIVE);
            out.push(if r > 0.0 { effect / r } else { 0.0 });
        }
    }
    Ok(out)
}

/// `data` plus Gaussian noise of relMSE about `relmse` from the seed `seed`, and the noise's
/// exact relMSE.
fn with_noise(data: &[f32], relmse: f64, seed: u64) -> (Vec<f32>, f64) {
    let norm: f64 = data.iter().map(|&x| f64::from(x).powi(2)).sum();
    let sigma = (relmse * norm / data.len().max(1) as f64).sqrt();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut err = 0.0;
    let noisy = data
        .iter()
        .map(|&x| {
            let n: f64 = StandardNormal.sample(&mut rng);
            let y = (f64::from(x) + sigma * n) as f32;
            err += (f64::from(y) - f64::from(x)).powi(2);
            y
        })
        .collect();
    (noisy, crate::search::compress::relmse(err, norm))
}

/// One tensor's options: for each menu entry its packed bits and predicted effect.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorOptions {
    /// Tensor name.
    pub name: String,
    /// Weights in the tensor.
    pub weights: usize,
    /// Packed bits of each option (a whole number of bytes).
    pub bits: Vec<u64>,
    /// Predicted effect of each option (α_t · relMSE_t(c)).
    pub effect: Vec<f64>,
}

impl TensorOptions {
    /// The options of a tensor of `weights` weights under `menu`, from the sample relMSEs and α.
    pub fn new(name: &str, weights: usize, menu: &[Config], relmse: &[f64], alpha: f64) -> Self {
        TensorOptions {
            name: name.to_string(),
            weights,
            bits: menu
                .iter()
                .map(|&c| packed_len(c, weights.div_ceil(c.c)) as u64 * 8)
                .collect(),
            effect: relmse.iter().map(|r| alpha * r).collect(),
        }
    }
}

/// A budget no choice of the menu meets.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "--target-bpw {target} is below the menu's minimum of {minimum:.3} bits per weight (every tensor at its cheapest configuration)"
)]
pub struct BudgetError {
    /// The budget asked for.
    pub target: f64,
    /// The least average the menu reaches.
    pub minimum: f64,
}

/// The indices of `t`'s options on the lower convex hull of (bits, effect), cheapest first,
/// each strictly better than the one before.
fn hull(t: &TensorOptions) -> Vec<usize> {
    let mut order: Vec<usize> = (0..t.bits.len()).collect();
    order.sort_by(|&a, &b| {
        (t.bits[a], t.effect[a])
            .partial_cmp(&(t.bits[b], t.effect[b]))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let mut h: Vec<usize> = Vec::new();
    for i in order {
        if h.last().is_some_and(|&l| t.effect[i] >= t.effect[l]) {
            continue;
        }
        while h.len() >= 2 {
            let (a, b) = (h[h.len() - 2], h[h.len() - 1]);
            let (ax, ay) = (t.bits[a] as f64, t.effect[a]);
            let cross = (t.bits[b] as f64 - ax) * (t.effect[i] - ay)
                - (t.effect[b] - ay) * (t.bits[i] as f64 - ax);
            if cross > 0.0 {
                break;
            }
            h.pop();
        }
        h.push(i);
    }
    h
}

/// The chosen option of each tensor so that the bits over all weights average at most
/// `target_bpw`, minimising the summed effect (greedy on the convex hulls, see the module).
pub fn solve(tensors: &[TensorOptions], target_bpw: f64) -> Result<Vec<usize>, BudgetError> {
    let weights: usize = tensors.iter().map(|t| t.weights).sum();
    let budget = target_bpw * weights as f64;
    let hulls: Vec<Vec<usize>> = tensors.iter().map(hull).collect();
    let mut at = vec![0usize; tensors.len()];
    let option = |t: usize, at: &[usize]| hulls[t][at[t]];
    let mut used: u64 = (0..tensors.len())
        .map(|t| tensors[t].bits[option(t, &at)])
        .sum();
    if used as f64 > budget {
        return Err(BudgetError {
            target: target_bpw,
            minimum: used as f64 / weights.max(1) as f64,
        });
    }
    loop {
        let mut best: Option<(usize, f64, u64)> = None;
        for (t, opts) in tensors.iter().enumerate() {
            let Some(&next) = hulls[t].get(at[t] + 1) else {
                continue;
            };
            let now = option(t, &at);
            let cost = opts.bits[next] - opts.bits[now];
            if (used + cost) as f64 > budget {
                continue;
            }
            let gain = (opts.effect[now] - opts.effect[next]) / cost.max(1) as f64;
            if best.is_none_or(|(_, g, _)| gain > g) {
                best = Some((t, gain, cost));
            }
        }
        let Some((t, _, cost)) = best else { break };
        at[t] += 1;
        used += cost;
    }
    Ok((0..tensors.len()).map(|t| option(t, &at)).collect())
}

/// One tensor's place in an allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Tensor name.
    pub tensor: String,
    /// The configuration chosen.
    pub config: Config,
    /// Packed bits per weight of this tensor.
    pub bits_per_weight: f64,
    /// relMSE measured on the tensor's sample with this configuration.
    pub sample_relmse: f64,
    /// Predicted effect α_t · relMSE (in the units of [`Allocation::sensitivity`]).
    pub predicted_effect: f64,
}

/// A bit allocation across tensors, as recorded in a packed file's `seedlm.allocation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// The budget asked for, in bits per compressed weight.
    pub target_bpw: f64,
    /// Packed bits per compressed weight of the allocation.
    pub bits_per_weight: f64,
    /// Where α came from: `data-free` (α = 1, effects are relMSEs), or the sensitivity text's
    /// file name with the effect's unit.
    pub sensitivity: String,
    /// One choice per tensor, in the order given.
    pub tensors: Vec<Choice>,
}

impl Allocation {
    /// The allocation of `tensors` (options over `menu`, relMSEs `relmse[t][m]`) at
    /// `target_bpw`.
    pub fn solve(
        tensors: &[TensorOptions],
        menu: &[Config],
        relmse: &[Vec<f64>],
        target_bpw: f64,
        sensitivity: &str,
    ) -> Result<Allocation, BudgetError> {
        let chosen = solve(tensors, target_bpw)?;
        let weights: usize = tensors.iter().map(|t| t.weights).sum();
        let bits: u64 = tensors.iter().zip(&chosen).map(|(t, &i)| t.bits[i]).sum();
        Ok(Allocation {
            target_bpw,
            bits_per_weight: bits as f64 / weights.max(1) as f64,
            sensitivity: sensitivity.to_string(),
            tensors: tensors
                .iter()
                .zip(&chosen)
                .zip(relmse)
                .map(|((t, &i), r)| Choice {
                    tensor: t.name.clone(),
                    config: menu[i],
                    bits_per_weight: t.bits[i] as f64 / t.weights.max(1) as f64,
                    sample_relmse: r[i],
                    predicted_effect: t.effect[i],
                })
                .collect(),
        })
    }

    /// The allocation of tensors `names` of `sizes` weights at `target_bpw`, from each one's
    /// menu relMSEs ([`MENU`], `relmse[t][m]`) and α (`alphas[t]`, labelled `sensitivity`).
    pub fn from_measurements(
        names: &[String],
        sizes: &[usize],
        relmse: &[Vec<f64>],
        alphas: &[f64],
        target_bpw: f64,
        sensitivity: &str,
    ) -> Result<Allocation, BudgetError> {
        let options: Vec<TensorOptions> = names
            .iter()
            .zip(sizes)
            .zip(relmse.iter().zip(alphas))
            .map(|((n, &w), (r, &a))| TensorOptions::new(n, w, MENU, r, a))
            .collect();
        Allocation::solve(&options, MENU, relmse, target_bpw, sensitivity)
    }

    /// The configurations, one per tensor in order.
    pub fn configs(&self) -> Vec<Config> {
        self.tensors.iter().map(|c| c.config).collect()
    }

    /// The summed predicted effect.
    pub fn predicted_effect(&self) -> f64 {
        self.tensors.iter().map(|c| c.predicted_effect).sum()
    }
}

/// The label of a sensitivity measured on the file `text` by an evaluator of `family`.
pub fn sensitivity_label(text: &Path, family: crate::eval::Family) -> String {
    let unit = match family {
        crate::eval::Family::Encoder => "-Δ mean cosine",
        crate::eval::Family::Decoder => "KL nats",
    };
    format!("{} ({unit})", text.display())
}

/// α and its label for `names` of `model` (the model at `input`): measured with an evaluator
/// of that model on `text` read from `from`, or on the model's vocabulary when `from` is `None`.
pub fn measure_sensitivities(
    input: &Path,
    model: &Model,
    names: &[String],
    text: &str,
    from: Option<&Path>,
    ctl: Control<'_>,
) -> Result<(Vec<f64>, String), EvalError> {
    let evaluator = Evaluator::open_model(input)?;
    let alphas = sensitivities(&evaluator, model, names, &sensitivity_inputs(text), ctl)?;
    let label = match from {
        Some(p) => sensitivity_label(p, evaluator.family()),
        None => vocabulary_label(evaluator.family()),
    };
    Ok((alphas, label))
}

/// Where an allocation's α comes from: the model run on a text.
pub struct Sensitivity<'a> {
    /// The model's path (a file or its directory), for the evaluator and its vocabulary.
    pub input: &'a Path,
    /// The model, whose tensors get the probe noise.
    pub model: &'a Model,
    /// The text run.
    pub text: Text<'a>,
}

/// The text a [`Sensitivity`] is measured on.
pub enum Text<'a> {
    /// [`vocabulary_text`] of the model; α = 1 when it has none ([`Stage::DataFree`]).
    Vocabulary,
    /// A text file's contents.
    File {
        /// The file, for the label.
        path: &'a Path,
        /// Its contents.
        text: String,
    },
}

/// What an allocation runs.
pub struct Request<'a> {
    /// The tensors, in the order of the allocation.
    pub names: &'a [String],
    /// Their weight counts.
    pub sizes: &'a [usize],
    /// The budget, in bits per compressed weight.
    pub target_bpw: f64,
    /// Where α comes from; `None`: α = 1 ([`DATA_FREE`]).
    pub sensitivity: Option<Sensitivity<'a>>,
    /// How the menu's searches choose coefficients.
    pub rounding: Rounding,
}

/// What an allocation is doing, for its progress display and log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage<'a> {
    /// The model has no vocabulary to measure α on (why): α = 1.
    DataFree(&'a str),
    /// The sensitivities: [`Progress`] counts tensors.
    Sensitivity,
    /// The menu on each tensor's sample: [`Progress`] counts `blocks` from 0 again.
    Menu {
        /// Blocks in all.
        blocks: u64,
    },
    /// The menu on this tensor's sample.
    Tensor(&'a str),
}

/// Why an allocation stopped.
#[derive(Debug, thiserror::Error)]
pub enum AllocateError<E> {
    /// No choice of the menu meets the budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// Reading a tensor's weights failed.
    #[error("{0}")]
    Read(E),
    /// The menu failed on a tensor's sample (a cancel among them).
    #[error("tensor '{name}': {error}")]
    Tensor {
        /// The tensor's index in [`Request::names`].
        index: usize,
        /// Its name.
        name: String,
        /// What went wrong.
        error: CompressError,
    },
    /// The sensitivities failed or were cancelled.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// [`run`]'s `read` for tensors of `model`: the weights of `names[i]`, or an error naming it
/// when the model has no such tensor.
pub fn read_from<'a>(
    model: &'a Model,
    names: &'a [String],
) -> impl FnMut(usize) -> Result<Vec<f32>, crate::io::error::ModelError> + 'a {
    move |i| {
        let t = model.get(&names[i]).ok_or_else(|| {
            crate::io::error::ModelError::tensor(model.path(), &names[i], "not in the model")
        })?;
        model.to_f32(t)
    }
}

/// The allocation of `request`, the one run of `compress --target-bpw` and the app's
/// Allocate: the budget checked, α measured, each menu entry measured on a sample of each
/// tensor (weights from `read(index)`), and the budget solved. `stage` hears what starts.
pub fn run<E>(
    request: Request<'_>,
    read: &mut dyn FnMut(usize) -> Result<Vec<f32>, E>,
    ctl: Control<'_>,
    stage: &mut dyn FnMut(Stage<'_>),
) -> Result<Allocation, AllocateError<E>> {
    let Request {
        names,
        sizes,
        target_bpw,
        sensitivity,
        rounding,
    } = request;
    check_budget(
        names.iter().map(String::as_str).zip(sizes.iter().copied()),
        target_bpw,
    )?;
    let text = match sensitivity {
        Some(Sensitivity {
            input,
            model,
            text: Text::Vocabulary,
        }) => vocabulary_for(input)
            .map_err(EvalError::from)?
            .inspect_err(|why| stage(Stage::DataFree(why)))
            .ok()
            .map(|text| (input, model, text, None)),
        Some(Sensitivity {
            input,
            model,
            text: Text::File { path, text },
        }) => Some((input, model, text, Some(path))),
        None => None,
    };
    let (alphas, label) = match text {
        Some((input, model, text, from)) => {
            stage(Stage::Sensitivity);
            measure_sensitivities(input, model, names, &text, from, ctl)?
        }
        None => (vec![1.0; names.len()], DATA_FREE.to_string()),
    };
    let blocks = sizes.iter().map(|&n| sample_blocks(n, MENU)).sum();
    ctl.progress
        .done
        .store(0, std::sync::atomic::Ordering::Relaxed);
    ctl.progress
        .total
        .store(blocks, std::sync::atomic::Ordering::Relaxed);
    stage(Stage::Menu { blocks });
    let searchers = searchers(MENU, rounding);
    let mut relmse = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        stage(Stage::Tensor(name));
        let data = read(index).map_err(AllocateError::Read)?;
        let r = sample_relmse(&data, &searchers, ctl).map_err(|error| AllocateError::Tensor {
            index,
            name: name.clone(),
            error,
        })?;
        relmse.push(r);
    }
    Ok(Allocation::from_measurements(
        names, sizes, &relmse, &alphas, target_bpw, &label,
    )?)
}

/// The label of the data-free fallback.
pub const DATA_FREE: &str = "data-free (α = 1: effects are relMSEs)";

/// Words a line of [`vocabulary_text`] holds.
const VOCABULARY_WORDS: usize = 16;
/// Seed of [`vocabulary_text`]'s draw.
const VOCABULARY_SEED: u64 = 0;

/// A data-free stand-in for a sensitivity text: [`SENSITIVITY_LINES`] lines of
/// [`VOCABULARY_WORDS`] words drawn at random (seeded) from the whole words of the model's own
/// vocabulary (tokens of two or more letters), in `dir`'s `tokenizer.json`. No
/// text is read: the outputs it moves are the model's response to its own words, which ranks
/// tensors much as real text does (docs/measurements.md, "Bit budget and calibration").
/// `None` when the vocabulary has no such words (a byte-level toy tokenizer).
pub fn vocabulary_text(dir: &Path) -> Result<Option<String>, crate::io::error::ModelError> {
    use rand::seq::IndexedRandom;
    let tok = crate::eval::read_tokenizer(dir)?;
    // A word-start marker (SentencePiece's ▁, byte-level BPE's Ġ) goes; a continuation
    // piece (WordPiece's ##ing) or a special token ([CLS], <s>) is not a whole word.
    let mut words: Vec<String> = tok
        .get_vocab(false)
        .into_keys()
        .map(|t| t.trim_start_matches(['▁', 'Ġ']).to_string())
        .filter(|w| w.chars().count() >= 2 && w.chars().all(char::is_alphabetic))
        .collect();
    // The vocabulary is a hash map: sorted, the draw is the same on every run.
    words.sort();
    words.dedup();
    if words.is_empty() {
        return Ok(None);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(VOCABULARY_SEED);
    let lines: Vec<String> = (0..SENSITIVITY_LINES)
        .map(|_| {
            let line: Vec<&str> = (0..VOCABULARY_WORDS)
                .filter_map(|_| words.choose(&mut rng).map(String::as_str))
                .collect();
            line.join(" ")
        })
        .collect();
    Ok(Some(lines.join("\n")))
}

/// The data-free sensitivity text of the model at `input` (a file or its directory):
/// [`vocabulary_text`], or `Err(why)` when the model cannot be run
/// ([`crate::eval::model_dir`]) or its vocabulary has no whole words; then α = 1.
pub fn vocabulary_for(
    input: &Path,
) -> Result<Result<String, String>, crate::io::error::ModelError> {
    let dir = match crate::eval::model_dir(input) {
        Ok(dir) => dir,
        Err(why) => return Ok(Err(why.to_string())),
    };
    Ok(vocabulary_text(dir)?
        .ok_or_else(|| format!("{}: its vocabulary has no whole words", dir.display())))
}

/// The label of sensitivities measured on [`vocabulary_text`].
pub fn vocabulary_label(family: crate::eval::Family) -> String {
    sensitivity_label(
        Path::new("data-free: random words of the model's vocabulary"),
        family,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_text_draws_whole_words_of_the_model_the_same_way_each_time() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
        let text = vocabulary_text(&demo)
            .unwrap()
            .expect("BERT's vocabulary has words");
        assert_eq!(text, vocabulary_text(&demo).unwrap().unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), SENSITIVITY_LINES);
        let tok = crate::eval::read_tokenizer(&demo).unwrap();
        let vocab = tok.get_vocab(false);
        for line in lines {
            let words: Vec<&str> = line.split(' ').collect();
            assert_eq!(words.len(), VOCABULARY_WORDS);
            for w in words {
                assert!(vocab.contains_key(w), "{w} is not a token");
                assert!(
                    w.chars().count() >= 2 && w.chars().all(char::is_alphabetic),
                    "{w}"
                );
            }
        }
    }

    fn options(name: &str, weights: usize, alpha: f64) -> TensorOptions {
        // relMSE falls by about 4x a bit, as SeedLM's does.
        let relmse: Vec<f64> = MENU
            .iter()
            .map(|c| 0.02 * 4f64.powf(3.0 - c.bits_per_weight()))
            .collect();
        TensorOptions::new(name, weights, MENU, &relmse, alpha)
    }

    fn bpw(tensors: &[TensorOptions], chosen: &[usize]) -> f64 {
        let bits: u64 = tensors.iter().zip(chosen).map(|(t, &i)| t.bits[i]).sum();
        bits as f64 / tensors.iter().map(|t| t.weights).sum::<usize>() as f64
    }

    #[test]
    fn respects_the_budget_and_is_deterministic() {
        let tensors: Vec<TensorOptions> = (0..12)
            .map(|i| options(&format!("t{i}"), 1000 + 517 * i, 1.0 + (i % 5) as f64))
            .collect();
        for target in [3.05, 3.5, 4.0, 4.6, 5.99] {
            let chosen = solve(&tensors, target).unwrap();
            assert!(bpw(&tensors, &chosen) <= target, "at {target}");
            assert_eq!(solve(&tensors, target).unwrap(), chosen);
        }
        // More budget never predicts a worse model.
        let effect = |target| {
            let c = solve(&tensors, target).unwrap();
            tensors.iter().zip(c).map(|(t, i)| t.effect[i]).sum::<f64>()
        };
        assert!(effect(4.0) < effect(3.5));
    }

    #[test]
    fn the_sensitive_tensor_gets_more_bits() {
        let tensors = vec![options("calm", 4096, 1.0), options("touchy", 4096, 50.0)];
        let chosen = solve(&tensors, 4.0).unwrap();
        let bits = |t: usize| tensors[t].bits[chosen[t]];
        assert!(bits(1) > bits(0), "{chosen:?}");
    }

    #[test]
    fn refuses_a_budget_below_the_cheapest_choice() {
        let tensors = vec![options("a", 14 * 100, 1.0)];
        let err = solve(&tensors, 2.5).unwrap_err();
        assert_eq!(err.minimum, MENU[0].bits_per_weight());
        assert!(err.to_string().contains("--target-bpw 2.5"), "{err}");
        assert_eq!(solve(&tensors, 2.58).unwrap(), vec![0]);
    }

    #[test]
    fn hull_drops_dominated_options() {
        let t = TensorOptions {
            name: "t".into(),
            weights: 1,
            bits: vec![10, 20, 20, 30, 40],
            effect: vec![1.0, 0.9, 0.5, 0.6, 0.1],
        };
        // 20 bits at 0.9 loses to 20 at 0.5; 30 at 0.6 is worse than 20 at 0.5.
        assert_eq!(hull(&t), vec![0, 2, 4]);
    }

    #[test]
    fn sample_is_evenly_spread_and_whole_for_small_tensors() {
        let data: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let s = sample(&data);
        assert_eq!(s.len(), SAMPLE_WEIGHTS);
        assert_eq!(s[0], 0.0);
        // The last piece ends within the stride's rounding (under 8 weights) of the end.
        assert!(*s.last().unwrap() > 99_991.0, "{}", s.last().unwrap());
        assert_eq!(sample(&data[..100]), data[..100].to_vec());
    }
}
