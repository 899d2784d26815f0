//! The SIMD (`KernelPath::Auto`) and portable kernels must give identical
//! bytes: every int8 kernel family on random shapes (odd sizes, padding,
//! strides, depthwise, channel counts that are not multiples of the SIMD
//! widths, large reductions), and whole multi-op plans.
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::{
    Activation, DType, Engine, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant,
    NONE,
};

/// A single-conv int8 plan with random weights, bias and requantisation.
/// Returns the plan and a random input.
fn conv_plan(rng: &mut Rng, cv: Conv, zp_in: i32, scratch: Option<u32>) -> (Vec<u8>, Vec<u8>) {
    let (oh, ow) = cv.out_hw();
    let mut b = PlanBuilder::new(Precision::Int8);
    let mut a = ArenaAlloc::default();
    let dims = |v: &[usize]| v.iter().map(|&d| d as u32).collect::<Vec<u32>>();
    let qx = Quant::new(0.05, zp_in);
    let qy = Quant::new(0.1, rng.range(-20, 20) as i32);
    let xt = act(&mut b, &mut a, DType::I8, &dims(&[1, cv.h, cv.w, cv.c]), qx);
    let yt = act(&mut b, &mut a, DType::I8, &dims(&[1, oh, ow, cv.oc]), qy);
    let mut w = rng.weights_i8(cv.weight_len());
    if rng.next().is_multiple_of(4) {
        // -128 is outside the symmetric range but a valid byte: keep exact.
        w.iter_mut().step_by(7).for_each(|v| *v = -128);
    }
    let wt = b.add_weights_i8(&cv.weight_dims(), &w);
    let bt = if rng.next().is_multiple_of(3) {
        NONE
    } else {
        let bias: Vec<i32> = (0..cv.oc)
            .map(|_| rng.range(-20000, 20000) as i32)
            .collect();
        b.add_bias_i32(&bias)
    };
    let taps = cv.kh * cv.kw * if cv.depthwise { 1 } else { cv.c };
    let (ms, ss): (Vec<i32>, Vec<i32>) = (0..cv.oc)
        .map(|_| qm(rng.range(3, 40) as f64 / 1000.0 / (taps as f64).sqrt()))
        .unzip();
    let mut op = cv.op(xt, yt, wt, bt);
    op.multipliers = b.add_i32_array(&ms);
    op.shifts = b.add_i32_array(&ss);
    if rng.next().is_multiple_of(2) {
        op.activation = Activation::Relu;
        op.act_min = qy.zero_point;
    }
    b.add_op(op);
    b.set_input(xt).set_output(yt).set_arena_size(a.next);
    if let Some(s) = scratch {
        b.set_scratch_bytes(s);
    }
    let x = rng.i8s(cv.h * cv.w * cv.c);
    (b.finish_checked().unwrap(), bytes_i8(&x))
}

/// The reference result of [`conv_plan`]'s plan, from the spec.
fn conv_reference(plan: &[u8], cv: &Conv, x: &[u8]) -> Vec<u8> {
    let p = Plan::parse(plan).unwrap();
    let op = p.op(0).unwrap();
    let (xt, yt) = (p.tensor(op.input).unwrap(), p.tensor(op.output).unwrap());
    let wt = p.tensor(op.weights).unwrap();
    let w = p.weight_bytes(&wt).unwrap();
    let bias = (op.bias != NONE).then(|| {
        let bt = p.tensor(op.bias).unwrap();
        p.i32_array(bt.offset, cv.oc).unwrap()
    });
    let ms = p.i32_array(op.multipliers, cv.oc).unwrap();
    let ss = p.i32_array(op.shifts, cv.oc).unwrap();
    let (oh, ow) = cv.out_hw();
    let mut want = vec![0u8; oh * ow * cv.oc];
    let zx = xt.quant.zero_point as i64;
    cv.each(|oy, ox, oc, taps| {
        let mut acc = bias.map_or(0, |b| b.get(oc) as i64);
        for &(xi, wi) in taps {
            acc += (x[xi] as i8 as i64 - zx) * w[wi] as i8 as i64;
        }
        let v = requant(
            acc,
            ms.get(oc),
            ss.get(oc),
            yt.quant.zero_point,
            op.act_min,
            op.act_max,
        );
        want[(oy * ow + ox) * cv.oc + oc] = v as u8;
    });
    want
}

