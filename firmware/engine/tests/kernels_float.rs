//! f32 and f16-weight kernels, run through single-op plans, against f64
//! references (f16 references use the f16-rounded weights).
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::{Activation, DType, OpDesc, OpKind, PlanBuilder, Precision, Quant, NONE};

const PRECISIONS: [Precision; 2] = [Precision::F32, Precision::F16];

/// The weights as the engine will see them.
fn effective(p: Precision, w: &[f32]) -> Vec<f64> {
    w.iter()
        .map(|&v| match p {
            Precision::F16 => half::f16::from_f32(v).to_f32() as f64,
            _ => v as f64,
        })
        .collect()
}

fn add_w(b: &mut PlanBuilder, p: Precision, dims: &[u32], w: &[f32]) -> u32 {
    match p {
        Precision::F16 => b.add_weights_f16(dims, w),
        _ => b.add_weights_f32(dims, w),
    }
}

fn f32_act(b: &mut PlanBuilder, a: &mut ArenaAlloc, dims: &[usize]) -> u32 {
    let d: Vec<u32> = dims.iter().map(|&v| v as u32).collect();
    act(b, a, DType::F32, &d, Quant::NONE)
}

fn apply(act: Activation, v: f64) -> f64 {
    match act {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Clip => v.clamp(-0.25, 0.5),
    }
}

fn conv_case(rng: &mut Rng, p: Precision, cv: Conv, with_bias: bool, act: Activation) {
    let (oh, ow) = cv.out_hw();
    let x = rng.f32s(cv.h * cv.w * cv.c);
    let w = rng.f32s(cv.weight_len());
    let bias = rng.f32s(cv.oc);
    let mut b = PlanBuilder::new(p);
    let mut a = ArenaAlloc::default();
    let xt = f32_act(&mut b, &mut a, &[1, cv.h, cv.w, cv.c]);
    let yt = f32_act(&mut b, &mut a, &[1, oh, ow, cv.oc]);
    let wt = add_w(&mut b, p, &cv.weight_dims(), &w);
    let bt = if with_bias {
        b.add_bias_f32(&bias)
    } else {
        NONE
    };
    let mut op = cv.op(xt, yt, wt, bt);
    op.activation = act;
    op.clip_min = -0.25;
    op.clip_max = 0.5;
    b.add_op(op);
    b.set_input(xt).set_output(yt).set_arena_size(a.next);
    let got = as_f32(&run(&b.finish_checked().unwrap(), &bytes_f32(&x)));

    let we = effective(p, &w);
    let mut want = vec![0f64; oh * ow * cv.oc];
    cv.each(|oy, ox, oc, taps| {
        let mut acc = if with_bias { bias[oc] as f64 } else { 0.0 };
        for &(xi, wi) in taps {
            acc += x[xi] as f64 * we[wi];
        }
        want[(oy * ow + ox) * cv.oc + oc] = apply(act, acc);
    });
    assert_close(&got, &want, &format!("{p:?} {cv:?}"));
}

