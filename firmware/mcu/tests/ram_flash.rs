//! RamFlash behaves like NOR flash.

use edgefit_mcu::{MappedFlash, RamFlash};
use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind, ReadNorFlash};

#[test]
fn erase_sets_whole_sectors_to_ff() {
    let mut mem = vec![0x12u8; 3 * 4096];
    let mut f = RamFlash::new(&mut mem);
    assert_eq!(f.capacity(), 3 * 4096);
    f.erase(4096, 8192).unwrap();
    assert!(f.memory()[..4096].iter().all(|&b| b == 0x12));
    assert!(f.memory()[4096..8192].iter().all(|&b| b == 0xFF));
    assert!(f.memory()[8192..].iter().all(|&b| b == 0x12));
    assert_eq!(f.erase(0, 100), Err(NorFlashErrorKind::NotAligned));
    assert_eq!(f.erase(100, 4096), Err(NorFlashErrorKind::NotAligned));
    assert_eq!(f.erase(8192, 4 * 4096), Err(NorFlashErrorKind::OutOfBounds));
    assert_eq!(f.erase(8192, 4096), Err(NorFlashErrorKind::OutOfBounds));
    f.erase(0, 0).unwrap();
}

#[test]
fn writes_only_clear_bits_and_must_be_aligned() {
    let mut mem = vec![0u8; 8192];
    let mut f = RamFlash::new(&mut mem);
    f.erase(0, 4096).unwrap();
    f.write(8, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
    f.write(8, &[0x3C, 0x3C, 0xFF, 0x00]).unwrap();
    assert_eq!(&f.memory()[8..12], &[0x30, 0x0C, 0xAA, 0x00]);
    // A write over zeros leaves zeros: erase first.
    f.write(4096, &[0xFF; 4]).unwrap();
    assert_eq!(&f.memory()[4096..4100], &[0; 4]);
    assert_eq!(f.write(2, &[0; 4]), Err(NorFlashErrorKind::NotAligned));
    assert_eq!(f.write(4, &[0; 3]), Err(NorFlashErrorKind::NotAligned));
    assert_eq!(f.write(8192, &[0; 4]), Err(NorFlashErrorKind::OutOfBounds));
    assert_eq!(f.write(8188, &[0; 8]), Err(NorFlashErrorKind::OutOfBounds));
    assert_eq!(
        f.write(u32::MAX - 3, &[0; 4]),
        Err(NorFlashErrorKind::OutOfBounds)
    );
    assert_eq!(RamFlash::WRITE_SIZE, 4);
    assert_eq!(RamFlash::ERASE_SIZE, 4096);
}

#[test]
fn reads_and_mapping() {
    let mut mem: Vec<u8> = (0..=255).cycle().take(8192).collect();
    let mut f = RamFlash::new(&mut mem);
    let mut buf = [0u8; 3];
    f.read(5, &mut buf).unwrap();
    assert_eq!(buf, [5, 6, 7]);
    assert_eq!(f.read(8190, &mut buf), Err(NorFlashErrorKind::OutOfBounds));
    assert_eq!(f.mapped(254, 4), Some(&[254, 255, 0, 1][..]));
    assert_eq!(f.mapped(8192, 0), Some(&[][..]));
    assert_eq!(f.mapped(8190, 3), None);
    assert_eq!(f.mapped(u32::MAX, 2), None);
    // Contents survive a "reboot".
    let mem = f.into_inner();
    let f = RamFlash::new(mem);
    assert_eq!(f.mapped(0, 2), Some(&[0, 1][..]));
}

mod sensor_power {
    use edgefit_mcu::{PowerMeter, SensorPower};
    use edgefit_proto::PowerSensorKind;
    use edgefit_sensors::{PowerReading, PowerSensor};

    struct Fake(Result<u32, ()>, &'static str);

    impl PowerSensor for Fake {
        type Error = ();
        fn read(&mut self) -> Result<PowerReading, ()> {
            self.0.map(|uw| PowerReading {
                power_microwatts: uw,
                ..PowerReading::default()
            })
        }
        fn name(&self) -> &'static str {
            self.1
        }
    }

    #[test]
    fn sensor_power_reads_milliwatts_and_names_the_chip() {
        let mut ina219 = SensorPower(Fake(Ok(123_456), "INA219"));
        assert_eq!(ina219.kind(), PowerSensorKind::Ina219);
        assert_eq!(ina219.read_power_mw(), Some(123));
        let mut ina226 = SensorPower(Fake(Ok(1_500), "INA226"));
        assert_eq!(ina226.kind(), PowerSensorKind::Ina226);
        assert_eq!(ina226.read_power_mw(), Some(2));
        // A bus error is no reading, not zero watts.
        let mut broken = SensorPower(Fake(Err(()), "INA226"));
        assert_eq!(broken.read_power_mw(), None);
    }
}
