//! Per-op validation: every tensor index, dtype, location, shape and
//! parameter an op uses, checked against the already validated tensor table.

use super::Plan;
use crate::error::PlanError;
use crate::format::{
    rd_i32, Activation, DType, Location, OpDesc, OpKind, Precision, TensorDesc, NONE, SECTION_ALIGN,
};

/// Validation of one op against the (already validated) tensor table.
pub(super) struct OpCheck<'p, 'a> {
    pub plan: &'p Plan<'a>,
    pub index: u32,
    pub op: OpDesc,
    /// The op runs inside a tiled segment, whose check covers the overlaps
    /// of all its tensors at once (`segment::check_all`).
    pub in_segment: bool,
}

impl OpCheck<'_, '_> {
    pub fn run(&self) -> Result<(), PlanError> {
        let op = &self.op;
        let int8 = self.plan.precision == Precision::Int8;
        match op.kind {
            OpKind::Conv2d => self.conv()?,
            OpKind::Dense => self.dense()?,
            OpKind::MaxPool | OpKind::AvgPool => self.pool()?,
            OpKind::GlobalAvgPool => self.global_pool()?,
            OpKind::Add => self.add()?,
            OpKind::Reshape => self.reshape()?,
            OpKind::Softmax => self.softmax()?,
            OpKind::Transpose => self.transpose()?,
            // Checked as a whole by `segment::check_all`, after every op.
            OpKind::Tiled => {}
        }
        let clamps = !matches!(
            op.kind,
            OpKind::Reshape | OpKind::Softmax | OpKind::Transpose | OpKind::Tiled
        );
        if !clamps && op.activation != Activation::None {
            return Err(self.param("activation (must be none)", op.activation as i64));
        }
        if int8 && clamps {
            for (what, v) in [("act_min", op.act_min), ("act_max", op.act_max)] {
                if !(-128..=127).contains(&v) {
                    return Err(self.param(what, v as i64));
                }
            }
            if op.act_min > op.act_max {
                return Err(self.param("act_min (above act_max)", op.act_min as i64));
            }
        }
        if !int8 && op.activation == Activation::Clip {
            // partial_cmp is None for NaN, which is rejected too.
            let ordered = matches!(
                op.clip_min.partial_cmp(&op.clip_max),
                Some(core::cmp::Ordering::Less | core::cmp::Ordering::Equal)
            );
            if !ordered {
                return Err(self.param("clip range", op.clip_min as i64));
            }
        }
        Ok(())
    }

    fn param(&self, what: &'static str, value: i64) -> PlanError {
        PlanError::BadParam {
            op: self.index,
            what,
            value,
        }
    }

    fn shape(&self, what: &'static str, found: u64, expected: u64) -> Result<(), PlanError> {
        if found == expected {
            Ok(())
        } else {
            Err(PlanError::Shape {
                op: self.index,
                what,
                found,
                expected,
            })
        }
    }

    fn tensor(&self, index: u32) -> Result<TensorDesc, PlanError> {
        if index >= self.plan.header.tensor_count {
            return Err(PlanError::TensorIndex {
                op: Some(self.index),
                index,
                count: self.plan.header.tensor_count,
            });
        }
        self.plan.tensor(index)
    }

    fn expect(
        &self,
        index: u32,
        location: Location,
        dtype: DType,
    ) -> Result<TensorDesc, PlanError> {
        let t = self.tensor(index)?;
        if t.location != location {
            return Err(PlanError::WrongLocation {
                op: Some(self.index),
                tensor: index,
            });
        }
        if t.dtype != dtype {
            return Err(PlanError::WrongDType {
                op: Some(self.index),
                tensor: index,
                found: t.dtype,
                expected: dtype,
            });
        }
        Ok(t)
    }

    /// An activation (arena) tensor of the plan's activation dtype.
    fn activation(&self, index: u32) -> Result<TensorDesc, PlanError> {
        self.expect(
            index,
            Location::Arena,
            self.plan.precision.activation_dtype(),
        )
    }

