//! Programming a board's firmware (an ELF) over SWD/JTAG with probe-rs
//! (feature `probe`): find the debug probe, attach to the chip, erase and
//! program its flash, optionally verify, then reset and run.
//!
//! probe-rs is built without its default features: USB goes through `nusb`
//! (pure Rust, no hidapi/libusb), so J-Link, ST-Link, CMSIS-DAP v2 (bulk) and
//! the other USB probes work, CMSIS-DAP v1 (HID-only) probes do not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use probe_rs::config::{Registry, RegistryError};
use probe_rs::flashing::{
    self, DownloadOptions, ElfLoader, ElfOptions, FileDownloadError, FlashProgress, ProgressEvent,
    ProgressOperation,
};
use probe_rs::probe::list::{Accessibility, Lister};
use probe_rs::probe::{DebugProbeError, DebugProbeInfo, DebugProbeSelector};
use probe_rs::{Permissions, Target};

/// What to flash, where and how.
#[derive(Debug, Clone)]
pub struct FirmwareFlashOptions {
    /// probe-rs' chip name, e.g. `nRF52840_xxAA`, `STM32F746NGHx`.
    pub chip: String,
    /// `VID:PID[:SERIAL]` (hex VID and PID); required when several probes are attached.
    pub probe: Option<String>,
    /// The SWD/JTAG clock in kHz; the probe's default when `None`.
    pub speed_khz: Option<u32>,
    /// Hold the chip in reset while attaching (for firmware that sleeps or
    /// remaps the SWD pins).
    pub connect_under_reset: bool,
    /// Read the flash back after programming and compare.
    pub verify: bool,
}

/// A phase of the flash download, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashPhase {
    /// Reading back the parts of erased sectors that the image does not cover.
    Fill,
    Erase,
    Program,
    Verify,
}

impl FlashPhase {
    pub fn label(self) -> &'static str {
        match self {
            FlashPhase::Fill => "read back",
            FlashPhase::Erase => "erase",
            FlashPhase::Program => "program",
            FlashPhase::Verify => "verify",
        }
    }

    fn from_operation(op: ProgressOperation) -> Self {
        match op {
            ProgressOperation::Fill => FlashPhase::Fill,
            ProgressOperation::Erase => FlashPhase::Erase,
            ProgressOperation::Program => FlashPhase::Program,
            ProgressOperation::Verify => FlashPhase::Verify,
        }
    }
}

/// What a successful [`flash_firmware`] did.
#[derive(Debug, Clone)]
pub struct FlashedFirmware {
    /// The probe used (`identifier -- VID:PID:SERIAL`).
    pub probe: String,
    /// probe-rs' full name of the chip.
    pub chip: String,
    /// The SWD/JTAG clock the probe runs at.
    pub speed_khz: u32,
    /// Bytes programmed (flash pages written).
    pub programmed_bytes: u64,
    /// Bytes erased (flash sectors).
    pub erased_bytes: u64,
    pub verified: bool,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("read firmware {}", path.display())]
    ReadElf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an ELF file (flash-firmware takes the board's linked firmware, e.g. from `scripts/firmware.sh build`)", path.display())]
    NotElf { path: PathBuf },
    #[error("unknown chip {chip:?}{}", suggestions_suffix(suggestions))]
    UnknownChip {
        chip: String,
        suggestions: Vec<String>,
        #[source]
        source: Box<RegistryError>,
    },
    #[error(
        "bad --probe {selector:?}: expected VID:PID[:SERIAL] in hex, e.g. 1366:1015:000683000000"
    )]
    BadSelector {
        selector: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no debug probe found (probe-rs saw 0 probes); attach one, e.g. the nRF52840-DK's J-Link OB USB port")]
    NoProbe,
    #[error("no debug probe matches --probe {selector} (probe-rs saw {}: {})", seen.len(), seen.join("; "))]
    NoMatchingProbe { selector: String, seen: Vec<String> },
    #[error("{} debug probes found; choose one with --probe VID:PID[:SERIAL]: {}", probes.len(), probes.join("; "))]
    SeveralProbes { probes: Vec<String> },
    #[error("no permission to open debug probe {probe}: install probe-rs' udev rules (https://probe.rs/docs/getting-started/probe-setup/) or run as a user in the plugdev group")]
    PermissionDenied { probe: String },
    #[error("open debug probe {probe}")]
    Open {
        probe: String,
        #[source]
        source: Box<DebugProbeError>,
    },
    #[error("set the SWD/JTAG clock of {probe} to {khz} kHz")]
    Speed {
        probe: String,
        khz: u32,
        #[source]
        source: Box<DebugProbeError>,
    },
    #[error("attach to {chip} through {probe}{}", if *under_reset { " (under reset)" } else { "" })]
    Attach {
        chip: String,
        probe: String,
        under_reset: bool,
        #[source]
        source: Box<probe_rs::Error>,
    },
    #[error("download {} to {chip}", path.display())]
    Download {
        path: PathBuf,
        chip: String,
        #[source]
        source: Box<FileDownloadError>,
    },
    #[error("reset and run {chip}")]
    Reset {
        chip: String,
        #[source]
        source: Box<probe_rs::Error>,
    },
}

