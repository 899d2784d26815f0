//! Malformed plans and misuse: always an error, never a panic.
#![cfg(feature = "std")]

mod common;

use common::net::*;
use common::*;
use edgefit_engine::writer::fix_crc;
use edgefit_engine::{
    Activation, DType, Engine, ExecError, OpDesc, OpKind, Plan, PlanBuilder, PlanError, Precision,
    Quant,
};

/// Plans covering every op kind: the int8 network, and a float plan with
/// add, global pool, depthwise conv and softmax.
fn sample_plans() -> Vec<Vec<u8>> {
    let (int8, _, _) = int8_net(&mut Rng(1));
    let mut rng = Rng(2);
    let mut b = PlanBuilder::new(Precision::F16);
    let x = b.add_activation(DType::F32, &[1, 4, 4, 3], 0, Quant::NONE);
    let d = b.add_activation(DType::F32, &[1, 4, 4, 3], 192, Quant::NONE);
    let s = b.add_activation(DType::F32, &[1, 4, 4, 3], 384, Quant::NONE);
    let a = b.add_activation(DType::F32, &[1, 2, 2, 3], 0, Quant::NONE);
    let g = b.add_activation(DType::F32, &[1, 3], 192, Quant::NONE);
    let p = b.add_activation(DType::F32, &[1, 3], 208, Quant::NONE);
    let dw = Conv {
        h: 4,
        w: 4,
        c: 3,
        oc: 3,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        pads: [1; 4],
        depthwise: true,
    };
    let wt = b.add_weights_f16(&dw.weight_dims(), &rng.f32s(27));
    let bias = b.add_bias_f32(&rng.f32s(3));
    let mut conv = dw.op(x, d, wt, bias);
    conv.activation = Activation::Clip;
    conv.clip_min = -1.0;
    conv.clip_max = 1.0;
    b.add_op(conv);
    let mut add = OpDesc::new(OpKind::Add, d, s);
    add.input2 = x;
    b.add_op(add);
    let mut pool = OpDesc::new(OpKind::AvgPool, s, a);
    (pool.kernel_h, pool.kernel_w, pool.stride_h, pool.stride_w) = (2, 2, 2, 2);
    b.add_op(pool);
    b.add_op(OpDesc::new(OpKind::GlobalAvgPool, a, g));
    b.add_op(OpDesc::new(OpKind::Softmax, g, p));
    b.set_input(x).set_output(p).set_arena_size(576);
    vec![int8, b.finish_checked().unwrap(), fused_int8_plan()]
}

/// An int8 Conv2d with a fused residual Add, in place over the residual
/// (and, with the default scratch, the SIMD GEMM path).
fn fused_int8_plan() -> Vec<u8> {
    let mut rng = Rng(3);
    let mut b = PlanBuilder::new(Precision::Int8);
    let x = b.add_activation(DType::I8, &[1, 4, 4, 5], 0, Quant::new(0.1, 3));
    let r = b.add_activation(DType::I8, &[1, 4, 4, 6], 80, Quant::new(0.1, -2));
    let mut op = OpDesc::new(OpKind::Conv2d, x, r);
    op.weights = b.add_weights_i8(&[6, 3, 3, 5], &rng.weights_i8(270));
    (op.kernel_h, op.kernel_w) = (3, 3);
    (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 1, 1);
    op.multipliers = b.add_i32_array(&[qm(0.01).0; 6]);
    op.shifts = b.add_i32_array(&[qm(0.01).1; 6]);
    op.residual = r;
    op.conv_out = Quant::new(0.2, -3);
    (op.conv_act_min, op.conv_act_max) = (-100, 120);
    op.add.input1_multiplier = 1 << 30;
    op.add.input2_multiplier = 1 << 30;
    op.add.output_multiplier = 1 << 30;
    op.add.output_shift = -19;
    op.add.left_shift = 20;
    op.activation = Activation::Relu;
    op.act_min = -2;
    b.add_op(op);
    b.set_input(x).set_output(r).set_arena_size(176);
    b.finish_checked().unwrap()
}

