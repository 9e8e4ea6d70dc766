//! The record view of a SeedLM-packed matrix that the row kernels read, and its exact decoder.

use super::lanes::LaneMatrix;
use super::record;
use crate::core::config::{Config, MAX_C, MAX_P};
use crate::core::quant::pow2;
use crate::infer::seed_table::SeedTable;
use crate::io::packed::PackedMeta;
use std::sync::Arc;

/// Records of one SeedLM-packed tensor, with the tables that decode them.
#[derive(Debug)]
pub struct SeedMatrix<'a> {
    records: &'a [u8],
    cfg: Config,
    e_base: i32,
    table: Arc<SeedTable>,
    lanes: Option<LaneMatrix<'a>>,
}

impl<'a> SeedMatrix<'a> {
    /// The records of a tensor described by `meta`, viewed as rows of `cols` values.
    pub fn new(meta: &PackedMeta, records: &'a [u8], cols: usize) -> Self {
        let cfg = meta.config();
        SeedMatrix {
            records,
            cfg,
            e_base: meta.e_base,
            table: SeedTable::shared(cfg.k, cfg.c * cfg.p),
            lanes: LaneMatrix::new(
                records,
                cfg,
                meta.e_base,
                cols,
                super::Kernel::best_available(),
            ),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// The record stream.
    pub fn records(&self) -> &'a [u8] {
        self.records
    }

    /// Its records in the lane layout, when its configuration has one.
    pub(crate) fn lanes(&self) -> Option<&LaneMatrix<'a>> {
        self.lanes.as_ref()
    }

    /// The per-byte state tables of its (K, C·P).
    pub fn table(&self) -> &SeedTable {
        &self.table
    }

    /// 2^(e_base + E) / (2^(K−1) − 1): what one unit of Σ_j q_j·(V_ij − 2^(K−1)) weighs.
    pub fn scale(&self, e_code: usize) -> f64 {
        pow2(self.e_base + e_code as i32) / self.denom()
    }

    fn denom(&self) -> f64 {
        ((1i64 << (self.cfg.k - 1)) - 1).max(1) as f64
    }

    /// Elements `start..start + out.len()` of the flattened tensor, exactly as
    /// `CompressedTensor::reconstruct` computes them.
    ///
    /// The reference rounds `a / denom` to f64, scales it by 2^E and rounds to f32; this
    /// multiplies `a` by `2^E / denom` rounded to f64 instead (a division per weight was most
    /// of a prompt's time). Both f64 values lie within 2^−52 of the true quotient, which is at
    /// least 2^−48 (relative) from any f32 rounding midpoint when the result is a normal f32
    /// (`a` is an integer below 2^29 and `denom` an odd number below 2^23), so both round to
    /// the same f32. Blocks scaled below 2^−100, whose results may be subnormal, divide.
    pub(crate) fn decode(&self, kernel: super::Kernel, start: usize, out: &mut [f32]) {
        // The lane tables' states are shifted to the top of 16 bits, which the unit undoes
        // (a power of two: the f64 products are the same).
        if let Some(l) = &self.lanes
            && self.e_base >= -100
        {
            let shift = pow2(-((16 - self.cfg.k) as i32));
            let unit: [f64; 16] = std::array::from_fn(|e| {
                pow2(self.e_base + e as i32) * (1.0 / self.denom()) * shift
            });
            if kernel.lane_decode(l, start, out, &unit) {
                return;
            }
        }
        // The presets' shapes as constants, so the per-block loops unroll.
        match (self.cfg.c, self.cfg.p) {
            (8, 3) => self.decode_as::<8, 3>(start, out),
            (12, 4) => self.decode_as::<12, 4>(start, out),
            _ => self.decode_as::<0, 0>(start, out),
        }
    }

    /// [`Self::decode`] for C = `CC` and P = `PP` (0: the configuration's own, at run time).
    #[inline(always)]
    fn decode_as<const CC: usize, const PP: usize>(&self, start: usize, out: &mut [f32]) {
        let k = self.cfg.k;
        let c = if CC > 0 { CC } else { self.cfg.c };
        let p = if PP > 0 { PP } else { self.cfg.p };
        let half = 1i32 << (k - 1);
        let bits = self.cfg.block_bits();
        let end = start + out.len();
        let denom = self.denom();
        let scales: [f64; 16] = std::array::from_fn(|e| pow2(self.e_base + e as i32));
        let unit: [f64; 16] = std::array::from_fn(|e| scales[e] * (1.0 / denom));
        let mut states = [0u32; MAX_C * MAX_P];
        let mut q = [0i32; MAX_P];
        let mut acc = [0i32; MAX_C];
        for b in start / c..end.div_ceil(c) {
            let rec = record(self.records, b, bits);
            self.table
                .states((rec & ((1 << k) - 1)) as u32, &mut states[..c * p]);
            let e = ((rec >> k) & 15) as usize;
            for (j, q) in q[..p].iter_mut().enumerate() {
                *q = i32::from((((rec >> (k + 4 + 4 * j as u32)) & 15) as i8) << 4 >> 4);
            }
            for (a, s) in acc[..c].iter_mut().zip(states.chunks_exact(p)) {
                *a = s
                    .iter()
                    .zip(&q[..p])
                    .map(|(&v, &q)| (v as i32 - half) * q)
                    .sum();
            }
            let (lo, hi) = (start.max(b * c) - b * c, end.min(b * c + c) - b * c);
            let dst = &mut out[b * c + lo - start..][..hi - lo];
            if self.e_base + (e as i32) >= -100 {
                for (o, &a) in dst.iter_mut().zip(&acc[lo..hi]) {
                    *o = (f64::from(a) * unit[e]) as f32;
                }
            } else {
                for (o, &a) in dst.iter_mut().zip(&acc[lo..hi]) {
                    *o = (f64::from(a) / denom * scales[e]) as f32;
                }
            }
        }
    }
}
