//! The protocol scenarios every device runs (`edgefit-conformance`), here
//! against the firmware: its UART framing over an in-memory byte queue, its
//! plan slots on RAM flash.

mod common;

use common::{board, FakeClock, Fw, Link, ARENA_BYTES, FLASH_BYTES};
use edgefit_conformance::{split_frames, Target};
use edgefit_mcu::{Firmware, NoPower, NoStackMeter, RamFlash};

/// A freshly booted firmware with an empty flash.
struct FirmwareTarget {
    fw: Fw<'static>,
    link: Link,
}

fn fresh() -> FirmwareTarget {
    // Leaked: each test's device lives for the test process.
    let flash = Box::leak(vec![0u8; FLASH_BYTES].into_boxed_slice());
    let arena = Box::leak(vec![0u8; ARENA_BYTES].into_boxed_slice());
    let link = Link::default();
    let fw = Firmware::new(
        board(),
        link.clone(),
        RamFlash::new(flash),
        FakeClock::default(),
        NoPower,
        NoStackMeter,
        arena,
    );
    FirmwareTarget { fw, link }
}

impl Target for FirmwareTarget {
    fn exchange(&mut self, bytes: &[u8], frames: usize) -> Vec<Vec<u8>> {
        self.link.to_dev.borrow_mut().extend(bytes.iter().copied());
        // Until the device has read everything and says nothing more.
        for _ in 0..100_000 {
            let before = self.link.from_dev.borrow().len();
            self.fw.poll().unwrap_or_else(|e| match e {});
            if self.link.to_dev.borrow().is_empty() && self.link.from_dev.borrow().len() == before {
                let out = split_frames(&std::mem::take(&mut *self.link.from_dev.borrow_mut()));
                assert_eq!(out.len(), frames, "answers to {} bytes", bytes.len());
                return out;
            }
        }
        panic!("the device never went quiet");
    }
}

edgefit_conformance::conformance_tests!(fresh());
