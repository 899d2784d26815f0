//! `results.csv`: one line per row, RFC 4180 quoting.

use std::fmt::Display;

use crate::{Results, Row};

/// The [`Row`] field names in declaration (and JSON) order: the CSV header.
pub const ROW_FIELDS: [&str; 26] = [
    "model",
    "architecture",
    "variant",
    "precision",
    "sparsity",
    "params",
    "macs",
    "plan_bytes",
    "arena_bytes",
    "peak_ram_bytes",
    "accuracy",
    "accuracy_images",
    "latency_ms",
    "latency_source",
    "energy_mj",
    "energy_source",
    "accuracy_per_watt",
    "profile",
    "device",
    "fits_ram",
    "ram_margin_bytes",
    "fits_flash",
    "flash_margin_bytes",
    "ram_limit_bytes",
    "flash_limit_bytes",
    "plan_crc32",
];

/// Quotes a field when it contains a comma, quote or line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn cells(r: &Row) -> [String; ROW_FIELDS.len()] {
    [
        field(&r.model),
        field(&r.architecture),
        field(&r.variant),
        field(&r.precision),
        r.sparsity.to_string(),
        r.params.to_string(),
        r.macs.to_string(),
        r.plan_bytes.to_string(),
        r.arena_bytes.to_string(),
        r.peak_ram_bytes.to_string(),
        r.accuracy.to_string(),
        r.accuracy_images.to_string(),
        opt(&r.latency_ms),
        field(&r.latency_source),
        opt(&r.energy_mj),
        field(&r.energy_source),
        opt(&r.accuracy_per_watt),
        field(&r.profile),
        r.device.as_deref().map(field).unwrap_or_default(),
        r.fits_ram.to_string(),
        r.ram_margin_bytes.to_string(),
        r.fits_flash.to_string(),
        r.flash_margin_bytes.to_string(),
        r.ram_limit_bytes.to_string(),
        r.flash_limit_bytes.to_string(),
        field(&opt(&r.plan_crc32)),
    ]
}

/// Renders the rows as CSV: a header of the [`Row`] field names in order,
/// then one line per variant × profile. `None` is an empty field; strings
/// are quoted when they contain commas, quotes or line breaks (RFC 4180).
/// Lines end in `\n`.
pub fn render_csv(r: &Results) -> String {
    let mut out = ROW_FIELDS.join(",");
    out.push('\n');
    for row in &r.rows {
        out.push_str(&cells(row).join(","));
        out.push('\n');
    }
    out
}
