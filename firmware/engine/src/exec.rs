//! The executor: runs a validated plan's ops in order over a caller-owned
//! arena.
//!
//! The arena needs no particular alignment: kernels decode values with
//! `from_le_bytes`. Each op gets its output as `&mut` and its inputs as `&`
//! by splitting the arena around the output range, so nothing aliases
//! unsafely; the validator has already rejected overlaps that would need it.

use core::ops::Range;

use crate::error::ExecError;
use crate::format::{Activation, OpDesc, OpKind, Precision, TensorDesc, NONE};
use crate::kernels::{
    add, conv, dense, pool, softmax, FloatAct, Geom, I32s, QuantParams, ShapeError, F16W, F32W,
};
use crate::plan::Plan;

/// Runs one plan. Holds no state besides the plan, so it is cheap to create
/// and can be shared; all mutable state is in the arena.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    plan: Plan<'a>,
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
    pub fn new(plan: &Plan<'a>) -> Self {
        Engine { plan: *plan }
    }

    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// Bytes the arena passed to [`Engine::run`] must have at least.
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
        for i in 0..self.op_count() {
            self.run_op(arena, i)?;
        }
        Ok(())
    }

    /// Runs op `index` alone (for per-layer timing). Ops must run in order
    /// for the results to mean anything.
    pub fn run_op(&self, arena: &mut [u8], index: usize) -> Result<(), ExecError> {
        self.check_arena(arena.len())?;
        let count = self.op_count();
        if index >= count {
            return Err(ExecError::NoSuchOp { op: index, count });
        }
        let internal = ExecError::Internal { op: index };
        let op = self.plan.op(index as u32).map_err(|_| internal.clone())?;
        let cx = OpCx {
            plan: &self.plan,
            op,
            x: self.plan.tensor(op.input).map_err(|_| internal.clone())?,
            y: self.plan.tensor(op.output).map_err(|_| internal.clone())?,
        };
        cx.run(arena).ok_or(internal)
    }
}

/// One op with its input and output tensors decoded.
struct OpCx<'p, 'a> {
    plan: &'p Plan<'a>,
    op: OpDesc,
    x: TensorDesc,
    y: TensorDesc,
}

/// Turns a kernel result into the `Option` the dispatcher works with.
fn ok(r: Result<(), ShapeError>) -> Option<()> {
    r.ok()
}

impl<'a> OpCx<'_, 'a> {
    fn run(&self, arena: &mut [u8]) -> Option<()> {
        match self.op.kind {
            OpKind::Reshape => self.reshape(arena),
            OpKind::Add => self.add(arena),
            _ => {
                let io = Io::split(arena, self.y.range())?;
                let x = io.input(self.x.range())?;
                self.unary(x, io.out)
            }
        }
    }

    fn unary(&self, x: &[u8], out: &mut [u8]) -> Option<()> {
        let int8 = self.plan.precision() == Precision::Int8;
        match self.op.kind {
            OpKind::Conv2d => self.conv(x, out),
            OpKind::Dense => self.dense(x, out),
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
                ok(softmax::softmax_f32(x, row, out))
            }
            OpKind::Add | OpKind::Reshape => None,
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
        let (x, y, op) = (&self.x.dims, &self.y.dims, &self.op);
        Geom {
            in_h: x[1] as usize,
            in_w: x[2] as usize,
            in_c: x[3] as usize,
            out_h: y[1] as usize,
            out_w: y[2] as usize,
            out_c: y[3] as usize,
            kernel_h: op.kernel_h as usize,
            kernel_w: op.kernel_w as usize,
            stride_h: op.stride_h as usize,
            stride_w: op.stride_w as usize,
            pad_top: op.pad_top as usize,
            pad_left: op.pad_left as usize,
        }
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

    fn conv(&self, x: &[u8], out: &mut [u8]) -> Option<()> {
        let g = self.geom();
        // Validated: rank 3 is depthwise, rank 4 regular.
        let depthwise = self.tensor(self.op.weights)?.rank == 3;
        let w = self.weights(self.op.weights)?;
        let bias = self.bias()?;
        ok(match self.plan.precision() {
            Precision::Int8 => {
                let q = self.quant(g.out_c)?;
                conv::conv2d_i8(&g, depthwise, x, w, bias.map(I32s), &q, out)
            }
            Precision::F32 => {
                conv::conv2d_f::<F32W>(&g, depthwise, x, w, bias, self.float_act(), out)
            }
            Precision::F16 => {
                conv::conv2d_f::<F16W>(&g, depthwise, x, w, bias, self.float_act(), out)
            }
        })
    }

    fn dense(&self, x: &[u8], out: &mut [u8]) -> Option<()> {
        let w = self.weights(self.op.weights)?;
        let bias = self.bias()?;
        ok(match self.plan.precision() {
            Precision::Int8 => {
                let q = self.quant(out.len())?;
                dense::dense_i8(x, w, bias.map(I32s), &q, out)
            }
            Precision::F32 => dense::dense_f::<F32W>(x, w, bias, self.float_act(), out),
            Precision::F16 => dense::dense_f::<F16W>(x, w, bias, self.float_act(), out),
        })
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
            return ok(match self.plan.precision() {
                Precision::Int8 => {
                    let q = self.add_quant(&bt)?;
                    add::binary(a, b, io.out, add::add_i8(&q))
                }
                _ => add::binary(a, b, io.out, add::add_f32(self.float_act())),
            });
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
