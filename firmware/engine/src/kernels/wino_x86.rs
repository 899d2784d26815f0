//! AVX2 int8 3x3 convolution, stride 1, as Winograd F(2x2, 3x3) (x86-64).
//!
//! Each 2x2 block of output pixels (a tile) is `Y = Aᵀ [U ⊙ V] A` over a
//! 4x4 input tile `d` (`x - zp`, 0 in padding) with `V = Bᵀ d B` and
//! `U = G g Gᵀ` per kernel `g`: 16 products per input channel for 4
//! outputs instead of 36. Summed over the channels, the 16 element-wise
//! products are 16 GEMMs of the tiles' `V` against the channels' `U`, run
//! by the AVX2 GEMM's micro-kernel (`vpmaddwd` on i16 pairs).
//!
//! Exact in integers: `G` has halves, so the weights are transformed with
//! `2G` (entries 0, ±1, 2), making `U` integer and the result `4Y`, which
//! the kernel shifts back. The bounds: `|x - zp| <= 255` gives `|V| <= 4 ·
//! 255 = 1020`; `|w| <= 128` gives `|U| <= 3 · 3 · 128 = 1152`; a pair of
//! products is at most `2 · 1020 · 1152`, far from `vpmaddwd`'s one
//! saturating case. Every other sum is i32 arithmetic, exact modulo 2^32
//! in any order, and the true `4Y` (at most `4 · 9C · 255 · 128` in
//! magnitude, below 2^31 for `C <=` [`WINO_MAX_C`](super::scratch::WINO_MAX_C))
//! is what the wrapped sums give; `Y = 4Y >> 2` is then exact. So the
//! sums, and after the shared requantisation epilogue the bytes, equal
//! the portable kernel's (tested, with the extreme values, below and in
//! `tests/kernel_paths.rs`).
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::gemm_x86::{micro, pack_consts, tile_split, transpose8x16, Epi, FuseV};
use super::scratch::{wino_layout, wino_tiles, MR, NR, WINO_POINTS};
use super::{Geom, I32s, KResult, Out8, ShapeError};

/// The transformed products of one group of tiles and one panel: point,
/// tile, channel.
type Points = [[[i32; NR]; MR]; WINO_POINTS];

/// Runs the Winograd conv if it applies to `g`
/// ([`winograd_applies`](super::scratch::winograd_applies)) and `scratch`
/// holds one panel and the tile group. `None`: nothing was written.
///
/// The caller has checked the buffer lengths against `g` and the
/// per-channel arrays against `out_c`.
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
    let lay = wino_layout(g, scratch.len())?;
    let in_zp = o.q.in_zp;
    if !(-128..=127).contains(&in_zp) {
        // Outside int8 `x - zp` might not fit the bounds above.
        return None;
    }
    let (c, n) = (g.in_c, g.out_c);
    if w.len() != n * 9 * c || x.len() != g.in_h * g.in_w * c || out.len() != g.out_h * g.out_w * n
    {
        return Some(Err(ShapeError));
    }
    let (cpairs, rows) = (lay.cpairs, lay.rows);
    let ulen = WINO_POINTS * cpairs * NR * 4;
    let (wbuf, rest) = scratch.split_at_mut(lay.panels * lay.panel_bytes);
    let vbuf = rest.get_mut(..lay.tile_bytes())?;
    let all_tiles = lay.all_tiles(g);
    let tw = g.out_w.div_ceil(2);
    let total_panels = n.div_ceil(NR);
    let fuse = FuseV::new(o);
    let mut m: Points = [[[0; NR]; MR]; WINO_POINTS];
    for pb in (0..total_panels).step_by(lay.panels) {
        let np = lay.panels.min(total_panels - pb);
        for j in 0..np {
            let panel = &mut wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
            let (pu, pc) = panel.split_at_mut(ulen);
            transform_weights(w, c, n, (pb + j) * NR, pu);
            pack_consts(o, bias, (pb + j) * NR, pc);
        }
        for (t0, mr) in tile_split(wino_tiles(g), MR) {
            // Row of the group's first tile in each point's block.
            let r0 = if all_tiles { t0 } else { 0 };
            if pb == 0 || !all_tiles {
                for t in 0..mr {
                    transform_input(g, x, t0 + t, in_zp, (rows, r0 + t), vbuf);
                }
            }
            for j in 0..np {
                let oc0 = (pb + j) * NR;
                let panel = &wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
                let (pu, consts) = panel.split_at(ulen);
                for (p, mp) in m.iter_mut().enumerate() {
                    let v = &vbuf[(p * rows + r0) * cpairs * 4..];
                    let u = &pu[p * cpairs * NR * 4..];
                    // SAFETY: `v` holds `mr` rows of `cpairs` pairs and `u`
                    // `cpairs` × 16 pairs (the layout's sizes).
                    match mr {
                        6 => micro::<6>(cpairs, v, u, mp),
                        5 => micro::<5>(cpairs, v, u, mp),
                        4 => micro::<4>(cpairs, v, u, mp),
                        3 => micro::<3>(cpairs, v, u, mp),
                        2 => micro::<2>(cpairs, v, u, mp),
                        _ => micro::<1>(cpairs, v, u, mp),
                    }
                }
                let ep = Epi::new(o, fuse.as_ref(), consts, NR.min(n - oc0));
                for t in 0..mr {
                    let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
                    let ys = transform_output(&m, t);
                    for (i, y) in ys.iter().enumerate() {
                        let (oy, ox) = (2 * ty + i / 2, 2 * tx + i % 2);
                        if oy < g.out_h && ox < g.out_w {
                            ep.store(y, (oy * g.out_w + ox) * n + oc0, out);
                        }
                    }
                }
            }
        }
    }
    Some(Ok(()))
}

