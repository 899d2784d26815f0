//! Where ResNet-50 int8 time goes: every distinct layer shape of ResNet-50
//! (224x224, batch 1) as a single-op int8 plan with random weights, timed
//! (median of a few runs), with the estimated network total weighted by how
//! often each shape occurs (3/4/6/3 bottleneck blocks).
//!
//! `cargo run --release -p edgefit-engine --features std --example resnet50_layers [f32|f16] [no-avx512|portable] [filter]`
//!
//! `f32` / `f16` time float plans (f32 activations, f32 or f16 weights)
//! instead of int8; `no-avx512` times the AVX2 kernels on a CPU with
//! AVX-512 VNNI, `portable` the portable kernels; `filter` keeps only the
//! layers whose name contains it (the total then covers those only).
//!
//! Times are the thread's CPU time on Linux (so other load on a shared
//! machine does not count), wall-clock time elsewhere.

use std::time::Instant;

use edgefit_engine::{
    AddParams, DType, Engine, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant,
};

mod common;

/// Random bytes from the shared xorshift.
struct Rng(common::Rng);
impl Rng {
    fn next(&mut self) -> u8 {
        (self.0.next() >> 24) as u8
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// Conv `k`x`k`, stride `s`, pad `p`; `res`: fused residual (in place).
    Conv {
        k: u32,
        s: u32,
        p: u32,
        oc: u32,
        res: bool,
    },
    MaxPool,
    Gap,
    Dense {
        out: u32,
    },
}

struct Layer {
    name: String,
    h: u32,
    c: u32,
    kind: Kind,
    count: u32,
}

fn qm(v: f64) -> (i32, i32) {
    edgefit_engine::requant::quantize_multiplier(v)
}

impl Layer {
    fn out_dims(&self) -> Vec<u32> {
        match self.kind {
            Kind::Conv { k, s, p, oc, .. } => {
                let o = (self.h + 2 * p - k) / s + 1;
                vec![1, o, o, oc]
            }
            Kind::MaxPool => {
                let o = (self.h + 2 - 3) / 2 + 1;
                vec![1, o, o, self.c]
            }
            Kind::Gap => vec![1, self.c],
            Kind::Dense { out } => vec![1, out],
        }
    }

    fn macs(&self) -> f64 {
        let o: f64 = self.out_dims().iter().map(|&d| d as f64).product();
        match self.kind {
            Kind::Conv { k, .. } => o * (k * k * self.c) as f64,
            Kind::MaxPool => o * 9.0,
            Kind::Gap => (self.h * self.h * self.c) as f64,
            Kind::Dense { .. } => o * self.c as f64,
        }
    }

