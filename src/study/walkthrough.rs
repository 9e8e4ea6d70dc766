//! The LFSR walkthrough the app teaches with: one register step spelled out bit by bit (taps,
//! feedback XOR, shift), the whole state cycle around a seed (the paper's Figure 3), and how
//! V(s) fills C×P from the states after the seed and normalises into U(s).
//!
//! Steps are worked out here on explicit bit vectors, the way they are shown, independently of
//! [`crate::core::lfsr::Lfsr`]; the tests check the two agree.

use crate::core::lfsr;

/// Register lengths small enough to draw every state of the cycle.
pub const SMALL_K: std::ops::RangeInclusive<u32> = 3..=8;

/// Why a walkthrough could not be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalkthroughError {
    /// K has no taps in Table 6.
    #[error("K={0} is not supported: Table 6 gives taps for K from 2 to 24")]
    K(u32),
    /// The seed is not a non-zero K-bit state.
    #[error("seed {seed} is not a state of a {k}-bit register: it must be from 1 to {max}")]
    Seed {
        /// Seed given.
        seed: u32,
        /// Register length.
        k: u32,
        /// Largest state, 2^K − 1.
        max: u32,
    },
    /// C or P is zero or the matrix is too large to show.
    #[error("a {c}×{p} V(s) cannot be shown: C and P must be from 1 to 64")]
    Shape {
        /// Rows.
        c: usize,
        /// Columns.
        p: usize,
    },
}

/// One register step, bit by bit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// State before the step.
    pub before: u32,
    /// Bits of `before`, index i = bit i (bit 0 least significant).
    pub bits: Vec<u8>,
    /// Tap positions with the bit found there.
    pub taps: Vec<(u32, u8)>,
    /// XOR of the tap bits: the bit shifted in at the top.
    pub feedback: u8,
    /// Bits after the step: `bits[1..]` moved down one place, `feedback` at bit K − 1.
    pub after_bits: Vec<u8>,
    /// State after the step.
    pub after: u32,
}

impl Step {
    /// Works out one step of a `k`-bit register with `taps` from `state`.
    pub fn of(k: u32, taps: &[u32], state: u32) -> Step {
        let bits: Vec<u8> = (0..k).map(|i| ((state >> i) & 1) as u8).collect();
        let taps: Vec<(u32, u8)> = taps.iter().map(|&t| (t, bits[t as usize])).collect();
        let feedback = taps.iter().fold(0, |x, &(_, b)| x ^ b);
        // Shift right: bit i takes bit i + 1, and the feedback enters at the top.
        let mut after_bits: Vec<u8> = bits[1..].to_vec();
        after_bits.push(feedback);
        let after = after_bits
            .iter()
            .enumerate()
            .fold(0u32, |s, (i, &b)| s | (u32::from(b) << i));
        Step {
            before: state,
            bits,
            taps,
            feedback,
            after_bits,
            after,
        }
    }

    /// The step as one line: `fb = b0 xor b1 = 0 xor 0 = 0; 100 -> 010 (4 -> 2)`, bits written most
    /// significant first.
    pub fn equation(&self) -> String {
        let names: Vec<String> = self.taps.iter().map(|(t, _)| format!("b{t}")).collect();
        let vals: Vec<String> = self.taps.iter().map(|(_, b)| b.to_string()).collect();
        format!(
            "fb = {} = {} = {}; {} -> {} ({} -> {})",
            names.join(" xor "),
            vals.join(" xor "),
            self.feedback,
            binary(&self.bits),
            binary(&self.after_bits),
            self.before,
            self.after
        )
    }
}

/// Bits (index i = bit i) written most significant first.
pub fn binary(bits: &[u8]) -> String {
    bits.iter().rev().map(|b| char::from(b'0' + b)).collect()
}

