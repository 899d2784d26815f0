//! edgefit firmware for the nRF52840 DK (PCA10056; Cortex-M4F, 64 MHz).
//!
//! Link: UARTE0 on the J-Link's virtual COM port (TX P0.06, RX P0.08), 115200
//! baud, 8N1, no flow control. Plan slots: internal flash above the firmware
//! (memory.x), written through the NVMC and executed in place. Timing: the DWT
//! cycle counter at 64 MHz. Power: none, or with feature `ina219` / `ina226`
//! an INA219 / INA226 on the Arduino header's I2C pins (see `power.rs`).
//! Diagnostics: defmt over RTT (feature `defmt`, on by default).
//!
//! MLPerf Tiny: the same UART answers the runner's DUT commands (see
//! docs/mlperf-tiny.md). With P1.07 tied to GND at reset the board boots for
//! an energy rig instead: the UART runs at 9600 baud (the interface board's
//! rate) and timestamps are falling edges on P1.08 (D7 of the Arduino-style header in Nordic's
//! PCA10056 pin map; not checked on a board here),
//! pushed-pull at the board's VDD — no rebuild either way.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;
use cortex_m_rt::entry;
use edgefit_board_support::{plan_slots_region, DwtClock, PaintedStack};
use edgefit_mcu::{BoardInfo, Firmware};
#[cfg(not(any(feature = "ina219", feature = "ina226")))]
use edgefit_mcu::NoPower;
use nrf52840_hal::{clocks::Clocks, gpio, pac, uarte};
use embedded_hal::digital::InputPin;
use panic_halt as _;
// The defmt logger for edgefit-mcu's diagnostics: RTT, non-blocking (lines
// are dropped, never waited on, when no debugger reads them).
#[cfg(feature = "defmt")]
use defmt_rtt as _;

mod flash;
#[cfg(any(feature = "ina219", feature = "ina226"))]
mod power;
mod vcom;

const CLOCK_HZ: u32 = 64_000_000;
const RAM_BYTES: u64 = 256 << 10;
const FLASH_BYTES: u64 = 1 << 20;
/// The tensor arena, in .bss. The other 64 KiB of RAM hold the firmware state
/// (~5 KiB), the UART buffers and the stack (under 10 KiB on QEMU).
const ARENA_BYTES: usize = 192 << 10;

static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];

#[entry]
fn main() -> ! {
    let mut cp = pac::CorePeripherals::take().expect("core peripherals are taken once, here");
    let p = pac::Peripherals::take().expect("peripherals are taken once, here");
    // The crystal, so that cycle counts mean 64 MHz to within 50 ppm, not 1.5 %.
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    let clock = DwtClock::start(&mut cp.DCB, cp.DWT, CLOCK_HZ);

    let port0 = gpio::p0::Parts::new(p.P0);
    let port1 = gpio::p1::Parts::new(p.P1);
    // The energy-mode strap, read once at reset (pulled up: open = performance).
    let mut strap = port1.p1_07.into_pullup_input();
    cortex_m::asm::delay(64); // let the pull-up settle
    let energy_mode = strap.is_low().unwrap_or(false);
    let baud = if energy_mode {
        uarte::Baudrate::BAUD9600
    } else {
        uarte::Baudrate::BAUD115200
    };
    let pins = uarte::Pins {
        txd: port0
            .p0_06
            .into_push_pull_output(gpio::Level::High)
            .degrade(),
        rxd: port0.p0_08.into_floating_input().degrade(),
        cts: None,
        rts: None,
    };
    let link = vcom::Vcom::new(p.UARTE0, pins, baud);

    let (slots_addr, slots_len) = plan_slots_region();
    // SAFETY: memory.x reserves this flash range for the plan slots and links
    // nothing there; nothing else touches it or the NVMC.
    let slots = unsafe { flash::SlotFlash::new(p.NVMC, slots_addr, slots_len) };
    // SAFETY: `main` runs once and never returns: this is the only reference.
    let arena: &'static mut [u8] = unsafe { &mut *addr_of_mut!(ARENA) };

    let info = BoardInfo {
        board: "nrf52840-dk",
        core: "cortex-m4f",
        clock_hz: CLOCK_HZ,
        ram_bytes: RAM_BYTES,
        flash_bytes: FLASH_BYTES,
    };
    #[cfg(any(feature = "ina219", feature = "ina226"))]
    let power = power::open(nrf52840_hal::twim::Twim::new(
        p.TWIM0,
        nrf52840_hal::twim::Pins {
            sda: port0.p0_26.into_floating_input().degrade(),
            scl: port0.p0_27.into_floating_input().degrade(),
        },
        nrf52840_hal::twim::Frequency::K100,
    ));
    #[cfg(not(any(feature = "ina219", feature = "ina226")))]
    let power = NoPower;
    let mut firmware = Firmware::new(
        info,
        link,
        slots,
        clock,
        power,
        PaintedStack::new(),
        arena,
    );
    if energy_mode {
        let pin = port1.p1_08.into_push_pull_output(gpio::Level::High);
        firmware.with_timestamp_pin(pin).run()
    } else {
        firmware.run()
    }
}
