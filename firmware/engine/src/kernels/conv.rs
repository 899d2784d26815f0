//! 2-D convolution, NHWC, dilation 1: regular (groups = 1) and depthwise.
//!
//! Weight layouts:
//! - regular: OHWI `[out_c, kernel_h, kernel_w, in_c]`
//! - depthwise: `[kernel_h, kernel_w, channels]`, channel fastest
//!
//! In the regular layout the taps of one kernel row that are in bounds, and
//! the input pixels they read, are both contiguous, so each kernel row is one
//! dot product of `(kx1 - kx0) * in_c` values.

use super::dot::dot_i8_with;
use super::{FloatAct, FloatWeight, Geom, I32s, KResult, Kx, Out8, OutF, QuantParams, ShapeError};

/// Channels processed per block in the depthwise kernels (stack accumulators).
const BLOCK: usize = 64;

/// Checks buffer lengths against the geometry; `asize`/`wsize` are the
/// activation and weight element sizes in bytes.
fn check(
    g: &Geom,
    depthwise: bool,
    bufs: (&[u8], &[u8], &[u8]),
    asize: usize,
    wsize: usize,
) -> KResult {
    let (x, w, out) = bufs;
    if depthwise && g.in_c != g.out_c {
        return Err(ShapeError);
    }
    let per_tap = if depthwise {
        Some(g.in_c)
    } else {
        g.in_c.checked_mul(g.out_c)
    };
    let w_len = per_tap
        .and_then(|v| v.checked_mul(g.kernel_h))
        .and_then(|v| v.checked_mul(g.kernel_w))
        .and_then(|v| v.checked_mul(wsize));
    let ok = g.input_len().and_then(|v| v.checked_mul(asize)) == Some(x.len())
        && g.output_len().and_then(|v| v.checked_mul(asize)) == Some(out.len())
        && w_len == Some(w.len())
        && g.stride_h > 0
        && g.stride_w > 0;
    if ok {
        Ok(())
    } else {
        Err(ShapeError)
    }
}

/// int8 convolution (regular or depthwise). `bias` is `i32[out_c]`.
/// Uses the SIMD kernels where available (no scratch).
pub fn conv2d_i8(
    g: &Geom,
    depthwise: bool,
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
    let o = Out8 { q, fuse: None };
    conv2d_i8_ex(g, depthwise, x, w, bias, &o, out, &mut kx)
}

/// [`conv2d_i8`] on an explicit kernel path, without scratch: for
/// comparing the paths (e.g. on a microcontroller, without a plan).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8_on(
    path: super::KernelPath,
    g: &Geom,
    depthwise: bool,
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
    let o = Out8 { q, fuse: None };
    conv2d_i8_ex(g, depthwise, x, w, bias, &o, out, &mut kx)
}

