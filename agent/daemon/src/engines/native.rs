//! The `native` engine: edgefit-engine running a plan, as on the
//! microcontroller (same kernels, same bytes out).

use edgefit_engine::{argmax, AlignedBytes, DType, Engine, Plan};
use edgefit_proto::EngineKind;

use super::{EngineError, Runner};

/// A plan with its arena. Borrows the plan bytes (checked once, here).
pub struct NativeRunner<'a> {
    engine: Engine<'a>,
    arena: AlignedBytes,
    input: std::ops::Range<usize>,
    output: std::ops::Range<usize>,
    out_dtype: DType,
}

impl<'a> NativeRunner<'a> {
    /// Checks the plan and allocates its arena, refusing an arena larger
    /// than `max_arena` bytes before allocating anything, and reporting an
    /// allocation the system refuses instead of aborting.
    pub fn new(bytes: &'a [u8], max_arena: usize) -> Result<Self, EngineError> {
        let plan = Plan::parse(bytes)?;
        let needed = plan.arena_size();
        if needed > max_arena {
            return Err(EngineError::ArenaTooLarge {
                needed,
                limit: max_arena,
            });
        }
        let engine = Engine::new(&plan);
        let arena = alloc_zeroed(needed)?;
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

    /// Bytes of the arena.
    pub fn arena_len(&self) -> usize {
        self.arena.len()
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

/// `len` zero bytes on a cache line, or [`EngineError::OutOfMemory`] where
/// `vec![0; len]` would abort the process.
fn alloc_zeroed(len: usize) -> Result<AlignedBytes, EngineError> {
    AlignedBytes::try_zeroed(len).map_err(|_| EngineError::OutOfMemory { bytes: len })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgefit_engine::{OpDesc, OpKind, PlanBuilder, Precision, Quant};

    /// An f32 Dense plan `[1, 8] -> [1, 5]` declaring `arena` bytes.
    fn plan(arena: u32) -> Vec<u8> {
        let mut b = PlanBuilder::new(Precision::F32);
        let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
        let y = b.add_activation(DType::F32, &[1, 5], 32, Quant::NONE);
        let mut op = OpDesc::new(OpKind::Dense, x, y);
        op.weights = b.add_weights_f32(&[5, 8], &[0.25; 40]);
        b.add_op(op);
        b.set_input(x).set_output(y).set_arena_size(arena);
        b.finish_checked().unwrap()
    }

    #[test]
    fn an_arena_over_the_limit_is_refused_before_it_is_allocated() {
        // 3.75 GiB: allocating it first would abort on a small board.
        let big = plan(0xF000_0000);
        match NativeRunner::new(&big, 1 << 30) {
            Err(EngineError::ArenaTooLarge { needed, limit }) => {
                assert_eq!((needed, limit), (0xF000_0000, 1 << 30));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a 3.75 GiB arena was accepted under a 1 GiB limit"),
        }
        let small = plan(64);
        let mut r = NativeRunner::new(&small, 1 << 30).unwrap();
        assert_eq!(r.arena_len(), 64);
        r.input_mut().copy_from_slice(&[0u8; 32]);
        r.run().unwrap();
    }

    #[test]
    fn an_allocation_the_system_refuses_is_an_error() {
        match alloc_zeroed(usize::MAX / 2) {
            Err(EngineError::OutOfMemory { bytes }) => assert_eq!(bytes, usize::MAX / 2),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }
}
