use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use super::data_args::{check_bundled, open_source, RecipeArgs};
use edgefit::data::{OnBadImage, Role};
use edgefit::import::{import_onnx, ImportOptions};
use edgefit::inspect::inspect_onnx;
use edgefit::prune::channels::activation_means;
use edgefit::prune::{
    correction_inputs, load_model, magnitude_correction_inputs, prune_channels,
    prune_magnitude_corrected, save_model, ActivationMeans, ChannelOptions, ChannelReport,
    ChannelScope, MagnitudeOptions, Scope,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Method {
    /// Unstructured: the smallest-magnitude weights of conv and dense layers become zero
    Magnitude,
    /// Structured: whole conv output channels (lowest L1 norm) and the matching
    /// inputs of their consumers are removed; residual-coupled channels go together
    Channels,
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum ScopeArg {
    /// The same fraction of every layer
    Layer,
    /// One magnitude threshold over all layers
    Global,
    /// One threshold on LAMP scores (layer-adaptive, scale-free)
    Lamp,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Exclude {
    /// The first conv/dense layer
    First,
    /// The last conv/dense layer
    Last,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit prune models/vgg-fmnist.onnx --sparsity 0.5 -o vgg-50.onnx   # LAMP, bias-corrected on the bundled images\n  edgefit prune mynet.onnx --sparsity 0.5 --scope layer --no-correct-bias -o mynet-50.onnx\n  edgefit prune mynet.onnx --method channels --sparsity 0.3 --calib val/ -o mynet-ch30.onnx --json"
)]
pub struct PruneCmd {
    /// ONNX model with its weights
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    #[arg(long, value_enum, default_value = "magnitude")]
    method: Method,
    /// Fraction of the weights to remove, in [0, 1)
    #[arg(long)]
    sparsity: f64,
    /// How the sparsity is spread over the layers (default: lamp for magnitude, which
    /// loses least in this project's measurements; layer for channels)
    #[arg(long, value_enum)]
    scope: Option<ScopeArg>,
    /// Layers to leave alone
    #[arg(long, value_enum, value_delimiter = ',')]
    exclude: Vec<Exclude>,
    /// Where to write the pruned ONNX model
    #[arg(
        short = 'o',
        long = "out",
        alias = "output",
        value_name = "PRUNED.onnx"
    )]
    output: PathBuf,
    /// Correct biases for what was removed, at the mean activations measured by
    /// tract on the calibration images (channels: each consumer's bias; magnitude:
    /// each pruned layer's own bias). The default wherever calibration data suit the
    /// model (--calib, or the bundled images for a 28x28 grayscale model); this flag
    /// makes it an error when none do
    #[arg(long, conflicts_with = "no_correct_bias")]
    correct_bias: bool,
    /// Prune without bias correction
    #[arg(long)]
    no_correct_bias: bool,
    /// Calibration samples for --correct-bias, in any format `evaluate --data` takes
    /// (default: the bundled subset of the Fashion-MNIST training split)
    #[arg(long, value_name = "PATH")]
    calib: Option<PathBuf>,
    /// Calibration samples to use for --correct-bias
    #[arg(long, default_value_t = 200, value_parser = super::count_at_least_one)]
    calib_samples: usize,
    /// How calibration images become the model's input
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// The library's options from the command-line choices.
pub(super) fn magnitude_options(
    sparsity: f64,
    scope: ScopeArg,
    exclude: &[Exclude],
) -> MagnitudeOptions {
    MagnitudeOptions {
        sparsity,
        scope: match scope {
            ScopeArg::Layer => Scope::Layer,
            ScopeArg::Global => Scope::Global,
            ScopeArg::Lamp => Scope::Lamp,
        },
        exclude_first: exclude.contains(&Exclude::First),
        exclude_last: exclude.contains(&Exclude::Last),
    }
}

impl PruneCmd {
    pub fn run(self) -> anyhow::Result<()> {
        if self.method == Method::Channels {
            return self.run_channels();
        }
        let opts = magnitude_options(
            self.sparsity,
            self.scope.unwrap_or(ScopeArg::Lamp),
            &self.exclude,
        );
        let what = || format!("prune {}", self.model.display());
        // The model must import before anything is written: the same checks
        // as `inspect` (supported ops, static shapes).
        let before = inspect_onnx(&self.model, &ImportOptions::default()).with_context(what)?;
        let mut model = load_model(&self.model).with_context(what)?;
        let means = if self.corrects_bias()? {
            let names = magnitude_correction_inputs(&model).with_context(what)?;
            Some(self.means(&names)?)
        } else {
            None
        };
        let report =
            prune_magnitude_corrected(&mut model, &opts, means.as_ref()).with_context(what)?;
        save_model(&model, &self.output).with_context(what)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }

        let mut t = edgefit::table::Table::new(&["layer", "op", "weights", "zero", "sparsity", ""]);
        for l in &report.layers {
            t.row(vec![
                l.node.clone(),
                l.op.to_string(),
                l.weights.to_string(),
                l.zeros_after.to_string(),
                format!(
                    "{:.1}%",
                    100.0 * l.zeros_after as f64 / l.weights.max(1) as f64
                ),
                if l.excluded {
                    "(excluded)".into()
                } else {
                    String::new()
                },
            ]);
        }
        print!("{}", t.render());
        let (z0, z1) = report.zeros();
        let params = before.totals.params_exported;
        // Effective MACs: each layer's MACs times its fraction of non-zero
        // weights (what a kernel that skips zeros would do at best).
        let macs = before.totals.macs;
        let saved: f64 = report
            .layers
            .iter()
            .filter_map(|l| {
                let stats = before.layers.iter().find(|s| s.name == l.node)?;
                Some(
                    stats.macs as f64 * (l.zeros_after - l.zeros_before) as f64
                        / l.weights.max(1) as f64,
                )
            })
            .sum();
        println!();
        println!(
            "parameters  {} -> {} non-zero ({} of {} conv/dense weights zero, {:.1}% of the pruned layers)",
            params - z0,
            params - z1,
            z1,
            report.weights(),
            100.0 * report.pruned_sparsity()
        );
        println!(
            "MACs        {} dense; {:.0} if every multiply by a zero weight were skipped",
            macs,
            macs as f64 - saved
        );
        let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!(
            "bytes       {} -> {} (ONNX stores the zeros too)",
            size(&self.model),
            size(&self.output)
        );
        if means.is_some() {
            println!("biases      corrected for the removed weights at the calibration images' mean activations");
        }
        println!("wrote {}", self.output.display());
        Ok(())
    }
}

