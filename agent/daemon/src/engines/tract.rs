//! The `tract-cpu` and `tract-cuda` engines: tract running a tract model
//! artifact (ONNX), in f32 or, translated by tract, in f16. Inputs and
//! outputs are f32 on the wire whatever the precision inside.

use edgefit_proto::EngineKind;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::runtime::{Runnable, Runtime, State};
use tract_onnx::tract_core::transform::ModelTransform;

use super::{EngineError, Runner};
use crate::artifact::{TractArtifact, TractPrecision};

/// Where tract runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Cuda,
}

fn tract_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Tract(format!("{e:#}"))
}

/// A tract model prepared for one backend, with its I/O buffers.
pub struct TractRunner {
    backend: Backend,
    state: Box<dyn State>,
    input_shape: Vec<usize>,
    input_dt: DatumType,
    input: Vec<u8>,
    output: Vec<u8>,
    /// tract-cuda: the GPU's free memory before the model was prepared.
    gpu_free_before: Option<u64>,
}

impl TractRunner {
    /// Loads, types and optimises the model (and translates it to f16 when
    /// the artifact says so), then prepares it on `backend`.
    pub fn load(artifact: &TractArtifact<'_>, backend: Backend) -> Result<Self, EngineError> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(artifact.model))
            .map_err(tract_err)?;
        model
            .set_input_fact(0, f32::fact(&artifact.input_shape).into())
            .map_err(tract_err)?;
        let outlets = model.output_outlets().map_err(tract_err)?.to_vec();
        model
            .select_output_outlets(&outlets[..1.min(outlets.len())])
            .map_err(tract_err)?;
        let mut typed = model
            .into_typed()
            .map_err(tract_err)?
            .into_decluttered()
            .map_err(tract_err)?;
        if artifact.precision == TractPrecision::F16 {
            FloatPrecisionTranslator::new(f32::datum_type(), f16::datum_type())
                .transform(&mut typed)
                .map_err(tract_err)?;
        }
        let input_dt = typed.input_fact(0).map_err(tract_err)?.datum_type;
        let (runnable, gpu_free_before): (Box<dyn Runnable>, Option<u64>) = match backend {
            Backend::Cpu => (
                tract_onnx::tract_core::runtime::DefaultRuntime
                    .prepare(typed)
                    .map_err(tract_err)?,
                None,
            ),
            Backend::Cuda => cuda_prepare(typed)?,
        };
        let state = runnable.spawn().map_err(tract_err)?;
        Ok(TractRunner {
            backend,
            state,
            input: vec![0; artifact.input_bytes()],
            input_shape: artifact.input_shape.clone(),
            input_dt,
            output: Vec::new(),
            gpu_free_before,
        })
    }
}

#[cfg(feature = "cuda")]
fn cuda_prepare(typed: TypedModel) -> Result<(Box<dyn Runnable>, Option<u64>), EngineError> {
    super::cuda::prepare(typed)
}

#[cfg(feature = "cuda")]
fn gpu_free_now() -> Option<u64> {
    super::cuda::gpu_free_bytes()
}

#[cfg(not(feature = "cuda"))]
fn gpu_free_now() -> Option<u64> {
    None
}

#[cfg(not(feature = "cuda"))]
fn cuda_prepare(_typed: TypedModel) -> Result<(Box<dyn Runnable>, Option<u64>), EngineError> {
    Err(EngineError::Unavailable {
        engine: "tract-cuda",
        why: "built without the cuda feature".into(),
    })
}

impl Runner for TractRunner {
    fn kind(&self) -> EngineKind {
        match self.backend {
            Backend::Cpu => EngineKind::TractCpu,
            Backend::Cuda => EngineKind::TractCuda,
        }
    }

    fn input_mut(&mut self) -> &mut [u8] {
        &mut self.input
    }

    fn run(&mut self) -> Result<(), EngineError> {
        let values: Vec<f32> = self
            .input
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let mut tensor = Tensor::from_shape(&self.input_shape, &values).map_err(tract_err)?;
        if self.input_dt != f32::datum_type() {
            tensor = tensor
                .cast_to_dt(self.input_dt)
                .map_err(tract_err)?
                .into_owned();
        }
        let out = self.state.run(tvec!(tensor.into())).map_err(tract_err)?;
        let first = out
            .first()
            .ok_or_else(|| EngineError::Tract("the model returned no output".into()))?;
        let f = first.cast_to::<f32>().map_err(tract_err)?;
        let view = f.to_plain_array_view::<f32>().map_err(tract_err)?;
        self.output.clear();
        self.output
            .extend(view.iter().flat_map(|v| v.to_le_bytes()));
        Ok(())
    }

    fn output(&self) -> &[u8] {
        &self.output
    }

    fn predicted(&self) -> u16 {
        edgefit_engine::argmax(&self.output, edgefit_engine::DType::F32)
    }

    fn arena_bytes(&self) -> u32 {
        0
    }

    /// The drop in the GPU's free memory since before the model was
    /// prepared (other processes' allocations count too).
    fn gpu_memory_bytes(&self) -> Option<u64> {
        let before = self.gpu_free_before?;
        gpu_free_now().map(|now| before.saturating_sub(now))
    }
}
