//! Compression configurations: block size C, latent dimension P, register length K.

use crate::core::lfsr;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Largest latent dimension the search kernels are built for.
pub const MAX_P: usize = 8;
/// Largest block size accepted.
pub const MAX_C: usize = 64;
/// Bits of the shared exponent code.
pub const E_BITS: u32 = 4;
/// Bits of each coefficient.
pub const Q_BITS: u32 = 4;

/// A SeedLM configuration (docs/DESIGN.md §1, bit budget).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    /// Weights per block.
    pub c: usize,
    /// Coefficients per block (columns of U(s)).
    pub p: usize,
    /// LFSR register length in bits.
    pub k: u32,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// K has no taps in Table 6.
    #[error("K={0} is not supported: Table 6 gives taps for K from 2 to 24")]
    K(u32),
    /// P out of range.
    #[error("P={0} is not supported: P must be from 1 to {MAX_P}")]
    P(usize),
    /// C out of range or smaller than P.
    #[error("C={c} is not supported with P={p}: C must be from P to {MAX_C}")]
    C {
        /// Block size.
        c: usize,
        /// Latent dimension.
        p: usize,
    },
    /// Text that is not a preset or `C,P,K`.
    #[error(
        "cannot parse config '{0}': expected 4bit, 3bit, 4bit-p6, 4bit-p8, 3bit-p7 or C,P,K (for example 8,3,16)"
    )]
    Parse(String),
}

/// The configurations a bit budget (`compress --target-bpw`) can give a tensor, cheapest
/// first: the presets and points below, between and above them (all K = 16; P ≤ 4 except
/// `4bit-p6`, the best measured 4-bit point, searched at 0.6× the preset's speed), up to 6 bits
/// a weight for the most sensitive tensors.
pub const MENU: &[Config] = &[
    Config { c: 14, p: 4, k: 16 }, // 2.571
    Config { c: 12, p: 3, k: 16 }, // 2.667
    Config { c: 13, p: 4, k: 16 }, // 2.769
    Config { c: 11, p: 3, k: 16 }, // 2.909
    Config::THREE_BIT,             // 3.000
    Config { c: 10, p: 3, k: 16 }, // 3.200
    Config { c: 11, p: 4, k: 16 }, // 3.273
    Config { c: 9, p: 3, k: 16 },  // 3.556
    Config { c: 10, p: 4, k: 16 }, // 3.600
    Config::FOUR_BIT,              // 4.000
    Config::FOUR_BIT_P6,           // 4.000
    Config { c: 9, p: 4, k: 16 },  // 4.000
    Config { c: 8, p: 4, k: 16 },  // 4.500
    Config { c: 7, p: 3, k: 16 },  // 4.571
    Config { c: 7, p: 4, k: 16 },  // 5.143
    Config { c: 6, p: 3, k: 16 },  // 5.333
    Config { c: 6, p: 4, k: 16 },  // 6.000
];

impl Config {
    /// The 4-bit preset: C=8, P=3, K=16, 32 bits a block.
    pub const FOUR_BIT: Config = Config { c: 8, p: 3, k: 16 };
    /// The 3-bit preset: C=12, P=4, K=16, 36 bits a block.
    pub const THREE_BIT: Config = Config { c: 12, p: 4, k: 16 };

    /// Larger-P 4-bit point: C=11, P=6, K=16 (32 + 12 bits a block of 11). Lower error than
    /// [`Config::FOUR_BIT`] on Gaussian blocks; software only (no RTL datapath).
    pub const FOUR_BIT_P6: Config = Config { c: 11, p: 6, k: 16 };
    /// Larger-P 4-bit point: C=13, P=8, K=16. Software only.
    pub const FOUR_BIT_P8: Config = Config { c: 13, p: 8, k: 16 };
    /// Larger-P 3-bit point: C=16, P=7, K=16 (the only P from 5 to 8 at exactly 3 bits).
    /// Software only. On N(0,1) blocks it measures slightly worse than [`Config::THREE_BIT`]
    /// (relMSE 0.0494 against 0.0483): offered for comparison on real weights.
    pub const THREE_BIT_P7: Config = Config { c: 16, p: 7, k: 16 };
    /// The larger-P presets by name, beside the paper's `4bit` and `3bit` (the hardware ones).
    pub const LARGER_P: [(&'static str, Config); 3] = [
        ("4bit-p6", Self::FOUR_BIT_P6),
        ("4bit-p8", Self::FOUR_BIT_P8),
        ("3bit-p7", Self::THREE_BIT_P7),
    ];

    /// A checked configuration.
    pub fn new(c: usize, p: usize, k: u32) -> Result<Self, ConfigError> {
        let cfg = Config { c, p, k };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The preset for 4 or 3 bits per weight.
    pub fn preset(bits: u32) -> Option<Self> {
        match bits {
            4 => Some(Self::FOUR_BIT),
            3 => Some(Self::THREE_BIT),
            _ => None,
        }
    }

    /// Checks every constraint; the engine assumes a validated config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if lfsr::taps(self.k).is_none() {
            return Err(ConfigError::K(self.k));
        }
        if self.p == 0 || self.p > MAX_P {
            return Err(ConfigError::P(self.p));
        }
        if self.c < self.p || self.c > MAX_C {
            return Err(ConfigError::C {
                c: self.c,
                p: self.p,
            });
        }
        Ok(())
    }

