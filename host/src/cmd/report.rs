use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgefit::compare::{verdicts, write_report, Criterion};

#[derive(Args)]
pub struct ReportCmd {
    /// Results from `edgefit compare` (results.json), several to merge (e.g. one per device)
    #[arg(value_name = "RESULTS.json", required = true)]
    results: Vec<PathBuf>,
    /// Folder for the report, the merged results, CSV and plots
    #[arg(long, default_value = "edgefit-report")]
    out: PathBuf,
}

impl ReportCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let mut r = edgefit_report::load_results(&self.results).context("load results")?;
        // Verdicts over every row, merged devices included.
        let criterion = Criterion::from_name(&r.criterion).unwrap_or(Criterion::Accuracy);
        let mut profiles: Vec<String> = r.rows.iter().map(|row| row.profile.clone()).collect();
        profiles.sort();
        profiles.dedup();
        r.verdicts = verdicts(&r.rows, &profiles, criterion);
        let written = write_report(&r, &self.out)
            .with_context(|| format!("write the report into {}", self.out.display()))?;
        print!("{}", edgefit_report::render_terminal(&r));
        for v in &r.verdicts {
            println!("{}", v.sentence);
        }
        println!(
            "wrote {} files into {} (open report.html)",
            written.len(),
            self.out.display()
        );
        Ok(())
    }
}
