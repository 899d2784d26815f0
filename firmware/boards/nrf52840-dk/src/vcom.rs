//! UARTE0 as one `embedded_io` byte link (the HAL splits it in two halves).

use cortex_m::singleton;
use nrf52840_hal::pac::UARTE0;
use nrf52840_hal::uarte::{Baudrate, Error, Parity, Pins, Uarte, UarteRx, UarteTx};

/// Bytes per transmit DMA transfer; frames longer than this go in several.
const TX_CHUNK: usize = 256;

pub struct Vcom {
    tx: UarteTx<UARTE0>,
    rx: UarteRx<UARTE0>,
}

impl Vcom {
    pub fn new(uarte: UARTE0, pins: Pins, baud: Baudrate) -> Self {
        // EasyDMA reads and writes RAM only: the buffers are statics (in .bss).
        let tx_buf = singleton!(: [u8; TX_CHUNK] = [0; TX_CHUNK]).expect("created once");
        let rx_buf = singleton!(: [u8; 1] = [0; 1]).expect("created once");
        let (tx, rx) = Uarte::new(uarte, pins, Parity::EXCLUDED, baud)
            .split(tx_buf, rx_buf)
            .expect("static buffers are in RAM and small enough for EasyDMA");
        Self { tx, rx }
    }
}

impl embedded_io::ErrorType for Vcom {
    type Error = Error;
}

impl embedded_io::Read for Vcom {
    /// Blocks until a byte arrives; returns one byte per call (the HAL
    /// receives by one-byte DMA; the UARTE's 4-byte FIFO covers the gap).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.rx.read(buf)
    }
}

impl embedded_io::Write for Vcom {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.tx.write(buf)
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.tx.flush()
    }
}
