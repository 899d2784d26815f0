//! Cortex-M4/M7 DSP-extension int8 conv and dense (SMLAD / SXTB16 /
//! SXTAB16), the CMSIS-NN approach without im2col and without scratch.
//!
//! Both kernels are one micro-kernel: one input span against `C` (up to
//! [`GROUP`]) weight rows. Four int8 values are one 32-bit load; `SXTB16`
//! and `SXTB16 ROR #8` split the weight word into the int16 pairs `(w0, w2)`
//! and `(w1, w3)`, `SXTAB16` does the same for the input word and adds the
//! packed `-zp` in the same instruction, so the pairs hold `x - zp`; two
//! `SMLAD`s then add the four products to an int32 accumulator. The input
//! pairs are reused for all `C` channels, so per four taps and `C = 3`
//! channels it is 1 + 2 input + 3 × 3 weight + 6 `SMLAD` = 18 instructions
//! for 12 MACs, plus the loop.
//!
//! Why 3 channels × 1 pixel: the Cortex-M4 has 13 registers free for an
//! `asm!` block (r0-r6, r8-r12, lr; r7 is the frame pointer, which
//! `-C force-frame-pointers=no` does not free on this target). Three
//! accumulators, the two input pairs, `-zp`, two weight temporaries, the
//! input and weight pointers, the channel stride (channel 2 is `[w, k, lsl
//! #1]`) and the counter take 12, so the word loop is one `asm!` block
//! ([`rows_hw`], unrolled twice: 38 instructions per 24 MACs, 1.58/MAC);
//! the row bookkeeping (words, input/weight row steps, rows left) lives in
//! a 4-word array on the stack, reloaded once per row. 4 channels or 2 × 2
//! tiles need more registers than there are.
//!
//! Per output, requantisation uses [`requant::requantize_fast`] (the same
//! results as `requantize`, tested exhaustively-ish against it; about 30
//! instructions instead of about 65), with the per-channel arrays checked
//! once per layer ([`Rq`]).
//!
//! Convs whose patch fits a small stack buffer (`in_c % 4 == 0` and up to
//! 576 taps, or up to 64 taps otherwise, e.g. the `in_c = 1` stem) go to
//! the two-pixel kernel of `dsp_pairs.rs` first, which reuses every weight
//! word for two output pixels; this file's one-pixel kernels take the rest
//! (larger patches, a single output channel).
//!
//! A regular conv (NHWC, OHWI weights) reads, for output pixel `(oy, ox)`,
//! one contiguous input span per kernel row (`cols.len() * in_c` bytes)
//! against the same-length weight span; the kernel rows are strided in both
//! (input `in_w * in_c`, weights `kernel_w * in_c`), which the micro-kernel
//! walks itself. Padding taps are skipped, as in the portable kernel (they
//! contribute `(zp - zp) · w = 0`). Dense is the one-row case.
//!
//! Exactness: `x - zp` is in `-255..=255` (both int8; other zero points
//! fall back to the portable kernel), each product at most `255 · 128 =
//! 32640` in magnitude, so the int16 lanes never wrap and each `SMLAD`
//! product pair is exact. `SMLAD` writes the low 32 bits of the exact sum
//! (it only sets the sticky Q flag on overflow), so the int32 accumulators
//! are exact sums modulo 2^32, in any order, just like the portable
//! kernel's `wrapping_add` sums: the bytes are identical. (Without wrapping
//! at all while `|bias| + taps · 32640 < 2^31`, i.e. up to about 65,000
//! taps for a small bias; beyond that both paths wrap identically.)
//!
//! The arithmetic goes through the functions in [`isa`]: single-instruction
//! `asm!` blocks on ARM with DSP, plain-Rust models of the same instructions
//! elsewhere, so host tests (`cfg(test)`) run this exact tiling against the
//! portable kernels.
#![allow(unsafe_code)]

use super::{requant, Geom, I32s, KResult, Out8, Residual, ShapeError};

const _: () = assert!(GROUP >= 1 && GROUP <= 3);

/// Output channels per micro-kernel call (accumulators in registers; see
/// the module notes for why 3).
pub(crate) const GROUP: usize = 3;

/// The DSP instructions used here, on int16 pairs packed in a `u32`
/// (low halfword = lane 0).
pub(crate) mod isa {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    mod hw {
        use core::arch::asm;

        /// `SXTB16 d, x`: bytes 0 and 2 of `x`, sign-extended to int16 lanes.
        #[inline(always)]
        pub fn sxtb16(x: u32) -> u32 {
            let d: u32;
            // SAFETY: a register-only ALU instruction; no memory, no flags.
            unsafe {
                core::arch::asm!("sxtb16 {d}, {x}", d = lateout(reg) d, x = in(reg) x,
                    options(pure, nomem, nostack, preserves_flags));
            }
            d
        }

        /// `SXTB16 d, x, ROR #8`: bytes 1 and 3 of `x`, sign-extended.
        #[inline(always)]
        pub fn sxtb16_ror8(x: u32) -> u32 {
            let d: u32;
            // SAFETY: a register-only ALU instruction; no memory, no flags.
            unsafe {
                asm!("sxtb16 {d}, {x}, ror #8", d = lateout(reg) d, x = in(reg) x,
                    options(pure, nomem, nostack, preserves_flags));
            }
            d
        }

