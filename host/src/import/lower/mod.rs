//! Lowering of ONNX nodes into edgefit IR nodes, one ONNX op per `match` arm.

use std::collections::HashMap;

use tract_onnx::pb;

use super::attrs::Attrs;
use super::tensor::{read_constant, value_elem_type, value_shape, Constant};
use super::{alias_map, data_inputs, ImportError, ImportOptions, SUPPORTED_OPS};
use crate::ir::{
    derived_name, Activation, Conv, Dense, Graph, Node, Op, Param, Pool, Tensor, TensorId,
};

pub(super) struct Lowered {
    pub graph: Graph,
    pub input_name: String,
    pub output_name: String,
}

mod activation;
mod add;
mod conv;
mod dense;
mod pool;
mod shape;

#[cfg(test)]
use {
    conv::fold_batchnorm,
    dense::transpose_2d,
    shape::{fold_constant, reshape_target, squeeze_shape, unsqueeze_shape},
};

/// What an ONNX value name stands for during lowering.
#[derive(Debug, Clone)]
enum Value {
    Activation(TensorId),
    /// A weight: values from an initializer, or only a shape (weight given as a graph input).
    Param(Param),
    /// A constant that is not a weight (shapes, clip bounds).
    Const(Constant),
}

struct Lowering {
    opset: i64,
    alias: HashMap<String, String>,
    values: HashMap<String, Value>,
    /// How many times each (alias-resolved) value is read, graph outputs included.
    uses: HashMap<String, usize>,
    tensors: Vec<Tensor>,
    nodes: Vec<Node>,
    /// Index of the IR node producing each tensor.
    producer: HashMap<TensorId, usize>,
}

