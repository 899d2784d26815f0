//! AVX2 f32 convolution and dense (x86-64), bit-identical to the portable
//! float kernels in `conv.rs` and `dense.rs`.
//!
//! The portable regular conv computes each output as `acc = bias`, then
//! `acc += dot_f(x_row, w_row)` for each in-bounds kernel row, where
//! [`dot_f`](super::conv::dot_f) keeps eight partial sums (element `i` of the
//! row's in-bounds span goes to lane `i % 8`, each step `lane += x * w`, a
//! separate multiply and add) and combines them pairwise as
//! `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`. Padding taps are
//! skipped, not added as zeros. Dense is `bias + dot_f(x, row)`.
//!
//! Those eight lanes are exactly one AVX register, so these kernels run the
//! very same lane sums:
//!
//! - `vmulps` then `vaddps` (never FMA: a fused multiply-add rounds once and
//!   would change the bits);
//! - the span's last `span % 8` elements through a masked load of both
//!   operands: the masked lanes add `0.0 * 0.0 = +0.0`, which leaves a lane
//!   unchanged, because a lane starts at +0.0 and so can never hold -0.0
//!   (`+0 + -0` and exact cancellation both give +0 when rounding to
//!   nearest);
//! - the same pairwise combination, eight outputs at a time
//!   ([`combine8`]), then `acc + row sum` per output.
//!
//! Each output keeps its own sums in the portable order; what is vectorised
//! is the lane structure the portable code already has, and what is blocked
//! is the outputs: `MR` output pixels × `NR` output channels per micro
//! kernel, so one load of a weight vector serves `MR` pixels and one load of
//! an input vector `NR` channels. Pixels are only blocked together when
//! their windows have the same in-bounds kernel rows and columns (so the
//! same span, and the same lane for every tap); the blocks run over a chunk
//! of output channels whose weights stay in L2, one kernel row at a time,
//! so the block's input rows stay in L1 (the loops are
//! [`super::float_conv`], shared with NEON). Three register blockings:
//!
//! - AVX2: 6 pixels × 2 channels (`conv_avx2`): 12 accumulators, two
//!   weight registers, the pixel's input and a product (2 × 4, 4 × 3 and
//!   5 × 2 measured slower: 29, 16 and 37 GMAC/s against 39 on a 3x3
//!   56x56x64 layer, `kernel_bench` under `scripts/avx2-only.sh`);
//! - AVX-512 F/VL/DQ: 6 pixels × 8 channels, two channels per 512-bit
//!   register, each pixel's eight inputs broadcast to both halves
//!   (`conv_avx512`); a 512-bit multiply or add is two independent 256-bit
//!   ones, so the lanes are unchanged;
//! - the same with the weights packed into the plan's scratch and, for
//!   chunks of 4 or more blocks, the input rows stored twice per 8-value
//!   group, so the loop has no shuffle ([`conv_packed`], `C` a multiple of
//!   8; sizes in [`super::scratch::float_pack_layout`]).
//!
//! Kernel rows of at most 24 values (RGB and grayscale input layers) go
//! across output channels instead ([`conv_narrow`]): one register per
//! `dot_f` lane, 8-32 channels wide, combined with vertical adds.
//!
//! The depthwise conv is vectorised across channels (each lane one channel,
//! taps in the portable order), dense across rows like the conv.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::scratch::{float_pack_layout, FP_MAX_BLOCKS, FP_MR, FP_NR};
use super::{ld_f32, FloatAct, Geom, KResult, OutF, Residual, ShapeError};

/// Most output channels per chunk.
const CM_MAX: usize = super::FLOAT_CM_MAX;
const _: () = assert!(CM_MAX == FP_MAX_BLOCKS * FP_NR);
/// Fewest packed blocks per chunk for which the packed conv doubles its
/// input rows rather than broadcasting them.
const DUP_MIN_BLOCKS: usize = 4;
/// Target size of a chunk's weights, so they stay in L2 while every pixel
/// block runs over them.
const CHUNK_WEIGHT_BYTES: usize = 192 * 1024;
/// Rows per dense block.
const DR: usize = 8;

/// Whether the 512-bit conv blocking can run: AVX-512 F, VL and DQ.
pub(crate) fn wide_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512vl",
            target_feature = "avx512dq",
            target_feature = "avx2"
        ))
    }
}

/// Whether the F16C conversion instructions are available (f16 dense).
pub(crate) fn f16c_available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("f16c") && std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "f16c", target_feature = "avx2"))
    }
}

/// `[a.lo + a.hi | b.lo + b.hi]`: lane `i` of each half is `l_i + l_{i+4}`.
#[target_feature(enable = "avx2")]
#[inline]
fn half(a: __m256, b: __m256) -> __m256 {
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(a, b),
        _mm256_permute2f128_ps::<0x31>(a, b),
    )
}

/// [`dot_f`](super::conv::dot_f)'s pairwise combination of one lane
/// vector.
#[target_feature(enable = "avx2")]
#[inline]
fn combine1(v: __m256) -> f32 {
    // b_i = l_i + l_{i+4}, then (b0 + b2), (b1 + b3), then their sum.
    let b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let c = _mm_add_ps(b, _mm_movehl_ps(b, b));
    _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)))
}

/// Lane mask selecting the first `r` (0..=8) lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn tail_mask(r: usize) -> __m256i {
    const M: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    let at = 8 - r.min(8);
    // SAFETY: `at + 8 <= 16`, inside `M`.
    unsafe { _mm256_loadu_si256(M.as_ptr().add(at) as *const __m256i) }
}

