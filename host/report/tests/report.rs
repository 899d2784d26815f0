//! The renderers on a small synthetic comparison: two architectures, three
//! variants, two profiles, one variant short of RAM by exactly 4,096 bytes.

use std::path::PathBuf;

use edgefit_report::{
    load_results, render_csv, render_html, render_plots, render_terminal, BestVariant, LayerMemory,
    ReportError, Results, Row, Verdict, RESULTS_SCHEMA, ROW_FIELDS,
};

fn tmp(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-report-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Variant {
    model: &'static str,
    arch: &'static str,
    variant: &'static str,
    sparsity: f64,
    plan: u64,
    ram: u64,
    acc: f64,
}

const VARIANTS: [Variant; 3] = [
    Variant {
        model: "vgg-fmnist",
        arch: "VGG",
        variant: "int8",
        sparsity: 0.0,
        plan: 180_000,
        ram: 69_632,
        acc: 0.912,
    },
    Variant {
        model: "vgg-fmnist",
        arch: "VGG",
        variant: "int8 magnitude 50%",
        sparsity: 0.5,
        plan: 110_000,
        ram: 40_000,
        acc: 0.897,
    },
    Variant {
        model: "resnet-fmnist",
        arch: "ResNet",
        variant: "int8",
        sparsity: 0.0,
        plan: 95_000,
        ram: 30_000,
        acc: 0.905,
    },
];

/// (name, RAM, flash, measured?)
const PROFILES: [(&str, u64, u64, bool); 2] = [
    ("tiny-board", 65_536, 1_048_576, false),
    ("big-board", 8 << 20, 64 << 20, true),
];

fn row(v: &Variant, p: &(&str, u64, u64, bool)) -> Row {
    let (profile, ram_limit, flash_limit, measured) = *p;
    let latency = v.plan as f64 / 1e4;
    let energy = latency * if measured { 0.5 } else { 0.02 };
    Row {
        model: v.model.into(),
        architecture: v.arch.into(),
        variant: v.variant.into(),
        precision: "int8".into(),
        sparsity: v.sparsity,
        params: v.plan - 2_000,
        macs: v.plan * 40,
        plan_bytes: v.plan,
        arena_bytes: v.ram - 1_000,
        peak_ram_bytes: v.ram,
        accuracy: Some(v.acc),
        accuracy_images: 1_000,
        accuracy_source: "measured on 1000 test images".into(),
        latency_ms: Some(latency),
        latency_source: if measured {
            "measured on this host".into()
        } else {
            "estimated (MACs at 64 MHz)".into()
        },
        energy_mj: Some(energy),
        energy_source: if measured {
            "measured (ina219)".into()
        } else {
            "estimated".into()
        },
        accuracy_per_watt: Some(v.acc / (energy / latency)),
        accuracy_per_watt_source: if measured {
            "measured (ina219)".into()
        } else {
            "estimated".into()
        },
        profile: profile.into(),
        device: None,
        fits_ram: ram_limit >= v.ram,
        ram_margin_bytes: ram_limit as i64 - v.ram as i64,
        fits_flash: flash_limit >= v.plan,
        flash_margin_bytes: flash_limit as i64 - v.plan as i64,
        ram_limit_bytes: ram_limit,
        flash_limit_bytes: flash_limit,
        plan_crc32: None,
        tiling: None,
    }
}

fn results() -> Results {
    let rows = PROFILES
        .iter()
        .flat_map(|p| VARIANTS.iter().map(move |v| row(v, p)))
        .collect();
    let verdicts = PROFILES
        .iter()
        .map(|(p, ..)| Verdict {
            profile: (*p).into(),
            best: vec![
                BestVariant {
                    architecture: "VGG".into(),
                    model: "vgg-fmnist".into(),
                    variant: "int8 magnitude 50%".into(),
                    why: "best accuracy among the variants that fit".into(),
                },
                BestVariant {
                    architecture: "ResNet".into(),
                    model: "resnet-fmnist".into(),
                    variant: "int8".into(),
                    why: "best accuracy among the variants that fit".into(),
                },
            ],
            sentence: format!("On {p}, use resnet-fmnist int8 <best> & smallest."),
            winner: Some("ResNet".into()),
        })
        .collect();
    let mut layers = Vec::new();
    for (model, sizes) in [
        (
            "vgg-fmnist int8",
            &[25_088u64, 12_544, 6_272, 3_136, 128, 10][..],
        ),
        (
            "resnet-fmnist int8",
            &[12_544, 12_544, 6_272, 6_272, 64, 10][..],
        ),
    ] {
        for (i, s) in sizes.iter().enumerate() {
            layers.push(LayerMemory {
                model: model.into(),
                layer: format!("op{i}"),
                index: i as u32,
                output_bytes: *s,
                weight_bytes: 100 * i as u64,
            });
        }
    }
    Results {
        schema: RESULTS_SCHEMA.into(),
        created: "2025-01-02T03:04:05Z".into(),
        host: "test-host".into(),
        criterion: "accuracy".into(),
        rows,
        verdicts,
        layers,
        seed: Vec::new(),
        family: Vec::new(),
    }
}

fn html_with_plots(r: &Results, dir: &std::path::Path) -> String {
    let files = render_plots(r, dir).unwrap();
    let svgs: Vec<(String, String)> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().replace('-', " "),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    render_html(r, &svgs)
}

#[test]
fn csv_has_the_row_fields_as_header_and_one_line_per_variant_and_profile() {
    let r = results();
    let csv = render_csv(&r);
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), ROW_FIELDS.join(","));
    assert_eq!(lines.count(), 6, "{csv}");
    // The header is the JSON field order too.
    let json = serde_json::to_string(&r.rows[0]).unwrap();
    let mut at = 0;
    for f in ROW_FIELDS {
        let pos = json[at..]
            .find(&format!("\"{f}\":"))
            .unwrap_or_else(|| panic!("{f} in {json}"));
        at += pos;
    }
    let fields = serde_json::to_value(&r.rows[0]).unwrap();
    assert_eq!(fields.as_object().unwrap().len(), ROW_FIELDS.len());
}

