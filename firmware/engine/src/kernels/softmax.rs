//! Softmax over the last axis (float plans only) and the `exp` it needs.
//!
//! `core` has no `exp`, and the engine takes no libm, so [`exp_f32`] is a
//! small range-reduced polynomial: the same bits on every target.

use super::{ld_f32, st_f32, KResult, ShapeError};

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
    let n = round_ties_away(x * core::f32::consts::LOG2_E);
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

/// Nearest integer, ties away from zero (`f32::round` is not in `core`).
fn round_ties_away(v: f32) -> f32 {
    let t = v as i32 as f32; // truncates toward zero; |v| < 2^8 here
    let d = v - t;
    if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    }
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