    /// An activation of rank 4 with N = 1; returns `[H, W, C]`.
    fn nhwc(&self, t: &TensorDesc, what: &'static str) -> Result<[u64; 3], PlanError> {
        self.shape(what, t.rank as u64, 4)?;
        self.shape("batch size", t.dims[0] as u64, 1)?;
        Ok([t.dims[1] as u64, t.dims[2] as u64, t.dims[3] as u64])
    }

    fn no_overlap(&self, input: &TensorDesc, in_index: u32) -> Result<(), PlanError> {
        if self.in_segment {
            return Ok(());
        }
        let out = self.tensor(self.op.output)?;
        if overlaps(input, &out) {
            return Err(PlanError::Overlap {
                op: self.index,
                input: in_index,
                output: self.op.output,
            });
        }
        Ok(())
    }

    /// Kernel, stride, pad and output-size checks shared by conv and pools.
    fn window(&self, input: [u64; 3], output: [u64; 3]) -> Result<(), PlanError> {
        let op = &self.op;
        for (what, v) in [
            ("kernel_h", op.kernel_h),
            ("kernel_w", op.kernel_w),
            ("stride_h", op.stride_h),
            ("stride_w", op.stride_w),
        ] {
            if v == 0 {
                return Err(self.param(what, 0));
            }
        }
        let axes = [
            (
                input[0],
                op.pad_top,
                op.pad_bottom,
                op.kernel_h,
                op.stride_h,
                output[0],
            ),
            (
                input[1],
                op.pad_left,
                op.pad_right,
                op.kernel_w,
                op.stride_w,
                output[1],
            ),
        ];
        for (axis, (n, p0, p1, k, s, out)) in axes.into_iter().enumerate() {
            let padded = n + p0 as u64 + p1 as u64;
            let (k, s) = (k as u64, s as u64);
            if padded < k {
                return Err(PlanError::Shape {
                    op: self.index,
                    what: ["padded input height", "padded input width"][axis],
                    found: padded,
                    expected: k,
                });
            }
            let what = ["output height", "output width"][axis];
            self.shape(what, out, (padded - k) / s + 1)?;
        }
        Ok(())
    }

    /// Per-output-channel multiplier and shift arrays of an int8 conv/dense.
    fn requant_arrays(&self, channels: u64) -> Result<(), PlanError> {
        let blob = self.plan.weights.len() as u32;
        for (what, offset) in [
            ("multiplier", self.op.multipliers),
            ("shift", self.op.shifts),
        ] {
            let length = channels * 4;
            let arr = self.plan.i32_array(offset, channels as usize);
            let arr = match arr {
                Some(a) if (offset as usize).is_multiple_of(SECTION_ALIGN) => a,
                _ => {
                    return Err(PlanError::BadArray {
                        op: self.index,
                        what,
                        offset,
                        length,
                        blob,
                    })
                }
            };
            for k in 0..arr.len() {
                let v = rd_i32(arr.0, k * 4).unwrap_or(-1);
                if what == "multiplier" {
                    self.multiplier(v)?;
                } else {
                    self.shift(v)?;
                }
            }
        }
        Ok(())
    }

    fn multiplier(&self, m: i32) -> Result<(), PlanError> {
        if m < 0 {
            return Err(self.param("multiplier", m as i64));
        }
        Ok(())
    }

    fn shift(&self, s: i32) -> Result<(), PlanError> {
        use crate::kernels::requant::{MAX_LEFT_SHIFT, MAX_RIGHT_SHIFT};
        if !(-MAX_RIGHT_SHIFT..=MAX_LEFT_SHIFT).contains(&s) {
            return Err(self.param("shift", s as i64));
        }
        Ok(())
    }

