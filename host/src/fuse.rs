//! Residual fusion: `Add(conv(x), skip)` becomes one conv that adds `skip` and
//! writes its result over `skip` in place (each output element reads only its own
//! skip element first). A ResNet basic block then keeps two activations live
//! instead of three — TFLite Micro keeps three.

use crate::ir::{Activation, Graph, Op, Residual, TensorId};

/// Index of the node producing `t`, if any.
fn producer(graph: &Graph, t: TensorId) -> Option<usize> {
    graph.nodes.iter().position(|n| n.output == t)
}

/// Nodes (by index) reading `t`.
fn readers(graph: &Graph, t: TensorId) -> Vec<usize> {
    graph.consumers(t)
}

/// Fuses every residual Add it can into the conv that produces one of its inputs.
/// Conditions: the conv's result is read only by the Add, it has no activation of
/// its own and no residual yet; the other input (the skip) is read by nothing after the Add and is not
/// the graph output. Where both inputs are such convs, the later one is fused, so
/// no node moves; otherwise the fused conv takes the Add's place.
pub fn fuse_residual_adds(graph: &Graph) -> Graph {
    let mut g = graph.clone();
    let mut i = 0;
    while i < g.nodes.len() {
        let Op::Add { activation } = g.nodes[i].op else {
            i += 1;
            continue;
        };
        let (a, b) = (g.nodes[i].inputs[0], g.nodes[i].inputs[1]);
        let fusable = |t: TensorId, g: &Graph| -> Option<usize> {
            let p = producer(g, t)?;
            let ok = matches!(&g.nodes[p].op, Op::Conv(c) if c.residual.is_none() && c.activation == Activation::None)
                && readers(g, t) == vec![i]
                && t != g.output;
            ok.then_some(p)
        };
        let skip_ok = |skip: TensorId, g: &Graph| {
            skip != g.output && readers(g, skip).iter().all(|&r| r <= i) && a != b
        };
        let mut candidates: Vec<(usize, TensorId, TensorId)> = vec![];
        if let Some(p) = fusable(a, &g) {
            if skip_ok(b, &g) {
                candidates.push((p, a, b));
            }
        }
        if let Some(p) = fusable(b, &g) {
            if skip_ok(a, &g) {
                candidates.push((p, b, a));
            }
        }
        // The conv must not read the buffer it writes over.
        candidates.retain(|&(p, _, skip)| g.nodes[p].inputs[0] != skip);
        let Some(&(conv_index, conv_out, skip)) = candidates.iter().max_by_key(|c| c.0) else {
            i += 1;
            continue;
        };
        let add = g.nodes[i].clone();
        let mut conv = g.nodes[conv_index].clone();
        if let Op::Conv(c) = &mut conv.op {
            c.residual = Some(Residual {
                conv_output: conv_out,
                activation,
            });
        }
        conv.inputs = vec![conv.inputs[0], skip];
        conv.output = add.output;
        conv.fused.push("Add".into());
        conv.fused.extend(add.fused.iter().cloned());
        // The fused node runs where the Add ran: every input is ready by then.
        g.nodes[i] = conv;
        g.nodes.remove(conv_index);
        // `i` now points one past the fused node (conv_index < i).
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import_onnx, ImportOptions};
    use crate::memory::plan_activations;
    use std::path::Path;

    fn model(rel: &str) -> Graph {
        let path = Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
            .join("../models")
            .join(rel);
        import_onnx(&path, &ImportOptions::default()).unwrap().graph
    }

    #[test]
    fn resnet8_keeps_two_block_tensors_live() {
        let g = model("mlperf/resnet8.onnx");
        let fused = fuse_residual_adds(&g);
        assert!(
            fused.nodes.iter().all(|n| !matches!(n.op, Op::Add { .. })),
            "every Add fused"
        );
        assert_eq!(fused.nodes.len(), g.nodes.len() - 3);
        // Unfused: three live 32x32x16 int8 tensors (TFLite Micro's 49,152 bytes).
        assert_eq!(plan_activations(&g, 1).plan.arena_size, 49_152);
        // Fused: two.
        assert_eq!(plan_activations(&fused, 1).plan.arena_size, 32_768);
    }

    #[test]
    fn vgg_has_nothing_to_fuse() {
        let g = model("vgg-fmnist.onnx");
        assert_eq!(fuse_residual_adds(&g), g);
    }
}
