//! NEON f32 convolution and dense (aarch64), bit-identical to the portable
//! float kernels in `conv.rs` and `dense.rs` (the aarch64 counterpart of
//! `float_x86.rs`).
//!
//! The portable regular conv computes each output as `acc = bias`, then
//! `acc += dot_f(x_row, w_row)` for each in-bounds kernel row, where
//! [`dot_f`](super::conv::dot_f) keeps eight partial sums (element `i` of the
//! row's in-bounds span goes to lane `i % 8`, each step `lane += x * w`, a
//! separate multiply and add) and combines them pairwise as
//! `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`. Padding taps are
//! skipped, not added as zeros. Dense is `bias + dot_f(x, row)`.
//!
//! Here the eight lanes of one output are two `float32x4_t` registers
//! (lanes 0-3 and 4-7), so these kernels run the very same lane sums:
//!
//! - `vmulq_f32` then `vaddq_f32` (`fmul` + `fadd`, never `fmla`: a fused
//!   multiply-add rounds once and would change the bits);
//! - the span's last `span % 8` elements copied into zeroed 8-element
//!   buffers (both operands): the padding lanes add `0.0 * 0.0 = +0.0`,
//!   which leaves a lane unchanged, because a lane starts at +0.0 and so can
//!   never hold -0.0 (`+0 + -0` and exact cancellation both give +0 when
//!   rounding to nearest);
//! - the same pairwise combination: `s = lo + hi` is `l_i + l_{i+4}`, then
//!   `(s0 + s2) + (s1 + s3)`, four outputs at a time with `vpaddq_f32`
//!   ([`combine4`]), then `acc + row sum` per output.
//!
//! What is blocked is the outputs: [`MR`] output pixels × [`NR`] output
//! channels per micro-kernel (16 accumulator registers of the 32: a 3 x 4
//! blocking's 24 spilled), so one load of a weight vector serves `MR`
//! pixels and one load of an input
//! vector `NR` channels. Pixels are only blocked together when their
//! windows have the same in-bounds kernel rows and columns (so the same
//! span, and the same lane for every tap); the blocks run over a chunk of
//! output channels whose weights stay in L2, one kernel row at a time.
//! No packing: the weights are read where they are (f16 weights are widened
//! into the plan's scratch by the caller, as on x86).
//!
//! The depthwise conv is vectorised across channels (each lane one channel,
//! taps in the portable order), dense across rows like the conv.
//!
//! NEON is baseline on aarch64 (`target_feature = "neon"`), so the
//! intrinsics themselves are safe to call; only the raw loads are unsafe.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use super::{FloatAct, FloatWeight, Geom, KResult, OutF, ShapeError};

/// Output pixels per micro-kernel block.
const MR: usize = 2;
/// Output channels per micro-kernel block.
const NR: usize = 4;
/// Most output channels per chunk.
const CM_MAX: usize = super::FLOAT_CM_MAX;
const _: () = assert!(CM_MAX.is_multiple_of(NR));
/// Target bytes of a chunk's weights (kept in L2 while every pixel block
/// runs over them).
const CHUNK_WEIGHT_BYTES: usize = 192 * 1024;
/// Dense rows per block.
const DR: usize = 8;

/// [`dot_f`](super::conv::dot_f)'s pairwise combination of four outputs'
/// lanes (`lo[j]`: lanes 0-3 of output `j`, `hi[j]`: lanes 4-7): lane `j`
/// of the result is `(s0 + s2) + (s1 + s3)` with `s_i = l_i + l_{i+4}`.
#[inline(always)]
fn combine4(lo: &[float32x4_t; 4], hi: &[float32x4_t; 4]) -> float32x4_t {
    // SAFETY: register-only NEON arithmetic; NEON is enabled for the whole
    // build (this module is compiled only with it).
    unsafe {
        let s = [
            vaddq_f32(lo[0], hi[0]),
            vaddq_f32(lo[1], hi[1]),
            vaddq_f32(lo[2], hi[2]),
            vaddq_f32(lo[3], hi[3]),
        ];
        // [s0_0 + s0_2, s0_1 + s0_3, s1_0 + s1_2, s1_1 + s1_3], likewise 2, 3.
        let pair = |a: float32x4_t, b: float32x4_t| {
            vaddq_f32(
                vcombine_f32(vget_low_f32(a), vget_low_f32(b)),
                vcombine_f32(vget_high_f32(a), vget_high_f32(b)),
            )
        };
        // Adjacent pairs: (s_0 + s_2) + (s_1 + s_3) per output.
        vpaddq_f32(pair(s[0], s[1]), pair(s[2], s[3]))
    }
}