#[test]
fn csv_quotes_per_rfc4180_and_leaves_none_empty() {
    let mut r = results();
    r.rows.truncate(1);
    r.rows[0].variant = "int8, \"lamp\" 50%".into();
    r.rows[0].latency_ms = None;
    r.rows[0].device = None;
    let csv = render_csv(&r);
    let line = csv.lines().nth(1).unwrap();
    assert!(
        line.starts_with("vgg-fmnist,VGG,\"int8, \"\"lamp\"\" 50%\",int8,0,"),
        "{line}"
    );
    assert!(line.contains(",,estimated (MACs at 64 MHz),"), "{line}");
}

#[test]
fn shortfall_and_estimates_are_visible_in_json_csv_and_html() {
    let r = results();
    let short = r
        .rows
        .iter()
        .find(|row| !row.fits_ram)
        .expect("one variant does not fit");
    assert_eq!(short.ram_margin_bytes, -4096);
    let json = serde_json::to_string_pretty(&r).unwrap();
    assert!(json.contains("\"energy_source\": \"estimated\""));
    assert!(json.contains("\"ram_margin_bytes\": -4096"));

    let csv = render_csv(&r);
    let line = csv
        .lines()
        .find(|l| l.starts_with("vgg-fmnist,VGG,int8,") && l.contains("tiny-board"))
        .unwrap();
    assert!(line.contains(",false,-4096,"), "{line}");
    assert!(csv.contains(",estimated,"));

    let dir = tmp("visible");
    let html = html_with_plots(&r, &dir);
    assert!(html.contains("needs 4,096 B more"));
    assert!(
        html.contains("fits, 35,536 B spare"),
        "RAM spare of the 30,000 B variant on 65,536 B"
    );
    assert!(html.contains("(estimated)"));
    assert!(html.contains("Where the figures come from"));
    // Strings are escaped.
    assert!(html.contains("int8 &lt;best&gt; &amp; smallest."));
    assert!(!html.contains("<best>"));

    let text = render_terminal(&r);
    assert!(
        text.contains("tiny-board") && text.contains("big-board"),
        "{text}"
    );
    assert!(text.contains("RAM needs 4,096 B more"), "{text}");
    assert!(text.contains(" est") && text.contains(" meas"), "{text}");
}

#[test]
fn html_is_self_contained_with_verdicts_and_figures() {
    let r = results();
    let dir = tmp("html");
    let html = html_with_plots(&r, &dir);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("id=\"verdicts\""));
    assert!(
        html.find("id=\"verdicts\"").unwrap() < html.find("<table").unwrap(),
        "verdicts come first"
    );
    assert_eq!(html.matches("<svg").count(), 4);
    for id in [
        "plot-accuracy-size",
        "plot-accuracy-ram",
        "plot-accuracy-energy",
        "plot-layer-memory",
    ] {
        assert!(html.contains(&format!("<figure id=\"{id}\">")), "{id}");
    }
    assert!(!html.contains("<?xml"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("@import"));
    let rest = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!rest.contains("http://") && !rest.contains("https://"));
    std::fs::write(dir.join("report.html"), &html).unwrap();
}