/// [`dot_f`](super::conv::dot_f)'s pairwise combination of eight lane
/// vectors at once: lane `i` of the result is the combined sum of `v[i]`.
#[target_feature(enable = "avx2")]
#[inline]
fn combine8(v: &[__m256; 8]) -> __m256 {
    let y0 = half(v[0], v[4]);
    let y1 = half(v[1], v[5]);
    let y2 = half(v[2], v[6]);
    let y3 = half(v[3], v[7]);
    // [v0: b0 + b2, v1: b0 + b2, v0: b1 + b3, v1: b1 + b3 | v4, v5 ...]
    let s01 = _mm256_add_ps(_mm256_unpacklo_ps(y0, y1), _mm256_unpackhi_ps(y0, y1));
    let s23 = _mm256_add_ps(_mm256_unpacklo_ps(y2, y3), _mm256_unpackhi_ps(y2, y3));
    // (b0 + b2) + (b1 + b3) for v0..v3 | v4..v7.
    _mm256_add_ps(
        _mm256_shuffle_ps::<0x44>(s01, s23),
        _mm256_shuffle_ps::<0xEE>(s01, s23),
    )
}

/// The lane sums of `M` input rows against `N` weight rows of `len` f32
/// each (`M * N` ymm accumulators), combined and added to the running sums:
/// `run[p * CM_MAX + j] += dot_f(x[p], w[j])`, bit for bit.
///
/// # Safety
/// The CPU must support AVX2. The first `M` / `N` pointers must each be
/// valid for reading `len` f32 (any alignment), and `run` for `N` f32 at
/// each of its first `M` rows of `CM_MAX`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn micro<const M: usize, const N: usize>(
    xp: &[*const f32],
    wp: &[*const f32],
    len: usize,
    run: *mut f32,
) {
    let mut acc = [[_mm256_setzero_ps(); N]; M];
    let full = len & !7;
    let mut i = 0;
    while i < full {
        let mut wv = [_mm256_setzero_ps(); N];
        for j in 0..N {
            // SAFETY: i + 8 <= len.
            wv[j] = unsafe { _mm256_loadu_ps(wp[j].add(i)) };
        }
        for p in 0..M {
            // SAFETY: i + 8 <= len.
            let xv = unsafe { _mm256_loadu_ps(xp[p].add(i)) };
            for j in 0..N {
                acc[p][j] = _mm256_add_ps(acc[p][j], _mm256_mul_ps(xv, wv[j]));
            }
        }
        i += 8;
    }
    if i < len {
        let mask = tail_mask(len - i);
        let mut wv = [_mm256_setzero_ps(); N];
        for j in 0..N {
            // SAFETY: the masked-off lanes are not read (no fault); the
            // others are below `len`.
            wv[j] = unsafe { _mm256_maskload_ps(wp[j].add(i), mask) };
        }
        for p in 0..M {
            // SAFETY: as above.
            let xv = unsafe { _mm256_maskload_ps(xp[p].add(i), mask) };
            for j in 0..N {
                acc[p][j] = _mm256_add_ps(acc[p][j], _mm256_mul_ps(xv, wv[j]));
            }
        }
    }
    // SAFETY: the caller's guarantee on `run`.
    unsafe { add_sums::<M, N>(&acc, run) };
}

/// Pixels per AVX2 float micro-kernel block (see the module notes).
const AVX2_MR: usize = 6;
/// Output channels per AVX2 float micro-kernel block.
const AVX2_NR: usize = 2;

/// The AVX2 micro-kernel for `m <= AVX2_MR` pixels and `n <= AVX2_NR`
/// channels.
///
/// # Safety
/// As [`micro`], for the first `m` and `n` pointers.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn micro_avx2(
    m: usize,
    n: usize,
    xp: &[*const f32; AVX2_MR],
    wp: &[*const f32; AVX2_NR],
    len: usize,
    run: *mut f32,
) {
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn by_n<const M: usize>(
        n: usize,
        xp: &[*const f32],
        wp: &[*const f32],
        len: usize,
        run: *mut f32,
    ) {
        // SAFETY: the caller's guarantee.
        unsafe {
            match n {
                1 => micro::<M, 1>(xp, wp, len, run),
                2 => micro::<M, 2>(xp, wp, len, run),
                _ => {}
            }
        }
    }
    let n = n.min(AVX2_NR);
    // SAFETY: the caller's guarantee.
    unsafe {
        match m.min(AVX2_MR) {
            1 => by_n::<1>(n, xp, wp, len, run),
            2 => by_n::<2>(n, xp, wp, len, run),
            3 => by_n::<3>(n, xp, wp, len, run),
            4 => by_n::<4>(n, xp, wp, len, run),
            5 => by_n::<5>(n, xp, wp, len, run),
            6 => by_n::<6>(n, xp, wp, len, run),
            _ => {}
        }
    }
}

