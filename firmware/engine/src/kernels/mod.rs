//! Kernels, one family per file. They work on byte slices (arena and plan
//! bytes), decode little-endian values on the fly and so accept any
//! alignment. Each kernel checks its buffer lengths against its geometry on
//! entry and returns [`ShapeError`] instead of indexing out of bounds.

pub mod add;
pub mod conv;
pub mod dense;
pub mod dot;
pub mod pool;
pub mod requant;
pub mod softmax;

/// Buffers do not match the geometry a kernel was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeError;

pub type KResult = Result<(), ShapeError>;

/// A little-endian `i32` array inside plan or arena bytes.
#[derive(Debug, Clone, Copy)]
pub struct I32s<'a>(pub &'a [u8]);

impl I32s<'_> {
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, or 0 past the end (kernels check lengths first).
    #[inline]
    pub fn get(&self, i: usize) -> i32 {
        crate::format::rd_i32(self.0, i.wrapping_mul(4)).unwrap_or(0)
    }
}

/// Per-tensor int8 requantisation context of a conv or dense op.
#[derive(Debug, Clone, Copy)]
pub struct QuantParams<'a> {
    pub in_zp: i32,
    pub out_zp: i32,
    pub act_min: i32,
    pub act_max: i32,
    /// Per output channel Q31 multipliers.
    pub multipliers: I32s<'a>,
    /// Per output channel shifts (positive = left).
    pub shifts: I32s<'a>,
}

impl QuantParams<'_> {
    #[inline]
    fn requantize(&self, acc: i32, ch: usize) -> u8 {
        requant::requantize(
            acc,
            self.multipliers.get(ch),
            self.shifts.get(ch),
            self.out_zp,
            self.act_min,
            self.act_max,
        )
    }
}

/// Float weight element: f32 or IEEE half, both little-endian.
pub trait FloatWeight {
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` bytes.
    fn decode(b: &[u8]) -> f32;
}

/// f32 weights.
#[derive(Debug, Clone, Copy)]
pub struct F32W;
/// f16 weights, widened to f32 on use.
#[derive(Debug, Clone, Copy)]
pub struct F16W;

impl FloatWeight for F32W {
    const SIZE: usize = 4;
    #[inline]
    fn decode(b: &[u8]) -> f32 {
        ld_f32(b)
    }
}

impl FloatWeight for F16W {
    const SIZE: usize = 2;
    #[inline]
    fn decode(b: &[u8]) -> f32 {
        match b {
            [a, c] => half::f16::from_bits(u16::from_le_bytes([*a, *c])).to_f32(),
            _ => 0.0,
        }
    }
}

/// Decodes an f32 from the first 4 bytes (0.0 if shorter).
#[inline]
pub fn ld_f32(b: &[u8]) -> f32 {
    match b {
        [a, c, d, e, ..] => f32::from_le_bytes([*a, *c, *d, *e]),
        _ => 0.0,
    }
}

/// Encodes `v` into the first 4 bytes of `b` (no-op if shorter).
#[inline]
pub fn st_f32(b: &mut [u8], v: f32) {
    if let Some(d) = b.get_mut(..4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// f32 element `i` of a byte buffer (0.0 past the end).
#[inline]
pub fn f32_at(b: &[u8], i: usize) -> f32 {
    b.get(i.wrapping_mul(4)..).map_or(0.0, ld_f32)
}

/// Output clamp of a float op: `None` is (-inf, inf), `Relu` (0, inf).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatAct {
    pub min: f32,
    pub max: f32,
}

impl FloatAct {
    pub const NONE: FloatAct = FloatAct {
        min: f32::NEG_INFINITY,
        max: f32::INFINITY,
    };

    #[inline]
    pub fn apply(&self, v: f32) -> f32 {
        if v < self.min {
            self.min
        } else if v > self.max {
            self.max
        } else {
            v
        }
    }
}

/// Spatial geometry shared by conv and pooling (NHWC, N = 1).
///
/// Bottom/right padding is implied by `out_h`/`out_w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl Geom {
    pub fn input_len(&self) -> Option<usize> {
        self.in_h.checked_mul(self.in_w)?.checked_mul(self.in_c)
    }

    pub fn output_len(&self) -> Option<usize> {
        self.out_h.checked_mul(self.out_w)?.checked_mul(self.out_c)
    }

    /// Rows of output row `oy` that fall inside the input.
    #[inline]
    pub fn rows(&self, oy: usize) -> Span {
        Span::new(oy, self.stride_h, self.pad_top, self.kernel_h, self.in_h)
    }

    /// Columns of output column `ox` that fall inside the input.
    #[inline]
    pub fn cols(&self, ox: usize) -> Span {
        Span::new(ox, self.stride_w, self.pad_left, self.kernel_w, self.in_w)
    }
}

/// The in-bounds part of one kernel window along one axis: kernel taps
/// `k0..k1` read input positions `i0..i0 + (k1 - k0)`. Padding taps are
/// skipped, which for int8 is the same as reading `x == zero_point`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub k0: usize,
    pub k1: usize,
    pub i0: usize,
}

impl Span {
    #[inline]
    fn new(o: usize, stride: usize, pad: usize, k: usize, n: usize) -> Self {
        // Tap t reads input position o*stride + t - pad.
        let start = o.saturating_mul(stride);
        let k0 = pad.saturating_sub(start).min(k);
        let k1 = pad.saturating_add(n).saturating_sub(start).min(k).max(k0);
        let i0 = start.saturating_add(k0).saturating_sub(pad);
        Span { k0, k1, i0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.k1.saturating_sub(self.k0)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.k1 <= self.k0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_clips_padding() {
        // 3-tap kernel, pad 1, input 5, stride 1.
        assert_eq!(
            Span::new(0, 1, 1, 3, 5),
            Span {
                k0: 1,
                k1: 3,
                i0: 0
            }
        );
        assert_eq!(
            Span::new(2, 1, 1, 3, 5),
            Span {
                k0: 0,
                k1: 3,
                i0: 1
            }
        );
        assert_eq!(
            Span::new(4, 1, 1, 3, 5),
            Span {
                k0: 0,
                k1: 2,
                i0: 3
            }
        );
        // Window entirely in padding is empty, not a panic.
        assert!(Span::new(0, 1, 7, 3, 5).is_empty());
        assert!(Span::new(9, 2, 0, 3, 5).is_empty());
    }
}
