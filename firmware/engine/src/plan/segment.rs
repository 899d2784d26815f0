//! Tiled segments in a plan (format version 2): their shape, read from the
//! op table, and their validation, which runs each segment's schedule once
//! without computing anything ([`crate::tiling`]).

use core::ops::Range;

use super::Plan;
use crate::error::PlanError;
use crate::format::{Encoding, OpDesc, OpKind, TensorDesc, NONE, TILED_FORMAT_VERSION};
use crate::tiling::{RowDep, RowInput, Rows, Segment, SegmentOp, Source, Steps, MAX_SEGMENT_OPS};

/// One tiled segment of a plan: the [`OpKind::Tiled`] op at `at` and the
/// schedule's shape of the ops `at + 1 ..= at + len`.
#[derive(Debug, Clone, Copy)]
pub struct TiledSegment {
    pub at: u32,
    pub len: u32,
    pub segment: Segment,
}

impl TiledSegment {
    /// Plan index of the segment's op `j`.
    pub fn op_index(&self, j: usize) -> u32 {
        self.at + 1 + j as u32
    }

    /// Plan indices of the segment's ops.
    pub fn ops(&self) -> Range<u32> {
        self.at + 1..self.at + 1 + self.len
    }
}

/// Bytes of one row of an NHWC activation.
pub(crate) fn row_bytes(t: &TensorDesc) -> usize {
    (t.dims[2] as usize)
        .saturating_mul(t.dims[3] as usize)
        .saturating_mul(t.dtype.size())
}

/// The tensors an op reads from the arena (main input, then a residual or
/// an Add's second operand).
pub(crate) fn arena_inputs(op: &OpDesc) -> [u32; 2] {
    match op.kind {
        OpKind::Add => [op.input, op.input2],
        OpKind::Conv2d => [op.input, op.residual],
        OpKind::Tiled => [NONE, NONE],
        _ => [op.input, NONE],
    }
}

impl<'a> Plan<'a> {
    /// The tiled segment whose [`OpKind::Tiled`] op is op `at`.
    pub fn tiled_segment(&self, at: u32) -> Result<TiledSegment, PlanError> {
        let tiled = self.op(at)?;
        let bad = |j: u32, reason| PlanError::BadSegment {
            op: at,
            at: j,
            row: 0,
            reason,
        };
        if tiled.kind != OpKind::Tiled {
            return Err(bad(0, "not a tiled op"));
        }
        let len = tiled.segment_ops();
        if len == 0 || len as usize > MAX_SEGMENT_OPS || tiled.rows_per_step() == 0 {
            return Err(bad(
                0,
                "a segment holds 1 to 16 ops and steps at least one row",
            ));
        }
        if at as u64 + len as u64 >= self.header.op_count as u64 {
            return Err(bad(0, "the segment runs past the last op"));
        }
        let mut segment = Segment::new(tiled.rows_per_step() as u32);
        let mut outputs = [NONE; MAX_SEGMENT_OPS];
        for j in 0..len {
            let op = self.op(at + 1 + j)?;
            let window = match op.kind {
                OpKind::Conv2d | OpKind::MaxPool | OpKind::AvgPool => RowDep::Window {
                    kernel: op.kernel_h as u32,
                    stride: op.stride_h as u32,
                    pad: op.pad_top as u32,
                },
                OpKind::Add => RowDep::Same,
                _ => {
                    return Err(bad(
                        j,
                        "only Conv2d, MaxPool, AvgPool and Add run in a tiled segment",
                    ))
                }
            };
            if outputs[..j as usize].contains(&op.output) {
                return Err(bad(j, "two ops of the segment write the same tensor"));
            }
            let y = self.tensor(op.output)?;
            let mut inputs = [None; 2];
            for (slot, t) in arena_inputs(&op).into_iter().enumerate() {
                if t == NONE {
                    continue;
                }
                let x = self.tensor(t)?;
                if x.rank != 4 {
                    return Err(bad(j, "a segment's tensors are NHWC feature maps"));
                }
                let source = match outputs[..j as usize].iter().position(|&o| o == t) {
                    Some(k) => Source::Inside(k),
                    None if x.encoding == Encoding::RowBuffer => {
                        return Err(bad(j, "reads a row buffer another segment computes"))
                    }
                    None => Source::Outside(t),
                };
                inputs[slot] = Some(RowInput {
                    source,
                    dep: if slot == 0 { window } else { RowDep::Same },
                    rows: x.dims[1],
                });
            }
            if y.rank != 4 {
                return Err(bad(j, "a segment's tensors are NHWC feature maps"));
            }
            let last = j + 1 == len;
            if last != (y.encoding != Encoding::RowBuffer) {
                return Err(bad(
                    j,
                    "every op but the last writes a row buffer, the last a whole tensor",
                ));
            }
            outputs[j as usize] = op.output;
            segment
                .push(SegmentOp {
                    rows: y.dims[1],
                    inputs,
                })
                .map_err(|e| bad(j, e.reason()))?;
        }
        for (k, &t) in outputs[..len as usize - 1].iter().enumerate() {
            let read = (k + 1..len as usize).any(|j| {
                self.op(at + 1 + j as u32)
                    .is_ok_and(|o| arena_inputs(&o).contains(&t))
            });
            if !read {
                return Err(bad(
                    k as u32,
                    "an op whose output no later op of the segment reads (it would never run)",
                ));
            }
        }
        if tiled.output != outputs[len as usize - 1] {
            return Err(bad(
                len - 1,
                "the tiled op's output is not its last op's output",
            ));
        }
        Ok(TiledSegment { at, len, segment })
    }

