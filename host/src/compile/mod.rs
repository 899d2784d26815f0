//! The plan compiler: edgefit IR (+ calibrated ranges for int8) -> an `.efp` plan.
//!
//! * Activations move from ONNX's NCHW to NHWC; conv weights from OIHW to OHWI
//!   (depthwise to `[kh, kw, C]`); a dense layer fed by a flattened feature map gets
//!   its columns permuted so the NHWC flatten order gives the same result.
//! * int8: weights symmetric per output channel, activations asymmetric per tensor
//!   from the calibrated ranges, int32 biases, Q31 multipliers and shifts; pooling
//!   and reshape keep their input's parameters; softmax outputs take TFLite's
//!   fixed 1/256 scale and its exponentials a 256-entry table.
//! * f16: weights stored as IEEE half, activations and biases f32. f32: all f32.
//! * Activation memory comes from [`crate::memory::plan_activations`]; Reshape is a
//!   view sharing its input's buffer.

use edgefit_engine::{
    Activation as EngineActivation, AddParams, DType, OpDesc, OpKind, PlanBuilder, PlanError,
    Precision, Quant, NONE,
};
use serde::Serialize;

use crate::fuse::fuse_residual_adds;
use crate::ir::{Activation, Graph, Op, Param, TensorId};
use crate::layout::{self, Relayout, Storage};
use crate::memory::plan_activations;
use crate::quant::params::{quantize_multiplier, quantize_weights_per_channel, QuantParams};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("layer `{layer}` ({op}): {reason}")]
    Unsupported {
        layer: String,
        op: &'static str,
        reason: String,
    },
    #[error(transparent)]
    NoWeights(#[from] crate::ir::NoWeightValues),
    #[error(
        "int8 needs a calibrated range for every tensor ({got} ranges for {expected} tensors)"
    )]
    MissingRanges { got: usize, expected: usize },
    #[error("layer `{layer}`: a weight or bias holds {value}: edgefit compiles finite weights only (NaN and infinity have no int8 value, and their f16/f32 bits would differ between kernels)")]
    NonFinite { layer: String, value: f32 },
    #[error("the compiled plan does not validate: {0}")]
    Invalid(String),
}

/// Figures about a compiled plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub precision: &'static str,
    pub plan_bytes: usize,
    pub weight_bytes: usize,
    /// Weight tensors stored sparse (bitmap plus non-zero values), of all.
    pub sparse_tensors: usize,
    pub weight_tensors: usize,
    pub arena_bytes: usize,
    pub arena_lower_bound_bytes: usize,
    /// Scratch the fast kernels use after the arena (0 for microcontroller plans).
    pub scratch_bytes: usize,
    pub ops: usize,
    /// Input quantisation (int8 plans) so a host can quantise samples.
    pub input_quant: Option<QuantParams>,
    pub output_quant: Option<QuantParams>,
    /// Notes on what the compiler changed (dropped softmax, ...).
    pub notes: Vec<String>,
}

pub struct CompiledPlan {
    pub bytes: Vec<u8>,
    pub summary: PlanSummary,
}

pub fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Int8 => "int8",
        Precision::F16 => "f16",
        Precision::F32 => "f32",
    }
}

/// NCHW (or `[N, F]`) -> the engine's dims (NHWC).
fn engine_dims(shape: &[usize]) -> Vec<u32> {
    layout::engine_dims(shape)
        .iter()
        .map(|&d| d as u32)
        .collect()
}

fn data(p: &Param) -> Result<&[f32], CompileError> {
    p.data
        .as_deref()
        .ok_or(CompileError::NoWeights(crate::ir::NoWeightValues))
}

/// Index permutation for OIHW -> OHWI (regular) or OIHW -> [kh, kw, C] (depthwise).
fn conv_layout(o: usize, i: usize, kh: usize, kw: usize, depthwise: bool) -> Vec<usize> {
    let mut order = Vec::with_capacity(o * i * kh * kw);
    if depthwise {
        for y in 0..kh {
            for x in 0..kw {
                for c in 0..o {
                    order.push(((c * i) * kh + y) * kw + x);
                }
            }
        }
    } else {
        for oc in 0..o {
            for y in 0..kh {
                for x in 0..kw {
                    for ic in 0..i {
                        order.push(((oc * i + ic) * kh + y) * kw + x);
                    }
                }
            }
        }
    }
    order
}

