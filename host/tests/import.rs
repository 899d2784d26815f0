//! Import and analysis of the bundled models and the torchvision graph-only exports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use edgefit::analysis::analyse;
use edgefit::import::{import_onnx, ImportError, ImportOptions};
use edgefit::ir::{Activation, Op};
use tract_onnx::prelude::*;

fn models() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../models")
}

fn import(rel: &str) -> edgefit::import::ImportedModel {
    import_onnx(&models().join(rel), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// torchvision's parameter counts (BatchNorm scale and shift counted) and GMACs
/// (its "GFLOPS", which count multiply-adds).
const TORCHVISION: &[(&str, usize, f64)] = &[
    ("vgg11", 132_863_336, 7.61),
    ("vgg16", 138_357_544, 15.47),
    ("vgg19", 143_667_240, 19.63),
    ("resnet18", 11_689_512, 1.81),
    ("resnet34", 21_797_672, 3.66),
    ("resnet50", 25_557_032, 4.09),
];

#[test]
fn graph_only_exports_match_torchvision_parameters_and_macs() {
    for &(name, params, gmacs) in TORCHVISION {
        let m = import(&format!("imagenet/{name}.onnx"));
        assert!(!m.graph.has_weight_values(), "{name} should be graph-only");
        let a = analyse(&m.graph);
        assert_eq!(
            a.totals.params_exported, params,
            "{name}: parameters as exported"
        );
        let measured = a.totals.macs as f64 / 1e9;
        assert!(
            (measured - gmacs).abs() / gmacs < 0.01,
            "{name}: {measured:.3} GMAC vs torchvision {gmacs}"
        );
    }
}

#[test]
fn folding_batchnorm_replaces_scale_and_shift_by_one_bias() {
    // ResNet-50: 53 BatchNorms after bias-free convs; each 2C becomes C.
    let m = import("imagenet/resnet50.onnx");
    let a = analyse(&m.graph);
    assert_eq!(a.totals.params, 25_530_472);
    let folded = m
        .graph
        .nodes
        .iter()
        .filter(|n| matches!(&n.op, Op::Conv(c) if c.folded_batchnorm))
        .count();
    assert_eq!(folded, 53);
    // VGG16 has no BatchNorm: both counts agree.
    let v = analyse(&import("imagenet/vgg16.onnx").graph);
    assert_eq!(v.totals.params, v.totals.params_exported);
}

#[test]
fn vgg16_spends_most_parameters_in_dense_layers() {
    let a = analyse(&import("imagenet/vgg16.onnx").graph);
    let share = a.totals.params_dense as f64 / a.totals.params as f64;
    assert!((0.88..0.90).contains(&share), "dense share {share}");
    assert_eq!(a.totals.params_dense, 123_642_856);
}

#[test]
fn bundled_models_plan_above_the_lower_bound() {
    for name in ["vgg-fmnist", "resnet-fmnist"] {
        let m = import(&format!("{name}.onnx"));
        assert!(m.graph.has_weight_values());
        let a = analyse(&m.graph);
        for mem in [&a.memory_int8, &a.memory_f32] {
            assert!(mem.arena_bytes >= mem.lower_bound_bytes, "{name}: {mem:?}");
            assert!(mem.lower_bound_bytes > 0);
        }
        assert_eq!(
            a.memory_f32.lower_bound_bytes,
            4 * a.memory_int8.lower_bound_bytes,
            "{name}"
        );
    }
}

#[test]
fn vgg_fmnist_is_dense_heavy_and_resnet_fmnist_is_small() {
    let vgg = analyse(&import("vgg-fmnist.onnx").graph);
    assert!(vgg.totals.params >= 400_000);
    assert!(
        vgg.totals.params_dense * 2 > vgg.totals.params,
        "most VGG parameters sit in dense layers"
    );
    let dense_layers = vgg.layers.iter().filter(|l| l.op == "Dense").count();
    assert!(dense_layers >= 2);
    let resnet = import("resnet-fmnist.onnx");
    let r = analyse(&resnet.graph);
    assert!(r.totals.params <= 100_000);
    let adds = resnet
        .graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Add { .. }))
        .count();
    assert_eq!(adds, 3, "one residual addition per block");
    assert!(resnet
        .graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::GlobalAvgPool)));
    // ReLU after each addition is fused into it (a standalone one is refused).
    assert!(resnet
        .graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Add { .. }))
        .all(|n| n.fused == ["Relu"]));
}

