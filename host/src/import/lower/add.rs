//! Add: residual additions (fused into the convolution where they can be) and biases.

use super::*;

impl Lowering {
    /// Add: residual additions and biases.
    pub(super) fn lower_add(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let node = cx.node;
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let (a, b) = (
            cx.inputs.first().cloned().flatten(),
            cx.inputs.get(1).cloned().flatten(),
        );
        match (a, b) {
            (Some(Value::Activation(a)), Some(Value::Activation(b))) => {
                let (sa, sb) = (self.tensors[a].shape.clone(), self.tensors[b].shape.clone());
                if sa != sb {
                    return Err(cx.err(format!(
                        "adds shapes {sa:?} and {sb:?}; broadcasting Add is not supported"
                    )));
                }
                let out = self.add_tensor(&out_name, sa);
                self.push(
                    name,
                    Op::Add {
                        activation: Activation::None,
                    },
                    vec![a, b],
                    out,
                    0,
                );
            }
            (Some(Value::Activation(x)), Some(c)) | (Some(c), Some(Value::Activation(x))) => {
                // A constant Add is the bias of a MatMul-based dense layer.
                let bias = match c {
                    Value::Const(c) => Param::new(c.shape().to_vec(), Some(c.as_f32())),
                    Value::Param(p) => p,
                    Value::Activation(_) => unreachable!("matched above"),
                };
                let x_name = node
                    .input
                    .iter()
                    .find(|i| matches!(self.lookup(i), Some(Value::Activation(_))))
                    .cloned()
                    .unwrap_or_default();
                let idx = self.fusable_producer(x, &x_name).filter(|&i| {
                    matches!(&self.nodes[i].op, Op::Dense(d) if d.bias.is_none() && d.activation == Activation::None)
                });
                let Some(idx) = idx else {
                    return Err(cx.err(
                        "adding a constant is only supported as the bias of a dense (MatMul) layer"
                            .into(),
                    ));
                };
                let Op::Dense(d) = &mut self.nodes[idx].op else {
                    unreachable!("checked above")
                };
                if bias.elements() != d.out_features {
                    return Err(cx.err(format!(
                        "bias of {} values for {} outputs",
                        bias.elements(),
                        d.out_features
                    )));
                }
                let n = bias.elements();
                d.bias = Some(Param::new(vec![n], bias.data));
                self.nodes[idx].exported_params += n;
                self.nodes[idx].fused.push("Add".into());
                self.rename(x, &out_name);
            }
            _ => return Err(cx.err("expects two cx.inputs".into())),
        }
        Ok(())
    }
}
