//! The workload of `scripts/engine-aarch64.sh insns`: one int8 3x3 conv,
//! 16x16x32 -> 16x16x32 (stride 1, padding 1), through a real single-op plan
//! with the scratch the plan writer sizes. The script runs it under
//! qemu-aarch64 with an instruction trace, once with the layer and once
//! without, and divides the difference by the multiply-accumulates.
//!
//! `neon_insns macs` prints the layer's multiply-accumulates;
//! `neon_insns auto|portable RUNS [f32]` builds the plan and runs it `RUNS`
//! times (0: everything but the layer) on that kernel path; with `f32`, the
//! same conv as an f32 plan (f32 weights, bias and activations).

use edgefit_engine::{
    DType, Engine, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant,
};

const H: u32 = 16;
const C: u32 = 32;
const OC: u32 = 32;
const K: u32 = 3;

fn plan(f32_plan: bool) -> Vec<u8> {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng as u8
    };
    if f32_plan {
        return plan_f32(&mut next);
    }
    let mut b = PlanBuilder::new(Precision::Int8);
    let n_in = H * H * C;
    let x = b.add_activation(DType::I8, &[1, H, H, C], 0, Quant::new(0.05, 3));
    let out_at = n_in.div_ceil(16) * 16;
    let y = b.add_activation(DType::I8, &[1, H, H, OC], out_at, Quant::new(0.1, -2));
    let mut op = OpDesc::new(OpKind::Conv2d, x, y);
    let n_w = (OC * K * K * C) as usize;
    let w: Vec<i8> = (0..n_w).map(|_| (next() as i8).max(-127)).collect();
    op.weights = b.add_weights_i8(&[OC, K, K, C], &w);
    (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (K as u16, K as u16, 1, 1);
    (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
    let m = edgefit_engine::requant::quantize_multiplier(0.5 / ((K * K * C) as f64).sqrt() / 60.0);
    op.multipliers = b.add_i32_array(&vec![m.0; OC as usize]);
    op.shifts = b.add_i32_array(&vec![m.1; OC as usize]);
    op.bias = b.add_bias_i32(&vec![100; OC as usize]);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size(out_at + H * H * OC);
    b.finish_checked().expect("valid plan")
}

/// The same conv with f32 weights (in [-1, 1)), bias and activations.
fn plan_f32(next: &mut impl FnMut() -> u8) -> Vec<u8> {
    let mut b = PlanBuilder::new(Precision::F32);
    let n_in = H * H * C;
    let x = b.add_activation(DType::F32, &[1, H, H, C], 0, Quant::NONE);
    let out_at = n_in * 4;
    let y = b.add_activation(DType::F32, &[1, H, H, OC], out_at, Quant::NONE);
    let mut op = OpDesc::new(OpKind::Conv2d, x, y);
    let n_w = (OC * K * K * C) as usize;
    let w: Vec<f32> = (0..n_w).map(|_| (next() as i8) as f32 / 128.0).collect();
    op.weights = b.add_weights_f32(&[OC, K, K, C], &w);
    (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (K as u16, K as u16, 1, 1);
    (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
    op.bias = b.add_bias_f32(&vec![0.25; OC as usize]);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size(out_at + H * H * OC * 4);
    b.finish_checked().expect("valid plan")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let macs = (H * H * OC * K * K * C) as u64;
    let kernels = match args.get(1).map(String::as_str) {
        Some("macs") => {
            println!("{macs}");
            return;
        }
        Some("auto") => KernelPath::Auto,
        Some("portable") => KernelPath::Portable,
        _ => {
            eprintln!("usage: neon_insns macs | auto RUNS [f32] | portable RUNS [f32]");
            std::process::exit(2);
        }
    };
    let runs: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1);
    let f32_plan = args.get(3).map(String::as_str) == Some("f32");
    let bytes = plan(f32_plan);
    let plan = Plan::parse(&bytes).expect("parses");
    let engine = Engine::with_kernels(&plan, kernels);
    let mut arena = edgefit_engine::AlignedBytes::zeroed(engine.arena_size());
    let input = engine.input_mut(&mut arena).unwrap();
    if f32_plan {
        for (i, v) in input.chunks_exact_mut(4).enumerate() {
            let b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
            v.copy_from_slice(&((b as i8) as f32 / 64.0).to_le_bytes());
        }
    } else {
        for (i, v) in input.iter_mut().enumerate() {
            *v = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
        }
    }
    for _ in 0..runs {
        engine.run(&mut arena).unwrap();
    }
    let sum = engine
        .output(&arena)
        .unwrap()
        .iter()
        .fold(0u32, |a, &v| a.wrapping_mul(31).wrapping_add(v as u32));
    println!(
        "{} ({} kernels, scratch {} bytes): {macs} MACs x {runs}, output hash {sum:08x}",
        kernels.simd_name(),
        if kernels == KernelPath::Portable {
            "portable"
        } else {
            "fast"
        },
        plan.scratch_bytes()
    );
}
