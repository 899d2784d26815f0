//! AVX-512 VNNI int8 convolution as a packed GEMM (x86-64).
//!
//! The same GEMM as [`super::gemm_x86`] (`out[p, oc] = bias[oc] +
//! Σ_k (x[p, k] - zp) · w[oc, k]` over the im2col index), with
//! `vpdpbusd`: 4 unsigned × signed byte products summed into each i32 lane,
//! 64 multiply-adds per instruction against the AVX2 path's 16.
//!
//! `vpdpbusd` wants one operand unsigned, so activations are offset by 128:
//! `xu = x + 128` (a flip of the sign bit) and `zu = zp + 128`, both in
//! 0..=255. Then `Σ (x - zp) · w = Σ xu · w - zu · Σ w`, and the second term
//! is folded into the bias once per channel. Padding taps are stored as
//! `zu`, so they contribute `(zu - zu) · w = 0` as the spec says, and the
//! K tail past the last tap has zero weights. `vpdpbusd` adds its four
//! products (each at most 255 · 128) exactly and wraps the lane sum modulo
//! 2^32 like the portable loop, so the sums, and after the shared
//! requantisation epilogue the bytes, are the portable kernel's.
//!
//! Layout in the plan's scratch (which was sized for the AVX2 kernel; this
//! one needs less per channel, see [`super::scratch::vnni_layout`]):
//!
//! - panels of 16 output channels, `[K / 4][16][4]` signed bytes (zero past
//!   the last channel and the last tap), then the AVX2 kernel's per-channel
//!   constants with the corrected bias;
//! - a tile of up to `MRV` pixels' im2col rows of `xu`, `K` rounded up to 4.
//!
//! The micro-kernel takes `MRV` pixels × two panels: 24 accumulators, two
//! weight vectors and broadcast pixel quads in the 32 zmm registers.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::gemm_x86::pack_consts;
use super::scratch::{vnni_layout, MRV, NR, PANEL_CONSTS};
use super::{Geom, I32s, KResult, Out8, Residual, ShapeError};

/// Runs the VNNI conv if `scratch` holds at least one weight panel and the
/// pixel tile. `None`: not enough scratch or a zero point outside int8,
/// nothing was written.
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL and VNNI, and AVX2.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
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
    let in_zp = o.q.in_zp;
    if !(-128..=127).contains(&in_zp) {
        return None;
    }
    let lay = vnni_layout(k, n, scratch.len())?;
    let (wbuf, rest) = scratch.split_at_mut(lay.panels * lay.panel_bytes);
    let xbuf = rest.get_mut(..lay.tile_bytes)?;
    if w.len() != n * k || x.len() != g.in_h * g.in_w * g.in_c || out.len() != g.out_h * g.out_w * n
    {
        return Some(Err(ShapeError));
    }
    let zu = (in_zp + 128) as u8;
    let row = lay.units * 4;
    let wlen = lay.units * NR * 4;
    let pixels = g.out_h * g.out_w;
    let total_panels = n.div_ceil(NR);
    let fuse = Fuse16::new(o);
    let mut acc = [[0i32; NR]; 2 * MRV];
    for pb in (0..total_panels).step_by(lay.panels) {
        let np = lay.panels.min(total_panels - pb);
        for j in 0..np {
            let panel = &mut wbuf[j * lay.panel_bytes..(j + 1) * lay.panel_bytes];
            let (pw, pc) = panel.split_at_mut(wlen);
            pack_panel(w, k, n, (pb + j) * NR, pw);
            pack_consts(o, bias, (pb + j) * NR, pc);
            fold_zero_point(pw, zu, pc);
        }
        // Tiles of nearly equal size, as in the AVX2 kernel.
        for (p0, mr) in super::gemm_x86::tile_split(pixels, MRV) {
            for t in 0..mr {
                pack_pixel(g, x, p0 + t, zu, &mut xbuf[t * row..(t + 1) * row]);
            }
            let mut j = 0;
            while j < np {
                let two = j + 1 < np;
                let pa = &wbuf[j * lay.panel_bytes..][..wlen];
                let pbw = if two {
                    &wbuf[(j + 1) * lay.panel_bytes..][..wlen]
                } else {
                    pa
                };
                // SAFETY: `xbuf` holds `mr` rows of `kquads` quads and each
                // panel `kquads` × 16 quads (sliced above).
                if two {
                    micro_dispatch::<true>(mr, lay.units, xbuf, pa, pbw, &mut acc);
                } else {
                    micro_dispatch::<false>(mr, lay.units, xbuf, pa, pbw, &mut acc);
                }
                for h in 0..(1 + usize::from(two)) {
                    let oc0 = (pb + j + h) * NR;
                    let consts =
                        &wbuf[(j + h) * lay.panel_bytes + wlen..(j + h + 1) * lay.panel_bytes];
                    let ep = Epi16::new(o, fuse.as_ref(), consts, NR.min(n - oc0));
                    for t in 0..mr {
                        ep.store(&acc[2 * t + h], (p0 + t) * n + oc0, out);
                    }
                }
                j += 2;
            }
        }
    }
    Some(Ok(()))
}

