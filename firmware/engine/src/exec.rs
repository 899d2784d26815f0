//! The executor: runs a validated plan's ops in order over a caller-owned
//! arena.
//!
//! The arena needs no particular alignment: kernels decode values with
//! `from_le_bytes`. Each op gets its output as `&mut` and its inputs as `&`
//! by splitting the arena around the output range, so nothing aliases
//! unsafely; the validator has already rejected overlaps that would need it.

use core::ops::Range;

use crate::error::ExecError;
use crate::format::{Activation, Encoding, OpDesc, OpKind, Precision, TensorDesc, NONE};
use crate::kernels::{
    add, conv, dense, pool, scratch, softmax, sparse, transpose, FloatAct, FuseI8, Geom, I32s,
    KernelPath, Kx, Out8, OutF, QuantParams, Residual, ShapeError, F16W, F32W,
};
use crate::plan::{segment, Plan, TiledSegment};
use crate::tiling::{Rows, ScheduleError, Source, Steps};

/// Runs one plan. Holds no state besides the plan and the kernel choice, so
/// it is cheap to create and can be shared; all mutable state is in the
/// arena.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    plan: Plan<'a>,
    kernels: KernelPath,
}

/// The arena split around one op's output range.
struct Io<'x> {
    out: &'x mut [u8],
    before: &'x [u8],
    after: &'x [u8],
    after_start: usize,
}

impl<'x> Io<'x> {
    fn split(arena: &'x mut [u8], out: Range<usize>) -> Option<Self> {
        if out.start > out.end || out.end > arena.len() {
            return None;
        }
        let (before, rest) = arena.split_at_mut(out.start);
        let (o, after) = rest.split_at_mut(out.end - out.start);
        Some(Io {
            out: o,
            before,
            after,
            after_start: out.end,
        })
    }

    /// An input range; `None` if it overlaps the output.
    fn input(&self, r: Range<usize>) -> Option<&'x [u8]> {
        if r.end <= self.before.len() {
            self.before.get(r)
        } else if r.start >= self.after_start {
            self.after
                .get(r.start - self.after_start..r.end.checked_sub(self.after_start)?)
        } else {
            None
        }
    }
}

impl<'a> Engine<'a> {
    /// An engine using the fastest kernels available ([`KernelPath::Auto`]).
    pub fn new(plan: &Plan<'a>) -> Self {
        Self::with_kernels(plan, KernelPath::Auto)
    }

    /// An engine restricted to `kernels`: [`KernelPath::Portable`] runs the
    /// portable reference kernels only, to compare against `Auto` byte for
    /// byte.
    pub fn with_kernels(plan: &Plan<'a>, kernels: KernelPath) -> Self {
        Engine {
            plan: *plan,
            kernels,
        }
    }

    /// The kernel path this engine runs.
    pub fn kernels(&self) -> KernelPath {
        self.kernels
    }

    /// Whether this engine runs SIMD kernels on this machine (`Auto` or
    /// `NoAvx512` on a CPU with AVX2); when false, every path runs the same
    /// code.
    pub fn uses_simd(&self) -> bool {
        self.kernels.uses_simd()
    }

