//! Tiled execution: a run of spatial ops computed a few rows at a time.
//!
//! Layer-by-layer execution keeps every feature map whole, so the arena
//! cannot shrink below the two largest neighbouring maps. A *tiled segment*
//! ([`crate::OpKind::Tiled`]) runs its ops row band by row band instead:
//! each intermediate map lives in a [`crate::Encoding::RowBuffer`] that holds
//! only the rows its consumers still need (the band just computed plus the
//! halo rows a following convolution or pooling window reads again), and
//! only the segment's inputs and its last op's output are whole tensors.
//!
//! Rows are computed once and kept, not recomputed: each op computes
//! `rows_per_step` new output rows per kernel call, on demand, when a
//! consumer needs them, after moving the rows no consumer needs any more
//! out of its buffer. So a tiled plan does exactly the untiled plan's
//! multiply-accumulates (or fewer, where a strided consumer never reads an
//! op's last rows) and every output value is computed from the same inputs
//! by the same kernel: the results are the untiled plan's, byte for byte.
//!
//! [`Segment::run`] is the schedule. The engine runs it to execute a segment
//! and, with a checking visitor, to validate one (buffer capacities, and an
//! output that may overwrite input rows only once they are consumed); the
//! host compiler runs the same code to size the buffers. There is no
//! schedule in the plan: the segment's shape and `rows_per_step` decide it.

use core::ops::Range;

/// Most ops one tiled segment may hold.
pub const MAX_SEGMENT_OPS: usize = 16;

/// How an op's output rows depend on one input's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowDep {
    /// A convolution or pooling window: output row `r` reads input rows
    /// `r·stride - pad .. r·stride - pad + kernel` (those inside the input).
    Window { kernel: u32, stride: u32, pad: u32 },
    /// Output row `r` reads input row `r` (a residual, an Add's operands).
    Same,
}

impl RowDep {
    /// The input rows that output rows `rows` read, within `[0, in_rows)`.
    pub fn input_rows(&self, rows: &Range<u32>, in_rows: u32) -> Range<u32> {
        if rows.is_empty() {
            return 0..0;
        }
        match *self {
            RowDep::Same => rows.start.min(in_rows)..rows.end.min(in_rows),
            RowDep::Window {
                kernel,
                stride,
                pad,
            } => {
                let first = rows.start as u64 * stride as u64;
                let end = (rows.end as u64 - 1) * stride as u64 + kernel as u64;
                let lo = first.saturating_sub(pad as u64).min(in_rows as u64) as u32;
                let hi = end.saturating_sub(pad as u64).min(in_rows as u64) as u32;
                lo..hi.max(lo)
            }
        }
    }

    /// The first input row an op still needs once it has computed `done`
    /// output rows (`in_rows` when it needs none).
    pub fn first_needed(&self, done: u32, in_rows: u32) -> u32 {
        match *self {
            RowDep::Same => done.min(in_rows),
            RowDep::Window { stride, pad, .. } => {
                ((done as u64 * stride as u64)
                    .saturating_sub(pad as u64)
                    .min(in_rows as u64)) as u32
            }
        }
    }

    /// The padding rows above input row `first_in` that output row `first_out`'s
    /// window covers: the `pad_top` of a kernel call over a band that starts
    /// at `first_out` and reads from `first_in` (0 inside the tensor, the
    /// real padding at its top edge).
    pub fn band_pad_top(&self, first_out: u32, first_in: u32) -> u32 {
        match *self {
            RowDep::Same => 0,
            RowDep::Window { stride, pad, .. } => (pad as u64 + first_in as u64)
                .saturating_sub(first_out as u64 * stride as u64)
                as u32,
        }
    }
}

/// Where one input of a segment's op comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A whole tensor computed before the segment (an id the caller
    /// chose: the engine uses tensor indices).
    Outside(u32),
    /// The output of the segment's op at this position (always earlier).
    Inside(usize),
}

/// One input of a segment's op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowInput {
    pub source: Source,
    pub dep: RowDep,
    /// The input's height.
    pub rows: u32,
}

/// One op of a segment: its output height and how it reads its inputs (the
/// main input first, then a residual or an Add's second operand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentOp {
    pub rows: u32,
    pub inputs: [Option<RowInput>; 2],
}

/// Why a segment's shape cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeIssue {
    TooManyOps,
    Empty,
    ZeroRows,
    /// An input refers to an op at or after the one reading it.
    LaterSource,
}