pub(super) fn lower_graph(
    graph: &pb::GraphProto,
    opset: i64,
    options: &ImportOptions,
) -> Result<Lowered, ImportError> {
    let alias = alias_map(graph);
    let mut uses: HashMap<String, usize> = HashMap::new();
    let resolve = |name: &str| alias.get(name).cloned().unwrap_or_else(|| name.to_owned());
    for node in &graph.node {
        // Shape reads only the shape: it must not stop fusion into its input's producer.
        if matches!(node.op_type.as_str(), "Identity" | "Dropout" | "Shape") {
            continue;
        }
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            *uses.entry(resolve(input)).or_default() += 1;
        }
    }
    for output in &graph.output {
        *uses.entry(resolve(&output.name)).or_default() += 1;
    }

    let mut l = Lowering {
        opset,
        alias,
        values: HashMap::new(),
        uses,
        tensors: vec![],
        nodes: vec![],
        producer: HashMap::new(),
    };

    for init in &graph.initializer {
        let c = read_constant(init)
            .map_err(|reason| ImportError::Model(format!("initializer: {reason}")))?;
        l.values.insert(init.name.clone(), Value::Const(c));
    }

    let data = data_inputs(graph, &l.alias);
    let input_name = match data.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(ImportError::Model(
                "the model has no input that carries activations".into(),
            ))
        }
        many => {
            return Err(ImportError::Model(format!(
                "edgefit handles models with one input; this one has {}: {}",
                many.len(),
                many.join(", ")
            )))
        }
    };
    for input in &graph.input {
        if l.values.contains_key(&input.name) {
            continue; // an initializer also listed as an input
        }
        let shape = value_shape(input);
        if input.name == input_name {
            if let Some(code) = value_elem_type(input).filter(|&c| c != 0 && c != 1) {
                let ty = tract_onnx::pb::tensor_proto::DataType::try_from(code)
                    .map_or(format!("code {code}"), |t| format!("{t:?}"));
                return Err(ImportError::Model(format!(
                    "input `{}` has element type {ty}: edgefit models take FLOAT (f32) inputs",
                    input.name
                )));
            }
            let shape = match (&options.input_shape, shape) {
                (Some(forced), declared) => {
                    if let Some(d) = declared.filter(|d| d.len() != forced.len()) {
                        return Err(ImportError::Model(format!(
                            "--input-shape {forced:?} has {} dimensions, input `{}` has {}",
                            forced.len(),
                            input.name,
                            d.len()
                        )));
                    }
                    if forced.contains(&0) {
                        return Err(ImportError::Model(format!(
                            "--input-shape {forced:?} has a zero dimension"
                        )));
                    }
                    forced.clone()
                }
                (None, Some(dims)) => input_shape(&input.name, &dims)?,
                (None, None) => {
                    return Err(ImportError::Model(format!(
                        "input `{}` has no shape in the file: pass --input-shape N,C,H,W",
                        input.name
                    )))
                }
            };
            check_input_shape(&input.name, &shape, options.input_shape.is_some())?;
            let id = l.add_tensor(&input.name, shape);
            l.values.insert(input.name.clone(), Value::Activation(id));
        } else {
            let dims = shape.ok_or_else(|| {
                ImportError::Model(format!("weight input `{}` has no static shape", input.name))
            })?;
            let dims = dims
                .into_iter()
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    ImportError::Model(format!(
                        "weight input `{}` has a symbolic dimension",
                        input.name
                    ))
                })?;
            l.values
                .insert(input.name.clone(), Value::Param(Param::new(dims, None)));
        }
    }
    let input = match l.values.get(&input_name) {
        Some(Value::Activation(id)) => *id,
        _ => {
            return Err(ImportError::Model(format!(
                "input `{input_name}` is not declared as a graph input"
            )))
        }
    };

    for node in &graph.node {
        l.lower_node(node)?;
    }

    let output_name = match graph.output.as_slice() {
        [one] => one.name.clone(),
        [] => return Err(ImportError::Model("the model declares no output".into())),
        many => {
            return Err(ImportError::Model(format!(
                "edgefit handles models with one output; this one has {}",
                many.len()
            )))
        }
    };
    let output = match l.lookup(&output_name) {
        Some(Value::Activation(id)) => *id,
        Some(_) => {
            return Err(ImportError::Model(format!(
                "output `{output_name}` is a constant, not computed"
            )))
        }
        None => {
            return Err(ImportError::Model(format!(
                "output `{output_name}` is never produced by any node"
            )))
        }
    };
    if l.nodes.is_empty() {
        // Every node was an alias (Identity, Dropout, a no-op Reshape): the
        // output is the input, and a plan needs at least one op.
        let ops: Vec<String> = graph
            .node
            .iter()
            .map(|n| format!("`{}` ({})", n.name, n.op_type))
            .collect();
        return Err(ImportError::Model(format!(
            "the model computes nothing: output `{output_name}` is the input{}; a plan needs at \
             least one computing op",
            if ops.is_empty() {
                String::new()
            } else {
                format!(" passed through {}", ops.join(", "))
            }
        )));
    }
    for node in &l.nodes {
        let t = &l.tensors[node.output];
        let elements = t
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .filter(|&e| e <= MAX_TENSOR_ELEMENTS);
        if elements.is_none() || t.shape.contains(&0) {
            return Err(ImportError::Invalid {
                node: node.name.clone(),
                op: node.op.kind().to_owned(),
                reason: format!(
                    "output shape {:?} is empty or holds more than {MAX_TENSOR_ELEMENTS} elements",
                    t.shape
                ),
            });
        }
    }
    Ok(Lowered {
        graph: Graph {
            tensors: l.tensors,
            nodes: l.nodes,
            input,
            output,
        },
        input_name,
        output_name,
    })
}

/// The most elements one activation may hold: plan tensors have 32-bit byte
/// lengths, and an f32 tensor takes four bytes per element.
pub const MAX_TENSOR_ELEMENTS: u64 = (u32::MAX / 4) as u64;