fn random_conv(rng: &mut Rng, depthwise: bool, big: bool) -> Conv {
    let k = if rng.next().is_multiple_of(4) {
        (1, 1)
    } else {
        (rng.range(1, 7) as usize, rng.range(1, 7) as usize)
    };
    let s = (rng.range(1, 2) as usize, rng.range(1, 2) as usize);
    let hi = if big { 20 } else { 11 };
    let h = rng.range(k.0 as i64, hi) as usize;
    let w = rng.range(k.1 as i64, hi) as usize;
    let c = if big {
        rng.range(1, 300) as usize
    } else {
        rng.range(1, 40) as usize
    };
    let oc = if depthwise {
        c
    } else if big {
        rng.range(1, 140) as usize
    } else {
        rng.range(1, 40) as usize
    };
    let pads = [
        rng.range(0, k.0 as i64 - 1) as usize,
        rng.range(0, k.1 as i64 - 1) as usize,
        rng.range(0, k.0 as i64 - 1) as usize,
        rng.range(0, k.1 as i64 - 1) as usize,
    ];
    Conv {
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
    }
}

fn check_conv(rng: &mut Rng, cv: Conv, zp: i32, scratch: Option<u32>) {
    let (plan, x) = conv_plan(rng, cv, zp, scratch);
    let got = run_both(&plan, &x, &format!("{cv:?} zp {zp}"));
    assert!(
        got == conv_reference(&plan, &cv, &x),
        "{cv:?} zp {zp}: differs from the reference"
    );
}

#[test]
fn int8_conv_random_shapes_simd_equals_portable() {
    let mut rng = Rng(0x5EED_0001);
    for i in 0..150 {
        let cv = random_conv(&mut rng, i % 4 == 0, i % 5 == 1);
        let zp = match i % 6 {
            0 => -128,
            1 => 127,
            _ => rng.range(-128, 127) as i32,
        };
        check_conv(&mut rng, cv, zp, None);
    }
}

#[test]
fn int8_conv_resnet_like_shapes() {
    let mut rng = Rng(0x5EED_0002);
    let c = |h: usize, c: usize, oc: usize, k: usize, s: usize, p: usize| Conv {
        h,
        w: h,
        c,
        oc,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        pads: [p; 4],
        depthwise: false,
    };
    for cv in [
        c(14, 64, 64, 3, 1, 1),
        c(13, 64, 72, 1, 1, 0),
        c(15, 33, 20, 3, 2, 1),
        c(23, 3, 64, 7, 2, 3),
        c(7, 512, 37, 3, 1, 1),
        c(9, 130, 17, 1, 2, 0),
        Conv {
            pads: [0, 0, 1, 1],
            ..c(10, 24, 24, 3, 2, 0)
        },
    ] {
        let zp = rng.range(-128, 127) as i32;
        check_conv(&mut rng, cv, zp, None);
        // Without scratch the fast kernels fall back; still identical.
        let zp = rng.range(-128, 127) as i32;
        check_conv(&mut rng, cv, zp, Some(0));
    }
}

/// Small images: every pixel count from 1 to 64 (the GEMM splits the
/// pixels into tiles of nearly equal size), 1x1 (stride 1 and 2) and 3x3,
/// channel counts around the 16-channel panel width.
#[test]
fn int8_conv_small_images_every_tile_split() {
    let mut rng = Rng(0x5EED_0006);
    for pixels in 1..=64usize {
        let h = (1..=8)
            .rev()
            .find(|d| pixels.is_multiple_of(*d))
            .unwrap_or(1);
        let w = pixels / h;
        let (k, s) = [(1, 1), (1, 2), (3, 1), (3, 2)][pixels % 4];
        let (ih, iw) = ((h - 1) * s + k, (w - 1) * s + k);
        let c = [1, 7, 16, 33, 64, 130][pixels % 6];
        let oc = [1, 15, 16, 17, 48, 100, 257][pixels % 7];
        let cv = Conv {
            h: ih,
            w: iw,
            c,
            oc,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            pads: [0; 4],
            depthwise: false,
        };
        let zp = rng.range(-128, 127) as i32;
        check_conv(&mut rng, cv, zp, None);
    }
}

