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
        let act = |i: usize| -> Result<TensorId, ImportError> {
            match inputs.get(i) {
                Some(Some(Value::Activation(id))) => Ok(*id),
                Some(Some(_)) => Err(err(format!(
                    "input {i} must be an activation, found a constant"
                ))),
                _ => Err(err(format!("input {i} is missing"))),
            }
        };
        let param = |i: usize| -> Result<Option<Param>, ImportError> {
            match inputs.get(i) {
                None | Some(None) => Ok(None),
                Some(Some(Value::Param(p))) => Ok(Some(p.clone())),
                Some(Some(Value::Const(c))) => {
                    Ok(Some(Param::new(c.shape().to_vec(), Some(c.as_f32()))))
                }
                Some(Some(Value::Activation(_))) => Err(err(format!(
                    "input {i} must be a weight (a constant), found a computed tensor"
                ))),
            }
        };
        let attrs = Attrs { node };
        let in_shape = |i: usize| -> Result<Vec<usize>, ImportError> {
            Ok(self.tensors[act(i)?].shape.clone())
        };

        match op {
            "Conv" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let w = param(1)?.ok_or_else(|| err("missing weight".into()))?;
                let bias = param(2)?;
                let [n, cin, h, wd] = four(&shape).map_err(err)?;
                if w.shape.len() != 4 {
                    return Err(err(format!(
                        "weight shape {:?} is not OIHW 4-D (only 2-D convolutions are supported)",
                        w.shape
                    )));
                }
                let groups = attrs.int("group").unwrap_or(1).max(1) as usize;
                let (cout, cin_g) = (w.shape[0], w.shape[1]);
                if cin_g * groups != cin || cout % groups != 0 {
                    return Err(err(format!(
                        "weight {:?} with group={groups} does not fit {cin} input channels",
                        w.shape
                    )));
                }
                if let Some(b) = &bias {
                    if b.elements() != cout {
                        return Err(err(format!(
                            "bias has {} values for {cout} output channels",
                            b.elements()
                        )));
                    }
                }
                let kernel = [w.shape[2], w.shape[3]];
                let win = self
                    .window(&attrs, [h, wd], Some(kernel), false)
                    .map_err(err)?;
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
            }
            "BatchNormalization" => {
                let x = act(0)?;
                let params = (1..5).map(&param).collect::<Result<Vec<_>, _>>()?;
                let [Some(scale), Some(shift), Some(mean), Some(var)] =
                    <[Option<Param>; 4]>::try_from(params)
                        .map_err(|_| err("expects scale, bias, mean and variance".into()))?
                else {
                    return Err(err("expects scale, bias, mean and variance inputs".into()));
                };
                let eps = attrs.float("epsilon").unwrap_or(1e-5);
                let conv_node = self.fusable_producer(x, &node.input[0]).filter(|&i| matches!(self.nodes[i].op, Op::Conv(ref c) if c.activation == Activation::None));
                let Some(idx) = conv_node else {
                    return Err(err(
                        "BatchNormalization must directly follow a convolution whose output nothing else reads; edgefit folds it into that convolution".into(),
                    ));
                };
                let Op::Conv(conv) = &mut self.nodes[idx].op else {
                    unreachable!("checked above")
                };
                fold_batchnorm(conv, &scale, &shift, &mean, &var, eps).map_err(err)?;
                let node_ir = &mut self.nodes[idx];
                node_ir.fused.push("BatchNormalization".into());
                node_ir.exported_params += scale.elements() + shift.elements();
                self.rename(x, &out_name);
            }
            "Relu" | "Clip" => {
                let x = act(0)?;
                let activation = if op == "Relu" {
                    Activation::Relu
                } else {
                    let bound = |i: usize, attr: &str, default: f32| -> Result<f32, ImportError> {
                        if self.opset < 11 {
                            return Ok(attrs.float(attr).unwrap_or(default));
                        }
                        match inputs.get(i) {
                            None | Some(None) => Ok(default),
                            Some(Some(Value::Const(c))) if c.as_f32().len() == 1 => {
                                Ok(c.as_f32()[0])
                            }
                            _ => Err(err(format!("clip bound {i} must be a scalar constant"))),
                        }
                    };
                    let (min, max) = (
                        bound(1, "min", f32::NEG_INFINITY)?,
                        bound(2, "max", f32::INFINITY)?,
                    );
                    if min.is_nan() || max.is_nan() {
                        return Err(err(format!("clip bounds [{min}, {max}] hold a NaN")));
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
                    return Err(err(format!(
                        "{op} on {producer}: edgefit runs {op} fused into the Conv, Gemm/MatMul or \
                         Add that produces its input, when nothing else reads that input"
                    )));
                }
            }
            "Gemm" | "MatMul" => {
                let mut x = act(0)?;
                let mut shape = in_shape(0)?;
                if shape.len() != 2 {
                    return Err(err(format!(
                        "input shape {shape:?} must be 2-D [N, features] (flatten first)"
                    )));
                }
                let w = param(1)?.ok_or_else(|| err("missing weight".into()))?;
                if w.shape.len() != 2 {
                    return Err(err(format!("weight shape {:?} is not 2-D", w.shape)));
                }
                let (trans_a, trans_b) = if op == "Gemm" {
                    (
                        attrs.int("transA").unwrap_or(0) != 0,
                        attrs.int("transB").unwrap_or(0) != 0,
                    )
                } else {
                    (false, false)
                };
                if trans_a {
                    // A is [features, N]: the engine's Transpose first, into a
                    // tensor derived from A (same values, so same range).
                    let a_name = self.tensors[x].name.clone();
                    let t =
                        self.add_tensor(&derived_name(&a_name, "transA"), vec![shape[1], shape[0]]);
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
                    attrs.float("alpha").unwrap_or(1.0),
                    attrs.float("beta").unwrap_or(1.0),
                );
                // IR dense weights are [out, in].
                let (out_f, in_f) = if trans_b {
                    (w.shape[0], w.shape[1])
                } else {
                    (w.shape[1], w.shape[0])
                };
                if in_f != shape[1] {
                    return Err(err(format!(
                        "weight {:?} does not take {} input features",
                        w.shape, shape[1]
                    )));
                }
                let mut weight = if trans_b { w.clone() } else { transpose_2d(&w) };
                if alpha != 1.0 {
                    scale_param(&mut weight, alpha);
                }
                let mut bias = if op == "Gemm" { param(2)? } else { None };
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
                        return Err(err(format!(
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
            }
            "Add" => {
                let (a, b) = (
                    inputs.first().cloned().flatten(),
                    inputs.get(1).cloned().flatten(),
                );
                match (a, b) {
                    (Some(Value::Activation(a)), Some(Value::Activation(b))) => {
                        let (sa, sb) =
                            (self.tensors[a].shape.clone(), self.tensors[b].shape.clone());
                        if sa != sb {
                            return Err(err(format!(
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
                    (Some(Value::Activation(x)), Some(c))
                    | (Some(c), Some(Value::Activation(x))) => {
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
                            return Err(err("adding a constant is only supported as the bias of a dense (MatMul) layer".into()));
                        };
                        let Op::Dense(d) = &mut self.nodes[idx].op else {
                            unreachable!("checked above")
                        };
                        if bias.elements() != d.out_features {
                            return Err(err(format!(
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
                    _ => return Err(err("expects two inputs".into())),
                }
            }
            "MaxPool" | "AveragePool" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let [n, c, h, w] = four(&shape).map_err(err)?;
                if node.output.iter().skip(1).any(|o| !o.is_empty()) {
                    return Err(err("MaxPool with an indices output is not supported".into()));
                }
                let ceil = attrs.int("ceil_mode").unwrap_or(0) != 0;
                let mut win = self.window(&attrs, [h, w], None, ceil).map_err(err)?;
                if win.dilation != [1, 1] {
                    return Err(err(format!(
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
                let count_include_pad = attrs.int("count_include_pad").unwrap_or(0) != 0;
                if op == "AveragePool"
                    && count_include_pad
                    && (extended || win.pads.iter().any(|&p| p > 0))
                {
                    return Err(err(format!(
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
            }
            "GlobalAveragePool" => {
                let x = act(0)?;
                let [n, c, _, _] = four(&in_shape(0)?).map_err(err)?;
                let out = self.add_tensor(&out_name, vec![n, c, 1, 1]);
                self.push(name, Op::GlobalAvgPool, vec![x], out, 0);
            }
            "Flatten" | "Reshape" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let total: usize = shape.iter().product();
                let new_shape = if op == "Flatten" {
                    let axis = attrs.int("axis").unwrap_or(1);
                    let axis = if axis < 0 {
                        axis + shape.len() as i64
                    } else {
                        axis
                    };
                    if axis < 0 || axis as usize > shape.len() {
                        return Err(err(format!("axis {axis} out of range for shape {shape:?}")));
                    }
                    let outer: usize = shape[..axis as usize].iter().product();
                    vec![outer, total / outer.max(1)]
                } else {
                    let target = match inputs.get(1) {
                        Some(Some(Value::Const(Constant::Int { data, .. }))) => data.clone(),
                        _ => {
                            return Err(err(
                                "the target shape must be a constant integer tensor".into()
                            ))
                        }
                    };
                    reshape_target(&shape, &target, attrs.int("allowzero").unwrap_or(0) != 0)
                        .map_err(err)?
                };
                if new_shape.iter().product::<usize>() != total {
                    return Err(err(format!("cannot reshape {shape:?} into {new_shape:?}")));
                }
                let out = self.add_tensor(&out_name, new_shape);
                self.push(name, Op::Reshape, vec![x], out, 0);
            }
            "Softmax" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let rank = shape.len() as i64;
                let axis = attrs
                    .int("axis")
                    .unwrap_or(if self.opset >= 13 { -1 } else { 1 });
                if axis < -rank || axis >= rank {
                    return Err(err(format!("axis {axis} out of range for shape {shape:?}")));
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
            }
            "Transpose" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let perm: Vec<usize> = match attrs.ints("perm") {
                    // The default reverses the axes.
                    None => (0..shape.len()).rev().collect(),
                    Some(p) => {
                        let mut seen = vec![false; shape.len()];
                        let mut perm = Vec::with_capacity(p.len());
                        for &a in &p {
                            let a = usize::try_from(a)
                                .ok()
                                .filter(|&a| a < shape.len() && !seen[a])
                                .ok_or_else(|| {
                                    err(format!(
                                        "perm {p:?} is not a permutation of the {} axes of {shape:?}",
                                        shape.len()
                                    ))
                                })?;
                            seen[a] = true;
                            perm.push(a);
                        }
                        if perm.len() != shape.len() {
                            return Err(err(format!(
                                "perm {p:?} is not a permutation of the {} axes of {shape:?}",
                                shape.len()
                            )));
                        }
                        perm
                    }
                };
                let out_shape = perm.iter().map(|&a| shape[a]).collect();
                let out = self.add_tensor(&out_name, out_shape);
                self.push(name, Op::Transpose { perm }, vec![x], out, 0);
            }
            // Shape arithmetic: every shape is static, so these fold to constants
            // (`x.view(x.size(0), -1)` with a dynamic batch exports as
            // Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
            "Shape" => {
                let shape: Vec<usize> = match inputs.first() {
                    Some(Some(Value::Activation(id))) => self.tensors[*id].shape.clone(),
                    Some(Some(Value::Const(c))) => c.shape().to_vec(),
                    Some(Some(Value::Param(p))) => p.shape.clone(),
                    _ => return Err(err("input 0 is missing".into())),
                };
                let rank = shape.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let start = clamp(attrs.int("start").unwrap_or(0));
                let end = clamp(attrs.int("end").unwrap_or(rank));
                let data: Vec<i64> = shape[start..end.max(start)]
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                let c = Constant::Int {
                    shape: vec![data.len()],
                    data,
                };
                self.values.insert(out_name, Value::Const(c));
            }
            "Gather" | "Unsqueeze" | "Squeeze" | "Concat" | "Cast"
                if inputs
                    .iter()
                    .flatten()
                    .all(|v| matches!(v, Value::Const(_))) =>
            {
                let consts: Vec<Option<&Constant>> = inputs
                    .iter()
                    .map(|v| match v {
                        Some(Value::Const(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                let c = fold_constant(op, &consts, &attrs, self.opset).map_err(err)?;
                self.values.insert(out_name, Value::Const(c));
            }
            "Unsqueeze" | "Squeeze" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let axes = match (attrs.ints("axes"), inputs.get(1)) {
                    (Some(a), _) => Some(a),
                    (None, Some(Some(Value::Const(Constant::Int { data, .. })))) => {
                        Some(data.clone())
                    }
                    (None, None | Some(None)) => None,
                    (None, Some(Some(_))) => {
                        return Err(err("axes must be a constant integer tensor".into()))
                    }
                };
                let new_shape = if op == "Unsqueeze" {
                    unsqueeze_shape(&shape, &axes.unwrap_or_default())
                } else {
                    squeeze_shape(&shape, axes.as_deref())
                }
                .map_err(err)?;
                let out = self.add_tensor(&out_name, new_shape);
                self.push(name, Op::Reshape, vec![x], out, 0);
            }
            "Gather" | "Concat" | "Cast" => {
                return Err(err(format!(
                    "{op} of a computed tensor: edgefit folds {op} only on constants (shape \
                     arithmetic); the engine has no {op} kernel"
                )))
            }
            "ReduceMean" => {
                let x = act(0)?;
                let shape = in_shape(0)?;
                let axes = match (attrs.ints("axes"), inputs.get(1)) {
                    (Some(a), _) => a,
                    (None, Some(Some(Value::Const(Constant::Int { data, .. })))) => data.clone(),
                    (None, None | Some(None)) => {
                        if attrs.int("noop_with_empty_axes").unwrap_or(0) != 0 {
                            return Err(err(
                                "no axes with noop_with_empty_axes=1 is an identity: remove the node"
                                    .into(),
                            ));
                        }
                        (0..shape.len() as i64).collect()
                    }
                    (None, Some(Some(_))) => {
                        return Err(err("axes must be a constant integer tensor".into()))
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
                            .ok_or_else(|| err(format!("axis {a} out of range for {shape:?}")))
                    })
                    .collect::<Result<Vec<usize>, _>>()?;
                norm.sort_unstable();
                norm.dedup();
                // Axes of size 1 change nothing: what counts is H and W.
                let reduced: Vec<usize> = norm.iter().copied().filter(|&a| shape[a] > 1).collect();
                let spatial: Vec<usize> =
                    (2..shape.len().max(2)).filter(|&a| shape[a] > 1).collect();
                if shape.len() != 4 || reduced != spatial {
                    return Err(err(format!(
                        "mean over axes {axes:?} of {shape:?}: edgefit averages over H and W of \
                         a 4-D NCHW tensor only (global average pooling)"
                    )));
                }
                let [n, c, _, _] = four(&shape).map_err(err)?;
                let keepdims = attrs.int("keepdims").unwrap_or(1) != 0;
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
            }
            _ => {
                return Err(ImportError::UnsupportedOp {
                    node: name,
                    op: op.to_owned(),
                })
            }
        }
        Ok(())
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

fn transpose_2d(p: &Param) -> Param {
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

fn scale_param(p: &mut Param, factor: f32) {
    if let Some(d) = &mut p.data {
        d.iter_mut().for_each(|v| *v *= factor);
    }
}

/// `Gather`, `Unsqueeze`, `Squeeze`, `Concat` and `Cast` over constants (the
/// shape arithmetic exporters write).
fn fold_constant(
    op: &str,
    inputs: &[Option<&Constant>],
    attrs: &Attrs,
    opset: i64,
) -> Result<Constant, String> {
    let input = |i: usize| -> Result<&Constant, String> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let ints = |c: &Constant| -> Result<Vec<i64>, String> {
        match c {
            Constant::Int { data, .. } => Ok(data.clone()),
            Constant::Float { .. } => Err("expected an integer tensor".into()),
        }
    };
    // Axes from the attribute (before opset 13) or the second input.
    let axes = || -> Result<Option<Vec<i64>>, String> {
        match attrs.ints("axes") {
            Some(a) => Ok(Some(a)),
            None => inputs.get(1).copied().flatten().map(ints).transpose(),
        }
    };
    let reshaped = |c: &Constant, shape: Vec<usize>| match c {
        Constant::Int { data, .. } => Constant::Int {
            shape,
            data: data.clone(),
        },
        Constant::Float { data, .. } => Constant::Float {
            shape,
            data: data.clone(),
        },
    };
    match op {
        "Unsqueeze" => {
            let x = input(0)?;
            let axes = axes()?.ok_or("Unsqueeze needs axes")?;
            Ok(reshaped(x, unsqueeze_shape(x.shape(), &axes)?))
        }
        "Squeeze" => {
            let x = input(0)?;
            Ok(reshaped(x, squeeze_shape(x.shape(), axes()?.as_deref())?))
        }
        "Cast" => {
            let x = input(0)?;
            let to = attrs.int("to").ok_or("Cast needs `to`")?;
            let shape = x.shape().to_vec();
            // FLOAT; INT8..INT64 and UINT8..UINT64 (ONNX DataType codes).
            match to {
                1 => Ok(Constant::Float {
                    shape,
                    data: x.as_f32(),
                }),
                2..=7 | 12 | 13 => Ok(Constant::Int {
                    shape,
                    data: match x {
                        Constant::Int { data, .. } => data.clone(),
                        Constant::Float { data, .. } => {
                            data.iter().map(|&v| v.trunc() as i64).collect()
                        }
                    },
                }),
                _ => Err(format!(
                    "Cast to data type {to}: edgefit folds casts to float and integer types only"
                )),
            }
        }
        "Gather" => {
            let (x, idx) = (input(0)?, input(1)?);
            let indices = ints(idx)?;
            let shape = x.shape();
            let rank = shape.len() as i64;
            let axis = attrs.int("axis").unwrap_or(0);
            let axis = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&axis) {
                return Err(format!("axis {axis} out of range for {shape:?}"));
            }
            let axis = axis as usize;
            let (outer, dim): (usize, usize) = (shape[..axis].iter().product(), shape[axis]);
            let inner: usize = shape[axis + 1..].iter().product();
            let picks = indices
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + dim as i64 } else { i };
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| j < dim)
                        .ok_or_else(|| format!("index {i} out of range for dimension {dim}"))
                })
                .collect::<Result<Vec<usize>, _>>()?;
            // Source positions of the output's elements, in order.
            let positions = (0..outer).flat_map(|o| {
                picks
                    .iter()
                    .flat_map(move |&p| (0..inner).map(move |k| (o * dim + p) * inner + k))
            });
            let mut out_shape = shape[..axis].to_vec();
            out_shape.extend_from_slice(idx.shape());
            out_shape.extend_from_slice(&shape[axis + 1..]);
            Ok(match x {
                Constant::Int { data, .. } => Constant::Int {
                    shape: out_shape,
                    data: positions.map(|i| data[i]).collect(),
                },
                Constant::Float { data, .. } => Constant::Float {
                    shape: out_shape,
                    data: positions.map(|i| data[i]).collect(),
                },
            })
        }
        "Concat" => {
            let parts: Vec<&Constant> = inputs.iter().flatten().copied().collect();
            let first = parts.first().ok_or("Concat needs inputs")?;
            let rank = first.shape().len() as i64;
            let axis = attrs.int("axis").ok_or("Concat needs `axis`")?;
            let axis = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&axis) {
                return Err(format!("axis {axis} out of range for {:?}", first.shape()));
            }
            let axis = axis as usize;
            let mut out_shape = first.shape().to_vec();
            out_shape[axis] = 0;
            for p in &parts {
                let s = p.shape();
                if s.len() != first.shape().len()
                    || s.iter()
                        .zip(first.shape())
                        .enumerate()
                        .any(|(i, (a, b))| i != axis && a != b)
                {
                    return Err(format!(
                        "inputs of shapes {:?} and {s:?} do not concatenate on axis {axis}",
                        first.shape()
                    ));
                }
                out_shape[axis] += s[axis];
            }
            let outer: usize = out_shape[..axis].iter().product();
            let all_int = parts.iter().all(|p| matches!(p, Constant::Int { .. }));
            let chunk = |p: &Constant, o: usize| -> (usize, usize) {
                let n: usize = p.shape()[axis..].iter().product();
                (o * n, (o + 1) * n)
            };
            if all_int {
                let mut data = Vec::new();
                for o in 0..outer {
                    for p in &parts {
                        let (a, b) = chunk(p, o);
                        data.extend_from_slice(&ints(p)?[a..b]);
                    }
                }
                Ok(Constant::Int {
                    shape: out_shape,
                    data,
                })
            } else {
                let mut data = Vec::new();
                for o in 0..outer {
                    for p in &parts {
                        let (a, b) = chunk(p, o);
                        data.extend_from_slice(&p.as_f32()[a..b]);
                    }
                }
                Ok(Constant::Float {
                    shape: out_shape,
                    data,
                })
            }
        }
        _ => Err(format!("{op} does not fold (opset {opset})")),
    }
}

/// ONNX Unsqueeze: `axes` index the output.
fn unsqueeze_shape(shape: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    let rank = (shape.len() + axes.len()) as i64;
    let mut at = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = if a < 0 { a + rank } else { a };
        if !(0..rank).contains(&n) || at.contains(&(n as usize)) {
            return Err(format!("axes {axes:?} are not valid for {shape:?}"));
        }
        at.push(n as usize);
    }
    let mut dims = shape.iter();
    Ok((0..rank as usize)
        .map(|i| {
            if at.contains(&i) {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect())
}

/// ONNX Squeeze: the given axes (each of size 1), or every axis of size 1.
fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, String> {
    let rank = shape.len() as i64;
    let drop: Vec<usize> = match axes {
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
        Some(axes) => axes
            .iter()
            .map(|&a| {
                let n = if a < 0 { a + rank } else { a };
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n < shape.len() && shape[n] == 1)
                    .ok_or_else(|| {
                        format!("axis {a} of {shape:?} is out of range or not of size 1")
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok((0..shape.len())
        .filter(|i| !drop.contains(i))
        .map(|i| shape[i])
        .collect())
}

fn reshape_target(shape: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *shape
                    .get(i)
                    .ok_or_else(|| format!("shape {target:?}: no dimension {i} to copy"))?,
            ),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(format!("invalid reshape target {target:?}")),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {shape:?} into {target:?}"));
        }
        out[i] = total / known;
    }
    Ok(out)
}

/// Fold `y = scale * (conv(x) - mean) / sqrt(var + eps) + shift` into the conv's
/// weights and bias. Graph-only exports carry no values: the fold is then structural
/// (the conv gains a per-channel bias).
fn fold_batchnorm(
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
