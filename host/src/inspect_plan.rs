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
    /// Its tiled segments (format version 2).
    pub tiled: Vec<PlanSegment>,
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
        OpKind::Tiled => "Tiled",
    }
}

/// A tiled segment of the plan (format version 2), as `inspect` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSegment {
    /// The `Tiled` op; its segment is ops `first_op ..= last_op`.
    pub tiled_op: usize,
    pub first_op: usize,
    pub last_op: usize,
    pub rows_per_step: u32,
    /// Steps of the last op (its height over `rows_per_step`).
    pub bands: u32,
    pub kernel_calls: u32,
    pub row_buffers: Vec<PlanRowBuffer>,
    /// The segment's MACs beyond the untiled plan's: rows are computed
    /// once, so 0 (negative where rows go unread).
    pub extra_macs: i64,
    pub extra_macs_percent: f64,
    /// From the plan's metadata, where `compile` recorded them.
    pub untiled_arena_bytes: Option<usize>,
    pub budget_bytes: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRowBuffer {
    pub op: usize,
    /// Rows held at once, of `height`; the rows beyond a step's are the
    /// halo a following window reads again.
    pub rows: u32,
    pub height: u32,
    /// Of `rows`, those beyond one step's (kept, not recomputed).
    pub halo_rows: u32,
    pub bytes: u32,
}

/// What `compile` records about a tiled plan in its metadata (`[tiling]`).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
struct TilingMetadata {
    untiled_arena_bytes: Option<usize>,
    budget_bytes: Option<usize>,
}

fn tiling_metadata(data: &[u8]) -> TilingMetadata {
    #[derive(serde::Deserialize)]
    struct Meta {
        tiling: Option<TilingMetadata>,
    }
    edgefit_engine::plan::metadata(data)
        .and_then(|m| std::str::from_utf8(m).ok())
        .and_then(|t| toml::from_str::<Meta>(t).ok())
        .and_then(|m| m.tiling)
        .unwrap_or_default()
}

/// The `[tiling]` metadata table `compile` writes into a tiled plan.
pub fn tiling_metadata_toml(untiled_arena_bytes: usize, budget_bytes: usize) -> String {
    format!(
        "[tiling]\nuntiled_arena_bytes = {untiled_arena_bytes}\nbudget_bytes = {budget_bytes}\n"
    )
}

fn segments(
    plan: &Plan<'_>,
    ops: &[PlanOpRow],
    total_macs: u64,
    data: &[u8],
) -> Result<Vec<PlanSegment>, PlanError> {
    let meta = tiling_metadata(data);
    let mut out = vec![];
    for i in 0..plan.op_count() as u32 {
        if plan.op(i)?.kind != OpKind::Tiled {
            continue;
        }
        let seg = plan.tiled_segment(i)?;
        let schedule = seg.segment.plan().map_err(|e| PlanError::BadSegment {
            op: i,
            at: 0,
            row: 0,
            reason: e.reason(),
        })?;
        let mut row_buffers = vec![];
        let mut extra = 0i64;
        for (j, sop) in seg.segment.ops().iter().enumerate() {
            let index = seg.op_index(j) as usize;
            let per_row = ops[index].macs / sop.rows.max(1) as u64;
            extra += (schedule.computed_rows[j] as i64 - sop.rows as i64) * per_row as i64;
            let t = plan.tensor(plan.op(index as u32)?.output)?;
            if t.encoding == edgefit_engine::Encoding::RowBuffer {
                row_buffers.push(PlanRowBuffer {
                    op: index,
                    rows: schedule.buffer_rows[j],
                    height: sop.rows,
                    halo_rows: schedule.buffer_rows[j].saturating_sub(seg.segment.rows_per_step()),
                    bytes: t.length,
                });
            }
        }
        let last = seg.segment.ops().last().map_or(1, |o| o.rows);
        out.push(PlanSegment {
            tiled_op: i as usize,
            first_op: seg.ops().start as usize,
            last_op: seg.ops().end as usize - 1,
            rows_per_step: seg.segment.rows_per_step(),
            bands: last.div_ceil(seg.segment.rows_per_step().max(1)),
            kernel_calls: schedule.calls,
            row_buffers,
            extra_macs: extra,
            extra_macs_percent: 100.0 * extra as f64 / total_macs.max(1) as f64,
            untiled_arena_bytes: meta.untiled_arena_bytes,
            budget_bytes: meta.budget_bytes,
        });
    }
    Ok(out)
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
    let tiled = segments(&plan, &ops, total_macs, data)?;
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
        tiled,
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
    for s in &r.tiled {
        out.push_str(&format!(
            "tiled       ops {}-{} in {} bands of {} row{} ({} kernel calls), {:+} MACs ({:+.2}%: rows are computed once, the halo rows kept)\n",
            s.first_op,
            s.last_op,
            s.bands,
            s.rows_per_step,
            if s.rows_per_step == 1 { "" } else { "s" },
            s.kernel_calls,
            s.extra_macs,
            s.extra_macs_percent
        ));
        let buffers: Vec<String> = s
            .row_buffers
            .iter()
            .map(|b| {
                format!(
                    "op {}: {} of {} rows, halo {}, {}",
                    b.op,
                    b.rows,
                    b.height,
                    b.halo_rows,
                    bytes(b.bytes as usize)
                )
            })
            .collect();
        out.push_str(&format!(
            "            row buffers: {}\n",
            buffers.join("; ")
        ));
        if let Some(u) = s.untiled_arena_bytes {
            out.push_str(&format!(
                "            arena {} tiled against {} layer by layer{}\n",
                bytes(r.arena_bytes),
                bytes(u),
                s.budget_bytes
                    .map(|b| format!(" (budget {})", bytes(b)))
                    .unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!("\nAll figures: {}.\n", r.source));
    out
}
