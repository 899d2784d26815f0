//! `edgefit prune` end to end.

use edgefit_e2e::{assert_fails_with, edgefit, model, stderr};

fn out_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-prune-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn prune_writes_a_model_that_inspect_reads() {
    let out = out_dir("ok").join("resnet-lamp.onnx");
    let src = model("resnet-fmnist.onnx");
    let o = edgefit(&[
        "prune",
        src.to_str().unwrap(),
        "--sparsity",
        "0.5",
        "--scope",
        "lamp",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("50.0% of the pruned layers"), "{text}");
    assert!(text.contains("/stage1/conv1/Conv"), "{text}");
    let o = edgefit(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // tract runs it; `--predictions` (used by scripts/cross_check_ort.py)
    // writes one class per image.
    let preds = out.with_extension("txt");
    let o = edgefit(&[
        "evaluate",
        out.to_str().unwrap(),
        "--limit",
        "50",
        "--predictions",
        preds.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&preds).unwrap();
    let classes: Vec<u8> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(classes.len(), 50);
    assert!(classes.iter().all(|&c| c < 10));
}

#[test]
fn bad_requests_fail_cleanly_and_write_nothing() {
    let dir = out_dir("bad");
    let out = dir.join("never.onnx");
    let (src, graph_only) = (model("vgg-fmnist.onnx"), model("imagenet/vgg11.onnx"));
    let cases = [
        (&src, "1.0", vec!["sparsity 1 is outside [0, 1)"]),
        (&graph_only, "0.5", vec!["graph-only", "Conv"]),
        // 0.999 of the stem's 144 weights rounds to all of them.
        (
            &model("resnet-fmnist.onnx"),
            "0.999",
            vec!["would remove all 144 weights of `/stem/stem.0/Conv`"],
        ),
    ];
    for (model_path, sparsity, needles) in cases {
        let o = edgefit(&[
            "prune",
            model_path.to_str().unwrap(),
            "--sparsity",
            sparsity,
            // The same fraction of every layer (LAMP, the default, would
            // spare the stem).
            "--scope",
            "layer",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_fails_with(&o, &needles);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "files left in {}: {left:?}", dir.display());
    }
}

#[test]
fn sweep_writes_csv_and_refuses_bad_requests() {
    let dir = out_dir("sweep");
    let csv = dir.join("vgg.csv");
    let src = model("vgg-fmnist.onnx");
    let src = src.to_str().unwrap();
    let o = edgefit(&[
        "sweep",
        src,
        "--sparsity",
        "0,0.5",
        "--precision",
        "f32",
        "--limit",
        "100",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("sparsity_requested,"), "{text}");
    assert!(lines[2].starts_with("0.5,0.5"), "{text}");
    assert_fails_with(
        &edgefit(&["sweep", src, "--sparsity", "0,1.5"]),
        &["sparsity 1.5 is outside [0, 1)"],
    );
    assert_fails_with(
        &edgefit(&["sweep", src, "--out", dir.join("x.txt").to_str().unwrap()]),
        &["use a .csv or .json"],
    );
}

#[test]
fn channel_pruning_shrinks_the_model_and_refuses_what_it_cannot_do() {
    let dir = out_dir("channels");
    let out = dir.join("vgg-ch30.onnx");
    let src = model("vgg-fmnist.onnx");
    let o = edgefit(&[
        "prune",
        src.to_str().unwrap(),
        "--method",
        "channels",
        "--sparsity",
        "0.3",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "channel group",
        "/classifier/classifier.1/Gemm",
        "x fewer",
        "parameters  420602 ->",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let o = edgefit(&["inspect", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Refusals write nothing.
    let never = dir.join("never.onnx");
    let never_s = never.to_str().unwrap();
    let fixture = model("fixtures/depthwise-clip.onnx");
    let src_s = src.to_str().unwrap();
    let cases: [(Vec<&str>, Vec<&str>); 2] = [
        (
            vec![
                "prune",
                fixture.to_str().unwrap(),
                "--method",
                "channels",
                "--sparsity",
                "0.3",
                "-o",
                never_s,
            ],
            vec!["no channel group can be pruned", "depthwise Conv `dw1`"],
        ),
        (
            vec![
                "prune",
                src_s,
                "--method",
                "channels",
                "--scope",
                "lamp",
                "--sparsity",
                "0.3",
                "-o",
                never_s,
            ],
            vec!["--scope layer or global"],
        ),
    ];
    for (args, needles) in cases {
        assert_fails_with(&edgefit(&args), &needles);
        assert!(!never.exists());
    }

    // Bias correction after magnitude pruning runs tract on calibration images.
    let corrected = dir.join("vgg-lamp-c.onnx");
    let o = edgefit(&[
        "prune",
        src_s,
        "--sparsity",
        "0.5",
        "--scope",
        "lamp",
        "--correct-bias",
        "--calib-samples",
        "20",
        "-o",
        corrected.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("on 20 calibration images"),
        "{}",
        stderr(&o)
    );
    assert!(corrected.is_file());

    // A channel sweep: MACs fall with the channels.
    let csv = dir.join("sweep.csv");
    let o = edgefit(&[
        "sweep",
        src_s,
        "--method",
        "channels",
        "--sparsity",
        "0,0.3",
        "--precision",
        "f32",
        "--limit",
        "50",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let macs: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(macs.len(), 2, "{text}");
    assert_eq!(macs[0], 5_032_704);
    assert!(macs[1] * 3 < macs[0] * 2, "{text}");
}

/// `edgefit prune` defaults to what loses least in this project's
/// measurements: LAMP scope with bias correction wherever calibration data
/// suit the model (the bundled images for the bundled models).
#[test]
fn defaults_are_lamp_with_bias_correction() {
    let dir = out_dir("defaults");
    let out = dir.join("p.onnx");
    let src = model("resnet-fmnist.onnx");
    let o = edgefit(&[
        "prune",
        src.to_str().unwrap(),
        "--sparsity",
        "0.5",
        "--calib-samples",
        "20",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("biases      corrected"), "{text}");
    // LAMP spreads the sparsity unevenly; layer scope would give each 50.0%.
    let table: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(table.len() > 3, "{text}");
    assert!(table.iter().any(|l| !l.contains("50.0%")), "{text}");
    let o = edgefit(&[
        "prune",
        src.to_str().unwrap(),
        "--sparsity",
        "0.5",
        "--no-correct-bias",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("biases"));
}
