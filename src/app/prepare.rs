//! The Tensor tab's job: a tensor's heatmaps and histograms, from evenly spaced rows of a
//! large one.

use super::document::{Source, TensorResult};
use super::format::histogram;
use super::heatmap::{MAX_SIDE, Pool, Scale, colorize, pool, scale_limit};

/// Elements a view reads of one tensor at most (32 MB as f32); taller matrices are sampled by
/// evenly spaced rows.
pub const VIEW_ELEMS: usize = 8 << 20;

/// Histograms as (bin centre, count).
pub struct Hists {
    /// Original weights.
    pub weights: Vec<(f64, f64)>,
    /// Reconstructed weights.
    pub weights_recon: Vec<(f64, f64)>,
    /// log10 relative MSE per block.
    pub block_err: Vec<(f64, f64)>,
    /// Seeds chosen.
    pub seeds: Vec<(f64, f64)>,
    /// Exponents e.
    pub exps: Vec<(f64, f64)>,
    /// Coefficients q.
    pub qs: Vec<(f64, f64)>,
}

/// Heatmap images (original, reconstructed, error) and histograms of one tensor state.
pub struct Prepared {
    /// w, ŵ and |w − ŵ| (pooled), where known, with the scale each is coloured on.
    pub images: [Option<(egui::ColorImage, Scale)>; 3],
    /// The histograms.
    pub hists: Hists,
    /// Rows read of the matrix's rows, when it was too large to read whole.
    pub sampled: Option<(usize, usize)>,
}

fn image(data: &[f32], (rows, cols): (usize, usize), how: Pool) -> (egui::ColorImage, Scale) {
    let p = pool(data, rows, cols, MAX_SIDE, how);
    let scale = Scale {
        limit: scale_limit(&p.values),
        signed: how == Pool::Mean,
    };
    (colorize(&p, scale), scale)
}

/// The rows a view reads of a `rows × cols` matrix: all of them when they hold at most
/// [`VIEW_ELEMS`] elements, else that many elements' worth of evenly spaced rows.
pub fn view_rows(rows: usize, cols: usize) -> Vec<usize> {
    let n = (VIEW_ELEMS / cols.max(1)).clamp(1, rows.max(1));
    (0..n).map(|i| i * rows / n).collect()
}

/// Rows `rows` (ascending) of a matrix with `cols` columns, read through `read` (an element
/// range to its values) one run of consecutive rows at a time, runs in parallel.
fn read_rows(
    rows: &[usize],
    cols: usize,
    read: impl Fn(std::ops::Range<usize>) -> Result<Vec<f32>, String> + Sync,
) -> Result<Vec<f32>, String> {
    use rayon::prelude::*;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &r in rows {
        match runs.last_mut() {
            Some((_, end)) if *end == r => *end += 1,
            _ => runs.push((r, r + 1)),
        }
    }
    // Runs of at most 64 rows, so one long run is still read in parallel.
    let pieces: Vec<(usize, usize)> = runs
        .iter()
        .flat_map(|&(a, b)| (a..b).step_by(64).map(move |s| (s, (s + 64).min(b))))
        .collect();
    let parts: Vec<Vec<f32>> = pieces
        .par_iter()
        .map(|&(a, b)| read(a * cols..b * cols))
        .collect::<Result<_, _>>()?;
    Ok(parts.concat())
}

/// Computes the Tensor tab's images and histograms from the rows [`view_rows`] picks, read
/// from `src` and decoded from `res` (slow for large tensors: run it as a job).
pub fn prepare(
    src: Option<&Source>,
    res: Option<&TensorResult>,
    dims: (usize, usize),
) -> Result<Prepared, String> {
    let (rows, cols) = dims;
    let picked = view_rows(rows, cols);
    let shown = (picked.len(), cols);
    let orig = src
        .map(|s| read_rows(&picked, cols, |r| s.read_range(r)))
        .transpose()?;
    let recon = res
        .map(|r| {
            read_rows(&picked, cols, |e| {
                r.compressed.reconstruct_range(e).map_err(|e| e.to_string())
            })
        })
        .transpose()?;
    let (orig, recon) = (orig.as_deref(), recon.as_deref());
    let err: Option<Vec<f32>> = match (orig, recon) {
        (Some(o), Some(r)) => Some(o.iter().zip(r).map(|(a, b)| a - b).collect()),
        _ => None,
    };
    let lim = orig
        .or(recon)
        .map_or(1.0, |v| v.iter().fold(0.0f32, |m, x| m.max(x.abs())))
        .max(f32::MIN_POSITIVE) as f64;
    let weights = |v: Option<&[f32]>| {
        v.map_or_else(Vec::new, |v| {
            histogram(v.iter().map(|&x| f64::from(x)), -lim, lim, 81)
        })
    };
    let (mut block_err, mut seeds, mut exps, mut qs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Some(r) = res {
        // Decoded for the histograms only; dropped with them.
        let ct = &r.compressed.unpack().map_err(|e| e.to_string())?;
        let p = ct.config.p;
        if let Some(s) = &r.stats {
            block_err = histogram(
                (0..ct.num_blocks()).map(|b| s.block_relmse(b).max(1e-12).log10()),
                -5.0,
                1.0,
                60,
            );
        }
        let top = (1u64 << ct.config.k) as f64;
        seeds = histogram(ct.blocks.iter().map(|b| f64::from(b.seed)), 0.0, top, 64);
        exps = histogram(
            (0..ct.num_blocks()).map(|b| f64::from(ct.exponent(b))),
            f64::from(ct.e_base) - 0.5,
            f64::from(ct.e_base) + 15.5,
            16,
        );
        qs = histogram(
            ct.blocks
                .iter()
                .flat_map(|b| b.q[..p].iter().map(|&q| f64::from(q))),
            -8.5,
            7.5,
            16,
        );
    }
    Ok(Prepared {
        images: [
            orig.map(|o| image(o, shown, Pool::Mean)),
            recon.map(|r| image(r, shown, Pool::Mean)),
            err.map(|e| image(&e, shown, Pool::Rms)),
        ],
        hists: Hists {
            weights: weights(orig),
            weights_recon: weights(recon),
            block_err,
            seeds,
            exps,
            qs,
        },
        sampled: (picked.len() < rows).then_some((picked.len(), rows)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_read_small_matrices_whole_and_sample_tall_ones() {
        assert_eq!(view_rows(3, 5), vec![0, 1, 2]);
        let tall = view_rows(128_256, 4096);
        assert_eq!(tall.len(), VIEW_ELEMS / 4096);
        assert!(tall.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tall[0], 0);
        assert!(*tall.last().unwrap() >= 128_256 - 128_256 / tall.len() - 1);
        // A single row wider than the budget is still read.
        assert_eq!(view_rows(1, VIEW_ELEMS * 2), vec![0]);
    }

    #[test]
    fn sampled_rows_are_read_in_order() {
        let data: Vec<f32> = (0..200 * 3).map(|x| x as f32).collect();
        let rows: Vec<usize> = (0..200).filter(|r| r % 7 != 3).collect();
        let got = read_rows(&rows, 3, |r| Ok(data[r].to_vec())).unwrap();
        let want: Vec<f32> = rows
            .iter()
            .flat_map(|&r| data[r * 3..r * 3 + 3].to_vec())
            .collect();
        assert_eq!(got, want);
    }
}
