//! `SensorPower`, the firmware's `PowerMeter` over the real INA219 / INA226
//! drivers (edgefit-sensors) on a mocked I2C bus (embedded-hal-mock): what a
//! board with a power monitor reports, down to the benchmark's energy.

mod common;

use common::*;
use edgefit_mcu::{Firmware, NoStackMeter, PowerMeter, RamFlash, SensorPower};
use edgefit_proto::{HostMsg, PowerSensorKind};
use edgefit_sensors::{ina219, ina226};
use embedded_hal::i2c::ErrorKind;
use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

const ADDR: u8 = 0x40;

fn read(reg: u8, value: u16) -> Transaction {
    Transaction::write_read(ADDR, vec![reg], value.to_be_bytes().to_vec())
}

fn write(reg: u8, value: u16) -> Transaction {
    let [hi, lo] = value.to_be_bytes();
    Transaction::write(ADDR, vec![reg, hi, lo])
}

/// One `PowerSensor::read` of an INA219: bus, shunt, current, power.
fn ina219_reading(power_reg: u16) -> [Transaction; 4] {
    [
        read(0x02, 1000 << 3), // 4.000 V, CNVR/OVF clear
        read(0x01, 5500),      // 55 mV across the shunt
        read(0x04, 5500),      // 550 mA at 100 µA per bit
        read(0x03, power_reg), // 2 mW per bit (20 x the current LSB)
    ]
}

/// INA219, 100 µA per bit on 0.1 Ω: calibration 4096.
fn ina219_over(mock: &Mock) -> SensorPower<ina219::Ina219<Mock>> {
    let mut ina = ina219::Ina219::new(mock.clone(), ADDR);
    ina.configure(
        ina219::Config::default(),
        ina219::Calibration::with_current_lsb(100_000, 100_000).unwrap(),
    )
    .unwrap();
    SensorPower(ina)
}

#[test]
fn ina219_power_in_milliwatts_and_bus_errors_as_none() {
    let mut expect = vec![write(0x00, 0x399F), write(0x05, 0x1000)];
    expect.extend(ina219_reading(275)); // 550 mW
    expect.extend(ina219_reading(1)); // 2 mW
                                      // A bus error on the first register: no reading, never a guess.
    expect.push(read(0x02, 0).with_error(ErrorKind::Other));
    let mut mock = Mock::new(&expect);
    let mut meter = ina219_over(&mock);
    assert_eq!(meter.kind(), PowerSensorKind::Ina219);
    assert_eq!(meter.read_power_mw(), Some(550));
    assert_eq!(meter.read_power_mw(), Some(2));
    assert_eq!(meter.read_power_mw(), None);
    mock.done();
}

#[test]
fn ina226_power_in_milliwatts() {
    let expect = vec![
        write(0x00, 0x4127),
        write(0x05, 0x0A00), // 1 mA per bit on 2 mΩ: 0.00512 / (1e-3 x 0.002)
        read(0x02, 3200),    // 4.000 V at 1.25 mV per bit
        read(0x01, 400),     // 1 mV at 2.5 µV per bit
        read(0x04, 500),     // 500 mA
        read(0x03, 80),      // 25 mW per bit: 2000 mW
    ];
    let mut mock = Mock::new(&expect);
    let mut ina = ina226::Ina226::new(mock.clone(), ADDR);
    ina.configure(
        ina226::Config::default(),
        ina226::Calibration::with_current_lsb(1_000_000, 2_000).unwrap(),
    )
    .unwrap();
    let mut meter = SensorPower(ina);
    assert_eq!(meter.kind(), PowerSensorKind::Ina226);
    assert_eq!(meter.read_power_mw(), Some(2000));
    mock.done();
}

#[test]
fn a_benchmark_reports_the_sensors_energy() {
    // Idle power at BenchStart, then power before and after each inference.
    let mut expect = vec![write(0x00, 0x399F), write(0x05, 0x1000)];
    expect.extend(ina219_reading(50)); // idle 100 mW
    for _ in 0..2 {
        expect.extend(ina219_reading(275)); // 550 mW
        expect.extend(ina219_reading(275));
    }
    let mut mock = Mock::new(&expect);
    let (mut flash, mut arena) = (vec![0u8; FLASH_BYTES], vec![0u8; ARENA_BYTES]);
    let mut host = Host::new();
    let mut fw = Firmware::new(
        board(),
        host.link.clone(),
        RamFlash::new(&mut flash),
        FakeClock::default(),
        ina219_over(&mock),
        NoStackMeter,
        &mut arena,
    );
    let plan = dense_i8(0x71, 300, 10, 9);
    host.upload(&mut fw, 0x71, &plan);
    assert_eq!(host.hello(&mut fw).power_sensor, PowerSensorKind::Ina219);
    host.ack(
        &mut fw,
        &HostMsg::BenchStart {
            plan_id: Some(0x71),
            samples: 2,
            want_outputs: false,
            engine: None,
        },
    );
    let x = Rng(2).bytes(300);
    for i in 0..2 {
        let r = host.record(&mut fw, &HostMsg::Sample { index: i, data: &x });
        // 550 mW for one 1 ms inference (STEP ticks at TICK_HZ).
        assert_eq!(r.energy_uj, Some(550));
    }
    let s = host.summary(&mut fw);
    assert_eq!(s.power_sensor, PowerSensorKind::Ina219);
    assert_eq!(s.energy_uj, Some(1100));
    assert_eq!(s.avg_power_mw, Some(550));
    assert_eq!(s.idle_power_mw, Some(100));
    drop(fw);
    mock.done();
}
