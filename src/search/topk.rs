//! The candidates a scan keeps: the best [`TOP_K`] scores of a block, and the bit masks of the
//! scores above a threshold that feed them.

use super::kernel::Kernel;
use super::{TILE, TOP_K};

/// The best `TOP_K` scores of one block, unordered.
#[derive(Clone, Debug)]
pub(super) struct TopK {
    pub(super) score: [f32; TOP_K],
    pub(super) idx: [u32; TOP_K],
    pub(super) len: usize,
    /// Smallest kept score once full (the admission threshold), else −∞.
    pub(super) thr: f32,
    min_pos: usize,
}

impl TopK {
    pub(super) fn new() -> Self {
        TopK {
            score: [0.0; TOP_K],
            idx: [0; TOP_K],
            len: 0,
            thr: f32::NEG_INFINITY,
            min_pos: 0,
        }
    }

    /// Fills an empty set with the best `TOP_K` of a whole tile (cheaper than pushing the many
    /// rising scores of the first tile one by one).
    pub(super) fn fill_from(&mut self, scores: &[f32; TILE], t0: usize, kernel: Kernel) {
        // At least TOP_K seeds (the group maxima) reach the smallest of TOP_K group maxima, so
        // the best TOP_K are among the seeds at or above it: usually few more than TOP_K.
        let floor = scores
            .chunks_exact(TILE / TOP_K)
            .map(|g| g.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
            .fold(f32::INFINITY, f32::min);
        for_each_above(scores, floor.next_down(), kernel, |m, s| {
            self.push(s, (t0 + m) as u32)
        });
    }

    pub(super) fn push(&mut self, score: f32, idx: u32) {
        if self.len < TOP_K {
            self.score[self.len] = score;
            self.idx[self.len] = idx;
            self.len += 1;
            if self.len == TOP_K {
                self.refresh();
            }
        } else if score > self.thr {
            self.score[self.min_pos] = score;
            self.idx[self.min_pos] = idx;
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        let (pos, min) = min_position(&self.score);
        self.min_pos = pos;
        self.thr = min;
    }
}

/// The smallest score and its first position. Branch-free (data-dependent branches here
/// mispredict on every insertion); scores are never NaN.
#[cfg(target_arch = "x86_64")]
fn min_position(score: &[f32; TOP_K]) -> (usize, f32) {
    use std::arch::x86_64::*;
    const _: () = assert!(
        TOP_K.is_multiple_of(4),
        "the SSE reduction takes whole vectors"
    );
    // SAFETY: SSE2 is part of the x86_64 baseline; the loads read the TOP_K scores.
    unsafe {
        let p = score.as_ptr();
        let v: [__m128; TOP_K / 4] = std::array::from_fn(|i| _mm_loadu_ps(p.add(4 * i)));
        let m = v[1..].iter().fold(v[0], |m, &x| _mm_min_ps(m, x));
        let m = _mm_min_ps(m, _mm_shuffle_ps::<0b01_00_11_10>(m, m));
        let m = _mm_min_ps(m, _mm_shuffle_ps::<0b10_11_00_01>(m, m));
        let mask = v.iter().enumerate().fold(0u32, |acc, (i, &x)| {
            acc | ((_mm_movemask_ps(_mm_cmpeq_ps(x, m)) as u32) << (4 * i))
        });
        (mask.trailing_zeros() as usize, _mm_cvtss_f32(m))
    }
}

/// The smallest score and its first position (portable version).
#[cfg(not(target_arch = "x86_64"))]
fn min_position(score: &[f32; TOP_K]) -> (usize, f32) {
    let min = score
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    (score.iter().position(|&s| s == min).unwrap_or(0), min)
}

/// Calls `f(m, score)` for each seed `m` of a tile whose score exceeds `thr`, in order.
pub(super) fn for_each_above(
    scores: &[f32; TILE],
    thr: f32,
    kernel: Kernel,
    mut f: impl FnMut(usize, f32),
) {
    for (w, mut bits) in above_words(scores, thr, kernel).into_iter().enumerate() {
        while bits != 0 {
            let m = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(m, scores[m]);
        }
    }
}

/// Per 64 seeds of a tile, the bit mask of the scores above `thr`. The kernels leave this to
/// the few tiles that have any such score: a mask per vector would cost them a slow `movmskps`.
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