/// `Bᵀ d B` of four rows or columns `d`: `(d0 - d2, d1 + d2, d2 - d1,
/// d1 - d3)`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn bt(d: [__m256i; 4]) -> [__m256i; 4] {
    [
        _mm256_sub_epi16(d[0], d[2]),
        _mm256_add_epi16(d[1], d[2]),
        _mm256_sub_epi16(d[2], d[1]),
        _mm256_sub_epi16(d[1], d[3]),
    ]
}

/// `2G g` of three rows or columns `g`: `(2g0, g0 + g1 + g2, g0 - g1 + g2,
/// 2g2)`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn g2(g: [__m256i; 3]) -> [__m256i; 4] {
    let s = _mm256_add_epi16(g[0], g[2]);
    [
        _mm256_add_epi16(g[0], g[0]),
        _mm256_add_epi16(s, g[1]),
        _mm256_sub_epi16(s, g[1]),
        _mm256_add_epi16(g[2], g[2]),
    ]
}

/// `Aᵀ m`, four rows or columns `m` of i32: `(m0 + m1 + m2, m1 - m2 -
/// m3)`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn at(m: [__m256i; 4]) -> [__m256i; 2] {
    [
        _mm256_add_epi32(_mm256_add_epi32(m[0], m[1]), m[2]),
        _mm256_sub_epi32(_mm256_sub_epi32(m[1], m[2]), m[3]),
    ]
}

