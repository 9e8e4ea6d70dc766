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

/// How a heatmap's values map to colours: signed values on a diverging map (blue < 0 < red)
/// over [−limit, limit], non-negative ones on a sequential map over [0, limit]; values beyond
/// take the end colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    /// The value of the scale's end colour(s).
    pub limit: f32,
    /// Whether the values are signed.
    pub signed: bool,
}

impl Scale {
    /// The colour of `v`.
    pub fn color(&self, v: f32) -> egui::Color32 {
        let c = if self.signed {
            let t = (0.5 - 0.5 * v / self.limit).clamp(0.0, 1.0);
            colorous::RED_BLUE.eval_continuous(f64::from(t))
        } else {
            let t = (v / self.limit).clamp(0.0, 1.0);
            colorous::INFERNO.eval_continuous(f64::from(t))
        };
        egui::Color32::from_rgb(c.r, c.g, c.b)
    }

    /// The values the scale runs over, lowest first.
    pub fn range(&self) -> [f32; 2] {
        [if self.signed { -self.limit } else { 0.0 }, self.limit]
    }

    /// The values a legend bar labels (ends and middle), as text: "-0.0412", "0", "0.0412".
    pub fn ticks(&self) -> [(f32, String); 3] {
        let [lo, hi] = self.range();
        [lo, (lo + hi) / 2.0, hi].map(|v| (v, value_text(v)))
    }
}

/// A scale value in a few characters: 4 significant digits, in exponent form when tiny or huge.
pub fn value_text(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.3e}")
    }
}

/// Colours a pooled matrix on `scale`.
pub fn colorize(p: &Pooled, scale: Scale) -> egui::ColorImage {
    let pixels = p.values.iter().map(|&v| scale.color(v)).collect();
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
        let scale = Scale {
            limit: 1.0,
            signed: true,
        };
        let img = colorize(&pool(&v, 10, 100, 512, Pool::Mean), scale);
        assert_eq!(img.size, [100, 10]);
    }

    #[test]
    fn legend_ticks_read_the_scale_s_ends() {
        let signed = Scale {
            limit: 0.04123,
            signed: true,
        };
        let t: Vec<String> = signed.ticks().into_iter().map(|(_, s)| s).collect();
        assert_eq!(t, ["-0.04123", "0", "0.04123"]);
        let err = Scale {
            limit: 2.5e-5,
            signed: false,
        };
        let t: Vec<String> = err.ticks().into_iter().map(|(_, s)| s).collect();
        assert_eq!(t, ["0", "1.250e-5", "2.500e-5"]);
        // The bar's ends are the image's end colours.
        assert_eq!(err.color(err.limit), err.color(1.0));
        assert_ne!(signed.color(-signed.limit), signed.color(signed.limit));
    }
}
