use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use edgefit::compile::precision_name;
use edgefit::data::{OnBadImage, Role};
use edgefit::evaluate::EvalData;
use edgefit::import::{import_onnx, ImportOptions};
use edgefit::prune::{ChannelOptions, ChannelScope};
use edgefit::sweep::{render_csv, sweep_point, SweepPrune, SweepSpec};

use super::compile::PrecisionArg;
use super::data_args::{check_bundled, open_source, RecipeArgs};
use super::progress;
use super::prune::{magnitude_options, Exclude, Method, ScopeArg};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit sweep models/resnet-fmnist.onnx                           # accuracy at 0 .. 0.9 sparsity\n  edgefit sweep mynet.onnx --sparsity 0,0.5,0.8 --data val/ --precision f32 -o sweep.csv"
)]
pub struct SweepCmd {
    /// ONNX model with its weights
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    /// Sparsities to try, each in [0, 1)
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.7,0.9")]
    sparsity: Vec<f64>,
    #[arg(long, value_enum, default_value = "magnitude")]
    method: Method,
    #[arg(long, value_enum, default_value = "layer")]
    scope: ScopeArg,
    /// Layers to leave alone
    #[arg(long, value_enum, value_delimiter = ',')]
    exclude: Vec<Exclude>,
    /// Precision of the compiled plans
    #[arg(long, value_enum, default_value = "int8")]
    precision: PrecisionArg,
    /// Test samples, in any format `evaluate --data` takes (default: the bundled test split)
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Evaluate only the first N test samples
    #[arg(long, value_parser = super::count_at_least_one)]
    limit: Option<usize>,
    /// Calibration samples for int8 and --correct-bias (default: the calibration split of
    /// --data where it has one: IDX calib-/train- files, CIFAR data_batch_1.bin; else
    /// give it)
    #[arg(long, value_name = "PATH")]
    calib: Option<PathBuf>,
    /// Calibration samples to use (int8 and --correct-bias)
    #[arg(long, default_value_t = 500, value_parser = super::count_at_least_one)]
    calib_samples: usize,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Correct biases for what pruning removed, at the mean activations measured
    /// on the calibration images
    #[arg(long)]
    correct_bias: bool,
    /// Write the results to a .csv or .json file
    #[arg(short = 'o', long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

impl SweepCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let prune = match self.method {
            Method::Magnitude => SweepPrune::Magnitude {
                options: magnitude_options(0.0, self.scope, &self.exclude),
                correct_bias: self.correct_bias,
            },
            Method::Channels => SweepPrune::Channels {
                options: ChannelOptions {
                    sparsity: 0.0,
                    scope: match self.scope {
                        ScopeArg::Layer => ChannelScope::Layer,
                        ScopeArg::Global => ChannelScope::Global,
                        ScopeArg::Lamp => bail!(
                            "--scope lamp ranks single weights; channel pruning takes --scope layer or global"
                        ),
                    },
                    exclude_first: self.exclude.contains(&Exclude::First),
                    exclude_last: self.exclude.contains(&Exclude::Last),
                },
                correct_bias: self.correct_bias,
            },
        };
        if let Some(bad) = self.sparsity.iter().find(|s| !(0.0..1.0).contains(*s)) {
            bail!("sparsity {bad} is outside [0, 1)");
        }
        let out_kind = match &self.out {
            None => None,
            Some(path) => match path.extension().and_then(|e| e.to_str()) {
                Some(e @ ("csv" | "json")) => Some(e.to_owned()),
                _ => bail!("--out {}: use a .csv or .json file name", path.display()),
            },
        };
        let shape = {
            let m = import_onnx(&self.model, &ImportOptions::default())
                .with_context(|| format!("sweep {}", self.model.display()))?;
            m.graph.tensor(m.graph.input).shape.clone()
        };
        check_bundled(self.data.as_deref(), &shape, "--data")?;
        let recipe = self.recipe.recipe(&shape)?;
        let test = open_source(self.data.as_deref(), Role::Test, self.limit, None, None)
            .context("test data")?;
        let precision = self.precision.precision();
        let calib: Vec<Vec<f32>> =
            if precision == edgefit_engine::Precision::Int8 || self.correct_bias {
                let path = self.calib.as_deref().or(self.data.as_deref());
                let c = open_source(
                    path,
                    Role::Calibration,
                    Some(self.calib_samples),
                    None,
                    None,
                )
                .context("calibration data")?;
                if self.calib.is_none() && c.path() == test.path() {
                    bail!(
                        "{} has no calibration split apart from its test samples: give --calib \
                         PATH (calibration must not read the test samples)",
                        test.path().display()
                    );
                }
                let (t, _) = c
                    .tensors(0..c.len(), &recipe, &shape, OnBadImage::Fail)
                    .context("calibration data")?;
                t.into_iter().map(|(_, t, _)| t).collect()
            } else {
                Vec::new()
            };
        let test = EvalData {
            source: &test,
            recipe: &recipe,
            input_shape: &shape,
            on_bad: OnBadImage::Fail,
        };
        // Removed when it drops, on success and on every error path.
        let work_dir = tempfile::Builder::new()
            .prefix("edgefit-sweep-")
            .tempdir()
            .context("create a work folder")?;
        let work = work_dir.path().to_owned();
        let spec = SweepSpec {
            model: &self.model,
            prune,
            precision,
            calib: &calib,
            test: &test,
            work_dir: &work,
        };
        let bar = progress::bar("sweep");
        let mut points = Vec::new();
        for &s in &self.sparsity {
            let mut cb = |stage: &str, done: usize, total: usize| {
                bar.set_prefix(format!("{s} {stage}"));
                progress::callback(&bar)(done, total);
            };
            let p = sweep_point(&spec, s, &mut cb);
            points.push(
                p.with_context(|| format!("sweep {} at sparsity {s}", self.model.display()))?,
            );
        }
        bar.finish_and_clear();
        drop(work_dir);

        if let (Some(path), Some(kind)) = (&self.out, out_kind) {
            let text = if kind == "csv" {
                render_csv(&points)
            } else {
                serde_json::to_string_pretty(&points)?
            };
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&points)?);
            return Ok(());
        }
        println!(
            "{} on {} test images, {} plans (all figures measured)",
            self.model.display(),
            test.source.len(),
            precision_name(precision)
        );
        let mut t = edgefit::table::Table::new(&[
            "sparsity",
            "achieved",
            "non-zero",
            "MACs",
            "f32 tract",
            "plan",
            "agreement",
            "plan bytes",
        ]);
        for p in &points {
            t.row(vec![
                p.sparsity_requested.to_string(),
                format!("{:.1}%", 100.0 * p.sparsity_achieved),
                p.nonzero_weights.to_string(),
                p.macs.to_string(),
                format!("{:.2}%", 100.0 * p.accuracy_f32_tract),
                format!("{:.2}%", 100.0 * p.accuracy_plan),
                format!("{:.2}%", 100.0 * p.agreement_plan_f32),
                p.plan_bytes.to_string(),
            ]);
        }
        print!("{}", t.render());
        println!(
            "(magnitude: int8 plans store pruned layers bitmap-sparse; channels: the layers themselves shrink)"
        );
        Ok(())
    }
}
