use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edgefit::device::flash::{cached_plan_path, flash_plan};

use super::device::PortArgs;
use super::progress;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit flash resnet-int8.efp --port tcp:127.0.0.1:4545          # QEMU board\n  edgefit flash resnet-int8.efp --port serial:/dev/ttyACM0@115200 --json"
)]
pub struct FlashCmd {
    #[command(flatten)]
    port: PortArgs,
    /// The compiled plan to store and activate on the device
    plan: PathBuf,
    /// Print what was stored as JSON (schema edgefit.flash.v1) instead of text
    #[arg(long)]
    json: bool,
}

impl FlashCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let image =
            std::fs::read(&self.plan).with_context(|| format!("read {}", self.plan.display()))?;
        // Checked before the device is reached: a wrong file is the user's
        // to fix whatever the device says.
        edgefit_artifact::identify(&image)
            .with_context(|| format!("flash {}", self.plan.display()))?;
        let mut client = self.port.connect()?;
        let board = client.device().board.clone();
        let bar = progress::bytes_bar("flash");
        let flashed = flash_plan(&mut client, &image, &mut progress::callback(&bar))
            .with_context(|| format!("flash {} to {board}", self.plan.display()))?;
        bar.finish_and_clear();
        // Keep a copy so `edgefit bench` finds the plan the device runs.
        let cached = cached_plan_path(flashed.stored.crc32);
        if let Some(dir) = cached.parent() {
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&cached, &image))
                .with_context(|| format!("keep a copy of the plan in {}", cached.display()))?;
        }
        let link = client.stats;
        if self.json {
            let v = serde_json::json!({
                "schema": "edgefit.flash.v1",
                "plan_id": format!("{:08x}", flashed.stored.plan_id),
                "bytes": flashed.bytes,
                "crc32": format!("{:08x}", flashed.stored.crc32),
                "chunks": flashed.chunks,
                "slot": flashed.stored.slot,
                "board": board,
                "link": {
                    "frames_sent": link.frames_sent,
                    "retransmissions": link.retransmissions,
                    "damaged_answers": link.damaged_answers,
                },
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        println!(
            "stored plan {:08x} ({} bytes, CRC {:08x}, {} chunks) in slot {} of {}; it is now active",
            flashed.stored.plan_id,
            flashed.bytes,
            flashed.stored.crc32,
            flashed.chunks,
            flashed.stored.slot,
            board
        );
        if link.had_trouble() {
            println!(
                "link: {} frames, {} retransmitted, {} damaged answers, {} duplicate and {} stale answers dropped",
                link.frames_sent,
                link.retransmissions,
                link.damaged_answers,
                link.duplicate_answers,
                link.stale_answers
            );
        }
        Ok(())
    }
}