/// Runs a plan that parsed. A plan that passed validation must run: an
/// `ExecError` here would mean the validator let something through.
fn exercise(plan: &Plan<'_>, errors: &mut Vec<String>) {
    let engine = Engine::new(plan);
    if engine.arena_size() > 1 << 20 {
        return;
    }
    let mut arena = vec![0x5Au8; engine.arena_size()];
    let input = engine.input_mut(&mut arena).unwrap();
    input.iter_mut().enumerate().for_each(|(i, v)| *v = i as u8);
    if let Err(e) = engine.run(&mut arena) {
        errors.push(e.to_string());
        panic!("validated plan failed to run: {e}");
    }
    engine.output(&arena).unwrap();
}

#[test]
fn truncated_at_every_offset_is_an_error() {
    for plan in sample_plans() {
        assert!(Plan::parse(&plan).is_ok());
        for n in 0..plan.len() {
            let err = Plan::parse(&plan[..n]).expect_err("truncated plan parsed");
            assert!(!err.to_string().is_empty());
            let needed = if n < 64 { 64 } else { plan.len() };
            if n >= 6 {
                assert_eq!(
                    err,
                    PlanError::Truncated {
                        needed,
                        available: n
                    }
                );
            }
        }
    }
}

#[test]
fn single_byte_corruption_never_panics() {
    let mut stats = [0usize; 4]; // rejected, valid (no fix), rejected, valid (CRC fixed)
    let mut messages = Vec::new();
    for plan in sample_plans() {
        for at in 0..plan.len() {
            for mask in [0x01u8, 0x80, 0xFF, 0x10] {
                let mut bad = plan.clone();
                bad[at] ^= mask;
                for (k, fix) in [false, true].into_iter().enumerate() {
                    if fix {
                        fix_crc(&mut bad);
                    }
                    match Plan::parse(&bad) {
                        Err(e) => {
                            stats[2 * k] += 1;
                            messages.push(e.to_string());
                        }
                        Ok(p) => {
                            stats[2 * k + 1] += 1;
                            exercise(&p, &mut messages);
                        }
                    }
                }
                // Without a CRC fix, corruption past the header is caught.
                if at >= 64 {
                    let mut raw = plan.clone();
                    raw[at] ^= mask;
                    assert!(matches!(
                        Plan::parse(&raw),
                        Err(PlanError::CrcMismatch { .. })
                    ));
                }
            }
        }
    }
    eprintln!(
        "corruption outcomes [rejected, valid] raw: {:?} CRC-fixed: {:?}",
        &stats[..2],
        &stats[2..]
    );
    // With the CRC fixed up, the structural checks still reject many (the
    // rest are mostly weight bytes, which any value makes valid).
    assert!(stats[2] > 1000, "{stats:?}");
    assert!(messages.iter().all(|m| !m.is_empty()));
}

#[test]
fn wrong_version_and_magic() {
    let plan = &sample_plans()[0];
    let mut v3 = plan.clone();
    v3[4] = 3;
    let err = Plan::parse(&v3).unwrap_err();
    assert_eq!(
        err,
        PlanError::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    );
    assert!(err.to_string().contains("version 3"));
    // Version 0 is not a version either; 1 (untiled) and 2 are read.
    let mut v0 = plan.clone();
    v0[4] = 0;
    assert!(matches!(
        Plan::parse(&v0),
        Err(PlanError::UnsupportedVersion { found: 0, .. })
    ));
    assert_eq!(Plan::parse(plan).unwrap().header().version, 1);
    let mut bad = plan.clone();
    bad[0] = b'X';
    assert!(matches!(Plan::parse(&bad), Err(PlanError::BadMagic { .. })));
    let mut flags = plan.clone();
    flags[6] = 1;
    assert_eq!(
        Plan::parse(&flags).unwrap_err(),
        PlanError::UnknownFlags { flags: 1 }
    );
}

