//! A little-endian bit stream: stream bit j is bit (j mod 8) of byte j / 8.

/// Appends fields of up to 64 bits, least significant bit first.
#[derive(Debug, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    len: u64,
}

impl BitWriter {
    /// An empty stream with room for `bits` bits.
    pub fn with_capacity(bits: u64) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bits.div_ceil(8) as usize),
            len: 0,
        }
    }

    /// Appends the low `n` bits of `value` (`n` ≤ 64).
    pub fn push(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        let mut value = if n == 64 {
            value
        } else {
            value & ((1u64 << n) - 1)
        };
        let mut left = n;
        while left > 0 {
            let off = (self.len % 8) as u32;
            if off == 0 {
                self.bytes.push(0);
            }
            let take = left.min(8 - off);
            let last = self.bytes.len() - 1;
            self.bytes[last] |= ((value & ((1u64 << take) - 1)) as u8) << off;
            value >>= take;
            left -= take;
            self.len += u64::from(take);
        }
    }

    /// The bytes; unused high bits of the last byte are zero.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads `n` ≤ 64 bits starting at stream bit `start`, or `None` past the end of `bytes`.
pub fn read_bits(bytes: &[u8], start: u64, n: u32) -> Option<u64> {
    let end = start.checked_add(u64::from(n))?;
    if end > (bytes.len() as u64) * 8 {
        return None;
    }
    // One unaligned load when the bits and their shift fit a u64 that lies in `bytes` (a
    // packed model's records are read this way when it is opened and checked).
    let (byte, shift) = ((start / 8) as usize, (start % 8) as u32);
    if let Some(w) = bytes.get(byte..byte + 8)
        && n + shift <= 64
    {
        let v = u64::from_le_bytes(w.try_into().unwrap_or([0; 8])) >> shift;
        return Some(if n == 64 { v } else { v & ((1u64 << n) - 1) });
    }
    let mut out = 0u64;
    let mut got = 0u32;
    let mut pos = start;
    while got < n {
        let off = (pos % 8) as u32;
        let take = (n - got).min(8 - off);
        let bits = (u64::from(bytes[(pos / 8) as usize]) >> off) & ((1u64 << take) - 1);
        out |= bits << got;
        got += take;
        pos += u64::from(take);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_land_lsb_first() {
        let mut w = BitWriter::default();
        w.push(0b101, 3);
        w.push(0xff, 4);
        w.push(0x1, 2);
        // 101, then 1111 at bits 3..7, then 01 at bits 7..9.
        assert_eq!(w.into_bytes(), vec![0b1111_1101, 0b0000_0000]);
    }

    #[test]
    fn u32_records_are_little_endian_words() {
        let mut w = BitWriter::default();
        w.push(0x1234_5678, 32);
        w.push(0x9abc_def0, 32);
        assert_eq!(
            w.into_bytes(),
            [0x1234_5678u32.to_le_bytes(), 0x9abc_def0u32.to_le_bytes()].concat()
        );
    }

    #[test]
    fn odd_widths_round_trip() {
        let widths = [36u32, 60, 1, 13, 64, 7, 36];
        let values: Vec<u64> = widths
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let v = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1);
                if n == 64 { v } else { v & ((1 << n) - 1) }
            })
            .collect();
        let mut w = BitWriter::default();
        for (&v, &n) in values.iter().zip(&widths) {
            w.push(v, n);
        }
        let bytes = w.into_bytes();
        let total: u32 = widths.iter().sum();
        assert_eq!(bytes.len(), total.div_ceil(8) as usize);
        let mut pos = 0u64;
        for (&v, &n) in values.iter().zip(&widths) {
            assert_eq!(read_bits(&bytes, pos, n), Some(v));
            pos += u64::from(n);
        }
        assert_eq!(read_bits(&bytes, pos + 8, 4), None);
    }

    /// Every start and width reads the bits one at a time would: the one-load path in the
    /// middle of a stream and the byte loop at its end agree.
    #[test]
    fn reads_equal_bit_by_bit_reads_everywhere() {
        let bytes: Vec<u8> = (0..24u32)
            .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 13) as u8)
            .collect();
        let bit = |p: u64| u64::from(bytes[(p / 8) as usize] >> (p % 8) & 1);
        for start in 0..bytes.len() as u64 * 8 {
            for n in 1..=64u32 {
                let want = (start + u64::from(n) <= bytes.len() as u64 * 8)
                    .then(|| (0..u64::from(n)).map(|j| bit(start + j) << j).sum::<u64>());
                assert_eq!(read_bits(&bytes, start, n), want, "start {start}, {n} bits");
            }
        }
    }
}
