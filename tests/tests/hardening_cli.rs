//! Bad input at the CLI edge (issue 21's outside test run): a clear one-line
//! error and a non-zero exit, never a panic.

use std::path::PathBuf;
use std::process::Output;

use edgefit_e2e::{assert_fails_with, edgefit, model, stderr};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A usage error from clap: exit 2, no panic, the message names `needle`.
fn assert_usage_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "`{needle}` missing from: {err}");
}

#[test]
fn absurd_timeouts_are_refused_not_panicked_on() {
    let plan = tmp("any.efp");
    std::fs::write(&plan, b"").unwrap();
    let plan = plan.to_str().unwrap();
    for bad in ["inf", "1e30", "1e18", "NaN", "0", "-3", "86401", "soon"] {
        for cmd in ["flash", "bench"] {
            let timeout = format!("--timeout={bad}");
            let out = edgefit(&[cmd, "--port", "tcp:127.0.0.1:9", &timeout, plan]);
            assert_usage_error(&out, "from 0.001 to 86400");
        }
    }
}

#[test]
fn zero_limits_are_refused() {
    let onnx = model("resnet-fmnist.onnx");
    let out = edgefit(&["evaluate", onnx.to_str().unwrap(), "--limit", "0"]);
    assert_usage_error(&out, "0 images would run nothing");
    let out = edgefit(&["bench", "--port", "tcp:127.0.0.1:9", "--limit", "0"]);
    assert_usage_error(&out, "0 images would run nothing");
    let out = edgefit(&["compare", "--limit", "0"]);
    assert_usage_error(&out, "0 images would run nothing");
}

#[test]
fn flashing_an_empty_or_foreign_file_names_it() {
    let empty = tmp("empty.efp");
    std::fs::write(&empty, b"").unwrap();
    // Checked before the device is reached (nothing listens on port 9).
    let out = edgefit(&[
        "flash",
        "--port",
        "tcp:127.0.0.1:9",
        empty.to_str().unwrap(),
    ]);
    assert_fails_with(&out, &["empty.efp", "the file is empty", "not a plan"]);
    assert!(!stderr(&out).contains("tract artifact truncated"));
    let short = tmp("short.efp");
    std::fs::write(&short, b"EF").unwrap();
    let out = edgefit(&[
        "flash",
        "--port",
        "tcp:127.0.0.1:9",
        short.to_str().unwrap(),
    ]);
    assert_fails_with(&out, &["short.efp", "2 bytes: too short for a plan"]);
    let png = tmp("photo.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n....").unwrap();
    let out = edgefit(&["flash", "--port", "tcp:127.0.0.1:9", png.to_str().unwrap()]);
    assert_fails_with(&out, &["photo.png", "not an edgefit artifact"]);
}

#[test]
fn an_absurd_input_shape_is_refused_before_allocating() {
    let onnx = model("resnet-fmnist.onnx");
    let out_path = tmp("huge.efp");
    let compile = |shape: &str| {
        edgefit(&[
            "compile",
            onnx.to_str().unwrap(),
            "--calib",
            "synthetic",
            "--input-shape",
            shape,
            "-o",
            out_path.to_str().unwrap(),
        ])
    };
    // 10^10 elements (40 GB of f32 per sample): refused with the count.
    let out = compile("1,1,100000,100000");
    assert_fails_with(&out, &["[1, 1, 100000, 100000]", "elements"]);
    // 16 M elements each is fine, but 500 synthetic samples of them (32 GB)
    // are not.
    let out = compile("1,1,4000,4000");
    assert_fails_with(
        &out,
        &["500 synthetic samples", "2 GiB", "lower --calib-samples"],
    );
    assert!(!out_path.exists());
}

/// The plan id in a plan file's header.
fn plan_id(path: &std::path::Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    edgefit_engine::Plan::parse(&bytes).unwrap().plan_id()
}

#[test]
fn calibration_methods_give_distinct_plan_ids() {
    let onnx = model("resnet-fmnist.onnx");
    let compile = |name: &str, method: &str| {
        let out_path = tmp(name);
        let out = edgefit(&[
            "compile",
            onnx.to_str().unwrap(),
            "--calib-samples",
            "20",
            "--calib-method",
            method,
            "-o",
            out_path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        plan_id(&out_path)
    };
    let minmax = compile("minmax.efp", "minmax");
    let percentile = compile("percentile.efp", "percentile");
    assert_ne!(minmax, percentile, "two calibrations, one plan id");
    // The id stays a function of what shapes the plan.
    assert_eq!(compile("minmax-again.efp", "minmax"), minmax);
}
