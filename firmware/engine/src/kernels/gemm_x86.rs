//! AVX2 int8 convolution as a packed GEMM (x86-64).
//!
//! A regular Conv2d is `out[p, oc] = bias[oc] + Σ_k (x[p, k] - zp) · w[oc, k]`
//! over the im2col index `k = (ky, kx, c)`, which is the OHWI weight row.
//! This kernel packs, in the plan's scratch area:
//!
//! - a block of output channels' weights, widened to i16 and interleaved as
//!   `[k / 2][16 channels][2]` per panel of 16 channels (zero past the last
//!   channel and the last k), so one 256-bit load is 8 channels × 2 taps;
//! - a tile of `MR` output pixels' im2col rows, as i16 `x - zp` (0 for
//!   padding taps, which the spec defines as contributing nothing).
//!
//! The micro-kernel broadcasts a pixel's pair of taps and `vpmaddwd`s it
//! against a panel: `(x - zp) · w` is at most 255 · 128 in magnitude, a pair
//! sum at most 65280, so nothing saturates, and i32 sums are exact modulo
//! 2^32 in any order: the result is bit-identical to the portable loop,
//! whose sums wrap the same way. Requantisation and the fused residual Add
//! run lane-wise with the spec's integer recipe ([`LaneQ`], checked against
//! the scalar one), so they too give the portable kernel's bytes.
//!
//! Pixels go in tiles of nearly equal size (at most `MR`), so a 7x7 image
//! (49 pixels) is 4 tiles of 6 and 5 of 5 rather than 8 of 6 and 1 of 1;
//! weight panels are packed 8 tap pairs at a time by a 16-bit transpose.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::scratch::{gemm_layout, MR, NR, PANEL_CONSTS};
use super::{Geom, I32s, KResult, Out8, ShapeError};

