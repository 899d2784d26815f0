//! NEON int8 kernels (aarch64): the inner product of dense layers and of
//! the direct conv loop, and a regular Conv2d as a packed GEMM in the plan's
//! scratch area, in two variants chosen at run time:
//!
//! - with the dot-product extension (`SDOT`, Armv8.2 and later: Cortex-A55,
//!   A76, A78, Neoverse): [`super::neon_dotprod`];
//! - without it (Armv8.0: Cortex-A53, A72 as in the Raspberry Pi 4): this
//!   file, widening multiply-accumulates (`SMLAL` by lane, `SMULL` /
//!   `SMLSL` / `SADALP`).
//!
//! The GEMM is `out[p, oc] = bias[oc] + Σ_k (x[p, k] - zp) · w[oc, k]` over
//! the im2col index `k = (ky, kx, c)` (the OHWI weight row), as in the x86
//! kernels. Without `SDOT` it packs, in the scratch the plan sized for the
//! AVX2 kernel ([`super::scratch::gemm_layout`], the same bytes):
//!
//! - panels of [`NR`] = 16 output channels, weights widened to i16 as
//!   `[k][16]` (zero past the last channel and the odd-k pad tap), then the
//!   panel's requantisation constants ([`pack_consts`]);
//! - a tile of [`MR`] = 4 output pixels' im2col rows as i16 `x - zp` (0 for
//!   padding taps, which the spec defines as contributing nothing).
//!
//! The micro-kernel keeps 4 pixels × 16 channels of i32 sums in 16 vector
//! registers and adds, per tap, `w[k][0..16] · (x - zp)[k]` with four
//! `SMLAL`/`SMLAL2` by lane per pixel. Each product is at most 255 · 128 in
//! magnitude and every sum wraps modulo 2^32 like the portable loop's, so
//! the sums are the portable kernel's exactly, in any order. Requantisation
//! and the fused residual Add run four lanes at a time with `SQRDMULH` and
//! `SRSHL` ([`Epi`]), gemmlowp's own NEON recipe, which is bit-exact with
//! the scalar one ([`super::requant`]; tested below on random and extreme
//! lanes).
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use super::scratch::{gemm_layout, vnni_layout, GemmLayout, NR, PANEL_CONSTS};
use super::{Geom, I32s, KResult, Kx, Out8, Residual, ShapeError};

/// Output pixels per micro-kernel call (both variants).
pub(crate) const MR: usize = 4;

/// Whether the dot-product extension (`SDOT`) is there: detected at run time
/// with the `std` feature, else when compiled in (`target_feature =
/// "dotprod"`).
pub fn dotprod_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "dotprod")
    }
}

/// `Σ (x[i] - zp) · w[i]` (see [`super::dot::dot_i8`]), wrapping i32, with
/// `SDOT` where the CPU has it.
pub(crate) fn dot_i8(x: &[u8], w: &[u8], zp: i32) -> i32 {
    if dotprod_available() {
        // SAFETY: the CPU has the dot-product extension (just checked).
        unsafe { super::neon_dotprod::dot_i8(x, w, zp) }
    } else {
        dot_i8_mull(x, w, zp)
    }
}

/// [`dot_i8`] without `SDOT`: 16 values per step; `x · w` with `SMULL`
/// (exact in i16: at most 128 · 128), then `- zp · w` with `SMLSL` (i16
/// arithmetic wraps, and the true value `(x - zp) · w`, at most 255 · 128 in
/// magnitude, fits i16, so the wrapped result is exact), then `SADALP`
/// pairs into i32 lanes.
pub(crate) fn dot_i8_mull(x: &[u8], w: &[u8], zp: i32) -> i32 {
    if !(-128..=127).contains(&zp) {
        return super::dot::dot_i8_portable(x, w, zp);
    }
    let n = x.len().min(w.len());
    let (x, w) = (x.get(..n).unwrap_or(&[]), w.get(..n).unwrap_or(&[]));
    let xc = x.chunks_exact(16);
    let wc = w.chunks_exact(16);
    let (xr, wr) = (xc.remainder(), wc.remainder());
    // SAFETY: NEON is part of the aarch64 target (the module is compiled
    // only with `target_feature = "neon"`); every load reads one 16-byte
    // chunk.
    let simd = unsafe {
        let zv = vdup_n_s8(zp as i8);
        let mut acc = vdupq_n_s32(0);
        for (xa, wa) in xc.zip(wc) {
            let xv = vld1q_s8(xa.as_ptr() as *const i8);
            let wv = vld1q_s8(wa.as_ptr() as *const i8);
            let lo = vmlsl_s8(
                vmull_s8(vget_low_s8(xv), vget_low_s8(wv)),
                zv,
                vget_low_s8(wv),
            );
            let hi = vmlsl_high_s8(vmull_high_s8(xv, wv), vcombine_s8(zv, zv), wv);
            acc = vpadalq_s16(acc, lo);
            acc = vpadalq_s16(acc, hi);
        }
        vaddvq_s32(acc)
    };
    simd.wrapping_add(super::dot::dot_i8_portable(xr, wr, zp))
}

