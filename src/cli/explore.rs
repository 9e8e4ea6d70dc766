//! `seedlm explore`: the paper's design-space exploration (§3.4) on N(0, 1) blocks.

use crate::core::control::{Control, Progress};
use crate::study::explore::{self, Options, Point};
use clap::Args;
use std::process::ExitCode;

/// Arguments of `seedlm explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Bit budget M per weight: every (C, P, K) with M·C = K + 4 + 4P is measured.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub bits: u32,
    /// N(0, 1) blocks measured per configuration.
    #[arg(long, default_value_t = explore::DEFAULT_BLOCKS)]
    pub blocks: usize,
    /// Largest K of the grid, at most 20 (the search costs 2^K seeds a block: each extra bit
    /// doubles the time). The paper's choice is measured even if the cap leaves it out.
    #[arg(long, default_value_t = explore::DEFAULT_MAX_K,
          value_parser = clap::value_parser!(u32).range(2..=explore::MAX_K as i64))]
    pub max_k: u32,
    /// Print one JSON array of objects (C, P, K, bits, block_bits, relmse, snr_db, paper).
    #[arg(long)]
    pub json: bool,
}

/// Runs the grid and prints it.
pub fn run(args: ExploreArgs) -> anyhow::Result<ExitCode> {
    let opts = Options {
        bits: args.bits,
        max_k: args.max_k,
        blocks: args.blocks,
    };
    let progress = Progress::default();
    let cancel = super::watch::cancel_on_ctrl_c();
    let points = super::watch::watch("blocks", &progress.done, &progress.total, |_| {
        explore::explore(&opts, Control::new(&progress, &cancel))
    })?;
    let text = if args.json {
        serde_json::to_string_pretty(&to_json(&points))? + "\n"
    } else {
        table(&opts, &points)
    };
    super::stdout::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The grid as JSON objects.
fn to_json(points: &[Point]) -> serde_json::Value {
    points
        .iter()
        .map(|p| {
            serde_json::json!({
                "C": p.config.c,
                "P": p.config.p,
                "K": p.config.k,
                "bits": p.config.bits_per_weight(),
                "block_bits": p.config.block_bits(),
                "relmse": p.relmse,
                "snr_db": crate::search::compress::snr_db(p.relmse),
                "paper": p.paper,
            })
        })
        .collect()
}

/// The grid as a text table, best point and the paper's choice marked.
fn table(opts: &Options, points: &[Point]) -> String {
    let best = points
        .iter()
        .map(|p| p.relmse)
        .fold(f64::INFINITY, f64::min);
    let paper = if explore::paper_choice(opts.bits).is_some() {
        " (plus the paper's choice)"
    } else {
        ""
    };
    let mut s = format!(
        "M = {} bits/weight, K ≤ {}{paper}, {} N(0,1) blocks per point\n",
        opts.bits, opts.max_k, opts.blocks
    );
    s += &format!(
        "{:>3} {:>2} {:>3} {:>10} {:>10} {:>8}\n",
        "C", "P", "K", "bits/block", "relMSE", "SNR dB"
    );
    for p in points {
        let mut mark = String::new();
        if p.relmse == best {
            mark += "  best";
        }
        if p.paper {
            mark += "  paper (Table 1)";
        }
        s += &format!(
            "{:>3} {:>2} {:>3} {:>10} {:>10.5} {:>8.2}{mark}\n",
            p.config.c,
            p.config.p,
            p.config.k,
            p.config.block_bits(),
            p.relmse,
            crate::search::compress::snr_db(p.relmse)
        );
    }
    s += &format!(
        "Gaussian rate-distortion bound 2^(-2M) = {:.5}\n",
        explore::gaussian_bound(f64::from(opts.bits))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;

    #[test]
    fn json_has_the_documented_keys() {
        let pts = [Point {
            config: Config::FOUR_BIT,
            relmse: 0.0144,
            paper: true,
        }];
        let v = to_json(&pts);
        let o = &v.as_array().unwrap()[0];
        assert_eq!(o["C"], 8);
        assert_eq!(o["P"], 3);
        assert_eq!(o["K"], 16);
        assert_eq!(o["bits"], 4.0);
        assert_eq!(o["relmse"], 0.0144);
        assert_eq!(o["paper"], true);
    }

    #[test]
    fn table_marks_best_and_paper() {
        let pts = [
            Point {
                config: Config::new(4, 1, 8).unwrap(),
                relmse: 0.05,
                paper: false,
            },
            Point {
                config: Config::FOUR_BIT,
                relmse: 0.0144,
                paper: true,
            },
        ];
        let t = table(&Options::new(4), &pts);
        let lines: Vec<_> = t.lines().collect();
        assert!(!lines[2].contains("best") && !lines[2].contains("paper"));
        assert!(lines[3].contains("best") && lines[3].contains("paper"));
        assert!(t.contains("0.00391"));
    }
}
