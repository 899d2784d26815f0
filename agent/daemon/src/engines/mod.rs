//! The agent's engines, behind one [`Runner`]: `native` (edgefit-engine on a
//! plan, bit-exact with the microcontroller), `tract-cpu` and `tract-cuda`
//! (tract on a tract model artifact; features `tract` and `cuda`).

#[cfg(feature = "cuda")]
mod cuda;
mod native;
#[cfg(feature = "tract")]
mod tract;

use edgefit_proto::EngineKind;

pub use native::NativeRunner;
#[cfg(feature = "tract")]
pub use tract::TractRunner;

/// Why an engine could not load or run an artifact.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("plan: {0}")]
    Plan(#[from] edgefit_engine::PlanError),
    #[error("engine: {0}")]
    Exec(#[from] edgefit_engine::ExecError),
    #[error("artifact: {0}")]
    Artifact(#[from] crate::artifact::ArtifactError),
    #[error("tract: {0}")]
    Tract(String),
    #[error(
        "the plan needs {needed} bytes of arena, more than the {limit} this agent allows \
         (nothing was allocated)"
    )]
    ArenaTooLarge { needed: usize, limit: usize },
    #[error("cannot allocate the plan's {bytes}-byte arena: the system refused the memory")]
    OutOfMemory { bytes: usize },
    #[error("{engine} is not available: {why}")]
    Unavailable { engine: &'static str, why: String },
}

/// One loaded artifact, ready to run samples: write the input into
/// [`input_mut`](Runner::input_mut), [`run`](Runner::run), read
/// [`output`](Runner::output).
pub trait Runner {
    fn kind(&self) -> EngineKind;
    /// The input buffer (exactly one sample's bytes).
    fn input_mut(&mut self) -> &mut [u8];
    /// Runs the input now in the buffer.
    fn run(&mut self) -> Result<(), EngineError>;
    /// The last run's output bytes.
    fn output(&self) -> &[u8];
    /// Arg-max of the last output.
    fn predicted(&self) -> u16;
    /// Tensor arena bytes the engine uses (the plan's; 0 for tract, whose
    /// memory shows in the resident set).
    fn arena_bytes(&self) -> u32;
    /// Accelerator memory held, when an accelerator runs the model.
    fn gpu_memory_bytes(&self) -> Option<u64> {
        None
    }
}

/// What this build and this machine offer for tract artifacts.
#[derive(Debug, Clone)]
pub struct Accelerator {
    /// tract-cuda can run models now.
    pub cuda: bool,
    /// `cuda: ...` or `none: <why>`, for the hello.
    pub description: String,
}

/// Probes the accelerator once, at start-up.
pub fn probe_accelerator() -> Accelerator {
    #[cfg(feature = "cuda")]
    {
        cuda::probe()
    }
    #[cfg(not(feature = "cuda"))]
    {
        Accelerator {
            cuda: false,
            description: "none: built without the cuda feature".into(),
        }
    }
}

/// The engines this build has, for the hello.
pub fn engine_names() -> &'static str {
    if cfg!(feature = "cuda") {
        "native,tract-cpu,tract-cuda"
    } else if cfg!(feature = "tract") {
        "native,tract-cpu"
    } else {
        "native"
    }
}

/// Loads a tract artifact for `engine` (`TractCpu` or `TractCuda`).
#[cfg(feature = "tract")]
pub fn load_tract(bytes: &[u8], engine: EngineKind) -> Result<Box<dyn Runner + Send>, EngineError> {
    let artifact = crate::artifact::TractArtifact::parse(bytes)?;
    match engine {
        EngineKind::TractCpu => Ok(Box::new(TractRunner::load(&artifact, tract::Backend::Cpu)?)),
        #[cfg(feature = "cuda")]
        EngineKind::TractCuda => Ok(Box::new(TractRunner::load(
            &artifact,
            tract::Backend::Cuda,
        )?)),
        other => Err(EngineError::Unavailable {
            engine: other.name(),
            why: "not an engine for tract artifacts in this build".into(),
        }),
    }
}

/// Without the `tract` feature, tract artifacts are refused.
#[cfg(not(feature = "tract"))]
pub fn load_tract(
    _bytes: &[u8],
    engine: EngineKind,
) -> Result<Box<dyn Runner + Send>, EngineError> {
    Err(EngineError::Unavailable {
        engine: engine.name(),
        why: "this agent was built without the tract feature".into(),
    })
}