/// Packs output channels `oc0..oc0 + 16` (zeros past `n` and past `k`) as
/// `[kquads][16][4]` signed bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn pack_panel(w: &[u8], k: usize, n: usize, oc0: usize, panel: &mut [u8]) {
    let mut rows: [&[u8]; NR] = [&[]; NR];
    for (jj, r) in rows.iter_mut().enumerate() {
        if oc0 + jj < n {
            *r = w.get((oc0 + jj) * k..(oc0 + jj + 1) * k).unwrap_or(&[]);
        }
    }
    // All 16 channels present: 4 quads of taps at a time, a 4x4 transpose
    // of 32-bit words per group of 4 channels.
    let blocks = if oc0 + NR <= n { k / 16 } else { 0 };
    for (blk, dst) in panel.chunks_exact_mut(4 * NR * 4).take(blocks).enumerate() {
        for grp in 0..NR / 4 {
            let mut r = [_mm_setzero_si128(); 4];
            for (v, src) in r.iter_mut().zip(&rows[grp * 4..grp * 4 + 4]) {
                let Some(s) = src.get(blk * 16..blk * 16 + 16) else {
                    return;
                };
                // SAFETY: `s` is 16 bytes.
                *v = _mm_loadu_si128(s.as_ptr() as *const __m128i);
            }
            let t0 = _mm_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm_unpackhi_epi32(r[2], r[3]);
            let q = [
                _mm_unpacklo_epi64(t0, t2),
                _mm_unpackhi_epi64(t0, t2),
                _mm_unpacklo_epi64(t1, t3),
                _mm_unpackhi_epi64(t1, t3),
            ];
            for (qi, v) in q.iter().enumerate() {
                let at = (qi * NR + grp * 4) * 4;
                if let Some(d) = dst.get_mut(at..at + 16) {
                    // SAFETY: `d` is 16 bytes.
                    _mm_storeu_si128(d.as_mut_ptr() as *mut __m128i, *v);
                }
            }
        }
    }
    for (qq, dst) in panel.chunks_exact_mut(NR * 4).enumerate().skip(blocks * 4) {
        for (d, r) in dst.chunks_exact_mut(4).zip(rows.iter()) {
            for (b, v) in d.iter_mut().enumerate() {
                *v = r.get(4 * qq + b).copied().unwrap_or(0);
            }
        }
    }
}

/// Subtracts `zu · Σ_k w[oc, k]` from each channel's bias in the packed
/// constants (`consts` starts with the 16 biases): the `xu = x + 128`
/// offset's cross term, summed from the packed panel by `vpdpbusd` with
/// all-ones bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn fold_zero_point(panel: &[u8], zu: u8, consts: &mut [u8]) {
    let ones = _mm512_set1_epi8(1);
    let mut sum = _mm512_setzero_si512();
    for q in panel.chunks_exact(64) {
        // SAFETY: `q` is 64 bytes.
        let v = _mm512_loadu_si512(q.as_ptr() as *const _);
        sum = _mm512_dpbusd_epi32(sum, ones, v);
    }
    let Some(b) = consts.get_mut(..64) else {
        return;
    };
    // SAFETY: `b` is 64 bytes.
    let bias = _mm512_loadu_si512(b.as_ptr() as *const _);
    let fixed = _mm512_sub_epi32(bias, _mm512_mullo_epi32(sum, _mm512_set1_epi32(zu as i32)));
    _mm512_storeu_si512(b.as_mut_ptr() as *mut _, fixed);
}

