//! Labelled samples from the formats users keep them in, one `--data PATH`
//! for all: IDX files, an image folder (torchvision's `ImageFolder` layout),
//! NumPy arrays (`x.npy` + `y.npy`, or an `.npz`), CIFAR-10/100 binary
//! batches. Image folders are decoded on demand (a 50,000-image folder is a
//! list of paths until read), in parallel batches.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::idx::{find, parse_idx, read_file};
use crate::{DataError, RawImage, Recipe};

/// What the samples are for: IDX and CIFAR folders hold both splits, and
/// calibration must never read the test images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `t10k-*` IDX files, `test_batch.bin` / `test.bin`.
    Test,
    /// `calib-*` (else `train-*`) IDX files, `data_batch_1.bin` / `train.bin`.
    Calibration,
}

/// A sample's pixels: an 8-bit image for the recipe, or a float tensor
/// already in the model's input layout (float NumPy arrays; no recipe runs).
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    Image(RawImage),
    Tensor(Vec<f32>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub pixels: Pixels,
    pub label: u32,
}

/// What to do with an image that cannot be read or preprocessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadImage {
    #[default]
    Fail,
    Skip,
}

#[derive(Debug)]
enum Kind {
    /// Interleaved 8-bit images, all in memory (IDX, uint8 NumPy, CIFAR).
    Bytes {
        pixels: Vec<u8>,
        height: usize,
        width: usize,
        channels: usize,
    },
    /// One file per sample, decoded when read.
    Files(Vec<PathBuf>),
    /// Float tensors in the model's layout, `per` values each.
    Floats { data: Vec<f32>, per: usize },
}

/// A labelled dataset. Samples are read by position in `order` (the stable
/// file order, or a seeded shuffle), so `--limit N` takes the same N each time.
#[derive(Debug)]
pub struct DataSource {
    path: PathBuf,
    format: String,
    kind: Kind,
    labels: Vec<u32>,
    class_names: Option<Vec<String>>,
    order: Vec<usize>,
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp"];

impl DataSource {
    /// Opens `path` as whichever format it is (see the module docs).
    pub fn open(path: &Path, role: Role) -> Result<DataSource, DataError> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let src = if meta.is_file() {
            if name.ends_with(".npz") {
                open_npz(path)?
            } else if name.ends_with(".bin") {
                open_cifar(path, path.parent().unwrap_or(Path::new(".")))?
            } else if name.contains("-images-idx3-ubyte") {
                let labels = path.with_file_name(
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .replace("-images-idx3-ubyte", "-labels-idx1-ubyte"),
                );
                open_idx_files(path, &labels)?
            } else {
                return Err(DataError::Unknown {
                    path: path.to_owned(),
                });
            }
        } else if path.join("x.npy").is_file() || path.join("y.npy").is_file() {
            open_npy_pair(path)?
        } else if let Some(src) = open_idx_dir(path, role)? {
            src
        } else if let Some(bin) = cifar_file(path, role) {
            open_cifar(&bin, path)?
        } else {
            open_folder(path)?
        };
        if src.labels.is_empty() {
            return Err(DataError::format(path, "the dataset holds no samples"));
        }
        Ok(src)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// "image folder (10 classes)", "IDX 28x28 gray", ...
    pub fn format(&self) -> &str {
        &self.format
    }

    /// Class names where the data names them (image folders' sub-folders,
    /// CIFAR's meta files), in label order.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    pub fn set_class_names(&mut self, names: Vec<String>) {
        self.class_names = Some(names);
    }

