//! Core maths, shared by every layer above: the progress/cancel [`control::Control`] of long
//! computations, the bit stream, the LFSR, configurations, the
//! seed → basis map, small least squares, the coefficient quantizer, and seeded Gaussian data.
//!
//! May use: nothing else in the crate. Everything else may use it.

pub mod basis;
pub mod bits;
pub mod config;
pub mod control;
pub mod lfsr;
pub mod lstsq;
pub mod quant;
pub mod random;
