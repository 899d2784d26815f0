//! TFLite/gemmlowp fixed-point helpers for the int8 path.
//!
//! These are the exact integer recipes TFLite uses, so every target produces
//! the same bits. No float is used. All i32 arithmetic that the C++ reference
//! leaves to the hardware (and that valid host-computed parameters never
//! overflow) wraps, as two's-complement hardware does.

/// Largest left shift accepted by [`multiply_by_quantized_multiplier`].
pub const MAX_LEFT_SHIFT: i32 = 30;
/// Largest right shift accepted by [`multiply_by_quantized_multiplier`].
pub const MAX_RIGHT_SHIFT: i32 = 31;

/// `(a * b * 2) >> 32`, rounded, saturating the single overflow case.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // `/` truncates toward zero, as gemmlowp's C++ division does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero.
///
/// `exponent` is clamped to `0..=31` so the function is total.
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(0, 31);
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// TFLite `MultiplyByQuantizedMultiplier`: `x * m / 2^31 * 2^shift`, rounded.
///
/// `m` is a Q31 multiplier (normally in `[2^30, 2^31)`), `shift` is positive
/// for a left shift. Shifts are clamped to `-31..=30`; the plan validator
/// rejects anything outside that range, so the clamp never changes a result.
pub fn multiply_by_quantized_multiplier(x: i32, m: i32, shift: i32) -> i32 {
    let left = shift.clamp(0, MAX_LEFT_SHIFT);
    let right = (-shift).clamp(0, MAX_RIGHT_SHIFT);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32 << left), m),
        right,
    )
}

/// Requantises an i32 accumulator to an int8 value stored as a byte:
/// multiplier, then `+ out_zp`, then clamp to `act_min..=act_max`.
#[inline]
pub fn requantize(acc: i32, m: i32, shift: i32, out_zp: i32, act_min: i32, act_max: i32) -> u8 {
    let v = multiply_by_quantized_multiplier(acc, m, shift).wrapping_add(out_zp);
    // max/min rather than clamp: clamp panics when act_min > act_max. The
    // validator keeps act_min..=act_max inside -128..=127; the final clamp
    // keeps the cast exact even for a caller that does not.
    (v.max(act_min).min(act_max).clamp(-128, 127) as i8) as u8
}

/// [`requantize`] for the Cortex-M DSP kernels: the same result for every
/// input (tested against it below), in about 25 instructions instead of
/// about 65 (no i64 division, no sign-dependent nudge).
///
/// The doubling high multiply: gemmlowp's `(ab + nudge) / 2^31`, truncated,
/// is `(ab + 2^30) >> 31` (floor) for both signs: for `ab >= 0` the nudge
/// is `2^30` and truncation is floor; for `ab < 0` the numerator `ab + 1 -
/// 2^30` is negative, truncation is ceil, and `ceil(n / d) = floor((n + d -
/// 1) / d)` with `n + d - 1 = ab + 2^30`: one `SMULL` and a 64-bit add. The
/// rounding divide: `(x >> e) + ((x & mask) + 2^(e-1) - [x < 0]) >> e`
/// (the second term 0 or 1, computed in `u32`, which never wraps there), is
/// `floor((x + 2^(e-1) - [x < 0]) / 2^e)`, i.e. the remainder test of
/// [`rounding_divide_by_pot`].
#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
pub(crate) fn requantize_fast(
    acc: i32,
    m: i32,
    shift: i32,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
) -> u8 {
    let v = multiply_fast(acc, m, shift).wrapping_add(out_zp);
    (v.max(act_min).min(act_max).clamp(-128, 127) as i8) as u8
}

/// [`requantize_fast`] without its branches, for the case of every conv
/// and dense layer: a multiplier other than `i32::MIN` (so the doubling high
/// multiply cannot saturate) and a right shift `e = -shift` in `1..=31`
/// (a scale below 1/2). The caller checks that once per layer.
#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
pub(crate) fn requantize_right(
    acc: i32,
    m: i32,
    e: u32,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
) -> u8 {
    RightShift::new(m, e).apply(acc, out_zp, act_min, act_max)
}

