//! A compact text table for the terminal.

use crate::format::{human_bytes, mj, ms, percent, thousands, Source};
use crate::{Results, Row};

/// A profile and, for bench results, the device.
pub(crate) type Target = (String, Option<String>);

/// Rows grouped by (profile, device), in first-appearance order.
pub(crate) fn groups(r: &Results) -> Vec<(Target, Vec<&Row>)> {
    let mut out: Vec<(Target, Vec<&Row>)> = Vec::new();
    for row in &r.rows {
        let key = (row.profile.clone(), row.device.clone());
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(row),
            None => out.push((key, vec![row])),
        }
    }
    out
}

fn figure(value: Option<f64>, source: &str, fmt: fn(f64) -> String) -> String {
    match (value, Source::of(source, value)) {
        (Some(v), s) if s != Source::None => format!("{} {}", fmt(v), s.tag()),
        _ => "-".to_owned(),
    }
}

fn fits(row: &Row) -> String {
    let mut out = Vec::new();
    if !row.fits_ram {
        out.push(format!(
            "RAM needs {} B more",
            thousands(row.ram_margin_bytes.min(0).unsigned_abs())
        ));
    }
    if !row.fits_flash {
        out.push(format!(
            "flash needs {} B more",
            thousands(row.flash_margin_bytes.min(0).unsigned_abs())
        ));
    }
    if out.is_empty() {
        "yes".to_owned()
    } else {
        format!("no: {}", out.join(", "))
    }
}

/// The verdict matrix as text: one line per board, one column per
/// architecture (the best variant that fits, `★` on the winner, or what the
/// closest variant lacks), then the verdict sentences that differ from the
/// board before.
pub fn render_matrix(r: &Results) -> String {
    let m = crate::matrix::verdict_matrix(r);
    if m.rows.is_empty() {
        return String::new();
    }
    let mut table: Vec<Vec<String>> = vec![std::iter::once("board".to_owned())
        .chain(m.architectures.iter().map(|a| (*a).to_owned()))
        .collect()];
    for row in &m.rows {
        table.push(
            std::iter::once(row.profile.to_owned())
                .chain(row.cells.iter().map(|c| c.text()))
                .collect(),
        );
    }
    let mut out = format!(
        "verdicts (rank by {}; ★ = the board's winner)\n",
        r.criterion
    );
    out.push_str(&columns(&table, " | ", |_| false));
    for row in &m.rows {
        if let Some(s) = row.sentence {
            out.push_str(s);
            out.push('\n');
        }
    }
    out
}

/// Renders a compact table per profile: variant, accuracy, plan size, peak
/// RAM, latency and energy (each tagged with its source: `meas`, `host`,
/// `est`) and whether it fits.
pub fn render_terminal(r: &Results) -> String {
    const HEAD: [&str; 7] = ["variant", "acc", "plan", "RAM", "latency", "energy", "fits"];
    let mut out = String::new();
    for ((profile, device), rows) in groups(r) {
        let first = rows[0];
        out.push_str(&format!(
            "{profile}{} (RAM {}, flash {})\n",
            device.map(|d| format!(" @ {d}")).unwrap_or_default(),
            human_bytes(first.ram_limit_bytes as f64),
            human_bytes(first.flash_limit_bytes as f64),
        ));
        let mut table: Vec<[String; 7]> = vec![HEAD.map(str::to_owned)];
        for row in rows {
            table.push([
                format!("{} {}", row.model, row.variant),
                row.accuracy.map_or_else(|| "-".to_owned(), percent),
                human_bytes(row.plan_bytes as f64),
                human_bytes(row.peak_ram_bytes as f64),
                figure(row.latency_ms, &row.latency_source, ms),
                figure(row.energy_mj, &row.energy_source, mj),
                fits(row),
            ]);
        }
        // Numbers right-aligned, text left-aligned.
        let table: Vec<Vec<String>> = table.into_iter().map(Vec::from).collect();
        out.push_str(&columns(&table, "  ", |i| (1..=5).contains(&i)));
    }
    if !r.rows.is_empty() {
        out.push_str("sources: meas = measured on a device or sensor, host = measured on this host, est = estimated, - = not measured\n");
    }
    // Why an accuracy is missing, once per model.
    let mut missing: Vec<(&str, &str)> = Vec::new();
    for row in r.rows.iter().filter(|x| x.accuracy.is_none()) {
        if !missing.iter().any(|(m, _)| *m == row.model) {
            missing.push((&row.model, &row.accuracy_source));
        }
    }
    for (model, why) in missing {
        out.push_str(&format!("accuracy of {model}: {why}\n"));
    }
    out
}

