//! edgefit's on-device inference engine.
//!
//! A host compiler turns a CNN into a *plan* (see `docs/plan-format.md`):
//! a versioned, CRC-checked byte image holding a tensor table, an op table
//! and a weight blob, with every activation's arena offset precomputed.
//! [`Plan::parse`] validates it once, zero-copy; [`Engine`] then runs it over
//! a caller-owned arena without allocating.
//!
//! ```ignore
//! let plan = Plan::parse(flash_bytes)?;
//! let engine = Engine::new(&plan);
//! let mut arena = [0u8; ARENA]; // at least engine.arena_size() (activations + scratch)
//! engine.input_mut(&mut arena)?.copy_from_slice(&image);
//! engine.run(&mut arena)?;
//! let logits = engine.output(&arena)?;
//! ```
//!
//! Numerics: int8 plans follow TFLite's integer-only scheme exactly (see
//! [`requant`]), so every target gives the same bytes; f32 plans compute in
//! f32; f16 plans store weights as IEEE half and compute in f32.
//!
//! Kernels: [`Engine::new`] uses SIMD kernels (int8: AVX-512 VNNI or AVX2 on
//! x86-64, NEON with or without `SDOT` on aarch64, the DSP extension on
//! Cortex-M; f32 and f16: AVX-512 or AVX2 on x86-64, NEON on aarch64, each
//! output's eight partial sums in the portable order) and the plan's scratch where
//! available; [`Engine::with_kernels`] with [`KernelPath::NoAvx512`] keeps
//! to AVX2, with [`KernelPath::Portable`] to the portable reference kernels.
//! All give identical bytes.
//!
//! Tight memory: a plan may run its leading ops as a tiled segment (format
//! version 2, [`tiling`]): a few rows per kernel call, intermediate maps in
//! row buffers, rows computed once; the same bytes as the untiled plan.
//!
//! Without the `std` feature the crate is `no_std` and uses no allocator.
//! `std` adds `PlanBuilder` (module `writer`), `std::error::Error` impls, run-time
//! AVX2 / AVX-512 / `SDOT` detection and [`AlignedBytes`], heap bytes on a cache
//! line for arenas and plan images (the vector kernels run measurably slower
//! from ones that are not).
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

#[cfg(feature = "std")]
mod aligned;
mod argmax;
mod error;
pub mod exec;
pub mod format;
pub mod input;
pub mod kernels;
pub mod plan;
pub mod tiling;
#[cfg(feature = "std")]
pub mod writer;

#[cfg(feature = "std")]
pub use aligned::AlignedBytes;
pub use argmax::argmax;
pub use error::{ExecError, PlanError};
pub use exec::Engine;
pub use format::{
    Activation, AddParams, DType, Encoding, Header, Location, OpDesc, OpKind, Precision, Quant,
    TensorDesc, FORMAT_VERSION, MAGIC, MIN_FORMAT_VERSION, NONE, TILED_FORMAT_VERSION,
};
pub use kernels::{requant, KernelPath};
pub use plan::Plan;
#[cfg(feature = "std")]
pub use writer::PlanBuilder;