/// [`micro`] with 512-bit registers: `P` pairs of channels, channel `2q`
/// in the low half of pair `q` and `2q + 1` in the high half, each pixel's
/// eight input values broadcast to both halves. The lanes are still
/// `dot_f`'s eight lane sums per output (a 512-bit multiply or add is two
/// independent 256-bit ones), in half the instructions. Pointers past the
/// first `n` channels repeat the last one; their sums land in `run` past
/// the chunk's channels, where nothing reads them.
///
/// # Safety
/// The CPU must support AVX-512F, VL and DQ. The first `M` / `2 * P`
/// pointers must each be valid for reading `len` f32, `run` for 8 f32 at
/// each of its first `M` rows of `CM_MAX`.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
#[inline]
unsafe fn micro_zmm<const M: usize, const P: usize>(
    xp: &[*const f32],
    wp: &[*const f32],
    n: usize,
    len: usize,
    run: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); P]; M];
    let full = len & !7;
    let mut i = 0;
    while i < full {
        let mut wv = [_mm512_setzero_ps(); P];
        for q in 0..P {
            // SAFETY: i + 8 <= len.
            let (lo, hi) = unsafe {
                (
                    _mm256_loadu_ps(wp[2 * q].add(i)),
                    _mm256_loadu_ps(wp[2 * q + 1].add(i)),
                )
            };
            wv[q] = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(lo), hi);
        }
        for p in 0..M {
            // SAFETY: i + 8 <= len.
            let xv = _mm512_broadcast_f32x8(unsafe { _mm256_loadu_ps(xp[p].add(i)) });
            for q in 0..P {
                acc[p][q] = _mm512_add_ps(acc[p][q], _mm512_mul_ps(xv, wv[q]));
            }
        }
        i += 8;
    }
    if i < len {
        // The first `len - i` (1..=7) lanes; masked-off lanes read as 0 and
        // do not fault.
        let k = ((1u32 << (len - i)) - 1) as __mmask8;
        let mut wv = [_mm512_setzero_ps(); P];
        for q in 0..P {
            // SAFETY: the unmasked lanes are below `len`.
            let (lo, hi) = unsafe {
                (
                    _mm256_maskz_loadu_ps(k, wp[2 * q].add(i)),
                    _mm256_maskz_loadu_ps(k, wp[2 * q + 1].add(i)),
                )
            };
            wv[q] = _mm512_insertf32x8::<1>(_mm512_castps256_ps512(lo), hi);
        }
        for p in 0..M {
            // SAFETY: as above.
            let xv = _mm512_broadcast_f32x8(unsafe { _mm256_maskz_loadu_ps(k, xp[p].add(i)) });
            for q in 0..P {
                acc[p][q] = _mm512_add_ps(acc[p][q], _mm512_mul_ps(xv, wv[q]));
            }
        }
    }
    let _ = n;
    // SAFETY: the caller's guarantee on `run`. All eight lanes: those past
    // `n` only touch running sums of channels past the chunk, which are
    // never read (and a masked store would not forward to the next call's
    // load).
    unsafe { add_zmm_sums(&acc, run) };
}

/// Adds each pixel's combined sums of the 512-bit accumulators `acc` (two
/// channels' lanes per register, at most four registers) to its row of
/// running sums, `run + p * CM_MAX`, all eight channels.
///
/// # Safety
/// AVX2 and AVX-512 F/VL/DQ; `run` holds `M` rows of `CM_MAX` f32.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
#[inline]
unsafe fn add_zmm_sums<const M: usize, const P: usize>(acc: &[[__m512; P]; M], run: *mut f32) {
    for (p, a) in acc.iter().enumerate() {
        let mut v = [_mm256_setzero_ps(); 8];
        for (q, z) in a.iter().enumerate().take(4) {
            v[2 * q] = _mm512_castps512_ps256(*z);
            v[2 * q + 1] = _mm512_extractf32x8_ps::<1>(*z);
        }
        // SAFETY: row p < M of `run` (the caller's guarantee).
        unsafe {
            let rp = run.add(p * CM_MAX);
            _mm256_storeu_ps(rp, _mm256_add_ps(_mm256_loadu_ps(rp), combine8(&v)));
        }
    }
}

/// The 512-bit micro-kernel for `m <= 6` pixels and `n <= 8` channels.
///
/// # Safety
/// As [`micro_zmm`], for the first `m` pixel pointers and all eight
/// channel pointers (past `n`, repeats of a valid one).
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
#[inline]
unsafe fn micro_wide(
    m: usize,
    n: usize,
    xp: &[*const f32; 6],
    wp: &[*const f32; 8],
    len: usize,
    run: *mut f32,
) {
    macro_rules! pick {
        ($(($m:literal, $p:literal)),*) => {
            match (m, n.div_ceil(2)) {
                // SAFETY: the caller's guarantee.
                $(($m, $p) => unsafe { micro_zmm::<$m, $p>(xp, wp, n, len, run) },)*
                _ => {}
            }
        };
    }
    pick!(
        (6, 4),
        (6, 3),
        (6, 2),
        (6, 1),
        (5, 4),
        (5, 3),
        (5, 2),
        (5, 1),
        (4, 4),
        (4, 3),
        (4, 2),
        (4, 1),
        (3, 4),
        (3, 3),
        (3, 2),
        (3, 1),
        (2, 4),
        (2, 3),
        (2, 2),
        (2, 1),
        (1, 4),
        (1, 3),
        (1, 2),
        (1, 1)
    );
}

/// Adds the combined sums of `acc` (pixel `p`, channel `t`) to the running
/// sums at `run[p * CM_MAX + t]`.
///
/// # Safety
/// `run` must be valid for `N` f32 at each of `M` rows of `CM_MAX`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn add_sums<const M: usize, const N: usize>(acc: &[[__m256; N]; M], run: *mut f32) {
    // Flattened `p * N + t`, eight at a time.
    let mn = M * N;
    let mut at = 0;
    while at < mn {
        let mut v = [_mm256_setzero_ps(); 8];
        for (i, d) in v.iter_mut().enumerate() {
            let f = at + i;
            if f < mn {
                *d = acc[f / N][f % N];
            }
        }
        if mn - at == 1 {
            let (p, t) = (at / N, at % N);
            // SAFETY: the caller's guarantee.
            unsafe { *run.add(p * CM_MAX + t) += combine1(v[0]) };
        } else {
            let mut sums = [0.0f32; 8];
            // SAFETY: `sums` holds 8 f32.
            unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), combine8(&v)) };
            for (i, &s) in sums.iter().enumerate().take(mn - at) {
                let (p, t) = ((at + i) / N, (at + i) % N);
                // SAFETY: the caller's guarantee.
                unsafe { *run.add(p * CM_MAX + t) += s };
            }
        }
        at += 8;
    }
}

/// AVX2 (16 ymm registers) regular f32 conv over output channels
/// `oc0..oc0 + m` ([`super::float_conv`]'s loops): 6 pixels × 2 channels,
/// 12 accumulators.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_avx2(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    oc0: usize,
    m: usize,
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    super::float_conv::<AVX2_MR, AVX2_NR>(
        g,
        x,
        w,
        (oc0, m),
        bias_at,
        CHUNK_WEIGHT_BYTES,
        out,
        |nb, nr, xp, wp, span, run, jb| {
            // SAFETY: AVX2 (this function's contract); `float_conv`'s
            // guarantee on the pointers, and `run` rows of CM_MAX >= jb + AVX2_NR.
            unsafe { micro_avx2(nb, nr, xp, wp, span, run.as_mut_ptr().cast::<f32>().add(jb)) };
            Ok(())
        },
        |sums, base, out| store_row(o, sums, base, out),
    )
}

