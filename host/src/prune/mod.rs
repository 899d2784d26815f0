//! Pruning ONNX models in place: the weights of conv and dense layers are
//! rewritten in the model's own protobuf (tract-onnx's generated types,
//! encoded with `prost`), so the output is an ordinary ONNX file that tract,
//! onnxruntime and every other tool load.
//!
//! [`magnitude`]: unstructured pruning by absolute value, per layer or with
//! one global threshold. [`channels`]: structured pruning of whole conv
//! output channels, grouped where residual additions tie them.

pub mod channels;
pub mod magnitude;

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{tensor_proto::DataType, ModelProto, TensorProto};

pub use channels::{
    channel_groups, correction_inputs, prune_channels, ActivationMeans, ChannelOptions,
    ChannelReport, ChannelScope,
};
pub use magnitude::{
    magnitude_correction_inputs, prune_magnitude, prune_magnitude_corrected, MagnitudeOptions,
    Scope,
};

/// What can go wrong while pruning.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ONNX model: {source}")]
    Decode {
        path: PathBuf,
        source: prost::DecodeError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sparsity {0} is outside [0, 1)")]
    BadSparsity(f64),
    #[error(
        "node `{node}` ({op}): its weights `{tensor}` are not stored in the model \
         (a graph-only export, or weights computed by other nodes); pruning needs the weights"
    )]
    MissingWeights {
        node: String,
        op: String,
        tensor: String,
    },
    #[error("tensor `{tensor}`: {what}; only float32 weights stored in the file can be pruned")]
    UnsupportedTensor { tensor: String, what: String },
    #[error("tensor `{tensor}`: {len} values for dims {dims:?}")]
    TensorLength {
        tensor: String,
        len: usize,
        dims: Vec<i64>,
    },
    #[error("the model has no conv or dense layer to prune{0}")]
    NothingToPrune(String),
    #[error(
        "sparsity {sparsity} would remove all {weights} weights of `{node}`; \
         use a lower sparsity or --exclude first,last"
    )]
    WholeLayer {
        node: String,
        weights: usize,
        sparsity: f64,
    },
    #[error("no channel group can be pruned: {0}")]
    NoPrunableChannels(String),
}

/// Reads an ONNX model's protobuf.
pub fn load_model(path: &Path) -> Result<ModelProto, PruneError> {
    let bytes = std::fs::read(path).map_err(|source| PruneError::Read {
        path: path.to_owned(),
        source,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|source| PruneError::Decode {
        path: path.to_owned(),
        source,
    })
}

/// Writes `model` to `path` through a temporary file in the same folder,
/// renamed at the end: an error never leaves a partial model behind.
pub fn save_model(model: &ModelProto, path: &Path) -> Result<(), PruneError> {
    let write_err = |source| PruneError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, model.encode_to_vec()).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })
}

/// A float32 initializer's values (from `raw_data` or `float_data`).
pub(crate) fn tensor_f32(t: &TensorProto) -> Result<Vec<f32>, PruneError> {
    let unsupported = |what: String| PruneError::UnsupportedTensor {
        tensor: t.name.clone(),
        what,
    };
    if !t.external_data.is_empty() {
        return Err(unsupported("its data is in an external file".into()));
    }
    if t.data_type != DataType::Float as i32 {
        let name = DataType::try_from(t.data_type)
            .map(|d| d.as_str_name().to_owned())
            .unwrap_or_else(|_| format!("data type {}", t.data_type));
        return Err(unsupported(format!("element type {name}")));
    }
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        if !t.raw_data.len().is_multiple_of(4) {
            return Err(unsupported(format!(
                "{} raw bytes, not a whole number of float32 values",
                t.raw_data.len()
            )));
        }
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let expected = t
        .dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?));
    if expected != Some(values.len()) {
        return Err(PruneError::TensorLength {
            tensor: t.name.clone(),
            len: values.len(),
            dims: t.dims.clone(),
        });
    }
    Ok(values)
}

/// Stores `values` back into `t` in the field it came from.
pub(crate) fn set_tensor_f32(t: &mut TensorProto, values: &[f32]) {
    if t.raw_data.is_empty() {
        t.float_data = values.to_vec();
    } else {
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
}

/// Non-zero values in the weights of the model's conv, Gemm and weight
/// MatMul layers.
pub fn nonzero_weights(model: &ModelProto) -> Result<usize, PruneError> {
    let Some(g) = model.graph.as_ref() else {
        return Ok(0);
    };
    let mut n = 0;
    for node in &g.node {
        if !matches!(node.op_type.as_str(), "Conv" | "Gemm" | "MatMul") {
            continue;
        }
        let Some(t) = node
            .input
            .get(1)
            .and_then(|w| g.initializer.iter().find(|t| &t.name == w))
        else {
            continue;
        };
        n += tensor_f32(t)?.iter().filter(|v| **v != 0.0).count();
    }
    Ok(n)
}

/// Adds `delta` (one value per output) to the bias of node `index` (a Conv
/// or Gemm), creating a zero bias first if it has none. A MatMul has no bias
/// input and is left alone.
pub(crate) fn add_to_bias(
    graph: &mut tract_onnx::pb::GraphProto,
    index: usize,
    outs: usize,
    delta: &[f32],
) -> Result<(), PruneError> {
    let n = graph.node[index].clone();
    if n.op_type == "MatMul" || delta.len() != outs {
        return Ok(());
    }
    // Conv and Gemm both take the bias as input 2.
    let bias_name = match n.input.get(2).filter(|s| !s.is_empty()) {
        Some(b) => b.clone(),
        None => {
            let name = format!("{}.corrected_bias", n.name);
            graph.initializer.push(TensorProto {
                name: name.clone(),
                dims: vec![outs as i64],
                data_type: DataType::Float as i32,
                float_data: vec![0.0; outs],
                ..TensorProto::default()
            });
            let node = &mut graph.node[index];
            node.input.resize(2, String::new());
            node.input.push(name.clone());
            name
        }
    };
    let Some(bi) = graph.initializer.iter().position(|t| t.name == bias_name) else {
        return Ok(());
    };
    let mut b = tensor_f32(&graph.initializer[bi])?;
    if b.len() != outs {
        return Ok(());
    }
    for (v, d) in b.iter_mut().zip(delta) {
        *v += d;
    }
    set_tensor_f32(&mut graph.initializer[bi], &b);
    Ok(())
}

/// The graph of `model`, once `sparsity` is checked to be in [0, 1).
pub(crate) fn graph_to_prune(
    model: &mut ModelProto,
    sparsity: f64,
) -> Result<&mut tract_onnx::pb::GraphProto, PruneError> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(PruneError::BadSparsity(sparsity));
    }
    model
        .graph
        .as_mut()
        .ok_or_else(|| PruneError::NothingToPrune(" (the file has no graph)".into()))
}
