//! int8 kernels, run through real single-op plans, against naive references
//! written from the spec (bit-exact comparison).
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::{
    Activation, AddParams, DType, OpDesc, OpKind, PlanBuilder, Precision, Quant, NONE,
};

/// A per-channel multiplier that keeps outputs mostly inside int8.
fn channel_multiplier(rng: &mut Rng, taps: usize) -> (i32, i32) {
    qm(rng.range(3, 30) as f64 / 1000.0 / (taps as f64).sqrt())
}

fn conv_case(rng: &mut Rng, cv: Conv, with_bias: bool, act: Activation) {
    let (oh, ow) = cv.out_hw();
    let in_q = Quant::new(0.05, rng.range(-20, 20) as i32);
    let out_q = Quant::new(0.1, rng.range(-10, 10) as i32);
    let x = rng.i8s(cv.h * cv.w * cv.c);
    let w = rng.weights_i8(cv.weight_len());
    let bias: Vec<i32> = (0..cv.oc).map(|_| rng.range(-5000, 5000) as i32).collect();
    let taps = cv.kh * cv.kw * if cv.depthwise { 1 } else { cv.c };
    let (mut ms, mut ss): (Vec<i32>, Vec<i32>) =
        (0..cv.oc).map(|_| channel_multiplier(rng, taps)).unzip();
    if cv.oc > 1 {
        // One channel with a left shift, to cover positive shifts.
        ms[1] = rng.range(1 << 30, i32::MAX as i64) as i32;
        ss[1] = 1;
    }
    let (lo, hi) = match act {
        Activation::None => (-128, 127),
        Activation::Relu => (out_q.zero_point.max(-128), 127),
        Activation::Clip => (out_q.zero_point - 20, out_q.zero_point + 40),
    };

    let mut b = PlanBuilder::new(Precision::Int8);
    let mut a = ArenaAlloc::default();
    let xt = act_tensor(&mut b, &mut a, &[1, cv.h, cv.w, cv.c], in_q);
    let yt = act_tensor(&mut b, &mut a, &[1, oh, ow, cv.oc], out_q);
    let wt = b.add_weights_i8(&cv.weight_dims(), &w);
    let bt = if with_bias {
        b.add_bias_i32(&bias)
    } else {
        NONE
    };
    let mut op = cv.op(xt, yt, wt, bt);
    op.multipliers = b.add_i32_array(&ms);
    op.shifts = b.add_i32_array(&ss);
    op.activation = act;
    op.act_min = lo;
    op.act_max = hi;
    b.add_op(op);
    b.set_input(xt).set_output(yt).set_arena_size(a.next);
    let plan = b.finish_checked().unwrap();
    let got = as_i8(&run(&plan, &bytes_i8(&x)));

    let mut want = vec![0i8; oh * ow * cv.oc];
    cv.each(|oy, ox, oc, taps| {
        let mut acc = if with_bias { bias[oc] as i64 } else { 0 };
        for &(xi, wi) in taps {
            acc += (x[xi] as i64 - in_q.zero_point as i64) * w[wi] as i64;
        }
        want[(oy * ow + ox) * cv.oc + oc] = requant(acc, ms[oc], ss[oc], out_q.zero_point, lo, hi);
    });
    assert_eq!(got, want, "{cv:?}");
    // Without an activation, most outputs must come from requantisation
    // rather than the clamp, or the case proves little.
    // (Channel 1 has the deliberately large left-shift multiplier.)
    let plain: Vec<i32> = (0..want.len())
        .filter(|i| cv.oc == 1 || i % cv.oc != 1)
        .map(|i| want[i] as i32)
        .collect();
    let inside = plain.iter().filter(|&&v| v > lo && v < hi).count();
    let checked = act == Activation::None && plain.len() >= 8;
    assert!(
        !checked || inside * 2 >= plain.len(),
        "mostly clamped: {cv:?} {plain:?}"
    );
}

fn act_tensor(b: &mut PlanBuilder, a: &mut ArenaAlloc, dims: &[usize], q: Quant) -> u32 {
    let d: Vec<u32> = dims.iter().map(|&v| v as u32).collect();
    act(b, a, DType::I8, &d, q)
}

fn conv(h: usize, w: usize, c: usize, oc: usize, k: (usize, usize), s: (usize, usize)) -> Conv {
    Conv {
        h,
        w,
        c,
        oc,
        kh: k.0,
        kw: k.1,
        sh: s.0,
        sw: s.1,
        pads: [0; 4],
        depthwise: false,
    }
}

