//! Tiled segments: a plan whose leading ops run in bands of rows gives the
//! untiled plan's bytes (int8) and bits (f32) on every kernel path, on
//! random networks — convolutions of random kernels, strides and padding
//! (so band edges fall on padding and on halo rows), max and average pools,
//! fused residual convolutions and Adds whose operands lag behind — with
//! the output overwriting the consumed input where the schedule allows it;
//! and the validator refuses every malformed segment.
#![cfg(feature = "std")]

mod common;

use common::*;
use edgefit_engine::tiling::{RowDep, RowInput, Segment, SegmentOp, Source};
use edgefit_engine::{
    DType, Encoding, KernelPath, OpDesc, OpKind, Plan, PlanBuilder, PlanError, Precision, Quant,
    NONE,
};

#[derive(Clone, Copy, Debug)]
enum Layer {
    Conv {
        src: usize,
        cv: Conv,
        residual: Option<usize>,
    },
    Pool {
        src: usize,
        max: bool,
        k: usize,
        s: usize,
        pad: usize,
    },
    Add {
        a: usize,
        b: usize,
    },
}

/// A network: tensor 0 is the input, tensor `i + 1` layer `i`'s output.
#[derive(Clone, Debug)]
struct Net {
    shapes: Vec<[usize; 3]>,
    layers: Vec<Layer>,
    seed: u64,
}

impl Layer {
    fn reads(&self) -> Vec<usize> {
        match *self {
            Layer::Conv { src, residual, .. } => {
                [Some(src), residual].into_iter().flatten().collect()
            }
            Layer::Pool { src, .. } => vec![src],
            Layer::Add { a, b } => vec![a, b],
        }
    }
}

impl Net {
    fn random(rng: &mut Rng) -> Net {
        let h = rng.range(6, 20) as usize;
        let w = rng.range(3, 9) as usize;
        let mut shapes = vec![[h, w, rng.range(1, 5) as usize]];
        let mut layers = Vec::new();
        let n = rng.range(2, 7);
        for _ in 0..n {
            // Mostly the newest tensor, sometimes an older one.
            let src = if rng.range(0, 3) == 0 {
                rng.range(0, shapes.len() as i64 - 1) as usize
            } else {
                shapes.len() - 1
            };
            let [h, w, c] = shapes[src];
            let kind = rng.range(0, 9);
            let (layer, out) = if kind <= 2 {
                // A "same" convolution with a residual: the block input, or
                // another tensor of the shape, lagging behind.
                let cv = Conv {
                    h,
                    w,
                    c,
                    oc: c,
                    kh: 3,
                    kw: 3,
                    sh: 1,
                    sw: 1,
                    pads: [1; 4],
                    depthwise: false,
                };
                let residual = shapes
                    .iter()
                    .position(|s| *s == [h, w, c])
                    .filter(|_| rng.range(0, 2) > 0);
                (Layer::Conv { src, cv, residual }, [h, w, c])
            } else if kind <= 5 || h < 2 {
                let k = (rng.range(1, 3) as usize * 2 - 1).min(h.min(w) + 2);
                let s = rng.range(1, 2) as usize;
                let depthwise = rng.range(0, 5) == 0;
                let pads = [
                    rng.range(0, k as i64 / 2 + 1).min(k as i64 - 1) as usize,
                    k / 2,
                    rng.range(0, k as i64 / 2).min(k as i64 - 1) as usize,
                    k / 2,
                ];
                let mut cv = Conv {
                    h,
                    w,
                    c,
                    oc: if depthwise {
                        c
                    } else {
                        rng.range(1, 6) as usize
                    },
                    kh: k,
                    kw: k,
                    sh: s,
                    sw: s,
                    pads,
                    depthwise,
                };
                if h + pads[0] + pads[2] < k || w + 2 * (k / 2) < k {
                    cv.kh = 1;
                    cv.kw = 1;
                    cv.pads = [0; 4];
                }
                let (oh, ow) = cv.out_hw();
                let out = [oh, ow, cv.oc];
                let residual = shapes
                    .iter()
                    .position(|s| *s == out)
                    .filter(|_| rng.range(0, 1) == 0);
                (Layer::Conv { src, cv, residual }, out)
            } else if kind <= 7 {
                let mut k = 2 + rng.range(0, 1) as usize;
                let mut s = rng.range(1, 2) as usize;
                let mut pad = rng.range(0, 1) as usize;
                if h + 2 * pad < k || w + 2 * pad < k {
                    (k, s, pad) = (1, 1, 0);
                }
                let out = [(h + 2 * pad - k) / s + 1, (w + 2 * pad - k) / s + 1, c];
                (
                    Layer::Pool {
                        src,
                        max: rng.range(0, 1) == 0,
                        k,
                        s,
                        pad,
                    },
                    out,
                )
            } else {
                match shapes[..shapes.len()].iter().rposition(|s| *s == [h, w, c]) {
                    Some(b) if b != src => (Layer::Add { a: src, b }, [h, w, c]),
                    _ => (
                        Layer::Pool {
                            src,
                            max: true,
                            k: 1,
                            s: 1,
                            pad: 0,
                        },
                        [h, w, c],
                    ),
                }
            };
            layers.push(layer);
            shapes.push(out);
        }
        Net {
            shapes,
            layers,
            seed: rng.next(),
        }
    }

