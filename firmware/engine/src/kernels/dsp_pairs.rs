//! Cortex-M4/M7 DSP int8 regular conv, two output pixels at a time (the
//! CMSIS-NN arrangement). The instructions and the exactness argument are
//! those of `dsp_arm.rs` (int16 lanes never wrap, `SMLAD` sums are exact
//! modulo 2^32 in any order), so the bytes equal the portable kernel's.
//!
//! For a pair of output pixels both patches (`k = kernel_h * kernel_w *
//! in_c` taps each, as `x - zp`, 0 for padding taps) are expanded once into
//! a stack buffer of int16 pairs in `SXTB16` order, interleaved per four
//! taps as `[p0 even, p1 even, p0 odd, p1 odd]`. Each pair of output
//! channels is then one pass of the 2 × 2 micro-kernel ([`dot2x2`]): per
//! four taps two `LDRD`s bring the even and the odd pairs of both pixels,
//! each weight word is split by `SXTB16` once per pixel pair, and 8 `SMLAD`s
//! add 16 products: 17 instructions for 16 MACs (the one-pixel kernel of
//! `dsp_arm.rs` takes 18 for 12). The expansion, about 5 instructions per
//! four taps per pixel, is shared by all output channels. Padding taps are
//! zeros in the buffer rather than skipped: border pixels cost as much as
//! interior ones, and the loop has no row structure.
//!
//! Registers: 4 accumulators, 2 input pairs, 2 weight temporaries, the
//! buffer and weight pointers, the second channel's offset and the counter:
//! 12, which an `asm!` block on Thumb-2 can have (the second channel's word
//! is loaded twice rather than kept, which would take a 13th).
//!
//! The buffer is 2,304 bytes on the stack ([`MAX_K`] taps of two pixels,
//! within the firmware's measured stack), so the path is taken for `in_c %
//! 4 == 0` (whole words per tap) with `k <= MAX_K`, and for other `in_c`
//! (the `in_c = 1` stem) with `k` up to [`SMALL_K`] rounded up to whole
//! words (zero taps at the end; see `weights` in [`pairs`] for the weight
//! reads past a channel), always with at least 2 output channels; other
//! convs use `dsp_arm.rs`.
//!
//! Requantisation: where every channel's multiplier shifts right and no Add
//! is fused (every plain conv of the bundled models), each channel's
//! constants are derived once per channel pair and applied to both pixels
//! (`requant::RightShift`); otherwise per output as in `dsp_arm.rs`.
#![allow(unsafe_code)]

