//! Image datasets in the IDX format of MNIST / Fashion-MNIST (optionally gzipped):
//! the bundled test split and calibration subset under `models/data/`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::DataError;

/// Grayscale images with labels, pixels as stored (0..=255), row-major.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The image as the bundled models expect it: f32 `pixel / 255`.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// The images as a [`crate::DataSource`] (gray, `rows` x `cols`).
    pub fn to_source(&self, path: &Path) -> crate::DataSource {
        crate::DataSource::from_images(
            path,
            format!("IDX, {}x{} gray", self.rows, self.cols),
            (self.rows, self.cols, 1),
            self.pixels.clone(),
            self.labels.iter().map(|&l| u32::from(l)).collect(),
        )
    }

    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.pixels.truncate(n * self.rows * self.cols);
        }
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format {
                path: path.to_owned(),
                reason: format!("bad gzip data: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX file of unsigned bytes; returns its dimensions and data.
pub(crate) fn parse_idx(
    path: &Path,
    bytes: &[u8],
    expected_dims: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bad = |reason: String| DataError::Format {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() < 4 {
        return Err(bad(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(bad(format!(
            "not an IDX file of unsigned bytes (magic {:02x?})",
            &bytes[..4]
        )));
    }
    let ndim = bytes[3] as usize;
    if ndim != expected_dims {
        return Err(bad(format!("{ndim} dimensions, expected {expected_dims}")));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated IDX header".into()));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("size overflows".into()))?;
    let data = &bytes[header..];
    if data.len() != count {
        return Err(bad(format!(
            "header {dims:?} needs {count} data bytes, the file has {}",
            data.len()
        )));
    }
    Ok((dims, data.to_vec()))
}

pub(crate) fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_owned()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
}

/// Loads `<prefix>-images-idx3-ubyte[.gz]` and `<prefix>-labels-idx1-ubyte[.gz]` from `dir`.
pub fn load_idx_dataset(dir: &Path, prefix: &str) -> Result<Dataset, DataError> {
    let missing = || DataError::Missing {
        dir: dir.to_owned(),
        prefix: prefix.to_owned(),
    };
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte")).ok_or_else(missing)?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte")).ok_or_else(missing)?;
    let (dims, pixels) = parse_idx(&images_path, &read_file(&images_path)?, 3)?;
    let (ldims, labels) = parse_idx(&labels_path, &read_file(&labels_path)?, 1)?;
    if dims[0] != ldims[0] {
        return Err(DataError::CountMismatch {
            images: images_path,
            n_images: dims[0],
            labels: labels_path,
            n_labels: ldims[0],
        });
    }
    Ok(Dataset {
        rows: dims[1],
        cols: dims[2],
        pixels,
        labels,
    })
}

/// The bundled data folder: `$EDGEFIT_DATA` when set; else `models/data` of the
/// checkout the current directory is in; else that of the checkout this binary
/// was built from. The build path alone is not enough: clones at different paths
/// that share one build cache (CI) would read each other's data.
pub fn bundled_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGEFIT_DATA") {
        return PathBuf::from(dir);
    }
    let in_checkout = std::env::current_dir().ok().and_then(|cwd| {
        cwd.ancestors()
            .map(|d| d.join("models/data"))
            .find(|d| d.join("t10k-labels-idx1-ubyte.gz").is_file())
    });
    in_checkout.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_test_split_and_calibration_subset_load() {
        let dir = bundled_data_dir();
        let test = load_idx_dataset(&dir, "t10k").unwrap();
        assert_eq!((test.len(), test.rows, test.cols), (10_000, 28, 28));
        let calib = load_idx_dataset(&dir, "calib").unwrap();
        assert_eq!(calib.len(), 1000);
        for class in 0..10u8 {
            assert_eq!(calib.labels.iter().filter(|&&l| l == class).count(), 100);
        }
    }

    #[test]
    fn malformed_idx_is_an_error() {
        let p = Path::new("x");
        assert!(parse_idx(p, &[0, 0, 8], 3).is_err());
        assert!(parse_idx(p, &[0, 0, 8, 3, 0, 0, 0, 1], 3).is_err());
        assert!(parse_idx(p, &[0, 0, 8, 1, 0, 0, 0, 2, 5], 1).is_err());
        assert_eq!(
            parse_idx(p, &[0, 0, 8, 1, 0, 0, 0, 2, 5, 6], 1).unwrap().1,
            vec![5, 6]
        );
    }
}
