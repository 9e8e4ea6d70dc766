//! The SeedLM datapaths of `hdl/`, each described once: the preset its records carry, how the
//! records reach it (whole records a beat, or back to back through a gearbox) and so which
//! matrices it holds, and the simulator that runs it. The model, the simulation and the reports
//! all read these descriptions; the records themselves are the packed file's
//! ([`crate::io::packed::encode_record`]).

use crate::core::config::Config;
use crate::hw::rtl::Target;
use crate::io::packed;
use crate::search::compress::{BlockCode, CompressedTensor, random_codes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bytes of a DDR beat (512 bits).
pub const BEAT_BYTES: usize = 64;
/// Largest number of rows and of columns the RTL memories hold.
pub const MAX_DIM: usize = 8192;

/// How a datapath's records arrive in the DDR stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A beat holds whole records and never crosses a row, so columns are a multiple of the
    /// weights a beat holds (`seedlm_mvm.sv`).
    WholeBeats,
    /// Records straddle beats; a gearbox hands `group` records a cycle to the datapath. Blocks
    /// follow the row-major flattened matrix and a group spans at most two rows, so columns are
    /// at least `group · C` (`seedlm3_mvm.sv`).
    Gearbox {
        /// Records decoded a cycle.
        group: usize,
    },
}

impl Layout {
    /// Fewest columns, and the step columns go in, for records of `cfg`.
    fn cols_rule(self, cfg: Config) -> (usize, usize) {
        match self {
            Layout::WholeBeats => {
                let per_beat = BEAT_BYTES * 8 / cfg.block_bits() as usize * cfg.c;
                (per_beat, per_beat)
            }
            Layout::Gearbox { group } => (group * cfg.c, 1),
        }
    }

    /// Checks that a `rows × cols` matrix of `cfg` records fits a datapath of this layout
    /// (named `design` in the error) and the RTL's memories.
    pub fn check_shape(
        self,
        design: &str,
        cfg: Config,
        rows: usize,
        cols: usize,
    ) -> Result<(), ShapeError> {
        let (min, step) = self.cols_rule(cfg);
        if (1..=MAX_DIM).contains(&rows)
            && (min..=MAX_DIM).contains(&cols)
            && cols.is_multiple_of(step)
        {
            return Ok(());
        }
        let rule = if step > 1 {
            format!("a multiple of {step} up to {MAX_DIM}")
        } else {
            format!("{min}..={MAX_DIM}")
        };
        Err(ShapeError::Shape {
            design: design.to_string(),
            rule,
            rows,
            cols,
        })
    }
}

/// Checks that `t` holds the `rows · cols` weights it is simulated as.
pub fn check_len(t: &CompressedTensor, rows: usize, cols: usize) -> Result<(), ShapeError> {
    if t.len == rows * cols {
        return Ok(());
    }
    Err(ShapeError::Len {
        len: t.len,
        rows,
        cols,
    })
}

/// The FP16 reference runs on the matrices the 4-bit design takes (Table 5 pairs them), so a
/// tensor of another configuration of such a shape gets a speed-up too.
pub fn reference_takes(rows: usize, cols: usize) -> bool {
    FOUR_BIT.check_shape(rows, cols).is_ok()
}

/// One SeedLM datapath of the RTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Design {
    /// Its name in reports and messages.
    pub name: &'static str,
    /// The preset (C, P, K) of its records.
    pub config: Config,
    /// How its records arrive.
    pub layout: Layout,
    /// The simulator that runs it.
    pub target: Target,
    /// The paper's FP16 reference design runs beside it on the same matrix (Table 5 pairs the
    /// reference with the 4-bit design).
    pub with_reference: bool,
}

/// The 4-bit preset's datapath: 32-bit records, 16 a beat (128 weights, 128 MACs).
pub const FOUR_BIT: Design = Design {
    name: "4-bit",
    config: Config::FOUR_BIT,
    layout: Layout::WholeBeats,
    target: Target::SeedlmMvm,
    with_reference: true,
};

/// The 3-bit preset's datapath: 36-bit records through a gearbox, 15 a cycle (180 weights).
pub const THREE_BIT: Design = Design {
    name: "3-bit",
    config: Config::THREE_BIT,
    layout: Layout::Gearbox { group: 15 },
    target: Target::Seedlm3Mvm,
    with_reference: false,
};

/// Every SeedLM datapath of the RTL.
pub const DESIGNS: [Design; 2] = [FOUR_BIT, THREE_BIT];