    fn bias(&self, channels: u64) -> Result<(), PlanError> {
        if self.op.bias == NONE {
            return Ok(());
        }
        let b = self.expect(
            self.op.bias,
            Location::Weights,
            self.plan.precision.bias_dtype(),
        )?;
        self.shape("bias rank", b.rank as u64, 1)?;
        self.shape("bias length", b.dims[0] as u64, channels)
    }

    fn weights(&self) -> Result<TensorDesc, PlanError> {
        let w = self.expect(
            self.op.weights,
            Location::Weights,
            self.plan.precision.weight_dtype(),
        )?;
        if w.quant.zero_point != 0 {
            return Err(PlanError::BadZeroPoint {
                tensor: self.op.weights,
                zero_point: w.quant.zero_point,
            });
        }
        Ok(w)
    }

    fn conv(&self) -> Result<(), PlanError> {
        let op = &self.op;
        let x = self.activation(op.input)?;
        let y = self.activation(op.output)?;
        let [h, wd, c] = self.nhwc(&x, "input rank")?;
        let [oh, ow, oc] = self.nhwc(&y, "output rank")?;
        self.window([h, wd, c], [oh, ow, oc])?;
        let w = self.weights()?;
        let (kh, kw) = (op.kernel_h as u64, op.kernel_w as u64);
        let wdims = w.dims.map(u64::from);
        // The weight rank tells the two kinds apart (with one channel,
        // groups == 1 == channels fits both).
        if w.rank == 4 && op.groups == 1 {
            self.shape("weight out channels", wdims[0], oc)?;
            self.shape("weight kernel height", wdims[1], kh)?;
            self.shape("weight kernel width", wdims[2], kw)?;
            self.shape("weight in channels", wdims[3], c)?;
        } else if w.rank == 3 && op.groups as u64 == c {
            self.shape("depthwise output channels", oc, c)?;
            self.shape("weight kernel height", wdims[0], kh)?;
            self.shape("weight kernel width", wdims[1], kw)?;
            self.shape("weight channels", wdims[2], c)?;
        } else if op.groups == 1 || op.groups as u64 == c {
            let expected = if op.groups == 1 { 4 } else { 3 };
            self.shape("weight rank", w.rank as u64, expected)?;
        } else {
            return Err(PlanError::Unsupported {
                op: self.index,
                what: "grouped convolution (groups must be 1 or the channel count)",
            });
        }
        self.bias(oc)?;
        if self.plan.precision == Precision::Int8 {
            self.requant_arrays(oc)?;
        }
        if op.residual != NONE {
            self.residual(&y)?;
        }
        self.no_overlap(&x, op.input)
    }

    /// A Conv2d's fused residual Add: the residual has the output's shape;
    /// the output is either exactly the residual's region (in place) or
    /// disjoint from it. int8: the Add parameters and the intermediate
    /// quantisation of the conv result.
    fn residual(&self, y: &TensorDesc) -> Result<(), PlanError> {
        let op = &self.op;
        let r = self.activation(op.residual)?;
        if r.rank != y.rank || r.dims != y.dims {
            return Err(PlanError::ShapeMismatch {
                op: self.index,
                a: op.output,
                b: op.residual,
            });
        }
        if !self.in_segment && overlaps(&r, y) && r.offset != y.offset {
            return Err(PlanError::Overlap {
                op: self.index,
                input: op.residual,
                output: op.output,
            });
        }
        if self.plan.precision == Precision::Int8 {
            if op.activation == Activation::Clip {
                return Err(self.param(
                    "activation (clip on an int8 conv with a residual; the clamp is act_min/act_max)",
                    op.activation as i64,
                ));
            }
            let zp = op.conv_out.zero_point;
            if !(-128..=127).contains(&zp) {
                return Err(self.param("conv_out zero point", zp as i64));
            }
            for (what, v) in [
                ("conv_act_min", op.conv_act_min),
                ("conv_act_max", op.conv_act_max),
            ] {
                if !(-128..=127).contains(&v) {
                    return Err(self.param(what, v as i64));
                }
            }
            if op.conv_act_min > op.conv_act_max {
                return Err(self.param("conv_act_min (above conv_act_max)", op.conv_act_min as i64));
            }
            self.add_params()?;
        }
        Ok(())
    }

