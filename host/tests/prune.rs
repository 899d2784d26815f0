//! `edgefit::prune` on the bundled models: the pruned ONNX is valid (tract
//! loads and runs it), exactly as sparse as asked, and accurate.

use std::path::{Path, PathBuf};

use edgefit::data::{bundled_data_dir, load_idx_dataset};
use edgefit::prune::{
    load_model, prune_magnitude, save_model, MagnitudeOptions, PruneError, Scope,
};
use edgefit::reference::TractReference;

fn models() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../models")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prune");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

fn accuracy(model: &Path, images: usize) -> f64 {
    let test = load_idx_dataset(&bundled_data_dir(), "t10k").unwrap();
    let reference = TractReference::load(model, &[1, 1, 28, 28], &[]).unwrap();
    let n = images.min(test.len());
    let correct = (0..n)
        .filter(|&i| {
            argmax(&reference.run(&test.image_f32(i)).unwrap()[0]) == test.labels[i] as usize
        })
        .count();
    correct as f64 / n as f64
}

fn opts(sparsity: f64, scope: Scope, exclude: bool) -> MagnitudeOptions {
    MagnitudeOptions {
        sparsity,
        scope,
        exclude_first: exclude,
        exclude_last: exclude,
    }
}

/// Per-layer 50% on VGG: every pruned layer exactly half zeros, the first and
/// last untouched, biases untouched, and the file re-reads with the same zeros.
#[test]
fn layer_scope_is_exact_and_the_output_is_valid_onnx() {
    let src = models().join("vgg-fmnist.onnx");
    let mut model = load_model(&src).unwrap();
    let original = load_model(&src).unwrap();
    let report = prune_magnitude(&mut model, &opts(0.5, Scope::Layer, true)).unwrap();
    assert_eq!(report.layers.len(), 6, "4 convs and 2 Gemms");
    for (i, l) in report.layers.iter().enumerate() {
        let excluded = i == 0 || i == 5;
        assert_eq!(l.excluded, excluded, "{}", l.node);
        let want = if excluded {
            l.zeros_before
        } else {
            (l.weights as f64 * 0.5).round() as usize
        };
        assert_eq!(l.zeros_after, want, "{}", l.node);
    }
    let out = scratch("vgg-layer-50.onnx");
    save_model(&model, &out).unwrap();
    let reread = load_model(&out).unwrap();
    let (g0, g1) = (original.graph.unwrap(), reread.graph.unwrap());
    assert_eq!(g0.node, g1.node, "the graph is unchanged");
    for (a, b) in g0.initializer.iter().zip(&g1.initializer) {
        let pruned = report
            .layers
            .iter()
            .any(|l| l.tensor == a.name && !l.excluded);
        assert_eq!(a.name, b.name);
        if !pruned {
            assert_eq!(a, b, "{} changed", a.name);
        }
    }
    // tract loads and runs it.
    assert!(accuracy(&out, 200) > 0.5);
}

/// LAMP at 50% keeps both bundled models within about a point of the dense
/// accuracy without any retraining (2,000 test images; the docs have the
/// full-set figures).
#[test]
fn lamp_half_sparsity_keeps_accuracy() {
    for (name, max_loss) in [("vgg-fmnist", 0.01), ("resnet-fmnist", 0.02)] {
        let src = models().join(format!("{name}.onnx"));
        let mut model = load_model(&src).unwrap();
        let report = prune_magnitude(&mut model, &opts(0.5, Scope::Lamp, false)).unwrap();
        assert!((report.pruned_sparsity() - 0.5).abs() < 1e-4, "{name}");
        let out = scratch(&format!("{name}-lamp-50.onnx"));
        save_model(&model, &out).unwrap();
        let (dense, pruned) = (accuracy(&src, 2000), accuracy(&out, 2000));
        assert!(
            dense - pruned <= max_loss,
            "{name}: {dense:.4} -> {pruned:.4}"
        );
    }
}

/// Global magnitude ranks all layers together: at 50% overall the big dense
/// layer of VGG loses more than half, the small convs less.
#[test]
fn global_scope_prunes_the_large_layer_harder() {
    let mut model = load_model(&models().join("vgg-fmnist.onnx")).unwrap();
    let report = prune_magnitude(&mut model, &opts(0.5, Scope::Global, false)).unwrap();
    assert!((report.pruned_sparsity() - 0.5).abs() < 1e-6);
    let dense = report.layers.iter().find(|l| l.weights == 401_408).unwrap();
    assert!(dense.zeros_after as f64 / dense.weights as f64 > 0.5);
}

