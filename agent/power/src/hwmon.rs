//! Generic hwmon power channels (Documentation/hwmon/sysfs-interface.rst):
//! `power{N}_input` in microwatts, or `power{N}_average` where the driver
//! only reports an average (ACPI `power_meter`, older amdgpu), with an
//! optional `power{N}_label`. Covers INA2xx boards, GPUs, server meters.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::sysfs::{self, channel_number, file_name};
use crate::{PowerError, PowerReading, PowerScope, PowerSensor};

/// hwmon drivers with a dedicated reader here, left out of the generic one.
const HANDLED_ELSEWHERE: &[&str] = &["ina3221"];

/// One hwmon power channel.
#[derive(Debug, Clone)]
pub struct HwmonPowerSensor {
    /// `<device name>/<label>`, or `<device name>/power<N>` without label.
    name: String,
    device: String,
    channel: u32,
    label: Option<String>,
    microwatts: PathBuf,
}

impl HwmonPowerSensor {
    /// Every power channel under `<root>/sys/class/hwmon`, in device then
    /// channel order. Empty when there is none.
    pub fn open_all(root: impl AsRef<Path>) -> Result<Vec<Self>, PowerError> {
        let mut sensors = Vec::new();
        for (dir, device) in sysfs::hwmon_devices(root.as_ref())? {
            if HANDLED_ELSEWHERE.contains(&device.as_str()) {
                continue;
            }
            let channels: BTreeSet<u32> = sysfs::list_dir(&dir)?
                .iter()
                .filter_map(|f| {
                    let name = file_name(f);
                    channel_number(&name, "power", "_input")
                        .or_else(|| channel_number(&name, "power", "_average"))
                })
                .collect();
            for channel in channels {
                let input = dir.join(format!("power{channel}_input"));
                let microwatts = if input.exists() {
                    input
                } else {
                    dir.join(format!("power{channel}_average"))
                };
                let label = sysfs::read_optional_text(&dir.join(format!("power{channel}_label")))?
                    .filter(|l| !l.is_empty());
                let name = match &label {
                    Some(label) => format!("{device}/{label}"),
                    None => format!("{device}/power{channel}"),
                };
                sensors.push(Self {
                    name,
                    device: device.clone(),
                    channel,
                    label,
                    microwatts,
                });
            }
        }
        Ok(sensors)
    }

    /// The hwmon device's `name` attribute, e.g. `ina219`.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// N in `power{N}_input`.
    pub fn channel(&self) -> u32 {
        self.channel
    }

    /// The channel's `power{N}_label`, if the driver provides one.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

impl PowerSensor for HwmonPowerSensor {
    fn name(&self) -> &str {
        &self.name
    }

    fn source(&self) -> &'static str {
        "hwmon"
    }

    fn scope(&self) -> PowerScope {
        PowerScope::Component
    }

    fn read(&mut self) -> Result<PowerReading, PowerError> {
        // Signed: some drivers report negative power for reverse flow.
        let microwatts: i64 = sysfs::read_int(&self.microwatts)?;
        Ok(PowerReading {
            watts: microwatts as f64 / 1e6,
            averaged_over: None,
        })
    }
}