/// `acc += x * w` on eight lanes (a separate multiply and add).
#[inline(always)]
fn mac(acc: &mut float32x4_t, x: float32x4_t, w: float32x4_t) {
    // SAFETY: register-only NEON arithmetic; NEON is enabled for the whole
    // build (this module is compiled only with it).
    *acc = unsafe { vaddq_f32(*acc, vmulq_f32(x, w)) };
}

/// Four lanes of +0.0.
#[inline(always)]
fn zero() -> float32x4_t {
    // SAFETY: as [`mac`].
    unsafe { vdupq_n_f32(0.0) }
}

/// Eight f32 from `p` as (lanes 0-3, lanes 4-7).
///
/// # Safety
/// 8 f32 from `p` must be readable (any alignment).
#[inline(always)]
unsafe fn load8(p: *const f32) -> (float32x4_t, float32x4_t) {
    // SAFETY: the caller's guarantee.
    unsafe { (vld1q_f32(p), vld1q_f32(p.add(4))) }
}

/// The first `r` (< 8) f32 from `p`, then zeros.
///
/// # Safety
/// `r` f32 from `p` must be readable.
#[inline(always)]
unsafe fn load_tail(p: *const f32, r: usize) -> (float32x4_t, float32x4_t) {
    let mut t = [0.0f32; 8];
    for (k, d) in t.iter_mut().enumerate().take(r) {
        // SAFETY: k < r, the caller's guarantee.
        *d = unsafe { p.add(k).read_unaligned() };
    }
    // SAFETY: `t` holds 8 f32.
    unsafe { load8(t.as_ptr()) }
}

/// The lane sums of `M` input rows against [`NR`] weight rows of `len` f32
/// each, combined and added to the running sums:
/// `run[p][j0 + j] += dot_f(x[p], w[j])`, bit for bit.
///
/// # Safety
/// The first `M` of `xp` and all [`NR`] of `wp` must each be valid for
/// reading `len` f32 (any alignment); `j0 + NR <= CM_MAX`.
#[inline(always)]
unsafe fn micro<const M: usize>(
    xp: &[*const f32; MR],
    wp: &[*const f32; NR],
    len: usize,
    run: &mut [[f32; CM_MAX]; MR],
    j0: usize,
) {
    let z = zero();
    let mut lo = [[z; NR]; M];
    let mut hi = [[z; NR]; M];
    let full = len & !7;
    let mut i = 0;
    while i < full {
        let mut wl = [z; NR];
        let mut wh = [z; NR];
        for j in 0..NR {
            // SAFETY: i + 8 <= len.
            (wl[j], wh[j]) = unsafe { load8(wp[j].add(i)) };
        }
        for p in 0..M {
            // SAFETY: i + 8 <= len.
            let (xl, xh) = unsafe { load8(xp[p].add(i)) };
            for j in 0..NR {
                mac(&mut lo[p][j], xl, wl[j]);
                mac(&mut hi[p][j], xh, wh[j]);
            }
        }
        i += 8;
    }
    if i < len {
        let r = len - i;
        let mut wl = [z; NR];
        let mut wh = [z; NR];
        for j in 0..NR {
            // SAFETY: i + r == len.
            (wl[j], wh[j]) = unsafe { load_tail(wp[j].add(i), r) };
        }
        for p in 0..M {
            // SAFETY: as above.
            let (xl, xh) = unsafe { load_tail(xp[p].add(i), r) };
            for j in 0..NR {
                mac(&mut lo[p][j], xl, wl[j]);
                mac(&mut hi[p][j], xh, wh[j]);
            }
        }
    }
    for p in 0..M {
        let sums = combine4(&lo[p], &hi[p]);
        if let Some(d) = run[p].get_mut(j0..j0 + NR) {
            // SAFETY: `d` holds NR = 4 f32.
            unsafe { vst1q_f32(d.as_mut_ptr(), vaddq_f32(vld1q_f32(d.as_ptr()), sums)) };
        }
    }
}

