//! `edgefit compare`, `edgefit report` and `edgefit devices` end to end: a
//! small comparison (both bundled models, int8 dense, LAMP-50% and channels-10%, 300 test
//! images, three boards) writes the table, JSON, CSV, plots and an HTML
//! report that headless Chromium renders; merged device results keep every
//! row; bad profiles are clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgefit_e2e::{assert_fails_with, edgefit, stderr};

fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-compare-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A board too small for the dense VGG plan: 32 KiB RAM (16 KiB of it the
/// firmware's), 256 KiB flash.
fn tiny_profile(dir: &Path) -> PathBuf {
    let nrf = std::fs::read_to_string(edgefit_e2e::repo_root().join("profiles/nrf52840-dk.toml"))
        .unwrap()
        .replace("name = \"nrf52840-dk\"", "name = \"tiny-m4\"")
        .replace("ram_bytes = 262_144", "ram_bytes = 32_768")
        .replace("firmware_ram_bytes = 65_536", "firmware_ram_bytes = 16_384")
        .replace("plan_flash_bytes = 393_216", "plan_flash_bytes = 262_144")
        .replace("\nflash_bytes = 1_048_576", "\nflash_bytes = 262_144");
    let path = dir.join("tiny-m4.toml");
    std::fs::write(&path, nrf).unwrap();
    path
}

fn compare(out: &Path) -> String {
    let tiny = tiny_profile(out);
    let o = edgefit(&[
        "compare",
        "--profile",
        tiny.to_str().unwrap(),
        "--precisions",
        "int8",
        "--sparsity",
        "0,0.5",
        "--limit",
        "300",
        "--calib-samples",
        "100",
        "--profiles",
        "nrf52840-dk,rp2040-pico,this-machine,tiny-m4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Renders `html` with headless Chromium into a PNG and returns the DOM it
/// loaded.
fn chromium(html: &Path, png: &Path) -> String {
    let profile = html.with_file_name("chromium-profile");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
    ];
    let url = format!("file://{}", html.display());
    let run = |extra: &[String]| {
        Command::new("chromium")
            .args(common)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (Debian package `chromium`; scripts/test.sh installs it)")
    };
    let shot = run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1280,3000".into(),
    ]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = run(&["--dump-dom".into()]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[test]
fn compare_writes_every_output_and_chromium_renders_the_report() {
    let dir = out_dir("main");
    let text = compare(&dir);
    // Terminal: the verdict matrix at the top, a line per board, then a
    // sentence where a board's verdict differs from the one before (the
    // first board's at least).
    let matrix = &text[..text.find("\n\n").expect("a blank line after the matrix")];
    assert!(matrix.starts_with("verdicts"), "{text}");
    for p in ["nrf52840-dk", "rp2040-pico", "this-machine", "tiny-m4"] {
        assert!(
            matrix.lines().any(|l| l.trim_start().starts_with(p)),
            "{p}: {matrix}"
        );
    }
    assert!(matrix.contains("\nOn "), "{matrix}");
    assert!(
        matrix.contains('★') || matrix.contains("none fits"),
        "{matrix}"
    );
    // The seed's comparison: VGG16 and ResNet-50 at ImageNet size, from
    // their graphs, with the boards they fit.
    assert!(
        text.contains("VGG against ResNet at ImageNet size")
            && text.contains("computed from the graphs"),
        "{text}"
    );
    let vgg16 = text
        .lines()
        .find(|l| l.trim_start().starts_with("vgg16 "))
        .unwrap();
    assert!(
        vgg16.contains("138.4 M") && vgg16.contains("89%") && vgg16.contains("15.5"),
        "{vgg16}"
    );
    let resnet50 = text
        .lines()
        .find(|l| l.trim_start().starts_with("resnet50 "))
        .unwrap();
    assert!(
        resnet50.contains("25.6 M") && resnet50.contains("4.1"),
        "{resnet50}"
    );
    for f in ["results.json", "results.csv", "report.html"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let svgs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count();
    let pngs = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert!(svgs >= 4 && pngs >= 4, "{svgs} SVG, {pngs} PNG");

    // JSON: 2 models x 2 variants x 4 profiles, estimated figures labelled.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    // ... and the default channel-pruned variant: 2 models x 3 variants x 4
    // profiles. Removing channels lowers the arena; LAMP's zeros do not.
    // The tiny board's 16 KiB for plans (32 KiB less the firmware's) holds
    // none of their 25 KiB arenas whole: each variant is also tried tiled
    // for it (a row of its own there, the same accuracy: the same bytes).
    let tiled: Vec<&serde_json::Value> = rows.iter().filter(|r| !r["tiling"].is_null()).collect();
    assert_eq!(rows.len(), 24 + tiled.len());
    assert_eq!(
        tiled.len(),
        6,
        "every variant of both models tiles into 16 KiB"
    );
    for t in &tiled {
        assert_eq!(t["profile"], "tiny-m4");
        assert!(t["fits_ram"].as_bool().unwrap(), "{t}");
        assert!(t["variant"].as_str().unwrap().contains(", tiled, "), "{t}");
        assert_eq!(t["tiling"]["extra_macs_percent"], 0.0);
        let whole = rows
            .iter()
            .find(|r| {
                r["profile"] == "tiny-m4"
                    && r["model"] == t["model"]
                    && t["variant"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{},", r["variant"].as_str().unwrap()))
            })
            .unwrap();
        assert!(!whole["fits_ram"].as_bool().unwrap());
        assert_eq!(whole["accuracy"], t["accuracy"]);
        assert!(t["arena_bytes"].as_u64() < whole["arena_bytes"].as_u64());
    }
    let ram = |model: &str, variant: &str| {
        rows.iter()
            .find(|r| {
                r["profile"] == "nrf52840-dk" && r["model"] == model && r["variant"] == variant
            })
            .unwrap()["arena_bytes"]
            .as_u64()
            .unwrap()
    };
    for m in ["vgg-fmnist", "resnet-fmnist"] {
        assert!(ram(m, "int8 channels 10%") < ram(m, "int8"), "{m}");
        assert_eq!(ram(m, "int8 LAMP 50%"), ram(m, "int8"), "{m}");
    }
    let on = |p: &'static str| rows.iter().filter(move |r| r["profile"] == p);
    // Estimated figures name what estimated them.
    assert!(on("nrf52840-dk").all(|r| r["energy_source"]
        .as_str()
        .unwrap()
        .starts_with("estimated (the profile's typical active power, ")));
    assert!(
        on("nrf52840-dk").all(|r| r["accuracy_per_watt_source"] == r["energy_source"]
            && r["accuracy_source"] == "measured on 300 test images")
    );
    assert!(on("this-machine").all(|r| r["latency_source"] == "measured on this host"));
    assert!(on("rp2040-pico").all(|r| r["latency_source"]
        .as_str()
        .unwrap()
        .starts_with("estimated")));
    // Margins are the limit minus the need, to the byte; negative = shortfall.
    for r in rows {
        let (ram, limit) = (
            r["peak_ram_bytes"].as_i64().unwrap(),
            r["ram_limit_bytes"].as_i64().unwrap(),
        );
        assert_eq!(r["ram_margin_bytes"].as_i64().unwrap(), limit - ram);
        assert_eq!(r["fits_ram"].as_bool().unwrap(), limit >= ram);
        let (plan, flash) = (
            r["plan_bytes"].as_i64().unwrap(),
            r["flash_limit_bytes"].as_i64().unwrap(),
        );
        assert_eq!(r["flash_margin_bytes"].as_i64().unwrap(), flash - plan);
    }
    // The dense VGG int8 plan needs more flash than tiny-m4 has: marked
    // not fitting, with the exact shortfall, in JSON, CSV and HTML.
    let vgg = rows
        .iter()
        .find(|r| r["profile"] == "tiny-m4" && r["model"] == "vgg-fmnist" && r["variant"] == "int8")
        .unwrap();
    let shortfall = vgg["plan_bytes"].as_i64().unwrap() - 262_144;
    assert!(shortfall > 0);
    assert_eq!(vgg["fits_flash"], false);
    assert_eq!(vgg["flash_margin_bytes"].as_i64().unwrap(), -shortfall);
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + rows.len(), "{csv}");
    assert!(csv.contains(&format!(",{},", -shortfall)), "{csv}");
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let grouped = |n: i64| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    assert!(
        html.contains(&grouped(shortfall)) || html.contains(&shortfall.to_string()),
        "shortfall {shortfall} not in the HTML"
    );
    assert!(csv.contains("estimated"));

    // Chromium loads the page (no network: every figure inline) and shows
    // the plots and the verdicts.
    let png = dir.join("report.png");
    let dom = chromium(&dir.join("report.html"), &png);
    assert!(dom.contains("id=\"verdicts\""), "no verdicts");
    assert!(dom.contains("id=\"seed\""), "no seed comparison");
    assert!(dom.matches("<svg").count() >= 4, "plots missing");
    assert!(dom.contains("On nrf52840-dk,"));
    assert!(dom.contains("estimated"));
    let size = std::fs::metadata(&png).unwrap().len();
    assert!(size > 50_000, "screenshot of {size} bytes");
    let _ = std::fs::copy(
        &png,
        std::env::temp_dir().join("edgefit-report-screenshot.png"),
    );

    // `edgefit report` regenerates the same from the JSON, and merges two
    // devices' results without losing rows.
    let mut other: serde_json::Value = json.clone();
    for r in other["rows"].as_array_mut().unwrap() {
        r["device"] = "qemu mps2-an386 (test copy)".into();
    }
    let second = dir.join("other.json");
    std::fs::write(&second, serde_json::to_string(&other).unwrap()).unwrap();
    let merged = dir.join("merged");
    let o = edgefit(&[
        "report",
        dir.join("results.json").to_str().unwrap(),
        second.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(m["rows"].as_array().unwrap().len(), 2 * rows.len());
    assert!(merged.join("report.html").is_file());
}

#[test]
fn devices_lists_profiles_and_bad_profiles_are_clear_errors() {
    let o = edgefit(&["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for p in [
        "qemu-mps2-an386",
        "stm32f746-disco",
        "nrf52840-dk",
        "rp2040-pico",
        "esp32-s3",
        "raspberry-pi-4",
        "raspberry-pi-5",
        "jetson-orin-nano",
        "this-machine",
    ] {
        assert!(text.contains(p), "{p}: {text}");
    }
    let dir = out_dir("profiles");
    let bad = dir.join("mine.toml");
    let good = std::fs::read_to_string(edgefit_e2e::repo_root().join("profiles/nrf52840-dk.toml"))
        .unwrap();
    let broken = good.replacen("ram_bytes = ", "ram_bytes = \"lots\" # ", 1);
    std::fs::write(&bad, &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.starts_with("ram_bytes"))
        .unwrap()
        + 1;
    assert_fails_with(
        &edgefit(&["devices", "--profile", bad.to_str().unwrap()]),
        &["mine.toml", &format!("line {line}"), "ram_bytes"],
    );
    assert_fails_with(
        &edgefit(&["compare", "--profiles", "nosuchboard", "--limit", "1"]),
        &["nosuchboard", "nrf52840-dk", "this-machine"],
    );
}

/// Graph-only ImageNet exports (no weights, 224x224 RGB, no data for them)
/// compare without error: every static figure — parameters, MACs, plan
/// size per precision as the compiler lays it out, arena, fit and margin —
/// and accuracy "not measured (no weights)"; the seed's numbers hold (VGG16
/// 138 M parameters and 15.5 GMACs, ResNet-50 25.6 M and 4.1 GMACs).
#[test]
fn graph_only_models_get_every_static_figure() {
    let out = out_dir("graph-only");
    let models = edgefit_e2e::repo_root().join("models/imagenet");
    let o = edgefit(&[
        "compare",
        models.join("vgg16.onnx").to_str().unwrap(),
        models.join("resnet50.onnx").to_str().unwrap(),
        "--precision",
        "int8",
        "--profiles",
        "raspberry-pi-5,stm32f746-disco",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = r["rows"].as_array().unwrap();
    // Two models (no pruned variants without weights) x two boards.
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for row in rows {
        assert!(row["accuracy"].is_null());
        assert_eq!(row["accuracy_source"], "not measured (no weights)");
        assert!(row["accuracy_per_watt"].is_null());
        assert!(row["plan_crc32"].is_null(), "no plan to flash");
        let (params, macs) = (
            row["params"].as_u64().unwrap(),
            row["macs"].as_u64().unwrap(),
        );
        let plan = row["plan_bytes"].as_u64().unwrap();
        // The int8 weights dominate the plan: within 5% of a byte per parameter.
        assert!(
            plan >= params && plan < params * 105 / 100,
            "{} {}: plan {plan} for {params} params",
            row["model"],
            row["variant"]
        );
        match row["model"].as_str().unwrap() {
            "vgg16" => {
                assert_eq!(params, 138_357_544);
                assert_eq!(macs / 100_000_000, 154, "{macs}");
            }
            "resnet50" => {
                assert_eq!(params / 100_000, 255, "{params}");
                assert_eq!(macs / 100_000_000, 40, "{macs}");
            }
            m => panic!("unexpected model {m}"),
        }
        assert!(row["arena_bytes"].as_u64().unwrap() > 0);
        // The Pi holds both; the STM32F746 (320 KiB RAM, 1 MiB flash)
        // holds neither network.
        let fits = row["fits_ram"].as_bool().unwrap() && row["fits_flash"].as_bool().unwrap();
        if row["profile"] == "stm32f746-disco" {
            assert!(!fits, "{row}");
            assert!(row["flash_margin_bytes"].as_i64().unwrap() < 0);
        }
    }
    for pi in rows.iter().filter(|r| r["profile"] == "raspberry-pi-5") {
        assert!(pi["fits_ram"].as_bool().unwrap() && pi["fits_flash"].as_bool().unwrap());
    }
    // The verdict names the largest of each that fits, and no winner.
    let pi = &r["verdicts"][0];
    assert_eq!(pi["profile"], "raspberry-pi-5");
    assert_eq!(pi["best"].as_array().unwrap().len(), 2);
    assert!(
        pi["sentence"].as_str().unwrap().contains("so no winner"),
        "{pi}"
    );
    // Nothing to flash was written.
    assert_eq!(std::fs::read_dir(out.join("plans")).unwrap().count(), 0);
    // The report renders without accuracy.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("not measured (no weights)"));
}

/// A family sweep: the generated graphs are ONNX files edgefit imports
/// again, every member's figures are there, and per board the largest of
/// each family that fits is named — on the nRF52840 DK a ResNet fits where
/// no VGG does (10 classes, width 1/8, 32 to 224 pixels).
#[test]
fn a_family_sweep_names_the_largest_network_each_board_holds() {
    let out = out_dir("family");
    let o = edgefit(&[
        "compare",
        "--precision",
        "int8",
        "--sparsity",
        "0",
        "--limit",
        "50",
        "--calib-samples",
        "20",
        "--profiles",
        "nrf52840-dk,raspberry-pi-5",
        "--family",
        "vgg,resnet",
        "--depths",
        "11,16,18,50",
        "--widths",
        "0.125,1",
        "--resolutions",
        "32,224",
        "--classes",
        "10",
        "--json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let family = r["family"].as_array().unwrap();
    assert_eq!(family.len(), 16, "4 depths x 2 widths x 2 resolutions");
    let files = std::fs::read_dir(out.join("family")).unwrap().count();
    assert_eq!(files, 16);
    // Each file is ONNX that inspect reads.
    let onnx = out.join("family/resnet18-w1-r224.onnx");
    let i = edgefit(&["inspect", onnx.to_str().unwrap()]);
    assert!(i.status.success(), "{}", stderr(&i));
    let fits = |name: &str, board: &str| -> Vec<String> {
        let m = family.iter().find(|m| m["name"] == name).unwrap();
        m["fits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["profile"] == board)
            .unwrap()["precisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    };
    // Every VGG is too big for the nRF52840 DK, a slim ResNet-50 is not.
    for m in family.iter().filter(|m| m["family"] == "VGG") {
        assert!(
            fits(m["name"].as_str().unwrap(), "nrf52840-dk").is_empty(),
            "{m}"
        );
    }
    // Its 245 KiB layer-by-layer arena exceeds the nRF52840 DK's 192 KiB for
    // plans; tiled, it fits.
    assert_eq!(fits("resnet50-w0.125-r224", "nrf52840-dk"), ["int8 tiled"]);
    assert_eq!(
        fits("vgg16-w1-r224", "raspberry-pi-5"),
        ["int8", "f16", "f32"]
    );
    // The report names them.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"family\""));
    assert!(
        html.contains("resnet50-w0.125-r224 int8 tiled"),
        "largest ResNet on the nRF"
    );
    assert!(html.contains("vgg16-w1-r224 f32"), "largest VGG on the Pi");
}
