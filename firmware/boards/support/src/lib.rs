//! Board glue shared by every Cortex-M board: a painted-stack [`StackMeter`],
//! two [`Clock`]s — SysTick (what QEMU models) and the DWT cycle counter (what
//! real Cortex-M3/M4/M7 parts have) — and the plan-slot region from memory.x.
//!
//! [`StackMeter`]: edgefit_mcu::StackMeter
//! [`Clock`]: edgefit_mcu::Clock
#![no_std]

mod clock;
mod stack;

pub use clock::DwtClock;
#[cfg(feature = "systick")]
pub use clock::SysTickClock;
pub use stack::PaintedStack;

use core::ptr::addr_of;

// Defined by each board's memory.x: the memory reserved for the two plan
// slots, which no output section uses.
extern "C" {
    static _plan_slots_start: u8;
    static _plan_slots_end: u8;
}

/// Address and length in bytes of the plan-slot region of the board's memory.x.
pub fn plan_slots_region() -> (usize, usize) {
    // Only the symbols' addresses are taken, never their contents (safe).
    let (start, end) = (
        addr_of!(_plan_slots_start) as usize,
        addr_of!(_plan_slots_end) as usize,
    );
    (start, end.saturating_sub(start))
}