/// Runs the AVX2 conv if `scratch` holds at least one weight panel and the
/// pixel tile. `None`: not enough scratch, nothing was written.
///
/// The caller has checked the buffer lengths against `g` (`check` in
/// `conv.rs`) and the per-channel arrays against `out_c`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn conv_i8(
    g: &Geom,
    x: &[u8],
    w: &[u8],
    bias: Option<I32s<'_>>,
    o: &Out8<'_, '_>,
    out: &mut [u8],
    scratch: &mut [u8],
) -> Option<KResult> {
    let k = g.kernel_h * g.kernel_w * g.in_c;
    let n = g.out_c;
    let lay = gemm_layout(k, n, scratch.len())?;
    let (wbuf, rest) = scratch.split_at_mut(lay.panels * lay.panel_bytes);
    let xbuf = rest.get_mut(..lay.tile_bytes)?;
    if w.len() != n * k || x.len() != g.in_h * g.in_w * g.in_c || out.len() != g.out_h * g.out_w * n
    {
        return Some(Err(ShapeError));
    }
    let pixels = g.out_h * g.out_w;
    let in_zp = o.q.in_zp;
    if !(-128..=127).contains(&in_zp) {
        // Outside int8 `x - zp` might not fit i16; keep exactness.
        return None;
    }
    let total_panels = n.div_ceil(NR);
    let fuse = FuseV::new(o);
    // A 1x1 conv with stride 1 and no padding over an even channel count:
    // each pixel's im2col row is its input, `units * 2 == C` values.
    let pointwise = (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (1, 1, 1, 1)
        && (g.pad_top, g.pad_left) == (0, 0)
        && (g.out_h, g.out_w) == (g.in_h, g.in_w)
        && lay.units * 2 == g.in_c;
    let mut acc = [[0i32; NR]; MR];
    for pb in (0..total_panels).step_by(lay.panels) {
        let np = lay.panels.min(total_panels - pb);
        let wlen = lay.units * NR * 4;
        for j in 0..np {
            let panel = &mut wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
            let (pw, pc) = panel.split_at_mut(wlen);
            pack_panel(w, k, n, (pb + j) * NR, pw);
            pack_consts(o, bias, (pb + j) * NR, pc);
        }
        // The next block's weight rows (contiguous in OHWI), fetched into
        // the cache a slice per tile while this block computes, so its
        // packing does not wait on memory.
        let next = w
            .get(((pb + np) * NR * k).min(w.len())..((pb + np + lay.panels) * NR * k).min(w.len()))
            .unwrap_or(&[]);
        let slice = next.len().div_ceil(64).div_ceil(pixels.div_ceil(MR)) * 64;
        for (ti, (p0, mr)) in tile_split(pixels, MR).enumerate() {
            if let Some(ahead) = next.get(ti * slice..((ti + 1) * slice).min(next.len())) {
                super::prefetch(ahead);
            }
            if pointwise {
                // The tile's input pixels are contiguous, and so are its
                // rows of `c` i16: one widening for the whole tile.
                let (c, rows) = (g.in_c, &mut xbuf[..mr * lay.units * 4]);
                widen_sub(&x[p0 * c..(p0 + mr) * c], rows, in_zp);
            } else {
                for t in 0..mr {
                    let row = &mut xbuf[t * lay.units * 4..(t + 1) * lay.units * 4];
                    pack_pixel(g, x, p0 + t, in_zp, row);
                }
            }
            for j in 0..np {
                let oc0 = (pb + j) * NR;
                let panel = &wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
                let (panel, consts) = panel.split_at(wlen);
                // SAFETY: `xbuf` holds MR rows of `kpairs` pairs and
                // `panel` `kpairs` × 16 pairs (checked by the slicing
                // above); the kernel reads exactly those.
                match mr {
                    6 => micro::<6>(lay.units, xbuf, panel, &mut acc),
                    5 => micro::<5>(lay.units, xbuf, panel, &mut acc),
                    4 => micro::<4>(lay.units, xbuf, panel, &mut acc),
                    3 => micro::<3>(lay.units, xbuf, panel, &mut acc),
                    2 => micro::<2>(lay.units, xbuf, panel, &mut acc),
                    _ => micro::<1>(lay.units, xbuf, panel, &mut acc),
                }
                let nn = NR.min(n - oc0);
                let ep = Epi::new(o, fuse.as_ref(), consts, nn);
                for (t, a) in acc.iter().take(mr).enumerate() {
                    let base = (p0 + t) * n + oc0;
                    ep.store(a, base, out);
                }
            }
        }
    }
    Some(Ok(()))
}

/// Splits `rows` GEMM rows (pixels, or Winograd tiles) into tiles of
/// nearly equal size, at most `max`: `(first row, rows)` each. A 7x7
/// image (49 pixels) in tiles of at most 6 is 4 tiles of 6 and 5 of 5
/// rather than 8 of 6 and 1 of 1, so small images waste no thin last tile.
pub(super) fn tile_split(rows: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let ntiles = rows.div_ceil(max.max(1));
    let (small, extra) = (rows / ntiles.max(1), rows % ntiles.max(1));
    (0..ntiles).scan(0, move |next, tile| {
        let mr = (small + usize::from(tile < extra)).min(max);
        let p0 = *next;
        *next += mr;
        Some((p0, mr))
    })
}

/// Packs output channels `oc0..oc0 + 16` (zeros past `n`) as
/// `[kpairs][16][2]` little-endian i16.
#[target_feature(enable = "avx2")]
unsafe fn pack_panel(w: &[u8], k: usize, n: usize, oc0: usize, panel: &mut [u8]) {
    let mut rows: [&[u8]; NR] = [&[]; NR];
    for (jj, r) in rows.iter_mut().enumerate() {
        if oc0 + jj < n {
            *r = w.get((oc0 + jj) * k..(oc0 + jj + 1) * k).unwrap_or(&[]);
        }
    }
    // All 16 channels present: 8 tap pairs at a time by a 16-bit transpose.
    let blocks = if oc0 + NR <= n { k / 16 } else { 0 };
    for (blk, dst) in panel.chunks_exact_mut(8 * NR * 4).take(blocks).enumerate() {
        let mut a = [_mm_setzero_si128(); NR];
        for (v, r) in a.iter_mut().zip(rows.iter()) {
            let Some(src) = r.get(blk * 16..blk * 16 + 16) else {
                return;
            };
            // SAFETY: `src` is 16 bytes.
            *v = _mm_loadu_si128(src.as_ptr() as *const __m128i);
        }
        let (lo, hi) = a.split_at(8);
        let (tl, th) = (transpose8x16(lo), transpose8x16(hi));
        for (kk, d) in dst.chunks_exact_mut(NR * 4).enumerate() {
            // SAFETY: `d` is 64 bytes.
            _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, _mm256_cvtepi8_epi16(tl[kk]));
            _mm256_storeu_si256(
                d.as_mut_ptr().add(32) as *mut __m256i,
                _mm256_cvtepi8_epi16(th[kk]),
            );
        }
    }
    for (kk, dst) in panel.chunks_exact_mut(NR * 4).enumerate().skip(blocks * 8) {
        // The 16 channels' byte pairs of taps 2kk, 2kk + 1 (0 past the end).
        let mut pairs = [0u8; 2 * NR];
        for (d, r) in pairs.chunks_exact_mut(2).zip(rows.iter()) {
            match r.get(2 * kk..2 * kk + 2) {
                Some(&[a, b]) => {
                    d[0] = a;
                    d[1] = b;
                }
                _ => d[0] = r.get(2 * kk).copied().unwrap_or(0),
            }
        }
        // SAFETY: `pairs` is 32 bytes, `dst` 64.
        let v = _mm256_loadu_si256(pairs.as_ptr() as *const __m256i);
        let lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v));
        let hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1));
        _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, lo);
        _mm256_storeu_si256(dst.as_mut_ptr().add(32) as *mut __m256i, hi);
    }
}