#[test]
fn plots_are_written_as_svg_with_text_and_png() {
    let r = results();
    let dir = tmp("plots");
    let files = render_plots(&r, &dir.join("out")).unwrap();
    assert_eq!(files.len(), 8);
    for f in &files {
        assert!(f.is_file(), "{}", f.display());
        let bytes = std::fs::read(f).unwrap();
        if f.extension().unwrap() == "png" {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", f.display());
        } else {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(svg.contains("<text"), "{}", f.display());
        }
    }
    let read = |name: &str| std::fs::read_to_string(dir.join("out").join(name)).unwrap();
    let size = read("accuracy-size.svg");
    assert!(
        size.contains("tiny-board flash") && size.contains("big-board flash"),
        "limits labelled"
    );
    assert!(size.contains("VGG") && size.contains("ResNet"));
    assert!(size.contains("plan size"));
    assert!(read("accuracy-ram.svg").contains("tiny-board RAM"));
    let energy = read("accuracy-energy.svg");
    assert!(
        energy.contains("estimated") && energy.contains("measured") && energy.contains("Pareto")
    );
    assert!(read("layer-memory.svg").contains("resnet-fmnist int8"));

    // Nothing to plot is not an error.
    let empty = Results {
        rows: vec![],
        layers: vec![],
        verdicts: vec![],
        ..r
    };
    assert_eq!(render_plots(&empty, &dir.join("empty")).unwrap().len(), 8);
}

#[test]
fn merging_keeps_rows_from_every_device_and_drops_exact_duplicates() {
    let dir = tmp("merge");
    let r = results();
    let a = dir.join("a.json");
    std::fs::write(&a, serde_json::to_string_pretty(&r).unwrap()).unwrap();
    let mut other = r.clone();
    for row in &mut other.rows {
        row.device = Some("nrf52840 #2".into());
    }
    other.created = "2025-02-01T00:00:00Z".into();
    other.host = "bench".into();
    let b = dir.join("b.json");
    std::fs::write(&b, serde_json::to_string(&other).unwrap()).unwrap();

    let m = load_results(&[a.clone(), b.clone(), a.clone()]).unwrap();
    assert_eq!(m.rows.len(), 12);
    assert_eq!(m.rows.iter().filter(|r| r.device.is_some()).count(), 6);
    assert_eq!(m.verdicts.len(), 2, "identical verdicts merged");
    assert_eq!(m.layers.len(), r.layers.len());
    assert_eq!(m.created, "2025-02-01T00:00:00Z");
    assert_eq!(m.host, "test-host, bench");
    let csv = render_csv(&m);
    assert_eq!(csv.lines().count(), 13);
    // Both devices' tables are in the report.
    let html = render_html(&m, &[]);
    assert!(html.contains("device nrf52840 #2"));

    // The JSON loads as flat records (pandas: DataFrame(json["rows"])).
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    for row in v["rows"].as_array().unwrap() {
        assert!(row
            .as_object()
            .unwrap()
            .values()
            .all(|x| !x.is_object() && !x.is_array()));
    }

    let mut c = r.clone();
    c.criterion = "energy".into();
    let cp = dir.join("c.json");
    std::fs::write(&cp, serde_json::to_string(&c).unwrap()).unwrap();
    let e = load_results(&[a, cp]).unwrap_err().to_string();
    assert!(e.contains("c.json") && e.contains("energy"), "{e}");
    assert!(matches!(load_results(&[]), Err(ReportError::NoFiles)));
}

#[test]
fn malformed_or_foreign_json_is_an_error_naming_the_file_and_line() {
    let dir = tmp("bad");
    let bad = dir.join("broken.json");
    std::fs::write(
        &bad,
        "{\n  \"schema\": \"edgefit.compare.v1\",\n  \"created\": oops\n}\n",
    )
    .unwrap();
    let e = load_results(&[bad]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("broken.json") && msg.contains("line 3"),
        "{msg}"
    );
    assert!(matches!(e, ReportError::Json { line: 3, .. }));

    let mut r = results();
    r.schema = "something.else".into();
    let other = dir.join("other.json");
    std::fs::write(&other, serde_json::to_string(&r).unwrap()).unwrap();
    let msg = load_results(&[other]).unwrap_err().to_string();
    assert!(
        msg.contains("other.json") && msg.contains("something.else"),
        "{msg}"
    );

    let missing = dir.join("missing.json");
    let msg = load_results(&[missing]).unwrap_err().to_string();
    assert!(msg.contains("missing.json"), "{msg}");
}
