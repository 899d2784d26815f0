//! Compiled plans of the bundled models against tract's f32 reference, on all
//! 10,000 test images: accuracy per precision, agreement, plan size.

use std::path::{Path, PathBuf};

use edgefit::compile::{compile, compile_with, CompileOptions, CompiledPlan};
use edgefit::data::{bundled_data_dir, load_idx_dataset, Dataset};
use edgefit::evaluate::{agreement, evaluate};
use edgefit::import::{import_onnx, ImportOptions, ImportedModel};
use edgefit::inspect_plan::inspect_plan;
use edgefit::quant::calibrate::CalibrationMethod;
use edgefit::quant::{calibrate_graph, synthetic_samples};
use edgefit::reference::TractReference;
use edgefit::runner::{PlanRunner, Runner};
use edgefit_engine::{KernelPath, Precision};

fn models() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../models")
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

/// MLPerf Tiny's ResNet-8 (32x32x3). Without fusion our planner gives exactly
/// TFLite Micro's 49,152-byte activation head (three live 32x32x16 tensors); with
/// each residual addition fused into its conv and written over the skip tensor,
/// two: 32,768 bytes. The fused plan's outputs are byte-identical to the unfused
/// plan's.
#[test]
fn mlperf_resnet8_arena() {
    let path = models().join("mlperf/resnet8.onnx");
    let model = import_onnx(&path, &ImportOptions::default()).unwrap();
    let a = edgefit::analysis::analyse(&model.graph);
    assert_eq!(a.totals.params, 77_706);
    assert_eq!(a.totals.macs, 12_501_632);
    let samples = synthetic_samples(&[1, 3, 32, 32], 8, 1).unwrap();
    let ranges = calibrate_graph(
        &path,
        &model.graph,
        &samples,
        CalibrationMethod::MinMax,
        &mut |_, _| {},
    )
    .unwrap();
    let mcu = |fuse| CompileOptions {
        fuse_residuals: fuse,
        scratch: false,
        ..CompileOptions::default()
    };
    let unfused =
        compile_with(&model.graph, Precision::Int8, Some(&ranges), 1, mcu(false)).unwrap();
    let fused = compile_with(&model.graph, Precision::Int8, Some(&ranges), 1, mcu(true)).unwrap();
    assert_eq!(
        (unfused.summary.arena_bytes, unfused.summary.scratch_bytes),
        (49_152, 0)
    );
    assert_eq!(
        (fused.summary.arena_bytes, fused.summary.scratch_bytes),
        (32_768, 0)
    );
    // The engine's own state beside the arena: one small struct (the plan is read in place).
    let state = std::mem::size_of::<edgefit_engine::Engine>();
    assert!(state < 256, "engine state {state} bytes");
    eprintln!(
        "ResNet-8 int8: arena {} + engine state {state} bytes (TFLite Micro: 55,984)",
        fused.summary.arena_bytes
    );
    let inputs = synthetic_samples(&[1, 3, 32, 32], 20, 99).unwrap();
    let (mut u, mut f) = (
        PlanRunner::new(&unfused.bytes).unwrap(),
        PlanRunner::new(&fused.bytes).unwrap(),
    );
    for x in &inputs {
        u.run(x).unwrap();
        f.run(x).unwrap();
        assert_eq!(u.raw_output().unwrap(), f.raw_output().unwrap());
    }
}

/// Both bundled int8 plans give byte-identical outputs through the portable
/// kernels and the SIMD ones (AVX-512 VNNI where the CPU has it, and AVX2),
/// and fused residuals equal the unfused plan.
#[test]
fn int8_plans_are_bit_exact_across_kernel_paths_and_fusion() {
    let test = load_idx_dataset(&bundled_data_dir(), "t10k").unwrap();
    for name in ["vgg-fmnist", "resnet-fmnist"] {
        let path = models().join(format!("{name}.onnx"));
        let model = import_onnx(&path, &ImportOptions::default()).unwrap();
        let mut calib = load_idx_dataset(&bundled_data_dir(), "calib").unwrap();
        calib.truncate(100);
        let samples: Vec<Vec<f32>> = (0..calib.len()).map(|i| calib.image_f32(i)).collect();
        let ranges = calibrate_graph(
            &path,
            &model.graph,
            &samples,
            CalibrationMethod::MinMax,
            &mut |_, _| {},
        )
        .unwrap();
        let fused = compile(&model.graph, Precision::Int8, Some(&ranges), 1).unwrap();
        let unfused = compile_with(
            &model.graph,
            Precision::Int8,
            Some(&ranges),
            1,
            CompileOptions {
                fuse_residuals: false,
                ..CompileOptions::default()
            },
        )
        .unwrap();
        let mut simd = PlanRunner::with_kernels(&fused.bytes, KernelPath::Auto).unwrap();
        let mut portable = PlanRunner::with_kernels(&fused.bytes, KernelPath::Portable).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(simd.uses_simd(), std::is_x86_feature_detected!("avx2"));
        assert!(!portable.uses_simd());
        let mut avx2 = PlanRunner::with_kernels(&fused.bytes, KernelPath::NoAvx512).unwrap();
        let mut plain = PlanRunner::with_kernels(&unfused.bytes, KernelPath::Portable).unwrap();
        eprintln!(
            "{name}: comparing kernels {} and {} with {}",
            KernelPath::Auto.simd_name(),
            KernelPath::NoAvx512.simd_name(),
            KernelPath::Portable.simd_name()
        );
        for i in 0..300 {
            let x = test.image_f32(i);
            simd.run(&x).unwrap();
            avx2.run(&x).unwrap();
            portable.run(&x).unwrap();
            plain.run(&x).unwrap();
            assert_eq!(
                simd.raw_output().unwrap(),
                portable.raw_output().unwrap(),
                "{name} image {i}: SIMD ({}) vs portable",
                KernelPath::Auto.simd_name()
            );
            assert_eq!(
                avx2.raw_output().unwrap(),
                portable.raw_output().unwrap(),
                "{name} image {i}: SIMD ({}) vs portable",
                KernelPath::NoAvx512.simd_name()
            );
            assert_eq!(
                plain.raw_output().unwrap(),
                portable.raw_output().unwrap(),
                "{name} image {i}: fused vs unfused"
            );
        }
    }
}