    /// The longest run of layers from `first` (at most `len`) that can be
    /// a segment: nothing after it reads a tensor computed inside it but
    /// its last output.
    fn closed_segment(&self, first: usize, len: usize) -> Option<usize> {
        (1..=len.min(self.layers.len() - first)).rev().find(|&n| {
            let inside = first + 1..first + n; // tensors of all but the last op
            let closed = self.layers[first + n..]
                .iter()
                .all(|l| l.reads().iter().all(|t| !inside.contains(t)));
            // Each but the last is read inside (else it never runs).
            let live = inside.clone().all(|t| {
                self.layers[first..first + n]
                    .iter()
                    .any(|l| l.reads().contains(&t))
            });
            closed && live
        })
    }

    /// The schedule's shape of layers `first .. first + n`.
    fn segment(&self, first: usize, n: usize, step: u32) -> Segment {
        let mut seg = Segment::new(step);
        for j in 0..n {
            let layer = self.layers[first + j];
            let source = |t: usize| {
                if t > first && t <= first + j {
                    Source::Inside(t - first - 1)
                } else {
                    Source::Outside(t as u32)
                }
            };
            let input = |t: usize, dep| {
                Some(RowInput {
                    source: source(t),
                    dep,
                    rows: self.shapes[t][0] as u32,
                })
            };
            let inputs = match layer {
                Layer::Conv { src, cv, residual } => [
                    input(
                        src,
                        RowDep::Window {
                            kernel: cv.kh as u32,
                            stride: cv.sh as u32,
                            pad: cv.pads[0] as u32,
                        },
                    ),
                    residual.and_then(|r| input(r, RowDep::Same)),
                ],
                Layer::Pool { src, k, s, pad, .. } => [
                    input(
                        src,
                        RowDep::Window {
                            kernel: k as u32,
                            stride: s as u32,
                            pad: pad as u32,
                        },
                    ),
                    None,
                ],
                Layer::Add { a, b } => [input(a, RowDep::Same), input(b, RowDep::Same)],
            };
            seg.push(SegmentOp {
                rows: self.shapes[first + j + 1][0] as u32,
                inputs,
            })
            .unwrap();
        }
        seg
    }

