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
//! whose sums wrap the same way. Requantisation and the fused residual go
//! through the same scalar [`Out8::store`] as the portable kernel.
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
    let mut acc = [[0i32; NR]; MR];
    for pb in (0..total_panels).step_by(lay.panels) {
        let np = lay.panels.min(total_panels - pb);
        let wlen = lay.kpairs * NR * 4;
        for j in 0..np {
            let panel = &mut wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
            let (pw, pc) = panel.split_at_mut(wlen);
            pack_panel(w, k, n, (pb + j) * NR, pw);
            pack_consts(o, bias, (pb + j) * NR, pc);
        }
        for p0 in (0..pixels).step_by(MR) {
            let mr = MR.min(pixels - p0);
            for t in 0..mr {
                let row = &mut xbuf[t * lay.kpairs * 4..(t + 1) * lay.kpairs * 4];
                pack_pixel(g, x, p0 + t, in_zp, row);
            }
            for j in 0..np {
                let oc0 = (pb + j) * NR;
                let panel = &wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
                let (panel, consts) = panel.split_at(wlen);
                // SAFETY: `xbuf` holds MR rows of `kpairs` pairs and
                // `panel` `kpairs` × 16 pairs (checked by the slicing
                // above); the kernel reads exactly those.
                match mr {
                    6 => micro::<6>(lay.kpairs, xbuf, panel, &mut acc),
                    5 => micro::<5>(lay.kpairs, xbuf, panel, &mut acc),
                    4 => micro::<4>(lay.kpairs, xbuf, panel, &mut acc),
                    3 => micro::<3>(lay.kpairs, xbuf, panel, &mut acc),
                    2 => micro::<2>(lay.kpairs, xbuf, panel, &mut acc),
                    _ => micro::<1>(lay.kpairs, xbuf, panel, &mut acc),
                }
                let nn = NR.min(n - oc0);
                let ep = Epi::new(o, consts, nn);
                for (t, a) in acc.iter().take(mr).enumerate() {
                    let base = (p0 + t) * n + oc0;
                    ep.store(a, base, out);
                }
            }
        }
    }
    Some(Ok(()))
}

/// Packs output channels `oc0..oc0 + 16` (zeros past `n`) as
/// `[kpairs][16][2]` little-endian i16.
fn pack_panel(w: &[u8], k: usize, n: usize, oc0: usize, panel: &mut [u8]) {
    panel.fill(0);
    for jj in 0..NR.min(n.saturating_sub(oc0)) {
        let Some(row) = w.get((oc0 + jj) * k..(oc0 + jj + 1) * k) else {
            return;
        };
        for (kk, pair) in row.chunks(2).enumerate() {
            let at = (kk * NR + jj) * 4;
            if let Some(d) = panel.get_mut(at..at + 4) {
                let a = (pair[0] as i8 as i16).to_le_bytes();
                let b = (pair.get(1).map_or(0, |&v| v as i8 as i16)).to_le_bytes();
                d.copy_from_slice(&[a[0], a[1], b[0], b[1]]);
            }
        }
    }
}

/// Stores the bias, multiplier and split shifts of channels
/// `oc0..oc0 + 16` (zeros past the last) as four `[i32; 16]`.
fn pack_consts(o: &Out8<'_, '_>, bias: Option<I32s<'_>>, oc0: usize, dst: &mut [u8]) {
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
    row.fill(0);
    let (oy, ox) = (p / g.out_w.max(1), p % g.out_w.max(1));
    let (rows, cols) = (g.rows(oy), g.cols(ox));
    let c = g.in_c;
    let span = cols.len() * c;
    for (r, ky) in (rows.k0..rows.k1).enumerate() {
        let xs = ((rows.i0 + r) * g.in_w + cols.i0) * c;
        let ds = ((ky * g.kernel_w + cols.k0) * c) * 2;
        let (Some(src), Some(dst)) = (x.get(xs..xs + span), row.get_mut(ds..ds + span * 2)) else {
            return;
        };
        widen_sub(src, dst, zp);
    }
}

