//! Kernel throughput on the host, through real single-op plans: the
//! representative ResNet-50 layers (56x56 to 7x7) in int8 (SIMD and portable
//! kernels), plus the f32 and f16 float paths of the 3x3, 1x1 and stem layers
//! and the classifier.
//!
//! `cargo run --release -p edgefit-engine --features std --example kernel_bench [filter]`
//!
//! `filter` (optional) keeps only the lines whose label contains it.

use std::time::Instant;

use edgefit_engine::kernels::dot;
use edgefit_engine::{
    DType, Engine, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant,
};

mod common;

/// Random bytes from the shared xorshift.
struct Rng(common::Rng);
impl Rng {
    fn next(&mut self) -> u8 {
        self.0.next() as u8
    }
}

/// One benchmark layer: a conv `(h, w, c) -> oc` with a square kernel, or a
/// dense layer when `dense` is set (`c` inputs, `oc` outputs).
struct Layer {
    name: &'static str,
    h: u32,
    w: u32,
    c: u32,
    oc: u32,
    k: u32,
    stride: u32,
    pad: u32,
    dense: bool,
}

impl Layer {
    fn out_hw(&self) -> (u32, u32) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    fn macs(&self) -> f64 {
        let (oh, ow) = self.out_hw();
        (oh as f64) * (ow as f64) * (self.oc as f64) * (self.k * self.k * self.c) as f64
    }

