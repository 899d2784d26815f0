//! Where each activation's bytes sit in the engine, and how the shape ops meet
//! that order exactly.
//!
//! The IR speaks ONNX: feature maps are NCHW, every tensor is row-major in its
//! logical shape. The engine stores a 4-D feature map NHWC (channels innermost,
//! as its kernels want) and every other tensor row-major. The two orders agree
//! for a map with one channel or one pixel, and differ otherwise, so every op
//! that looks at the element order (Flatten/Reshape, Transpose, Softmax's axis)
//! is decided here, once, for the importer (which refuses what cannot be exact),
//! the memory planner (which needs to know what is a view) and the compiler
//! (which emits views, permuting copies or a dense layer's permuted columns).

use crate::ir::{Graph, Op, TensorId};

/// How a tensor's elements are ordered in the engine's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A 4-D `[N, C, H, W]` tensor stored `[N, H, W, C]`.
    Nhwc,
    /// The logical (ONNX) row-major order.
    RowMajor,
    /// A `[1, C*H*W]` flatten of a `[1, C, H, W]` map left in the map's NHWC
    /// byte order: only dense layers read it, and they permute their weight
    /// columns instead of the activations being copied.
    FlatNhwc { c: usize, h: usize, w: usize },
}

/// A layout the engine cannot give exactly: refused at import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node `{node}` ({op}): {reason}")]
pub struct LayoutError {
    pub node: String,
    pub op: &'static str,
    pub reason: String,
}

/// What the compiler emits for a Reshape or Transpose node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayout {
    /// The output is the input's bytes under another shape: no op runs.
    View,
    /// An engine Transpose: the input read with `input_dims` (the input
    /// tensor's own engine dims, or a view of its buffer), axes permuted by
    /// `perm`, written contiguously as the output.
    Copy {
        input_dims: Vec<usize>,
        perm: [u8; 4],
    },
}

/// The engine storage a tensor of this shape gets by default.
fn natural(shape: &[usize]) -> Storage {
    if shape.len() == 4 {
        Storage::Nhwc
    } else {
        Storage::RowMajor
    }
}

/// Whether a tensor's bytes are in its logical row-major order.
fn row_major_bytes(shape: &[usize], storage: Storage) -> bool {
    match storage {
        Storage::RowMajor => true,
        Storage::Nhwc => shape[1] == 1 || shape[2] * shape[3] == 1,
        Storage::FlatNhwc { c, h, w } => c == 1 || h * w == 1,
    }
}

/// The engine dims of a tensor: NHWC for 4-D maps, the logical shape otherwise.
pub fn engine_dims(shape: &[usize]) -> Vec<usize> {
    match shape {
        [n, c, h, w] => vec![*n, *h, *w, *c],
        other => other.to_vec(),
    }
}

/// Whether only dense layers read `t` (directly, or through reshapes that
/// keep its `[N, F]` shape), and it is not the model's output.
fn only_dense_reads(graph: &Graph, t: TensorId) -> bool {
    if t == graph.output {
        return false;
    }
    let readers = graph.consumers(t);
    !readers.is_empty()
        && readers.iter().all(|&i| {
            let node = &graph.nodes[i];
            match node.op {
                Op::Dense(_) => node.inputs[0] == t,
                Op::Reshape => {
                    graph.tensor(node.output).shape == graph.tensor(t).shape
                        && only_dense_reads(graph, node.output)
                }
                _ => false,
            }
        })
}

/// The storage of every tensor of `graph`, in tensor order.
pub fn storage(graph: &Graph) -> Vec<Storage> {
    let mut s: Vec<Storage> = graph.tensors.iter().map(|t| natural(&t.shape)).collect();
    for node in &graph.nodes {
        if !matches!(node.op, Op::Reshape) {
            continue;
        }
        let (x, y) = (node.inputs[0], node.output);
        let (xs, ys) = (&graph.tensor(x).shape, &graph.tensor(y).shape);
        let flat_source = match s[x] {
            Storage::Nhwc if ys.len() == 2 && xs[0] == 1 && ys[0] == 1 => Some(Storage::FlatNhwc {
                c: xs[1],
                h: xs[2],
                w: xs[3],
            }),
            f @ Storage::FlatNhwc { .. } if ys == xs => Some(f),
            _ => None,
        };
        if let Some(f) = flat_source {
            if !row_major_bytes(xs, s[x]) && only_dense_reads(graph, y) {
                s[y] = f;
            }
        }
    }
    s
}

