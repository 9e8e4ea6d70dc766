//! SeedLM engine: LFSR bases, the exact seed search, the quantizer and everything built on them.
//!
//! The folders are layers; each may use only those listed before it:
//! [`core`] (maths) → [`search`] (exact seed search, whole-tensor compression) → [`io`] (models,
//! packed files) → [`infer`] (running a model from its stored form) → [`hw`] (hardware model and
//! simulation), [`study`] (baselines, explorer, walkthrough, bench) and [`eval`] (function-space
//! evaluation on the inference engine) → [`cli`] and [`app`], thin layers over the rest. Nothing in the engine knows about the user interface.
//! `docs/DESIGN.md` holds the conventions the code cites.

pub mod app;
pub mod cli;
pub mod core;
pub mod eval;
pub mod hw;
pub mod infer;
pub mod io;
pub mod search;
pub mod study;
