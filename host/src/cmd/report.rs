use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use edgefit::compare::{merge_bench, verdicts, write_report, Criterion};
use edgefit::device::bench::{BenchReport, BENCH_SCHEMA};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit report out/results.json -o out            # rebuild report.html, CSV and plots\n  edgefit report host/results.json pi/results.json bench-qemu.json -o merged --json"
)]
pub struct ReportCmd {
    /// Results from `edgefit compare` (results.json), several to merge (e.g. one
    /// per device), and `edgefit bench --out X.json` reports from devices, whose
    /// measured latency and energy replace the estimates of their board's rows
    #[arg(value_name = "RESULTS.json", required = true)]
    results: Vec<PathBuf>,
    /// Folder for the report, the merged results, CSV and plots
    #[arg(short = 'o', long, default_value = "edgefit-report")]
    out: PathBuf,
    /// Print the merged results (schema of results.json) as JSON instead of the table
    #[arg(long)]
    json: bool,
}

impl ReportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        // Bench reports are merged into the compare results after those load.
        let mut compared = Vec::new();
        let mut benches = Vec::new();
        for path in &self.results {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            let schema = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("schema").and_then(|s| s.as_str()).map(str::to_owned));
            if schema.as_deref() == Some(BENCH_SCHEMA) {
                benches.push((path, text));
            } else {
                compared.push(path.clone());
            }
        }
        if compared.is_empty() {
            bail!("no edgefit compare results among the files: bench reports merge into them");
        }
        let mut r = edgefit_report::load_results(&compared).context("load results")?;
        for (path, text) in benches {
            let bench: BenchReport = serde_json::from_str(&text).with_context(|| {
                format!("{}: not a bench report of this version", path.display())
            })?;
            let n = merge_bench(&mut r, &bench).with_context(|| format!("{}", path.display()))?;
            eprintln!("{}: measured figures for {n} rows", path.display());
        }
        // Verdicts over every row, merged devices included.
        let criterion = Criterion::from_name(&r.criterion).unwrap_or(Criterion::Accuracy);
        let mut profiles: Vec<String> = r.rows.iter().map(|row| row.profile.clone()).collect();
        profiles.sort();
        profiles.dedup();
        r.verdicts = verdicts(&r.rows, &profiles, criterion);
        let written = write_report(&r, &self.out)
            .with_context(|| format!("write the report into {}", self.out.display()))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        print!("{}", edgefit_report::render_text(&r));
        println!(
            "wrote {} files into {} (open report.html)",
            written.len(),
            self.out.display()
        );
        Ok(())
    }
}