/// Whether node `i` (a Reshape) is a view of its input.
pub fn reshape_is_view(graph: &Graph, i: usize) -> bool {
    let s = storage(graph);
    matches!(relayout(graph, &s, i), Ok(Relayout::View))
}

/// Whether the bytes need no moving between `x` and `y` (a Reshape).
fn same_bytes(graph: &Graph, s: &[Storage], x: TensorId, y: TensorId) -> bool {
    let (xs, ys) = (&graph.tensor(x).shape, &graph.tensor(y).shape);
    (xs == ys && s[x] == s[y])
        || matches!(s[y], Storage::FlatNhwc { .. })
        || (row_major_bytes(xs, s[x]) && row_major_bytes(ys, s[y]))
}

/// For each padded (4-D) storage axis, the padded logical axis it holds.
fn storage_axes(rank: usize, storage: Storage) -> [usize; 4] {
    match (rank, storage) {
        (4, Storage::Nhwc) => [0, 2, 3, 1],
        _ => [0, 1, 2, 3],
    }
}

/// What node `i` (a Reshape or Transpose) compiles to, given the storage `s`.
pub fn relayout(graph: &Graph, s: &[Storage], i: usize) -> Result<Relayout, String> {
    let node = &graph.nodes[i];
    let (x, y) = (node.inputs[0], node.output);
    let (xs, ys) = (&graph.tensor(x).shape, &graph.tensor(y).shape);
    if xs.len() > 4 || ys.len() > 4 {
        return Err(format!(
            "{xs:?} -> {ys:?}: edgefit tensors have at most 4 dimensions"
        ));
    }
    match &node.op {
        Op::Reshape => {
            if same_bytes(graph, s, x, y) {
                return Ok(Relayout::View);
            }
            match (row_major_bytes(xs, s[x]), row_major_bytes(ys, s[y])) {
                // NHWC map -> its row-major (NCHW) order.
                (false, true) => Ok(Relayout::Copy {
                    input_dims: engine_dims(xs),
                    perm: [0, 3, 1, 2],
                }),
                // Row-major values -> an NHWC map: read them as [N, C, H, W].
                (true, false) => Ok(Relayout::Copy {
                    input_dims: ys.clone(),
                    perm: [0, 2, 3, 1],
                }),
                _ => Err(format!(
                    "reshape between two feature maps {xs:?} -> {ys:?} that reorders their \
                     elements: edgefit reshapes to and from 2-D/3-D, or between maps with one \
                     channel or one pixel"
                )),
            }
        }
        Op::Transpose { perm } => {
            let r = xs.len();
            if perm.len() != r {
                return Err(format!("perm {perm:?} does not match rank {r}"));
            }
            let pad = 4 - r;
            // The permutation over padded logical axes (padding axes stay first).
            let mut p = [0usize, 1, 2, 3];
            for k in pad..4 {
                p[k] = perm[k - pad] + pad;
            }
            let s_in = storage_axes(r, s[x]);
            let s_out = storage_axes(ys.len(), s[y]);
            let mut inv_in = [0usize; 4];
            for (pos, &axis) in s_in.iter().enumerate() {
                inv_in[axis] = pos;
            }
            let mut engine = [0u8; 4];
            for j in 0..4 {
                engine[j] = inv_in[p[s_out[j]]] as u8;
            }
            let input_dims = engine_dims(xs);
            Ok(Relayout::Copy {
                input_dims,
                perm: engine,
            })
        }
        _ => Err("not a shape op".into()),
    }
}

/// The logical axis the engine's softmax normalises over (its storage's last).
fn softmax_engine_axis(shape: &[usize], storage: Storage) -> usize {
    match storage {
        Storage::Nhwc => 1,
        _ => shape.len() - 1,
    }
}

