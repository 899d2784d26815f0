//! `edgefit-agent`: the edgefit device for Linux edge boards (x86_64,
//! aarch64: Raspberry Pi, Jetson). It speaks the firmware's protocol
//! (`docs/protocol.md`) over TCP, keeps artifacts in an atomic store, and
//! runs them on its engines: `native` (edgefit-engine, bit-exact with the
//! microcontroller), `tract-cpu` and, with the `cuda` feature and a GPU
//! found at run time, `tract-cuda`. Benchmarks report time
//! (`CLOCK_MONOTONIC`), the peak resident set (`VmHWM`), and energy from the
//! board's power sensor when it has one (`edgefit-power`).
//!
//! ```no_run
//! use edgefit_agent::{Agent, AgentConfig};
//! let config = AgentConfig::new("127.0.0.1:4600".parse()?, "/var/lib/edgefit".into());
//! Agent::bind(config)?.serve()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The artifact formats (crate `edgefit-artifact`, shared with the host).
pub use edgefit_artifact::artifact;
mod conn;
pub mod engines;
pub mod power;
mod server;
mod session;
pub mod store;
pub mod system;

pub use edgefit_artifact::{
    encode_tract_artifact, identify, parse_seconds, read_token, ArtifactKind, TractArtifact,
    TractPrecision, MAX_SECONDS, MIN_SECONDS,
};
pub use server::{
    Agent, AgentConfig, AgentError, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_PORT, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
};
