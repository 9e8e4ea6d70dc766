//! Fibonacci LFSR of the paper's Algorithm 1, with the taps of its Table 6.
//!
//! One step: `fb = XOR of the state's bits at the tap positions` (bit 0 = least significant),
//! then `state = (state >> 1) | (fb << (K - 1))` (docs/DESIGN.md §1).

/// Smallest register length with taps in Table 6.
pub const MIN_K: u32 = 2;
/// Largest register length with taps in Table 6.
pub const MAX_K: u32 = 24;

/// Tap positions of Table 6, indexed by `K - MIN_K`.
const TAPS: [&[u32]; (MAX_K - MIN_K + 1) as usize] = [
    &[0, 1],
    &[0, 1],
    &[0, 1],
    &[0, 2],
    &[0, 1],
    &[0, 1],
    &[0, 2, 3, 4],
    &[0, 4],
    &[0, 3],
    &[0, 2],
    &[0, 1, 2, 8],
    &[0, 1, 2, 5],
    &[0, 1, 2, 12],
    &[0, 1],
    &[0, 1, 3, 12],
    &[0, 3],
    &[0, 7],
    &[0, 1, 2, 5],
    &[0, 3],
    &[0, 2],
    &[0, 1],
    &[0, 5],
    &[0, 1, 2, 7],
];

/// Tap positions for a K-bit register (Table 6), or `None` outside 2..=24.
pub fn taps(k: u32) -> Option<&'static [u32]> {
    (MIN_K..=MAX_K)
        .contains(&k)
        .then(|| TAPS[(k - MIN_K) as usize])
}

/// A K-bit register with its tap mask, stepping exactly as Algorithm 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lfsr {
    k: u32,
    tap_mask: u32,
    state: u32,
}

impl Lfsr {
    /// A register of `k` bits holding `state`. Panics if `k` has no taps or `state` is not a
    /// valid non-zero k-bit state; callers validate user input through [`crate::core::config`].
    pub fn new(k: u32, state: u32) -> Self {
        let taps = taps(k).expect("K outside Table 6");
        assert!(
            state != 0 && state < (1u32 << k),
            "state must be in [1, 2^K - 1]"
        );
        let tap_mask = taps.iter().fold(0, |m, &t| m | (1 << t));
        Self { k, tap_mask, state }
    }

    /// Register length K.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Current state.
    pub fn state(&self) -> u32 {
        self.state
    }

    /// Bit mask of the tap positions.
    pub fn tap_mask(&self) -> u32 {
        self.tap_mask
    }

    /// Feedback bit the next step shifts in.
    pub fn feedback(&self) -> u32 {
        (self.state & self.tap_mask).count_ones() & 1
    }

    /// Advances one step and returns the new state.
    pub fn step(&mut self) -> u32 {
        let fb = self.feedback();
        self.state = (self.state >> 1) | (fb << (self.k - 1));
        self.state
    }

    /// The next `n` states (not including the current one).
    pub fn states(&mut self, n: usize) -> Vec<u32> {
        (0..n).map(|_| self.step()).collect()
    }
}

/// The whole cycle of a K-bit register starting at state 1: `cycle[0] = 1`, `cycle[i+1] = step(cycle[i])`.
/// Its length is the period, 2^K - 1 for every row of Table 6.
pub fn cycle(k: u32) -> Vec<u32> {
    let mut r = Lfsr::new(k, 1);
    let mut out = Vec::with_capacity((1usize << k) - 1);
    out.push(1);
    loop {
        let s = r.step();
        if s == 1 {
            break;
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_k16_from_one() {
        let mut r = Lfsr::new(16, 0x0001);
        assert_eq!(
            r.states(8),
            [
                0x8000, 0x4000, 0x2000, 0x1000, 0x8800, 0x4400, 0x2200, 0x1100
            ]
        );
    }

    #[test]
    fn golden_k16_from_ace1() {
        let mut r = Lfsr::new(16, 0xACE1);
        assert_eq!(
            r.states(8),
            [
                0xD670, 0xEB38, 0xF59C, 0x7ACE, 0xBD67, 0xDEB3, 0xEF59, 0x77AC
            ]
        );
    }

    #[test]
    fn every_table6_row_is_maximal_up_to_20() {
        for k in MIN_K..=20 {
            let c = cycle(k);
            assert_eq!(c.len(), (1usize << k) - 1, "K={k} is not maximal");
            let mut seen = vec![false; 1 << k];
            for &s in &c {
                assert!(!seen[s as usize], "K={k} repeats state {s}");
                seen[s as usize] = true;
            }
        }
    }

    #[test]
    fn taps_outside_table_are_none() {
        assert!(taps(1).is_none());
        assert!(taps(25).is_none());
        assert_eq!(taps(16), Some(&[0, 1, 3, 12][..]));
    }
}
