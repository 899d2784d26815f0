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
pub use server::{
    Agent, AgentConfig, AgentError, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_PORT, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_ADDRESS,
};

/// Shortest duration a seconds flag accepts (1 ms: a zero read timeout
/// means "none" to the OS).
pub const MIN_SECONDS: f64 = 0.001;
/// Longest duration a seconds flag accepts: one day.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Parses a duration flag given in seconds (`--timeout`, `--idle-timeout`,
/// `--handshake-timeout`): a finite number from [`MIN_SECONDS`] to
/// [`MAX_SECONDS`]. The one parser of every such flag of `edgefit` and
/// `edgefit-agent` (a clap `value_parser`), so no value reaches
/// `Duration::from_secs_f64` that would make it panic.
pub fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let range = || format!("give a number of seconds from {MIN_SECONDS} to {MAX_SECONDS} (1 day)");
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number: {}", range()))?;
    if !v.is_finite() || !(MIN_SECONDS..=MAX_SECONDS).contains(&v) {
        return Err(format!("{s} seconds is out of range: {}", range()));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

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

#[cfg(test)]
mod tests {
    use super::parse_seconds;
    use std::time::Duration;

    #[test]
    fn seconds_flags_take_finite_values_up_to_a_day() {
        assert_eq!(parse_seconds("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("86400"), Ok(Duration::from_secs(86_400)));
        for bad in [
            "inf", "-inf", "NaN", "1e30", "1e18", "86401", "0", "-1", "0.0001", "", "x",
        ] {
            let e = parse_seconds(bad).unwrap_err();
            assert!(e.contains("from 0.001 to 86400"), "{bad}: {e}");
        }
    }
}