    /// The label of the sample at position `i`.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[self.order[i]]
    }

    /// The largest label, for checking it against the model's classes.
    pub fn max_label(&self) -> Option<(u32, usize)> {
        (0..self.len())
            .map(|i| (self.label(i), i))
            .max_by_key(|&(l, _)| l)
    }

    /// Keeps the first `n` samples (of the current order).
    pub fn limit(&mut self, n: usize) {
        self.order.truncate(n);
    }

    /// A seeded permutation of the samples (then [`DataSource::limit`] picks
    /// a seeded subset).
    pub fn shuffle(&mut self, seed: u64) {
        let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for i in (1..self.order.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            self.order.swap(i, j);
        }
    }

    /// Where sample `i` comes from, for messages: its file, or the dataset
    /// and the index.
    pub fn name_of(&self, i: usize) -> String {
        match &self.kind {
            Kind::Files(files) => files[self.order[i]].display().to_string(),
            _ => format!("{} (sample {})", self.path.display(), self.order[i]),
        }
    }

    /// Reads (decodes) the sample at position `i`.
    pub fn get(&self, i: usize) -> Result<Sample, DataError> {
        let k = self.order[i];
        let pixels = match &self.kind {
            Kind::Bytes {
                pixels,
                height,
                width,
                channels,
            } => {
                let n = height * width * channels;
                Pixels::Image(RawImage::new(
                    *height,
                    *width,
                    *channels,
                    pixels[k * n..(k + 1) * n].to_vec(),
                ))
            }
            Kind::Files(files) => Pixels::Image(RawImage::decode_file(&files[k])?),
            Kind::Floats { data, per } => Pixels::Tensor(data[k * per..(k + 1) * per].to_vec()),
        };
        Ok(Sample {
            pixels,
            label: self.labels[k],
        })
    }

    /// The sample at position `i` as the model's input tensor.
    pub fn tensor(
        &self,
        i: usize,
        recipe: &Recipe,
        input_shape: &[usize],
    ) -> Result<(Vec<f32>, u32), DataError> {
        let sample = self.get(i)?;
        let t = match sample.pixels {
            Pixels::Image(img) => {
                recipe
                    .apply(&img, input_shape)
                    .map_err(|reason| DataError::Image {
                        path: PathBuf::from(self.name_of(i)),
                        got: img.describe(),
                        reason,
                    })?
            }
            Pixels::Tensor(t) => {
                let want: usize = input_shape.iter().product();
                if t.len() != want {
                    return Err(DataError::format(
                        &self.path,
                        format!(
                            "sample {i} holds {} floats but the model's input {input_shape:?} \
                             takes {want}",
                            t.len()
                        ),
                    ));
                }
                t
            }
        };
        Ok((t, sample.label))
    }

    /// The sample at position `i` as 8-bit pixels at the model's size, HWC
    /// (the recipe's geometry, not its arithmetic; see [`Recipe::pixels`]).
    /// Float samples have no pixels: an error saying so.
    pub fn pixels(
        &self,
        i: usize,
        recipe: &Recipe,
        input_shape: &[usize],
    ) -> Result<(Vec<u8>, u32), DataError> {
        let sample = self.get(i)?;
        match sample.pixels {
            Pixels::Image(img) => recipe
                .pixels(&img, input_shape)
                .map(|p| (p.pixels, sample.label))
                .map_err(|reason| DataError::Image {
                    path: PathBuf::from(self.name_of(i)),
                    got: img.describe(),
                    reason,
                }),
            Pixels::Tensor(_) => Err(DataError::format(
                &self.path,
                "it holds float tensors, not 8-bit pixels".to_string(),
            )),
        }
    }

    /// Samples `range` as input tensors, read and preprocessed in parallel,
    /// in order. With [`OnBadImage::Skip`] a bad image is left out and named
    /// in the second list; with `Fail` it is the error.
    #[allow(clippy::type_complexity)]
    pub fn tensors(
        &self,
        range: std::ops::Range<usize>,
        recipe: &Recipe,
        input_shape: &[usize],
        on_bad: OnBadImage,
    ) -> Result<(Vec<(usize, Vec<f32>, u32)>, Vec<String>), DataError> {
        let results: Vec<(usize, Result<(Vec<f32>, u32), DataError>)> = range
            .into_par_iter()
            .map(|i| (i, self.tensor(i, recipe, input_shape)))
            .collect();
        let mut ok = Vec::with_capacity(results.len());
        let mut skipped = vec![];
        for (i, r) in results {
            match (r, on_bad) {
                (Ok((t, l)), _) => ok.push((i, t, l)),
                (Err(e), OnBadImage::Skip) if self.is_per_file() => skipped.push(e.to_string()),
                (Err(e), _) => return Err(e),
            }
        }
        Ok((ok, skipped))
    }

    fn is_per_file(&self) -> bool {
        matches!(self.kind, Kind::Files(_))
    }

    /// Whether samples are float tensors that skip the recipe.
    pub fn is_tensors(&self) -> bool {
        matches!(self.kind, Kind::Floats { .. })
    }

    /// Interleaved 8-bit images already in memory (`height * width *
    /// channels` bytes each), e.g. an IDX [`crate::Dataset`].
    pub fn from_images(
        path: &Path,
        format: String,
        (height, width, channels): (usize, usize, usize),
        pixels: Vec<u8>,
        labels: Vec<u32>,
    ) -> DataSource {
        assert_eq!(pixels.len(), labels.len() * height * width * channels);
        DataSource::new(
            path,
            format,
            Kind::Bytes {
                pixels,
                height,
                width,
                channels,
            },
            labels,
        )
    }

    fn new(path: &Path, format: String, kind: Kind, labels: Vec<u32>) -> DataSource {
        let order = (0..labels.len()).collect();
        DataSource {
            path: path.to_owned(),
            format,
            kind,
            labels,
            class_names: None,
            order,
        }
    }
}