#[test]
fn bad_requests_are_clear_errors() {
    let src = models().join("resnet-fmnist.onnx");
    let mut model = load_model(&src).unwrap();
    for s in [1.0, -0.1, f64::NAN] {
        let e = prune_magnitude(&mut model, &opts(s, Scope::Layer, false)).unwrap_err();
        assert!(matches!(e, PruneError::BadSparsity(_)), "{e}");
    }
    // Graph-only exports carry no weights.
    let mut graph_only = load_model(&models().join("imagenet/resnet18.onnx")).unwrap();
    let e = prune_magnitude(&mut graph_only, &opts(0.5, Scope::Layer, false)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PruneError::MissingWeights { .. }), "{msg}");
    assert!(msg.contains("Conv") && msg.contains("graph-only"), "{msg}");
    // Not ONNX at all.
    let e = load_model(&models().join("data/calib-indices.txt")).unwrap_err();
    assert!(matches!(e, PruneError::Decode { .. }), "{e}");
}

/// A two-point int8 sweep on 300 test images: sparsities as asked, the plan
/// agrees with its pruned f32 model, and the dense point matches the model.
#[test]
fn sweep_points_are_consistent() {
    use edgefit::sweep::{sweep_point, SweepPrune, SweepSpec};
    let dir = bundled_data_dir();
    let mut test = load_idx_dataset(&dir, "t10k").unwrap();
    test.truncate(300);
    let mut calib = load_idx_dataset(&dir, "calib").unwrap();
    calib.truncate(100);
    let calib: Vec<Vec<f32>> = (0..calib.len()).map(|i| calib.image_f32(i)).collect();
    let src = models().join("resnet-fmnist.onnx");
    let work = scratch("sweep");
    std::fs::create_dir_all(&work).unwrap();
    let source = test.to_source(&dir);
    let recipe = edgefit::data::Recipe::plain(edgefit::data::ChannelOrder::Gray);
    let test = edgefit::evaluate::EvalData {
        source: &source,
        recipe: &recipe,
        input_shape: &[1, 1, 28, 28],
        on_bad: edgefit::data::OnBadImage::Fail,
    };
    let spec = SweepSpec {
        model: &src,
        prune: SweepPrune::Magnitude {
            options: opts(0.0, Scope::Lamp, false),
            correct_bias: false,
        },
        precision: edgefit_engine::Precision::Int8,
        calib: &calib,
        test: &test,
        work_dir: &work,
    };
    let dense = sweep_point(&spec, 0.0, &mut |_, _, _| {}).unwrap();
    let half = sweep_point(&spec, 0.5, &mut |_, _, _| {}).unwrap();
    assert_eq!(dense.sparsity_achieved, 0.0);
    assert!((half.sparsity_achieved - 0.5).abs() < 1e-4);
    assert_eq!(half.nonzero_weights * 2, dense.nonzero_weights);
    assert!((dense.accuracy_f32_tract - accuracy(&src, 300)).abs() < 1e-9);
    for p in [&dense, &half] {
        assert!(p.agreement_plan_f32 > 0.97, "{p:?}");
        assert_eq!(p.arena_bytes, dense.arena_bytes);
    }
}

