//! `edgefit flash-firmware`: program a board's firmware over SWD/JTAG
//! (probe-rs; only in builds with `--features probe`).

use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  edgefit flash-firmware edgefit-fw-nrf52840-dk --chip nRF52840_xxAA\n  edgefit flash-firmware fw.elf --chip STM32F746NGHx --probe 0483:374b --verify"
)]
pub struct FlashFirmwareCmd {
    /// The firmware ELF (e.g. from `scripts/firmware.sh build nrf52840-dk`)
    elf: PathBuf,
    /// probe-rs' chip name, e.g. nRF52840_xxAA (nRF52840 DK), STM32F746NGHx
    #[arg(long, value_name = "CHIP")]
    chip: String,
    /// The debug probe, when several are attached: VID:PID[:SERIAL] in hex, e.g. 1366:1015
    #[arg(long, value_name = "VID:PID[:SERIAL]")]
    probe: Option<String>,
    /// SWD/JTAG clock in kHz (default: the probe's)
    #[arg(long, value_name = "KHZ")]
    speed: Option<u32>,
    /// Hold the chip in reset while attaching (firmware that sleeps or remaps the SWD pins)
    #[arg(long)]
    connect_under_reset: bool,
    /// Read the flash back after programming and compare
    #[arg(long)]
    verify: bool,
}

#[cfg(feature = "probe")]
impl FlashFirmwareCmd {
    pub fn run(self) -> anyhow::Result<()> {
        use edgefit::device::probe::{flash_firmware, FirmwareFlashOptions, FlashPhase};
        use indicatif::ProgressBar;

        use super::progress;

        let options = FirmwareFlashOptions {
            chip: self.chip,
            probe: self.probe,
            speed_khz: self.speed,
            connect_under_reset: self.connect_under_reset,
            verify: self.verify,
        };
        // One bar per phase (erase, program, verify), each replacing the last.
        let mut bar: Option<(FlashPhase, ProgressBar)> = None;
        let mut report = |phase: FlashPhase, done: u64, total: u64| {
            if bar.as_ref().map(|(p, _)| *p) != Some(phase) {
                if let Some((_, old)) = bar.take() {
                    old.finish_and_clear();
                }
                bar = Some((phase, progress::bytes_bar(phase.label())));
            }
            if let Some((_, b)) = &bar {
                if b.length() != Some(total) {
                    b.set_length(total);
                }
                b.set_position(done);
            }
        };
        let result = flash_firmware(&self.elf, &options, &mut report);
        if let Some((_, b)) = bar.take() {
            b.finish_and_clear();
        }
        let flashed = result?;
        println!(
            "flashed {} to {} through {} at {} kHz: {} bytes programmed, {} erased{} in {:.1} s; the chip was reset and runs",
            self.elf.display(),
            flashed.chip,
            flashed.probe,
            flashed.speed_khz,
            flashed.programmed_bytes,
            flashed.erased_bytes,
            if flashed.verified { ", verified" } else { "" },
            flashed.elapsed.as_secs_f64()
        );
        Ok(())
    }
}

#[cfg(not(feature = "probe"))]
impl FlashFirmwareCmd {
    pub fn run(self) -> anyhow::Result<()> {
        let Self {
            elf,
            chip,
            probe: _,
            speed: _,
            connect_under_reset: _,
            verify: _,
        } = self;
        anyhow::bail!(
            "cannot flash {} to {chip}: this edgefit was built without `--features probe` \
             (probe-rs); rebuild it with `cargo build -p edgefit --features probe`",
            elf.display()
        )
    }
}