impl ShapeIssue {
    pub fn reason(self) -> &'static str {
        match self {
            ShapeIssue::TooManyOps => "more ops than a tiled segment may hold (16)",
            ShapeIssue::Empty => "a tiled segment needs at least one op and one row per step",
            ShapeIssue::ZeroRows => "an op of the segment has no rows",
            ShapeIssue::LaterSource => "an op reads a tensor computed after it",
        }
    }
}

/// The ops of one tiled segment, in execution order, and how many output
/// rows each computes per kernel call.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    ops: [SegmentOp; MAX_SEGMENT_OPS],
    len: usize,
    rows_per_step: u32,
}

/// The schedule's state: per op, the output rows computed so far and the
/// first row its buffer holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rows {
    pub done: [u32; MAX_SEGMENT_OPS],
    pub base: [u32; MAX_SEGMENT_OPS],
}

impl Rows {
    /// Where row `row` of op `j`'s output sits in its buffer, in rows.
    pub fn slot(&self, j: usize, row: u32) -> u32 {
        row.saturating_sub(self.base.get(j).copied().unwrap_or(0))
    }
}

/// What a schedule does, step by step.
pub trait Steps {
    type Error;
    /// Op `op`'s buffer drops its rows before `keep`: rows `keep..done`
    /// move from buffer row `keep - base` to buffer row 0. Never called for
    /// the segment's last op (its output is a whole tensor).
    fn shift(&mut self, op: usize, base: u32, keep: u32, done: u32) -> Result<(), Self::Error>;
    /// Op `op` computes output rows `rows`. `state` holds every op's
    /// buffered rows (`base[k]..done[k]`), op `op`'s `base` already moved.
    fn compute(&mut self, op: usize, rows: Range<u32>, state: &Rows) -> Result<(), Self::Error>;
}

impl Segment {
    /// An empty segment stepping `rows_per_step` rows.
    pub fn new(rows_per_step: u32) -> Self {
        Segment {
            ops: [SegmentOp::default(); MAX_SEGMENT_OPS],
            len: 0,
            rows_per_step,
        }
    }

    /// Appends an op; returns its position.
    pub fn push(&mut self, op: SegmentOp) -> Result<usize, ShapeIssue> {
        let at = self.len;
        let slot = self.ops.get_mut(at).ok_or(ShapeIssue::TooManyOps)?;
        if op.rows == 0 || op.inputs.iter().flatten().any(|i| i.rows == 0) {
            return Err(ShapeIssue::ZeroRows);
        }
        let later = op
            .inputs
            .iter()
            .flatten()
            .any(|i| matches!(i.source, Source::Inside(k) if k >= at));
        if later {
            return Err(ShapeIssue::LaterSource);
        }
        *slot = op;
        self.len += 1;
        Ok(at)
    }

    pub fn ops(&self) -> &[SegmentOp] {
        self.ops.get(..self.len).unwrap_or(&[])
    }

    pub fn rows_per_step(&self) -> u32 {
        self.rows_per_step
    }

    /// Runs the schedule: the last op's rows `rows_per_step` at a time,
    /// each op computing what its consumers need just before they need it.
    /// Returns the final state (`done` of the last op is its height).
    pub fn run<S: Steps>(&self, steps: &mut S) -> Result<Rows, ScheduleError<S::Error>> {
        let last = self
            .len
            .checked_sub(1)
            .ok_or(ScheduleError::Shape(ShapeIssue::Empty))?;
        if self.rows_per_step == 0 {
            return Err(ScheduleError::Shape(ShapeIssue::Empty));
        }
        let mut state = Rows::default();
        let height = self.ops[last].rows;
        while state.done[last] < height {
            let hi = state.done[last]
                .saturating_add(self.rows_per_step)
                .min(height);
            self.ensure(last, hi, &mut state, steps)?;
        }
        Ok(state)
    }

    /// Computes op `j`'s rows up to `hi` (and, first, what they read).
    fn ensure<S: Steps>(
        &self,
        j: usize,
        hi: u32,
        state: &mut Rows,
        steps: &mut S,
    ) -> Result<(), ScheduleError<S::Error>> {
        let op = &self.ops[j];
        let last = j + 1 == self.len;
        while state.done[j] < hi {
            let first = state.done[j];
            let rows = first..first.saturating_add(self.rows_per_step).min(op.rows);
            for input in op.inputs.iter().flatten() {
                if let Source::Inside(k) = input.source {
                    let need = input.dep.input_rows(&rows, input.rows);
                    self.ensure(k, need.end, state, steps)?;
                }
            }
            if !last {
                let keep = self.first_needed(j, state).min(first);
                if keep > state.base[j] {
                    steps
                        .shift(j, state.base[j], keep, first)
                        .map_err(ScheduleError::Step)?;
                    state.base[j] = keep;
                }
            }
            steps
                .compute(j, rows.clone(), state)
                .map_err(ScheduleError::Step)?;
            state.done[j] = rows.end;
        }
        Ok(())
    }