/// One entry of V(s) and U(s): where it sits and which state fills it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Row (0..C).
    pub row: usize,
    /// Column (0..P).
    pub col: usize,
    /// Steps after the seed that produced this state (1 for the first cell).
    pub step: usize,
    /// The register state: the entry of V(s).
    pub v: u32,
    /// The entry of U(s): `(v − 2^(K−1)) / (2^(K−1) − 1)`.
    pub u: f64,
}

/// A register, a seed and a C×P matrix to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walkthrough {
    k: u32,
    taps: &'static [u32],
    seed: u32,
    c: usize,
    p: usize,
}

impl Walkthrough {
    /// A walkthrough of a `k`-bit register from `seed`, filling a `c`×`p` V(s).
    pub fn new(k: u32, seed: u32, c: usize, p: usize) -> Result<Walkthrough, WalkthroughError> {
        let taps = lfsr::taps(k).ok_or(WalkthroughError::K(k))?;
        let max = (1u32 << k) - 1;
        if seed == 0 || seed > max {
            return Err(WalkthroughError::Seed { seed, k, max });
        }
        if !(1..=64).contains(&c) || !(1..=64).contains(&p) {
            return Err(WalkthroughError::Shape { c, p });
        }
        Ok(Walkthrough {
            k,
            taps,
            seed,
            c,
            p,
        })
    }

    /// The paper's Figure 3: K = 3, seed 4, a 4×2 V(s).
    pub fn figure3() -> Walkthrough {
        Walkthrough::new(3, 4, 4, 2).expect("Figure 3's setup is valid")
    }

