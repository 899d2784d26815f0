//! CMSDK APB UART (ARM DDI 0479), polled, as an `embedded_io` byte link.
//!
//! QEMU's model has a one-byte receive holding register and no FIFO, so a byte
//! that arrives while the previous one is unread waits in QEMU's chardev layer
//! (the socket) rather than being lost: polling is enough.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

/// UART0 on the MPS2 AN385/AN386 memory map (the one QEMU's `-serial` connects).
pub const UART0: usize = 0x4000_4000;

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// The smallest divider the UART accepts (QEMU logs a guest error below 16).
/// QEMU does not pace bytes by baud rate, so the value only has to be legal.
const MIN_BAUDDIV: u32 = 16;

pub struct Uart {
    base: usize,
}

impl Uart {
    /// Enables transmit and receive.
    ///
    /// # Safety
    /// `base` must be a CMSDK APB UART that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Self { base };
        uart.write_reg(BAUDDIV, MIN_BAUDDIV);
        uart.write_reg(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        uart
    }

    fn read_reg(&self, off: usize) -> u32 {
        // SAFETY: `base` is a UART's register block (contract of `new`); these
        // offsets are its 32-bit registers.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn write_reg(&self, off: usize, value: u32) {
        // SAFETY: as in `read_reg`.
        unsafe { write_volatile((self.base + off) as *mut u32, value) }
    }

    fn try_read_byte(&self) -> Option<u8> {
        if self.read_reg(STATE) & STATE_RX_FULL != 0 {
            Some(self.read_reg(DATA) as u8)
        } else {
            None
        }
    }

    fn write_byte(&self, b: u8) {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        self.write_reg(DATA, b as u32);
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Read for Uart {
    /// Blocks until at least one byte has arrived, then returns what is there.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        let first = loop {
            if let Some(b) = self.try_read_byte() {
                break b;
            }
        };
        buf[0] = first;
        let mut n = 1;
        while n < buf.len() {
            match self.try_read_byte() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            self.write_byte(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        // The transmit holding register drains on its own; nothing is buffered here.
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
