//! Conv2d with a fused residual Add: bit-identical to the unfused Conv2d +
//! Add pair (int8, f32, f16), in place and not, on both kernel paths; and
//! the validator's aliasing rules.
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::{
    Activation, DType, Engine, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, PlanError, Precision,
    Quant, NONE,
};

/// Everything random about one case.
struct Case {
    cv: Conv,
    p: Precision,
    qx: Quant,
    qh: Quant,
    qr: Quant,
    qy: Quant,
    w: Vec<f32>,
    w8: Vec<i8>,
    bias8: Vec<i32>,
    biasf: Vec<f32>,
    ms: Vec<i32>,
    ss: Vec<i32>,
    conv_clamp: (i32, i32),
    add_clamp: (i32, i32),
    act: Activation,
}

impl Case {
    /// A random case with up to `max_c` input and output channels.
    fn random_sized(rng: &mut Rng, p: Precision, depthwise: bool, max_c: i64) -> Case {
        let k = rng.range(1, 3) as usize * 2 - 1;
        let s = rng.range(1, 2) as usize;
        let c = rng.range(1, max_c) as usize;
        let cv = Conv {
            h: rng.range(k as i64, 12) as usize,
            w: rng.range(k as i64, 12) as usize,
            c,
            oc: if depthwise {
                c
            } else {
                rng.range(1, max_c) as usize
            },
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            pads: [k / 2; 4],
            depthwise,
        };
        let q = |rng: &mut Rng| {
            Quant::new(
                0.03 + rng.range(0, 20) as f32 / 100.0,
                rng.range(-40, 40) as i32,
            )
        };
        let (qx, qh, qr, mut qy) = (q(rng), q(rng), q(rng), q(rng));
        // The sum's range: roughly the two inputs' ranges together.
        qy.scale = qh.scale + qr.scale;
        let taps = cv.kh * cv.kw * if depthwise { 1 } else { c };
        let (ms, ss) = (0..cv.oc)
            .map(|_| qm(rng.range(5, 40) as f64 / 1000.0 / (taps as f64).sqrt()))
            .unzip();
        let conv_clamp = match rng.range(0, 2) {
            0 => (-128, 127),
            1 => (qh.zero_point, 127),
            _ => (qh.zero_point - 30, qh.zero_point + 50),
        };
        let relu = rng.next().is_multiple_of(2);
        Case {
            cv,
            p,
            qx,
            qh,
            qr,
            qy,
            w: rng.f32s(cv.weight_len()),
            w8: rng.weights_i8(cv.weight_len()),
            bias8: (0..cv.oc).map(|_| rng.range(-5000, 5000) as i32).collect(),
            biasf: rng.f32s(cv.oc),
            ms,
            ss,
            conv_clamp,
            add_clamp: if relu {
                (qy.zero_point, 127)
            } else {
                (-128, 127)
            },
            act: if relu {
                Activation::Relu
            } else {
                Activation::None
            },
        }
    }