/// A 50% magnitude-pruned int8 plan stores its pruned layers bitmap-sparse:
/// each sparse tensor is exactly `rows * ceil(k / 8) + non-zeros` bytes, the
/// VGG plan is at least 35% smaller than dense, and on 1,000 test images
/// every way of running it (SIMD kernels on weights decoded into scratch,
/// zero-skipping kernels without scratch, portable kernels) gives the bytes
/// of the dense plan of the same weights.
#[test]
fn sparse_plans_are_smaller_and_bit_exact() {
    use edgefit::compile::{compile_with, CompileOptions};
    use edgefit::import::{import_onnx, ImportOptions};
    use edgefit::quant::calibrate::CalibrationMethod;
    use edgefit::quant::calibrate_graph;
    use edgefit::runner::PlanRunner;
    use edgefit_engine::{Encoding, KernelPath, Plan, Precision};

    let test = load_idx_dataset(&bundled_data_dir(), "t10k").unwrap();
    let mut calib = load_idx_dataset(&bundled_data_dir(), "calib").unwrap();
    calib.truncate(100);
    let samples: Vec<Vec<f32>> = (0..calib.len()).map(|i| calib.image_f32(i)).collect();
    for (name, min_saving) in [("vgg-fmnist", 0.35), ("resnet-fmnist", 0.33)] {
        let mut model = load_model(&models().join(format!("{name}.onnx"))).unwrap();
        prune_magnitude(&mut model, &opts(0.5, Scope::Layer, false)).unwrap();
        let path = scratch(&format!("{name}-layer-50.onnx"));
        save_model(&model, &path).unwrap();
        let graph = import_onnx(&path, &ImportOptions::default()).unwrap().graph;
        let ranges = calibrate_graph(
            &path,
            &graph,
            &samples,
            CalibrationMethod::MinMax,
            &mut |_, _| {},
        )
        .unwrap();
        let plan = |sparse_weights, scratch| {
            let options = CompileOptions {
                sparse_weights,
                scratch,
                ..CompileOptions::default()
            };
            compile_with(&graph, Precision::Int8, Some(&ranges), 1, options).unwrap()
        };
        let (dense, sparse, sparse_mcu) = (plan(false, true), plan(true, true), plan(true, false));
        assert_eq!(dense.summary.sparse_tensors, 0);
        assert!(
            sparse.summary.sparse_tensors >= sparse.summary.weight_tensors - 1,
            "{name}"
        );

        // Sizes: the encoding's own formula, tensor by tensor.
        let (pd, ps) = (
            Plan::parse(&dense.bytes).unwrap(),
            Plan::parse(&sparse.bytes).unwrap(),
        );
        for i in 0..pd.header().tensor_count {
            // Same graph, same tensor order: tensor i is the same in both.
            let (td, ts) = (pd.tensor(i).unwrap(), ps.tensor(i).unwrap());
            if ts.encoding == Encoding::BitmapRows {
                let w = pd.weight_bytes(&td).unwrap();
                let rows = td.dims[0] as usize;
                let nnz = w.iter().filter(|&&v| v != 0).count();
                assert_eq!(
                    ts.length as usize,
                    rows * (w.len() / rows).div_ceil(8) + nnz
                );
            }
        }
        let saving = 1.0 - sparse.bytes.len() as f64 / dense.bytes.len() as f64;
        eprintln!(
            "{name}: sparse {} vs dense {} bytes, {:.1}% smaller",
            sparse.bytes.len(),
            dense.bytes.len(),
            100.0 * saving
        );
        assert!(
            saving >= min_saving,
            "{name}: sparse {} vs dense {} bytes, {:.1}% smaller",
            sparse.bytes.len(),
            dense.bytes.len(),
            100.0 * saving
        );
        assert_eq!(sparse_mcu.bytes.len(), sparse.bytes.len());

        let mut reference = PlanRunner::with_kernels(&dense.bytes, KernelPath::Portable).unwrap();
        let mut runs = [
            PlanRunner::with_kernels(&sparse.bytes, KernelPath::Auto).unwrap(),
            PlanRunner::with_kernels(&sparse.bytes, KernelPath::Portable).unwrap(),
            PlanRunner::with_kernels(&sparse_mcu.bytes, KernelPath::Auto).unwrap(),
        ];
        for i in 0..1000 {
            let x = test.image_f32(i);
            reference.run(&x).unwrap();
            for (k, r) in runs.iter_mut().enumerate() {
                r.run(&x).unwrap();
                assert_eq!(
                    r.raw_output().unwrap(),
                    reference.raw_output().unwrap(),
                    "{name} image {i} run {k}"
                );
            }
        }
    }
}

/// Bias correction after LAMP 50% on ResNet: the weights are those of the
/// uncorrected pruning, only biases move, and the loss stays within a point
/// (2,000 test images; the docs have the full-set figure).
#[test]
fn magnitude_bias_correction_recovers_resnet() {
    use edgefit::prune::channels::activation_means;
    use edgefit::prune::{magnitude_correction_inputs, prune_magnitude_corrected};
    let src = models().join("resnet-fmnist.onnx");
    let mut calib = load_idx_dataset(&bundled_data_dir(), "calib").unwrap();
    calib.truncate(200);
    let samples: Vec<Vec<f32>> = (0..calib.len()).map(|i| calib.image_f32(i)).collect();
    let mut plain = load_model(&src).unwrap();
    prune_magnitude(&mut plain, &opts(0.5, Scope::Lamp, false)).unwrap();
    let mut corrected = load_model(&src).unwrap();
    let names = magnitude_correction_inputs(&corrected).unwrap();
    assert!(names.contains(&"input".to_owned()), "{names:?}");
    let means = activation_means(&src, &[1, 1, 28, 28], &names, &samples).unwrap();
    prune_magnitude_corrected(&mut corrected, &opts(0.5, Scope::Lamp, false), Some(&means))
        .unwrap();
    let (gp, gc) = (
        plain.graph.as_ref().unwrap(),
        corrected.graph.as_ref().unwrap(),
    );
    let mut moved = 0;
    for (a, b) in gp.initializer.iter().zip(&gc.initializer) {
        let is_bias = gp.node.iter().any(|n| n.input.get(2) == Some(&a.name));
        if is_bias {
            moved += usize::from(a != b);
        } else {
            assert_eq!(a, b, "{}: only biases change", a.name);
        }
    }
    assert!(moved >= 5, "{moved} biases corrected");
    let out = scratch("resnet-lamp-50-corrected.onnx");
    save_model(&corrected, &out).unwrap();
    let (dense, pruned) = (accuracy(&src, 2000), accuracy(&out, 2000));
    assert!(dense - pruned <= 0.01, "{dense:.4} -> {pruned:.4}");
}
