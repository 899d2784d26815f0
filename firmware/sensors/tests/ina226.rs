//! INA226 driver tests against a mocked I2C bus.
//!
//! Register addresses and expected values are restated from the datasheet
//! here on purpose, not imported from the driver.

use edgefit_sensors::ina226::{self, Averaging, Calibration, Config, ConversionTime, Ina226, Mode};
use edgefit_sensors::{Error, PowerReading, PowerSensor};
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

/// A non-default address (A0 = SDA) so the tests prove the address is used.
const ADDR: u8 = 0x42;

const CONFIG: u8 = 0x00;
const SHUNT: u8 = 0x01;
const BUS: u8 = 0x02;
const POWER: u8 = 0x03;
const CURRENT: u8 = 0x04;
const CALIBRATION: u8 = 0x05;
const MASK_ENABLE: u8 = 0x06;
const ALERT_LIMIT: u8 = 0x07;
const MANUFACTURER_ID: u8 = 0xFE;
const DIE_ID: u8 = 0xFF;

fn read(reg: u8, msb: u8, lsb: u8) -> Transaction {
    Transaction::write_read(ADDR, vec![reg], vec![msb, lsb])
}

fn write(reg: u8, msb: u8, lsb: u8) -> Transaction {
    Transaction::write(ADDR, vec![reg, msb, lsb])
}

/// Datasheet example: current LSB 1 mA on 2 mΩ: Cal = 0.00512 / (1e-3 × 2e-3) = 2560 = 0x0A00.
fn round_calibration() -> Calibration {
    Calibration::with_current_lsb(1_000_000, 2_000).expect("valid calibration")
}

/// Expectations for `configure(Config::default(), round_calibration())`.
fn configure_round() -> [Transaction; 2] {
    [write(CONFIG, 0x41, 0x27), write(CALIBRATION, 0x0A, 0x00)]
}

#[test]
fn default_address_is_0x40() {
    assert_eq!(ina226::DEFAULT_ADDRESS, 0x40);
}

#[test]
fn default_config_is_power_on_value() {
    assert_eq!(Config::default().bits(), 0x4127);
}

#[test]
fn config_fields_land_in_datasheet_bits() {
    // 0x4000 | AVG=010 << 9 = 0x0400 | VBUSCT=011 << 6 = 0x00C0 | VSHCT=111 << 3 = 0x0038 | MODE=101.
    let a = Config {
        averaging: Averaging::Samples16,
        bus_conversion: ConversionTime::Us588,
        shunt_conversion: ConversionTime::Us8244,
        mode: Mode::ShuntContinuous,
    };
    assert_eq!(a.bits(), 0x44FD);

    // 0x4000 | AVG=111 << 9 = 0x0E00, everything else 0.
    let b = Config {
        averaging: Averaging::Samples1024,
        bus_conversion: ConversionTime::Us140,
        shunt_conversion: ConversionTime::Us140,
        mode: Mode::PowerDown,
    };
    assert_eq!(b.bits(), 0x4E00);
}

