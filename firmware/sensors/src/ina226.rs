//! TI INA226: 36 V bidirectional current/power monitor, 16-bit ADC, alert pin.

use embedded_hal::i2c::I2c;

use crate::{Error, PowerReading, PowerSensor};

/// I2C address with A1 = A0 = GND.
pub const DEFAULT_ADDRESS: u8 = 0x40;

const REG_CONFIG: u8 = 0x00;
const REG_SHUNT_VOLTAGE: u8 = 0x01;
const REG_BUS_VOLTAGE: u8 = 0x02;
const REG_POWER: u8 = 0x03;
const REG_CURRENT: u8 = 0x04;
const REG_CALIBRATION: u8 = 0x05;
const REG_MASK_ENABLE: u8 = 0x06;
const REG_ALERT_LIMIT: u8 = 0x07;
const REG_MANUFACTURER_ID: u8 = 0xFE;
const REG_DIE_ID: u8 = 0xFF;

/// "TI" in ASCII.
const MANUFACTURER_ID: u16 = 0x5449;
/// Die ID bits 15-4 (bits 3-0 are the die revision, 0 on current silicon).
const DIE_ID: u16 = 0x226;
const DIE_ID_SHIFT: u32 = 4;

/// Configuration bits 14-12 are reserved and read back as 0b100.
const CONFIG_RESERVED: u16 = 0x4000;
/// Shunt voltage LSB: 2.5 µV = 2_500 nV.
const SHUNT_LSB_NANOVOLTS: i32 = 2_500;
/// Bus voltage LSB: 1.25 mV = 1_250 µV, no shift.
const BUS_LSB_MICROVOLTS: u32 = 1_250;
/// Power LSB = 25 × current LSB.
const POWER_LSB_FACTOR: u32 = 25;
/// 0.00512 A·Ω expressed in nA·µΩ.
const CALIBRATION_SCALE: u64 = 5_120_000_000_000;
/// Calibration bit 15 is reserved: the value is 15 bits wide.
const CALIBRATION_MAX: u16 = 0x7FFF;

/// Number of samples averaged (AVG, bits 11-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Averaging {
    /// 1 sample (power-on default).
    Samples1 = 0b000,
    /// 4 samples.
    Samples4 = 0b001,
    /// 16 samples.
    Samples16 = 0b010,
    /// 64 samples.
    Samples64 = 0b011,
    /// 128 samples.
    Samples128 = 0b100,
    /// 256 samples.
    Samples256 = 0b101,
    /// 512 samples.
    Samples512 = 0b110,
    /// 1024 samples.
    Samples1024 = 0b111,
}

/// ADC conversion time, per channel (VBUSCT bits 8-6, VSHCT bits 5-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConversionTime {
    /// 140 µs.
    Us140 = 0b000,
    /// 204 µs.
    Us204 = 0b001,
    /// 332 µs.
    Us332 = 0b010,
    /// 588 µs.
    Us588 = 0b011,
    /// 1.1 ms (power-on default).
    Us1100 = 0b100,
    /// 2.116 ms.
    Us2116 = 0b101,
    /// 4.156 ms.
    Us4156 = 0b110,
    /// 8.244 ms.
    Us8244 = 0b111,
}

/// Operating mode (MODE, bits 2-0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// Power-down (shutdown).
    PowerDown = 0b000,
    /// Shunt voltage, triggered.
    ShuntTriggered = 0b001,
    /// Bus voltage, triggered.
    BusTriggered = 0b010,
    /// Shunt and bus, triggered.
    ShuntAndBusTriggered = 0b011,
    /// Power-down (shutdown), alternate encoding.
    PowerDown2 = 0b100,
    /// Shunt voltage, continuous.
    ShuntContinuous = 0b101,
    /// Bus voltage, continuous.
    BusContinuous = 0b110,
    /// Shunt and bus, continuous (power-on default).
    ShuntAndBusContinuous = 0b111,
}

