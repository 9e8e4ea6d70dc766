//! Seeded Gaussian data for benchmarks, reports and tests: the same numbers for the same
//! arguments on every run and machine (ChaCha8, a portable generator).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// `n` values drawn from N(0, `std_dev`²) by a generator seeded with `seed`.
///
/// Panics if `std_dev` is negative or not finite (a programming error: callers pass
/// constants).
pub fn gaussian(n: usize, std_dev: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, std_dev).expect("a finite, non-negative deviation");
    (0..n).map(|_| normal.sample(&mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_the_deviation_scales_them() {
        let a = gaussian(1000, 1.0, 3);
        assert_eq!(a, gaussian(1000, 1.0, 3));
        assert_ne!(a, gaussian(1000, 1.0, 4));
        let b = gaussian(1000, 0.5, 3);
        assert!(a.iter().zip(&b).all(|(x, y)| 0.5 * x == *y));
        let var = a.iter().map(|x| f64::from(x * x)).sum::<f64>() / a.len() as f64;
        assert!((var - 1.0).abs() < 0.15, "{var}");
    }
}
