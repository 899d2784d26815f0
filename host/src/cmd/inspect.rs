use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgefit::import::ImportOptions;
use edgefit::inspect::{inspect_onnx, render_side_by_side, render_text};
use edgefit::inspect_plan::{inspect_plan, render_plan_text};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit inspect models/resnet-fmnist.onnx          # per-layer parameters, MACs, activation RAM\n  edgefit inspect resnet-int8.efp --json             # a compiled plan: ops, tensors, arena"
)]
pub struct InspectCmd {
    /// ONNX model(s) or compiled plans (.efp) to inspect; with several models, a side-by-side summary follows
    #[arg(required = true, value_name = "MODEL.onnx")]
    models: Vec<PathBuf>,
    /// Print the stable machine-readable report (schema edgefit.inspect.v1; an array for several models)
    #[arg(long)]
    json: bool,
    /// Override the input shape, e.g. 1,3,224,224
    #[arg(long, value_name = "N,C,H,W", value_delimiter = ',', num_args = 1)]
    input_shape: Option<Vec<usize>>,
}

impl InspectCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let options = ImportOptions {
            input_shape: self.input_shape,
        };
        // Plans are reported on their own; models can be compared side by side.
        let (plans, models): (Vec<&PathBuf>, Vec<&PathBuf>) = self.models.iter().partition(|m| {
            std::fs::read(m)
                .map(|b| b.starts_with(&edgefit_engine::MAGIC))
                .unwrap_or(false)
        });
        for p in &plans {
            let data = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            let report = inspect_plan(&p.display().to_string(), &data)
                .with_context(|| format!("inspect {}: invalid plan", p.display()))?;
            if self.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", render_plan_text(&report));
            }
        }
        if models.is_empty() {
            return Ok(());
        }
        let reports = models
            .into_iter()
            .map(|m| inspect_onnx(m, &options).with_context(|| format!("inspect {}", m.display())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if self.json {
            let json = match reports.as_slice() {
                [one] => serde_json::to_string_pretty(one)?,
                many => serde_json::to_string_pretty(many)?,
            };
            println!("{json}");
            return Ok(());
        }
        for r in &reports {
            println!("{}", render_text(r));
        }
        if reports.len() > 1 {
            print!("{}", render_side_by_side(&reports));
        }
        Ok(())
    }
}