    /// The plan, fused or as Conv2d + Add, with the output in place over
    /// the residual or in its own region. Arena: x at 0, the residual
    /// after it, then the conv result (unfused) and the output.
    fn plan(&self, fused: bool, in_place: bool) -> Vec<u8> {
        let (cv, p) = (&self.cv, self.p);
        let (oh, ow) = cv.out_hw();
        let ad = p.activation_dtype();
        let size = ad.size();
        let quant = |q: Quant| if p == Precision::Int8 { q } else { Quant::NONE };
        let mut b = PlanBuilder::new(p);
        let mut a = ArenaAlloc::default();
        let ydims = [1, oh as u32, ow as u32, cv.oc as u32];
        let x = b.add_activation(
            ad,
            &[1, cv.h as u32, cv.w as u32, cv.c as u32],
            a.alloc(cv.h * cv.w * cv.c * size),
            quant(self.qx),
        );
        let n = oh * ow * cv.oc * size;
        let r_off = a.alloc(n);
        let r = b.add_activation(ad, &ydims, r_off, quant(self.qr));
        let h_off = a.alloc(n);
        let y_off = if in_place { r_off } else { a.alloc(n) };
        let y = b.add_activation(ad, &ydims, y_off, quant(self.qy));
        let (wt, bt) = match p {
            Precision::Int8 => (
                b.add_weights_i8(&cv.weight_dims(), &self.w8),
                b.add_bias_i32(&self.bias8),
            ),
            Precision::F16 => (
                b.add_weights_f16(&cv.weight_dims(), &self.w),
                b.add_bias_f32(&self.biasf),
            ),
            Precision::F32 => (
                b.add_weights_f32(&cv.weight_dims(), &self.w),
                b.add_bias_f32(&self.biasf),
            ),
        };
        let ap = add_params(
            self.qh.scale as f64,
            self.qr.scale as f64,
            self.qy.scale as f64,
        );
        let mut conv = cv.op(x, y, wt, bt);
        if p == Precision::Int8 {
            conv.multipliers = b.add_i32_array(&self.ms);
            conv.shifts = b.add_i32_array(&self.ss);
        }
        if fused {
            conv.residual = r;
            conv.conv_out = self.qh;
            (conv.conv_act_min, conv.conv_act_max) = self.conv_clamp;
            conv.add = ap;
            (conv.act_min, conv.act_max) = self.add_clamp;
            conv.activation = self.act;
            b.add_op(conv);
        } else {
            let h = b.add_activation(ad, &ydims, h_off, quant(self.qh));
            conv.output = h;
            (conv.act_min, conv.act_max) = self.conv_clamp;
            b.add_op(conv);
            let mut add = OpDesc::new(OpKind::Add, h, y);
            add.input2 = r;
            add.add = ap;
            (add.act_min, add.act_max) = self.add_clamp;
            add.activation = self.act;
            b.add_op(add);
        }
        b.set_input(x).set_output(y).set_arena_size(a.next);
        b.finish_checked().unwrap()
    }
}

/// Runs with the whole activation arena filled from `seed` (input and
/// residual are both arena tensors), float arenas with small finite values.
fn run_filled(plan: &[u8], seed: u64, kernels: KernelPath) -> Vec<u8> {
    let p = Plan::parse(plan).unwrap();
    let engine = Engine::with_kernels(&p, kernels);
    let mut arena = vec![0u8; engine.arena_size()];
    let mut rng = Rng(seed);
    if p.precision() == Precision::Int8 {
        arena.iter_mut().for_each(|v| *v = rng.next() as u8);
    } else {
        for c in arena.chunks_exact_mut(4) {
            c.copy_from_slice(&rng.f32().to_le_bytes());
        }
    }
    engine.run(&mut arena).unwrap();
    engine.output(&arena).unwrap().to_vec()
}

fn fused_equals_unfused(p: Precision, seed: u64, rounds: usize) {
    fused_equals_unfused_sized(p, seed, rounds, 40);
}

fn fused_equals_unfused_sized(p: Precision, seed: u64, rounds: usize, max_c: i64) {
    let mut rng = Rng(seed);
    for i in 0..rounds {
        let case = Case::random_sized(&mut rng, p, i % 4 == 3, max_c);
        let data = rng.next();
        let reference = run_filled(&case.plan(false, false), data, KernelPath::Portable);
        for fused in [false, true] {
            for in_place in [false, true] {
                let plan = case.plan(fused, in_place);
                for kp in [KernelPath::Auto, KernelPath::NoAvx512, KernelPath::Portable] {
                    let got = run_filled(&plan, data, kp);
                    assert!(
                        got == reference,
                        "{p:?} case {i} {:?} fused {fused} in place {in_place} {kp:?}",
                        case.cv
                    );
                }
            }
        }
        if p == Precision::Int8 {
            // Not degenerate: most outputs are not at the clamp.
            let inside = reference
                .iter()
                .filter(|&&v| (v as i8 as i32) > case.add_clamp.0 && (v as i8) < 127)
                .count();
            assert!(
                inside * 4 >= reference.len(),
                "case {i} mostly clamped: {:?}",
                as_i8(&reference)
            );
        }
    }
}