fn open_idx_files(images: &Path, labels: &Path) -> Result<DataSource, DataError> {
    let (dims, pixels) = parse_idx(images, &read_file(images)?, 3)?;
    if !labels.is_file() && !labels.with_extension("gz").is_file() {
        return Err(DataError::format(
            images,
            format!("no labels file beside it ({})", labels.display()),
        ));
    }
    let (ldims, labels_bytes) = parse_idx(labels, &read_file(labels)?, 1)?;
    if dims[0] != ldims[0] {
        return Err(DataError::CountMismatch {
            images: images.to_owned(),
            n_images: dims[0],
            labels: labels.to_owned(),
            n_labels: ldims[0],
        });
    }
    Ok(DataSource::new(
        images,
        format!("IDX, {}x{} gray", dims[1], dims[2]),
        Kind::Bytes {
            pixels,
            height: dims[1],
            width: dims[2],
            channels: 1,
        },
        labels_bytes.into_iter().map(u32::from).collect(),
    ))
}

/// IDX files in `dir`: the role's prefix (`t10k` / `calib`, else `train`), or
/// the one prefix there is.
fn open_idx_dir(dir: &Path, role: Role) -> Result<Option<DataSource>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut prefixes: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.find("-images-idx3-ubyte").map(|at| n[..at].to_owned())
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    if prefixes.is_empty() {
        return Ok(None);
    }
    let wanted: &[&str] = match role {
        Role::Test => &["t10k", "test"],
        Role::Calibration => &["calib", "train"],
    };
    let prefix = wanted
        .iter()
        .find(|w| prefixes.iter().any(|p| p == *w))
        .map(|w| w.to_string())
        .or_else(|| (prefixes.len() == 1).then(|| prefixes[0].clone()))
        .ok_or_else(|| {
            DataError::format(
                dir,
                format!(
                    "IDX datasets {prefixes:?} but none named {wanted:?}: give the images file \
                     itself"
                ),
            )
        })?;
    let missing = || DataError::Missing {
        dir: dir.to_owned(),
        prefix: prefix.clone(),
    };
    let images = find(dir, &format!("{prefix}-images-idx3-ubyte")).ok_or_else(missing)?;
    let labels = find(dir, &format!("{prefix}-labels-idx1-ubyte")).ok_or_else(missing)?;
    open_idx_files(&images, &labels).map(Some)
}

fn cifar_file(dir: &Path, role: Role) -> Option<PathBuf> {
    let names: &[&str] = match role {
        Role::Test => &["test_batch.bin", "test.bin"],
        Role::Calibration => &[
            "data_batch_1.bin",
            "train.bin",
            "test_batch.bin",
            "test.bin",
        ],
    };
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// CIFAR-10 (1 label byte + 3,072 pixel bytes per record) or CIFAR-100
/// (coarse and fine label bytes; the fine label is used) binary batches.
fn open_cifar(path: &Path, dir: &Path) -> Result<DataSource, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // CIFAR-100's files are train.bin / test.bin; CIFAR-10's *_batch*.bin.
    let cifar100 = name == "train.bin" || name == "test.bin";
    let record = if cifar100 { 3074 } else { 3073 };
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(DataError::format(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte CIFAR-{} records",
                bytes.len(),
                if cifar100 { 100 } else { 10 }
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut labels = Vec::with_capacity(n);
    let mut pixels = Vec::with_capacity(n * 3072);
    for r in bytes.chunks_exact(record) {
        labels.push(r[record - 3073] as u32);
        let planes = &r[record - 3072..];
        // Planar R, G, B (1,024 each) to interleaved.
        for p in 0..1024 {
            pixels.extend_from_slice(&[planes[p], planes[1024 + p], planes[2048 + p]]);
        }
    }
    let mut src = DataSource::new(
        path,
        format!(
            "CIFAR-{} binary, 32x32 RGB",
            if cifar100 { 100 } else { 10 }
        ),
        Kind::Bytes {
            pixels,
            height: 32,
            width: 32,
            channels: 3,
        },
        labels,
    );
    let meta = if cifar100 {
        "fine_label_names.txt"
    } else {
        "batches.meta.txt"
    };
    if let Ok(text) = std::fs::read_to_string(dir.join(meta)) {
        let names = class_names(&text);
        if !names.is_empty() {
            src.class_names = Some(names);
        }
    }
    Ok(src)
}

/// Class names, one per line in label order (blank lines skipped): CIFAR's
/// meta files and `--classes FILE`.
pub fn class_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// torchvision's `ImageFolder`: one sub-folder per class, classes in sorted
/// order of their names, images found recursively, in sorted path order.
fn open_folder(dir: &Path) -> Result<DataSource, DataError> {
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::Unknown {
            path: dir.to_owned(),
        });
    }
    let mut files = vec![];
    let mut labels = vec![];
    for (label, (name, class_dir)) in classes.iter().enumerate() {
        let mut found = vec![];
        walk_images(class_dir, &mut found)?;
        if found.is_empty() {
            return Err(DataError::format(
                class_dir,
                format!(
                    "class folder `{name}` holds no images ({})",
                    IMAGE_EXTENSIONS.join(", ")
                ),
            ));
        }
        found.sort();
        labels.extend(std::iter::repeat_n(label as u32, found.len()));
        files.extend(found);
    }
    let mut src = DataSource::new(
        dir,
        format!("image folder, {} classes", classes.len()),
        Kind::Files(files),
        labels,
    );
    src.class_names = Some(classes.into_iter().map(|(n, _)| n).collect());
    Ok(src)
}

