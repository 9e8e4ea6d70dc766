//! The hardware decompressor: the datapaths of the RTL in `hdl/` described once ([`design`]),
//! the bit-exact model of their arithmetic, the Verilator build and runs, the paper's Table 5
//! and the reports that set the simulations against the models and the paper.
//!
//! May use: [`crate::core`], [`crate::search`] and [`crate::io`]. Knows nothing of the app or the CLI.

pub mod build;
pub mod design;
pub mod model;
pub mod paper;
pub mod report;
pub mod sim;