    /// The first row of op `j`'s output that a consumer still needs.
    fn first_needed(&self, j: usize, state: &Rows) -> u32 {
        let mut first = self.ops[j].rows;
        for (c, op) in self.ops().iter().enumerate().skip(j + 1) {
            for input in op.inputs.iter().flatten() {
                if input.source == Source::Inside(j) {
                    first = first.min(input.dep.first_needed(state.done[c], input.rows));
                }
            }
        }
        first
    }

    /// The first row of outside tensor `id` that a segment op still needs
    /// (its height when none does).
    pub fn first_needed_outside(&self, id: u32, state: &Rows) -> Option<u32> {
        let mut first = None;
        for (c, op) in self.ops().iter().enumerate() {
            for input in op.inputs.iter().flatten() {
                if input.source == Source::Outside(id) {
                    let f = input.dep.first_needed(state.done[c], input.rows);
                    first = Some(first.map_or(f, |v: u32| v.min(f)));
                }
            }
        }
        first
    }

    /// Whether the last op's output (`out_row` bytes a row) may share a
    /// buffer with outside input `input` (`in_row` bytes a row) placed `at`
    /// bytes after the output's start: every output row is written only
    /// over input rows no op reads any more.
    pub fn output_may_cover(&self, input: u32, in_row: usize, out_row: usize, at: usize) -> bool {
        struct Cover<'s> {
            seg: &'s Segment,
            input: u32,
            in_row: usize,
            out_row: usize,
            at: usize,
        }
        impl Steps for Cover<'_> {
            type Error = ();
            fn shift(&mut self, _: usize, _: u32, _: u32, _: u32) -> Result<(), ()> {
                Ok(())
            }
            fn compute(&mut self, op: usize, rows: Range<u32>, state: &Rows) -> Result<(), ()> {
                if op + 1 != self.seg.len {
                    return Ok(());
                }
                let Some(first) = self.seg.first_needed_outside(self.input, state) else {
                    return Ok(());
                };
                let height = self
                    .seg
                    .ops()
                    .iter()
                    .flat_map(|o| o.inputs.iter().flatten())
                    .find(|i| i.source == Source::Outside(self.input))
                    .map_or(0, |i| i.rows);
                // Written bytes against the input rows still to be read.
                let written = rows.start as usize * self.out_row..rows.end as usize * self.out_row;
                let live =
                    self.at + first as usize * self.in_row..self.at + height as usize * self.in_row;
                if written.start < live.end && live.start < written.end {
                    Err(())
                } else {
                    Ok(())
                }
            }
        }
        let mut cover = Cover {
            seg: self,
            input,
            in_row,
            out_row,
            at,
        };
        self.run(&mut cover).is_ok()
    }

    /// Rows each op's buffer must hold, and the output rows each op
    /// computes, for this schedule.
    pub fn plan(&self) -> Result<SegmentPlan, ShapeIssue> {
        let mut sizing = Sizing::default();
        match self.run(&mut sizing) {
            Ok(_) => Ok(SegmentPlan {
                buffer_rows: sizing.buffer_rows,
                computed_rows: sizing.computed_rows,
                calls: sizing.calls,
            }),
            Err(ScheduleError::Shape(s)) => Err(s),
            Err(ScheduleError::Step(never)) => match never {},
        }
    }
}

/// A schedule stopped: the segment's shape, or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleError<E> {
    Shape(ShapeIssue),
    Step(E),
}

/// What a segment's schedule needs, from [`Segment::plan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentPlan {
    /// Per op: the most rows its buffer holds at once (the last op's is
    /// its whole height: its output is a whole tensor).
    pub buffer_rows: [u32; MAX_SEGMENT_OPS],
    /// Per op: output rows computed (its height, or fewer where no
    /// consumer reads the last rows).
    pub computed_rows: [u32; MAX_SEGMENT_OPS],
    /// Kernel calls of the whole segment.
    pub calls: u32,
}

#[derive(Default)]
struct Sizing {
    buffer_rows: [u32; MAX_SEGMENT_OPS],
    computed_rows: [u32; MAX_SEGMENT_OPS],
    calls: u32,
}

