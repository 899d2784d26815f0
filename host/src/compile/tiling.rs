//! The tiling pass: when the layer-by-layer arena exceeds a RAM budget, the
//! leading layers run as one tiled segment ([`edgefit_engine::tiling`]):
//! their intermediate maps live in row buffers that hold only the rows still
//! to be read, and the segment's input may sit inside its output's buffer,
//! overwritten as it is consumed.
//!
//! The pass tries every split point (how many leading layers the segment
//! holds) and every rows-per-step from 1 to 64, plans memory for each with
//! the engine's own schedule, and keeps, among the layouts within the
//! budget, the one with the fewest kernel calls (taller bands run faster),
//! then the shortest segment. Rows are never recomputed, so no layout costs
//! extra multiply-accumulates; [`TilingSummary`] reports that figure anyway
//! (it is negative where a strided layer never reads an op's last rows).

use edgefit_engine::tiling::{
    RowDep, RowInput, Segment, SegmentOp, SegmentPlan, Source, MAX_SEGMENT_OPS,
};
use serde::Serialize;

use crate::analysis::layer_stats;
use crate::ir::{Graph, Op, TensorId};
use crate::memory::{plan_activations_with, ActivationPlan, RowBuffers, ARENA_ALIGNMENT};

/// Rows per step the pass tries.
const STEPS: [u32; 7] = [64, 32, 16, 8, 4, 2, 1];

/// A chosen tiled segment: nodes `buffers.first ..= buffers.last`.
#[derive(Debug, Clone)]
pub struct Tiling {
    pub buffers: RowBuffers,
    pub rows_per_step: u32,
    pub schedule: SegmentPlan,
    pub memory: ActivationPlan,
}

/// What the tiling pass chose and what it costs, for `compile`, `inspect`
/// and `compare`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TilingSummary {
    /// The RAM budget for the plan's arena (activations and scratch).
    pub budget_bytes: usize,
    pub first_layer: String,
    pub last_layer: String,
    /// Ops in the segment.
    pub ops: usize,
    pub rows_per_step: u32,
    /// Steps of the segment's last op: its height over `rows_per_step`.
    pub bands: u32,
    /// Kernel calls the segment makes (one op's rows per call).
    pub kernel_calls: u32,
    /// Per row buffer: the layer writing it, rows held of its height, bytes.
    pub row_buffers: Vec<RowBufferSummary>,
    /// Whether the segment's input sits inside its output's buffer.
    pub input_in_output: bool,
    pub macs_untiled: u64,
    /// Multiply-accumulates the tiled plan does beyond the untiled plan's
    /// (rows are computed once: 0, or negative where rows go unread).
    pub extra_macs: i64,
    pub extra_macs_percent: f64,
    pub arena_untiled_bytes: usize,
    pub lower_bound_untiled_bytes: usize,
    pub arena_bytes: usize,
    pub lower_bound_bytes: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowBufferSummary {
    pub layer: String,
    /// Rows held at once, of `height`.
    pub rows: usize,
    pub height: usize,
    /// Of `rows`, those beyond one step's: the halo the next window reads
    /// again (and a residual's lag), kept rather than recomputed.
    pub halo_rows: usize,
    pub bytes: usize,
}

/// No tiling fits the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    /// The smallest activation arena any tiling gives (`None`: no leading
    /// layers can be tiled).
    pub smallest: Option<usize>,
    pub layers: Option<(String, String)>,
}

fn window(op: &Op) -> Option<RowDep> {
    let (kernel, stride, pad) = match op {
        Op::Conv(c) if c.dilation == [1, 1] => (c.kernel[0], c.stride[0], c.pads[0]),
        Op::MaxPool(p) | Op::AvgPool(p) => (p.kernel[0], p.stride[0], p.pads[0]),
        Op::Add { .. } => return Some(RowDep::Same),
        _ => return None,
    };
    Some(RowDep::Window {
        kernel: kernel as u32,
        stride: stride as u32,
        pad: pad as u32,
    })
}

/// Whether node `n` may run in a segment: a convolution, pool or Add on
/// feature maps.
fn tileable(graph: &Graph, n: usize) -> bool {
    let node = &graph.nodes[n];
    window(&node.op).is_some()
        && node
            .inputs
            .iter()
            .chain([&node.output])
            .all(|&t| graph.tensor(t).shape.len() == 4)
}

