//! Pooling: MaxPool, AveragePool, GlobalAveragePool, and ReduceMean over H and W.

use super::*;

impl Lowering {
    /// MaxPool and AveragePool.
    pub(super) fn lower_pool(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let node = cx.node;
        let op = cx.op;
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let [n, c, h, w] = four(&shape).map_err(|r| cx.err(r))?;
        if node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(cx.err("MaxPool with an indices output is not supported".into()));
        }
        let ceil = cx.attrs.int("ceil_mode").unwrap_or(0) != 0;
        let mut win = self
            .window(&cx.attrs, [h, w], None, ceil)
            .map_err(|r| cx.err(r))?;
        if win.dilation != [1, 1] {
            return Err(cx.err(format!(
                "dilations={:?}: edgefit pools without dilation",
                win.dilation
            )));
        }
        // ceil_mode: the last window reaches past the padded input; the
        // engine skips out-of-bounds cells, so it is end padding.
        let mut extended = false;
        for d in 0..2 {
            let needed = (win.out[d] - 1) * win.stride[d] + win.kernel[d];
            let have = [h, w][d] + win.pads[d] + win.pads[d + 2];
            if needed > have {
                win.pads[d + 2] += needed - have;
                extended = true;
            }
        }
        let count_include_pad = cx.attrs.int("count_include_pad").unwrap_or(0) != 0;
        if op == "AveragePool" && count_include_pad && (extended || win.pads.iter().any(|&p| p > 0))
        {
            return Err(cx.err(format!(
                "count_include_pad=1 with padding {:?}{}: edgefit averages over the cells \
                 inside the input only (count_include_pad=0)",
                win.pads,
                if extended { " and ceil_mode=1" } else { "" }
            )));
        }
        let pool = Pool {
            kernel: win.kernel,
            stride: win.stride,
            pads: win.pads,
            count_include_pad,
        };
        let out = self.add_tensor(&out_name, vec![n, c, win.out[0], win.out[1]]);
        let op = if op == "MaxPool" {
            Op::MaxPool(pool)
        } else {
            Op::AvgPool(pool)
        };
        self.push(name, op, vec![x], out, 0);
        Ok(())
    }

    /// GlobalAveragePool.
    pub(super) fn lower_global_pool(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let [n, c, _, _] = four(&self.in_shape(cx, 0)?).map_err(|r| cx.err(r))?;
        let out = self.add_tensor(&out_name, vec![n, c, 1, 1]);
        self.push(name, Op::GlobalAvgPool, vec![x], out, 0);
        Ok(())
    }

    /// ReduceMean over H and W: a global average pool.
    pub(super) fn lower_reduce_mean(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let axes = match (cx.attrs.ints("axes"), cx.inputs.get(1)) {
            (Some(a), _) => a,
            (None, Some(Some(Value::Const(Constant::Int { data, .. })))) => data.clone(),
            (None, None | Some(None)) => {
                if cx.attrs.int("noop_with_empty_axes").unwrap_or(0) != 0 {
                    return Err(cx.err(
                        "no axes with noop_with_empty_axes=1 is an identity: remove the node"
                            .into(),
                    ));
                }
                (0..shape.len() as i64).collect()
            }
            (None, Some(Some(_))) => {
                return Err(cx.err("axes must be a constant integer tensor".into()))
            }
        };
        let rank = shape.len() as i64;
        let mut norm = axes
            .iter()
            .map(|&a| {
                let n = if a < 0 { a + rank } else { a };
                (0..rank)
                    .contains(&n)
                    .then_some(n as usize)
                    .ok_or_else(|| cx.err(format!("axis {a} out of range for {shape:?}")))
            })
            .collect::<Result<Vec<usize>, _>>()?;
        norm.sort_unstable();
        norm.dedup();
        // Axes of size 1 change nothing: what counts is H and W.
        let reduced: Vec<usize> = norm.iter().copied().filter(|&a| shape[a] > 1).collect();
        let spatial: Vec<usize> = (2..shape.len().max(2)).filter(|&a| shape[a] > 1).collect();
        if shape.len() != 4 || reduced != spatial {
            return Err(cx.err(format!(
                "mean over axes {axes:?} of {shape:?}: edgefit averages over H and W of \
                 a 4-D NCHW tensor only (global average pooling)"
            )));
        }
        let [n, c, _, _] = four(&shape).map_err(|r| cx.err(r))?;
        let keepdims = cx.attrs.int("keepdims").unwrap_or(1) != 0;
        let pooled = vec![n, c, 1, 1];
        let kept: Vec<usize> = (0..4).filter(|a| !keepdims && norm.contains(a)).collect();
        if kept.is_empty() {
            let out = self.add_tensor(&out_name, pooled);
            self.push(name, Op::GlobalAvgPool, vec![x], out, 0);
        } else {
            // keepdims=0: the pooled 4-D map, then a view without the reduced axes.
            let out_shape: Vec<usize> = (0..4)
                .filter(|a| !kept.contains(a))
                .map(|a| pooled[a])
                .collect();
            let mid = self.add_tensor(&derived_name(&out_name, "keepdims"), pooled);
            self.push(name.clone(), Op::GlobalAvgPool, vec![x], mid, 0);
            let out = self.add_tensor(&out_name, out_shape);
            self.push(
                format!("{name} (keepdims=0)"),
                Op::Reshape,
                vec![mid],
                out,
                0,
            );
        }
        Ok(())
    }
}
