//! SeedLM engine: LFSR bases, the exact seed search, the quantizer and everything built on them.
//! Nothing in the engine knows about the user interface.

pub mod app;
pub mod baselines;
pub mod basis;
pub mod bench;
pub mod bits;
pub mod cli;
pub mod compare;
pub mod compress;
pub mod config;
pub mod dtype;
pub mod explore;
pub mod fit;
pub mod hwbuild;
pub mod hwmodel;
pub mod hwsim;
pub mod lfsr;
pub mod lstsq;
pub mod model;
pub mod model_error;
pub mod model_job;
pub mod opened;
pub mod packed;
pub mod quant;
pub mod safetensors_file;
pub mod search;
pub mod selection;
pub mod walkthrough;
