//! The int8 inner product shared by conv and dense, with AVX2 (x86-64) and
//! NEON (aarch64) fast paths.
//!
//! Integer sums are exact modulo 2^32 whatever the order, so the SIMD path is
//! bit-identical to the portable one by construction; the tests check it on
//! random data anyway.

/// `Σ (x[i] - zp) * w[i]` over int8 values stored as bytes, wrapping i32.
/// Uses the shorter of the two lengths.
#[inline]
pub fn dot_i8(x: &[u8], w: &[u8], zp: i32) -> i32 {
    dot_i8_with(x, w, zp, true)
}

/// [`dot_i8`], with SIMD only if `simd` (and the CPU has it).
#[inline]
pub fn dot_i8_with(x: &[u8], w: &[u8], zp: i32, simd: bool) -> i32 {
    if !simd {
        return dot_i8_portable(x, w, zp);
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        if x.len() >= 16 && std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just detected at run time.
            #[allow(unsafe_code)]
            return unsafe { x86::dot_i8_avx2(x, w, zp) };
        }
    }
    #[cfg(all(target_arch = "x86_64", not(feature = "std"), target_feature = "avx2"))]
    {
        // SAFETY: the crate is compiled with AVX2 enabled.
        #[allow(unsafe_code)]
        return unsafe { x86::dot_i8_avx2(x, w, zp) };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        if x.len() >= 16 {
            return super::neon::dot_i8(x, w, zp);
        }
    }
    #[allow(unreachable_code)]
    dot_i8_portable(x, w, zp)
}

/// Reference implementation of [`dot_i8`].
#[inline]
pub fn dot_i8_portable(x: &[u8], w: &[u8], zp: i32) -> i32 {
    x.iter().zip(w).fold(0i32, |acc, (&a, &b)| {
        acc.wrapping_add(
            (a as i8 as i32)
                .wrapping_sub(zp)
                .wrapping_mul(b as i8 as i32),
        )
    })
}

/// Whether the SIMD kernels run on this machine: [`dot_i8`]'s AVX2 path on
/// x86-64, the int8 conv/dense DSP kernels on Arm with the DSP extension,
/// the NEON kernels on aarch64 (NEON is part of the architecture).
pub fn simd_available() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
    {
        // The Arm DSP kernels are in `dsp_arm` (conv and dense call them).
        cfg!(any(
            all(target_arch = "x86_64", target_feature = "avx2"),
            all(target_arch = "arm", target_feature = "dsp"),
            all(target_arch = "aarch64", target_feature = "neon")
        ))
    }
}

/// Whether the aarch64 NEON kernels may use the dot-product extension
/// (`SDOT`): detected at run time with the `std` feature, else when
/// compiled in. False on other architectures.
pub fn dotprod_available() -> bool {
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        super::neon::dotprod_available()
    }
    #[cfg(not(all(target_arch = "aarch64", target_feature = "neon")))]
    {
        false
    }
}

