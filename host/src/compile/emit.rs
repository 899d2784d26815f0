//! The emit pass: the graph, with what the earlier passes decided (storage,
//! memory offsets, int8 parameters), written as plan tensors, weights and
//! ops. One function per op family.

use edgefit_engine::{
    Activation as EngineActivation, AddParams, DType, OpDesc, OpKind, PlanBuilder, PlanError,
    Precision, Quant, NONE,
};

use super::{
    conv_layout, data, flatten_permutation, float_activation, int8_clamp, permute, precision_name,
    CompileError, CompileOptions, CompiledPlan, PlanSummary,
};
use crate::ir::{Activation, Conv, Dense, Graph, Node, Op, Param, Pool, TensorId};
use crate::layout::{self, Relayout, Storage};
use crate::memory::ActivationPlan;
use crate::quant::params::{quantize_multiplier, quantize_weights_per_channel, QuantParams};

/// What the passes before emission decided.
pub struct Decided<'a> {
    pub precision: Precision,
    pub plan_id: u32,
    pub options: CompileOptions,
    pub storage: &'a [Storage],
    pub memory: &'a ActivationPlan,
    pub quant: &'a [Option<QuantParams>],
    /// The tiled segment, if the RAM budget called for one.
    pub tiling: Option<&'a super::tiling::Tiling>,
}

/// A tensor's int8 parameters (identity for float plans).
fn q_of(quant: &[Option<QuantParams>], t: TensorId) -> QuantParams {
    quant[t].unwrap_or(QuantParams {
        scale: 1.0,
        zero_point: 0,
    })
}

/// The plan being written.
struct Emitter<'a> {
    graph: &'a Graph,
    d: &'a Decided<'a>,
    b: PlanBuilder,
    /// Plan tensor index of each graph tensor (`NONE`: not in the plan).
    engine_tensor: Vec<u32>,
    counts: WeightCounts,
    weight_bytes: usize,
}

impl Emitter<'_> {
    fn engine_quant(&self, t: TensorId) -> Quant {
        let q = q_of(self.d.quant, t);
        if self.d.precision == Precision::Int8 {
            Quant::new(q.scale, q.zero_point)
        } else {
            Quant::NONE
        }
    }

    fn act_dtype(&self) -> DType {
        if self.d.precision == Precision::Int8 {
            DType::I8
        } else {
            DType::F32
        }
    }

    fn q(&self, t: TensorId) -> QuantParams {
        q_of(self.d.quant, t)
    }
}

/// An error naming `node` and its op.
fn unsupported(node: &Node) -> impl Fn(String) -> CompileError + '_ {
    move |reason| CompileError::Unsupported {
        layer: node.name.clone(),
        op: node.op.kind(),
        reason,
    }
}

/// Writes the plan.
pub fn emit_plan(graph: &Graph, d: &Decided<'_>) -> Result<CompiledPlan, CompileError> {
    let mut b = PlanBuilder::new(d.precision);
    b.set_plan_id(d.plan_id)
        .set_arena_size(d.memory.plan.arena_size as u32);
    if !d.options.scratch {
        b.set_scratch_bytes(0);
    }
    let mut e = Emitter {
        graph,
        d,
        b,
        engine_tensor: vec![NONE; graph.tensors.len()],
        counts: WeightCounts {
            allow_sparse: d.options.sparse_weights,
            ..WeightCounts::default()
        },
        weight_bytes: 0,
    };
    // Activation tensors in graph order; unused tensors (the dropped softmax output) are skipped.
    let used = |t: TensorId| {
        t == graph.input
            || graph
                .nodes
                .iter()
                .any(|n| n.output == t || n.inputs.contains(&t))
    };
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if used(t) {
            let (dtype, quant) = (e.act_dtype(), e.engine_quant(t));
            e.engine_tensor[t] = e.b.add_activation(
                dtype,
                &super::engine_dims(&tensor.shape),
                d.memory.offset_of(t) as u32,
                quant,
            );
        }
    }
    e.b.set_input(e.engine_tensor[graph.input])
        .set_output(e.engine_tensor[graph.output]);
    if let Some(t) = d.tiling {
        for &(tensor, rows) in &t.buffers.rows {
            if !e.b.set_row_buffer(e.engine_tensor[tensor], rows as u32) {
                return Err(CompileError::Invalid(format!(
                    "tensor {tensor} cannot be a row buffer"
                )));
            }
        }
    }

    for (index, node) in graph.nodes.iter().enumerate() {
        if let Some(t) = d.tiling.filter(|t| t.buffers.first == index) {
            let b = &t.buffers;
            let rows = u16::try_from(t.rows_per_step).unwrap_or(u16::MAX);
            e.b.add_op(OpDesc::tiled(
                (b.last - b.first + 1) as u32,
                rows,
                e.engine_tensor[graph.nodes[b.last].output],
            ));
        }
        let op = match &node.op {
            Op::Conv(c) => e.conv(node, c)?,
            Op::Dense(dense) => e.dense(node, dense)?,
            Op::MaxPool(p) => e.pool(node, p, OpKind::MaxPool)?,
            Op::AvgPool(p) => e.pool(node, p, OpKind::AvgPool)?,
            Op::GlobalAvgPool => e.simple(node, OpKind::GlobalAvgPool),
            Op::Reshape | Op::Transpose { .. } => e.relayout(node, index)?,
            Op::Add { activation } => e.add(node, *activation),
            Op::Softmax { .. } => e.softmax(node),
        };
        e.b.add_op(op);
    }
    let scratch = e.b.scratch_bytes() as usize;
    let bytes =
        e.b.finish_checked()
            .map_err(|err: PlanError| CompileError::Invalid(err.to_string()))?;
    let summary = PlanSummary {
        precision: precision_name(d.precision),
        plan_bytes: bytes.len(),
        weight_bytes: e.weight_bytes,
        sparse_tensors: e.counts.sparse,
        weight_tensors: e.counts.total,
        arena_bytes: d.memory.plan.arena_size,
        arena_lower_bound_bytes: d.memory.plan.lower_bound,
        scratch_bytes: scratch,
        ops: e.b.ops().len(),
        input_quant: d.quant[graph.input],
        output_quant: d.quant[graph.output],
        notes: vec![],
        tiling: None,
    };
    Ok(CompiledPlan { bytes, summary })
}

