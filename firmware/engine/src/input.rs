//! 8-bit pixels to a plan's input tensor, on the host and on a device alike.
//!
//! A plan records the preprocessing recipe it was compiled for in its
//! metadata trailer (a `[preprocess]` TOML table, docs/plan-format.md). The
//! host applies the whole recipe (decode, resize, crop, channels, then the
//! per-channel arithmetic here); a device that receives pixels already at the
//! model's size (the MLPerf Tiny runner sends raw uint8 images) applies only
//! the arithmetic, with these same functions, so both give the same bits:
//!
//! ```text
//! v = pixel / divisor   (or pixel * scale when 1/scale is not an integer)
//! v = (v - mean[c]) / std[c]
//! q = clamp(round_half_away(v / input_scale) + zero_point, -128, 127)   (int8 inputs)
//! ```

use crate::format::{DType, Quant, TensorDesc};

/// Most channels a recipe's `mean`/`std` lists may name (gray, RGB, BGR; 4
/// leaves room for RGBA).
pub const MAX_CHANNELS: usize = 4;

/// Why a plan's recorded recipe cannot be read by [`InputRecipe::from_metadata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeError {
    /// The metadata is not UTF-8 text.
    NotText,
    /// A value the device needs (`scale`, `mean`, `std`) is not a number or a
    /// list of at most [`MAX_CHANNELS`] numbers; the key is named.
    BadValue(&'static str),
    /// `std` holds a zero or `scale` is not positive.
    Degenerate,
    /// The recipe's per-channel lists do not match the input's channels.
    Channels { listed: u8, input: u32 },
}

impl core::fmt::Display for RecipeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RecipeError::NotText => write!(f, "plan metadata is not UTF-8"),
            RecipeError::BadValue(key) => write!(f, "recipe value `{key}` cannot be read"),
            RecipeError::Degenerate => write!(f, "recipe has a zero std or a non-positive scale"),
            RecipeError::Channels { listed, input } => write!(
                f,
                "recipe lists {listed} channel values but the input has {input} channels"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RecipeError {}

/// The integer that `scale` is one over (255 for 1/255), so pixels are
/// divided as torchvision's `ToTensor` does, bit for bit; `None` when
/// `1/scale` is not within 1e-4 of an integer in 1..1e6.
pub fn divisor_for(scale: f32) -> Option<u32> {
    let inv = 1.0 / scale as f64;
    if !(0.5..1e6).contains(&inv) {
        return None;
    }
    // `inv` is positive and below 1e6: truncation after +0.5 rounds half up,
    // as f64::round would (which core lacks).
    let d = (inv + 0.5) as u64 as f64;
    ((inv - d).abs() < 1e-4 && (1.0..1e6).contains(&d)).then_some(d as u32)
}

/// One pixel value (0..=255, possibly fractional after a resize) through the
/// recipe's arithmetic.
#[inline]
pub fn normalize(pixel: f32, divisor: Option<f32>, scale: f32, mean: f32, std: f32) -> f32 {
    let v = match divisor {
        Some(d) => pixel / d,
        None => pixel * scale,
    };
    (v - mean) / std
}

/// Rounds half away from zero, as `f32::round` does (which `core` lacks).
/// Without branches: an image's values round up or down at random, which a
/// branch predictor cannot follow (ResNet-50's 150,528 inputs took 2.2 ms
/// with branches, most of it mispredictions), and loops over it vectorise.
#[inline]
pub fn round_half_away(x: f32) -> f32 {
    // Truncates towards zero, exactly below 2^23 (larger values, and NaN,
    // are kept below: they truncate a stand-in in range, which `as` would
    // saturate in a way that does not vectorise).
    let within = if x.is_nan() {
        0.0
    } else {
        x.clamp(-8_388_608.0, 8_388_608.0)
    };
    // SAFETY: `within` is finite and at most 2^23 in magnitude: it fits i32.
    #[allow(unsafe_code)]
    let t = unsafe { within.to_int_unchecked::<i32>() } as f32;
    // Exact below 2^23, where t and x share the exponent range (the rest is
    // not used).
    let frac = x - t;
    let step = f32::from(u8::from(frac >= 0.5)) - f32::from(u8::from(frac <= -0.5));
    // Keep x's sign on a zero result (-0.3 rounds to -0.0).
    let r = f32::from_bits((t + step).to_bits() | (x.to_bits() & 0x8000_0000));
    // Beyond 2^23 every f32 is an integer already (and NaN stays NaN).
    let keep = x.is_nan() || x.abs() >= 8_388_608.0;
    f32::from_bits(select(keep, x.to_bits(), r.to_bits()))
}

/// `if keep { a } else { b }` by masking, which compilers keep branch-free.
#[inline]
fn select(keep: bool, a: u32, b: u32) -> u32 {
    let mask = 0u32.wrapping_sub(u32::from(keep));
    (a & mask) | (b & !mask)
}

/// A float input value quantised as an int8 input tensor takes it: round
/// half away from zero, add the zero point, saturate.
#[inline]
pub fn quantize_input(v: f32, q: Quant) -> i8 {
    let c = (round_half_away(v / q.scale) + q.zero_point as f32).clamp(-128.0, 127.0);
    // What `c as i8` gives (NaN becomes 0), without Rust's saturating cast,
    // which does not vectorise: `c` is an integer in -128..=127 or NaN.
    let c = if c.is_nan() { 0.0 } else { c };
    // SAFETY: `c` is finite and within -128..=127, so it fits i32.
    #[allow(unsafe_code)]
    let i = unsafe { c.to_int_unchecked::<i32>() };
    i as i8
}

/// The per-channel arithmetic of a plan's recipe: what a device needs to turn
/// raw 8-bit pixels into the plan's input tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputRecipe {
    scale: f32,
    divisor: Option<f32>,
    mean: [f32; MAX_CHANNELS],
    std: [f32; MAX_CHANNELS],
    /// How many values `mean` / `std` listed (0: none, 1: one for all).
    mean_len: u8,
    std_len: u8,
}

