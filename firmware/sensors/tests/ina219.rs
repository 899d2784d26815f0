//! INA219 driver tests against a mocked I2C bus.
//!
//! Register addresses and expected values are restated from the datasheet
//! here on purpose, not imported from the driver.

use edgefit_sensors::ina219::{
    self, Adc, BusVoltageRange, Calibration, Config, Gain, Ina219, Mode,
};
use edgefit_sensors::{Error, PowerReading, PowerSensor};
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

/// A non-default address (A0 = VS+) so the tests prove the address is used.
const ADDR: u8 = 0x41;

const CONFIG: u8 = 0x00;
const SHUNT: u8 = 0x01;
const BUS: u8 = 0x02;
const POWER: u8 = 0x03;
const CURRENT: u8 = 0x04;
const CALIBRATION: u8 = 0x05;

fn read(reg: u8, msb: u8, lsb: u8) -> Transaction {
    Transaction::write_read(ADDR, vec![reg], vec![msb, lsb])
}

fn write(reg: u8, msb: u8, lsb: u8) -> Transaction {
    Transaction::write(ADDR, vec![reg, msb, lsb])
}

/// Current LSB 100 µA on a 0.1 Ω shunt: Cal = 0.04096 / (1e-4 × 0.1) = 4096 = 0x1000.
fn round_calibration() -> Calibration {
    Calibration::with_current_lsb(100_000, 100_000).expect("valid calibration")
}

/// Expectations for `configure(Config::default(), round_calibration())`.
fn configure_round() -> [Transaction; 2] {
    [write(CONFIG, 0x39, 0x9F), write(CALIBRATION, 0x10, 0x00)]
}

#[test]
fn default_address_is_0x40() {
    assert_eq!(ina219::DEFAULT_ADDRESS, 0x40);
}

#[test]
fn default_config_is_power_on_value() {
    assert_eq!(Config::default().bits(), 0x399F);
}

#[test]
fn config_fields_land_in_datasheet_bits() {
    // BRNG=0, PG=00, BADC=0000 (9-bit), SADC=1111 (128 samples) << 3 = 0x78, MODE=101.
    let a = Config {
        bus_range: BusVoltageRange::V16,
        gain: Gain::Div1Mv40,
        bus_adc: Adc::Bits9,
        shunt_adc: Adc::Samples128,
        mode: Mode::ShuntContinuous,
    };
    assert_eq!(a.bits(), 0x007D);

    // PG=01 << 11 = 0x0800, BADC=0011 << 7 = 0x0180, SADC=1101 << 3 = 0x0068, MODE=011.
    let b = Config {
        bus_range: BusVoltageRange::V16,
        gain: Gain::Div2Mv80,
        bus_adc: Adc::Bits12,
        shunt_adc: Adc::Samples32,
        mode: Mode::ShuntAndBusTriggered,
    };
    assert_eq!(b.bits(), 0x09EB);

    // BRNG=1 << 13 = 0x2000, PG=10 << 11 = 0x1000, BADC=1001 << 7 = 0x0480,
    // SADC=0001 << 3 = 0x0008, MODE=000.
    let c = Config {
        bus_range: BusVoltageRange::V32,
        gain: Gain::Div4Mv160,
        bus_adc: Adc::Samples2,
        shunt_adc: Adc::Bits10,
        mode: Mode::PowerDown,
    };
    assert_eq!(c.bits(), 0x3488);
}

