use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use edgefit::data::{bundled_data_dir, load_idx_dataset};
use edgefit::device::bench::{bench, render_csv, render_text, BenchOptions};
use edgefit::device::flash::cached_plan_path;

use super::device::PortArgs;
use super::progress;

#[derive(Args)]
pub struct BenchCmd {
    #[command(flatten)]
    port: PortArgs,
    /// The plan the device runs (default: the copy `edgefit flash` kept of the device's active plan)
    plan: Option<PathBuf>,
    /// Folder with t10k-images-idx3-ubyte[.gz] and labels (default: the bundled test split)
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Benchmark only the first N images
    #[arg(long)]
    limit: Option<usize>,
    /// Write the results: .json (schema edgefit.bench.v1) or .csv (one row per sample)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
    /// Do not ask for raw outputs (skips the byte-for-byte check against the host engine)
    #[arg(long)]
    no_outputs: bool,
}

impl BenchCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let dir = self.data.clone().unwrap_or_else(bundled_data_dir);
        let mut data = load_idx_dataset(&dir, "t10k").context("test data")?;
        if let Some(n) = self.limit {
            data.truncate(n);
        }
        let mut client = self.port.connect()?;
        let plan_path = match &self.plan {
            Some(p) => p.clone(),
            None => {
                let Some(active) = client.device().active_plan else {
                    bail!(
                        "{} has no active plan: flash one first (edgefit flash --port ... PLAN.efp)",
                        client.device().board
                    );
                };
                let cached = cached_plan_path(active.crc32);
                if !cached.exists() {
                    bail!(
                        "the device runs plan {:08x} (CRC {:08x}), which this host did not flash: \
                         pass its .efp file",
                        active.plan_id,
                        active.crc32
                    );
                }
                cached
            }
        };
        let image =
            std::fs::read(&plan_path).with_context(|| format!("read {}", plan_path.display()))?;
        let bar = progress::bar("bench");
        let report = bench(
            &mut client,
            &image,
            &data,
            BenchOptions {
                compare_outputs: !self.no_outputs,
            },
            &mut progress::callback(&bar),
        )
        .with_context(|| format!("bench {} on {}", plan_path.display(), client.device().board))?;
        bar.finish_and_clear();
        if let Some(out) = &self.out {
            let text = match out.extension().and_then(|e| e.to_str()) {
                Some("csv") => render_csv(&report),
                Some("json") => serde_json::to_string_pretty(&report)?,
                _ => bail!("--out {}: use a .json or .csv file name", out.display()),
            };
            std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", render_text(&report));
        }
        Ok(())
    }
}
