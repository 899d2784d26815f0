//! NEON int8 kernels with the dot-product extension (aarch64 `SDOT`,
//! Armv8.2 and later: Cortex-A55/A76/A78, Neoverse), chosen at run time by
//! [`super::neon`] (see there for the shared parts).
//!
//! `SDOT` adds four signed byte products into each i32 lane: 16
//! multiply-adds per instruction. It takes the raw int8 activations, so the
//! input zero point is folded into the bias: `Σ (x - zp) · w = Σ x · w -
//! zp · Σ w`, wrapping in i32 like the portable loop's sums (every product
//! and sum is exact modulo 2^32, so the order does not matter). Padding
//! taps are stored as `zp`, so they contribute `(zp - zp) · w = 0` as the
//! spec says, and taps past `k` have zero weights.
//!
//! Layout in the plan's scratch, [`super::scratch::vnni_layout`] (the
//! AVX-512 VNNI kernel's, inside the scratch sized for the AVX2 kernel):
//!
//! - panels of 16 output channels as `[k / 4][16][4]` signed bytes (zero
//!   past the last channel and the last tap), then the panel's
//!   requantisation constants with the corrected bias;
//! - a tile of [`MR`] pixels' im2col rows of raw `x` bytes, `k` rounded up
//!   to 4.
//!
//! The micro-kernel keeps 4 pixels × 16 channels in 16 accumulators and per
//! group of 4 taps loads the panel's 64 bytes (one `LD1` of 4 registers) and
//! issues 16 `SDOT` by lane. Stable Rust has no `SDOT` intrinsic yet
//! (`vdotq_laneq_s32` is behind `stdarch_neon_dotprod`), so it is one
//! instruction of inline assembly, in functions compiled with
//! `target_feature = "dotprod"`.
#![allow(unsafe_code)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::neon::{pack_consts, Gemm, MR};
use super::scratch::NR;
use super::{Geom, I32s, Out8};

