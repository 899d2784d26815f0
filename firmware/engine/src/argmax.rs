//! The predicted class: arg-max of an output tensor by its dtype, the same
//! on every target (the firmware, the Linux agent and the host compare it).

use crate::DType;

/// Index of the largest element of an output tensor of `dtype` (int8 as
/// `i8`, int32 as `i32`, f16/f32 as little-endian IEEE); ties go to the
/// lowest index, NaNs never win. 0 for an empty tensor; saturates at
/// `u16::MAX`.
pub fn argmax(bytes: &[u8], dtype: DType) -> u16 {
    let best = match dtype {
        DType::I8 => first_max(bytes.iter().map(|&b| Some(i64::from(b as i8)))),
        DType::I32 => first_max(
            bytes
                .chunks_exact(4)
                .map(|c| Some(i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
        ),
        DType::F16 => first_max(
            bytes
                .chunks_exact(2)
                .map(|c| f16_key(u16::from_le_bytes([c[0], c[1]]))),
        ),
        DType::F32 => first_max(
            bytes
                .chunks_exact(4)
                .map(|c| f32_key(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        ),
    };
    u16::try_from(best).unwrap_or(u16::MAX)
}

/// Position of the first greatest `Some`.
fn first_max(keys: impl Iterator<Item = Option<i64>>) -> usize {
    let mut best: Option<(usize, i64)> = None;
    for (i, k) in keys.enumerate() {
        if let Some(k) = k {
            if best.is_none_or(|(_, b)| k > b) {
                best = Some((i, k));
            }
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// An integer with the order of the IEEE value (sign-magnitude to two's
/// complement; -0 and +0 equal); `None` for NaN.
fn ieee_key(bits: u64, sign_bit: u32, inf_bits: u64) -> Option<i64> {
    let mag = bits & ((1u64 << sign_bit) - 1);
    if mag > inf_bits {
        return None;
    }
    let mag = mag as i64;
    Some(if bits >> sign_bit != 0 { -mag } else { mag })
}

fn f16_key(bits: u16) -> Option<i64> {
    ieee_key(u64::from(bits), 15, 0x7C00)
}

fn f32_key(bits: u32) -> Option<i64> {
    ieee_key(u64::from(bits), 31, 0x7F80_0000)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn argmax_by_dtype() {
        assert_eq!(argmax(&[0x80, 0x7F, 0x05], DType::I8), 1);
        assert_eq!(argmax(&[0xFF, 0xFE, 0x80], DType::I8), 0); // -1 > -2 > -128
        assert_eq!(argmax(&[3, 7, 7, 1], DType::I8), 1); // tie → lowest
        assert_eq!(argmax(&[], DType::I8), 0);
        assert_eq!(argmax(&f32s(&[-1.5, -0.5, -3.0]), DType::F32), 1);
        assert_eq!(argmax(&f32s(&[f32::NAN, 0.25, 2.0, 2.0]), DType::F32), 2);
        assert_eq!(argmax(&f32s(&[-0.0, 0.0]), DType::F32), 0);
        assert_eq!(argmax(&f32s(&[1.0, f32::INFINITY, 1e30]), DType::F32), 1);
        let i32s: Vec<u8> = [-5i32, 100, -200]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(argmax(&i32s, DType::I32), 1);
        // f16: 1.0 = 0x3C00, -2.0 = 0xC000, 2.0 = 0x4000, NaN = 0x7E00
        let h: Vec<u8> = [0x3C00u16, 0xC000, 0x7E00, 0x4000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(argmax(&h, DType::F16), 3);
    }
}