/// Packs output pixel `p`'s im2col row as `x + 128` bytes, `zu` in padding
/// taps and 0 past the last tap.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn pack_pixel(g: &Geom, x: &[u8], p: usize, zu: u8, row: &mut [u8]) {
    // SAFETY: AVX-512 VNNI, as this function's caller guarantees.
    super::im2col_row(g, x, p, 1, zu, row, |src, dst| unsafe {
        flip_copy(src, dst)
    });
}

/// `dst[i] = src[i] ^ 0x80` (int8 to `x + 128`), 64 bytes at a time with a
/// masked tail; `dst` and `src` have the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn flip_copy(src: &[u8], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    let sign = _mm512_set1_epi8(-128);
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n, inside both slices.
        let v = _mm512_loadu_si512(src.as_ptr().add(i) as *const _);
        _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut _, _mm512_xor_si512(v, sign));
        i += 64;
    }
    if i < n {
        let m: __mmask64 = (1u64 << (n - i)) - 1;
        // SAFETY: masked lanes past n - i are neither read nor written.
        let v = _mm512_maskz_loadu_epi8(m, src.as_ptr().add(i) as *const i8);
        _mm512_mask_storeu_epi8(
            dst.as_mut_ptr().add(i) as *mut i8,
            m,
            _mm512_xor_si512(v, sign),
        );
    }
}

/// Calls [`micro`] with `mr` (1..=MRV) as a constant.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
#[inline]
unsafe fn micro_dispatch<const TWO: bool>(
    mr: usize,
    kquads: usize,
    xbuf: &[u8],
    pa: &[u8],
    pb: &[u8],
    acc: &mut [[i32; NR]; 2 * MRV],
) {
    match mr {
        12 => micro::<12, TWO>(kquads, xbuf, pa, pb, acc),
        11 => micro::<11, TWO>(kquads, xbuf, pa, pb, acc),
        10 => micro::<10, TWO>(kquads, xbuf, pa, pb, acc),
        9 => micro::<9, TWO>(kquads, xbuf, pa, pb, acc),
        8 => micro::<8, TWO>(kquads, xbuf, pa, pb, acc),
        7 => micro::<7, TWO>(kquads, xbuf, pa, pb, acc),
        6 => micro::<6, TWO>(kquads, xbuf, pa, pb, acc),
        5 => micro::<5, TWO>(kquads, xbuf, pa, pb, acc),
        4 => micro::<4, TWO>(kquads, xbuf, pa, pb, acc),
        3 => micro::<3, TWO>(kquads, xbuf, pa, pb, acc),
        2 => micro::<2, TWO>(kquads, xbuf, pa, pb, acc),
        _ => micro::<1, TWO>(kquads, xbuf, pa, pb, acc),
    }
}

/// `acc[2t + h][j] = Σ_q quad(x row t, q) · quad(panel h, q, j)` for `M`
/// pixel rows and one or two (`TWO`) panels.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
#[inline]
unsafe fn micro<const M: usize, const TWO: bool>(
    kquads: usize,
    xbuf: &[u8],
    pa: &[u8],
    pb: &[u8],
    acc: &mut [[i32; NR]; 2 * MRV],
) {
    if M > MRV || xbuf.len() < M * kquads * 4 || pa.len() < kquads * 64 || pb.len() < kquads * 64 {
        return;
    }
    let xp = xbuf.as_ptr();
    let (ap, bp) = (pa.as_ptr(), pb.as_ptr());
    let xstride = kquads * 4;
    let mut c0 = [_mm512_setzero_si512(); M];
    let mut c1 = [_mm512_setzero_si512(); M];
    for q in 0..kquads {
        // SAFETY: q < kquads, so every read is inside the checked lengths.
        let w0 = _mm512_loadu_si512(ap.add(q * 64) as *const _);
        let w1 = if TWO {
            _mm512_loadu_si512(bp.add(q * 64) as *const _)
        } else {
            w0
        };
        for t in 0..M {
            let quad = (xp.add(t * xstride + q * 4) as *const i32).read_unaligned();
            let xv = _mm512_set1_epi32(quad);
            c0[t] = _mm512_dpbusd_epi32(c0[t], xv, w0);
            if TWO {
                c1[t] = _mm512_dpbusd_epi32(c1[t], xv, w1);
            }
        }
    }
    for t in 0..M {
        // SAFETY: each row of `acc` is 16 i32 = 64 bytes.
        _mm512_storeu_si512(acc[2 * t].as_mut_ptr() as *mut _, c0[t]);
        if TWO {
            _mm512_storeu_si512(acc[2 * t + 1].as_mut_ptr() as *mut _, c1[t]);
        }
    }
}