/// `acc + (4-byte group LANE of a) · b`, lane-wise: `SDOT Vd.4S, Vn.16B,
/// Vm.4B[lane]`.
macro_rules! sdot_lane {
    ($acc:expr, $b:expr, $a:expr, $lane:literal) => {{
        let mut acc: int32x4_t = $acc;
        // SAFETY: register-only arithmetic; the enclosing function enables
        // the dot-product extension, which its caller guarantees.
        unsafe {
            asm!(
                concat!("sdot {acc:v}.4s, {b:v}.16b, {a:v}.4b[", $lane, "]"),
                acc = inout(vreg) acc,
                b = in(vreg) $b,
                a = in(vreg) $a,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }};
}

/// `acc + a · b` in groups of four bytes: `SDOT Vd.4S, Vn.16B, Vm.16B`.
///
/// # Safety
/// The CPU must support the dot-product extension.
#[target_feature(enable = "dotprod")]
#[inline]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// [`super::dot::dot_i8`] with `SDOT`: `Σ x · w - zp · Σ w`, the second sum
/// from `SDOT` against all-ones bytes; 16 values per step.
///
/// # Safety
/// The CPU must support the dot-product extension.
#[target_feature(enable = "dotprod")]
pub(crate) unsafe fn dot_i8(x: &[u8], w: &[u8], zp: i32) -> i32 {
    let n = x.len().min(w.len());
    let (x, w) = (x.get(..n).unwrap_or(&[]), w.get(..n).unwrap_or(&[]));
    let xc = x.chunks_exact(16);
    let wc = w.chunks_exact(16);
    let (xr, wr) = (xc.remainder(), wc.remainder());
    let ones = vdupq_n_s8(1);
    let (mut xw, mut sw) = (vdupq_n_s32(0), vdupq_n_s32(0));
    for (xa, wa) in xc.zip(wc) {
        // SAFETY: each chunk is 16 bytes.
        let xv = vld1q_s8(xa.as_ptr() as *const i8);
        let wv = vld1q_s8(wa.as_ptr() as *const i8);
        xw = sdot(xw, xv, wv);
        sw = sdot(sw, ones, wv);
    }
    let simd = vaddvq_s32(xw).wrapping_sub(zp.wrapping_mul(vaddvq_s32(sw)));
    simd.wrapping_add(super::dot::dot_i8_portable(xr, wr, zp))
}

/// The `SDOT` GEMM (see the module comment) for [`super::neon::gemm`], in
/// [`super::scratch::vnni_layout`]'s scratch: `units` tap quads per row.
/// Only [`Sdot::new`] makes one, which needs the CPU to have `SDOT`.
pub(crate) struct Sdot(());

impl Sdot {
    /// # Safety
    /// The CPU must support the dot-product extension.
    pub(crate) unsafe fn new() -> Self {
        Sdot(())
    }
}

impl Gemm for Sdot {
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
        pack_panel(w, k, n, oc0, pw);
        pack_consts(o, bias, oc0, pc);
        // SAFETY: an `Sdot` exists only where the CPU has `SDOT`.
        unsafe { fold_zero_point(pw, o.q.in_zp, pc) };
    }

    fn pack_pixel(&self, g: &Geom, x: &[u8], p: usize, zp: i32, row: &mut [u8]) {
        pack_pixel(g, x, p, zp as i8 as u8, row);
    }

    fn micro(&self, units: usize, xbuf: &[u8], pw: &[u8]) -> [[i32; NR]; MR] {
        // SAFETY: an `Sdot` exists only where the CPU has `SDOT`.
        unsafe { micro(units, xbuf, pw) }
    }
}

/// Packs output channels `oc0..oc0 + 16` as `[quads][16][4]` signed bytes
/// (zeros past `n` and past `k`).
fn pack_panel(w: &[u8], k: usize, n: usize, oc0: usize, panel: &mut [u8]) {
    panel.fill(0);
    for j in 0..NR.min(n.saturating_sub(oc0)) {
        let Some(src) = w.get((oc0 + j) * k..(oc0 + j + 1) * k) else {
            return;
        };
        let quads = src.chunks_exact(4);
        let tail = quads.remainder();
        let mut dst = panel.chunks_exact_mut(4).skip(j).step_by(NR);
        for (s, d) in quads.zip(&mut dst) {
            d.copy_from_slice(s);
        }
        if let Some(d) = dst.next() {
            for (d, &s) in d.iter_mut().zip(tail) {
                *d = s;
            }
        }
    }
}

/// Subtracts `zp · Σ_k w[oc, k]` from each channel's bias in the packed
/// constants (`consts` starts with the 16 biases), the sums by `SDOT`
/// against all-ones bytes over the packed panel.
#[target_feature(enable = "dotprod")]
unsafe fn fold_zero_point(panel: &[u8], zp: i32, consts: &mut [u8]) {
    let ones = vdupq_n_s8(1);
    let mut sum = [vdupq_n_s32(0); 4];
    for q in panel.chunks_exact(NR * 4) {
        // SAFETY: `q` is 64 bytes.
        let v = vld1q_s8_x4(q.as_ptr() as *const i8);
        sum[0] = sdot(sum[0], ones, v.0);
        sum[1] = sdot(sum[1], ones, v.1);
        sum[2] = sdot(sum[2], ones, v.2);
        sum[3] = sdot(sum[3], ones, v.3);
    }
    let zv = vdupq_n_s32(zp);
    for (h, s) in sum.iter().enumerate() {
        let Some(b) = consts.get_mut(h * 16..h * 16 + 16) else {
            return;
        };
        // SAFETY: `b` is 16 bytes.
        let p = b.as_mut_ptr() as *mut i32;
        vst1q_s32(p, vmlsq_s32(vld1q_s32(p), *s, zv));
    }
}

/// Packs output pixel `p`'s im2col row as raw `x` bytes, `zp` in padding
/// taps and 0 past the last tap.
fn pack_pixel(g: &Geom, x: &[u8], p: usize, zp: u8, row: &mut [u8]) {
    super::im2col_row(g, x, p, 1, zp, row, super::neon::copy_bytes);
}

/// `acc[t][j] = Σ_k x_t[k] · w[k][j]` for the [`MR`] byte rows of `xbuf`
/// (`quads` groups of 4 taps each) and the `[quads][16][4]` panel. Zeros if
/// the buffers are shorter than that.
#[target_feature(enable = "dotprod")]
unsafe fn micro(quads: usize, xbuf: &[u8], panel: &[u8]) -> [[i32; NR]; MR] {
    let mut out = [[0i32; NR]; MR];
    let row = quads * 4;
    if xbuf.len() < MR * row || panel.len() < quads * NR * 4 {
        return out;
    }
    let xp = xbuf.as_ptr() as *const i8;
    let wp = panel.as_ptr() as *const i8;
    let z = vdupq_n_s32(0);
    let mut c = [[z; 4]; MR];
    // One group of 4 taps (`$l` of the 4 in `a`) against 16 channels.
    macro_rules! step {
        ($w:expr, $a:expr, $l:literal) => {{
            // SAFETY: 64 bytes of the panel (checked by the callers below).
            let b = vld1q_s8_x4($w);
            for (ct, &at) in c.iter_mut().zip($a.iter()) {
                ct[0] = sdot_lane!(ct[0], b.0, at, $l);
                ct[1] = sdot_lane!(ct[1], b.1, at, $l);
                ct[2] = sdot_lane!(ct[2], b.2, at, $l);
                ct[3] = sdot_lane!(ct[3], b.3, at, $l);
            }
        }};
    }
    // SAFETY (loads): row `t` is `row` bytes at `t * row`, the panel
    // `quads * 64` bytes (checked above); the 4-quad steps read quads `q0..q0
    // + 4` with `q0 + 4 <= quads`, the tail steps single quads below `quads`.
    let mut q0 = 0;
    while q0 + 4 <= quads {
        let mut a = [vdupq_n_s8(0); MR];
        for (t, v) in a.iter_mut().enumerate() {
            *v = vld1q_s8(xp.add(t * row + q0 * 4));
        }
        let w = wp.add(q0 * NR * 4);
        step!(w, a, 0);
        step!(w.add(NR * 4), a, 1);
        step!(w.add(2 * NR * 4), a, 2);
        step!(w.add(3 * NR * 4), a, 3);
        q0 += 4;
    }
    while q0 < quads {
        let mut a = [vdupq_n_s8(0); MR];
        for (t, v) in a.iter_mut().enumerate() {
            let quad = (xp.add(t * row + q0 * 4) as *const i32).read_unaligned();
            *v = vreinterpretq_s8_s32(vdupq_n_s32(quad));
        }
        step!(wp.add(q0 * NR * 4), a, 0);
        q0 += 1;
    }
    for (o, ct) in out.iter_mut().zip(c.iter()) {
        let p = o.as_mut_ptr();
        vst1q_s32(p, ct[0]);
        vst1q_s32(p.add(4), ct[1]);
        vst1q_s32(p.add(8), ct[2]);
        vst1q_s32(p.add(12), ct[3]);
    }
    out
}