/// Why a tensor or an input does not fit the hardware.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    /// No datapath implements the tensor's preset.
    #[error(
        "the hardware implements the 4-bit (C=8, P=3, K=16) and 3-bit (C=12, P=4, K=16) presets, not C={c}, P={p}, K={k}: other configurations (the larger-P presets too) have no RTL yet"
    )]
    Config {
        /// Block size.
        c: usize,
        /// Coefficients per block.
        p: usize,
        /// LFSR length.
        k: u32,
    },
    /// Rows or columns out of the datapath's range.
    #[error(
        "a {rows}×{cols} matrix does not fit the {design} hardware: rows must be 1..={MAX_DIM} and columns {rule}"
    )]
    Shape {
        /// The datapath's name.
        design: String,
        /// What its columns must be.
        rule: String,
        /// Rows (outputs).
        rows: usize,
        /// Columns (inputs).
        cols: usize,
    },
    /// The tensor's element count is not rows·cols.
    #[error("the tensor has {len} elements, not {rows}×{cols}")]
    Len {
        /// Elements in the tensor.
        len: usize,
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
}

impl Design {
    /// The datapath of a preset.
    pub fn for_config(cfg: Config) -> Result<Design, ShapeError> {
        DESIGNS
            .into_iter()
            .find(|d| d.config == cfg)
            .ok_or(ShapeError::Config {
                c: cfg.c,
                p: cfg.p,
                k: cfg.k,
            })
    }

    /// Bits of one record (K + 4 + 4P).
    pub fn record_bits(&self) -> usize {
        self.config.block_bits() as usize
    }

    /// Checks that a `rows × cols` matrix fits the datapath (its memories and its layout).
    pub fn check_shape(&self, rows: usize, cols: usize) -> Result<(), ShapeError> {
        self.layout.check_shape(self.name, self.config, rows, cols)
    }

    /// Records of a `rows × cols` matrix (the last block is padded).
    pub fn blocks(&self, rows: usize, cols: usize) -> usize {
        (rows * cols).div_ceil(self.config.c)
    }

    /// One block code as the record the hardware reads: the packed file's encoding.
    pub fn record(&self, code: &BlockCode) -> u64 {
        packed::encode_record(code, self.config)
    }

    /// The records of a compressed `rows × cols` tensor, in DDR order.
    pub fn records(
        &self,
        t: &CompressedTensor,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<u64>, ShapeError> {
        if t.config != self.config {
            return Err(ShapeError::Config {
                c: t.config.c,
                p: t.config.p,
                k: t.config.k,
            });
        }
        self.check_shape(rows, cols)?;
        check_len(t, rows, cols)?;
        Ok(t.blocks.iter().map(|b| self.record(b)).collect())
    }

    /// The DDR stream of `records`: the packed file's bytes, zero-padded to whole beats.
    pub fn stream(&self, records: &[u64]) -> Vec<u8> {
        let mut bytes = packed::pack_records(records.iter().copied(), self.config);
        bytes.resize(bytes.len().div_ceil(BEAT_BYTES) * BEAT_BYTES, 0);
        bytes
    }
}

/// Random valid block codes of `cfg` for a `rows × cols` tensor (seeds 1..2^K − 1, any E and q,
/// the paper's exponent range), reproducible from `seed`.
pub fn random_tensor(cfg: Config, rows: usize, cols: usize, seed: u64) -> CompressedTensor {
    let len = rows * cols;
    CompressedTensor {
        config: cfg,
        e_base: crate::core::quant::DEFAULT_E_BASE,
        len,
        blocks: random_codes(cfg, len.div_ceil(cfg.c), seed),
    }
}

/// A random full-range int16 input vector, reproducible from `seed`.
pub fn random_x(cols: usize, seed: u64) -> Vec<i16> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..cols).map(|_| rng.random()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_preset_has_its_datapath_and_shape_rule() {
        assert_eq!(Design::for_config(Config::FOUR_BIT), Ok(FOUR_BIT));
        assert_eq!(Design::for_config(Config::THREE_BIT), Ok(THREE_BIT));
        let other = Config { c: 16, p: 4, k: 16 };
        assert!(matches!(
            Design::for_config(other),
            Err(ShapeError::Config { c: 16, .. })
        ));
        assert!(FOUR_BIT.check_shape(8192, 128).is_ok());
        let e = FOUR_BIT.check_shape(4, 96).unwrap_err().to_string();
        assert!(e.contains("4×96") && e.contains("multiple of 128"), "{e}");
        assert!(THREE_BIT.check_shape(1, 180).is_ok());
        assert!(THREE_BIT.check_shape(0, 200).is_err());
        let e = THREE_BIT.check_shape(4, 179).unwrap_err().to_string();
        assert!(e.contains("3-bit") && e.contains("180..=8192"), "{e}");
    }
}
