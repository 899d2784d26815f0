//! Intel / AMD RAPL energy counters through the powercap framework
//! (Documentation/power/powercap/powercap.rst).
//!
//! `/sys/class/powercap/` lists every zone flat: `intel-rapl:0` is a top-level
//! zone (`name` = `package-0`, or `psys` for the platform), `intel-rapl:0:0`
//! its subzone (`core`, `uncore`, `dram`), whose energy is already inside the
//! parent's. AMD CPUs use the same `intel-rapl` control type. Each zone has
//! `energy_uj`, a counter in microjoules, and `max_energy_range_uj`, the
//! value after which it wraps to zero.
//!
//! `intel-rapl-mmio:*` zones are skipped: on many laptops they expose the
//! very same package counter through MMIO, and summing both would double it.
//!
//! Since Linux 5.10 `energy_uj` is readable by root only; opening as a user
//! then fails with a [`PowerError::Io`] (permission denied) naming the file.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::sysfs::{self, file_name};
use crate::{PowerError, PowerReading, PowerScope, PowerSensor};

/// Which RAPL zones to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RaplDomain {
    /// Every top-level `package-N` zone, summed (all CPU sockets).
    #[default]
    Packages,
    /// The `psys` zone: the platform (SoC plus what the firmware attributes
    /// to it), present on some laptops. Never summed with packages, which
    /// it already contains.
    Psys,
    /// Every zone with this exact name, summed (e.g. `core` or `dram`).
    Named(String),
}

/// How many microjoules passed from `before` to `now` on a counter that runs
/// from 0 to `max_range_uj` inclusive and then wraps to 0.
///
/// When `now < before` the counter wrapped once: it climbed from `before` to
/// `max_range_uj`, stepped to 0 (one more microjoule) and climbed to `now`,
/// so the delta is `max_range_uj - before + 1 + now`. More than one wrap
/// between reads cannot be detected: read at least once per wrap period
/// (`max_range_uj` / power; about 70 min for a 262 kJ range at 60 W).
pub fn counter_delta(before: u64, now: u64, max_range_uj: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        // Saturating: a `before` above the advertised range would be a
        // kernel bug; count it as a wrap from the top, not an underflow.
        max_range_uj
            .saturating_sub(before)
            .saturating_add(1)
            .saturating_add(now)
    }
}

#[derive(Debug, Clone)]
struct Zone {
    energy_path: PathBuf,
    max_range_uj: u64,
    last_uj: u64,
}

/// Power from one or more RAPL energy counters.
#[derive(Debug, Clone)]
pub struct RaplSensor {
    name: String,
    scope: PowerScope,
    zones: Vec<Zone>,
    /// Energy since open, across wraps.
    total_uj: u64,
    /// Where the previous `read` left off: its time and `total_uj`.
    last_read: (Instant, u64),
    min_interval: Duration,
}

impl RaplSensor {
    /// Counters update about every millisecond, so a shorter window gives
    /// noise; `read` waits until this much time has passed since the last.
    pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(20);

    /// Opens the zones of `domain` under `root` and takes a baseline
    /// reading. [`PowerError::NoSensor`] when no such zone exists.
    pub fn open(root: impl AsRef<Path>, domain: &RaplDomain) -> Result<Self, PowerError> {
        let root = root.as_ref();
        let powercap = root.join("sys/class/powercap");
        let mut names = Vec::new();
        let mut zones = Vec::new();
        for dir in sysfs::list_dir(&powercap)? {
            let Some(depth) = zone_depth(&file_name(&dir)) else {
                continue;
            };
            let name_path = dir.join("name");
            if !name_path.exists() {
                continue;
            }
            let name = sysfs::read_text(&name_path)?;
            let wanted = match domain {
                RaplDomain::Packages => depth == 1 && name.starts_with("package-"),
                RaplDomain::Psys => name == "psys",
                RaplDomain::Named(want) => &name == want,
            };
            if !wanted {
                continue;
            }
            let energy_path = dir.join("energy_uj");
            let max_range_uj = sysfs::read_int(&dir.join("max_energy_range_uj"))?;
            let last_uj = sysfs::read_int(&energy_path)?;
            names.push(name);
            zones.push(Zone {
                energy_path,
                max_range_uj,
                last_uj,
            });
        }
        if zones.is_empty() {
            return Err(PowerError::NoSensor {
                what: match domain {
                    RaplDomain::Packages => "RAPL package zones",
                    RaplDomain::Psys => "RAPL psys zone",
                    RaplDomain::Named(_) => "RAPL zone with that name",
                },
                searched: powercap,
            });
        }
        let scope = match domain {
            RaplDomain::Packages => PowerScope::Processor,
            RaplDomain::Psys => PowerScope::Platform,
            RaplDomain::Named(_) => PowerScope::Component,
        };
        Ok(Self {
            name: names.join("+"),
            scope,
            zones,
            total_uj: 0,
            last_read: (Instant::now(), 0),
            min_interval: Self::DEFAULT_MIN_INTERVAL,
        })
    }

