//! Shared test helpers: a deterministic RNG, independent reference kernels
//! written straight from the spec, and plan plumbing.
#![allow(dead_code)]

pub mod net;

use edgefit_engine::{
    Activation, DType, Engine, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant, TensorDesc,
    NONE,
};

/// xorshift64: deterministic, no extra crates.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    pub fn i8(&mut self) -> i8 {
        self.next() as i8
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.i8()).collect()
    }
    /// Symmetric int8 weights: -127..=127.
    pub fn weights_i8(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.range(-127, 127) as i8).collect()
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

// ---- int8 arithmetic, written independently from the spec -------------

pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

pub fn rdbp(x: i32, e: i32) -> i32 {
    let mask = ((1i64 << e) - 1) as i32;
    let rem = x & mask;
    let th = (mask >> 1) + if x < 0 { 1 } else { 0 };
    (x >> e) + if rem > th { 1 } else { 0 }
}

pub fn mbqm(x: i32, m: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    rdbp(srdhm(x.wrapping_mul(1 << left), m), right)
}

pub fn requant(acc: i64, m: i32, s: i32, zp: i32, lo: i32, hi: i32) -> i8 {
    (mbqm(acc as i32, m, s) + zp).clamp(lo, hi) as i8
}

/// Q31 multiplier and shift for `real` (frexp-style, as TFLite).
pub fn qm(real: f64) -> (i32, i32) {
    edgefit_engine::requant::quantize_multiplier(real)
}

/// TFLite's int8 Add parameter preparation (`left_shift` 20) for input
/// scales `s1`, `s2` and output scale `so`.
pub fn add_params(s1: f64, s2: f64, so: f64) -> edgefit_engine::AddParams {
    let left_shift = 20;
    let twice_max = 2.0 * s1.max(s2);
    let (input1_multiplier, input1_shift) = qm(s1 / twice_max);
    let (input2_multiplier, input2_shift) = qm(s2 / twice_max);
    let (output_multiplier, output_shift) = qm(twice_max / ((1 << left_shift) as f64 * so));
    edgefit_engine::AddParams {
        input1_multiplier,
        input1_shift,
        input2_multiplier,
        input2_shift,
        output_multiplier,
        output_shift,
        left_shift,
    }
}

// ---- geometry -----------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub depthwise: bool,
}

impl Conv {
    pub fn out_hw(&self) -> (usize, usize) {
        let [pt, pl, pb, pr] = self.pads;
        (
            (self.h + pt + pb - self.kh) / self.sh + 1,
            (self.w + pl + pr - self.kw) / self.sw + 1,
        )
    }
    pub fn weight_dims(&self) -> Vec<u32> {
        if self.depthwise {
            vec![self.kh as u32, self.kw as u32, self.c as u32]
        } else {
            vec![
                self.oc as u32,
                self.kh as u32,
                self.kw as u32,
                self.c as u32,
            ]
        }
    }
    pub fn weight_len(&self) -> usize {
        self.weight_dims().iter().map(|&d| d as usize).product()
    }
    /// Index of weight (oc, ky, kx, ic) in the documented layouts.
    pub fn widx(&self, oc: usize, ky: usize, kx: usize, ic: usize) -> usize {
        if self.depthwise {
            (ky * self.kw + kx) * self.c + oc
        } else {
            ((oc * self.kh + ky) * self.kw + kx) * self.c + ic
        }
    }
    /// Calls `f(oy, ox, oc, taps)` where taps are `(x_index, w_index)` of
    /// in-bounds cells.
    pub fn each(&self, mut f: impl FnMut(usize, usize, usize, &[(usize, usize)])) {
        let (oh, ow) = self.out_hw();
        let mut taps = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                for oc in 0..self.oc {
                    taps.clear();
                    for ky in 0..self.kh {
                        for kx in 0..self.kw {
                            let iy = (oy * self.sh + ky) as i64 - self.pads[0] as i64;
                            let ix = (ox * self.sw + kx) as i64 - self.pads[1] as i64;
                            if iy < 0 || ix < 0 || iy >= self.h as i64 || ix >= self.w as i64 {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            let ics = if self.depthwise {
                                oc..oc + 1
                            } else {
                                0..self.c
                            };
                            for ic in ics {
                                taps.push((
                                    (iy * self.w + ix) * self.c + ic,
                                    self.widx(oc, ky, kx, ic),
                                ));
                            }
                        }
                    }
                    f(oy, ox, oc, &taps);
                }
            }
        }
    }

    pub fn op(&self, x: u32, y: u32, w: u32, bias: u32) -> OpDesc {
        let mut op = OpDesc::new(OpKind::Conv2d, x, y);
        op.weights = w;
        op.bias = bias;
        op.kernel_h = self.kh as u16;
        op.kernel_w = self.kw as u16;
        op.stride_h = self.sh as u16;
        op.stride_w = self.sw as u16;
        op.pad_top = self.pads[0] as u16;
        op.pad_left = self.pads[1] as u16;
        op.pad_bottom = self.pads[2] as u16;
        op.pad_right = self.pads[3] as u16;
        op.groups = if self.depthwise { self.c as u32 } else { 1 };
        op
    }
}

// ---- plan plumbing ------------------------------------------------------

/// Bump allocator for arena offsets (16-byte aligned).
#[derive(Default)]
pub struct ArenaAlloc {
    pub next: u32,
}

impl ArenaAlloc {
    pub fn alloc(&mut self, bytes: usize) -> u32 {
        let at = self.next;
        self.next = (at + bytes as u32).div_ceil(16) * 16;
        at
    }
}