/// Transposes 8 rows of 8 16-bit words: word `i` of output `j` is word `j`
/// of row `i` (`a` holds at least 8 rows; missing ones read as zero).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn transpose8x16(a: &[__m128i]) -> [__m128i; 8] {
    let r = |i: usize| a.get(i).copied().unwrap_or(_mm_setzero_si128());
    let b0 = _mm_unpacklo_epi16(r(0), r(1));
    let b1 = _mm_unpackhi_epi16(r(0), r(1));
    let b2 = _mm_unpacklo_epi16(r(2), r(3));
    let b3 = _mm_unpackhi_epi16(r(2), r(3));
    let b4 = _mm_unpacklo_epi16(r(4), r(5));
    let b5 = _mm_unpackhi_epi16(r(4), r(5));
    let b6 = _mm_unpacklo_epi16(r(6), r(7));
    let b7 = _mm_unpackhi_epi16(r(6), r(7));
    let c0 = _mm_unpacklo_epi32(b0, b2);
    let c1 = _mm_unpackhi_epi32(b0, b2);
    let c2 = _mm_unpacklo_epi32(b1, b3);
    let c3 = _mm_unpackhi_epi32(b1, b3);
    let c4 = _mm_unpacklo_epi32(b4, b6);
    let c5 = _mm_unpackhi_epi32(b4, b6);
    let c6 = _mm_unpacklo_epi32(b5, b7);
    let c7 = _mm_unpackhi_epi32(b5, b7);
    [
        _mm_unpacklo_epi64(c0, c4),
        _mm_unpackhi_epi64(c0, c4),
        _mm_unpacklo_epi64(c1, c5),
        _mm_unpackhi_epi64(c1, c5),
        _mm_unpacklo_epi64(c2, c6),
        _mm_unpackhi_epi64(c2, c6),
        _mm_unpacklo_epi64(c3, c7),
        _mm_unpackhi_epi64(c3, c7),
    ]
}

/// Stores the bias, multiplier and split shifts of channels
/// `oc0..oc0 + 16` (zeros past the last) as four `[i32; 16]`.
pub(super) fn pack_consts(o: &Out8<'_, '_>, bias: Option<I32s<'_>>, oc0: usize, dst: &mut [u8]) {
    dst.fill(0);
    let n = o.q.multipliers.len().min(o.q.shifts.len());
    for j in 0..NR.min(n.saturating_sub(oc0)) {
        let s = o.q.shifts.get(oc0 + j);
        let vals = [
            bias.map_or(0, |v| v.get(oc0 + j)),
            o.q.multipliers.get(oc0 + j),
            s.clamp(0, 30),
            (-s).clamp(0, 31),
        ];
        for (f, v) in vals.iter().enumerate() {
            let at = (f * NR + j) * 4;
            if let Some(d) = dst.get_mut(at..at + 4) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// Packs output pixel `p`'s im2col row as i16 `x - zp` (0 in padding).
#[target_feature(enable = "avx2")]
unsafe fn pack_pixel(g: &Geom, x: &[u8], p: usize, zp: i32, row: &mut [u8]) {
    let (oy, ox) = (p / g.out_w.max(1), p % g.out_w.max(1));
    let (rows, cols) = (g.rows(oy), g.cols(ox));
    let span = g.kernel_w * g.in_c;
    let k = g.kernel_h * span;
    if rows.len() == g.kernel_h && cols.len() == g.kernel_w && row.len() >= 2 * k {
        // A window inside the input: whole kernel rows, no padding taps.
        let (taps, tail) = row.split_at_mut(2 * k);
        tail.fill(0);
        for (ky, dst) in taps.chunks_exact_mut(2 * span).enumerate() {
            let xs = ((rows.i0 + ky) * g.in_w + cols.i0) * g.in_c;
            let Some(src) = x.get(xs..xs + span) else {
                return;
            };
            widen_sub(src, dst, zp);
        }
        return;
    }
    // SAFETY: AVX2, as this function's caller guarantees.
    super::im2col_row(g, x, p, 2, 0, row, |src, dst| unsafe {
        widen_sub(src, dst, zp)
    });
}

/// `dst[i] = src[i] as i8 - zp` as little-endian i16; `dst` is twice
/// `src`'s length.
///
/// Rows that are not a multiple of 16 bytes (an RGB input layer's kernel
/// rows are 21) end with a vector over the last 16 (or 8) bytes, which
/// rewrites some values already written with the same ones.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn widen_sub(src: &[u8], dst: &mut [u8], zp: i32) {
    let n = src.len();
    if dst.len() < 2 * n {
        return;
    }
    let zv = _mm256_set1_epi16(zp as i16);
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let wide = |at: usize| {
        // SAFETY: `at + 16 <= n`, and `dst` holds `2 n` bytes.
        let v = _mm_loadu_si128(sp.add(at) as *const __m128i);
        let wv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(v), zv);
        _mm256_storeu_si256(dp.add(2 * at) as *mut __m256i, wv);
    };
    if n >= 16 {
        for at in (0..n - 15).step_by(16) {
            wide(at);
        }
        if !n.is_multiple_of(16) {
            wide(n - 16);
        }
    } else if n >= 8 {
        let zh = _mm256_castsi256_si128(zv);
        for at in [0, n - 8] {
            // SAFETY: `at + 8 <= n`, and `dst` holds `2 n` bytes.
            let v = _mm_loadl_epi64(sp.add(at) as *const __m128i);
            let wv = _mm_sub_epi16(_mm_cvtepi8_epi16(v), zh);
            _mm_storeu_si128(dp.add(2 * at) as *mut __m128i, wv);
        }
    } else {
        for (d, &v) in dst.chunks_exact_mut(2).zip(src) {
            d.copy_from_slice(&((v as i8 as i16).wrapping_sub(zp as i16)).to_le_bytes());
        }
    }
}

/// `acc[t][j] = Σ_kk pair(x row t, kk) · pair(panel, kk, j)` for `M` rows.
///
/// # Safety
/// AVX2; `xbuf` holds at least `M * kpairs * 4` bytes and `panel`
/// `kpairs * 64`. Not inlined: inside the caller's loops LLVM spills sums
/// and recomputes row addresses in the hot loop.
#[target_feature(enable = "avx2")]
#[inline(never)]
pub(super) unsafe fn micro<const M: usize>(
    kpairs: usize,
    xbuf: &[u8],
    panel: &[u8],
    acc: &mut [[i32; NR]; MR],
) {
    if xbuf.len() < M * kpairs * 4 || panel.len() < kpairs * 64 || M > MR {
        return;
    }
    let xp = xbuf.as_ptr();
    let wp = panel.as_ptr();
    let xstride = kpairs * 4;
    let mut c0 = [_mm256_setzero_si256(); M];
    let mut c1 = [_mm256_setzero_si256(); M];
    for kk in 0..kpairs {
        // SAFETY: kk < kpairs, so every read is inside the checked lengths.
        let w0 = _mm256_loadu_si256(wp.add(kk * 64) as *const __m256i);
        let w1 = _mm256_loadu_si256(wp.add(kk * 64 + 32) as *const __m256i);
        for t in 0..M {
            let pair = (xp.add(t * xstride + kk * 4) as *const i32).read_unaligned();
            let xv = _mm256_set1_epi32(pair);
            c0[t] = _mm256_add_epi32(c0[t], _mm256_madd_epi16(xv, w0));
            c1[t] = _mm256_add_epi32(c1[t], _mm256_madd_epi16(xv, w1));
        }
    }
    for t in 0..M {
        let a = &mut acc[t];
        // SAFETY: each half of `a` is 8 i32 = 32 bytes.
        _mm256_storeu_si256(a.as_mut_ptr() as *mut __m256i, c0[t]);
        _mm256_storeu_si256(a.as_mut_ptr().add(8) as *mut __m256i, c1[t]);
    }
}

/// Per-panel requantisation constants, as vectors of 8 lanes (two halves
/// of a 16-channel panel).
pub(super) struct Epi<'o, 'q, 'r> {
    o: &'o Out8<'q, 'r>,
    nn: usize,
    bias: [__m256i; 2],
    req: [LaneQ; 2],
    out_zp: __m256i,
    clamp: Clamp8,
    fuse: Option<&'o FuseV>,
}