/// AVX-512 (32 zmm registers) regular f32 conv: 6 pixels × 8 channels, 24
/// accumulators of two channels each.
///
/// # Safety
/// The CPU must support AVX-512 F, VL and DQ and AVX2.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_avx512(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    oc0: usize,
    m: usize,
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    super::float_conv::<6, 8>(
        g,
        x,
        w,
        (oc0, m),
        bias_at,
        CHUNK_WEIGHT_BYTES,
        out,
        |nb, nr, xp, wp, span, run, jb| {
            // SAFETY: as in `conv_avx2`, with AVX-512 F, VL and DQ.
            unsafe { micro_wide(nb, nr, xp, wp, span, run.as_mut_ptr().cast::<f32>().add(jb)) };
            Ok(())
        },
        |sums, base, out| store_row(o, sums, base, out),
    )
}

/// The packed micro-kernel: `M` pixels × 8 channels over `steps` groups of
/// eight taps. Each pair of channels' group comes from the packed block
/// (one 512-bit load); each pixel's group, with `DUP`, from the tile where
/// it is already stored twice (one 512-bit load, so no shuffle in the
/// loop), else from the input row, broadcast to both halves. The lanes and
/// the combination are [`micro_zmm`]'s.
///
/// # Safety
/// The CPU must support AVX-512 F, VL and DQ. `xd[p]` (p < M) must be
/// valid for `16 * steps` f32 with `DUP`, else `8 * steps`; `wk` for
/// `64 * steps`, `run` for 8 f32 at each of its first `M` rows of `CM_MAX`.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
#[inline]
unsafe fn micro_packed<const M: usize, const DUP: bool>(
    xd: &[*const f32; FP_MR],
    wk: *const f32,
    steps: usize,
    run: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; M];
    for st in 0..steps {
        let mut wv = [_mm512_setzero_ps(); 4];
        for (q, v) in wv.iter_mut().enumerate() {
            // SAFETY: st < steps, inside the block row.
            *v = unsafe { _mm512_loadu_ps(wk.add(st * 64 + q * 16)) };
        }
        for p in 0..M {
            // SAFETY: st < steps, inside the tile row (or the input row).
            let xv = unsafe {
                if DUP {
                    _mm512_loadu_ps(xd[p].add(st * 16))
                } else {
                    _mm512_broadcast_f32x8(_mm256_loadu_ps(xd[p].add(st * 8)))
                }
            };
            for q in 0..4 {
                acc[p][q] = _mm512_add_ps(acc[p][q], _mm512_mul_ps(xv, wv[q]));
            }
        }
    }
    // SAFETY: the caller's guarantee on `run` (all eight lanes; past the
    // chunk's channels nothing reads them).
    unsafe { add_zmm_sums(&acc, run) };
}

/// Regular conv through packed weights (the plan's scratch, laid out as
/// [`float_pack_layout`]): f32 weights, or f16 widened exactly while they
/// are packed (`half`). `None` if the conv cannot be packed or the scratch
/// is too small; nothing was written then.
///
/// Each chunk of 8-channel blocks is packed once per call: for block `b`,
/// kernel row `ky`, group `s` of eight taps of the row, channel pair `q`,
/// the 16 values `[w[8b + 2q][ky, 8s..8s + 8], w[8b + 2q + 1][ky, ...]]`
/// (past the last channel the last one repeats). Since `C` is a multiple
/// of 8, a window cut by the padding starts and ends on whole groups, so
/// every span is a run of groups and its lanes are the portable ones.
///
/// # Safety
/// The CPU must support AVX2, F16C and AVX-512 F, VL and DQ.
#[target_feature(enable = "avx2,f16c,avx512f,avx512vl,avx512dq")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv_packed(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    half: bool,
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
    scratch: &mut [u8],
) -> Option<KResult> {
    let lay = float_pack_layout(g, scratch.len())?;
    let (c, kh, kw, n) = (g.in_c, g.kernel_h, g.kernel_w, g.out_c);
    let (k, rowl) = (kh * kw * c, kw * c);
    let ws = if half { 2 } else { 4 };
    if w.len() != n * k * ws || lay.blocks * FP_NR > CM_MAX {
        return Some(Err(ShapeError));
    }
    let (pk, rest) = scratch.split_at_mut(lay.blocks * lay.block_bytes);
    let tile = rest.get_mut(..lay.tile_bytes)?;
    let cm = lay.blocks * FP_NR;
    let mut bias = [0.0f32; CM_MAX];
    for cb in (0..n).step_by(cm) {
        let cn = cm.min(n - cb);
        if let Err(e) = pack_chunk(w, half, (k, rowl, kh), (cb, cn), pk) {
            return Some(Err(e));
        }
        for (j, b) in bias.iter_mut().enumerate().take(cn) {
            *b = bias_at(cb + j);
        }
        let pk: &[u8] = pk;
        let r = crate::kernels::for_each_block::<FP_MR>(g, |blk, nb, rows, cols| {
            // SAFETY: the same target features.
            unsafe {
                block_packed(
                    g,
                    x,
                    pk,
                    (cb, cn),
                    &bias,
                    (blk, nb),
                    (rows, cols),
                    o,
                    out,
                    tile,
                )
            }
        });
        if r.is_err() {
            return Some(r);
        }
    }
    Some(Ok(()))
}