/// A table as text: a two-space indent, columns `sep` apart, the columns
/// `right` names right-aligned, trailing blanks trimmed.
fn columns(table: &[Vec<String>], sep: &str, right: impl Fn(usize) -> bool) -> String {
    let mut width = vec![0usize; table.first().map_or(0, Vec::len)];
    for line in table {
        for (w, cell) in width.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in table {
        let cells: Vec<String> = line
            .iter()
            .zip(&width)
            .enumerate()
            .map(|(i, (cell, w))| {
                let pad = " ".repeat(w - cell.chars().count());
                if right(i) {
                    format!("{pad}{cell}")
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(cells.join(sep).trim_end());
        out.push('\n');
    }
    out
}

/// Everything the terminal shows of a result set: the verdict matrix, the
/// seed's comparison and the family sweep where present, then a table per
/// profile.
pub fn render_text(r: &Results) -> String {
    let mut out = render_matrix(r);
    out.push('\n');
    for section in [render_seed(r), render_family(r)] {
        if !section.is_empty() {
            out.push_str(&section);
            out.push('\n');
        }
    }
    out.push_str(&render_terminal(r));
    out
}

/// The seed's comparison as text: VGG11/16/19 and ResNet-18/34/50 at
/// ImageNet size, then which precisions of each fit each board.
pub fn render_seed(r: &Results) -> String {
    if r.seed.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "VGG against ResNet at ImageNet size (224x224x3, 1000 classes; computed from the graphs, not measured)\n",
    );
    let mut table = vec![[
        "model",
        "params",
        "dense",
        "GMACs",
        "int8 weights",
        "f16 weights",
        "f32 weights",
        "int8 arena",
        "f32 arena",
        "memory peaks at",
    ]
    .map(str::to_owned)
    .to_vec()];
    for s in &r.seed {
        table.push(vec![
            s.model.clone(),
            format!("{:.1} M", s.params as f64 / 1e6),
            format!("{:.0}%", 100.0 * s.dense_share),
            format!("{:.1}", s.macs as f64 / 1e9),
            human_bytes(s.weight_bytes_int8 as f64),
            human_bytes(s.weight_bytes_f16 as f64),
            human_bytes(s.weight_bytes_f32 as f64),
            human_bytes(s.peak_ram_int8 as f64),
            human_bytes(s.peak_ram_f32 as f64),
            s.peak_layer.clone(),
        ]);
    }
    out.push_str(&columns(&table, "  ", |_| false));
    let profiles: Vec<&str> = r.seed[0].fits.iter().map(|f| f.profile.as_str()).collect();
    if !profiles.is_empty() {
        out.push_str("precisions that fit each board (weights in flash, arena in RAM):\n");
        let mut table = vec![std::iter::once("board".to_owned())
            .chain(r.seed.iter().map(|s| s.model.clone()))
            .collect::<Vec<_>>()];
        for p in profiles {
            table.push(
                std::iter::once(p.to_owned())
                    .chain(r.seed.iter().map(|s| {
                        s.fits
                            .iter()
                            .find(|f| f.profile == p)
                            .filter(|f| !f.precisions.is_empty())
                            .map_or_else(|| "-".to_owned(), |f| f.precisions.join(","))
                    }))
                    .collect(),
            );
        }
        out.push_str(&columns(&table, "  ", |_| false));
    }
    out
}

/// Per board and family, the generated member with the most MACs that fits
/// at some precision, and the least compressed precision that fits it.
pub(crate) fn largest_fitting<'r>(
    r: &'r Results,
    profile: &str,
    family: &str,
) -> Option<(&'r crate::FamilyMember, &'r str)> {
    r.family
        .iter()
        .filter(|m| m.family == family)
        .filter_map(|m| {
            let fit = m.fits.iter().find(|f| f.profile == profile)?;
            // Listed int8, f16, f32: the last is the least compressed.
            fit.precisions.last().map(|p| (m, p.as_str()))
        })
        .max_by_key(|(m, _)| m.macs)
}

/// A generated member as a cell: `"vgg11-w0.25-r96 f32 · 0.24 GMACs · 31 MiB
/// weights · 1.1 MiB arena"`.
pub(crate) fn family_cell(m: &crate::FamilyMember, precision: &str) -> String {
    let (weights, arena, tiled) = match precision.trim_end_matches(" tiled") {
        "int8" => (m.weight_bytes_int8, m.peak_ram_int8, m.peak_ram_int8_tiled),
        "f16" => (m.weight_bytes_f16, m.peak_ram_f32, m.peak_ram_f32_tiled),
        _ => (m.weight_bytes_f32, m.peak_ram_f32, m.peak_ram_f32_tiled),
    };
    let arena = match tiled.filter(|_| precision.ends_with(" tiled")) {
        Some(t) => t,
        None => arena,
    };
    format!(
        "{} {precision} · {:.2} GMACs · {} weights · {} arena",
        m.name,
        m.macs as f64 / 1e9,
        human_bytes(weights as f64),
        human_bytes(arena as f64)
    )
}

/// The boards in a family sweep, in the order of the first member's fits.
pub(crate) fn family_profiles(r: &Results) -> Vec<&str> {
    r.family
        .first()
        .map(|m| m.fits.iter().map(|f| f.profile.as_str()).collect())
        .unwrap_or_default()
}

/// The family sweep as text: per board, the largest VGG and the largest
/// ResNet that fit.
pub fn render_family(r: &Results) -> String {
    if r.family.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "Which VGG and ResNet each board can hold ({} generated networks, computed from the graphs; the most MACs that fit at any precision)\n",
        r.family.len()
    );
    let mut table = vec![["board", "largest VGG", "largest ResNet"]
        .map(str::to_owned)
        .to_vec()];
    for p in family_profiles(r) {
        let mut line = vec![p.to_owned()];
        for fam in ["VGG", "ResNet"] {
            line.push(
                largest_fitting(r, p, fam)
                    .map_or_else(|| "none fits".to_owned(), |(m, prec)| family_cell(m, prec)),
            );
        }
        table.push(line);
    }
    out.push_str(&columns(&table, "  ", |_| false));
    out
}
