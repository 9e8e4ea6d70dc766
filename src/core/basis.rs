//! Seed → basis: the C×P matrix U(s) built from the LFSR states that follow seed s.
//!
//! The stored seed is the register state s ∈ [1, 2^K − 1]. V(s) is filled row-major with the
//! C·P states that follow s, and `U(s) = (V(s) − 2^(K−1)) / (2^(K−1) − 1)` (docs/DESIGN.md §1).

use crate::core::config::{MAX_C, MAX_P};
use crate::core::lfsr;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

/// The whole LFSR cycle of one register length, with the map from state to position.
/// Built once per K and shared ([`Basis::for_k`]).
#[derive(Debug)]
pub struct Basis {
    k: u32,
    /// Length of the cycle, 2^K − 1.
    n: usize,
    /// `states[i+1] = step(states[i])`, starting at state 1, extended cyclically past the end
    /// of the cycle by MAX_C·MAX_P states so that every basis is one run ([`Basis::span`]).
    states: Vec<u32>,
    /// Position of each state in `states` (index 0 is unused: state 0 is not on the cycle).
    index_of: Vec<u32>,
}

impl Basis {
    /// The shared basis for register length `k` (2..=24), built on first use.
    pub fn for_k(k: u32) -> Arc<Basis> {
        static CACHE: OnceLock<Mutex<HashMap<u32, Arc<Basis>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(k)
            .or_insert_with(|| Arc::new(Basis::build(k)))
            .clone()
    }

    fn build(k: u32) -> Basis {
        let mut states = lfsr::cycle(k);
        let n = states.len();
        let mut index_of = vec![0u32; 1 << k];
        for (i, &s) in states.iter().enumerate() {
            index_of[s as usize] = i as u32;
        }
        // Exactly: a doubled capacity would hold 64 MB unused at K = 24.
        states.reserve_exact(MAX_C * MAX_P);
        for i in 0..MAX_C * MAX_P {
            states.push(states[i % n]);
        }
        Basis {
            k,
            n,
            states,
            index_of,
        }
    }

    /// Register length K.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Number of seeds, 2^K − 1.
    pub fn period(&self) -> usize {
        self.n
    }

    /// The register state at cycle position `idx`.
    pub fn state_at(&self, idx: usize) -> u32 {
        self.states[idx % self.n]
    }

    /// The cycle position of register state `seed` (which must be in [1, 2^K − 1]).
    pub fn index_of(&self, seed: u32) -> usize {
        self.index_of[seed as usize] as usize
    }

    /// Whether `seed` is a valid stored seed for this K.
    pub fn is_seed(&self, seed: u32) -> bool {
        seed != 0 && (seed as usize) < self.index_of.len()
    }

    /// Half the state range, 2^(K−1): the offset that centres states on zero.
    pub fn half(&self) -> i64 {
        1i64 << (self.k - 1)
    }

    /// The normaliser 2^(K−1) − 1 that maps centred states into [−1, 1].
    pub fn denom(&self) -> f64 {
        (self.half() - 1).max(1) as f64
    }

    /// Normalised value of one state: `(state − 2^(K−1)) / (2^(K−1) − 1)`.
    pub fn normalize(&self, state: u32) -> f64 {
        (state as i64 - self.half()) as f64 / self.denom()
    }

    /// The normalised states ([`Self::normalize`]) at cycle positions 0 … len − 1, wrapping
    /// around the cycle: [`Self::state_at`] divides by the period once per state.
    pub fn normalized_cycle(&self, len: usize) -> Vec<f64> {
        let cycle = &self.states[..self.n];
        cycle
            .iter()
            .cycle()
            .take(len)
            .map(|&s| self.normalize(s))
            .collect()
    }

    /// V(s) row-major: the C·P (at most MAX_C·MAX_P) states that follow `seed`.
    pub fn v_matrix(&self, seed: u32, c: usize, p: usize) -> Vec<u32> {
        self.states[Self::span(self.index_of(seed), c * p)].to_vec()
    }

    /// U(s) row-major (C×P), entries in [−1, 1].
    pub fn u_matrix(&self, seed: u32, c: usize, p: usize) -> Vec<f64> {
        let mut u = vec![0.0; c * p];
        self.fill_u_at(self.index_of(seed), &mut u);
        u
    }

    /// Fills `out` (C·P long, row-major) with U of the seed at cycle position `idx`.
    pub fn fill_u_at(&self, idx: usize, out: &mut [f64]) {
        let states = &self.states[Self::span(idx, out.len())];
        for (o, &s) in out.iter_mut().zip(states) {
            *o = self.normalize(s);
        }
    }

    /// Centred integer V(s) − 2^(K−1), row-major: the decoder's exact integer basis.
    pub fn centred_at(&self, idx: usize, out: &mut [i64]) {
        let half = self.half();
        let states = &self.states[Self::span(idx, out.len())];
        for (o, &s) in out.iter_mut().zip(states) {
            *o = s as i64 - half;
        }
    }

    /// Where the `len` (at most MAX_C·MAX_P) row-major entries of the basis of the seed at cycle
    /// position `idx` lie in a per-position sequence that runs on cyclically past the end of the
    /// cycle: the positions that follow `idx`. The one place that lays a basis on the cycle,
    /// for these states and for the scan tables' normalised ones.
    pub fn span(idx: usize, len: usize) -> Range<usize> {
        idx + 1..idx + 1 + len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_figure3_basis() {
        let b = Basis::for_k(3);
        assert_eq!(b.v_matrix(4, 4, 2), vec![2, 5, 6, 7, 3, 1, 4, 2]);
    }

    #[test]
    fn u_is_normalised_v() {
        let b = Basis::for_k(16);
        let v = b.v_matrix(0xACE1, 8, 3);
        let u = b.u_matrix(0xACE1, 8, 3);
        assert_eq!(v[0], 0xD670);
        for (vi, ui) in v.iter().zip(&u) {
            assert_eq!(*ui, (*vi as f64 - 32768.0) / 32767.0);
            assert!((-1.0..=1.0).contains(ui));
        }
    }

    #[test]
    fn every_basis_is_the_states_stepped_from_its_seed() {
        // The longest basis runs round these short cycles many times.
        let len = MAX_C * MAX_P;
        for k in [2, 5] {
            let b = Basis::for_k(k);
            for seed in 1..(1u32 << k) {
                let want = lfsr::Lfsr::new(k, seed).states(len);
                assert_eq!(b.v_matrix(seed, MAX_C, MAX_P), want, "K={k} seed={seed}");
                let (mut u, mut v) = (vec![0.0; len], vec![0; len]);
                b.fill_u_at(b.index_of(seed), &mut u);
                b.centred_at(b.index_of(seed), &mut v);
                for ((&s, &u), &v) in want.iter().zip(&u).zip(&v) {
                    assert_eq!(u, b.normalize(s));
                    assert_eq!(v, i64::from(s) - b.half());
                }
            }
        }
    }

    #[test]
    fn index_and_state_are_inverse() {
        let b = Basis::for_k(10);
        for s in 1..1024u32 {
            assert_eq!(b.state_at(b.index_of(s)), s);
        }
    }
}
