//! The f32 and f16 kernels give the same bits on every path: the AVX2 /
//! AVX-512 kernels (`KernelPath::Auto` on x86-64) and the NEON ones
//! (`Auto` on aarch64, `scripts/engine-aarch64.sh test`) against the
//! portable ones, on
//! random conv shapes (strides, padding on every side, odd channel counts,
//! 1x1, wide layers over several channel chunks, depthwise), dense layers,
//! every activation, with and without bias, and values chosen to expose any
//! change of order or rounding: negative and positive zeros, products that
//! underflow to signed zeros, mixed signs and magnitudes.
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::{Activation, KernelPath, Precision};

/// A value from a distribution with many zeros of both signs, tiny values
/// (whose products underflow to ±0 or subnormals) and large ones.
fn special(rng: &mut Rng) -> f32 {
    match rng.range(0, 15) {
        0 => -0.0,
        1 => 0.0,
        2 => rng.f32() * 1e-22,
        3 => rng.f32() * 1000.0,
        4 => rng.f32() * 1e-3,
        _ => rng.f32(),
    }
}

fn specials(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| special(rng)).collect()
}

/// Runs `plan` on `x` through the fast kernels (`Auto`: AVX-512 register
/// blocking where the CPU has it, and `NoAvx512`: AVX2; NEON for both on
/// aarch64) and the portable
/// ones, and asserts the output bits are equal (as f32 words, so a
/// -0.0/+0.0 difference shows).
fn same_bits(plan: &[u8], x: &[f32], what: &str) {
    let x = bytes_f32(x);
    let portable = run_with(plan, &x, KernelPath::Portable);
    for kp in [KernelPath::Auto, KernelPath::NoAvx512] {
        same_bits_as(plan, &x, kp, &portable, &format!("{what} {kp:?}"));
    }
}