impl Steps for Sizing {
    type Error = core::convert::Infallible;
    fn shift(&mut self, _: usize, _: u32, _: u32, _: u32) -> Result<(), Self::Error> {
        Ok(())
    }
    fn compute(&mut self, op: usize, rows: Range<u32>, state: &Rows) -> Result<(), Self::Error> {
        let held = rows.end - state.base[op];
        self.buffer_rows[op] = self.buffer_rows[op].max(held);
        self.computed_rows[op] += rows.end - rows.start;
        self.calls += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(src: Source, in_rows: u32, k: u32, s: u32, p: u32, out: u32) -> SegmentOp {
        SegmentOp {
            rows: out,
            inputs: [
                Some(RowInput {
                    source: src,
                    dep: RowDep::Window {
                        kernel: k,
                        stride: s,
                        pad: p,
                    },
                    rows: in_rows,
                }),
                None,
            ],
        }
    }

    #[test]
    fn window_rows_clip_to_the_input() {
        let d = RowDep::Window {
            kernel: 3,
            stride: 1,
            pad: 1,
        };
        assert_eq!(d.input_rows(&(0..1), 8), 0..2);
        assert_eq!(d.input_rows(&(3..5), 8), 2..6);
        assert_eq!(d.input_rows(&(7..8), 8), 6..8);
        assert_eq!(d.band_pad_top(0, 0), 1);
        assert_eq!(d.band_pad_top(3, 2), 0);
        let s2 = RowDep::Window {
            kernel: 3,
            stride: 2,
            pad: 1,
        };
        assert_eq!(s2.input_rows(&(0..1), 8), 0..2);
        assert_eq!(s2.input_rows(&(1..2), 8), 1..4);
        assert_eq!(s2.first_needed(2, 8), 3);
    }

    #[test]
    fn a_chain_of_3x3_convs_keeps_three_rows_each() {
        let mut seg = Segment::new(1);
        seg.push(conv(Source::Outside(0), 16, 3, 1, 1, 16)).unwrap();
        seg.push(conv(Source::Inside(0), 16, 3, 1, 1, 16)).unwrap();
        seg.push(conv(Source::Inside(1), 16, 3, 1, 1, 16)).unwrap();
        let plan = seg.plan().unwrap();
        assert_eq!(&plan.buffer_rows[..3], &[3, 3, 16]);
        assert_eq!(&plan.computed_rows[..3], &[16, 16, 16]);
        assert_eq!(plan.calls, 48);
    }

    #[test]
    fn a_lagging_residual_widens_the_buffer() {
        // x -> a (3x3) -> b (3x3) -> c (3x3) + x: x's buffer spans from c's
        // residual row to a's newest window, two rows further on.
        let mut seg = Segment::new(1);
        seg.push(conv(Source::Outside(0), 8, 3, 1, 1, 8)).unwrap(); // x
        seg.push(conv(Source::Inside(0), 8, 3, 1, 1, 8)).unwrap(); // a
        seg.push(conv(Source::Inside(1), 8, 3, 1, 1, 8)).unwrap(); // b
        let mut c = conv(Source::Inside(2), 8, 3, 1, 1, 8);
        c.inputs[1] = Some(RowInput {
            source: Source::Inside(0),
            dep: RowDep::Same,
            rows: 8,
        });
        seg.push(c).unwrap();
        let plan = seg.plan().unwrap();
        assert_eq!(&plan.buffer_rows[..4], &[4, 3, 3, 8]);
    }

    #[test]
    fn taller_steps_hold_more_rows_and_call_fewer_kernels() {
        let mut seg = Segment::new(4);
        seg.push(conv(Source::Outside(0), 32, 3, 1, 1, 32)).unwrap();
        seg.push(conv(Source::Inside(0), 32, 3, 2, 1, 16)).unwrap();
        let plan = seg.plan().unwrap();
        assert_eq!(plan.computed_rows[0], 32);
        assert!(plan.buffer_rows[0] >= 9, "{:?}", plan.buffer_rows);
        assert_eq!(plan.calls, 8 + 4);
    }

    #[test]
    fn a_bad_shape_is_refused() {
        let mut seg = Segment::new(1);
        assert_eq!(
            seg.push(conv(Source::Inside(0), 8, 3, 1, 1, 8)),
            Err(ShapeIssue::LaterSource)
        );
        assert!(matches!(Segment::new(1).plan(), Err(ShapeIssue::Empty)));
    }
}