    /// The [`OpKind::Tiled`] op whose segment holds op `index`, if any.
    pub fn segment_holding(&self, index: u32) -> Option<u32> {
        let mut i = 0;
        while i < index {
            let op = self.op(i).ok()?;
            if op.kind == OpKind::Tiled {
                let end = i.saturating_add(op.segment_ops());
                if index <= end {
                    return Some(i);
                }
                i = end;
            }
            i += 1;
        }
        None
    }
}

/// Every tiled segment and row buffer of `plan`.
pub(super) fn check_all(plan: &Plan<'_>) -> Result<(), PlanError> {
    let tiled_format = plan.header.version >= TILED_FORMAT_VERSION;
    for index in [plan.header.input, plan.header.output] {
        if plan.tensor(index)?.encoding == Encoding::RowBuffer {
            return Err(PlanError::BadRowBuffer {
                tensor: index,
                reason: "the plan's input and output are whole tensors",
            });
        }
    }
    if !tiled_format {
        for i in 0..plan.header.tensor_count {
            if plan.tensor(i)?.encoding == Encoding::RowBuffer {
                return Err(PlanError::BadRowBuffer {
                    tensor: i,
                    reason: "format version 1 has no row buffers",
                });
            }
        }
    }
    let mut i = 0;
    while i < plan.header.op_count {
        let op = plan.op(i)?;
        if op.kind == OpKind::Tiled {
            if !tiled_format {
                return Err(PlanError::BadSegment {
                    op: i,
                    at: 0,
                    row: 0,
                    reason: "format version 1 has no tiled segments",
                });
            }
            let seg = plan.tiled_segment(i)?;
            check_segment(plan, &seg)?;
            i = seg.ops().end;
            continue;
        }
        for t in arena_inputs(&op).into_iter().chain([op.output]) {
            if t != NONE && plan.tensor(t)?.encoding == Encoding::RowBuffer {
                return Err(PlanError::BadRowBuffer {
                    tensor: t,
                    reason: "used by an op outside a tiled segment",
                });
            }
        }
        i += 1;
    }
    Ok(())
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// One segment: its tensors apart in the arena (but for an input the output
/// may overwrite once it is consumed), and its schedule run dry.
fn check_segment(plan: &Plan<'_>, seg: &TiledSegment) -> Result<(), PlanError> {
    let bad = |j: u32, row: u32, reason| PlanError::BadSegment {
        op: seg.at,
        at: j,
        row,
        reason,
    };
    let ops = seg.segment.ops();
    let last = ops.len() - 1;
    // The segment's tensors: each op's output, then the outside inputs.
    let mut tensors = [NONE; 3 * MAX_SEGMENT_OPS];
    let mut count = 0;
    for (j, sop) in ops.iter().enumerate() {
        let op = plan.op(seg.op_index(j))?;
        let outside = sop.inputs.iter().flatten().filter_map(|i| match i.source {
            Source::Outside(t) => Some(t),
            Source::Inside(_) => None,
        });
        for t in core::iter::once(op.output).chain(outside) {
            if !tensors[..count].contains(&t) {
                tensors[count] = t;
                count += 1;
            }
        }
    }
    let out_index = output_index(plan, seg)?;
    let output = plan.tensor(out_index)?;
    let mut reused = [NONE; 3 * MAX_SEGMENT_OPS];
    let mut reused_count = 0;
    for (a, &ta) in tensors[..count].iter().enumerate() {
        let ra = plan.tensor(ta)?.range();
        for &tb in &tensors[a + 1..count] {
            if !overlaps(&ra, &plan.tensor(tb)?.range()) {
                continue;
            }
            // An outside input may share bytes with the segment's output
            // (the dry run checks it is consumed first), nothing else.
            let other = match (ta == out_index, tb == out_index) {
                (true, false) => tb,
                (false, true) => ta,
                _ => NONE,
            };
            if other == NONE || is_segment_output(plan, seg, other) {
                return Err(PlanError::Overlap {
                    op: seg.at,
                    input: ta,
                    output: tb,
                });
            }
            reused[reused_count] = other;
            reused_count += 1;
        }
    }
    // An input the output overwrites must not be read after the segment.
    for &x in &reused[..reused_count] {
        if x == plan.header.output {
            return Err(bad(
                last as u32,
                0,
                "the output overwrites the plan's output",
            ));
        }
        for later in seg.ops().end..plan.header.op_count {
            if arena_inputs(&plan.op(later)?).contains(&x) {
                return Err(PlanError::Overlap {
                    op: later,
                    input: x,
                    output: out_index,
                });
            }
        }
    }
    let mut caps = [0u32; MAX_SEGMENT_OPS];
    for (j, cap) in caps.iter_mut().enumerate().take(last) {
        let t = plan.tensor(plan.op(seg.op_index(j))?.output)?;
        *cap = (t.length as usize / row_bytes(&t).max(1)) as u32;
    }
    let mut dry = DryRun {
        plan,
        seg,
        caps,
        output,
        reused: &reused[..reused_count],
    };
    match seg.segment.run(&mut dry) {
        Ok(_) => Ok(()),
        Err(crate::tiling::ScheduleError::Step(e)) => Err(e),
        Err(crate::tiling::ScheduleError::Shape(s)) => Err(bad(0, 0, s.reason())),
    }
}

fn output_index(plan: &Plan<'_>, seg: &TiledSegment) -> Result<u32, PlanError> {
    Ok(plan.op(seg.op_index(seg.len as usize - 1))?.output)
}

fn is_segment_output(plan: &Plan<'_>, seg: &TiledSegment, t: u32) -> bool {
    seg.ops().any(|i| plan.op(i).is_ok_and(|o| o.output == t))
}

/// The schedule run without computing: checks every buffer holds what the
/// schedule puts in it and the output never overwrites input rows still
/// to be read.
struct DryRun<'p, 'a, 'r> {
    plan: &'p Plan<'a>,
    seg: &'p TiledSegment,
    caps: [u32; MAX_SEGMENT_OPS],
    output: TensorDesc,
    reused: &'r [u32],
}

