//! `seedlm generate`: run a plain or packed decoder LM on a prompt (docs/DESIGN.md §5).

use crate::eval::divergence::Lm;
use crate::eval::model_dir;
use crate::infer::generate::{GenerateError, Sampling, generate};
use crate::infer::kernel::Kernel;
use crate::infer::source::StoredModel;
use anyhow::{Context, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `seedlm generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The model: a plain model directory or safetensors file, or a packed file or directory
    /// (run from its records, never decompressed).
    pub model: PathBuf,
    /// The prompt.
    #[arg(
        long,
        conflicts_with = "prompt_file",
        required_unless_present = "prompt_file"
    )]
    pub prompt: Option<String>,
    /// Read the prompt from this file.
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    /// Tokens to generate at most (generation stops earlier at the config's eos_token_id).
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Keep generating past the config's eos_token_id (benchmarks, comparisons).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Softmax temperature; 0 (the default) is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling: draw among the most likely tokens whose probabilities add up to P.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The directory with config.json and tokenizer.json, when MODEL's own directory lacks
    /// them (e.g. a packed file written elsewhere).
    #[arg(long, value_name = "DIR")]
    pub original: Option<PathBuf>,
    /// Force a kernel: avx512, avx2 or portable (default: the fastest this CPU runs).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Print the generated token ids and the timings as one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,
}

/// Peak resident memory of this process in bytes (Linux; `None` elsewhere).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `seedlm generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!("--temperature must be 0 (greedy) or positive");
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p must be in (0, 1]");
    }
    let kernel = match &args.kernel {
        Some(k) => Kernel::parse(k).map_err(anyhow::Error::msg)?,
        None => Kernel::best_available(),
    };
    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("{}: cannot read the prompt", f.display()))?,
        (None, None) => bail!("give --prompt TEXT or --prompt-file FILE"),
    };
    let dir = match &args.original {
        Some(d) => d.clone(),
        None => model_dir(&args.model)?.to_path_buf(),
    };
    let lm = Lm::open(&dir)?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("cannot start worker threads")?;
    let model = StoredModel::open(&args.model)?;
    let net = lm.net(&model, kernel)?;
    let ids = lm.prompt_ids(&prompt)?;
    let stop = lm.eos().filter(|_| !args.ignore_eos);
    let sampling = Sampling {
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
    };
    let cancel = super::watch::cancel_on_ctrl_c();
    eprintln!(
        "{}: {} ({} MB of weights as stored), kernel {}, {} threads; Ctrl-C stops",
        args.model.display(),
        if model.is_packed() { "packed" } else { "plain" },
        net.stored_bytes() / 1_000_000,
        kernel.name(),
        pool.current_num_threads()
    );
    let mut shown = String::new();
    let mut so_far = Vec::new();
    let result = pool.install(|| {
        generate(&net, &ids, args.max_tokens, stop, &sampling, &cancel, |t| {
            if args.json {
                return;
            }
            so_far.push(t);
            if let Ok(piece) = lm.next_piece(&so_far, &mut shown, false) {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "{piece}");
                let _ = out.flush();
            }
        })
    });
    let (tokens, stats) = match result {
        Ok(r) => r,
        Err(GenerateError::Cancelled) => {
            eprintln!("\ncancelled");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", args.model.display())),
    };
    let rss = peak_rss();
    let mut out = std::io::stdout().lock();
    if args.json {
        let obj = serde_json::json!({
            "tokens": tokens,
            "stats": stats,
            "prompt_tokens_per_s": stats.prompt_rate(),
            "generate_tokens_per_s": stats.generate_rate(),
            "peak_rss_bytes": rss,
            "kernel": kernel.name(),
            "threads": pool.current_num_threads(),
            "stored_weight_bytes": net.stored_bytes(),
        });
        writeln!(out, "{obj}")?;
    } else {
        // What the last tokens held back (an unfinished character) is printed as it stands.
        writeln!(out, "{}", lm.next_piece(&tokens, &mut shown, true)?)?;
    }
    eprintln!(
        "prompt {} tokens at {:.1} tokens/s; generated {} at {:.2} tokens/s; peak resident {}",
        stats.prompt_tokens,
        stats.prompt_rate(),
        stats.generated,
        stats.generate_rate(),
        rss.map_or("unknown".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
    );
    Ok(ExitCode::SUCCESS)
}