/// [`conv2d_i8`] with an optional fused residual Add and explicit kernel
/// choice and scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_i8_ex(
    g: &Geom,
    depthwise: bool,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
    kx: &mut Kx<'_>,
) -> KResult {
    check(g, depthwise, (x, w, out), 1, 1)?;
    o.check(out.len())?;
    let (q, n) = (o.q, g.out_c);
    if q.multipliers.len() < n || q.shifts.len() < n || bias.is_some_and(|b| b.len() < n) {
        return Err(ShapeError);
    }
    if depthwise {
        return depthwise_i8(g, x, w, bias, o, out);
    }
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if kx.simd {
        if let Some(r) = super::dsp_arm::conv_i8(g, x, w, bias, o, out) {
            return r;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if kx.vnni {
        let k = g.kernel_h * g.kernel_w * g.in_c;
        if let Some(lay) = super::scratch::vnni_layout(k, n, kx.scratch_len()) {
            if let Some(buf) = kx.scratch(lay.bytes()) {
                // SAFETY: `kx.vnni` is only set when AVX-512 F/BW/VNNI and
                // AVX2 are available.
                #[allow(unsafe_code)]
                let done = unsafe { super::gemm_vnni::conv_i8(g, x, w, bias, o, out, buf) };
                if let Some(r) = done {
                    return r;
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if kx.simd {
        if let Some(lay) = super::scratch::wino_layout(g, kx.scratch_len()) {
            if let Some(buf) = kx.scratch(lay.bytes()) {
                // SAFETY: `kx.simd` is only set when AVX2 is available.
                #[allow(unsafe_code)]
                let done = unsafe { super::wino_x86::conv_i8(g, x, w, bias, o, out, buf) };
                if let Some(r) = done {
                    return r;
                }
            }
        }
        let k = g.kernel_h * g.kernel_w * g.in_c;
        let avail = kx.scratch_len();
        if let Some(lay) = super::scratch::gemm_layout(k, n, avail) {
            if let Some(buf) = kx.scratch(lay.bytes()) {
                // SAFETY: `kx.simd` is only set when AVX2 is available.
                #[allow(unsafe_code)]
                let done = unsafe { super::gemm_x86::conv_i8(g, x, w, bias, o, out, buf) };
                if let Some(r) = done {
                    return r;
                }
            }
        }
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if kx.simd {
        if let Some(r) = super::neon::conv_i8(g, x, w, bias, o, out, kx) {
            return r;
        }
    }
    let (c, kh, kw) = (g.in_c, g.kernel_h, g.kernel_w);
    let mut i = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let span = cols.len() * c;
            for oc in 0..n {
                let mut acc = bias.map_or(0, |b| b.get(oc));
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c;
                    let ws = ((oc * kh + ky) * kw + cols.k0) * c;
                    let xr = x.get(xs..xs + span).ok_or(ShapeError)?;
                    let wr = w.get(ws..ws + span).ok_or(ShapeError)?;
                    acc = acc.wrapping_add(dot_i8_with(xr, wr, q.in_zp, kx.simd));
                }
                o.store(acc, oc, i, out);
                i += 1;
            }
        }
    }
    Ok(())
}

fn depthwise_i8(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
) -> KResult {
    let (c, q) = (g.in_c, o.q);
    let mut base = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            for c0 in (0..c).step_by(BLOCK) {
                let nb = BLOCK.min(c - c0);
                let mut acc = [0i32; BLOCK];
                for (k, a) in acc.iter_mut().take(nb).enumerate() {
                    *a = bias.map_or(0, |b| b.get(c0 + k));
                }
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    for (s, kx) in (cols.k0..cols.k1).enumerate() {
                        let xs = ((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0;
                        let ws = (ky * g.kernel_w + kx) * c + c0;
                        let xr = x.get(xs..xs + nb).ok_or(ShapeError)?;
                        let wr = w.get(ws..ws + nb).ok_or(ShapeError)?;
                        for ((a, &xv), &wv) in acc.iter_mut().zip(xr).zip(wr) {
                            let p = (xv as i8 as i32)
                                .wrapping_sub(q.in_zp)
                                .wrapping_mul(wv as i8 as i32);
                            *a = a.wrapping_add(p);
                        }
                    }
                }
                for (k, &a) in acc.iter().take(nb).enumerate() {
                    o.store(a, c0 + k, base + c0 + k, out);
                }
            }
            base += c;
        }
    }
    Ok(())
}

/// Float convolution (regular or depthwise) with f32 activations and bias
/// and `W` weights (f32 or f16). `bias` is f32 bytes, `out_c` values.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_f<W: FloatWeight>(
    g: &Geom,
    depthwise: bool,
    x: &[u8],
    w: &[u8],
    bias: Option<&[u8]>,
    act: FloatAct,
    out: &mut [u8],
) -> KResult {
    let o = OutF {
        act,
        residual: None,
    };
    conv2d_f_ex::<W>(g, depthwise, x, w, bias, &o, out, &mut Kx::portable())
}

/// [`conv2d_f`] with an optional fused residual and explicit scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_f_ex<W: FloatWeight>(
    g: &Geom,
    depthwise: bool,
    x: &[u8],
    w: &[u8],
    bias: Option<&[u8]>,
    o: &OutF<'_>,
    out: &mut [u8],
    kx: &mut Kx<'_>,
) -> KResult {
    check(g, depthwise, (x, w, out), 4, W::SIZE)?;
    o.check(out.len())?;
    let n = g.out_c;
    if bias.is_some_and(|b| b.len() < n * 4) {
        return Err(ShapeError);
    }
    let bias_at = |i: usize| bias.map_or(0.0, |b| super::f32_at(b, i));
    // AVX2: the same sums in the same order, vectorised (`float_x86`).
    // `wide`: AVX-512 kernels allowed and the CPU has F, VL and DQ, so the
    // 512-bit blocking.
    // NEON (aarch64): the same, with two 4-lane registers per output
    // (`float_neon`).
    let simd = cfg!(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    )) && kx.simd;
    #[cfg(target_arch = "x86_64")]
    let wide = kx.vnni && super::float_x86::wide_available();
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    #[cfg(target_arch = "x86_64")]
    if wide && !depthwise && super::float_x86::f16c_available() {
        let avail = kx.scratch_len();
        if let Some(buf) = kx.scratch(avail) {
            // SAFETY: `wide` means AVX-512 F, VL, DQ and AVX2; F16C was
            // checked too.
            #[allow(unsafe_code)]
            let done = unsafe {
                super::float_x86::conv_packed(g, x, w, W::SIZE == 2, &bias_at, o, out, buf)
            };
            if let Some(r) = done {
                return r;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if simd && W::SIZE == 4 {
        // SAFETY: `kx.simd` is only set when AVX2 is available; `wide` was
        // checked.
        #[allow(unsafe_code)]
        return unsafe {
            if depthwise {
                super::float_x86::depthwise_f32(g, x, w, &bias_at, o, out)
            } else {
                super::float_x86::conv_f32(g, x, w, 0, n, &bias_at, o, out, wide)
            }
        };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    if simd && W::SIZE == 4 {
        return if depthwise {
            super::float_neon::depthwise_f32(g, x, w, &bias_at, o, out)
        } else {
            super::float_neon::conv_f32(g, x, w, 0, n, &bias_at, o, out)
        };
    }
    if W::SIZE != 4 {
        // f16 weights: widen them once per call into scratch (as f32
        // bytes), then run the f32 loops on them: the same values in the
        // same order, so the same bits.
        let k = g.kernel_h * g.kernel_w * if depthwise { 1 } else { g.in_c };
        let per = k
            .checked_mul(if depthwise { g.in_c } else { 1 })
            .ok_or(ShapeError)?
            * 4;
        let avail = kx.scratch_len();
        if depthwise {
            if let Some(buf) = kx.scratch(per) {
                widen_with::<W>(w, buf, simd)?;
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: `kx.simd` is only set when AVX2 is available.
                    #[allow(unsafe_code)]
                    return unsafe { super::float_x86::depthwise_f32(g, x, buf, &bias_at, o, out) };
                }
                #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
                if simd {
                    return super::float_neon::depthwise_f32(g, x, buf, &bias_at, o, out);
                }
                return depthwise_f::<super::F32W>(g, x, buf, &bias_at, o, out);
            }
        } else if per > 0 && avail >= per {
            let nb = (avail / per).min(n);
            if let Some(buf) = kx.scratch(nb * per) {
                return regular_f_widened::<W>(g, x, w, &bias_at, o, out, buf, nb, (simd, wide));
            }
        }
    }
    if depthwise {
        return depthwise_f::<W>(g, x, w, &bias_at, o, out);
    }
    let (c, kh, kw) = (g.in_c, g.kernel_h, g.kernel_w);
    let mut i = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let span = cols.len() * c;
            for oc in 0..n {
                let mut acc = bias_at(oc);
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c * 4;
                    let ws = ((oc * kh + ky) * kw + cols.k0) * c * W::SIZE;
                    let xr = x.get(xs..xs + span * 4).ok_or(ShapeError)?;
                    let wr = w.get(ws..ws + span * W::SIZE).ok_or(ShapeError)?;
                    acc += dot_f::<W>(xr, wr);
                }
                o.store(acc, i, out);
                i += 1;
            }
        }
    }
    Ok(())
}

