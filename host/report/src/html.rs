//! The self-contained `report.html`.

use std::fmt::Write as _;

use crate::format::{human_bytes, margin, mj, ms, percent, thousands, Source};
use crate::terminal::groups;
use crate::{Results, Row};

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `"accuracy size"` -> `"accuracy-size"`.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "figure".to_owned()
    } else {
        out
    }
}

/// A caption for the plots [`crate::render_plots`] writes, by slug.
fn caption(slug: &str) -> Option<&'static str> {
    Some(match slug {
        "accuracy-size" => "Accuracy against plan size (flash needed, log scale); vertical lines are each profile's flash limit.",
        "accuracy-ram" => "Accuracy against peak RAM (log scale); vertical lines are each profile's RAM limit.",
        "family-frontier" => "Every generated network (circles VGG, triangles ResNet): its int8 weights against its int8 activation arena. Each profile's dashed corner is its flash limit (horizontal) and RAM limit (vertical): a network below and left of a corner fits that board.",
        "accuracy-energy" => "Accuracy against energy per inference (log scale) for every variant on every profile; the step line is the Pareto front (less energy, more accuracy). Hollow markers are estimated energy.",
        "layer-memory" => "Activation output bytes of each layer (log scale), one line per model.",
        _ => return None,
    })
}

/// Drops an XML prolog or doctype so the SVG can sit inline in HTML.
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map(|i| &svg[i..]).unwrap_or(svg)
}

/// A figure cell: value, then "(estimated)" or the source in small type.
fn figure(value: Option<f64>, source: &str, fmt: fn(f64) -> String) -> String {
    let src = Source::of(source, value);
    match value {
        Some(v) if src != Source::None => {
            let note = match src {
                Source::Estimated => "<span class=\"est\">(estimated)</span>".to_owned(),
                _ => format!("<span class=\"src\">{}</span>", escape(source)),
            };
            format!(
                "<td class=\"num\" title=\"{}\">{} {note}</td>",
                escape(source),
                escape(&fmt(v))
            )
        }
        _ => format!("<td class=\"na\" title=\"{}\">&mdash;</td>", escape(source)),
    }
}

fn fit_cell(fits: bool, margin_bytes: i64) -> String {
    let class = if fits { "ok" } else { "bad" };
    format!(
        "<td class=\"{class}\">{}</td>",
        escape(&margin(fits, margin_bytes))
    )
}

fn table_row(row: &Row) -> String {
    let latency_est = Source::of(&row.latency_source, row.latency_ms) == Source::Estimated;
    let energy_est = Source::of(&row.energy_source, row.energy_mj) == Source::Estimated;
    let apw = match row.accuracy_per_watt {
        Some(v) => format!(
            "<td class=\"num\" title=\"{}\">{v:.3}{}</td>",
            escape(&row.accuracy_per_watt_source),
            if latency_est || energy_est || row.accuracy_per_watt_source.starts_with("estimated") {
                " <span class=\"est\">(estimated)</span>"
            } else {
                ""
            }
        ),
        None => "<td class=\"na\">&mdash;</td>".to_owned(),
    };
    let acc = match row.accuracy {
        Some(a) => format!("<td class=\"num\">{}</td>", escape(&percent(a))),
        None => format!("<td class=\"na\">{}</td>", escape(&row.accuracy_source)),
    };
    format!(
        "<tr><td>{model}</td><td>{arch}</td><td>{variant}</td><td class=\"num\">{plan}</td>\
         <td class=\"num\">{ram}</td>{acc}{lat}{energy}{apw}{fram}{fflash}</tr>\n",
        model = escape(&row.model),
        arch = escape(&row.architecture),
        variant = escape(&row.variant),
        plan = thousands(row.plan_bytes),
        ram = thousands(row.peak_ram_bytes),
        lat = figure(row.latency_ms, &row.latency_source, ms),
        energy = figure(row.energy_mj, &row.energy_source, mj),
        fram = fit_cell(row.fits_ram, row.ram_margin_bytes),
        fflash = fit_cell(row.fits_flash, row.flash_margin_bytes),
    )
}

