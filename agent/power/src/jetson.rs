//! NVIDIA Jetson on-module INA3221 power monitors.
//!
//! Two kernel interfaces exist, depending on the JetPack release:
//!
//! * JetPack 5+ (Orin, Xavier on L4T 35+): mainline hwmon driver,
//!   `/sys/class/hwmon/hwmon*/` with `name` = `ina3221`, `in{N}_label`,
//!   `in{N}_input` (bus mV) and `curr{N}_input` (mA), N = 1..3. Power is V × I.
//! * JetPack 4 (Nano, TX1/TX2, early Xavier): NVIDIA's IIO driver,
//!   `/sys/bus/i2c/drivers/ina3221x/*/iio:device*/` with `rail_name_{N}`,
//!   `in_power{N}_input` (mW), `in_voltage{N}_input` (mV),
//!   `in_current{N}_input` (mA), N = 0..2. We use the driver's power value
//!   (what tegrastats shows) and fall back to V × I if it is missing.

use std::path::{Path, PathBuf};

use crate::sysfs::{self, channel_number, file_name};
use crate::{PowerError, PowerReading, PowerScope, PowerSensor};

/// Rail labels that measure the whole module's input, most common first:
/// `VDD_IN` on Orin / Xavier NX, `POM_5V_IN` on Nano / TX2.
pub const BOARD_INPUT_RAILS: &[&str] = &["VDD_IN", "POM_5V_IN"];

/// Which INA3221 rail to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RailSelector {
    /// The module's total input, whichever of [`BOARD_INPUT_RAILS`] exists.
    #[default]
    BoardInput,
    /// A rail by label, compared case-insensitively (e.g. `VDD_CPU_GPU_CV`).
    Named(String),
}

/// Files of one rail; which are present depends on the layout.
#[derive(Debug, Clone)]
struct Rail {
    label: String,
    millivolts: PathBuf,
    milliamps: PathBuf,
    /// Only the JetPack 4 IIO driver computes power itself.
    milliwatts: Option<PathBuf>,
}

/// One INA3221 rail on a Jetson module.
#[derive(Debug, Clone)]
pub struct JetsonInaSensor {
    rail: Rail,
}

impl JetsonInaSensor {
    /// Opens the selected rail under `root` (normally `/`). Errors with
    /// [`PowerError::NoSensor`] when the board has no INA3221 at all and
    /// [`PowerError::NoSuchRail`] when it has, but not that rail.
    pub fn open(root: impl AsRef<Path>, selector: &RailSelector) -> Result<Self, PowerError> {
        let root = root.as_ref();
        let rails = find_rails(root)?;
        if rails.is_empty() {
            return Err(no_ina3221(root));
        }
        let chosen = match selector {
            RailSelector::BoardInput => BOARD_INPUT_RAILS
                .iter()
                .find_map(|want| rails.iter().find(|r| r.label.eq_ignore_ascii_case(want))),
            RailSelector::Named(want) => rails.iter().find(|r| r.label.eq_ignore_ascii_case(want)),
        };
        match chosen {
            Some(rail) => Ok(Self { rail: rail.clone() }),
            None => Err(PowerError::NoSuchRail {
                requested: match selector {
                    RailSelector::BoardInput => BOARD_INPUT_RAILS.join(" or "),
                    RailSelector::Named(want) => want.clone(),
                },
                available: rails.into_iter().map(|r| r.label).collect(),
            }),
        }
    }

    /// Opens every rail on the board, in sysfs order.
    pub fn open_all(root: impl AsRef<Path>) -> Result<Vec<Self>, PowerError> {
        Ok(find_rails(root.as_ref())?
            .into_iter()
            .map(|rail| Self { rail })
            .collect())
    }

    /// The rail label, e.g. `VDD_IN`.
    pub fn rail(&self) -> &str {
        &self.rail.label
    }
}

impl PowerSensor for JetsonInaSensor {
    fn name(&self) -> &str {
        &self.rail.label
    }

