//! `seedlm bench-infer`: the matrix–vector product's speed in each stored form.

use crate::core::config::Config;
use crate::core::control::{Control, Progress};
use crate::infer::bench::{Form, MatvecSpeed, matvec, synthetic_layers, write_random_packed};
use crate::infer::kernel::Kernel;
use crate::io::model::Model;
use crate::study::allocate;
use anyhow::{Context, bail};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Arguments of `seedlm bench-infer`.
#[derive(Debug, Args)]
pub struct BenchInferArgs {
    /// Matrix shapes ROWSxCOLS, comma-separated (Llama-3-8B's attention and MLP by default).
    #[arg(long, default_value = "4096x4096,14336x4096,4096x14336")]
    pub shapes: String,
    /// Stored forms, comma-separated: f32, f16, bf16, 4bit, 3bit, 4bit-p6, 4bit-p8, 3bit-p7, or
    /// a configuration C:P:K (e.g. 8:3:16).
    #[arg(long, default_value = "f16,4bit,3bit,4bit-p6,4bit-p8,3bit-p7")]
    pub forms: String,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed rounds (every form once per round, interleaved); medians are reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Force a kernel: avx512, avx2 or portable (default: the fastest this CPU runs).
    #[arg(long)]
    pub kernel: Option<String>,
    /// Print one JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Instead of timing: write a packed copy of this model whose linear layers hold random
    /// records of the first of --forms (for speed and memory runs of `generate` at full size
    /// without the search), to --output.
    #[arg(long, value_name = "MODEL", requires = "output")]
    pub synthetic: Option<PathBuf>,
    /// Where --synthetic writes (refused if it exists).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --synthetic: give each linear layer the configuration `compress --target-bpw B
    /// --sensitivity none` would (its data-free allocation), instead of --forms.
    #[arg(long, value_name = "B", requires = "synthetic")]
    pub target_bpw: Option<f64>,
}

/// Runs `seedlm bench-infer`.
pub fn run(args: BenchInferArgs) -> anyhow::Result<()> {
    if args.threads == 0 || args.repeat == 0 {
        bail!("--threads and --repeat must be at least 1");
    }
    let kernel = match &args.kernel {
        Some(k) => Kernel::parse(k).map_err(anyhow::Error::msg)?,
        None => Kernel::best_available(),
    };
    let shapes = args
        .shapes
        .split(',')
        .map(|s| {
            let (r, c) = s
                .split_once('x')
                .with_context(|| format!("shape '{s}' is not ROWSxCOLS"))?;
            let dims = (r.trim().parse::<usize>()?, c.trim().parse::<usize>()?);
            if dims.0 == 0 || dims.1 == 0 {
                bail!("shape '{s}' is empty");
            }
            Ok(dims)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let forms = args
        .forms
        .split(',')
        .map(|f| Form::parse(&f.replace(':', ",")).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let (Some(model), Some(out)) = (&args.synthetic, &args.output) {
        if out.exists() {
            bail!(
                "{}: already exists; remove it or choose another --output",
                out.display()
            );
        }
        let (n, what) = match args.target_bpw {
            Some(target) => {
                let configs = allocation(model, target)?;
                let n = write_random_packed(model, &|name| configs[name], out)?;
                let mut counts = std::collections::BTreeMap::new();
                for cfg in configs.values() {
                    *counts.entry(cfg.to_string()).or_insert(0) += 1;
                }
                let mix: Vec<String> = counts.iter().map(|(c, k)| format!("{k}× {c}")).collect();
                (
                    n,
                    format!(
                        "the data-free --target-bpw {target} allocation ({})",
                        mix.join(", ")
                    ),
                )
            }
            None => {
                let Some(&Form::Seed(cfg)) = forms.first() else {
                    bail!("--synthetic needs a SeedLM form first in --forms (e.g. --forms 4bit)");
                };
                (write_random_packed(model, &|_| cfg, out)?, cfg.to_string())
            }
        };
        eprintln!(
            "{}: {n} linear layers hold random records of {what} (outputs are meaningless)",
            out.display()
        );
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("cannot start worker threads")?;
    let rows = pool.install(|| matvec(&shapes, &forms, kernel, args.repeat));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "kernel {}, {} threads, median of {} interleaved rounds",
        kernel.name(),
        args.threads,
        args.repeat
    );
    println!(
        "{:>12} {:>9} {:>6} {:>10} {:>10} {:>8}",
        "shape", "form", "bits", "Gweights/s", "GB/s read", "× f16"
    );
    for r in &rows {
        let f16 = rows
            .iter()
            .find(|o: &&MatvecSpeed| o.form == "f16" && (o.rows, o.cols) == (r.rows, r.cols));
        println!(
            "{:>12} {:>9} {:>6.2} {:>10.2} {:>10.2} {:>8}",
            format!("{}x{}", r.rows, r.cols),
            r.form,
            r.bits_per_weight,
            r.weights_per_s / 1e9,
            r.bytes_per_s / 1e9,
            f16.map_or("-".into(), |f| format!(
                "{:.2}",
                r.weights_per_s / f.weights_per_s
            ))
        );
    }
    Ok(())
}

/// Each linear layer's configuration in `compress --target-bpw target --sensitivity none`'s
/// allocation of the model at `path`. Data-free, because measuring sensitivities runs the model
/// once per tensor (most of an hour for 1.1 B weights here), and a synthetic model's outputs
/// mean nothing anyway.
fn allocation(path: &Path, target: f64) -> anyhow::Result<HashMap<String, Config>> {
    let model = Model::open(path)?;
    let (names, sizes): (Vec<String>, Vec<usize>) = synthetic_layers(&model).into_iter().unzip();
    let request = allocate::Request {
        names: &names,
        sizes: &sizes,
        target_bpw: target,
        sensitivity: None,
        rounding: Default::default(),
    };
    let progress = Progress::default();
    let cancel = super::watch::cancel_on_ctrl_c();
    let a = super::watch::watch("tensors", &progress.done, &progress.total, |bar| {
        let mut read = allocate::read_from(&model, &names);
        let mut stage = |s: allocate::Stage<'_>| match s {
            allocate::Stage::Menu { .. } => super::watch::restart(bar, "blocks"),
            allocate::Stage::Tensor(n) => bar.set_message(n.to_string()),
            _ => {}
        };
        allocate::run(
            request,
            &mut read,
            Control::new(&progress, &cancel),
            &mut stage,
        )
    })
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(a.tensors
        .iter()
        .map(|c| (c.tensor.clone(), c.config))
        .collect())
}