/// Refuses input shapes edgefit cannot run: a zero dimension, a 4-D batch
/// other than 1, a size beyond what a plan can address.
fn check_input_shape(name: &str, shape: &[usize], forced: bool) -> Result<(), ImportError> {
    let source = if forced { "--input-shape" } else { "the file" };
    if let Some(i) = shape.iter().position(|&d| d == 0) {
        return Err(ImportError::Model(format!(
            "input `{name}` has shape {shape:?} from {source}: dimension {i} is 0"
        )));
    }
    if shape.len() > 4 {
        return Err(ImportError::Model(format!(
            "input `{name}` has shape {shape:?}: edgefit takes inputs of at most 4 dimensions (N,C,H,W)"
        )));
    }
    if shape.len() == 4 && shape[0] != 1 {
        return Err(ImportError::Model(format!(
            "input `{name}` has a batch of {} ({shape:?} from {source}): edgefit plans run one \
             image at a time; pass --input-shape 1,{},{},{}",
            shape[0], shape[1], shape[2], shape[3]
        )));
    }
    let elements = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&e| e <= MAX_TENSOR_ELEMENTS);
    if elements.is_none() {
        return Err(ImportError::Model(format!(
            "input `{name}` has shape {shape:?}: more than {MAX_TENSOR_ELEMENTS} elements, \
             beyond what a plan can address"
        )));
    }
    Ok(())
}

fn input_shape(name: &str, dims: &[Option<usize>]) -> Result<Vec<usize>, ImportError> {
    dims.iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some(v) => Ok(*v),
            // A symbolic batch is deployed as batch 1.
            None if i == 0 => Ok(1),
            None => Err(ImportError::Model(format!(
                "input `{name}` has symbolic dimension {i}: pass --input-shape N,C,H,W"
            ))),
        })
        .collect()
}

/// Integer/float attributes of a node, with errors that name the node.
/// The node being lowered: its name, op, output, inputs and attributes,
/// with the lookups every op family (one file each in this folder) needs.
struct NodeCx<'a> {
    node: &'a pb::NodeProto,
    op: &'a str,
    name: String,
    out_name: String,
    inputs: Vec<Option<Value>>,
    attrs: Attrs<'a>,
}

impl NodeCx<'_> {
    /// An import error naming this node and its op.
    fn err(&self, reason: String) -> ImportError {
        ImportError::Invalid {
            node: self.name.clone(),
            op: self.op.to_owned(),
            reason,
        }
    }

    /// Input `i` as an activation (a tensor computed by the graph).
    fn act(&self, i: usize) -> Result<TensorId, ImportError> {
        match self.inputs.get(i) {
            Some(Some(Value::Activation(id))) => Ok(*id),
            Some(Some(_)) => {
                Err(self.err(format!("input {i} must be an activation, found a constant")))
            }
            _ => Err(self.err(format!("input {i} is missing"))),
        }
    }

    /// Input `i` as a weight (a constant); `None` when the input is absent.
    fn param(&self, i: usize) -> Result<Option<Param>, ImportError> {
        match self.inputs.get(i) {
            None | Some(None) => Ok(None),
            Some(Some(Value::Param(p))) => Ok(Some(p.clone())),
            Some(Some(Value::Const(c))) => {
                Ok(Some(Param::new(c.shape().to_vec(), Some(c.as_f32()))))
            }
            Some(Some(Value::Activation(_))) => Err(self.err(format!(
                "input {i} must be a weight (a constant), found a computed tensor"
            ))),
        }
    }
}

/// Spatial attributes shared by Conv and the pools.
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
    out: [usize; 2],
}

impl Lowering {
    fn resolve(&self, name: &str) -> String {
        self.alias
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        self.values.get(&self.resolve(name))
    }

    fn add_tensor(&mut self, name: &str, shape: Vec<usize>) -> TensorId {
        self.tensors.push(Tensor {
            name: name.to_owned(),
            shape,
        });
        self.tensors.len() - 1
    }

    /// The shape of input `i` of `n`, an activation.
    fn in_shape(&self, cx: &NodeCx<'_>, i: usize) -> Result<Vec<usize>, ImportError> {
        Ok(self.tensors[cx.act(i)?].shape.clone())
    }