/// Regular f32 conv over output channels `oc0..oc0 + m`, whose weights
/// (f32, OHWI) are `w` (channel `oc0 + j` at `j * k`): writes those
/// channels of every output pixel ([`super::float_conv`]'s loops around
/// [`micro`]). The same bits as the portable loop.
///
/// The caller has checked `x` and `out` against `g`, and the residual.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_f32(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    oc0: usize,
    m: usize,
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    super::float_conv::<MR, NR>(
        g,
        x,
        w,
        (oc0, m),
        bias_at,
        CHUNK_WEIGHT_BYTES,
        out,
        |nb, _, xp, wp, span, run, jb| {
            // SAFETY: `float_conv`'s guarantee: the first `nb` pixel
            // pointers and all NR channel pointers each start `span`
            // readable f32; jb + NR <= CM_MAX.
            unsafe {
                match nb {
                    2 => micro::<2>(xp, wp, span, run, jb),
                    1 => micro::<1>(xp, wp, span, run, jb),
                    _ => return Err(ShapeError),
                }
            }
            Ok(())
        },
        |sums, base, out| {
            for (j, &a) in sums.iter().enumerate() {
                o.store(a, base + j, out);
            }
        },
    )
}

/// Depthwise f32 conv: each lane one channel, `acc = bias`, then
/// `acc += x * w` for every in-bounds tap in `(ky, kx)` order, as the
/// portable kernel. `w` is f32 `[kh, kw, c]`.
pub(crate) fn depthwise_f32(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    /// Registers of four channels per block.
    const V: usize = 4;
    const B: usize = 4 * V;
    let c = g.in_c;
    if w.len() < g.kernel_h * g.kernel_w * c * 4 {
        return Err(ShapeError);
    }
    let mut accs = [0.0f32; B];
    let mut base = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            for c0 in (0..c).step_by(B) {
                let nb = B.min(c - c0);
                for (k, b) in accs.iter_mut().enumerate() {
                    *b = if k < nb { bias_at(c0 + k) } else { 0.0 };
                }
                let mut acc = [zero(); V];
                for (v, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `accs` holds 4 * V f32.
                    *a = unsafe { vld1q_f32(accs.as_ptr().add(4 * v)) };
                }
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    for (s, kx) in (cols.k0..cols.k1).enumerate() {
                        let xs = (((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0) * 4;
                        let ws = ((ky * g.kernel_w + kx) * c + c0) * 4;
                        let xr = x.get(xs..xs + nb * 4).ok_or(ShapeError)?;
                        let wr = w.get(ws..ws + nb * 4).ok_or(ShapeError)?;
                        let (xq, wq) = (xr.as_ptr() as *const f32, wr.as_ptr() as *const f32);
                        for (v, a) in acc.iter_mut().enumerate() {
                            let at = 4 * v;
                            if at >= nb {
                                break;
                            }
                            let (xv, wv) = if at + 4 <= nb {
                                // SAFETY: at + 4 <= nb f32 of both slices.
                                unsafe { (vld1q_f32(xq.add(at)), vld1q_f32(wq.add(at))) }
                            } else {
                                // SAFETY: nb - at f32 from `at` are inside.
                                unsafe { (load4(xq.add(at), nb - at), load4(wq.add(at), nb - at)) }
                            };
                            mac(a, xv, wv);
                        }
                    }
                }
                for (v, a) in acc.iter().enumerate() {
                    // SAFETY: `accs` holds 4 * V f32.
                    unsafe { vst1q_f32(accs.as_mut_ptr().add(4 * v), *a) };
                }
                for (k, &a) in accs.iter().enumerate().take(nb) {
                    o.store(a, base + c0 + k, out);
                }
            }
            base += c;
        }
    }
    Ok(())
}

/// The first `r` (< 4) f32 from `p`, then zeros (lanes never stored).
///
/// # Safety
/// `r` f32 from `p` must be readable.
#[inline(always)]
unsafe fn load4(p: *const f32, r: usize) -> float32x4_t {
    let mut t = [0.0f32; 4];
    for (k, d) in t.iter_mut().enumerate().take(r) {
        // SAFETY: k < r, the caller's guarantee.
        *d = unsafe { p.add(k).read_unaligned() };
    }
    // SAFETY: `t` holds 4 f32.
    unsafe { vld1q_f32(t.as_ptr()) }
}