/// Per-panel requantisation constants as 16-lane vectors: the AVX2
/// kernel's epilogue ([`super::gemm_x86`]) on one zmm per pixel and panel,
/// with the same integer recipe, so the same bytes.
struct Epi16<'o, 'q, 'r> {
    o: &'o Out8<'q, 'r>,
    /// Lanes stored: the panel's channels below `out_c`.
    keep: __mmask16,
    bias: __m512i,
    req: LaneQ16,
    out_zp: __m512i,
    lo: __m512i,
    hi: __m512i,
    fuse: Option<&'o Fuse16>,
}

/// The fused residual Add's constants, broadcast once per conv.
#[derive(Clone, Copy)]
struct Fuse16 {
    zp1: __m512i,
    zp2: __m512i,
    ls: __m128i,
    s1: Uniform16,
    s2: Uniform16,
    so: Uniform16,
    out_zp: __m512i,
    lo: __m512i,
    hi: __m512i,
}

impl Fuse16 {
    /// The constants of `o`'s fused Add, if it has one: built once per
    /// conv call (they are the op's, not a panel's).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    unsafe fn new(o: &Out8<'_, '_>) -> Option<Self> {
        let bounds = |lo: i32, hi: i32| {
            let (lo, hi) = (lo.clamp(-128, 127), hi.clamp(-128, 127));
            (_mm512_set1_epi32(lo), _mm512_set1_epi32(hi))
        };
        o.fuse.map(|f| {
            let a = &f.add;
            let p = &a.params;
            let (lo, hi) = bounds(a.act_min, a.act_max);
            Fuse16 {
                zp1: _mm512_set1_epi32(a.zp1),
                zp2: _mm512_set1_epi32(a.zp2),
                ls: _mm_cvtsi32_si128(p.left_shift.clamp(0, 30)),
                s1: Uniform16::new(p.input1_multiplier, p.input1_shift),
                s2: Uniform16::new(p.input2_multiplier, p.input2_shift),
                so: Uniform16::new(p.output_multiplier, p.output_shift),
                out_zp: _mm512_set1_epi32(a.out_zp),
                lo,
                hi,
            }
        })
    }
}

