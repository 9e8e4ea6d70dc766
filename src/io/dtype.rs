//! Element types of model tensors and their conversion to and from f32.

pub use safetensors::Dtype;

/// Whether the engine can compress tensors of this type (F32, F16, BF16).
pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

/// Whether `--dtype`-style conversion applies: the compressible types and F64.
pub fn is_floating(dtype: Dtype) -> bool {
    is_float(dtype) || dtype == Dtype::F64
}

/// The largest finite value of a float type (`f64::MAX` for any other type).
pub fn max_finite(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F32 => f64::from(f32::MAX),
        Dtype::F16 => half::f16::MAX.to_f64(),
        Dtype::BF16 => half::bf16::MAX.to_f64(),
        _ => f64::MAX,
    }
}

/// Whether `v` stays finite when rounded to `dtype` (F32, F16 or BF16).
pub fn fits(dtype: Dtype, v: f32) -> bool {
    match dtype {
        Dtype::F16 => half::f16::from_f32(v).is_finite(),
        Dtype::BF16 => half::bf16::from_f32(v).is_finite(),
        _ => v.is_finite(),
    }
}

/// The first of `values` that is finite but does not fit in `target` (rounded through f32,
/// as every conversion here goes), with its index.
pub fn first_unfit(target: Dtype, values: impl IntoIterator<Item = f64>) -> Option<(usize, f64)> {
    values
        .into_iter()
        .enumerate()
        .find(|&(_, v)| v.is_finite() && !fits(target, v as f32))
}

/// The smallest size a decoded weight (an f64, rounded to f32 and then to `dtype`) cannot have
/// in `dtype` (F32, F16 or BF16): every reconstruction below it in size fits, none at or above
/// it does. Found by bisection over the bits of positive f64s, which order like the values.
pub fn overflow_bound(dtype: Dtype) -> f64 {
    let fits_f64 = |x: f64| fits(dtype, x as f32);
    let (mut lo, mut hi) = (0u64, f64::INFINITY.to_bits());
    // Invariant: lo fits, hi does not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits_f64(f64::from_bits(mid)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    f64::from_bits(hi)
}

/// The values of little-endian F64 bytes.
pub fn f64_values(bytes: &[u8]) -> impl Iterator<Item = f64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8")))
}

/// Converts little-endian F64 bytes to F32, F16 or BF16 through f32 (rounded to nearest even
/// at each step, like every other tensor [`from_f32`] writes); `None` for any other target.
pub fn from_f64_bytes(target: Dtype, bytes: &[u8]) -> Option<Vec<u8>> {
    let values: Vec<f32> = f64_values(bytes).map(|v| v as f32).collect();
    from_f32(target, &values)
}

/// Bytes taken by `numel` elements, or `None` on overflow or a fractional byte count.
pub fn byte_len(dtype: Dtype, numel: usize) -> Option<usize> {
    let bits = numel.checked_mul(dtype.bitsize())?;
    (bits % 8 == 0).then_some(bits / 8)
}

/// Parses a safetensors dtype name such as `F16`.
pub fn parse(name: &str) -> Option<Dtype> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Decodes little-endian F32/F16/BF16 bytes to f32; `None` for any other type.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let mut out = Vec::new();
    extend_f32(dtype, bytes, &mut out).then_some(out)
}

/// Appends little-endian F32/F16/BF16 bytes decoded to f32 to `out` (which grows only if its
/// spare capacity is short); false for any other type.
pub fn extend_f32(dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) -> bool {
    match dtype {
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        Dtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        _ => return false,
    }
    true
}

/// Encodes f32 values as little-endian F32/F16/BF16 (round to nearest even); `None` for any
/// other type.
pub fn from_f32(dtype: Dtype, values: &[f32]) -> Option<Vec<u8>> {
    let out = match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => return None,
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_round_trips() {
        let v = [0.0f32, -1.5, 3.140625, 65504.0, -2.0e-3];
        for d in [Dtype::F32, Dtype::F16, Dtype::BF16] {
            let bytes = from_f32(d, &v).unwrap();
            assert_eq!(bytes.len(), v.len() * d.bitsize() / 8);
            let back = to_f32(d, &bytes).unwrap();
            let again = from_f32(d, &back).unwrap();
            assert_eq!(bytes, again, "{d}: decoding then encoding is the identity");
        }
        assert_eq!(to_f32(Dtype::F16, &[0x00, 0x3c]).unwrap(), vec![1.0]);
        assert_eq!(to_f32(Dtype::BF16, &[0x80, 0x3f]).unwrap(), vec![1.0]);
    }

    #[test]
    fn other_types_are_not_converted() {
        assert!(to_f32(Dtype::I64, &[0; 8]).is_none());
        assert!(from_f32(Dtype::U8, &[1.0]).is_none());
        assert!(!is_float(Dtype::F64));
    }

    #[test]
    fn f64_converts_and_ranges_are_known() {
        let v = [0.1f64, -2.5, 1e300];
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let f = from_f64_bytes(Dtype::F32, &bytes).unwrap();
        assert_eq!(
            to_f32(Dtype::F32, &f).unwrap(),
            [0.1f32, -2.5, f32::INFINITY]
        );
        let h = from_f64_bytes(Dtype::BF16, &bytes).unwrap();
        assert_eq!(
            h,
            from_f32(Dtype::BF16, &[0.1, -2.5, f32::INFINITY]).unwrap()
        );
        assert!(from_f64_bytes(Dtype::I64, &bytes).is_none());
        assert!(is_floating(Dtype::F64) && !is_floating(Dtype::I64));
        assert_eq!(max_finite(Dtype::F16), 65504.0);
        assert!(fits(Dtype::F16, 65504.0) && !fits(Dtype::F16, 65520.0));
        for dt in [Dtype::F16, Dtype::BF16, Dtype::F32] {
            let b = overflow_bound(dt);
            assert!(
                !fits(dt, b as f32) && fits(dt, b.next_down() as f32),
                "{dt}"
            );
            assert!(b > max_finite(dt));
        }
        // 65520 rounds to infinity in F16 (a tie to the even 2^16), anything just below it not.
        assert_eq!(overflow_bound(Dtype::F16), 65520.0 - 2f64.powi(-9));
        assert!(fits(Dtype::BF16, 1e38) && !fits(Dtype::F32, f32::INFINITY));
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse("BF16"), Some(Dtype::BF16));
        assert_eq!(parse("F99"), None);
        assert_eq!(byte_len(Dtype::F4, 3), None);
        assert_eq!(byte_len(Dtype::F16, 3), Some(6));
    }
}