/// Dense: `out[i] = act(bias[i] + dot_f(x, w_row(i)))`, [`DR`] rows at a
/// time sharing each load of `x`. f32 weights are read in place; f16 ones
/// are widened (exactly, by the portable conversion) in pieces of
/// [`PIECE`] elements, a multiple of 8 so each piece's lanes are
/// `dot_f`'s, each weight once per call.
pub(crate) fn dense_f<W: FloatWeight>(
    x: &[u8],
    w: &[u8],
    bias_at: &impl Fn(usize) -> f32,
    act: FloatAct,
    out: &mut [u8],
) -> KResult {
    let (in_f, out_f) = (x.len() / 4, out.len() / 4);
    if in_f == 0 || w.len() != in_f * out_f * W::SIZE {
        return Err(ShapeError);
    }
    let xp = x.as_ptr() as *const f32;
    let mut wide = [[0.0f32; PIECE]; DR];
    for r0 in (0..out_f).step_by(DR) {
        let nr = DR.min(out_f - r0);
        // Past the last row, repeat it (computed, not stored).
        let mut rows: [&[u8]; DR] = [&[]; DR];
        for (t, p) in rows.iter_mut().enumerate() {
            let row = r0 + t.min(nr - 1);
            *p = w
                .get(row * in_f * W::SIZE..(row + 1) * in_f * W::SIZE)
                .ok_or(ShapeError)?;
        }
        let z = zero();
        let mut lo = [z; DR];
        let mut hi = [z; DR];
        if W::SIZE == 4 {
            let mut wp = [xp; DR];
            for (p, r) in wp.iter_mut().zip(rows.iter()) {
                *p = r.as_ptr() as *const f32;
            }
            // SAFETY: `x` and every row hold `in_f` f32.
            unsafe { dense_lanes(xp, &wp, in_f, &mut lo, &mut hi) };
        } else {
            for i0 in (0..in_f).step_by(PIECE) {
                let len = PIECE.min(in_f - i0);
                let mut wp = [xp; DR];
                for ((p, r), buf) in wp.iter_mut().zip(rows.iter()).zip(wide.iter_mut()) {
                    let src = r
                        .get(i0 * W::SIZE..(i0 + len) * W::SIZE)
                        .ok_or(ShapeError)?;
                    for (d, s) in buf.iter_mut().zip(src.chunks_exact(W::SIZE)) {
                        *d = W::decode(s);
                    }
                    *p = buf.as_ptr();
                }
                // SAFETY: `len` f32 from element `i0` of `x`, and `len` in
                // every widened piece.
                unsafe { dense_lanes(xp.add(i0), &wp, len, &mut lo, &mut hi) };
            }
        }
        let s = [
            combine4(&[lo[0], lo[1], lo[2], lo[3]], &[hi[0], hi[1], hi[2], hi[3]]),
            combine4(&[lo[4], lo[5], lo[6], lo[7]], &[hi[4], hi[5], hi[6], hi[7]]),
        ];
        let mut res = [0.0f32; DR];
        // SAFETY: `res` holds DR = 8 f32.
        unsafe {
            vst1q_f32(res.as_mut_ptr(), s[0]);
            vst1q_f32(res.as_mut_ptr().add(4), s[1]);
        }
        for (t, &s) in res.iter().enumerate().take(nr) {
            let i = r0 + t;
            if let Some(d) = out.get_mut(i * 4..) {
                super::st_f32(d, act.apply(bias_at(i) + s));
            }
        }
    }
    Ok(())
}

/// f16 weights widened per piece of this many elements (a multiple of 8).
const PIECE: usize = 64;
const _: () = assert!(PIECE.is_multiple_of(8));

/// Adds `x[..len]` against each of the [`DR`] rows `wp` to the lane sums
/// (`lo`: lanes 0-3, `hi`: 4-7), element `i` to lane `i % 8`.
///
/// # Safety
/// `xp` and every `wp` must be valid for reading `len` f32.
#[inline(always)]
unsafe fn dense_lanes(
    xp: *const f32,
    wp: &[*const f32; DR],
    len: usize,
    lo: &mut [float32x4_t; DR],
    hi: &mut [float32x4_t; DR],
) {
    let full = len & !7;
    let mut i = 0;
    while i < full {
        // SAFETY: i + 8 <= len.
        let (xl, xh) = unsafe { load8(xp.add(i)) };
        for t in 0..DR {
            // SAFETY: as above.
            let (wl, wh) = unsafe { load8(wp[t].add(i)) };
            mac(&mut lo[t], xl, wl);
            mac(&mut hi[t], xh, wh);
        }
        i += 8;
    }
    if i < len {
        let r = len - i;
        // SAFETY: i + r == len.
        let (xl, xh) = unsafe { load_tail(xp.add(i), r) };
        for t in 0..DR {
            // SAFETY: as above.
            let (wl, wh) = unsafe { load_tail(wp[t].add(i), r) };
            mac(&mut lo[t], xl, wl);
            mac(&mut hi[t], xh, wh);
        }
    }
}
