//! One module per subcommand; each has an args struct with `run`.

mod bench;
mod compare;
mod compile;
mod data_args;
mod device;
mod devices;
mod evaluate;
mod flash;
mod flash_firmware;
mod inspect;
mod mlperf_dataset;
mod preprocess;
mod progress;
mod prune;
mod report;
mod speed;
mod sweep;

use clap::Subcommand;

/// A count flag (`--limit N`, `--device-limit N`): a whole number of at
/// least 1 (0 would run nothing and report an empty result as a success).
pub fn count_at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("0 images would run nothing: give 1 or more".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number of 1 or more")),
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// VGG against ResNet on every device profile: accuracy, size, RAM, latency, energy, fit; table, JSON, CSV, plots, HTML report
    Compare(Box<compare::CompareCmd>),
    /// List the device profiles (RAM, flash, core, power) compare judges against
    Devices(devices::DevicesCmd),
    /// Regenerate the report (HTML, plots, CSV) from saved results, merging several devices
    Report(report::ReportCmd),
    /// Per-layer parameters, MACs, weight and activation bytes, and planned activation RAM
    Inspect(inspect::InspectCmd),
    /// Quantise (int8, f16) and compile a model into a memory-planned plan (.efp)
    Compile(compile::CompileCmd),
    /// Top-1 accuracy, latency and confusion matrix of a plan (edgefit engine) or an ONNX model (tract)
    Evaluate(evaluate::EvaluateCmd),
    /// Turn images into a model's input tensors with a preprocessing recipe (written as .npy)
    Preprocess(preprocess::PreprocessCmd),
    /// Time the edgefit engine (int8, f16, f32) next to tract f32 on this host (a benchmark)
    Speed(speed::SpeedCmd),
    /// Store a plan on a device (firmware over a UART, or the Linux agent) and make it active
    Flash(flash::FlashCmd),
    /// Field benchmark of a device's active plan on the test images: accuracy, latency, memory, power
    Bench(bench::BenchCmd),
    /// Prune a model's conv and dense weights and write the pruned ONNX model
    Prune(prune::PruneCmd),
    /// Accuracy against sparsity: prune, compile and evaluate at each sparsity
    Sweep(sweep::SweepCmd),
    /// Write images in the MLPerf Tiny runner's dataset layout (ic01/*.bin, y_labels.csv) for a plan
    MlperfDataset(mlperf_dataset::MlperfDatasetCmd),
    /// Program a board's firmware (an ELF) over SWD/JTAG with a debug probe (probe-rs), then reset and run it
    FlashFirmware(flash_firmware::FlashFirmwareCmd),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Compare(c) => c.run(),
            Command::Devices(c) => c.run(),
            Command::Report(c) => c.run(),
            Command::Inspect(c) => c.run(),
            Command::Compile(c) => c.run(),
            Command::Evaluate(c) => c.run(),
            Command::Preprocess(c) => c.run(),
            Command::Speed(c) => c.run(),
            Command::Flash(c) => c.run(),
            Command::Bench(c) => c.run(),
            Command::Prune(c) => c.run(),
            Command::Sweep(c) => c.run(),
            Command::MlperfDataset(c) => c.run(),
            Command::FlashFirmware(c) => c.run(),
        }
    }
}
