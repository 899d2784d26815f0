use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgefit::profiles::{load_profiles, profiles_dir};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit devices                      # RAM, flash, core, clock and power of every profile\n  edgefit devices --profile my-board.toml --json"
)]
pub struct DevicesCmd {
    /// Extra profile files (TOML) to list with the built-in ones
    #[arg(long = "profile", value_name = "FILE")]
    profiles: Vec<PathBuf>,
    /// Print the profiles as JSON
    #[arg(long)]
    json: bool,
}

impl DevicesCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let all = load_profiles(&self.profiles).context("device profiles")?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        let mut t = edgefit::table::Table::new(&[
            "profile",
            "kind",
            "core",
            "MHz",
            "RAM",
            "flash",
            "FPU",
            "GPU",
            "typical W",
            "power figure from",
        ]);
        for p in &all {
            t.row(vec![
                p.name.clone(),
                p.kind.to_string(),
                p.core.clone(),
                p.clock_mhz.to_string(),
                p.ram_bytes.to_string(),
                p.flash_bytes.to_string(),
                if p.fpu { "yes" } else { "no" }.into(),
                if p.gpu { "yes" } else { "no" }.into(),
                p.power.typical_active_w.to_string(),
                p.power.source.clone(),
            ]);
        }
        print!("{}", t.render());
        println!(
            "({} profiles from {}; add your own with --profile FILE)",
            all.len(),
            profiles_dir().display()
        );
        Ok(())
    }
}
