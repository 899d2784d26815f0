//! Your own models and data through the real binary: the bundled test split
//! as a folder of PNGs gives the same predictions as the IDX files, RGB models
//! (PyTorch NCHW and Keras NHWC exports) evaluate and calibrate on image
//! folders, NumPy arrays and CIFAR batches with a preprocessing recipe, and bad
//! data is one line naming the file.

use std::path::{Path, PathBuf};

use edgefit_e2e::{assert_fails_with, edgefit, model, stderr};
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgefit-own-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn json(args: &[&str]) -> Value {
    let out = edgefit(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)))
}

fn predictions(path: &Path) -> Vec<usize> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// The first `n` bundled test images as `dir/<label>/<index>.png`.
fn fmnist_as_pngs(dir: &Path, n: usize) -> Vec<(u32, usize)> {
    let data = edgefit_data::load_idx_dataset(&edgefit_data::bundled_data_dir(), "t10k").unwrap();
    let mut order = vec![];
    for i in 0..n {
        let label = data.labels[i] as u32;
        let class = dir.join(label.to_string());
        std::fs::create_dir_all(&class).unwrap();
        let img = image::GrayImage::from_raw(28, 28, data.image(i).to_vec()).unwrap();
        img.save(class.join(format!("{i:05}.png"))).unwrap();
        order.push((label, i));
    }
    // ImageFolder order: by class folder name, then by path.
    order.sort_by_key(|&(label, i)| (label.to_string(), i));
    order
}