const CSS: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
#verdicts { background: #eef6ff; border-left: 6px solid #1f77b4; padding: 0.6em 1.2em; margin: 1.2em 0; }
#verdicts li.sentence { font-size: 1.15em; font-weight: 600; margin: 0.4em 0; }
#verdicts ul.best { font-size: 0.95em; font-weight: normal; color: #333; }
#sources { background: #fafafa; border: 1px solid #ddd; padding: 0.4em 1.2em; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.6em 0 1.6em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; white-space: nowrap; }
td.na { color: #999; text-align: center; }
td.ok { color: #176117; background: #eef8ee; }
td.bad { color: #8b1010; background: #fdeeee; font-weight: 600; }
td.win { color: #0b4d0b; background: #d6f0d6; font-weight: 700; }
table.matrix td, table.matrix th { padding: 0.4em 0.7em; }
details { margin: 0.4em 0; }
summary { cursor: pointer; }
.est { color: #b35900; font-style: italic; font-size: 0.85em; }
.src { color: #666; font-size: 0.8em; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #ddd; background: #fff; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
";

/// Renders a self-contained HTML report: verdicts near the top
/// (`id="verdicts"`), a legend of figure sources, one summary table per
/// profile (and device) with RAM/flash fit as "fits, N B spare" or
/// "needs N B more", every estimated figure marked "(estimated)", and each
/// SVG of `svgs` (title, SVG text) inline in a `<figure id="plot-<title>">`.
///
/// Nothing is fetched from the network: no scripts, fonts or stylesheets
/// other than the inline CSS. All strings from the results are HTML-escaped;
/// the SVG texts are inlined as given (less any XML prolog).
pub fn render_html(r: &Results, svgs: &[(String, String)]) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>edgefit comparison report</title>\n<style>");
    h.push_str(CSS);
    h.push_str("</style>\n</head>\n<body>\n");
    h.push_str("<h1>edgefit: which variant fits which board</h1>\n");
    let _ = writeln!(
        h,
        "<p class=\"meta\">Created {} on {}; verdicts rank by {}; {} rows; schema {}.</p>",
        escape(&r.created),
        escape(&r.host),
        escape(&r.criterion),
        r.rows.len(),
        escape(&r.schema)
    );

    // The verdict matrix first: boards as rows, architectures as columns.
    h.push_str("<section id=\"verdicts\">\n<h2>Verdicts</h2>\n");
    let m = crate::matrix::verdict_matrix(r);
    if m.rows.is_empty() {
        h.push_str("<p>No verdicts in these results.</p>\n");
    } else {
        h.push_str("<table class=\"matrix\">\n<thead><tr><th>board</th>");
        for a in &m.architectures {
            let _ = write!(h, "<th>{}</th>", escape(a));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for row in &m.rows {
            let _ = write!(h, "<tr><th>{}</th>", escape(row.profile));
            for c in &row.cells {
                let class = match c {
                    crate::matrix::Cell::Fits { winner: true, .. } => "win",
                    crate::matrix::Cell::Fits { .. } => "ok",
                    _ => "bad",
                };
                let _ = write!(h, "<td class=\"{class}\">{}</td>", escape(&c.text()));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n");
        let _ = writeln!(
            h,
            "<p class=\"meta\">Each cell: the best variant of that architecture that fits the board \
             (ranked by {}; &#9733; marks the board's winner), its flash and peak RAM and its \
             accuracy; or, when none fits, what the closest variant lacks.</p>",
            escape(&r.criterion)
        );
        h.push_str("<ul>\n");
        for row in &m.rows {
            if let Some(s) = row.sentence {
                let _ = writeln!(h, "<li class=\"sentence\">{}</li>", escape(s));
            }
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");

    // The seed's comparison at ImageNet size.
    if !r.seed.is_empty() {
        h.push_str("<section id=\"seed\">\n<h2>VGG against ResNet at ImageNet size</h2>\n");
        let _ = writeln!(
            h,
            "<p class=\"meta\">224x224x3, 1000 classes. Every figure is <em>computed from the graph</em>, \
             not measured: {}.</p>",
            escape(&r.seed[0].source.replace(&format!("/{}.onnx", r.seed[0].model), "/*.onnx"))
        );
        h.push_str("<table>\n<thead><tr><th>model</th><th>parameters</th><th>in dense layers</th><th>GMACs</th><th>int8 weights</th><th>f16 weights</th><th>f32 weights</th><th>int8 arena</th><th>f32 arena</th><th>memory peaks at</th></tr></thead>\n<tbody>\n");
        for s in &r.seed {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}%</td><td class=\"num\">{:.1}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&s.model),
                thousands(s.params),
                100.0 * s.dense_share,
                s.macs as f64 / 1e9,
                escape(&human_bytes(s.weight_bytes_int8 as f64)),
                escape(&human_bytes(s.weight_bytes_f16 as f64)),
                escape(&human_bytes(s.weight_bytes_f32 as f64)),
                escape(&human_bytes(s.peak_ram_int8 as f64)),
                escape(&human_bytes(s.peak_ram_f32 as f64)),
                escape(&s.peak_layer)
            );
        }
        h.push_str("</tbody>\n</table>\n");
        let profiles: Vec<&str> = r.seed[0].fits.iter().map(|f| f.profile.as_str()).collect();
        if !profiles.is_empty() {
            h.push_str("<p>Precisions that fit each board (weights in flash, arena in RAM):</p>\n<table>\n<thead><tr><th>board</th>");
            for s in &r.seed {
                let _ = write!(h, "<th>{}</th>", escape(&s.model));
            }
            h.push_str("</tr></thead>\n<tbody>\n");
            for p in profiles {
                let _ = write!(h, "<tr><th>{}</th>", escape(p));
                for s in &r.seed {
                    match s
                        .fits
                        .iter()
                        .find(|f| f.profile == p)
                        .filter(|f| !f.precisions.is_empty())
                    {
                        Some(f) => {
                            let _ = write!(
                                h,
                                "<td class=\"ok\">{}</td>",
                                escape(&f.precisions.join(", "))
                            );
                        }
                        None => h.push_str("<td class=\"bad\">none</td>"),
                    }
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</tbody>\n</table>\n");
        }
        h.push_str("</section>\n");
    }

    // The family sweep: the largest of each family every board holds.
    if !r.family.is_empty() {
        h.push_str("<section id=\"family\">\n<h2>Which VGG and ResNet each board can hold</h2>\n");
        let _ = writeln!(
            h,
            "<p class=\"meta\">{} generated networks (<code>family/*.onnx</code>: torchvision's definitions at the \
             depths, width multipliers and resolutions asked for); every figure <em>computed from the graph</em>. \
             Each cell: the member with the most MACs that fits the board at some precision, and the least \
             compressed precision that fits it.</p>",
            r.family.len()
        );
        h.push_str("<table>\n<thead><tr><th>board</th><th>largest VGG</th><th>largest ResNet</th></tr></thead>\n<tbody>\n");
        for p in crate::terminal::family_profiles(r) {
            let _ = write!(h, "<tr><th>{}</th>", escape(p));
            for fam in ["VGG", "ResNet"] {
                match crate::terminal::largest_fitting(r, p, fam) {
                    Some((m, prec)) => {
                        let _ = write!(
                            h,
                            "<td class=\"ok\">{}</td>",
                            escape(&crate::terminal::family_cell(m, prec))
                        );
                    }
                    None => h.push_str("<td class=\"bad\">none fits</td>"),
                }
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n</section>\n");
    }

    // Legend of sources.
    h.push_str("<section id=\"sources\">\n<h2>Where the figures come from</h2>\n<ul>\n");
    h.push_str("<li><span class=\"est\">(estimated)</span>: computed from a model (e.g. MAC counts and the profile's clock or power figures), not measured. Treat as a guide.</li>\n");
    h.push_str("<li><span class=\"src\">measured on &lt;device&gt;</span> / <span class=\"src\">measured (&lt;sensor&gt;)</span>: timed or metered on real hardware.</li>\n");
    h.push_str("<li><span class=\"src\">measured on this host</span>: timed on the machine that ran the comparison.</li>\n");
    h.push_str("<li>&mdash;: not measured.</li>\n");
    h.push_str("<li>Accuracy is measured on the test set for every variant; plan size and peak RAM are exact byte counts from the compiled plan. Accuracy per watt is marked estimated when its latency or energy is.</li>\n");
    h.push_str("<li>Fit: <em>fits, N B spare</em> is the limit minus the need; <em>needs N B more</em> is the shortfall.</li>\n");
    let mut seen: Vec<&str> = Vec::new();
    for row in &r.rows {
        for s in [row.latency_source.as_str(), row.energy_source.as_str()] {
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
    }
    if !seen.is_empty() {
        h.push_str("<li>Sources in these results: ");
        let list: Vec<String> = seen
            .iter()
            .map(|s| format!("<q>{}</q>", escape(s)))
            .collect();
        h.push_str(&list.join(", "));
        h.push_str(".</li>\n");
    }
    h.push_str("</ul>\n</section>\n");

    // One table per profile (and device), each collapsible.
    h.push_str("<section id=\"tables\">\n<h2>Variants per profile</h2>\n");
    for ((profile, device), rows) in groups(r) {
        let first = rows[0];
        let _ = writeln!(
            h,
            "<details>\n<summary><strong>{}{}</strong></summary>\n<p class=\"meta\">RAM limit {} B, flash limit {} B.</p>",
            escape(&profile),
            device
                .map(|d| format!(" &mdash; device {}", escape(&d)))
                .unwrap_or_default(),
            thousands(first.ram_limit_bytes),
            thousands(first.flash_limit_bytes)
        );
        h.push_str("<table>\n<thead><tr><th>model</th><th>architecture</th><th>variant</th><th>plan (B)</th><th>peak RAM (B)</th><th>accuracy</th><th>latency</th><th>energy / inference</th><th>accuracy per watt</th><th>RAM</th><th>flash</th></tr></thead>\n<tbody>\n");
        for row in rows {
            h.push_str(&table_row(row));
        }
        h.push_str("</tbody>\n</table>\n</details>\n");
    }
    h.push_str("</section>\n");

    // Plots.
    h.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n");
    let mut ids: Vec<String> = Vec::new();
    for (title, svg) in svgs {
        let base = format!("plot-{}", slug(title));
        let mut id = base.clone();
        let mut n = 2;
        while ids.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        ids.push(id.clone());
        let text = caption(&slug(title))
            .map(str::to_owned)
            .unwrap_or_else(|| title.clone());
        let _ = writeln!(
            h,
            "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
            escape(&id),
            inline_svg(svg),
            escape(&text)
        );
    }
    h.push_str("</section>\n</body>\n</html>\n");
    h
}