    /// The plan, untiled or with layers `first .. first + n` tiled at
    /// `step` rows (the output over the input where `reuse`).
    fn plan(
        &self,
        p: Precision,
        tiled: Option<(usize, usize, u32, bool)>,
    ) -> Result<Vec<u8>, PlanError> {
        let mut rng = Rng(self.seed);
        let ad = p.activation_dtype();
        let size = ad.size();
        let int8 = p == Precision::Int8;
        let mut quants: Vec<Quant> = self
            .shapes
            .iter()
            .map(|_| {
                if int8 {
                    Quant::new(
                        0.02 + rng.range(0, 20) as f32 / 200.0,
                        rng.range(-30, 30) as i32,
                    )
                } else {
                    Quant::NONE
                }
            })
            .collect();
        // Pools keep their input's quantisation.
        for (i, l) in self.layers.iter().enumerate() {
            if let Layer::Pool { src, .. } = *l {
                quants[i + 1] = quants[src];
            }
        }
        let mut b = PlanBuilder::new(p);
        let mut a = ArenaAlloc::default();
        let rows = tiled.map(|(first, n, step, _)| {
            let plan = self.segment(first, n, step).plan().unwrap();
            (first, n, plan.buffer_rows)
        });
        let bytes = |t: usize| self.shapes[t].iter().product::<usize>() * size;
        // With `reuse`, the segment's output shares its region with the
        // network input (placed at its end), if the input is not read later.
        let reuse = tiled.filter(|&(first, n, _, reuse)| {
            reuse
                && self.layers[first + n..]
                    .iter()
                    .all(|l| !l.reads().contains(&0))
        });
        let shared = reuse.map(|(first, n, _, _)| {
            let out = first + n;
            let span = bytes(out).max(bytes(0));
            let at = a.alloc(span);
            (out, at, at + ((span - bytes(0)) as u32 / 16) * 16)
        });
        let mut ids = Vec::new();
        for (t, s) in self.shapes.iter().enumerate() {
            let dims = [1, s[0] as u32, s[1] as u32, s[2] as u32];
            let buffer = rows.and_then(|(first, n, cap)| {
                (t > first && t < first + n).then(|| cap[t - first - 1] as usize)
            });
            let offset = match (shared, buffer) {
                (Some((_, _, input_at)), _) if t == 0 => input_at,
                (Some((out, at, _)), _) if t == out => at,
                (_, Some(r)) => a.alloc(r * s[1] * s[2] * size),
                _ => a.alloc(bytes(t)),
            };
            let id = b.add_activation(ad, &dims, offset, quants[t]);
            if let Some(r) = buffer {
                assert!(b.set_row_buffer(id, r as u32));
            }
            ids.push(id);
        }
        let mut ops = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let y = ids[i + 1];
            let qy = quants[i + 1];
            let op = match *layer {
                Layer::Conv { src, cv, residual } => {
                    let wt;
                    let bt;
                    if int8 {
                        wt = b.add_weights_i8(&cv.weight_dims(), &rng.weights_i8(cv.weight_len()));
                        bt = b.add_bias_i32(
                            &(0..cv.oc)
                                .map(|_| rng.range(-3000, 3000) as i32)
                                .collect::<Vec<_>>(),
                        );
                    } else {
                        wt = b.add_weights_f32(&cv.weight_dims(), &rng.f32s(cv.weight_len()));
                        bt = b.add_bias_f32(&rng.f32s(cv.oc));
                    }
                    let mut op = cv.op(ids[src], y, wt, bt);
                    if int8 {
                        let scale = |rng: &mut Rng| qm(0.0005 + rng.range(0, 40) as f64 / 10000.0);
                        let (ms, ss): (Vec<i32>, Vec<i32>) =
                            (0..cv.oc).map(|_| scale(&mut rng)).unzip();
                        op.multipliers = b.add_i32_array(&ms);
                        op.shifts = b.add_i32_array(&ss);
                    }
                    let relu = rng.range(0, 1) == 0;
                    if relu {
                        op.activation = edgefit_engine::Activation::Relu;
                        op.act_min = qy.zero_point;
                    }
                    if let Some(r) = residual {
                        op.residual = ids[r];
                        if int8 {
                            op.conv_out = Quant::new(0.05, rng.range(-20, 20) as i32);
                            (op.conv_act_min, op.conv_act_max) = (-128, 127);
                            op.add = add_params(0.05, quants[r].scale as f64, qy.scale as f64);
                        }
                    }
                    op
                }
                Layer::Pool {
                    src,
                    max,
                    k,
                    s,
                    pad,
                } => {
                    let kind = if max {
                        OpKind::MaxPool
                    } else {
                        OpKind::AvgPool
                    };
                    let mut op = OpDesc::new(kind, ids[src], y);
                    op.kernel_h = k as u16;
                    op.kernel_w = k as u16;
                    op.stride_h = s as u16;
                    op.stride_w = s as u16;
                    (op.pad_top, op.pad_left, op.pad_bottom, op.pad_right) =
                        (pad as u16, pad as u16, pad as u16, pad as u16);
                    op
                }
                Layer::Add { a: x1, b: x2 } => {
                    let mut op = OpDesc::new(OpKind::Add, ids[x1], y);
                    op.input2 = ids[x2];
                    if int8 {
                        op.add = add_params(
                            quants[x1].scale as f64,
                            quants[x2].scale as f64,
                            qy.scale as f64,
                        );
                    }
                    op
                }
            };
            ops.push(op);
        }
        for (i, op) in ops.into_iter().enumerate() {
            if let Some((first, n, step, _)) = tiled {
                if i == first {
                    b.add_op(OpDesc::tiled(n as u32, step as u16, ids[first + n]));
                }
            }
            b.add_op(op);
        }
        b.set_input(ids[0])
            .set_output(ids[self.shapes.len() - 1])
            .set_arena_size(a.next);
        b.finish_checked()
    }
}

