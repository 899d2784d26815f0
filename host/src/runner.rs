//! Running one sample through a compiled plan (the edgefit engine, in process) or
//! through tract (the f32 reference): the same f32 NCHW input either way.

use edgefit_engine::{AlignedBytes, DType, Engine, KernelPath, Plan, Precision, TensorDesc};

use crate::data::Recipe;
use crate::reference::TractReference;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid plan: {0}")]
    Plan(String),
    #[error("engine: {0}")]
    Engine(String),
    #[error("input holds {got} values, the plan takes {expected}")]
    InputSize { got: usize, expected: usize },
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
}

/// A parsed plan with its arena, ready to run samples. Borrows the plan bytes,
/// which are validated (CRC included) once, here.
pub struct PlanRunner<'a> {
    engine: Engine<'a>,
    arena: AlignedBytes,
    input: TensorDesc,
    output: TensorDesc,
}

impl<'a> PlanRunner<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<PlanRunner<'a>, RunError> {
        Self::with_kernels(bytes, KernelPath::Auto)
    }

    /// As [`PlanRunner::new`], forcing the portable kernels or allowing SIMD ones.
    pub fn with_kernels(bytes: &'a [u8], kernels: KernelPath) -> Result<PlanRunner<'a>, RunError> {
        let plan = Plan::parse(bytes).map_err(|e| RunError::Plan(e.to_string()))?;
        let input = plan.input().map_err(|e| RunError::Plan(e.to_string()))?;
        let output = plan.output().map_err(|e| RunError::Plan(e.to_string()))?;
        let arena = AlignedBytes::zeroed(plan.arena_size());
        Ok(PlanRunner {
            engine: Engine::with_kernels(&plan, kernels),
            arena,
            input,
            output,
        })
    }

    pub fn plan(&self) -> &Plan<'a> {
        self.engine.plan()
    }

    /// Whether the engine runs SIMD kernels (false when forced portable or unavailable).
    pub fn uses_simd(&self) -> bool {
        self.engine.uses_simd()
    }

    /// What runs this plan here: the SIMD extension of its kernels, for int8
    /// "avx512-vnni", "avx2", "armv7e-m dsp", "neon-dotprod", "neon" or
    /// "none", for f16 / f32 "avx512", "avx2", "neon" or "none" (every path
    /// keeps the portable kernels' bits).
    pub fn kernels_name(&self) -> &'static str {
        kernels_name(self.precision(), self.engine.kernels())
    }

    pub fn precision(&self) -> Precision {
        self.plan().precision()
    }

    /// Writes an f32 NCHW sample into the arena (quantised for int8, NHWC).
    fn write_input(&mut self, nchw: &[f32]) -> Result<(), RunError> {
        let input = self.input;
        let slot = self
            .engine
            .input_mut(&mut self.arena)
            .map_err(|e| RunError::Engine(e.to_string()))?;
        encode_input(&input, nchw, slot)
    }

    /// The plan's input tensor (shape, dtype, quantisation).
    pub fn input_desc(&self) -> TensorDesc {
        self.input
    }

    /// The model's input shape in ONNX order (what [`PlanRunner::run`]
    /// takes): a 4-D input is stored NHWC, so `[n, h, w, c]` is `[n, c, h, w]`.
    pub fn input_shape(&self) -> Vec<usize> {
        onnx_shape(&self.input)
    }

    /// Runs one sample; returns the outputs dequantised to f32, in the
    /// model's (ONNX, NCHW) order.
    pub fn run(&mut self, nchw: &[f32]) -> Result<Vec<f32>, RunError> {
        self.write_input(nchw)?;
        self.engine
            .run(&mut self.arena)
            .map_err(|e| RunError::Engine(e.to_string()))?;
        let out = self.raw_output()?;
        let q = self.output.quant;
        let values: Vec<f32> = match self.output.dtype {
            DType::I8 => out
                .iter()
                .map(|&b| q.scale * (b as i8 as i32 - q.zero_point) as f32)
                .collect(),
            _ => out
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        Ok(decode_output(&self.output, values))
    }

    /// The raw output bytes of the last run (int8 values for int8 plans).
    pub fn raw_output(&self) -> Result<&[u8], RunError> {
        self.engine
            .output(&self.arena)
            .map_err(|e| RunError::Engine(e.to_string()))
    }
}

