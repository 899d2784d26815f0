use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgefit::data::Role;
use edgefit::mlperf::{write_dataset, DEFAULT_MODEL_ID};
use edgefit::runner::{onnx_shape, plan_input};

use super::data_args::DataArgs;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    edgefit mlperf-dataset resnet-int8.efp --limit 200 -o datasets      # bundled test split\n  \
    edgefit mlperf-dataset mynet-int8.efp --data val/ -o datasets       # the plan's recipe sizes the images\n  \
    python3 main.py --dataset_path=datasets --mode=a ...                # the official runner (docs/mlperf-tiny.md)")]
pub struct MlperfDatasetCmd {
    /// The plan the images are for (its input size and recorded recipe; recipe flags override)
    plan: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// The folder to write: OUT/<model id>/NNNNN.bin and OUT/<model id>/y_labels.csv
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
    /// The model version the firmware announces (`profile` → m-model-[ic01]), naming the folder
    #[arg(long, default_value = DEFAULT_MODEL_ID)]
    model_id: String,
}

impl MlperfDatasetCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let bytes =
            std::fs::read(&self.plan).with_context(|| format!("read {}", self.plan.display()))?;
        let (shape, recorded) =
            plan_input(&bytes).with_context(|| format!("load {}", self.plan.display()))?;
        let plan = edgefit_engine::Plan::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("load {}: {e}", self.plan.display()))?;
        let output = plan
            .output()
            .map_err(|e| anyhow::anyhow!("load {}: {e}", self.plan.display()))?;
        let classes: usize = onnx_shape(&output).iter().product();
        let (source, recipe) = self.data.open(Role::Test, &shape, recorded)?;
        let written = write_dataset(
            &source,
            &recipe,
            &shape,
            classes,
            &self.out,
            &self.model_id,
            self.data.on_bad_image.policy(),
        )?;
        for s in &written.skipped {
            eprintln!("skipped: {s}");
        }
        println!(
            "wrote {}: {} image(s) of {} bytes (8-bit pixels at the model's size, HWC; \
             geometry of: {}) and y_labels.csv ({classes} classes)",
            written.folder.display(),
            written.images,
            written.bytes_per_image,
            recipe.describe()
        );
        println!(
            "the device applies the rest of the recipe itself; run the MLPerf Tiny runner with \
             --dataset_path={}",
            self.out.display()
        );
        Ok(())
    }
}
