//! TI INA219: 26 V (32 V range) bidirectional current/power monitor, 12-bit ADC.

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

/// Shunt voltage register LSB: 10 µV = 10_000 nV (independent of PGA gain).
const SHUNT_LSB_NANOVOLTS: i32 = 10_000;
/// Bus voltage LSB: 4 mV, value in bits 15..3.
const BUS_LSB_MICROVOLTS: u32 = 4_000;
const BUS_SHIFT: u32 = 3;
/// Bus voltage register bit 0: the power or current calculation overflowed.
const BUS_OVF: u16 = 1 << 0;
/// Power LSB = 20 × current LSB.
const POWER_LSB_FACTOR: u32 = 20;
/// 0.04096 A·Ω expressed in nA·µΩ.
const CALIBRATION_SCALE: u64 = 40_960_000_000_000;
/// The calibration register's bit 0 is void and always reads 0.
const CALIBRATION_MASK: u16 = 0xFFFE;

/// Bus voltage full-scale range (BRNG, bit 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BusVoltageRange {
    /// 16 V full scale.
    V16 = 0,
    /// 32 V full scale (power-on default).
    V32 = 1,
}

/// PGA gain and shunt voltage range (PG, bits 12-11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Gain {
    /// Gain 1, ±40 mV.
    Div1Mv40 = 0b00,
    /// Gain /2, ±80 mV.
    Div2Mv80 = 0b01,
    /// Gain /4, ±160 mV.
    Div4Mv160 = 0b10,
    /// Gain /8, ±320 mV (power-on default).
    Div8Mv320 = 0b11,
}

/// ADC resolution / averaging for one channel (BADC bits 10-7, SADC bits 6-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Adc {
    /// 9-bit, 84 µs.
    Bits9 = 0b0000,
    /// 10-bit, 148 µs.
    Bits10 = 0b0001,
    /// 11-bit, 276 µs.
    Bits11 = 0b0010,
    /// 12-bit, 532 µs (power-on default).
    Bits12 = 0b0011,
    /// 12-bit, 2 samples averaged, 1.06 ms.
    Samples2 = 0b1001,
    /// 12-bit, 4 samples averaged, 2.13 ms.
    Samples4 = 0b1010,
    /// 12-bit, 8 samples averaged, 4.26 ms.
    Samples8 = 0b1011,
    /// 12-bit, 16 samples averaged, 8.51 ms.
    Samples16 = 0b1100,
    /// 12-bit, 32 samples averaged, 17.02 ms.
    Samples32 = 0b1101,
    /// 12-bit, 64 samples averaged, 34.05 ms.
    Samples64 = 0b1110,
    /// 12-bit, 128 samples averaged, 68.10 ms.
    Samples128 = 0b1111,
}

/// Operating mode (MODE, bits 2-0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// Power-down.
    PowerDown = 0b000,
    /// Shunt voltage, triggered.
    ShuntTriggered = 0b001,
    /// Bus voltage, triggered.
    BusTriggered = 0b010,
    /// Shunt and bus, triggered.
    ShuntAndBusTriggered = 0b011,
    /// ADC off (disabled).
    AdcOff = 0b100,
    /// Shunt voltage, continuous.
    ShuntContinuous = 0b101,
    /// Bus voltage, continuous.
    BusContinuous = 0b110,
    /// Shunt and bus, continuous (power-on default).
    ShuntAndBusContinuous = 0b111,
}

/// Configuration register contents. `Default` is the power-on value 0x399F.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Bus voltage range.
    pub bus_range: BusVoltageRange,
    /// PGA gain (shunt voltage range).
    pub gain: Gain,
    /// Bus ADC resolution / averaging.
    pub bus_adc: Adc,
    /// Shunt ADC resolution / averaging.
    pub shunt_adc: Adc,
    /// Operating mode.
    pub mode: Mode,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bus_range: BusVoltageRange::V32,
            gain: Gain::Div8Mv320,
            bus_adc: Adc::Bits12,
            shunt_adc: Adc::Bits12,
            mode: Mode::ShuntAndBusContinuous,
        }
    }
}

impl Config {
    /// Encode as the configuration register value (reset bit 15 clear).
    pub const fn bits(&self) -> u16 {
        ((self.bus_range as u16) << 13)
            | ((self.gain as u16) << 11)
            | ((self.bus_adc as u16) << 7)
            | ((self.shunt_adc as u16) << 3)
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
    /// Cal = trunc(0.04096 / (current_LSB × R_shunt)) with bit 0 cleared
    /// (void on the chip). `None` if an input is zero or Cal does not fit
    /// 1..=0xFFFE (shunt or current too small for the register).
    pub fn new(max_current_microamps: u32, shunt_microohms: u32) -> Option<Self> {
        Self::with_current_lsb(
            crate::current_lsb_for_max(max_current_microamps)?,
            shunt_microohms,
        )
    }

    /// Calibration for an explicit current LSB, e.g. a round 100 µA
    /// (`100_000` nA) as the datasheet suggests.
    pub fn with_current_lsb(current_lsb_nanoamps: u32, shunt_microohms: u32) -> Option<Self> {
        let value = crate::calibration_value(
            CALIBRATION_SCALE,
            current_lsb_nanoamps,
            shunt_microohms,
            u16::MAX,
        )? & CALIBRATION_MASK;
        (value != 0).then_some(Self {
            current_lsb_nanoamps,
            register: value,
        })
    }

    /// Value written to the calibration register.
    pub const fn register_value(&self) -> u16 {
        self.register
    }

    /// Current register LSB in nanoamps (power LSB is 20 × this).
    pub const fn current_lsb_nanoamps(&self) -> u32 {
        self.current_lsb_nanoamps
    }
}

/// INA219 driver.
#[derive(Debug)]
pub struct Ina219<I2C> {
    i2c: I2C,
    address: u8,
    calibration: Option<Calibration>,
}

impl<I2C: I2c> Ina219<I2C> {
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

    /// Bus voltage in microvolts; [`Error::Overflow`] if the OVF bit is set.
    pub fn bus_microvolts(&mut self) -> Result<u32, Error<I2C::Error>> {
        let raw = self.read_reg(REG_BUS_VOLTAGE)?;
        if raw & BUS_OVF != 0 {
            return Err(Error::Overflow);
        }
        Ok(u32::from(raw >> BUS_SHIFT) * BUS_LSB_MICROVOLTS)
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

impl<I2C: I2c> PowerSensor for Ina219<I2C> {
    type Error = Error<I2C::Error>;

    /// Reads bus (checking OVF first), shunt, current, then power.
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
        "INA219"
    }
}