/// Writes `w`'s values as little-endian f32 into `buf` (`4 / W::SIZE`
/// times as long).
pub(crate) fn widen<W: FloatWeight>(w: &[u8], buf: &mut [u8]) -> KResult {
    if w.len() / W::SIZE * 4 != buf.len() {
        return Err(ShapeError);
    }
    for (d, s) in buf.chunks_exact_mut(4).zip(w.chunks_exact(W::SIZE)) {
        d.copy_from_slice(&W::decode(s).to_le_bytes());
    }
    Ok(())
}

/// [`widen`], with F16C (eight values per instruction, the same bits) when
/// `simd` and the CPU has it.
pub(crate) fn widen_with<W: FloatWeight>(w: &[u8], buf: &mut [u8], simd: bool) -> KResult {
    #[cfg(target_arch = "x86_64")]
    if simd && W::SIZE == 2 && super::float_x86::f16c_available() {
        if w.len() / 2 * 4 != buf.len() {
            return Err(ShapeError);
        }
        // SAFETY: F16C (and AVX2) were just detected.
        #[allow(unsafe_code)]
        unsafe {
            super::float_x86::widen_f16(w, buf)
        };
        return Ok(());
    }
    let _ = simd;
    widen::<W>(w, buf)
}

/// Regular float conv with `W` weights widened to f32 `nb` output channels
/// at a time into `buf` (each weight converted once per call), then every
/// output pixel swept for those channels (by the AVX2 or NEON kernel if `simd.0`,
/// with the AVX-512 register blocking if `simd.1`).
/// Same sums as the direct loop.
#[allow(clippy::too_many_arguments)]
fn regular_f_widened<W: FloatWeight>(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
    buf: &mut [u8],
    nb: usize,
    simd: (bool, bool),
) -> KResult {
    let (c, kh, kw, n) = (g.in_c, g.kernel_h, g.kernel_w, g.out_c);
    let k = kh * kw * c;
    for ob in (0..n).step_by(nb.max(1)) {
        let m = nb.min(n - ob);
        let src = w
            .get(ob * k * W::SIZE..(ob + m) * k * W::SIZE)
            .ok_or(ShapeError)?;
        let wb = buf.get_mut(..m * k * 4).ok_or(ShapeError)?;
        widen_with::<W>(src, wb, simd.0)?;
        let wb: &[u8] = wb;
        #[cfg(target_arch = "x86_64")]
        if simd.0 {
            // SAFETY: `simd.0` is only set when AVX2 is available, `simd.1`
            // when AVX-512 F, VL and DQ are too.
            #[allow(unsafe_code)]
            unsafe {
                super::float_x86::conv_f32(g, x, wb, ob, m, bias_at, o, out, simd.1)?;
            }
            continue;
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        if simd.0 {
            super::float_neon::conv_f32(g, x, wb, ob, m, bias_at, o, out)?;
            continue;
        }
        let _ = simd;
        let mut pix = 0;
        for oy in 0..g.out_h {
            let rows = g.rows(oy);
            for ox in 0..g.out_w {
                let cols = g.cols(ox);
                let span = cols.len() * c;
                for j in 0..m {
                    let oc = ob + j;
                    let mut acc = bias_at(oc);
                    for (r, ky) in (rows.k0..rows.k1).enumerate() {
                        let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c * 4;
                        let ws = ((j * kh + ky) * kw + cols.k0) * c * 4;
                        let xr = x.get(xs..xs + span * 4).ok_or(ShapeError)?;
                        let wr = wb.get(ws..ws + span * 4).ok_or(ShapeError)?;
                        acc += dot_f::<super::F32W>(xr, wr);
                    }
                    o.store(acc, pix * n + oc, out);
                }
                pix += 1;
            }
        }
    }
    Ok(())
}

/// `Σ x[i] * w[i]`, f32 activations against `W` weights.
///
/// Eight interleaved partial sums (lane `i % 8`), added pairwise at the end:
/// a fixed order, so still the same bits on every target, but one the
/// compiler can vectorise.
#[inline]
pub fn dot_f<W: FloatWeight>(x: &[u8], w: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    dot_f_lanes::<W>(x, w, &mut acc);
    combine_lanes(&acc)
}

/// The lane sums of [`dot_f`], added to `acc`: element `i` goes to lane
/// `i % 8`. Splitting a dot product at multiples of 8 elements and feeding
/// the pieces in order gives exactly [`dot_f`]'s lanes.
#[inline]
pub fn dot_f_lanes<W: FloatWeight>(x: &[u8], w: &[u8], acc: &mut [f32; 8]) {
    const LANES: usize = 8;
    let xc = x.chunks_exact(4 * LANES);
    let wc = w.chunks_exact(W::SIZE * LANES);
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (xa, wa) in xc.zip(wc) {
        let pairs = xa.chunks_exact(4).zip(wa.chunks_exact(W::SIZE));
        for (a, (xv, wv)) in acc.iter_mut().zip(pairs) {
            *a += super::ld_f32(xv) * W::decode(wv);
        }
    }
    let pairs = xr.chunks_exact(4).zip(wr.chunks_exact(W::SIZE));
    for (a, (xv, wv)) in acc.iter_mut().zip(pairs) {
        *a += super::ld_f32(xv) * W::decode(wv);
    }
}

/// [`dot_f`]'s final pairwise combination of the eight lanes.
#[inline]
pub fn combine_lanes(acc: &[f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

fn depthwise_f<W: FloatWeight>(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    let c = g.in_c;
    let mut base = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            for c0 in (0..c).step_by(BLOCK) {
                let nb = BLOCK.min(c - c0);
                let mut acc = [0f32; BLOCK];
                for (k, a) in acc.iter_mut().take(nb).enumerate() {
                    *a = bias_at(c0 + k);
                }
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    for (s, kx) in (cols.k0..cols.k1).enumerate() {
                        let xs = (((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0) * 4;
                        let ws = ((ky * g.kernel_w + kx) * c + c0) * W::SIZE;
                        let xr = x.get(xs..xs + nb * 4).ok_or(ShapeError)?;
                        let wr = w.get(ws..ws + nb * W::SIZE).ok_or(ShapeError)?;
                        let pairs = xr.chunks_exact(4).zip(wr.chunks_exact(W::SIZE));
                        for (a, (xv, wv)) in acc.iter_mut().zip(pairs) {
                            *a += super::ld_f32(xv) * W::decode(wv);
                        }
                    }
                }
                for (k, &a) in acc.iter().take(nb).enumerate() {
                    o.store(a, base + c0 + k, out);
                }
            }
            base += c;
        }
    }
    Ok(())
}
