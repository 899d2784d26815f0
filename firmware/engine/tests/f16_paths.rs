//! f16 plans widen each weight once per call (into scratch) instead of on
//! every use. The result must be bit-identical to the per-use portable path
//! and to an f32 plan holding the same (f16-rounded) weights.
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::{Activation, KernelPath, Precision};

fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// One conv or dense op at precision `p` with weights `w`, bias and ReLU.
fn plan(
    p: Precision,
    cv: Option<&Conv>,
    dense: (usize, usize),
    w: &[f32],
    bias: &[f32],
    scratch: Option<u32>,
) -> Vec<u8> {
    let opts = FloatOpts {
        act: Activation::Relu,
        bias: true,
        scratch,
    };
    float_plan(p, cv, dense, w, bias, &opts)
}

#[test]
fn f16_widened_weights_give_the_f32_bits() {
    let mut rng = Rng(0xF16);
    for i in 0..60 {
        let depthwise = i % 3 == 0;
        let k = (rng.range(1, 5) as usize, rng.range(1, 5) as usize);
        let c = rng.range(1, 70) as usize;
        let cv = Conv {
            h: rng.range(k.0 as i64, 10) as usize,
            w: rng.range(k.1 as i64, 10) as usize,
            c,
            oc: if depthwise {
                c
            } else {
                rng.range(1, 50) as usize
            },
            kh: k.0,
            kw: k.1,
            sh: rng.range(1, 2) as usize,
            sw: rng.range(1, 2) as usize,
            pads: [
                rng.range(0, k.0 as i64 - 1) as usize,
                rng.range(0, k.1 as i64 - 1) as usize,
                rng.range(0, k.0 as i64 - 1) as usize,
                rng.range(0, k.1 as i64 - 1) as usize,
            ],
            depthwise,
        };
        let w = rng.f32s(cv.weight_len());
        let bias = rng.f32s(cv.oc);
        let x = bytes_f32(&rng.f32s(cv.h * cv.w * cv.c));
        let f32_plan = plan(
            Precision::F32,
            Some(&cv),
            (0, 0),
            &round_f16(&w),
            &bias,
            None,
        );
        let want = run_with(&f32_plan, &x, KernelPath::Portable);
        // Default scratch, one kernel's worth (many channel blocks), none.
        let per = cv.kh * cv.kw * cv.c * 4;
        for scratch in [None, Some(per as u32), Some(0)] {
            let p16 = plan(Precision::F16, Some(&cv), (0, 0), &w, &bias, scratch);
            let got = run_both(&p16, &x, &format!("{cv:?}"));
            assert!(
                got == want,
                "{cv:?} scratch {scratch:?}: f16 differs from f32"
            );
        }
    }
}

#[test]
fn f16_dense_gives_the_f32_bits() {
    let mut rng = Rng(0xF17);
    for _ in 0..20 {
        let (n_in, n_out) = (rng.range(1, 500) as usize, rng.range(1, 40) as usize);
        let w = rng.f32s(n_in * n_out);
        let bias = rng.f32s(n_out);
        let x = bytes_f32(&rng.f32s(n_in));
        let want = run_with(
            &plan(
                Precision::F32,
                None,
                (n_in, n_out),
                &round_f16(&w),
                &bias,
                None,
            ),
            &x,
            KernelPath::Portable,
        );
        let got = run_both(
            &plan(Precision::F16, None, (n_in, n_out), &w, &bias, None),
            &x,
            "dense",
        );
        assert!(got == want, "dense {n_in}->{n_out}");
    }
}
