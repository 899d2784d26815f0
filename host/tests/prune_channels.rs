//! Channel pruning of the bundled models: residual-coupled channels go
//! together, the pruned ONNX loads and runs in tract with the analytic
//! parameter count, and removing a channel is exactly removing its
//! contribution.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use edgefit::data::{bundled_data_dir, load_idx_dataset};
use edgefit::import::ImportOptions;
use edgefit::inspect::inspect_onnx;
use edgefit::prune::{
    load_model, prune_channels, save_model, ChannelOptions, ChannelReport, ChannelScope, PruneError,
};
use edgefit::reference::TractReference;
use tract_onnx::pb::ModelProto;

fn models() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../models")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prune-channels");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn opts(sparsity: f64) -> ChannelOptions {
    ChannelOptions {
        sparsity,
        scope: ChannelScope::Layer,
        exclude_first: false,
        exclude_last: false,
    }
}

fn dims(model: &ModelProto, tensor: &str) -> Vec<i64> {
    let g = model.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .find(|t| t.name == tensor)
        .map(|t| t.dims.clone())
        .unwrap_or_default()
}

/// Conv/Gemm weights and biases of the model, by node name: (weight dims,
/// bias length).
fn layers(model: &ModelProto) -> HashMap<String, (Vec<i64>, usize)> {
    let g = model.graph.as_ref().unwrap();
    g.node
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "Conv" | "Gemm"))
        .map(|n| {
            let w = dims(model, &n.input[1]);
            let b = n
                .input
                .get(2)
                .map_or(0, |b| dims(model, b).iter().product::<i64>() as usize);
            (n.name.clone(), (w, b))
        })
        .collect()
}

/// The parameter count the report implies: each layer's output channels
/// minus those removed from the group it writes, input channels minus those
/// removed from the group it reads.
fn analytic_params(original: &ModelProto, report: &ChannelReport) -> usize {
    let mut out_kept: HashMap<&str, usize> = HashMap::new();
    let mut in_removed: HashMap<&str, (usize, usize)> = HashMap::new();
    for g in &report.groups {
        for p in &g.producers {
            out_kept.insert(p, g.channels - g.removed.len());
        }
        for c in &g.consumers {
            in_removed.insert(&c.node, (g.removed.len(), g.channels));
        }
    }
    layers(original)
        .iter()
        .map(|(name, (w, bias))| {
            let o = out_kept
                .get(name.as_str())
                .copied()
                .unwrap_or(w[0] as usize);
            let i = w[1] as usize;
            let i = match in_removed.get(name.as_str()) {
                // Gemm: `i` features, channels x block.
                Some(&(r, c)) => i - r * (i / c),
                None => i,
            };
            let taps: usize = w[2..].iter().map(|&d| d as usize).product();
            o * i * taps + if *bias > 0 { o } else { 0 }
        })
        .sum()
}

fn run(path: &Path, images: usize) -> Vec<Vec<f32>> {
    let test = load_idx_dataset(&bundled_data_dir(), "t10k").unwrap();
    let r = TractReference::load(path, &[1, 1, 28, 28], &[]).unwrap();
    (0..images)
        .map(|i| r.run(&test.image_f32(i)).unwrap().remove(0))
        .collect()
}

/// 30% channel pruning: every residual addition adds tensors of the same
/// shape, each group's convs lose the same channels, tract loads and runs the
/// result, and its parameter count is the analytic one.
#[test]
fn thirty_percent_keeps_residuals_consistent_and_counts_match() {
    for (name, groups, coupled) in [("resnet-fmnist", 6, 3), ("vgg-fmnist", 4, 0)] {
        let src = models().join(format!("{name}.onnx"));
        let original = load_model(&src).unwrap();
        let mut model = load_model(&src).unwrap();
        let report = prune_channels(&mut model, &opts(0.3), None).unwrap();
        assert_eq!(report.groups.len(), groups, "{name}");
        assert_eq!(
            report
                .groups
                .iter()
                .filter(|g| g.producers.len() > 1)
                .count(),
            coupled,
            "{name}: groups joined by additions"
        );
        for g in &report.groups {
            assert!(g.frozen.is_none(), "{name}: {:?}", g.frozen);
            let want = (0.3 * g.channels as f64).round() as usize;
            assert_eq!(g.removed.len(), want, "{name} {:?}", g.producers);
        }
        // Residual additions: the convs feeding each one have equal outputs.
        let after = layers(&model);
        for g in &report.groups {
            let outs: Vec<i64> = g.producers.iter().map(|p| after[p].0[0]).collect();
            assert!(
                outs.iter()
                    .all(|&o| o as usize == g.channels - g.removed.len()),
                "{outs:?}"
            );
            for c in &g.consumers {
                let w = &after[&c.node].0;
                assert_eq!(
                    w[1] as usize % (g.channels - g.removed.len()),
                    0,
                    "{}",
                    c.node
                );
            }
        }
        let path = scratch(&format!("{name}-ch30.onnx"));
        save_model(&model, &path).unwrap();
        let inspected = inspect_onnx(&path, &ImportOptions::default()).unwrap();
        assert_eq!(
            inspected.totals.params_exported,
            analytic_params(&original, &report),
            "{name}"
        );
        let before = inspect_onnx(&src, &ImportOptions::default()).unwrap();
        assert!(
            inspected.totals.macs * 3 < before.totals.macs * 2,
            "{name}: MACs fall"
        );
        let out = run(&path, 5);
        assert!(out
            .iter()
            .all(|o| o.len() == 10 && o.iter().all(|v| v.is_finite())));
    }
}

