//! The paper's Table 4 (FPGA resources) and Table 5 (cycles at 200 MHz) of its FP16 reference
//! and SeedLM designs.

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

/// FPGA resources of one part of a design, as the paper's Table 4 gives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperUsage {
    /// Lookup tables.
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Block RAMs of 36 Kb.
    pub bram: f64,
    /// DSP slices.
    pub dsps: u64,
}

/// One design's column group of the paper's Table 4: the total and its three named parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaperTable4 {
    /// The whole design.
    pub total: PaperUsage,
    /// The MAC block.
    pub mac: PaperUsage,
    /// The LFSR decompressor.
    pub lfsr: PaperUsage,
    /// The pre-MAC fixed-point to FP16 conversion.
    pub pre_mac: PaperUsage,
}

const NONE: PaperUsage = PaperUsage {
    luts: 0,
    ffs: 0,
    bram: 0.0,
    dsps: 0,
};

/// Table 4, the FP16 reference design.
pub const PAPER_TABLE4_REFERENCE: PaperTable4 = PaperTable4 {
    total: PaperUsage {
        luts: 20800,
        ffs: 10164,
        bram: 10.5,
        dsps: 32,
    },
    mac: PaperUsage {
        luts: 9902,
        ffs: 3118,
        bram: 0.0,
        dsps: 32,
    },
    lfsr: NONE,
    pre_mac: NONE,
};

/// Table 4, the (4-bit) SeedLM design.
pub const PAPER_TABLE4_SEEDLM: PaperTable4 = PaperTable4 {
    total: PaperUsage {
        luts: 120105,
        ffs: 73666,
        bram: 154.5,
        dsps: 128,
    },
    mac: PaperUsage {
        luts: 42174,
        ffs: 12594,
        bram: 0.0,
        dsps: 128,
    },
    lfsr: PaperUsage {
        luts: 67034,
        ffs: 45407,
        bram: 144.0,
        dsps: 0,
    },
    pre_mac: PaperUsage {
        luts: 12292,
        ffs: 13448,
        bram: 0.0,
        dsps: 0,
    },
};
