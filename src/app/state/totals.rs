//! The totals the views show: the whole model and groups of tensors.

use super::AppState;
use crate::app::document::TensorResult;
use crate::core::config::Config;

impl AppState {
    /// Totals over the model, overall and per compression configuration.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for e in &self.doc.tensors {
            let before = e.original_bytes();
            t.bytes_before += before;
            let Some(r) = &e.result else {
                t.bytes_after += before;
                continue;
            };
            let cfg = r.compressed.config;
            let bits = r.bits();
            t.bytes_after += bits.div_ceil(8);
            let i = match t.per_config.iter().position(|(c, _)| *c == cfg) {
                Some(i) => i,
                None => {
                    t.per_config.push((cfg, Group::default()));
                    t.per_config.len() - 1
                }
            };
            for g in [&mut t.all, &mut t.per_config[i].1] {
                g.add(e.len() as u64, bits, r);
            }
        }
        t
    }

    /// The figures of the compressed tensors among `tensors` (a tree group's, say).
    pub fn group(&self, tensors: impl IntoIterator<Item = usize>) -> Group {
        let mut g = Group::default();
        for i in tensors {
            let e = &self.doc.tensors[i];
            if let Some(r) = &e.result {
                g.add(e.len() as u64, r.bits(), r);
            }
        }
        g
    }
}

/// Whole-model figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Bytes of the stored originals.
    pub bytes_before: u64,
    /// Bytes with compressed tensors at their packed size and the rest as stored.
    pub bytes_after: u64,
    /// All compressed tensors.
    pub all: Group,
    /// Compressed tensors by configuration, in the order first met.
    pub per_config: Vec<(Config, Group)>,
}

/// Figures of a group of compressed tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    /// Tensors.
    pub tensors: usize,
    /// Tensors whose search was calibrated.
    pub calibrated: usize,
    /// Weights.
    pub weights: u64,
    /// Bits of their block records.
    pub bits: u64,
    /// Σ(w−ŵ)² over tensors whose original is known.
    pub sq_err: f64,
    /// Σw² over the same tensors.
    pub sq_norm: f64,
    /// Σ relMSE·weights over tensors known only by their stored figure, and their weights.
    pub stored: (f64, u64),
}

impl Group {
    fn add(&mut self, weights: u64, bits: u64, r: &TensorResult) {
        self.tensors += 1;
        self.calibrated += usize::from(r.calibrated());
        self.weights += weights;
        self.bits += bits;
        match (&r.stats, r.stored_relmse) {
            (Some(s), _) => {
                self.sq_err += s.sq_err;
                self.sq_norm += s.sq_norm;
            }
            (None, Some(m)) => {
                self.stored.0 += m * weights as f64;
                self.stored.1 += weights;
            }
            (None, None) => {}
        }
    }

    /// Bits per weight.
    pub fn bits_per_weight(&self) -> Option<f64> {
        (self.weights > 0).then(|| self.bits as f64 / self.weights as f64)
    }

    /// Relative MSE, and whether it is exact: Σ(w−ŵ)²/Σw² when every original is known,
    /// else the stored per-tensor figures averaged by weight count (with the measured ones).
    pub fn relmse(&self) -> Option<(f64, bool)> {
        let measured = (self.sq_norm > 0.0)
            .then(|| crate::search::compress::relmse(self.sq_err, self.sq_norm));
        let (sum, n) = self.stored;
        match (measured, n) {
            (m, 0) => m.map(|m| (m, true)),
            (None, n) => Some((sum / n as f64, false)),
            (Some(m), n) => {
                let known = self.weights.saturating_sub(n) as f64;
                Some(((m * known + sum) / (known + n as f64), false))
            }
        }
    }
}