        /// `SXTAB16 d, a, x`: lanes of `a` plus bytes 0 and 2 of `x`
        /// sign-extended (each lane modulo 2^16).
        #[inline(always)]
        pub fn sxtab16(a: u32, x: u32) -> u32 {
            let d: u32;
            // SAFETY: a register-only ALU instruction; no memory, no flags.
            unsafe {
                asm!("sxtab16 {d}, {a}, {x}", d = lateout(reg) d, a = in(reg) a, x = in(reg) x,
                    options(pure, nomem, nostack, preserves_flags));
            }
            d
        }

        /// `SXTAB16 d, a, x, ROR #8`: lanes of `a` plus bytes 1 and 3 of `x`.
        #[inline(always)]
        pub fn sxtab16_ror8(a: u32, x: u32) -> u32 {
            let d: u32;
            // SAFETY: a register-only ALU instruction; no memory, no flags.
            unsafe {
                asm!("sxtab16 {d}, {a}, {x}, ror #8", d = lateout(reg) d, a = in(reg) a,
                    x = in(reg) x, options(pure, nomem, nostack, preserves_flags));
            }
            d
        }

        /// `SMLAD d, a, b, acc`: `acc + a.lo * b.lo + a.hi * b.hi`, the low
        /// 32 bits (overflow only sets the sticky Q flag, which nothing reads).
        #[inline(always)]
        pub fn smlad(a: u32, b: u32, acc: u32) -> u32 {
            let d: u32;
            // SAFETY: a register-only ALU instruction; no memory. It may set
            // the Q flag, so the block does not claim `preserves_flags`.
            unsafe {
                asm!("smlad {d}, {a}, {b}, {c}", d = lateout(reg) d, a = in(reg) a, b = in(reg) b,
                    c = in(reg) acc, options(pure, nomem, nostack));
            }
            d
        }
    }

    /// Plain-Rust models of the same instructions (ARM ARM pseudocode), for
    /// host tests of the tiling.
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    mod hw {
        #[inline(always)]
        fn lanes(lo: i32, hi: i32) -> u32 {
            (lo as u16 as u32) | ((hi as u16 as u32) << 16)
        }

        #[inline(always)]
        fn lo(x: u32) -> i32 {
            x as u16 as i16 as i32
        }

        #[inline(always)]
        fn hi(x: u32) -> i32 {
            (x >> 16) as u16 as i16 as i32
        }

        pub fn sxtb16(x: u32) -> u32 {
            lanes(x as u8 as i8 as i32, (x >> 16) as u8 as i8 as i32)
        }

        pub fn sxtb16_ror8(x: u32) -> u32 {
            sxtb16(x.rotate_right(8))
        }

        pub fn sxtab16(a: u32, x: u32) -> u32 {
            let e = sxtb16(x);
            lanes(lo(a).wrapping_add(lo(e)), hi(a).wrapping_add(hi(e)))
        }

        pub fn sxtab16_ror8(a: u32, x: u32) -> u32 {
            sxtab16(a, x.rotate_right(8))
        }

        pub fn smlad(a: u32, b: u32, acc: u32) -> u32 {
            let sum = (acc as i32 as i64) + (lo(a) * lo(b)) as i64 + (hi(a) * hi(b)) as i64;
            sum as u32
        }
    }

    pub use hw::*;
}

use isa::{smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};

/// `-zp` in both int16 lanes (`zp` is int8, so `-zp` fits).
pub(super) fn neg_zp_pair(zp: i32) -> u32 {
    let n = zp.wrapping_neg() as u16 as u32;
    n | (n << 16)
}

/// Little-endian 32-bit load from any alignment (one `LDR` on Cortex-M4,
/// which allows unaligned word loads).
///
/// # Safety
/// `p..p + 4` must be readable.
#[inline(always)]
pub(super) unsafe fn ld(p: *const u8) -> u32 {
    // SAFETY: the caller guarantees 4 readable bytes; read_unaligned has no
    // alignment requirement.
    u32::from_le(unsafe { core::ptr::read_unaligned(p as *const u32) })
}

/// One step of four taps: `acc[j] += Σ_{t<4} (x[t] - zp) · w[j][t]`.
///
/// # Safety
/// `x..x + 4` and every `w[j]..w[j] + 4` must be readable.
#[inline(always)]
unsafe fn step<const C: usize>(x: *const u8, w: &[*const u8; C], nz: u32, acc: &mut [u32; C]) {
    // SAFETY: forwarded from the caller.
    let xv = unsafe { ld(x) };
    let (xe, xo) = (sxtab16(nz, xv), sxtab16_ror8(nz, xv));
    for (a, &wp) in acc.iter_mut().zip(w.iter()) {
        // SAFETY: forwarded from the caller.
        let wv = unsafe { ld(wp) };
        *a = smlad(xo, sxtb16_ror8(wv), smlad(xe, sxtb16(wv), *a));
    }
}