/// A conv or dense layer's weight and bias values, refused when the model
/// carries none or holds NaN / infinity.
fn layer_values<'p>(
    node: &Node,
    weight: &'p Param,
    bias: Option<&'p Param>,
) -> Result<(&'p [f32], Option<&'p [f32]>), CompileError> {
    let w = data(weight)?;
    let bias = bias.map(data).transpose()?;
    finite_weights(&node.name, w, bias)?;
    Ok((w, bias))
}

/// A window's fields in the plan's 16-bit op record.
fn set_window(
    op: &mut OpDesc,
    node: &Node,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
) -> Result<(), CompileError> {
    let bad = unsupported(node);
    op.kernel_h = u16_field("kernel_h", kernel[0]).map_err(&bad)?;
    op.kernel_w = u16_field("kernel_w", kernel[1]).map_err(&bad)?;
    op.stride_h = u16_field("stride_h", stride[0]).map_err(&bad)?;
    op.stride_w = u16_field("stride_w", stride[1]).map_err(&bad)?;
    op.pad_top = u16_field("pad_top", pads[0]).map_err(&bad)?;
    op.pad_left = u16_field("pad_left", pads[1]).map_err(&bad)?;
    op.pad_bottom = u16_field("pad_bottom", pads[2]).map_err(&bad)?;
    op.pad_right = u16_field("pad_right", pads[3]).map_err(&bad)?;
    Ok(())
}

