//! The plots, drawn once as SVG and once as PNG with the same code.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use crate::format::{human_bytes, Source};
use crate::{ReportError, Results, Row};

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`),
/// so PNG text renders without system fonts or fontconfig. SVG text is
/// written as `<text>` elements and rendered by the viewer's fonts; the
/// embedded font is only used there to measure label sizes.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 600);

/// Tableau 10: distinct, colour-blind-friendlier than the primaries.
static PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

static LABEL: RGBColor = RGBColor(60, 60, 60);
static NOTE: RGBColor = RGBColor(120, 120, 120);

fn colour(i: usize) -> &'static RGBColor {
    &PALETTE[i % PALETTE.len()]
}

/// Registers the embedded font once for the whole process.
fn fonts() -> Result<(), ReportError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic]
            .into_iter()
            .all(|style| register_font(FAMILY, style, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// The plots: file stem and what to draw.
#[derive(Debug, Clone, Copy)]
enum Plot {
    Size,
    Ram,
    Energy,
    Layers,
    Family,
}

impl Plot {
    const ALL: [Plot; 5] = [
        Plot::Size,
        Plot::Ram,
        Plot::Energy,
        Plot::Layers,
        Plot::Family,
    ];

    fn stem(self) -> &'static str {
        match self {
            Plot::Size => "accuracy-size",
            Plot::Ram => "accuracy-ram",
            Plot::Energy => "accuracy-energy",
            Plot::Layers => "layer-memory",
            Plot::Family => "family-frontier",
        }
    }

    fn draw<DB: DrawingBackend>(
        self,
        r: &Results,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        match self {
            Plot::Size => scatter(
                root,
                r,
                "Accuracy vs plan size, with each profile's flash limit",
                "plan size: flash needed (bytes, log scale)",
                |row| row.plan_bytes,
                |row| row.flash_limit_bytes,
                "flash",
            ),
            Plot::Ram => scatter(
                root,
                r,
                "Accuracy vs peak RAM, with each profile's RAM limit",
                "peak RAM: arena + engine state (bytes, log scale)",
                |row| row.peak_ram_bytes,
                |row| row.ram_limit_bytes,
                "RAM",
            ),
            Plot::Energy => energy(root, r),
            Plot::Layers => layers(root, r),
            Plot::Family => family(root, r),
        }?;
        root.present().map_err(err)
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The series legend every plot draws, at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .position(position)
        .draw()
        .map_err(err)
}

/// Marker shapes, by architecture.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Circle,
    Triangle,
    Square,
    Cross,
}

fn shape(i: usize) -> Shape {
    [Shape::Circle, Shape::Triangle, Shape::Square, Shape::Cross][i % 4]
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, RangedCoordf64>>;

/// Draws `points` as one legend entry of `shape` markers, hollow (a white
/// centre) or filled.
fn markers<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    shape: Shape,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    hollow: bool,
    legend: String,
) -> Result<(), String> {
    let outer = colour.filled();
    let inner = if hollow { WHITE.filled() } else { outer };
    // The same glyph at a data point and in the legend.
    macro_rules! draw {
        (|$at:ident| $glyph:expr) => {
            chart
                .draw_series(points.into_iter().map(|$at| $glyph))
                .map_err(err)?
                .legend(move |$at| $glyph)
        };
    }
    let series = match shape {
        Shape::Circle => {
            draw!(|p| EmptyElement::at(p)
                + Circle::new((0, 0), 5, outer)
                + Circle::new((0, 0), 3, inner))
        }
        Shape::Triangle => draw!(|p| EmptyElement::at(p)
            + TriangleMarker::new((0, 0), 7, outer)
            + TriangleMarker::new((0, 0), 3, inner)),
        Shape::Square => draw!(|p| EmptyElement::at(p)
            + Rectangle::new([(-5, -5), (5, 5)], outer)
            + Rectangle::new([(-3, -3), (3, 3)], inner)),
        Shape::Cross => draw!(|p| EmptyElement::at(p)
            + Cross::new((0, 0), 5, colour.stroke_width(2))
            + Circle::new((0, 0), 2, inner)),
    };
    series.label(legend);
    Ok(())
}

/// A text label at a data point `$at`, offset `$offset` pixels.
macro_rules! label {
    ($text:expr, $at:expr, $offset:expr, $style:expr $(,)?) => {
        EmptyElement::at($at) + Text::new($text, $offset, $style)
    };
}

fn text_style(size: u32, colour: &'static RGBColor) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font()).color(colour)
}

/// Distinct architectures in first-appearance order.
fn architectures(r: &Results) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for row in &r.rows {
        if !out.contains(&row.architecture.as_str()) {
            out.push(&row.architecture);
        }
    }
    out
}

/// A log-scale range covering `values` (positive ones), with some room.
fn log_range(values: impl Iterator<Item = f64>, empty: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        empty
    } else {
        (lo / 1.6, hi * 1.6)
    }
}

/// A row's accuracy (the plots draw only rows that have one).
fn acc(row: &Row) -> f64 {
    row.accuracy.unwrap_or(f64::NAN)
}

/// The accuracy axis: from a little below the worst to 100%.
fn accuracy_range(r: &Results) -> (f64, f64) {
    let lo = r.rows.iter().map(acc).fold(f64::INFINITY, f64::min);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = ((lo - 0.05).max(0.0) * 20.0).floor() / 20.0;
    (lo.min(0.9), 1.0)
}

/// A number to three significant digits, without trailing zeros.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Axis ticks on a log byte axis fall on powers of ten: decimal units.
fn si_bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{} {}", short(v), UNITS[unit])
}

fn percent_label(v: &f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Accuracy against a byte count, one vertical line per distinct limit.
fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Results,
    title: &str,
    x_desc: &str,
    value: fn(&Row) -> u64,
    limit: fn(&Row) -> u64,
    limit_kind: &str,
) -> Result<(), String> {
    // One point per variant (rows repeat it per profile).
    let mut points: Vec<(&Row, f64)> = Vec::new();
    for row in &r.rows {
        let v = value(row) as f64;
        if !points.iter().any(|(p, pv)| {
            p.model == row.model
                && p.variant == row.variant
                && *pv == v
                && p.accuracy == row.accuracy
        }) {
            points.push((row, v));
        }
    }
    // Profiles sharing a limit share a line.
    let mut limits: Vec<(u64, Vec<&str>)> = Vec::new();
    for row in &r.rows {
        let l = limit(row);
        match limits.iter_mut().find(|(v, _)| *v == l) {
            Some((_, names)) => {
                if !names.contains(&row.profile.as_str()) {
                    names.push(&row.profile);
                }
            }
            None => limits.push((l, vec![&row.profile])),
        }
    }
    limits.sort_by_key(|(l, _)| *l);
    let (xlo, xhi) = log_range(
        points
            .iter()
            .map(|(_, v)| *v)
            .chain(limits.iter().map(|(l, _)| *l as f64)),
        (1e3, 1e7),
    );
    let (ylo, yhi) = accuracy_range(r);
    // The plot on the left, the key to its numbered points on the right.
    let (w, _) = root.dim_in_pixel();
    let (plot_area, key_area) = root.split_horizontally(w * 74 / 100);
    let root = &plot_area;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(70)
        .build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("accuracy on the test set")
        .x_label_formatter(&|v| si_bytes(*v))
        .y_label_formatter(&percent_label)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(244, 244, 244))
        .draw()
        .map_err(err)?;

    let archs = architectures(r);
    // Limits as dashed lines named in the legend (text on the plot would
    // sit on the lines and on each other).
    for (i, (l, names)) in limits.iter().enumerate() {
        let c = *colour(archs.len() + i);
        let x = *l as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(x, ylo), (x, yhi)],
                8,
                5,
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!(
                "{} {}: {}",
                names.join(", "),
                limit_kind,
                human_bytes(x)
            ))
            .legend(move |(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], c.stroke_width(2)));
    }
    // Points numbered, the numbers keyed in the upper left: names next to
    // the markers stacked on each other where variants share a size.
    for (a, arch) in archs.iter().enumerate() {
        let (c, s) = (colour(a), shape(a));
        let mine: Vec<(f64, f64)> = points
            .iter()
            .filter(|(row, _)| row.architecture == *arch)
            .map(|(row, v)| (*v, acc(row)))
            .collect();
        markers(&mut chart, s, mine, *c, false, arch.to_string())?;
    }
    // One label per position: variants at the same size and accuracy share it.
    let mut spots: Vec<((f64, f64), String)> = Vec::new();
    for (i, (row, v)) in points.iter().enumerate() {
        let at = (*v, acc(row));
        match spots.iter_mut().find(|(p, _)| *p == at) {
            Some((_, text)) => text.push_str(&format!(",{}", i + 1)),
            None => spots.push((at, format!("{}", i + 1))),
        }
    }
    chart
        .draw_series(spots.iter().enumerate().map(|(k, (at, text))| {
            label!(
                text.clone(),
                *at,
                (6, -16 - 12 * (k as i32 % 2)),
                text_style(11, &LABEL),
            )
        }))
        .map_err(err)?;
    key_area
        .draw_text("points", &text_style(13, &BLACK), (6, 40))
        .map_err(err)?;
    for (i, (row, _)) in points.iter().enumerate() {
        key_area
            .draw_text(
                &format!("{:>2}  {} {}", i + 1, row.model, row.variant),
                &text_style(11, &LABEL),
                (6, 60 + 14 * i as i32),
            )
            .map_err(err)?;
    }
    if points.is_empty() {
        no_data(root, "no rows in these results")?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn no_data<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, text: &str) -> Result<(), String> {
    let (w, h) = root.dim_in_pixel();
    root.draw_text(
        text,
        &text_style(18, &NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
        (w as i32 / 2, h as i32 / 2),
    )
    .map_err(err)
}

/// Accuracy against energy per inference, with the Pareto front.
fn energy<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> Result<(), String> {
    let points: Vec<(&Row, f64, bool)> = r
        .rows
        .iter()
        .filter_map(|row| {
            let e = row.energy_mj.filter(|e| e.is_finite() && *e > 0.0)?;
            let est = Source::of(&row.energy_source, row.energy_mj) == Source::Estimated;
            Some((row, e, est))
        })
        .collect();
    let (xlo, xhi) = log_range(points.iter().map(|p| p.1), (1e-2, 1e2));
    let (ylo, yhi) = accuracy_range(r);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Accuracy vs energy per inference, with the Pareto front",
            (FAMILY, 22),
        )
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(70)
        .build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("energy per inference (mJ, log scale)")
        .y_desc("accuracy on the test set")
        .x_label_formatter(&|v| format!("{} mJ", short(*v)))
        .y_label_formatter(&percent_label)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(244, 244, 244))
        .draw()
        .map_err(err)?;

    // Pareto front: by energy, keep each point more accurate than all cheaper ones.
    let mut sorted: Vec<&(&Row, f64, bool)> = points.iter().collect();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then(acc(b.0).total_cmp(&acc(a.0))));
    let mut front: Vec<&(&Row, f64, bool)> = Vec::new();
    for p in sorted {
        if front.last().is_none_or(|f| acc(p.0) > acc(f.0)) {
            front.push(p);
        }
    }
    if !front.is_empty() {
        let mut steps = Vec::new();
        for (i, p) in front.iter().enumerate() {
            if i > 0 {
                steps.push((p.1, acc(front[i - 1].0)));
            }
            steps.push((p.1, acc(p.0)));
        }
        let c = RGBColor(40, 40, 40);
        chart
            .draw_series(LineSeries::new(steps, c.stroke_width(2)))
            .map_err(err)?
            .label("Pareto front (less energy, more accuracy)")
            .legend(move |(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], c.stroke_width(2)));
        chart
            .draw_series(front.iter().map(|p| {
                label!(
                    format!("{} {} @ {}", p.0.model, p.0.variant, p.0.profile),
                    (p.1, acc(p.0)),
                    (8, 4),
                    text_style(11, &LABEL),
                )
            }))
            .map_err(err)?;
    }

    for (a, arch) in architectures(r).iter().enumerate() {
        let (c, s) = (colour(a), shape(a));
        for est in [false, true] {
            let mine: Vec<_> = points
                .iter()
                .filter(|(row, _, e)| row.architecture == *arch && *e == est)
                .collect();
            if mine.is_empty() {
                continue;
            }
            markers(
                &mut chart,
                s,
                mine.iter().map(|(row, e, _)| (*e, acc(row))).collect(),
                *c,
                est,
                format!("{arch}, {}", if est { "estimated" } else { "measured" }),
            )?;
        }
    }
    if points.is_empty() {
        no_data(root, "no energy figures in these results")?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Activation bytes per layer, a line per model.
fn layers<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> Result<(), String> {
    let mut models: Vec<&str> = Vec::new();
    for l in &r.layers {
        if !models.contains(&l.model.as_str()) {
            models.push(&l.model);
        }
    }
    let (ylo, yhi) = log_range(r.layers.iter().map(|l| l.output_bytes as f64), (1.0, 1e6));
    let xhi = r.layers.iter().map(|l| l.index).max().unwrap_or(10) as f64 + 1.0;
    let mut chart = ChartBuilder::on(root)
        .caption("Activation memory per layer", (FAMILY, 22))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..xhi, (ylo..yhi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("layer index in the plan")
        .y_desc("output activation (bytes, log scale)")
        .x_label_formatter(&|v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| si_bytes(*v))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(244, 244, 244))
        .draw()
        .map_err(err)?;
    for (m, model) in models.iter().enumerate() {
        let c = colour(m);
        let mut pts: Vec<(f64, f64)> = r
            .layers
            .iter()
            .filter(|l| l.model == *model && l.output_bytes > 0)
            .map(|l| (l.index as f64, l.output_bytes as f64))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)).point_size(3))
            .map_err(err)?
            .label(model.to_string())
            .legend(move |(x, y)| PathElement::new([(x - 8, y), (x + 8, y)], c.stroke_width(2)));
    }
    if models.is_empty() {
        no_data(root, "no per-layer memory in these results")?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Generated family members: int8 weights against the int8 arena, with each
/// profile's flash limit (horizontal) and RAM limit (vertical) where the
/// results have rows for it: a member fits a board below and left of both.
fn family<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Results) -> Result<(), String> {
    let points = |fam: &str| -> Vec<(f64, f64)> {
        r.family
            .iter()
            .filter(|m| m.family == fam)
            .map(|m| (m.peak_ram_int8 as f64, m.weight_bytes_int8 as f64))
            .collect()
    };
    // Profiles with the same limits share a corner and a label.
    let mut limits: Vec<(String, u64, u64)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for row in &r.rows {
        let swept = r
            .family
            .first()
            .is_some_and(|m| m.fits.iter().any(|f| f.profile == row.profile));
        if !swept || seen.contains(&row.profile.as_str()) {
            continue;
        }
        seen.push(&row.profile);
        match limits
            .iter_mut()
            .find(|l| l.1 == row.ram_limit_bytes && l.2 == row.flash_limit_bytes)
        {
            Some(l) => {
                l.0.push_str(", ");
                l.0.push_str(&row.profile);
            }
            None => limits.push((
                row.profile.clone(),
                row.ram_limit_bytes,
                row.flash_limit_bytes,
            )),
        }
    }
    let (xlo, xhi) = log_range(
        r.family
            .iter()
            .map(|m| m.peak_ram_int8 as f64)
            .chain(limits.iter().map(|l| l.1 as f64)),
        (1e3, 1e8),
    );
    let (ylo, yhi) = log_range(
        r.family
            .iter()
            .map(|m| m.weight_bytes_int8 as f64)
            .chain(limits.iter().map(|l| l.2 as f64)),
        (1e3, 1e9),
    );
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Generated VGG and ResNet networks: int8 weights vs activation arena",
            (FAMILY, 22),
        )
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("int8 activation arena: RAM needed (bytes, log scale)")
        .y_desc("int8 weights: flash needed (bytes, log scale)")
        .x_label_formatter(&|v| si_bytes(*v))
        .y_label_formatter(&|v| si_bytes(*v))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(244, 244, 244))
        .draw()
        .map_err(err)?;
    for (i, (name, ram, flash)) in limits.iter().enumerate() {
        let c = colour(2 + i);
        let (x, y) = (*ram as f64, *flash as f64);
        chart
            .draw_series(DashedLineSeries::new(
                [(x, ylo), (x, y), (xlo, y)],
                8,
                5,
                c.stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(label!(
                name.clone(),
                (x, y),
                (4, 4),
                text_style(12, c),
            )))
            .map_err(err)?;
    }
    // VGG as circles, ResNet as triangles, as in the other plots.
    let (vgg, resnet) = (colour(0).filled(), colour(1).filled());
    chart
        .draw_series(points("VGG").into_iter().map(|p| Circle::new(p, 4, vgg)))
        .map_err(err)?
        .label("VGG")
        .legend(move |p| Circle::new(p, 4, vgg));
    chart
        .draw_series(
            points("ResNet")
                .into_iter()
                .map(|p| TriangleMarker::new(p, 6, resnet)),
        )
        .map_err(err)?
        .label("ResNet")
        .legend(move |p| TriangleMarker::new(p, 6, resnet));
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Draws the plots into `dir` (created if missing), each as SVG and PNG:
///
/// - `accuracy-size`: accuracy vs plan size (log x), each profile's flash
///   limit a labelled vertical line, markers by architecture;
/// - `accuracy-ram`: accuracy vs peak RAM, with the RAM limits;
/// - `accuracy-energy`: accuracy vs energy per inference (log x) with the
///   Pareto front as a step line; estimated points hollow, labelled
///   "estimated" in the legend;
/// - `layer-memory`: activation output bytes per layer index, a line per model.
///
/// Returns the files written, SVG before PNG for each plot. PNG text uses
/// the embedded DejaVu Sans font; SVG text is `<text>` elements.
pub fn render_plots(r: &Results, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    fonts()?;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    // Accuracy is an axis of every scatter: rows without a measured one
    // (graph-only models, models without data) are left out of the plots.
    let measured = Results {
        rows: r
            .rows
            .iter()
            .filter(|x| x.accuracy.is_some())
            .cloned()
            .collect(),
        ..r.clone()
    };
    let r = &measured;
    let mut written = Vec::new();
    for plot in Plot::ALL {
        if matches!(plot, Plot::Family) && r.family.is_empty() {
            continue;
        }
        let svg_path = dir.join(format!("{}.svg", plot.stem()));
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            plot.draw(r, &root).map_err(|message| ReportError::Plot {
                path: svg_path.clone(),
                message,
            })?;
        }
        std::fs::write(&svg_path, svg).map_err(|source| ReportError::Write {
            path: svg_path.clone(),
            source,
        })?;
        written.push(svg_path);

        let png_path = dir.join(format!("{}.png", plot.stem()));
        {
            let root = BitMapBackend::new(&png_path, SIZE).into_drawing_area();
            plot.draw(r, &root).map_err(|message| ReportError::Plot {
                path: png_path.clone(),
                message,
            })?;
        }
        written.push(png_path);
    }
    Ok(written)
}