#[test]
fn crc_mismatch_names_both_values() {
    let mut plan = sample_plans()[0].clone();
    let last = plan.len() - 1;
    plan[last] ^= 0x40;
    match Plan::parse(&plan) {
        Err(PlanError::CrcMismatch { stored, computed }) => {
            assert_ne!(stored, computed);
            let msg = PlanError::CrcMismatch { stored, computed }.to_string();
            assert!(msg.contains(&format!("{stored:#010x}")), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trailing_bytes_after_the_plan_are_ignored() {
    let mut slot = sample_plans()[0].clone();
    slot.extend_from_slice(&[0xFF; 100]); // erased flash after the plan
    assert!(Plan::parse(&slot).is_ok());
}

#[test]
fn too_small_arena() {
    let plan_bytes = &sample_plans()[0];
    let plan = Plan::parse(plan_bytes).unwrap();
    let engine = Engine::new(&plan);
    let needed = engine.arena_size();
    let mut arena = vec![0u8; needed - 1];
    let want = ExecError::ArenaTooSmall {
        needed,
        provided: needed - 1,
    };
    assert_eq!(engine.run(&mut arena), Err(want.clone()));
    assert_eq!(engine.input_mut(&mut arena).unwrap_err(), want);
    assert_eq!(engine.output(&arena).unwrap_err(), want);
    assert_eq!(engine.run_op(&mut arena, 0), Err(want.clone()));
    assert!(want.to_string().contains(&needed.to_string()));
    let mut ok = vec![0u8; needed];
    assert_eq!(
        engine.run_op(&mut ok, 99),
        Err(ExecError::NoSuchOp { op: 99, count: 4 })
    );
}

/// Builds a one-conv int8 plan after `tweak` has had a go at it.
fn conv_plan(tweak: impl FnOnce(&mut PlanBuilder, &mut OpDesc)) -> Result<Vec<u8>, PlanError> {
    let mut b = PlanBuilder::new(Precision::Int8);
    let x = b.add_activation(DType::I8, &[1, 4, 4, 2], 0, Quant::NONE);
    let y = b.add_activation(DType::I8, &[1, 2, 2, 3], 32, Quant::NONE);
    let w = b.add_weights_i8(&[3, 3, 3, 2], &[1; 54]);
    let mut op = OpDesc::new(OpKind::Conv2d, x, y);
    op.weights = w;
    (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (3, 3, 2, 2);
    (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) = (1, 1, 0, 0);
    op.multipliers = b.add_i32_array(&[1 << 30; 3]);
    op.shifts = b.add_i32_array(&[-3; 3]);
    b.set_input(x).set_output(y).set_arena_size(48);
    tweak(&mut b, &mut op);
    b.add_op(op);
    b.finish_checked()
}

fn conv_plan_error(tweak: impl FnOnce(&mut PlanBuilder, &mut OpDesc)) -> PlanError {
    conv_plan(tweak).unwrap_err()
}

#[test]
fn validation_errors_name_the_problem() {
    // The untweaked plan is valid.
    conv_plan(|_, _| {}).unwrap();

    let e = conv_plan_error(|_, op| op.stride_h = 1);
    assert_eq!(
        e,
        PlanError::Shape {
            op: 0,
            what: "output height",
            found: 2,
            expected: 3
        }
    );
    assert!(e.to_string().contains("output height is 2, expected 3"));

    // Output overlapping the input.
    let e = conv_plan_error(|b, op| {
        op.output = b.add_activation(DType::I8, &[1, 2, 2, 3], 20, Quant::NONE);
    });
    assert!(matches!(e, PlanError::Overlap { op: 0, .. }), "{e:?}");

    let e = conv_plan_error(|_, op| op.shifts = 4096);
    assert!(
        matches!(e, PlanError::BadArray { what: "shift", .. }),
        "{e:?}"
    );
    let e = conv_plan_error(|b, op| op.shifts = b.add_i32_array(&[0, 31, 0]));
    assert_eq!(
        e,
        PlanError::BadParam {
            op: 0,
            what: "shift",
            value: 31
        }
    );
    let e = conv_plan_error(|b, op| op.multipliers = b.add_i32_array(&[1, -1, 1]));
    assert!(matches!(
        e,
        PlanError::BadParam {
            what: "multiplier",
            value: -1,
            ..
        }
    ));
    let e = conv_plan_error(|_, op| op.act_min = -129);
    assert!(matches!(
        e,
        PlanError::BadParam {
            what: "act_min",
            ..
        }
    ));
    let e = conv_plan_error(|_, op| op.weights = 77);
    assert_eq!(
        e,
        PlanError::TensorIndex {
            op: Some(0),
            index: 77,
            count: 3
        }
    );
    let e = conv_plan_error(|_, op| op.weights = op.input);
    assert!(matches!(e, PlanError::WrongLocation { .. }));
    let e = conv_plan_error(|b, op| op.bias = b.add_bias_i32(&[1, 2]));
    assert!(matches!(
        e,
        PlanError::Shape {
            what: "bias length",
            found: 2,
            expected: 3,
            ..
        }
    ));
    let e = conv_plan_error(|b, op| {
        op.bias = b.add_weights_f32(&[3], &[0.0; 3]);
    });
    assert!(matches!(
        e,
        PlanError::WrongDType {
            found: DType::F32,
            expected: DType::I32,
            ..
        }
    ));
    let e = conv_plan_error(|_, op| op.groups = 2);
    assert!(
        matches!(
            e,
            PlanError::Shape {
                what: "weight rank",
                ..
            }
        ),
        "{e:?}"
    );
    let e = conv_plan_error(|b, _| {
        b.set_arena_size(40);
    });
    assert!(matches!(
        e,
        PlanError::TensorOutOfBounds {
            tensor: 1,
            end: 44,
            limit: 40
        }
    ));
    let e = conv_plan_error(|b, _| {
        b.add_activation(DType::I8, &[1, 2, 3, 4, 5], 0, Quant::NONE);
    });
    assert!(matches!(e, PlanError::BadRank { rank: 5, .. }));
    let e = conv_plan_error(|b, _| {
        b.add_activation(DType::I8, &[2, 0], 0, Quant::NONE);
    });
    assert!(matches!(
        e,
        PlanError::BadDims {
            dim: 1,
            value: 0,
            ..
        }
    ));
    let e = conv_plan_error(|b, _| {
        b.add_activation(DType::I8, &[4], 0, Quant::new(1.0, 300));
    });
    assert!(matches!(
        e,
        PlanError::BadZeroPoint {
            zero_point: 300,
            ..
        }
    ));
    let e = conv_plan_error(|b, _| {
        b.set_output(1).set_input(2);
    });
    assert!(matches!(
        e,
        PlanError::WrongLocation {
            op: None,
            tensor: 2
        }
    ));
    // A conv record relabelled Softmax: its shapes (and int8 table) do not fit.
    let e = conv_plan_error(|_, op| op.kind = OpKind::Softmax);
    assert!(matches!(
        e,
        PlanError::ShapeMismatch { .. } | PlanError::BadParam { .. } | PlanError::BadArray { .. }
    ));
    let e = conv_plan_error(|_, op| op.kernel_w = 0);
    assert!(matches!(
        e,
        PlanError::BadParam {
            what: "kernel_w",
            ..
        }
    ));
}

/// Builds a one-op f32 plan from `f` and returns the validation error.
fn ops(f: impl FnOnce(&mut PlanBuilder) -> OpDesc) -> PlanError {
    let mut b = PlanBuilder::new(Precision::F32);
    let op = f(&mut b);
    b.add_op(op);
    b.set_arena_size(1024);
    b.finish_checked().unwrap_err()
}

#[test]
fn op_specific_rejections() {
    // Pool padding as large as the kernel would leave empty windows.
    let e = ops(|b| {
        let x = b.add_activation(DType::F32, &[1, 4, 4, 1], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 3, 2, 1], 64, Quant::NONE);
        let mut op = OpDesc::new(OpKind::MaxPool, x, y);
        (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w) = (2, 2, 2, 2);
        (op.pad_top, op.pad_bottom) = (2, 0);
        op
    });
    assert!(matches!(e, PlanError::BadParam { value: 2, .. }), "{e:?}");
    // Add: partial overlap, and shape mismatch.
    let e = ops(|b| {
        let x = b.add_activation(DType::F32, &[1, 4], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 4], 4, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Add, x, y);
        op.input2 = x;
        op
    });
    assert!(matches!(e, PlanError::Overlap { .. }), "{e:?}");
    let e = ops(|b| {
        let x = b.add_activation(DType::F32, &[1, 4], 0, Quant::NONE);
        let z = b.add_activation(DType::F32, &[1, 5], 16, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Add, x, x);
        op.input2 = z;
        op
    });
    assert_eq!(e, PlanError::ShapeMismatch { op: 0, a: 0, b: 1 });
    // Dense with the wrong number of input features.
    let e = ops(|b| {
        let x = b.add_activation(DType::F32, &[1, 5], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 2], 32, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Dense, x, y);
        op.weights = b.add_weights_f32(&[2, 4], &[0.0; 8]);
        op
    });
    assert!(matches!(
        e,
        PlanError::Shape {
            what: "input elements",
            found: 5,
            expected: 4,
            ..
        }
    ));
    // f16 plan with f32 weights.
    let e = {
        let mut b = PlanBuilder::new(Precision::F16);
        let x = b.add_activation(DType::F32, &[1, 2], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 2], 16, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Dense, x, y);
        op.weights = b.add_weights_f32(&[2, 2], &[0.0; 4]);
        b.add_op(op);
        b.set_arena_size(32);
        b.finish_checked().unwrap_err()
    };
    assert!(matches!(
        e,
        PlanError::WrongDType {
            found: DType::F32,
            expected: DType::F16,
            ..
        }
    ));
    // Clip with NaN bounds, and reshape changing the element count.
    let e = ops(|b| {
        let x = b.add_activation(DType::F32, &[1, 2], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 2], 16, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Dense, x, y);
        op.weights = b.add_weights_f32(&[2, 2], &[0.0; 4]);
        op.activation = Activation::Clip;
        op.clip_min = f32::NAN;
        op
    });
    assert!(matches!(
        e,
        PlanError::BadParam {
            what: "clip range",
            ..
        }
    ));
    let e = ops(|b| {
        let x = b.add_activation(DType::F32, &[1, 2, 2, 1], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 3], 0, Quant::NONE);
        OpDesc::new(OpKind::Reshape, x, y)
    });
    assert!(matches!(
        e,
        PlanError::Shape {
            what: "output elements",
            ..
        }
    ));
    // An unknown op kind.
    let mut plan = sample_plans()[1].clone();
    let op_table = u32::from_le_bytes(plan[44..48].try_into().unwrap()) as usize;
    plan[op_table] = 42;
    fix_crc(&mut plan);
    assert_eq!(
        Plan::parse(&plan).unwrap_err(),
        PlanError::BadEnum {
            what: "op kind",
            index: 0,
            value: 42
        }
    );
    // Sections overlapping each other.
    let mut plan = sample_plans()[1].clone();
    plan[44..48].copy_from_slice(&64u32.to_le_bytes());
    fix_crc(&mut plan);
    assert!(matches!(
        Plan::parse(&plan),
        Err(PlanError::BadSection {
            reason: "overlaps another section",
            ..
        })
    ));
}

