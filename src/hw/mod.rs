//! The hardware decompressor: the datapaths of the RTL in `hdl/` described once ([`design`]),
//! the bit-exact model of their arithmetic, the Verilator build and runs, the cycle counts of
//! the DDR model without a run and the estimate for configurations without RTL ([`estimate`]),
//! the Yosys synthesis and its resources, the paper's Tables 4 and 5 and the reports that set
//! the simulations against the models and the paper.
//!
//! May use: [`crate::core`], [`crate::search`] and [`crate::io`]. Knows nothing of the app or the CLI.

pub mod accuracy;
pub mod build;
pub mod design;
pub mod estimate;
pub mod fp16;
pub mod model;
pub mod paper;
pub mod report;
pub mod resources;
pub mod rtl;
pub mod sim;
pub mod synth;