    fn lower_node(&mut self, node: &pb::NodeProto) -> Result<(), ImportError> {
        let op = node.op_type.as_str();
        let name = if node.name.is_empty() {
            node.output.first().cloned().unwrap_or_default()
        } else {
            node.name.clone()
        };
        let err = |reason: String| ImportError::Invalid {
            node: name.clone(),
            op: op.to_owned(),
            reason,
        };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") || !SUPPORTED_OPS.contains(&op) {
            let op = if node.domain.is_empty() {
                op.to_owned()
            } else {
                format!("{}.{}", node.domain, op)
            };
            return Err(ImportError::UnsupportedOp { node: name, op });
        }
        if matches!(op, "Identity" | "Dropout") {
            return Ok(()); // resolved as aliases
        }
        let out_name = node
            .output
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| err("it has no output".into()))?
            .clone();
        if op == "Constant" {
            let t = Attrs { node }
                .tensor("value")
                .ok_or_else(|| err("only tensor-valued Constant nodes are supported".into()))?;
            let c = read_constant(t).map_err(err)?;
            self.values.insert(out_name, Value::Const(c));
            return Ok(());
        }
        let inputs: Vec<Option<Value>> = node
            .input
            .iter()
            .map(|i| if i.is_empty() { Ok(None) } else { self.lookup(i).cloned().map(Some).ok_or_else(|| i.clone()) })
            .collect::<Result<_, String>>()
            .map_err(|missing| err(format!("input `{missing}` is not produced before this node (missing, or the graph is not in topological order)")))?;
        let cx = NodeCx {
            node,
            op,
            name,
            out_name,
            inputs,
            attrs: Attrs { node },
        };
        match op {
            "Conv" => self.lower_conv(&cx),
            "BatchNormalization" => self.lower_batchnorm(&cx),
            "Relu" | "Clip" => self.lower_activation(&cx),
            "Gemm" | "MatMul" => self.lower_dense(&cx),
            "Add" => self.lower_add(&cx),
            "MaxPool" | "AveragePool" => self.lower_pool(&cx),
            "GlobalAveragePool" => self.lower_global_pool(&cx),
            "Flatten" | "Reshape" => self.lower_reshape(&cx),
            "Softmax" => self.lower_softmax(&cx),
            "Transpose" => self.lower_transpose(&cx),
            "Shape" => self.lower_shape(&cx),
            "Gather" | "Unsqueeze" | "Squeeze" | "Concat" | "Cast"
                if cx
                    .inputs
                    .iter()
                    .flatten()
                    .all(|v| matches!(v, Value::Const(_))) =>
            {
                self.lower_folded(&cx)
            }
            "Unsqueeze" | "Squeeze" => self.lower_squeeze(&cx),
            "Gather" | "Concat" | "Cast" => self.lower_gather_concat_cast(&cx),
            "ReduceMean" => self.lower_reduce_mean(&cx),
            _ => Err(ImportError::UnsupportedOp {
                node: cx.name,
                op: op.to_owned(),
            }),
        }
    }

    fn push(
        &mut self,
        name: String,
        op: Op,
        inputs: Vec<TensorId>,
        output: TensorId,
        exported_params: usize,
    ) {
        self.nodes.push(Node {
            name,
            op,
            inputs,
            output,
            fused: vec![],
            exported_params,
        });
        self.producer.insert(output, self.nodes.len() - 1);
        self.values
            .insert(self.tensors[output].name.clone(), Value::Activation(output));
    }

    /// The node producing `tensor`, if `onnx_name` (its ONNX name) is read only once,
    /// so a BatchNorm, activation or bias can be folded into it.
    fn fusable_producer(&self, tensor: TensorId, onnx_name: &str) -> Option<usize> {
        let uses = self
            .uses
            .get(&self.resolve(onnx_name))
            .copied()
            .unwrap_or(0);
        if uses != 1 {
            return None;
        }
        self.producer.get(&tensor).copied()
    }

    /// The fused node now produces the ONNX value `new_name`.
    fn rename(&mut self, tensor: TensorId, new_name: &str) {
        self.tensors[tensor].name = new_name.to_owned();
        self.values
            .insert(new_name.to_owned(), Value::Activation(tensor));
    }

    fn window(
        &self,
        attrs: &Attrs,
        input: [usize; 2],
        kernel: Option<[usize; 2]>,
        ceil: bool,
    ) -> Result<Window, String> {
        let two = |name: &str, default: usize| -> Result<[usize; 2], String> {
            match attrs.ints(name) {
                None => Ok([default; 2]),
                Some(v) if v.len() == 2 && v.iter().all(|&x| x > 0) => {
                    Ok([v[0] as usize, v[1] as usize])
                }
                Some(v) => Err(format!(
                    "attribute {name}={v:?} must hold two positive values"
                )),
            }
        };
        let kernel = match (kernel, attrs.ints("kernel_shape")) {
            (Some(k), Some(a))
                if a.len() == 2 && (a[0] as usize, a[1] as usize) != (k[0], k[1]) =>
            {
                return Err(format!(
                    "kernel_shape {a:?} disagrees with the weight's {k:?}"
                ))
            }
            (Some(k), _) => k,
            (None, Some(_)) => two("kernel_shape", 1)?,
            (None, None) => return Err("missing kernel_shape".into()),
        };
        let stride = two("strides", 1)?;
        let dilation = two("dilations", 1)?;
        let auto_pad = attrs.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        let effective = [
            dilation[0] * (kernel[0] - 1) + 1,
            dilation[1] * (kernel[1] - 1) + 1,
        ];
        let pads = match auto_pad.as_str() {
            "NOTSET" | "" => match attrs.ints("pads") {
                None => [0; 4],
                Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => {
                    // ONNX order: [top, left, bottom, right].
                    [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
                }
                Some(p) => {
                    return Err(format!(
                        "attribute pads={p:?} must hold four non-negative values"
                    ))
                }
            },
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut pads = [0; 4];
                for d in 0..2 {
                    let out = input[d].div_ceil(stride[d]);
                    let total = ((out - 1) * stride[d] + effective[d]).saturating_sub(input[d]);
                    let (small, big) = (total / 2, total - total / 2);
                    let (begin, end) = if auto_pad == "SAME_UPPER" {
                        (small, big)
                    } else {
                        (big, small)
                    };
                    pads[d] = begin;
                    pads[d + 2] = end;
                }
                pads
            }
            other => return Err(format!("auto_pad={other} is not supported")),
        };
        let mut out = [0; 2];
        for d in 0..2 {
            let span = input[d] + pads[d] + pads[d + 2];
            if span < effective[d] {
                return Err(format!(
                    "kernel {kernel:?} is larger than the padded input {input:?}"
                ));
            }
            let steps = span - effective[d];
            out[d] = if ceil {
                let mut o = steps.div_ceil(stride[d]) + 1;
                // The last window must start inside the input or the begin padding.
                if (o - 1) * stride[d] >= input[d] + pads[d] {
                    o -= 1;
                }
                o
            } else {
                steps / stride[d] + 1
            };
        }
        Ok(Window {
            kernel,
            stride,
            pads,
            dilation,
            out,
        })
    }
}

