//! Small formatting and counting helpers shared by panels and the jobs that prepare their data,
//! kept apart so that neither imports the other.

use std::path::Path;
use std::time::Duration;

/// The last component of `path`, for messages.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// "about 4 h", "about 3 min", "about 12 s": a rough duration a reader takes in at a glance.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 90.0 {
        format!("about {:.0} s", s.max(1.0))
    } else if s < 90.0 * 60.0 {
        format!("about {:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("about {:.0} h", s / 3600.0)
    } else {
        format!("about {:.0} days", s / 86400.0)
    }
}

/// A histogram of `values` over `[lo, hi]` in `bins` bins: (bin centre, count) pairs.
pub fn histogram(
    values: impl Iterator<Item = f64>,
    lo: f64,
    hi: f64,
    bins: usize,
) -> Vec<(f64, f64)> {
    let bins = bins.max(1);
    let width = if hi > lo {
        (hi - lo) / bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0.0; bins];
    for v in values.filter(|v| v.is_finite()) {
        let b = ((v - lo) / width).floor();
        if b >= 0.0 {
            counts[(b as usize).min(bins - 1)] += 1.0;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + (i as f64 + 0.5) * width, c))
        .collect()
}

/// "1.2 MiB"-style size.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_finite_value_once() {
        let v = [0.0, 0.1, 0.5, 0.99, 1.0, -0.5, f64::NAN];
        let h = histogram(v.iter().copied(), 0.0, 1.0, 2);
        // -0.5 is below the range, NaN is dropped, 1.0 goes to the last bin.
        assert_eq!(h, vec![(0.25, 2.0), (0.75, 3.0)]);
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(Duration::from_secs(14259)), "about 4 h");
        assert_eq!(human_duration(Duration::from_secs(170)), "about 3 min");
        assert_eq!(human_duration(Duration::from_secs(12)), "about 12 s");
    }
}