    /// The SIMD extension its int8 kernels use here ([`KernelPath::simd_name`]).
    pub fn simd_name(&self) -> &'static str {
        self.kernels.simd_name()
    }

    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// Bytes the arena passed to [`Engine::run`] must have at least: the
    /// plan's activation arena plus its kernel scratch
    /// ([`Plan::arena_size`]). The scratch is the tail
    /// `[activation_arena_size, arena_size)`.
    pub fn arena_size(&self) -> usize {
        self.plan.arena_size()
    }

    pub fn op_count(&self) -> usize {
        self.plan.op_count()
    }

    fn check_arena(&self, len: usize) -> Result<(), ExecError> {
        if len < self.arena_size() {
            return Err(ExecError::ArenaTooSmall {
                needed: self.arena_size(),
                provided: len,
            });
        }
        Ok(())
    }

    fn io_tensor(
        &self,
        len: usize,
        t: Result<TensorDesc, crate::PlanError>,
    ) -> Result<Range<usize>, ExecError> {
        self.check_arena(len)?;
        let r = t
            .map(|t| t.range())
            .map_err(|_| ExecError::Internal { op: 0 })?;
        if r.end > len {
            return Err(ExecError::ArenaTooSmall {
                needed: r.end,
                provided: len,
            });
        }
        Ok(r)
    }

    /// The input tensor's bytes in `arena`, for the caller to fill (NHWC;
    /// int8 values as bytes, f32 little-endian).
    pub fn input_mut<'b>(&self, arena: &'b mut [u8]) -> Result<&'b mut [u8], ExecError> {
        let r = self.io_tensor(arena.len(), self.plan.input())?;
        arena.get_mut(r).ok_or(ExecError::Internal { op: 0 })
    }

    /// The output tensor's bytes in `arena` after [`Engine::run`].
    pub fn output<'b>(&self, arena: &'b [u8]) -> Result<&'b [u8], ExecError> {
        let r = self.io_tensor(arena.len(), self.plan.output())?;
        arena.get(r).ok_or(ExecError::Internal { op: 0 })
    }

    /// Runs every op in order.
    pub fn run(&self, arena: &mut [u8]) -> Result<(), ExecError> {
        self.check_arena(arena.len())?;
        let mut i = 0;
        while i < self.op_count() {
            let op = self
                .plan
                .op(i as u32)
                .map_err(|_| ExecError::Internal { op: i })?;
            self.run_decoded(arena, i, op)?;
            // A tiled op has run its segment's ops.
            i += 1 + if op.kind == OpKind::Tiled {
                op.segment_ops() as usize
            } else {
                0
            };
        }
        Ok(())
    }

    /// Runs op `index` alone (for per-layer timing). Ops must run in order
    /// for the results to mean anything. A [`OpKind::Tiled`] op runs its
    /// whole segment; the ops inside a segment then do nothing alone.
    pub fn run_op(&self, arena: &mut [u8], index: usize) -> Result<(), ExecError> {
        self.check_arena(arena.len())?;
        let count = self.op_count();
        if index >= count {
            return Err(ExecError::NoSuchOp { op: index, count });
        }
        if self.plan.segment_holding(index as u32).is_some() {
            return Ok(());
        }
        let op = self
            .plan
            .op(index as u32)
            .map_err(|_| ExecError::Internal { op: index })?;
        self.run_decoded(arena, index, op)
    }

    /// Runs op `index`, decoded as `op`, outside any segment.
    fn run_decoded(&self, arena: &mut [u8], index: usize, op: OpDesc) -> Result<(), ExecError> {
        let internal = ExecError::Internal { op: index };
        let (acts, rest) = arena.split_at_mut(self.plan.activation_arena_size());
        let scratch = rest.get_mut(..self.plan.scratch_bytes()).unwrap_or(&mut []);
        let mut kx = Kx {
            simd: self.kernels.uses_simd(),
            vnni: self.kernels.uses_vnni(),
            use_scratch: self.kernels.uses_scratch(),
            scratch,
        };
        if op.kind == OpKind::Tiled {
            return self.run_segment(acts, index as u32, &mut kx);
        }
        let cx = OpCx {
            plan: &self.plan,
            op,
            x: self.plan.tensor(op.input).map_err(|_| internal.clone())?,
            y: self.plan.tensor(op.output).map_err(|_| internal.clone())?,
            band: None,
        };
        cx.run(acts, &mut kx).ok_or(internal)
    }

    /// Runs the tiled segment of the [`OpKind::Tiled`] op at `at`.
    fn run_segment(&self, acts: &mut [u8], at: u32, kx: &mut Kx<'_>) -> Result<(), ExecError> {
        let seg = self
            .plan
            .tiled_segment(at)
            .map_err(|_| ExecError::Internal { op: at as usize })?;
        let mut bands = Bands {
            plan: &self.plan,
            seg: &seg,
            acts,
            kx,
        };
        seg.segment
            .run(&mut bands)
            .map(|_| ())
            .map_err(|e| match e {
                ScheduleError::Step(e) => e,
                ScheduleError::Shape(_) => ExecError::Internal { op: at as usize },
            })
    }
}

