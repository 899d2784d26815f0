//! Softmax over the last axis and the `exp` it needs.
//!
//! Float plans: `core` has no `exp`, and the engine takes no libm, so
//! [`exp_f32`] is a small range-reduced polynomial: the same bits on every
//! target. int8 plans: integers only, exact on every target; the host puts
//! the exponentials in a 256-entry table (see [`softmax_i8`]).

use super::{ld_f32, st_f32, I32s, KResult, ShapeError};

/// Entries of the int8 softmax's exponential table: one per difference
/// `max - x` of two int8 values (0..=255).
pub const EXP_TABLE_LEN: usize = 256;
/// `table[0]`, `exp(0)` in the table's fixed point (16 fraction bits).
pub const EXP_ONE: i32 = 1 << 16;

/// int8 softmax over rows of `row` values. `table[d]` is `exp(-d * s)` in
/// 16-bit fixed point (`s` the input's scale), so a row's values are
/// `e_i = table[max - x_i]`, and the output, in TFLite's softmax
/// quantisation (scale 1/256, zero point -128), is
/// `round(256 * e_i / sum(e)) - 128`, saturated to 127: integer division
/// only, the same bytes everywhere.
pub fn softmax_i8(x: &[u8], row: usize, table: I32s, out: &mut [u8]) -> KResult {
    if row == 0
        || x.len() != out.len()
        || !x.len().is_multiple_of(row)
        || table.len() != EXP_TABLE_LEN
    {
        return Err(ShapeError);
    }
    for (xr, orow) in x.chunks_exact(row).zip(out.chunks_exact_mut(row)) {
        let max = xr.iter().map(|&b| b as i8).max().unwrap_or(0);
        let e = |b: u8| table.get((max as i32 - b as i8 as i32) as usize).max(0) as u64;
        // >= EXP_ONE: the max element contributes table[0].
        let sum: u64 = xr.iter().map(|&b| e(b)).sum::<u64>().max(1);
        for (&b, o) in xr.iter().zip(orow.iter_mut()) {
            let q = (e(b) * 256 + sum / 2) / sum;
            *o = (q as i64 - 128).clamp(-128, 127) as i8 as u8;
        }
    }
    Ok(())
}

/// Softmax over rows of `row` values (f32 bytes in, f32 bytes out).
pub fn softmax_f32(x: &[u8], row: usize, out: &mut [u8]) -> KResult {
    let row_bytes = row.checked_mul(4).ok_or(ShapeError)?;
    if row == 0 || x.len() != out.len() || !x.len().is_multiple_of(row_bytes) {
        return Err(ShapeError);
    }
    for (xr, orow) in x
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(row_bytes))
    {
        let max = xr
            .chunks_exact(4)
            .map(ld_f32)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (a, o) in xr.chunks_exact(4).zip(orow.chunks_exact_mut(4)) {
            let e = exp_f32(ld_f32(a) - max);
            sum += e;
            st_f32(o, e);
        }
        // sum >= 1 (the max element contributes exp(0)) unless inputs are NaN.
        let inv = 1.0 / sum;
        for o in orow.chunks_exact_mut(4) {
            let v = ld_f32(o) * inv;
            st_f32(o, v);
        }
    }
    Ok(())
}

/// `e^x` for f32, relative error below 1e-6 wherever the result is normal.
///
/// x = n ln2 + r with |r| <= ln2/2, e^r from a degree-7 Taylor polynomial,
/// then scaled by 2^n through the exponent bits.
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.72 {
        return f32::INFINITY;
    }
    if x < -103.97 {
        return 0.0;
    }
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let n = crate::input::round_half_away(x * core::f32::consts::LOG2_E);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let n = n as i32;
    // 2^n may be subnormal: split it in two normal factors.
    let (n1, n2) = (n / 2, n - n / 2);
    p * pow2(n1) * pow2(n2)
}

/// 2^n for n in -126..=127 from the exponent bits.
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n.clamp(-126, 127) + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_closely() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            let rel = ((got - want) / want).abs();
            assert!(rel < 1e-6, "x={x} got={got} want={want}");
            x += 0.037;
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let vals = [1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0];
        let x: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0u8; x.len()];
        softmax_f32(&x, 3, &mut out).unwrap();
        let y: Vec<f32> = out.chunks(4).map(ld_f32).collect();
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let s: f64 = e.iter().sum();
        for k in 0..3 {
            assert!((y[k] as f64 - e[k] / s).abs() < 1e-6);
            assert!((y[3 + k] as f64 - e[k] / s).abs() < 1e-6);
        }
        assert_eq!(softmax_f32(&x, 4, &mut out), Err(ShapeError));
    }
}

#[cfg(test)]
mod int8_tests {
    use super::*;

    fn table(scale: f64) -> Vec<u8> {
        (0..EXP_TABLE_LEN)
            .flat_map(|d| {
                let v = ((-(d as f64) * scale).exp() * EXP_ONE as f64).round() as i32;
                v.to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn int8_softmax_is_the_float_one_quantised() {
        let scale = 0.05;
        let t = table(scale);
        let xs: [i8; 5] = [10, -3, 40, 40, -128];
        let x: Vec<u8> = xs.iter().map(|&v| v as u8).collect();
        let mut out = vec![0u8; 5];
        softmax_i8(&x, 5, I32s(&t), &mut out).unwrap();
        let f: Vec<f64> = xs.iter().map(|&v| (v as f64 * scale).exp()).collect();
        let sum: f64 = f.iter().sum();
        for (o, p) in out.iter().zip(&f) {
            let got = (*o as i8 as f64 + 128.0) / 256.0;
            assert!((got - p / sum).abs() <= 1.0 / 256.0, "{got} vs {}", p / sum);
        }
        // One certain class saturates at 127 (probability 255/256).
        let x = [100u8, 0x80, 0x80];
        softmax_i8(&x, 3, I32s(&table(1.0)), &mut out[..3]).unwrap();
        assert_eq!(out[0] as i8, 127);
        assert!(softmax_i8(&x, 3, I32s(&t[..100]), &mut out[..3]).is_err());
    }
}
