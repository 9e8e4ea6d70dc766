//! The paper's Table 5: cycles of its FP16 reference and SeedLM designs at 200 MHz.

/// One row of the paper's Table 5 (cycles at 200 MHz).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperRow {
    /// Square matrix size.
    pub size: usize,
    /// FP16 reference design cycles.
    pub reference_cycles: u64,
    /// SeedLM design cycles.
    pub seedlm_cycles: u64,
    /// Speed-up as printed.
    pub speedup: f64,
}

/// The paper's Table 5.
pub const PAPER_TABLE5: [PaperRow; 3] = [
    PaperRow {
        size: 512,
        reference_cycles: 8593,
        seedlm_cycles: 2341,
        speedup: 3.67,
    },
    PaperRow {
        size: 1024,
        reference_cycles: 34201,
        seedlm_cycles: 8723,
        speedup: 3.92,
    },
    PaperRow {
        size: 2048,
        reference_cycles: 136559,
        seedlm_cycles: 34331,
        speedup: 3.98,
    },
];

/// The paper's row for a square size, if Table 5 has one.
pub fn paper_row(size: usize) -> Option<PaperRow> {
    PAPER_TABLE5.iter().copied().find(|r| r.size == size)
}