/// The fused residual Add's constants, broadcast once per conv.
#[derive(Clone, Copy)]
pub(super) struct FuseV {
    zp1: __m256i,
    zp2: __m256i,
    ls: __m128i,
    m1: i32,
    s1: (__m128i, __m128i, __m256i),
    m2: i32,
    s2: (__m128i, __m128i, __m256i),
    mo: i32,
    so: (__m128i, __m128i, __m256i),
    out_zp: __m256i,
    clamp: Clamp8,
    /// The two inputs' rescalings by [`SmallQ`], where they qualify.
    q1: Option<SmallQ>,
    q2: Option<SmallQ>,
}

impl FuseV {
    /// The constants of `o`'s fused Add, if it has one: built once per
    /// conv call (they are the op's, not a panel's).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn new(o: &Out8<'_, '_>) -> Option<Self> {
        o.fuse.map(|f| {
            let a = &f.add;
            let p = &a.params;
            FuseV {
                zp1: _mm256_set1_epi32(a.zp1),
                zp2: _mm256_set1_epi32(a.zp2),
                ls: _mm_cvtsi32_si128(p.left_shift.clamp(0, 30)),
                m1: p.input1_multiplier,
                s1: uniform_shift(p.input1_shift),
                m2: p.input2_multiplier,
                s2: uniform_shift(p.input2_shift),
                mo: p.output_multiplier,
                so: uniform_shift(p.output_shift),
                out_zp: _mm256_set1_epi32(a.out_zp),
                clamp: Clamp8::new(a.act_min, a.act_max),
                q1: SmallQ::new(a.zp1, p.left_shift, p.input1_multiplier, p.input1_shift),
                q2: SmallQ::new(a.zp2, p.left_shift, p.input2_multiplier, p.input2_shift),
            }
        })
    }
}

