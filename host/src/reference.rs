//! tract as edgefit's f32 reference: runs an ONNX model on f32 inputs, optionally
//! exposing intermediate values (by ONNX name) for calibration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("tract cannot load {path}: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("value `{0}` is not in the ONNX graph")]
    UnknownValue(String),
    #[error("input holds {got} values, the model takes {expected} ({shape:?})")]
    InputSize {
        got: usize,
        expected: usize,
        shape: Vec<usize>,
    },
    #[error("tract failed to run the model: {0}")]
    Run(String),
    #[error(transparent)]
    NoWeights(#[from] crate::ir::NoWeightValues),
}

type Plan = Arc<TypedRunnableModel>;

fn load_error(path: &Path, e: TractError) -> ReferenceError {
    ReferenceError::Load {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    }
}

/// A loaded, optimised tract model with its input shape and the values it returns.
pub struct TractReference {
    plan: Plan,
    input_shape: Vec<usize>,
    outputs: Vec<String>,
}

impl TractReference {
    /// Loads `path` with a fixed f32 `input_shape`; returns the model's output, then
    /// each of `extra_outputs` (ONNX value names) in that order.
    pub fn load(
        path: &Path,
        input_shape: &[usize],
        extra_outputs: &[String],
    ) -> Result<Self, ReferenceError> {
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| load_error(path, e))?;
        Self::prepare(model, path, input_shape, extra_outputs)
    }

    /// As [`TractReference::load`], from ONNX bytes in memory (a tract model
    /// artifact's model); `label` names it in errors.
    pub fn from_onnx_bytes(
        bytes: &[u8],
        label: &Path,
        input_shape: &[usize],
    ) -> Result<Self, ReferenceError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| load_error(label, e))?;
        Self::prepare(model, label, input_shape, &[])
    }

    fn prepare(
        mut model: InferenceModel,
        path: &Path,
        input_shape: &[usize],
        extra_outputs: &[String],
    ) -> Result<Self, ReferenceError> {
        let load = |e| load_error(path, e);
        model
            .set_input_fact(0, f32::fact(input_shape).into())
            .map_err(load)?;
        let mut outlets = model.output_outlets().map_err(load)?.to_vec();
        outlets.truncate(1);
        let mut outputs = vec![model
            .outlet_label(outlets[0])
            .unwrap_or("output")
            .to_owned()];
        for name in extra_outputs {
            let outlet = model
                .find_outlet_label(name)
                .ok_or_else(|| ReferenceError::UnknownValue(name.clone()))?;
            outlets.push(outlet);
            outputs.push(name.clone());
        }
        model.select_output_outlets(&outlets).map_err(load)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(load)?;
        Ok(TractReference {
            plan,
            input_shape: input_shape.to_vec(),
            outputs,
        })
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Names of the returned values: the model output first, then the extras.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Runs one input (row-major in the model's input shape); returns every output, flattened.
    pub fn run(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, ReferenceError> {
        let expected: usize = self.input_shape.iter().product();
        if input.len() != expected {
            return Err(ReferenceError::InputSize {
                got: input.len(),
                expected,
                shape: self.input_shape.clone(),
            });
        }
        let tensor = Tensor::from_shape(&self.input_shape, input)
            .map_err(|e| ReferenceError::Run(format!("{e:#}")))?;
        let result = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| ReferenceError::Run(format!("{e:#}")))?;
        result
            .iter()
            .map(|t| {
                let t = t
                    .cast_to::<f32>()
                    .map_err(|e| ReferenceError::Run(format!("{e:#}")))?;
                Ok(t.to_plain_array_view::<f32>()
                    .map_err(|e| ReferenceError::Run(format!("{e:#}")))?
                    .iter()
                    .copied()
                    .collect())
            })
            .collect()
    }
}
