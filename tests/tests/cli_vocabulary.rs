//! One CLI vocabulary: `-o/--out` for every output, list flags under one
//! name, the `--port` group wherever a device is reached, `--json` on the
//! commands that report, an example in every subcommand's help, exit codes
//! 0 / 1 (the command failed) / 2 (usage); the old spellings still parse.

use std::process::{Command, Output};

use edgefit_e2e::{edgefit_bin, model};
use serde_json::Value;

fn edgefit(args: &[&str]) -> Output {
    Command::new(edgefit_bin())
        .args(args)
        .output()
        .expect("run edgefit")
}

fn code(args: &[&str]) -> i32 {
    edgefit(args).status.code().expect("exit code")
}

const SUBCOMMANDS: &[&str] = &[
    "compare",
    "devices",
    "report",
    "inspect",
    "compile",
    "evaluate",
    "preprocess",
    "speed",
    "flash",
    "bench",
    "prune",
    "sweep",
    "mlperf-dataset",
    "flash-firmware",
];

#[test]
fn every_subcommand_shows_an_example() {
    for c in SUBCOMMANDS {
        let out = edgefit(&[c, "--help"]);
        assert!(out.status.success(), "{c} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("\nExample") && help.contains(&format!("edgefit {c} ")),
            "{c}: no example in --help:\n{help}"
        );
    }
}

#[test]
fn new_and_old_spellings_parse_and_exit_codes_say_which_failed() {
    // Usage errors exit 2; a command that parses and then fails exits 1.
    assert_eq!(code(&["compile", "--no-such-flag"]), 2);
    assert_eq!(code(&["compile", "missing.onnx", "-o", "x.efp"]), 1);
    assert_eq!(code(&["compile", "missing.onnx", "--out", "x.efp"]), 1);
    assert_eq!(code(&["compile", "missing.onnx", "--output", "x.efp"]), 1);
    assert_eq!(
        code(&["prune", "missing.onnx", "--sparsity", "0.5", "-o", "x.onnx"]),
        1
    );
    assert_eq!(
        code(&[
            "prune",
            "missing.onnx",
            "--sparsity",
            "0.5",
            "--output",
            "x.onnx"
        ]),
        1
    );
    for flag in ["--precision", "--precisions"] {
        assert_eq!(
            code(&["speed", "missing.onnx", flag, "int8,f32"]),
            1,
            "{flag}"
        );
        assert_eq!(
            code(&["compare", "--profiles", "no-such-board", flag, "int8"]),
            1,
            "{flag}"
        );
    }
    // compare takes the whole --port group (--timeout included).
    assert_eq!(
        code(&[
            "compare",
            "--profiles",
            "no-such-board",
            "--port",
            "tcp:127.0.0.1:9",
            "--timeout",
            "5"
        ]),
        1
    );
    // A plan beside --local was silently ignored: now a usage error.
    assert_eq!(code(&["bench", "--local", "a.efp", "b.efp"]), 2);
}

#[test]
fn compile_reports_as_json() {
    let out_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vocab-resnet.efp");
    let out = edgefit(&[
        "compile",
        model("resnet-fmnist.onnx").to_str().unwrap(),
        "--precision",
        "f32",
        "-o",
        out_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["schema"], "edgefit.compile.v1");
    assert_eq!(v["precision"], "f32");
    assert_eq!(
        v["bytes"].as_u64(),
        Some(std::fs::metadata(&out_path).unwrap().len())
    );
    assert!(v["arena_bytes"].as_u64().unwrap() > 0);
}
