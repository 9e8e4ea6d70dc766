//! `seedlm inspect`: one line per tensor of a model or packed file, in natural name order
//! (layer 2 before layer 10, across shards), with the packed format and totals.

use super::stdout::{column_width, print};
use crate::io::dtype::{self, Dtype};
use crate::io::error::{MAX_SHOWN, abbreviate, shape_text};
use crate::io::model::natural_cmp;
use crate::io::opened::{self, Opened};
use crate::io::packed::FORMAT_NAME;
use crate::io::selection::default_rule;
use clap::Args;
use serde::Serialize;
use std::fmt::Write as _;
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

/// A tensor's SeedLM configuration.
#[derive(Debug, Serialize)]
struct ConfigJson {
    c: usize,
    p: usize,
    k: u32,
}

/// One tensor as listed.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    /// Original shape.
    shape: Vec<usize>,
    /// Original dtype.
    dtype: String,
    /// Dtype in the file (`U8` for a packed tensor).
    stored_dtype: String,
    compressed: bool,
    config: Option<ConfigJson>,
    e_base: Option<i32>,
    blocks: Option<usize>,
    /// Bytes stored in the file.
    bytes: usize,
    /// Bytes of the tensor in its original dtype.
    original_bytes: usize,
    relmse: Option<f64>,
    /// On a plain model: whether `compress` with the default rule would compress it.
    #[serde(skip_serializing_if = "Option::is_none")]
    would_compress: Option<bool>,
    /// On a packed file's compressed tensor: whether its search was weighted by the
    /// calibration text (named in `seedlm.calibration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    calibrated: Option<bool>,
}