/// [`PlanRunner::kernels_name`] for a plan of precision `p` on kernel path `k`.
pub fn kernels_name(p: Precision, k: KernelPath) -> &'static str {
    match p {
        Precision::Int8 => k.simd_name(),
        _ => k.float_simd_name(),
    }
}

/// Either engine behind one `run`.
pub enum Runner<'a> {
    Plan(Box<PlanRunner<'a>>),
    Tract(TractReference),
}

impl Runner<'_> {
    pub fn run(&mut self, nchw: &[f32]) -> Result<Vec<f32>, RunError> {
        match self {
            Runner::Plan(p) => p.run(nchw),
            Runner::Tract(t) => Ok(t.run(nchw)?.swap_remove(0)),
        }
    }
}

/// A plan tensor's shape in ONNX order: a 4-D map is stored NHWC, so
/// `[n, h, w, c]` is `[n, c, h, w]`; other ranks are stored in their own order.
pub fn onnx_shape(t: &TensorDesc) -> Vec<usize> {
    let dims: Vec<usize> = t.shape().iter().map(|&d| d as usize).collect();
    match dims.as_slice() {
        [n, h, w, c] => vec![*n, *c, *h, *w],
        _ => dims,
    }
}

/// The input shape (ONNX order) of the plan in `bytes`, and the
/// preprocessing recipe it records (`compile` writes one), without
/// allocating its arena.
pub fn plan_input(bytes: &[u8]) -> Result<(Vec<usize>, Option<Recipe>), RunError> {
    let plan = Plan::parse(bytes).map_err(|e| RunError::Plan(e.to_string()))?;
    let input = plan.input().map_err(|e| RunError::Plan(e.to_string()))?;
    Ok((onnx_shape(&input), plan_recipe(bytes)?))
}

/// The preprocessing recipe a plan records in its metadata trailer, if any.
pub fn plan_recipe(bytes: &[u8]) -> Result<Option<Recipe>, RunError> {
    match edgefit_engine::plan::metadata(bytes) {
        None => Ok(None),
        Some(m) => Recipe::from_plan_metadata(m)
            .map_err(|e| RunError::Plan(format!("its recorded recipe: {e}"))),
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// Encodes an f32 NCHW sample as the plan input tensor's bytes: NHWC, quantised
/// with the tensor's scale and zero point for int8 (round half away from zero,
/// saturating), little-endian f32 otherwise. The bytes a device receives in a
/// benchmark are made here too, so host and device run identical inputs.
pub fn encode_input(input: &TensorDesc, nchw: &[f32], out: &mut [u8]) -> Result<(), RunError> {
    edgefit_engine::input::encode_nchw(input, nchw, out).map_err(|e| match e {
        edgefit_engine::input::EncodeError::Size { got, expected } => {
            RunError::InputSize { got, expected }
        }
        other => RunError::Engine(other.to_string()),
    })
}

/// The plan output's values (in the engine's order: NHWC for a 4-D map) in
/// the model's NCHW order.
pub fn decode_output(output: &TensorDesc, values: Vec<f32>) -> Vec<f32> {
    let [n, h, w, c] = match output.shape() {
        &[n, h, w, c] => [n as usize, h as usize, w as usize, c as usize],
        _ => return values,
    };
    if c == 1 || h * w == 1 || values.len() != n * h * w * c {
        return values;
    }
    let mut nchw = vec![0.0; values.len()];
    for item in 0..n {
        let base = item * h * w * c;
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    nchw[base + (ch * h + y) * w + x] = values[base + (y * w + x) * c + ch];
                }
            }
        }
    }
    nchw
}

/// Bytes of a tensor (`encode_input`'s output size).
pub fn tensor_bytes(t: &TensorDesc) -> usize {
    t.length as usize
}