fn suggestions_suffix(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!(" (did you mean one of: {}?)", suggestions.join(", "))
    }
}

/// Looks up `chip` in probe-rs' built-in targets.
pub fn find_chip(registry: &Registry, chip: &str) -> Result<Target, ProbeError> {
    registry
        .get_target_by_name(chip)
        .map_err(|source| ProbeError::UnknownChip {
            chip: chip.to_owned(),
            suggestions: similar_chips(registry, chip),
            source: Box::new(source),
        })
}

/// Up to 8 chip names sharing the longest prefix (of 5 characters or more) with `chip`.
fn similar_chips(registry: &Registry, chip: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = chip.char_indices().collect();
    for len in (5..=chars.len()).rev() {
        let end = chars.get(len).map_or(chip.len(), |&(i, _)| i);
        let mut found = registry.search_chips(&chip[..end]);
        if !found.is_empty() {
            found.sort();
            found.dedup();
            found.truncate(8);
            return found;
        }
    }
    Vec::new()
}

/// One line per probe: `identifier -- VID:PID:SERIAL`.
pub fn describe_probe(info: &DebugProbeInfo) -> String {
    let mut s = format!(
        "{} -- {:04x}:{:04x}",
        info.identifier, info.vendor_id, info.product_id
    );
    if let Some(serial) = &info.serial_number {
        s.push(':');
        s.push_str(serial);
    }
    s
}

/// The attached probes, each with whether this process may open it.
pub fn list_probes() -> Vec<(DebugProbeInfo, bool)> {
    Lister::new()
        .list_all_with_access()
        .into_iter()
        .map(|item| {
            let ok = item.accessibility == Accessibility::Accessible;
            (item.info, ok)
        })
        .collect()
}

/// Picks the probe: the one matching `selector`, or the only one attached.
fn choose_probe(
    probes: Vec<(DebugProbeInfo, bool)>,
    selector: Option<&str>,
) -> Result<DebugProbeInfo, ProbeError> {
    let parsed: Option<DebugProbeSelector> = selector
        .map(|text| {
            text.parse().map_err(|source| ProbeError::BadSelector {
                selector: text.to_owned(),
                source: Box::new(source),
            })
        })
        .transpose()?;
    if probes.is_empty() {
        return Err(ProbeError::NoProbe);
    }
    let mut matching: Vec<(DebugProbeInfo, bool)> = match (&parsed, selector) {
        (Some(parsed), Some(text)) => {
            let found: Vec<_> = probes
                .iter()
                .filter(|(p, _)| parsed.matches_probe(p))
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(ProbeError::NoMatchingProbe {
                    selector: text.to_owned(),
                    seen: probes.iter().map(|(p, _)| describe_probe(p)).collect(),
                });
            }
            found
        }
        _ => probes,
    };
    if matching.len() > 1 {
        return Err(ProbeError::SeveralProbes {
            probes: matching.iter().map(|(p, _)| describe_probe(p)).collect(),
        });
    }
    let (info, accessible) = matching.remove(0);
    if !accessible {
        return Err(ProbeError::PermissionDenied {
            probe: describe_probe(&info),
        });
    }
    Ok(info)
}

