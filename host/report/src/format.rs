//! Number formatting and source classification shared by the renderers.

/// Where a figure comes from: the one reading of a `*_source` string, for
/// the renderers here and for `edgefit`'s merging of device measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Measured on a device or with a sensor.
    Measured,
    /// Measured on the machine that ran the comparison.
    Host,
    /// From a model, not a measurement.
    Estimated,
    /// Absent.
    None,
}

impl Source {
    /// Classifies a `*_source` string (`"measured on ..."`, `"estimated (...)"`, ...).
    pub fn of(source: &str, value: Option<f64>) -> Source {
        let s = source.trim().to_ascii_lowercase();
        if value.is_none() || s.starts_with("not measured") || s.is_empty() {
            Source::None
        } else if s.starts_with("estimated") {
            Source::Estimated
        } else if s.starts_with("measured on this host") {
            Source::Host
        } else {
            Source::Measured
        }
    }

    /// Short tag for the terminal table.
    pub fn tag(self) -> &'static str {
        match self {
            Source::Measured => "meas",
            Source::Host => "host",
            Source::Estimated => "est",
            Source::None => "",
        }
    }
}

/// `12345` -> `"12,345"`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Byte counts for people: `"512 B"`, `"12.3 KiB"`, `"1.50 MiB"`.
pub(crate) fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else if v.abs() >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v.abs() >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// A margin as prose: `"fits, 12,345 B spare"` or `"needs 4,096 B more"`.
pub(crate) fn margin(fits: bool, margin_bytes: i64) -> String {
    if fits && margin_bytes >= 0 {
        format!("fits, {} B spare", thousands(margin_bytes.unsigned_abs()))
    } else if margin_bytes < 0 {
        format!("needs {} B more", thousands(margin_bytes.unsigned_abs()))
    } else {
        // Does not fit although the margin is not negative (e.g. a limit the
        // margin does not capture): say so without inventing a number.
        "does not fit".to_owned()
    }
}

/// `0.9123` -> `"91.23%"`.
pub(crate) fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Milliseconds with sensible precision.
pub(crate) fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} ms")
    } else if x >= 1.0 {
        format!("{x:.2} ms")
    } else {
        format!("{x:.3} ms")
    }
}

/// Millijoules with sensible precision.
pub(crate) fn mj(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} mJ")
    } else if x >= 1.0 {
        format!("{x:.2} mJ")
    } else {
        format!("{x:.4} mJ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12345), "12,345");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(margin(true, 12345), "fits, 12,345 B spare");
        assert_eq!(margin(false, -4096), "needs 4,096 B more");
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.50 KiB");
        assert_eq!(percent(0.9123), "91.23%");
        assert_eq!(
            Source::of("estimated (cycles)", Some(1.0)),
            Source::Estimated
        );
        assert_eq!(Source::of("measured on this host", Some(1.0)), Source::Host);
        assert_eq!(Source::of("measured (ina219)", Some(1.0)), Source::Measured);
        assert_eq!(Source::of("estimated", None), Source::None);
    }
}