/// One channel's constants for [`requantize_right`], computed once for
/// several outputs of the channel.
#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct RightShift {
    m: i32,
    e: u32,
    mask: u32,
    half: u32,
}

#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
impl RightShift {
    /// `m != i32::MIN`, `1 <= e <= 31` (see [`requantize_right`]).
    #[inline(always)]
    pub(crate) fn new(m: i32, e: u32) -> Self {
        RightShift {
            m,
            e,
            mask: (1u32 << e).wrapping_sub(1),
            half: 1u32 << (e.wrapping_sub(1) & 31),
        }
    }

    /// The output byte for accumulator `acc`.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32, out_zp: i32, act_min: i32, act_max: i32) -> u8 {
        let t = ((acc as i64 * self.m as i64 + (1 << 30)) >> 31) as i32;
        // `< 2^e + 2^(e-1) <= 1.5 * 2^31`: no wrap in `u32`.
        let up = ((t as u32 & self.mask) + self.half - (t as u32 >> 31)) >> self.e;
        let v = (t >> self.e).wrapping_add(up as i32).wrapping_add(out_zp);
        (v.max(act_min).min(act_max).clamp(-128, 127) as i8) as u8
    }
}

/// [`multiply_by_quantized_multiplier`], the same result for every input
/// (see [`requantize_fast`]).
#[cfg(any(test, all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
pub(crate) fn multiply_fast(acc: i32, m: i32, shift: i32) -> i32 {
    let (a, e) = if shift > 0 {
        (acc.wrapping_shl(shift.min(MAX_LEFT_SHIFT) as u32), 0)
    } else {
        (acc, shift.wrapping_neg().min(MAX_RIGHT_SHIFT))
    };
    let t = if a == i32::MIN && m == i32::MIN {
        i32::MAX
    } else {
        ((a as i64 * m as i64 + (1 << 30)) >> 31) as i32
    };
    if e > 0 {
        let e = e as u32;
        let mask = (1u32 << e).wrapping_sub(1);
        let half = 1u32 << (e - 1);
        let up = ((t as u32 & mask) + half - (t as u32 >> 31)) >> e;
        (t >> e).wrapping_add(up as i32)
    } else {
        t
    }
}

/// Divides an int8 pool sum by `count`, rounding half away from zero
/// (TFLite's average pool). `count == 0` gives 0 rather than a panic.
#[inline]
pub fn rounding_average(sum: i64, count: i64) -> i64 {
    if count <= 0 {
        0
    } else if sum >= 0 {
        (sum + count / 2) / count
    } else {
        (sum - count / 2) / count
    }
}

/// TFLite `QuantizeMultiplier`: splits a positive real multiplier into a Q31
/// multiplier and a shift so that `real ≈ m * 2^(shift - 31)`.
///
/// For the host compiler. `real` must be finite and `>= 0`; anything else
/// (and anything below 2^-32) gives `(0, 0)`. Values that need a shift above
/// 30 saturate to `(i32::MAX, 30)` as current TFLite does.
#[cfg(feature = "std")]
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if !(real.is_finite() && real > 0.0) {
        return (0, 0);
    }
    let bits = real.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    if exp_bits == 0 {
        // Subnormal: far below 2^-31, TFLite flushes it to zero too.
        return (0, 0);
    }
    // frexp: real = q * 2^shift with q in [0.5, 1).
    let mut shift = exp_bits - 1022;
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        return (i32::MAX, 30);
    }
    (q_fixed as i32, shift)
}

/// Random lanes for checking a vector requantisation against
/// [`multiply_by_quantized_multiplier`] (the x86 kernels' tests): values and
/// multipliers with the extremes mixed in (`i32::MIN`, zero, ±2^30),
/// shifts in -31..=30, and the shift split as the kernels take it.
#[cfg(test)]
pub(crate) struct RequantCases {
    state: u64,
    round: usize,
}