impl Emitter<'_> {
    fn io(&self, node: &Node) -> (u32, u32) {
        (
            self.engine_tensor[node.inputs[0]],
            self.engine_tensor[node.output],
        )
    }

    fn simple(&mut self, node: &Node, kind: OpKind) -> OpDesc {
        let (input, output) = self.io(node);
        OpDesc::new(kind, input, output)
    }

    /// Conv: OHWI weights (depthwise `[kh, kw, C]`), and a fused residual
    /// addition's parameters.
    fn conv(&mut self, node: &Node, c: &Conv) -> Result<OpDesc, CompileError> {
        let bad = unsupported(node);
        let depthwise = c.groups > 1 && c.groups == c.in_channels && c.groups == c.out_channels;
        if c.groups != 1 && !depthwise {
            return Err(bad(format!("grouped convolution with {} groups", c.groups)));
        }
        if c.dilation != [1, 1] {
            return Err(bad("dilated convolution".into()));
        }
        let (w, bias) = layer_values(node, &c.weight, c.bias.as_ref())?;
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
        let (input, output) = self.io(node);
        let mut op = OpDesc::new(OpKind::Conv2d, input, output);
        set_window(&mut op, node, c.kernel, c.stride, c.pads)?;
        op.groups = c.groups as u32;
        self.weight_bytes += self.emit_weights(
            &mut op,
            Weights {
                values: w,
                rows: o,
                order: &order,
                dims: &dims,
                bias,
                input: node.inputs[0],
                output: c.residual.map_or(node.output, |r| r.conv_output),
                activation: c.activation,
            },
        )?;
        if let Some(r) = c.residual {
            if c.activation != Activation::None {
                return Err(bad(
                    "an activation between a conv and its fused residual addition".into(),
                ));
            }
            op.residual = self.engine_tensor[node.inputs[1]];
            if self.d.precision == Precision::Int8 {
                let (qc, qs, qo) = (
                    self.q(r.conv_output),
                    self.q(node.inputs[1]),
                    self.q(node.output),
                );
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
        Ok(op)
    }

    /// Dense: `[out, in]` weights, columns permuted when the input is a
    /// feature map flattened in NHWC order.
    fn dense(&mut self, node: &Node, dense: &Dense) -> Result<OpDesc, CompileError> {
        let (w, bias) = layer_values(node, &dense.weight, dense.bias.as_ref())?;
        let order: Vec<usize> = match self.d.storage[node.inputs[0]] {
            Storage::FlatNhwc { c, h, w } if h * w > 1 && c > 1 => {
                let cols = flatten_permutation(c, h, w);
                (0..dense.out_features)
                    .flat_map(|r| cols.iter().map(move |&c| r * dense.in_features + c))
                    .collect()
            }
            _ => (0..w.len()).collect(),
        };
        let dims = vec![dense.out_features as u32, dense.in_features as u32];
        let (input, output) = self.io(node);
        let mut op = OpDesc::new(OpKind::Dense, input, output);
        self.weight_bytes += self.emit_weights(
            &mut op,
            Weights {
                values: w,
                rows: dense.out_features,
                order: &order,
                dims: &dims,
                bias,
                input: node.inputs[0],
                output: node.output,
                activation: dense.activation,
            },
        )?;
        Ok(op)
    }

    fn pool(&mut self, node: &Node, p: &Pool, kind: OpKind) -> Result<OpDesc, CompileError> {
        if kind == OpKind::AvgPool && p.count_include_pad && p.pads.iter().any(|&x| x > 0) {
            return Err(unsupported(node)(
                "average pooling that counts padding (count_include_pad=1)".into(),
            ));
        }
        let mut op = self.simple(node, kind);
        set_window(&mut op, node, p.kernel, p.stride, p.pads)?;
        Ok(op)
    }

    /// Reshape / Transpose: a view of the input's bytes, or a copy through
    /// the engine's Transpose (`layout::relayout` decides).
    fn relayout(&mut self, node: &Node, index: usize) -> Result<OpDesc, CompileError> {
        let (input, output) = self.io(node);
        Ok(
            match layout::relayout(self.graph, self.d.storage, index).map_err(unsupported(node))? {
                Relayout::View => OpDesc::new(OpKind::Reshape, input, output),
                Relayout::Copy { input_dims, perm } => {
                    let x = node.inputs[0];
                    let own = layout::engine_dims(&self.graph.tensor(x).shape);
                    // Read the input's buffer under other dims: a second tensor
                    // record over the same bytes.
                    let source = if input_dims == own {
                        input
                    } else {
                        let dims: Vec<u32> = input_dims.iter().map(|&d| d as u32).collect();
                        let (dtype, quant) = (self.act_dtype(), self.engine_quant(x));
                        self.b.add_activation(
                            dtype,
                            &dims,
                            self.d.memory.offset_of(x) as u32,
                            quant,
                        )
                    };
                    OpDesc::transpose(source, output, perm)
                }
            },
        )
    }

    fn add(&mut self, node: &Node, activation: Activation) -> OpDesc {
        let mut op = self.simple(node, OpKind::Add);
        op.input2 = self.engine_tensor[node.inputs[1]];
        if self.d.precision == Precision::Int8 {
            let (q1, q2, qo) = (
                self.q(node.inputs[0]),
                self.q(node.inputs[1]),
                self.q(node.output),
            );
            op.add = add_params(&q1, &q2, &qo);
            (op.act_min, op.act_max) = int8_clamp(activation, &qo);
        } else {
            float_activation(&mut op, activation);
        }
        op
    }

    fn softmax(&mut self, node: &Node) -> OpDesc {
        let mut op = self.simple(node, OpKind::Softmax);
        if self.d.precision == Precision::Int8 {
            let table = softmax_exp_table(self.q(node.inputs[0]).scale);
            op.multipliers = self.b.add_i32_array(&table);
        }
        op
    }
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

/// How the int8 weight tensors were stored.
#[derive(Debug, Default)]
struct WeightCounts {
    allow_sparse: bool,
    sparse: usize,
    total: usize,
}

/// The weights of a conv or dense layer, as the emitter stores them.
struct Weights<'w> {
    /// In ONNX order (OIHW, or [out, in]).
    values: &'w [f32],
    /// Output channels (rows): one int8 scale each.
    rows: usize,
    /// Storage order: `order[k]` is the ONNX index stored at `k`.
    order: &'w [usize],
    dims: &'w [u32],
    bias: Option<&'w [f32]>,
    /// The tensors whose parameters set the int8 requantisation.
    input: TensorId,
    output: TensorId,
    activation: Activation,
}

impl Emitter<'_> {
    /// Stores `wt` for `op`: int8 per-channel with int32 biases, Q31
    /// multipliers and shifts (bitmap-sparse where smaller), or f16 / f32.
    /// Returns the bytes stored.
    fn emit_weights(&mut self, op: &mut OpDesc, wt: Weights<'_>) -> Result<usize, CompileError> {
        let Weights {
            values: w,
            rows,
            order,
            dims,
            bias,
            input,
            output,
            activation: act,
        } = wt;
        let precision = self.d.precision;
        let (b, counts) = (&mut self.b, &mut self.counts);
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
                let (qi, qo) = (q_of(self.d.quant, input), q_of(self.d.quant, output));
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
