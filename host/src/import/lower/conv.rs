//! Convolutions: Conv, and BatchNormalization folded into the one before it.

use super::*;

impl Lowering {
    /// Conv: 2-D convolution (grouped and depthwise included).
    pub(super) fn lower_conv(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let w = cx
            .param(1)?
            .ok_or_else(|| cx.err("missing weight".into()))?;
        let bias = cx.param(2)?;
        let [n, cin, h, wd] = four(&shape).map_err(|r| cx.err(r))?;
        if w.shape.len() != 4 {
            return Err(cx.err(format!(
                "weight shape {:?} is not OIHW 4-D (only 2-D convolutions are supported)",
                w.shape
            )));
        }
        let groups = cx.attrs.int("group").unwrap_or(1).max(1) as usize;
        let (cout, cin_g) = (w.shape[0], w.shape[1]);
        if cin_g * groups != cin || cout % groups != 0 {
            return Err(cx.err(format!(
                "weight {:?} with group={groups} does not fit {cin} input channels",
                w.shape
            )));
        }
        if let Some(b) = &bias {
            if b.elements() != cout {
                return Err(cx.err(format!(
                    "bias has {} values for {cout} output channels",
                    b.elements()
                )));
            }
        }
        let kernel = [w.shape[2], w.shape[3]];
        let win = self
            .window(&cx.attrs, [h, wd], Some(kernel), false)
            .map_err(|r| cx.err(r))?;
        let exported = w.elements() + bias.as_ref().map_or(0, Param::elements);
        let out = self.add_tensor(&out_name, vec![n, cout, win.out[0], win.out[1]]);
        let conv = Conv {
            in_channels: cin,
            out_channels: cout,
            kernel: win.kernel,
            stride: win.stride,
            pads: win.pads,
            dilation: win.dilation,
            groups,
            weight: w,
            bias,
            activation: Activation::None,
            folded_batchnorm: false,
            residual: None,
        };
        self.push(name, Op::Conv(conv), vec![x], out, exported);
        Ok(())
    }

    /// BatchNormalization: folded into the convolution before it.
    pub(super) fn lower_batchnorm(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let node = cx.node;
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let params = (1..5).map(|i| cx.param(i)).collect::<Result<Vec<_>, _>>()?;
        let [Some(scale), Some(shift), Some(mean), Some(var)] =
            <[Option<Param>; 4]>::try_from(params)
                .map_err(|_| cx.err("expects scale, bias, mean and variance".into()))?
        else {
            return Err(cx.err("expects scale, bias, mean and variance cx.inputs".into()));
        };
        let eps = cx.attrs.float("epsilon").unwrap_or(1e-5);
        let conv_node = self.fusable_producer(x, &node.input[0]).filter(
            |&i| matches!(self.nodes[i].op, Op::Conv(ref c) if c.activation == Activation::None),
        );
        let Some(idx) = conv_node else {
            return Err(cx.err(
                "BatchNormalization must directly follow a convolution whose output nothing else reads; edgefit folds it into that convolution".into(),
            ));
        };
        let Op::Conv(conv) = &mut self.nodes[idx].op else {
            unreachable!("checked above")
        };
        fold_batchnorm(conv, &scale, &shift, &mean, &var, eps).map_err(|r| cx.err(r))?;
        let node_ir = &mut self.nodes[idx];
        node_ir.fused.push("BatchNormalization".into());
        node_ir.exported_params += scale.elements() + shift.elements();
        self.rename(x, &out_name);
        Ok(())
    }
}

/// Fold `y = scale * (conv(x) - mean) / sqrt(var + eps) + shift` into the conv's
/// weights and bias. Graph-only exports carry no values: the fold is then structural
/// (the conv gains a per-channel bias).
pub(super) fn fold_batchnorm(
    conv: &mut Conv,
    scale: &Param,
    shift: &Param,
    mean: &Param,
    var: &Param,
    eps: f32,
) -> Result<(), String> {
    let c = conv.out_channels;
    for (what, p) in [
        ("scale", scale),
        ("bias", shift),
        ("mean", mean),
        ("variance", var),
    ] {
        if p.elements() != c {
            return Err(format!(
                "{what} has {} values for {c} channels",
                p.elements()
            ));
        }
    }
    let values = (
        scale.data.as_ref(),
        shift.data.as_ref(),
        mean.data.as_ref(),
        var.data.as_ref(),
        conv.weight.data.as_mut(),
    );
    let bias_data = if let (Some(s), Some(b), Some(m), Some(v), Some(w)) = values {
        let per_channel = w.len() / c;
        let old_bias = conv
            .bias
            .as_ref()
            .and_then(|p| p.data.clone())
            .unwrap_or_else(|| vec![0.0; c]);
        let mut new_bias = vec![0.0; c];
        for ch in 0..c {
            let k = s[ch] / (v[ch] + eps).sqrt();
            w[ch * per_channel..(ch + 1) * per_channel]
                .iter_mut()
                .for_each(|x| *x *= k);
            new_bias[ch] = (old_bias[ch] - m[ch]) * k + b[ch];
        }
        Some(new_bias)
    } else {
        conv.weight.data = None;
        None
    };
    conv.bias = Some(Param::new(vec![c], bias_data));
    conv.folded_batchnorm = true;
    Ok(())
}
