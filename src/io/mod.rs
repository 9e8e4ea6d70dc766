//! Model and file I/O: element types, the safetensors container, models (files, directories,
//! shards), the packed format, which tensors get compressed, and whole-model jobs.
//!
//! May use: [`crate::core`] and [`crate::search`]. Knows nothing of the app or the CLI.

pub mod container;
pub mod dtype;
pub mod error;
pub mod job_plan;
pub mod model;
pub mod model_job;
pub mod opened;
pub mod packed;
pub mod selection;
pub mod shard;