/// Packs channels `cb..cb + cn` of `w` (OHWI, f32 or f16) into `pk` as
/// [`conv_packed`] describes (AVX2 and F16C, which its callers have).
#[target_feature(enable = "avx2,f16c")]
fn pack_chunk(
    w: &[u8],
    half: bool,
    (k, rowl, kh): (usize, usize, usize),
    (cb, cn): (usize, usize),
    pk: &mut [u8],
) -> KResult {
    let ws = if half { 2 } else { 4 };
    let groups = rowl / 8;
    let mut d = 0;
    for b in 0..cn.div_ceil(FP_NR) {
        for ky in 0..kh {
            for s in 0..groups {
                for t in 0..FP_NR {
                    let j = cb + (b * FP_NR + t).min(cn - 1);
                    let at = (j * k + ky * rowl + s * 8) * ws;
                    let src = w.get(at..at + 8 * ws).ok_or(ShapeError)?;
                    let dst = pk.get_mut(d..d + 32).ok_or(ShapeError)?;
                    // SAFETY: `src` holds eight weights, `dst` 32 bytes;
                    // F16C is available.
                    unsafe {
                        let v = if half {
                            load_f16(src.as_ptr())
                        } else {
                            _mm256_loadu_ps(src.as_ptr() as *const f32)
                        };
                        _mm256_storeu_ps(dst.as_mut_ptr() as *mut f32, v);
                    }
                    d += 32;
                }
            }
        }
    }
    Ok(())
}

/// One pixel block of [`conv_packed`] against the packed chunk `pk` (the
/// `cn` channels from `cb`), with `tile` for the doubled input rows.
///
/// # Safety
/// The CPU must support AVX-512 F, VL and DQ.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_packed(
    g: &Geom,
    x: &[u8],
    pk: &[u8],
    (cb, cn): (usize, usize),
    bias: &[f32; CM_MAX],
    (blk, nb): (&[(usize, usize); FP_MR], usize),
    (rows, cols): (super::Span, super::Span),
    o: &OutF<'_>,
    out: &mut [u8],
    tile: &mut [u8],
) -> KResult {
    let (c, kh, kw, n) = (g.in_c, g.kernel_h, g.kernel_w, g.out_c);
    let rowl = kw * c;
    let span = cols.len() * c;
    let steps = span / 8;
    // Each block's row `ky` is `rowl * 8` f32 from `(b * kh + ky) * rowl *
    // 8`; the span's groups `cols.k0 * c / 8 ..` end by `cols.k1 * c / 8
    // <= rowl / 8`. The tile holds FP_MR rows of `2 * rowl` f32.
    let blocks = cn.div_ceil(FP_NR);
    if rows.k1 > kh
        || cols.k1 > kw
        || nb > FP_MR
        || pk.len() < blocks * kh * rowl * 8 * 4
        || tile.len() < FP_MR * 2 * rowl * 4
        || !c.is_multiple_of(8)
    {
        return Err(ShapeError);
    }
    let mut run = [*bias; FP_MR];
    let tp = tile.as_mut_ptr() as *mut f32;
    let wbase = pk.as_ptr() as *const f32;
    // Doubling the input rows pays for itself when many channel blocks
    // reuse them; for a chunk of few blocks, broadcast instead.
    let dup = blocks >= DUP_MIN_BLOCKS;
    for (r, ky) in (rows.k0..rows.k1).enumerate() {
        let mut xd = [core::ptr::null::<f32>(); FP_MR];
        for (p, &(oy, ox)) in blk.iter().enumerate().take(nb) {
            let (ry, cx) = (g.rows(oy), g.cols(ox));
            let xs = ((ry.i0 + r) * g.in_w + cx.i0) * c * 4;
            let xr = x.get(xs..xs + span * 4).ok_or(ShapeError)?;
            let sp = xr.as_ptr() as *const f32;
            xd[p] = sp;
            if dup {
                // SAFETY: row p of the tile holds 2 * rowl >= 2 * span
                // f32; `xr` holds `span` (a multiple of 8).
                unsafe {
                    let dp = tp.add(p * 2 * rowl);
                    for s in 0..steps {
                        let v = _mm256_loadu_ps(sp.add(s * 8));
                        _mm256_storeu_ps(dp.add(s * 16), v);
                        _mm256_storeu_ps(dp.add(s * 16 + 8), v);
                    }
                    xd[p] = dp;
                }
            }
        }
        for b in 0..blocks {
            // SAFETY: inside block b's row ky (checked above).
            let wk = unsafe { wbase.add((b * kh + ky) * rowl * 8 + cols.k0 * c * 8) };
            // SAFETY: the first `nb` tile rows hold `16 * steps` f32, the
            // block row `64 * steps` from `wk`; `run` has `nb` rows of
            // CM_MAX >= 8 (b + 1).
            unsafe {
                let rp = run.as_mut_ptr().cast::<f32>().add(b * FP_NR);
                macro_rules! pick {
                    ($($m:literal),*) => {
                        match (nb, dup) {
                            $(($m, true) => micro_packed::<$m, true>(&xd, wk, steps, rp),
                              ($m, false) => micro_packed::<$m, false>(&xd, wk, steps, rp),)*
                            _ => {}
                        }
                    };
                }
                pick!(6, 5, 4, 3, 2, 1);
            }
        }
    }
    for (p, &(oy, ox)) in blk.iter().enumerate().take(nb) {
        let base = (oy * g.out_w + ox) * n + cb;
        store_row(o, &run[p][..cn], base, out);
    }
    Ok(())
}

/// Most taps (`kh · kw · C`) whose weights [`conv_narrow`] transposes on
/// the stack (32 KiB for 32 channels).
const NARROW_MAX_K: usize = 256;

/// Whether [`conv_narrow`] runs a conv: kernel rows of at most 24 values
/// (an RGB or grayscale input layer: a 7x7 RGB row is 21), where
/// [`micro`]'s per-row combination of its lanes costs more than the row's
/// products.
fn narrow_applies(g: &Geom) -> bool {
    g.kernel_w * g.in_c <= 24 && g.kernel_h * g.kernel_w * g.in_c <= NARROW_MAX_K
}

