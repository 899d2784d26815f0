//! Bitmap-sparse int8 weights (`Encoding::BitmapRows`): a plan with sparse
//! weights gives the same bytes as the same plan with dense weights, on
//! every kernel path (decoded into scratch for the SIMD kernels, the
//! zero-skipping kernels without scratch or on the portable path), over
//! random conv and dense shapes and sparsities; malformed sparse tensors
//! are typed errors.
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::writer::fix_crc;
use edgefit_engine::{
    DType, Encoding, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, PlanError, Precision, Quant,
    NONE,
};

/// Random int8 weights with about `sparsity` of them zero.
fn sparse_weights(rng: &mut Rng, n: usize, sparsity: f64) -> Vec<i8> {
    let keep = ((1.0 - sparsity) * 1000.0) as u64;
    (0..n)
        .map(|_| {
            let v = rng.i8();
            if rng.next() % 1000 < keep {
                v
            } else {
                0
            }
        })
        .collect()
}

/// One int8 op (a regular conv, or a dense layer when `cv` is `None`),
/// weights `w`, stored compact or dense; scratch `None` = what the builder
/// computes.
struct OneOp {
    cv: Option<Conv>,
    n_in: usize,
    n_out: usize,
    w: Vec<i8>,
    bias: Option<Vec<i32>>,
    mults: Vec<(i32, i32)>,
    zp_in: i32,
}

impl OneOp {
    fn plan(&self, compact: bool, scratch: Option<u32>) -> (Vec<u8>, bool) {
        let mut b = PlanBuilder::new(Precision::Int8);
        let mut a = ArenaAlloc::default();
        let qx = Quant::new(0.05, self.zp_in);
        let qy = Quant::new(0.1, 5);
        let (x_dims, y_dims, w_dims) = match &self.cv {
            Some(cv) => {
                let (oh, ow) = cv.out_hw();
                let d = |v: &[usize]| v.iter().map(|&d| d as u32).collect::<Vec<u32>>();
                (
                    d(&[1, cv.h, cv.w, cv.c]),
                    d(&[1, oh, ow, cv.oc]),
                    cv.weight_dims(),
                )
            }
            None => (
                vec![1, self.n_in as u32],
                vec![1, self.n_out as u32],
                vec![self.n_out as u32, self.n_in as u32],
            ),
        };
        let xt = act(&mut b, &mut a, DType::I8, &x_dims, qx);
        let yt = act(&mut b, &mut a, DType::I8, &y_dims, qy);
        let (wt, sparse) = if compact {
            b.add_weights_i8_compact(&w_dims, &self.w)
        } else {
            (b.add_weights_i8(&w_dims, &self.w), false)
        };
        let bt = self.bias.as_ref().map_or(NONE, |v| b.add_bias_i32(v));
        let mut op = match &self.cv {
            Some(cv) => cv.op(xt, yt, wt, bt),
            None => {
                let mut op = OpDesc::new(OpKind::Dense, xt, yt);
                op.weights = wt;
                op.bias = bt;
                op
            }
        };
        let (ms, ss): (Vec<i32>, Vec<i32>) = self.mults.iter().copied().unzip();
        op.multipliers = b.add_i32_array(&ms);
        op.shifts = b.add_i32_array(&ss);
        b.add_op(op);
        b.set_input(xt).set_output(yt).set_arena_size(a.next);
        if let Some(s) = scratch {
            b.set_scratch_bytes(s);
        }
        (b.finish_checked().unwrap(), sparse)
    }
}

fn random_op(rng: &mut Rng, conv: bool) -> OneOp {
    let sparsity = [0.3, 0.5, 0.7, 0.9, 0.99][rng.range(0, 4) as usize];
    let zp_in = [-128, 127, rng.range(-128, 127) as i32][rng.range(0, 2) as usize];
    let (cv, n_in, n_out, taps) = if conv {
        let k = (rng.range(1, 5) as usize, rng.range(1, 5) as usize);
        let cv = Conv {
            h: rng.range(k.0 as i64, 12) as usize,
            w: rng.range(k.1 as i64, 12) as usize,
            c: rng.range(1, 70) as usize,
            oc: rng.range(1, 40) as usize,
            kh: k.0,
            kw: k.1,
            sh: rng.range(1, 2) as usize,
            sw: rng.range(1, 2) as usize,
            pads: [
                rng.range(0, k.0 as i64 - 1) as usize,
                rng.range(0, k.1 as i64 - 1) as usize,
                rng.range(0, k.0 as i64 - 1) as usize,
                rng.range(0, k.1 as i64 - 1) as usize,
            ],
            depthwise: false,
        };
        let taps = cv.kh * cv.kw * cv.c;
        (Some(cv), 0, cv.oc, taps)
    } else {
        let (n_in, n_out) = (rng.range(1, 2000) as usize, rng.range(1, 60) as usize);
        (None, n_in, n_out, n_in)
    };
    let w = sparse_weights(rng, taps * n_out, sparsity);
    let bias = (!rng.next().is_multiple_of(3)).then(|| {
        (0..n_out)
            .map(|_| rng.range(-20000, 20000) as i32)
            .collect()
    });
    let mults = (0..n_out)
        .map(|_| qm(rng.range(3, 40) as f64 / 1000.0 / ((taps as f64) * (1.0 - sparsity)).sqrt()))
        .collect();
    OneOp {
        cv,
        n_in,
        n_out,
        w,
        bias,
        mults,
        zp_in,
    }
}

