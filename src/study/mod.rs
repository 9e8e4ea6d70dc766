//! Study tools built on the engine: data-free baselines and the comparison with them, the
//! design-space explorer, the LFSR walkthrough, the search benchmark and the bit allocation
//! across tensors.
//!
//! May use: [`crate::core`], [`crate::search`] and [`crate::io`] (and [`allocate`] also
//! [`crate::eval`], for sensitivities). Knows nothing of the app or the CLI.

pub mod allocate;
pub mod baselines;
pub mod bench;
pub mod compare;
pub mod explore;
pub mod walkthrough;
