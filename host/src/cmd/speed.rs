use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgefit::import::{import_onnx, ImportOptions};
use edgefit::speed::measure_speed;
use edgefit::table::Table;
use edgefit_engine::{KernelPath, Precision};

use super::compile::PrecisionArg;

/// Which engine kernels `speed` times.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum KernelsArg {
    Auto,
    NoAvx512,
    Portable,
}

impl KernelsArg {
    fn path(self) -> KernelPath {
        match self {
            KernelsArg::Auto => KernelPath::Auto,
            KernelsArg::NoAvx512 => KernelPath::NoAvx512,
            KernelsArg::Portable => KernelPath::Portable,
        }
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit speed models/resnet-fmnist.onnx\n  edgefit speed mynet.onnx --precision int8 --runs 50 --kernels portable,auto --json"
)]
pub struct SpeedCmd {
    /// ONNX model with weights
    model: PathBuf,
    /// Engine precisions to time next to tract f32
    #[arg(long = "precision", alias = "precisions", value_enum, value_delimiter = ',', default_values = ["int8", "f16", "f32"])]
    precisions: Vec<PrecisionArg>,
    /// Timed runs per engine (after one warm-up)
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Override the input shape, e.g. 1,3,224,224
    #[arg(long, value_name = "N,C,H,W", value_delimiter = ',', num_args = 1)]
    input_shape: Option<Vec<usize>>,
    /// Time int8 three ways for a pruned model: dense weights, sparse weights
    /// decoded to scratch (SIMD kernels), sparse zero-skipping kernels (no scratch)
    #[arg(long)]
    sparse_variants: bool,
    /// Engine kernel sets to time: `auto` (the fastest this CPU has:
    /// AVX-512 VNNI, else AVX2 on x86-64; NEON with SDOT, else NEON on
    /// aarch64), `no-avx512` (AVX2 even where AVX-512 exists; `auto`
    /// elsewhere), `portable` (no SIMD); each distinct set once
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["auto"])]
    kernels: Vec<KernelsArg>,
    /// Print JSON (schema edgefit.speed.v1)
    #[arg(long)]
    json: bool,
}

impl SpeedCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let model = import_onnx(
            &self.model,
            &ImportOptions {
                input_shape: self.input_shape.clone(),
            },
        )
        .with_context(|| format!("speed {}", self.model.display()))?;
        let precisions: Vec<Precision> = self.precisions.iter().map(|p| p.precision()).collect();
        let runs = self.runs.max(1);
        let report = measure_speed(
            &self.model,
            &model,
            &precisions,
            runs,
            self.sparse_variants,
            &self.kernels.iter().map(|k| k.path()).collect::<Vec<_>>(),
            &mut |what| eprintln!("timing {what}..."),
        )
        .with_context(|| format!("speed {}", self.model.display()))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        println!(
            "{} {:?} on {} ({}, {})",
            report.model, report.input_shape, report.host, report.source, report.note
        );
        let mut t = Table::new(&[
            "engine",
            "precision",
            "weights",
            "kernels",
            "runs",
            "median ms",
            "p90 ms",
            "x tract f32",
        ]);
        for r in &report.rows {
            t.row(vec![
                r.engine.clone(),
                r.precision.to_owned(),
                r.weights.to_owned(),
                r.kernels.to_owned(),
                r.runs.to_string(),
                format!("{:.2}", r.median_ms),
                format!("{:.2}", r.p90_ms),
                format!("{:.2}", r.speedup_vs_tract),
            ]);
        }
        print!("{}", t.render());
        Ok(())
    }
}
