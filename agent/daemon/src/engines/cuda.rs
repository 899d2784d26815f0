//! tract-cuda: probed at start-up (tract-cuda loads the CUDA driver and
//! libraries dynamically and checks them), used for tract artifacts when
//! found; otherwise the agent runs them on the CPU and says why.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::{runtime_for_name, Runnable, Runtime};

use super::{Accelerator, EngineError};

// Link tract-cuda so its runtime registers itself ("cuda").
use tract_cuda as _;

fn cuda_runtime() -> Result<&'static dyn Runtime, String> {
    match runtime_for_name("cuda") {
        Ok(Some(rt)) => Ok(rt),
        Ok(None) => Err("tract-cuda runtime not registered".into()),
        Err(e) => Err(format!("{e:#}")),
    }
}

pub fn probe() -> Accelerator {
    match cuda_runtime() {
        Ok(_) => Accelerator {
            cuda: true,
            description: "cuda: tract-cuda runtime ready (NVIDIA driver found)".into(),
        },
        Err(why) => Accelerator {
            cuda: false,
            description: format!("none: CUDA unavailable ({why}); tract artifacts run on the CPU"),
        },
    }
}

/// The GPU's free memory now (device 0, the one tract-cuda uses), `None`
/// if the driver cannot tell.
pub fn gpu_free_bytes() -> Option<u64> {
    let ctx = cudarc::driver::CudaContext::new(0).ok()?;
    ctx.mem_get_info().ok().map(|(free, _total)| free as u64)
}

/// Prepares `model` on the GPU; returns it with the GPU's free memory
/// before (the drop from there, read after a run, is the memory the model
/// and its run hold on the device).
pub fn prepare(model: TypedModel) -> Result<(Box<dyn Runnable>, Option<u64>), EngineError> {
    let rt = cuda_runtime().map_err(|why| EngineError::Unavailable {
        engine: "tract-cuda",
        why,
    })?;
    let before = gpu_free_bytes();
    let runnable = rt
        .prepare(model)
        .map_err(|e| EngineError::Tract(format!("{e:#}")))?;
    Ok((runnable, before))
}
