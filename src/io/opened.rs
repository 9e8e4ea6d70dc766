//! Opening a path as whatever it holds: a plain model or a packed file.

use crate::io::error::ModelError;
use crate::io::model::Model;
use crate::io::packed::{PackedModel, is_packed};
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
    let model = Model::open(path)?;
    if model.files().len() == 1 && is_packed(&model.files()[0]) {
        Ok(Opened::Packed(PackedModel::open(path)?))
    } else {
        Ok(Opened::Plain(model))
    }
}