impl PruneCmd {
    /// Whether to correct biases: asked for (`--correct-bias`), refused
    /// (`--no-correct-bias`), or by default wherever calibration data suit
    /// the model.
    fn corrects_bias(&self) -> anyhow::Result<bool> {
        if self.no_correct_bias {
            return Ok(false);
        }
        if self.correct_bias || self.calib.is_some() {
            return Ok(true);
        }
        let m = import_onnx(&self.model, &ImportOptions::default())
            .with_context(|| format!("prune {}", self.model.display()))?;
        if !m.graph.has_weight_values() {
            // Refused with its own message when pruning starts.
            return Ok(false);
        }
        let shape = m.graph.tensor(m.graph.input).shape.clone();
        let fits = check_bundled(None, &shape, "--calib").is_ok();
        if !fits {
            eprintln!(
                "{}: the bundled calibration images (28x28 grayscale) do not suit its input \
                 {shape:?}: pruning without bias correction (give --calib for it)",
                self.model.display()
            );
        }
        Ok(fits)
    }

    /// Mean activations of `names` in the unpruned model over the calibration
    /// images (for --correct-bias).
    fn means(&self, names: &[String]) -> anyhow::Result<ActivationMeans> {
        let shape = {
            let m = import_onnx(&self.model, &ImportOptions::default())
                .with_context(|| format!("prune {}", self.model.display()))?;
            m.graph.tensor(m.graph.input).shape.clone()
        };
        check_bundled(self.calib.as_deref(), &shape, "--calib")?;
        let recipe = self.recipe.recipe(&shape)?;
        let data = open_source(
            self.calib.as_deref(),
            Role::Calibration,
            Some(self.calib_samples),
            None,
            None,
        )
        .context("calibration data")?;
        let (tensors, _) = data
            .tensors(0..data.len(), &recipe, &shape, OnBadImage::Fail)
            .context("calibration data")?;
        let samples: Vec<Vec<f32>> = tensors.into_iter().map(|(_, t, _)| t).collect();
        eprintln!(
            "measuring mean activations of {} tensors on {} calibration images",
            names.len(),
            samples.len()
        );
        activation_means(&self.model, &shape, names, &samples)
            .context("bias correction: running the model on the calibration images")
    }