impl Default for InputRecipe {
    /// What a plan without a recorded recipe gets on the host too: x / 255.
    fn default() -> Self {
        Self::new(1.0 / 255.0)
    }
}

impl InputRecipe {
    fn new(scale: f32) -> Self {
        Self {
            scale,
            divisor: divisor_for(scale).map(|d| d as f32),
            mean: [0.0; MAX_CHANNELS],
            std: [1.0; MAX_CHANNELS],
            mean_len: 0,
            std_len: 0,
        }
    }

    /// The arithmetic of the `[preprocess]` table in a plan's metadata
    /// ([`crate::plan::metadata`]); the default (x / 255) when the plan
    /// records none. Reads the keys `scale`, `mean` and `std` as the host's
    /// recipe writer writes them; resize, crop, channels and layout describe
    /// what happens before the pixels reach the device and are not needed here.
    pub fn from_metadata(metadata: Option<&[u8]>) -> Result<Self, RecipeError> {
        let Some(bytes) = metadata else {
            return Ok(Self::default());
        };
        let text = core::str::from_utf8(bytes).map_err(|_| RecipeError::NotText)?;
        let mut in_preprocess = false;
        let mut found = false;
        let mut r = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_preprocess = line == "[preprocess]";
                found |= in_preprocess;
                continue;
            }
            if !in_preprocess || line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "scale" => {
                    let s = parse_f32(value).ok_or(RecipeError::BadValue("scale"))?;
                    if !(s.is_finite() && s > 0.0) {
                        return Err(RecipeError::Degenerate);
                    }
                    r.scale = s;
                    r.divisor = divisor_for(s).map(|d| d as f32);
                }
                "mean" => r.mean_len = parse_list(value, &mut r.mean, "mean")?,
                "std" => {
                    r.std_len = parse_list(value, &mut r.std, "std")?;
                    if r.std[..r.std_len as usize].contains(&0.0) {
                        return Err(RecipeError::Degenerate);
                    }
                }
                _ => {}
            }
        }
        Ok(if found { r } else { Self::default() })
    }

    /// Checks that the per-channel lists fit an input with `channels` channels.
    pub fn check_channels(&self, channels: u32) -> Result<(), RecipeError> {
        for len in [self.mean_len, self.std_len] {
            if len > 1 && u32::from(len) != channels {
                return Err(RecipeError::Channels {
                    listed: len,
                    input: channels,
                });
            }
        }
        Ok(())
    }

    fn per(values: &[f32; MAX_CHANNELS], len: u8, channel: usize, default: f32) -> f32 {
        match len {
            0 => default,
            1 => values[0],
            _ => values.get(channel).copied().unwrap_or(default),
        }
    }

    /// One pixel of channel `channel` as the model's float input value.
    #[inline]
    pub fn value(&self, pixel: u8, channel: usize) -> f32 {
        normalize(
            f32::from(pixel),
            self.divisor,
            self.scale,
            Self::per(&self.mean, self.mean_len, channel, 0.0),
            Self::per(&self.std, self.std_len, channel, 1.0),
        )
    }

    /// Raw pixels in the input tensor's element order (HWC for a 4-D NHWC
    /// input, its own order otherwise: one byte per element) as the tensor's
    /// bytes: int8 quantised with its parameters, f32 little-endian otherwise.
    pub fn encode(
        &self,
        raw: &[u8],
        input: &TensorDesc,
        out: &mut [u8],
    ) -> Result<(), EncodeError> {
        let channels = match input.shape() {
            [_, _, _, c] => *c,
            _ => 1,
        };
        self.check_channels(channels).map_err(EncodeError::Recipe)?;
        check_sizes(input, raw.len(), out.len())?;
        let c = channels.max(1) as usize;
        for (i, &p) in raw.iter().enumerate() {
            store(input, self.value(p, i % c), i, out);
        }
        Ok(())
    }
}

