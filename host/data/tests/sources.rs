//! Every data source, written here in the layouts users keep (PNG/JPEG/BMP
//! folders, .npy pairs, .npz, CIFAR binaries, IDX), read back, and their bad
//! forms refused naming the file.

use std::path::{Path, PathBuf};

use edgefit_data::{DataSource, OnBadImage, Pixels, RawImage, Recipe, Role};
use npyz::WriterBuilder;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgefit-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pattern(h: u32, w: u32, seed: u32) -> Vec<u8> {
    (0..h * w * 3)
        .map(|i| ((i * 7 + seed * 31) % 256) as u8)
        .collect()
}

fn save(path: &Path, img: image::DynamicImage) {
    img.save(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn image_folder_classes_sorted_any_format_and_colour_type() {
    let d = tmp("folder");
    for (class, files) in [("cat", 2), ("ant", 1), ("dog", 2)] {
        std::fs::create_dir_all(d.join(class)).unwrap();
        for i in 0..files {
            let rgb = image::RgbImage::from_raw(6, 5, pattern(5, 6, i)).unwrap();
            let ext = ["png", "jpg", "bmp"][i as usize % 3];
            save(&d.join(class).join(format!("{i}.{ext}")), rgb.into());
        }
    }
    // A gray PNG and an RGBA PNG in a nested folder; a text file ignored.
    std::fs::create_dir_all(d.join("dog/more")).unwrap();
    let gray = image::GrayImage::from_raw(6, 5, vec![9; 30]).unwrap();
    save(&d.join("dog/more/g.png"), gray.into());
    let rgba = image::RgbaImage::from_raw(6, 5, vec![200; 120]).unwrap();
    save(&d.join("ant/rgba.png"), rgba.into());
    std::fs::write(d.join("cat/notes.txt"), "not an image").unwrap();

    let src = DataSource::open(&d, Role::Test).unwrap();
    assert_eq!(
        src.class_names().unwrap(),
        &["ant".to_string(), "cat".into(), "dog".into()]
    );
    assert_eq!(src.len(), 7);
    let labels: Vec<u32> = (0..src.len()).map(|i| src.label(i)).collect();
    assert_eq!(labels, vec![0, 0, 1, 1, 2, 2, 2]);
    // The PNG is lossless: its pixels come back exactly.
    let first_cat = src.get(2).unwrap();
    match first_cat.pixels {
        Pixels::Image(img) => assert_eq!(img, RawImage::new(5, 6, 3, pattern(5, 6, 0))),
        other => panic!("{other:?}"),
    }
    // RGBA: alpha dropped; gray stays gray (the recipe makes it RGB).
    match src.get(1).unwrap().pixels {
        Pixels::Image(img) => assert_eq!((img.channels, img.pixels[0]), (3, 200)),
        other => panic!("{other:?}"),
    }
    let recipe = Recipe::plain(edgefit_data::ChannelOrder::Rgb);
    let (tensors, skipped) = src
        .tensors(0..src.len(), &recipe, &[1, 3, 5, 6], OnBadImage::Fail)
        .unwrap();
    assert_eq!((tensors.len(), skipped.len()), (7, 0));
    let gray_at = (0..src.len())
        .find(|&i| src.name_of(i).ends_with("g.png"))
        .unwrap();
    assert!(tensors[gray_at].1.iter().all(|&v| v == 9.0 / 255.0));
}

#[test]
fn bad_images_fail_or_are_skipped_by_name() {
    let d = tmp("bad");
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    let rgb = image::RgbImage::from_raw(4, 4, pattern(4, 4, 1)).unwrap();
    save(&d.join("a/ok.png"), rgb.clone().into());
    save(&d.join("b/ok.png"), rgb.into());
    std::fs::write(d.join("b/broken.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let src = DataSource::open(&d, Role::Test).unwrap();
    let recipe = Recipe::plain(edgefit_data::ChannelOrder::Rgb);
    let e = src
        .tensors(0..src.len(), &recipe, &[1, 3, 4, 4], OnBadImage::Fail)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("broken.png") && e.contains("not a readable image"),
        "{e}"
    );
    let (ok, skipped) = src
        .tensors(0..src.len(), &recipe, &[1, 3, 4, 4], OnBadImage::Skip)
        .unwrap();
    assert_eq!((ok.len(), skipped.len()), (2, 1));
    // An image of the wrong size names the file and both sizes.
    let e = src
        .tensors(0..1, &recipe, &[1, 3, 8, 8], OnBadImage::Fail)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ok.png") && e.contains("4x4") && e.contains("8x8"),
        "{e}"
    );

    // An empty class folder, and a folder with no class folders.
    std::fs::create_dir_all(d.join("c")).unwrap();
    let e = DataSource::open(&d, Role::Test).unwrap_err().to_string();
    assert!(e.contains("class folder `c` holds no images"), "{e}");
    let empty = tmp("empty");
    let e = DataSource::open(&empty, Role::Test)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a dataset edgefit reads"), "{e}");
}

fn npy<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
    edgefit_data::npy::npy_bytes(shape, data).unwrap()
}

#[test]
fn numpy_pairs_and_npz_read_images_and_tensors() {
    // uint8 (N,H,W,C) images with int64 labels.
    let d = tmp("npy");
    let px: Vec<u8> = (0..2 * 3 * 4 * 3).map(|i| i as u8).collect();
    std::fs::write(d.join("x.npy"), npy(&[2, 3, 4, 3], &px)).unwrap();
    std::fs::write(d.join("y.npy"), npy(&[2], &[4i64, 1])).unwrap();
    let src = DataSource::open(&d, Role::Test).unwrap();
    assert_eq!((src.len(), src.label(0), src.label(1)), (2, 4, 1));
    match src.get(1).unwrap().pixels {
        Pixels::Image(img) => assert_eq!((img.height, img.width, img.pixels[0]), (3, 4, 36)),
        other => panic!("{other:?}"),
    }
    // float32 tensors: no recipe runs.
    let d = tmp("npy-float");
    let x: Vec<f32> = (0..2 * 12).map(|i| i as f32 * 0.5).collect();
    std::fs::write(d.join("x.npy"), npy(&[2, 3, 2, 2], &x)).unwrap();
    std::fs::write(d.join("y.npy"), npy(&[2], &[0i32, 1])).unwrap();
    let src = DataSource::open(&d, Role::Test).unwrap();
    assert!(src.is_tensors());
    let recipe = Recipe::preset("imagenet").unwrap(); // ignored for tensors
    let (t, l) = src.tensor(1, &recipe, &[1, 3, 2, 2]).unwrap();
    assert_eq!((t[0], l), (6.0, 1));
    let e = src
        .tensor(0, &recipe, &[1, 3, 4, 4])
        .unwrap_err()
        .to_string();
    assert!(e.contains("12 floats") && e.contains("48"), "{e}");

    // .npz with (N,H,W) gray images.
    let d = tmp("npz");
    let path = d.join("set.npz");
    {
        let mut npz = npyz::npz::NpzWriter::create(&path).unwrap();
        let mut w = npz
            .array::<u8>("x", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[3, 2, 2])
            .begin_nd()
            .unwrap();
        w.extend((0..12u8).map(|v| v * 10)).unwrap();
        w.finish().unwrap();
        let mut w = npz
            .array::<i64>("y", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[3])
            .begin_nd()
            .unwrap();
        w.extend([2i64, 0, 1]).unwrap();
        w.finish().unwrap();
    }
    let src = DataSource::open(&path, Role::Test).unwrap();
    assert_eq!((src.len(), src.label(0)), (3, 2));
    assert!(src.format().contains("2x2 gray"), "{}", src.format());

    // Bad arrays: wrong dtype, wrong rank, mismatched lengths.
    let d = tmp("npy-bad");
    std::fs::write(d.join("x.npy"), npy(&[2, 2, 2], &[0f64; 8])).unwrap();
    std::fs::write(d.join("y.npy"), npy(&[2], &[0i64, 1])).unwrap();
    let e = DataSource::open(&d, Role::Test).unwrap_err().to_string();
    assert!(e.contains("x.npy") && e.contains("f8"), "{e}");
    std::fs::write(d.join("x.npy"), npy(&[2, 2], &[0u8; 4])).unwrap();
    let e = DataSource::open(&d, Role::Test).unwrap_err().to_string();
    assert!(e.contains("shape [2, 2]"), "{e}");
    std::fs::write(d.join("x.npy"), npy(&[3, 2, 2], &[0u8; 12])).unwrap();
    let e = DataSource::open(&d, Role::Test).unwrap_err().to_string();
    assert!(e.contains("3 samples") && e.contains("2 labels"), "{e}");
}

#[test]
fn cifar_batches_and_idx_files() {
    // Two CIFAR-10 records: label, then planar R, G, B.
    let d = tmp("cifar");
    let mut bytes = vec![];
    for (label, r, g, b) in [(3u8, 10u8, 20u8, 30u8), (7, 1, 2, 3)] {
        bytes.push(label);
        for v in [r, g, b] {
            bytes.extend(std::iter::repeat_n(v, 1024));
        }
    }
    std::fs::write(d.join("test_batch.bin"), &bytes).unwrap();
    std::fs::write(
        d.join("batches.meta.txt"),
        "airplane\nautomobile\nbird\ncat\n",
    )
    .unwrap();
    let src = DataSource::open(&d, Role::Test).unwrap();
    assert_eq!((src.len(), src.label(0), src.label(1)), (2, 3, 7));
    assert_eq!(src.class_names().unwrap()[3], "cat");
    match src.get(0).unwrap().pixels {
        Pixels::Image(img) => assert_eq!(img.pixels[..3], [10, 20, 30]),
        other => panic!("{other:?}"),
    }
    std::fs::write(d.join("test_batch.bin"), &bytes[..5000]).unwrap();
    let e = DataSource::open(&d, Role::Test).unwrap_err().to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("3073-byte"),
        "{e}"
    );

    // IDX: a folder by prefix, or the images file itself.
    let d = tmp("idx");
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    std::fs::write(d.join("mine-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(
        d.join("mine-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 2, 5, 9],
    )
    .unwrap();
    let src = DataSource::open(&d, Role::Test).unwrap();
    assert_eq!((src.len(), src.label(1)), (2, 9));
    let src = DataSource::open(&d.join("mine-images-idx3-ubyte"), Role::Test).unwrap();
    assert_eq!(src.len(), 2);
}

#[test]
fn limit_and_seeded_shuffle_are_stable() {
    let dir = edgefit_data::bundled_data_dir();
    let mut a = DataSource::open(&dir, Role::Calibration).unwrap();
    assert_eq!(a.len(), 1000);
    let mut b = DataSource::open(&dir, Role::Calibration).unwrap();
    a.shuffle(7);
    b.shuffle(7);
    a.limit(50);
    b.limit(50);
    let la: Vec<u32> = (0..50).map(|i| a.label(i)).collect();
    let lb: Vec<u32> = (0..50).map(|i| b.label(i)).collect();
    assert_eq!(la, lb);
    let test = DataSource::open(&dir, Role::Test).unwrap();
    assert_eq!(test.len(), 10_000);
}
