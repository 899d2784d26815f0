//! The flags every subcommand that reads samples shares: where the samples
//! are (`--data`, `--calib`) and how images become input tensors
//! (`--preprocess` and the recipe flags).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use edgefit::data::{
    bundled_data_dir, ChannelOrder, Crop, DataSource, OnBadImage, Recipe, Resize, Role,
    TensorLayout,
};

/// How images become the model's input tensor. Without flags: the model's
/// channel count (1: gray, 3: RGB), pixels / 255, NCHW (NHWC for a
/// [1, H, W, 1|3] input).
#[derive(Args, Clone, Default)]
pub struct RecipeArgs {
    /// A preset (imagenet, cifar10, fmnist) or a TOML recipe file; the flags below override it
    #[arg(long, value_name = "PRESET|FILE.toml")]
    preprocess: Option<String>,
    /// Resize the shorter side to S, or to exactly H,W (bilinear with antialiasing, as PIL/torchvision)
    #[arg(long, value_name = "S|H,W")]
    resize: Option<String>,
    /// Centre crop to S x S, or H,W
    #[arg(long, value_name = "S|H,W")]
    crop: Option<String>,
    /// Channels the model takes, in order
    #[arg(long, value_name = "rgb|bgr|gray")]
    channels: Option<String>,
    /// Pixel scale before mean/std (default 1/255)
    #[arg(long, value_name = "F")]
    scale: Option<f32>,
    /// Per-channel mean subtracted after scaling (one value, or one per channel)
    #[arg(
        long,
        value_name = "M[,M,M]",
        value_delimiter = ',',
        num_args = 1,
        allow_hyphen_values = true
    )]
    mean: Option<Vec<f32>>,
    /// Per-channel std divided by after the mean
    #[arg(long, value_name = "S[,S,S]", value_delimiter = ',', num_args = 1)]
    std: Option<Vec<f32>>,
    /// The model input's layout
    #[arg(long, value_name = "nchw|nhwc")]
    layout: Option<String>,
}

fn sizes(flag: &str, s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .ok()
                .filter(|&v| v > 0)
                .with_context(|| format!("--{flag} {s}: give S or H,W in pixels (at least 1)"))
        })
        .collect()
}

impl RecipeArgs {
    /// Only the recipe in `file` (no flags).
    pub fn from_file(file: &Path) -> RecipeArgs {
        RecipeArgs {
            preprocess: Some(file.display().to_string()),
            ..RecipeArgs::default()
        }
    }

    /// Whether any recipe flag was given.
    pub fn given(&self) -> bool {
        self.preprocess.is_some()
            || self.resize.is_some()
            || self.crop.is_some()
            || self.channels.is_some()
            || self.scale.is_some()
            || self.mean.is_some()
            || self.std.is_some()
            || self.layout.is_some()
    }

    /// The recipe for a model of `input_shape`, checked against it.
    pub fn recipe(&self, input_shape: &[usize]) -> anyhow::Result<Recipe> {
        self.recipe_over(None, input_shape)
    }

    /// The recipe over `base` (a plan's recorded recipe) where no preset or
    /// file is given; flags override single fields either way.
    pub fn recipe_over(
        &self,
        base: Option<Recipe>,
        input_shape: &[usize],
    ) -> anyhow::Result<Recipe> {
        let mut r = match self.preprocess.as_deref() {
            None => base.unwrap_or_else(|| Recipe::default_for(input_shape)),
            Some(p) if Path::new(p).extension().is_some_and(|e| e == "toml") => {
                let text = std::fs::read_to_string(p).with_context(|| format!("read {p}"))?;
                Recipe::from_toml(&text).with_context(|| p.to_owned())?
            }
            Some(name) => Recipe::preset(name)?,
        };
        if let Some(s) = &self.resize {
            r.resize = Some(match sizes("resize", s)?.as_slice() {
                [s] => Resize::Shorter(*s),
                [h, w] => Resize::Exact([*h, *w]),
                _ => bail!("--resize {s}: give S or H,W"),
            });
        }
        if let Some(s) = &self.crop {
            r.crop = Some(match sizes("crop", s)?.as_slice() {
                [s] => Crop::Square(*s),
                [h, w] => Crop::Exact([*h, *w]),
                _ => bail!("--crop {s}: give S or H,W"),
            });
        }
        if let Some(c) = &self.channels {
            r.channels = ChannelOrder::parse(c)
                .with_context(|| format!("--channels {c}: give rgb, bgr or gray"))?;
        }
        if let Some(s) = self.scale {
            r.scale = s;
        }
        if let Some(m) = &self.mean {
            r.mean = m.clone();
        }
        if let Some(s) = &self.std {
            r.std = s.clone();
        }
        if let Some(l) = &self.layout {
            r.layout = TensorLayout::parse(l)
                .with_context(|| format!("--layout {l}: give nchw or nhwc"))?;
        }
        r.check(input_shape)?;
        Ok(r)
    }
}

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum BadImageArg {
    /// Stop at the first unreadable image, naming it
    #[default]
    Fail,
    /// Leave unreadable images out, count and name them in the report
    Skip,
}

