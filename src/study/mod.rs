//! Study tools built on the engine: data-free baselines and the comparison with them, the
//! design-space explorer, the LFSR walkthrough and the search benchmark.
//!
//! May use: [`crate::core`], [`crate::search`] and [`crate::io`]. Knows nothing of the app or the CLI.

pub mod baselines;
pub mod bench;
pub mod compare;
pub mod explore;
pub mod walkthrough;
