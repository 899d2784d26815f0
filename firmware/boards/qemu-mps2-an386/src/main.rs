//! edgefit firmware for QEMU's mps2-an386 (Cortex-M4F, 25 MHz).
//!
//! Link: UART0 (the first `-serial`). Plan slots: RAM-backed NOR in PSRAM.
//! Timing: SysTick; under `-icount shift=0` one instruction is 1 ns of virtual
//! time, so one 25 MHz tick is 40 instructions (`instructions = ticks * 40`).
//! Panics print through semihosting and exit QEMU with status 1.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;
use cortex_m_rt::entry;
use edgefit_board_support::{plan_slots_region, PaintedStack, SysTickClock};
use edgefit_mcu::{BoardInfo, Firmware, NoPower, RamFlash};
use edgefit_proto::TimingSource;
use panic_semihosting as _;

mod uart;

/// SYSCLK of the AN386 image, which QEMU also feeds to SysTick.
const CLOCK_HZ: u32 = 25_000_000;
/// SSRAM2/3, where .data, .bss and the stack live.
const RAM_BYTES: u64 = 4 << 20;
/// The tensor arena, in .bss, reported to the host as `arena_bytes`. The
/// rest of SSRAM2/3 (almost 1 MiB) is stack; the firmware needs under 10 KiB.
const ARENA_BYTES: usize = 3 << 20;

static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().expect("core peripherals are taken once, here");
    // SAFETY: UART0 is driven by nothing else.
    let link = unsafe { uart::Uart::new(uart::UART0) };
    // The first 4 MiB of PSRAM stand in for flash: two 2 MiB plan slots.
    let (slots_addr, slots_len) = plan_slots_region();
    // SAFETY: memory.x reserves this PSRAM range for the slots and links nothing
    // there; this is the only reference to it for the rest of the program.
    let slots = unsafe { core::slice::from_raw_parts_mut(slots_addr as *mut u8, slots_len) };
    // SAFETY: `main` runs once and never returns: this is the only reference.
    let arena: &'static mut [u8] = unsafe { &mut *addr_of_mut!(ARENA) };
    let info = BoardInfo {
        board: "mps2-an386",
        core: "cortex-m4f",
        clock_hz: CLOCK_HZ,
        ram_bytes: RAM_BYTES,
        flash_bytes: slots_len as u64,
    };
    let clock = SysTickClock::start(cp.SYST, CLOCK_HZ, TimingSource::QemuIcount);
    Firmware::new(
        info,
        link,
        RamFlash::new(slots),
        clock,
        NoPower,
        PaintedStack::new(),
        arena,
    )
    .run()
}