#[test]
fn int8_dense_simd_equals_portable() {
    let mut rng = Rng(0x5EED_0003);
    for i in 0..40 {
        let n_in = rng.range(1, if i % 4 == 0 { 3000 } else { 300 }) as usize;
        let n_out = rng.range(1, 70) as usize;
        let mut b = PlanBuilder::new(Precision::Int8);
        let mut a = ArenaAlloc::default();
        let zp = [-128, 127, rng.range(-128, 127) as i32][i % 3];
        let xt = act(
            &mut b,
            &mut a,
            DType::I8,
            &[1, n_in as u32],
            Quant::new(0.1, zp),
        );
        let yt = act(
            &mut b,
            &mut a,
            DType::I8,
            &[1, n_out as u32],
            Quant::new(0.1, 3),
        );
        let mut op = OpDesc::new(OpKind::Dense, xt, yt);
        op.weights = b.add_weights_i8(&[n_out as u32, n_in as u32], &rng.weights_i8(n_in * n_out));
        if i % 2 == 0 {
            let bias: Vec<i32> = (0..n_out).map(|_| rng.range(-9000, 9000) as i32).collect();
            op.bias = b.add_bias_i32(&bias);
        }
        let (ms, ss): (Vec<i32>, Vec<i32>) = (0..n_out)
            .map(|_| qm(rng.range(3, 30) as f64 / 1000.0 / (n_in as f64).sqrt()))
            .unzip();
        op.multipliers = b.add_i32_array(&ms);
        op.shifts = b.add_i32_array(&ss);
        b.add_op(op);
        b.set_input(xt).set_output(yt).set_arena_size(a.next);
        let plan = b.finish_checked().unwrap();
        run_both(
            &plan,
            &bytes_i8(&rng.i8s(n_in)),
            &format!("dense {n_in}->{n_out}"),
        );
    }
}