#[test]
fn int8_fused_residual_conv_is_bit_identical_to_conv_then_add() {
    fused_equals_unfused(Precision::Int8, 0xF05E_0001, 80);
}

/// Wide convs: several 16-channel panels, partial last panels, 1x1 stride 2.
#[test]
fn int8_fused_residual_wide_channels_simd_equals_portable() {
    fused_equals_unfused_sized(Precision::Int8, 0xF05E_0101, 24, 200);
}

#[test]
fn float_fused_residual_conv_is_bit_identical_to_conv_then_add() {
    fused_equals_unfused(Precision::F32, 0xF05E_0002, 30);
    fused_equals_unfused(Precision::F16, 0xF05E_0003, 30);
}

#[test]
fn fused_fields_round_trip_through_the_record() {
    let mut op = OpDesc::new(OpKind::Conv2d, 1, 2);
    op.residual = 3;
    op.conv_out = Quant::new(0.125, -7);
    (op.conv_act_min, op.conv_act_max) = (-7, 100);
    op.add.left_shift = 20;
    let r = op.encode();
    assert_eq!(&r[8..12], &3u32.to_le_bytes());
    assert_eq!(r[2] as i8, -7);
    assert_eq!(r[3] as i8, 100);
    assert_eq!(OpDesc::decode(&r, 0).unwrap(), op);
    // A plain conv keeps the reserved bytes zero and decodes unchanged.
    let plain = OpDesc::new(OpKind::Conv2d, 1, 2);
    let r = plain.encode();
    assert_eq!(&r[2..4], &[0, 0]);
    assert_eq!(&r[8..12], &NONE.to_le_bytes());
    assert_eq!(OpDesc::decode(&r, 0).unwrap(), plain);
    // An Add keeps using the slot as its second input.
    let mut add = OpDesc::new(OpKind::Add, 1, 2);
    add.input2 = 5;
    assert_eq!(OpDesc::decode(&add.encode(), 0).unwrap(), add);
}