/// `dst[i] = src[i] as i8 - zp` as little-endian i16; `dst` is twice
/// `src`'s length.
#[target_feature(enable = "avx2")]
unsafe fn widen_sub(src: &[u8], dst: &mut [u8], zp: i32) {
    let zv = _mm256_set1_epi16(zp as i16);
    let sc = src.chunks_exact(16);
    let tail = sc.remainder();
    let mut dc = dst.chunks_exact_mut(32);
    for s in sc {
        let Some(d) = dc.next() else { return };
        // SAFETY: `s` is 16 bytes and `d` 32 bytes; unaligned load/store.
        let v = _mm_loadu_si128(s.as_ptr() as *const __m128i);
        let wv = _mm256_sub_epi16(_mm256_cvtepi8_epi16(v), zv);
        _mm256_storeu_si256(d.as_mut_ptr() as *mut __m256i, wv);
    }
    let done = src.len() - tail.len();
    for (i, &v) in tail.iter().enumerate() {
        let at = (done + i) * 2;
        if let Some(d) = dst.get_mut(at..at + 2) {
            d.copy_from_slice(&((v as i8 as i16).wrapping_sub(zp as i16)).to_le_bytes());
        }
    }
}

/// `acc[t][j] = Σ_kk pair(x row t, kk) · pair(panel, kk, j)` for `M` rows.
///
/// # Safety
/// AVX2; `xbuf` holds at least `M * kpairs * 4` bytes and `panel`
/// `kpairs * 64`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn micro<const M: usize>(
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
struct Epi<'o, 'q, 'r> {
    o: &'o Out8<'q, 'r>,
    nn: usize,
    bias: [__m256i; 2],
    mult: [__m256i; 2],
    left: [__m256i; 2],
    right: [__m256i; 2],
}

impl<'o, 'q, 'r> Epi<'o, 'q, 'r> {
    /// Loads the constants [`pack_consts`] stored (`consts` holds
    /// [`PANEL_CONSTS`] bytes; zeros if shorter).
    #[target_feature(enable = "avx2")]
    unsafe fn new(o: &'o Out8<'q, 'r>, consts: &[u8], nn: usize) -> Self {
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
            mult: [ld(1, 0), ld(1, 1)],
            left: [ld(2, 0), ld(2, 1)],
            right: [ld(3, 0), ld(3, 1)],
        }
    }

    /// Requantises (and adds the residual of) one pixel's panel of sums
    /// and stores them at `out[base..base + nn]`.
    #[target_feature(enable = "avx2")]
    unsafe fn store(&self, acc: &[i32; NR], base: usize, out: &mut [u8]) {
        let q = self.o.q;
        let mut vals = [0i32; NR];
        for h in 0..2 {
            // SAFETY: 8 i32 at h * 8 of 16-element arrays.
            let a = _mm256_loadu_si256(acc.as_ptr().add(h * 8) as *const __m256i);
            let a = _mm256_add_epi32(a, self.bias[h]);
            let v = mbqm8(a, self.mult[h], self.left[h], self.right[h]);
            let v = clamp8(
                _mm256_add_epi32(v, _mm256_set1_epi32(q.out_zp)),
                q.act_min,
                q.act_max,
            );
            _mm256_storeu_si256(vals.as_mut_ptr().add(h * 8) as *mut __m256i, v);
        }
        let Some(dst) = out.get_mut(base..base + self.nn) else {
            return;
        };
        match &self.o.fuse {
            None => {
                if let Ok(d16) = <&mut [u8; NR]>::try_from(&mut *dst) {
                    // All 16 channels: pack the (already clamped) i32 lanes.
                    let lo = _mm256_loadu_si256(vals.as_ptr() as *const __m256i);
                    let hi = _mm256_loadu_si256(vals.as_ptr().add(8) as *const __m256i);
                    let w = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0b11_01_10_00);
                    let b = _mm256_packs_epi16(w, w);
                    let b = _mm256_permute4x64_epi64(b, 0b11_01_10_00);
                    _mm_storeu_si128(d16.as_mut_ptr() as *mut __m128i, _mm256_castsi256_si128(b));
                } else {
                    for (d, &v) in dst.iter_mut().zip(vals.iter()) {
                        *d = v as i8 as u8;
                    }
                }
            }
            Some(f) => {
                let mut res = [0i32; NR];
                for (j, r) in res.iter_mut().take(self.nn).enumerate() {
                    *r = match f.residual {
                        super::Residual::Separate(s) => s.get(base + j).copied().unwrap_or(0),
                        super::Residual::InPlace => dst[j],
                    } as i8 as i32;
                }
                let a = &f.add;
                let p = &a.params;
                let ls = _mm256_set1_epi32(p.left_shift.clamp(0, 30));
                let split = |s: i32| {
                    (
                        _mm256_set1_epi32(s.clamp(0, 30)),
                        _mm256_set1_epi32((-s).clamp(0, 31)),
                    )
                };
                let (l1, r1) = split(p.input1_shift);
                let (l2, r2) = split(p.input2_shift);
                let (lo, ro) = split(p.output_shift);
                for h in 0..2 {
                    let v = _mm256_loadu_si256(vals.as_ptr().add(h * 8) as *const __m256i);
                    let r = _mm256_loadu_si256(res.as_ptr().add(h * 8) as *const __m256i);
                    let x1 = _mm256_sllv_epi32(_mm256_sub_epi32(v, _mm256_set1_epi32(a.zp1)), ls);
                    let x2 = _mm256_sllv_epi32(_mm256_sub_epi32(r, _mm256_set1_epi32(a.zp2)), ls);
                    let y1 = mbqm8(x1, _mm256_set1_epi32(p.input1_multiplier), l1, r1);
                    let y2 = mbqm8(x2, _mm256_set1_epi32(p.input2_multiplier), l2, r2);
                    let y = mbqm8(
                        _mm256_add_epi32(y1, y2),
                        _mm256_set1_epi32(p.output_multiplier),
                        lo,
                        ro,
                    );
                    let y = clamp8(
                        _mm256_add_epi32(y, _mm256_set1_epi32(a.out_zp)),
                        a.act_min,
                        a.act_max,
                    );
                    _mm256_storeu_si256(vals.as_mut_ptr().add(h * 8) as *mut __m256i, y);
                }
                for (d, &v) in dst.iter_mut().zip(vals.iter()) {
                    *d = v as i8 as u8;
                }
            }
        }
    }
}