/// Column permutation for a dense layer whose input is an NCHW map flattened:
/// NHWC position `(h, w, c)` reads NCHW column `c*H*W + h*W + w`.
fn flatten_permutation(c: usize, h: usize, w: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(c * h * w);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                order.push(ch * h * w + y * w + x);
            }
        }
    }
    order
}

fn permute<T: Copy>(values: &[T], order: &[usize]) -> Vec<T> {
    order.iter().map(|&i| values[i]).collect()
}

fn int8_clamp(act: Activation, q: &QuantParams) -> (i32, i32) {
    match act {
        Activation::None => (-128, 127),
        Activation::Relu => (q.zero_point.clamp(-128, 127), 127),
        Activation::Clip { min, max } => {
            let (lo, hi) = q.clamp_range(min, max);
            (lo as i32, hi as i32)
        }
    }
}

fn float_activation(op: &mut OpDesc, act: Activation) {
    match act {
        Activation::None => op.activation = EngineActivation::None,
        Activation::Relu => op.activation = EngineActivation::Relu,
        Activation::Clip { min, max } => {
            op.activation = EngineActivation::Clip;
            op.clip_min = min;
            op.clip_max = max;
        }
    }
}

/// How a plan is laid out in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// Fuse residual additions into a conv that writes over the skip tensor
    /// (two live activations per ResNet block instead of three).
    pub fuse_residuals: bool,
    /// Let the engine's fast kernels use scratch memory after the arena (im2col,
    /// f16 weight conversion). Off for microcontrollers: same results, less RAM.
    pub scratch: bool,
    /// Store int8 conv/dense weights bitmap-sparse where that is smaller
    /// than dense (pruned models); the engine's results are the same bytes.
    pub sparse_weights: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            fuse_residuals: true,
            scratch: true,
            sparse_weights: true,
        }
    }
}

/// Compiles `graph` at `precision` with the default options. `ranges` (one per
/// graph tensor, from calibration) is required for int8.
pub fn compile(
    graph: &Graph,
    precision: Precision,
    ranges: Option<&[(f32, f32)]>,
    plan_id: u32,
) -> Result<CompiledPlan, CompileError> {
    compile_with(graph, precision, ranges, plan_id, CompileOptions::default())
}

