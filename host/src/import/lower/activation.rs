//! Activations: Relu and Clip (fused into their producer), Softmax.

use super::*;

impl Lowering {
    /// Relu and Clip: fused into the op that produces their input.
    pub(super) fn lower_activation(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let node = cx.node;
        let op = cx.op;
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let activation = if op == "Relu" {
            Activation::Relu
        } else {
            let bound = |i: usize, attr: &str, default: f32| -> Result<f32, ImportError> {
                if self.opset < 11 {
                    return Ok(cx.attrs.float(attr).unwrap_or(default));
                }
                match cx.inputs.get(i) {
                    None | Some(None) => Ok(default),
                    Some(Some(Value::Const(c))) if c.as_f32().len() == 1 => Ok(c.as_f32()[0]),
                    _ => Err(cx.err(format!("clip bound {i} must be a scalar constant"))),
                }
            };
            let (min, max) = (
                bound(1, "min", f32::NEG_INFINITY)?,
                bound(2, "max", f32::INFINITY)?,
            );
            if min.is_nan() || max.is_nan() {
                return Err(cx.err(format!("clip bounds [{min}, {max}] hold a NaN")));
            }
            // ONNX: with min > max every output is max.
            let min = min.min(max);
            if min == 0.0 && max == f32::INFINITY {
                Activation::Relu
            } else {
                Activation::Clip { min, max }
            }
        };
        let fuse_into = self
            .fusable_producer(x, &node.input[0])
            .filter(|&i| self.nodes[i].op.activation() == Some(Activation::None));
        if let Some(idx) = fuse_into {
            *self.nodes[idx].op.activation_mut().expect("checked above") = activation;
            self.nodes[idx].fused.push(op.to_owned());
            self.rename(x, &out_name);
        } else {
            let producer = self
                .producer
                .get(&x)
                .map_or("the model input".to_owned(), |&i| {
                    format!("`{}` ({})", self.nodes[i].name, self.nodes[i].op.kind())
                });
            return Err(cx.err(format!(
                "{op} on {producer}: edgefit runs {op} fused into the Conv, Gemm/MatMul or \
                 Add that produces its input, when nothing else reads that input"
            )));
        }
        Ok(())
    }

    /// Softmax over the class axis.
    pub(super) fn lower_softmax(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let rank = shape.len() as i64;
        let axis = cx
            .attrs
            .int("axis")
            .unwrap_or(if self.opset >= 13 { -1 } else { 1 });
        if axis < -rank || axis >= rank {
            return Err(cx.err(format!("axis {axis} out of range for shape {shape:?}")));
        }
        let axis = if axis < 0 { axis + rank } else { axis } as usize;
        // Before opset 13 the input is coerced to 2-D at `axis`: every axis
        // from there on is normalised together.
        let axes = if self.opset >= 13 {
            vec![axis]
        } else {
            (axis..shape.len()).collect()
        };
        let out = self.add_tensor(&out_name, shape);
        self.push(name, Op::Softmax { axes }, vec![x], out, 0);
        Ok(())
    }
}