/// The schedule's shape of nodes `first..=last`, `step` rows at a time.
pub fn segment_of(graph: &Graph, first: usize, last: usize, step: u32) -> Option<Segment> {
    let mut seg = Segment::new(step);
    let rows = |t: TensorId| graph.tensor(t).shape[2] as u32; // NCHW
    for n in first..=last {
        let node = &graph.nodes[n];
        let dep = window(&node.op)?;
        let mut inputs = [None; 2];
        for (slot, &t) in node.inputs.iter().take(2).enumerate() {
            let source = match (first..n).find(|&k| graph.nodes[k].output == t) {
                Some(k) => Source::Inside(k - first),
                None => Source::Outside(t as u32),
            };
            inputs[slot] = Some(RowInput {
                source,
                dep: if slot == 0 { dep } else { RowDep::Same },
                rows: rows(t),
            });
        }
        seg.push(SegmentOp {
            rows: rows(node.output),
            inputs,
        })
        .ok()?;
    }
    Some(seg)
}

/// Whether nodes `first..=last` can form a segment: each output but the
/// last is read inside it and nowhere after it.
fn closed(graph: &Graph, first: usize, last: usize) -> bool {
    (first..last).all(|k| {
        let t = graph.nodes[k].output;
        t != graph.output
            && graph.consumers(t).iter().all(|&c| c <= last)
            && graph.consumers(t).iter().any(|&c| c > k)
    })
}

/// The leading node a segment starts at: the first tileable node with only
/// layout changes before it.
fn leading(graph: &Graph) -> Option<usize> {
    let first = (0..graph.nodes.len()).find(|&n| tileable(graph, n))?;
    let only_layout = graph.nodes[..first]
        .iter()
        .all(|n| matches!(n.op, Op::Reshape | Op::Transpose { .. }));
    only_layout.then_some(first)
}

/// The smallest offset (a multiple of the arena alignment) at which
/// `input` can sit inside the buffer of the segment's output so that the
/// output overwrites only consumed rows; `None` if only apart.
fn input_offset(
    graph: &Graph,
    seg: &Segment,
    last: usize,
    input: TensorId,
    bpe: usize,
) -> Option<usize> {
    let row = |t: TensorId| {
        let s = &graph.tensor(t).shape;
        s[1] * s[3] * bpe
    };
    let out_bytes = graph.tensor(graph.nodes[last].output).elements() * bpe;
    let safe = |at: usize| {
        seg.output_may_cover(input as u32, row(input), row(graph.nodes[last].output), at)
    };
    let (mut lo, mut hi) = (0, out_bytes.div_ceil(ARENA_ALIGNMENT));
    if !safe(0) {
        // Binary search for the first safe offset (safety only grows with it).
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if safe(mid * ARENA_ALIGNMENT) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        lo = hi;
    }
    let at = lo * ARENA_ALIGNMENT;
    (at < out_bytes).then_some(at)
}

/// One layout: nodes `first..=last` at `step` rows.
fn layout(graph: &Graph, first: usize, last: usize, step: u32, bpe: usize) -> Option<Tiling> {
    let seg = segment_of(graph, first, last, step)?;
    let schedule = seg.plan().ok()?;
    let rows = (first..last)
        .map(|n| {
            (
                graph.nodes[n].output,
                schedule.buffer_rows[n - first] as usize,
            )
        })
        .collect();
    // An outside input read by nothing after the segment, not a view of
    // anything, may live inside the output's buffer.
    let reuse = graph.nodes[first..=last]
        .iter()
        .flat_map(|n| n.inputs.iter().copied())
        .filter(|&t| (first..=last).all(|k| graph.nodes[k].output != t))
        .find(|&t| {
            t != graph.output
                && graph.consumers(t).iter().all(|&c| c <= last)
                && !(0..graph.nodes.len()).any(|n| {
                    graph.output_aliases_input(n).is_some_and(|i| {
                        graph.nodes[n].inputs[i] == t || graph.nodes[n].output == t
                    })
                })
        })
        .and_then(|t| input_offset(graph, &seg, last, t, bpe).map(|at| (t, at)));
    let buffers = RowBuffers {
        first,
        last,
        rows,
        reuse,
    };
    let memory = plan_activations_with(graph, bpe, Some(&buffers));
    Some(Tiling {
        buffers,
        rows_per_step: step,
        schedule,
        memory,
    })
}

