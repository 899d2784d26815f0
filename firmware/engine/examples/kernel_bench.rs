//! Rough kernel timings on the host: an int8 3x3 conv (56x56x64 -> 64, a
//! ResNet stage-1 layer) through a real plan, and the int8 dot product with
//! and without SIMD.
//!
//! `cargo run --release -p edgefit-engine --features std --example kernel_bench`

use std::time::Instant;

use edgefit_engine::kernels::dot;
use edgefit_engine::{DType, Engine, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant};

fn main() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    };
    let (h, w, c, oc) = (56u32, 56u32, 64u32, 64u32);
    let n_in = (h * w * c) as usize;
    for precision in [Precision::Int8, Precision::F32] {
        let act = precision.activation_dtype();
        let mut b = PlanBuilder::new(precision);
        let x = b.add_activation(act, &[1, h, w, c], 0, Quant::NONE);
        let y = b.add_activation(act, &[1, h, w, oc], (n_in * act.size()) as u32, Quant::NONE);
        let weights = (oc * 9 * c) as usize;
        let mut op = OpDesc::new(OpKind::Conv2d, x, y);
        op.weights = match precision {
            Precision::Int8 => {
                let v: Vec<i8> = (0..weights).map(|_| (next() as i8).max(-127)).collect();
                b.add_weights_i8(&[oc, 3, 3, c], &v)
            }
            _ => {
                let v: Vec<f32> = (0..weights).map(|_| next() as f32 / 255.0 - 0.5).collect();
                b.add_weights_f32(&[oc, 3, 3, c], &v)
            }
        };
        (op.kernel_h, op.kernel_w) = (3, 3);
        (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
        if precision == Precision::Int8 {
            op.multipliers = b.add_i32_array(&vec![1 << 30; oc as usize]);
            op.shifts = b.add_i32_array(&vec![-10; oc as usize]);
        }
        b.add_op(op);
        b.set_input(x)
            .set_output(y)
            .set_arena_size((2 * n_in * act.size()) as u32);
        let bytes = b.finish_checked().expect("valid plan");
        let plan = Plan::parse(&bytes).expect("parses");
        let engine = Engine::new(&plan);
        let mut arena = vec![0u8; engine.arena_size()];
        for v in engine.input_mut(&mut arena).unwrap().iter_mut() {
            *v = if act == DType::I8 { next() } else { 0 };
        }
        let runs = 5;
        let t = Instant::now();
        for _ in 0..runs {
            engine.run(&mut arena).unwrap();
        }
        let per = t.elapsed().as_secs_f64() / runs as f64;
        let macs = (h * w * oc * 9 * c) as f64;
        println!(
            "{precision:?} conv3x3 56x56x64->64: {:.1} ms, {:.2} GMAC/s",
            per * 1e3,
            macs / per / 1e9
        );
    }

    let xs: Vec<u8> = (0..576).map(|_| next()).collect();
    let ws: Vec<u8> = (0..576).map(|_| next()).collect();
    let iters = 200_000;
    let mut sink = 0i32;
    let t = Instant::now();
    for i in 0..iters {
        sink = sink.wrapping_add(dot::dot_i8_portable(&xs, &ws, i & 7));
    }
    let portable = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..iters {
        sink = sink.wrapping_add(dot::dot_i8(&xs, &ws, i & 7));
    }
    let dispatched = t.elapsed().as_secs_f64();
    println!(
        "dot_i8 len 576: portable {:.0} ns, dispatched {:.0} ns (SIMD: {}) [{sink}]",
        portable / iters as f64 * 1e9,
        dispatched / iters as f64 * 1e9,
        dot::simd_available()
    );
}
