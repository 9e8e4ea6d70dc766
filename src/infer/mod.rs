//! Running a model from its stored form (docs/DESIGN.md §5): plain f32/f16/bf16 tensors and
//! SeedLM-packed tensors read from the memory map, with no f32 copy of any weight matrix. One
//! token's product runs fused row kernels (a packed block's basis from per-byte seed tables,
//! its coefficients in 16-bit integer lanes); a batch decodes small tiles and uses candle's
//! matmul.
//!
//! May use: [`crate::core`], [`crate::search`] (block codes) and [`crate::io`]. Knows nothing of
//! the app or CLI. Networks: [`llama`] (decoders) and [`bert`] (encoders).

pub mod bench;
pub mod bert;
pub mod generate;
pub mod kernel;
pub mod linear;
pub mod llama;
pub mod matrix;
pub mod seed_table;
pub mod source;
pub mod synthetic;
