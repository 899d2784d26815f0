//! The `native` engine: edgefit-engine running a plan, as on the
//! microcontroller (same kernels, same bytes out).

use edgefit_engine::{argmax, DType, Engine, Plan};
use edgefit_proto::EngineKind;

use super::{EngineError, Runner};

/// A plan with its arena. Borrows the plan bytes (checked once, here).
pub struct NativeRunner<'a> {
    engine: Engine<'a>,
    arena: Vec<u8>,
    input: std::ops::Range<usize>,
    output: std::ops::Range<usize>,
    out_dtype: DType,
}

impl<'a> NativeRunner<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, EngineError> {
        let plan = Plan::parse(bytes)?;
        let engine = Engine::new(&plan);
        let arena = vec![0u8; plan.arena_size()];
        // Plan::parse checked that both lie in the arena.
        let input = plan.input()?.range();
        let output = plan.output()?.range();
        engine.output(&arena)?;
        Ok(NativeRunner {
            out_dtype: plan.output()?.dtype,
            engine,
            arena,
            input,
            output,
        })
    }

    /// Bytes of one input sample.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }
}

impl Runner for NativeRunner<'_> {
    fn kind(&self) -> EngineKind {
        EngineKind::Native
    }

    fn input_mut(&mut self) -> &mut [u8] {
        &mut self.arena[self.input.clone()]
    }

    fn run(&mut self) -> Result<(), EngineError> {
        Ok(self.engine.run(&mut self.arena)?)
    }

    fn output(&self) -> &[u8] {
        &self.arena[self.output.clone()]
    }

    fn predicted(&self) -> u16 {
        argmax(self.output(), self.out_dtype)
    }

    fn arena_bytes(&self) -> u32 {
        u32::try_from(self.arena.len()).unwrap_or(u32::MAX)
    }
}