/// `multiply_by_quantized_multiplier(d << ls, m, shift)` for `|d| <= 255`
/// (a byte less a zero point in -128..=127, as both inputs of a fused Add
/// are) when the total left shift `L = ls + max(shift, 0)` is 15..=22,
/// with 16-bit multiplies. Then `d · 2^L` needs no wrap (`255 · 2^22 <
/// 2^30`, nor is it `i32::MIN`, so the doubling high multiply cannot
/// saturate), and that multiply, `floor((d · 2^L · m + 2^30) / 2^31)`, is
/// `floor((d · m + 2^(e-1)) / 2^e)` with `e = 31 - L` in 9..=16. With `m =
/// mh · 2^16 + ml` (`mh = (m + 2^15) >> 16`, so `-2^15 <= ml < 2^15`; `mh`
/// fits i16 for `m < 2^31 - 2^15`) and `e <= 16`, that is `d · mh ·
/// 2^(16-e) + floor((d · ml + 2^(e-1)) / 2^e)`: `|d · mh|` and `|d · ml|`
/// are at most `255 · 2^15`, products of two i16 that `vpmaddwd` forms
/// exactly (the lane's other half multiplies by 0), and `|d · mh| ·
/// 2^(16-e) < 2^31`. The rounding divide by `2^right` follows as in
/// [`mbqm8u`] (tested against the scalar recipe for every `d`).
///
/// Where the multiplier is a power of two `2^j` and `k = L + j - 31 -
/// right >= 0` (the usual int8 Add rescales the input with the larger
/// scale by exactly one half), both roundings are exact and the result
/// is `d << k`.
#[derive(Clone, Copy)]
struct SmallQ {
    /// `Some(k)`: the result is `d << k`.
    exact_shift: Option<__m128i>,
    mh: __m256i,
    ml: __m256i,
    up: __m128i,
    down: __m128i,
    round: __m256i,
    right: __m128i,
    mask: __m256i,
}

impl SmallQ {
    /// For zero point `zp`, the Add's left shift `ls` and this input's
    /// multiplier and shift; `None` where the shortcut does not apply.
    #[target_feature(enable = "avx2")]
    unsafe fn new(zp: i32, ls: i32, m: i32, shift: i32) -> Option<Self> {
        let l = ls.clamp(0, 30) + shift.clamp(0, 30);
        let mh = (i64::from(m) + (1 << 15)) >> 16;
        if !(-128..=127).contains(&zp) || !(15..=22).contains(&l) || mh >= 1 << 15 {
            return None;
        }
        let ml = i64::from(m) - (mh << 16);
        let e = 31 - l;
        let (_, right, mask) = uniform_shift(shift);
        let k = l + m.trailing_zeros() as i32 - 31 - (-shift).clamp(0, 31);
        let exact_shift = (m > 0 && m.count_ones() == 1 && k >= 0).then(|| _mm_cvtsi32_si128(k));
        Some(SmallQ {
            exact_shift,
            // Each i32 lane holds (c, 0) as i16: `vpmaddwd` gives d · c.
            mh: _mm256_set1_epi32((mh as i32) & 0xFFFF),
            ml: _mm256_set1_epi32((ml as i32) & 0xFFFF),
            up: _mm_cvtsi32_si128(16 - e),
            down: _mm_cvtsi32_si128(e),
            round: _mm256_set1_epi32(1 << (e - 1)),
            right,
            mask,
        })
    }

    /// The rescaled `d` (lanes with `|d| <= 255`).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn apply(&self, d: __m256i) -> __m256i {
        if let Some(k) = self.exact_shift {
            return _mm256_sll_epi32(d, k);
        }
        let hi = _mm256_sll_epi32(_mm256_madd_epi16(d, self.mh), self.up);
        let lo = _mm256_sra_epi32(
            _mm256_add_epi32(_mm256_madd_epi16(d, self.ml), self.round),
            self.down,
        );
        let hm = _mm256_add_epi32(hi, lo);
        round_div8(hm, _mm256_sra_epi32(hm, self.right), self.mask)
    }
}

