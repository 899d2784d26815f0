//! Small whole networks built with PlanBuilder, parsed and run, against
//! references composed from naive per-layer code.
#![cfg(feature = "std")]

mod common;

use common::net::*;
use common::*;
use edgefit_engine::{
    Activation, AddParams, DType, Engine, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant, NONE,
};

#[test]
fn int8_conv_relu_pool_reshape_dense() {
    let mut rng = Rng(2024);
    for _ in 0..5 {
        let (plan, x, want) = int8_net(&mut rng);
        let got = as_i8(&run(&plan, &bytes_i8(&x)));
        assert_eq!(got, want);
        let distinct: std::collections::BTreeSet<i8> = want.iter().copied().collect();
        assert!(distinct.len() > 3, "degenerate logits {want:?}");
        assert_eq!(Plan::parse(&plan).unwrap().plan_id(), 0x0ED6_EF17);
    }
}

#[test]
fn float_conv_relu_pool_reshape_dense() {
    let mut rng = Rng(7);
    for p in [Precision::F32, Precision::F16] {
        let w1 = rng.f32s(CONV.weight_len());
        let b1 = rng.f32s(4);
        let w2 = rng.f32s(CLASSES * 64);
        let b2 = rng.f32s(CLASSES);
        let net = build(p, &w1, &b1, &w2, &b2, None);
        let x = rng.f32s(8 * 8 * 3);
        let got = as_f32(&run(&net.plan, &bytes_f32(&x)));

        let r = |v: &[f32]| -> Vec<f64> {
            v.iter()
                .map(|&v| match p {
                    Precision::F16 => half::f16::from_f32(v).to_f32() as f64,
                    _ => v as f64,
                })
                .collect()
        };
        let (w1, w2) = (r(&w1), r(&w2));
        let mut c1 = vec![0f64; 8 * 8 * 4];
        CONV.each(|oy, ox, oc, taps| {
            let acc = taps
                .iter()
                .fold(b1[oc] as f64, |a, &(xi, wi)| a + x[xi] as f64 * w1[wi]);
            c1[(oy * 8 + ox) * 4 + oc] = acc.max(0.0);
        });
        let mut p1 = vec![0f64; 64];
        POOL.each(|oy, ox, c, taps| {
            p1[(oy * 4 + ox) * 4 + c] = taps.iter().map(|&(i, _)| c1[i]).fold(f64::MIN, f64::max);
        });
        let want: Vec<f64> = (0..CLASSES)
            .map(|o| (0..64).fold(b2[o] as f64, |a, k| a + p1[k] * w2[o * 64 + k]))
            .collect();
        assert_close(&got, &want, &format!("{p:?} net"));
    }
}

/// A residual block as the compiler lays it out: the Add writes over the
/// skip tensor in place. x -> conv(relu) -> conv -> add(x) relu -> gap ->
/// dense -> softmax, f32.
#[test]
fn float_residual_block_with_in_place_add() {
    let mut rng = Rng(31);
    let cv = Conv {
        h: 6,
        w: 6,
        c: 8,
        oc: 8,
        ..CONV
    };
    let (w1, w2) = (rng.f32s(cv.weight_len()), rng.f32s(cv.weight_len()));
    let wd = rng.f32s(5 * 8);
    let x = rng.f32s(6 * 6 * 8);
    let n = 6 * 6 * 8 * 4;
    let mut b = PlanBuilder::new(Precision::F32);
    let t = |b: &mut PlanBuilder, dims: &[u32], off: usize| {
        b.add_activation(DType::F32, dims, off as u32, Quant::NONE)
    };
    let xt = t(&mut b, &[1, 6, 6, 8], 0);
    let h1 = t(&mut b, &[1, 6, 6, 8], n);
    let h2 = t(&mut b, &[1, 6, 6, 8], 2 * n);
    let sum = t(&mut b, &[1, 6, 6, 8], 0); // in place over x
    let g = t(&mut b, &[1, 8], n);
    let logits = t(&mut b, &[1, 5], 2 * n);
    let probs = t(&mut b, &[1, 5], n + 64);
    let (wt1, wt2) = (
        b.add_weights_f32(&cv.weight_dims(), &w1),
        b.add_weights_f32(&cv.weight_dims(), &w2),
    );
    let mut c1 = cv.op(xt, h1, wt1, NONE);
    c1.activation = Activation::Relu;
    b.add_op(c1);
    b.add_op(cv.op(h1, h2, wt2, NONE));
    let mut add = OpDesc::new(OpKind::Add, h2, sum);
    add.input2 = xt;
    add.activation = Activation::Relu;
    b.add_op(add);
    b.add_op(OpDesc::new(OpKind::GlobalAvgPool, sum, g));
    let mut d = OpDesc::new(OpKind::Dense, g, logits);
    d.weights = b.add_weights_f32(&[5, 8], &wd);
    b.add_op(d);
    b.add_op(OpDesc::new(OpKind::Softmax, logits, probs));
    b.set_input(xt)
        .set_output(probs)
        .set_arena_size(3 * n as u32);
    let got = as_f32(&run(&b.finish_checked().unwrap(), &bytes_f32(&x)));

    let conv_ref = |inp: &[f64], w: &[f32], relu: bool| {
        let mut out = vec![0f64; inp.len()];
        cv.each(|oy, ox, oc, taps| {
            let s: f64 = taps.iter().map(|&(i, k)| inp[i] * w[k] as f64).sum();
            out[(oy * 6 + ox) * 8 + oc] = if relu { s.max(0.0) } else { s };
        });
        out
    };
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let h = conv_ref(&conv_ref(&xf, &w1, true), &w2, false);
    let s: Vec<f64> = h.iter().zip(&xf).map(|(a, b)| (a + b).max(0.0)).collect();
    let gap: Vec<f64> = (0..8)
        .map(|c| (0..36).map(|p| s[p * 8 + c]).sum::<f64>() / 36.0)
        .collect();
    let lg: Vec<f64> = (0..5)
        .map(|o| (0..8).map(|k| gap[k] * wd[o * 8 + k] as f64).sum())
        .collect();
    let m = lg.iter().cloned().fold(f64::MIN, f64::max);
    let z: f64 = lg.iter().map(|v| (v - m).exp()).sum();
    let want: Vec<f64> = lg.iter().map(|v| (v - m).exp() / z).collect();
    assert_close(&got, &want, "residual block");
}