#[test]
fn conv_named_cases() {
    let mut rng = Rng(1);
    let same = |mut c: Conv, p: [usize; 4]| {
        c.pads = p;
        c
    };
    let dw = |mut c: Conv| {
        c.depthwise = true;
        c.oc = c.c;
        c
    };
    let cases = [
        same(conv(7, 7, 3, 8, (3, 3), (1, 1)), [1; 4]),
        // TF "SAME" with stride 2 pads bottom/right only.
        same(conv(8, 8, 5, 6, (3, 3), (2, 2)), [0, 0, 1, 1]),
        // ResNet projection shortcut: 1x1 stride 2.
        conv(7, 7, 16, 12, (1, 1), (2, 2)),
        same(conv(6, 5, 2, 3, (5, 5), (1, 1)), [2; 4]),
        // ResNet stem: 7x7 stride 2 pad 3.
        same(conv(12, 12, 3, 8, (7, 7), (2, 2)), [3; 4]),
        // Long rows: the SIMD dot path.
        same(conv(5, 5, 40, 4, (3, 3), (1, 1)), [1; 4]),
        conv(4, 9, 3, 2, (1, 3), (1, 2)),
        // Padding larger than the kernel reach: border outputs are bias only.
        same(conv(3, 3, 2, 2, (3, 3), (1, 1)), [3, 2, 3, 2]),
        dw(same(conv(6, 6, 10, 0, (3, 3), (1, 1)), [1; 4])),
        // More channels than one accumulator block (64).
        dw(same(conv(5, 5, 70, 0, (3, 3), (2, 2)), [1; 4])),
        dw(conv(4, 4, 3, 0, (1, 1), (1, 1))),
    ];
    for (i, cv) in cases.into_iter().enumerate() {
        let act = [Activation::None, Activation::Relu, Activation::Clip][i % 3];
        conv_case(&mut rng, cv, i % 4 != 3, act);
    }
}

#[test]
fn conv_random_cases() {
    let mut rng = Rng(0xC0FFEE);
    for i in 0..60 {
        let k = (rng.range(1, 5) as usize, rng.range(1, 5) as usize);
        let s = (rng.range(1, 3) as usize, rng.range(1, 3) as usize);
        let h = rng.range(k.0 as i64, 9) as usize;
        let w = rng.range(k.1 as i64, 9) as usize;
        let c = rng.range(1, 20) as usize;
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
        let act = [Activation::None, Activation::Relu][i % 2];
        conv_case(&mut rng, cv, i % 5 != 0, act);
    }
}

#[test]
fn dense_random_cases() {
    let mut rng = Rng(77);
    for i in 0..25 {
        let n_in = rng.range(1, 300) as usize;
        let n_out = rng.range(1, 20) as usize;
        let in_q = Quant::new(0.02, rng.range(-128, 127) as i32);
        let out_q = Quant::new(0.2, rng.range(-30, 30) as i32);
        let x = rng.i8s(n_in);
        let w = rng.weights_i8(n_in * n_out);
        let bias: Vec<i32> = (0..n_out).map(|_| rng.range(-9000, 9000) as i32).collect();
        let (ms, ss): (Vec<i32>, Vec<i32>) = (0..n_out)
            .map(|_| channel_multiplier(&mut rng, n_in))
            .unzip();
        let with_bias = i % 3 != 0;

        let mut b = PlanBuilder::new(Precision::Int8);
        let mut a = ArenaAlloc::default();
        let xt = act_tensor(&mut b, &mut a, &[1, n_in], in_q);
        let yt = act_tensor(&mut b, &mut a, &[1, n_out], out_q);
        let mut op = OpDesc::new(OpKind::Dense, xt, yt);
        op.weights = b.add_weights_i8(&[n_out as u32, n_in as u32], &w);
        op.bias = if with_bias {
            b.add_bias_i32(&bias)
        } else {
            NONE
        };
        op.multipliers = b.add_i32_array(&ms);
        op.shifts = b.add_i32_array(&ss);
        b.add_op(op);
        b.set_input(xt).set_output(yt).set_arena_size(a.next);
        let got = as_i8(&run(&b.finish_checked().unwrap(), &bytes_i8(&x)));

        let want: Vec<i8> = (0..n_out)
            .map(|o| {
                let mut acc = if with_bias { bias[o] as i64 } else { 0 };
                for k in 0..n_in {
                    acc += (x[k] as i64 - in_q.zero_point as i64) * w[o * n_in + k] as i64;
                }
                requant(acc, ms[o], ss[o], out_q.zero_point, -128, 127)
            })
            .collect();
        assert_eq!(got, want, "dense {n_in}->{n_out}");
    }
}

