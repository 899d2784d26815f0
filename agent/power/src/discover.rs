//! Finds the power sensors a board has, best first.

use std::path::{Path, PathBuf};

use crate::sysfs;
use crate::{
    CommandRunner, HwmonPowerSensor, JetsonInaSensor, PowerError, PowerScope, PowerSensor,
    RaplDomain, RaplSensor, RpiPmicSensor, SystemCommandRunner,
};

/// Device-tree model strings, under the root; the first that exists wins.
const MODEL_FILES: &[&str] = &[
    "sys/firmware/devicetree/base/model",
    "proc/device-tree/model",
];

/// A sensor that exists but could not be opened, e.g. RAPL counters that
/// only root may read, or a Pi whose user may not talk to the firmware.
#[derive(Debug)]
pub struct SkippedSensor {
    /// Same values as [`PowerSensor::source`].
    pub source: &'static str,
    pub error: PowerError,
}

/// What [`Discovery::run`] found.
pub struct Discovered {
    /// Openable sensors, best first: board input rails, then Pi 5 PMIC
    /// rails, RAPL psys, RAPL packages, other Jetson rails, generic hwmon.
    pub sensors: Vec<Box<dyn PowerSensor>>,
    /// Sensors that are present but failed to open, with the reason.
    pub skipped: Vec<SkippedSensor>,
}

impl std::fmt::Debug for Discovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&'static str, &str)> = self
            .sensors
            .iter()
            .map(|s| (s.source(), s.name()))
            .collect();
        f.debug_struct("Discovered")
            .field("sensors", &names)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Sensor discovery under a root directory, with an injectable runner for
/// `vcgencmd`.
pub struct Discovery {
    root: PathBuf,
    runner: Box<dyn CommandRunner>,
}

impl Discovery {
    /// Discovery under `root` (normally `/`), running the real `vcgencmd`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_path_buf(),
            runner: Box::new(SystemCommandRunner::default()),
        }
    }

    /// Replaces the runner used for `vcgencmd` (it is only called when the
    /// device tree under the root says the board is a Raspberry Pi).
    pub fn with_runner(mut self, runner: impl CommandRunner + 'static) -> Self {
        self.runner = Box::new(runner);
        self
    }

    /// Opens everything present. Absent hardware is simply not listed;
    /// hardware that fails to open is listed in [`Discovered::skipped`].
    pub fn run(self) -> Discovered {
        let mut found = Discovered {
            sensors: Vec::new(),
            skipped: Vec::new(),
        };
        let root = self.root.as_path();

        let (jetson_input, jetson_other): (Vec<_>, Vec<_>) = match JetsonInaSensor::open_all(root) {
            Ok(rails) => rails
                .into_iter()
                .partition(|r| r.scope() == PowerScope::BoardInput),
            Err(error) => {
                found.skip("ina3221", error);
                (Vec::new(), Vec::new())
            }
        };
        found.add_all(jetson_input);

        if is_raspberry_pi(root) {
            found.add("rpi5-pmic", RpiPmicSensor::open_boxed(self.runner));
        }

        found.add("rapl", RaplSensor::open(root, &RaplDomain::Psys));
        found.add("rapl", RaplSensor::open(root, &RaplDomain::Packages));
        found.add_all(jetson_other);

        match HwmonPowerSensor::open_all(root) {
            Ok(channels) => found.add_all(channels),
            Err(error) => found.skip("hwmon", error),
        }
        found
    }
}

impl Discovered {
    fn add<S: PowerSensor + 'static>(
        &mut self,
        source: &'static str,
        opened: Result<S, PowerError>,
    ) {
        match opened {
            Ok(sensor) => self.sensors.push(Box::new(sensor)),
            Err(error) => self.skip(source, error),
        }
    }

    fn add_all<S: PowerSensor + 'static>(&mut self, sensors: Vec<S>) {
        for sensor in sensors {
            self.sensors.push(Box::new(sensor));
        }
    }

    fn skip(&mut self, source: &'static str, error: PowerError) {
        if !error.is_absent() {
            self.skipped.push(SkippedSensor { source, error });
        }
    }
}

/// The PMIC command exists on every Pi firmware, but only a Pi 5-class
/// board answers it; the model check keeps us from spawning `vcgencmd` on
/// other machines at all, and the open decides the rest.
fn is_raspberry_pi(root: &Path) -> bool {
    MODEL_FILES.iter().any(|file| {
        matches!(
            sysfs::read_optional_text(&root.join(file)),
            Ok(Some(model)) if model.contains("Raspberry Pi")
        )
    })
}

/// Every sensor under `root` (normally `/`), best first; empty when the
/// board has none. Sensors that exist but fail to open are left out: use
/// [`Discovery`] to learn why.
pub fn discover(root: impl AsRef<Path>) -> Vec<Box<dyn PowerSensor>> {
    Discovery::new(root).run().sensors
}
