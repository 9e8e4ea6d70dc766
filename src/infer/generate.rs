//! Generation (docs/DESIGN.md §5): the prompt in one batched forward, then one token at a time
//! over the KV cache, greedy or sampled with temperature and top-p from a seeded generator.

use crate::infer::llama::{Cache, Logits, Net};
use rand::{Rng, SeedableRng};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// 0 for greedy (argmax, ties to the lowest id); else the softmax temperature.
    pub temperature: f32,
    /// Nucleus: sample among the most likely tokens whose probabilities add up to this.
    pub top_p: f32,
    /// Seed of the sampler (same seed, same tokens).
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Timings of one generation (loading excluded).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Prompt tokens fed.
    pub prompt_tokens: usize,
    /// Seconds the prompt's forward took.
    pub prompt_secs: f64,
    /// Tokens generated.
    pub generated: usize,
    /// Seconds the generated tokens took (each one's forward and choice).
    pub generate_secs: f64,
}

impl Stats {
    /// Prompt tokens per second.
    pub fn prompt_rate(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_secs.max(1e-9)
    }

    /// Generated tokens per second (the first token comes from the prompt's forward).
    pub fn generate_rate(&self) -> f64 {
        self.generated.saturating_sub(1) as f64 / self.generate_secs.max(1e-9)
    }
}

/// Why generation stopped early.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The prompt is empty (nothing to condition on).
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    /// The cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// A tensor operation failed.
    #[error("inference failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The token `sampling` picks from `logits`.
pub fn pick(logits: &[f32], sampling: &Sampling, rng: &mut impl Rng) -> u32 {
    let argmax = || {
        // First maximum: ties go to the lowest id.
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            })
            .0 as u32
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, f64::from((v - max) / sampling.temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut n = 0;
    for p in &probs {
        kept += p.1 / total;
        n += 1;
        if kept >= f64::from(sampling.top_p) {
            break;
        }
    }
    let mass: f64 = probs[..n].iter().map(|p| p.1).sum();
    let mut u = rng.random::<f64>() * mass;
    for p in &probs[..n] {
        if u < p.1 {
            return p.0;
        }
        u -= p.1;
    }
    probs[n - 1].0
}

/// Prompt tokens fed at once.
const PREFILL: usize = 1024;

/// Generates up to `max_tokens` tokens after `prompt`, stopping after `stop` if it comes;
/// `on_token` sees each one as it is chosen. Raising `cancel` stops within one layer.
pub fn generate(
    net: &Net,
    prompt: &[u32],
    max_tokens: usize,
    stop: Option<u32>,
    sampling: &Sampling,
    cancel: &AtomicBool,
    mut on_token: impl FnMut(u32),
) -> Result<(Vec<u32>, Stats), GenerateError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut cache = Cache::default();
    let mut stats = Stats {
        prompt_tokens: prompt.len(),
        ..Stats::default()
    };
    let mut out = Vec::new();
    let t0 = Instant::now();
    // The prompt runs in chunks, so that its activations stay those of PREFILL tokens however
    // long it is.
    let mut last = None;
    for part in prompt.chunks(PREFILL) {
        last = Some(
            net.forward(part, &mut cache, Logits::Last, cancel, None)?
                .ok_or(GenerateError::Cancelled)?,
        );
    }
    let Some(mut logits) = last else {
        return Err(GenerateError::EmptyPrompt);
    };
    stats.prompt_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    while out.len() < max_tokens {
        let next = pick(&logits.flatten_all()?.to_vec1::<f32>()?, sampling, &mut rng);
        out.push(next);
        on_token(next);
        if Some(next) == stop || out.len() == max_tokens {
            break;
        }
        logits = net
            .forward(&[next], &mut cache, Logits::Last, cancel, None)?
            .ok_or(GenerateError::Cancelled)?;
    }
    stats.generated = out.len();
    stats.generate_secs = t1.elapsed().as_secs_f64();
    Ok((out, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernel::Kernel;

    /// A prompt longer than one prefill chunk continues as one pass over the whole window
    /// says: each greedy token is the argmax of that pass's logits at the position before it.
    #[test]
    fn a_prompt_of_several_chunks_continues_as_the_whole_window_does() {
        let (shape, model) = crate::infer::llama::tests::fixture("llama");
        let net = Net::load(&shape, &model, Kernel::best_available()).unwrap();
        let prompt: Vec<u32> = (0..PREFILL + 77)
            .map(|i| ((i * 7 + 3) % shape.vocab) as u32)
            .collect();
        let stop = AtomicBool::new(false);
        let greedy = Sampling::default();
        let (out, stats) = generate(&net, &prompt, 4, None, &greedy, &stop, |_| {}).unwrap();
        assert_eq!((out.len(), stats.prompt_tokens), (4, prompt.len()));
        let all: Vec<u32> = prompt.iter().chain(&out).copied().collect();
        let logits = net.logits(&all, &stop, None).unwrap().unwrap();
        let logits = logits.to_vec2::<f32>().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for (k, &t) in out.iter().enumerate() {
            let row = &logits[prompt.len() - 1 + k];
            assert_eq!(pick(row, &greedy, &mut rng), t, "token {k}");
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum_and_sampling_repeats_with_its_seed() {
        let logits = [0.5, 2.0, -1.0, 2.0];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        assert_eq!(pick(&logits, &Sampling::default(), &mut rng), 1);
        let s = Sampling {
            temperature: 1.0,
            top_p: 0.9,
            seed: 4,
        };
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            (0..50)
                .map(|_| pick(&logits, &s, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(4), draw(4));
        let d = draw(4);
        // Top-p 0.9 keeps ids 1, 3 and 0 (0.44 + 0.44 + 0.10); id 2 (0.02) is never drawn.
        assert!(d.iter().all(|&t| t != 2));
        assert!(d.contains(&1) && d.contains(&3));
    }
}