/// `acc[j] += Σ (x[t] - zp) · w[j][t]` over `4 * words` taps (`words >=
/// 1`), where `w[j] = w0 + j * kst`, for `C` = 2 or 3: the word loop of
/// [`dot_rows`] as one `asm!` block, so that the accumulators, the pairs
/// and `-zp` all stay in registers (12 for `C = 3`).
///
/// # Safety
/// `x..x + 4 * words` and `w0 + j * kst..+ 4 * words` must be readable for
/// every `j < C`; `C` is 2 or 3.
#[inline(always)]
unsafe fn words_asm<const C: usize>(
    x: *const u8,
    w0: *const u8,
    kst: usize,
    words: usize,
    nz: u32,
    a: &mut [u32; C],
) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        // SAFETY: forwarded from the caller.
        unsafe { words_hw(x, w0, kst, words, nz, a) }
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    {
        let w: [*const u8; C] = core::array::from_fn(|j| w0.wrapping_add(j * kst));
        for i in 0..words {
            // SAFETY: forwarded from the caller.
            unsafe { step(x.add(4 * i), &w.map(|p| p.add(4 * i)), nz, a) };
        }
    }
}

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
macro_rules! ch_step {
    ($ld:literal, $acc:literal) => {
        concat!(
            "ldr {w}, ",
            $ld,
            "\n",
            "sxtb16 {t}, {w}\n",
            "smlad ",
            $acc,
            ", {xe}, {t}, ",
            $acc,
            "\n",
            "sxtb16 {w}, {w}, ror #8\n",
            "smlad ",
            $acc,
            ", {x}, {w}, ",
            $acc,
            "\n",
        )
    };
}

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
macro_rules! x_step {
    () => {
        concat!(
            "ldr {x}, [{xp}], #4\n",
            "sxtab16 {xe}, {nz}, {x}\n",
            "sxtab16 {x}, {nz}, {x}, ror #8\n",
        )
    };
}

/// [`words_asm`] over `rows` rows of `words` words: row `r` reads `x + r *
/// xs` and `w0 + j * kst + r * ws`, the whole walk in one `asm!` block (the
/// row bookkeeping in a small array on the stack: no register is left).
///
/// # Safety
/// Every such row must be readable (`rows, words >= 1`); `C` is 2 or 3.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_asm<const C: usize>(
    x: *const u8,
    w0: *const u8,
    kst: usize,
    rows: usize,
    words: usize,
    xs: usize,
    ws: usize,
    nz: u32,
    a: &mut [u32; C],
) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        // SAFETY: forwarded from the caller.
        unsafe { rows_hw(x, w0, kst, rows, words, xs, ws, nz, a) }
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    for r in 0..rows {
        let (xr, wr) = (x.wrapping_add(r * xs), w0.wrapping_add(r * ws));
        // SAFETY: forwarded from the caller.
        unsafe { words_asm(xr, wr, kst, words, nz, a) };
    }
}

/// See [`rows_asm`].
///
/// # Safety
/// As [`rows_asm`].
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_hw<const C: usize>(
    x: *const u8,
    w0: *const u8,
    kst: usize,
    rows: usize,
    words: usize,
    xs: usize,
    ws: usize,
    nz: u32,
    a: &mut [u32; C],
) {
    use core::arch::asm;
    let span = 4 * words;
    // words, input and weight adjustment at the end of a row, rows left.
    let mut p: [usize; 4] = [words, xs.wrapping_sub(span), ws.wrapping_sub(span), rows];
    let pp = p.as_mut_ptr();
    if C == 3 {
        let [mut a0, mut a1, mut a2] = [a[0], a[1], a[2 % C]];
        // SAFETY: reads the rows described in the caller's contract, and
        // reads/writes `p` (a local array; its address is an operand);
        // pushes one word, popped before the end. Registers otherwise.
        // SMLAD may set Q: no `preserves_flags`.
        unsafe {
            asm!(
                "push {{{t}}}",
                "1:",
                "ldr {t}, [sp]",
                "ldr {n}, [{t}]",
                "lsrs {n}, {n}, #1",
                "adc {n}, {n}, #0",
                "bcs 3f",
                "2:",
                x_step!(),
                ch_step!("[{wp}, {k}]", "{a1}"),
                ch_step!("[{wp}, {k}, lsl #1]", "{a2}"),
                ch_step!("[{wp}], #4", "{a0}"),
                "3:",
                x_step!(),
                ch_step!("[{wp}, {k}]", "{a1}"),
                ch_step!("[{wp}, {k}, lsl #1]", "{a2}"),
                ch_step!("[{wp}], #4", "{a0}"),
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldr {t}, [sp]",
                "ldr {x}, [{t}, #4]",
                "add {xp}, {xp}, {x}",
                "ldr {x}, [{t}, #8]",
                "add {wp}, {wp}, {x}",
                "ldr {x}, [{t}, #12]",
                "subs {x}, {x}, #1",
                "str {x}, [{t}, #12]",
                "bne 1b",
                "add sp, sp, #4",
                xp = inout(reg) x => _, wp = inout(reg) w0 => _, k = in(reg) kst,
                n = out(reg) _, nz = in(reg) nz,
                a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2,
                x = out(reg) _, xe = out(reg) _, w = out(reg) _, t = inout(reg) pp => _,
            );
        }
        a[0] = a0;
        a[1] = a1;
        a[2 % C] = a2;
    } else {
        let [mut a0, mut a1] = [a[0], a[1 % C]];
        // SAFETY: as for `C = 3`, two weight rows.
        unsafe {
            asm!(
                "push {{{t}}}",
                "1:",
                "ldr {t}, [sp]",
                "ldr {n}, [{t}]",
                "lsrs {n}, {n}, #1",
                "adc {n}, {n}, #0",
                "bcs 3f",
                "2:",
                x_step!(),
                ch_step!("[{wp}, {k}]", "{a1}"),
                ch_step!("[{wp}], #4", "{a0}"),
                "3:",
                x_step!(),
                ch_step!("[{wp}, {k}]", "{a1}"),
                ch_step!("[{wp}], #4", "{a0}"),
                "subs {n}, {n}, #1",
                "bne 2b",
                "ldr {t}, [sp]",
                "ldr {x}, [{t}, #4]",
                "add {xp}, {xp}, {x}",
                "ldr {x}, [{t}, #8]",
                "add {wp}, {wp}, {x}",
                "ldr {x}, [{t}, #12]",
                "subs {x}, {x}, #1",
                "str {x}, [{t}, #12]",
                "bne 1b",
                "add sp, sp, #4",
                xp = inout(reg) x => _, wp = inout(reg) w0 => _, k = in(reg) kst,
                n = out(reg) _, nz = in(reg) nz,
                a0 = inout(reg) a0, a1 = inout(reg) a1,
                x = out(reg) _, xe = out(reg) _, w = out(reg) _, t = inout(reg) pp => _,
            );
        }
        a[0] = a0;
        a[1 % C] = a1;
    }
    let _ = &mut p;
}