    fn plan(&self, rng: &mut Rng, p: Precision) -> Vec<u8> {
        if p != Precision::Int8 {
            return self.plan_float(rng, p);
        }
        let mut b = PlanBuilder::new(Precision::Int8);
        let in_dims = match self.kind {
            Kind::Dense { .. } => vec![1, self.c],
            _ => vec![1, self.h, self.h, self.c],
        };
        let n_in: u32 = in_dims.iter().product();
        let qx = Quant::new(0.05, 3);
        let x = b.add_activation(DType::I8, &in_dims, 0, qx);
        let y_dims = self.out_dims();
        let n_out: u32 = y_dims.iter().product();
        let out_off = n_in.div_ceil(16) * 16;
        let qy = match self.kind {
            Kind::MaxPool | Kind::Gap => qx,
            _ => Quant::new(0.1, -2),
        };
        let y = b.add_activation(DType::I8, &y_dims, out_off, qy);
        let mut op = OpDesc::new(OpKind::Conv2d, x, y);
        let mut wdims = vec![];
        match self.kind {
            Kind::Conv { k, s, p, oc, res } => {
                wdims = vec![oc, k, k, self.c];
                (op.kernel_h, op.kernel_w) = (k as u16, k as u16);
                (op.stride_h, op.stride_w) = (s as u16, s as u16);
                let p = p as u16;
                (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (p, p, p, p);
                op.act_min = -2;
                if res {
                    op.residual = y;
                    op.conv_out = Quant::new(0.08, 1);
                    (op.conv_act_min, op.conv_act_max) = (-128, 127);
                    let (s1, s2, so) = (0.08f64, 0.1f64, 0.1f64);
                    let tm = 2.0 * s1.max(s2);
                    let (m1, sh1) = qm(s1 / tm);
                    let (m2, sh2) = qm(s2 / tm);
                    let (mo, sho) = qm(tm / ((1u64 << 20) as f64 * so));
                    op.add = AddParams {
                        input1_multiplier: m1,
                        input1_shift: sh1,
                        input2_multiplier: m2,
                        input2_shift: sh2,
                        output_multiplier: mo,
                        output_shift: sho,
                        left_shift: 20,
                    };
                }
            }
            Kind::MaxPool => {
                op.kind = OpKind::MaxPool;
                (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (3, 3, 2, 2);
                (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
            }
            Kind::Gap => op.kind = OpKind::GlobalAvgPool,
            Kind::Dense { out } => {
                op.kind = OpKind::Dense;
                wdims = vec![out, self.c];
            }
        }
        if !wdims.is_empty() {
            let n_w: u32 = wdims.iter().product();
            let v: Vec<i8> = (0..n_w).map(|_| (rng.next() as i8).max(-127)).collect();
            op.weights = b.add_weights_i8(&wdims, &v);
            let oc = *wdims.first().unwrap() as usize;
            let taps = (n_w as usize / oc) as f64;
            let m = qm(0.5 / taps.sqrt() / 60.0);
            op.multipliers = b.add_i32_array(&vec![m.0; oc]);
            op.shifts = b.add_i32_array(&vec![m.1; oc]);
            op.bias = b.add_bias_i32(&vec![100; oc]);
        }
        b.add_op(op);
        b.set_input(x)
            .set_output(y)
            .set_arena_size(out_off + n_out.div_ceil(16) * 16);
        b.finish_checked().expect("valid plan")
    }
}

impl Layer {
    /// The layer as a float plan: f32 activations and bias, `p` weights,
    /// a fused in-place residual where the int8 plan has one.
    fn plan_float(&self, rng: &mut Rng, p: Precision) -> Vec<u8> {
        let mut b = PlanBuilder::new(p);
        let in_dims = match self.kind {
            Kind::Dense { .. } => vec![1, self.c],
            _ => vec![1, self.h, self.h, self.c],
        };
        let n_in: u32 = in_dims.iter().product();
        let x = b.add_activation(DType::F32, &in_dims, 0, Quant::NONE);
        let y_dims = self.out_dims();
        let n_out: u32 = y_dims.iter().product();
        let out_off = (n_in * 4).div_ceil(16) * 16;
        let y = b.add_activation(DType::F32, &y_dims, out_off, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Conv2d, x, y);
        let mut wdims = vec![];
        match self.kind {
            Kind::Conv { k, s, p, oc, res } => {
                wdims = vec![oc, k, k, self.c];
                (op.kernel_h, op.kernel_w) = (k as u16, k as u16);
                (op.stride_h, op.stride_w) = (s as u16, s as u16);
                let p = p as u16;
                (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (p, p, p, p);
                op.activation = edgefit_engine::Activation::Relu;
                if res {
                    op.residual = y;
                }
            }
            Kind::MaxPool => {
                op.kind = OpKind::MaxPool;
                (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (3, 3, 2, 2);
                (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
            }
            Kind::Gap => op.kind = OpKind::GlobalAvgPool,
            Kind::Dense { out } => {
                op.kind = OpKind::Dense;
                wdims = vec![out, self.c];
            }
        }
        if !wdims.is_empty() {
            let n_w: u32 = wdims.iter().product();
            let v: Vec<f32> = (0..n_w)
                .map(|_| (rng.next() as i8) as f32 / 4096.0)
                .collect();
            op.weights = if p == Precision::F16 {
                b.add_weights_f16(&wdims, &v)
            } else {
                b.add_weights_f32(&wdims, &v)
            };
            let oc = *wdims.first().unwrap() as usize;
            op.bias = b.add_bias_f32(&vec![0.01; oc]);
        }
        b.add_op(op);
        b.set_input(x)
            .set_output(y)
            .set_arena_size(out_off + (n_out * 4).div_ceil(16) * 16);
        b.finish_checked().expect("valid plan")
    }
}

/// Median and fastest time of one run, in seconds (the fastest is the
/// better estimate on a machine shared with other work).
fn time(bytes: &[u8], kernels: KernelPath, rng: &mut Rng) -> (f64, f64) {
    let plan = Plan::parse(bytes).expect("parses");
    let engine = Engine::with_kernels(&plan, kernels);
    let mut arena = edgefit_engine::AlignedBytes::zeroed(engine.arena_size());
    let n = plan.activation_arena_size();
    if plan.precision() == Precision::Int8 {
        arena[..n].iter_mut().for_each(|v| *v = rng.next());
    } else {
        for c in arena[..n].chunks_exact_mut(4) {
            let v = (rng.next() as i8) as f32 / 128.0;
            c.copy_from_slice(&v.to_le_bytes());
        }
    }
    engine.run(&mut arena).unwrap(); // warm-up
    let mut ts = Vec::new();
    let start = Instant::now();
    while ts.len() < 7 || (start.elapsed().as_secs_f64() < 0.6 && ts.len() < 101) {
        let t = common::thread_cpu_seconds();
        engine.run(&mut arena).unwrap();
        ts.push(common::thread_cpu_seconds() - t);
    }
    ts.sort_by(f64::total_cmp);
    (ts[ts.len() / 2], ts[0])
}

fn layers() -> Vec<Layer> {
    let mut v = Vec::new();
    let mut conv = |h: u32, c: u32, oc: u32, k: u32, s: u32, res: bool, count: u32| {
        let p = k / 2;
        let o = (h + 2 * p - k) / s + 1;
        let tag = if res { " +res" } else { "" };
        v.push(Layer {
            name: format!("conv{k}x{k}/{s} {h}x{h}x{c}->{o}x{o}x{oc}{tag}"),
            h,
            c,
            kind: Kind::Conv { k, s, p, oc, res },
            count,
        });
    };
    conv(224, 3, 64, 7, 2, false, 1);
    // (input size, block input channels, width, blocks, first stride)
    let stages = [
        (56, 64, 64, 3, 1),
        (56, 256, 128, 4, 2),
        (28, 512, 256, 6, 2),
        (14, 1024, 512, 3, 2),
    ];
    for (h, cin, wd, blocks, s) in stages {
        let o = h / s;
        // First block: reduce at the input size, strided 3x3, projection.
        conv(h, cin, wd, 1, 1, false, 1);
        conv(h, wd, wd, 3, s, false, 1);
        conv(h, cin, 4 * wd, 1, s, false, 1);
        // Later blocks.
        conv(o, 4 * wd, wd, 1, 1, false, blocks - 1);
        if s != 1 {
            conv(o, wd, wd, 3, 1, false, blocks - 1);
        }
        conv(o, wd, 4 * wd, 1, 1, true, blocks);
    }
    // Stage 1's 3x3 is stride 1 everywhere: count it for all its blocks.
    if let Some(l) = v
        .iter_mut()
        .find(|l| l.name.starts_with("conv3x3/1 56x56x64"))
    {
        l.count = 3;
    }
    v.push(Layer {
        name: "maxpool3x3/2 112x112x64".into(),
        h: 112,
        c: 64,
        kind: Kind::MaxPool,
        count: 1,
    });
    v.push(Layer {
        name: "global avgpool 7x7x2048".into(),
        h: 7,
        c: 2048,
        kind: Kind::Gap,
        count: 1,
    });
    v.push(Layer {
        name: "dense 2048->1000".into(),
        h: 1,
        c: 2048,
        kind: Kind::Dense { out: 1000 },
        count: 1,
    });
    v
}

fn main() {
    let precision = match std::env::args().skip(1).find(|a| a == "f32" || a == "f16") {
        Some(a) if a == "f32" => Precision::F32,
        Some(_) => Precision::F16,
        None => Precision::Int8,
    };
    let is_path = |a: &str| a == "portable" || a == "no-avx512" || a == "f32" || a == "f16";
    let kp = match std::env::args()
        .skip(1)
        .find(|a| a == "portable" || a == "no-avx512")
        .as_deref()
    {
        Some("portable") => KernelPath::Portable,
        Some(_) => KernelPath::NoAvx512,
        None => KernelPath::Auto,
    };
    let filter = std::env::args()
        .skip(1)
        .find(|a| !is_path(a))
        .unwrap_or_default();
    println!("precision: {precision:?}, kernels: {}", kp.simd_name());
    let mut rng = Rng(common::Rng(0x1234_5678_9abc_def0));
    println!(
        "{:<40} {:>3} {:>9} {:>9} {:>8} {:>10}",
        "layer", "n", "median ms", "min ms", "GMAC/s", "n*median"
    );
    let (mut total, mut total_min, mut macs) = (0.0, 0.0, 0.0);
    for l in layers().into_iter().filter(|l| l.name.contains(&filter)) {
        let bytes = l.plan(&mut rng, precision);
        let (t, tmin) = time(&bytes, kp, &mut rng);
        let n = l.count as f64;
        total += t * n;
        total_min += tmin * n;
        macs += l.macs() * n;
        println!(
            "{:<40} {:>3} {:>9.3} {:>9.3} {:>8.2} {:>10.3}",
            l.name,
            l.count,
            t * 1e3,
            tmin * 1e3,
            l.macs() / t / 1e9,
            t * 1e3 * n
        );
    }
    println!(
        "estimated ResNet-50 total: {:.1} ms median, {:.1} ms min, for {:.3} GMAC ({:.2} GMAC/s median) [{}]",
        total * 1e3,
        total_min * 1e3,
        macs / 1e9,
        macs / total / 1e9,
        kp.simd_name()
    );
}