#[test]
fn conv_random_cases() {
    let mut rng = Rng(0xF10A7);
    for p in PRECISIONS {
        for i in 0..40 {
            let k = (rng.range(1, 5) as usize, rng.range(1, 5) as usize);
            let s = (rng.range(1, 3) as usize, rng.range(1, 3) as usize);
            let h = rng.range(k.0 as i64, 9) as usize;
            let w = rng.range(k.1 as i64, 9) as usize;
            let c = rng.range(1, 20) as usize * if i % 7 == 0 { 4 } else { 1 };
            let depthwise = i % 3 == 0;
            let oc = if depthwise {
                c
            } else {
                rng.range(1, 9) as usize
            };
            let pads = [
                rng.range(0, k.0 as i64 - 1) as usize,
                rng.range(0, k.1 as i64 - 1) as usize,
                rng.range(0, k.0 as i64 - 1) as usize,
                rng.range(0, k.1 as i64 - 1) as usize,
            ];
            let cv = Conv {
                h,
                w,
                c,
                oc,
                kh: k.0,
                kw: k.1,
                sh: s.0,
                sw: s.1,
                pads,
                depthwise,
            };
            let act = [Activation::None, Activation::Relu, Activation::Clip][i % 3];
            conv_case(&mut rng, p, cv, i % 4 != 0, act);
        }
        // 1x1 stride 2 and 7x7 stride 2 pad 3, the ResNet shapes.
        let one = Conv {
            h: 7,
            w: 7,
            c: 8,
            oc: 6,
            kh: 1,
            kw: 1,
            sh: 2,
            sw: 2,
            pads: [0; 4],
            depthwise: false,
        };
        conv_case(&mut rng, p, one, true, Activation::None);
        let stem = Conv {
            h: 12,
            w: 12,
            c: 3,
            oc: 4,
            kh: 7,
            kw: 7,
            pads: [3; 4],
            ..one
        };
        conv_case(&mut rng, p, stem, true, Activation::Relu);
    }
}

#[test]
fn dense_random_cases() {
    let mut rng = Rng(8);
    for p in PRECISIONS {
        for i in 0..15 {
            let (n_in, n_out) = (rng.range(1, 200) as usize, rng.range(1, 12) as usize);
            let x = rng.f32s(n_in);
            let w = rng.f32s(n_in * n_out);
            let bias = rng.f32s(n_out);
            let act = [Activation::None, Activation::Relu, Activation::Clip][i % 3];
            let mut b = PlanBuilder::new(p);
            let mut a = ArenaAlloc::default();
            let xt = f32_act(&mut b, &mut a, &[1, n_in]);
            let yt = f32_act(&mut b, &mut a, &[1, n_out]);
            let mut op = OpDesc::new(OpKind::Dense, xt, yt);
            op.weights = add_w(&mut b, p, &[n_out as u32, n_in as u32], &w);
            op.bias = if i % 2 == 0 {
                b.add_bias_f32(&bias)
            } else {
                NONE
            };
            op.activation = act;
            op.clip_min = -0.25;
            op.clip_max = 0.5;
            b.add_op(op);
            b.set_input(xt).set_output(yt).set_arena_size(a.next);
            let got = as_f32(&run(&b.finish_checked().unwrap(), &bytes_f32(&x)));
            let we = effective(p, &w);
            let want: Vec<f64> = (0..n_out)
                .map(|o| {
                    let bias = if i % 2 == 0 { bias[o] as f64 } else { 0.0 };
                    let s: f64 = (0..n_in).map(|k| x[k] as f64 * we[o * n_in + k]).sum();
                    apply(act, bias + s)
                })
                .collect();
            assert_close(&got, &want, &format!("{p:?} dense {n_in}->{n_out}"));
        }
    }
}