/// The same block in int8 with TFLite add parameters, checked against the
/// reference arithmetic, and run op by op with `run_op`.
#[test]
fn int8_residual_add_in_place_run_op_by_op() {
    let mut rng = Rng(55);
    let cv = Conv {
        h: 5,
        w: 5,
        c: 6,
        oc: 6,
        ..CONV
    };
    let qx = Quant::new(0.05, 10);
    let qh = Quant::new(0.07, -20);
    let w = rng.weights_i8(cv.weight_len());
    let (m, s): (Vec<i32>, Vec<i32>) = (0..6).map(|_| qm(0.004)).unzip();
    let x = rng.i8s(150);
    let twice = 2.0 * 0.07f64;
    let (m1, s1) = qm(0.05 / twice);
    let (m2, s2) = qm(0.07 / twice);
    let (mo, so) = qm(twice / ((1 << 20) as f64 * 0.05));
    let ap = AddParams {
        input1_multiplier: m1,
        input1_shift: s1,
        input2_multiplier: m2,
        input2_shift: s2,
        output_multiplier: mo,
        output_shift: so,
        left_shift: 20,
    };
    let mut b = PlanBuilder::new(Precision::Int8);
    let xt = b.add_activation(DType::I8, &[1, 5, 5, 6], 0, qx);
    let ht = b.add_activation(DType::I8, &[1, 5, 5, 6], 160, qh);
    let yt = b.add_activation(DType::I8, &[1, 5, 5, 6], 0, qx);
    let mut conv = cv.op(xt, ht, b.add_weights_i8(&cv.weight_dims(), &w), NONE);
    conv.multipliers = b.add_i32_array(&m);
    conv.shifts = b.add_i32_array(&s);
    b.add_op(conv);
    let mut add = OpDesc::new(OpKind::Add, xt, yt);
    add.input2 = ht;
    add.add = ap;
    b.add_op(add);
    b.set_input(xt).set_output(yt).set_arena_size(320);
    let bytes = b.finish_checked().unwrap();
    let plan = Plan::parse(&bytes).unwrap();
    let engine = Engine::new(&plan);
    let mut arena = vec![0u8; engine.arena_size()];
    engine
        .input_mut(&mut arena)
        .unwrap()
        .copy_from_slice(&bytes_i8(&x));
    for i in 0..engine.op_count() {
        engine.run_op(&mut arena, i).unwrap();
    }
    assert!(engine.run_op(&mut arena, 2).is_err());
    let got = as_i8(engine.output(&arena).unwrap());

    let mut h = vec![0i8; 150];
    cv.each(|oy, ox, oc, taps| {
        let acc = taps
            .iter()
            .fold(0i64, |a, &(xi, wi)| a + (x[xi] as i64 - 10) * w[wi] as i64);
        h[(oy * 5 + ox) * 6 + oc] = requant(acc, m[oc], s[oc], -20, -128, 127);
    });
    let want: Vec<i8> = x
        .iter()
        .zip(&h)
        .map(|(&a, &b)| {
            let a = mbqm((a as i32 - 10) << 20, m1, s1);
            let b = mbqm((b as i32 + 20) << 20, m2, s2);
            (mbqm(a + b, mo, so) + 10).clamp(-128, 127) as i8
        })
        .collect();
    assert_eq!(got, want);
}
