//! `seedlm decompress`: a packed file or directory in, a plain safetensors model out.

use crate::io::container::PartialDir;
use crate::io::dtype::Dtype;
use crate::io::model::MODEL_FILE;
use crate::io::model_job::{copy_packed_dir_files, decompress_model};
use crate::io::packed::PackedModel;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Output element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutDtype {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<OutDtype> for Dtype {
    fn from(d: OutDtype) -> Dtype {
        match d {
            OutDtype::F32 => Dtype::F32,
            OutDtype::F16 => Dtype::F16,
            OutDtype::Bf16 => Dtype::BF16,
        }
    }
}

/// Arguments of `seedlm decompress`.
#[derive(Debug, Args)]
pub struct DecompressArgs {
    /// A packed file, or a directory holding one as model.safetensors.
    pub input: PathBuf,
    /// The safetensors file to write (a directory when INPUT is one).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Element type of every floating tensor, F64 ones included (default: each tensor's
    /// original dtype).
    #[arg(long, value_enum)]
    pub dtype: Option<OutDtype>,
    /// Replace an existing output directory that is not empty (only once the new one is
    /// complete).
    #[arg(long)]
    pub force: bool,
}

/// Runs `seedlm decompress`.
pub fn run(args: DecompressArgs) -> anyhow::Result<ExitCode> {
    let packed = PackedModel::open(&args.input)?;
    super::output::check(&args.input, &args.output, args.force)?;
    let dtype = args.dtype.map(Dtype::from);
    let file = if args.input.is_dir() {
        // A directory appears whole or not at all.
        let dir = PartialDir::begin(&args.output)?;
        decompress_model(&packed, &dir.path().join(MODEL_FILE), dtype)?;
        copy_packed_dir_files(&args.input, dir.path())?;
        dir.finish()?;
        args.output.join(MODEL_FILE)
    } else {
        decompress_model(&packed, &args.output, dtype)?;
        args.output.clone()
    };
    let n = packed
        .tensors()
        .iter()
        .filter(|t| t.packed.is_some())
        .count();
    super::stdout::print(&format!(
        "wrote {} ({} tensors, {n} decompressed)\n",
        file.display(),
        packed.tensors().len()
    ))?;
    Ok(ExitCode::SUCCESS)
}
