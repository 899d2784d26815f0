//! `edgefit inspect VARIANT.efp`: a compiled plan reported like a model — per-op
//! table, weight bytes, arena, and how much of the file is overhead beyond the
//! weights (the plan format's tables and alignment).

use edgefit_engine::{Location, OpKind, Plan, PlanError, Precision, NONE};
use serde::Serialize;

use crate::compile::precision_name;
use crate::table::{bytes, count, Table};

pub const PLAN_SCHEMA: &str = "edgefit.inspect-plan.v1";

#[derive(Debug, Clone, Serialize)]
pub struct PlanOpRow {
    pub index: usize,
    pub op: String,
    /// Output dims as the engine stores them (NHWC).
    pub output_dims: Vec<u32>,
    pub arena_offset: u32,
    pub output_bytes: u32,
    /// Weight, bias and requantisation bytes this op reads from the blob.
    pub weight_bytes: usize,
    pub macs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub schema: &'static str,
    pub source: &'static str,
    pub path: String,
    pub precision: &'static str,
    pub plan_id: String,
    pub format_version: u16,
    pub plan_bytes: usize,
    /// Bytes of weight arrays (weights, biases, multipliers, shifts) without padding.
    pub weight_bytes: usize,
    /// Everything else: header, tensor and op tables, alignment padding.
    pub overhead_bytes: usize,
    pub overhead_percent: f64,
    pub arena_bytes: usize,
    pub tensors: usize,
    pub ops: Vec<PlanOpRow>,
    pub macs: u64,
    /// The preprocessing recipe the plan records (one line), if any.
    pub preprocess: Option<String>,
}

fn op_name(kind: OpKind, groups: u32) -> &'static str {
    match kind {
        OpKind::Conv2d if groups > 1 => "DepthwiseConv",
        OpKind::Conv2d => "Conv",
        OpKind::Dense => "Dense",
        OpKind::MaxPool => "MaxPool",
        OpKind::AvgPool => "AvgPool",
        OpKind::GlobalAvgPool => "GlobalAvgPool",
        OpKind::Add => "Add",
        OpKind::Reshape => "Reshape",
        OpKind::Softmax => "Softmax",
        OpKind::Transpose => "Transpose",
    }
}

/// Parses (validating everything, CRC included) and summarises a plan.
pub fn inspect_plan(path: &str, data: &[u8]) -> Result<PlanReport, PlanError> {
    let plan = Plan::parse(data)?;
    let mut ops = vec![];
    let mut weight_bytes = 0usize;
    let mut total_macs = 0u64;
    for t in 0..plan.tensor_count() {
        let desc = plan.tensor(t as u32)?;
        if desc.location == Location::Weights {
            weight_bytes += desc.length as usize;
        }
    }
    for i in 0..plan.op_count() {
        let op = plan.op(i as u32)?;
        let out = plan.tensor(op.output)?;
        let mut own = 0usize;
        let mut macs = 0u64;
        if matches!(op.kind, OpKind::Conv2d | OpKind::Dense) {
            let w = plan.tensor(op.weights)?;
            own += w.length as usize;
            if op.bias != NONE {
                own += plan.tensor(op.bias)?.length as usize;
            }
            let out_channels = *out.shape().last().unwrap_or(&1) as usize;
            if plan.precision() == Precision::Int8 {
                // Multipliers and shifts live in the blob outside the tensor table.
                own += 8 * out_channels;
                weight_bytes += 8 * out_channels;
            }
            let w_elems = w.shape().iter().map(|&d| d as u64).product::<u64>();
            let out_elems = out.shape().iter().map(|&d| d as u64).product::<u64>();
            // Per output value: kh*kw*in (OHWI), kh*kw (depthwise [kh, kw, C]) or in (dense).
            macs = out_elems * (w_elems / out_channels.max(1) as u64);
        }
        total_macs += macs;
        ops.push(PlanOpRow {
            index: i,
            op: op_name(op.kind, op.groups).to_owned(),
            output_dims: out.shape().to_vec(),
            arena_offset: out.offset,
            output_bytes: out.length,
            weight_bytes: own,
            macs,
        });
    }
    let plan_bytes = plan.total_size();
    let overhead = plan_bytes.saturating_sub(weight_bytes);
    Ok(PlanReport {
        schema: PLAN_SCHEMA,
        source: "read from the plan file (static), not measured",
        path: path.to_owned(),
        precision: precision_name(plan.precision()),
        plan_id: format!("{:08x}", plan.plan_id()),
        format_version: plan.header().version,
        plan_bytes,
        weight_bytes,
        overhead_bytes: overhead,
        overhead_percent: if weight_bytes == 0 {
            0.0
        } else {
            100.0 * overhead as f64 / weight_bytes as f64
        },
        arena_bytes: plan.arena_size(),
        tensors: plan.tensor_count(),
        ops,
        macs: total_macs,
        preprocess: match crate::runner::plan_recipe(data) {
            Ok(r) => r.map(|r| r.describe()),
            Err(e) => Some(format!("unreadable ({e})")),
        },
    })
}

pub fn render_plan_text(r: &PlanReport) -> String {
    let mut out = format!(
        "plan    {} (edgefit plan v{}, {} precision, id {})\n",
        r.path, r.format_version, r.precision, r.plan_id
    );
    out.push_str(&format!(
        "input   preprocessed: {}\n\n",
        r.preprocess
            .as_deref()
            .unwrap_or("not recorded (give the recipe flags)")
    ));
    let mut t = Table::new(&[
        "#",
        "op",
        "output (NHWC)",
        "arena offset",
        "output",
        "weights",
        "MACs",
    ]);
    for o in &r.ops {
        t.row(vec![
            o.index.to_string(),
            o.op.clone(),
            format!("{:?}", o.output_dims),
            count(o.arena_offset as u64),
            bytes(o.output_bytes as usize),
            bytes(o.weight_bytes),
            count(o.macs),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nplan size   {} = weights {} + overhead {} ({:.2}% of the weights: header, tables, alignment)\n",
        bytes(r.plan_bytes),
        bytes(r.weight_bytes),
        bytes(r.overhead_bytes),
        r.overhead_percent
    ));
    out.push_str(&format!(
        "arena       {} (activations, planned offline)\n",
        bytes(r.arena_bytes)
    ));
    out.push_str(&format!("MACs        {}\n", count(r.macs)));
    out.push_str(&format!("\nAll figures: {}.\n", r.source));
    out
}