#[test]
fn fixture_with_depthwise_clip_matmul_and_softmax_imports() {
    let m = import("fixtures/depthwise-clip.onnx");
    let kinds: Vec<&str> = m.graph.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Conv",
            "DepthwiseConv",
            "GlobalAvgPool",
            "Reshape",
            "Dense",
            "Softmax"
        ]
    );
    let Op::Conv(dw) = &m.graph.nodes[1].op else {
        panic!("depthwise conv expected")
    };
    assert_eq!(dw.activation, Activation::Clip { min: 0.0, max: 6.0 });
    let Op::Dense(d) = &m.graph.nodes[4].op else {
        panic!("dense expected")
    };
    assert_eq!((d.in_features, d.out_features), (8, 10));
    assert!(
        d.bias.is_some(),
        "the Add after MatMul becomes the dense bias"
    );
    assert_eq!(m.graph.tensor(m.graph.output).shape, vec![1, 10]);
}

#[test]
fn input_shape_override_replans_memory() {
    let base = import("imagenet/resnet18.onnx");
    let small = import_onnx(
        &models().join("imagenet/resnet18.onnx"),
        &ImportOptions {
            input_shape: Some(vec![1, 3, 112, 112]),
        },
    )
    .unwrap();
    let (a, b) = (analyse(&base.graph), analyse(&small.graph));
    assert_eq!(a.totals.params, b.totals.params);
    assert_eq!(
        a.memory_int8.lower_bound_bytes,
        4 * b.memory_int8.lower_bound_bytes
    );
}

#[test]
fn unsupported_ops_are_named() {
    for (file, node, op) in [
        ("fixtures/resize.onnx", "upsample", "Resize"),
        ("fixtures/lstm.onnx", "lstm0", "LSTM"),
    ] {
        match import_onnx(&models().join(file), &ImportOptions::default()) {
            Err(ImportError::UnsupportedOp { node: n, op: o }) => {
                assert_eq!((n.as_str(), o.as_str()), (node, op))
            }
            other => panic!("{file}: expected an unsupported-op error, got {other:?}"),
        }
    }
}

#[test]
fn truncated_and_random_files_are_errors_not_panics() {
    let bytes = std::fs::read(models().join("resnet-fmnist.onnx")).unwrap();
    let path = Path::new("cut.onnx");
    // Every 97th cut point, plus the edges: the import must fail cleanly each time.
    for cut in (0..bytes.len()).step_by(97).chain([1, bytes.len() - 1]) {
        let result =
            edgefit::import::import_onnx_bytes(&bytes[..cut], path, &ImportOptions::default());
        assert!(
            result.is_err(),
            "truncated at {cut} of {} imported",
            bytes.len()
        );
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for len in [1usize, 7, 100, 4096, 100_000] {
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(
            edgefit::import::import_onnx_bytes(&noise, path, &ImportOptions::default()).is_err()
        );
    }
}

/// edgefit's own shape computation must agree with tract's shape inference on
/// every value edgefit keeps (the IR tensors carry their ONNX names).
#[test]
fn shapes_agree_with_tract() {
    for rel in [
        "vgg-fmnist.onnx",
        "resnet-fmnist.onnx",
        "imagenet/resnet50.onnx",
        "imagenet/vgg16.onnx",
        "fixtures/depthwise-clip.onnx",
    ] {
        let ours = import(rel);
        let path = models().join(rel);
        let proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
        let parsed = tract_onnx::onnx()
            .parse(&proto, path.parent().and_then(|p| p.to_str()))
            .unwrap();
        let mut model = parsed.model;
        model.analyse(false).unwrap();
        let by_name: HashMap<&String, &OutletId> = parsed.outlets_by_name.iter().collect();
        let mut checked = 0;
        for t in &ours.graph.tensors {
            let Some(outlet) = by_name.get(&t.name) else {
                continue;
            };
            let fact = model.outlet_fact(**outlet).unwrap();
            let shape: Vec<usize> = fact
                .shape
                .as_concrete_finite()
                .unwrap()
                .unwrap_or_else(|| panic!("{rel}: tract has no concrete shape for {}", t.name))
                .to_vec();
            assert_eq!(shape, t.shape, "{rel}: shape of {}", t.name);
            checked += 1;
        }
        assert_eq!(
            checked,
            ours.graph.tensors.len(),
            "{rel}: every tensor cross-checked"
        );
    }
}

/// A model edgefit cannot compile still declares its input: `evaluate`
/// runs it in tract with that shape.
#[test]
fn declared_input_shape_needs_no_lowering() {
    use edgefit::import::declared_input_shape;
    let resize = models().join("fixtures/resize.onnx");
    assert!(import_onnx(&resize, &ImportOptions::default()).is_err());
    assert_eq!(declared_input_shape(&resize).unwrap(), vec![1, 1, 8, 8]);
    assert_eq!(
        declared_input_shape(&models().join("resnet-fmnist.onnx")).unwrap(),
        vec![1, 1, 28, 28]
    );
}