/// Configuration register contents. `Default` is the power-on value 0x4127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Averaging.
    pub averaging: Averaging,
    /// Bus voltage conversion time.
    pub bus_conversion: ConversionTime,
    /// Shunt voltage conversion time.
    pub shunt_conversion: ConversionTime,
    /// Operating mode.
    pub mode: Mode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            averaging: Averaging::Samples1,
            bus_conversion: ConversionTime::Us1100,
            shunt_conversion: ConversionTime::Us1100,
            mode: Mode::ShuntAndBusContinuous,
        }
    }
}

impl Config {
    /// Encode as the configuration register value (reserved bit 14 set as
    /// on power-on, reset bit 15 clear).
    pub const fn bits(&self) -> u16 {
        CONFIG_RESERVED
            | ((self.averaging as u16) << 9)
            | ((self.bus_conversion as u16) << 6)
            | ((self.shunt_conversion as u16) << 3)
            | (self.mode as u16)
    }
}

/// A calibration register value together with the current LSB it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Calibration {
    current_lsb_nanoamps: u32,
    register: u16,
}

impl Calibration {
    /// Calibration for a maximum expected current through a shunt.
    ///
    /// current_LSB = ceil(I_max / 2^15) in whole nA, then
    /// Cal = trunc(0.00512 / (current_LSB × R_shunt)). `None` if an input is
    /// zero or Cal does not fit 1..=0x7FFF.
    pub fn new(max_current_microamps: u32, shunt_microohms: u32) -> Option<Self> {
        Self::with_current_lsb(
            crate::current_lsb_for_max(max_current_microamps)?,
            shunt_microohms,
        )
    }

    /// Calibration for an explicit current LSB, e.g. a round 1 mA
    /// (`1_000_000` nA) as in the datasheet example.
    pub fn with_current_lsb(current_lsb_nanoamps: u32, shunt_microohms: u32) -> Option<Self> {
        let register = crate::calibration_value(
            CALIBRATION_SCALE,
            current_lsb_nanoamps,
            shunt_microohms,
            CALIBRATION_MAX,
        )?;
        Some(Self {
            current_lsb_nanoamps,
            register,
        })
    }

    /// Value written to the calibration register.
    pub const fn register_value(&self) -> u16 {
        self.register
    }

    /// Current register LSB in nanoamps (power LSB is 25 × this).
    pub const fn current_lsb_nanoamps(&self) -> u32 {
        self.current_lsb_nanoamps
    }
}

/// INA226 driver.
#[derive(Debug)]
pub struct Ina226<I2C> {
    i2c: I2C,
    address: u8,
    calibration: Option<Calibration>,
}

impl<I2C: I2c> Ina226<I2C> {
    /// Create a driver; does no bus traffic. The chip starts uncalibrated.
    pub const fn new(i2c: I2C, address: u8) -> Self {
        Self {
            i2c,
            address,
            calibration: None,
        }
    }

    /// Release the I2C bus.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    /// The calibration last written by this driver, if any.
    pub const fn calibration(&self) -> Option<Calibration> {
        self.calibration
    }

    /// Check the manufacturer ID (0x5449) and die ID (0x226x) registers;
    /// [`Error::WrongId`] carries the values read otherwise. The die
    /// revision nibble is ignored.
    pub fn verify_id(&mut self) -> Result<(), Error<I2C::Error>> {
        let manufacturer = self.read_reg(REG_MANUFACTURER_ID)?;
        let die = self.read_reg(REG_DIE_ID)?;
        if manufacturer == MANUFACTURER_ID && die >> DIE_ID_SHIFT == DIE_ID {
            Ok(())
        } else {
            Err(Error::WrongId { manufacturer, die })
        }
    }

    /// Write the configuration register.
    pub fn set_config(&mut self, config: Config) -> Result<(), Error<I2C::Error>> {
        self.write(REG_CONFIG, config.bits())
    }

    /// Read the raw configuration register.
    pub fn config_bits(&mut self) -> Result<u16, Error<I2C::Error>> {
        self.read_reg(REG_CONFIG)
    }

