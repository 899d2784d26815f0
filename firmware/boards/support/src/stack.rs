//! Stack high-water mark by painting: fill the free stack with a pattern, run,
//! then find the lowest word that no longer holds it.

use core::ptr::{addr_of, read_volatile, write_volatile};
use cortex_m::register::msp;
use edgefit_mcu::StackMeter;

/// Unlikely as data, and not a valid return address (even, outside flash).
const PAINT: u32 = 0xA5C3_5A3C;

// From cortex-m-rt's link.x: the stack grows down from `_stack_start` (the top
// of RAM) towards `_stack_end` (the end of .bss/.uninit, i.e. `__sheap`). No
// heap lives in between, so all of it is stack.
extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Measures the main stack (MSP) between `_stack_end` and `_stack_start`.
pub struct PaintedStack {
    bottom: usize,
    top: usize,
}

impl PaintedStack {
    /// The stack bounds from the linker script. Creating several is harmless
    /// (each only reads and paints free stack), but they share one paint.
    pub fn new() -> Self {
        // Only the symbols' addresses are taken, never their contents (safe).
        let (bottom, top) = (
            addr_of!(_stack_end) as usize,
            addr_of!(_stack_start) as usize,
        );
        Self {
            bottom: (bottom + 3) & !3,
            top: top & !7,
        }
    }
}

impl Default for PaintedStack {
    fn default() -> Self {
        Self::new()
    }
}

impl StackMeter for PaintedStack {
    /// Paints from the bottom of the stack up to the current stack pointer.
    /// Everything below SP is free; an exception taken meanwhile pushes its
    /// frame below SP, which is genuine stack use and may stay visible.
    fn repaint(&mut self) {
        let sp = msp::read() as usize & !3;
        let mut p = self.bottom;
        while p < sp {
            // SAFETY: [bottom, sp) is free stack: no object lives below SP, and
            // nothing but the stack occupies [_stack_end, _stack_start).
            unsafe { write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
    }

    /// Bytes between the top of the stack and the lowest overwritten word.
    fn high_water_bytes(&self) -> u32 {
        let mut p = self.bottom;
        // SAFETY: reads of RAM words inside the stack region (see `repaint`).
        while p < self.top && unsafe { read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        (self.top - p) as u32
    }
}
