//! The hardware decompressor: the bit-exact model of the RTL in `hdl/`, the Verilator build and
//! the simulation runs with their reports against the paper's Table 5.
//!
//! May use: [`crate::core`], [`crate::search`] and [`crate::io`]. Knows nothing of the app or the CLI.

pub mod build;
pub mod model;
pub mod sim;