#[test]
fn set_config_writes_pointer_then_msb_lsb() {
    let mut i2c = Mock::new(&[write(CONFIG, 0x09, 0xEB), read(CONFIG, 0x09, 0xEB)]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    let config = Config {
        bus_range: BusVoltageRange::V16,
        gain: Gain::Div2Mv80,
        bus_adc: Adc::Bits12,
        shunt_adc: Adc::Samples32,
        mode: Mode::ShuntAndBusTriggered,
    };
    ina.set_config(config).unwrap();
    assert_eq!(ina.config_bits().unwrap(), 0x09EB);
    i2c.done();
}

#[test]
fn calibration_register_values() {
    // 2 A on 0.1 Ω: LSB = ceil(2e9 nA / 32768) = ceil(61035.16) = 61036 nA;
    // Cal = trunc(40.96e12 / (61036 × 100000)) = trunc(6710.8) = 6710 (even).
    let cal = Calibration::new(2_000_000, 100_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 61_036);
    assert_eq!(cal.register_value(), 6710);

    // 3.2 A on 0.1 Ω: LSB = ceil(97656.25) = 97657 nA;
    // Cal = trunc(40.96e12 / 9.7657e9) = trunc(4194.3) = 4194.
    let cal = Calibration::new(3_200_000, 100_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 97_657);
    assert_eq!(cal.register_value(), 4194);

    // 1 A on 0.1 Ω: LSB = ceil(30517.58) = 30518 nA;
    // Cal = trunc(40.96e12 / 3.0518e9) = trunc(13421.6) = 13421, bit 0 is void -> 13420.
    let cal = Calibration::new(1_000_000, 100_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 30_518);
    assert_eq!(cal.register_value(), 13420);

    // 5 A on 10 mΩ: LSB = ceil(152587.89) = 152588 nA;
    // Cal = trunc(40.96e12 / (152588 × 10000)) = trunc(26843.5) = 26843 -> 26842.
    let cal = Calibration::new(5_000_000, 10_000).unwrap();
    assert_eq!(cal.current_lsb_nanoamps(), 152_588);
    assert_eq!(cal.register_value(), 26842);

    // Datasheet-style round LSB: 100 µA on 0.1 Ω -> 4096.
    assert_eq!(round_calibration().register_value(), 4096);
}

#[test]
fn calibration_rejects_unusable_inputs() {
    assert_eq!(Calibration::new(0, 100_000), None);
    assert_eq!(Calibration::new(2_000_000, 0), None);
    assert_eq!(Calibration::with_current_lsb(0, 100_000), None);
    // 100 mA on 10 mΩ: LSB 3052 nA, Cal = 40.96e12 / 3.052e7 = 1_342_070 > 0xFFFF.
    assert_eq!(Calibration::new(100_000, 10_000), None);
    // Cal = 40.96e12 / (1e9 × 1e5) = 0 (LSB far too coarse).
    assert_eq!(Calibration::with_current_lsb(1_000_000_000, 100_000), None);
}

#[test]
fn calibrate_writes_config_then_calibration() {
    // 6710 = 0x1A36 (see calibration_register_values).
    let mut i2c = Mock::new(&[write(CONFIG, 0x39, 0x9F), write(CALIBRATION, 0x1A, 0x36)]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    assert_eq!(ina.calibration(), None);
    let cal = ina
        .calibrate(Config::default(), 2_000_000, 100_000)
        .unwrap();
    assert_eq!(cal.register_value(), 0x1A36);
    assert_eq!(ina.calibration(), Some(cal));
    i2c.done();
}

#[test]
fn calibrate_with_invalid_inputs_touches_no_register() {
    let mut i2c = Mock::new(&[]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    assert_eq!(
        ina.calibrate(Config::default(), 100_000, 10_000),
        Err(Error::InvalidConfig)
    );
    assert_eq!(ina.calibration(), None);
    i2c.done();
}

#[test]
fn read_positive_values() {
    let mut expectations = configure_round().to_vec();
    expectations.extend([
        // 12 V / 4 mV = 3000, << 3 = 0x5DC0, plus CNVR (bit 1).
        read(BUS, 0x5D, 0xC2),
        // 4000 × 10 µV = 40 mV.
        read(SHUNT, 0x0F, 0xA0),
        // 400 × 100 µA = 40 mA.
        read(CURRENT, 0x01, 0x90),
        // Power LSB 20 × 100 µA = 2 mW; 240 × 2 mW = 480 mW (12 V × 40 mA).
        read(POWER, 0x00, 0xF0),
    ]);
    let mut i2c = Mock::new(&expectations);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    ina.configure(Config::default(), round_calibration())
        .unwrap();
    assert_eq!(
        ina.read().unwrap(),
        PowerReading {
            bus_microvolts: 12_000_000,
            shunt_nanovolts: 40_000_000,
            current_microamps: 40_000,
            power_microwatts: 480_000,
        }
    );
    i2c.done();
}

#[test]
fn read_negative_shunt_and_current() {
    let mut expectations = configure_round().to_vec();
    expectations.extend([
        read(BUS, 0x5D, 0xC0),
        // -4000 = 0xF060 -> -40 mV.
        read(SHUNT, 0xF0, 0x60),
        // -400 = 0xFE70 -> -40 mA.
        read(CURRENT, 0xFE, 0x70),
        read(POWER, 0x00, 0xF0),
    ]);
    let mut i2c = Mock::new(&expectations);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    ina.configure(Config::default(), round_calibration())
        .unwrap();
    let reading = ina.read().unwrap();
    assert_eq!(reading.bus_microvolts, 12_000_000);
    assert_eq!(reading.shunt_nanovolts, -40_000_000);
    assert_eq!(reading.current_microamps, -40_000);
    assert_eq!(reading.power_microwatts, 480_000);
    i2c.done();
}

#[test]
fn conversions_with_non_round_lsb_and_full_scale() {
    let mut i2c = Mock::new(&[
        write(CONFIG, 0x39, 0x9F),
        write(CALIBRATION, 0x1A, 0x36),
        // 1000 × 61036 nA = 61.036 mA.
        read(CURRENT, 0x03, 0xE8),
        // -3 × 61036 nA = -183.108 µA, truncated toward zero.
        read(CURRENT, 0xFF, 0xFD),
        // Power LSB 20 × 61036 nA -> 1.22072 mW; × 100 = 122.072 mW.
        read(POWER, 0x00, 0x64),
        // Full scale: 8191 × 4 mV = 32.764 V.
        read(BUS, 0xFF, 0xF8),
        // -32000 = 0x8300 -> -320 mV.
        read(SHUNT, 0x83, 0x00),
    ]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    ina.calibrate(Config::default(), 2_000_000, 100_000)
        .unwrap();
    assert_eq!(ina.current_microamps().unwrap(), 61_036);
    assert_eq!(ina.current_microamps().unwrap(), -183);
    assert_eq!(ina.power_microwatts().unwrap(), 122_072);
    assert_eq!(ina.bus_microvolts().unwrap(), 32_764_000);
    assert_eq!(ina.shunt_nanovolts().unwrap(), -320_000_000);
    i2c.done();
}

#[test]
fn ovf_bit_is_an_error() {
    let mut expectations = configure_round().to_vec();
    // OVF (bit 0) set: the read stops at the bus register.
    expectations.push(read(BUS, 0x5D, 0xC3));
    let mut i2c = Mock::new(&expectations);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    ina.configure(Config::default(), round_calibration())
        .unwrap();
    assert_eq!(ina.read(), Err(Error::Overflow));
    i2c.done();
}

#[test]
fn converted_value_too_large_is_overflow_not_panic() {
    // LSB 100 mA (1e8 nA) on 1 mΩ: Cal = trunc(40.96e12 / 1e11) = 409 -> 408 = 0x0198.
    // 32767 × 100 mA = 3276 A does not fit i32 µA; 65535 × 2 W does not fit u32 µW.
    let cal = Calibration::with_current_lsb(100_000_000, 1_000).unwrap();
    assert_eq!(cal.register_value(), 408);
    let mut i2c = Mock::new(&[
        write(CONFIG, 0x39, 0x9F),
        write(CALIBRATION, 0x01, 0x98),
        read(CURRENT, 0x7F, 0xFF),
        read(POWER, 0xFF, 0xFF),
    ]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    ina.configure(Config::default(), cal).unwrap();
    assert_eq!(ina.current_microamps(), Err(Error::Overflow));
    assert_eq!(ina.power_microwatts(), Err(Error::Overflow));
    i2c.done();
}

#[test]
fn uncalibrated_read_fails_without_bus_traffic() {
    let mut i2c = Mock::new(&[read(SHUNT, 0x00, 0x64)]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    assert_eq!(ina.read(), Err(Error::NotCalibrated));
    assert_eq!(ina.current_microamps(), Err(Error::NotCalibrated));
    assert_eq!(ina.power_microwatts(), Err(Error::NotCalibrated));
    // Voltages need no calibration: 100 × 10 µV = 1 mV.
    assert_eq!(ina.shunt_nanovolts().unwrap(), 1_000_000);
    i2c.done();
}

#[test]
fn bus_errors_propagate() {
    let mut i2c = Mock::new(&[
        write(CONFIG, 0x39, 0x9F).with_error(ErrorKind::Other),
        read(SHUNT, 0x00, 0x00).with_error(ErrorKind::Other),
    ]);
    let mut ina = Ina219::new(i2c.clone(), ADDR);
    assert_eq!(
        ina.calibrate(Config::default(), 2_000_000, 100_000),
        Err(Error::I2c(ErrorKind::Other))
    );
    // The calibration was not remembered after the failed write.
    assert_eq!(ina.calibration(), None);
    assert_eq!(ina.shunt_nanovolts(), Err(Error::I2c(ErrorKind::Other)));
    i2c.done();
}

#[test]
fn destroy_returns_the_bus() {
    let i2c = Mock::new(&[read(BUS, 0x00, 0x08)]);
    let mut ina = Ina219::new(i2c, ADDR);
    assert_eq!(ina.name(), "INA219");
    // 1 × 4 mV.
    assert_eq!(ina.bus_microvolts().unwrap(), 4_000);
    let mut i2c = ina.destroy();
    i2c.done();
}
