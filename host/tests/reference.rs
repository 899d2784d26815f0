//! tract, edgefit's f32 reference, on the bundled models and the bundled test split.

use std::path::{Path, PathBuf};

use edgefit::data::{bundled_data_dir, load_idx_dataset};
use edgefit::reference::TractReference;

fn models() -> PathBuf {
    Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../models")
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// tract's top-1 accuracy on all 10,000 test images matches the accuracy PyTorch
/// measured after training (model card), to within 0.1 point.
#[test]
fn tract_reproduces_the_model_card_accuracy() {
    let test = load_idx_dataset(&bundled_data_dir(), "t10k").unwrap();
    for name in ["vgg-fmnist", "resnet-fmnist"] {
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(models().join(format!("{name}.json"))).unwrap())
                .unwrap();
        let expected = card["fp32_test_accuracy_pytorch"].as_f64().unwrap();
        let reference =
            TractReference::load(&models().join(format!("{name}.onnx")), &[1, 1, 28, 28], &[])
                .unwrap();
        let correct = (0..test.len())
            .filter(|&i| {
                argmax(&reference.run(&test.image_f32(i)).unwrap()[0]) == test.labels[i] as usize
            })
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        assert!(
            (accuracy - expected).abs() <= 0.001,
            "{name}: tract {accuracy:.4} vs PyTorch {expected:.4}"
        );
    }
}