/// Pool reference: in-bounds cells only.
fn pool_ref(x: &[i8], cv: &Conv, max: bool, lo: i32, hi: i32) -> Vec<i8> {
    let (oh, ow) = cv.out_hw();
    let mut want = vec![0i8; oh * ow * cv.c];
    cv.each(|oy, ox, c, taps| {
        let vals = taps.iter().map(|&(xi, _)| x[xi] as i64);
        let v = if max {
            vals.max().unwrap()
        } else {
            let n = taps.len() as i64;
            let s: i64 = vals.sum();
            // Round half away from zero.
            let q = (2 * s.abs() + n) / (2 * n);
            if s < 0 {
                -q
            } else {
                q
            }
        };
        want[(oy * ow + ox) * cv.c + c] = v.clamp(lo as i64, hi as i64) as i8;
    });
    want
}

fn pool_case(rng: &mut Rng, cv: Conv, kind: OpKind, relu: bool) {
    let zp = rng.range(-20, 20) as i32;
    let lo = if relu { zp } else { -128 };
    pool_case_clamped(rng, cv, kind, zp, lo, 127);
}

/// A pool with output clamp `lo..=hi`.
fn pool_case_clamped(rng: &mut Rng, cv: Conv, kind: OpKind, zp: i32, lo: i32, hi: i32) {
    let (oh, ow) = cv.out_hw();
    let q = Quant::new(0.1, zp);
    let x = rng.i8s(cv.h * cv.w * cv.c);
    let mut b = PlanBuilder::new(Precision::Int8);
    let mut a = ArenaAlloc::default();
    let xt = act_tensor(&mut b, &mut a, &[1, cv.h, cv.w, cv.c], q);
    let (yt, geom) = if kind == OpKind::GlobalAvgPool {
        let yt = act_tensor(&mut b, &mut a, &[1, 1, 1, cv.c], q);
        let g = Conv {
            kh: cv.h,
            kw: cv.w,
            sh: 1,
            sw: 1,
            pads: [0; 4],
            ..cv
        };
        (yt, g)
    } else {
        (act_tensor(&mut b, &mut a, &[1, oh, ow, cv.c], q), cv)
    };
    let mut op = geom.op(xt, yt, NONE, NONE);
    op.kind = kind;
    op.groups = 1;
    op.act_min = lo;
    op.act_max = hi;
    b.add_op(op);
    b.set_input(xt).set_output(yt).set_arena_size(a.next);
    let got = as_i8(&run(&b.finish_checked().unwrap(), &bytes_i8(&x)));
    let want = pool_ref(
        &x,
        &Conv {
            oc: cv.c,
            depthwise: true,
            ..geom
        },
        kind == OpKind::MaxPool,
        lo,
        hi,
    );
    assert_eq!(got, want, "{kind:?} {cv:?} clamp {lo}..={hi}");
}

