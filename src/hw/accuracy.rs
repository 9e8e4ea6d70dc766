//! How far a datapath's real output is from the exact product `y = Wx` of the stored weights:
//! the weights `n · 2^(e_base + E) / 32767` the records hold, without any rounding.

use crate::core::quant::pow2;
use crate::hw::design::Design;
use crate::hw::model;

/// The relative error of one output vector: per output `|ŷ_r − y_r| / |y_r|`, and of the
/// whole vector `‖ŷ − y‖₂ / ‖y‖₂` (which outputs near zero do not inflate).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct OutputError {
    /// The largest per output.
    pub max_rel: f64,
    /// The mean per output.
    pub mean_rel: f64,
    /// The vector's.
    pub norm_rel: f64,
}

/// The exact `y = Wx` of a `rows × cols` matrix of records: the integer sums `Σ n·x·2^E` are
/// exact in 128 bits, so the only rounding is the final scaling by `2^e_base / 32767`.
pub fn exact_output(
    design: &Design,
    records: &[u64],
    (rows, cols): (usize, usize),
    x: &[i16],
    e_base: i32,
) -> Vec<f64> {
    let mut y = vec![0i128; rows];
    let weights = records.iter().flat_map(|&r| {
        let d = model::decode_record(design, r);
        d.n.into_iter().map(move |n| i128::from(n) << d.e_code)
    });
    for (idx, w) in weights.take(rows * cols).enumerate() {
        y[idx / cols] += w * i128::from(x[idx % cols]);
    }
    y.into_iter()
        .map(|v| v as f64 / model::DENOM * pow2(e_base))
        .collect()
}

/// The relative error of `got` against `exact`. An exact zero output counts as no error if the
/// datapath gives zero too, and as infinite otherwise.
pub fn output_error(got: &[f64], exact: &[f64]) -> OutputError {
    assert_eq!(got.len(), exact.len(), "outputs do not match");
    let rel: Vec<f64> = got
        .iter()
        .zip(exact)
        .map(
            |(&g, &e)| {
                if g == e { 0.0 } else { (g - e).abs() / e.abs() }
            },
        )
        .collect();
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|d| d * d).sum::<f64>().sqrt();
    let diff = norm(&mut got.iter().zip(exact).map(|(g, e)| g - e));
    OutputError {
        max_rel: rel.iter().copied().fold(0.0, f64::max),
        mean_rel: rel.iter().sum::<f64>() / rel.len().max(1) as f64,
        norm_rel: if diff == 0.0 {
            0.0
        } else {
            diff / norm(&mut exact.iter().copied())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::hw::design::FOUR_BIT;
    use crate::hw::design::{random_tensor, random_x};

    #[test]
    fn exact_output_is_the_fixed_point_datapath_scaled() {
        let (rows, cols) = (3, 256);
        let t = random_tensor(Config::FOUR_BIT, rows, cols, 8);
        let records = FOUR_BIT.records(&t, rows, cols).unwrap();
        let x = random_x(cols, 9);
        let exact = exact_output(&FOUR_BIT, &records, (rows, cols), &x, t.e_base);
        let y = model::seedlm_matvec(&FOUR_BIT, &records, rows, cols, &x);
        let fixed: Vec<f64> = y
            .iter()
            .map(|&v| model::seedlm_output_value(v, t.e_base))
            .collect();
        assert_eq!(output_error(&fixed, &exact), OutputError::default());
        // And it is Ŵx of the engine's reconstruction, up to its f32 rounding.
        let w = t.reconstruct();
        for r in 0..rows {
            let terms = (0..cols).map(|c| f64::from(w[r * cols + c]) * f64::from(x[c]));
            let mag: f64 = terms.clone().map(f64::abs).sum();
            assert!((terms.sum::<f64>() - exact[r]).abs() <= 1e-7 * mag);
        }
    }

    #[test]
    fn errors_are_relative_per_output() {
        let e = output_error(&[1.1, -2.0, 0.0], &[1.0, -2.2, 0.0]);
        assert!((e.max_rel - 0.1).abs() < 1e-12);
        assert!((e.mean_rel - (0.1 + 0.2 / 2.2) / 3.0).abs() < 1e-12);
        let norm = (0.1f64.powi(2) + 0.2f64.powi(2)).sqrt() / (1.0f64 + 2.2 * 2.2).sqrt();
        assert!((e.norm_rel - norm).abs() < 1e-12);
        assert_eq!(output_error(&[1e-9], &[0.0]).max_rel, f64::INFINITY);
    }
}
