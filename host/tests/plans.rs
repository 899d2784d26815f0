//! Compiled plans of the bundled models against tract's f32 reference, on all
//! 10,000 test images: accuracy per precision, agreement, plan size.

use std::path::{Path, PathBuf};

use edgefit::compile::{compile, CompiledPlan};
use edgefit::data::{bundled_data_dir, load_idx_dataset, Dataset};
use edgefit::evaluate::{agreement, evaluate};
use edgefit::import::{import_onnx, ImportOptions, ImportedModel};
use edgefit::inspect_plan::inspect_plan;
use edgefit::quant::calibrate::CalibrationMethod;
use edgefit::quant::{calibrate_graph, synthetic_samples};
use edgefit::reference::TractReference;
use edgefit::runner::{PlanRunner, Runner};
use edgefit_engine::Precision;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn int8_plan(path: &Path, model: &ImportedModel, method: CalibrationMethod) -> CompiledPlan {
    let mut calib = load_idx_dataset(&bundled_data_dir(), "calib").unwrap();
    calib.truncate(500);
    let samples: Vec<Vec<f32>> = (0..calib.len()).map(|i| calib.image_f32(i)).collect();
    let ranges = calibrate_graph(path, &model.graph, &samples, method, &mut |_, _| {}).unwrap();
    compile(&model.graph, Precision::Int8, Some(&ranges), 1).unwrap()
}

fn accuracy_and_predictions(plan: &CompiledPlan, test: &Dataset) -> (f64, Vec<usize>) {
    let mut runner = Runner::Plan(Box::new(PlanRunner::new(&plan.bytes).unwrap()));
    let r = evaluate(
        &mut runner,
        "plan".into(),
        "plan".into(),
        test,
        &mut |_, _| {},
    )
    .unwrap();
    (r.accuracy, r.predictions)
}

/// int8 within 0.5 points of tract's f32 accuracy, f16 within 0.1, the f32 plan's
/// top-1 equal to tract's on at least 99.9% of the images.
fn check_model(name: &str) {
    let path = models().join(format!("{name}.onnx"));
    let model = import_onnx(&path, &ImportOptions::default()).unwrap();
    let test = load_idx_dataset(&bundled_data_dir(), "t10k").unwrap();
    let mut tract = Runner::Tract(TractReference::load(&path, &[1, 1, 28, 28], &[]).unwrap());
    let reference = evaluate(
        &mut tract,
        "tract".into(),
        name.into(),
        &test,
        &mut |_, _| {},
    )
    .unwrap();

    let f32_plan = compile(&model.graph, Precision::F32, None, 1).unwrap();
    let (acc32, pred32) = accuracy_and_predictions(&f32_plan, &test);
    let agree = agreement(&pred32, &reference.predictions);
    assert!(
        agree >= 0.999,
        "{name}: f32 plan agrees with tract on {:.3}%",
        agree * 100.0
    );
    assert!(
        (acc32 - reference.accuracy).abs() <= 0.001,
        "{name}: f32 {acc32} vs tract {}",
        reference.accuracy
    );

    let f16_plan = compile(&model.graph, Precision::F16, None, 1).unwrap();
    let (acc16, _) = accuracy_and_predictions(&f16_plan, &test);
    assert!(
        (acc16 - reference.accuracy).abs() <= 0.001,
        "{name}: f16 {acc16} vs tract {}",
        reference.accuracy
    );

    let int8 = int8_plan(&path, &model, CalibrationMethod::MinMax);
    let (acc8, _) = accuracy_and_predictions(&int8, &test);
    assert!(
        acc8 >= reference.accuracy - 0.005,
        "{name}: int8 {acc8} vs tract {}",
        reference.accuracy
    );

    eprintln!(
        "{name}: tract {:.4}, f32 {acc32:.4} (agreement {agree:.4}), f16 {acc16:.4}, int8 {acc8:.4}",
        reference.accuracy
    );
    // The plan is its weights plus under 2%, plus its fixed-size tables (64-byte
    // header, 40 bytes per tensor, 96 per op: about 3 KiB for these models).
    for plan in [&f32_plan, &f16_plan, &int8] {
        let r = inspect_plan(name, &plan.bytes).unwrap();
        assert!(
            r.overhead_bytes <= r.weight_bytes / 50 + 4096,
            "{name}: {} overhead on {} weights",
            r.overhead_bytes,
            r.weight_bytes
        );
    }
}

#[test]
fn vgg_plans_match_the_reference() {
    check_model("vgg-fmnist");
}

#[test]
fn resnet_plans_match_the_reference() {
    check_model("resnet-fmnist");
}

/// MLPerf Tiny's ResNet-8 (32x32x3): the int8 activation arena our planner gives
/// without fusing the residual additions is exactly TFLite Micro's 49,152-byte head
/// (three live 32x32x16 tensors).
#[test]
fn mlperf_resnet8_arena() {
    let path = models().join("mlperf/resnet8.onnx");
    let model = import_onnx(&path, &ImportOptions::default()).unwrap();
    let samples = synthetic_samples(&[1, 3, 32, 32], 8, 1);
    let ranges = calibrate_graph(
        &path,
        &model.graph,
        &samples,
        CalibrationMethod::MinMax,
        &mut |_, _| {},
    )
    .unwrap();
    let plan = compile(&model.graph, Precision::Int8, Some(&ranges), 1).unwrap();
    assert_eq!(plan.summary.arena_bytes, 49_152);
    let a = edgefit::analysis::analyse(&model.graph);
    assert_eq!(a.totals.params, 77_706);
    assert_eq!(a.totals.macs, 12_501_632);
}