/// See [`words_asm`].
///
/// # Safety
/// As [`words_asm`].
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
unsafe fn words_hw<const C: usize>(
    x: *const u8,
    w0: *const u8,
    kst: usize,
    words: usize,
    nz: u32,
    a: &mut [u32; C],
) {
    use core::arch::asm;
    let (mut xp, mut wp) = (x, w0);
    let pairs = words / 2;
    if C == 3 {
        let [mut a0, mut a1, mut a2] = [a[0], a[1], a[2 % C]];
        if pairs > 0 {
            // SAFETY: reads `x..x + 8 * pairs` and `w0 + j * kst..+ 8 *
            // pairs` (j < 3), in bounds by the caller's contract; registers
            // only otherwise. SMLAD may set Q: no `preserves_flags`.
            unsafe {
                asm!(
                    "2:",
                    x_step!(),
                    ch_step!("[{wp}, {k}]", "{a1}"),
                    ch_step!("[{wp}, {k}, lsl #1]", "{a2}"),
                    ch_step!("[{wp}], #4", "{a0}"),
                    x_step!(),
                    ch_step!("[{wp}, {k}]", "{a1}"),
                    ch_step!("[{wp}, {k}, lsl #1]", "{a2}"),
                    ch_step!("[{wp}], #4", "{a0}"),
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    xp = inout(reg) xp, wp = inout(reg) wp, k = in(reg) kst,
                    n = inout(reg) pairs => _, nz = in(reg) nz,
                    a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2,
                    x = out(reg) _, xe = out(reg) _, w = out(reg) _, t = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        if words % 2 == 1 {
            // SAFETY: the last word, as above.
            unsafe {
                asm!(
                    x_step!(),
                    ch_step!("[{wp}, {k}]", "{a1}"),
                    ch_step!("[{wp}, {k}, lsl #1]", "{a2}"),
                    ch_step!("[{wp}], #4", "{a0}"),
                    xp = inout(reg) xp, wp = inout(reg) wp, k = in(reg) kst, nz = in(reg) nz,
                    a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2,
                    x = out(reg) _, xe = out(reg) _, w = out(reg) _, t = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        a[0] = a0;
        a[1] = a1;
        a[2 % C] = a2;
    } else {
        let [mut a0, mut a1] = [a[0], a[1 % C]];
        if pairs > 0 {
            // SAFETY: as for `C = 3`, two weight rows.
            unsafe {
                asm!(
                    "2:",
                    x_step!(),
                    ch_step!("[{wp}, {k}]", "{a1}"),
                    ch_step!("[{wp}], #4", "{a0}"),
                    x_step!(),
                    ch_step!("[{wp}, {k}]", "{a1}"),
                    ch_step!("[{wp}], #4", "{a0}"),
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    xp = inout(reg) xp, wp = inout(reg) wp, k = in(reg) kst,
                    n = inout(reg) pairs => _, nz = in(reg) nz,
                    a0 = inout(reg) a0, a1 = inout(reg) a1,
                    x = out(reg) _, xe = out(reg) _, w = out(reg) _, t = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        if words % 2 == 1 {
            // SAFETY: the last word, as above.
            unsafe {
                asm!(
                    x_step!(),
                    ch_step!("[{wp}, {k}]", "{a1}"),
                    ch_step!("[{wp}], #4", "{a0}"),
                    xp = inout(reg) xp, wp = inout(reg) wp, k = in(reg) kst, nz = in(reg) nz,
                    a0 = inout(reg) a0, a1 = inout(reg) a1,
                    x = out(reg) _, xe = out(reg) _, w = out(reg) _, t = out(reg) _,
                    options(readonly, nostack),
                );
            }
        }
        a[0] = a0;
        a[1 % C] = a1;
    }
    let _ = (xp, wp);
}

/// Adds to `acc[j]` the dot products of `rows` input spans of `span` bytes
/// (span `r` at `x[r * xs..]`) with the matching spans of weight row `j`
/// (at `w[j][r * ws..]`), minus the zero point on the inputs. `false` if a
/// slice is too short (nothing is added then).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dot_rows<const C: usize>(
    x: &[u8],
    xs: usize,
    w: &[&[u8]; C],
    ws: usize,
    rows: usize,
    span: usize,
    zp: i32,
    acc: &mut [i32; C],
) -> bool {
    if rows == 0 || span == 0 {
        return true;
    }
    let need = |stride: usize| (rows - 1).checked_mul(stride)?.checked_add(span);
    match need(xs) {
        Some(n) if n <= x.len() => {}
        _ => return false,
    }
    match need(ws) {
        Some(n) if w.iter().all(|r| r.len() >= n) => {}
        _ => return false,
    }
    let nz = neg_zp_pair(zp);
    let mut a = acc.map(|v| v as u32);
    let mut xp = x.as_ptr();
    let mut wp = w.map(|r| r.as_ptr());
    let words = span / 4;
    // The asm word loops address channel `j` as `w[0] + j * kst`: usable
    // when the rows are equally spaced (always: they are `k`-strided slices
    // of one weight array, but checked here rather than assumed).
    let kst = (wp[C - 1] as usize).wrapping_sub(wp[0] as usize) / (C - 1).max(1);
    let wide = (1..C).all(|j| wp[j] as usize == (wp[0] as usize).wrapping_add(j * kst))
        && kst <= i32::MAX as usize / 2;
    if C >= 2 && wide && span & 3 == 0 {
        // SAFETY: row `r < rows` reads `x + r * xs + 0..span` and `w[j] + r
        // * ws + 0..span`, in bounds (checked above); `w[j] = w[0] + j *
        // kst` (`wide`).
        unsafe { rows_asm(xp, wp[0], kst, rows, words, xs, ws, nz, &mut a) };
        *acc = a.map(|v| v as i32);
        return true;
    }
    for r in 0..rows {
        let mut i = 0;
        // SAFETY (whole block): row `r` reads `xp + 0..span` and
        // `wp[j] + 0..span`, where `xp = x + r * xs` and `wp[j] = w[j] +
        // r * ws`; `(rows - 1) * stride + span` fits each slice (checked
        // above), so every read below is in bounds.
        unsafe {
            if words > 0 && C >= 2 && wide {
                // The whole word loop in one `asm!` block (see `words2` /
                // `words3`): `i` stays 0, the tail below starts after it.
                words_asm(xp, wp[0], kst, words, nz, &mut a);
                i = words;
            }
            // One word per iteration: unrolling lets LLVM hoist the next
            // input word's pairs, which spills the accumulators.
            while i < words {
                step(xp.add(4 * i), &wp.map(|p| p.add(4 * i)), nz, &mut a);
                i += 1;
            }
            for t in 4 * words..span {
                let xv = (*xp.add(t) as i8 as i32).wrapping_sub(zp);
                for (aj, &p) in a.iter_mut().zip(wp.iter()) {
                    *aj = aj.wrapping_add(xv.wrapping_mul(*p.add(t) as i8 as i32) as u32);
                }
            }
        }
        if r + 1 < rows {
            // In bounds (a later row still reads there); wrapping_add
            // keeps even the last bump free of pointer-arithmetic UB.
            xp = xp.wrapping_add(xs);
            wp = wp.map(|p| p.wrapping_add(ws));
        }
    }
    *acc = a.map(|v| v as i32);
    true
}

/// A block of `C` output channels starting at `oc` for one output pixel:
/// bias, the dot products over `rows` spans, then the stores at
/// `out[at + j]`. `wo` is the offset of the first span inside each
/// channel's `k` weights.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const C: usize>(
    x: &[u8],
    xs: usize,
    w: &[u8],
    k: usize,
    wo: usize,
    ws: usize,
    rows: usize,
    span: usize,
    oc: usize,
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    at: usize,
    out: &mut [u8],
) -> KResult {
    let mut rws: [&[u8]; C] = [&[]; C];
    let mut acc = [0i32; C];
    for (j, (r, a)) in rws.iter_mut().zip(acc.iter_mut()).enumerate() {
        let s = (oc + j) * k;
        *r = w.get(s + wo..s + k).ok_or(ShapeError)?;
        *a = bias.map_or(0, |b| b.get(oc + j));
    }
    if !dot_rows(x, xs, &rws, ws, rows, span, o.q.in_zp, &mut acc) {
        return Err(ShapeError);
    }
    for (j, &a) in acc.iter().enumerate() {
        store(o, a, oc + j, at + j, out);
    }
    Ok(())
}

/// [`Out8::store`] with [`requant::requantize_fast`] (the same bytes).
#[inline(always)]
fn store(o: &Out8<'_, '_>, acc: i32, ch: usize, i: usize, out: &mut [u8]) {
    let q = o.q;
    let (m, sh) = (q.multipliers.get(ch), q.shifts.get(ch));
    let v = requant::requantize_fast(acc, m, sh, q.out_zp, q.act_min, q.act_max);
    if let Some(b) = out.get_mut(i) {
        *b = match &o.fuse {
            None => v,
            Some(f) => {
                let r = match f.residual {
                    Residual::Separate(s) => s.get(i).copied().unwrap_or(0),
                    Residual::InPlace => *b,
                };
                f.add.add(v, r)
            }
        };
    }
}

/// Runs [`block`] for channels `0..n` in groups of [`GROUP`] (the last
/// group narrower; the arms below cover `GROUP <= 3`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn channels(
    x: &[u8],
    xs: usize,
    w: &[u8],
    k: usize,
    wo: usize,
    ws: usize,
    rows: usize,
    span: usize,
    n: usize,
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    at: usize,
    out: &mut [u8],
) -> KResult {
    let mut oc = 0;
    while oc < n {
        // 4 left: 2 + 2 rather than 3 + 1 (one channel reuses the input
        // pairs too little).
        let m = match n - oc {
            4 => 2,
            r => r.min(GROUP),
        };
        let (b, a) = (bias, at + oc);
        match m {
            3 => block::<3>(x, xs, w, k, wo, ws, rows, span, oc, b, o, a, out)?,
            2 => block::<2>(x, xs, w, k, wo, ws, rows, span, oc, b, o, a, out)?,
            _ => block::<1>(x, xs, w, k, wo, ws, rows, span, oc, b, o, a, out)?,
        }
        oc += m;
    }
    Ok(())
}

/// DSP regular (groups = 1) int8 conv, no scratch. `None` if the input
/// zero point is outside int8 (the caller runs the portable kernel).
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
) -> Option<KResult> {
    if !(-128..=127).contains(&o.q.in_zp) {
        return None;
    }
    let (c, kw, n) = (g.in_c, g.kernel_w, g.out_c);
    let k = g.kernel_h * kw * c;
    // Two pixels at a time where its patch buffer fits (every conv of the
    // bundled models); the one-pixel kernels below otherwise.
    if let Some(r) = super::dsp_pairs::conv_pairs(g, x, w, bias, o, out) {
        return Some(r);
    }
    if c % 4 == 0 && n >= 2 {
        return Some(conv_rows(g, x, w, bias, o, out));
    }
    let (xs, ws) = (g.in_w * c, kw * c);
    let mut at = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let x0 = (rows.i0 * g.in_w + cols.i0) * c;
            let xr = x.get(x0..).unwrap_or(&[]);
            let wo = (rows.k0 * kw + cols.k0) * c;
            let r = channels(
                xr,
                xs,
                w,
                k,
                wo,
                ws,
                rows.len(),
                cols.len() * c,
                n,
                bias,
                o,
                at,
                out,
            );
            if r.is_err() {
                return Some(r);
            }
            at += n;
        }
    }
    Some(Ok(()))
}

/// Per-layer requantisation for the unfused store: the per-channel arrays
/// checked once against `n` channels, then read without bounds checks.
pub(super) struct Rq<'a> {
    m: &'a [u8],
    sh: &'a [u8],
    bias: Option<&'a [u8]>,
    zp: i32,
    lo: i32,
    hi: i32,
    /// Every channel takes [`requant::requantize_right`] (checked once).
    right: bool,
}

impl<'a> Rq<'a> {
    /// `None` unless every per-channel array holds `n` entries.
    pub(super) fn new(o: &Out8<'a, '_>, bias: Option<I32s<'a>>, n: usize) -> Option<Self> {
        let q = o.q;
        let ok = |b: &[u8]| b.len() / 4 >= n;
        if !ok(q.multipliers.0) || !ok(q.shifts.0) || !bias.is_none_or(|b| ok(b.0)) {
            return None;
        }
        let right = (0..n).all(|ch| {
            // SAFETY: `ch < n`, checked just above.
            let (m, sh) = unsafe { (Self::rd(q.multipliers.0, ch), Self::rd(q.shifts.0, ch)) };
            m != i32::MIN && (-31..=-1).contains(&sh)
        });
        Some(Rq {
            m: q.multipliers.0,
            sh: q.shifts.0,
            bias: bias.map(|b| b.0),
            zp: q.out_zp,
            lo: q.act_min,
            hi: q.act_max,
            right,
        })
    }

    /// Little-endian `i32` number `ch` of `b`.
    ///
    /// # Safety
    /// `ch < n` (as checked by [`Rq::new`]).
    #[inline(always)]
    unsafe fn rd(b: &[u8], ch: usize) -> i32 {
        // SAFETY: `4 * ch + 4 <= 4 * n <= b.len()` by the caller's contract.
        i32::from_le(unsafe { core::ptr::read_unaligned(b.as_ptr().add(4 * ch) as *const i32) })
    }

    /// The bias of channel `ch` (0 without one).
    ///
    /// # Safety
    /// `ch < n`.
    #[inline(always)]
    pub(super) unsafe fn bias(&self, ch: usize) -> u32 {
        // SAFETY: forwarded.
        self.bias.map_or(0, |b| unsafe { Self::rd(b, ch) }) as u32
    }

    /// Whether every channel takes [`Rq::right`].
    pub(super) fn all_right(&self) -> bool {
        self.right
    }

    /// The output parameters: zero point, activation minimum and maximum.
    pub(super) fn out(&self) -> (i32, i32, i32) {
        (self.zp, self.lo, self.hi)
    }

    /// Channel `ch`'s constants for [`requant::requantize_right`].
    ///
    /// # Safety
    /// `ch < n`, and [`Rq::all_right`].
    #[inline(always)]
    pub(super) unsafe fn right(&self, ch: usize) -> requant::RightShift {
        // SAFETY: forwarded.
        let (m, sh) = unsafe { (Self::rd(self.m, ch), Self::rd(self.sh, ch)) };
        requant::RightShift::new(m, sh.unsigned_abs())
    }

    /// The output byte for accumulator `acc` of channel `ch`.
    ///
    /// # Safety
    /// `ch < n`.
    #[inline(always)]
    pub(super) unsafe fn byte(&self, acc: u32, ch: usize) -> u8 {
        // SAFETY: forwarded.
        let (m, sh) = unsafe { (Self::rd(self.m, ch), Self::rd(self.sh, ch)) };
        if self.right {
            requant::requantize_right(acc as i32, m, sh.unsigned_abs(), self.zp, self.lo, self.hi)
        } else {
            requant::requantize_fast(acc as i32, m, sh, self.zp, self.lo, self.hi)
        }
    }
}

/// Regular conv with `in_c % 4 == 0` (every span whole words) and at least
/// 2 output channels: per output pixel one bounds check, then groups of 3
/// (or 2) channels straight into [`rows_asm`] (no per-group slicing).
fn conv_rows(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
) -> KResult {
    let (c, kw, n) = (g.in_c, g.kernel_w, g.out_c);
    let k = g.kernel_h * kw * c;
    let (xs, ws) = (g.in_w * c, kw * c);
    let total = n.checked_mul(k).ok_or(ShapeError)?;
    if w.len() < total || k > i32::MAX as usize / 2 || n < 2 {
        return Err(ShapeError);
    }
    let nz = neg_zp_pair(o.q.in_zp);
    let rq = Rq::new(o, bias, n).filter(|_| out.len() >= g.out_h * g.out_w * n);
    let b = |j: usize| bias.map_or(0, |b| b.get(j)) as u32;
    let mut at = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            let (nr, span) = (rows.len(), cols.len() * c);
            let x0 = (rows.i0 * g.in_w + cols.i0) * c;
            let wo = (rows.k0 * kw + cols.k0) * c;
            let live = nr > 0 && span > 0;
            if live {
                let need =
                    |o: usize, s: usize| o.checked_add((nr - 1).checked_mul(s)?)?.checked_add(span);
                match (need(x0, xs), need(wo, ws)) {
                    (Some(a), Some(bw)) if a <= x.len() && bw <= k => {}
                    _ => return Err(ShapeError),
                }
            }
            let mut oc = 0;
            while oc < n {
                // 4 left: 2 + 2 rather than 3 + 1 (`n >= 2`: never 1).
                let m = match n - oc {
                    4 => 2,
                    r => r.min(3),
                };
                // In bounds: `oc * k + wo + (nr - 1) * ws + span <= n * k`.
                let wp = w.as_ptr().wrapping_add(oc * k + wo);
                let xp = x.as_ptr().wrapping_add(x0);
                if let (3, Some(rq)) = (m, &rq) {
                    // SAFETY: `oc + 2 < n`, the length `Rq::new` checked.
                    let mut a = unsafe { [rq.bias(oc), rq.bias(oc + 1), rq.bias(oc + 2)] };
                    if live {
                        // SAFETY: as below.
                        unsafe { rows_asm(xp, wp, k, nr, span / 4, xs, ws, nz, &mut a) };
                    }
                    // `at + n <= out.len()` (checked with `rq`).
                    let dst = &mut out[at + oc..at + oc + 3];
                    match &o.fuse {
                        None => {
                            for (j, (d, &v)) in dst.iter_mut().zip(a.iter()).enumerate() {
                                // SAFETY: `oc + j < n`.
                                *d = unsafe { rq.byte(v, oc + j) };
                            }
                        }
                        Some(f) => {
                            for ((j, d), &v) in dst.iter_mut().enumerate().zip(a.iter()) {
                                // SAFETY: `oc + j < n`.
                                let y = unsafe { rq.byte(v, oc + j) };
                                let r = match f.residual {
                                    Residual::Separate(s) => {
                                        s.get(at + oc + j).copied().unwrap_or(0)
                                    }
                                    Residual::InPlace => *d,
                                };
                                *d = f.add.add(y, r);
                            }
                        }
                    }
                } else if m == 3 {
                    let mut a = [b(oc), b(oc + 1), b(oc + 2)];
                    if live {
                        // SAFETY: row `r < nr` reads `x0 + r * xs + 0..span`
                        // (checked against `x.len()` above) and `(oc + j) *
                        // k + wo + r * ws + 0..span` for `j < 3`, inside `w`
                        // (`wo + (nr - 1) * ws + span <= k`, `oc + 2 < n`).
                        unsafe { rows_asm(xp, wp, k, nr, span / 4, xs, ws, nz, &mut a) };
                    }
                    for (j, &v) in a.iter().enumerate() {
                        store(o, v as i32, oc + j, at + oc + j, out);
                    }
                } else {
                    let mut a = [b(oc), b(oc + 1)];
                    if live {
                        // SAFETY: as above, two channels.
                        unsafe { rows_asm(xp, wp, k, nr, span / 4, xs, ws, nz, &mut a) };
                    }
                    for (j, &v) in a.iter().enumerate() {
                        store(o, v as i32, oc + j, at + oc + j, out);
                    }
                }
                oc += m;
            }
            at += n;
        }
    }
    Ok(())
}

