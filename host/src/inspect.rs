//! `edgefit inspect`: what a model costs, layer by layer, and the activation RAM
//! the static planner needs. The report is data ([`InspectReport`], serialised as
//! the stable `edgefit.inspect.v1` JSON documented in `docs/inspect-json.md`) and a
//! separate text rendering.

use std::path::Path;

use serde::Serialize;

use crate::analysis::{analyse, LayerStats, MemorySummary, Totals};
use crate::import::{import_onnx, ImportError, ImportOptions, ImportedModel};
use crate::memory::ARENA_ALIGNMENT;
use crate::table::{bytes, count, Table};

pub const INSPECT_SCHEMA: &str = "edgefit.inspect.v1";

#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub name: String,
    pub format: &'static str,
    pub producer: String,
    pub opset: i64,
    pub onnx_nodes: usize,
    /// "embedded", or "graph-only" where weights arrive as graph inputs.
    pub weights: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub planner: &'static str,
    pub alignment: usize,
    pub f32: MemorySummary,
    pub int8: MemorySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub schema: &'static str,
    /// Where the figures come from.
    pub source: &'static str,
    pub model: ModelSummary,
    pub input: TensorSummary,
    pub output: TensorSummary,
    pub layers: Vec<LayerStats>,
    pub totals: Totals,
    pub memory: MemoryReport,
}

pub fn inspect_onnx(path: &Path, options: &ImportOptions) -> Result<InspectReport, ImportError> {
    let model = import_onnx(path, options)?;
    Ok(report_for(path, &model))
}

pub fn report_for(path: &Path, model: &ImportedModel) -> InspectReport {
    let g = &model.graph;
    let analysis = analyse(g);
    InspectReport {
        schema: INSPECT_SCHEMA,
        source: "computed from the graph (static analysis), not measured",
        model: ModelSummary {
            path: path.display().to_string(),
            name: model.info.name.clone(),
            format: "onnx",
            producer: model.info.producer.clone(),
            opset: model.info.opset,
            onnx_nodes: model.info.onnx_nodes,
            weights: if g.has_weight_values() { "embedded" } else { "graph-only" },
        },
        input: TensorSummary { name: model.info.input_name.clone(), shape: g.tensor(g.input).shape.clone() },
        output: TensorSummary { name: model.info.output_name.clone(), shape: g.tensor(g.output).shape.clone() },
        layers: analysis.layers,
        totals: analysis.totals,
        memory: MemoryReport {
            planner: "greedy by size, first fit among lifetime-overlapping buffers (TFLite Micro GreedyMemoryPlanner)",
            alignment: ARENA_ALIGNMENT,
            f32: analysis.memory_f32,
            int8: analysis.memory_int8,
        },
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

/// Human-readable rendering: header, per-layer table, totals, memory.
pub fn render_text(r: &InspectReport) -> String {
    let mut out = String::new();
    let m = &r.model;
    out.push_str(&format!(
        "model   {} ({}, opset {}, {} ONNX nodes, {}; weights {})\n",
        m.path,
        m.format,
        m.opset,
        m.onnx_nodes,
        if m.producer.is_empty() {
            "unknown producer"
        } else {
            &m.producer
        },
        m.weights
    ));
    out.push_str(&format!(
        "input   {} {:?}  ->  output {} {:?}\n\n",
        r.input.name, r.input.shape, r.output.name, r.output.shape
    ));
    let mut t = Table::new(&[
        "#", "layer", "op", "fused", "output", "params", "MACs", "f32 W", "f16 W", "int8 W",
        "act f32", "act int8",
    ]);
    for (i, l) in r.layers.iter().enumerate() {
        t.row(vec![
            i.to_string(),
            l.name.clone(),
            l.op.to_string(),
            l.fused.join("+"),
            format!("{:?}", l.output_shape),
            count(l.params as u64),
            count(l.macs),
            bytes(l.weight_bytes.f32),
            bytes(l.weight_bytes.f16),
            bytes(l.weight_bytes.int8),
            bytes(l.activation_bytes_f32),
            bytes(l.activation_bytes_int8),
        ]);
    }
    let tt = &r.totals;
    t.row(vec![
        String::new(),
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
        count(tt.params as u64),
        count(tt.macs),
        bytes(tt.weight_bytes.f32),
        bytes(tt.weight_bytes.f16),
        bytes(tt.weight_bytes.int8),
        String::new(),
        String::new(),
    ]);
    out.push_str(&t.render());
    out.push('\n');
    out.push_str(&format!(
        "parameters  {} deployed (BatchNorm folded), {} as exported\n",
        count(tt.params as u64),
        count(tt.params_exported as u64)
    ));
    out.push_str(&format!(
        "            dense layers {} ({}), convolutions {} ({})\n",
        count(tt.params_dense as u64),
        percent(tt.params_dense, tt.params),
        count(tt.params_conv as u64),
        percent(tt.params_conv, tt.params)
    ));
    out.push_str(&format!(
        "MACs        {} ({:.3} G)\n",
        count(tt.macs),
        tt.macs as f64 / 1e9
    ));
    out.push_str(&format!(
        "weights     f32 {}, f16 {}, int8 {}\n",
        bytes(tt.weight_bytes.f32),
        bytes(tt.weight_bytes.f16),
        bytes(tt.weight_bytes.int8)
    ));
    for (label, mem) in [("f32", &r.memory.f32), ("int8", &r.memory.int8)] {
        let waste = mem.arena_bytes.saturating_sub(mem.lower_bound_bytes);
        out.push_str(&format!(
            "arena {:<5} planner {} | lower bound {} | over the bound {} ({}) | peak at {}\n",
            label,
            bytes(mem.arena_bytes),
            bytes(mem.lower_bound_bytes),
            bytes(waste),
            percent(waste, mem.lower_bound_bytes),
            mem.peak_layer.as_deref().unwrap_or("-")
        ));
    }
    out.push_str(&format!(
        "\nAll figures: {}. Planner: {}.\n",
        r.source, r.memory.planner
    ));
    out
}

/// A one-row-per-model comparison of several reports (the main job's view of
/// VGG next to ResNet).
pub fn render_side_by_side(reports: &[InspectReport]) -> String {
    let mut t = Table::new(&[
        "model",
        "params",
        "dense share",
        "MACs",
        "int8 weights",
        "int8 arena",
        "int8 lower bound",
        "f32 weights",
        "f32 arena",
    ]);
    for r in reports {
        let tt = &r.totals;
        t.row(vec![
            r.model.name.clone(),
            count(tt.params as u64),
            percent(tt.params_dense, tt.params),
            count(tt.macs),
            bytes(tt.weight_bytes.int8),
            bytes(r.memory.int8.arena_bytes),
            bytes(r.memory.int8.lower_bound_bytes),
            bytes(tt.weight_bytes.f32),
            bytes(r.memory.f32.arena_bytes),
        ]);
    }
    format!(
        "side by side (computed from the graphs, not measured)\n{}",
        t.render()
    )
}
