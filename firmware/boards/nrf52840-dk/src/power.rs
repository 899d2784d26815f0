//! The board's power meter: an INA219 or INA226 on the Arduino header's I2C
//! pins (SDA P0.26, SCL P0.27, TWIM0 at 100 kHz) when built with feature
//! `ina219` or `ina226`; none otherwise.
//!
//! Build-time settings (environment variables when the firmware is built):
//! `EDGEFIT_INA_ADDRESS` (7-bit, decimal or 0x-hex; default 0x40),
//! `EDGEFIT_INA_SHUNT_MICROOHMS` (default 100000: the 0.1 Ω of the common
//! breakout boards), `EDGEFIT_INA_MAX_MICROAMPS` (the largest current to
//! resolve; default 400000 = 400 mA, the 3.2 A INA219 breakout range is far
//! more than an nRF52840 draws). A sensor that does not answer at boot reads
//! as no sensor (the device reports `None`; nothing is estimated).

use edgefit_mcu::{NoPower, PowerMeter, SensorPower};
use edgefit_proto::PowerSensorKind;

/// A decimal or `0x` hexadecimal number from a build-time setting.
const fn setting(value: Option<&str>, default: u32) -> u32 {
    let Some(s) = value else {
        return default;
    };
    let b = s.as_bytes();
    let (radix, mut i) = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        (16, 2)
    } else {
        (10, 0)
    };
    let mut v: u32 = 0;
    while i < b.len() {
        let d = match b[i] {
            c @ b'0'..=b'9' => (c - b'0') as u32,
            c @ b'a'..=b'f' if radix == 16 => (c - b'a' + 10) as u32,
            c @ b'A'..=b'F' if radix == 16 => (c - b'A' + 10) as u32,
            b'_' => {
                i += 1;
                continue;
            }
            _ => panic!("EDGEFIT_INA_* settings are whole numbers"),
        };
        v = v * radix + d;
        i += 1;
    }
    v
}

const ADDRESS: u32 = setting(option_env!("EDGEFIT_INA_ADDRESS"), 0x40);
const SHUNT_MICROOHMS: u32 = setting(option_env!("EDGEFIT_INA_SHUNT_MICROOHMS"), 100_000);
const MAX_MICROAMPS: u32 = setting(option_env!("EDGEFIT_INA_MAX_MICROAMPS"), 400_000);
const _: () = assert!(ADDRESS < 0x80, "EDGEFIT_INA_ADDRESS is a 7-bit I2C address");

/// The meter the firmware reads around each inference.
pub enum BoardPower<S> {
    Sensor(SensorPower<S>),
    None(NoPower),
}

impl<S: edgefit_sensors::PowerSensor> PowerMeter for BoardPower<S> {
    fn kind(&self) -> PowerSensorKind {
        match self {
            BoardPower::Sensor(s) => s.kind(),
            BoardPower::None(n) => n.kind(),
        }
    }

    fn read_power_mw(&mut self) -> Option<u32> {
        match self {
            BoardPower::Sensor(s) => s.read_power_mw(),
            BoardPower::None(n) => n.read_power_mw(),
        }
    }
}

#[cfg(feature = "ina219")]
pub type Sensor<I2C> = edgefit_sensors::ina219::Ina219<I2C>;
#[cfg(feature = "ina226")]
pub type Sensor<I2C> = edgefit_sensors::ina226::Ina226<I2C>;

/// Configures and calibrates the sensor on `i2c`; no sensor when it does not
/// answer (or, for the INA226, does not identify as one).
pub fn open<I2C: embedded_hal::i2c::I2c>(i2c: I2C) -> BoardPower<Sensor<I2C>> {
    let mut ina = Sensor::new(i2c, ADDRESS as u8);
    #[cfg(feature = "ina226")]
    if ina.verify_id().is_err() {
        return BoardPower::None(NoPower);
    }
    match ina.calibrate(Default::default(), MAX_MICROAMPS, SHUNT_MICROOHMS) {
        Ok(_) => BoardPower::Sensor(SensorPower(ina)),
        Err(_) => BoardPower::None(NoPower),
    }
}

#[cfg(all(feature = "ina219", feature = "ina226"))]
compile_error!("features `ina219` and `ina226`: build with one of them");