    /// Register length K.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Tap positions (Table 6).
    pub fn taps(&self) -> &'static [u32] {
        self.taps
    }

    /// The seed.
    pub fn seed(&self) -> u32 {
        self.seed
    }

    /// Rows C and columns P of V(s).
    pub fn shape(&self) -> (usize, usize) {
        (self.c, self.p)
    }

    /// The step from `state`.
    pub fn step_from(&self, state: u32) -> Step {
        Step::of(self.k, self.taps, state)
    }

    /// The first `n` steps from the seed.
    pub fn steps(&self, n: usize) -> Vec<Step> {
        let mut state = self.seed;
        (0..n)
            .map(|_| {
                let s = self.step_from(state);
                state = s.after;
                s
            })
            .collect()
    }

    /// The state `n` steps after the seed (0: the seed itself).
    pub fn state_after(&self, n: usize) -> u32 {
        self.steps(n).last().map_or(self.seed, |s| s.after)
    }

    /// The whole cycle starting at the seed, until the register returns to it: 2^K − 1 states
    /// for every row of Table 6. Meant for small K (its length is 2^K − 1).
    pub fn cycle(&self) -> Vec<u32> {
        let mut out = vec![self.seed];
        let mut state = self.step_from(self.seed).after;
        while state != self.seed {
            out.push(state);
            state = self.step_from(state).after;
        }
        out
    }

    /// V(s) and U(s), cell by cell in fill order: row-major, from the states after the seed.
    pub fn cells(&self) -> Vec<Cell> {
        let half = 1i64 << (self.k - 1);
        let denom = (half - 1).max(1) as f64;
        self.steps(self.c * self.p)
            .iter()
            .enumerate()
            .map(|(i, s)| Cell {
                row: i / self.p,
                col: i % self.p,
                step: i + 1,
                v: s.after,
                u: (i64::from(s.after) - half) as f64 / denom,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::basis::Basis;
    use crate::core::lfsr::Lfsr;

    #[test]
    fn figure3_by_hand() {
        // K = 3, taps b0 and b1. From 4 = 100: fb = 0 xor 0 = 0 -> 010 = 2; 2: fb = 0 xor 1 = 1
        // -> 101 = 5; 5: 1 xor 0 = 1 -> 110 = 6; 6: 0 xor 1 -> 111 = 7; 7: 1 xor 1 = 0 -> 011 = 3;
        // 3: 0 -> 001 = 1; 1: 1 xor 0 = 1 -> 100 = 4, back at the seed.
        let w = Walkthrough::figure3();
        assert_eq!(w.cycle(), [4, 2, 5, 6, 7, 3, 1]);
        let v: Vec<u32> = w.cells().iter().map(|c| c.v).collect();
        assert_eq!(v, [2, 5, 6, 7, 3, 1, 4, 2]);
        // U = (V − 4) / 3.
        let u: Vec<f64> = w.cells().iter().map(|c| c.u).collect();
        let want = [-2.0, 1.0, 2.0, 3.0, -1.0, -3.0, 0.0, -2.0].map(|x| x / 3.0);
        assert_eq!(u, want);
        let last = w.cells()[7];
        assert_eq!((last.row, last.col, last.step), (3, 1, 8));
    }

    #[test]
    fn step_spells_out_the_xor_and_shift() {
        let s = Walkthrough::figure3().step_from(2);
        assert_eq!(s.bits, [0, 1, 0]);
        assert_eq!(s.taps, [(0, 0), (1, 1)]);
        assert_eq!(s.feedback, 1);
        assert_eq!(s.after_bits, [1, 0, 1]);
        assert_eq!(s.after, 5);
        assert_eq!(
            s.equation(),
            "fb = b0 xor b1 = 0 xor 1 = 1; 010 -> 101 (2 -> 5)"
        );
    }

    #[test]
    fn states_equal_the_engine_lfsr_for_small_k() {
        for k in SMALL_K {
            let mut seen = vec![false; 1 << k];
            for seed in 1..(1u32 << k) {
                let w = Walkthrough::new(k, seed, 4, 2).unwrap();
                let mut r = Lfsr::new(k, seed);
                let step = w.step_from(seed);
                assert_eq!(u32::from(step.feedback), r.feedback(), "K={k} seed={seed}");
                let ours: Vec<u32> = w.steps(20).iter().map(|s| s.after).collect();
                assert_eq!(ours, r.states(20), "K={k} seed={seed}");
                seen[step.after as usize] = true;
            }
            // Stepping is a permutation of the non-zero states.
            assert_eq!(seen.iter().filter(|&&b| b).count(), (1 << k) - 1);
            let cycle = Walkthrough::new(k, 1, 1, 1).unwrap().cycle();
            assert_eq!(cycle, lfsr::cycle(k), "K={k}");
        }
    }

    #[test]
    fn cells_equal_the_engine_basis() {
        for (k, c, p) in [(3, 4, 2), (5, 6, 3), (8, 8, 3), (16, 8, 3), (16, 12, 4)] {
            let basis = Basis::for_k(k);
            for seed in [1, 2, 3, 5, (1 << k) - 1, 0x2F & ((1 << k) - 1)] {
                let cells = Walkthrough::new(k, seed, c, p).unwrap().cells();
                let v: Vec<u32> = cells.iter().map(|c| c.v).collect();
                let u: Vec<f64> = cells.iter().map(|c| c.u).collect();
                assert_eq!(v, basis.v_matrix(seed, c, p), "K={k} seed={seed}");
                assert_eq!(u, basis.u_matrix(seed, c, p), "K={k} seed={seed}");
            }
        }
    }

    #[test]
    fn k16_golden_states() {
        let w = Walkthrough::new(16, 0xACE1, 8, 3).unwrap();
        assert_eq!(w.state_after(1), 0xD670);
        assert_eq!(w.state_after(8), 0x77AC);
        assert_eq!(w.state_after(0), 0xACE1);
    }

    #[test]
    fn bad_setups_are_errors() {
        assert_eq!(Walkthrough::new(1, 1, 4, 2), Err(WalkthroughError::K(1)));
        assert_eq!(
            Walkthrough::new(3, 8, 4, 2),
            Err(WalkthroughError::Seed {
                seed: 8,
                k: 3,
                max: 7
            })
        );
        assert!(Walkthrough::new(3, 0, 4, 2).is_err());
        assert_eq!(
            Walkthrough::new(3, 1, 0, 2),
            Err(WalkthroughError::Shape { c: 0, p: 2 })
        );
    }
}
