//! The candidates a scan keeps: the best k (at most [`TOP_K`]) scores of a block, and the bit
//! masks of the scores above a threshold that feed them.

use super::kernel::Kernel;
use super::{TILE, TOP_K};

/// Room of a [`TopK`]: candidates pile up to this many before the worst are dropped.
const CAP: usize = 2 * TOP_K;

/// The best `k` scores of one block, unordered, kept lazily: admitted scores are appended until
/// [`CAP`] are held, then the best `k` of them are kept and the threshold rises to the worst of
/// those. Admission is then a store rather than a search for the new minimum, which sat on the
/// chain from one admission to the next (1.04× the 4-bit search's speed); the threshold lags
/// the exact one a little, which admits a few more scores.
#[derive(Clone, Debug)]
pub(super) struct TopK {
    /// How many to keep, at most `TOP_K`.
    pub(super) k: usize,
    pub(super) score: [f32; CAP],
    pub(super) idx: [u32; CAP],
    pub(super) len: usize,
    /// Every seed not held scores at most this: the admission threshold (−∞ until some were
    /// dropped). After [`TopK::finish`], the smallest kept score once `k` are held.
    pub(super) thr: f32,
}

impl TopK {
    pub(super) fn new(k: usize) -> Self {
        assert!((1..=TOP_K).contains(&k));
        TopK {
            k,
            score: [0.0; CAP],
            idx: [0; CAP],
            len: 0,
            thr: f32::NEG_INFINITY,
        }
    }

    /// Fills an empty set from a whole tile: admits only scores that can be among its best `k`
    /// (cheaper than admitting the whole first tile), then keeps its best `k`, so the scan of
    /// the next tiles starts from the exact threshold of the first.
    pub(super) fn fill_from(&mut self, scores: &[f32; TILE], t0: usize, kernel: Kernel) {
        // At least k seeds (the maxima of k disjoint groups, here every k-th seed from each of
        // the first k, so the maxima are a vector max) reach the smallest of those maxima, so
        // the best k are among the seeds at or above it (a remainder past the groups too).
        let mut maxima = [f32::NEG_INFINITY; TOP_K];
        let maxima = &mut maxima[..self.k];
        for group in scores.chunks_exact(self.k) {
            for (m, &s) in maxima.iter_mut().zip(group) {
                *m = if s > *m { s } else { *m };
            }
        }
        let floor = maxima
            .iter()
            .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
        for_each_above(scores, floor.next_down(), kernel, |m, s| {
            self.push(s, (t0 + m) as u32)
        });
        self.finish();
    }

    /// Admits a score (the caller has checked that it exceeds `thr`).
    #[inline]
    pub(super) fn push(&mut self, score: f32, idx: u32) {
        self.score[self.len] = score;
        self.idx[self.len] = idx;
        self.len += 1;
        if self.len == CAP {
            self.keep_best();
        }
    }

    /// Keeps the best `k` held (ties to the lowest seed index) and raises `thr` to the worst of
    /// them; call once the scan is done, before reading the set.
    pub(super) fn finish(&mut self) {
        if self.len >= self.k {
            self.keep_best();
        }
    }

    fn keep_best(&mut self) {
        // One integer per candidate, ordered as (score, −index): a select on plain integers.
        let mut keys = [0u64; CAP];
        let keys = &mut keys[..self.len];
        for (k, (&s, &i)) in keys.iter_mut().zip(self.score.iter().zip(&self.idx)) {
            *k = (u64::from(ordered(s)) << 32) | u64::from(!i);
        }
        let drop = keys.len() - self.k;
        keys.select_nth_unstable(drop);
        for (k, (s, i)) in keys[drop..]
            .iter()
            .zip(self.score.iter_mut().zip(self.idx.iter_mut()))
        {
            *s = from_ordered((k >> 32) as u32);
            *i = !(*k as u32);
        }
        self.len = self.k;
        self.thr = from_ordered((keys[drop] >> 32) as u32);
    }
}

/// The bits of `x` as an integer in the order of the floats (scores are never NaN).
fn ordered(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 { !b } else { b | 1 << 31 }
}

/// The inverse of [`ordered`].
fn from_ordered(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k })
}

/// Calls `f(m, score)` for each seed `m` of a tile whose score exceeds `thr`, in order.
pub(super) fn for_each_above(
    scores: &[f32; TILE],
    thr: f32,
    kernel: Kernel,
    f: impl FnMut(usize, f32),
) {
    for_each_set(scores, &above_words(scores, thr, kernel), f);
}

/// Calls `f(m, score)` for each seed `m` of a tile whose bit is set in `masks` (as
/// [`above_words`] makes them), in order.
pub(super) fn for_each_set(
    scores: &[f32; TILE],
    masks: &[u64; TILE / 64],
    mut f: impl FnMut(usize, f32),
) {
    for (w, &mask) in masks.iter().enumerate() {
        let mut bits = mask;
        while bits != 0 {
            let m = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(m, scores[m]);
        }
    }
}

/// Per 64 seeds of a tile, the bit mask of the scores above `thr`. The AVX2 and portable kernels
/// leave this to the few tiles that have any such score (a mask per vector would cost them a
/// slow `movmskps`); the AVX-512 kernel makes the masks of its threshold as it scores.
pub(super) fn above_words(scores: &[f32; TILE], thr: f32, kernel: Kernel) -> [u64; TILE / 64] {
    // SAFETY: a searcher runs a kernel only where the CPU has its features.
    #[cfg(target_arch = "x86_64")]
    match kernel {
        Kernel::Avx512 => return unsafe { super::kernel::avx512::above_words(scores, thr) },
        Kernel::Avx2 => return unsafe { super::kernel::avx2::above_words(scores, thr) },
        Kernel::Portable => {}
    }
    above_words_portable(scores, thr)
}

/// [`above_words`] without SIMD: the reference the vector versions are tested against.
pub(super) fn above_words_portable(scores: &[f32; TILE], thr: f32) -> [u64; TILE / 64] {
    std::array::from_fn(|w| {
        scores[w * 64..(w + 1) * 64]
            .iter()
            .enumerate()
            .fold(0, |acc, (l, &s)| acc | (u64::from(s > thr) << l))
    })
}
