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
        println!(
            "{:<20} {:<6} {:<22} {:>6} {:>12} {:>14} {:>5} {:>8}  power (typical)",
            "profile", "kind", "core", "MHz", "RAM", "flash", "FPU", "GPU"
        );
        for p in &all {
            println!(
                "{:<20} {:<6} {:<22} {:>6} {:>12} {:>14} {:>5} {:>8}  {} W ({})",
                p.name,
                p.kind,
                p.core,
                p.clock_mhz,
                p.ram_bytes,
                p.flash_bytes,
                if p.fpu { "yes" } else { "no" },
                if p.gpu { "yes" } else { "no" },
                p.power.typical_active_w,
                p.power.source
            );
        }
        println!(
            "({} profiles from {}; add your own with --profile FILE)",
            all.len(),
            profiles_dir().display()
        );
        Ok(())
    }
}