#[derive(Debug, Serialize)]
struct Format {
    name: &'static str,
    version: u32,
    /// How the search was steered (`seedlm.calibration`), when not data-free.
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct Totals {
    tensors: usize,
    compressed: usize,
    bytes: usize,
    original_bytes: usize,
    /// Original bytes over stored bytes.
    ratio: f64,
    /// Packed bits per compressed weight (packed files with compressed tensors).
    bits_per_weight: Option<f64>,
    /// On a plain model: how many tensors the default rule would compress.
    #[serde(skip_serializing_if = "Option::is_none")]
    would_compress: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Listing {
    path: PathBuf,
    packed: bool,
    format: Option<Format>,
    totals: Totals,
    tensors: Vec<Row>,
}

fn original_bytes(shape: &[usize], dtype: Dtype) -> usize {
    dtype::byte_len(dtype, shape.iter().product()).unwrap_or(0)
}

/// Runs `seedlm inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let listing = listing(args.file)?;
    let text = if args.json {
        serde_json::to_string_pretty(&listing)? + "\n"
    } else {
        table(&listing)
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

impl Row {
    /// A tensor stored as it is, `bytes` long.
    fn plain(name: &str, shape: &[usize], dtype: Dtype, bytes: usize) -> Row {
        Row {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype: dtype.to_string(),
            stored_dtype: dtype.to_string(),
            compressed: false,
            config: None,
            e_base: None,
            blocks: None,
            bytes,
            original_bytes: original_bytes(shape, dtype),
            relmse: None,
            would_compress: None,
            calibrated: None,
        }
    }
}

fn listing(path: PathBuf) -> anyhow::Result<Listing> {
    let opened = opened::open(&path)?;
    let (format, mut rows) = match opened {
        Opened::Packed(p) => {
            let weighted = p
                .calibration_record()
                .map(|r| r.tensors)
                .unwrap_or_default();
            let rows: Vec<Row> = p
                .tensors()
                .iter()
                .map(|t| {
                    let row = Row::plain(&t.name, &t.shape, t.dtype, t.stored_bytes);
                    match &t.packed {
                        None => row,
                        Some(m) => Row {
                            stored_dtype: Dtype::U8.to_string(),
                            compressed: true,
                            config: Some(ConfigJson {
                                c: m.c,
                                p: m.p,
                                k: m.k,
                            }),
                            e_base: Some(m.e_base),
                            blocks: Some(m.blocks),
                            relmse: m.relmse,
                            calibrated: Some(weighted.contains(&t.name)),
                            ..row
                        },
                    }
                })
                .collect();
            let format = Format {
                name: FORMAT_NAME,
                version: p.version(),
                calibration: p
                    .calibration()
                    .map(|c| serde_json::from_str(c).unwrap_or_else(|_| c.into())),
            };
            (Some(format), rows)
        }
        Opened::Plain(model) => {
            let rows: Vec<Row> = model
                .tensors()
                .iter()
                .map(|t| Row {
                    would_compress: Some(default_rule(&t.name, &t.shape, t.dtype)),
                    ..Row::plain(&t.name, &t.shape, t.dtype, t.byte_size)
                })
                .collect();
            (None, rows)
        }
    };
    rows.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let bytes: usize = rows.iter().map(|r| r.bytes).sum();
    let original: usize = rows.iter().map(|r| r.original_bytes).sum();
    let packed_rows = || rows.iter().filter(|r| r.compressed);
    let weights: usize = packed_rows()
        .map(|r| r.shape.iter().product::<usize>())
        .sum();
    let packed_bytes: usize = packed_rows().map(|r| r.bytes).sum();
    let totals = Totals {
        tensors: rows.len(),
        compressed: packed_rows().count(),
        bytes,
        original_bytes: original,
        ratio: original as f64 / bytes.max(1) as f64,
        bits_per_weight: (weights > 0).then(|| packed_bytes as f64 * 8.0 / weights as f64),
        would_compress: format.is_none().then(|| {
            rows.iter()
                .filter(|r| r.would_compress == Some(true))
                .count()
        }),
    };
    Ok(Listing {
        path,
        packed: format.is_some(),
        format,
        totals,
        tensors: rows,
    })
}

fn table(l: &Listing) -> String {
    let rows = &l.tensors;
    let names: Vec<String> = rows
        .iter()
        .map(|r| abbreviate(&r.name, MAX_SHOWN))
        .collect();
    let shapes: Vec<String> = rows.iter().map(|r| shape_text(&r.shape)).collect();
    let dtypes: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.compressed {
                format!("packed (from {})", r.dtype)
            } else {
                r.dtype.clone()
            }
        })
        .collect();
    // Packed file: how each tensor is stored; plain model: what the default rule would do.
    let stored: Vec<&str> = rows
        .iter()
        .map(|r| match (r.compressed, r.would_compress) {
            (true, _) if r.calibrated == Some(true) => "compressed cal",
            (true, _) => "compressed",
            (false, Some(true)) => "would compress",
            (false, _) => "plain",
        })
        .collect();
    let configs: Vec<String> = rows
        .iter()
        .map(|r| {
            r.config
                .as_ref()
                .map_or("-".into(), |c| format!("{},{},{}", c.c, c.p, c.k))
        })
        .collect();
    let nw = column_width(&names, 6);
    let sw = column_width(&shapes, 5);
    let dw = column_width(&dtypes, 5);
    let mut out = String::new();
    if let Some(f) = &l.format {
        let _ = writeln!(out, "format {} version {}", f.name, f.version);
        match f.calibration.as_ref() {
            Some(serde_json::Value::Object(c)) => {
                let field = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("?");
                let weighted = rows.iter().filter(|r| r.calibrated == Some(true)).count();
                let _ = writeln!(
                    out,
                    "search {} on {} (sha256 {}): {weighted} tensors weighted (cal)",
                    field("mode"),
                    field("text"),
                    field("sha256")
                );
            }
            Some(other) => {
                let _ = writeln!(out, "search calibrated ({other})");
            }
            None => {}
        }
    }
    let _ = writeln!(
        out,
        "{:<nw$}  {:<sw$}  {:<dw$}  {:<14}  {:<9}  {:>11}  {:>10}",
        "tensor",
        "shape",
        "dtype",
        if l.packed { "stored" } else { "default rule" },
        "C,P,K",
        "bytes",
        "rel. MSE"
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<nw$}  {:<sw$}  {:<dw$}  {:<14}  {:<9}  {:>11}  {:>10}",
            names[i],
            shapes[i],
            dtypes[i],
            stored[i],
            configs[i],
            r.bytes,
            r.relmse.map_or("-".to_string(), |m| format!("{m:.3e}")),
        );
    }
    let t = &l.totals;
    if l.packed {
        let _ = write!(
            out,
            "{} tensors ({} compressed), {} bytes of tensor data, {} in the original dtypes ({:.2}x smaller)",
            t.tensors, t.compressed, t.bytes, t.original_bytes, t.ratio
        );
        if let Some(b) = t.bits_per_weight {
            let _ = write!(out, "; {b:.3} bits per compressed weight");
        }
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "{} tensors, {} bytes of tensor data; the default rule would compress {} of them",
            t.tensors,
            t.bytes,
            t.would_compress.unwrap_or(0)
        );
    }
    out
}