/// Writes tile `tile`'s `V = Bᵀ d B` (`d` = `x - zp` of its 4x4 input
/// window, 0 in padding) as row `row` of each point's block of `rows`
/// rows in `vbuf`: point `p`, channel `ch` at i16 `(p · rows + row) · C +
/// ch`.
#[target_feature(enable = "avx2")]
unsafe fn transform_input(
    g: &Geom,
    x: &[u8],
    tile: usize,
    zp: i32,
    (rows, row): (usize, usize),
    vbuf: &mut [u8],
) {
    let c = g.in_c;
    let tw = g.out_w.div_ceil(2);
    let (ty, tx) = (tile / tw, tile % tw);
    // Input row / column of window position 0..4, `None` in the padding.
    let pos = |o: usize, pad: usize, len: usize, i: usize| {
        (2 * o + i).checked_sub(pad).filter(|&v| v < len)
    };
    let ys: [Option<usize>; 4] = core::array::from_fn(|i| pos(ty, g.pad_top, g.in_h, i));
    let xs: [Option<usize>; 4] = core::array::from_fn(|i| pos(tx, g.pad_left, g.in_w, i));
    let zv = _mm256_set1_epi16(zp as i16);
    for c0 in (0..c).step_by(16) {
        let mut d = [[_mm256_setzero_si256(); 4]; 4];
        for (dr, iy) in d.iter_mut().zip(ys) {
            for (dv, ix) in dr.iter_mut().zip(xs) {
                let (Some(iy), Some(ix)) = (iy, ix) else {
                    continue;
                };
                let at = (iy * g.in_w + ix) * c + c0;
                if let Some(src) = x.get(at..at + 16) {
                    // SAFETY: `src` is 16 bytes.
                    let v = _mm_loadu_si128(src.as_ptr() as *const __m128i);
                    *dv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(v), zv);
                }
            }
        }
        // Along the window's columns (`tc[col][r]` = `Bᵀ d` at row r),
        // then along each row.
        let tc: [[__m256i; 4]; 4] =
            core::array::from_fn(|col| bt([d[0][col], d[1][col], d[2][col], d[3][col]]));
        let v: [[__m256i; 4]; 4] =
            core::array::from_fn(|r| bt([tc[0][r], tc[1][r], tc[2][r], tc[3][r]]));
        for (r, vr) in v.iter().enumerate() {
            for (col, vv) in vr.iter().enumerate() {
                let at = (((4 * r + col) * rows + row) * c + c0) * 2;
                if let Some(dst) = vbuf.get_mut(at..at + 32) {
                    // SAFETY: `dst` is 32 bytes.
                    _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, *vv);
                }
            }
        }
    }
}

/// Writes the panel of output channels `oc0..oc0 + 16` (zeros past `n`)
/// as `U = 2G g 2Gᵀ` per point: point `p`, channel pair `cp`, output
/// channel `j` at i16 pair `(p · C/2 + cp) · 16 + j`, the AVX2 GEMM's panel
/// layout per point. `w` is OHWI with `c` input channels (a multiple of
/// 16).
#[target_feature(enable = "avx2")]
unsafe fn transform_weights(w: &[u8], c: usize, n: usize, oc0: usize, panel: &mut [u8]) {
    let k = 9 * c;
    let cpairs = c / 2;
    let mut rows: [&[u8]; NR] = [&[]; NR];
    for (jj, r) in rows.iter_mut().enumerate() {
        if oc0 + jj < n {
            *r = w.get((oc0 + jj) * k..(oc0 + jj + 1) * k).unwrap_or(&[]);
        }
    }
    for c0 in (0..c).step_by(16) {
        // Per tap, per channel pair: the 16 channels' weights as i16 pairs
        // (two vectors of 8 output channels), by a 16-bit transpose.
        let mut taps = [[[_mm256_setzero_si256(); 2]; 8]; 9];
        for (tap, tv) in taps.iter_mut().enumerate() {
            let mut a = [_mm_setzero_si128(); NR];
            for (v, r) in a.iter_mut().zip(rows.iter()) {
                if let Some(src) = r.get(tap * c + c0..tap * c + c0 + 16) {
                    // SAFETY: `src` is 16 bytes.
                    *v = _mm_loadu_si128(src.as_ptr() as *const __m128i);
                }
            }
            let (lo, hi) = a.split_at(8);
            let (tl, th) = (transpose8x16(lo), transpose8x16(hi));
            for (kk, pair) in tv.iter_mut().enumerate() {
                *pair = [_mm256_cvtepi8_epi16(tl[kk]), _mm256_cvtepi8_epi16(th[kk])];
            }
        }
        // Each channel pair `kk`, each half `h` of the 16 output channels.
        for (kk, h) in (0..8).flat_map(|kk| [(kk, 0), (kk, 1)]) {
            let tap = |ky: usize, kx: usize| taps[ky * 3 + kx][kk][h];
            // Along the kernel's columns (`cols[kx][r]`), then its rows.
            let cols: [[__m256i; 4]; 3] =
                core::array::from_fn(|kx| g2([tap(0, kx), tap(1, kx), tap(2, kx)]));
            let u: [[__m256i; 4]; 4] =
                core::array::from_fn(|r| g2([cols[0][r], cols[1][r], cols[2][r]]));
            for (r, ur) in u.iter().enumerate() {
                for (col, uv) in ur.iter().enumerate() {
                    let at = (((4 * r + col) * cpairs + c0 / 2 + kk) * NR + 8 * h) * 4;
                    if let Some(dst) = panel.get_mut(at..at + 32) {
                        // SAFETY: `dst` is 32 bytes.
                        _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, *uv);
                    }
                }
            }
        }
    }
}