#[test]
fn int8_pools_add_reshape_simd_equals_portable() {
    let mut rng = Rng(0x5EED_0004);
    for i in 0..20 {
        let (h, w, c) = (
            rng.range(2, 12) as u32,
            rng.range(2, 12) as u32,
            rng.range(1, 70) as u32,
        );
        let q = Quant::new(0.1, rng.range(-20, 20) as i32);
        let x = rng.i8s((h * w * c) as usize);
        for kind in [OpKind::MaxPool, OpKind::AvgPool, OpKind::GlobalAvgPool] {
            let mut b = PlanBuilder::new(Precision::Int8);
            let mut a = ArenaAlloc::default();
            let xt = act(&mut b, &mut a, DType::I8, &[1, h, w, c], q);
            let mut op = OpDesc::new(kind, xt, 0);
            let ydims = if kind == OpKind::GlobalAvgPool {
                vec![1, c]
            } else {
                let k = (2 + i % 2) as u16;
                (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (k, k, 2, 2);
                (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 0, 1, 1);
                let oh = (h + 2 - k as u32) / 2 + 1;
                let ow = (w + 1 - k as u32) / 2 + 1;
                vec![1, oh, ow, c]
            };
            op.output = act(&mut b, &mut a, DType::I8, &ydims, q);
            let yt = op.output;
            b.add_op(op);
            b.set_input(xt).set_output(yt).set_arena_size(a.next);
            run_both(
                &b.finish_checked().unwrap(),
                &bytes_i8(&x),
                &format!("{kind:?}"),
            );
        }
        // Add (out of place, then in place) and a reshape.
        for in_place in [false, true] {
            let mut b = PlanBuilder::new(Precision::Int8);
            let dims = [1, h, w, c];
            let n = h * w * c;
            let x1 = b.add_activation(DType::I8, &dims, 0, q);
            let x2 = b.add_activation(DType::I8, &dims, n.div_ceil(16) * 16, Quant::new(0.2, 5));
            let out_at = if in_place { 0 } else { 2 * n.div_ceil(16) * 16 };
            let y = b.add_activation(DType::I8, &dims, out_at, Quant::new(0.15, -3));
            let r = b.add_activation(DType::I8, &[1, n], out_at, Quant::new(0.15, -3));
            let mut op = OpDesc::new(OpKind::Add, x1, y);
            op.input2 = x2;
            op.add = add_params(0.1, 0.2, 0.15);
            b.add_op(op);
            b.add_op(OpDesc::new(OpKind::Reshape, y, r));
            b.set_input(x1)
                .set_output(r)
                .set_arena_size(3 * n.div_ceil(16) * 16);
            let plan = b.finish_checked().unwrap();
            // The second input lives in the arena too: fill the whole arena.
            let p = Plan::parse(&plan).unwrap();
            let mut outs = Vec::new();
            for kp in [KernelPath::Auto, KernelPath::NoAvx512, KernelPath::Portable] {
                let engine = Engine::with_kernels(&p, kp);
                let mut arena = vec![0u8; engine.arena_size()];
                let mut r2 = Rng(i as u64 + 1);
                arena.iter_mut().for_each(|v| *v = r2.next() as u8);
                engine.run(&mut arena).unwrap();
                outs.push(engine.output(&arena).unwrap().to_vec());
            }
            assert_eq!(outs[0], outs[2], "add in place {in_place}");
            assert_eq!(outs[1], outs[2], "add in place {in_place} (no AVX-512)");
        }
    }
}

/// A small int8 ResNet-like plan: stem conv, max pool, a bottleneck block
/// (1x1, 3x3, 1x1 + in-place Add, ReLU), a depthwise conv, global pool,
/// reshape, dense. Returns the plan and the input size.
fn int8_resnet_plan(rng: &mut Rng) -> (Vec<u8>, usize) {
    let mut b = PlanBuilder::new(Precision::Int8);
    let mut a = ArenaAlloc::default();
    let q = |rng: &mut Rng| {
        Quant::new(
            0.05 + rng.range(0, 10) as f32 / 100.0,
            rng.range(-30, 30) as i32,
        )
    };
    let mut t = |b: &mut PlanBuilder, dims: &[u32], q: Quant| act(b, &mut a, DType::I8, dims, q);
    let x = t(&mut b, &[1, 33, 33, 3], q(rng));
    let qs = q(rng);
    let stem = t(&mut b, &[1, 17, 17, 24], qs);
    let pool = t(&mut b, &[1, 9, 9, 24], qs);
    let h1 = t(&mut b, &[1, 9, 9, 12], q(rng));
    let h2 = t(&mut b, &[1, 9, 9, 12], q(rng));
    let h3 = t(&mut b, &[1, 9, 9, 24], q(rng));
    let qd = q(rng);
    let dw = t(&mut b, &[1, 9, 9, 24], qd);
    let gap = t(&mut b, &[1, 24], qd);
    let logits = t(&mut b, &[1, 10], q(rng));
    let conv = |b: &mut PlanBuilder, rng: &mut Rng, i, o, cv: Conv| {
        let w = b.add_weights_i8(&cv.weight_dims(), &rng.weights_i8(cv.weight_len()));
        let bias: Vec<i32> = (0..cv.oc).map(|_| rng.range(-3000, 3000) as i32).collect();
        let bt = b.add_bias_i32(&bias);
        let mut op = cv.op(i, o, w, bt);
        let taps = cv.kh * cv.kw * if cv.depthwise { 1 } else { cv.c };
        let (ms, ss): (Vec<i32>, Vec<i32>) = (0..cv.oc)
            .map(|_| qm(rng.range(10, 40) as f64 / 1000.0 / (taps as f64).sqrt()))
            .unzip();
        op.multipliers = b.add_i32_array(&ms);
        op.shifts = b.add_i32_array(&ss);
        op
    };
    let cv = |h, c, oc, k, s, p, depthwise| Conv {
        h,
        w: h,
        c,
        oc,
        kh: k,
        kw: k,
        sh: s,
        sw: s,
        pads: [p; 4],
        depthwise,
    };
    let op = conv(&mut b, rng, x, stem, cv(33, 3, 24, 7, 2, 3, false));
    b.add_op(op);
    let mut mp = OpDesc::new(OpKind::MaxPool, stem, pool);
    (mp.kernel_h, mp.kernel_w, mp.stride_h, mp.stride_w) = (3, 3, 2, 2);
    (mp.pad_top, mp.pad_left, mp.pad_bottom, mp.pad_right) = (1, 1, 1, 1);
    b.add_op(mp);
    let op = conv(&mut b, rng, pool, h1, cv(9, 24, 12, 1, 1, 0, false));
    b.add_op(op);
    let op = conv(&mut b, rng, h1, h2, cv(9, 12, 12, 3, 1, 1, false));
    b.add_op(op);
    let op = conv(&mut b, rng, h2, h3, cv(9, 12, 24, 1, 1, 0, false));
    b.add_op(op);
    let mut add = OpDesc::new(OpKind::Add, h3, h3);
    add.input2 = pool;
    add.add = add_params(0.1, 0.08, 0.12);
    add.activation = Activation::Relu;
    b.add_op(add);
    let op = conv(&mut b, rng, h3, dw, cv(9, 24, 24, 3, 1, 1, true));
    b.add_op(op);
    b.add_op(OpDesc::new(OpKind::GlobalAvgPool, dw, gap));
    let mut d = OpDesc::new(OpKind::Dense, gap, logits);
    d.weights = b.add_weights_i8(&[10, 24], &rng.weights_i8(240));
    d.multipliers = b.add_i32_array(&[qm(0.01).0; 10]);
    d.shifts = b.add_i32_array(&[qm(0.01).1; 10]);
    b.add_op(d);
    b.set_input(x).set_output(logits).set_arena_size(a.next);
    (b.finish_checked().unwrap(), 33 * 33 * 3)
}

#[test]
fn int8_multi_op_plans_simd_equals_portable() {
    let mut rng = Rng(0x5EED_0005);
    // The shared conv/pool/reshape/dense network.
    for _ in 0..5 {
        let (plan, x, want) = common::net::int8_net(&mut rng);
        let got = run_both(&plan, &bytes_i8(&x), "int8 net");
        assert_eq!(as_i8(&got), want);
    }
    for round in 0..5 {
        let (plan, n) = int8_resnet_plan(&mut rng);
        let x = bytes_i8(&rng.i8s(n));
        let got = run_both(&plan, &x, &format!("resnet-like plan {round}"));
        // Not degenerate: the logits vary.
        assert!(got.iter().any(|&v| v != got[0]), "{got:?}");
    }
}

/// Compiled plans named in `EDGEFIT_ENGINE_PLANS` (colon-separated: the
/// bundled models compiled by `edgefit compile`, as
/// `scripts/engine-aarch64.sh` passes them): the SIMD and portable kernels
/// give the same bytes on random inputs. Skipped when unset.
#[test]
fn compiled_plans_simd_equals_portable() {
    let Ok(list) = std::env::var("EDGEFIT_ENGINE_PLANS") else {
        eprintln!("EDGEFIT_ENGINE_PLANS not set; no compiled plans checked");
        return;
    };
    let mut rng = Rng(0x5EED_0007);
    for path in list.split(':').filter(|p| !p.is_empty()) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let plan = Plan::parse(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        let input = plan.input().unwrap();
        let n = input.length as usize;
        for round in 0..4 {
            let x: Vec<u8> = match input.dtype {
                // Images as the bundled models take them: 0..=1.
                DType::F32 => (0..n / 4)
                    .flat_map(|_| (rng.range(0, 255) as f32 / 255.0).to_le_bytes())
                    .collect(),
                _ => (0..n).map(|_| rng.next() as u8).collect(),
            };
            let out = run_both(&bytes, &x, &format!("{path} input {round}"));
            assert!(!out.is_empty());
        }
        eprintln!(
            "{path}: {} and portable kernels agree",
            KernelPath::Auto.simd_name()
        );
    }
}

#[test]
fn engine_reports_its_kernel_path() {
    let (plan, _, _) = common::net::int8_net(&mut Rng(9));
    let p = Plan::parse(&plan).unwrap();
    assert_eq!(Engine::new(&p).kernels(), KernelPath::Auto);
    let portable = Engine::with_kernels(&p, KernelPath::Portable);
    assert_eq!(portable.kernels(), KernelPath::Portable);
    assert!(!portable.uses_simd());
    assert_eq!(
        Engine::new(&p).uses_simd(),
        edgefit_engine::kernels::dot::simd_available()
    );
    assert_eq!(portable.simd_name(), "none");
    assert!(!KernelPath::NoAvx512.uses_vnni());
    assert_eq!(
        KernelPath::Auto.uses_vnni(),
        edgefit_engine::kernels::dot::vnni_available()
    );
    if edgefit_engine::kernels::dot::vnni_available() {
        assert_eq!(Engine::new(&p).simd_name(), "avx512-vnni");
        assert_eq!(KernelPath::NoAvx512.simd_name(), "avx2");
    }
    if cfg!(target_arch = "aarch64") {
        // NEON is part of aarch64; SDOT where the CPU has it.
        let want = if edgefit_engine::kernels::dot::dotprod_available() {
            "neon-dotprod"
        } else {
            "neon"
        };
        assert_eq!(Engine::new(&p).simd_name(), want);
        assert_eq!(KernelPath::NoAvx512.simd_name(), want);
        eprintln!("kernel path on this CPU: {want}");
    }
}