/// A tiled segment's schedule carried out over the arena.
struct Bands<'e, 'p, 'a, 'k, 's> {
    plan: &'e Plan<'p>,
    seg: &'e TiledSegment,
    acts: &'a mut [u8],
    kx: &'k mut Kx<'s>,
}

impl Bands<'_, '_, '_, '_, '_> {
    /// Arena bytes of rows `rows` of the tensor op `source` reads: a whole
    /// tensor, or a segment op's row buffer.
    fn rows_of(
        &self,
        t: &TensorDesc,
        source: Source,
        rows: &Range<u32>,
        state: &Rows,
    ) -> Range<usize> {
        let rb = segment::row_bytes(t);
        let first = match source {
            Source::Outside(_) => rows.start,
            Source::Inside(k) => state.slot(k, rows.start),
        } as usize;
        let start = t.offset as usize + first * rb;
        start..start + rows.len() * rb
    }
}

impl Steps for Bands<'_, '_, '_, '_, '_> {
    type Error = ExecError;

    // Not inlined: the schedule recurses through the segment's ops, and a
    // kernel call's frame must be paid once on a microcontroller's stack,
    // not at every level.
    #[inline(never)]
    fn shift(&mut self, j: usize, base: u32, keep: u32, done: u32) -> Result<(), ExecError> {
        let index = self.seg.op_index(j);
        let internal = ExecError::Internal { op: index as usize };
        let op = self.plan.op(index).map_err(|_| internal.clone())?;
        let t = self.plan.tensor(op.output).map_err(|_| internal.clone())?;
        let rb = segment::row_bytes(&t);
        let start = t.offset as usize;
        let from = start + (keep - base) as usize * rb..start + (done - base) as usize * rb;
        if from.end > self.acts.len() || from.start > from.end {
            return Err(internal);
        }
        self.acts.copy_within(from, start);
        Ok(())
    }

    #[inline(never)]
    fn compute(&mut self, j: usize, rows: Range<u32>, state: &Rows) -> Result<(), ExecError> {
        let index = self.seg.op_index(j);
        let internal = ExecError::Internal { op: index as usize };
        let op = self.plan.op(index).map_err(|_| internal.clone())?;
        let sop = self
            .seg
            .segment
            .ops()
            .get(j)
            .copied()
            .ok_or(internal.clone())?;
        let x = self.plan.tensor(op.input).map_err(|_| internal.clone())?;
        let y = self.plan.tensor(op.output).map_err(|_| internal.clone())?;
        let last = j + 1 == self.seg.len as usize;
        let out = self.rows_of(
            &y,
            if last {
                Source::Outside(op.output)
            } else {
                Source::Inside(j)
            },
            &rows,
            state,
        );
        let [main, second] = sop.inputs;
        let main = main.ok_or(internal.clone())?;
        let in_rows = main.dep.input_rows(&rows, main.rows);
        let x_bytes = self.rows_of(&x, main.source, &in_rows, state);
        let second = match second {
            Some(input) => {
                let t = self
                    .plan
                    .tensor(segment::arena_inputs(&op)[1])
                    .map_err(|_| internal.clone())?;
                Some((t, self.rows_of(&t, input.source, &rows, state)))
            }
            None => None,
        };
        let mut g = Geom::of_op(&op, &x.dims, &y.dims);
        g.in_h = in_rows.len();
        g.out_h = rows.len();
        g.pad_top = main.dep.band_pad_top(rows.start, in_rows.start) as usize;
        let cx = OpCx {
            plan: self.plan,
            op,
            x,
            y,
            band: Some(g),
        };
        let io = Io::split(self.acts, out).ok_or(internal.clone())?;
        let xs = io.input(x_bytes).ok_or(internal.clone())?;
        let done = match (op.kind, second) {
            (OpKind::Add, Some((b, r))) => {
                let bs = io.input(r).ok_or(internal.clone())?;
                cx.add_separate(xs, &b, bs, io.out)
            }
            (OpKind::Add, None) => None,
            (_, Some((r, range))) => {
                let rs = io.input(range).ok_or(internal.clone())?;
                cx.unary(xs, Some((r, Residual::Separate(rs))), io.out, self.kx)
            }
            (_, None) => cx.unary(xs, None, io.out, self.kx),
        };
        done.ok_or(internal)
    }
}

