//! Reads electrical power on Linux edge boards, from the sensors they really
//! have, so a benchmark can report joules per inference next to latency.
//!
//! | board / CPU | reader | kernel or firmware interface |
//! |---|---|---|
//! | Jetson Orin / Xavier (JetPack 5+) | [`JetsonInaSensor`] | hwmon `ina3221`: `in{N}_label`, `in{N}_input` (mV), `curr{N}_input` (mA) |
//! | Jetson Nano / TX2 (JetPack 4) | [`JetsonInaSensor`] | `ina3221x` IIO: `rail_name_{N}`, `in_power{N}_input` (mW), `in_voltage{N}_input`, `in_current{N}_input` |
//! | Raspberry Pi 5 | [`RpiPmicSensor`] | `vcgencmd pmic_read_adc` text output |
//! | Intel / AMD x86 | [`RaplSensor`] | powercap `energy_uj` counters |
//! | anything else | [`HwmonPowerSensor`] | hwmon `power{N}_input` (µW) |
//!
//! Every reader takes a filesystem root (normally `/`) so tests run against
//! fixture trees, and the Pi reader takes a [`CommandRunner`] so tests feed
//! it recorded output. [`discover`] finds whatever exists; on a board with
//! no sensor it returns an empty list, never an error.
//!
//! To measure a run, hand a sensor to [`measure`] (or drive an
//! [`EnergyMeter`] yourself): counter sensors (RAPL) give exact energy
//! deltas, instantaneous ones are sampled and integrated.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let mut sensors = edgefit_power::discover("/");
//! if let Some(sensor) = sensors.first_mut() {
//!     let (_, report) = edgefit_power::measure(sensor.as_mut(), Duration::from_millis(50), || {
//!         // run N inferences here
//!     });
//!     let report = report?;
//!     println!("{:.3} J, {:.2} W average", report.joules, report.average_watts());
//! }
//! # Ok::<(), edgefit_power::PowerError>(())
//! ```
//!
//! Format sources are listed in this crate's README.md.

mod discover;
mod energy;
mod error;
mod hwmon;
mod jetson;
mod rapl;
mod rpi;
mod sysfs;

use std::time::Duration;

pub use discover::{discover, Discovered, Discovery, SkippedSensor};
pub use energy::{measure, EnergyMeter, EnergyMethod, EnergyReport, TrapezoidIntegrator};
pub use error::PowerError;
pub use hwmon::HwmonPowerSensor;
pub use jetson::{jetson_rails, JetsonInaSensor, RailSelector, BOARD_INPUT_RAILS};
pub use rapl::{counter_delta, RaplDomain, RaplSensor};
pub use rpi::{
    parse_pmic_adc, CommandRunner, PmicRail, RpiPmicSensor, SystemCommandRunner,
    PMIC_READ_ADC_ARGS, VCGENCMD,
};

/// One power value from a sensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerReading {
    /// Power in watts.
    pub watts: f64,
    /// `None` for an instantaneous sample (INA3221, PMIC ADC, hwmon);
    /// `Some(window)` when the value is the average over `window`, computed
    /// from an energy counter (RAPL).
    pub averaged_over: Option<Duration>,
}

/// What part of the system a sensor's watts cover: lets a caller pick the
/// figure that answers "what does the board draw" and label the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerScope {
    /// Measured where power enters the board (Jetson `VDD_IN`): everything.
    BoardInput,
    /// Sum of on-board regulator outputs (Pi 5 PMIC): misses conversion
    /// losses and loads fed straight from the input (USB ports).
    BoardRails,
    /// The CPU vendor's whole-platform estimate (RAPL `psys`).
    Platform,
    /// CPU package(s) only (RAPL `package-N`).
    Processor,
    /// A single rail or device (a Jetson sub-rail, a generic hwmon channel).
    Component,
}

/// A source of power readings.
///
/// `Send` so a sampler thread can own or borrow it while the benchmark runs
/// on the caller's thread (see [`measure`]).
pub trait PowerSensor: Send {
    /// Human-readable name, e.g. `VDD_IN` or `package-0+package-1`.
    fn name(&self) -> &str;

    /// Which reader produced it: `ina3221`, `rpi5-pmic`, `rapl`, `hwmon`.
    fn source(&self) -> &'static str;

    /// What the watts cover.
    fn scope(&self) -> PowerScope;

    /// Reads power now (or, for counter sensors, the average since the
    /// previous read).
    fn read(&mut self) -> Result<PowerReading, PowerError>;

    /// Energy in joules accumulated by a hardware counter since the sensor
    /// was opened, or `Ok(None)` when the sensor has no counter and energy
    /// must be integrated from [`read`](Self::read) samples.
    fn energy_joules(&mut self) -> Result<Option<f64>, PowerError> {
        Ok(None)
    }
}