    /// int8 Add parameters (of an Add or a Conv2d's fused Add).
    fn add_params(&self) -> Result<(), PlanError> {
        let p = &self.op.add;
        for m in [
            p.input1_multiplier,
            p.input2_multiplier,
            p.output_multiplier,
        ] {
            self.multiplier(m)?;
        }
        for s in [p.input1_shift, p.input2_shift, p.output_shift] {
            self.shift(s)?;
        }
        if !(0..=30).contains(&p.left_shift) {
            return Err(self.param("left_shift", p.left_shift as i64));
        }
        Ok(())
    }

    /// A dense layer over `rows` rows: input `rows x in`, output `rows x out`.
    fn dense(&self) -> Result<(), PlanError> {
        let op = &self.op;
        let x = self.activation(op.input)?;
        let y = self.activation(op.output)?;
        let w = self.weights()?;
        self.shape("weight rank", w.rank as u64, 2)?;
        let (out_f, in_f) = (w.dims[0] as u64, w.dims[1] as u64);
        let x_elems = x.elements().unwrap_or(0);
        if in_f == 0 || x_elems == 0 || !x_elems.is_multiple_of(in_f) {
            return self.shape("input elements", x_elems, in_f);
        }
        let rows = x_elems / in_f;
        self.shape(
            "output elements",
            y.elements().unwrap_or(0),
            rows.saturating_mul(out_f),
        )?;
        self.bias(out_f)?;
        if self.plan.precision == Precision::Int8 {
            self.requant_arrays(out_f)?;
        }
        self.no_overlap(&x, op.input)
    }

    fn same_zero_point(&self, x: &TensorDesc) -> Result<(), PlanError> {
        let y = self.tensor(self.op.output)?;
        if x.quant.zero_point != y.quant.zero_point {
            return Err(PlanError::BadZeroPoint {
                tensor: self.op.output,
                zero_point: y.quant.zero_point,
            });
        }
        Ok(())
    }

    fn pool(&self) -> Result<(), PlanError> {
        let op = &self.op;
        let x = self.activation(op.input)?;
        let y = self.activation(op.output)?;
        let [h, w, c] = self.nhwc(&x, "input rank")?;
        let [oh, ow, oc] = self.nhwc(&y, "output rank")?;
        self.shape("output channels", oc, c)?;
        self.window([h, w, c], [oh, ow, oc])?;
        // Pads smaller than the kernel keep every window non-empty.
        for (what, p, k) in [
            ("pad_top (>= kernel)", op.pad_top, op.kernel_h),
            ("pad_bottom (>= kernel)", op.pad_bottom, op.kernel_h),
            ("pad_left (>= kernel)", op.pad_left, op.kernel_w),
            ("pad_right (>= kernel)", op.pad_right, op.kernel_w),
        ] {
            if p >= k {
                return Err(self.param(what, p as i64));
            }
        }
        self.same_zero_point(&x)?;
        self.no_overlap(&x, op.input)
    }

    fn global_pool(&self) -> Result<(), PlanError> {
        let op = &self.op;
        let x = self.activation(op.input)?;
        let y = self.activation(op.output)?;
        let [_, _, c] = self.nhwc(&x, "input rank")?;
        self.shape("output elements", y.elements().unwrap_or(0), c)?;
        self.shape(
            "output last dim",
            y.shape().last().copied().unwrap_or(0) as u64,
            c,
        )?;
        self.same_zero_point(&x)?;
        self.no_overlap(&x, op.input)
    }