fn random_input(p: Precision, net: &Net, rng: &mut Rng) -> Vec<u8> {
    let n: usize = net.shapes[0].iter().product();
    if p == Precision::Int8 {
        bytes_i8(&rng.i8s(n))
    } else {
        bytes_f32(&rng.f32s(n))
    }
}

#[test]
fn tiled_plans_give_the_untiled_bytes_on_random_networks() {
    let mut rng = Rng(0x7113_D5E6_0A1B_2C3D);
    let (mut cases, mut reused, mut residuals, mut pools) = (0, 0, 0, 0);
    for case in 0..400 {
        let net = Net::random(&mut rng);
        let p = if case % 3 == 0 {
            Precision::F32
        } else {
            Precision::Int8
        };
        let first = rng.range(0, net.layers.len() as i64 - 1) as usize;
        let Some(n) = net.closed_segment(first, rng.range(1, 6) as usize) else {
            continue;
        };
        let step = rng.range(1, 3) as u32;
        let reuse = rng.range(0, 1) == 0;
        let untiled = net.plan(p, None).unwrap();
        let tiled = match net.plan(p, Some((first, n, step, reuse))) {
            Ok(plan) => {
                if reuse {
                    reused += 1;
                }
                plan
            }
            // The output may not overwrite input rows still to be read:
            // refused, and the case runs with the two apart.
            Err(PlanError::BadSegment { reason, .. }) if reuse && reason.contains("overwrites") => {
                net.plan(p, Some((first, n, step, false))).unwrap()
            }
            Err(e) => panic!("case {case}: {e} in {net:?}, segment {first}+{n} step {step}"),
        };
        let what = format!("case {case} ({p:?}): {net:?}, segment {first}+{n}, step {step}");
        let input = random_input(p, &net, &mut rng);
        let want = run_both(&untiled, &input, &what);
        let got = run_both(&tiled, &input, &what);
        assert!(got == want, "{what}: tiled output differs");
        let layers = &net.layers[first..first + n];
        residuals += layers
            .iter()
            .filter(|l| {
                matches!(
                    l,
                    Layer::Conv {
                        residual: Some(_),
                        ..
                    } | Layer::Add { .. }
                )
            })
            .count();
        pools += layers
            .iter()
            .filter(|l| matches!(l, Layer::Pool { .. }))
            .count();
        cases += 1;
    }
    // The random cases cover what they are meant to.
    assert!(cases > 300, "{cases} cases");
    assert!(reused > 20, "{reused} with the output over the input");
    assert!(
        residuals > 50 && pools > 50,
        "{residuals} residual, {pools} pool layers tiled"
    );
}