/// Whether the AVX-512 VNNI kernels (int8 conv GEMM and dense) run on this
/// machine: x86-64 with AVX-512 F, BW, VL and VNNI (and AVX2).
pub fn vnni_available() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
    {
        cfg!(all(
            target_arch = "x86_64",
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni",
            target_feature = "avx2"
        ))
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod x86 {
    use core::arch::x86_64::*;

    /// AVX2 [`super::dot_i8`]: 16 values per step, widened to i16 (x - zp
    /// fits: both are in -128..=127), `madd` to i32 pairs (at most 65280,
    /// no overflow), wrapping i32 lane sums.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    // Unused in no_std builds for CPUs without AVX2 (tests still use it).
    #[allow(dead_code)]
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8_avx2(x: &[u8], w: &[u8], zp: i32) -> i32 {
        if !(-128..=127).contains(&zp) {
            // Outside int8 the i16 difference could overflow; keep exactness.
            return super::dot_i8_portable(x, w, zp);
        }
        let n = x.len().min(w.len());
        let (x, w) = (x.get(..n).unwrap_or(&[]), w.get(..n).unwrap_or(&[]));
        let zpv = _mm256_set1_epi16(zp as i16);
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let xc = x.chunks_exact(32);
        let wc = w.chunks_exact(32);
        let (xr, wr) = (xc.remainder(), wc.remainder());
        for (xa, wa) in xc.zip(wc) {
            // SAFETY: each chunk is 32 bytes; loadu has no alignment needs.
            let xv = _mm256_loadu_si256(xa.as_ptr() as *const __m256i);
            let wv = _mm256_loadu_si256(wa.as_ptr() as *const __m256i);
            let xl = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(xv)), zpv);
            let wl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv));
            let xh = _mm256_sub_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(xv, 1)), zpv);
            let wh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(xl, wl));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(xh, wh));
        }
        let acc = _mm256_add_epi32(acc0, acc1);
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 bytes; storeu has no alignment needs.
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc);
        let simd = lanes.iter().fold(0i32, |a, &b| a.wrapping_add(b));
        simd.wrapping_add(super::dot_i8_portable(xr, wr, zp))
    }

    /// AVX-512 VNNI [`super::dot_i8`]: 64 values per step with `vpdpbusd`
    /// on `xu = x + 128` (unsigned) and `w`, then `Σ (x - zp) w = Σ xu w -
    /// (zp + 128) Σ w`, with `Σ w` from a second `vpdpbusd` against ones.
    /// Every product and lane sum is exact modulo 2^32, as in the portable
    /// loop; masked loads read zeros past the end.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F, BW and VNNI.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dot_i8_vnni(x: &[u8], w: &[u8], zp: i32) -> i32 {
        if !(-128..=127).contains(&zp) {
            return super::dot_i8_portable(x, w, zp);
        }
        let n = x.len().min(w.len());
        let (sign, ones) = (_mm512_set1_epi8(-128), _mm512_set1_epi8(1));
        let (mut xw, mut sw) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut i = 0;
        while i < n {
            let m: __mmask64 = if n - i >= 64 {
                u64::MAX
            } else {
                (1u64 << (n - i)) - 1
            };
            // SAFETY: only the first min(64, n - i) bytes are read, all in
            // both slices.
            let xv = _mm512_maskz_loadu_epi8(m, x.as_ptr().add(i) as *const i8);
            let wv = _mm512_maskz_loadu_epi8(m, w.as_ptr().add(i) as *const i8);
            // Masked-off lanes: xu = 128 but w = 0, so they add nothing.
            xw = _mm512_dpbusd_epi32(xw, _mm512_xor_si512(xv, sign), wv);
            sw = _mm512_dpbusd_epi32(sw, ones, wv);
            i += 64;
        }
        let fixed = _mm512_sub_epi32(xw, _mm512_mullo_epi32(sw, _mm512_set1_epi32(zp + 128)));
        _mm512_reduce_add_epi32(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    struct XorShift(u64);
    #[cfg(target_arch = "x86_64")]
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn portable_hand_value() {
        let x = [1u8, 255, 10]; // 1, -1, 10
        let w = [2u8, 3, 254]; // 2, 3, -2
                               // (1-4)*2 + (-1-4)*3 + (10-4)*-2 = -6 - 15 - 12
        assert_eq!(dot_i8_portable(&x, &w, 4), -33);
        assert_eq!(dot_i8(&x, &w, 4), -33);
    }

    /// The AVX2 and (where the CPU has it) AVX-512 VNNI dots against the
    /// portable one, on the same random cases.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_dots_are_bit_identical_to_portable() {
        if !std::is_x86_feature_detected!("avx2") {
            eprintln!("no AVX2 on this CPU; skipping");
            return;
        }
        let vnni = vnni_available();
        if !vnni {
            eprintln!("no AVX-512 VNNI on this CPU; checking AVX2 only");
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut x = [0u8; 1100];
        let mut w = [0u8; 1100];
        for round in 0..6000 {
            let n = (rng.next() % 1100) as usize;
            for v in x.iter_mut().chain(w.iter_mut()) {
                *v = rng.next() as u8;
            }
            if round % 7 == 0 {
                // Extremes: everything at -128, or x at 127.
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
            let expected = dot_i8_portable(xs, ws, zp);
            // SAFETY: AVX2 detected above.
            #[allow(unsafe_code)]
            let got = unsafe { x86::dot_i8_avx2(xs, ws, zp) };
            assert_eq!(got, expected, "avx2 n={n} zp={zp}");
            assert_eq!(dot_i8(xs, ws, zp), expected);
            if vnni {
                // SAFETY: AVX-512 F/BW/VL/VNNI detected above.
                #[allow(unsafe_code)]
                let got = unsafe { x86::dot_i8_vnni(xs, ws, zp) };
                assert_eq!(got, expected, "vnni n={n} zp={zp}");
            }
        }
        // Out-of-range zero points fall back and still agree.
        for zp in [1000, -1000] {
            let want = dot_i8_portable(&x[..64], &w[..64], zp);
            #[allow(unsafe_code)]
            let got = unsafe { x86::dot_i8_avx2(&x[..64], &w[..64], zp) };
            assert_eq!(got, want);
            if vnni {
                #[allow(unsafe_code)]
                let got = unsafe { x86::dot_i8_vnni(&x[..64], &w[..64], zp) };
                assert_eq!(got, want);
            }
        }
    }
}