/// Regular f32 conv for short kernel rows, vectorised across output
/// channels instead of along the row: 8 · `V` channels at a time (`V`
/// registers), one lane of `dot_f`'s eight at a time. Lane `q` of a row is
/// `+0.0 + x[q] · w[q] + x[q + 8] · w[q + 8] + ...` over the span, in that
/// order (`vmulps` then `vaddps`, as the portable loop), and the lanes are
/// combined as they come, in the portable pairing `((l0 + l4) + (l2 +
/// l6)) + ((l1 + l5) + (l3 + l7))`; then `acc + row sum`. Lane by lane,
/// few registers stay live, so one broadcast input value serves `V`
/// registers of channels. The weights of a block are transposed to
/// `[tap][channel]` on the stack once per block.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_narrow(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    oc0: usize,
    m: usize,
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    // SAFETY: AVX2, this function's contract.
    unsafe {
        match m {
            0..=8 => narrow_v::<1>(g, x, w, (oc0, m), bias_at, o, out),
            9..=16 => narrow_v::<2>(g, x, w, (oc0, m), bias_at, o, out),
            _ => narrow_v::<4>(g, x, w, (oc0, m), bias_at, o, out),
        }
    }
}

/// [`conv_narrow`] with `V` registers (8 · `V` channels) per block.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn narrow_v<const V: usize>(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    (oc0, m): (usize, usize),
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    let nr = 8 * V;
    let (c, kh, kw, n) = (g.in_c, g.kernel_h, g.kernel_w, g.out_c);
    let k = kh * kw * c;
    if k > NARROW_MAX_K || V > 4 {
        return Err(ShapeError);
    }
    let mut wt = [0.0f32; 32 * NARROW_MAX_K];
    for cb in (0..m).step_by(nr) {
        let cn = nr.min(m - cb);
        for j in 0..nr {
            // Past the last channel the lanes compute zeros nobody stores.
            let src = if j < cn {
                w.get((cb + j) * k * 4..(cb + j + 1) * k * 4)
                    .ok_or(ShapeError)?
            } else {
                &[]
            };
            for t in 0..k {
                wt[t * nr + j] = src.get(t * 4..t * 4 + 4).map_or(0.0, ld_f32);
            }
        }
        let mut bias = [0.0f32; 32];
        for (j, b) in bias.iter_mut().enumerate().take(cn) {
            *b = bias_at(oc0 + cb + j);
        }
        let wp = wt.as_ptr();
        let mut sums = [0.0f32; 32];
        for oy in 0..g.out_h {
            let rows = g.rows(oy);
            for ox in 0..g.out_w {
                let cols = g.cols(ox);
                let span = cols.len() * c;
                // SAFETY: `bias` holds 32 f32.
                let mut acc: [__m256; V] =
                    core::array::from_fn(|v| unsafe { _mm256_loadu_ps(bias.as_ptr().add(8 * v)) });
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c * 4;
                    let xr = x.get(xs..xs + span * 4).ok_or(ShapeError)?;
                    let t0 = (ky * kw + cols.k0) * c;
                    if t0 + span > k {
                        return Err(ShapeError);
                    }
                    let (xp, wr) = (xr.as_ptr() as *const f32, wp.wrapping_add(t0 * nr));
                    // SAFETY: `lane` reads elements below `span` of `xr`
                    // and taps below t0 + span <= k of `wt`.
                    let lane = |q: usize| unsafe { narrow_lane::<V>(q, span, xp, wr) };
                    let sum = |a: [__m256; V], b: [__m256; V]| -> [__m256; V] {
                        core::array::from_fn(|v| _mm256_add_ps(a[v], b[v]))
                    };
                    let a = sum(sum(lane(0), lane(4)), sum(lane(2), lane(6)));
                    let b = sum(sum(lane(1), lane(5)), sum(lane(3), lane(7)));
                    acc = sum(acc, sum(a, b));
                }
                for (v, av) in acc.iter().enumerate() {
                    // SAFETY: `sums` holds 32 f32.
                    unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * v), *av) };
                }
                let base = (oy * g.out_w + ox) * n + oc0 + cb;
                store_row(o, &sums[..cn], base, out);
            }
        }
    }
    Ok(())
}

/// Lane `q` of [`conv_narrow`]'s row: `+0.0 + x[q] · w[q] + x[q + 8] ·
/// w[q + 8] + ...` below `span`, for `V` registers of channels (`w` holds
/// `8 V` channels per tap).
///
/// # Safety
/// AVX2; `x` valid for `span` f32, `w` for `8 V · span` f32.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn narrow_lane<const V: usize>(
    q: usize,
    span: usize,
    x: *const f32,
    w: *const f32,
) -> [__m256; V] {
    let mut l = [_mm256_setzero_ps(); V];
    let mut i = q;
    while i < span {
        // SAFETY: i < span, the caller's guarantee.
        unsafe {
            let xv = _mm256_set1_ps(x.add(i).read_unaligned());
            for (v, lv) in l.iter_mut().enumerate() {
                let wv = _mm256_loadu_ps(w.add(i * 8 * V + 8 * v));
                *lv = _mm256_add_ps(*lv, _mm256_mul_ps(xv, wv));
            }
        }
        i += 8;
    }
    l
}

/// Regular f32 conv over output channels `oc0..oc0 + m`, whose weights
/// (f32, OHWI) are `w` (channel `oc0 + j` at `j * k`): writes those
/// channels of every output pixel, with the portable kernel's bits. Uses
/// the 512-bit blocking when `wide` (AVX-512 F, VL and DQ available).
///
/// The caller has checked `x` and `out` against `g`, and the residual.
///
/// # Safety
/// The CPU must support AVX2, and AVX-512 F, VL and DQ when `wide`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv_f32(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    oc0: usize,
    m: usize,
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
    wide: bool,
) -> KResult {
    let k = g.kernel_h * g.kernel_w * g.in_c;
    if w.len() < m * k * 4 || oc0 + m > g.out_c {
        return Err(ShapeError);
    }
    // SAFETY: the caller's guarantee on the CPU.
    unsafe {
        if narrow_applies(g) {
            conv_narrow(g, x, w, oc0, m, bias_at, o, out)
        } else if wide {
            conv_avx512(g, x, w, oc0, m, bias_at, o, out)
        } else {
            conv_avx2(g, x, w, oc0, m, bias_at, o, out)
        }
    }
}