/// `v.max(lo).min(hi).clamp(-128, 127)`, lane-wise (as `requantize`).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn clamp8(v: __m256i, lo: i32, hi: i32) -> __m256i {
    let v = _mm256_min_epi32(
        _mm256_max_epi32(v, _mm256_set1_epi32(lo)),
        _mm256_set1_epi32(hi),
    );
    _mm256_min_epi32(
        _mm256_max_epi32(v, _mm256_set1_epi32(-128)),
        _mm256_set1_epi32(127),
    )
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
pub(crate) unsafe fn mbqm8(x: __m256i, m: __m256i, left: __m256i, right: __m256i) -> __m256i {
    let x = _mm256_sllv_epi32(x, left);
    // Doubling high multiply, even and odd lanes separately.
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
    let odd = _mm256_srli_epi64(
        _mm256_add_epi64(
            _mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)),
            nudge,
        ),
        31,
    );
    let hm = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0b1010_1010);
    let min = _mm256_set1_epi32(i32::MIN);
    let both_min = _mm256_and_si256(_mm256_cmpeq_epi32(x, min), _mm256_cmpeq_epi32(m, min));
    let hm = _mm256_blendv_epi8(hm, _mm256_set1_epi32(i32::MAX), both_min);
    // Rounding divide by 2^right.
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let rem = _mm256_and_si256(hm, mask);
    let neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), hm);
    let threshold = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), neg);
    let up = _mm256_cmpgt_epi32(rem, threshold);
    _mm256_sub_epi32(_mm256_srav_epi32(hm, right), up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::requant::multiply_by_quantized_multiplier;

    #[test]
    fn vector_requant_matches_scalar() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let specials = [
            0,
            1,
            -1,
            i32::MIN,
            i32::MAX,
            1 << 30,
            -(1 << 30),
            12345,
            -12345,
        ];
        for round in 0..200_000 {
            let mut xs = [0i32; 8];
            let mut ms = [0i32; 8];
            let mut shifts = [0i32; 8];
            for k in 0..8 {
                let r = next();
                xs[k] = if r % 5 == 0 {
                    specials[(r >> 8) as usize % specials.len()]
                } else {
                    (r >> 16) as i32 >> ((r >> 3) % 24)
                };
                ms[k] = match (r >> 40) % 6 {
                    0 => specials[(r >> 12) as usize % specials.len()],
                    1 => 0,
                    _ => ((r >> 20) as u32 >> 1) as i32 | (1 << 30),
                };
                shifts[k] = ((r >> 50) % 62) as i32 - 31;
            }
            if round == 0 {
                xs[0] = i32::MIN;
                ms[0] = i32::MIN;
            }
            let (mut l, mut rr) = ([0i32; 8], [0i32; 8]);
            for k in 0..8 {
                l[k] = shifts[k].clamp(0, 30);
                rr[k] = (-shifts[k]).clamp(0, 31);
            }
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
        }
    }
}
