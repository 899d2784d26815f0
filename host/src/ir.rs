//! edgefit's graph IR: the small set of CNN operators a plan can carry.
//!
//! Activations are described in ONNX's logical NCHW order here; the plan compiler
//! chooses the on-device layout. Parameters keep their ONNX layout (conv OIHW, dense
//! `[out, in]`). BatchNorm never appears: the importer folds it into the conv before.

use serde::Serialize;

/// Index into [`Graph::tensors`].
pub type TensorId = usize;

/// An activation tensor (never a weight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tensor {
    /// The ONNX value name this tensor came from.
    pub name: String,
    /// Logical NCHW (or `[N, features]`) shape.
    pub shape: Vec<usize>,
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A weight or bias tensor. `data` is `None` for graph-only exports, whose weights
/// arrive as graph inputs with a shape but no values.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub shape: Vec<usize>,
    pub data: Option<Vec<f32>>,
}

impl Param {
    pub fn new(shape: Vec<usize>, data: Option<Vec<f32>>) -> Param {
        Param { shape, data }
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An activation function fused into the op that produces the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// Clip(min, max), e.g. ReLU6.
    Clip {
        min: f32,
        max: f32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[kh, kw]`
    pub kernel: [usize; 2],
    /// `[sh, sw]`
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`
    pub pads: [usize; 4],
    /// `[dh, dw]`
    pub dilation: [usize; 2],
    pub groups: usize,
    /// OIHW: `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Param,
    pub bias: Option<Param>,
    pub activation: Activation,
    /// True where a BatchNormalization was folded into this conv.
    pub folded_batchnorm: bool,
    /// A residual addition fused into this conv (see [`crate::fuse`]).
    pub residual: Option<Residual>,
}

/// `out = activation(conv(x) + skip)`, written in place over `skip`: the node's
/// inputs are `[x, skip]` and its output shares `skip`'s buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residual {
    /// The conv's own result before the addition (its quantisation is needed for int8).
    pub conv_output: TensorId,
    /// The activation after the addition (the conv's own `activation` applies before it).
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub in_features: usize,
    pub out_features: usize,
    /// `[out_features, in_features]`.
    pub weight: Param,
    pub bias: Option<Param>,
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// `[kh, kw]`
    pub kernel: [usize; 2],
    /// `[sh, sw]`
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`
    pub pads: [usize; 4],
    /// Average pooling only: whether padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(Conv),
    Dense(Dense),
    MaxPool(Pool),
    AvgPool(Pool),
    GlobalAvgPool,
    /// Element-wise sum of two same-shape activations (a residual addition).
    Add {
        activation: Activation,
    },
    /// Flatten / Reshape: the same elements in ONNX's row-major order, a new
    /// shape. A view where the engine's storage order allows it, else a copy
    /// (see [`crate::layout`]).
    Reshape,
    /// ONNX Transpose: output axis `i` is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    /// Softmax normalising over `axes` (logical axes of the input: one axis
    /// from opset 13, every axis from `axis` on before it).
    Softmax {
        axes: Vec<usize>,
    },
}

impl Op {
    /// Short operator name used in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(c)
                if c.groups == c.in_channels && c.groups == c.out_channels && c.groups > 1 =>
            {
                "DepthwiseConv"
            }
            Op::Conv(_) => "Conv",
            Op::Dense(_) => "Dense",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool(_) => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Add { .. } => "Add",
            Op::Reshape => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Softmax { .. } => "Softmax",
        }
    }

    /// The fused activation, if this op carries one.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Op::Conv(c) => Some(c.activation),
            Op::Dense(d) => Some(d.activation),
            Op::Add { activation } => Some(*activation),
            _ => None,
        }
    }

    pub(crate) fn activation_mut(&mut self) -> Option<&mut Activation> {
        match self {
            Op::Conv(c) => Some(&mut c.activation),
            Op::Dense(d) => Some(&mut d.activation),
            Op::Add { activation } => Some(activation),
            _ => None,
        }
    }

    /// The input whose buffer a fused residual conv writes over (its skip
    /// tensor). Reshape views are decided with the graph: [`Graph::view_of`].
    pub fn writes_over_input(&self) -> Option<usize> {
        match self {
            Op::Conv(c) if c.residual.is_some() => Some(1),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The ONNX node name (of the first ONNX node this IR node was lowered from).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
    /// ONNX ops folded or fused into this node (BatchNormalization, Relu, bias Add...).
    pub fused: Vec<String>,
    /// Parameters as the ONNX file stores them for this layer (BatchNorm's scale and
    /// shift counted, as torchvision counts them).
    pub exported_params: usize,
}

/// A lowered model: nodes in execution order, one input, one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub input: TensorId,
    pub output: TensorId,
}

/// Lowering may put a tensor of its own between the ONNX values of one node
/// (ReduceMean with keepdims=0 becomes a pooled 4-D map, then a view; Gemm
/// with transA=1 a Transpose of A, then the dense layer): it is named
/// `{onnx value}{DERIVED}{what}` and holds that ONNX value's values, reshaped
/// or permuted, so calibration reads its range from the ONNX value. The
/// separator (ASCII unit separator) does not occur in practice in ONNX names.
pub const DERIVED: char = '\u{1f}';

/// The name of a tensor derived from ONNX value `onnx` (see [`DERIVED`]).
pub fn derived_name(onnx: &str, what: &str) -> String {
    format!("{onnx}{DERIVED}{what}")
}

/// The ONNX value a tensor's values come from: its own name, or for a derived
/// tensor the value it was derived from.
pub fn onnx_value_name(tensor_name: &str) -> &str {
    tensor_name.split(DERIVED).next().unwrap_or(tensor_name)
}

/// A graph-only export: weights arrive as graph inputs at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the model has no weight values: its weights are graph inputs (a graph-only export, e.g. \
     torch.onnx.export(..., export_params=False)); it can be inspected but not compiled, \
     calibrated or run: export it with the weights embedded as initializers"
)]
pub struct NoWeightValues;

impl Graph {
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id]
    }

    /// The graph's weights have values, or the one refusal every path gives
    /// (compile at any precision, calibration, evaluation) for a graph-only export.
    pub fn require_weight_values(&self) -> Result<(), NoWeightValues> {
        if self.has_weight_values() {
            Ok(())
        } else {
            Err(NoWeightValues)
        }
    }

    /// Whether every weight in the graph has values (false for graph-only exports).
    pub fn has_weight_values(&self) -> bool {
        self.nodes.iter().all(|n| match &n.op {
            Op::Conv(c) => {
                c.weight.data.is_some() && c.bias.as_ref().is_none_or(|b| b.data.is_some())
            }
            Op::Dense(d) => {
                d.weight.data.is_some() && d.bias.as_ref().is_none_or(|b| b.data.is_some())
            }
            _ => true,
        })
    }

    /// A copy of a graph-only export with placeholder values in every weight
    /// that has none, for what the compiler's layout alone decides: plan
    /// size, arena, per-layer memory. The values are small, non-zero and
    /// deterministic (no weight is zero, so no sparse encoding is chosen and
    /// sizes are a dense model's); the plan they give computes nothing
    /// meaningful and must never be flashed or evaluated.
    pub fn with_placeholder_weights(&self) -> Graph {
        fn fill(p: &mut Param) {
            if p.data.is_none() {
                let n = p.elements();
                p.data = Some(
                    (0..n)
                        .map(|i| {
                            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                            sign * 0.01 * (1 + i % 7) as f32
                        })
                        .collect(),
                );
            }
        }
        let mut g = self.clone();
        for n in &mut g.nodes {
            match &mut n.op {
                Op::Conv(c) => {
                    fill(&mut c.weight);
                    if let Some(b) = &mut c.bias {
                        fill(b);
                    }
                }
                Op::Dense(d) => {
                    fill(&mut d.weight);
                    if let Some(b) = &mut d.bias {
                        fill(b);
                    }
                }
                _ => {}
            }
        }
        g
    }

    /// Whether node `i` is a Reshape whose output is a view of its input (no
    /// copy, no buffer of its own): see [`crate::layout::reshape_is_view`].
    pub fn is_view(&self, i: usize) -> bool {
        matches!(self.nodes[i].op, Op::Reshape) && crate::layout::reshape_is_view(self, i)
    }

    /// The input of node `i` whose buffer its output shares: a view's input,
    /// or the skip tensor a fused residual conv writes over.
    pub fn output_aliases_input(&self, i: usize) -> Option<usize> {
        if self.is_view(i) {
            Some(0)
        } else {
            self.nodes[i].op.writes_over_input()
        }
    }

    /// Indices of the nodes that read `tensor`.
    pub fn consumers(&self, tensor: TensorId) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.inputs.contains(&tensor))
            .map(|(i, _)| i)
            .collect()
    }
}

/// Tests: a chain of `ops`, op `i` reading tensor `i` and writing `i + 1`,
/// tensors of `shapes` (one more than ops).
#[cfg(test)]
pub(crate) fn chain(shapes: &[&[usize]], ops: Vec<Op>) -> Graph {
    Graph {
        tensors: shapes
            .iter()
            .enumerate()
            .map(|(i, s)| Tensor {
                name: format!("t{i}"),
                shape: s.to_vec(),
            })
            .collect(),
        nodes: ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| Node {
                name: format!("n{i}"),
                op,
                inputs: vec![i],
                output: i + 1,
                fused: vec![],
                exported_params: 0,
            })
            .collect(),
        input: 0,
        output: shapes.len() - 1,
    }
}
