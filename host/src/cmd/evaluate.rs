use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use edgefit::compile::precision_name;
use edgefit::data::Role;
use edgefit::evaluate::{agreement, evaluate_data, render_text, EvalData};
use edgefit::import::{declared_input_shape, import_onnx, ImportOptions};
use edgefit::reference::TractReference;
use edgefit::runner::{plan_recipe, PlanRunner, Runner};
use edgefit_engine::{AlignedBytes, MAGIC};

use super::data_args::DataArgs;
use super::progress;

/// The input shape of an ONNX model: as edgefit imports it, or (a model
/// only tract runs) as the file declares it.
fn onnx_input_shape(path: &Path) -> anyhow::Result<Vec<usize>> {
    match import_onnx(path, &ImportOptions::default()) {
        Ok(model) => Ok(model.graph.tensor(model.graph.input).shape.clone()),
        Err(_) => {
            declared_input_shape(path).with_context(|| format!("evaluate {}", path.display()))
        }
    }
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    edgefit evaluate models/resnet-fmnist.onnx                     # bundled test split, tract f32\n  \
    edgefit evaluate mynet.onnx --data val/ --preprocess imagenet --json\n  \
    edgefit evaluate mynet-int8.efp --data val/ --reference mynet.onnx   # recipe from the plan")]
pub struct EvaluateCmd {
    /// A compiled plan (.efp, run by the edgefit engine) or an ONNX model (run by tract, the f32 reference)
    target: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// The ONNX model a plan was compiled from, to report agreement with its f32 predictions
    #[arg(long, value_name = "MODEL.onnx")]
    reference: Option<PathBuf>,
    /// Print the report as JSON (schema edgefit.evaluate.v1, docs/evaluate-json.md)
    #[arg(long)]
    json: bool,
    /// Also write the predicted class of every image, one per line, in dataset order
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
}

fn tract_for(path: &Path, shape: &[usize]) -> anyhow::Result<TractReference> {
    TractReference::load(path, shape, &[]).with_context(|| format!("load {}", path.display()))
}

impl EvaluateCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let bytes = std::fs::read(&self.target)
            .with_context(|| format!("read {}", self.target.display()))?;
        let is_plan = bytes.starts_with(&MAGIC);
        // A plan on a cache line: the f32 kernels read the weights in place.
        let image = AlignedBytes::copy_of(if is_plan { &bytes } else { &[] });
        drop(bytes);
        let (mut runner, shape, recorded) = if is_plan {
            let plan = PlanRunner::new(&image)
                .with_context(|| format!("load {}", self.target.display()))?;
            let shape = plan.input_shape();
            let recorded =
                plan_recipe(&image).with_context(|| format!("load {}", self.target.display()))?;
            (Runner::Plan(Box::new(plan)), shape, recorded)
        } else {
            let shape = onnx_input_shape(&self.target)?;
            (Runner::Tract(tract_for(&self.target, &shape)?), shape, None)
        };
        let (source, recipe) = self
            .data
            .open(Role::Test, &shape, recorded)
            .with_context(|| format!("evaluate {}", self.target.display()))?;
        let data = EvalData {
            source: &source,
            recipe: &recipe,
            input_shape: &shape,
            on_bad: self.data.on_bad_image.policy(),
        };
        let engine = match &runner {
            Runner::Plan(p) => format!(
                "edgefit-engine {} plan, {} kernels",
                precision_name(p.precision()),
                p.kernels_name()
            ),
            Runner::Tract(_) => "tract f32".to_owned(),
        };
        let name = self.target.display().to_string();
        let bar = progress::bar("evaluate");
        let mut report = evaluate_data(
            &mut runner,
            engine,
            name,
            &data,
            &mut progress::callback(&bar),
        )
        .with_context(|| format!("evaluate {}", self.target.display()))?;
        bar.finish_and_clear();
        if let Some(reference) = &self.reference {
            if !is_plan {
                bail!(
                    "--reference compares a plan with its ONNX model; {} is already the model",
                    self.target.display()
                );
            }
            let mut tract = Runner::Tract(tract_for(reference, &shape)?);
            let bar = progress::bar("reference");
            let base = evaluate_data(
                &mut tract,
                "tract f32".into(),
                reference.display().to_string(),
                &data,
                &mut progress::callback(&bar),
            )?;
            bar.finish_and_clear();
            report.agreement_with_reference =
                Some(agreement(&report.predictions, &base.predictions));
            report.reference = Some(format!("tract f32 on {}", reference.display()));
        }
        if let Some(path) = &self.predictions {
            let lines: String = report
                .predictions
                .iter()
                .map(|p| format!("{p}\n"))
                .collect();
            std::fs::write(path, lines).with_context(|| format!("write {}", path.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", render_text(&report));
        }
        Ok(())
    }
}
