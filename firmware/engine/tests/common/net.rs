//! The small conv -> relu -> maxpool -> reshape -> dense network shared by
//! the end-to-end and robustness tests.

use super::*;
use edgefit_engine::{Activation, OpDesc, OpKind, PlanBuilder, Precision, Quant, NONE};

pub const CONV: Conv = Conv {
    h: 8,
    w: 8,
    c: 3,
    oc: 4,
    kh: 3,
    kw: 3,
    sh: 1,
    sw: 1,
    pads: [1; 4],
    depthwise: false,
};
pub const POOL: Conv = Conv {
    h: 8,
    w: 8,
    c: 4,
    oc: 4,
    kh: 2,
    kw: 2,
    sh: 2,
    sw: 2,
    pads: [0; 4],
    depthwise: true,
};
pub const CLASSES: usize = 10;

/// conv 3x3 (+ReLU) -> maxpool 2x2 -> reshape -> dense, with the arena laid
/// out as a planner would: x and the pool output share offset 0, the conv
/// and dense outputs offset 256, and the reshape is a view (same offset).
pub struct Net {
    pub plan: Vec<u8>,
}

pub fn build(p: Precision, w1: &[f32], b1: &[f32], w2: &[f32], b2: &[f32], q: Option<&Q8>) -> Net {
    let mut b = PlanBuilder::new(p);
    let (ad, size) = (p.activation_dtype(), p.activation_dtype().size() as u32);
    let quant = |i: usize| q.map_or(Quant::NONE, |q| q.act[i]);
    let x = b.add_activation(ad, &[1, 8, 8, 3], 0, quant(0));
    let c1 = b.add_activation(ad, &[1, 8, 8, 4], 256 * size, quant(1));
    let p1 = b.add_activation(ad, &[1, 4, 4, 4], 0, quant(1));
    let r1 = b.add_activation(ad, &[1, 64], 0, quant(1));
    let y = b.add_activation(ad, &[1, CLASSES as u32], 256 * size, quant(2));
    let (wt1, bt1, wt2, bt2) = match (p, q) {
        (Precision::Int8, Some(q)) => (
            b.add_weights_i8(&CONV.weight_dims(), &q.w1),
            b.add_bias_i32(&q.b1),
            b.add_weights_i8(&[CLASSES as u32, 64], &q.w2),
            b.add_bias_i32(&q.b2),
        ),
        (Precision::F16, _) => (
            b.add_weights_f16(&CONV.weight_dims(), w1),
            b.add_bias_f32(b1),
            b.add_weights_f16(&[CLASSES as u32, 64], w2),
            b.add_bias_f32(b2),
        ),
        _ => (
            b.add_weights_f32(&CONV.weight_dims(), w1),
            b.add_bias_f32(b1),
            b.add_weights_f32(&[CLASSES as u32, 64], w2),
            b.add_bias_f32(b2),
        ),
    };
    let mut conv = CONV.op(x, c1, wt1, bt1);
    conv.activation = Activation::Relu;
    let mut pool = POOL.op(c1, p1, NONE, NONE);
    pool.kind = OpKind::MaxPool;
    pool.groups = 1;
    let mut dense = OpDesc::new(OpKind::Dense, r1, y);
    dense.weights = wt2;
    dense.bias = bt2;
    if let Some(q) = q {
        conv.multipliers = b.add_i32_array(&q.m1);
        conv.shifts = b.add_i32_array(&q.s1);
        conv.act_min = q.act[1].zero_point;
        pool.act_min = q.act[1].zero_point;
        dense.multipliers = b.add_i32_array(&q.m2);
        dense.shifts = b.add_i32_array(&q.s2);
    }
    b.add_op(conv);
    b.add_op(pool);
    b.add_op(OpDesc::new(OpKind::Reshape, p1, r1));
    b.add_op(dense);
    b.set_input(x)
        .set_output(y)
        .set_arena_size(256 * size + 256 * size)
        .set_plan_id(0x0ED6_EF17);
    Net {
        plan: b.finish_checked().unwrap(),
    }
}

/// Quantised parameters of the int8 network.
pub struct Q8 {
    act: [Quant; 3],
    w1: Vec<i8>,
    b1: Vec<i32>,
    m1: Vec<i32>,
    s1: Vec<i32>,
    w2: Vec<i8>,
    b2: Vec<i32>,
    m2: Vec<i32>,
    s2: Vec<i32>,
}

/// Builds the int8 test network; also used by the robustness tests.
pub fn int8_net(rng: &mut Rng) -> (Vec<u8>, Vec<i8>, Vec<i8>) {
    let q = Q8 {
        act: [
            Quant::new(0.02, -5),
            Quant::new(0.05, -128),
            Quant::new(0.1, 3),
        ],
        w1: rng.weights_i8(CONV.weight_len()),
        b1: (0..4).map(|_| rng.range(-3000, 3000) as i32).collect(),
        m1: (0..4)
            .map(|_| qm(0.0008 + rng.range(0, 8) as f64 * 1e-4).0)
            .collect(),
        s1: vec![-6; 4],
        w2: rng.weights_i8(CLASSES * 64),
        b2: (0..CLASSES)
            .map(|_| rng.range(-3000, 3000) as i32)
            .collect(),
        m2: (0..CLASSES).map(|_| qm(0.6).0).collect(),
        s2: vec![-9; CLASSES],
    };
    let net = build(Precision::Int8, &[], &[], &[], &[], Some(&q));
    let x = rng.i8s(8 * 8 * 3);

    // Reference: layer by layer.
    let (zx, zc, zy) = (
        q.act[0].zero_point,
        q.act[1].zero_point,
        q.act[2].zero_point,
    );
    let mut c1 = vec![0i8; 8 * 8 * 4];
    CONV.each(|oy, ox, oc, taps| {
        let acc = taps.iter().fold(q.b1[oc] as i64, |a, &(xi, wi)| {
            a + (x[xi] as i64 - zx as i64) * q.w1[wi] as i64
        });
        c1[(oy * 8 + ox) * 4 + oc] = requant(acc, q.m1[oc], q.s1[oc], zc, zc, 127);
    });
    let mut p1 = [0i8; 4 * 4 * 4];
    POOL.each(|oy, ox, c, taps| {
        p1[(oy * 4 + ox) * 4 + c] = taps.iter().map(|&(xi, _)| c1[xi]).max().unwrap();
    });
    let y: Vec<i8> = (0..CLASSES)
        .map(|o| {
            let acc = (0..64).fold(q.b2[o] as i64, |a, k| {
                a + (p1[k] as i64 - zc as i64) * q.w2[o * 64 + k] as i64
            });
            requant(acc, q.m2[o], q.s2[o], zy, -128, 127)
        })
        .collect();
    (net.plan, x, y)
}