/// The input's element count, if `values` is that and `out_len` that many
/// of its elements' bytes (1 for int8, 4 for f32; other types refused).
fn check_sizes(input: &TensorDesc, values: usize, out_len: usize) -> Result<usize, EncodeError> {
    let elems = input.shape().iter().map(|&d| d as usize).product::<usize>();
    let per = match input.dtype {
        DType::I8 => 1,
        DType::F32 => 4,
        _ => return Err(EncodeError::InputType),
    };
    if values != elems || out_len != elems * per {
        return Err(EncodeError::Size {
            got: values,
            expected: elems,
        });
    }
    Ok(elems)
}

/// Writes `v` as element `at` of the input tensor `out` (sizes checked by
/// [`check_sizes`]): quantised for int8, little-endian f32 otherwise.
#[inline]
fn store(input: &TensorDesc, v: f32, at: usize, out: &mut [u8]) {
    match input.dtype {
        DType::I8 => out[at] = quantize_input(v, input.quant) as u8,
        _ => out[at * 4..at * 4 + 4].copy_from_slice(&v.to_le_bytes()),
    }
}

/// An f32 sample in the model's (ONNX, NCHW) order as the input tensor's
/// bytes: a 4-D input is stored NHWC, anything else in its own order; int8
/// inputs quantised with [`quantize_input`], f32 ones little-endian. Here
/// rather than on the host so that it runs optimised in every build: it is
/// part of each timed inference.
pub fn encode_nchw(input: &TensorDesc, nchw: &[f32], out: &mut [u8]) -> Result<(), EncodeError> {
    let elems = check_sizes(input, nchw.len(), out.len())?;
    let (hw, c) = match input.shape() {
        [_, h, w, c] => (*h as usize * *w as usize, *c as usize),
        _ => (elems, 1),
    };
    // NHWC element `i` of item `n` is NCHW element `(ch, pixel)` of it.
    let item = (hw * c).max(1);
    if input.dtype == DType::I8 {
        // A block of one channel's plane at a time: quantised in a loop the
        // compiler vectorises, then spread to its NHWC places.
        const BLOCK: usize = 256;
        let mut q = [0i8; BLOCK];
        for (src, dst) in nchw.chunks_exact(item).zip(out.chunks_exact_mut(item)) {
            for (ch, plane) in src.chunks_exact(hw.max(1)).enumerate() {
                for (b, block) in plane.chunks(BLOCK).enumerate() {
                    for (d, &v) in q.iter_mut().zip(block) {
                        *d = quantize_input(v, input.quant);
                    }
                    let places = dst.iter_mut().skip(b * BLOCK * c + ch).step_by(c.max(1));
                    for (d, &v) in places.zip(&q[..block.len()]) {
                        *d = v as u8;
                    }
                }
            }
        }
        return Ok(());
    }
    for (n, src) in nchw.chunks_exact(item).enumerate() {
        for pixel in 0..hw {
            for ch in 0..c {
                store(input, src[ch * hw + pixel], n * item + pixel * c + ch, out);
            }
        }
    }
    Ok(())
}