/// Checks that the engine computes every node of `graph` exactly as ONNX
/// defines it; the first node it cannot is the error.
pub fn check(graph: &Graph) -> Result<(), LayoutError> {
    let s = storage(graph);
    for (i, node) in graph.nodes.iter().enumerate() {
        let err = |reason: String| LayoutError {
            node: node.name.clone(),
            op: node.op.kind(),
            reason,
        };
        let out = &graph.tensor(node.output).shape;
        if out.len() > 4 {
            return Err(err(format!(
                "output shape {out:?}: edgefit tensors have at most 4 dimensions"
            )));
        }
        match &node.op {
            Op::Conv(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::GlobalAvgPool => {
                let x = &graph.tensor(node.inputs[0]).shape;
                if x.len() == 4 && x[0] != 1 {
                    return Err(err(format!(
                        "input {x:?} holds a batch of {}: edgefit runs one image at a time \
                         (batch 1)",
                        x[0]
                    )));
                }
            }
            Op::Reshape | Op::Transpose { .. } => {
                relayout(graph, &s, i).map_err(err)?;
            }
            Op::Softmax { axes } => {
                let x = node.inputs[0];
                let shape = &graph.tensor(x).shape;
                let engine_axis = softmax_engine_axis(shape, s[x]);
                let want: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] > 1).collect();
                let has: Vec<usize> = [engine_axis]
                    .into_iter()
                    .filter(|&a| shape[a] > 1)
                    .collect();
                if want != has {
                    return Err(err(format!(
                        "softmax over axis {axes:?} of {shape:?}: the engine normalises over \
                         axis {engine_axis} of this tensor (the channels of a 4-D map, the \
                         last axis otherwise)"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::chain as graph;

    #[test]
    fn flatten_as_the_output_is_a_copy_to_nchw_order() {
        let g = graph(&[&[1, 2, 3, 4], &[1, 24]], vec![Op::Reshape]);
        let s = storage(&g);
        assert_eq!(s[1], Storage::RowMajor);
        assert_eq!(
            relayout(&g, &s, 0),
            Ok(Relayout::Copy {
                input_dims: vec![1, 3, 4, 2],
                perm: [0, 3, 1, 2]
            })
        );
        assert!(!reshape_is_view(&g, 0));
    }

    #[test]
    fn reshape_into_a_map_reads_row_major_as_nchw() {
        let g = graph(&[&[1, 24], &[1, 2, 3, 4]], vec![Op::Reshape]);
        assert_eq!(
            relayout(&g, &storage(&g), 0),
            Ok(Relayout::Copy {
                input_dims: vec![1, 2, 3, 4],
                perm: [0, 2, 3, 1]
            })
        );
    }

    #[test]
    fn maps_with_one_pixel_or_channel_reshape_as_views() {
        let g = graph(&[&[1, 8, 1, 1], &[1, 8]], vec![Op::Reshape]);
        assert!(reshape_is_view(&g, 0));
        let g = graph(&[&[1, 1, 4, 4], &[1, 16]], vec![Op::Reshape]);
        assert!(reshape_is_view(&g, 0));
    }

    #[test]
    fn reordering_map_to_map_reshape_is_refused() {
        let g = graph(&[&[1, 2, 3, 4], &[1, 4, 3, 2]], vec![Op::Reshape]);
        let e = check(&g).unwrap_err();
        assert!(e.reason.contains("reorders"), "{e}");
    }

    #[test]
    fn softmax_axis_must_be_the_engines() {
        let ok = graph(
            &[&[1, 3, 2, 2], &[1, 3, 2, 2]],
            vec![Op::Softmax { axes: vec![1] }],
        );
        assert!(check(&ok).is_ok());
        let bad = graph(
            &[&[1, 3, 2, 2], &[1, 3, 2, 2]],
            vec![Op::Softmax { axes: vec![3] }],
        );
        assert!(check(&bad).is_err());
        let flat = graph(&[&[2, 5], &[2, 5]], vec![Op::Softmax { axes: vec![1] }]);
        assert!(check(&flat).is_ok());
    }

    #[test]
    fn transpose_of_a_map_maps_storage_axes() {
        // NCHW [1, C, H, W] -> [1, H, W, C] (a 4-D map again, stored [1, W, C, H]).
        let g = graph(
            &[&[1, 2, 3, 4], &[1, 3, 4, 2]],
            vec![Op::Transpose {
                perm: vec![0, 2, 3, 1],
            }],
        );
        assert_eq!(
            relayout(&g, &storage(&g), 0),
            Ok(Relayout::Copy {
                input_dims: vec![1, 3, 4, 2],
                perm: [0, 2, 3, 1]
            })
        );
    }
}
