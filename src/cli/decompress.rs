//! `seedlm decompress`: a packed file or directory in, a plain safetensors model out.

use crate::io::dtype::Dtype;
use crate::io::model_job::{copy_packed_dir_files, decompress_model, output_file};
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
}

/// Runs `seedlm decompress`.
pub fn run(args: DecompressArgs) -> anyhow::Result<ExitCode> {
    let packed = PackedModel::open(&args.input)?;
    super::output::check(&args.input, &args.output)?;
    let is_dir = args.input.is_dir();
    let file = output_file(is_dir, &args.output)?;
    decompress_model(&packed, &file, args.dtype.map(Dtype::from))?;
    if is_dir {
        copy_packed_dir_files(&args.input, &args.output)?;
    }
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
