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
//!
//! [`compile_with`] runs named passes, each testable alone: fuse
//! ([`crate::fuse::fuse_residual_adds`]), lay out ([`lay_out`]), plan memory,
//! quantise (`quantise::activation_quant`), emit (`emit::emit_plan`, one
//! function per op family).

use edgefit_engine::{Activation as EngineActivation, OpDesc, Precision};
use serde::Serialize;

mod emit;
mod quantise;
pub mod tiling;

use crate::fuse::fuse_residual_adds;
use crate::ir::{Activation, Graph, Param};
use crate::layout::{self, Storage};
use crate::memory::plan_activations;
use crate::quant::params::QuantParams;

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
    #[error(
        "RAM budget {budget} bytes: the plan needs {untiled} bytes layer by layer ({scratch} of them kernel scratch){}",
        match (smallest, layers) {
            (Some(s), Some((a, b))) => format!(", and {} bytes at the least with layers `{a}` to `{b}` in bands of one row (no tiling reaches the budget)", s + scratch),
            _ => ", and its first layers cannot run in bands (tiling needs convolutions or pools at the start)".to_string(),
        }
    )]
    OverBudget {
        budget: usize,
        untiled: usize,
        scratch: usize,
        smallest: Option<usize>,
        layers: Option<(String, String)>,
    },
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
    /// The tiled segment the RAM budget called for, if any.
    pub tiling: Option<tiling::TilingSummary>,
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
    /// The most bytes the plan's arena (activations and scratch) may take:
    /// over it, the leading layers run tiled ([`tiling`]); `None`, no limit.
    pub ram_budget: Option<usize>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            fuse_residuals: true,
            scratch: true,
            sparse_weights: true,
            ram_budget: None,
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
    // Pass 1, fuse: residual additions into the convolution before them (two
    // live activations per ResNet block instead of three).
    let fused;
    let graph = if options.fuse_residuals {
        fused = fuse_residual_adds(graph);
        &fused
    } else {
        graph
    };
    // Pass 2, lay out: every tensor's storage (NHWC maps, views or copies).
    let storage = lay_out(graph)?;
    // Pass 3, plan memory: activation offsets in one arena.
    let memory = plan_activations(graph, if precision == Precision::Int8 { 1 } else { 4 });
    // Pass 4, quantise: each activation's int8 parameters.
    let quant = quantise::activation_quant(graph, precision, ranges)?;
    let decided = |memory, tiling| emit::Decided {
        precision,
        plan_id,
        options,
        storage: &storage,
        memory,
        quant: &quant,
        tiling,
    };
    // Pass 5, emit: tensors, weights and ops into the plan. Without scratch
    // a plan over the budget goes straight to tiling; with it, the untiled
    // plan tells the scratch the budget must also hold.
    let over = |scratch: usize| {
        options
            .ram_budget
            .filter(|&b| memory.plan.arena_size + scratch > b)
    };
    let (budget, scratch) = match (options.scratch, over(0)) {
        (false, Some(budget)) => (budget, 0),
        (false, None) => return emit::emit_plan(graph, &decided(&memory, None)),
        (true, _) => {
            let untiled = emit::emit_plan(graph, &decided(&memory, None))?;
            let scratch = untiled.summary.scratch_bytes;
            match over(scratch) {
                Some(budget) => (budget, scratch),
                None => return Ok(untiled),
            }
        }
    };
    // Pass 6, tile: over the RAM budget, the leading layers run in bands
    // and the plan is emitted with their row buffers.
    let tiled = tiling::choose(
        graph,
        memory.bytes_per_element,
        budget.saturating_sub(scratch),
    )
    .map_err(|over| CompileError::OverBudget {
        budget,
        untiled: memory.plan.arena_size + scratch,
        scratch,
        smallest: over.smallest,
        layers: over.layers,
    })?;
    let summary = tiled.summary(graph, &memory, budget);
    let mut plan = emit::emit_plan(graph, &decided(&tiled.memory, Some(&tiled)))?;
    plan.summary.tiling = Some(summary);
    Ok(plan)
}

/// The layout pass: each tensor's storage, after checking every reshape,
/// flatten and transpose can be laid out exactly.
pub fn lay_out(graph: &Graph) -> Result<Vec<Storage>, CompileError> {
    layout::check(graph).map_err(|e| CompileError::Unsupported {
        layer: e.node,
        op: e.op,
        reason: e.reason,
    })?;
    Ok(layout::storage(graph))
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
