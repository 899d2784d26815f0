//! Power-monitor drivers for edgefit targets: TI INA219 and INA226 over an
//! [`embedded_hal::i2c::I2c`] (embedded-hal 1.0, blocking) bus.
//!
//! `no_std`, no allocation, no floating point: calibration and every
//! conversion use integer arithmetic, so results are exact (or truncated
//! toward zero where a unit conversion needs it) and identical on every MCU.
//!
//! Both chips implement [`PowerSensor`], which yields a [`PowerReading`].
//!
//! ```
//! use edgefit_sensors::{ina219::{self, Ina219}, PowerSensor};
//! # use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};
//! # let i2c = Mock::new(&[
//! #     T::write(0x40, vec![0x00, 0x39, 0x9F]),
//! #     T::write(0x40, vec![0x05, 0x1A, 0x36]),
//! #     T::write_read(0x40, vec![0x02], vec![0x5D, 0xC2]),
//! #     T::write_read(0x40, vec![0x01], vec![0x0F, 0xA0]),
//! #     T::write_read(0x40, vec![0x04], vec![0x02, 0x8F]),
//! #     T::write_read(0x40, vec![0x03], vec![0x00, 0x9F]),
//! # ]);
//! let mut ina = Ina219::new(i2c, ina219::DEFAULT_ADDRESS);
//! // Up to 2 A through a 0.1 ohm shunt: current LSB 61_036 nA.
//! ina.calibrate(ina219::Config::default(), 2_000_000, 100_000)?;
//! let reading = ina.read()?;
//! assert_eq!(reading.bus_microvolts, 12_000_000);
//! assert_eq!(reading.shunt_nanovolts, 40_000_000);
//! # ina.destroy().done();
//! # Ok::<(), edgefit_sensors::Error<embedded_hal::i2c::ErrorKind>>(())
//! ```
//!
//! # Why these drivers are written here rather than wrapping crates.io ones
//!
//! `ina219` 0.2.1 and `ina226` 0.3.0 were reviewed. They are not wrapped:
//!
//! * `ina226` 0.3.0 does calibration and every conversion in `f64` (software
//!   emulated on Cortex-M4F/M7 single-precision FPUs), casts the calibration
//!   value with `as u16` without a range check (values above 0x7FFF silently
//!   set the reserved bit or saturate), returns the bare bus error with no
//!   driver error type, has no ID check and no `defmt`, and its `async`
//!   feature *replaces* the blocking API (a non-additive feature).
//! * `ina219` 0.2.1 is careful (integer calibration, overflow checks) but its
//!   constructor resets and probes the chip over the bus, reads are batched
//!   with `I2c::transaction` by default, calibration is a type-state generic,
//!   and each operation has its own error type; its calibration takes a
//!   current LSB, not the max-current/shunt pair.
//!
//! Wrapping both would put two unrelated shapes (float vs. integer, different
//! error models, different constructor side effects) behind one trait, for
//! what is ~200 lines of register access per chip. Writing them gives one
//! error type, one unit convention and one calibration API for both chips.
//!
//! # Units
//!
//! | quantity      | unit | INA219 LSB       | INA226 LSB       |
//! |---------------|------|------------------|------------------|
//! | bus voltage   | µV   | 4 mV (exact)     | 1.25 mV (exact)  |
//! | shunt voltage | nV   | 10 µV (exact)    | 2.5 µV (exact)   |
//! | current       | µA   | current LSB (nA) | current LSB (nA) |
//! | power         | µW   | 20 × current LSB | 25 × current LSB |
//!
//! Current LSBs are held in nanoamps and shunt resistances in micro-ohms.
#![no_std]
#![warn(missing_docs)]

use core::fmt;

use embedded_hal::i2c::I2c;

pub mod ina219;
pub mod ina226;

/// One measurement from a power monitor.
///
/// Voltages are exact for both chips (see the crate docs for the LSBs);
/// current and power are truncated toward zero to whole µA / µW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PowerReading {
    /// Bus (load-side supply) voltage in microvolts.
    pub bus_microvolts: u32,
    /// Voltage across the shunt in nanovolts; negative when current flows backwards.
    pub shunt_nanovolts: i32,
    /// Current through the shunt in microamps (sign as for the shunt voltage).
    pub current_microamps: i32,
    /// Power as computed by the chip, in microwatts.
    pub power_microwatts: u32,
}