#[test]
fn pools() {
    let mut rng = Rng(5);
    let p = |h, w, c, k, s, pads| Conv {
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
    let cases = [
        p(8, 8, 3, 2, 2, [0; 4]),
        // ResNet's 3x3 stride-2 pad-1 max pool.
        p(9, 9, 5, 3, 2, [1; 4]),
        // Average with padding: border windows divide by fewer cells.
        p(5, 6, 4, 3, 1, [1; 4]),
        p(7, 7, 70, 3, 2, [1, 0, 1, 2]),
        p(4, 4, 2, 4, 1, [0; 4]),
    ];
    for (i, cv) in cases.into_iter().enumerate() {
        pool_case(&mut rng, cv, OpKind::MaxPool, i % 2 == 0);
        pool_case(&mut rng, cv, OpKind::AvgPool, i % 2 == 1);
        pool_case(&mut rng, cv, OpKind::GlobalAvgPool, false);
        // Clamps inside and at the ends of the int8 range.
        for (lo, hi) in [
            (-40, 35),
            (-128, -100),
            (90, 127),
            (7, 7),
            (127, 127),
            (-128, -128),
        ] {
            pool_case_clamped(&mut rng, cv, OpKind::MaxPool, 3, lo, hi);
            pool_case_clamped(&mut rng, cv, OpKind::AvgPool, -5, lo, hi);
        }
    }
}

#[test]
fn avg_pool_rounds_half_away_from_zero() {
    // Two cells: -3 and -4 average to -3.5 -> -4; 3 and 4 -> 4.
    let mut b = PlanBuilder::new(Precision::Int8);
    let mut a = ArenaAlloc::default();
    let xt = act_tensor(&mut b, &mut a, &[1, 1, 2, 2], Quant::NONE);
    let yt = act_tensor(&mut b, &mut a, &[1, 1, 1, 2], Quant::NONE);
    b.add_op(OpDesc::new(OpKind::GlobalAvgPool, xt, yt));
    b.set_input(xt).set_output(yt).set_arena_size(a.next);
    let got = run(&b.finish_checked().unwrap(), &bytes_i8(&[-3, 3, -4, 4]));
    assert_eq!(as_i8(&got), vec![-4, 4]);
}

fn add_ref(x1: &[i8], x2: &[i8], zp: [i32; 3], p: &AddParams, lo: i32) -> Vec<i8> {
    x1.iter()
        .zip(x2)
        .map(|(&a, &b)| {
            let a = (a as i32 - zp[0]) << p.left_shift;
            let b = (b as i32 - zp[1]) << p.left_shift;
            let a = mbqm(a, p.input1_multiplier, p.input1_shift);
            let b = mbqm(b, p.input2_multiplier, p.input2_shift);
            let v = mbqm(a + b, p.output_multiplier, p.output_shift) + zp[2];
            v.clamp(lo, 127) as i8
        })
        .collect()
}

/// `layout`: 0 = three regions, 1 = out aliases input 1, 2 = out aliases
/// input 2, 3 = both inputs are one tensor, 4 = all three are one region.
fn add_case(rng: &mut Rng, layout: u8, relu: bool) {
    let dims = [1u32, 3, 4, 5];
    let n = 60;
    let q1 = Quant::new(0.05, rng.range(-30, 30) as i32);
    let q2 = Quant::new(0.08, rng.range(-30, 30) as i32);
    let qo = Quant::new(0.11, rng.range(-30, 30) as i32);
    let p = add_params(q1.scale as f64, q2.scale as f64, qo.scale as f64);
    let x1 = rng.i8s(n);
    let mut x2 = rng.i8s(n);
    let lo = if relu { qo.zero_point } else { -128 };

    let mut b = PlanBuilder::new(Precision::Int8);
    // Input 1 at 0, input 2 at 64, output at 128 unless aliased.
    let t1 = b.add_activation(DType::I8, &dims, 0, q1);
    let (t2, zp2) = if layout >= 3 {
        x2 = x1.clone();
        (t1, q1.zero_point)
    } else {
        (b.add_activation(DType::I8, &dims, 64, q2), q2.zero_point)
    };
    let out_off = match layout {
        1 | 4 => 0,
        2 => 64,
        _ => 128,
    };
    let to = b.add_activation(DType::I8, &dims, out_off, qo);
    let mut op = OpDesc::new(OpKind::Add, t1, to);
    op.input2 = t2;
    op.add = if layout >= 3 {
        add_params(q1.scale as f64, q1.scale as f64, qo.scale as f64)
    } else {
        p
    };
    op.activation = if relu {
        Activation::Relu
    } else {
        Activation::None
    };
    op.act_min = lo;
    b.add_op(op);
    b.set_output(to).set_arena_size(192);

    let plan = b.finish_checked().unwrap();
    let parsed = edgefit_engine::Plan::parse(&plan).unwrap();
    let engine = edgefit_engine::Engine::new(&parsed);
    let mut arena = [0u8; 193];
    let arena = &mut arena[1..];
    arena[..n].copy_from_slice(&bytes_i8(&x1));
    if layout < 3 {
        arena[64..64 + n].copy_from_slice(&bytes_i8(&x2));
    }
    engine.run(arena).unwrap();
    let got = as_i8(engine.output(arena).unwrap());
    let want = add_ref(&x1, &x2, [q1.zero_point, zp2, qo.zero_point], &op.add, lo);
    assert_eq!(got, want, "layout {layout}");
}

#[test]
fn add_all_layouts() {
    let mut rng = Rng(99);
    for layout in 0..5 {
        add_case(&mut rng, layout, false);
        add_case(&mut rng, layout, true);
    }
}

#[test]
fn reshape_copies_or_aliases() {
    let mut rng = Rng(3);
    let x = rng.i8s(12);
    // Disjoint, partly overlapping (memmove) and identical (a view).
    for off in [0, 8, 16] {
        let mut b = PlanBuilder::new(Precision::Int8);
        let q = Quant::new(0.1, 4);
        let xt = b.add_activation(DType::I8, &[1, 2, 2, 3], 16, q);
        let yt = b.add_activation(DType::I8, &[1, 12], off, q);
        b.add_op(OpDesc::new(OpKind::Reshape, xt, yt));
        b.set_input(xt).set_output(yt).set_arena_size(28);
        let got = run(&b.finish_checked().unwrap(), &bytes_i8(&x));
        assert_eq!(as_i8(&got), x);
    }
}