fn four(shape: &[usize]) -> Result<[usize; 4], String> {
    <[usize; 4]>::try_from(shape)
        .map_err(|_| format!("expects a 4-D NCHW input, got shape {shape:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv_1x1(weights: Vec<f32>, bias: Option<Vec<f32>>) -> Conv {
        let c = weights.len();
        Conv {
            in_channels: 1,
            out_channels: c,
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
            dilation: [1, 1],
            groups: 1,
            weight: Param::new(vec![c, 1, 1, 1], Some(weights)),
            bias: bias.map(|b| Param::new(vec![c], Some(b))),
            activation: Activation::None,
            folded_batchnorm: false,
            residual: None,
        }
    }

    #[test]
    fn batchnorm_fold_matches_the_formula() {
        let mut conv = conv_1x1(vec![2.0, -1.0], Some(vec![0.5, 1.0]));
        let p = |v: Vec<f32>| Param::new(vec![2], Some(v));
        fold_batchnorm(
            &mut conv,
            &p(vec![3.0, 0.5]),
            &p(vec![1.0, -2.0]),
            &p(vec![0.25, 4.0]),
            &p(vec![3.0, 0.0]),
            1.0,
        )
        .unwrap();
        // channel 0: k = 3 / sqrt(4) = 1.5; w = 3.0; b = (0.5 - 0.25) * 1.5 + 1 = 1.375
        // channel 1: k = 0.5 / sqrt(1) = 0.5; w = -0.5; b = (1 - 4) * 0.5 - 2 = -3.5
        assert_eq!(conv.weight.data.as_deref(), Some(&[3.0, -0.5][..]));
        assert_eq!(conv.bias.unwrap().data.as_deref(), Some(&[1.375, -3.5][..]));
        assert!(conv.folded_batchnorm);
    }

    #[test]
    fn batchnorm_fold_without_values_adds_a_bias() {
        let mut conv = conv_1x1(vec![1.0; 4], None);
        conv.weight.data = None;
        let p = Param::new(vec![4], None);
        fold_batchnorm(&mut conv, &p, &p, &p, &p, 1e-5).unwrap();
        assert_eq!(conv.bias.as_ref().map(Param::elements), Some(4));
        assert!(conv.bias.unwrap().data.is_none());
    }

    #[test]
    fn squeeze_and_unsqueeze_follow_onnx_rules() {
        assert_eq!(unsqueeze_shape(&[3, 4], &[0, 3]).unwrap(), vec![1, 3, 4, 1]);
        assert_eq!(unsqueeze_shape(&[3, 4], &[-1]).unwrap(), vec![3, 4, 1]);
        assert!(unsqueeze_shape(&[3], &[0, 0]).is_err());
        assert_eq!(squeeze_shape(&[1, 8, 1, 1], None).unwrap(), vec![8]);
        assert_eq!(
            squeeze_shape(&[1, 8, 1, 1], Some(&[2, -1])).unwrap(),
            vec![1, 8]
        );
        assert!(squeeze_shape(&[1, 8, 1, 1], Some(&[1])).is_err());
    }

    #[test]
    fn shape_arithmetic_folds_as_onnx_defines_it() {
        let node = |attrs: Vec<pb::AttributeProto>| pb::NodeProto {
            attribute: attrs,
            ..Default::default()
        };
        let int_attr = |name: &str, i: i64| pb::AttributeProto {
            name: name.into(),
            i,
            ..Default::default()
        };
        let shape = Constant::Int {
            shape: vec![4],
            data: vec![1, 8, 3, 3],
        };
        let first = Constant::Int {
            shape: vec![],
            data: vec![0],
        };
        let n = node(vec![int_attr("axis", 0)]);
        let batch = fold_constant(
            "Gather",
            &[Some(&shape), Some(&first)],
            &Attrs { node: &n },
            13,
        )
        .unwrap();
        assert_eq!(batch.shape(), &[] as &[usize]);
        let axes = Constant::Int {
            shape: vec![1],
            data: vec![0],
        };
        let n = node(vec![]);
        let batch = fold_constant(
            "Unsqueeze",
            &[Some(&batch), Some(&axes)],
            &Attrs { node: &n },
            13,
        )
        .unwrap();
        let rest = Constant::Int {
            shape: vec![1],
            data: vec![-1],
        };
        let n = node(vec![int_attr("axis", 0)]);
        match fold_constant(
            "Concat",
            &[Some(&batch), Some(&rest)],
            &Attrs { node: &n },
            13,
        )
        .unwrap()
        {
            Constant::Int { shape, data } => assert_eq!((shape, data), (vec![2], vec![1, -1])),
            other => panic!("{other:?}"),
        }
        // A 2-D gather on axis 1 with a negative index.
        let m = Constant::Float {
            shape: vec![2, 3],
            data: vec![0., 1., 2., 3., 4., 5.],
        };
        let idx = Constant::Int {
            shape: vec![2],
            data: vec![-1, 0],
        };
        let n = node(vec![int_attr("axis", 1)]);
        match fold_constant("Gather", &[Some(&m), Some(&idx)], &Attrs { node: &n }, 13).unwrap() {
            Constant::Float { shape, data } => {
                assert_eq!((shape, data), (vec![2, 2], vec![2., 0., 5., 3.]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reshape_targets_follow_onnx_rules() {
        assert_eq!(
            reshape_target(&[1, 32, 7, 7], &[1, -1], false).unwrap(),
            vec![1, 1568]
        );
        assert_eq!(
            reshape_target(&[1, 32, 7, 7], &[0, -1], false).unwrap(),
            vec![1, 1568]
        );
        assert!(reshape_target(&[1, 3, 5], &[2, -1], false).is_err());
    }

    #[test]
    fn transpose_moves_rows_to_columns() {
        let p = Param::new(vec![2, 3], Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let t = transpose_2d(&p);
        assert_eq!(t.shape, vec![3, 2]);
        assert_eq!(t.data.unwrap(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