/// Zero the channels pruning will remove (weights and bias of every conv in
/// the group: their outputs are then 0 after ReLU and contribute nothing):
/// the zeroed model and the pruned one compute the same logits.
#[test]
fn removing_a_silent_channel_changes_nothing() {
    for name in ["resnet-fmnist", "vgg-fmnist"] {
        let src = models().join(format!("{name}.onnx"));
        let mut probe = load_model(&src).unwrap();
        let report = prune_channels(&mut probe, &opts(0.3), None).unwrap();

        let mut silent = load_model(&src).unwrap();
        {
            let g = silent.graph.as_mut().unwrap();
            for group in &report.groups {
                for p in &group.producers {
                    let node = g.node.iter().find(|n| &n.name == p).unwrap().clone();
                    for input in node.input.iter().skip(1) {
                        let t = g.initializer.iter_mut().find(|t| &t.name == input).unwrap();
                        let per = t.dims[1..].iter().product::<i64>() as usize;
                        let mut v: Vec<f32> = t
                            .raw_data
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                            .collect();
                        if v.is_empty() {
                            v = t.float_data.clone();
                        }
                        for &c in &group.removed {
                            v[c * per..(c + 1) * per].iter_mut().for_each(|x| *x = 0.0);
                        }
                        if t.raw_data.is_empty() {
                            t.float_data = v;
                        } else {
                            t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        }
                    }
                }
            }
        }
        let silent_path = scratch(&format!("{name}-silent.onnx"));
        save_model(&silent, &silent_path).unwrap();
        let mut pruned = silent.clone();
        let again = prune_channels(&mut pruned, &opts(0.3), None).unwrap();
        for (a, b) in again.groups.iter().zip(&report.groups) {
            assert_eq!(
                a.removed, b.removed,
                "{name}: the zeroed channels rank lowest"
            );
        }
        let pruned_path = scratch(&format!("{name}-silent-pruned.onnx"));
        save_model(&pruned, &pruned_path).unwrap();
        let (want, got) = (run(&silent_path, 20), run(&pruned_path, 20));
        for (w, g) in want.iter().zip(&got) {
            for (a, b) in w.iter().zip(g) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                    "{name}: {w:?} vs {g:?}"
                );
            }
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let src = models().join("resnet-fmnist.onnx");
    let mut model = load_model(&src).unwrap();
    for s in [1.0, -0.5, f64::NAN] {
        let e = prune_channels(&mut model, &opts(s), None).unwrap_err();
        assert!(matches!(e, PruneError::BadSparsity(_)), "{e}");
    }
    // With the first and last groups excluded, the stem's group and the
    // stage-3 stream stay whole; the rest is pruned.
    let mut model = load_model(&src).unwrap();
    let o = ChannelOptions {
        exclude_first: true,
        exclude_last: true,
        ..opts(0.5)
    };
    let r = prune_channels(&mut model, &o, None).unwrap();
    let frozen: Vec<_> = r.groups.iter().filter(|g| g.frozen.is_some()).collect();
    assert_eq!(frozen.len(), 2, "{:?}", r.groups);
    assert!(frozen.iter().all(|g| g.removed.is_empty()));
    // Graph-only exports carry no weights.
    let mut graph_only = load_model(&models().join("imagenet/resnet18.onnx")).unwrap();
    let e = prune_channels(&mut graph_only, &opts(0.3), None).unwrap_err();
    assert!(matches!(e, PruneError::MissingWeights { .. }), "{e}");
}