pub fn compile_with(
    graph: &Graph,
    precision: Precision,
    ranges: Option<&[(f32, f32)]>,
    plan_id: u32,
    options: CompileOptions,
) -> Result<CompiledPlan, CompileError> {
    graph.require_weight_values()?;
    let fused;
    let graph = if options.fuse_residuals {
        fused = fuse_residual_adds(graph);
        &fused
    } else {
        graph
    };
    let notes: Vec<String> = vec![];
    layout::check(graph).map_err(|e| CompileError::Unsupported {
        layer: e.node,
        op: e.op,
        reason: e.reason,
    })?;
    let storage = layout::storage(graph);
    let elem = if precision == Precision::Int8 { 1 } else { 4 };
    let memory = plan_activations(graph, elem);

    // Activation quantisation per tensor (int8): calibrated, or inherited through
    // ops that keep their input's scale.
    let mut quant: Vec<Option<QuantParams>> = vec![None; graph.tensors.len()];
    if precision == Precision::Int8 {
        let ranges = ranges.ok_or(CompileError::MissingRanges {
            got: 0,
            expected: graph.tensors.len(),
        })?;
        if ranges.len() != graph.tensors.len() {
            return Err(CompileError::MissingRanges {
                got: ranges.len(),
                expected: graph.tensors.len(),
            });
        }
        quant[graph.input] = Some(QuantParams::from_range(
            ranges[graph.input].0,
            ranges[graph.input].1,
        ));
        // A fused conv's own (pre-addition) result keeps its calibrated parameters.
        for node in &graph.nodes {
            if let Op::Conv(c) = &node.op {
                if let Some(r) = c.residual {
                    let (lo, hi) = ranges[r.conv_output];
                    quant[r.conv_output] = Some(QuantParams::from_range(lo, hi));
                }
            }
        }
        for node in &graph.nodes {
            let q = match node.op {
                Op::MaxPool(_)
                | Op::AvgPool(_)
                | Op::GlobalAvgPool
                | Op::Reshape
                | Op::Transpose { .. } => quant[node.inputs[0]],
                // Probabilities in [0, 1): TFLite's fixed softmax quantisation.
                Op::Softmax { .. } => Some(QuantParams {
                    scale: 1.0 / 256.0,
                    zero_point: -128,
                }),
                _ => {
                    let (lo, hi) = ranges[node.output];
                    Some(QuantParams::from_range(lo, hi))
                }
            };
            quant[node.output] = q;
        }
    }
    let q_of = |t: TensorId| {
        quant[t].unwrap_or(QuantParams {
            scale: 1.0,
            zero_point: 0,
        })
    };
    let engine_quant = |t: TensorId| {
        let q = q_of(t);
        if precision == Precision::Int8 {
            Quant::new(q.scale, q.zero_point)
        } else {
            Quant::NONE
        }
    };
    let act_dtype = if precision == Precision::Int8 {
        DType::I8
    } else {
        DType::F32
    };

    let mut b = PlanBuilder::new(precision);
    b.set_plan_id(plan_id)
        .set_arena_size(memory.plan.arena_size as u32);
    if !options.scratch {
        b.set_scratch_bytes(0);
    }
    // Activation tensors in graph order; unused tensors (the dropped softmax output) are skipped.
    let mut engine_tensor = vec![NONE; graph.tensors.len()];
    let used = |t: TensorId| {
        t == graph.input
            || graph
                .nodes
                .iter()
                .any(|n| n.output == t || n.inputs.contains(&t))
    };
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if used(t) {
            engine_tensor[t] = b.add_activation(
                act_dtype,
                &engine_dims(&tensor.shape),
                memory.offset_of(t) as u32,
                engine_quant(t),
            );
        }
    }
    b.set_input(engine_tensor[graph.input])
        .set_output(engine_tensor[graph.output]);

    let mut weight_bytes = 0usize;
    let mut counts = WeightCounts {
        allow_sparse: options.sparse_weights,
        ..WeightCounts::default()
    };
    for (index, node) in graph.nodes.iter().enumerate() {
        let unsupported = |reason: String| CompileError::Unsupported {
            layer: node.name.clone(),
            op: node.op.kind(),
            reason,
        };
        let (input, output) = (engine_tensor[node.inputs[0]], engine_tensor[node.output]);
        match &node.op {
            Op::Conv(c) => {
                let depthwise =
                    c.groups > 1 && c.groups == c.in_channels && c.groups == c.out_channels;
                if c.groups != 1 && !depthwise {
                    return Err(unsupported(format!(
                        "grouped convolution with {} groups",
                        c.groups
                    )));
                }
                if c.dilation != [1, 1] {
                    return Err(unsupported("dilated convolution".into()));
                }
                let w = data(&c.weight)?;
                let (o, i, kh, kw) = (
                    c.out_channels,
                    c.in_channels / c.groups,
                    c.kernel[0],
                    c.kernel[1],
                );
                let order = conv_layout(o, i, kh, kw, depthwise);
                let dims: Vec<u32> = if depthwise {
                    vec![kh as u32, kw as u32, o as u32]
                } else {
                    vec![o as u32, kh as u32, kw as u32, i as u32]
                };
                let mut op = OpDesc::new(OpKind::Conv2d, input, output);
                op.kernel_h = u16_field("kernel_h", kh).map_err(&unsupported)?;
                op.kernel_w = u16_field("kernel_w", kw).map_err(&unsupported)?;
                op.stride_h = u16_field("stride_h", c.stride[0]).map_err(&unsupported)?;
                op.stride_w = u16_field("stride_w", c.stride[1]).map_err(&unsupported)?;
                op.pad_top = u16_field("pad_top", c.pads[0]).map_err(&unsupported)?;
                op.pad_left = u16_field("pad_left", c.pads[1]).map_err(&unsupported)?;
                op.pad_bottom = u16_field("pad_bottom", c.pads[2]).map_err(&unsupported)?;
                op.pad_right = u16_field("pad_right", c.pads[3]).map_err(&unsupported)?;
                op.groups = c.groups as u32;
                let bias = match &c.bias {
                    Some(p) => Some(data(p)?),
                    None => None,
                };
                finite_weights(&node.name, w, bias)?;
                weight_bytes += emit_weights(
                    &mut b,
                    &mut counts,
                    &mut op,
                    precision,
                    w,
                    o,
                    &order,
                    &dims,
                    bias,
                    node.inputs[0],
                    c.residual.map_or(node.output, |r| r.conv_output),
                    &q_of,
                    c.activation,
                )?;
                if let Some(r) = c.residual {
                    if c.activation != Activation::None {
                        return Err(unsupported(
                            "an activation between a conv and its fused residual addition".into(),
                        ));
                    }
                    op.residual = engine_tensor[node.inputs[1]];
                    if precision == Precision::Int8 {
                        let (qc, qs, qo) =
                            (q_of(r.conv_output), q_of(node.inputs[1]), q_of(node.output));
                        op.conv_out = Quant::new(qc.scale, qc.zero_point);
                        (op.conv_act_min, op.conv_act_max) = (op.act_min, op.act_max);
                        op.add = add_params(&qc, &qs, &qo);
                        (op.act_min, op.act_max) = int8_clamp(r.activation, &qo);
                        op.activation = match r.activation {
                            Activation::Relu => EngineActivation::Relu,
                            _ => EngineActivation::None,
                        };
                    } else {
                        float_activation(&mut op, r.activation);
                    }
                }
                b.add_op(op);
            }
            Op::Dense(d) => {
                let w = data(&d.weight)?;
                // A flatten left in NHWC byte order: permute the columns instead.
                let order: Vec<usize> = match storage[node.inputs[0]] {
                    Storage::FlatNhwc { c, h, w } if h * w > 1 && c > 1 => {
                        let cols = flatten_permutation(c, h, w);
                        (0..d.out_features)
                            .flat_map(|r| cols.iter().map(move |&c| r * d.in_features + c))
                            .collect()
                    }
                    _ => (0..w.len()).collect(),
                };
                let dims = vec![d.out_features as u32, d.in_features as u32];
                let mut op = OpDesc::new(OpKind::Dense, input, output);
                let bias = match &d.bias {
                    Some(p) => Some(data(p)?),
                    None => None,
                };
                finite_weights(&node.name, w, bias)?;
                weight_bytes += emit_weights(
                    &mut b,
                    &mut counts,
                    &mut op,
                    precision,
                    w,
                    d.out_features,
                    &order,
                    &dims,
                    bias,
                    node.inputs[0],
                    node.output,
                    &q_of,
                    d.activation,
                )?;
                b.add_op(op);
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let kind = if matches!(node.op, Op::MaxPool(_)) {
                    OpKind::MaxPool
                } else {
                    OpKind::AvgPool
                };
                if kind == OpKind::AvgPool && p.count_include_pad && p.pads.iter().any(|&x| x > 0) {
                    return Err(unsupported(
                        "average pooling that counts padding (count_include_pad=1)".into(),
                    ));
                }
                let mut op = OpDesc::new(kind, input, output);
                op.kernel_h = u16_field("kernel_h", p.kernel[0]).map_err(&unsupported)?;
                op.kernel_w = u16_field("kernel_w", p.kernel[1]).map_err(&unsupported)?;
                op.stride_h = u16_field("stride_h", p.stride[0]).map_err(&unsupported)?;
                op.stride_w = u16_field("stride_w", p.stride[1]).map_err(&unsupported)?;
                op.pad_top = u16_field("pad_top", p.pads[0]).map_err(&unsupported)?;
                op.pad_left = u16_field("pad_left", p.pads[1]).map_err(&unsupported)?;
                op.pad_bottom = u16_field("pad_bottom", p.pads[2]).map_err(&unsupported)?;
                op.pad_right = u16_field("pad_right", p.pads[3]).map_err(&unsupported)?;
                b.add_op(op);
            }
            Op::GlobalAvgPool => {
                b.add_op(OpDesc::new(OpKind::GlobalAvgPool, input, output));
            }
            Op::Reshape | Op::Transpose { .. } => {
                match layout::relayout(graph, &storage, index).map_err(unsupported)? {
                    Relayout::View => b.add_op(OpDesc::new(OpKind::Reshape, input, output)),
                    Relayout::Copy { input_dims, perm } => {
                        let x = node.inputs[0];
                        let own = layout::engine_dims(&graph.tensor(x).shape);
                        // Read the input's buffer under other dims: a second tensor
                        // record over the same bytes.
                        let source = if input_dims == own {
                            input
                        } else {
                            let dims: Vec<u32> = input_dims.iter().map(|&d| d as u32).collect();
                            b.add_activation(
                                act_dtype,
                                &dims,
                                memory.offset_of(x) as u32,
                                engine_quant(x),
                            )
                        };
                        b.add_op(OpDesc::transpose(source, output, perm))
                    }
                };
            }
            Op::Add { activation } => {
                let mut op = OpDesc::new(OpKind::Add, input, output);
                op.input2 = engine_tensor[node.inputs[1]];
                if precision == Precision::Int8 {
                    let (q1, q2, qo) = (
                        q_of(node.inputs[0]),
                        q_of(node.inputs[1]),
                        q_of(node.output),
                    );
                    op.add = add_params(&q1, &q2, &qo);
                    (op.act_min, op.act_max) = int8_clamp(*activation, &qo);
                } else {
                    float_activation(&mut op, *activation);
                }
                b.add_op(op);
            }
            Op::Softmax { .. } => {
                let mut op = OpDesc::new(OpKind::Softmax, input, output);
                if precision == Precision::Int8 {
                    op.multipliers =
                        b.add_i32_array(&softmax_exp_table(q_of(node.inputs[0]).scale));
                }
                b.add_op(op);
            }
        }
    }
    let scratch = b.scratch_bytes() as usize;
    let bytes = b
        .finish_checked()
        .map_err(|e: PlanError| CompileError::Invalid(e.to_string()))?;
    let summary = PlanSummary {
        precision: precision_name(precision),
        plan_bytes: bytes.len(),
        weight_bytes,
        sparse_tensors: counts.sparse,
        weight_tensors: counts.total,
        arena_bytes: memory.plan.arena_size,
        arena_lower_bound_bytes: memory.plan.lower_bound,
        scratch_bytes: scratch,
        ops: graph.nodes.len(),
        input_quant: quant[graph.input],
        output_quant: quant[graph.output],
        notes,
    };
    Ok(CompiledPlan { bytes, summary })
}