impl<'o, 'q, 'r> Epi<'o, 'q, 'r> {
    /// Loads the constants [`pack_consts`] stored (`consts` holds
    /// [`PANEL_CONSTS`] bytes; zeros if shorter).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn new(
        o: &'o Out8<'q, 'r>,
        fuse: Option<&'o FuseV>,
        consts: &[u8],
        nn: usize,
    ) -> Self {
        let mut c = [0u8; PANEL_CONSTS];
        if let Some(src) = consts.get(..PANEL_CONSTS) {
            c.copy_from_slice(src);
        }
        // SAFETY: 32 bytes at (2 * f + h) * 32 of the 256-byte array.
        let ld = |f: usize, h: usize| {
            _mm256_loadu_si256(c.as_ptr().add((2 * f + h) * 32) as *const __m256i)
        };
        Epi {
            o,
            nn,
            bias: [ld(0, 0), ld(0, 1)],
            req: [
                LaneQ::new(ld(1, 0), ld(2, 0), ld(3, 0)),
                LaneQ::new(ld(1, 1), ld(2, 1), ld(3, 1)),
            ],
            out_zp: _mm256_set1_epi32(o.q.out_zp),
            clamp: Clamp8::new(o.q.act_min, o.q.act_max),
            fuse,
        }
    }

    /// Requantises (and adds the residual of) one pixel's panel of sums
    /// and stores them at `out[base..base + nn]`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn store(&self, acc: &[i32; NR], base: usize, out: &mut [u8]) {
        let mut v = [_mm256_setzero_si256(); 2];
        for (h, vh) in v.iter_mut().enumerate() {
            // SAFETY: 8 i32 at h * 8 of a 16-element array.
            let a = _mm256_loadu_si256(acc.as_ptr().add(h * 8) as *const __m256i);
            let a = _mm256_add_epi32(a, self.bias[h]);
            let r = self.req[h].apply(a);
            *vh = self.clamp.apply(_mm256_add_epi32(r, self.out_zp));
        }
        let Some(dst) = out.get_mut(base..base + self.nn) else {
            return;
        };
        if let (Some(fv), Some(f)) = (self.fuse, &self.o.fuse) {
            // The residual's bytes of these channels, sign-extended.
            let src: &[u8] = match f.residual {
                super::Residual::Separate(s) => s.get(base..base + self.nn).unwrap_or(&[]),
                super::Residual::InPlace => dst,
            };
            let r16 = if let Ok(r) = <&[u8; NR]>::try_from(src) {
                // SAFETY: `r` is 16 bytes.
                _mm_loadu_si128(r.as_ptr() as *const __m128i)
            } else {
                let mut rb = [0u8; NR];
                for (d, &v) in rb.iter_mut().zip(src) {
                    *d = v;
                }
                // SAFETY: `rb` is 16 bytes.
                _mm_loadu_si128(rb.as_ptr() as *const __m128i)
            };
            let res = [
                _mm256_cvtepi8_epi32(r16),
                _mm256_cvtepi8_epi32(_mm_srli_si128(r16, 8)),
            ];
            if let (Some(q1), Some(q2)) = (&fv.q1, &fv.q2) {
                for (vh, &r) in v.iter_mut().zip(res.iter()) {
                    let y1 = q1.apply(_mm256_sub_epi32(*vh, fv.zp1));
                    let y2 = q2.apply(_mm256_sub_epi32(r, fv.zp2));
                    let so = fv.so;
                    let y = mbqm8u(_mm256_add_epi32(y1, y2), fv.mo, so.0, so.1, so.2);
                    *vh = fv.clamp.apply(_mm256_add_epi32(y, fv.out_zp));
                }
            } else {
                for (vh, &r) in v.iter_mut().zip(res.iter()) {
                    let x1 = _mm256_sll_epi32(_mm256_sub_epi32(*vh, fv.zp1), fv.ls);
                    let x2 = _mm256_sll_epi32(_mm256_sub_epi32(r, fv.zp2), fv.ls);
                    let (s1, s2, so) = (fv.s1, fv.s2, fv.so);
                    let y1 = mbqm8u(x1, fv.m1, s1.0, s1.1, s1.2);
                    let y2 = mbqm8u(x2, fv.m2, s2.0, s2.1, s2.2);
                    let y = mbqm8u(_mm256_add_epi32(y1, y2), fv.mo, so.0, so.1, so.2);
                    *vh = fv.clamp.apply(_mm256_add_epi32(y, fv.out_zp));
                }
            }
        }
        // Pack the (already clamped to -128..=127) i32 lanes to bytes.
        let w = _mm256_permute4x64_epi64(_mm256_packs_epi32(v[0], v[1]), 0b11_01_10_00);
        let b = _mm256_packs_epi16(w, w);
        let b = _mm256_permute4x64_epi64(b, 0b11_01_10_00);
        if let Ok(d16) = <&mut [u8; NR]>::try_from(&mut *dst) {
            _mm_storeu_si128(d16.as_mut_ptr() as *mut __m128i, _mm256_castsi256_si128(b));
        } else {
            let mut bytes = [0u8; NR];
            // SAFETY: `bytes` is 16 bytes.
            _mm_storeu_si128(
                bytes.as_mut_ptr() as *mut __m128i,
                _mm256_castsi256_si128(b),
            );
            for (d, &s) in dst.iter_mut().zip(bytes.iter()) {
                *d = s;
            }
        }
    }
}

/// `v.max(lo).min(hi).clamp(-128, 127)`, lane-wise (as `requantize`),
/// with the bounds broadcast once.
#[derive(Clone, Copy)]
pub(super) struct Clamp8 {
    lo: __m256i,
    hi: __m256i,
}

