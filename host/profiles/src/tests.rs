use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A valid profile; tests break one line of it.
const GOOD: &str = r#"# A test board.
name = "test-board"
description = "a board for the tests"
kind = "mcu"
core = "Arm Cortex-M4F"
clock_mhz = 100
ram_bytes = 4_096
flash_bytes = 1_024
fpu = true
dsp = true
simd = "armv7e-m dsp"
gpu = false
cycles_per_mac = 2.0
cycles_per_mac_source = "made up for the tests"
spec_source = "made up for the tests"

[power]
typical_active_w = 0.5
source = "made up for the tests"

[transport]
kind = "serial"
default_port = "/dev/ttyACM0"
"#;

fn repo_profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

/// A fresh folder under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "edgefit-profiles-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to a temp file named `file` and loads it: the error text.
fn load_err(file: &str, text: &str) -> (PathBuf, String, ProfileError) {
    let path = temp_dir("bad").join(file);
    std::fs::write(&path, text).unwrap();
    let e = load_profile(&path).expect_err("should not load");
    (path.clone(), e.to_string(), e)
}

/// 1-based line of the first line of `text` starting with `prefix`.
fn line_starting(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

fn good() -> Profile {
    parse_profile(GOOD, Path::new("good.toml")).unwrap()
}

#[test]
fn every_repository_profile_loads() {
    let all = builtin_profiles(&repo_profiles()).unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    for want in [
        "esp32-s3",
        "jetson-orin-nano",
        "nrf52840-dk",
        "qemu-mps2-an386",
        "raspberry-pi-4",
        "raspberry-pi-5",
        "rp2040-pico",
        "stm32f746-disco",
        "this-machine",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Sorted by file name, and each file is named after its profile.
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for p in &all {
        let path = p.path.as_ref().unwrap();
        assert_eq!(path.file_stem().unwrap().to_str().unwrap(), p.name);
        assert!(!p.power.source.trim().is_empty(), "{}", p.name);
        assert!(p.estimated_latency_s(1_000_000) > 0.0, "{}", p.name);
        // Every file round-trips through the same parser.
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(&parse_profile(&text, path).unwrap(), p);
    }
    // The figures the brief fixed.
    let get = |n| find_profile(&all, n).unwrap();
    let q = get("qemu-mps2-an386");
    assert_eq!((q.ram_bytes, q.flash_bytes), (4_194_304, 4_194_304));
    assert_eq!(q.transport.kind, TransportKind::Qemu);
    assert_eq!(
        q.transport.default_port.as_deref(),
        Some("tcp:127.0.0.1:4545")
    );
    let s = get("stm32f746-disco");
    assert_eq!(
        (s.clock_mhz, s.ram_bytes, s.flash_bytes),
        (216, 327_680, 1_048_576)
    );
    let n = get("nrf52840-dk");
    assert_eq!(
        (n.clock_mhz, n.ram_bytes, n.flash_bytes),
        (64, 262_144, 1_048_576)
    );
    assert_eq!(n.transport.default_port.as_deref(), Some("/dev/ttyACM0"));
    let r = get("rp2040-pico");
    assert!(!r.fpu && !r.dsp && r.simd == "none");
    assert_eq!((r.ram_bytes, r.flash_bytes), (270_336, 2_097_152));
    let j = get("jetson-orin-nano");
    assert!(j.gpu && j.gpu_name.is_some() && j.kind == "linux");
    assert!(!get("raspberry-pi-4").gpu);
    assert_eq!(get("this-machine").ram_bytes, 24 << 30);
    // The host's compare test breaks `ram_bytes = ` in this file: it must be a
    // line of its own, the first such text in the file.
    let nrf = std::fs::read_to_string(repo_profiles().join("nrf52840-dk.toml")).unwrap();
    let first = nrf.find("ram_bytes = ").unwrap();
    assert!(first == 0 || nrf.as_bytes()[first - 1] == b'\n');
}

#[test]
fn fit_margins_and_shortfalls_are_exact() {
    let p = good(); // 4,096 B RAM, 1,024 B flash
    let f = p.fits(1_000, 4_000);
    assert_eq!(
        f,
        Fit {
            ram_margin: 96,
            flash_margin: 24
        }
    );
    assert!(f.fits_ram() && f.fits_flash() && f.fits());
    let f = p.fits(1_024, 4_096);
    assert_eq!(
        f,
        Fit {
            ram_margin: 0,
            flash_margin: 0
        }
    );
    assert!(f.fits());
    let f = p.fits(1_025, 4_097);
    assert_eq!(
        f,
        Fit {
            ram_margin: -1,
            flash_margin: -1
        }
    );
    assert!(!f.fits_ram() && !f.fits_flash() && !f.fits());
    let f = p.fits(0, 10_000);
    assert_eq!(
        f,
        Fit {
            ram_margin: -5_904,
            flash_margin: 1_024
        }
    );
    assert!(!f.fits_ram() && f.fits_flash());
    // Far past i64: clamped, not wrapped.
    let f = p.fits(u64::MAX, 0);
    assert_eq!(f.flash_margin, i64::MIN);
}

#[test]
fn estimates_follow_the_documented_model() {
    let p = good(); // 2 cycles/MAC at 100 MHz, 0.5 W
    let t = p.estimated_latency_s(5_000_000);
    assert!((t - 0.1).abs() < 1e-12, "{t}");
    let e = p.estimated_energy_j(t);
    assert!((e - 0.05).abs() < 1e-12, "{e}");
    assert_eq!(p.estimated_latency_s(0), 0.0);
}

#[test]
fn wrong_type_names_file_line_and_field() {
    let text = GOOD.replace("ram_bytes = 4_096", "ram_bytes = \"lots\"");
    let (path, msg, e) = load_err("x.toml", &text);
    let line = line_starting(&text, "ram_bytes");
    assert_eq!(
        msg,
        format!(
            "{} line {line}: field `ram_bytes`: invalid type: string \"lots\", expected u64",
            path.display()
        )
    );
    assert!(matches!(e, ProfileError::Parse { line: Some(l), .. } if l == line));

    // In a table, and an enum with a bad variant.
    let text = GOOD.replace("typical_active_w = 0.5", "typical_active_w = \"half\"");
    let (_, msg, _) = load_err("x.toml", &text);
    let line = line_starting(&text, "typical_active_w");
    assert!(
        msg.contains(&format!(
            "line {line}: field `power.typical_active_w`: invalid type"
        )),
        "{msg}"
    );
    let text = GOOD.replace("kind = \"serial\"", "kind = \"carrier-pigeon\"");
    let (_, msg, _) = load_err("x.toml", &text);
    let line = line_starting(&text, "kind = \"carrier");
    assert!(
        msg.contains(&format!(
            "line {line}: field `transport.kind`: unknown variant `carrier-pigeon`"
        )),
        "{msg}"
    );
}

#[test]
fn missing_field_names_file_and_field() {
    let text = GOOD.replace("core = \"Arm Cortex-M4F\"\n", "");
    let (path, msg, _) = load_err("missing.toml", &text);
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains("line "), "{msg}");
    assert!(msg.contains("field `core`: missing field `core`"), "{msg}");

    // In a table: the line of its header.
    let text = GOOD.replace(
        "source = \"made up for the tests\"\n\n[transport]",
        "\n[transport]",
    );
    let (_, msg, _) = load_err("missing.toml", &text);
    let line = line_starting(&text, "[power]");
    assert!(
        msg.contains(&format!(
            "line {line}: field `power.source`: missing field `source`"
        )),
        "{msg}"
    );
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let text = GOOD.replace("gpu = false\n", "gpu = false\ncolour = \"red\"\n");
    let (path, msg, _) = load_err("unknown.toml", &text);
    let line = line_starting(&text, "colour");
    assert!(
        msg.starts_with(&format!(
            "{} line {line}: field `colour`: unknown field `colour`",
            path.display()
        )),
        "{msg}"
    );
    let text = GOOD.replace("[power]\n", "[power]\nvolts = 3.3\n");
    let (_, msg, _) = load_err("unknown.toml", &text);
    let line = line_starting(&text, "volts");
    assert!(
        msg.contains(&format!(
            "line {line}: field `power.volts`: unknown field `volts`"
        )),
        "{msg}"
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let text = GOOD.replace("clock_mhz = 100", "clock_mhz = 100 MHz");
    let (path, msg, e) = load_err("syntax.toml", &text);
    let line = line_starting(&text, "clock_mhz");
    assert!(
        msg.starts_with(&format!(
            "{} line {line}: field `clock_mhz`: ",
            path.display()
        )),
        "{msg}"
    );
    assert!(matches!(e, ProfileError::Parse { line: Some(l), .. } if l == line));

    let text = GOOD.replace(
        "description = \"a board for the tests\"",
        "description = \"unterminated",
    );
    let (_, msg, _) = load_err("syntax.toml", &text);
    let line = line_starting(&text, "description");
    assert!(msg.contains(&format!(" line {line}")), "{msg}");

    let text = GOOD.replace("[transport]", "[transport");
    let (_, msg, _) = load_err("syntax.toml", &text);
    let line = line_starting(&text, "[transport");
    assert!(msg.contains(&format!(" line {line}: ")), "{msg}");
}

#[test]
fn validation_failure_names_file_line_and_field() {
    let text = GOOD.replace("ram_bytes = 4_096", "ram_bytes = 0");
    let (path, msg, e) = load_err("zero.toml", &text);
    let line = line_starting(&text, "ram_bytes");
    assert_eq!(
        msg,
        format!(
            "{} line {line}: field `ram_bytes`: must be greater than 0",
            path.display()
        )
    );
    assert!(matches!(e, ProfileError::Invalid { .. }));

    for (from, to, field) in [
        ("flash_bytes = 1_024", "flash_bytes = 0", "flash_bytes"),
        ("clock_mhz = 100", "clock_mhz = 0", "clock_mhz"),
        ("name = \"test-board\"", "name = \"\"", "name"),
        ("name = \"test-board\"", "name = \"two words\"", "name"),
        (
            "cycles_per_mac = 2.0",
            "cycles_per_mac = nan",
            "cycles_per_mac",
        ),
        (
            "typical_active_w = 0.5",
            "typical_active_w = 0.0",
            "power.typical_active_w",
        ),
        (
            "typical_active_w = 0.5",
            "typical_active_w = -1.0",
            "power.typical_active_w",
        ),
        (
            "source = \"made up for the tests\"\n\n[transport]",
            "source = \" \"\n\n[transport]",
            "power.source",
        ),
        (
            "gpu = false",
            "gpu = false\ngpu_name = \"none\"",
            "gpu_name",
        ),
    ] {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        let (_, msg, _) = load_err("bad.toml", &text);
        let key = field.rsplit('.').next().unwrap();
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{key} = ")) && to.contains(l))
            .map(|i| i + 1)
            .unwrap();
        assert!(
            msg.contains(&format!("bad.toml line {line}: field `{field}`: ")),
            "{to}: {msg}"
        );
    }
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let all = builtin_profiles(&repo_profiles()).unwrap();
    let e = find_profile(&all, "nosuchboard").unwrap_err().to_string();
    assert!(e.contains("nosuchboard"), "{e}");
    for p in &all {
        assert!(e.contains(&p.name), "{e}");
    }
    assert_eq!(
        find_profile(&all, "nrf52840-dk").unwrap().name,
        "nrf52840-dk"
    );
}

#[test]
fn folders_sort_and_reject_duplicates_and_emptiness() {
    let dir = temp_dir("dir");
    assert!(matches!(
        builtin_profiles(&dir),
        Err(ProfileError::Empty { .. })
    ));
    assert!(matches!(
        builtin_profiles(&dir.join("absent")),
        Err(ProfileError::ReadDir { .. })
    ));
    std::fs::write(dir.join("b.toml"), GOOD.replace("test-board", "b")).unwrap();
    std::fs::write(dir.join("a.toml"), GOOD.replace("test-board", "a")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a profile").unwrap();
    let all = builtin_profiles(&dir).unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    std::fs::write(dir.join("c.toml"), GOOD.replace("test-board", "a")).unwrap();
    let e = builtin_profiles(&dir).unwrap_err().to_string();
    assert!(
        e.contains("`a`") && e.contains("a.toml") && e.contains("c.toml"),
        "{e}"
    );
    // A bad file among good ones is named.
    std::fs::write(dir.join("c.toml"), "name = ").unwrap();
    let e = builtin_profiles(&dir).unwrap_err().to_string();
    assert!(e.contains("c.toml line 1"), "{e}");
}

#[test]
fn kinds_compare_with_strings_and_pad() {
    let p = good();
    assert!(p.kind == "mcu" && p.kind != "linux");
    assert_eq!(format!("[{:<6}]", p.kind), "[mcu   ]");
    assert_eq!(format!("{}", p.transport.kind), "serial");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["kind"], "mcu");
    assert_eq!(json["transport"]["kind"], "serial");
    assert_eq!(json["power"]["typical_active_w"], 0.5);
    assert!(
        json.get("path").is_none() && json.get("gpu_name").is_none(),
        "{json}"
    );
}

#[test]
fn broken_copy_of_a_repository_profile_is_located() {
    // What the host's end-to-end test does to a copy of a shipped profile.
    let good = std::fs::read_to_string(repo_profiles().join("nrf52840-dk.toml")).unwrap();
    let broken = good.replacen("ram_bytes = ", "ram_bytes = \"lots\" # ", 1);
    let (path, msg, _) = load_err("mine.toml", &broken);
    let line = line_starting(&broken, "ram_bytes");
    assert_eq!(
        msg,
        format!(
            "{} line {line}: field `ram_bytes`: invalid type: string \"lots\", expected u64",
            path.display()
        )
    );
}