/// The tiling that fits `budget` bytes of activations with the fewest
/// kernel calls (then the shortest segment, then the smallest arena).
pub fn choose(graph: &Graph, bpe: usize, budget: usize) -> Result<Tiling, OverBudget> {
    let Some(first) = leading(graph) else {
        return Err(OverBudget {
            smallest: None,
            layers: None,
        });
    };
    let mut best: Option<(Tiling, (u32, usize, usize))> = None;
    let mut smallest: Option<(usize, usize)> = None;
    for last in first..graph.nodes.len().min(first + MAX_SEGMENT_OPS) {
        if !tileable(graph, last) {
            break;
        }
        if !closed(graph, first, last) {
            continue;
        }
        let height = graph.tensor(graph.nodes[last].output).shape[2] as u32;
        for step in STEPS.into_iter().filter(|&s| s == 1 || s < height) {
            let Some(t) = layout(graph, first, last, step, bpe) else {
                continue;
            };
            let arena = t.memory.plan.arena_size;
            if smallest.is_none_or(|(a, _)| arena < a) {
                smallest = Some((arena, last));
            }
            let key = (t.schedule.calls, last, arena);
            if arena <= budget && best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((t, key));
            }
        }
    }
    best.map(|(t, _)| t).ok_or_else(|| OverBudget {
        smallest: smallest.map(|(a, _)| a),
        layers: smallest.map(|(_, last)| {
            (
                graph.nodes[first].name.clone(),
                graph.nodes[last].name.clone(),
            )
        }),
    })
}

/// The smallest activation arena tiling reaches on `graph` (residual
/// additions already fused), one row per step over every split point;
/// `None` when its leading layers cannot be tiled.
pub fn smallest_arena(graph: &Graph, bpe: usize) -> Option<usize> {
    let first = leading(graph)?;
    (first..graph.nodes.len().min(first + MAX_SEGMENT_OPS))
        .take_while(|&last| tileable(graph, last))
        .filter(|&last| closed(graph, first, last))
        .filter_map(|last| layout(graph, first, last, 1, bpe))
        .map(|t| t.memory.plan.arena_size)
        .min()
}

impl Tiling {
    /// The summary, against the untiled plan's memory.
    pub fn summary(&self, graph: &Graph, untiled: &ActivationPlan, budget: usize) -> TilingSummary {
        let b = &self.buffers;
        let macs_untiled: u64 = (0..graph.nodes.len())
            .map(|n| layer_stats(graph, n).macs)
            .sum();
        let mut extra = 0i64;
        for n in b.first..=b.last {
            let height = graph.tensor(graph.nodes[n].output).shape[2] as u64;
            let per_row = layer_stats(graph, n).macs / height.max(1);
            let computed = self.schedule.computed_rows[n - b.first] as i64;
            extra += (computed - height as i64) * per_row as i64;
        }
        let bpe = self.memory.bytes_per_element;
        let last_height = graph.tensor(graph.nodes[b.last].output).shape[2] as u32;
        TilingSummary {
            budget_bytes: budget,
            first_layer: graph.nodes[b.first].name.clone(),
            last_layer: graph.nodes[b.last].name.clone(),
            ops: b.last - b.first + 1,
            rows_per_step: self.rows_per_step,
            bands: last_height.div_ceil(self.rows_per_step),
            kernel_calls: self.schedule.calls,
            row_buffers: b
                .rows
                .iter()
                .zip(b.first..)
                .map(|(&(t, rows), n)| {
                    let s = &graph.tensor(t).shape;
                    RowBufferSummary {
                        layer: graph.nodes[n].name.clone(),
                        rows,
                        height: s[2],
                        halo_rows: rows.saturating_sub(self.rows_per_step as usize),
                        bytes: rows * s[1] * s[3] * bpe,
                    }
                })
                .collect(),
            input_in_output: b.reuse.is_some(),
            macs_untiled,
            extra_macs: extra,
            extra_macs_percent: 100.0 * extra as f64 / macs_untiled.max(1) as f64,
            arena_untiled_bytes: untiled.plan.arena_size,
            lower_bound_untiled_bytes: untiled.plan.lower_bound,
            arena_bytes: self.memory.plan.arena_size,
            lower_bound_bytes: self.memory.plan.lower_bound,
        }
    }
}
