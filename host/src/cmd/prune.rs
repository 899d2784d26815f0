use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use edgefit::import::ImportOptions;
use edgefit::inspect::inspect_onnx;
use edgefit::prune::{load_model, prune_magnitude, save_model, MagnitudeOptions, Scope};

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Method {
    /// Unstructured: the smallest-magnitude weights of conv and dense layers become zero
    Magnitude,
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
pub struct PruneCmd {
    /// ONNX model with its weights
    #[arg(value_name = "MODEL.onnx")]
    model: PathBuf,
    #[arg(long, value_enum, default_value = "magnitude")]
    method: Method,
    /// Fraction of the weights to remove, in [0, 1)
    #[arg(long)]
    sparsity: f64,
    #[arg(long, value_enum, default_value = "layer")]
    scope: ScopeArg,
    /// Layers to leave alone
    #[arg(long, value_enum, value_delimiter = ',')]
    exclude: Vec<Exclude>,
    /// Where to write the pruned ONNX model
    #[arg(short, long, value_name = "PRUNED.onnx")]
    output: PathBuf,
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
        let Method::Magnitude = self.method;
        let opts = magnitude_options(self.sparsity, self.scope, &self.exclude);
        let what = || format!("prune {}", self.model.display());
        // The model must import before anything is written: the same checks
        // as `inspect` (supported ops, static shapes).
        let before = inspect_onnx(&self.model, &ImportOptions::default()).with_context(what)?;
        let mut model = load_model(&self.model).with_context(what)?;
        let report = prune_magnitude(&mut model, &opts).with_context(what)?;
        save_model(&model, &self.output).with_context(what)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }

        println!(
            "{:<36} {:>6} {:>10} {:>9} {:>9}",
            "layer", "op", "weights", "zero", "sparsity"
        );
        for l in &report.layers {
            let note = if l.excluded { "  (excluded)" } else { "" };
            println!(
                "{:<36} {:>6} {:>10} {:>9} {:>8.1}%{note}",
                l.node,
                l.op,
                l.weights,
                l.zeros_after,
                100.0 * l.zeros_after as f64 / l.weights.max(1) as f64
            );
        }
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
        println!("wrote {}", self.output.display());
        Ok(())
    }
}