#[test]
fn set_config_writes_pointer_then_msb_lsb() {
    let mut i2c = Mock::new(&[write(CONFIG, 0x44, 0xFD), read(CONFIG, 0x44, 0xFD)]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    let config = Config {
        averaging: Averaging::Samples16,
        bus_conversion: ConversionTime::Us588,
        shunt_conversion: ConversionTime::Us8244,
        mode: Mode::ShuntContinuous,
    };
    ina.set_config(config).unwrap();
    assert_eq!(ina.config_bits().unwrap(), 0x44FD);
    i2c.done();
}

#[test]
fn calibration_register_values() {
    // 800 mA on 0.1 Ω: LSB = ceil(8e8 nA / 32768) = ceil(24414.06) = 24415 nA;
    // Cal = trunc(5.12e12 / (24415 × 100000)) = trunc(2097.07) = 2097.
    let cal = Calibration::new(800_000, 100_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 24_415);
    assert_eq!(cal.register_value(), 2097);

    // 15 A on 2 mΩ: LSB = ceil(457763.67) = 457764 nA;
    // Cal = trunc(5.12e12 / (457764 × 2000)) = trunc(5592.4) = 5592.
    let cal = Calibration::new(15_000_000, 2_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 457_764);
    assert_eq!(cal.register_value(), 5592);

    // 1 A on 10 mΩ: LSB = ceil(30517.58) = 30518 nA;
    // Cal = trunc(5.12e12 / (30518 × 10000)) = trunc(16776.9) = 16776 (odd values allowed).
    let cal = Calibration::new(1_000_000, 10_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 30_518);
    assert_eq!(cal.register_value(), 16776);

    // Datasheet example, round 1 mA LSB on 2 mΩ -> 2560.
    assert_eq!(round_calibration().register_value(), 2560);
}

#[test]
fn calibration_rejects_unusable_inputs() {
    assert_eq!(Calibration::new(0, 2_000), None);
    assert_eq!(Calibration::new(15_000_000, 0), None);
    // 100 mA on 10 mΩ: LSB 3052 nA, Cal = 5.12e12 / 3.052e7 = 167_758 > 0x7FFF.
    assert_eq!(Calibration::new(100_000, 10_000), None);
    // 500 mA on 10 mΩ: LSB 15259 nA, Cal = 5.12e12 / 1.5259e8 = 33_553 > 0x7FFF
    // (fits 16 bits but bit 15 is reserved).
    assert_eq!(Calibration::new(500_000, 10_000), None);
}

#[test]
fn calibrate_writes_config_then_calibration() {
    // 2097 = 0x0831.
    let mut i2c = Mock::new(&[write(CONFIG, 0x41, 0x27), write(CALIBRATION, 0x08, 0x31)]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    let cal = ina.calibrate(Config::default(), 800_000, 100_000).unwrap();
    assert_eq!(cal.register_value(), 0x0831);
    assert_eq!(ina.calibration(), Some(cal));
    i2c.done();
}

#[test]
fn calibrate_with_invalid_inputs_touches_no_register() {
    let mut i2c = Mock::new(&[]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    assert_eq!(
        ina.calibrate(Config::default(), 500_000, 10_000),
        Err(Error::InvalidConfig)
    );
    i2c.done();
}

#[test]
fn read_positive_values() {
    let mut expectations = configure_round().to_vec();
    expectations.extend([
        // 9600 × 1.25 mV = 12 V.
        read(BUS, 0x25, 0x80),
        // 8000 × 2.5 µV = 20 mV (10 A through 2 mΩ).
        read(SHUNT, 0x1F, 0x40),
        // 10000 × 1 mA = 10 A.
        read(CURRENT, 0x27, 0x10),
        // Power LSB 25 mW; 4800 × 25 mW = 120 W (12 V × 10 A).
        read(POWER, 0x12, 0xC0),
    ]);
    let mut i2c = Mock::new(&expectations);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    ina.configure(Config::default(), round_calibration())
        .unwrap();
    assert_eq!(
        ina.read().unwrap(),
        PowerReading {
            bus_microvolts: 12_000_000,
            shunt_nanovolts: 20_000_000,
            current_microamps: 10_000_000,
            power_microwatts: 120_000_000,
        }
    );
    i2c.done();
}

#[test]
fn read_negative_shunt_and_current() {
    let mut expectations = configure_round().to_vec();
    expectations.extend([
        read(BUS, 0x25, 0x80),
        // -8000 = 0xE0C0 -> -20 mV.
        read(SHUNT, 0xE0, 0xC0),
        // -10000 = 0xD8F0 -> -10 A.
        read(CURRENT, 0xD8, 0xF0),
        read(POWER, 0x12, 0xC0),
    ]);
    let mut i2c = Mock::new(&expectations);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    ina.configure(Config::default(), round_calibration())
        .unwrap();
    let reading = ina.read().unwrap();
    assert_eq!(reading.shunt_nanovolts, -20_000_000);
    assert_eq!(reading.current_microamps, -10_000_000);
    assert_eq!(reading.power_microwatts, 120_000_000);
    i2c.done();
}

#[test]
fn fractional_lsbs_convert_exactly() {
    let mut i2c = Mock::new(&[
        // 1 × 2.5 µV, -1 × 2.5 µV.
        read(SHUNT, 0x00, 0x01),
        read(SHUNT, 0xFF, 0xFF),
        // 1 × 1.25 mV; full scale 32767 × 1.25 mV = 40.95875 V.
        read(BUS, 0x00, 0x01),
        read(BUS, 0x7F, 0xFF),
        write(CONFIG, 0x41, 0x27),
        write(CALIBRATION, 0x08, 0x31),
        // 3 × 24415 nA = 73.245 µA -> 73 µA; -3 -> -73 µA (toward zero).
        read(CURRENT, 0x00, 0x03),
        read(CURRENT, 0xFF, 0xFD),
        // Power LSB 25 × 24415 nA -> 610.375 µW; × 7 = 4272.625 µW -> 4272 µW.
        read(POWER, 0x00, 0x07),
    ]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    assert_eq!(ina.shunt_nanovolts().unwrap(), 2_500);
    assert_eq!(ina.shunt_nanovolts().unwrap(), -2_500);
    assert_eq!(ina.bus_microvolts().unwrap(), 1_250);
    assert_eq!(ina.bus_microvolts().unwrap(), 40_958_750);
    ina.calibrate(Config::default(), 800_000, 100_000).unwrap();
    assert_eq!(ina.current_microamps().unwrap(), 73);
    assert_eq!(ina.current_microamps().unwrap(), -73);
    assert_eq!(ina.power_microwatts().unwrap(), 4_272);
    i2c.done();
}

#[test]
fn verify_id_accepts_ina226() {
    let mut i2c = Mock::new(&[read(MANUFACTURER_ID, 0x54, 0x49), read(DIE_ID, 0x22, 0x60)]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    assert_eq!(ina.verify_id(), Ok(()));
    i2c.done();
}

#[test]
fn verify_id_rejects_other_chips_and_names_the_values() {
    let mut i2c = Mock::new(&[
        // TI, but an INA228 die (0x2281).
        read(MANUFACTURER_ID, 0x54, 0x49),
        read(DIE_ID, 0x22, 0x81),
        // Not TI at all.
        read(MANUFACTURER_ID, 0x12, 0x34),
        read(DIE_ID, 0x22, 0x60),
    ]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    let err = ina.verify_id().unwrap_err();
    assert_eq!(
        err,
        Error::WrongId {
            manufacturer: 0x5449,
            die: 0x2281
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("0x5449") && message.contains("0x2281"),
        "{message}"
    );
    assert_eq!(
        ina.verify_id(),
        Err(Error::WrongId {
            manufacturer: 0x1234,
            die: 0x2260
        })
    );
    i2c.done();
}

#[test]
fn mask_enable_and_alert_limit_are_raw_registers() {
    let mut i2c = Mock::new(&[
        write(MASK_ENABLE, 0x80, 0x00),
        read(MASK_ENABLE, 0x80, 0x08),
        write(ALERT_LIMIT, 0x12, 0x34),
        read(ALERT_LIMIT, 0x12, 0x34),
    ]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    ina.set_mask_enable(0x8000).unwrap();
    assert_eq!(ina.mask_enable().unwrap(), 0x8008);
    ina.set_alert_limit(0x1234).unwrap();
    assert_eq!(ina.alert_limit().unwrap(), 0x1234);
    i2c.done();
}

#[test]
fn uncalibrated_read_fails_without_bus_traffic() {
    let mut i2c = Mock::new(&[]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    assert_eq!(ina.read(), Err(Error::NotCalibrated));
    i2c.done();
}

#[test]
fn bus_errors_propagate() {
    let mut i2c = Mock::new(&[
        read(MANUFACTURER_ID, 0x00, 0x00).with_error(ErrorKind::Other),
        write(CONFIG, 0x41, 0x27),
        write(CALIBRATION, 0x0A, 0x00).with_error(ErrorKind::Other),
    ]);
    let mut ina = Ina226::new(i2c.clone(), ADDR);
    assert_eq!(ina.verify_id(), Err(Error::I2c(ErrorKind::Other)));
    assert_eq!(
        ina.configure(Config::default(), round_calibration()),
        Err(Error::I2c(ErrorKind::Other))
    );
    assert_eq!(ina.calibration(), None);
    i2c.done();
}

#[test]
fn destroy_returns_the_bus() {
    let i2c = Mock::new(&[read(BUS, 0x00, 0x02)]);
    let mut ina = Ina226::new(i2c, ADDR);
    assert_eq!(ina.name(), "INA226");
    // 2 × 1.25 mV.
    assert_eq!(ina.bus_microvolts().unwrap(), 2_500);
    let mut i2c = ina.destroy();
    i2c.done();
}
