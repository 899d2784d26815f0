//! ONNX import: tract-onnx decodes the protobuf; edgefit lowers the ONNX nodes,
//! whose op identity is still intact at that stage (tract's declutter would turn a
//! ReLU into `Max` and a strided 1x1 conv into `Downsample` + `EinSum`), into its own
//! [`Graph`](crate::ir::Graph).
//!
//! Lowering folds BatchNormalization into the preceding conv, fuses ReLU/Clip into
//! their producer and a MatMul's bias Add into the dense layer, resolves Identity and
//! Dropout as aliases, and computes every output shape. Anything outside the op set
//! is an [`ImportError::UnsupportedOp`] naming the node.

pub mod attrs;
mod lower;
mod tensor;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use crate::ir::Graph;

/// ONNX ops edgefit imports (Constant, Identity and Dropout only as plumbing).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Gemm",
    "MatMul",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Add",
    "Relu",
    "Clip",
    "Flatten",
    "Reshape",
    "Softmax",
    "Transpose",
    "Identity",
    "Dropout",
    "Constant",
    "ReduceMean",
    "Squeeze",
    "Unsqueeze",
    "Shape",
    "Gather",
    "Concat",
    "Cast",
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The path is kept for callers; the message leaves it to the caller's context.
    #[error("cannot read the file")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a valid ONNX model: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error("node `{node}`: op `{op}` is not supported by edgefit (supported: {})", SUPPORTED_OPS.join(", "))]
    UnsupportedOp { node: String, op: String },
    #[error("node `{node}` ({op}): {reason}")]
    Invalid {
        node: String,
        op: String,
        reason: String,
    },
    #[error("{0}")]
    Model(String),
}

/// Options for [`import_onnx`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Replaces the model's input shape (NCHW), e.g. to fix a symbolic batch size.
    pub input_shape: Option<Vec<usize>>,
}

/// Facts about the file itself, next to the lowered graph.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub producer: String,
    pub opset: i64,
    pub input_name: String,
    pub output_name: String,
    /// ONNX nodes in the file (Identity/Constant plumbing included).
    pub onnx_nodes: usize,
}

/// A model lowered into edgefit's IR.
#[derive(Debug, Clone)]
pub struct ImportedModel {
    pub graph: Graph,
    pub info: ModelInfo,
}

/// The shape a model's (one) runtime input declares, without lowering the
/// graph: for running models edgefit cannot compile in tract (`evaluate
/// MODEL.onnx`). A symbolic leading dimension is the batch: 1.
pub fn declared_input_shape(path: &Path) -> Result<Vec<usize>, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let proto = decode_model(&bytes, path)?;
    let graph = proto.graph.as_ref().ok_or_else(|| ImportError::Decode {
        path: path.to_owned(),
        reason: "it has no graph".into(),
    })?;
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(ImportError::Model(format!(
            "the model has {} runtime inputs; edgefit feeds one",
            inputs.len()
        )));
    };
    let dims = tensor::value_shape(input).ok_or_else(|| {
        ImportError::Model(format!("input `{}` has no shape in the file", input.name))
    })?;
    dims.iter()
        .enumerate()
        .map(|(i, d)| match (i, d) {
            (_, Some(d)) if *d > 0 => Ok(*d),
            (0, None) => Ok(1),
            _ => Err(ImportError::Model(format!(
                "input `{}` has dimension {i} unknown or 0 in the file",
                input.name
            ))),
        })
        .collect()
}

/// The ONNX protobuf in `bytes` (`path` only names them in errors).
fn decode_model(bytes: &[u8], path: &Path) -> Result<pb::ModelProto, ImportError> {
    if bytes.is_empty() {
        return Err(ImportError::Decode {
            path: path.to_owned(),
            reason: "the file is empty".into(),
        });
    }
    tract_onnx::onnx()
        .proto_model_for_read(&mut &*bytes)
        .map_err(|e| ImportError::Decode {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        })
}

/// Load an ONNX file with tract-onnx and lower it into edgefit's IR.
pub fn import_onnx(path: &Path, options: &ImportOptions) -> Result<ImportedModel, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    import_onnx_bytes(&bytes, path, options)
}

/// As [`import_onnx`], from bytes already in memory (`path` only names them in errors).
pub fn import_onnx_bytes(
    bytes: &[u8],
    path: &Path,
    options: &ImportOptions,
) -> Result<ImportedModel, ImportError> {
    let decode_error = |reason: String| ImportError::Decode {
        path: path.to_owned(),
        reason,
    };
    let proto = decode_model(bytes, path)?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| decode_error("it has no graph".into()))?;
    if graph.node.is_empty() {
        return Err(decode_error("its graph has no nodes".into()));
    }
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| decode_error("it imports no default-domain opset".into()))?;
    let lowered = lower::lower_graph(graph, opset, options)?;
    crate::layout::check(&lowered.graph).map_err(|e| ImportError::Invalid {
        node: e.node,
        op: e.op.to_owned(),
        reason: e.reason,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let info = ModelInfo {
        name,
        producer: format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_owned(),
        opset,
        input_name: lowered.input_name,
        output_name: lowered.output_name,
        onnx_nodes: graph.node.len(),
    };
    Ok(ImportedModel {
        graph: lowered.graph,
        info,
    })
}

/// The shape and values of a float or integer ONNX tensor (an initializer, or
/// a test's `input_0.pb`), as f32.
pub fn tensor_f32(t: &pb::TensorProto) -> Result<(Vec<usize>, Vec<f32>), String> {
    let c = tensor::read_constant(t)?;
    Ok((c.shape().to_vec(), c.as_f32()))
}

/// Identity and Dropout outputs resolved to the value they forward.
fn alias_map(graph: &pb::GraphProto) -> HashMap<String, String> {
    let mut alias: HashMap<String, String> = HashMap::new();
    for node in &graph.node {
        if matches!(node.op_type.as_str(), "Identity" | "Dropout") && !node.input.is_empty() {
            let source = alias
                .get(&node.input[0])
                .cloned()
                .unwrap_or_else(|| node.input[0].clone());
            if let Some(out) = node.output.first() {
                alias.insert(out.clone(), source);
            }
        }
    }
    alias
}

/// Input positions at which an op reads activations (the rest are parameters).
fn data_positions(op: &str, inputs: usize) -> Vec<usize> {
    match op {
        "Add" | "Concat" => (0..inputs).collect(),
        "Identity" | "Dropout" | "Constant" => vec![],
        _ => vec![0],
    }
}

/// The graph inputs that carry activations, as opposed to weights given as inputs
/// (graph-only exports): those read at an activation position of some node.
fn data_inputs(graph: &pb::GraphProto, alias: &HashMap<String, String>) -> Vec<String> {
    let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let candidates: Vec<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .filter(|n| !initialized.contains(n))
        .collect();
    if candidates.len() <= 1 {
        return candidates.into_iter().map(str::to_owned).collect();
    }
    let mut read_as_data = HashSet::new();
    for node in &graph.node {
        for pos in data_positions(&node.op_type, node.input.len()) {
            if let Some(name) = node.input.get(pos) {
                read_as_data.insert(alias.get(name).map(String::as_str).unwrap_or(name));
            }
        }
    }
    candidates
        .into_iter()
        .filter(|c| read_as_data.contains(c))
        .map(str::to_owned)
        .collect()
}
