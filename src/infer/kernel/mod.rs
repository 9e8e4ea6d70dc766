//! Row kernels of the matrix–vector product: one output row of a dense (f32, f16, bf16) or
//! SeedLM-packed matrix against an f32 activation. AVX-512 and AVX2 where the CPU has them, and a
//! portable path everywhere; all agree within f32 rounding.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod lanes;
mod portable;
mod seed;

use crate::io::dtype::Dtype;
use lanes::{LaneMatrix, Lines};

pub use portable::seed_row as seed_row_exact;
pub use seed::SeedMatrix;

/// Bytes of a dense row prefetched ahead: rows come from the file's pages, where the hardware
/// prefetcher stops at each page boundary (f16 generation on the TinyLlama shape, 2 threads:
/// 1.10× with 1 KB, 1.07× with 2 KB, 1.0× with 4 KB).
const DENSE_PREFETCH: usize = 1024;

/// Bytes of a packed record stream prefetched ahead: it is read once per token from the file's
/// pages, where the hardware prefetcher loses it at each page boundary.
const RECORD_PREFETCH: usize = 1024;

/// Which kernel runs the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Kernel {
    /// AVX-512 (F, BW, VBMI and VNNI) with BMI2.
    Avx512,
    /// AVX2 with FMA, F16C and BMI2.
    Avx2,
    /// Plain Rust for any CPU.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn best_available() -> Kernel {
        // Asked per decoded row (embeddings, weight comparisons): detect once.
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Self::available()[0])
    }

    /// Every kernel this CPU runs, fastest first.
    pub fn available() -> Vec<Kernel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c") && has!("bmi2");
            // Every CPU with VBMI (Ice Lake, Zen 4 and later) has VNNI too.
            let avx512 = has!("avx512f") && has!("avx512bw") && has!("avx512vbmi");
            if avx2 && avx512 && has!("avx512vnni") {
                out.push(Kernel::Avx512);
            }
            if avx2 {
                out.push(Kernel::Avx2);
            }
        }
        out.push(Kernel::Portable);
        out
    }

    /// Lower-case name, as `--kernel` takes it and reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// The kernel named `name`, if this CPU runs it; otherwise an error that says which it runs.
    pub fn parse(name: &str) -> Result<Kernel, String> {
        let avail = Self::available();
        let names: Vec<&str> = avail.iter().map(|k| k.name()).collect();
        avail.into_iter().find(|k| k.name() == name).ok_or_else(|| {
            format!(
                "kernel '{name}' is not available on this CPU (it runs {})",
                names.join(", ")
            )
        })
    }

    /// Dot product of one stored row (`dtype`, little-endian bytes) with `x`.
    pub(crate) fn dense_dot(self, dtype: Dtype, row: &[u8], x: &[f32]) -> f32 {
        match self {
            // SAFETY: `available` listed this kernel only when the CPU has its features.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { avx512::dense_dot(dtype, row, x) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::dense_dot(dtype, row, x) },
            _ => portable::dense_dot(dtype, row, x),
        }
    }

    /// Row `r` of a packed matrix in the lane layout, against the activation expanded per row
    /// offset ([`LaneMatrix::expand`]); `None` where this kernel has no lane path.
    pub(crate) fn lane_row(self, m: &LaneMatrix, r: usize, xdups: &[Lines]) -> Option<f32> {
        match self {
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => Some(unsafe { avx512::lane_row(m, r, xdups) }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => Some(unsafe { avx2::lane_row(m, r, xdups) }),
            _ => None,
        }
    }

    /// Weights `start..start + out.len()` of a lane-layout packed matrix, each block's sums
    /// multiplied by `unit[E]` (see `avx512::lane_decode`); `false` where this kernel has no
    /// lane decoder.
    pub(crate) fn lane_decode(
        self,
        m: &LaneMatrix,
        start: usize,
        out: &mut [f32],
        unit: &[f64; 16],
    ) -> bool {
        match self {
            // SAFETY: `available` listed this kernel only when the CPU has its features.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                unsafe { avx512::lane_decode(m, start, out, unit) };
                true
            }
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if m.table.pairs() => {
                unsafe { avx2::lane_decode(m, start, out, unit) };
                true
            }
            _ => false,
        }
    }
}

/// Reads the `bits`-bit record of block `block` from the record stream; past the end it reads
/// zeros.
#[inline(always)]
pub(crate) fn record(records: &[u8], block: usize, bits: u32) -> u64 {
    let pos = block as u64 * u64::from(bits);
    if bits > 57 {
        // One unaligned u64 holds at most 57 bits after a shift of up to 7.
        return crate::core::bits::read_bits(records, pos, bits).unwrap_or(0);
    }
    let byte = (pos >> 3) as usize;
    let mask = (1u64 << bits) - 1;
    match records.get(byte..byte + 8) {
        Some(b) => (u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) >> (pos & 7)) & mask,
        None => {
            let mut tail = [0u8; 8];
            let have = records.len().saturating_sub(byte).min(8);
            tail[..have].copy_from_slice(&records[byte.min(records.len())..][..have]);
            (u64::from_le_bytes(tail) >> (pos & 7)) & mask
        }
    }
}