/// Stores `acc[j]` at output element `base + j` for every `j` through
/// [`OutF::store`]'s recipe (residual, then activation), eight at a time.
#[target_feature(enable = "avx2")]
#[inline]
fn store_row(o: &OutF<'_>, acc: &[f32], base: usize, out: &mut [u8]) {
    let len = acc.len();
    let Some(dst) = out.get_mut(base * 4..(base + len) * 4) else {
        return;
    };
    let res = match o.residual {
        Some(Residual::Separate(s)) => match s.get(base * 4..(base + len) * 4) {
            Some(r) => Some(r.as_ptr() as *const f32),
            None => return,
        },
        Some(Residual::InPlace) => Some(dst.as_ptr() as *const f32),
        None => None,
    };
    let act = Act::new(o.act);
    let dp = dst.as_mut_ptr() as *mut f32;
    let full = len & !7;
    let mut i = 0;
    while i < full {
        // SAFETY: i + 8 <= len, inside `acc`, the residual slice and `dst`
        // (all `len` f32). Plain loads and stores: masked stores are slow
        // on some x86 cores.
        unsafe {
            let mut v = _mm256_loadu_ps(acc.as_ptr().add(i));
            if let Some(r) = res {
                v = _mm256_add_ps(v, _mm256_loadu_ps(r.add(i)));
            }
            _mm256_storeu_ps(dp.add(i), act.apply(v));
        }
        i += 8;
    }
    for (j, &a) in acc.iter().enumerate().skip(full) {
        // SAFETY: j < len, as above.
        unsafe {
            let v = match res {
                Some(r) => a + r.add(j).read_unaligned(),
                None => a,
            };
            dp.add(j).write_unaligned(o.act.apply(v));
        }
    }
}

/// [`FloatAct::apply`] on eight lanes: `min` where `v < min`, else `max`
/// where `v > max`, else `v` (NaN passes, as in the scalar code).
#[derive(Clone, Copy)]
struct Act {
    min: __m256,
    max: __m256,
}

impl Act {
    #[target_feature(enable = "avx2")]
    #[inline]
    fn new(a: FloatAct) -> Self {
        Act {
            min: _mm256_set1_ps(a.min),
            max: _mm256_set1_ps(a.max),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn apply(&self, v: __m256) -> __m256 {
        let lo = _mm256_cmp_ps::<_CMP_LT_OQ>(v, self.min);
        let hi = _mm256_cmp_ps::<_CMP_GT_OQ>(v, self.max);
        _mm256_blendv_ps(_mm256_blendv_ps(v, self.max, hi), self.min, lo)
    }
}

/// Depthwise f32 conv: each lane one channel, `acc = bias`, then
/// `acc += x * w` for every in-bounds tap in `(ky, kx)` order, as the
/// portable kernel. `w` is f32 `[kh, kw, c]`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn depthwise_f32(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias_at: &impl Fn(usize) -> f32,
    o: &OutF<'_>,
    out: &mut [u8],
) -> KResult {
    const V: usize = 4;
    let c = g.in_c;
    if w.len() < g.kernel_h * g.kernel_w * c * 4 {
        return Err(ShapeError);
    }
    let mut bias = [0.0f32; 8 * V];
    let mut accs = [0.0f32; 8 * V];
    let mut base = 0;
    for oy in 0..g.out_h {
        let rows = g.rows(oy);
        for ox in 0..g.out_w {
            let cols = g.cols(ox);
            for c0 in (0..c).step_by(8 * V) {
                let nb = (8 * V).min(c - c0);
                for (k, b) in bias.iter_mut().take(nb).enumerate() {
                    *b = bias_at(c0 + k);
                }
                let mut acc = [_mm256_setzero_ps(); V];
                let mut masks = [_mm256_setzero_si256(); V];
                for v in 0..V {
                    masks[v] = tail_mask(nb.saturating_sub(8 * v));
                    // SAFETY: masked to the first `nb` of `bias`.
                    acc[v] = unsafe { _mm256_maskload_ps(bias.as_ptr().add(8 * v), masks[v]) };
                }
                for (r, ky) in (rows.k0..rows.k1).enumerate() {
                    for (s, kx) in (cols.k0..cols.k1).enumerate() {
                        let xs = (((rows.i0 + r) * g.in_w + cols.i0 + s) * c + c0) * 4;
                        let ws = ((ky * g.kernel_w + kx) * c + c0) * 4;
                        let xr = x.get(xs..xs + nb * 4).ok_or(ShapeError)?;
                        let wr = w.get(ws..ws + nb * 4).ok_or(ShapeError)?;
                        let (xq, wq) = (xr.as_ptr() as *const f32, wr.as_ptr() as *const f32);
                        for v in 0..V {
                            if 8 * v >= nb {
                                break;
                            }
                            // SAFETY: masked to the first `nb` f32 of the
                            // checked slices.
                            let (xv, wv) = unsafe {
                                (
                                    _mm256_maskload_ps(xq.add(8 * v), masks[v]),
                                    _mm256_maskload_ps(wq.add(8 * v), masks[v]),
                                )
                            };
                            acc[v] = _mm256_add_ps(acc[v], _mm256_mul_ps(xv, wv));
                        }
                    }
                }
                for (v, a) in acc.iter().enumerate() {
                    // SAFETY: `accs` holds 8 * V f32.
                    unsafe { _mm256_storeu_ps(accs.as_mut_ptr().add(8 * v), *a) };
                }
                store_row(o, &accs[..nb], base + c0, out);
            }
            base += c;
        }
    }
    Ok(())
}

/// Widens the f16 values of `src` to f32 in `dst` (twice as long; any
/// extra is left alone), eight at a time with F16C: exactly
/// [`f16_to_f32`](super::f16_to_f32)'s bits, NaNs included.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn widen_f16(src: &[u8], dst: &mut [u8]) {
    let n = (src.len() / 2).min(dst.len() / 4);
    let full = n & !7;
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr() as *mut f32);
    let mut i = 0;
    while i < full {
        // SAFETY: i + 8 <= n, inside both buffers.
        unsafe { _mm256_storeu_ps(dp.add(i), load_f16(sp.add(i * 2))) };
        i += 8;
    }
    for (d, s) in dst[i * 4..n * 4]
        .chunks_exact_mut(4)
        .zip(src[i * 2..n * 2].chunks_exact(2))
    {
        d.copy_from_slice(&super::f16_to_f32(u16::from_le_bytes([s[0], s[1]])).to_le_bytes());
    }
}