/// Where labelled samples come from, and which of them.
#[derive(Args, Clone, Default)]
pub struct DataArgs {
    /// Labelled samples: IDX files (a folder or the images file), an image folder (one
    /// sub-folder of PNG/JPEG/BMP per class), NumPy (a folder with x.npy and y.npy, or an
    /// .npz), CIFAR-10/100 binary batches (a .bin or its folder). Default: the bundled
    /// Fashion-MNIST test split
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Only the first N samples (sorted file order, or the seeded shuffle)
    #[arg(long, value_parser = super::count_at_least_one)]
    pub limit: Option<usize>,
    /// Shuffle the samples with this seed before --limit (a seeded subset)
    #[arg(long, value_name = "S")]
    pub shuffle_seed: Option<u64>,
    /// An unreadable image: stop (fail), or leave it out and report it (skip)
    #[arg(long, value_enum, default_value = "fail")]
    pub on_bad_image: BadImageArg,
    /// Class names, one per line, in label order (reports use them)
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    #[command(flatten)]
    pub recipe: RecipeArgs,
}

impl BadImageArg {
    pub fn policy(self) -> OnBadImage {
        match self {
            BadImageArg::Fail => OnBadImage::Fail,
            BadImageArg::Skip => OnBadImage::Skip,
        }
    }
}

/// Without a path the bundled 28x28 grayscale Fashion-MNIST images are read:
/// refuse them at once, naming `flag`, for a model that takes something else.
pub fn check_bundled(path: Option<&Path>, input_shape: &[usize], flag: &str) -> anyhow::Result<()> {
    let fits = matches!(input_shape, [1, 1, 28, 28] | [1, 28, 28, 1]);
    if path.is_none() && !fits {
        bail!(
            "the bundled images are 28x28 grayscale (Fashion-MNIST) but the model takes \
             {input_shape:?}: give your own with {flag} PATH{}",
            if flag == "--calib" {
                " (or --calib synthetic, for size, memory and speed only)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Opens `path` (or the bundled data) for `role`: limit, seeded shuffle and
/// class names applied.
pub fn open_source(
    path: Option<&Path>,
    role: Role,
    limit: Option<usize>,
    shuffle_seed: Option<u64>,
    classes: Option<&Path>,
) -> anyhow::Result<DataSource> {
    let path = path.map(Path::to_owned).unwrap_or_else(bundled_data_dir);
    let mut source = DataSource::open(&path, role)?;
    if let Some(seed) = shuffle_seed {
        source.shuffle(seed);
    }
    if let Some(n) = limit {
        source.limit(n);
    }
    if let Some(file) = classes {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        source.set_class_names(edgefit::data::class_names(&text));
    }
    Ok(source)
}

impl DataArgs {
    /// The samples and the recipe for a model of `input_shape` (over a
    /// plan's recorded recipe, if any).
    pub fn open(
        &self,
        role: Role,
        input_shape: &[usize],
        recorded: Option<Recipe>,
    ) -> anyhow::Result<(DataSource, Recipe)> {
        check_bundled(self.data.as_deref(), input_shape, "--data")?;
        let recipe = self.recipe.recipe_over(recorded, input_shape)?;
        let source = open_source(
            self.data.as_deref(),
            role,
            self.limit,
            self.shuffle_seed,
            self.classes.as_deref(),
        )?;
        Ok((source, recipe))
    }
}