/// Runs the NEON GEMM conv (`SDOT` where the CPU has it) if the scratch
/// the kernels may use holds one weight panel and the pixel tile, and the
/// input zero point is an int8 value. `None`: nothing was written, the
/// caller runs the direct loop.
///
/// The caller has checked the buffer lengths against `g` and the
/// per-channel arrays against `out_c`.
pub(crate) fn conv_i8(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
    kx: &mut Kx<'_>,
) -> Option<KResult> {
    if !(-128..=127).contains(&o.q.in_zp) {
        return None;
    }
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let n = g.out_c;
    if w.len() != n * k || x.len() != g.in_h * g.in_w * g.in_c || out.len() != g.out_h * g.out_w * n
    {
        return Some(Err(ShapeError));
    }
    if dotprod_available() {
        // (For a reduction of a few taps the SDOT layout's 4-tap rounding
        // may not fit where the SMLAL one does.)
        if let Some(lay) = vnni_layout(k, n, kx.scratch_len()) {
            let buf = kx.scratch(lay.bytes())?;
            // SAFETY: the CPU has the dot-product extension (just checked).
            let kern = unsafe { super::neon_dotprod::Sdot::new() };
            return Some(gemm(&kern, g, x, w, bias, o, out, buf, &lay));
        }
    }
    let lay = gemm_layout(k, n, kx.scratch_len())?;
    let buf = kx.scratch(lay.bytes())?;
    Some(gemm(&Mlal, g, x, w, bias, o, out, buf, &lay))
}

/// One GEMM variant: how it packs weight panels and pixel rows into the
/// scratch layout (`units` 4-byte units per im2col row, see
/// [`super::scratch::GemmLayout`]) and its micro-kernel.
pub(crate) trait Gemm {
    /// Bytes of one packed pixel row.
    fn row_bytes(&self, units: usize) -> usize;
    /// Packs output channels `oc0..oc0 + 16` (zeros past `n`) of the OHWI
    /// weights `w` (rows of `k`) into `pw` and their requantisation
    /// constants into `pc` ([`PANEL_CONSTS`] bytes, the layout [`Epi::new`]
    /// reads).
    #[allow(clippy::too_many_arguments)]
    fn pack_panel(
        &self,
        w: &[u8],
        k: usize,
        n: usize,
        oc0: usize,
        o: &Out8<'_, '_>,
        bias: Option<I32s<'_>>,
        pw: &mut [u8],
        pc: &mut [u8],
    );
    /// Packs output pixel `p`'s im2col row.
    fn pack_pixel(&self, g: &Geom, x: &[u8], p: usize, zp: i32, row: &mut [u8]);
    /// The sums of the [`MR`] packed rows of `xbuf` against panel `pw`.
    fn micro(&self, units: usize, xbuf: &[u8], pw: &[u8]) -> [[i32; NR]; MR];
}

/// Panels whose epilogue constants are loaded once for all pixel tiles.
const GROUP: usize = 4;