use super::dsp_arm::isa::{smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
use super::dsp_arm::{ld, neg_zp_pair, Rq};
use super::{requant, Geom, I32s, KResult, Out8, Residual, ShapeError};

/// Largest `kernel_h * kernel_w * in_c` for [`conv_pairs`] (3x3x64).
pub(crate) const MAX_K: usize = 576;

/// Largest `k`, rounded up to whole words, when `in_c` is not a multiple
/// of 4 (3x3x7; the stem is 3x3x1).
const SMALL_K: usize = 64;

/// Writes lane `P` (pixel 0 or 1) of `buf` with the patch of output pixel
/// `(oy, ox)`: for tap word `q`, `buf[4q + P]` the even pair and `buf[4q +
/// 2 + P]` the odd pair of `x - zp`, zeros for padding taps (and for the
/// taps past `k` up to the next word). `false` if the window is outside
/// `x` (nothing useful written).
fn expand<const P: usize>(
    g: &Geom,
    x: &[u8],
    (oy, ox): (usize, usize),
    zp: i32,
    buf: &mut [u32],
    v: &mut [i16; SMALL_K],
) -> bool {
    let (c, kw) = (g.in_c, g.kernel_w);
    let (rows, cols) = (g.rows(oy), g.cols(ox));
    if rows.is_empty() || cols.is_empty() {
        for q in buf.chunks_exact_mut(4) {
            q[P] = 0;
            q[2 + P] = 0;
        }
        return true;
    }
    // The window's last input byte, checked once per pixel.
    let last = ((rows.i0 + rows.len() - 1) * g.in_w + cols.i0 + cols.len()) * c;
    if last > x.len() || cols.i0 + cols.len() > g.in_w {
        return false;
    }
    let span = cols.len() * c;
    if c % 4 == 0 {
        // Whole words per tap: straight from the input words.
        if rows.len() < g.kernel_h || cols.len() < kw {
            for q in buf.chunks_exact_mut(4) {
                q[P] = 0;
                q[2 + P] = 0;
            }
        }
        let nz = neg_zp_pair(zp);
        for r in 0..rows.len() {
            let src = x
                .as_ptr()
                .wrapping_add(((rows.i0 + r) * g.in_w + cols.i0) * c);
            let q0 = ((rows.k0 + r) * kw + cols.k0) * c / 4;
            let Some(dst) = buf.get_mut(4 * q0..4 * q0 + span) else {
                return false;
            };
            for (i, d) in dst.chunks_exact_mut(4).enumerate() {
                // SAFETY: `src + 4 * i + 4 <= src + span`, at most `last <=
                // x.len()` bytes into `x` (checked above).
                let v = unsafe { ld(src.add(4 * i)) };
                d[P] = sxtab16(nz, v);
                d[2 + P] = sxtab16_ror8(nz, v);
            }
        }
        return true;
    }
    // Few taps, not whole words (the `in_c = 1` stem): gathered as int16
    // into `v` first, then packed. `v` is the caller's, zero past `k`; an
    // interior pixel overwrites all of `..k`, a border pixel clears it.
    let k = g.kernel_h * kw * c;
    if rows.len() < g.kernel_h || cols.len() < kw {
        v[..k.min(SMALL_K)].fill(0);
    }
    for r in 0..rows.len() {
        let src = ((rows.i0 + r) * g.in_w + cols.i0) * c;
        let dst = ((rows.k0 + r) * kw + cols.k0) * c;
        let (Some(d), Some(s)) = (v.get_mut(dst..dst + span), x.get(src..src + span)) else {
            return false;
        };
        for (d, &b) in d.iter_mut().zip(s) {
            // int8 minus int8 zero point: fits int16.
            *d = (b as i8 as i16).wrapping_sub(zp as i16);
        }
    }
    let pair = |a: i16, b: i16| (a as u16 as u32) | ((b as u16 as u32) << 16);
    for (d, t) in buf.chunks_exact_mut(4).zip(v.chunks_exact(4)) {
        d[P] = pair(t[0], t[2]);
        d[2 + P] = pair(t[1], t[3]);
    }
    true
}

/// One tap word of [`dot2x2`]: channel 0's word, both pixels' even pairs,
/// then the odd pairs; channel 1's word is loaded twice (see the module
/// notes on registers).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
macro_rules! word2x2 {
    () => {
        concat!(
            "ldr {w}, [{wp}], #4\n",
            "ldrd {xa}, {xb}, [{xp}], #8\n",
            "sxtb16 {t}, {w}\n",
            "smlad {a00}, {xa}, {t}, {a00}\n",
            "smlad {a10}, {xb}, {t}, {a10}\n",
            "ldr {t}, [{wp}, {km}]\n",
            "sxtb16 {t}, {t}\n",
            "smlad {a01}, {xa}, {t}, {a01}\n",
            "smlad {a11}, {xb}, {t}, {a11}\n",
            "ldrd {xa}, {xb}, [{xp}], #8\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "smlad {a00}, {xa}, {w}, {a00}\n",
            "smlad {a10}, {xb}, {w}, {a10}\n",
            "ldr {t}, [{wp}, {km}]\n",
            "sxtb16 {t}, {t}, ror #8\n",
            "smlad {a01}, {xa}, {t}, {a01}\n",
            "smlad {a11}, {xb}, {t}, {a11}\n",
        )
    };
}

/// `a = [p0·w0, p1·w0, p0·w1, p1·w1]` accumulated over `words` (>= 1) tap
/// words: `buf` as [`expand`] writes it, `w0` channel 0's weights and `w0 +
/// k` channel 1's.
///
/// # Safety
/// `buf..buf + 4 * words` and `w0..w0 + k + 4 * words` must be readable.
#[inline(always)]
unsafe fn dot2x2(buf: *const u32, w0: *const u8, k: usize, words: usize, a: &mut [u32; 4]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        use core::arch::asm;
        let [mut a00, mut a10, mut a01, mut a11] = *a;
        // SAFETY: reads `buf..buf + 16 * words` bytes and the two weight
        // rows `w0..w0 + 4 * words`, `w0 + k..w0 + k + 4 * words`, in bounds
        // by the caller's contract; registers only otherwise. SMLAD may set
        // Q: no `preserves_flags`.
        unsafe {
            asm!(
                // Odd `words`: enter at the second half of the unrolled body.
                "lsrs {n}, {n}, #1",
                "adc {n}, {n}, #0",
                "bcs 3f",
                "2:",
                word2x2!(),
                "3:",
                word2x2!(),
                "subs {n}, {n}, #1",
                "bne 2b",
                xp = inout(reg) buf => _, wp = inout(reg) w0 => _,
                // Channel 1's word, addressed from the already advanced `wp`.
                km = in(reg) k.wrapping_sub(4),
                n = inout(reg) words => _,
                a00 = inout(reg) a00, a10 = inout(reg) a10,
                a01 = inout(reg) a01, a11 = inout(reg) a11,
                xa = out(reg) _, xb = out(reg) _, w = out(reg) _, t = out(reg) _,
                options(readonly, nostack),
            );
        }
        *a = [a00, a10, a01, a11];
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    for i in 0..words {
        // SAFETY: forwarded from the caller.
        let (p, v0, v1) = unsafe {
            (
                core::slice::from_raw_parts(buf.add(4 * i), 4),
                ld(w0.add(4 * i)),
                ld(w0.add(k + 4 * i)),
            )
        };
        let (e0, o0, e1, o1) = (sxtb16(v0), sxtb16_ror8(v0), sxtb16(v1), sxtb16_ror8(v1));
        a[0] = smlad(p[2], o0, smlad(p[0], e0, a[0]));
        a[1] = smlad(p[3], o0, smlad(p[1], e0, a[1]));
        a[2] = smlad(p[2], o1, smlad(p[0], e1, a[2]));
        a[3] = smlad(p[3], o1, smlad(p[1], e1, a[3]));
    }
}

/// `a = [p0·w0, p1·w0]`: [`dot2x2`] for a single channel (the last one of
/// an odd count).
///
/// # Safety
/// `buf..buf + 4 * words` and `w0..w0 + 4 * words` must be readable.
#[inline(always)]
unsafe fn dot2x1(buf: *const u32, w0: *const u8, words: usize, a: &mut [u32; 2]) {
    for i in 0..words {
        // SAFETY: forwarded from the caller.
        let (p, v) = unsafe {
            (
                core::slice::from_raw_parts(buf.add(4 * i), 4),
                ld(w0.add(4 * i)),
            )
        };
        let (e, o) = (sxtb16(v), sxtb16_ror8(v));
        a[0] = smlad(p[2], o, smlad(p[0], e, a[0]));
        a[1] = smlad(p[3], o, smlad(p[1], e, a[1]));
    }
}

/// Requantises `acc` of channel `ch` into `d`, output element `i`, with the
/// fused residual Add if any.
///
/// # Safety
/// `ch` is below the channel count `rq` was checked for.
#[inline(always)]
unsafe fn put(rq: &Rq<'_>, o: &Out8<'_, '_>, acc: u32, ch: usize, i: usize, d: &mut u8) {
    // SAFETY: forwarded from the caller.
    let y = unsafe { rq.byte(acc, ch) };
    *d = match &o.fuse {
        None => y,
        Some(f) => {
            let r = match f.residual {
                Residual::Separate(s) => s.get(i).copied().unwrap_or(0),
                Residual::InPlace => *d,
            };
            f.add.add(y, r)
        }
    };
}

/// The two-pixel DSP conv (see the module notes). `None` when the shape is
/// not one it takes (the caller tries the next kernel); the caller has
/// checked that the input zero point is int8 and the per-channel arrays
/// hold `out_c` entries.
pub(crate) fn conv_pairs(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
) -> Option<KResult> {
    let (c, n) = (g.in_c, g.out_c);
    let k = g.kernel_h * g.kernel_w * c;
    // Taps rounded up to whole words; the extra ones are zeros in `buf`.
    let kp = k.next_multiple_of(4);
    let fits = if c % 4 == 0 {
        k <= MAX_K
    } else {
        kp <= SMALL_K
    };
    if k == 0 || !fits || n < 2 || !(-128..=127).contains(&o.q.in_zp) {
        return None;
    }
    let rq = Rq::new(o, bias, n)?;
    let pixels = g.out_h * g.out_w;
    if w.len() < n * k || out.len() < pixels * n {
        return Some(Err(ShapeError));
    }
    // Plain requantisation of every channel by a right shift (every conv
    // of the bundled models that has no fused Add): the per-channel
    // constants are computed once per channel pair, not per output.
    if o.fuse.is_none() && rq.all_right() {
        Some(pairs::<true>(g, x, w, o, &rq, out))
    } else {
        Some(pairs::<false>(g, x, w, o, &rq, out))
    }
}

/// The pixel-pair loop of [`conv_pairs`], whose checks it relies on. `PLAIN`:
/// no fused Add and [`Rq::all_right`].
fn pairs<const PLAIN: bool>(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    o: &Out8<'_, '_>,
    rq: &Rq<'_>,
    out: &mut [u8],
) -> KResult {
    let n = g.out_c;
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let kp = k.next_multiple_of(4);
    let pixels = g.out_h * g.out_w;
    let (words, zp) = (kp / 4, o.q.in_zp);
    let (out_zp, lo, hi) = rq.out();
    let mut stack_buf = [0u32; MAX_K];
    let buf = &mut stack_buf[..kp];
    let mut v = [0i16; SMALL_K];
    // With `kp > k` a channel's last word reads up to 3 bytes of the next
    // channel (times the zero taps). The last group (the channel pair, or
    // the single channel of an odd count), whose word may run past `w`, is
    // read from this zero-padded copy instead, made once.
    let last = if n.is_multiple_of(2) { n - 2 } else { n - 1 };
    let mut tail_w = [0u8; 2 * SMALL_K + 4];
    let tail = n * k + (kp - k) > w.len();
    if tail {
        // Only when `kp > k`, so `k < SMALL_K`: two channels fit `tail_w`.
        tail_w[..(n - last) * k].copy_from_slice(&w[last * k..n * k]);
    }
    let weights = |oc: usize| -> *const u8 {
        if tail && oc == last {
            tail_w.as_ptr()
        } else {
            w.as_ptr().wrapping_add(oc * k)
        }
    };
    let mut p = 0;
    while p < pixels {
        let two = p + 1 < pixels;
        if !expand::<0>(g, x, (p / g.out_w, p % g.out_w), zp, buf, &mut v) {
            return Err(ShapeError);
        }
        if two {
            if !expand::<1>(
                g,
                x,
                ((p + 1) / g.out_w, (p + 1) % g.out_w),
                zp,
                buf,
                &mut v,
            ) {
                return Err(ShapeError);
            }
        } else {
            // The last pixel of an odd count: lane 1 is computed and dropped.
            for q in buf.chunks_exact_mut(4) {
                q[1] = 0;
                q[3] = 0;
            }
        }
        let (at0, at1) = (p * n, (p + 1) * n);
        // The pair's outputs (one pixel's for the last of an odd count).
        let end = if two { at1 + n } else { at1 };
        let dst = out.get_mut(at0..end).ok_or(ShapeError)?;
        let mut oc = 0;
        while oc + 2 <= n {
            // SAFETY: `oc + 1 < n`, the count `Rq::new` checked.
            let (b0, b1) = unsafe { (rq.bias(oc), rq.bias(oc + 1)) };
            let mut a = [b0, b0, b1, b1];
            let wp = weights(oc);
            // SAFETY: `buf` holds `4 * words = kp` words; `wp` has `k + kp`
            // readable bytes: channels `oc` and `oc + 1` and what follows
            // inside `w` (`(oc + 2) * k + kp - k <= w.len()` unless `oc` is
            // the last group and `tail`), or the padded copy.
            unsafe { dot2x2(buf.as_ptr(), wp, k, words, &mut a) };
            if PLAIN {
                // SAFETY: `oc + 1 < n`; `all_right` holds (`PLAIN`).
                let (r0, r1) = unsafe { (rq.right(oc), rq.right(oc + 1)) };
                let v = |r: &requant::RightShift, acc: u32| r.apply(acc as i32, out_zp, lo, hi);
                dst[oc] = v(&r0, a[0]);
                dst[oc + 1] = v(&r1, a[2]);
                if two {
                    dst[n + oc] = v(&r0, a[1]);
                    dst[n + oc + 1] = v(&r1, a[3]);
                }
            } else {
                // SAFETY: `oc + 1 < n`.
                unsafe {
                    put(rq, o, a[0], oc, at0 + oc, &mut dst[oc]);
                    put(rq, o, a[2], oc + 1, at0 + oc + 1, &mut dst[oc + 1]);
                    if two {
                        put(rq, o, a[1], oc, at1 + oc, &mut dst[n + oc]);
                        put(rq, o, a[3], oc + 1, at1 + oc + 1, &mut dst[n + oc + 1]);
                    }
                }
            }
            oc += 2;
        }
        if oc < n {
            // SAFETY: `oc < n`.
            let b = unsafe { rq.bias(oc) };
            let mut a = [b, b];
            let wp = weights(oc);
            // SAFETY: as above, one channel (`kp` bytes).
            unsafe { dot2x1(buf.as_ptr(), wp, words, &mut a) };
            // SAFETY: `oc < n`.
            unsafe {
                put(rq, o, a[0], oc, at0 + oc, &mut dst[oc]);
                if two {
                    put(rq, o, a[1], oc, at1 + oc, &mut dst[n + oc]);
                }
            }
        }
        p += 2;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::AddParams;
    use crate::kernels::add::AddQuant;
    use crate::kernels::dsp_arm::tests::{geom, i32_bytes};
    use crate::kernels::{conv, FuseI8, Kx, QuantParams};

    /// Random convs this path takes, plain and with the fused residual Add
    /// (separate and in place): the portable kernel's bytes.
    #[test]
    fn pairs_equal_portable_with_and_without_residual() {
        let mut s = 0x5eed_0fc0_ffee_u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut taken = 0;
        for round in 0..300 {
            let mut r = |lo: usize, hi: usize| lo + (next() % (hi - lo + 1) as u64) as usize;
            let (kh, kw) = if round % 3 == 0 {
                (1, 1)
            } else {
                (r(1, 3), r(1, 3))
            };
            let in_c = if round % 4 == 1 {
                r(1, 7)
            } else {
                4 * r(1, 16)
            };
            let out_c = r(2, 9);
            let (sh, sw) = (r(1, 2), r(1, 2));
            let (in_h, in_w) = (r(kh, 8), r(kw, 8));
            let (pt, pl, pb, pr) = (r(0, kh - 1), r(0, kw - 1), r(0, kh - 1), r(0, kw - 1));
            let g = geom(
                (in_h, in_w),
                (in_c, out_c),
                (kh, kw),
                (sh, sw),
                (pt, pl, pb, pr),
            );
            let mut bytes = |n: usize| (0..n).map(|_| r(0, 255) as u8).collect::<Vec<u8>>();
            let x = bytes(in_h * in_w * in_c);
            let w = bytes(kh * kw * in_c * out_c);
            let resid = bytes(g.output_len().unwrap());
            let bias = i32_bytes(
                &(0..out_c)
                    .map(|i| i as i32 * 977 - 3000)
                    .collect::<Vec<_>>(),
            );
            let ms = i32_bytes(&vec![(1 << 30) + 12345; out_c]);
            let ss = i32_bytes(&(0..out_c).map(|i| -(7 + i as i32 % 5)).collect::<Vec<_>>());
            let q = QuantParams {
                in_zp: r(0, 255) as i32 - 128,
                out_zp: r(0, 20) as i32 - 10,
                act_min: if round % 2 == 0 { -128 } else { -3 },
                act_max: 127,
                multipliers: I32s(&ms),
                shifts: I32s(&ss),
            };
            let add = AddQuant {
                params: AddParams {
                    input1_multiplier: 1_518_500_250,
                    input1_shift: -1,
                    input2_multiplier: 1_173_741_824,
                    input2_shift: -2,
                    output_multiplier: 1_900_000_000,
                    output_shift: -18,
                    left_shift: 20,
                },
                zp1: q.out_zp,
                zp2: 5,
                out_zp: -3,
                act_min: 0,
                act_max: 127,
            };
            let b = (round % 4 != 0).then_some(I32s(&bias));
            for mode in 0..3 {
                let fuse = match mode {
                    0 => None,
                    1 => Some(FuseI8 {
                        residual: Residual::Separate(&resid),
                        add,
                    }),
                    _ => Some(FuseI8 {
                        residual: Residual::InPlace,
                        add,
                    }),
                };
                let o = Out8 { q: &q, fuse };
                let start = if mode == 2 {
                    resid.clone()
                } else {
                    vec![0; resid.len()]
                };
                let mut want = start.clone();
                conv::conv2d_i8_ex(&g, false, &x, &w, b, &o, &mut want, &mut Kx::portable())
                    .unwrap();
                let mut got = start;
                let done = conv_pairs(&g, &x, &w, b, &o, &mut got);
                if let Some(res) = done {
                    res.unwrap();
                    taken += 1;
                    assert_eq!(got, want, "{g:?} mode {mode}");
                }
            }
        }
        assert!(taken > 500, "the pair path took only {taken} cases");
    }
}