/// Generates a dense kernel: `out[i] = bias[i] + dot_f(x, w_row(i))`,
/// [`DR`] rows at a time sharing each load of `x`, with the target features
/// `$feat` and the weight loader `$load` (8 weights from element `i` of a
/// row) for `$wsize`-byte weights.
macro_rules! dense_kernel {
    ($(#[$doc:meta])* $name:ident, $feat:literal, $wsize:literal, $load:ident) => {
        $(#[$doc])*
        #[target_feature(enable = $feat)]
        pub(crate) unsafe fn $name(
            x: &[u8],
            w: &[u8],
            bias_at: &impl Fn(usize) -> f32,
            act: FloatAct,
            out: &mut [u8],
        ) -> KResult {
            const WS: usize = $wsize;
            let (in_f, out_f) = (x.len() / 4, out.len() / 4);
            if in_f == 0 || w.len() != in_f * out_f * WS {
                return Err(ShapeError);
            }
            let xp = x.as_ptr() as *const f32;
            let full = in_f & !7;
            let mut res = [0.0f32; DR];
            for r0 in (0..out_f).step_by(DR) {
                let nr = DR.min(out_f - r0);
                // Past the last row, repeat it (computed, not stored).
                let mut wp = [w.as_ptr(); DR];
                for (t, p) in wp.iter_mut().enumerate() {
                    let row = r0 + t.min(nr - 1);
                    let wr = w.get(row * in_f * WS..(row + 1) * in_f * WS);
                    *p = wr.ok_or(ShapeError)?.as_ptr();
                }
                let mut acc = [_mm256_setzero_ps(); DR];
                let mut i = 0;
                while i < full {
                    // SAFETY: i + 8 <= in_f, inside `x` and every row.
                    let xv = unsafe { _mm256_loadu_ps(xp.add(i)) };
                    for t in 0..DR {
                        // SAFETY: as above.
                        let wv = unsafe { $load(wp[t].add(i * WS)) };
                        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(xv, wv));
                    }
                    i += 8;
                }
                if i < in_f {
                    let left = in_f - i;
                    let mask = tail_mask(left);
                    // SAFETY: masked to the first `left` f32 from `i`.
                    let xv = unsafe { _mm256_maskload_ps(xp.add(i), mask) };
                    for t in 0..DR {
                        // Zeros past the row's end: 0 * 0 leaves the lane.
                        let mut tail = [0u8; 8 * WS];
                        // SAFETY: `left * WS` bytes from element `i` are
                        // inside the row.
                        let src = unsafe {
                            core::slice::from_raw_parts(wp[t].add(i * WS), left * WS)
                        };
                        if let Some(d) = tail.get_mut(..left * WS) {
                            d.copy_from_slice(src);
                        }
                        // SAFETY: `tail` holds 8 weights.
                        let wv = unsafe { $load(tail.as_ptr()) };
                        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(xv, wv));
                    }
                }
                // SAFETY: `res` holds DR = 8 f32.
                unsafe { _mm256_storeu_ps(res.as_mut_ptr(), combine8(&acc)) };
                for (t, &s) in res.iter().enumerate().take(nr) {
                    let i = r0 + t;
                    if let Some(d) = out.get_mut(i * 4..) {
                        super::st_f32(d, act.apply(bias_at(i) + s));
                    }
                }
            }
            Ok(())
        }
    };
}

dense_kernel!(
    /// Dense with f32 weights (`out_f` rows of `x.len() / 4`).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    dense_f32,
    "avx2",
    4,
    load_f32
);

dense_kernel!(
    /// Dense with f16 weights, widened exactly by F16C as they are loaded
    /// (each weight is used once, so this is widening once per call).
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    dense_f16,
    "avx2,f16c",
    2,
    load_f16
);

/// Eight f32 weights from `p`.
///
/// # Safety
/// 32 bytes from `p` must be readable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_f32(p: *const u8) -> __m256 {
    // SAFETY: the caller's guarantee.
    unsafe { _mm256_loadu_ps(p as *const f32) }
}

/// Eight f16 weights from `p`, widened exactly (F16C gives the portable
/// conversion's bits, NaNs included: payload kept, quiet bit set).
///
/// # Safety
/// 16 bytes from `p` must be readable; the CPU must support F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn load_f16(p: *const u8) -> __m256 {
    // SAFETY: the caller's guarantee.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn f16c_widening_matches_the_portable_conversion_for_every_value() {
        if !super::f16c_available() {
            return;
        }
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        // An odd length too, for the scalar tail.
        for len in [src.len(), src.len() - 6] {
            let mut fast = vec![0u8; len * 2];
            let mut portable = vec![0u8; len * 2];
            // SAFETY: F16C and AVX2 were detected.
            #[allow(unsafe_code)]
            unsafe {
                super::widen_f16(&src[..len], &mut fast)
            };
            crate::kernels::conv::widen::<crate::kernels::F16W>(&src[..len], &mut portable)
                .unwrap();
            assert!(fast == portable);
        }
    }
}