/// Adds an activation tensor at a fresh arena offset.
pub fn act(
    b: &mut PlanBuilder,
    a: &mut ArenaAlloc,
    dtype: DType,
    dims: &[u32],
    quant: Quant,
) -> u32 {
    let n: usize = dims.iter().map(|&d| d as usize).product();
    let off = a.alloc(n * dtype.size());
    b.add_activation(dtype, dims, off, quant)
}

/// Parses and runs `plan` on `input`, from a deliberately misaligned copy
/// of the plan and a misaligned arena (the engine must not care).
pub fn run(plan: &[u8], input: &[u8]) -> Vec<u8> {
    let mut shifted = vec![0u8; plan.len() + 3];
    shifted[3..].copy_from_slice(plan);
    let plan = Plan::parse(&shifted[3..]).expect("plan must parse");
    let engine = Engine::new(&plan);
    let mut arena = vec![0xA5u8; engine.arena_size() + 1];
    let arena = &mut arena[1..];
    engine.input_mut(arena).unwrap().copy_from_slice(input);
    engine.run(arena).unwrap();
    engine.output(arena).unwrap().to_vec()
}

pub fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

pub fn as_i8(v: &[u8]) -> Vec<i8> {
    v.iter().map(|&x| x as i8).collect()
}

pub fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn as_f32(v: &[u8]) -> Vec<f32> {
    v.chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Asserts float closeness relative to the magnitude of the data.
pub fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(err <= 1e-5 * scale, "{what}: [{i}] got {g}, want {w}");
    }
}

pub fn tensor(plan: &[u8], i: u32) -> TensorDesc {
    Plan::parse(plan).unwrap().tensor(i).unwrap()
}

pub fn precision_dtypes(p: Precision) -> (DType, DType) {
    (p.activation_dtype(), p.weight_dtype())
}

/// Runs `plan` on `input` with the given kernel path (aligned arena).
pub fn run_with(plan: &[u8], input: &[u8], kernels: edgefit_engine::KernelPath) -> Vec<u8> {
    let plan = Plan::parse(plan).expect("plan must parse");
    let engine = Engine::with_kernels(&plan, kernels);
    let mut arena = vec![0x5Au8; engine.arena_size()];
    engine.input_mut(&mut arena).unwrap().copy_from_slice(input);
    engine.run(&mut arena).unwrap();
    engine.output(&arena).unwrap().to_vec()
}

/// Runs `plan` through the fastest SIMD kernels (`Auto`: AVX-512 VNNI where
/// the CPU has it), the SIMD kernels without AVX-512 (`NoAvx512`: AVX2) and
/// the portable kernels, asserts the outputs are byte-identical, and
/// returns them.
pub fn run_both(plan: &[u8], input: &[u8], what: &str) -> Vec<u8> {
    use edgefit_engine::KernelPath;
    let fast = run_with(plan, input, KernelPath::Auto);
    let portable = run_with(plan, input, KernelPath::Portable);
    assert!(
        fast == portable,
        "{what}: SIMD ({}) and portable outputs differ",
        KernelPath::Auto.simd_name()
    );
    if KernelPath::NoAvx512.simd_name() != KernelPath::Auto.simd_name() {
        let avx2 = run_with(plan, input, KernelPath::NoAvx512);
        assert!(
            avx2 == portable,
            "{what}: SIMD ({}) and portable outputs differ",
            KernelPath::NoAvx512.simd_name()
        );
    }
    fast
}

/// What a float test plan's op has besides its weights.
pub struct FloatOpts {
    pub act: Activation,
    pub bias: bool,
    /// The plan's scratch size; `None`: what the writer computes.
    pub scratch: Option<u32>,
}

/// A plan of one f32 / f16 (`p`) conv (`cv`) or dense (`dense = (in,
/// out)`) op with weights `w` (f16-rounded by the writer for f16) and
/// `bias`; a `Clip` activation clips to -0.25..0.5.
pub fn float_plan(
    p: Precision,
    cv: Option<&Conv>,
    dense: (usize, usize),
    w: &[f32],
    bias: &[f32],
    opts: &FloatOpts,
) -> Vec<u8> {
    let mut b = PlanBuilder::new(p);
    let mut a = ArenaAlloc::default();
    let (xdims, ydims, wdims) = match cv {
        Some(cv) => {
            let (oh, ow) = cv.out_hw();
            (
                vec![1, cv.h as u32, cv.w as u32, cv.c as u32],
                vec![1, oh as u32, ow as u32, cv.oc as u32],
                cv.weight_dims(),
            )
        }
        None => (
            vec![1, dense.0 as u32],
            vec![1, dense.1 as u32],
            vec![dense.1 as u32, dense.0 as u32],
        ),
    };
    let x = act(&mut b, &mut a, DType::F32, &xdims, Quant::NONE);
    let y = act(&mut b, &mut a, DType::F32, &ydims, Quant::NONE);
    let wt = if p == Precision::F16 {
        b.add_weights_f16(&wdims, w)
    } else {
        b.add_weights_f32(&wdims, w)
    };
    let bt = if opts.bias {
        b.add_bias_f32(bias)
    } else {
        NONE
    };
    let mut op = match cv {
        Some(cv) => cv.op(x, y, wt, bt),
        None => {
            let mut op = OpDesc::new(OpKind::Dense, x, y);
            (op.weights, op.bias) = (wt, bt);
            op
        }
    };
    op.activation = opts.act;
    if opts.act == Activation::Clip {
        op.clip_min = -0.25;
        op.clip_max = 0.5;
    }
    b.add_op(op);
    b.set_input(x).set_output(y).set_arena_size(a.next);
    if let Some(s) = opts.scratch {
        b.set_scratch_bytes(s);
    }
    b.finish_checked().unwrap()
}
