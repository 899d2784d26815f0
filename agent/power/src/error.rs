use std::io;
use std::path::PathBuf;

/// Why a sensor could not be opened or read.
///
/// [`PowerError::NoSensor`] and [`PowerError::NoSuchRail`] mean "this board
/// does not have it": discovery treats them as a normal outcome. Every other
/// variant means the sensor exists but misbehaved, and names the file or
/// command at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PowerError {
    /// Nothing of this kind exists under the searched directory.
    #[error("no {what} found under {}", searched.display())]
    NoSensor {
        what: &'static str,
        searched: PathBuf,
    },

    /// The board has rails of this kind, but none with the requested name.
    #[error("no rail named {requested:?}; available rails: {available:?}")]
    NoSuchRail {
        requested: String,
        available: Vec<String>,
    },

    /// A sysfs file could not be read (missing, permission denied, vanished).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A sysfs file was read but does not hold what the kernel ABI promises.
    #[error("{}: expected {expected}, found {contents:?}", path.display())]
    InvalidValue {
        path: PathBuf,
        expected: &'static str,
        contents: String,
    },

    /// An external command (vcgencmd) could not be run or reported failure.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },

    /// Command output had a line we recognise but could not parse, or no
    /// usable data at all.
    #[error("unusable `{command}` output: {detail}")]
    InvalidOutput {
        command: &'static str,
        detail: String,
    },
}

impl PowerError {
    /// True when the error only says the hardware is absent, not broken.
    pub fn is_absent(&self) -> bool {
        matches!(
            self,
            PowerError::NoSensor { .. } | PowerError::NoSuchRail { .. }
        )
    }
}