/// A window parameter for the plan's 16-bit fields.
fn u16_field(what: &str, v: usize) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("{what} = {v} exceeds the plan's limit of 65535"))
}

/// Refuses NaN or infinite weights and biases of layer `layer`.
fn finite_weights(layer: &str, w: &[f32], bias: Option<&[f32]>) -> Result<(), CompileError> {
    match w.iter().chain(bias.unwrap_or(&[])).find(|v| !v.is_finite()) {
        Some(&value) => Err(CompileError::NonFinite {
            layer: layer.to_owned(),
            value,
        }),
        None => Ok(()),
    }
}

/// TFLite's int8 Add parameters (left shift 20) for inputs `q1`, `q2` and output `qo`.
fn add_params(q1: &QuantParams, q2: &QuantParams, qo: &QuantParams) -> AddParams {
    let left_shift = 20;
    let twice_max = 2.0 * q1.scale.max(q2.scale) as f64;
    let (m1, s1) = quantize_multiplier(q1.scale as f64 / twice_max);
    let (m2, s2) = quantize_multiplier(q2.scale as f64 / twice_max);
    let (mo, so) = quantize_multiplier(twice_max / ((1u64 << left_shift) as f64 * qo.scale as f64));
    AddParams {
        input1_multiplier: m1,
        input1_shift: s1,
        input2_multiplier: m2,
        input2_shift: s2,
        output_multiplier: mo,
        output_shift: so,
        left_shift,
    }
}

