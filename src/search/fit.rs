//! Fitting one block with a seed chosen by hand: the least-squares coefficients of U(s) and
//! their best quantization, exactly as the search evaluates a candidate seed.

use crate::core::basis::Basis;
use crate::core::config::{Config, MAX_P};
use crate::core::quant::{BlockFit, ExpRange, Rounding, best_quantization};
use crate::search::BlockResult;

/// A block fitted with one given seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedFit {
    /// The seed, its quantization and the squared error `‖w − ŵ‖²`.
    pub result: BlockResult,
    /// Unquantized least-squares coefficients t (P long).
    pub t: Vec<f64>,
    /// Unquantized least-squares residual `‖w − U t‖²` (a floor for the quantized error).
    pub residual: f64,
}

/// Fits the C weights `w` with `seed` (a register state in [1, 2^K − 1]) under `cfg` and the
/// exponent range `range`, rounding coefficients as the compressor does ([`Rounding::default`]). Returns `None` when `seed` is not a valid register state or `w` is
/// not C long.
pub fn fit_seed(cfg: Config, w: &[f32], seed: u32, range: ExpRange) -> Option<SeedFit> {
    let (c, p) = (cfg.c, cfg.p);
    let basis = Basis::for_k(cfg.k);
    if w.len() != c || !basis.is_seed(seed) {
        return None;
    }
    let w64: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
    let idx = basis.index_of(seed);
    let mut u = vec![0.0; c * p];
    basis.fill_u_at(idx, &mut u);
    let mut t = [0.0; MAX_P];
    crate::core::lstsq::solve(&u, &w64, c, p, &mut t[..p]);
    let residual = (0..c)
        .map(|i| {
            let fit: f64 = (0..p).map(|j| u[i * p + j] * t[j]).sum();
            (w64[i] - fit).powi(2)
        })
        .sum();
    let mut v = vec![0i64; c * p];
    basis.centred_at(idx, &mut v);
    let fit = BlockFit {
        w: &w64,
        sw: None,
        v: &v,
        p,
        t: &t[..p],
        denom: basis.denom(),
    };
    let (err, quant) = best_quantization(&fit, range, Rounding::default());
    Some(SeedFit {
        result: BlockResult { seed, quant, err },
        t: t[..p].to_vec(),
        residual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Searcher;

    fn block(i: usize) -> Vec<f32> {
        (0..8)
            .map(|j| (((i * 8 + j) * 7919 % 97) as f32 / 48.0) - 1.0)
            .collect()
    }

    #[test]
    fn the_searched_seed_refits_to_the_search_result() {
        let cfg = Config::FOUR_BIT;
        let s = Searcher::new(cfg);
        for i in 0..4 {
            let w = block(i);
            let r = s.search_block(&w, ExpRange::from_base(-8));
            let fit = fit_seed(cfg, &w, r.seed, ExpRange::from_base(-8)).unwrap();
            assert_eq!(fit.result.quant, r.quant);
            assert!((fit.result.err - r.err).abs() <= 1e-12 * r.err.max(1e-30));
            assert!(fit.residual <= fit.result.err + 1e-12);
        }
    }

    #[test]
    fn other_seeds_are_no_better_than_the_search() {
        let cfg = Config::FOUR_BIT;
        let w = block(7);
        let range = ExpRange::from_base(-8);
        let best = Searcher::new(cfg).search_block(&w, range);
        for seed in [1u32, 2, 0x1234, 0xACE1, 0xFFFF] {
            let fit = fit_seed(cfg, &w, seed, range).unwrap();
            assert!(fit.result.err >= best.err, "seed {seed:#x}");
        }
    }

    #[test]
    fn invalid_seed_or_length_is_rejected() {
        let cfg = Config::FOUR_BIT;
        assert!(fit_seed(cfg, &block(0), 0, ExpRange::from_base(-8)).is_none());
        assert!(fit_seed(cfg, &block(0), 1 << 16, ExpRange::from_base(-8)).is_none());
        assert!(fit_seed(cfg, &[0.5; 7], 1, ExpRange::from_base(-8)).is_none());
    }
}