    /// Changes the shortest averaging window of [`PowerSensor::read`].
    pub fn with_min_interval(mut self, min_interval: Duration) -> Self {
        // Never zero: the window divides the energy.
        self.min_interval = min_interval.max(Duration::from_micros(1));
        self
    }

    /// Reads every counter and adds the wrap-corrected deltas to the total.
    /// All counters are read before any state changes, so a failed read
    /// leaves the sensor as it was.
    fn update(&mut self) -> Result<u64, PowerError> {
        let now: Vec<u64> = self
            .zones
            .iter()
            .map(|z| sysfs::read_int(&z.energy_path))
            .collect::<Result<_, _>>()?;
        for (zone, now_uj) in self.zones.iter_mut().zip(now) {
            let delta = counter_delta(zone.last_uj, now_uj, zone.max_range_uj);
            self.total_uj = self.total_uj.saturating_add(delta);
            zone.last_uj = now_uj;
        }
        Ok(self.total_uj)
    }
}

/// `intel-rapl:0` → 1, `intel-rapl:0:1` → 2; other entries (the bare
/// `intel-rapl` control type, `intel-rapl-mmio:0`) → None.
fn zone_depth(dir_name: &str) -> Option<usize> {
    let ids = dir_name.strip_prefix("intel-rapl:")?;
    let parts: Vec<&str> = ids.split(':').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .then_some(parts.len())
}

impl PowerSensor for RaplSensor {
    fn name(&self) -> &str {
        &self.name
    }

    fn source(&self) -> &'static str {
        "rapl"
    }

    fn scope(&self) -> PowerScope {
        self.scope
    }

    /// Average power since the previous `read` (or since `open`).
    fn read(&mut self) -> Result<PowerReading, PowerError> {
        let since = self.last_read.0.elapsed();
        if since < self.min_interval {
            thread::sleep(self.min_interval - since);
        }
        let total = self.update()?;
        let now = Instant::now();
        let window = now.duration_since(self.last_read.0);
        let joules = (total - self.last_read.1) as f64 / 1e6;
        self.last_read = (now, total);
        Ok(PowerReading {
            watts: joules / window.as_secs_f64(),
            averaged_over: Some(window),
        })
    }

    fn energy_joules(&mut self) -> Result<Option<f64>, PowerError> {
        Ok(Some(self.update()? as f64 / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_without_wrap_is_a_difference() {
        assert_eq!(counter_delta(100, 350, 1_000), 250);
        assert_eq!(counter_delta(7, 7, 1_000), 0);
    }

    #[test]
    fn delta_across_wrap_counts_the_step_to_zero() {
        // 990 → 1000 is 10, 1000 → 0 is 1, 0 → 5 is 5.
        assert_eq!(counter_delta(990, 5, 1_000), 16);
        assert_eq!(counter_delta(1_000, 0, 1_000), 1);
    }

    #[test]
    fn delta_survives_a_value_above_the_range() {
        assert_eq!(counter_delta(2_000, 5, 1_000), 6);
    }

    #[test]
    fn zone_depth_recognises_only_rapl_zones() {
        assert_eq!(zone_depth("intel-rapl:0"), Some(1));
        assert_eq!(zone_depth("intel-rapl:1:2"), Some(2));
        assert_eq!(zone_depth("intel-rapl"), None);
        assert_eq!(zone_depth("intel-rapl-mmio:0"), None);
        assert_eq!(zone_depth("intel-rapl:"), None);
    }
}