/// Adds a conv/dense layer's weights, bias and (int8) requantisation to the plan;
/// returns the weight bytes added. `w` is in ONNX layout with `rows` output
/// channels contiguous; `order` maps the engine layout to ONNX indices.
/// How the int8 weight tensors were stored.
#[derive(Debug, Default)]
struct WeightCounts {
    allow_sparse: bool,
    sparse: usize,
    total: usize,
}

#[allow(clippy::too_many_arguments)]
fn emit_weights(
    b: &mut PlanBuilder,
    counts: &mut WeightCounts,
    op: &mut OpDesc,
    precision: Precision,
    w: &[f32],
    rows: usize,
    order: &[usize],
    dims: &[u32],
    bias: Option<&[f32]>,
    input: TensorId,
    output: TensorId,
    q_of: &dyn Fn(TensorId) -> QuantParams,
    act: Activation,
) -> Result<usize, CompileError> {
    counts.total += 1;
    match precision {
        Precision::Int8 => {
            let (qw, scales) = quantize_weights_per_channel(w, rows);
            let qw = permute(&qw, order);
            let depthwise = dims.len() == 3;
            let stored = if counts.allow_sparse && !depthwise {
                let (t, is_sparse) = b.add_weights_i8_compact(dims, &qw);
                op.weights = t;
                counts.sparse += usize::from(is_sparse);
                b.tensors().get(t as usize).map_or(0, |d| d.length as usize)
            } else {
                op.weights = b.add_weights_i8(dims, &qw);
                qw.len()
            };
            let (qi, qo) = (q_of(input), q_of(output));
            let mut multipliers = Vec::with_capacity(rows);
            let mut shifts = Vec::with_capacity(rows);
            let mut qbias = Vec::with_capacity(rows);
            for (c, &sw) in scales.iter().enumerate() {
                let s_acc = qi.scale as f64 * sw as f64;
                let bv = bias.map_or(0.0, |b| b[c]) as f64;
                qbias.push((bv / s_acc).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32);
                let (m, s) = quantize_multiplier(s_acc / qo.scale as f64);
                multipliers.push(m);
                shifts.push(s);
            }
            op.bias = b.add_bias_i32(&qbias);
            op.multipliers = b.add_i32_array(&multipliers);
            op.shifts = b.add_i32_array(&shifts);
            (op.act_min, op.act_max) = int8_clamp(act, &qo);
            // int8 clamps live in act_min/act_max; the activation code is informational.
            op.activation = if act == Activation::Relu {
                EngineActivation::Relu
            } else {
                EngineActivation::None
            };
            Ok(stored + 4 * rows + 8 * rows)
        }
        Precision::F16 | Precision::F32 => {
            let pw = permute(w, order);
            op.weights = if precision == Precision::F16 {
                b.add_weights_f16(dims, &pw)
            } else {
                b.add_weights_f32(dims, &pw)
            };
            if let Some(bias) = bias {
                op.bias = b.add_bias_f32(bias);
            }
            float_activation(op, act);
            let per = if precision == Precision::F16 { 2 } else { 4 };
            Ok(pw.len() * per + bias.map_or(0, |b| 4 * b.len()))
        }
    }
}