#[test]
fn fmnist_as_a_png_folder_gives_the_idx_predictions_image_for_image() {
    let n = 300;
    let folder = tmp("fmnist-png");
    let order = fmnist_as_pngs(&folder, n);
    let plan = tmp("resnet-int8.efp");
    let out = edgefit(&[
        "compile",
        model("resnet-fmnist.onnx").to_str().unwrap(),
        "--calib-samples",
        "100",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let onnx = model("resnet-fmnist.onnx");
    for target in [plan.to_str().unwrap(), onnx.to_str().unwrap()] {
        let (p_idx, p_png) = (tmp("idx.txt"), tmp("png.txt"));
        let limit = n.to_string();
        let a = json(&[
            "evaluate",
            target,
            "--limit",
            &limit,
            "--json",
            "--predictions",
            p_idx.to_str().unwrap(),
        ]);
        let b = json(&[
            "evaluate",
            target,
            "--data",
            folder.to_str().unwrap(),
            "--json",
            "--predictions",
            p_png.to_str().unwrap(),
        ]);
        assert_eq!(a["correct"], b["correct"], "{target}");
        assert_eq!(b["classes"], 10);
        assert_eq!(b["class_names"][3], "3", "class names are the folder names");
        let (pi, pp) = (predictions(&p_idx), predictions(&p_png));
        for (k, &(_, i)) in order.iter().enumerate() {
            assert_eq!(pp[k], pi[i], "{target}: image {i}");
        }
        assert!(b["preprocess_us_per_image"].as_f64().unwrap() > 0.0);
    }
}

fn rgb_pattern(h: u32, w: u32, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..h * w * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

/// 30 RGB images, 16x20, PNG and JPEG, in classes `c0`..`c9`.
fn rgb_folder(dir: &Path) {
    for i in 0..30u32 {
        let class = dir.join(format!("c{}", i % 10));
        std::fs::create_dir_all(&class).unwrap();
        let img = image::RgbImage::from_raw(20, 16, rgb_pattern(16, 20, i)).unwrap();
        let ext = if i % 2 == 0 { "png" } else { "jpg" };
        img.save(class.join(format!("{i:03}.{ext}"))).unwrap();
    }
}

#[test]
fn rgb_models_evaluate_and_calibrate_on_image_folders() {
    let folder = tmp("rgb");
    rgb_folder(&folder);
    let exporters = edgefit_e2e::repo_root().join("tests/conformance/exporters");
    // A PyTorch export (1x3x12x12) and a Keras one through tf2onnx (1x12x12x3).
    for (name, extra) in [
        ("torchscript13_resnet_view", &[][..]),
        ("tf2onnx13_keras_resnet8", &["--layout", "nhwc"][..]),
    ] {
        let onnx = exporters.join(name).join("model.onnx");
        let onnx = onnx.to_str().unwrap();
        let recipe: Vec<&str> = [
            &[
                "--resize",
                "14",
                "--crop",
                "12",
                "--mean",
                "0.5,0.5,0.5",
                "--std",
                "0.25",
            ][..],
            extra,
        ]
        .concat();
        let mut args = vec![
            "evaluate",
            onnx,
            "--data",
            folder.to_str().unwrap(),
            "--json",
        ];
        args.extend(&recipe);
        let f32 = json(&args);
        assert_eq!(
            (f32["samples"].as_u64(), f32["classes"].as_u64()),
            (Some(30), Some(10))
        );
        assert!(f32["top5_accuracy"].is_number(), "{f32}");
        let pre = f32["preprocess"].as_str().unwrap();
        assert!(
            pre.contains("resize shorter side to 14") && pre.contains("centre crop 12x12"),
            "{pre}"
        );

        let plan = tmp(&format!("{name}.efp"));
        let mut args = vec![
            "compile",
            onnx,
            "--calib",
            folder.to_str().unwrap(),
            "-o",
            plan.to_str().unwrap(),
        ];
        args.extend(&recipe);
        let out = edgefit(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("30 samples from"), "{}", stderr(&out));
        let mut args = vec![
            "evaluate",
            plan.to_str().unwrap(),
            "--data",
            folder.to_str().unwrap(),
            "--reference",
            onnx,
            "--json",
        ];
        args.extend(&recipe);
        let int8 = json(&args);
        // int8 against its own f32 model, on the images it was calibrated on.
        let agree = int8["agreement_with_reference"].as_f64().unwrap();
        assert!(agree >= 0.8, "{name}: int8 agrees with f32 on {agree}");
        // The plan carries its recipe: no flags needed, the same answers.
        let bare = json(&[
            "evaluate",
            plan.to_str().unwrap(),
            "--data",
            folder.to_str().unwrap(),
            "--predictions",
            tmp("bare.txt").to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(bare["preprocess"], int8["preprocess"]);
        assert_eq!(bare["correct"], int8["correct"]);
        // bench --local: a local agent process receives the folder's images
        // preprocessed with the plan's recipe and quantised with its input
        // parameters; its outputs are the host engine's, byte for byte.
        let b = json(&[
            "bench",
            "--local",
            plan.to_str().unwrap(),
            "--data",
            folder.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(
            (b["samples"].as_u64(), b["outputs_identical"].as_u64()),
            (Some(30), Some(30))
        );
        assert_eq!(b["correct"], int8["correct"]);
        let out = edgefit(&["inspect", plan.to_str().unwrap()]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("centre crop 12x12"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );

        // Without the recipe the 16x20 images do not fit: one line, both sizes.
        assert_fails_with(
            &edgefit(&["evaluate", onnx, "--data", folder.to_str().unwrap()]),
            &["16x20", "12x12"],
        );
    }
}

fn npy<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
    edgefit_data::npy::npy_bytes(shape, data).unwrap()
}

#[test]
fn numpy_and_cifar_data_and_their_errors() {
    let onnx = edgefit_e2e::repo_root()
        .join("tests/conformance/exporters/torchscript13_resnet_mean/model.onnx");
    let onnx = onnx.to_str().unwrap();
    // uint8 (N,H,W,C) images, int64 labels.
    let dir = tmp("npy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("x.npy"),
        npy(&[8, 12, 12, 3], &rgb_pattern(8 * 12, 12, 5)),
    )
    .unwrap();
    let labels: Vec<i64> = (0..8).map(|i| i % 10).collect();
    std::fs::write(dir.join("y.npy"), npy(&[8], &labels)).unwrap();
    let r = json(&["evaluate", onnx, "--data", dir.to_str().unwrap(), "--json"]);
    assert_eq!(r["samples"], 8);
    // float32 tensors in the model's layout: no recipe.
    let x: Vec<f32> = (0..8 * 3 * 144)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    std::fs::write(dir.join("x.npy"), npy(&[8, 3, 12, 12], &x)).unwrap();
    let r = json(&["evaluate", onnx, "--data", dir.to_str().unwrap(), "--json"]);
    assert!(r["preprocess"].as_str().unwrap().starts_with("none"), "{r}");
    // A label beyond the model's 10 classes.
    let bad: Vec<i64> = vec![0, 1, 2, 12, 0, 0, 0, 0];
    std::fs::write(dir.join("y.npy"), npy(&[8], &bad)).unwrap();
    assert_fails_with(
        &edgefit(&["evaluate", onnx, "--data", dir.to_str().unwrap()]),
        &["label 12", "10 classes"],
    );
    // Mismatched lengths.
    std::fs::write(dir.join("y.npy"), npy(&[5], &bad[..5])).unwrap();
    assert_fails_with(
        &edgefit(&["evaluate", onnx, "--data", dir.to_str().unwrap()]),
        &["x.npy", "8 samples", "5 labels"],
    );

    // CIFAR-10 test batch, resized to the model's 12x12.
    let dir = tmp("cifar");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bin = vec![];
    for i in 0..20u32 {
        bin.push((i % 10) as u8);
        bin.extend(rgb_pattern(32, 32, i + 100));
    }
    std::fs::write(dir.join("test_batch.bin"), &bin).unwrap();
    let r = json(&[
        "evaluate",
        onnx,
        "--data",
        dir.to_str().unwrap(),
        "--resize",
        "12,12",
        "--json",
    ]);
    assert_eq!(r["samples"], 20);
    assert!(r["data"].as_str().unwrap().contains("CIFAR-10"), "{r}");
    std::fs::write(dir.join("test_batch.bin"), &bin[..4000]).unwrap();
    assert_fails_with(
        &edgefit(&[
            "evaluate",
            onnx,
            "--data",
            dir.to_str().unwrap(),
            "--resize",
            "12,12",
        ]),
        &["test_batch.bin", "3073-byte"],
    );

    // A 3-channel recipe for the 1-channel bundled model: both shapes named.
    assert_fails_with(
        &edgefit(&[
            "evaluate",
            model("vgg-fmnist.onnx").to_str().unwrap(),
            "--preprocess",
            "imagenet",
        ]),
        &["3 rgb", "[1, 1, 28, 28]"],
    );
}

#[test]
fn unreadable_images_fail_by_name_or_are_skipped_and_counted() {
    let folder = tmp("fmnist-bad");
    fmnist_as_pngs(&folder, 20);
    std::fs::write(folder.join("3/zz-broken.png"), b"\x89PNG\r\n\x1a\nno more").unwrap();
    let onnx = model("vgg-fmnist.onnx");
    assert_fails_with(
        &edgefit(&[
            "evaluate",
            onnx.to_str().unwrap(),
            "--data",
            folder.to_str().unwrap(),
        ]),
        &["zz-broken.png", "not a readable image"],
    );
    let r = json(&[
        "evaluate",
        onnx.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--on-bad-image",
        "skip",
        "--json",
    ]);
    assert_eq!(r["samples"], 20);
    assert_eq!(r["skipped"].as_array().unwrap().len(), 1);
}

/// compare on the user's data: a PyTorch and a Keras export, each with its
/// own recipe (flags for one, a MODEL.preprocess.toml next to the other),
/// calibrated and evaluated on an RGB image folder; the kept plans record
/// their recipes.
#[test]
fn compare_runs_on_your_own_models_and_images() {
    let folder = tmp("compare-rgb");
    rgb_folder(&folder);
    let dir = tmp("compare-models");
    std::fs::create_dir_all(&dir).unwrap();
    let exporters = edgefit_e2e::repo_root().join("tests/conformance/exporters");
    let (torch, keras) = (dir.join("torchnet.onnx"), dir.join("kerasnet.onnx"));
    std::fs::copy(
        exporters.join("torchscript13_resnet_view/model.onnx"),
        &torch,
    )
    .unwrap();
    std::fs::copy(exporters.join("tf2onnx13_keras_resnet8/model.onnx"), &keras).unwrap();
    std::fs::write(
        dir.join("kerasnet.preprocess.toml"),
        "resize = [12, 12]\nchannels = \"rgb\"\nlayout = \"nhwc\"\n",
    )
    .unwrap();
    let out = tmp("compare-out");
    let r = edgefit(&[
        "compare",
        torch.to_str().unwrap(),
        keras.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--calib",
        folder.to_str().unwrap(),
        "--resize",
        "14",
        "--crop",
        "12",
        "--precisions",
        "int8,f32",
        "--sparsity",
        "0",
        "--prune-channels",
        "0",
        "--profiles",
        "this-machine",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{json}");
    for m in ["torchnet", "kerasnet"] {
        assert!(
            rows.iter()
                .any(|r| r["model"] == m && r["accuracy"].is_number()),
            "{m}"
        );
    }
    let text = |plan: &str| {
        let o = edgefit(&["inspect", out.join("plans").join(plan).to_str().unwrap()]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(text("torchnet-int8.efp").contains("resize shorter side to 14, centre crop 12x12"));
    assert!(text("kerasnet-int8.efp").contains("resize to 12x12, RGB, x/255, NHWC"));
}

/// prune --correct-bias and sweep calibrate and evaluate on the user's images.
#[test]
fn prune_and_sweep_run_on_your_own_images() {
    let folder = tmp("sweep-rgb");
    rgb_folder(&folder);
    let onnx = edgefit_e2e::repo_root()
        .join("tests/conformance/exporters/torchscript13_resnet_view/model.onnx");
    let onnx = onnx.to_str().unwrap();
    let recipe = ["--resize", "14", "--crop", "12"];
    let pruned = tmp("pruned.onnx");
    let mut args = vec![
        "prune",
        onnx,
        "--sparsity",
        "0.5",
        "--correct-bias",
        "--calib",
        folder.to_str().unwrap(),
        "-o",
        pruned.to_str().unwrap(),
    ];
    args.extend(recipe);
    let out = edgefit(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = vec![
        "sweep",
        onnx,
        "--data",
        folder.to_str().unwrap(),
        "--calib",
        folder.to_str().unwrap(),
        "--sparsity",
        "0,0.5",
        "--correct-bias",
        "--json",
    ];
    args.extend(recipe);
    let v = json(&args);
    let points = v
        .as_array()
        .or_else(|| v["points"].as_array())
        .expect("points");
    assert_eq!(points.len(), 2, "{v}");
    // An image folder has no calibration split of its own: calibration
    // must not silently read the test images.
    let mut args = vec![
        "sweep",
        onnx,
        "--data",
        folder.to_str().unwrap(),
        "--sparsity",
        "0",
    ];
    args.extend(recipe);
    assert_fails_with(&edgefit(&args), &["--calib PATH", "test samples"]);
}

/// An ImageNet-sized model (1x3x224x224, 1,000 classes) on photos of another
/// size: the imagenet recipe (resize 256, crop 224, mean/std) recorded at
/// compile, then evaluate and bench --local with no flags; 1,000 classes
/// report per-class accuracy instead of a confusion matrix.
#[test]
fn an_imagenet_sized_model_runs_the_whole_road() {
    let folder = tmp("imagenet-photos");
    for i in 0..12u32 {
        let class = folder.join(format!("n0{:07}", 1440764 + i % 4));
        std::fs::create_dir_all(&class).unwrap();
        let (w, h) = (400 - (i % 3) * 40, 300);
        let img = image::RgbImage::from_raw(w, h, rgb_pattern(h, w, i)).unwrap();
        img.save(class.join(format!("{i}.{}", if i % 2 == 0 { "jpg" } else { "png" })))
            .unwrap();
    }
    let onnx = model("fixtures/imagenet-tiny.onnx");
    let plan = tmp("imagenet-tiny.efp");
    let out = edgefit(&[
        "compile",
        onnx.to_str().unwrap(),
        "--calib",
        folder.to_str().unwrap(),
        "--preprocess",
        "imagenet",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&[
        "evaluate",
        plan.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--reference",
        onnx.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        (r["samples"].as_u64(), r["classes"].as_u64()),
        (Some(12), Some(1000))
    );
    assert!(
        r["confusion"].is_null(),
        "no confusion matrix beyond 100 classes"
    );
    assert_eq!(r["per_class_accuracy"].as_array().unwrap().len(), 1000);
    assert!(
        r["preprocess"]
            .as_str()
            .unwrap()
            .contains("centre crop 224x224"),
        "{r}"
    );
    assert!(
        r["agreement_with_reference"].as_f64().unwrap() >= 0.75,
        "{r}"
    );
    let b = json(&[
        "bench",
        "--local",
        plan.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(b["outputs_identical"], 12);

    // The MLPerf Tiny runner's dataset for it: 224x224x3 bytes per photo
    // (resize 256, centre crop 224), which the device maps through the
    // plan's recipe (mean, std, int8 input) into exactly the input tensor the
    // host makes from the photo.
    let datasets = tmp("imagenet-mlperf");
    let _ = std::fs::remove_dir_all(&datasets);
    let out = edgefit(&[
        "mlperf-dataset",
        plan.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "-o",
        datasets.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&plan).unwrap();
    let parsed = edgefit_engine::Plan::parse(&bytes).unwrap();
    let input = parsed.input().unwrap();
    let device_recipe =
        edgefit_engine::input::InputRecipe::from_metadata(parsed.metadata()).unwrap();
    let (shape, recorded) = edgefit::runner::plan_input(&bytes).unwrap();
    let host_recipe = recorded.expect("the plan records its recipe");
    let source = edgefit_data::DataSource::open(&folder, edgefit_data::Role::Test).unwrap();
    let truth = std::fs::read_to_string(datasets.join("ic01/y_labels.csv")).unwrap();
    let rows: Vec<Vec<&str>> = truth.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            row[1..],
            ["1000", &source.label(i).to_string(), "150528", "150528"]
        );
        let raw = std::fs::read(datasets.join("ic01").join(row[0])).unwrap();
        assert_eq!(raw.len(), 224 * 224 * 3);
        let mut on_device = vec![0u8; input.length as usize];
        device_recipe.encode(&raw, &input, &mut on_device).unwrap();
        let (t, _) = source.tensor(i, &host_recipe, &shape).unwrap();
        let mut on_host = vec![0u8; input.length as usize];
        edgefit::runner::encode_input(&input, &t, &mut on_host).unwrap();
        assert!(
            on_device == on_host,
            "photo {i}: device and host inputs differ"
        );
    }

    // The bundled 28x28 images do not fit it: said at once.
    assert_fails_with(
        &edgefit(&["evaluate", onnx.to_str().unwrap()]),
        &["28x28 grayscale", "[1, 3, 224, 224]", "--data PATH"],
    );
}
