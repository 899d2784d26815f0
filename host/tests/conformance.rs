//! ONNX's own backend test cases (tests/conformance/onnx, made by
//! scripts/make_conformance.py from the `onnx` package) through import -> f32
//! plan -> engine. Every case must either match ONNX's expected output within
//! 1e-4 relative (plus 1e-5 absolute, for values near zero) or be refused with
//! a message; none may be accepted and wrong. The outcome of each case is pinned
//! in tests/conformance/expected.tsv (rewrite it with
//! `EDGEFIT_CONFORMANCE_WRITE=1 cargo test -p edgefit --test conformance`
//! after a deliberate change), so a case that stops passing fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgefit::compile::compile;
use edgefit::import::{import_onnx_bytes, tensor_f32, ImportOptions};
use edgefit::runner::PlanRunner;
use edgefit_engine::Precision;
use prost::Message;
use tract_onnx::pb::TensorProto;

const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

#[derive(Debug)]
enum Outcome {
    Pass,
    Refused {
        stage: &'static str,
        message: String,
    },
    Wrong(String),
}

fn read_tensor(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = TensorProto::decode(bytes.as_slice()).expect("a TensorProto");
    tensor_f32(&t).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn close(got: f32, want: f32) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= ATOL + RTOL * want.abs()
}

fn run_case(dir: &Path) -> Outcome {
    let model_path = dir.join("model.onnx");
    let bytes = std::fs::read(&model_path).expect("model.onnx");
    let model = match import_onnx_bytes(&bytes, &model_path, &ImportOptions::default()) {
        Ok(m) => m,
        Err(e) => {
            return Outcome::Refused {
                stage: "import",
                message: e.to_string(),
            }
        }
    };
    let plan = match compile(&model.graph, Precision::F32, None, 1) {
        Ok(p) => p,
        Err(e) => {
            return Outcome::Refused {
                stage: "compile",
                message: e.to_string(),
            }
        }
    };
    let (_, input) = read_tensor(&dir.join("input_0.pb"));
    let (want_shape, want) = read_tensor(&dir.join("output_0.pb"));
    let mut runner = match PlanRunner::new(&plan.bytes) {
        Ok(r) => r,
        Err(e) => return Outcome::Wrong(format!("accepted, but the plan does not load: {e}")),
    };
    let got = match runner.run(&input) {
        Ok(v) => v,
        Err(e) => return Outcome::Wrong(format!("accepted, but the run fails: {e}")),
    };
    if got.len() != want.len() {
        return Outcome::Wrong(format!(
            "{} outputs, ONNX expects {} ({want_shape:?})",
            got.len(),
            want.len()
        ));
    }
    let bad = got
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(_, (g, w))| !close(**g, **w))
        .map(|(i, (g, w))| (i, *g, *w))
        .collect::<Vec<_>>();
    match bad.first() {
        None => Outcome::Pass,
        Some((i, g, w)) => Outcome::Wrong(format!(
            "{} of {} outputs differ; first at {i}: {g} where ONNX gives {w}",
            bad.len(),
            want.len()
        )),
    }
}

fn cases() -> Vec<(String, PathBuf)> {
    let mut out = vec![];
    let onnx = root().join("onnx");
    for kind in std::fs::read_dir(&onnx).expect("tests/conformance/onnx") {
        let kind = kind.unwrap().path();
        if !kind.is_dir() {
            continue;
        }
        for case in std::fs::read_dir(&kind).unwrap() {
            let case = case.unwrap().path();
            let name = format!(
                "{}/{}",
                kind.file_name().unwrap().to_string_lossy(),
                case.file_name().unwrap().to_string_lossy()
            );
            out.push((name, case));
        }
    }
    out.sort();
    out
}

#[test]
fn onnx_backend_cases_are_exact_or_refused() {
    let cases = cases();
    assert!(cases.len() > 150, "only {} cases found", cases.len());
    let mut results = BTreeMap::new();
    let mut wrong = vec![];
    for (name, dir) in &cases {
        let outcome = run_case(dir);
        if let Outcome::Wrong(why) = &outcome {
            wrong.push(format!("{name}: {why}"));
        }
        results.insert(name.clone(), outcome);
    }
    let table: String = results
        .iter()
        .map(|(name, o)| match o {
            Outcome::Pass => format!("{name}\tpass\t\n"),
            Outcome::Refused { stage, message } => {
                format!(
                    "{name}\trefused at {stage}\t{}\n",
                    message.replace(['\t', '\n'], " ")
                )
            }
            Outcome::Wrong(why) => format!("{name}\tWRONG\t{why}\n"),
        })
        .collect();
    let expected_path = root().join("expected.tsv");
    if std::env::var_os("EDGEFIT_CONFORMANCE_WRITE").is_some() {
        std::fs::write(&expected_path, &table).unwrap();
    }
    let passed = results
        .values()
        .filter(|o| matches!(o, Outcome::Pass))
        .count();
    let refused = results.len() - passed - wrong.len();
    println!(
        "{} cases: {passed} passed, {refused} refused, {} accepted and wrong",
        results.len(),
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "accepted and wrong:\n{}",
        wrong.join("\n")
    );
    for (name, o) in &results {
        if let Outcome::Refused { message, .. } = o {
            assert!(
                !message.is_empty() && !message.contains("panicked"),
                "{name}: refusal without a reason"
            );
        }
    }
    let expected = std::fs::read_to_string(&expected_path).expect("tests/conformance/expected.tsv");
    let outcome_of = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_owned(), f.next()?.to_owned()))
            })
            .collect()
    };
    let (want, got) = (outcome_of(&expected), outcome_of(&table));
    let changed: Vec<String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: expected {:?}, now {:?}", want.get(k), got.get(k)))
        .collect();
    assert!(
        changed.is_empty(),
        "outcomes differ from tests/conformance/expected.tsv:\n{}",
        changed.join("\n")
    );
}