#[test]
fn pools() {
    let mut rng = Rng(12);
    let cases = [
        (8, 8, 3, 2, 2, [0; 4]),
        (9, 9, 5, 3, 2, [1; 4]),
        (5, 6, 4, 3, 1, [1; 4]),
        (7, 7, 70, 3, 2, [1, 0, 1, 2]),
    ];
    for (h, w, c, k, s, pads) in cases {
        let cv = Conv {
            h,
            w,
            c,
            oc: c,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            pads,
            depthwise: true,
        };
        let x = rng.f32s(h * w * c);
        for kind in [OpKind::MaxPool, OpKind::AvgPool, OpKind::GlobalAvgPool] {
            let geom = if kind == OpKind::GlobalAvgPool {
                Conv {
                    kh: h,
                    kw: w,
                    sh: 1,
                    sw: 1,
                    pads: [0; 4],
                    ..cv
                }
            } else {
                cv
            };
            let (oh, ow) = geom.out_hw();
            let mut b = PlanBuilder::new(Precision::F32);
            let mut a = ArenaAlloc::default();
            let xt = f32_act(&mut b, &mut a, &[1, h, w, c]);
            let yt = if kind == OpKind::GlobalAvgPool {
                f32_act(&mut b, &mut a, &[1, c])
            } else {
                f32_act(&mut b, &mut a, &[1, oh, ow, c])
            };
            let mut op = geom.op(xt, yt, NONE, NONE);
            op.kind = kind;
            op.groups = 1;
            op.activation = Activation::Relu;
            b.add_op(op);
            b.set_input(xt).set_output(yt).set_arena_size(a.next);
            let got = as_f32(&run(&b.finish_checked().unwrap(), &bytes_f32(&x)));
            let mut want = vec![0f64; oh * ow * c];
            geom.each(|oy, ox, ch, taps| {
                let vals = taps.iter().map(|&(xi, _)| x[xi] as f64);
                let v = if kind == OpKind::MaxPool {
                    vals.fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.sum::<f64>() / taps.len() as f64
                };
                want[(oy * ow + ox) * c + ch] = v.max(0.0);
            });
            assert_close(&got, &want, &format!("{kind:?} {cv:?}"));
        }
    }
}

#[test]
fn add_and_in_place_add() {
    let mut rng = Rng(21);
    for in_place in [false, true] {
        let x1 = rng.f32s(24);
        let x2 = rng.f32s(24);
        let mut b = PlanBuilder::new(Precision::F32);
        let t1 = b.add_activation(DType::F32, &[1, 2, 3, 4], 0, Quant::NONE);
        let t2 = b.add_activation(DType::F32, &[1, 2, 3, 4], 96, Quant::NONE);
        let to = if in_place {
            t2
        } else {
            b.add_activation(DType::F32, &[1, 2, 3, 4], 192, Quant::NONE)
        };
        let mut op = OpDesc::new(OpKind::Add, t1, to);
        op.input2 = t2;
        op.activation = Activation::Relu;
        b.add_op(op);
        b.set_input(t1).set_output(to).set_arena_size(288);
        let bytes = b.finish_checked().unwrap();
        let plan = edgefit_engine::Plan::parse(&bytes).unwrap();
        let engine = edgefit_engine::Engine::new(&plan);
        let mut arena = vec![0u8; 288];
        arena[..96].copy_from_slice(&bytes_f32(&x1));
        arena[96..192].copy_from_slice(&bytes_f32(&x2));
        engine.run(&mut arena).unwrap();
        let got = as_f32(engine.output(&arena).unwrap());
        let want: Vec<f64> = x1
            .iter()
            .zip(&x2)
            .map(|(a, b)| (*a as f64 + *b as f64).max(0.0))
            .collect();
        assert_close(&got, &want, "add");
    }
}

#[test]
fn softmax_last_axis() {
    let mut rng = Rng(4);
    for p in PRECISIONS {
        let x: Vec<f32> = rng.f32s(30).iter().map(|v| v * 8.0).collect();
        let mut b = PlanBuilder::new(p);
        let mut a = ArenaAlloc::default();
        let xt = f32_act(&mut b, &mut a, &[1, 3, 10]);
        let yt = f32_act(&mut b, &mut a, &[1, 3, 10]);
        b.add_op(OpDesc::new(OpKind::Softmax, xt, yt));
        b.set_input(xt).set_output(yt).set_arena_size(a.next);
        let got = as_f32(&run(&b.finish_checked().unwrap(), &bytes_f32(&x)));
        let mut want = vec![0f64; 30];
        for r in 0..3 {
            let row = &x[r * 10..r * 10 + 10];
            let m = row.iter().fold(f32::MIN, |m, &v| m.max(v)) as f64;
            let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
            for k in 0..10 {
                want[r * 10 + k] = (x[r * 10 + k] as f64 - m).exp() / s;
            }
        }
        assert_close(&got, &want, "softmax");
    }
}
