//! The time left of everything queued, not only of the job running: a bit allocation's
//! sensitivities, its menu samples, then the compression of each tensor at the configuration it
//! chose (issue 23: Allocate's ETA covered only the configuration being compressed). Work is
//! counted in 4-bit preset blocks ([`crate::search::block_cost`]), so one measured search rate
//! prices blocks of every configuration.

use crate::core::config::Config;
use crate::search::block_cost;
use crate::study::allocate::{MENU, sample_blocks};
use std::time::Duration;

/// The search work of `blocks` blocks of `cfg`, in 4-bit preset blocks.
pub fn work(blocks: u64, cfg: Config) -> f64 {
    blocks as f64 * block_cost(cfg) as f64 / 100.0
}

/// What a bit allocation has to search, known when it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocationWork {
    /// Sample blocks its menu searches: the menu phase's progress total.
    pub menu_blocks: u64,
    /// Their work.
    pub menu_work: f64,
    /// The compression's work as predicted before the allocation has chosen: each tensor at the
    /// menu entry whose bits per weight are nearest the target (once it has chosen, the queue
    /// holds the real configurations).
    pub compress_work: f64,
}

impl AllocationWork {
    /// The work of allocating tensors of `sizes` weights to `target_bpw`.
    pub fn new(sizes: &[usize], target_bpw: f64) -> AllocationWork {
        let nearest = MENU
            .iter()
            .min_by(|a, b| {
                let d = |c: &Config| (c.bits_per_weight() - target_bpw).abs();
                d(a).total_cmp(&d(b))
            })
            .copied()
            .unwrap_or(Config::FOUR_BIT);
        let per_entry = |n: usize| MENU.iter().map(move |&c| (sample_blocks(n, &[c]), c));
        AllocationWork {
            menu_blocks: sizes.iter().map(|&n| sample_blocks(n, MENU)).sum(),
            menu_work: sizes
                .iter()
                .flat_map(|&n| per_entry(n))
                .map(|(b, c)| work(b, c))
                .sum(),
            compress_work: sizes
                .iter()
                .map(|&n| work(n.div_ceil(nearest.c) as u64, nearest))
                .sum(),
        }
    }

    /// Work left when the menu phase has searched `done` of its blocks (each tensor's sample
    /// runs the whole menu, so blocks done are the same share of its work), the compression
    /// included.
    pub fn left_in_menu(&self, done: u64) -> f64 {
        let share = 1.0 - done.min(self.menu_blocks) as f64 / self.menu_blocks.max(1) as f64;
        self.menu_work * share + self.compress_work
    }

    /// The menu phase's search rate in 4-bit blocks per second, from its rate in sample blocks.
    pub fn menu_rate(&self, blocks_per_s: f64) -> f64 {
        blocks_per_s * self.menu_work / self.menu_blocks.max(1) as f64
    }
}

/// The time for `phase` (a measuring phase's own estimate, not search) then `work` 4-bit blocks
/// at `rate` of them per second; `None` while there is work and no rate to price it.
pub fn time_left(phase: Duration, work: f64, rate: Option<f64>) -> Option<Duration> {
    if work <= 0.0 {
        return Some(phase);
    }
    let rate = rate.filter(|r| *r > 0.0)?;
    Some(phase + Duration::from_secs_f64(work / rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_configurations_weigh_more_than_their_blocks() {
        let fast = work(1000, Config::FOUR_BIT);
        let slow = work(1000, Config { c: 6, p: 4, k: 16 });
        assert_eq!(fast, 1000.0);
        assert!(slow > 30.0 * fast, "{slow}");
    }

    #[test]
    fn an_allocation_counts_its_menu_and_the_compression_after_it() {
        let sizes = [384 * 384, 384 * 1536];
        let a = AllocationWork::new(&sizes, 4.0);
        // The menu's slow entries make a sample block cost more than a 4-bit one.
        assert!(a.menu_work > a.menu_blocks as f64, "{a:?}");
        // At 4 bits the prediction is the 4-bit preset's blocks.
        let blocks: u64 = sizes.iter().map(|&n| n.div_ceil(8) as u64).sum();
        assert_eq!(a.compress_work, blocks as f64);
        assert_eq!(a.left_in_menu(0), a.menu_work + a.compress_work);
        assert_eq!(a.left_in_menu(a.menu_blocks), a.compress_work);
        let half = a.left_in_menu(a.menu_blocks / 2) - a.compress_work;
        assert!((half - a.menu_work / 2.0).abs() < a.menu_work * 1e-3);
        // Priced at the menu's own rate, the menu left takes what its blocks left take.
        let rate = a.menu_rate(500.0);
        let menu_secs = (a.left_in_menu(a.menu_blocks / 2) - a.compress_work) / rate;
        let blocks_secs = (a.menu_blocks - a.menu_blocks / 2) as f64 / 500.0;
        assert!((menu_secs - blocks_secs).abs() < 1e-6 * blocks_secs);
    }

    #[test]
    fn the_time_left_adds_the_phase_and_prices_work_only_with_a_rate() {
        let phase = Duration::from_secs(10);
        assert_eq!(time_left(phase, 0.0, None), Some(phase));
        assert_eq!(time_left(phase, 100.0, None), None);
        assert_eq!(time_left(phase, 100.0, Some(0.0)), None);
        assert_eq!(
            time_left(phase, 100.0, Some(10.0)),
            Some(Duration::from_secs(20))
        );
    }
}