/// The GEMM conv of `kern` in `buf`, laid out as `lay`: as many weight
/// panels packed at a time as `lay` holds; for each group of up to
/// [`GROUP`] of them, every tile of [`MR`] pixels packed once and run
/// against each panel, then requantised. The caller has checked the buffer
/// lengths and that the input zero point is an int8 value.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<K: Gemm>(
    kern: &K,
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
    buf: &mut [u8],
    lay: &GemmLayout,
) -> KResult {
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let n = g.out_c;
    let row = kern.row_bytes(lay.units);
    let wlen = lay.units * NR * 4;
    if buf.len() < lay.bytes() || lay.panel_bytes < wlen + PANEL_CONSTS {
        return Err(ShapeError);
    }
    let (wbuf, rest) = buf.split_at_mut(lay.panels * lay.panel_bytes);
    let xbuf = rest.get_mut(..MR * row).ok_or(ShapeError)?;
    let zp = o.q.in_zp;
    let pixels = g.out_h * g.out_w;
    let total_panels = n.div_ceil(NR);
    for pb in (0..total_panels).step_by(lay.panels) {
        let np = lay.panels.min(total_panels - pb);
        for (j, panel) in wbuf.chunks_exact_mut(lay.panel_bytes).take(np).enumerate() {
            let (pw, pc) = panel.split_at_mut(wlen);
            kern.pack_panel(w, k, n, (pb + j) * NR, o, bias, pw, pc);
        }
        for g0 in (0..np).step_by(GROUP) {
            let ng = GROUP.min(np - g0);
            let mut eps: [Option<(&[u8], Epi)>; GROUP] = [None, None, None, None];
            for (h, e) in eps.iter_mut().take(ng).enumerate() {
                let oc0 = (pb + g0 + h) * NR;
                let at = (g0 + h) * lay.panel_bytes;
                let panel = wbuf.get(at..at + lay.panel_bytes).ok_or(ShapeError)?;
                let (pw, pc) = panel.split_at(wlen);
                *e = Some((pw, Epi::new(o, pc, NR.min(n - oc0))));
            }
            for p0 in (0..pixels).step_by(MR) {
                let mr = MR.min(pixels - p0);
                for (t, r) in xbuf.chunks_exact_mut(row).take(mr).enumerate() {
                    kern.pack_pixel(g, x, p0 + t, zp, r);
                }
                for (h, e) in eps.iter().enumerate() {
                    let Some((pw, ep)) = e else { break };
                    let acc = kern.micro(lay.units, xbuf, pw);
                    let oc0 = (pb + g0 + h) * NR;
                    for (t, a) in acc.iter().take(mr).enumerate() {
                        ep.store(a, (p0 + t) * n + oc0, out);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The GEMM without `SDOT` (see the module comment), in
/// [`gemm_layout`]'s scratch: `units` i16 pairs per row.
struct Mlal;

impl Gemm for Mlal {
    fn row_bytes(&self, units: usize) -> usize {
        units * 4
    }

    fn pack_panel(
        &self,
        w: &[u8],
        k: usize,
        n: usize,
        oc0: usize,
        o: &Out8<'_, '_>,
        bias: Option<I32s<'_>>,
        pw: &mut [u8],
        pc: &mut [u8],
    ) {
        pack_panel_i16(w, k, n, oc0, pw);
        pack_consts(o, bias, oc0, pc);
    }

    fn pack_pixel(&self, g: &Geom, x: &[u8], p: usize, zp: i32, row: &mut [u8]) {
        pack_pixel_i16(g, x, p, zp, row);
    }

    fn micro(&self, units: usize, xbuf: &[u8], pw: &[u8]) -> [[i32; NR]; MR] {
        micro_mlal(units * 2, xbuf, pw)
    }
}

/// Packs output channels `oc0..oc0 + 16` as `[kk][16]` little-endian i16
/// (zeros past `n` and past `k`).
fn pack_panel_i16(w: &[u8], k: usize, n: usize, oc0: usize, panel: &mut [u8]) {
    panel.fill(0);
    for j in 0..NR.min(n.saturating_sub(oc0)) {
        let Some(src) = w.get((oc0 + j) * k..(oc0 + j + 1) * k) else {
            return;
        };
        let full = src.chunks_exact(8);
        let tail = full.remainder();
        for (b, s) in full.enumerate() {
            // Widen 8 taps, then scatter them to their rows of the panel.
            let at = (b * 8 * NR + j) * 2;
            let Some(dst) = panel.get_mut(at..at + (7 * NR + 1) * 2) else {
                return;
            };
            // SAFETY: `s` is 8 bytes; `dst` holds taps `8b..8b + 8` of
            // channel `j` at `2 * NR` byte strides (sliced above).
            unsafe {
                let v = vmovl_s8(vld1_s8(s.as_ptr() as *const i8));
                let d = dst.as_mut_ptr() as *mut i16;
                d.write_unaligned(vgetq_lane_s16::<0>(v));
                d.add(NR).write_unaligned(vgetq_lane_s16::<1>(v));
                d.add(2 * NR).write_unaligned(vgetq_lane_s16::<2>(v));
                d.add(3 * NR).write_unaligned(vgetq_lane_s16::<3>(v));
                d.add(4 * NR).write_unaligned(vgetq_lane_s16::<4>(v));
                d.add(5 * NR).write_unaligned(vgetq_lane_s16::<5>(v));
                d.add(6 * NR).write_unaligned(vgetq_lane_s16::<6>(v));
                d.add(7 * NR).write_unaligned(vgetq_lane_s16::<7>(v));
            }
        }
        let done = k - tail.len();
        for (i, &v) in tail.iter().enumerate() {
            let at = ((done + i) * NR + j) * 2;
            if let Some(d) = panel.get_mut(at..at + 2) {
                d.copy_from_slice(&(v as i8 as i16).to_le_bytes());
            }
        }
    }
}

/// Packs output pixel `p`'s im2col row as i16 `x - zp` (0 in padding and
/// past the last tap).
fn pack_pixel_i16(g: &Geom, x: &[u8], p: usize, zp: i32, row: &mut [u8]) {
    super::im2col_row(g, x, p, 2, 0, row, |src, dst| widen_sub(src, dst, zp));
}

/// `dst.copy_from_slice(src)` for the short rows of im2col packing: 16
/// bytes at a time inline rather than a call to `memcpy`. Copies the
/// shorter length.
#[inline]
pub(crate) fn copy_bytes(src: &[u8], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let sc = src.chunks_exact(16);
    let tail = sc.remainder();
    let mut dc = dst.chunks_exact_mut(16);
    for (s, d) in sc.zip(&mut dc) {
        // SAFETY: NEON is there; `s` and `d` are 16 bytes.
        unsafe { vst1q_u8(d.as_mut_ptr(), vld1q_u8(s.as_ptr())) };
    }
    for (d, &s) in dc.into_remainder().iter_mut().zip(tail) {
        *d = s;
    }
}

/// `dst[i] = src[i] as i8 - zp` as little-endian i16 (`SSUBL`); `dst` is
/// twice `src`'s length, `zp` in -128..=127.
fn widen_sub(src: &[u8], dst: &mut [u8], zp: i32) {
    let sc = src.chunks_exact(16);
    let tail = sc.remainder();
    let mut dc = dst.chunks_exact_mut(32);
    // SAFETY: NEON is there; each load reads a 16-byte chunk `s`, each
    // store writes the 32-byte chunk `d`.
    unsafe {
        let zv = vdupq_n_s8(zp as i8);
        for s in sc {
            let Some(d) = dc.next() else { return };
            let v = vld1q_s8(s.as_ptr() as *const i8);
            let lo = vsubl_s8(vget_low_s8(v), vget_low_s8(zv));
            let hi = vsubl_high_s8(v, zv);
            vst1q_s16_x2(d.as_mut_ptr() as *mut i16, int16x8x2_t(lo, hi));
        }
    }
    let done = src.len() - tail.len();
    for (i, &v) in tail.iter().enumerate() {
        let at = (done + i) * 2;
        if let Some(d) = dst.get_mut(at..at + 2) {
            d.copy_from_slice(&((v as i8 as i16).wrapping_sub(zp as i16)).to_le_bytes());
        }
    }
}

/// One tap of the `SMLAL` micro-kernel: the 16 channels' weights `b` of tap
/// `L` of the 8 in `a[t]`, for the 4 pixels.
#[inline(always)]
fn mlal_tap<const L: i32>(c: &mut [[int32x4_t; 4]; MR], b: int16x8x2_t, a: &[int16x8_t; MR]) {
    // SAFETY: NEON is there; register-only arithmetic.
    unsafe {
        let (b0, b1) = (b.0, b.1);
        let (b0l, b1l) = (vget_low_s16(b0), vget_low_s16(b1));
        for (ct, &at) in c.iter_mut().zip(a.iter()) {
            ct[0] = vmlal_laneq_s16::<L>(ct[0], b0l, at);
            ct[1] = vmlal_high_laneq_s16::<L>(ct[1], b0, at);
            ct[2] = vmlal_laneq_s16::<L>(ct[2], b1l, at);
            ct[3] = vmlal_high_laneq_s16::<L>(ct[3], b1, at);
        }
    }
}

/// `acc[t][j] = Σ_k x_t[k] · w[k][j]` for the [`MR`] i16 rows of `xbuf`
/// (`kk` taps each, `kk` even) and the `[kk][16]` i16 panel. Zeros if the
/// buffers are shorter than that.
fn micro_mlal(kk: usize, xbuf: &[u8], panel: &[u8]) -> [[i32; NR]; MR] {
    let mut out = [[0i32; NR]; MR];
    if xbuf.len() < MR * kk * 2 || panel.len() < kk * NR * 2 {
        return out;
    }
    let xp = xbuf.as_ptr() as *const i16;
    let wp = panel.as_ptr() as *const i16;
    // SAFETY: NEON is there. Row `t` is `kk` i16 at `t * kk`, the panel
    // `kk * 16` i16 (both checked above); the 8-tap steps read taps `k0..k0
    // + 8` with `k0 + 8 <= kk`, the tail steps single taps below `kk`.
    unsafe {
        let z = vdupq_n_s32(0);
        let mut c = [[z; 4]; MR];
        let mut k0 = 0;
        while k0 + 8 <= kk {
            let mut a = [vdupq_n_s16(0); MR];
            for (t, v) in a.iter_mut().enumerate() {
                *v = vld1q_s16(xp.add(t * kk + k0));
            }
            let w = wp.add(k0 * NR);
            mlal_tap::<0>(&mut c, vld1q_s16_x2(w), &a);
            mlal_tap::<1>(&mut c, vld1q_s16_x2(w.add(NR)), &a);
            mlal_tap::<2>(&mut c, vld1q_s16_x2(w.add(2 * NR)), &a);
            mlal_tap::<3>(&mut c, vld1q_s16_x2(w.add(3 * NR)), &a);
            mlal_tap::<4>(&mut c, vld1q_s16_x2(w.add(4 * NR)), &a);
            mlal_tap::<5>(&mut c, vld1q_s16_x2(w.add(5 * NR)), &a);
            mlal_tap::<6>(&mut c, vld1q_s16_x2(w.add(6 * NR)), &a);
            mlal_tap::<7>(&mut c, vld1q_s16_x2(w.add(7 * NR)), &a);
            k0 += 8;
        }
        while k0 < kk {
            let mut a = [vdupq_n_s16(0); MR];
            for (t, v) in a.iter_mut().enumerate() {
                *v = vdupq_n_s16(xp.add(t * kk + k0).read_unaligned());
            }
            mlal_tap::<0>(&mut c, vld1q_s16_x2(wp.add(k0 * NR)), &a);
            k0 += 1;
        }
        for (o, ct) in out.iter_mut().zip(c.iter()) {
            let p = o.as_mut_ptr();
            vst1q_s32(p, ct[0]);
            vst1q_s32(p.add(4), ct[1]);
            vst1q_s32(p.add(8), ct[2]);
            vst1q_s32(p.add(12), ct[3]);
        }
    }
    out
}

/// Stores the bias, multiplier, left shift and negated right shift of
/// channels `oc0..oc0 + 16` (zeros past the last) as four `[i32; 16]`:
/// [`PANEL_CONSTS`] bytes, the layout [`Epi::new`] reads.
pub(crate) fn pack_consts(o: &Out8<'_, '_>, bias: Option<I32s<'_>>, oc0: usize, dst: &mut [u8]) {
    dst.fill(0);
    let n = o.q.multipliers.len().min(o.q.shifts.len());
    for j in 0..NR.min(n.saturating_sub(oc0)) {
        let s = o.q.shifts.get(oc0 + j);
        let vals = [
            bias.map_or(0, |v| v.get(oc0 + j)),
            o.q.multipliers.get(oc0 + j),
            s.clamp(0, 30),
            -((-s).clamp(0, 31)),
        ];
        for (f, v) in vals.iter().enumerate() {
            let at = (f * NR + j) * 4;
            if let Some(d) = dst.get_mut(at..at + 4) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// Lane-wise [`super::requant::multiply_by_quantized_multiplier`], with the
/// shift split into `left` (0..=30) and `neg_right` (`-right`, right in
/// 0..=31), gemmlowp's NEON recipe:
///
/// - `SSHL` by `left` wraps, as `wrapping_mul(1 << left)`;
/// - `SQRDMULH` is `(2ab + 2^31) >> 32` saturated, which is `floor((ab +
///   2^30) / 2^31)`: gemmlowp's `(ab + nudge) / 2^31` truncated (see
///   [`super::requant::requantize_fast`]), and `i32::MIN · i32::MIN`
///   saturates to `i32::MAX` as there;
/// - the rounding divide: `SRSHL` by `-right` is `floor((v + 2^(right-1)) /
///   2^right)`, computed without overflow; subtracting 1 from negative `v`
///   first (saturating; `i32::MIN` stays, which changes nothing as
///   `i32::MIN + 2^(right-1)` is not a multiple of `2^right`) makes ties
///   round away from zero: [`super::requant::rounding_divide_by_pot`]. The
///   `v & -right` sign test is 0 when `right == 0`.
#[inline(always)]
fn mbqm4(v: int32x4_t, m: int32x4_t, left: int32x4_t, neg_right: int32x4_t) -> int32x4_t {
    // SAFETY: NEON is there; register-only arithmetic.
    unsafe {
        let hm = vqrdmulhq_s32(vshlq_s32(v, left), m);
        let fix = vshrq_n_s32::<31>(vandq_s32(hm, neg_right));
        vrshlq_s32(vqaddq_s32(hm, fix), neg_right)
    }
}

/// One shift of the fused Add, as [`mbqm4`] takes it: `(multiplier, left,
/// -right)` broadcast.
#[derive(Clone, Copy)]
struct Uniform(int32x4_t, int32x4_t, int32x4_t);

impl Uniform {
    fn new(m: i32, shift: i32) -> Self {
        // SAFETY: NEON is there.
        unsafe {
            Uniform(
                vdupq_n_s32(m),
                vdupq_n_s32(shift.clamp(0, 30)),
                vdupq_n_s32(-((-shift).clamp(0, 31))),
            )
        }
    }

    #[inline(always)]
    fn apply(&self, v: int32x4_t) -> int32x4_t {
        mbqm4(v, self.0, self.1, self.2)
    }
}

/// The fused residual Add's constants, broadcast once per panel.
#[derive(Clone, Copy)]
struct FuseV {
    zp1: int32x4_t,
    zp2: int32x4_t,
    ls: int32x4_t,
    s1: Uniform,
    s2: Uniform,
    so: Uniform,
    out_zp: int32x4_t,
    lo: int32x4_t,
    hi: int32x4_t,
}

/// A panel's requantisation epilogue: 16 channels as four vectors.
pub(crate) struct Epi<'o, 'q, 'r> {
    o: &'o Out8<'q, 'r>,
    nn: usize,
    bias: [int32x4_t; 4],
    m: [int32x4_t; 4],
    left: [int32x4_t; 4],
    neg_right: [int32x4_t; 4],
    out_zp: int32x4_t,
    lo: int32x4_t,
    hi: int32x4_t,
    fuse: Option<FuseV>,
}

/// The clamp bounds of `v.max(lo).min(hi).clamp(-128, 127)` as one clamp:
/// for `lo <= hi` both clamp to the intersection of the two ranges (or its
/// nearer end when empty), for `lo > hi` both give `hi.clamp(-128, 127)`.
fn bounds(lo: i32, hi: i32) -> (int32x4_t, int32x4_t) {
    // SAFETY: NEON is there.
    unsafe {
        (
            vdupq_n_s32(lo.clamp(-128, 127)),
            vdupq_n_s32(hi.clamp(-128, 127)),
        )
    }
}

impl<'o, 'q, 'r> Epi<'o, 'q, 'r> {
    /// Loads the constants [`pack_consts`] stored (`consts` holds
    /// [`PANEL_CONSTS`] bytes; zeros if shorter) for `nn` channels.
    pub(crate) fn new(o: &'o Out8<'q, 'r>, consts: &[u8], nn: usize) -> Self {
        let mut c = [0u8; PANEL_CONSTS];
        if let Some(src) = consts.get(..PANEL_CONSTS) {
            c.copy_from_slice(src);
        }
        // SAFETY: NEON is there; 16 bytes at `(4 f + h) * 16` of the
        // 256-byte array.
        let ld = |f: usize| unsafe {
            let p = c.as_ptr().add(f * NR * 4) as *const i32;
            [
                vld1q_s32(p),
                vld1q_s32(p.add(4)),
                vld1q_s32(p.add(8)),
                vld1q_s32(p.add(12)),
            ]
        };
        let q = o.q;
        let (lo, hi) = bounds(q.act_min, q.act_max);
        let fuse = o.fuse.map(|f| {
            let a = &f.add;
            let p = &a.params;
            let (flo, fhi) = bounds(a.act_min, a.act_max);
            // SAFETY: NEON is there.
            unsafe {
                FuseV {
                    zp1: vdupq_n_s32(a.zp1),
                    zp2: vdupq_n_s32(a.zp2),
                    ls: vdupq_n_s32(p.left_shift.clamp(0, 30)),
                    s1: Uniform::new(p.input1_multiplier, p.input1_shift),
                    s2: Uniform::new(p.input2_multiplier, p.input2_shift),
                    so: Uniform::new(p.output_multiplier, p.output_shift),
                    out_zp: vdupq_n_s32(a.out_zp),
                    lo: flo,
                    hi: fhi,
                }
            }
        });
        Epi {
            o,
            nn,
            bias: ld(0),
            m: ld(1),
            left: ld(2),
            neg_right: ld(3),
            // SAFETY: NEON is there.
            out_zp: unsafe { vdupq_n_s32(q.out_zp) },
            lo,
            hi,
            fuse,
        }
    }

    /// Requantises (and adds the residual of) one pixel's 16 sums (bias
    /// not yet added) and stores the first `nn` at `out[base..]`.
    pub(crate) fn store(&self, acc: &[i32; NR], base: usize, out: &mut [u8]) {
        let Some(dst) = out.get_mut(base..base + self.nn) else {
            return;
        };
        // SAFETY: NEON is there; loads read 4 i32 at `4h` of the 16-element
        // `acc`, and 16 bytes of 16-byte arrays.
        unsafe {
            let mut v = [vdupq_n_s32(0); 4];
            for (h, vh) in v.iter_mut().enumerate() {
                let a = vaddq_s32(vld1q_s32(acc.as_ptr().add(4 * h)), self.bias[h]);
                let r = mbqm4(a, self.m[h], self.left[h], self.neg_right[h]);
                *vh = vminq_s32(vmaxq_s32(vaddq_s32(r, self.out_zp), self.lo), self.hi);
            }
            if let (Some(fv), Some(f)) = (&self.fuse, &self.o.fuse) {
                // The residual's bytes of these channels, sign-extended.
                let src: &[u8] = match f.residual {
                    Residual::Separate(s) => s.get(base..base + self.nn).unwrap_or(&[]),
                    Residual::InPlace => dst,
                };
                let mut rb = [0u8; NR];
                for (d, &s) in rb.iter_mut().zip(src) {
                    *d = s;
                }
                let r8 = vld1q_s8(rb.as_ptr() as *const i8);
                let (rl, rh) = (vmovl_s8(vget_low_s8(r8)), vmovl_high_s8(r8));
                let res = [
                    vmovl_s16(vget_low_s16(rl)),
                    vmovl_high_s16(rl),
                    vmovl_s16(vget_low_s16(rh)),
                    vmovl_high_s16(rh),
                ];
                for (vh, &r) in v.iter_mut().zip(res.iter()) {
                    let x1 = vshlq_s32(vsubq_s32(*vh, fv.zp1), fv.ls);
                    let x2 = vshlq_s32(vsubq_s32(r, fv.zp2), fv.ls);
                    let y = fv.so.apply(vaddq_s32(fv.s1.apply(x1), fv.s2.apply(x2)));
                    *vh = vminq_s32(vmaxq_s32(vaddq_s32(y, fv.out_zp), fv.lo), fv.hi);
                }
            }
            // Narrow the (already clamped to -128..=127) lanes to bytes.
            let w0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
            let w1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
            let b = vcombine_s8(vmovn_s16(w0), vmovn_s16(w1));
            if let Ok(d16) = <&mut [u8; NR]>::try_from(&mut *dst) {
                vst1q_s8(d16.as_mut_ptr() as *mut i8, b);
            } else {
                let mut bytes = [0u8; NR];
                vst1q_s8(bytes.as_mut_ptr() as *mut i8, b);
                for (d, &s) in dst.iter_mut().zip(bytes.iter()) {
                    *d = s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::requant::{multiply_by_quantized_multiplier, RequantCases};

    #[test]
    fn vector_requant_matches_scalar() {
        let mut cases = RequantCases::new(0x1234_5678_9abc_def1);
        for _ in 0..200_000 {
            let c = cases.lanes::<4>();
            let neg_right = c.right.map(|r| -r);
            let mut got = [0i32; 4];
            // SAFETY: NEON; 16-byte arrays.
            unsafe {
                let v = mbqm4(
                    vld1q_s32(c.xs.as_ptr()),
                    vld1q_s32(c.ms.as_ptr()),
                    vld1q_s32(c.left.as_ptr()),
                    vld1q_s32(neg_right.as_ptr()),
                );
                vst1q_s32(got.as_mut_ptr(), v);
            }
            for k in 0..4 {
                let want = multiply_by_quantized_multiplier(c.xs[k], c.ms[k], c.shifts[k]);
                assert_eq!(
                    got[k], want,
                    "x {} m {} shift {}",
                    c.xs[k], c.ms[k], c.shifts[k]
                );
            }
            // The uniform form, with lane 0's multiplier and shift.
            let u = Uniform::new(c.ms[0], c.shifts[0]);
            // SAFETY: as above.
            unsafe { vst1q_s32(got.as_mut_ptr(), u.apply(vld1q_s32(c.xs.as_ptr()))) };
            for k in 0..4 {
                let want = multiply_by_quantized_multiplier(c.xs[k], c.ms[0], c.shifts[0]);
                assert_eq!(
                    got[k], want,
                    "x {} m {} shift {}",
                    c.xs[k], c.ms[0], c.shifts[0]
                );
            }
        }
        // Every shift against the extremes of x, with typical multipliers.
        for shift in -31..=30 {
            for x in [i32::MIN, i32::MIN + 1, -3, -2, -1, 0, 1, 2, 3, i32::MAX] {
                for m in [i32::MIN, 0, 1, 1 << 30, i32::MAX] {
                    let u = Uniform::new(m, shift);
                    let mut got = [0i32; 4];
                    // SAFETY: NEON; 16-byte array.
                    unsafe { vst1q_s32(got.as_mut_ptr(), u.apply(vdupq_n_s32(x))) };
                    let want = multiply_by_quantized_multiplier(x, m, shift);
                    assert_eq!(got[0], want, "x {x} m {m} shift {shift}");
                }
            }
        }
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Both NEON dots (`SDOT` where this CPU has it) against the portable
    /// one, on random lengths, extremes and zero points.
    #[test]
    fn neon_dots_are_bit_identical_to_portable() {
        let dotprod = dotprod_available();
        if !dotprod {
            eprintln!("no dot-product extension on this CPU; checking SMULL only");
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut x = [0u8; 700];
        let mut w = [0u8; 700];
        for round in 0..4000 {
            let n = (rng.next() % 700) as usize;
            for v in x.iter_mut().chain(w.iter_mut()) {
                *v = rng.next() as u8;
            }
            if round % 7 == 0 {
                x.iter_mut().for_each(|v| *v = 0x80);
                w.iter_mut().for_each(|v| *v = 0x80);
            } else if round % 11 == 0 {
                x.iter_mut().for_each(|v| *v = 0x7f);
            }
            let zp = match round % 5 {
                0 => -128,
                1 => 127,
                _ => (rng.next() % 256) as i32 - 128,
            };
            let wl = if round % 3 == 0 { n / 2 } else { n };
            let (xs, ws) = (&x[..n], &w[..wl]);
            let want = super::super::dot::dot_i8_portable(xs, ws, zp);
            assert_eq!(dot_i8_mull(xs, ws, zp), want, "smull n={n} zp={zp}");
            assert_eq!(dot_i8(xs, ws, zp), want, "auto n={n} zp={zp}");
            if dotprod {
                // SAFETY: the dot-product extension was detected.
                let got = unsafe { super::super::neon_dotprod::dot_i8(xs, ws, zp) };
                assert_eq!(got, want, "sdot n={n} zp={zp}");
            }
        }
        for zp in [1000, -1000] {
            let want = super::super::dot::dot_i8_portable(&x[..64], &w[..64], zp);
            assert_eq!(dot_i8_mull(&x[..64], &w[..64], zp), want);
            assert_eq!(dot_i8(&x[..64], &w[..64], zp), want);
        }
    }

    /// A random conv geometry: kernels 1..=5 (1x1 often), strides 1..=2,
    /// padding up to the kernel size - 1 on each side, odd channel counts.
    fn random_geom(rng: &mut XorShift) -> Geom {
        let mut r = |lo: usize, hi: usize| lo + (rng.next() % (hi - lo + 1) as u64) as usize;
        let (kh, kw) = if r(0, 3) == 0 {
            (1, 1)
        } else {
            (r(1, 5), r(1, 5))
        };
        let (sh, sw) = (r(1, 2), r(1, 2));
        let (pt, pl, pb, pr) = (r(0, kh - 1), r(0, kw - 1), r(0, kh - 1), r(0, kw - 1));
        let (in_h, in_w) = (r(kh, 10), r(kw, 10));
        Geom {
            in_h,
            in_w,
            in_c: r(1, 40),
            out_h: (in_h + pt + pb - kh) / sh + 1,
            out_w: (in_w + pl + pr - kw) / sw + 1,
            out_c: r(1, 40),
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: pt,
            pad_left: pl,
        }
    }

    /// Both NEON GEMMs (`SDOT` where this CPU has it) against the portable
    /// conv loop, byte for byte: random geometries, zero points (the int8
    /// extremes included), -128 weights, with and without bias, every
    /// activation clamp, positive and negative shifts, a fused residual Add
    /// (separate and in place), and scratch for all panels or for one (so
    /// the weights are packed in several blocks).
    #[test]
    fn neon_gemms_are_bit_identical_to_portable() {
        use crate::format::AddParams;
        use crate::kernels::add::AddQuant;
        use crate::kernels::{scratch, QuantParams};
        let dotprod = dotprod_available();
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let bytes = |rng: &mut XorShift, n: usize| -> std::vec::Vec<u8> {
            (0..n).map(|_| rng.next() as u8).collect()
        };
        for round in 0..300 {
            let g = random_geom(&mut rng);
            let (k, n) = (g.kernel_h * g.kernel_w * g.in_c, g.out_c);
            let x = bytes(&mut rng, g.input_len().unwrap());
            let mut w = bytes(&mut rng, n * k);
            if round % 4 == 0 {
                w.iter_mut().step_by(5).for_each(|v| *v = 0x80);
            }
            let i32s = |v: std::vec::Vec<i32>| -> std::vec::Vec<u8> {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            };
            let bias = i32s(
                (0..n)
                    .map(|_| (rng.next() % 40001) as i32 - 20000)
                    .collect(),
            );
            let ms = i32s(
                (0..n)
                    .map(|_| (1 << 30) + (rng.next() % (1 << 30)) as i32)
                    .collect(),
            );
            let ss = i32s((0..n).map(|_| (rng.next() % 14) as i32 - 12).collect());
            let in_zp = match round % 5 {
                0 => -128,
                1 => 127,
                _ => (rng.next() % 256) as i32 - 128,
            };
            let (act_min, act_max) = match round % 3 {
                0 => (-128, 127),
                1 => (-5, 127),
                _ => (-20, 40),
            };
            let q = QuantParams {
                in_zp,
                out_zp: (rng.next() % 41) as i32 - 20,
                act_min,
                act_max,
                multipliers: I32s(&ms),
                shifts: I32s(&ss),
            };
            let residual = bytes(&mut rng, g.output_len().unwrap());
            let add = AddQuant {
                params: AddParams {
                    input1_multiplier: 1_600_000_000,
                    input1_shift: -1 - (round % 3) as i32,
                    input2_multiplier: 1_300_000_000,
                    input2_shift: -2,
                    output_multiplier: 1_900_000_000,
                    output_shift: -19 + (round % 2) as i32,
                    left_shift: 20,
                },
                zp1: q.out_zp,
                zp2: (rng.next() % 21) as i32 - 10,
                out_zp: (rng.next() % 21) as i32 - 10,
                act_min: if round % 2 == 0 { -128 } else { 0 },
                act_max: 127,
            };
            let fuse = crate::kernels::dsp_arm::tests::fuse_case(round % 3, &residual, add);
            let o = Out8 { q: &q, fuse };
            let b = (round % 4 != 1).then_some(I32s(&bias));
            let mut want = residual.clone();
            let r = crate::kernels::conv::conv2d_i8_ex(
                &g,
                false,
                &x,
                &w,
                b,
                &o,
                &mut want,
                &mut Kx::portable(),
            );
            assert_eq!(r, Ok(()));
            let full = scratch::conv(crate::format::Precision::Int8, &g, false);
            let mut check = |name: &str, lay: Option<GemmLayout>, dot: bool| {
                let Some(lay) = lay else {
                    // Only the SDOT layout, and only for a few taps, may
                    // not fit the scratch sized for the AVX2 kernel.
                    assert!(dot && k < 4, "{name}: no layout for {g:?}");
                    return;
                };
                let mut buf = bytes(&mut rng, lay.bytes());
                let mut got = residual.clone();
                let r = if dot {
                    // SAFETY: the dot-product extension was detected.
                    let kern = unsafe { super::super::neon_dotprod::Sdot::new() };
                    gemm(&kern, &g, &x, &w, b, &o, &mut got, &mut buf, &lay)
                } else {
                    gemm(&Mlal, &g, &x, &w, b, &o, &mut got, &mut buf, &lay)
                };
                assert_eq!(r, Ok(()));
                assert!(got == want, "{name} round {round}: {g:?} zp {in_zp}");
            };
            let one = |units: usize, rows: usize| units * (NR * 4 + rows * 4) + PANEL_CONSTS;
            check("smlal", gemm_layout(k, n, full), false);
            check(
                "smlal 1 panel",
                gemm_layout(k, n, one(k.div_ceil(2), 6)),
                false,
            );
            if dotprod {
                check("sdot", vnni_layout(k, n, full), true);
                check(
                    "sdot 1 panel",
                    vnni_layout(k, n, one(k.div_ceil(4), 12)),
                    true,
                );
            }
        }
    }
}