/// One op with its input and output tensors decoded.
struct OpCx<'p, 'a> {
    plan: &'p Plan<'a>,
    op: OpDesc,
    x: TensorDesc,
    y: TensorDesc,
    /// In a tiled segment: the geometry of one band of rows (the input
    /// rows it reads, the padding above them, the output rows).
    band: Option<Geom>,
}

/// Turns a kernel result into the `Option` the dispatcher works with.
fn ok(r: Result<(), ShapeError>) -> Option<()> {
    r.ok()
}

impl<'a> OpCx<'_, 'a> {
    fn run(&self, arena: &mut [u8], kx: &mut Kx<'_>) -> Option<()> {
        match self.op.kind {
            OpKind::Reshape => self.reshape(arena),
            OpKind::Add => self.add(arena),
            _ => {
                let io = Io::split(arena, self.y.range())?;
                let x = io.input(self.x.range())?;
                let residual = if self.op.has_residual() {
                    let r = self.tensor(self.op.residual)?;
                    Some(if r.range() == self.y.range() {
                        (r, Residual::InPlace)
                    } else {
                        (r, Residual::Separate(io.input(r.range())?))
                    })
                } else {
                    None
                };
                self.unary(x, residual, io.out, kx)
            }
        }
    }

    fn unary(
        &self,
        x: &[u8],
        residual: Option<(TensorDesc, Residual<'_>)>,
        out: &mut [u8],
        kx: &mut Kx<'_>,
    ) -> Option<()> {
        let int8 = self.plan.precision() == Precision::Int8;
        match self.op.kind {
            OpKind::Conv2d => self.conv(x, residual, out, kx),
            OpKind::Dense => self.dense(x, out, kx),
            OpKind::MaxPool | OpKind::AvgPool | OpKind::GlobalAvgPool => {
                let g = self.pool_geom()?;
                let max = self.op.kind == OpKind::MaxPool;
                let clamp = pool::PoolClamp {
                    act_min: self.op.act_min,
                    act_max: self.op.act_max,
                };
                ok(match (int8, max) {
                    (true, true) => pool::max_pool_i8(&g, x, clamp, out),
                    (true, false) => pool::avg_pool_i8(&g, x, clamp, out),
                    (false, true) => pool::max_pool_f32(&g, x, self.float_act(), out),
                    (false, false) => pool::avg_pool_f32(&g, x, self.float_act(), out),
                })
            }
            OpKind::Softmax => {
                let row = *self.x.shape().last()? as usize;
                if int8 {
                    let table = self
                        .plan
                        .i32_array(self.op.multipliers, softmax::EXP_TABLE_LEN)?;
                    ok(softmax::softmax_i8(x, row, table, out))
                } else {
                    ok(softmax::softmax_f32(x, row, out))
                }
            }
            OpKind::Transpose => {
                let dims = transpose::pad_to_4(self.x.shape())?;
                let elem = if int8 { 1 } else { 4 };
                ok(transpose::transpose(
                    x,
                    dims,
                    self.op.transpose_perm()?,
                    elem,
                    out,
                ))
            }
            OpKind::Add | OpKind::Reshape | OpKind::Tiled => None,
        }
    }

    fn tensor(&self, index: u32) -> Option<TensorDesc> {
        self.plan.tensor(index).ok()
    }

    fn weights(&self, index: u32) -> Option<&'a [u8]> {
        self.plan.weight_bytes(&self.tensor(index)?)
    }

    /// Optional bias bytes: `Some(None)` when the op has no bias.
    fn bias(&self) -> Option<Option<&'a [u8]>> {
        if self.op.bias == NONE {
            Some(None)
        } else {
            self.weights(self.op.bias).map(Some)
        }
    }

    fn float_act(&self) -> FloatAct {
        match self.op.activation {
            Activation::None => FloatAct::NONE,
            Activation::Relu => FloatAct {
                min: 0.0,
                max: f32::INFINITY,
            },
            Activation::Clip => FloatAct {
                min: self.op.clip_min,
                max: self.op.clip_max,
            },
        }
    }

    fn quant(&self, channels: usize) -> Option<QuantParams<'a>> {
        Some(QuantParams {
            in_zp: self.x.quant.zero_point,
            out_zp: self.y.quant.zero_point,
            act_min: self.op.act_min,
            act_max: self.op.act_max,
            multipliers: self.plan.i32_array(self.op.multipliers, channels)?,
            shifts: self.plan.i32_array(self.op.shifts, channels)?,
        })
    }

    fn geom(&self) -> Geom {
        self.band
            .unwrap_or_else(|| Geom::of_op(&self.op, &self.x.dims, &self.y.dims))
    }

    fn pool_geom(&self) -> Option<Geom> {
        if self.op.kind == OpKind::GlobalAvgPool {
            let d = &self.x.dims;
            Some(pool::global_geom(
                d[1] as usize,
                d[2] as usize,
                d[3] as usize,
            ))
        } else {
            Some(self.geom())
        }
    }

    fn conv(
        &self,
        x: &[u8],
        residual: Option<(TensorDesc, Residual<'_>)>,
        out: &mut [u8],
        kx: &mut Kx<'_>,
    ) -> Option<()> {
        let g = self.geom();
        let wt = self.tensor(self.op.weights)?;
        // Validated: rank 3 is depthwise, rank 4 regular.
        let depthwise = wt.rank == 3;
        let sparse = wt.encoding == Encoding::BitmapRows;
        let w = if sparse {
            &[][..]
        } else {
            self.weights(self.op.weights)?
        };
        let bias = self.bias()?;
        let act = self.float_act();
        let float_out = OutF {
            act,
            residual: residual.map(|(_, r)| r),
        };
        ok(match self.plan.precision() {
            Precision::Int8 => {
                let mut q = self.quant(g.out_c)?;
                let fuse = match residual {
                    Some((rt, r)) => {
                        // The conv result is requantised as the tensor an
                        // unfused Conv2d would have written, then added.
                        q.out_zp = self.op.conv_out.zero_point;
                        q.act_min = self.op.conv_act_min;
                        q.act_max = self.op.conv_act_max;
                        Some(FuseI8 {
                            residual: r,
                            add: add::AddQuant {
                                params: self.op.add,
                                zp1: self.op.conv_out.zero_point,
                                zp2: rt.quant.zero_point,
                                out_zp: self.y.quant.zero_point,
                                act_min: self.op.act_min,
                                act_max: self.op.act_max,
                            },
                        })
                    }
                    None => None,
                };
                let o = Out8 { q: &q, fuse };
                if sparse {
                    return self.conv_sparse_i8(&g, &wt, x, bias.map(I32s), &o, out, kx);
                }
                conv::conv2d_i8_ex(&g, depthwise, x, w, bias.map(I32s), &o, out, kx)
            }
            Precision::F32 => {
                conv::conv2d_f_ex::<F32W>(&g, depthwise, x, w, bias, &float_out, out, kx)
            }
            Precision::F16 => {
                conv::conv2d_f_ex::<F16W>(&g, depthwise, x, w, bias, &float_out, out, kx)
            }
        })
    }

    /// A regular int8 conv over sparse weights: decoded into the scratch
    /// and run by the dense kernels (SIMD) when the scratch holds them,
    /// else the zero-skipping kernel, which needs none. Same bytes either
    /// way.
    #[allow(clippy::too_many_arguments)]
    fn conv_sparse_i8(
        &self,
        g: &Geom,
        wt: &TensorDesc,
        x: &[u8],
        bias: Option<I32s<'_>>,
        o: &Out8<'_, '_>,
        out: &mut [u8],
        kx: &mut Kx<'_>,
    ) -> Option<()> {
        let w = self.plan.sparse_weights(wt).ok()?;
        let decoded = scratch::sparse_decoded(g);
        if kx.simd && kx.scratch_len() >= decoded {
            let (dense_w, rest) = core::mem::take(&mut kx.scratch).split_at_mut(decoded);
            w.decode_into(dense_w).ok()?;
            let mut inner = Kx {
                simd: kx.simd,
                vnni: kx.vnni,
                use_scratch: kx.use_scratch,
                scratch: rest,
            };
            return ok(conv::conv2d_i8_ex(
                g, false, x, dense_w, bias, o, out, &mut inner,
            ));
        }
        ok(sparse::conv2d_i8(g, x, &w, bias, o, out))
    }

    /// A dense layer, one `[in]` row of `x` at a time (`[rows, in]` in,
    /// `[rows, out]` out).
    fn dense(&self, x: &[u8], out: &mut [u8], kx: &mut Kx<'_>) -> Option<()> {
        let wt = self.tensor(self.op.weights)?;
        let bias = self.bias()?;
        let elem = if self.plan.precision() == Precision::Int8 {
            1
        } else {
            4
        };
        let (in_bytes, out_bytes) = (
            (*wt.shape().get(1)? as usize).checked_mul(elem)?,
            (*wt.shape().first()? as usize).checked_mul(elem)?,
        );
        if in_bytes == 0
            || out_bytes == 0
            || !x.len().is_multiple_of(in_bytes)
            || x.len() / in_bytes != out.len() / out_bytes
        {
            return None;
        }
        let rows = x
            .chunks_exact(in_bytes)
            .zip(out.chunks_exact_mut(out_bytes));
        if wt.encoding == Encoding::BitmapRows {
            let w = self.plan.sparse_weights(&wt).ok()?;
            let q = self.quant(out_bytes)?;
            let o = Out8 { q: &q, fuse: None };
            for (xr, or) in rows {
                ok(sparse::dense_i8(xr, &w, bias.map(I32s), &o, or))?;
            }
            return Some(());
        }
        let w = self.weights(self.op.weights)?;
        for (xr, or) in rows {
            ok(match self.plan.precision() {
                Precision::Int8 => {
                    let q = self.quant(out_bytes)?;
                    dense::dense_i8_ex(xr, w, bias.map(I32s), &q, or, kx)
                }
                Precision::F32 => dense::dense_f_ex::<F32W>(xr, w, bias, self.float_act(), or, kx),
                Precision::F16 => dense::dense_f_ex::<F16W>(xr, w, bias, self.float_act(), or, kx),
            })?;
        }
        Some(())
    }

    fn reshape(&self, arena: &mut [u8]) -> Option<()> {
        let (src, dst) = (self.x.range(), self.y.range());
        if src.len() != dst.len() || src.end > arena.len() || dst.end > arena.len() {
            return None;
        }
        // Same offset: the compiler made this a view, nothing to move.
        if src.start != dst.start {
            arena.copy_within(src, dst.start);
        }
        Some(())
    }

    fn add(&self, arena: &mut [u8]) -> Option<()> {
        let bt = self.tensor(self.op.input2)?;
        let (ra, rb, ry) = (self.x.range(), bt.range(), self.y.range());
        let io = Io::split(arena, ry.clone())?;
        if ra != ry && rb != ry {
            let (a, b) = (io.input(ra)?, io.input(rb)?);
            return self.add_separate(a, &bt, b, io.out);
        }
        // In place: the output is (at least) one of the inputs.
        let acc_first = ra == ry;
        let other_range = if acc_first { rb } else { ra };
        let other = if other_range == ry {
            None
        } else {
            Some(io.input(other_range)?)
        };
        ok(match self.plan.precision() {
            Precision::Int8 => {
                let q = self.add_quant(&bt)?;
                add::binary_in_place(io.out, other, acc_first, add::add_i8(&q))
            }
            _ => add::binary_in_place(io.out, other, acc_first, add::add_f32(self.float_act())),
        })
    }

    /// An Add into an output apart from both operands (`bt` describes `b`).
    fn add_separate(&self, a: &[u8], bt: &TensorDesc, b: &[u8], out: &mut [u8]) -> Option<()> {
        ok(match self.plan.precision() {
            Precision::Int8 => {
                let q = self.add_quant(bt)?;
                add::binary(a, b, out, add::add_i8(&q))
            }
            _ => add::binary(a, b, out, add::add_f32(self.float_act())),
        })
    }

    fn add_quant(&self, b: &TensorDesc) -> Option<add::AddQuant> {
        Some(add::AddQuant {
            params: self.op.add,
            zp1: self.x.quant.zero_point,
            zp2: b.quant.zero_point,
            out_zp: self.y.quant.zero_point,
            act_min: self.op.act_min,
            act_max: self.op.act_max,
        })
    }
}
