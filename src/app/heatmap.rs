//! Matrix heatmaps: pooling a large matrix down to a texture-sized grid and colouring it.

/// Largest heatmap side in texels; larger matrices are pooled.
pub const MAX_SIDE: usize = 512;

/// How pooled cells combine their elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Mean value (signed weights).
    Mean,
    /// Root mean square (errors).
    Rms,
}

/// A pooled matrix: `rows × cols` cells, each covering `fr × fc` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Pooled {
    /// Cell rows.
    pub rows: usize,
    /// Cell columns.
    pub cols: usize,
    /// Elements per cell vertically.
    pub fr: usize,
    /// Elements per cell horizontally.
    pub fc: usize,
    /// Cell values, row-major.
    pub values: Vec<f32>,
}

/// Pools the `rows × cols` row-major matrix `data` to at most `max_side` cells per side.
pub fn pool(data: &[f32], rows: usize, cols: usize, max_side: usize, how: Pool) -> Pooled {
    let fr = rows.div_ceil(max_side).max(1);
    let fc = cols.div_ceil(max_side).max(1);
    let (pr, pc) = (rows.div_ceil(fr), cols.div_ceil(fc));
    let mut sum = vec![0.0f64; pr * pc];
    let mut cnt = vec![0u32; pr * pc];
    for r in 0..rows {
        let row = &data[r * cols..((r + 1) * cols).min(data.len())];
        for (c, &x) in row.iter().enumerate() {
            let k = (r / fr) * pc + c / fc;
            sum[k] += match how {
                Pool::Mean => f64::from(x),
                Pool::Rms => f64::from(x) * f64::from(x),
            };
            cnt[k] += 1;
        }
    }
    let values = sum
        .iter()
        .zip(&cnt)
        .map(|(&s, &n)| {
            let m = if n > 0 { s / f64::from(n) } else { 0.0 };
            (match how {
                Pool::Mean => m,
                Pool::Rms => m.sqrt(),
            }) as f32
        })
        .collect();
    Pooled {
        rows: pr,
        cols: pc,
        fr,
        fc,
        values,
    }
}

/// The 99th percentile of |x|: the colour scale's limit, so a few outliers do not wash out
/// the picture.
pub fn scale_limit(values: &[f32]) -> f32 {
    let mut a: Vec<f32> = values
        .iter()
        .map(|x| x.abs())
        .filter(|x| x.is_finite())
        .collect();
    if a.is_empty() {
        return 1.0;
    }
    let k = ((a.len() - 1) as f64 * 0.99) as usize;
    let (_, v, _) = a.select_nth_unstable_by(k, f32::total_cmp);
    if *v > 0.0 { *v } else { 1.0 }
}

/// Colours a pooled matrix: signed values on a diverging map (blue < 0 < red) over
/// [−limit, limit], or non-negative values on a sequential map over [0, limit].
pub fn colorize(p: &Pooled, limit: f32, signed: bool) -> egui::ColorImage {
    let pixels = p
        .values
        .iter()
        .map(|&v| {
            let c = if signed {
                let t = (0.5 - 0.5 * v / limit).clamp(0.0, 1.0);
                colorous::RED_BLUE.eval_continuous(f64::from(t))
            } else {
                let t = (v / limit).clamp(0.0, 1.0);
                colorous::INFERNO.eval_continuous(f64::from(t))
            };
            egui::Color32::from_rgb(c.r, c.g, c.b)
        })
        .collect();
    egui::ColorImage::new([p.cols, p.rows], pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_matrices_are_not_pooled() {
        let d: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let p = pool(&d, 2, 3, 512, Pool::Mean);
        assert_eq!((p.rows, p.cols, p.fr, p.fc), (2, 3, 1, 1));
        assert_eq!(p.values, d);
    }

    #[test]
    fn pooling_averages_cells_and_keeps_ragged_edges() {
        // 3×3 pooled to at most 2 per side: cells of 2×2, the last row/column partial.
        let d = [1.0, 3.0, 5.0, 1.0, 3.0, 5.0, 7.0, 7.0, 9.0];
        let p = pool(&d, 3, 3, 2, Pool::Mean);
        assert_eq!((p.rows, p.cols, p.fr, p.fc), (2, 2, 2, 2));
        assert_eq!(p.values, vec![2.0, 5.0, 7.0, 9.0]);
        let r = pool(&[3.0, -4.0], 1, 2, 1, Pool::Rms);
        assert!((r.values[0] - 12.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn colour_scale_ignores_outliers() {
        let mut v = vec![1.0f32; 1000];
        v[0] = 1e6;
        assert_eq!(scale_limit(&v), 1.0);
        let img = colorize(&pool(&v, 10, 100, 512, Pool::Mean), 1.0, true);
        assert_eq!(img.size, [100, 10]);
    }
}
