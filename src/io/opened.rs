//! Opening a path as whatever it holds: a plain model or a packed file.

use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::packed::{DataCheck, PackedModel, is_packed};
use std::path::Path;

/// A model file or directory, or a packed file, opened and validated.
#[derive(Debug)]
pub enum Opened {
    /// A plain safetensors model (file, directory, or shards).
    Plain(Model),
    /// A SeedLM packed file (or a directory holding one).
    Packed(PackedModel),
}

/// Opens `path`: a packed file when its metadata carries the packed-format marker (then it is
/// fully verified, checksums included), otherwise a plain model.
pub fn open(path: &Path) -> Result<Opened, ModelError> {
    open_checking(path, DataCheck::AtOpen)
}

/// [`open`] reading headers only: a packed file's compressed tensors are checked when first
/// read ([`DataCheck::OnRead`]), so that a large file opens at once (the app).
pub fn open_headers(path: &Path) -> Result<Opened, ModelError> {
    open_checking(path, DataCheck::OnRead)
}

fn open_checking(path: &Path, check: DataCheck) -> Result<Opened, ModelError> {
    let model = Model::open(path)?;
    if model.files().len() == 1 && is_packed(&model.files()[0]) {
        let packed = match check {
            DataCheck::AtOpen => PackedModel::open(path)?,
            DataCheck::OnRead => PackedModel::open_headers(path)?,
        };
        Ok(Opened::Packed(packed))
    } else {
        Ok(Opened::Plain(model))
    }
}
