//! The MLPerf Tiny runner's dataset layout (mlcommons/tiny,
//! `benchmark/runner/datasets.py`): per benchmark a folder (`ic01/`) of raw
//! `.bin` images and a truth file `y_labels.csv` without a header, columns
//! `file, classes, class, bytes_to_send, stride`. Each image is the sample
//! at the model's size as 8-bit pixels in the input tensor's element order
//! (HWC), the bytes the runner sends with `db` commands; the device applies
//! the plan's recipe arithmetic itself (`edgefit_engine::input`), so the
//! pixels here are the recipe's geometry only (`Recipe::pixels`).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::{DataError, DataSource, OnBadImage, Recipe};

/// The model version a plan answers to by default (`profile` →
/// `m-model-[ic01]`): the runner picks its test and this folder by it.
pub const DEFAULT_MODEL_ID: &str = "ic01";

#[derive(Debug, thiserror::Error)]
pub enum MlperfError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("model id `{0}` must be letters and digits (e.g. ic01), as the runner names folders")]
    ModelId(String),
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenDataset {
    /// `DIR/<model id>`.
    pub folder: PathBuf,
    pub images: usize,
    pub bytes_per_image: usize,
    /// Images left out (`OnBadImage::Skip`), named with the reason.
    pub skipped: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MlperfError + '_ {
    move |source| MlperfError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes every sample of `source` under `dir/model_id/` for a model with
/// `input_shape` and `classes` outputs: `NNNNN.bin` files and `y_labels.csv`.
pub fn write_dataset(
    source: &DataSource,
    recipe: &Recipe,
    input_shape: &[usize],
    classes: usize,
    dir: &Path,
    model_id: &str,
    on_bad: OnBadImage,
) -> Result<WrittenDataset, MlperfError> {
    if model_id.is_empty() || !model_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MlperfError::ModelId(model_id.to_owned()));
    }
    let folder = dir.join(model_id);
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    // In parallel (decoding and resizing), written in dataset order.
    let read: Vec<_> = (0..source.len())
        .into_par_iter()
        .map(|i| source.pixels(i, recipe, input_shape))
        .collect();
    let truth_path = folder.join("y_labels.csv");
    let mut truth = csv::WriterBuilder::new()
        .has_headers(false)
        .from_path(&truth_path)
        .map_err(|e| MlperfError::Io {
            path: truth_path.clone(),
            source: e.into(),
        })?;
    let mut written = WrittenDataset {
        folder: folder.clone(),
        images: 0,
        bytes_per_image: input_shape.iter().skip(1).product(),
        skipped: vec![],
    };
    for (i, r) in read.into_iter().enumerate() {
        let (pixels, label) = match (r, on_bad) {
            (Ok(v), _) => v,
            (Err(e), OnBadImage::Skip) if matches!(e, DataError::Image { .. }) => {
                written.skipped.push(e.to_string());
                continue;
            }
            (Err(e), _) => return Err(e.into()),
        };
        let name = format!("{i:05}.bin");
        let path = folder.join(&name);
        std::fs::write(&path, &pixels).map_err(io(&path))?;
        let n = pixels.len().to_string();
        truth
            .write_record([
                name.as_str(),
                &classes.to_string(),
                &label.to_string(),
                &n,
                &n,
            ])
            .map_err(|e| MlperfError::Io {
                path: truth_path.clone(),
                source: e.into(),
            })?;
        written.images += 1;
    }
    truth.flush().map_err(io(&truth_path))?;
    Ok(written)
}