/// One vector's worth of [`RequantCases`].
#[cfg(test)]
pub(crate) struct RequantLanes<const N: usize> {
    pub xs: [i32; N],
    pub ms: [i32; N],
    pub shifts: [i32; N],
    /// `shift.clamp(0, 30)`.
    pub left: [i32; N],
    /// `(-shift).clamp(0, 31)`.
    pub right: [i32; N],
}

#[cfg(test)]
impl RequantCases {
    pub(crate) fn new(seed: u64) -> Self {
        RequantCases {
            state: seed,
            round: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The next `N` lanes; the very first has `x = m = i32::MIN`.
    pub(crate) fn lanes<const N: usize>(&mut self) -> RequantLanes<N> {
        let specials = [
            0,
            1,
            -1,
            i32::MIN,
            i32::MAX,
            1 << 30,
            -(1 << 30),
            12345,
            -12345,
        ];
        let mut c = RequantLanes {
            xs: [0; N],
            ms: [0; N],
            shifts: [0; N],
            left: [0; N],
            right: [0; N],
        };
        for k in 0..N {
            let r = self.next_u64();
            c.xs[k] = if r.is_multiple_of(5) {
                specials[(r >> 8) as usize % specials.len()]
            } else {
                (r >> 16) as i32 >> ((r >> 3) % 24)
            };
            c.ms[k] = match (r >> 40) % 6 {
                0 => specials[(r >> 12) as usize % specials.len()],
                1 => 0,
                _ => ((r >> 20) as u32 >> 1) as i32 | (1 << 30),
            };
            c.shifts[k] = ((r >> 50) % 62) as i32 - 31;
        }
        if self.round == 0 && N > 0 {
            c.xs[0] = i32::MIN;
            c.ms[0] = i32::MIN;
        }
        self.round += 1;
        for k in 0..N {
            c.left[k] = c.shifts[k].clamp(0, 30);
            c.right[k] = (-c.shifts[k]).clamp(0, 31);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_high_mul_hand_values() {
        // 1.5 -> 2 but -1.5 -> -1: gemmlowp's nudge then truncating division.
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(-5, 1 << 30), -2);
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            2147483646
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -2147483647
        );
        // The one overflow case saturates.
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
    }

    #[test]
    fn rounding_divide_hand_values() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rounding_divide_by_pot(-3, 1), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-7, 2), -2); // -1.75 -> -2
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
        assert_eq!(rounding_divide_by_pot(123, 0), 123);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        // Out-of-range exponents are clamped, not a panic.
        assert_eq!(rounding_divide_by_pot(-8, -4), -8);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 99), -1);
    }

    #[test]
    fn multiply_by_quantized_multiplier_hand_values() {
        // 1/sqrt(2) in Q31, shift -3: 12345 * 0.70710678 / 8 = 1091.15.
        assert_eq!(
            multiply_by_quantized_multiplier(12345, 1518500250, -3),
            1091
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-12345, 1518500250, -3),
            -1091
        );
        // 0.5 * 2^1 = 1.
        assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, 1), 1000);
        // -75 * 0.5 = -37.5 -> -37 (high mul), then / 2 = -18.5 -> -19.
        assert_eq!(multiply_by_quantized_multiplier(-75, 1 << 30, -1), -19);
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
            i32::MAX
        );
        assert_eq!(
            multiply_by_quantized_multiplier(-123456789, 1395864371, -9),
            -156732
        );
        assert_eq!(
            multiply_by_quantized_multiplier(123456789, i32::MAX, -31),
            0
        );
    }

    #[test]
    fn requantize_clamps() {
        assert_eq!(requantize(1000, 1 << 30, 0, 10, -128, 127) as i8, 127);
        assert_eq!(requantize(-1000, 1 << 30, 0, 10, -128, 127) as i8, -128);
        assert_eq!(requantize(20, 1 << 30, 0, -5, -5, 127) as i8, 5);
        assert_eq!(requantize(-20, 1 << 30, 0, -5, -5, 127) as i8, -5);
    }

    #[test]
    fn rounding_average_half_away() {
        assert_eq!(rounding_average(5, 2), 3);
        assert_eq!(rounding_average(-5, 2), -3);
        assert_eq!(rounding_average(4, 3), 1);
        assert_eq!(rounding_average(-4, 3), -1);
        assert_eq!(rounding_average(7, 0), 0);
    }

    #[cfg(feature = "std")]
    #[test]
    fn quantize_multiplier_matches_tflite() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.75), (1610612736, 0));
        assert_eq!(quantize_multiplier(2.5), (1342177280, 2));
        assert_eq!(quantize_multiplier(0.0037), (2034096511, -8));
        assert_eq!(quantize_multiplier(1e-12), (0, 0));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        assert_eq!(quantize_multiplier(-1.0), (0, 0));
        assert_eq!(quantize_multiplier(f64::NAN), (0, 0));
        // Rounding up to 2^31 renormalises.
        assert_eq!(quantize_multiplier(1.0 - 1e-12), (1 << 30, 1));
        assert_eq!(quantize_multiplier(1e12), (i32::MAX, 30));
    }

    #[test]
    fn requantize_fast_is_identical() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let edges_x = [
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            i32::MIN,
            i32::MIN + 1,
            i32::MAX,
            i32::MAX - 1,
            1 << 30,
            -(1 << 30),
            (1 << 30) + 1,
            -(1 << 30) - 1,
            12345,
            -12345,
        ];
        let edges_m = [
            0,
            1,
            -1,
            i32::MIN,
            i32::MIN + 1,
            i32::MAX,
            i32::MAX - 1,
            1 << 30,
            (1 << 30) + 1,
            (1 << 30) - 1,
            -(1 << 30),
            1518500250,
        ];
        let check = |x: i32, m: i32, sh: i32, zp: i32, lo: i32, hi: i32| {
            assert_eq!(
                requantize_fast(x, m, sh, zp, lo, hi),
                requantize(x, m, sh, zp, lo, hi),
                "x {x} m {m} shift {sh} zp {zp} act {lo}..{hi}"
            );
            if m != i32::MIN && (-31..=-1).contains(&sh) {
                assert_eq!(
                    requantize_right(x, m, sh.unsigned_abs(), zp, lo, hi),
                    requantize(x, m, sh, zp, lo, hi),
                    "right: x {x} m {m} shift {sh} zp {zp} act {lo}..{hi}"
                );
            }
            // The unclamped value too.
            assert_eq!(
                multiply_fast(x, m, sh),
                multiply_by_quantized_multiplier(x, m, sh),
                "x {x} m {m} shift {sh}"
            );
        };
        for sh in -40..=40 {
            for &x in &edges_x {
                for &m in &edges_m {
                    check(x, m, sh, 0, -128, 127);
                    check(x, m, sh, -7, -5, 100);
                }
            }
        }
        for i in 0..2_000_000u32 {
            let r = next();
            let x = match i % 4 {
                0 => r as i32,
                1 => (r as i32) >> (r >> 59),
                2 => (r >> 32) as i32 % 100_000,
                _ => edges_x[(r >> 40) as usize % edges_x.len()]
                    .wrapping_add((r >> 50) as i32 % 5 - 2),
            };
            let m = match i % 3 {
                0 => (r >> 32) as i32,
                1 => (1 << 30) + ((r >> 33) as i32 & ((1 << 30) - 1)),
                _ => edges_m[(r >> 20) as usize % edges_m.len()],
            };
            let sh = ((r >> 8) % 64) as i32 - 33;
            let zp = ((r >> 16) % 256) as i32 - 128;
            let a = ((r >> 24) % 256) as i32 - 128;
            let b = ((r >> 44) % 256) as i32 - 128;
            check(x, m, sh, zp, a.min(b), a.max(b));
        }
    }
}
