//! `seedlm inspect`: one line per tensor of a model or packed file.

use crate::io::opened::{self, Opened};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `seedlm inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A .safetensors file, a model directory or a packed file.
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One tensor as listed.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    compressed: bool,
    config: Option<String>,
    e_base: Option<i32>,
    blocks: Option<usize>,
    bytes: usize,
    relmse: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Listing {
    path: PathBuf,
    packed: bool,
    tensors: Vec<Row>,
}

/// Runs `seedlm inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let opened = opened::open(&args.file)?;
    let packed = matches!(opened, Opened::Packed(_));
    let rows: Vec<Row> = match opened {
        Opened::Packed(p) => p
            .tensors()
            .iter()
            .map(|t| Row {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.to_string(),
                compressed: t.packed.is_some(),
                config: t
                    .packed
                    .as_ref()
                    .map(|m| format!("{},{},{}", m.c, m.p, m.k)),
                e_base: t.packed.as_ref().map(|m| m.e_base),
                blocks: t.packed.as_ref().map(|m| m.blocks),
                bytes: t.stored_bytes,
                relmse: t.packed.as_ref().and_then(|m| m.relmse),
            })
            .collect(),
        Opened::Plain(model) => model
            .tensors()
            .iter()
            .map(|t| Row {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.to_string(),
                compressed: false,
                config: None,
                e_base: None,
                blocks: None,
                bytes: t.byte_size,
                relmse: None,
            })
            .collect(),
    };
    if args.json {
        let listing = Listing {
            path: args.file,
            packed,
            tensors: rows,
        };
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(ExitCode::SUCCESS);
    }
    let shapes: Vec<String> = rows.iter().map(|r| format!("{:?}", r.shape)).collect();
    let nw = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(6);
    let sw = shapes.iter().map(String::len).max().unwrap_or(0).max(5);
    println!(
        "{:<nw$}  {:<sw$}  {:<5}  {:<10}  {:<9}  {:>11}  {:>10}",
        "tensor", "shape", "dtype", "stored", "C,P,K", "bytes", "rel. MSE"
    );
    for (r, shape) in rows.iter().zip(&shapes) {
        println!(
            "{:<nw$}  {:<sw$}  {:<5}  {:<10}  {:<9}  {:>11}  {:>10}",
            r.name,
            shape,
            r.dtype,
            if r.compressed { "compressed" } else { "plain" },
            r.config.as_deref().unwrap_or("-"),
            r.bytes,
            r.relmse.map_or("-".to_string(), |m| format!("{m:.3e}")),
        );
    }
    let total: usize = rows.iter().map(|r| r.bytes).sum();
    let n = rows.iter().filter(|r| r.compressed).count();
    println!(
        "{} tensors ({n} compressed), {total} bytes of tensor data",
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}