    /// Compute the calibration for `max_current_microamps` through a
    /// `shunt_microohms` shunt (see [`Calibration::new`]), then write the
    /// configuration and calibration registers.
    pub fn calibrate(
        &mut self,
        config: Config,
        max_current_microamps: u32,
        shunt_microohms: u32,
    ) -> Result<Calibration, Error<I2C::Error>> {
        let calibration =
            Calibration::new(max_current_microamps, shunt_microohms).ok_or(Error::InvalidConfig)?;
        self.configure(config, calibration)?;
        Ok(calibration)
    }

    /// Write the configuration, then the calibration, and remember the
    /// current LSB for conversions.
    pub fn configure(
        &mut self,
        config: Config,
        calibration: Calibration,
    ) -> Result<(), Error<I2C::Error>> {
        self.set_config(config)?;
        self.write(REG_CALIBRATION, calibration.register)?;
        self.calibration = Some(calibration);
        Ok(())
    }

    /// Shunt voltage in nanovolts.
    pub fn shunt_nanovolts(&mut self) -> Result<i32, Error<I2C::Error>> {
        let raw = self.read_reg(REG_SHUNT_VOLTAGE)? as i16;
        Ok(i32::from(raw) * SHUNT_LSB_NANOVOLTS)
    }

    /// Bus voltage in microvolts.
    pub fn bus_microvolts(&mut self) -> Result<u32, Error<I2C::Error>> {
        let raw = self.read_reg(REG_BUS_VOLTAGE)?;
        Ok(u32::from(raw) * BUS_LSB_MICROVOLTS)
    }

    /// Current in microamps (needs a calibration).
    pub fn current_microamps(&mut self) -> Result<i32, Error<I2C::Error>> {
        let lsb = self.current_lsb()?;
        let raw = self.read_reg(REG_CURRENT)? as i16;
        crate::current_microamps(raw, lsb)
    }

    /// Power in microwatts (needs a calibration).
    pub fn power_microwatts(&mut self) -> Result<u32, Error<I2C::Error>> {
        let lsb = self.current_lsb()?;
        let raw = self.read_reg(REG_POWER)?;
        crate::power_microwatts(raw, POWER_LSB_FACTOR, lsb)
    }

    /// Read the raw mask/enable register (reading clears the alert latch).
    pub fn mask_enable(&mut self) -> Result<u16, Error<I2C::Error>> {
        self.read_reg(REG_MASK_ENABLE)
    }

    /// Write the raw mask/enable register.
    pub fn set_mask_enable(&mut self, value: u16) -> Result<(), Error<I2C::Error>> {
        self.write(REG_MASK_ENABLE, value)
    }

    /// Read the raw alert limit register.
    pub fn alert_limit(&mut self) -> Result<u16, Error<I2C::Error>> {
        self.read_reg(REG_ALERT_LIMIT)
    }

    /// Write the raw alert limit register (same format as the register
    /// selected by the mask/enable alert function).
    pub fn set_alert_limit(&mut self, value: u16) -> Result<(), Error<I2C::Error>> {
        self.write(REG_ALERT_LIMIT, value)
    }

    fn current_lsb(&self) -> Result<u32, Error<I2C::Error>> {
        self.calibration
            .map(|c| c.current_lsb_nanoamps)
            .ok_or(Error::NotCalibrated)
    }

    fn read_reg(&mut self, register: u8) -> Result<u16, Error<I2C::Error>> {
        crate::read_register(&mut self.i2c, self.address, register)
    }

    fn write(&mut self, register: u8, value: u16) -> Result<(), Error<I2C::Error>> {
        crate::write_register(&mut self.i2c, self.address, register, value)
    }
}

impl<I2C: I2c> PowerSensor for Ina226<I2C> {
    type Error = Error<I2C::Error>;

    /// Reads bus, shunt, current, then power.
    fn read(&mut self) -> Result<PowerReading, Self::Error> {
        self.current_lsb()?;
        Ok(PowerReading {
            bus_microvolts: self.bus_microvolts()?,
            shunt_nanovolts: self.shunt_nanovolts()?,
            current_microamps: self.current_microamps()?,
            power_microwatts: self.power_microwatts()?,
        })
    }

    fn name(&self) -> &'static str {
        "INA226"
    }
}