    fn source(&self) -> &'static str {
        "ina3221"
    }

    fn scope(&self) -> PowerScope {
        if BOARD_INPUT_RAILS
            .iter()
            .any(|r| self.rail.label.eq_ignore_ascii_case(r))
        {
            PowerScope::BoardInput
        } else {
            PowerScope::Component
        }
    }

    fn read(&mut self) -> Result<PowerReading, PowerError> {
        let watts = match &self.rail.milliwatts {
            Some(path) => sysfs::read_int::<i64>(path)? as f64 / 1e3,
            None => {
                let mv: i64 = sysfs::read_int(&self.rail.millivolts)?;
                let ma: i64 = sysfs::read_int(&self.rail.milliamps)?;
                // Multiply the integers first: mV × mA is exact, so the only
                // rounding is the final division.
                (mv as f64 * ma as f64) / 1e6
            }
        };
        Ok(PowerReading {
            watts,
            averaged_over: None,
        })
    }
}

/// Labels of every INA3221 rail on the board (empty when there is none).
pub fn jetson_rails(root: impl AsRef<Path>) -> Result<Vec<String>, PowerError> {
    Ok(find_rails(root.as_ref())?
        .into_iter()
        .map(|r| r.label)
        .collect())
}

fn no_ina3221(root: &Path) -> PowerError {
    PowerError::NoSensor {
        what: "Jetson INA3221 rails",
        searched: root.join("sys"),
    }
}

/// Every rail from both layouts; hwmon first since it is the current one.
fn find_rails(root: &Path) -> Result<Vec<Rail>, PowerError> {
    let mut rails = hwmon_rails(root)?;
    rails.extend(iio_rails(root)?);
    Ok(rails)
}

fn hwmon_rails(root: &Path) -> Result<Vec<Rail>, PowerError> {
    let mut rails = Vec::new();
    for (dir, name) in sysfs::hwmon_devices(root)? {
        if name != "ina3221" {
            continue;
        }
        for file in sysfs::list_dir(&dir)? {
            let Some(n) = channel_number(&file_name(&file), "in", "_label") else {
                continue;
            };
            let milliamps = dir.join(format!("curr{n}_input"));
            // in7_label names the shunt-voltage sum, which has no current.
            if !milliamps.exists() {
                continue;
            }
            // Disabled channels return ENODATA on read: leave them out.
            let enable = dir.join(format!("in{n}_enable"));
            if enable.exists() && sysfs::read_int::<u8>(&enable)? == 0 {
                continue;
            }
            let label = sysfs::read_text(&file)?;
            // Device trees label unconnected inputs "NC".
            if label.is_empty() || label == "NC" {
                continue;
            }
            rails.push(Rail {
                label,
                millivolts: dir.join(format!("in{n}_input")),
                milliamps,
                milliwatts: None,
            });
        }
    }
    Ok(rails)
}

fn iio_rails(root: &Path) -> Result<Vec<Rail>, PowerError> {
    let mut rails = Vec::new();
    for device in sysfs::list_dir(&root.join("sys/bus/i2c/drivers/ina3221x"))? {
        // The driver directory also holds bind/unbind/uevent files.
        if !device.is_dir() {
            continue;
        }
        for iio in sysfs::list_dir(&device)? {
            let name = file_name(&iio);
            // "iio:device0" on L4T 28+, "iio_device" on older TX1 releases.
            if !(name.starts_with("iio:device") || name.starts_with("iio_device")) || !iio.is_dir()
            {
                continue;
            }
            for file in sysfs::list_dir(&iio)? {
                let Some(n) = channel_number(&file_name(&file), "rail_name_", "") else {
                    continue;
                };
                let label = sysfs::read_text(&file)?;
                if label.is_empty() {
                    continue;
                }
                let milliwatts = iio.join(format!("in_power{n}_input"));
                rails.push(Rail {
                    label,
                    millivolts: iio.join(format!("in_voltage{n}_input")),
                    milliamps: iio.join(format!("in_current{n}_input")),
                    milliwatts: milliwatts.exists().then_some(milliwatts),
                });
            }
        }
    }
    Ok(rails)
}