impl<'o, 'q, 'r> Epi16<'o, 'q, 'r> {
    /// Loads the constants [`pack_consts`] stored (`consts` holds
    /// [`PANEL_CONSTS`] bytes; zeros if shorter) for `nn` channels.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    unsafe fn new(o: &'o Out8<'q, 'r>, fuse: Option<&'o Fuse16>, consts: &[u8], nn: usize) -> Self {
        let mut c = [0u8; PANEL_CONSTS];
        if let Some(src) = consts.get(..PANEL_CONSTS) {
            c.copy_from_slice(src);
        }
        // SAFETY: 64 bytes at f * 64 of the 256-byte array.
        let ld = |f: usize| _mm512_loadu_si512(c.as_ptr().add(f * 64) as *const _);
        let bounds = |lo: i32, hi: i32| {
            let (lo, hi) = (lo.clamp(-128, 127), hi.clamp(-128, 127));
            (_mm512_set1_epi32(lo), _mm512_set1_epi32(hi))
        };
        let (lo, hi) = bounds(o.q.act_min, o.q.act_max);
        Epi16 {
            o,
            keep: if nn >= NR {
                0xffff
            } else {
                ((1u32 << nn) - 1) as __mmask16
            },
            bias: ld(0),
            req: LaneQ16::new(ld(1), ld(2), ld(3)),
            out_zp: _mm512_set1_epi32(o.q.out_zp),
            lo,
            hi,
            fuse,
        }
    }

    /// Requantises (and adds the residual of) one pixel's panel of sums
    /// and stores the kept lanes at `out[base..]`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    unsafe fn store(&self, acc: &[i32; NR], base: usize, out: &mut [u8]) {
        let nn = self.keep.count_ones() as usize;
        let Some(dst) = out.get_mut(base..base + nn) else {
            return;
        };
        // SAFETY: `acc` is 64 bytes.
        let a = _mm512_loadu_si512(acc.as_ptr() as *const _);
        let r = self.req.apply(_mm512_add_epi32(a, self.bias));
        // One clamp to the bounds clamped to -128..=127, as in the AVX2
        // epilogue's `Clamp8` (see there why that is the spec's clamp).
        let mut v = _mm512_min_epi32(
            _mm512_max_epi32(_mm512_add_epi32(r, self.out_zp), self.lo),
            self.hi,
        );
        if let (Some(fv), Some(f)) = (&self.fuse, &self.o.fuse) {
            // The residual's bytes of these channels (in place: the output's
            // own bytes, read before they are overwritten).
            let src: *const u8 = match f.residual {
                Residual::Separate(s) => match s.get(base..base + nn) {
                    Some(s) => s.as_ptr(),
                    None => return,
                },
                Residual::InPlace => dst.as_ptr(),
            };
            // SAFETY: only the `nn` kept bytes are read.
            let r16 = _mm_maskz_loadu_epi8(self.keep, src as *const i8);
            let res = _mm512_cvtepi8_epi32(r16);
            let x1 = _mm512_sll_epi32(_mm512_sub_epi32(v, fv.zp1), fv.ls);
            let x2 = _mm512_sll_epi32(_mm512_sub_epi32(res, fv.zp2), fv.ls);
            let y = _mm512_add_epi32(fv.s1.apply(x1), fv.s2.apply(x2));
            let y = _mm512_add_epi32(fv.so.apply(y), fv.out_zp);
            v = _mm512_min_epi32(_mm512_max_epi32(y, fv.lo), fv.hi);
        }
        // Lanes are in -128..=127: truncating to bytes is exact.
        // SAFETY: only the `nn` kept bytes are written.
        _mm_mask_storeu_epi8(
            dst.as_mut_ptr() as *mut i8,
            self.keep,
            _mm512_cvtepi32_epi8(v),
        );
    }
}

/// Per-lane `multiply_by_quantized_multiplier` with the shift split into
/// `left` (0..=30) and `right` (0..=31), prepared once per panel: the AVX2
/// kernel's `LaneQ` on 16 lanes (see its proof of bit-exactness).
#[derive(Clone, Copy)]
struct LaneQ16 {
    m: __m512i,
    m_odd: __m512i,
    left: __m512i,
    right: __m512i,
    mask: __m512i,
    /// Whether any multiplier is `i32::MIN` (only then can the doubling
    /// multiply saturate).
    sat: bool,
    any_left: bool,
}

impl LaneQ16 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    #[inline]
    unsafe fn new(m: __m512i, left: __m512i, right: __m512i) -> Self {
        let one = _mm512_set1_epi32(1);
        LaneQ16 {
            m,
            m_odd: _mm512_srli_epi64(m, 32),
            left,
            right,
            mask: _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one),
            sat: _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(i32::MIN)) != 0,
            any_left: _mm512_test_epi32_mask(left, left) != 0,
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    #[inline]
    unsafe fn apply(&self, x: __m512i) -> __m512i {
        let x = if self.any_left {
            _mm512_sllv_epi32(x, self.left)
        } else {
            x
        };
        let hm = high_mul16(x, self.m, self.m_odd, self.sat);
        round_div16(hm, _mm512_srav_epi32(hm, self.right), self.mask)
    }
}

/// `multiply_by_quantized_multiplier` with one multiplier and shift for
/// all lanes (the fused Add's three rescalings).
#[derive(Clone, Copy)]
struct Uniform16 {
    m: __m512i,
    sat: bool,
    left: __m128i,
    right: __m128i,
    mask: __m512i,
}