/// Checks that `elf` is readable and starts with the ELF magic, before any
/// probe is touched.
pub fn check_elf(elf: &Path) -> Result<(), ProbeError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(elf).and_then(|mut f| {
        let mut n = 0;
        while n < magic.len() {
            match f.read(&mut magic[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    match read {
        Err(source) => Err(ProbeError::ReadElf {
            path: elf.to_owned(),
            source,
        }),
        Ok(4) if magic == *b"\x7fELF" => Ok(()),
        Ok(_) => Err(ProbeError::NotElf {
            path: elf.to_owned(),
        }),
    }
}

/// Flashes the ELF `elf` to the chip: checks the file and the chip name,
/// picks the probe, attaches, erases and programs (sector erase: flash the
/// image does not cover keeps its contents), optionally verifies, then
/// resets and runs the chip. `progress(phase, done, total)` reports bytes.
pub fn flash_firmware(
    elf: &Path,
    options: &FirmwareFlashOptions,
    progress: &mut dyn FnMut(FlashPhase, u64, u64),
) -> Result<FlashedFirmware, ProbeError> {
    let started = Instant::now();
    check_elf(elf)?;
    let registry = Registry::from_builtin_families();
    let target = find_chip(&registry, &options.chip)?;
    let chip = target.name.clone();

    let info = choose_probe(list_probes(), options.probe.as_deref())?;
    let probe_name = describe_probe(&info);
    let mut probe = info.open().map_err(|source| ProbeError::Open {
        probe: probe_name.clone(),
        source: Box::new(source),
    })?;
    if let Some(khz) = options.speed_khz {
        probe.set_speed(khz).map_err(|source| ProbeError::Speed {
            probe: probe_name.clone(),
            khz,
            source: Box::new(source),
        })?;
    }
    let speed_khz = probe.speed_khz();

    let attached = if options.connect_under_reset {
        probe.attach_under_reset_with_registry(target, Permissions::default(), &registry)
    } else {
        probe.attach_with_registry(target, Permissions::default(), &registry)
    };
    let mut session = attached.map_err(|source| ProbeError::Attach {
        chip: chip.clone(),
        probe: probe_name.clone(),
        under_reset: options.connect_under_reset,
        source: Box::new(source),
    })?;

    // probe-rs announces each phase's total, then reports its steps' sizes.
    let mut totals = [0u64; 4];
    let mut done = [0u64; 4];
    let index = |phase: FlashPhase| phase as usize;
    let mut download = DownloadOptions::default();
    download.verify = options.verify;
    download.progress = FlashProgress::new(|event| match event {
        ProgressEvent::AddProgressBar { operation, total } => {
            let phase = FlashPhase::from_operation(operation);
            totals[index(phase)] = total.unwrap_or(0);
        }
        ProgressEvent::Started(operation) => {
            let phase = FlashPhase::from_operation(operation);
            done[index(phase)] = 0;
            progress(phase, 0, totals[index(phase)]);
        }
        ProgressEvent::Progress {
            operation, size, ..
        } => {
            let phase = FlashPhase::from_operation(operation);
            let i = index(phase);
            done[i] += size;
            totals[i] = totals[i].max(done[i]);
            progress(phase, done[i], totals[i]);
        }
        _ => {}
    });
    flashing::download_file_with_options(
        &mut session,
        elf,
        ElfLoader(ElfOptions::default()),
        download,
    )
    .map_err(|source| ProbeError::Download {
        path: elf.to_owned(),
        chip: chip.clone(),
        source: Box::new(source),
    })?;

    session
        .core(0)
        .and_then(|mut core| core.reset())
        .map_err(|source| ProbeError::Reset {
            chip: chip.clone(),
            source: Box::new(source),
        })?;

    Ok(FlashedFirmware {
        probe: probe_name,
        chip,
        speed_khz,
        programmed_bytes: done[index(FlashPhase::Program)],
        erased_bytes: done[index(FlashPhase::Erase)],
        verified: options.verify,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_chips_resolve() {
        let registry = Registry::from_builtin_families();
        for chip in ["nRF52840_xxAA", "STM32F746NGHx"] {
            let target = find_chip(&registry, chip).expect(chip);
            assert_eq!(target.name, chip);
        }
    }

    #[test]
    fn unknown_chip_names_itself() {
        let registry = Registry::from_builtin_families();
        let err = find_chip(&registry, "nRF52840_xxZZ").unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("nRF52840_xxZZ"), "{text}");
        assert!(text.contains("nRF52840_xxAA"), "suggestions: {text}");
    }

    #[test]
    fn bad_selector_is_reported_first() {
        let err = choose_probe(Vec::new(), Some("zz")).unwrap_err();
        assert!(matches!(err, ProbeError::BadSelector { .. }), "{err}");
    }

    #[test]
    fn no_probe_is_a_clear_error() {
        let err = choose_probe(Vec::new(), None).unwrap_err();
        assert!(matches!(err, ProbeError::NoProbe));
        assert!(err.to_string().contains("no debug probe found"));
    }

    #[test]
    fn missing_and_non_elf_files() {
        let missing = Path::new("/nonexistent/edgefit/firmware.elf");
        assert!(matches!(
            check_elf(missing),
            Err(ProbeError::ReadElf { .. })
        ));
        let manifest =
            Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
                .join("Cargo.toml");
        assert!(matches!(
            check_elf(&manifest),
            Err(ProbeError::NotElf { .. })
        ));
    }
}
