//! Seed → states without stepping: one LFSR step is linear over GF(2), so the C·P states that
//! follow a K-bit seed are the XOR of one table row per seed byte (docs/DESIGN.md §5). For K = 16
//! and the 4-bit preset that is two rows of 24 states, 24 KB in all, which stay in L1.

use crate::core::lfsr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Per-byte tables of the `n` states that follow a K-bit seed.
#[derive(Debug)]
pub struct SeedTable {
    k: u32,
    n: usize,
    /// `[byte][value][n]`: the states that follow the register holding `value << 8·byte`.
    rows: Vec<u32>,
}

/// The `n` states that follow `state` (any K-bit value, 0 included: its successors are 0).
fn successors(k: u32, state: u32, n: usize) -> Vec<u32> {
    if state == 0 {
        return vec![0; n];
    }
    lfsr::Lfsr::new(k, state).states(n)
}

impl SeedTable {
    /// Tables for K-bit seeds (2..=24) and `n` states per seed, shared between all tensors of
    /// the same K and n.
    pub fn shared(k: u32, n: usize) -> Arc<SeedTable> {
        type Tables = HashMap<(u32, usize), Arc<SeedTable>>;
        static CACHE: OnceLock<Mutex<Tables>> = OnceLock::new();
        let mut map = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry((k, n))
            .or_insert_with(|| Arc::new(SeedTable::new(k, n)))
            .clone()
    }

    fn new(k: u32, n: usize) -> Self {
        let mask = (1u32 << k) - 1;
        let bytes = k.div_ceil(8) as usize;
        let mut rows = Vec::with_capacity(bytes * 256 * n);
        for byte in 0..bytes {
            for value in 0..256u32 {
                rows.extend(successors(k, (value << (8 * byte)) & mask, n));
            }
        }
        SeedTable { k, n, rows }
    }

    /// Register length K.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// States per seed.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the table holds no states (n = 0).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The row of byte `byte` holding `value`.
    pub fn row(&self, byte: usize, value: u8) -> &[u32] {
        &self.rows[(byte * 256 + usize::from(value)) * self.n..][..self.n]
    }

    /// Writes the `n` states that follow `seed` into `out`.
    pub fn states(&self, seed: u32, out: &mut [u32]) {
        out.copy_from_slice(self.row(0, seed as u8));
        for byte in 1..self.k.div_ceil(8) as usize {
            for (o, &r) in out
                .iter_mut()
                .zip(self.row(byte, (seed >> (8 * byte)) as u8))
            {
                *o ^= r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The XOR of per-byte rows equals stepping the register, for every K and random seeds.
    #[test]
    fn table_states_equal_stepping_for_every_k() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for k in lfsr::MIN_K..=lfsr::MAX_K {
            let n = 1 + (k as usize * 7) % 40;
            let table = SeedTable::shared(k, n);
            let mut out = vec![0; n];
            for _ in 0..50 {
                let seed = rng.random_range(1..1u32 << k);
                table.states(seed, &mut out);
                assert_eq!(out, lfsr::Lfsr::new(k, seed).states(n), "K={k} seed={seed}");
            }
            // The largest and smallest seeds too.
            for seed in [1, (1u32 << k) - 1] {
                table.states(seed, &mut out);
                assert_eq!(out, lfsr::Lfsr::new(k, seed).states(n), "K={k} seed={seed}");
            }
        }
    }
}