fn walk_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for e in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = e.map_err(|e| DataError::io(dir, e))?.path();
        if path.is_dir() {
            walk_images(&path, out)?;
        } else if path
            .extension()
            .map(|x| x.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// An array read from .npy bytes: its shape and values as u8 or f32.
enum Array {
    U8(Vec<u64>, Vec<u8>),
    F32(Vec<u64>, Vec<f32>),
    Int(Vec<u64>, Vec<i64>),
}

fn read_array<R: std::io::Read>(
    path: &Path,
    what: &str,
    npy: npyz::NpyFile<R>,
) -> Result<Array, DataError> {
    let bad = |reason: String| DataError::format(path, format!("array `{what}`: {reason}"));
    let shape = npy.shape().to_vec();
    let dtype = npy.dtype();
    let descr = match &dtype {
        npyz::DType::Plain(t) => t.to_string(),
        other => format!("{other:?}"),
    };
    let type_char = match &dtype {
        npyz::DType::Plain(t) => (t.type_char(), t.size_field()),
        _ => return Err(bad(format!("dtype {descr} is not a plain number type"))),
    };
    let err = |e: std::io::Error| bad(format!("cannot read its data: {e}"));
    Ok(match type_char {
        (npyz::TypeChar::Uint, 1) => Array::U8(shape, npy.into_vec::<u8>().map_err(err)?),
        (npyz::TypeChar::Float, 4) => Array::F32(shape, npy.into_vec::<f32>().map_err(err)?),
        (npyz::TypeChar::Int, 8) => Array::Int(shape, npy.into_vec::<i64>().map_err(err)?),
        (npyz::TypeChar::Int, 4) => Array::Int(
            shape,
            npy.into_vec::<i32>().map_err(err)?.into_iter().map(i64::from).collect(),
        ),
        (npyz::TypeChar::Uint, 2) => Array::Int(
            shape,
            npy.into_vec::<u16>().map_err(err)?.into_iter().map(i64::from).collect(),
        ),
        (npyz::TypeChar::Int, 2) => Array::Int(
            shape,
            npy.into_vec::<i16>().map_err(err)?.into_iter().map(i64::from).collect(),
        ),
        (npyz::TypeChar::Uint, 8) => Array::Int(
            shape,
            npy.into_vec::<u64>()
                .map_err(err)?
                .into_iter()
                .map(|v| v.min(i64::MAX as u64) as i64)
                .collect(),
        ),
        _ => {
            return Err(bad(format!(
                "dtype {descr}: edgefit reads uint8 images or float32 tensors for x, integer labels for y"
            )))
        }
    })
}

/// `names`: how messages call the two arrays ("x.npy", or "array `x`").
fn from_arrays(
    path: &Path,
    names: (&str, &str),
    x: Array,
    y: Array,
) -> Result<DataSource, DataError> {
    let bad = |reason: String| DataError::format(path, reason);
    let labels: Vec<u32> = match y {
        Array::Int(shape, _) | Array::U8(shape, _) | Array::F32(shape, _) if shape.len() != 1 => {
            return Err(bad(format!(
                "labels `y` have shape {shape:?}; expected (N,)"
            )));
        }
        Array::Int(_, v) => v
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                u32::try_from(l).map_err(|_| bad(format!("label {l} of sample {i} is negative")))
            })
            .collect::<Result<_, _>>()?,
        Array::U8(_, v) => v.into_iter().map(u32::from).collect(),
        Array::F32(..) => {
            return Err(bad(
                "labels `y` are float32; edgefit takes integer class labels".into(),
            ))
        }
    };
    let n = labels.len() as u64;
    let count_mismatch = |xn: u64| {
        bad(format!(
            "{} holds {xn} samples but {} holds {n} labels",
            names.0, names.1
        ))
    };
    let src = match x {
        Array::U8(shape, pixels) => {
            let (xn, h, w, c) = match shape.as_slice() {
                [n, h, w] => (*n, *h, *w, 1),
                [n, h, w, c] if *c == 1 || *c == 3 => (*n, *h, *w, *c),
                [n, h, w, 4] => {
                    // RGBA: alpha dropped, as for image files.
                    let rgb: Vec<u8> = pixels
                        .chunks_exact(4)
                        .flat_map(|p| [p[0], p[1], p[2]])
                        .collect();
                    return finish_u8(path, labels, rgb, (*n, *h, *w, 3), count_mismatch);
                }
                other => {
                    return Err(bad(format!(
                        "uint8 images `x` have shape {other:?}; expected (N,H,W) or (N,H,W,C) \
                         with C 1, 3 or 4"
                    )))
                }
            };
            return finish_u8(path, labels, pixels, (xn, h, w, c), count_mismatch);
        }
        Array::F32(shape, data) => {
            let xn = *shape.first().ok_or_else(|| bad("`x` is a scalar".into()))?;
            if xn != n {
                return Err(count_mismatch(xn));
            }
            let per = shape[1..].iter().product::<u64>() as usize;
            if data.iter().any(|v| !v.is_finite()) {
                return Err(bad("float32 `x` holds NaN or infinity".into()));
            }
            DataSource::new(
                path,
                format!("NumPy float32 tensors {:?}", &shape[1..]),
                Kind::Floats { data, per },
                labels,
            )
        }
        Array::Int(..) => {
            return Err(bad(
                "`x` is an integer array wider than 8 bits; edgefit takes uint8 images or \
                 float32 tensors"
                    .into(),
            ))
        }
    };
    Ok(src)
}

