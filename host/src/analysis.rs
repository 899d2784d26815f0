//! Static analysis of a lowered graph: parameters, multiply-accumulates, weight
//! bytes per precision and activation bytes, per layer and in total. Every figure
//! here is computed from the graph, never measured.

use serde::Serialize;

use crate::ir::{Graph, Op, Param};
use crate::memory::{plan_activations, ActivationPlan};

/// Bytes of a layer's weights stored at each precision.
///
/// * f32: every weight and bias as f32.
/// * f16: weights as IEEE half, biases kept as f32 (computation is in f32).
/// * int8: weights as int8, biases as int32 (the TFLite scheme); the per-channel
///   requantisation constants a plan adds are not counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WeightBytes {
    pub f32: usize,
    pub f16: usize,
    pub int8: usize,
}

impl std::ops::AddAssign for WeightBytes {
    fn add_assign(&mut self, o: WeightBytes) {
        self.f32 += o.f32;
        self.f16 += o.f16;
        self.int8 += o.int8;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerStats {
    pub name: String,
    pub op: &'static str,
    /// ONNX ops folded or fused into this layer.
    pub fused: Vec<String>,
    pub output_shape: Vec<usize>,
    /// Parameters as deployed (BatchNorm folded into a conv bias).
    pub params: usize,
    /// Parameters as the ONNX file stores them (BatchNorm scale and shift counted).
    pub params_exported: usize,
    pub macs: u64,
    pub weight_bytes: WeightBytes,
    /// Output activation bytes with f32 and with int8 activations.
    pub activation_bytes_f32: usize,
    pub activation_bytes_int8: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub params: usize,
    pub params_exported: usize,
    /// Deployed parameters in dense (fully connected) layers.
    pub params_dense: usize,
    /// Deployed parameters in convolutions.
    pub params_conv: usize,
    pub macs: u64,
    pub weight_bytes: WeightBytes,
}

/// Activation memory at one precision: the planner's arena and the lower bound.
#[derive(Debug, Clone, Serialize)]
pub struct MemorySummary {
    pub arena_bytes: usize,
    pub lower_bound_bytes: usize,
    /// The step (layer index) where the most bytes are live.
    pub peak_layer: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub layers: Vec<LayerStats>,
    pub totals: Totals,
    pub memory_f32: MemorySummary,
    pub memory_int8: MemorySummary,
}

fn param_bytes(weight: &Param, bias: Option<&Param>) -> WeightBytes {
    let (w, b) = (weight.elements(), bias.map_or(0, Param::elements));
    WeightBytes {
        f32: 4 * (w + b),
        f16: 2 * w + 4 * b,
        int8: w + 4 * b,
    }
}

/// Figures of node `index` of `graph`.
pub fn layer_stats(graph: &Graph, index: usize) -> LayerStats {
    let node = &graph.nodes[index];
    let out = graph.tensor(node.output);
    let out_elems = out.elements() as u64;
    let (params, macs, weight_bytes) = match &node.op {
        Op::Conv(c) => {
            let params = c.weight.elements() + c.bias.as_ref().map_or(0, Param::elements);
            let per_output = (c.in_channels / c.groups * c.kernel[0] * c.kernel[1]) as u64;
            (
                params,
                out_elems * per_output,
                param_bytes(&c.weight, c.bias.as_ref()),
            )
        }
        Op::Dense(d) => {
            let params = d.weight.elements() + d.bias.as_ref().map_or(0, Param::elements);
            (
                params,
                out_elems * d.in_features as u64,
                param_bytes(&d.weight, d.bias.as_ref()),
            )
        }
        _ => (0, 0, WeightBytes::default()),
    };
    let act_elems = if graph.is_view(index) {
        0
    } else {
        out.elements()
    };
    LayerStats {
        name: node.name.clone(),
        op: node.op.kind(),
        fused: node.fused.clone(),
        output_shape: out.shape.clone(),
        params,
        params_exported: node.exported_params,
        macs,
        weight_bytes,
        activation_bytes_f32: act_elems * 4,
        activation_bytes_int8: act_elems,
    }
}

fn summary(graph: &Graph, plan: &ActivationPlan) -> MemorySummary {
    let peak_step = plan
        .live_bytes
        .iter()
        .enumerate()
        .max_by_key(|(i, b)| (**b, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    MemorySummary {
        arena_bytes: plan.plan.arena_size,
        lower_bound_bytes: plan.plan.lower_bound,
        peak_layer: peak_step.map(|i| graph.nodes[i].name.clone()),
    }
}

pub fn analyse(graph: &Graph) -> Analysis {
    let layers: Vec<LayerStats> = (0..graph.nodes.len())
        .map(|i| layer_stats(graph, i))
        .collect();
    let mut totals = Totals {
        params: 0,
        params_exported: 0,
        params_dense: 0,
        params_conv: 0,
        macs: 0,
        weight_bytes: WeightBytes::default(),
    };
    for (layer, node) in layers.iter().zip(&graph.nodes) {
        totals.params += layer.params;
        totals.params_exported += layer.params_exported;
        totals.macs += layer.macs;
        totals.weight_bytes += layer.weight_bytes;
        match node.op {
            Op::Dense(_) => totals.params_dense += layer.params,
            Op::Conv(_) => totals.params_conv += layer.params,
            _ => {}
        }
    }
    let f32_plan = plan_activations(graph, 4);
    let int8_plan = plan_activations(graph, 1);
    Analysis {
        memory_f32: summary(graph, &f32_plan),
        memory_int8: summary(graph, &int8_plan),
        layers,
        totals,
    }
}
