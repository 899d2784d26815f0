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

pub mod artifact;
mod conn;
pub mod engines;
pub mod power;
mod server;
mod session;
pub mod store;
pub mod system;

pub use artifact::{encode_tract_artifact, identify, ArtifactKind, TractArtifact, TractPrecision};
pub use server::{Agent, AgentConfig, AgentError, DEFAULT_PORT};

/// Reads a token file: its bytes without surrounding whitespace. An empty
/// token is an error (it would let anyone in).
pub fn read_token(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    let t = bytes.trim_ascii();
    if t.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the token file is empty",
        ));
    }
    Ok(t.to_vec())
}