/// Tile `t`'s 2x2 outputs (row-major) from its 16 points' sums: `Aᵀ M A
/// / 4` per channel.
#[target_feature(enable = "avx2")]
unsafe fn transform_output(m: &Points, t: usize) -> [[i32; NR]; 4] {
    let mut y = [[0i32; NR]; 4];
    for h in 0..2 {
        // SAFETY: 8 i32 at 8h of a 16-element row.
        let ld = |p: usize| _mm256_loadu_si256(m[p][t].as_ptr().add(8 * h) as *const __m256i);
        // Rows of M (first index of the point), then columns.
        let r: [[__m256i; 2]; 4] =
            core::array::from_fn(|col| at([ld(col), ld(4 + col), ld(8 + col), ld(12 + col)]));
        for i in 0..2 {
            let v = at([r[0][i], r[1][i], r[2][i], r[3][i]]);
            for (jj, vv) in v.iter().enumerate() {
                // SAFETY: 8 i32 at 8h of a 16-element row.
                _mm256_storeu_si256(
                    y[2 * i + jj].as_mut_ptr().add(8 * h) as *mut __m256i,
                    _mm256_srai_epi32(*vv, 2),
                );
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::AddParams;
    use crate::format::Precision;
    use crate::kernels::add::AddQuant;
    use crate::kernels::conv::conv2d_i8_ex;
    use crate::kernels::dsp_arm::tests::{fuse_case, geom, i32_bytes, XorShift};
    use crate::kernels::scratch::{conv, winograd_applies, PANEL_CONSTS, WINO_MAX_C};
    use crate::kernels::{Kx, QuantParams};

    /// Requantisation that shows the sums' low bits: even channels keep
    /// the low 8 bits (`acc << 24`, multiplier 2^7: `acc as i8`), odd ones
    /// the high bits (`acc · 0.75 / 2^shift`).
    fn sensitive_requant(rng: &mut XorShift, n: usize, shift: i32) -> (Vec<i32>, Vec<i32>) {
        (0..n)
            .map(|j| {
                if j % 2 == 0 {
                    (128, 24)
                } else {
                    ((3 << 29) + rng.range(0, (1 << 20) - 1) as i32, -shift)
                }
            })
            .unzip()
    }

    /// Scratch sizes that pick each layout: what the plan writer asks,
    /// one panel and a group of tiles (inputs transformed per panel),
    /// three panels and a group, one panel and all the tiles.
    fn scratch_sizes(g: &Geom) -> [usize; 4] {
        let cp = g.in_c / 2;
        let panel = WINO_POINTS * cp * NR * 4 + PANEL_CONSTS;
        let group = WINO_POINTS * MR * cp * 4;
        let all = WINO_POINTS * wino_tiles(g) * cp * 4;
        [
            conv(Precision::Int8, g, false),
            panel + group,
            3 * panel + group,
            panel + all,
        ]
    }

    /// Runs `g` by Winograd in `scratch` bytes (asserting that it ran) and
    /// by the portable kernel, with a fused residual Add (`fuse` 1: a
    /// separate residual, 2: in place) or not (0); the bytes must be equal.
    fn check(
        g: &Geom,
        (x, w, bias): (&[u8], &[u8], &[i32]),
        (ms, ss): (&[i32], &[i32]),
        zp: i32,
        (scratch, fuse): (usize, usize),
    ) {
        let (ms, ss, bias) = (i32_bytes(ms), i32_bytes(ss), i32_bytes(bias));
        let q = QuantParams {
            in_zp: zp,
            out_zp: 0,
            act_min: -128,
            act_max: 127,
            multipliers: I32s(&ms),
            shifts: I32s(&ss),
        };
        let b = Some(I32s(&bias));
        let len = g.out_h * g.out_w * g.out_c;
        let residual: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
        let add = AddQuant {
            params: AddParams {
                input1_multiplier: 1_600_000_000,
                input1_shift: -1,
                input2_multiplier: 1_300_000_000,
                input2_shift: -2,
                output_multiplier: 1_900_000_000,
                // Left shift 20 (TFLite's) takes the fused Add's byte
                // shortcut (`gemm_x86::SmallQ`), 12 its general rescaling.
                output_shift: if fuse == 2 { -11 } else { -19 },
                left_shift: if fuse == 2 { 12 } else { 20 },
            },
            zp1: 0,
            zp2: -7,
            out_zp: 3,
            act_min: -128,
            act_max: 127,
        };
        let o = Out8 {
            q: &q,
            fuse: fuse_case(fuse, &residual, add),
        };
        let mut want = residual.clone();
        conv2d_i8_ex(g, false, x, w, b, &o, &mut want, &mut Kx::portable()).unwrap();
        let mut got = residual.clone();
        let mut scratch = vec![0u8; scratch];
        // SAFETY: the callers check for AVX2.
        let r = unsafe { conv_i8(g, x, w, b, &o, &mut got, &mut scratch) };
        assert_eq!(r, Some(Ok(())), "{g:?}: Winograd did not run");
        assert!(
            got == want,
            "{g:?} zp {zp} fuse {fuse}: Winograd differs from portable"
        );
    }

    #[test]
    fn winograd_equals_portable_on_random_shapes() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rng = XorShift(0x3A7E_11C0_F00D_0001);
        let mut ran = 0;
        for i in 0..80 {
            let p: [usize; 4] = core::array::from_fn(|_| rng.range(0, 2));
            let (h, wd) = (9 + rng.range(0, 15), 9 + rng.range(0, 15));
            let c = 16 * (1 + rng.range(0, if i % 5 == 0 { 11 } else { 3 }));
            let oc = 1 + rng.range(0, 59);
            if h + p[0] + p[2] < 3 || wd + p[1] + p[3] < 3 {
                continue;
            }
            let g = geom((h, wd), (c, oc), (3, 3), (1, 1), (p[0], p[1], p[2], p[3]));
            if !winograd_applies(&g) {
                continue;
            }
            let x: Vec<u8> = (0..h * wd * c).map(|_| rng.next() as u8).collect();
            let mut w: Vec<u8> = (0..oc * 9 * c).map(|_| rng.next() as u8).collect();
            if i % 3 == 0 {
                w.iter_mut().step_by(5).for_each(|v| *v = 0x80);
            }
            let bias: Vec<i32> = (0..oc).map(|_| rng.next() as i32 % 50_000).collect();
            let shift = 12 + rng.range(0, 5) as i32;
            let (ms, ss) = sensitive_requant(&mut rng, oc, shift);
            let zp = [-128, 127, rng.range(0, 255) as i32 - 128][i % 3];
            let scratch = scratch_sizes(&g)[i % 4];
            check(&g, (&x, &w, &bias), (&ms, &ss), zp, (scratch, i / 3 % 3));
            ran += 1;
        }
        assert!(ran >= 40, "only {ran} shapes qualified");
    }

    /// The largest sums the bounds allow: `x - zp = -255` and `w = -128`
    /// (or 127) everywhere, at the most channels Winograd takes, with
    /// every window full and with windows cut by padding.
    #[test]
    fn winograd_is_exact_at_the_extremes() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut rng = XorShift(0x3A7E_11C0_F00D_0002);
        for (p, wv) in [
            ((1, 1, 1, 1), 0x80u8),
            ((0, 0, 0, 0), 0x7f),
            ((1, 0, 2, 1), 0x80),
        ] {
            let g = geom((13, 14), (WINO_MAX_C, 17), (3, 3), (1, 1), p);
            assert!(winograd_applies(&g));
            let x = vec![0x80; 13 * 14 * WINO_MAX_C];
            let w = vec![wv; 17 * 9 * WINO_MAX_C];
            // |sum| up to 9 · 1024 · 255 · 128 < 2^29: shifted by 22 the
            // high bits land in range.
            let rq = sensitive_requant(&mut rng, 17, 22);
            for scratch in scratch_sizes(&g) {
                check(&g, (&x, &w, &[7; 17]), (&rq.0, &rq.1), 127, (scratch, 0));
            }
        }
    }
}