    fn plan(&self, precision: Precision, rng: &mut Rng) -> Vec<u8> {
        let act = precision.activation_dtype();
        let (oh, ow) = self.out_hw();
        let n_in = (self.h * self.w * self.c) as usize * act.size();
        let mut b = PlanBuilder::new(precision);
        let q_in = Quant::new(0.05, 3);
        let q_out = Quant::new(0.1, -2);
        let (qi, qo) = if act == DType::I8 {
            (q_in, q_out)
        } else {
            (Quant::NONE, Quant::NONE)
        };
        let x = if self.dense {
            b.add_activation(act, &[1, self.c], 0, qi)
        } else {
            b.add_activation(act, &[1, self.h, self.w, self.c], 0, qi)
        };
        let out_off = n_in.div_ceil(16) * 16;
        let y_dims: Vec<u32> = if self.dense {
            vec![1, self.oc]
        } else {
            vec![1, oh, ow, self.oc]
        };
        let y = b.add_activation(act, &y_dims, out_off as u32, qo);
        let n_out: usize = y_dims.iter().map(|&d| d as usize).product::<usize>() * act.size();
        let w_dims: Vec<u32> = if self.dense {
            vec![self.oc, self.c]
        } else {
            vec![self.oc, self.k, self.k, self.c]
        };
        let n_w: usize = w_dims.iter().map(|&d| d as usize).product();
        let kind = if self.dense {
            OpKind::Dense
        } else {
            OpKind::Conv2d
        };
        let mut op = OpDesc::new(kind, x, y);
        op.weights = match precision {
            Precision::Int8 => {
                let v: Vec<i8> = (0..n_w).map(|_| (rng.next() as i8).max(-127)).collect();
                b.add_weights_i8(&w_dims, &v)
            }
            Precision::F16 => {
                let v: Vec<f32> = (0..n_w).map(|_| rng.next() as f32 / 255.0 - 0.5).collect();
                b.add_weights_f16(&w_dims, &v)
            }
            Precision::F32 => {
                let v: Vec<f32> = (0..n_w).map(|_| rng.next() as f32 / 255.0 - 0.5).collect();
                b.add_weights_f32(&w_dims, &v)
            }
        };
        if !self.dense {
            (op.kernel_h, op.kernel_w) = (self.k as u16, self.k as u16);
            (op.stride_h, op.stride_w) = (self.stride as u16, self.stride as u16);
            let p = self.pad as u16;
            (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (p, p, p, p);
        }
        if precision == Precision::Int8 {
            let taps = (self.k * self.k * self.c) as f64;
            let m = edgefit_engine::requant::quantize_multiplier(0.5 / taps.sqrt() / 60.0);
            op.multipliers = b.add_i32_array(&vec![m.0; self.oc as usize]);
            op.shifts = b.add_i32_array(&vec![m.1; self.oc as usize]);
            op.bias = b.add_bias_i32(&vec![100; self.oc as usize]);
        }
        b.add_op(op);
        b.set_input(x)
            .set_output(y)
            .set_arena_size((out_off + n_out) as u32);
        b.finish_checked().expect("valid plan")
    }
}

fn bench(label: &str, layer: &Layer, bytes: &[u8], kernels: KernelPath, rng: &mut Rng) {
    let bytes = edgefit_engine::AlignedBytes::copy_of(bytes);
    let plan = Plan::parse(&bytes).expect("parses");
    let engine = Engine::with_kernels(&plan, kernels);
    let mut arena = edgefit_engine::AlignedBytes::zeroed(engine.arena_size());
    let float = plan.precision() != Precision::Int8;
    for (i, v) in engine.input_mut(&mut arena).unwrap().iter_mut().enumerate() {
        *v = if float {
            // Small finite f32 values, byte by byte.
            [0x00, 0x00, 0x80, 0x3e][i % 4] ^ (rng.next() & 0x0f)
        } else {
            rng.next()
        };
    }
    engine.run(&mut arena).unwrap(); // warm-up
    let mut best = f64::MAX;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (start.elapsed().as_secs_f64() < 1.0 && runs < 200) {
        let t = Instant::now();
        engine.run(&mut arena).unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    println!(
        "{label:<44} {:>9.3} ms  {:>7.2} GMAC/s  (best of {runs}, scratch {} KiB)",
        best * 1e3,
        layer.macs() / best / 1e9,
        plan.scratch_bytes() / 1024,
    );
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let mut rng = Rng(common::Rng(0x1234_5678_9abc_def0));
    let conv = |name, h, c, oc, k, stride, pad| Layer {
        name,
        h,
        w: h,
        c,
        oc,
        k,
        stride,
        pad,
        dense: false,
    };
    let layers = [
        conv("conv3x3 56x56x64->64", 56, 64, 64, 3, 1, 1),
        conv("conv1x1 56x56x64->256", 56, 64, 256, 1, 1, 0),
        conv("conv3x3/2 56x56x128->128", 56, 128, 128, 3, 2, 1),
        conv("conv7x7/2 stem 224x224x3->64", 224, 3, 64, 7, 2, 3),
        conv("conv1x1 7x7x2048->512", 7, 2048, 512, 1, 1, 0),
        conv("conv3x3 7x7x512->512", 7, 512, 512, 3, 1, 1),
        conv("conv3x3 14x14x256->256", 14, 256, 256, 3, 1, 1),
        conv("conv3x3 28x28x128->128", 28, 128, 128, 3, 1, 1),
        Layer {
            name: "dense 2048->1000",
            h: 1,
            w: 1,
            c: 2048,
            oc: 1000,
            k: 1,
            stride: 1,
            pad: 0,
            dense: true,
        },
    ];
    println!(
        "SIMD available: {} ({})",
        dot::simd_available(),
        KernelPath::Auto.simd_name()
    );
    for layer in &layers {
        let bytes = layer.plan(Precision::Int8, &mut rng);
        let mut paths = vec![(KernelPath::Auto.simd_name(), KernelPath::Auto)];
        if KernelPath::NoAvx512.simd_name() != KernelPath::Auto.simd_name() {
            paths.push((KernelPath::NoAvx512.simd_name(), KernelPath::NoAvx512));
        }
        paths.push(("portable", KernelPath::Portable));
        for (path, kp) in paths {
            let label = format!("int8 {path:<11} {}", layer.name);
            if label.contains(&filter) {
                bench(&label, layer, &bytes, kp, &mut rng);
            }
        }
    }
    for layer in [&layers[0], &layers[1], &layers[3], &layers[8]] {
        for precision in [Precision::F32, Precision::F16] {
            let label = format!("{precision:?} {}", layer.name);
            if label.contains(&filter) {
                let bytes = layer.plan(precision, &mut rng);
                bench(&label, layer, &bytes, KernelPath::Auto, &mut rng);
            }
        }
    }
}
