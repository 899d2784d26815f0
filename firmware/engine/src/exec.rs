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
use crate::plan::Plan;

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
        let (acts, rest) = arena.split_at_mut(self.plan.activation_arena_size());
        let scratch = rest.get_mut(..self.plan.scratch_bytes()).unwrap_or(&mut []);
        let mut kx = Kx {
            simd: self.kernels.uses_simd(),
            vnni: self.kernels.uses_vnni(),
            use_scratch: self.kernels.uses_scratch(),
            scratch,
        };
        let cx = OpCx {
            plan: &self.plan,
            op,
            x: self.plan.tensor(op.input).map_err(|_| internal.clone())?,
            y: self.plan.tensor(op.output).map_err(|_| internal.clone())?,
        };
        cx.run(acts, &mut kx).ok_or(internal)
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
        Geom::of_op(&self.op, &self.x.dims, &self.y.dims)
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