fn finish_u8(
    path: &Path,
    labels: Vec<u32>,
    pixels: Vec<u8>,
    (n, h, w, c): (u64, u64, u64, u64),
    count_mismatch: impl Fn(u64) -> DataError,
) -> Result<DataSource, DataError> {
    if n != labels.len() as u64 {
        return Err(count_mismatch(n));
    }
    let kind = if c == 1 { "gray" } else { "RGB" };
    Ok(DataSource::new(
        path,
        format!("NumPy uint8 images, {h}x{w} {kind}"),
        Kind::Bytes {
            pixels,
            height: h as usize,
            width: w as usize,
            channels: c as usize,
        },
        labels,
    ))
}

fn open_npy_pair(dir: &Path) -> Result<DataSource, DataError> {
    let read = |name: &str| -> Result<Array, DataError> {
        let p = dir.join(format!("{name}.npy"));
        let bytes = std::fs::read(&p).map_err(|e| DataError::io(&p, e))?;
        let npy = npyz::NpyFile::new(&bytes[..])
            .map_err(|e| DataError::format(&p, format!("not a .npy array: {e}")))?;
        read_array(&p, name, npy)
    };
    from_arrays(dir, ("x.npy", "y.npy"), read("x")?, read("y")?)
}

fn open_npz(path: &Path) -> Result<DataSource, DataError> {
    let mut npz = npyz::npz::NpzArchive::open(path)
        .map_err(|e| DataError::format(path, format!("not an .npz archive: {e}")))?;
    let mut read = |name: &str| -> Result<Array, DataError> {
        let npy = npz
            .by_name(name)
            .map_err(|e| DataError::format(path, format!("cannot read array `{name}`: {e}")))?
            .ok_or_else(|| {
                DataError::format(
                    path,
                    format!("no array `{name}` (edgefit reads `x` and `y`)"),
                )
            })?;
        read_array(path, name, npy)
    };
    let x = read("x")?;
    let y = read("y")?;
    from_arrays(path, ("array `x`", "array `y`"), x, y)
}