    /// Number of seeds, 2^K - 1.
    pub fn period(&self) -> usize {
        (1usize << self.k) - 1
    }

    /// Bits of one block record: K + 4 + 4P.
    pub fn block_bits(&self) -> u32 {
        self.k + E_BITS + Q_BITS * self.p as u32
    }

    /// Bits per weight M = (K + 4 + 4P) / C.
    pub fn bits_per_weight(&self) -> f64 {
        self.block_bits() as f64 / self.c as f64
    }

    /// The name of the paper's preset (the hardware ones, `4bit` or `3bit`) if this is one.
    pub fn preset_name(&self) -> Option<&'static str> {
        match *self {
            Self::FOUR_BIT => Some("4bit"),
            Self::THREE_BIT => Some("3bit"),
            _ => None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::FOUR_BIT
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "C={} P={} K={} ({:.3} bits/weight)",
            self.c,
            self.p,
            self.k,
            self.bits_per_weight()
        )
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    /// Parses `4bit`, `3bit`, a larger-P preset name ([`Config::LARGER_P`]) or `C,P,K`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "4bit" | "4" => return Ok(Self::FOUR_BIT),
            "3bit" | "3" => return Ok(Self::THREE_BIT),
            _ => {}
        }
        if let Some((_, cfg)) = Self::LARGER_P.iter().find(|(name, _)| *name == t) {
            return Ok(*cfg);
        }
        let parts: Vec<&str> = t.split(',').map(str::trim).collect();
        let [c, p, k] = parts[..] else {
            return Err(ConfigError::Parse(s.to_string()));
        };
        let parse_err = || ConfigError::Parse(s.to_string());
        Config::new(
            c.parse().map_err(|_| parse_err())?,
            p.parse().map_err(|_| parse_err())?,
            k.parse().map_err(|_| parse_err())?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_cost_what_design_says() {
        assert_eq!(Config::FOUR_BIT.block_bits(), 32);
        assert_eq!(Config::FOUR_BIT.bits_per_weight(), 4.0);
        assert_eq!(Config::THREE_BIT.block_bits(), 36);
        assert_eq!(Config::THREE_BIT.bits_per_weight(), 3.0);
    }

    #[test]
    fn parses_presets_and_triples() {
        assert_eq!("4bit".parse::<Config>(), Ok(Config::FOUR_BIT));
        assert_eq!("3bit".parse::<Config>(), Ok(Config::THREE_BIT));
        assert_eq!(" 8, 3, 16 ".parse::<Config>(), Ok(Config::FOUR_BIT));
        assert_eq!("4,2,3".parse::<Config>(), Ok(Config { c: 4, p: 2, k: 3 }));
        assert_eq!("4bit-p6".parse::<Config>(), Ok(Config::FOUR_BIT_P6));
        assert_eq!("4BIT-P8".parse::<Config>(), Ok(Config::FOUR_BIT_P8));
        assert_eq!("3bit-p7".parse::<Config>(), Ok(Config::THREE_BIT_P7));
    }

    #[test]
    fn larger_p_presets_keep_their_bit_budgets() {
        for (name, cfg) in Config::LARGER_P {
            cfg.validate().unwrap();
            let bits = if name.starts_with('4') { 4.0 } else { 3.0 };
            assert_eq!(cfg.bits_per_weight(), bits, "{name}");
            assert!(cfg.p > 4 && cfg.preset_name().is_none(), "{name}");
        }
    }

    #[test]
    fn rejects_invalid_combinations() {
        assert_eq!("8,3,25".parse::<Config>(), Err(ConfigError::K(25)));
        assert_eq!("8,0,16".parse::<Config>(), Err(ConfigError::P(0)));
        assert_eq!("8,9,16".parse::<Config>(), Err(ConfigError::P(9)));
        assert_eq!(
            "2,3,16".parse::<Config>(),
            Err(ConfigError::C { c: 2, p: 3 })
        );
        assert!(matches!(
            "eight".parse::<Config>(),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            "8,3".parse::<Config>(),
            Err(ConfigError::Parse(_))
        ));
    }
}
