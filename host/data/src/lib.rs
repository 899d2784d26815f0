//! edgefit's datasets and preprocessing, free of tract: the formats users keep
//! labelled images in (IDX, image folders, NumPy arrays, CIFAR binary batches),
//! read lazily and decoded in parallel, and the preprocessing recipe (resize,
//! crop, channels, scale, mean/std, layout) that turns an image into a model's
//! input tensor the way torchvision does.

mod error;
pub mod idx;
pub mod image;
pub mod npy;
pub mod recipe;
pub mod source;

pub use error::DataError;
pub use idx::{bundled_data_dir, load_idx_dataset, Dataset};
pub use image::RawImage;
pub use recipe::{ChannelOrder, Crop, Recipe, RecipeError, Resize, TensorLayout};
pub use source::{class_names, DataSource, OnBadImage, Pixels, Role, Sample};