    fn run_channels(&self) -> anyhow::Result<()> {
        let what = || format!("prune {}", self.model.display());
        let scope = match self.scope.unwrap_or(ScopeArg::Layer) {
            ScopeArg::Layer => ChannelScope::Layer,
            ScopeArg::Global => ChannelScope::Global,
            ScopeArg::Lamp => bail!(
                "prune {}: --scope lamp ranks single weights; channel pruning takes --scope layer or global",
                self.model.display()
            ),
        };
        let opts = ChannelOptions {
            sparsity: self.sparsity,
            scope,
            exclude_first: self.exclude.contains(&Exclude::First),
            exclude_last: self.exclude.contains(&Exclude::Last),
        };
        let before = inspect_onnx(&self.model, &ImportOptions::default()).with_context(what)?;
        let mut model = load_model(&self.model).with_context(what)?;
        let means = if self.corrects_bias()? {
            let names = correction_inputs(&model).with_context(what)?;
            Some(self.means(&names)?)
        } else {
            None
        };
        let report = prune_channels(&mut model, &opts, means.as_ref()).with_context(what)?;
        save_model(&model, &self.output).with_context(what)?;
        let after = match inspect_onnx(&self.output, &ImportOptions::default()) {
            Ok(a) => a,
            Err(e) => {
                let _ = std::fs::remove_file(&self.output);
                return Err(e).context(format!(
                    "the pruned model does not import; nothing written to {}",
                    self.output.display()
                ));
            }
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        print_channel_report(&report);
        let (b, a) = (&before.totals, &after.totals);
        let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!();
        println!(
            "parameters  {} -> {} ({:.1}% fewer)",
            b.params_exported,
            a.params_exported,
            100.0 * (1.0 - a.params_exported as f64 / b.params_exported.max(1) as f64)
        );
        println!(
            "MACs        {} -> {} ({:.2}x fewer)",
            b.macs,
            a.macs,
            b.macs as f64 / a.macs.max(1) as f64
        );
        println!(
            "bytes       {} -> {}",
            size(&self.model),
            size(&self.output)
        );
        if report.bias_correction {
            println!("biases      corrected for the removed channels' mean activations");
        }
        println!("wrote {}", self.output.display());
        Ok(())
    }
}

fn print_channel_report(report: &ChannelReport) {
    let mut t = edgefit::table::Table::new(&[
        "channel group (convs writing it)",
        "channels",
        "kept",
        "consumers / note",
    ]);
    for g in &report.groups {
        let kept = g.channels - g.removed.len();
        let note = match &g.frozen {
            Some(why) => format!("left alone: {why}"),
            None => g
                .consumers
                .iter()
                .map(|c| c.node.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        t.row(vec![
            g.producers.join(" + "),
            g.channels.to_string(),
            kept.to_string(),
            note,
        ]);
    }
    print!("{}", t.render());
    let (n, r) = report.channels();
    println!(
        "removed {r} of {n} channels in the prunable groups ({:.1}%)",
        100.0 * r as f64 / n.max(1) as f64
    );
}
