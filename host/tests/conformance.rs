//! ONNX's own backend test cases (tests/conformance/onnx, made by
//! scripts/make_conformance.py from the `onnx` package) and small models from
//! the exporters users have (tests/conformance/exporters: PyTorch's TorchScript
//! and dynamo exporters, onnxsim, Keras through tf2onnx; made by
//! scripts/make_exporter_models.py) through import -> f32 plan -> engine. Every case must either match ONNX's expected output within
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

/// ONNX's cases (`onnx/<source>/<case>`) and the exporters' (`exporters/<case>`,
/// made by scripts/make_exporter_models.py, expected outputs from PyTorch or
/// TensorFlow themselves).
fn cases() -> Vec<(String, PathBuf)> {
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    };
    let name_of = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = vec![];
    for kind in subdirs(&root().join("onnx")) {
        for case in subdirs(&kind) {
            out.push((format!("{}/{}", name_of(&kind), name_of(&case)), case));
        }
    }
    for case in subdirs(&root().join("exporters")) {
        out.push((format!("exporters/{}", name_of(&case)), case));
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
    // The refusals by reason, as docs/conformance.md reports them.
    let mut reasons = BTreeMap::<&str, usize>::new();
    for o in results.values() {
        if let Outcome::Refused { message, .. } = o {
            *reasons.entry(reason_class(message)).or_default() += 1;
        }
    }
    let mut reasons: Vec<_> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (reason, n) in &reasons {
        println!("  refused {n:>3}: {reason}");
    }
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

/// A refusal's kind, for the counts in docs/conformance.md; "other" keeps the
/// table honest when a new message appears.
fn reason_class(message: &str) -> &'static str {
    const CLASSES: &[(&str, &str)] = &[
        ("plans run one image at a time", "batch other than 1"),
        ("holds a batch of", "batch other than 1"),
        (
            "only on constants (shape arithmetic)",
            "Gather, Concat or Cast of a computed tensor",
        ),
        (
            "averages over H and W",
            "ReduceMean other than over H and W of a 4-D map",
        ),
        (
            "is a constant, not computed",
            "output known at import (Shape of the input)",
        ),
        ("has unknown data type", "initializer type not read"),
        (
            "inputs of at most 4 dimensions",
            "input of more than 4 dimensions",
        ),
        (
            "tensors have at most 4 dimensions",
            "tensor of more than 4 dimensions",
        ),
        (
            "models take FLOAT (f32) inputs",
            "input type other than f32",
        ),
        (
            "reads weights and constants of type",
            "initializer type not read",
        ),
        (
            "on the model input: edgefit runs",
            "activation with no layer to fuse into",
        ),
        (
            "expects a 4-D NCHW input",
            "conv or pool on a tensor that is not 4-D",
        ),
        (
            "must be 2-D [N, features]",
            "MatMul on a tensor that is not 2-D",
        ),
        ("varies over the", "Gemm bias C that varies over the rows"),
        ("count_include_pad", "pooling attribute"),
        ("pools without dilation", "pooling attribute"),
        ("indices output", "pooling attribute"),
        (
            "the engine normalises over",
            "Softmax axis other than channels or features",
        ),
        ("computes nothing", "no computing op (Identity, Dropout)"),
        ("models with one output", "more than one output"),
        ("not produced before this node", "optional input left empty"),
        ("dimension 0 is 0", "empty tensor"),
        (
            "adding a constant",
            "Add of a constant outside a dense bias",
        ),
        (
            "must directly follow a convolution",
            "BatchNormalization not after a conv",
        ),
        (
            "must be an activation, found a constant",
            "op on a constant",
        ),
    ];
    CLASSES
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or("other", |&(_, class)| class)
}
