//! The exporters' models (tests/conformance/exporters, made by
//! scripts/make_exporter_models.py: PyTorch's TorchScript exporter at opsets
//! 11-20 and its dynamo exporter, onnxsim, Keras through tf2onnx) as int8
//! plans: calibrated through tract (which must find every tensor the importer
//! made, derived ones included), the same bytes on every kernel path, and close
//! to the framework's own f32 output. The f32 plans are checked exactly by
//! tests/conformance.rs.

use std::path::{Path, PathBuf};

use edgefit::compile::compile;
use edgefit::import::{import_onnx, tensor_f32, ImportOptions};
use edgefit::quant::calibrate::CalibrationMethod;
use edgefit::quant::calibrate_graph;
use edgefit::runner::PlanRunner;
use edgefit_engine::{KernelPath, Precision};
use prost::Message;
use tract_onnx::pb::TensorProto;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/exporters");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn read_tensor(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = TensorProto::decode(bytes.as_slice()).expect("a TensorProto");
    tensor_f32(&t).expect("a float tensor").1
}

/// Seeded values spread like the test input (standard normal, roughly).
fn samples(n: usize, len: usize, mut seed: u64) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed % 4001) as f32 / 1000.0 - 2.0) * 1.2
                })
                .collect()
        })
        .collect()
}

#[test]
fn exported_models_compile_to_int8_plans_close_to_the_framework() {
    let cases = cases();
    assert!(cases.len() >= 20, "only {} exporter cases", cases.len());
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let path = dir.join("model.onnx");
        let model =
            import_onnx(&path, &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let input = read_tensor(&dir.join("input_0.pb"));
        let want = read_tensor(&dir.join("output_0.pb"));
        let mut calib = samples(31, input.len(), 0x9E37_79B9 ^ name.len() as u64);
        calib.push(input.clone());
        let ranges = calibrate_graph(
            &path,
            &model.graph,
            &calib,
            CalibrationMethod::MinMax,
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{name}: calibration: {e}"));
        let plan = compile(&model.graph, Precision::Int8, Some(&ranges), 1)
            .unwrap_or_else(|e| panic!("{name}: int8 compile: {e}"));
        let mut fast = PlanRunner::new(&plan.bytes).unwrap();
        let mut portable = PlanRunner::with_kernels(&plan.bytes, KernelPath::Portable).unwrap();
        let got = fast.run(&input).unwrap();
        portable.run(&input).unwrap();
        assert_eq!(
            fast.raw_output().unwrap(),
            portable.raw_output().unwrap(),
            "{name}: kernel paths differ"
        );
        assert_eq!(got.len(), want.len(), "{name}");
        // Relative L2 error of the int8 plan against the framework's f32 output.
        let err: f32 = got.iter().zip(&want).map(|(g, w)| (g - w) * (g - w)).sum();
        let norm: f32 = want.iter().map(|w| w * w).sum();
        let rel = (err / norm).sqrt();
        eprintln!("{name}: int8 relative L2 error {rel:.4}");
        assert!(
            rel < 0.1,
            "{name}: int8 output off by {rel:.3} (relative L2)"
        );
    }
}
