//! 2-D convolution, NHWC, dilation 1: regular (groups = 1) and depthwise.
//!
//! Weight layouts:
//! - regular: OHWI `[out_c, kernel_h, kernel_w, in_c]`
//! - depthwise: `[kernel_h, kernel_w, channels]`, channel fastest
//!
//! In the regular layout the taps of one kernel row that are in bounds, and
//! the input pixels they read, are both contiguous, so each kernel row is one
//! dot product of `(kx1 - kx0) * in_c` values.

use super::dot::dot_i8;
use super::{FloatAct, FloatWeight, Geom, I32s, KResult, QuantParams, ShapeError};

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
pub fn conv2d_i8(
    g: &Geom,
    depthwise: bool,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    q: &QuantParams<'_>,
    out: &mut [u8],
) -> KResult {
    check(g, depthwise, (x, w, out), 1, 1)?;
    let n = g.out_c;
    if q.multipliers.len() < n || q.shifts.len() < n || bias.is_some_and(|b| b.len() < n) {
        return Err(ShapeError);
    }
    if depthwise {
        return depthwise_i8(g, x, w, bias, q, out);
    }
    let (c, kh, kw) = (g.in_c, g.kernel_h, g.kernel_w);
    let mut pixels = out.chunks_exact_mut(n);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let span = cols.len() * c;
            let px = pixels.next().ok_or(ShapeError)?;
            for (oc, o) in px.iter_mut().enumerate() {
                let mut acc = bias.map_or(0, |b| b.get(oc));
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c;
                    let ws = ((oc * kh + ky) * kw + cols.k0) * c;
                    let xr = x.get(xs..xs + span).ok_or(ShapeError)?;
                    let wr = w.get(ws..ws + span).ok_or(ShapeError)?;
                    acc = acc.wrapping_add(dot_i8(xr, wr, q.in_zp));
                }
                *o = q.requantize(acc, oc);
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
    q: &QuantParams<'_>,
    out: &mut [u8],
) -> KResult {
    let c = g.in_c;
    let mut pixels = out.chunks_exact_mut(c);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let px = pixels.next().ok_or(ShapeError)?;
            for (blk, opx) in px.chunks_mut(BLOCK).enumerate() {
                let c0 = blk * BLOCK;
                let nb = opx.len();
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
                for (k, (o, &a)) in opx.iter_mut().zip(acc.iter()).enumerate() {
                    *o = q.requantize(a, c0 + k);
                }
            }
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
    check(g, depthwise, (x, w, out), 4, W::SIZE)?;
    let n = g.out_c;
    if bias.is_some_and(|b| b.len() < n * 4) {
        return Err(ShapeError);
    }
    let bias_at = |i: usize| bias.map_or(0.0, |b| super::f32_at(b, i));
    if depthwise {
        return depthwise_f::<W>(g, x, w, &bias_at, act, out);
    }
    let (c, kh, kw) = (g.in_c, g.kernel_h, g.kernel_w);
    let mut pixels = out.chunks_exact_mut(n * 4);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let span = cols.len() * c;
            let px = pixels.next().ok_or(ShapeError)?;
            for (oc, o) in px.chunks_exact_mut(4).enumerate() {
                let mut acc = bias_at(oc);
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c * 4;
                    let ws = ((oc * kh + ky) * kw + cols.k0) * c * W::SIZE;
                    let xr = x.get(xs..xs + span * 4).ok_or(ShapeError)?;
                    let wr = w.get(ws..ws + span * W::SIZE).ok_or(ShapeError)?;
                    acc += dot_f::<W>(xr, wr);
                }
                super::st_f32(o, act.apply(acc));
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
    const LANES: usize = 8;
    let mut acc = [0.0f32; LANES];
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
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

fn depthwise_f<W: FloatWeight>(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias_at: &impl Fn(usize) -> f32,
    act: FloatAct,
    out: &mut [u8],
) -> KResult {
    let c = g.in_c;
    let mut pixels = out.chunks_exact_mut(c * 4);
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let px = pixels.next().ok_or(ShapeError)?;
            for (blk, opx) in px.chunks_mut(BLOCK * 4).enumerate() {
                let c0 = blk * BLOCK;
                let nb = opx.len() / 4;
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
                for (o, &a) in opx.chunks_exact_mut(4).zip(acc.iter()) {
                    super::st_f32(o, act.apply(a));
                }
            }
        }
    }
    Ok(())
}