    fn add(&self) -> Result<(), PlanError> {
        let op = &self.op;
        let a = self.activation(op.input)?;
        let b = self.activation(op.input2)?;
        let y = self.activation(op.output)?;
        for (t, index) in [(&b, op.input2), (&y, op.output)] {
            if t.rank != a.rank || t.dims != a.dims {
                return Err(PlanError::ShapeMismatch {
                    op: self.index,
                    a: op.input,
                    b: index,
                });
            }
        }
        // In place is fine for an element-wise op: the output may be exactly
        // an input's region, but must not partly overlap one.
        for (t, index) in [(&a, op.input), (&b, op.input2)] {
            if !self.in_segment && overlaps(t, &y) && t.offset != y.offset {
                return Err(PlanError::Overlap {
                    op: self.index,
                    input: index,
                    output: op.output,
                });
            }
        }
        if self.plan.precision == Precision::Int8 {
            self.add_params()?;
        }
        Ok(())
    }

    fn reshape(&self) -> Result<(), PlanError> {
        let x = self.activation(self.op.input)?;
        let y = self.activation(self.op.output)?;
        self.shape(
            "output elements",
            y.elements().unwrap_or(0),
            x.elements().unwrap_or(0),
        )?;
        self.same_zero_point(&x)
    }

    /// A permuting copy: same dtype and element count, same zero point, no
    /// overlap (every output element reads another place of the input).
    fn transpose(&self) -> Result<(), PlanError> {
        let x = self.activation(self.op.input)?;
        let y = self.activation(self.op.output)?;
        if self.op.transpose_perm().is_none() {
            return Err(self.param("transpose permutation", self.op.groups as i64));
        }
        self.shape(
            "output elements",
            y.elements().unwrap_or(0),
            x.elements().unwrap_or(0),
        )?;
        self.same_zero_point(&x)?;
        self.no_overlap(&x, self.op.input)
    }

    fn softmax(&self) -> Result<(), PlanError> {
        let x = self.activation(self.op.input)?;
        let y = self.activation(self.op.output)?;
        if x.rank != y.rank || x.dims != y.dims {
            return Err(PlanError::ShapeMismatch {
                op: self.index,
                a: self.op.input,
                b: self.op.output,
            });
        }
        if self.plan.precision == Precision::Int8 {
            use crate::kernels::softmax::{EXP_ONE, EXP_TABLE_LEN};
            // TFLite's softmax output quantisation: scale 1/256, zero point -128.
            if y.quant.zero_point != -128 || y.quant.scale != 1.0 / 256.0 {
                return Err(self.param(
                    "softmax output zero point (must be -128, scale 1/256)",
                    y.quant.zero_point as i64,
                ));
            }
            let offset = self.op.multipliers;
            let table = match self.plan.i32_array(offset, EXP_TABLE_LEN) {
                Some(t) if (offset as usize).is_multiple_of(SECTION_ALIGN) => t,
                _ => {
                    return Err(PlanError::BadArray {
                        op: self.index,
                        what: "softmax exp table",
                        offset,
                        length: (EXP_TABLE_LEN * 4) as u64,
                        blob: self.plan.weights.len() as u32,
                    })
                }
            };
            // exp(0) first, then non-increasing and non-negative.
            if table.get(0) != EXP_ONE {
                return Err(self.param("softmax exp table [0]", table.get(0) as i64));
            }
            for d in 1..EXP_TABLE_LEN {
                let v = table.get(d);
                if v < 0 || v > table.get(d - 1) {
                    return Err(self.param("softmax exp table (not decreasing)", v as i64));
                }
            }
        }
        self.no_overlap(&x, self.op.input)
    }
}

/// Whether two tensors' byte ranges intersect (both are non-empty).
fn overlaps(a: &TensorDesc, b: &TensorDesc) -> bool {
    let (ra, rb) = (a.range(), b.range());
    ra.start < rb.end && rb.start < ra.end
}