impl Clamp8 {
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn new(lo: i32, hi: i32) -> Self {
        // One clamp to the bounds clamped to -128..=127 is the same: for
        // lo <= hi both clamp to the intersection of the two ranges (or to
        // its nearer end when it is empty), and for lo > hi both give
        // hi.clamp(-128, 127), as lo.clamp(..) >= hi.clamp(..).
        Clamp8 {
            lo: _mm256_set1_epi32(lo.clamp(-128, 127)),
            hi: _mm256_set1_epi32(hi.clamp(-128, 127)),
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn apply(&self, v: __m256i) -> __m256i {
        _mm256_min_epi32(_mm256_max_epi32(v, self.lo), self.hi)
    }
}

/// Lane-wise [`super::requant::multiply_by_quantized_multiplier`] with the
/// shift already split: `left` in 0..=30, `right` in 0..=31. Bit-exact:
///
/// - `x << left` wraps, as `wrapping_mul(1 << left)`;
/// - the doubling high multiply takes the 64-bit product `ab` and returns
///   the low 32 bits of `(ab + 2^30) >> 31` (arithmetic): for `ab >= 0` that
///   is `(ab + 2^30) / 2^31`, and for `ab < 0` the truncating
///   `(ab + 1 - 2^30) / 2^31` equals `floor((ab + 1 - 2^30 + 2^31 - 1) /
///   2^31)`, the same expression; the low 32 bits of a logical and an
///   arithmetic shift by 31 agree. `i32::MIN · i32::MIN` saturates;
/// - the rounding divide is gemmlowp's, with per-lane shifts.
#[target_feature(enable = "avx2")]
#[inline]
#[cfg(test)]
unsafe fn mbqm8(x: __m256i, m: __m256i, left: __m256i, right: __m256i) -> __m256i {
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let pre = LaneQ {
        m,
        m_odd: _mm256_srli_epi64(m, 32),
        left,
        right,
        mask,
        sat: true,
        any_left: true,
    };
    pre.apply(x)
}

/// [`mbqm8`] with per-lane constants prepared once: the odd lanes'
/// multipliers, the rounding mask `2^right - 1`, and whether any
/// multiplier is `i32::MIN` (only then can the doubling multiply
/// saturate; valid plans have multipliers >= 0).
#[derive(Clone, Copy)]
struct LaneQ {
    m: __m256i,
    m_odd: __m256i,
    left: __m256i,
    right: __m256i,
    mask: __m256i,
    sat: bool,
    /// Whether any lane shifts left (else the left shift is skipped).
    any_left: bool,
}

impl LaneQ {
    /// From per-lane multipliers and split shifts (`left` 0..=30, `right`
    /// 0..=31).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn new(m: __m256i, left: __m256i, right: __m256i) -> Self {
        let one = _mm256_set1_epi32(1);
        let is_min = _mm256_cmpeq_epi32(m, _mm256_set1_epi32(i32::MIN));
        LaneQ {
            m,
            m_odd: _mm256_srli_epi64(m, 32),
            left,
            right,
            mask: _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one),
            sat: _mm256_movemask_epi8(is_min) != 0,
            any_left: _mm256_movemask_epi8(_mm256_cmpeq_epi32(left, _mm256_setzero_si256())) != -1,
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn apply(&self, x: __m256i) -> __m256i {
        let x = if self.any_left {
            _mm256_sllv_epi32(x, self.left)
        } else {
            x
        };
        let hm = high_mul8(x, self.m, self.m_odd, self.sat);
        round_div8(hm, _mm256_srav_epi32(hm, self.right), self.mask)
    }
}

/// [`mbqm8`] with the same shift in every lane (`left` in 0..=30, `right`
/// in 0..=31, as shift counts) and `mask = 2^right - 1` precomputed:
/// uniform shifts are cheaper than per-lane ones.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn mbqm8u(x: __m256i, m: i32, left: __m128i, right: __m128i, mask: __m256i) -> __m256i {
    let mv = _mm256_set1_epi32(m);
    let hm = high_mul8(_mm256_sll_epi32(x, left), mv, mv, m == i32::MIN);
    round_div8(hm, _mm256_sra_epi32(hm, right), mask)
}

/// Uniform shift counts and mask of one [`mbqm8u`] shift (positive left).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn uniform_shift(s: i32) -> (__m128i, __m128i, __m256i) {
    let right = (-s).clamp(0, 31);
    (
        _mm_cvtsi32_si128(s.clamp(0, 30)),
        _mm_cvtsi32_si128(right),
        _mm256_set1_epi32(((1i64 << right) - 1) as i32),
    )
}

/// The saturating rounding doubling high multiply of [`mbqm8`].
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn high_mul8(x: __m256i, m: __m256i, m_odd: __m256i, sat: bool) -> __m256i {
    // Doubling high multiply, even and odd lanes separately.
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
    let odd = _mm256_srli_epi64(
        _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), m_odd), nudge),
        31,
    );
    let hm = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
    if !sat {
        return hm;
    }
    let min = _mm256_set1_epi32(i32::MIN);
    let both_min = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m, min));
    _mm256_blendv_epi8(hm, _mm256_set1_epi32(i32::MAX), both_min)
}