/// The int8 softmax's exponential table for an input of `scale`: entry `d`
/// is `exp(-d * scale)` in 16-bit fixed point (the engine's
/// `kernels::softmax::softmax_i8` divides with it, integers only).
fn softmax_exp_table(scale: f32) -> Vec<i32> {
    use edgefit_engine::kernels::softmax::{EXP_ONE, EXP_TABLE_LEN};
    (0..EXP_TABLE_LEN)
        .map(|d| ((-(d as f64) * scale as f64).exp() * EXP_ONE as f64).round() as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_layouts_move_channels_last() {
        // OIHW [2, 1, 1, 2] -> OHWI [2, 1, 2, 1]: unchanged order for one input channel.
        assert_eq!(conv_layout(2, 1, 1, 2, false), vec![0, 1, 2, 3]);
        // OIHW [1, 2, 1, 2] (o=1, i=2, kw=2): OHWI reads (kw0,i0),(kw0,i1),(kw1,i0),(kw1,i1).
        assert_eq!(conv_layout(1, 2, 1, 2, false), vec![0, 2, 1, 3]);
        // Depthwise [C=2, 1, 1, 2] -> [kh, kw, C]: (kw0,c0),(kw0,c1),(kw1,c0),(kw1,c1).
        assert_eq!(conv_layout(2, 1, 1, 2, true), vec![0, 2, 1, 3]);
    }

    #[test]
    fn flatten_permutation_reads_nchw_columns_in_nhwc_order() {
        // C=2, H=1, W=2: NHWC order (w0,c0),(w0,c1),(w1,c0),(w1,c1) = NCHW 0,2,1,3.
        assert_eq!(flatten_permutation(2, 1, 2), vec![0, 2, 1, 3]);
    }
}
