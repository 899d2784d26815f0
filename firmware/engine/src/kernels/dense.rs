//! Fully connected layer: `y[o] = bias[o] + Σ_i x[i] * w[o, i]`, weights
//! `[out, in]` (row-major, one contiguous row per output).

use super::dot::dot_i8_with;
use super::{FloatAct, FloatWeight, I32s, KResult, Kx, Out8, OutF, QuantParams, ShapeError};

/// int8 dense. `x` has `in_f` values, `out` has `out_f`, `w` `out_f * in_f`.
pub fn dense_i8(
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    q: &QuantParams<'_>,
    out: &mut [u8],
) -> KResult {
    let mut kx = Kx {
        simd: super::dot::simd_available(),
        vnni: super::dot::vnni_available(),
        use_scratch: false,
        scratch: &mut [],
    };
    dense_i8_ex(x, w, bias, q, out, &mut kx)
}

/// [`dense_i8`] on an explicit kernel path, without scratch: for comparing
/// the paths.
pub fn dense_i8_on(
    path: super::KernelPath,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    q: &QuantParams<'_>,
    out: &mut [u8],
) -> KResult {
    let mut kx = Kx {
        simd: path.uses_simd(),
        vnni: path.uses_vnni(),
        use_scratch: false,
        scratch: &mut [],
    };
    dense_i8_ex(x, w, bias, q, out, &mut kx)
}

/// [`dense_i8`] with explicit kernel choice and scratch.
pub(crate) fn dense_i8_ex(
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    q: &QuantParams<'_>,
    out: &mut [u8],
    kx: &mut Kx<'_>,
) -> KResult {
    let (in_f, out_f) = (x.len(), out.len());
    if in_f == 0
        || in_f.checked_mul(out_f) != Some(w.len())
        || q.multipliers.len() < out_f
        || q.shifts.len() < out_f
        || bias.is_some_and(|b| b.len() < out_f)
    {
        return Err(ShapeError);
    }
    let o = Out8 { q, fuse: None };
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if kx.simd {
        if let Some(r) = super::dsp_arm::dense_i8(x, w, bias, &o, out) {
            return r;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if kx.vnni && (-128..=127).contains(&q.in_zp) {
        for (i, row) in w.chunks_exact(in_f).enumerate() {
            // SAFETY: `kx.vnni` is only set when AVX-512 F/BW/VNNI exist.
            #[allow(unsafe_code)]
            let dot = unsafe { super::dot::x86::dot_i8_vnni(x, row, q.in_zp) };
            o.store(bias.map_or(0, |b| b.get(i)).wrapping_add(dot), i, i, out);
        }
        return Ok(());
    }
    for (i, row) in w.chunks_exact(in_f).enumerate() {
        let acc = bias
            .map_or(0, |b| b.get(i))
            .wrapping_add(dot_i8_with(x, row, q.in_zp, kx.simd));
        o.store(acc, i, i, out);
    }
    Ok(())
}

/// Float dense: f32 activations and bias, `W` weights.
pub fn dense_f<W: FloatWeight>(
    x: &[u8],
    w: &[u8],
    bias: Option<&[u8]>,
    act: FloatAct,
    out: &mut [u8],
) -> KResult {
    dense_f_ex::<W>(x, w, bias, act, out, &mut Kx::portable())
}

/// [`dense_f`] with explicit kernel choice and scratch.
pub(crate) fn dense_f_ex<W: FloatWeight>(
    x: &[u8],
    w: &[u8],
    bias: Option<&[u8]>,
    act: FloatAct,
    out: &mut [u8],
    kx: &mut Kx<'_>,
) -> KResult {
    let (in_f, out_f) = (x.len() / 4, out.len() / 4);
    if in_f == 0
        || !x.len().is_multiple_of(4)
        || !out.len().is_multiple_of(4)
        || in_f.checked_mul(out_f).and_then(|v| v.checked_mul(W::SIZE)) != Some(w.len())
        || bias.is_some_and(|b| b.len() < out.len())
    {
        return Err(ShapeError);
    }
    #[cfg(target_arch = "x86_64")]
    if kx.simd {
        let bias_at = |i: usize| bias.map_or(0.0, |b| super::f32_at(b, i));
        if W::SIZE == 4 {
            // SAFETY: `kx.simd` is only set when AVX2 is available.
            #[allow(unsafe_code)]
            return unsafe { super::float_x86::dense_f32(x, w, &bias_at, act, out) };
        }
        if super::float_x86::f16c_available() {
            // SAFETY: AVX2 (`kx.simd`) and F16C were detected.
            #[allow(unsafe_code)]
            return unsafe { super::float_x86::dense_f16(x, w, &bias_at, act, out) };
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if kx.simd {
        // NEON: the same lanes, two 4-lane registers per row (`float_neon`).
        let bias_at = |i: usize| bias.map_or(0.0, |b| super::f32_at(b, i));
        return super::float_neon::dense_f::<W>(x, w, &bias_at, act, out);
    }
    let _ = &kx;
    let o = OutF {
        act,
        residual: None,
    };
    if W::SIZE != 4 {
        // Each weight is used once: widen each row in stack-sized pieces
        // (multiples of 8 elements, so the lanes are dot_f's) and run the
        // f32 dot product on them.
        const PIECE: usize = 256;
        let mut buf = [0u8; PIECE * 4];
        for (i, row) in w.chunks_exact(in_f * W::SIZE).enumerate() {
            let mut acc = [0.0f32; 8];
            let pieces = row.chunks(PIECE * W::SIZE).zip(x.chunks(PIECE * 4));
            for (wp, xp) in pieces {
                let wb = buf.get_mut(..wp.len() / W::SIZE * 4).ok_or(ShapeError)?;
                super::conv::widen::<W>(wp, wb)?;
                super::conv::dot_f_lanes::<super::F32W>(xp, wb, &mut acc);
            }
            let b = bias.map_or(0.0, |b| super::f32_at(b, i));
            o.store(b + super::conv::combine_lanes(&acc), i, out);
        }
        return Ok(());
    }
    let rows = w.chunks_exact(in_f * W::SIZE);
    for (i, row) in rows.enumerate() {
        let b = bias.map_or(0.0, |b| super::f32_at(b, i));
        o.store(b + super::conv::dot_f::<W>(x, row), i, out);
    }
    Ok(())
}