fn check(rng: &mut Rng, conv: bool, rounds: usize) -> usize {
    let mut sparse_plans = 0;
    for i in 0..rounds {
        let op = random_op(rng, conv);
        let (dense, _) = op.plan(false, None);
        let input_len = Plan::parse(&dense)
            .and_then(|p| p.input())
            .map(|t| t.length as usize)
            .unwrap();
        let x = bytes_i8(&rng.i8s(input_len));
        let want = run_with(&dense, &x, KernelPath::Portable);
        for scratch in [None, Some(0)] {
            let (plan, sparse) = op.plan(true, scratch);
            assert!(
                plan.len() <= dense.len(),
                "case {i}: compact plan bigger than dense"
            );
            sparse_plans += usize::from(sparse && scratch.is_none());
            for kp in [KernelPath::Auto, KernelPath::NoAvx512, KernelPath::Portable] {
                let got = run_with(&plan, &x, kp);
                assert!(
                    got == want,
                    "case {i} conv {:?} dense {}->{} scratch {scratch:?} {kp:?}: differs from dense",
                    op.cv,
                    op.n_in,
                    op.n_out
                );
            }
        }
    }
    sparse_plans
}

#[test]
fn sparse_conv_equals_dense_on_every_path() {
    let sparse = check(&mut Rng(0x5BA2_0001), true, 120);
    assert!(sparse >= 80, "only {sparse} of 120 plans chose sparse");
}

#[test]
fn sparse_dense_layer_equals_dense_on_every_path() {
    let sparse = check(&mut Rng(0x5BA2_0002), false, 60);
    assert!(sparse >= 40, "only {sparse} of 60 plans chose sparse");
}

#[test]
fn compact_encoding_is_chosen_only_when_smaller() {
    let mut rng = Rng(0x5BA2_0003);
    let mut b = PlanBuilder::new(Precision::Int8);
    // No zeros: dense is smaller.
    let (_, sparse) = b.add_weights_i8_compact(&[4, 64], &vec![3i8; 256]);
    assert!(!sparse);
    // Half zeros: 8 + 32 bytes per row instead of 64.
    let w = sparse_weights(&mut rng, 256, 0.5);
    let (t, sparse) = b.add_weights_i8_compact(&[4, 64], &w);
    assert!(sparse);
    let nnz = w.iter().filter(|&&v| v != 0).count();
    let desc = b.tensors()[t as usize];
    assert_eq!(desc.encoding, Encoding::BitmapRows);
    assert_eq!(desc.length as usize, 4 * 8 + nnz);
}

/// A sparse dense-layer plan and the blob offset of its weight tensor.
fn small_sparse_plan() -> (Vec<u8>, usize, usize) {
    let op = OneOp {
        cv: None,
        n_in: 20,
        n_out: 3,
        w: sparse_weights(&mut Rng(7), 60, 0.5),
        bias: None,
        mults: vec![qm(0.01); 3],
        zp_in: 0,
    };
    let (plan, sparse) = op.plan(true, None);
    assert!(sparse);
    let p = Plan::parse(&plan).unwrap();
    let wt = p.tensor(p.op(0).unwrap().weights).unwrap();
    let start = p.header().weights_offset as usize + wt.offset as usize;
    (plan.clone(), start, wt.length as usize)
}

#[test]
fn malformed_sparse_tensors_are_typed_errors() {
    let (plan, start, len) = small_sparse_plan();
    let bad_sparse = |mutate: &dyn Fn(&mut Vec<u8>)| {
        let mut p = plan.clone();
        mutate(&mut p);
        fix_crc(&mut p);
        match Plan::parse(&p) {
            Err(PlanError::BadSparse { .. }) => {}
            other => panic!("expected BadSparse, got {other:?}"),
        }
    };
    // Row length 20: the third bitmap byte of row 0 holds bits 16..24.
    bad_sparse(&|p| p[start + 2] |= 0x80);
    // A stored value set to zero.
    bad_sparse(&|p| p[start + len - 1] = 0);
    // One more set bit than values.
    bad_sparse(&|p| {
        let b = &mut p[start];
        *b |= !*b & b.wrapping_add(1);
    });
    // A sparse tensor may only be int8 weights: make it i32.
    let p = Plan::parse(&plan).unwrap();
    let index = p.op(0).unwrap().weights;
    let record = p.header().tensor_table_offset as usize + 40 * index as usize;
    bad_sparse(&|p| p[record] = DType::I32 as u8);
    // An unknown encoding is a bad enum.
    let mut p = plan.clone();
    p[record + 3] = 9;
    fix_crc(&mut p);
    assert!(matches!(
        Plan::parse(&p),
        Err(PlanError::BadEnum {
            what: "tensor encoding",
            ..
        })
    ));
}

#[test]
fn every_truncation_and_byte_flip_of_a_sparse_plan_is_an_error_not_a_panic() {
    let (plan, start, len) = small_sparse_plan();
    for cut in 0..plan.len() {
        assert!(Plan::parse(&plan[..cut]).is_err(), "cut at {cut}");
    }
    let mut rng = Rng(0x5BA2_0004);
    for at in start..start + len {
        let mut p = plan.clone();
        p[at] ^= 1 << rng.range(0, 7);
        fix_crc(&mut p);
        // Either rejected, or still a valid plan that runs.
        if let Ok(parsed) = Plan::parse(&p) {
            let engine = edgefit_engine::Engine::new(&parsed);
            let mut arena = vec![0u8; engine.arena_size()];
            engine.run(&mut arena).unwrap();
        }
    }
}