/// The rounding divide of `hm` by `2^right`, given `shifted = hm >> right`
/// (arithmetic) and `mask = 2^right - 1`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn round_div8(hm: __m256i, shifted: __m256i, mask: __m256i) -> __m256i {
    let rem = _mm256_and_si256(hm, mask);
    let neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), hm);
    let threshold = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), neg);
    let up = _mm256_cmpgt_epi32(rem, threshold);
    _mm256_sub_epi32(shifted, up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::requant::{multiply_by_quantized_multiplier, RequantCases};

    /// [`SmallQ`] (the fused Add's input rescaling for byte differences)
    /// against the scalar recipe, for every difference, multipliers from
    /// the extremes and at random, every total left shift it takes and
    /// right shifts from 0 to 31; powers of two among the multipliers take
    /// the exact-shift path where it applies.
    #[test]
    fn small_input_rescaling_matches_scalar() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut cases = RequantCases::new(0x5a11_0001_2345_6789);
        let mut ms = vec![
            i32::MIN,
            i32::MIN + 1,
            -1,
            0,
            1,
            0x7FFF,
            0x8000,
            0xFFFF,
            0x10000,
        ];
        // Both sides of the largest multiplier whose high half fits i16.
        ms.extend([i32::MAX - 0x8000, i32::MAX - 0x7FFF, i32::MAX]);
        ms.extend([1 << 16, 1 << 29, 1 << 30, (1 << 30) + 1, 3 << 28]);
        ms.extend((0..40).map(|_| cases.lanes::<1>().ms[0]));
        let (mut ran, mut shifted) = (0, 0);
        for &m in &ms {
            for ls in [0, 14, 15, 18, 20, 22, 23, 30] {
                for shift in [-31, -20, -9, -2, -1, 0, 1, 2, 7] {
                    // SAFETY: AVX2 detected above.
                    let Some(q) = (unsafe { SmallQ::new(0, ls, m, shift) }) else {
                        let l = ls + shift.max(0);
                        assert!(!(15..=22).contains(&l) || m >= i32::MAX - 0x7FFF);
                        continue;
                    };
                    ran += 1;
                    shifted += usize::from(q.exact_shift.is_some());
                    for d0 in (-255..=255).step_by(8) {
                        let ds: [i32; 8] = core::array::from_fn(|i| (d0 + i as i32).min(255));
                        let mut got = [0i32; 8];
                        // SAFETY: AVX2; the arrays are 32 bytes.
                        unsafe {
                            let v = q.apply(_mm256_loadu_si256(ds.as_ptr() as *const __m256i));
                            _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
                        }
                        for (d, g) in ds.iter().zip(got) {
                            let want =
                                multiply_by_quantized_multiplier(d.wrapping_mul(1 << ls), m, shift);
                            assert_eq!(g, want, "d {d} m {m} ls {ls} shift {shift}");
                        }
                    }
                }
            }
        }
        assert!(ran > 100, "only {ran} cases took the small path");
        assert!(shifted > 10, "only {shifted} cases took the exact shift");
        // Zero points outside a byte's range keep the general path.
        // SAFETY: AVX2 detected above.
        assert!(unsafe { SmallQ::new(128, 20, 1 << 30, -1) }.is_none());
        assert!(unsafe { SmallQ::new(-129, 20, 1 << 30, -1) }.is_none());
    }

    #[test]
    fn vector_requant_matches_scalar() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut cases = RequantCases::new(0x1234_5678_9abc_def1);
        for _ in 0..200_000 {
            let c = cases.lanes::<8>();
            let (xs, ms, shifts, l, rr) = (c.xs, c.ms, c.shifts, c.left, c.right);
            let mut got = [0i32; 8];
            // SAFETY: AVX2 detected above; arrays are 32 bytes.
            unsafe {
                let ld = |a: &[i32; 8]| _mm256_loadu_si256(a.as_ptr() as *const __m256i);
                let v = mbqm8(ld(&xs), ld(&ms), ld(&l), ld(&rr));
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
            }
            for k in 0..8 {
                let want = multiply_by_quantized_multiplier(xs[k], ms[k], shifts[k]);
                assert_eq!(got[k], want, "x {} m {} shift {}", xs[k], ms[k], shifts[k]);
            }
            // The prepared per-lane variant (which skips the saturation
            // check when no multiplier is i32::MIN).
            // SAFETY: as above.
            unsafe {
                let ld = |a: &[i32; 8]| _mm256_loadu_si256(a.as_ptr() as *const __m256i);
                let q = LaneQ::new(ld(&ms), ld(&l), ld(&rr));
                assert_eq!(q.sat, ms.contains(&i32::MIN));
                assert_eq!(q.any_left, l.iter().any(|&v| v != 0));
                let v = q.apply(ld(&xs));
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
            }
            for k in 0..8 {
                let want = multiply_by_quantized_multiplier(xs[k], ms[k], shifts[k]);
                assert_eq!(
                    got[k], want,
                    "prepared: x {} m {} shift {}",
                    xs[k], ms[k], shifts[k]
                );
            }
            // The uniform variant, with lane 0's multiplier and shift.
            // SAFETY: as above.
            unsafe {
                let ld = |a: &[i32; 8]| _mm256_loadu_si256(a.as_ptr() as *const __m256i);
                let (l, r, mask) = uniform_shift(shifts[0]);
                let v = mbqm8u(ld(&xs), ms[0], l, r, mask);
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, v);
            }
            for k in 0..8 {
                let want = multiply_by_quantized_multiplier(xs[k], ms[0], shifts[0]);
                assert_eq!(got[k], want, "x {} m {} shift {}", xs[k], ms[k], shifts[0]);
            }
        }
    }
}
