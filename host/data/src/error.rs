use std::path::PathBuf;

/// A dataset that cannot be read: every message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    #[error("no dataset `{prefix}` in {dir}: expected {prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]")]
    Missing { dir: PathBuf, prefix: String },
    #[error(
        "{path}: not a dataset edgefit reads: give IDX files (a folder with \
         *-images-idx3-ubyte[.gz] and *-labels-idx1-ubyte[.gz]), an image folder (one \
         sub-folder of PNG/JPEG/BMP files per class), NumPy arrays (a folder with x.npy and \
         y.npy, or an .npz with x and y) or CIFAR binary batches (*.bin)"
    )]
    Unknown { path: PathBuf },
    #[error("{path}: image {got} does not fit the recipe: {reason}")]
    Image {
        path: PathBuf,
        got: String,
        reason: String,
    },
}

impl DataError {
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