/// DSP int8 dense, no scratch. `None` if the input zero point is outside
/// int8. The caller has checked the lengths (`w` is `out.len()` rows of
/// `x.len()`).
pub(crate) fn dense_i8(
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
) -> Option<KResult> {
    if !(-128..=127).contains(&o.q.in_zp) {
        return None;
    }
    let (k, n) = (x.len(), out.len());
    Some(channels(x, 0, w, k, 0, 0, 1, k, n, bias, o, 0, out))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::kernels::{conv, dense, Kx, QuantParams};

    pub(in crate::kernels) struct XorShift(pub u64);
    impl XorShift {
        pub(in crate::kernels) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Uniform in `lo..=hi`.
        pub(in crate::kernels) fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + (self.next() % (hi - lo + 1) as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// A test case's fused residual Add: none (`mode` 0), reading a
    /// separate `residual` (1), or in place over the output (any other).
    pub(in crate::kernels) fn fuse_case(
        mode: usize,
        residual: &[u8],
        add: crate::kernels::add::AddQuant,
    ) -> Option<crate::kernels::FuseI8<'_>> {
        use crate::kernels::{FuseI8, Residual};
        match mode {
            0 => None,
            1 => Some(FuseI8 {
                residual: Residual::Separate(residual),
                add,
            }),
            _ => Some(FuseI8 {
                residual: Residual::InPlace,
                add,
            }),
        }
    }

    pub(in crate::kernels) fn i32_bytes(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A conv geometry: input `(h, w)`, channels, kernel, strides and
    /// padding `(top, left, bottom, right)`; the output size follows.
    pub(in crate::kernels) fn geom(
        (in_h, in_w): (usize, usize),
        (in_c, out_c): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (pt, pl, pb, pr): (usize, usize, usize, usize),
    ) -> Geom {
        Geom {
            in_h,
            in_w,
            in_c,
            out_h: (in_h + pt + pb - kh) / sh + 1,
            out_w: (in_w + pl + pr - kw) / sw + 1,
            out_c,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: pt,
            pad_left: pl,
        }
    }

    #[test]
    fn isa_models_match_the_arm_pseudocode() {
        // 0x80_7f_01_ff: bytes ff 01 7f 80 (little-endian) = -1, 1, 127, -128.
        let x = 0x807f_01ffu32;
        assert_eq!(isa::sxtb16(x), 0x007f_ffff); // lanes -1, 127
        assert_eq!(isa::sxtb16_ror8(x), 0xff80_0001); // lanes 1, -128
        let nz = neg_zp_pair(-128); // +128
        assert_eq!(isa::sxtab16(nz, x), 0x00ff_007f); // 127, 255
        assert_eq!(isa::sxtab16_ror8(nz, x), 0x0000_0081); // 129, 0
        let nz = neg_zp_pair(127); // -127
        assert_eq!(isa::sxtab16_ror8(nz, x), 0xff01_ff82); // -126, -255
                                                           // 3 * 5 + (-2) * 7 + 10
        assert_eq!(isa::smlad(0xfffe_0003, 0x0007_0005, 10), 11);
        // Wraps modulo 2^32 like the portable sums.
        let big = isa::smlad(0x7fff_7fff, 0x7fff_7fff, i32::MAX as u32);
        let want = (i32::MAX as i64 + 2 * 32767 * 32767) as u32;
        assert_eq!(big, want);
    }

    /// Random regular convs (odd channels, padding, strides, 1x1, tails)
    /// and dense layers: the DSP tiling gives the portable kernel's bytes.
    #[test]
    fn dsp_tiling_is_bit_identical_to_portable() {
        let mut rng = XorShift(0x0d5b_a11c_e5ee_d001);
        for round in 0..400 {
            let (kh, kw) = if round % 4 == 0 {
                (1, 1)
            } else {
                (rng.range(1, 5), rng.range(1, 5))
            };
            let (sh, sw) = (rng.range(1, 3), rng.range(1, 3));
            let in_h = rng.range(kh.max(1), 9);
            let in_w = rng.range(kw.max(1), 9);
            let in_c = rng.range(1, 37);
            let out_c = rng.range(1, 19);
            let (pt, pl) = (rng.range(0, kh - 1), rng.range(0, kw - 1));
            let (pb, pr) = (rng.range(0, kh - 1), rng.range(0, kw - 1));
            let g = geom(
                (in_h, in_w),
                (in_c, out_c),
                (kh, kw),
                (sh, sw),
                (pt, pl, pb, pr),
            );
            let mut x = rng.bytes(in_h * in_w * in_c);
            let mut w = rng.bytes(kh * kw * in_c * out_c);
            if round % 9 == 0 {
                x.fill(0x80);
                w.fill(0x80);
            }
            let bias = i32_bytes(
                &(0..out_c)
                    .map(|_| (rng.next() % 40001) as i32 - 20000)
                    .collect::<Vec<_>>(),
            );
            let ms = i32_bytes(&vec![1 << 30; out_c]);
            let ss = i32_bytes(&(0..out_c).map(|i| -(i as i32 % 12)).collect::<Vec<_>>());
            let zp = match round % 5 {
                0 => -128,
                1 => 127,
                _ => (rng.next() % 256) as i32 - 128,
            };
            let q = QuantParams {
                in_zp: zp,
                out_zp: (rng.next() % 21) as i32 - 10,
                act_min: -128,
                act_max: 127,
                multipliers: I32s(&ms),
                shifts: I32s(&ss),
            };
            let b = (round % 3 != 0).then_some(I32s(&bias));
            let o = Out8 { q: &q, fuse: None };
            let mut want = vec![0u8; g.output_len().unwrap()];
            conv::conv2d_i8_ex(&g, false, &x, &w, b, &o, &mut want, &mut Kx::portable()).unwrap();
            let mut got = vec![0u8; want.len()];
            conv_i8(&g, &x, &w, b, &o, &mut got).unwrap().unwrap();
            assert_eq!(got, want, "{g:?} zp {zp}");

            // Dense over the same input bytes.
            let n_in = x.len();
            let wd = rng.bytes(n_in * out_c);
            let mut want = vec![0u8; out_c];
            dense::dense_i8_ex(&x, &wd, b, &q, &mut want, &mut Kx::portable()).unwrap();
            let mut got = vec![0u8; out_c];
            dense_i8(&x, &wd, b, &o, &mut got).unwrap().unwrap();
            assert_eq!(got, want, "dense {n_in}->{out_c} zp {zp}");
        }
    }

    #[test]
    fn out_of_range_zero_point_declines_and_short_buffers_fail() {
        let (ms, ss) = (i32_bytes(&[1 << 30]), i32_bytes(&[0]));
        let mut q = QuantParams {
            in_zp: 200,
            out_zp: 0,
            act_min: -128,
            act_max: 127,
            multipliers: I32s(&ms),
            shifts: I32s(&ss),
        };
        let mut out = [0u8; 1];
        let o = Out8 { q: &q, fuse: None };
        assert!(dense_i8(&[1, 2], &[3, 4], None, &o, &mut out).is_none());
        q.in_zp = 0;
        let o = Out8 { q: &q, fuse: None };
        // One weight short of a row.
        assert_eq!(
            dense_i8(&[1, 2], &[3], None, &o, &mut out),
            Some(Err(ShapeError))
        );
        assert_eq!(dense_i8(&[1, 2], &[3, 4], None, &o, &mut out), Some(Ok(())));
    }
}