/// input 12x4x2 -> conv 3x3 (4) -> conv 3x3 (4) + residual -> max pool 2/2.
fn small_net() -> Net {
    let conv = |c, oc| Conv {
        h: 12,
        w: 4,
        c,
        oc,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        pads: [1; 4],
        depthwise: false,
    };
    Net {
        shapes: vec![[12, 4, 2], [12, 4, 4], [12, 4, 4], [6, 2, 4]],
        layers: vec![
            Layer::Conv {
                src: 0,
                cv: conv(2, 4),
                residual: None,
            },
            Layer::Conv {
                src: 1,
                cv: conv(4, 4),
                residual: Some(1),
            },
            Layer::Pool {
                src: 2,
                max: true,
                k: 2,
                s: 2,
                pad: 0,
            },
        ],
        seed: 9,
    }
}

/// Rewrites a valid tiled plan's records with `edit` and re-seals it.
fn edited(plan: &[u8], edit: impl FnOnce(&Plan<'_>, &mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = plan.to_vec();
    let p = Plan::parse(plan).unwrap();
    edit(&p, &mut bytes);
    edgefit_engine::writer::fix_crc(&mut bytes);
    bytes
}

fn op_at(p: &Plan<'_>, i: u32) -> usize {
    p.header().op_table_offset as usize + i as usize * 96
}

fn tensor_at(p: &Plan<'_>, i: u32) -> usize {
    p.header().tensor_table_offset as usize + i as usize * 40
}

#[test]
fn the_small_tiled_net_keeps_three_and_four_rows() {
    let net = small_net();
    let plan = net.segment(0, 3, 1).plan().unwrap();
    // conv1: conv2's 3-row window (its residual row is the middle one);
    // conv2: the pool's 2-row window; the pool: its whole output.
    assert_eq!(&plan.buffer_rows[..3], &[3, 2, 6]);
    let tiled = net.plan(Precision::Int8, Some((0, 3, 1, false))).unwrap();
    let p = Plan::parse(&tiled).unwrap();
    assert_eq!(p.header().version, 2);
    assert_eq!(p.op(0).unwrap().kind, OpKind::Tiled);
    assert_eq!(p.tensor(1).unwrap().encoding, Encoding::RowBuffer);
    assert_eq!(p.tensor(1).unwrap().length, 3 * 4 * 4);
    // An untiled plan stays format version 1.
    let untiled = net.plan(Precision::Int8, None).unwrap();
    assert_eq!(Plan::parse(&untiled).unwrap().header().version, 1);
    let input = bytes_i8(&Rng(5).i8s(12 * 4 * 2));
    assert_eq!(
        run_with(&tiled, &input, KernelPath::Portable),
        run_with(&untiled, &input, KernelPath::Portable)
    );
}

#[test]
fn malformed_segments_are_refused() {
    let net = small_net();
    let tiled = net.plan(Precision::Int8, Some((0, 3, 1, false))).unwrap();
    let reason = |bytes: &[u8]| match Plan::parse(bytes) {
        Err(PlanError::BadSegment { reason, .. }) => reason.to_string(),
        Err(PlanError::BadRowBuffer { reason, .. }) => reason.to_string(),
        Err(e) => format!("other: {e}"),
        Ok(_) => "accepted".into(),
    };
    // A row buffer one row short of what the schedule holds.
    let short = edited(&tiled, |p, b| {
        let at = tensor_at(p, 1) + 24;
        b[at..at + 4].copy_from_slice(&(2u32 * 16).to_le_bytes());
    });
    assert!(reason(&short).contains("fewer rows"), "{}", reason(&short));
    // More rows than the tensor has.
    let long = edited(&tiled, |p, b| {
        let at = tensor_at(p, 1) + 24;
        b[at..at + 4].copy_from_slice(&(13u32 * 16).to_le_bytes());
    });
    assert!(
        reason(&long).contains("whole number of rows"),
        "{}",
        reason(&long)
    );
    // A segment running past the last op, or empty, or stepping 0 rows.
    for (field, value) in [(16usize, 9u32), (16, 0)] {
        let bad = edited(&tiled, |p, b| {
            let at = op_at(p, 0) + field;
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
        });
        assert!(
            reason(&bad).starts_with("a segment") || reason(&bad).contains("past"),
            "{}",
            reason(&bad)
        );
    }
    let zero_step = edited(&tiled, |p, b| {
        let at = op_at(p, 0) + 24;
        b[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
    });
    assert!(
        reason(&zero_step).contains("one row"),
        "{}",
        reason(&zero_step)
    );
    // A segment of two ops whose second reads a row buffer it does not hold:
    // the pool then reads conv2's output, a row buffer, from outside.
    let two = edited(&tiled, |p, b| {
        let at = op_at(p, 0) + 16;
        b[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        let out = op_at(p, 0) + 12;
        b[out..out + 4].copy_from_slice(&1u32.to_le_bytes());
    });
    assert!(
        reason(&two).contains("whole tensor") || reason(&two).contains("outside"),
        "{}",
        reason(&two)
    );
    // The tiled op naming another output.
    let other = edited(&tiled, |p, b| {
        let at = op_at(p, 0) + 12;
        b[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
    });
    assert!(
        reason(&other).contains("last op's output"),
        "{}",
        reason(&other)
    );
    // A version-1 plan holding a segment.
    let v1 = edited(&tiled, |_, b| b[4..6].copy_from_slice(&1u16.to_le_bytes()));
    assert!(reason(&v1).contains("version 1"), "{}", reason(&v1));
    // A Dense op (or anything but conv, pools and Add) inside a segment.
    let dense = edited(&tiled, |p, b| b[op_at(p, 3)] = OpKind::Softmax as u8);
    assert!(!reason(&dense).starts_with("accepted"));
}

#[test]
fn an_output_overwriting_unread_input_rows_is_refused() {
    // One conv whose output (8 bytes a row) starts where its input (2 bytes
    // a row) does: writing output row 0 clobbers input rows 0..4 before
    // rows 1..4 are read.
    let conv = Conv {
        h: 12,
        w: 1,
        c: 2,
        oc: 8,
        kh: 3,
        kw: 1,
        sh: 1,
        sw: 1,
        pads: [1, 0, 1, 0],
        depthwise: false,
    };
    let mut b = PlanBuilder::new(Precision::Int8);
    let x = b.add_activation(DType::I8, &[1, 12, 1, 2], 0, Quant::new(0.1, 0));
    let y = b.add_activation(DType::I8, &[1, 12, 1, 8], 0, Quant::new(0.1, 0));
    let wt = b.add_weights_i8(&conv.weight_dims(), &vec![1; conv.weight_len()]);
    let mut op = conv.op(x, y, wt, NONE);
    op.multipliers = b.add_i32_array(&[1 << 30; 8]);
    op.shifts = b.add_i32_array(&[0; 8]);
    b.add_op(OpDesc::tiled(1, 1, y));
    b.add_op(op);
    b.set_input(x).set_output(y).set_arena_size(96);
    match b.finish_checked() {
        Err(PlanError::BadSegment { reason, row, .. }) => {
            assert!(reason.contains("overwrites"), "{reason}");
            assert_eq!(row, 0);
        }
        other => panic!("{other:?}"),
    }
    // Overlapping the output's last row only, the input is read before the
    // output reaches it.
    let mut b2 = b.clone();
    b2.set_offset(x, 88).set_arena_size(112);
    assert!(b2.finish_checked().is_ok());
}
