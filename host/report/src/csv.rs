//! `results.csv`: one line per row, RFC 4180 quoting.

use std::fmt::Display;

use crate::{Results, Row, RowTiling};

/// The [`Row`] field names in declaration (and JSON) order: the CSV header.
pub const ROW_FIELDS: [&str; 29] = [
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
    "accuracy_source",
    "latency_ms",
    "latency_source",
    "energy_mj",
    "energy_source",
    "accuracy_per_watt",
    "accuracy_per_watt_source",
    "profile",
    "device",
    "fits_ram",
    "ram_margin_bytes",
    "fits_flash",
    "flash_margin_bytes",
    "ram_limit_bytes",
    "flash_limit_bytes",
    "plan_crc32",
    "tiling",
];

fn opt<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

fn cells(r: &Row) -> Vec<String> {
    vec![
        r.model.clone(),
        r.architecture.clone(),
        r.variant.clone(),
        r.precision.clone(),
        r.sparsity.to_string(),
        r.params.to_string(),
        r.macs.to_string(),
        r.plan_bytes.to_string(),
        r.arena_bytes.to_string(),
        r.peak_ram_bytes.to_string(),
        opt(&r.accuracy),
        r.accuracy_images.to_string(),
        r.accuracy_source.clone(),
        opt(&r.latency_ms),
        r.latency_source.clone(),
        opt(&r.energy_mj),
        r.energy_source.clone(),
        opt(&r.accuracy_per_watt),
        r.accuracy_per_watt_source.clone(),
        r.profile.clone(),
        r.device.clone().unwrap_or_default(),
        r.fits_ram.to_string(),
        r.ram_margin_bytes.to_string(),
        r.fits_flash.to_string(),
        r.flash_margin_bytes.to_string(),
        r.ram_limit_bytes.to_string(),
        r.flash_limit_bytes.to_string(),
        opt(&r.plan_crc32),
        r.tiling
            .as_ref()
            .map(RowTiling::describe)
            .unwrap_or_default(),
    ]
}

/// A CSV table: the header, then the rows, with the `csv` crate's RFC 4180
/// quoting (a field with a comma, quote or line break is quoted) and `\n`
/// line ends. Every CSV table edgefit writes goes through here (the MLPerf
/// runner's headerless truth file uses the same crate directly).
pub fn csv_table<I, R, S>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to memory fails only on a record of another length, which
    // the callers' fixed columns rule out.
    let _ = w.write_record(header);
    for row in rows {
        let _ = w.write_record(row);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// Renders the rows as CSV: a header of the [`Row`] field names in order,
/// then one line per variant × profile. `None` is an empty field; strings
/// are quoted when they contain commas, quotes or line breaks (RFC 4180).
/// Lines end in `\n`.
pub fn render_csv(r: &Results) -> String {
    csv_table(&ROW_FIELDS, r.rows.iter().map(cells))
}
