use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use edgefit::data::{npy, RawImage};
use edgefit::import::{import_onnx, ImportOptions};

use super::data_args::RecipeArgs;

#[derive(Args)]
#[command(
    after_help = "Example:\n  edgefit preprocess cat.jpg dog.png --model resnet.onnx --preprocess imagenet --out t.npy\n  \
    python3 -c \"import numpy; print(numpy.load('t.npy').shape)\"   # (2, 3, 224, 224)"
)]
pub struct PreprocessCmd {
    /// Images (PNG, JPEG, BMP) to turn into input tensors
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// The model whose input the tensors are for
    #[arg(long, value_name = "MODEL.onnx", conflicts_with = "input_shape")]
    model: Option<PathBuf>,
    /// The input shape instead of a model, e.g. 1,3,224,224 (1,224,224,3 with --layout nhwc)
    #[arg(long, value_name = "N,C,H,W", value_delimiter = ',', num_args = 1)]
    input_shape: Option<Vec<usize>>,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Write the tensors as one float32 .npy array [images, ...input shape without N]
    #[arg(short = 'o', long, value_name = "FILE.npy")]
    out: PathBuf,
}

impl PreprocessCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let shape = match (&self.model, &self.input_shape) {
            (Some(m), _) => {
                let model = import_onnx(m, &ImportOptions::default())
                    .with_context(|| format!("preprocess for {}", m.display()))?;
                model.graph.tensor(model.graph.input).shape.clone()
            }
            (None, Some(s)) => s.clone(),
            (None, None) => bail!("give --model MODEL.onnx or --input-shape N,C,H,W"),
        };
        let recipe = self.recipe.recipe(&shape)?;
        let mut all = vec![];
        for path in &self.images {
            let img = RawImage::decode_file(path)?;
            let t = recipe.apply(&img, &shape).map_err(|reason| {
                anyhow::anyhow!("{}: {} image: {reason}", path.display(), img.describe())
            })?;
            all.extend(t);
        }
        let mut out_shape = vec![self.images.len()];
        out_shape.extend_from_slice(&shape[1..]);
        npy::write_f32(&self.out, &out_shape, &all)?;
        println!(
            "wrote {}: {} image(s) as {:?} float32, preprocessed: {}",
            self.out.display(),
            self.images.len(),
            out_shape,
            recipe.describe()
        );
        Ok(())
    }
}
