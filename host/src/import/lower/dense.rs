//! Dense layers: Gemm and MatMul.

use super::*;

impl Lowering {
    /// Gemm and MatMul: dense layers.
    pub(super) fn lower_dense(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let op = cx.op;
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let mut x = cx.act(0)?;
        let mut shape = self.in_shape(cx, 0)?;
        if shape.len() != 2 {
            return Err(cx.err(format!(
                "input shape {shape:?} must be 2-D [N, features] (flatten first)"
            )));
        }
        let w = cx
            .param(1)?
            .ok_or_else(|| cx.err("missing weight".into()))?;
        if w.shape.len() != 2 {
            return Err(cx.err(format!("weight shape {:?} is not 2-D", w.shape)));
        }
        let (trans_a, trans_b) = if op == "Gemm" {
            (
                cx.attrs.int("transA").unwrap_or(0) != 0,
                cx.attrs.int("transB").unwrap_or(0) != 0,
            )
        } else {
            (false, false)
        };
        if trans_a {
            // A is [features, N]: the engine's Transpose first, into a
            // tensor derived from A (same values, so same range).
            let a_name = self.tensors[x].name.clone();
            let t = self.add_tensor(&derived_name(&a_name, "transA"), vec![shape[1], shape[0]]);
            self.push(
                format!("{name} (transA)"),
                Op::Transpose { perm: vec![1, 0] },
                vec![x],
                t,
                0,
            );
            x = t;
            shape = vec![shape[1], shape[0]];
        }
        let (alpha, beta) = (
            cx.attrs.float("alpha").unwrap_or(1.0),
            cx.attrs.float("beta").unwrap_or(1.0),
        );
        // IR dense weights are [out, in].
        let (out_f, in_f) = if trans_b {
            (w.shape[0], w.shape[1])
        } else {
            (w.shape[1], w.shape[0])
        };
        if in_f != shape[1] {
            return Err(cx.err(format!(
                "weight {:?} does not take {} input features",
                w.shape, shape[1]
            )));
        }
        let mut weight = if trans_b { w.clone() } else { transpose_2d(&w) };
        if alpha != 1.0 {
            scale_param(&mut weight, alpha);
        }
        let mut bias = if op == "Gemm" { cx.param(2)? } else { None };
        if let Some(b) = &mut bias {
            // C broadcasts to [rows, out_f]: one value for all, or one per
            // output feature ([out_f] or [1, out_f]) is a dense bias; a C
            // that varies over the rows is not.
            let (last, rest) = b.shape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
            let rows_one = rest.iter().all(|&d| d == 1);
            if rows_one && last == 1 {
                if let Some(d) = &mut b.data {
                    *d = vec![d[0]; out_f];
                }
            } else if !(rows_one && last == out_f) {
                return Err(cx.err(format!(
                    "bias C of shape {:?} varies over the {} rows of the [{}, {out_f}] \
                     output: edgefit takes a bias of one value or one per output feature \
                     ([{out_f}] or [1, {out_f}])",
                    b.shape, shape[0], shape[0]
                )));
            }
            b.shape = vec![out_f];
            if beta != 1.0 {
                scale_param(b, beta);
            }
        }
        let exported = w.elements() + bias.as_ref().map_or(0, Param::elements);
        let out = self.add_tensor(&out_name, vec![shape[0], out_f]);
        let dense = Dense {
            in_features: in_f,
            out_features: out_f,
            weight,
            bias,
            activation: Activation::None,
        };
        self.push(name, Op::Dense(dense), vec![x], out, exported);
        Ok(())
    }
}

pub(super) fn transpose_2d(p: &Param) -> Param {
    let (rows, cols) = (p.shape[0], p.shape[1]);
    let data = p.data.as_ref().map(|d| {
        let mut t = vec![0.0; d.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = d[r * cols + c];
            }
        }
        t
    });
    Param::new(vec![cols, rows], data)
}

pub(super) fn scale_param(p: &mut Param, factor: f32) {
    if let Some(d) = &mut p.data {
        d.iter_mut().for_each(|v| *v *= factor);
    }
}
