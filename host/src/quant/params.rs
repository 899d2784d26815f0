//! The TFLite int8 scheme's parameters, computed on the host (float is fine here;
//! the device only ever sees the integers).
//!
//! `real = scale * (q - zero_point)`. Activations: asymmetric per tensor, q in
//! [-128, 127]. Weights: symmetric per output channel, q in [-127, 127], zero
//! point 0. Bias: int32 with scale `s_in * s_w[c]`. Requantisation multipliers are
//! split into a Q31 mantissa and a power-of-two shift (TFLite's QuantizeMultiplier,
//! implemented once, in the engine crate).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QuantParams {
    /// Asymmetric int8 parameters covering `[lo, hi]` (widened to include 0, so
    /// that zero — padding, ReLU's floor — is exactly representable).
    pub fn from_range(lo: f32, hi: f32) -> QuantParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if hi - lo <= f32::EPSILON {
            return QuantParams {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let scale = (hi - lo) / 255.0;
        let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
        QuantParams { scale, zero_point }
    }

    pub fn quantize(&self, x: f32) -> i8 {
        ((x / self.scale).round() + self.zero_point as f32).clamp(-128.0, 127.0) as i8
    }

    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (q as i32 - self.zero_point) as f32
    }

    /// The quantised bounds of a clamp `[min, max]` in real values, within int8.
    pub fn clamp_range(&self, min: f32, max: f32) -> (i8, i8) {
        let q = |x: f32| {
            if x.is_infinite() {
                if x > 0.0 {
                    127
                } else {
                    -128
                }
            } else {
                ((x / self.scale).round() + self.zero_point as f32).clamp(-128.0, 127.0) as i32
            }
        };
        (q(min) as i8, q(max) as i8)
    }
}

/// TFLite's QuantizeMultiplier, shared with the engine's own tests.
pub use edgefit_engine::requant::quantize_multiplier;

/// Symmetric per-channel int8 weights: `rows` output channels of `per_row` values.
/// Returns the quantised weights and each channel's scale.
pub fn quantize_weights_per_channel(weights: &[f32], rows: usize) -> (Vec<i8>, Vec<f32>) {
    let per_row = weights.len() / rows.max(1);
    let mut q = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &weights[r * per_row..(r + 1) * per_row];
        let amax = row.iter().fold(0.0f32, |a, &w| a.max(w.abs()));
        // An all-zero channel (e.g. pruned) keeps a harmless unit scale.
        let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            row.iter()
                .map(|&w| (w / scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_range_maps_zero_to_minus_128() {
        let p = QuantParams::from_range(0.0, 2.55);
        assert!((p.scale - 0.01).abs() < 1e-7);
        assert_eq!(p.zero_point, -128);
        assert_eq!(p.quantize(0.0), -128);
        assert_eq!(p.quantize(2.55), 127);
        assert_eq!(p.quantize(100.0), 127);
    }

    #[test]
    fn pixel_range_is_exact() {
        // Inputs in [0, 1] as pixel/255: scale 1/255, q = pixel - 128.
        let p = QuantParams::from_range(0.0, 1.0);
        for pixel in [0u8, 1, 77, 128, 255] {
            assert_eq!(p.quantize(pixel as f32 / 255.0) as i32, pixel as i32 - 128);
        }
    }

    #[test]
    fn weights_are_symmetric_per_channel() {
        let (q, s) = quantize_weights_per_channel(&[1.0, -0.5, 0.0, 0.03, -0.04, 0.01], 2);
        assert_eq!(q, vec![127, -64, 0, 95, -127, 32]);
        assert!((s[0] - 1.0 / 127.0).abs() < 1e-9 && (s[1] - 0.04 / 127.0).abs() < 1e-9);
    }
}