/// A fused int8 conv 4x4x2 -> 4x4x3 (3x3, pad 1); `tweak` moves things.
fn fused_plan(tweak: impl FnOnce(&mut PlanBuilder, &mut OpDesc)) -> Result<Vec<u8>, PlanError> {
    let mut b = PlanBuilder::new(Precision::Int8);
    let x = b.add_activation(DType::I8, &[1, 4, 4, 2], 0, Quant::NONE);
    let r = b.add_activation(DType::I8, &[1, 4, 4, 3], 32, Quant::new(0.1, 2));
    let mut op = OpDesc::new(OpKind::Conv2d, x, r);
    op.weights = b.add_weights_i8(&[3, 3, 3, 2], &[1; 54]);
    (op.kernel_h, op.kernel_w) = (3, 3);
    (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
    op.multipliers = b.add_i32_array(&[1 << 30; 3]);
    op.shifts = b.add_i32_array(&[-3; 3]);
    op.residual = r;
    op.conv_out = Quant::new(0.2, -3);
    op.add = add_params(0.2, 0.1, 0.15);
    b.set_input(x).set_output(r).set_arena_size(128);
    tweak(&mut b, &mut op);
    b.add_op(op);
    b.finish_checked()
}

#[test]
fn validator_accepts_exact_aliasing_only() {
    // In place (output == residual) and separate regions are both fine.
    fused_plan(|_, _| {}).unwrap();
    fused_plan(|b, op| {
        op.output = b.add_activation(DType::I8, &[1, 4, 4, 3], 80, Quant::NONE);
    })
    .unwrap();
    // Partial overlap of output and residual.
    let e = fused_plan(|b, op| {
        op.output = b.add_activation(DType::I8, &[1, 4, 4, 3], 48, Quant::NONE);
    })
    .unwrap_err();
    assert_eq!(
        e,
        PlanError::Overlap {
            op: 0,
            input: 1,
            output: 3
        }
    );
    // The output (in place over the residual) overlapping the conv input.
    let e = fused_plan(|b, op| {
        let r = b.add_activation(DType::I8, &[1, 4, 4, 3], 16, Quant::NONE);
        op.residual = r;
        op.output = r;
    })
    .unwrap_err();
    assert_eq!(
        e,
        PlanError::Overlap {
            op: 0,
            input: 0,
            output: 3
        }
    );
    // The residual may overlap the conv input (both are only read).
    fused_plan(|b, op| {
        op.residual = b.add_activation(DType::I8, &[1, 4, 4, 3], 0, Quant::NONE);
        op.output = b.add_activation(DType::I8, &[1, 4, 4, 3], 80, Quant::NONE);
    })
    .unwrap();
}

#[test]
fn validator_rejects_bad_fused_parameters() {
    let e = fused_plan(|b, op| {
        op.residual = b.add_activation(DType::I8, &[1, 4, 4, 2], 80, Quant::NONE);
    })
    .unwrap_err();
    assert_eq!(e, PlanError::ShapeMismatch { op: 0, a: 1, b: 3 });
    let e = fused_plan(|_, op| op.residual = 99).unwrap_err();
    assert!(
        matches!(e, PlanError::TensorIndex { index: 99, .. }),
        "{e:?}"
    );
    let e = fused_plan(|_, op| op.residual = op.weights).unwrap_err();
    assert!(matches!(e, PlanError::WrongLocation { .. }), "{e:?}");
    let e = fused_plan(|_, op| op.activation = Activation::Clip).unwrap_err();
    assert!(matches!(e, PlanError::BadParam { value: 2, .. }), "{e:?}");
    let e = fused_plan(|_, op| (op.conv_act_min, op.conv_act_max) = (10, 5)).unwrap_err();
    assert!(matches!(e, PlanError::BadParam { value: 10, .. }), "{e:?}");
    let e = fused_plan(|_, op| op.conv_act_min = -200).unwrap_err();
    assert_eq!(
        e,
        PlanError::BadParam {
            op: 0,
            what: "conv_act_min",
            value: -200
        }
    );
    let e = fused_plan(|_, op| op.conv_out.zero_point = 128).unwrap_err();
    assert!(matches!(e, PlanError::BadParam { value: 128, .. }), "{e:?}");
    let e = fused_plan(|_, op| op.add.left_shift = 31).unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::BadParam {
                what: "left_shift",
                ..
            }
        ),
        "{e:?}"
    );
    let e = fused_plan(|_, op| op.add.output_multiplier = -1).unwrap_err();
    assert!(matches!(e, PlanError::BadParam { value: -1, .. }), "{e:?}");
    // A residual of the wrong dtype in a float plan.
    let mut b = PlanBuilder::new(Precision::F32);
    let x = b.add_activation(DType::F32, &[1, 2, 2, 1], 0, Quant::NONE);
    let y = b.add_activation(DType::F32, &[1, 2, 2, 1], 16, Quant::NONE);
    let r = b.add_activation(DType::I8, &[1, 2, 2, 1], 32, Quant::NONE);
    let mut op = OpDesc::new(OpKind::Conv2d, x, y);
    op.weights = b.add_weights_f32(&[1, 1, 1, 1], &[1.0]);
    op.residual = r;
    b.add_op(op);
    b.set_input(x).set_output(y).set_arena_size(48);
    assert!(matches!(
        b.finish_checked().unwrap_err(),
        PlanError::WrongDType { tensor: 2, .. }
    ));
}