/// A power monitor that can take one [`PowerReading`].
pub trait PowerSensor {
    /// Error returned by [`PowerSensor::read`].
    type Error;

    /// Read bus voltage, shunt voltage, current and power (last conversion results).
    fn read(&mut self) -> Result<PowerReading, Self::Error>;

    /// Chip name, e.g. `"INA219"` or `"INA226"`.
    fn name(&self) -> &'static str;
}

/// Driver error, generic over the I2C bus error `E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    /// The I2C bus reported an error.
    I2c(E),
    /// Calibration inputs are zero or give a calibration register value that
    /// does not fit the chip's register.
    InvalidConfig,
    /// Current or power was requested before the chip was calibrated.
    NotCalibrated,
    /// The chip flagged a math overflow (INA219 OVF bit), or a converted value
    /// does not fit the [`PowerReading`] field.
    Overflow,
    /// The manufacturer / die ID registers do not identify the expected chip.
    WrongId {
        /// Value read from the manufacturer ID register.
        manufacturer: u16,
        /// Value read from the die ID register.
        die: u16,
    },
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I2c(e) => write!(f, "I2C bus error: {e:?}"),
            Self::InvalidConfig => f.write_str("invalid calibration or configuration"),
            Self::NotCalibrated => f.write_str("sensor is not calibrated"),
            Self::Overflow => f.write_str("measurement overflow"),
            Self::WrongId { manufacturer, die } => write!(
                f,
                "unexpected chip id: manufacturer {manufacturer:#06x}, die {die:#06x}"
            ),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Read a 16-bit big-endian register: write the pointer byte, read two bytes.
fn read_register<I: I2c>(i2c: &mut I, address: u8, register: u8) -> Result<u16, Error<I::Error>> {
    let mut buf = [0u8; 2];
    i2c.write_read(address, &[register], &mut buf)
        .map_err(Error::I2c)?;
    Ok(u16::from_be_bytes(buf))
}

/// Write a 16-bit register as `[register, msb, lsb]`.
fn write_register<I: I2c>(
    i2c: &mut I,
    address: u8,
    register: u8,
    value: u16,
) -> Result<(), Error<I::Error>> {
    let [msb, lsb] = value.to_be_bytes();
    i2c.write(address, &[register, msb, lsb])
        .map_err(Error::I2c)
}

/// Smallest whole-nanoamp current LSB that covers `max_current_microamps`
/// with the 15-bit signed current register: `ceil(I_max / 2^15)`.
fn current_lsb_for_max(max_current_microamps: u32) -> Option<u32> {
    let lsb = (u64::from(max_current_microamps) * 1000).div_ceil(1 << 15);
    u32::try_from(lsb).ok().filter(|&lsb| lsb > 0)
}

/// `trunc(scale / (current_LSB × R_shunt))` with `scale` already expressed in
/// nA·µΩ (e.g. 0.04096 A·Ω = 40_960_000_000_000 nA·µΩ). `None` when an input
/// is zero or the result is 0 or above `max`.
fn calibration_value(
    scale: u64,
    current_lsb_nanoamps: u32,
    shunt_microohms: u32,
    max: u16,
) -> Option<u16> {
    let denominator = u64::from(current_lsb_nanoamps) * u64::from(shunt_microohms);
    let value = scale.checked_div(denominator)?;
    u16::try_from(value)
        .ok()
        .filter(|&value| value != 0 && value <= max)
}

/// Current register value × LSB, in µA truncated toward zero.
fn current_microamps<E>(raw: i16, current_lsb_nanoamps: u32) -> Result<i32, Error<E>> {
    let nanoamps = i64::from(raw) * i64::from(current_lsb_nanoamps);
    i32::try_from(nanoamps / 1000).map_err(|_| Error::Overflow)
}

/// Power register value × (`factor` × current LSB), in µW truncated.
fn power_microwatts<E>(raw: u16, factor: u32, current_lsb_nanoamps: u32) -> Result<u32, Error<E>> {
    let nanowatts = u64::from(raw) * u64::from(factor) * u64::from(current_lsb_nanoamps);
    u32::try_from(nanowatts / 1000).map_err(|_| Error::Overflow)
}