impl Uniform16 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    #[inline]
    unsafe fn new(m: i32, shift: i32) -> Self {
        let right = (-shift).clamp(0, 31);
        Uniform16 {
            m: _mm512_set1_epi32(m),
            sat: m == i32::MIN,
            left: _mm_cvtsi32_si128(shift.clamp(0, 30)),
            right: _mm_cvtsi32_si128(right),
            mask: _mm512_set1_epi32(((1i64 << right) - 1) as i32),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
    #[inline]
    unsafe fn apply(&self, x: __m512i) -> __m512i {
        let hm = high_mul16(_mm512_sll_epi32(x, self.left), self.m, self.m, self.sat);
        round_div16(hm, _mm512_sra_epi32(hm, self.right), self.mask)
    }
}

/// Saturating rounding doubling high multiply, lane-wise: the low 32 bits
/// of `(x · m + 2^30) >> 31`, even and odd lanes by separate 32x32->64
/// multiplies; `i32::MIN · i32::MIN` gives `i32::MAX` (checked only when
/// `sat`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
#[inline]
unsafe fn high_mul16(x: __m512i, m: __m512i, m_odd: __m512i, sat: bool) -> __m512i {
    let nudge = _mm512_set1_epi64(1 << 30);
    let even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge), 31);
    let odd = _mm512_srli_epi64(
        _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m_odd), nudge),
        31,
    );
    let hm = _mm512_mask_blend_epi32(0xaaaa, even, _mm512_slli_epi64(odd, 32));
    if !sat {
        return hm;
    }
    let min = _mm512_set1_epi32(i32::MIN);
    let both = _mm512_cmpeq_epi32_mask(x, min) & _mm512_cmpeq_epi32_mask(m, min);
    _mm512_mask_mov_epi32(hm, both, _mm512_set1_epi32(i32::MAX))
}

/// gemmlowp's rounding divide of `hm` by `2^right`, given `shifted = hm >>
/// right` (arithmetic) and `mask = 2^right - 1`: round half away from zero.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
#[inline]
unsafe fn round_div16(hm: __m512i, shifted: __m512i, mask: __m512i) -> __m512i {
    let one = _mm512_set1_epi32(1);
    let rem = _mm512_and_si512(hm, mask);
    let half = _mm512_srai_epi32(mask, 1);
    let neg = _mm512_cmplt_epi32_mask(hm, _mm512_setzero_si512());
    let threshold = _mm512_mask_add_epi32(half, neg, half, one);
    let up = _mm512_cmpgt_epi32_mask(rem, threshold);
    _mm512_mask_add_epi32(shifted, up, shifted, one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::requant::{multiply_by_quantized_multiplier, RequantCases};

    #[test]
    fn vector_requant_matches_scalar() {
        if !crate::kernels::dot::vnni_available() {
            return;
        }
        let mut cases = RequantCases::new(0x0bad_5eed_1234_5679);
        for _ in 0..100_000 {
            let c = cases.lanes::<16>();
            let (xs, ms, shifts, l, rr) = (c.xs, c.ms, c.shifts, c.left, c.right);
            let mut got = [0i32; 16];
            let mut uni = [0i32; 16];
            // SAFETY: AVX-512 detected above; arrays are 64 bytes.
            unsafe {
                let ld = |a: &[i32; 16]| _mm512_loadu_si512(a.as_ptr() as *const _);
                let q = LaneQ16::new(ld(&ms), ld(&l), ld(&rr));
                assert_eq!(q.sat, ms.contains(&i32::MIN));
                assert_eq!(q.any_left, l.iter().any(|&v| v != 0));
                _mm512_storeu_si512(got.as_mut_ptr() as *mut _, q.apply(ld(&xs)));
                let u = Uniform16::new(ms[0], shifts[0]);
                _mm512_storeu_si512(uni.as_mut_ptr() as *mut _, u.apply(ld(&xs)));
            }
            for k in 0..16 {
                let want = multiply_by_quantized_multiplier(xs[k], ms[k], shifts[k]);
                assert_eq!(got[k], want, "x {} m {} shift {}", xs[k], ms[k], shifts[k]);
                let want = multiply_by_quantized_multiplier(xs[k], ms[0], shifts[0]);
                assert_eq!(
                    uni[k], want,
                    "uniform: x {} m {} shift {}",
                    xs[k], ms[0], shifts[0]
                );
            }
        }
    }
}
