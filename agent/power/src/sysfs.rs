//! Small helpers for reading sysfs attribute files: one value per file,
//! newline-terminated, decimal integers (Documentation/ABI/README).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::PowerError;

/// Reads a whole attribute file, trimmed of whitespace and the trailing NUL
/// that device-tree string properties carry.
pub(crate) fn read_text(path: &Path) -> Result<String, PowerError> {
    let raw = fs::read(path).map_err(|source| PowerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&raw);
    Ok(text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string())
}

/// Reads an attribute file holding one decimal integer.
pub(crate) fn read_int<T: FromStr>(path: &Path) -> Result<T, PowerError> {
    let text = read_text(path)?;
    text.parse().map_err(|_| PowerError::InvalidValue {
        path: path.to_path_buf(),
        expected: "a decimal integer",
        contents: text,
    })
}

/// Like [`read_text`] but a missing file is `Ok(None)`: for optional
/// attributes such as labels.
pub(crate) fn read_optional_text(path: &Path) -> Result<Option<String>, PowerError> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        _ => read_text(path).map(Some),
    }
}

/// Entries of a directory, sorted so that `hwmon10` comes after `hwmon9`.
/// A missing directory has no entries: absent hardware is not an error.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, PowerError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PowerError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PowerError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort_by_key(|p| natural_key(&file_name(p)));
    Ok(paths)
}

/// The last path component as text ("" when there is none).
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Splits a name into text and numbers so numbers compare by value.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}

/// For `prefix{N}suffix` names, returns N.
pub(crate) fn channel_number(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if middle.is_empty() || !middle.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    middle.parse().ok()
}

/// Directories under `<root>/sys/class/hwmon` whose `name` attribute is
/// readable, with that name. Devices without a readable name are skipped:
/// we could not tell what they measure.
pub(crate) fn hwmon_devices(root: &Path) -> Result<Vec<(PathBuf, String)>, PowerError> {
    let mut devices = Vec::new();
    for dir in list_dir(&root.join("sys/class/hwmon"))? {
        if !dir.is_dir() {
            continue;
        }
        if let Ok(name) = read_text(&dir.join("name")) {
            devices.push((dir, name));
        }
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_hwmon10_after_hwmon9() {
        let mut names = vec![
            "hwmon10",
            "hwmon9",
            "hwmon1",
            "intel-rapl:0:1",
            "intel-rapl:0",
        ];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            [
                "hwmon1",
                "hwmon9",
                "hwmon10",
                "intel-rapl:0",
                "intel-rapl:0:1"
            ]
        );
    }

    #[test]
    fn channel_number_accepts_only_digits() {
        assert_eq!(channel_number("in12_label", "in", "_label"), Some(12));
        assert_eq!(channel_number("in_label", "in", "_label"), None);
        assert_eq!(channel_number("inx1_label", "in", "_label"), None);
        assert_eq!(channel_number("power1_input", "in", "_label"), None);
    }
}
