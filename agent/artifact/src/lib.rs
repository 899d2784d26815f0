//! `edgefit-artifact`: what an edgefit device stores and runs, and the small
//! pieces the host tools (`edgefit`) and the Linux agent (`edgefit-agent`)
//! share without the host linking the agent: the artifact formats and their
//! identity ([`identify`]: an EFPL plan for the native engine or an EFTM tract
//! model artifact), the one parser of seconds flags, token files, and this
//! machine's CPU name.

pub mod artifact;

pub use artifact::{
    encode_tract_artifact, identify, ArtifactError, ArtifactKind, TractArtifact, TractPrecision,
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

/// The CPU under `root` (`/` for this machine): `/proc/cpuinfo`'s model name
/// (x86) or CPU part (Arm), with the architecture. The one cpuinfo reader of
/// the host's reports and the agent's hello.
pub fn cpu_name(root: &std::path::Path) -> String {
    let info = std::fs::read_to_string(root.join("proc/cpuinfo")).unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let arch = std::env::consts::ARCH;
    match field("model name").or_else(|| field("CPU part").map(|p| format!("Arm part {p}"))) {
        Some(m) => format!("{arch} {m}"),
        None => arch.to_owned(),
    }
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