fn same_bits_as(plan: &[u8], x: &[u8], kp: KernelPath, portable: &[u8], what: &str) {
    let fast = run_with(plan, x, kp);
    let bits = |v: &[u8]| -> Vec<u32> {
        v.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (f, p) = (bits(&fast), bits(portable));
    if let Some(i) = (0..f.len()).find(|&i| f[i] != p[i]) {
        panic!(
            "{what}: output {i} of {}: fast {:#010x} ({}) portable {:#010x} ({})",
            f.len(),
            f[i],
            f32::from_bits(f[i]),
            p[i],
            f32::from_bits(p[i])
        );
    }
}

fn random_conv(rng: &mut Rng, depthwise: bool, max_c: i64, max_hw: i64) -> Conv {
    let kh = rng.range(1, 5) as usize;
    let kw = if rng.range(0, 2) == 0 {
        kh
    } else {
        rng.range(1, 5) as usize
    };
    let c = rng.range(1, max_c) as usize;
    let h = rng.range(1, max_hw) as usize;
    let w = rng.range(1, max_hw) as usize;
    let pad = |rng: &mut Rng, k: usize| rng.range(0, k as i64 - 1) as usize;
    let mut cv = Conv {
        h,
        w,
        c,
        oc: if depthwise {
            c
        } else {
            rng.range(1, max_c) as usize
        },
        kh,
        kw,
        sh: rng.range(1, 3) as usize,
        sw: rng.range(1, 3) as usize,
        pads: [pad(rng, kh), pad(rng, kw), pad(rng, kh), pad(rng, kw)],
        depthwise,
    };
    // At least one output row and column.
    cv.h = cv.h.max(kh.saturating_sub(cv.pads[0] + cv.pads[2]));
    cv.w = cv.w.max(kw.saturating_sub(cv.pads[1] + cv.pads[3]));
    cv
}

fn check_conv(rng: &mut Rng, cv: &Conv, i: usize) {
    let acts = [Activation::None, Activation::Relu, Activation::Clip];
    let opts = FloatOpts {
        act: acts[i % 3],
        bias: i % 4 != 1,
        scratch: None,
    };
    let w = specials(rng, cv.weight_len());
    let bias = specials(rng, cv.oc);
    let x = specials(rng, cv.h * cv.w * cv.c);
    for p in [Precision::F32, Precision::F16] {
        let pl = float_plan(p, Some(cv), (0, 0), &w, &bias, &opts);
        same_bits(&pl, &x, &format!("{p:?} {cv:?} act {:?}", opts.act));
    }
}

#[test]
fn float_conv_random_shapes_fast_equals_portable() {
    let mut rng = Rng(0xF32C_0001);
    for i in 0..150 {
        let cv = random_conv(&mut rng, i % 5 == 4, 40, 12);
        check_conv(&mut rng, &cv, i);
    }
}

/// Channel counts over several micro-kernel blocks and chunks, with odd
/// remainders, on small images.
#[test]
fn float_conv_wide_channels_fast_equals_portable() {
    let mut rng = Rng(0xF32C_0002);
    for i in 0..16 {
        let mut cv = random_conv(&mut rng, i % 4 == 3, 300, 7);
        if i % 3 == 0 {
            // Enough taps for more than one channel chunk.
            cv.c = 250 + i;
            (cv.kh, cv.kw) = (3, 3);
            cv.pads = [1, 1, 1, 1];
            cv.h = cv.h.max(3);
            cv.w = cv.w.max(3);
            if cv.depthwise {
                cv.oc = cv.c;
            }
        }
        check_conv(&mut rng, &cv, i);
    }
}

/// The shapes ResNet-50 and VGG16 run, scaled down in space.
#[test]
fn float_conv_resnet_like_shapes_fast_equals_portable() {
    let mut rng = Rng(0xF32C_0003);
    // (h, c, oc, k, stride, pad)
    let shapes = [
        (16, 3, 64, 7, 2, 3),
        (7, 64, 64, 1, 1, 0),
        (7, 64, 64, 3, 1, 1),
        (7, 64, 256, 1, 1, 0),
        (8, 256, 128, 1, 2, 0),
        (5, 128, 128, 3, 1, 1),
        (4, 512, 96, 3, 1, 1),
        (3, 2048, 20, 1, 1, 0),
        (9, 3, 64, 3, 1, 1),
    ];
    for (i, &(h, c, oc, k, s, p)) in shapes.iter().enumerate() {
        let cv = Conv {
            h,
            w: h + 1,
            c,
            oc,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            pads: [p, p, p, p],
            depthwise: false,
        };
        check_conv(&mut rng, &cv, i);
    }
}

#[test]
fn float_dense_fast_equals_portable() {
    let mut rng = Rng(0xF32D_0001);
    let acts = [Activation::None, Activation::Relu, Activation::Clip];
    for i in 0..60 {
        let n_in = match i % 4 {
            0 => rng.range(1, 9),
            1 => rng.range(1, 64) * 8,
            _ => rng.range(1, 700),
        } as usize;
        let n_out = rng.range(1, 40) as usize;
        let opts = FloatOpts {
            act: acts[i % 3],
            bias: i % 5 != 2,
            scratch: None,
        };
        let w = specials(&mut rng, n_in * n_out);
        let bias = specials(&mut rng, n_out);
        let x = specials(&mut rng, n_in);
        for p in [Precision::F32, Precision::F16] {
            let pl = float_plan(p, None, (n_in, n_out), &w, &bias, &opts);
            same_bits(&pl, &x, &format!("{p:?} dense {n_in}->{n_out}"));
        }
    }
}

/// Signed zeros specifically: a depthwise conv keeps `-0.0 + -0.0 = -0.0`
/// (bias then products), a regular conv's row sums start at +0.0, and
/// windows wholly in the padding keep the bias alone.
#[test]
fn float_signed_zeros_fast_equals_portable() {
    let mut rng = Rng(0xF32C_0004);
    for i in 0..40 {
        let cv = random_conv(&mut rng, i % 2 == 0, 20, 6);
        let n = cv.weight_len();
        let w: Vec<f32> = (0..n)
            .map(|_| if rng.range(0, 1) == 0 { -0.0 } else { 0.5 })
            .collect();
        let bias: Vec<f32> = (0..cv.oc)
            .map(|_| if rng.range(0, 1) == 0 { -0.0 } else { 0.0 })
            .collect();
        let x: Vec<f32> = (0..cv.h * cv.w * cv.c)
            .map(|_| match rng.range(0, 2) {
                0 => -0.0,
                1 => 0.0,
                _ => -1e-30,
            })
            .collect();
        let opts = FloatOpts {
            act: Activation::None,
            bias: true,
            scratch: None,
        };
        for p in [Precision::F32, Precision::F16] {
            let pl = float_plan(p, Some(&cv), (0, 0), &w, &bias, &opts);
            same_bits(&pl, &x, &format!("{p:?} {cv:?} zeros"));
        }
    }
}

/// Channel counts that are multiples of 8 take the packed conv (x86-64
/// AVX-512) when the scratch holds a block of packed weights and the input
/// tile: with the writer's scratch (many blocks per chunk, doubled input
/// rows), one block (broadcast inputs), less (the unpacked kernels) and
/// none; every one gives the portable bits.
#[test]
fn float_conv_every_scratch_size_fast_equals_portable() {
    let mut rng = Rng(0xF32C_0005);
    let acts = [Activation::None, Activation::Relu, Activation::Clip];
    for i in 0..24 {
        let mut cv = random_conv(&mut rng, false, 12, 9);
        cv.c = 8 * rng.range(1, 12) as usize;
        cv.oc = rng.range(1, 120) as usize;
        let (block, tile) = (8 * cv.kh * cv.kw * cv.c * 4, 6 * 2 * cv.kw * cv.c * 4);
        let w = specials(&mut rng, cv.weight_len());
        let bias = specials(&mut rng, cv.oc);
        let x = specials(&mut rng, cv.h * cv.w * cv.c);
        let sizes = [
            None,
            Some((block + tile) as u32),
            Some((block + tile - 16) as u32),
            Some(0),
        ];
        for scratch in sizes {
            let opts = FloatOpts {
                act: acts[i % 3],
                bias: i % 4 != 1,
                scratch,
            };
            for p in [Precision::F32, Precision::F16] {
                let pl = float_plan(p, Some(&cv), (0, 0), &w, &bias, &opts);
                same_bits(&pl, &x, &format!("{p:?} {cv:?} scratch {scratch:?}"));
            }
        }
    }
}

/// The float kernels' name (what `edgefit speed` prints) says which ones run.
#[test]
fn float_kernel_names_follow_the_path() {
    assert_eq!(KernelPath::Portable.float_simd_name(), "none");
    let auto = KernelPath::Auto.float_simd_name();
    #[cfg(target_arch = "x86_64")]
    {
        let wide = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && KernelPath::Auto.uses_vnni();
        assert_eq!(auto, if wide { "avx512" } else { "avx2" });
        assert_eq!(KernelPath::NoAvx512.float_simd_name(), "avx2");
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(auto, "neon");
    let _ = auto;
}
