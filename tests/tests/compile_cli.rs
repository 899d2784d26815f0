//! `edgefit compile`, `edgefit inspect PLAN` and `edgefit evaluate` end to end.

use edgefit_e2e::{assert_fails_with, edgefit, model, stderr};

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn compile_inspect_and_evaluate_a_plan() {
    let plan = tmp("vgg-int8.efp");
    let onnx = model("vgg-fmnist.onnx");
    let out = edgefit(&[
        "compile",
        onnx.to_str().unwrap(),
        "--calib-samples",
        "100",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("int8 plan"));

    let out = edgefit(&["inspect", "--json", plan.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "edgefit.inspect-plan.v1");
    assert_eq!(r["precision"], "int8");
    assert!(r["overhead_percent"].as_f64().unwrap() < 2.0);

    let out = edgefit(&[
        "evaluate",
        plan.to_str().unwrap(),
        "--limit",
        "300",
        "--reference",
        onnx.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["samples"], 300);
    assert!(r["accuracy"].as_f64().unwrap() > 0.85, "{r}");
    assert!(
        r["agreement_with_reference"].as_f64().unwrap() > 0.97,
        "{r}"
    );
    assert_eq!(r["latency"]["source"], "measured");
    let confusion: u64 = r["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 300);

    // A corrupted plan is refused by name.
    let mut bytes = std::fs::read(&plan).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    let bad = tmp("corrupt.efp");
    std::fs::write(&bad, &bytes).unwrap();
    assert_fails_with(
        &edgefit(&["evaluate", bad.to_str().unwrap(), "--limit", "5"]),
        &["invalid plan", "CRC"],
    );
}

#[test]
fn calibration_problems_are_clear_errors() {
    let out_path = tmp("never.efp");
    let o = out_path.to_str().unwrap();
    // 3x32x32 model, 28x28 grayscale calibration images.
    let r8 = model("mlperf/resnet8.onnx");
    assert_fails_with(
        &edgefit(&["compile", r8.to_str().unwrap(), "-o", o]),
        &["28x28", "[1, 3, 32, 32]", "--calib synthetic"],
    );
    // Missing calibration folder.
    let vgg = model("vgg-fmnist.onnx");
    assert_fails_with(
        &edgefit(&[
            "compile",
            vgg.to_str().unwrap(),
            "--calib",
            "/nonexistent/calib",
            "-o",
            o,
        ]),
        &["calibration data", "/nonexistent/calib"],
    );
    // Graph-only export: nothing to compile, and the same refusal for every
    // precision and target, before any calibration data is read.
    let g = model("imagenet/resnet18.onnx");
    let g = g.to_str().unwrap();
    for extra in [
        &["--precision", "f32"][..],
        &["--precision", "f16"],
        &["--precision", "int8"],
        &["--precision", "int8", "--calib", "synthetic"],
        &["--target", "tract"],
    ] {
        let mut args = vec!["compile", g, "-o", o];
        args.extend_from_slice(extra);
        assert_fails_with(
            &edgefit(&args),
            &["no weight values", "graph inputs", "export_params=False"],
        );
    }
    assert!(!out_path.exists(), "no output written on failure");
    // Synthetic calibration works for any input shape and says what it is for.
    let out = edgefit(&[
        "compile",
        r8.to_str().unwrap(),
        "--calib",
        "synthetic",
        "--calib-samples",
        "4",
        "-o",
        o,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not accuracy"));
}
