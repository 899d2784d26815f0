//! `edgefit inspect` end to end: the real binary on the bundled models and on bad input.

use edgefit_e2e::{edgefit, model};
use std::process::Output;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_the_table_totals_and_both_arenas() {
    for name in ["vgg-fmnist", "resnet-fmnist"] {
        let path = model(&format!("{name}.onnx"));
        let out = edgefit(&["inspect", path.to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{name}: {stderr}");
        for needle in [
            "params",
            "MACs",
            "int8 W",
            "act int8",
            "total",
            "dense layers",
            "arena int8",
            "lower bound",
            "arena f32",
        ] {
            assert!(
                stdout.contains(needle),
                "{name}: `{needle}` missing from\n{stdout}"
            );
        }
    }
}

#[test]
fn inspect_json_is_stable_and_consistent() {
    let path = model("vgg-fmnist.onnx");
    let out = edgefit(&["inspect", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["schema"], "edgefit.inspect.v1");
    assert_eq!(v["input"]["shape"], serde_json::json!([1, 1, 28, 28]));
    assert_eq!(v["output"]["shape"], serde_json::json!([1, 10]));
    let layers = v["layers"].as_array().unwrap();
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(sum, v["totals"]["params"].as_u64().unwrap());
    let dense = v["totals"]["params_dense"].as_u64().unwrap();
    assert!(dense * 2 > sum, "VGG's dense layers hold most parameters");
    for p in ["f32", "int8"] {
        let m = &v["memory"][p];
        assert!(m["arena_bytes"].as_u64().unwrap() >= m["lower_bound_bytes"].as_u64().unwrap());
    }
}

#[test]
fn input_shape_flag_changes_the_plan() {
    let path = model("imagenet/resnet18.onnx");
    let run = |shape: Option<&str>| {
        let mut args = vec!["inspect", "--json", path.to_str().unwrap()];
        if let Some(s) = shape {
            args.extend(["--input-shape", s]);
        }
        let out = edgefit(&args);
        assert!(out.status.success(), "{}", text(&out).1);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (full, half) = (run(None), run(Some("1,3,112,112")));
    assert_eq!(half["input"]["shape"], serde_json::json!([1, 3, 112, 112]));
    let lb = |v: &serde_json::Value| v["memory"]["int8"]["lower_bound_bytes"].as_u64().unwrap();
    assert_eq!(lb(&full), 4 * lb(&half));
}

/// One line on stderr starting with `error:`, exit status 1, no panic, no backtrace.
fn assert_clean_failure(out: &Output, must_mention: &[&str]) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    for m in must_mention {
        assert!(stderr.contains(m), "`{m}` missing from: {stderr}");
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = std::env::temp_dir().join(format!("edgefit-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let bytes = std::fs::read(model("vgg-fmnist.onnx")).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(
        &edgefit(&["inspect", truncated.to_str().unwrap()]),
        &["truncated.onnx", "not a valid ONNX model"],
    );

    let random = dir.join("random.onnx");
    let mut s = 0x853c_49e6_748f_ea9bu64;
    let noise: Vec<u8> = (0..65536)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    std::fs::write(&random, noise).unwrap();
    assert_clean_failure(
        &edgefit(&["inspect", random.to_str().unwrap()]),
        &["random.onnx", "not a valid ONNX model"],
    );

    let resize = model("fixtures/resize.onnx");
    assert_clean_failure(
        &edgefit(&["inspect", resize.to_str().unwrap()]),
        &["upsample", "Resize", "not supported", "Conv"],
    );
    let lstm = model("fixtures/lstm.onnx");
    assert_clean_failure(
        &edgefit(&["inspect", lstm.to_str().unwrap()]),
        &["lstm0", "LSTM", "not supported"],
    );

    let missing = dir.join("no-such-model.onnx");
    assert_clean_failure(
        &edgefit(&["inspect", missing.to_str().unwrap()]),
        &["no-such-model.onnx", "cannot read the file: No such file"],
    );

    std::fs::remove_dir_all(&dir).ok();
}