/// Fuzz cases: `EDGEFIT_FUZZ_CASES` (`scripts/fuzz.sh` sets 10^6), else
/// `default` (seconds under `cargo test`).
fn fuzz_cases(default: usize) -> usize {
    std::env::var("EDGEFIT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Rewrites the header's `total_size` to `len` (a truncated or extended
/// plan that still describes itself) before the CRC is fixed.
fn set_total_size(plan: &mut [u8], len: usize) {
    if plan.len() >= 16 {
        plan[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    }
}

/// One random mutation of `plan`, the CRC fixed afterwards so the damage
/// reaches the structural checks (and, where it passes them, the engine).
fn mutate(rng: &mut Rng, plan: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bad = plan.to_vec();
    let len = bad.len() as i64;
    // Header and tables: everything before the weight blob.
    let blob = (u32::from_le_bytes(plan[48..52].try_into().unwrap()) as i64).clamp(1, len);
    match rng.range(0, 6) {
        // A few bytes of the header and tables; small values are the
        // interesting ones for sizes and indices.
        0 | 1 => {
            for _ in 0..rng.range(1, 4) {
                let at = rng.range(0, blob - 1) as usize;
                bad[at] = if rng.next().is_multiple_of(2) {
                    rng.range(0, 4) as u8
                } else {
                    rng.next() as u8
                };
            }
        }
        // Bit flips anywhere.
        2 => {
            for _ in 0..rng.range(1, 8) {
                let at = rng.range(0, len - 1) as usize;
                bad[at] ^= 1 << rng.range(0, 7);
            }
        }
        // A run overwritten (0x00, 0xFF, 0x7F: NaN and infinity patterns in
        // float weights, or random bytes).
        3 => {
            let at = rng.range(0, len - 1) as usize;
            let n = (rng.range(1, 32) as usize).min(bad.len() - at);
            let fill = [0x00, 0xFF, 0x7F, rng.next() as u8][rng.range(0, 3) as usize];
            bad[at..at + n].fill(fill);
        }
        // Truncated, the header saying so (or not).
        4 => {
            let n = rng.range(0, len - 1) as usize;
            bad.truncate(n);
            if rng.next().is_multiple_of(2) {
                set_total_size(&mut bad, n);
            }
        }
        // A table record or header field from another plan spliced in.
        5 => {
            let at = rng.range(0, blob - 1) as usize;
            let from = rng.range(0, other.len() as i64 - 1) as usize;
            let n = 4usize.min(bad.len() - at).min(other.len() - from);
            bad[at..at + n].copy_from_slice(&other[from..from + n]);
        }
        // Extended with junk the header counts.
        _ => {
            let extra = rng.range(1, 64) as usize;
            bad.extend((0..extra).map(|_| rng.next() as u8));
            let n = bad.len();
            set_total_size(&mut bad, n);
        }
    }
    fix_crc(&mut bad);
    bad
}

/// The plan mutation fuzzer: thousands of seeded mutations under `cargo
/// test`, `EDGEFIT_FUZZ_CASES` of them under `scripts/fuzz.sh`. Every one
/// is an error or a plan that runs; none panics.
#[test]
fn random_plan_mutations_with_fixed_crc_never_panic() {
    let cases = fuzz_cases(12_000);
    let plans = sample_plans();
    let mut rng = Rng(0xBAD_5EED);
    let mut outcomes = [0usize; 2];
    let mut messages = Vec::new();
    for i in 0..cases {
        let plan = &plans[i % plans.len()];
        let other = &plans[(i + 1) % plans.len()];
        let bad = mutate(&mut rng, plan, other);
        match Plan::parse(&bad) {
            Err(e) => {
                outcomes[0] += 1;
                let m = e.to_string();
                assert!(!m.is_empty());
                // Keep memory flat over 10^6 cases.
                if messages.len() < 1000 {
                    messages.push(m);
                }
            }
            Ok(p) => {
                outcomes[1] += 1;
                exercise(&p, &mut messages);
            }
        }
    }
    eprintln!("{cases} plan mutations [rejected, valid]: {outcomes:?}");
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// A float plan whose weights (or bias) hold `bad` at one element.
fn float_plan_with(bad: f32, in_bias: bool, precision: Precision) -> Result<Vec<u8>, PlanError> {
    let mut b = PlanBuilder::new(precision);
    let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
    let y = b.add_activation(DType::F32, &[1, 5], 32, Quant::NONE);
    let mut w = vec![0.25f32; 40];
    let mut bias = vec![0.5f32; 5];
    if in_bias {
        bias[3] = bad;
    } else {
        w[17] = bad;
    }
    let mut op = OpDesc::new(OpKind::Dense, x, y);
    op.weights = match precision {
        Precision::F16 => b.add_weights_f16(&[5, 8], &w),
        _ => b.add_weights_f32(&[5, 8], &w),
    };
    op.bias = b.add_bias_f32(&bias);
    b.add_op(op);
    b.set_input(x).set_output(y).set_arena_size(64);
    b.finish_checked()
}

#[test]
fn non_finite_float_weights_and_biases_are_refused() {
    for precision in [Precision::F32, Precision::F16] {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -f32::NAN] {
            for in_bias in [false, true] {
                let what = format!("{precision:?} {bad} in the bias: {in_bias}");
                let e = float_plan_with(bad, in_bias, precision).expect_err(&what);
                match e {
                    PlanError::NonFiniteWeight { element, .. } => {
                        assert_eq!(element, if in_bias { 3 } else { 17 }, "{what}")
                    }
                    other => panic!("{what}: {other}"),
                }
                assert_eq!(e.code(), 26);
                assert!(e.to_string().contains("is NaN or infinite"), "{e}");
            }
        }
        // Large but finite (f16 saturates to its maximum) is fine.
        let ok = float_plan_with(6.0e4, false, precision).unwrap();
        assert!(Plan::parse(&ok).is_ok());
    }
    // A NaN written into a valid plan's weight blob (CRC fixed) is refused
    // by the parser too, naming the tensor.
    let mut plan = float_plan_with(1.0, false, Precision::F32).unwrap();
    let p = Plan::parse(&plan).unwrap();
    let w = p.op(0).unwrap().weights;
    let t = p.tensor(w).unwrap();
    let at = p.header().weights_offset as usize + t.offset as usize + 4 * 9;
    plan[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    fix_crc(&mut plan);
    assert_eq!(
        Plan::parse(&plan).unwrap_err(),
        PlanError::NonFiniteWeight {
            tensor: w,
            element: 9
        }
    );
}

/// The metadata trailer: read back exactly, covered by the CRC, ignored by
/// the validator, and absent (not misread) in plans without one, whatever
/// their last bytes are.
#[test]
fn metadata_trailer_round_trips_and_is_optional() {
    for plan in sample_plans() {
        assert_eq!(edgefit_engine::plan::metadata(&plan), None);
        // A plan whose last weight bytes look like a trailer is still read as none.
        let mut forged = plan.clone();
        let n = forged.len();
        forged[n - 8..n - 4].copy_from_slice(b"EFMD");
        forged[n - 4..].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(edgefit_engine::plan::metadata(&forged), None);
    }
    let mut b = PlanBuilder::new(Precision::F32);
    let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
    let y = b.add_activation(DType::F32, &[1, 8], 32, Quant::NONE);
    b.add_op(OpDesc::new(OpKind::Softmax, x, y));
    b.set_input(x).set_output(y).set_arena_size(64);
    let plain = b.finish_checked().unwrap();
    b.set_metadata(b"[preprocess]\nchannels = \"rgb\"\n".to_vec());
    let with = b.finish_checked().unwrap();
    assert_eq!(
        edgefit_engine::plan::metadata(&with),
        Some(&b"[preprocess]\nchannels = \"rgb\"\n"[..])
    );
    let p = Plan::parse(&with).unwrap();
    assert_eq!(p.header().total_size as usize, with.len());
    assert!(with.len() > plain.len());
    // The CRC covers it: one flipped metadata byte is a refused plan.
    let mut bad = with.clone();
    let at = with.len() - 12;
    bad[at] ^= 1;
    assert!(Plan::parse(&bad).is_err());
    // Appended to a finished plan: the same bytes as built with it.
    assert_eq!(
        edgefit_engine::writer::append_metadata(&plain, b"[preprocess]\nchannels = \"rgb\"\n")
            .unwrap(),
        with
    );
    assert!(edgefit_engine::writer::append_metadata(&with, b"again").is_err());
    // Truncated, the trailer is gone with the plan's validity.
    assert_eq!(
        edgefit_engine::plan::metadata(&with[..with.len() - 1]),
        None
    );
}