impl Steps for DryRun<'_, '_, '_> {
    type Error = PlanError;

    fn shift(&mut self, _: usize, _: u32, _: u32, _: u32) -> Result<(), PlanError> {
        Ok(())
    }

    #[inline(never)]
    fn compute(&mut self, j: usize, rows: Range<u32>, state: &Rows) -> Result<(), PlanError> {
        let bad = |reason| PlanError::BadSegment {
            op: self.seg.at,
            at: j as u32,
            row: rows.start,
            reason,
        };
        let ops = self.seg.segment.ops();
        let last = j + 1 == ops.len();
        if !last && rows.end - state.base[j] > self.caps[j] {
            return Err(bad("a row buffer holds fewer rows than the schedule needs"));
        }
        for input in ops[j].inputs.iter().flatten() {
            if let Source::Inside(k) = input.source {
                let need = input.dep.input_rows(&rows, input.rows);
                if need.start < state.base[k] || need.end > state.done[k] {
                    return Err(bad("the schedule reads rows its buffer no longer holds"));
                }
            }
        }
        if last {
            let rb = row_bytes(&self.output);
            let start = self.output.offset as usize;
            let written = start + rows.start as usize * rb..start + rows.end as usize * rb;
            for &x in self.reused {
                let t = self.plan.tensor(x)?;
                let first = self
                    .seg
                    .segment
                    .first_needed_outside(x, state)
                    .unwrap_or(t.dims[1]);
                let live = t.offset as usize + first as usize * row_bytes(&t)..t.range().end;
                if overlaps(&written, &live) {
                    return Err(bad("the output overwrites input rows still to be read"));
                }
            }
        }
        Ok(())
    }
}
