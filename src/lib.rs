//! SeedLM engine: LFSR bases, the exact seed search, the quantizer and everything built on them.
//! Nothing in the engine knows about the user interface.

pub mod app;
pub mod basis;
pub mod bench;
pub mod cli;
pub mod compress;
pub mod config;
pub mod lfsr;
pub mod lstsq;
pub mod quant;
pub mod search;