/// Why raw pixels cannot become a plan's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// Not one value (a byte, or an f32 for [`encode_nchw`]) per input
    /// element.
    Size { got: usize, expected: usize },
    /// The input is neither int8 nor f32.
    InputType,
    /// The recipe does not fit the input.
    Recipe(RecipeError),
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::Size { got, expected } => {
                write!(f, "{got} values, the input takes {expected}")
            }
            EncodeError::InputType => write!(f, "the input is neither int8 nor f32"),
            EncodeError::Recipe(e) => e.fmt(f),
        }
    }
}

/// `[a, b, c]` (or one bare number) into `out`; returns how many.
fn parse_list(
    value: &str,
    out: &mut [f32; MAX_CHANNELS],
    key: &'static str,
) -> Result<u8, RecipeError> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    let mut n = 0usize;
    for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let slot = out.get_mut(n).ok_or(RecipeError::BadValue(key))?;
        *slot = parse_f32(item).ok_or(RecipeError::BadValue(key))?;
        n += 1;
    }
    Ok(n as u8)
}

/// A decimal number as the host reads it (TOML: to f64, then `as f32`),
/// without `core`'s general float parser (about 14 KB of Cortex-M flash):
/// at most 15 significant digits and a decimal exponent within ±22, where
/// one f64 multiplication or division of exact operands is correctly
/// rounded (Clinger's fast path, which `str::parse` takes for such input
/// too), so the result is bit-identical. The host writes recipes as
/// shortest round-trip f32 decimals (at most 9 digits); anything outside
/// the fast path is refused, never approximated.
pub fn parse_f32(text: &str) -> Option<f32> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (number, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut exp: i32 = match exponent {
        None => 0,
        Some(e) => {
            let (neg, digits) = match e.as_bytes().first()? {
                b'-' => (true, &e[1..]),
                b'+' => (false, &e[1..]),
                _ => (false, e),
            };
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let v = digits
                .bytes()
                .fold(0i32, |a, b| a * 10 + i32::from(b - b'0'));
            if neg {
                -v
            } else {
                v
            }
        }
    };
    // Significant digits (leading zeros dropped), then trailing zeros
    // folded into the exponent.
    let mut sig = [0u8; 40];
    let mut len = 0usize;
    let mut seen_point = false;
    let mut any = false;
    for b in number.bytes() {
        match b {
            b'0'..=b'9' => {
                any = true;
                if seen_point {
                    exp -= 1;
                }
                if len == 0 && b == b'0' {
                    continue;
                }
                *sig.get_mut(len)? = b - b'0';
                len += 1;
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !any {
        return None;
    }
    while len > 0 && sig[len - 1] == 0 {
        len -= 1;
        exp += 1;
    }
    if len > 15 {
        return None;
    }
    let mantissa = sig[..len].iter().fold(0u64, |a, &d| a * 10 + u64::from(d));
    let m = mantissa as f64; // exact: below 10^15 < 2^53
    let v = if mantissa == 0 {
        0.0
    } else if (0..=22).contains(&exp) {
        m * POW10[exp as usize]
    } else if (-22..0).contains(&exp) {
        m / POW10[(-exp) as usize]
    } else {
        return None;
    };
    let v = if negative { -v } else { v } as f32;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Encoding, Location};

    fn desc(dtype: DType, dims: &[u32], quant: Quant) -> TensorDesc {
        let mut d = [0u32; crate::format::MAX_RANK];
        d[..dims.len()].copy_from_slice(dims);
        TensorDesc {
            dtype,
            rank: dims.len() as u8,
            dims: d,
            location: Location::Arena,
            encoding: Encoding::Dense,
            offset: 0,
            length: 0,
            quant,
        }
    }

    #[test]
    fn encode_nchw_transposes_a_map_and_quantises_int8() {
        // NCHW [1, 3, 2, 2]: value = 100 * channel + pixel.
        let nchw: Vec<f32> = (0..3)
            .flat_map(|ch| (0..4).map(move |p| (100 * ch + p) as f32))
            .collect();
        let q = Quant::new(2.0, -5);
        let i8_in = desc(DType::I8, &[1, 2, 2, 3], q);
        let mut out = [0u8; 12];
        encode_nchw(&i8_in, &nchw, &mut out).unwrap();
        for p in 0..4 {
            for ch in 0..3 {
                let want = quantize_input((100 * ch + p) as f32, q);
                assert_eq!(out[p * 3 + ch] as i8, want, "pixel {p} channel {ch}");
            }
        }
        // Two items of 3 channels of 600 pixels: planes longer than the
        // encoder's blocks, and halves that round away from zero.
        let (n, c, hw) = (2, 3, 600);
        let mut nchw_big: Vec<f32> = (0..n * c * hw)
            .map(|i| (i % 517) as f32 * 0.75 - 190.0)
            .collect();
        // And what saturates or is not a number.
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e10,
            -1e10,
            8_388_608.0,
            -8_388_607.5,
            -0.0,
            254.999,
            -257.0,
        ];
        for (i, v) in specials.iter().enumerate() {
            nchw_big[i * 331] = *v;
        }
        let big = desc(DType::I8, &[n as u32, 20, 30, c as u32], q);
        let mut out_big = vec![0u8; n * c * hw];
        encode_nchw(&big, &nchw_big, &mut out_big).unwrap();
        // The recipe with Rust's saturating cast.
        let reference = |v: f32| {
            (round_half_away(v / q.scale) + q.zero_point as f32).clamp(-128.0, 127.0) as i8
        };
        for item in 0..n {
            for ch in 0..c {
                for p in 0..hw {
                    let want = reference(nchw_big[(item * c + ch) * hw + p]);
                    let got = out_big[(item * hw + p) * c + ch] as i8;
                    assert_eq!(got, want, "item {item} pixel {p} channel {ch}");
                }
            }
        }
        let f32_in = desc(DType::F32, &[1, 2, 2, 3], q);
        let mut fout = [0u8; 48];
        encode_nchw(&f32_in, &nchw, &mut fout).unwrap();
        let at = |b: &[u8], i: usize| f32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!(at(&fout, 3 + 2), 201.0, "pixel 1, channel 2");
        // A flat input keeps its order.
        let flat = desc(DType::F32, &[1, 12], q);
        encode_nchw(&flat, &nchw, &mut fout).unwrap();
        assert_eq!(at(&fout, 5), nchw[5]);
        // Wrong lengths and types are refused.
        assert_eq!(
            encode_nchw(&i8_in, &nchw[..11], &mut out),
            Err(EncodeError::Size {
                got: 11,
                expected: 12
            })
        );
        let i32_in = desc(DType::I32, &[1, 2, 2, 3], q);
        assert_eq!(
            encode_nchw(&i32_in, &nchw, &mut fout),
            Err(EncodeError::InputType)
        );
    }

    #[test]
    fn round_half_away_is_f32_round() {
        let mut x = 0x1234_5678u32;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = match i % 4 {
                0 => (x as f32 / u32::MAX as f32 - 0.5) * 600.0,
                1 => (x % 2001) as f32 / 4.0 - 250.0, // halves and quarters
                2 => f32::from_bits(x),
                _ => (x as i32) as f32 + 0.5,
            };
            let want = v.round();
            let got = round_half_away(v);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{v}: {got} vs {want}"
            );
        }
        for v in [
            0.49999997f32,
            -0.49999997,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            8388607.5,
        ] {
            assert_eq!(round_half_away(v).to_bits(), v.round().to_bits(), "{v}");
        }
    }

    #[test]
    fn parse_f32_reads_what_the_host_writes_bit_for_bit() {
        let mut x = 0x9e37_79b9u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = f32::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let text = format!("{v:?}");
            // The host: TOML reads an f64, serde casts it to f32.
            let want = text.parse::<f64>().unwrap() as f32;
            match parse_f32(&text) {
                Some(got) => assert_eq!(got.to_bits(), want.to_bits(), "{text}"),
                // Refused (outside the exact fast path), never approximated.
                None => assert!(
                    v.abs() > 1e22 || (v != 0.0 && v.abs() < 1e-13),
                    "{text} refused"
                ),
            }
        }
        for (t, v) in [
            ("0.003921569", 0.003921569f32),
            ("1", 1.0),
            ("-0.5", -0.5),
            ("1e-5", 1e-5),
            ("2.5E+2", 250.0),
            (".5", 0.5),
        ] {
            assert_eq!(parse_f32(t), Some(v), "{t}");
        }
        for t in [
            "", "-", "1.2.3", "abc", "1e", "1e1000", "nan", "inf", "0x10",
        ] {
            assert_eq!(parse_f32(t), None, "{t}");
        }
    }

    #[test]
    fn divisor_matches_the_hosts_rule() {
        assert_eq!(divisor_for(1.0 / 255.0), Some(255));
        assert_eq!(divisor_for(0.003_921_568_6), Some(255));
        assert_eq!(divisor_for(1.0), Some(1));
        assert_eq!(divisor_for(0.5), Some(2));
        assert_eq!(divisor_for(0.3), None);
        assert_eq!(divisor_for(2.0), None);
    }

    #[test]
    fn reads_the_recipe_the_host_writes() {
        let meta = b"[preprocess]\nresize = [256, 256]\ncrop = [224, 224]\nchannels = \"rgb\"\n\
                     scale = 0.003921569\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n\
                     layout = \"nchw\"\n";
        let r = InputRecipe::from_metadata(Some(meta)).expect("recipe");
        assert_eq!(r.divisor, Some(255.0));
        let want = (200.0f32 / 255.0 - 0.456) / 0.224;
        assert_eq!(r.value(200, 1).to_bits(), want.to_bits());
        assert!(r.check_channels(3).is_ok());
        assert!(r.check_channels(1).is_err());
        let none = InputRecipe::from_metadata(None).expect("default");
        assert_eq!(none.value(255, 0), 1.0);
        assert_eq!(
            InputRecipe::from_metadata(Some(b"[preprocess]\nstd = [0]\n")),
            Err(RecipeError::Degenerate)
        );
        assert_eq!(
            InputRecipe::from_metadata(Some(b"[preprocess]\nmean = [1, 2, 3, 4, 5]\n")),
            Err(RecipeError::BadValue("mean"))
        );
    }
}
