//! The plan slots in internal flash: the HAL's NVMC driver for writing, plus
//! the memory-mapped view that lets the engine run a stored plan in place.

use edgefit_mcu::MappedFlash;
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use nrf52840_hal::nvmc::{Nvmc, NvmcError};
use nrf52840_hal::pac::NVMC;

pub struct SlotFlash {
    nvmc: Nvmc<NVMC>,
    base: usize,
    len: usize,
}

impl SlotFlash {
    /// # Safety
    /// `[base, base + len)` must be internal flash, page (4 KiB) aligned, that
    /// no code, data or other driver uses.
    pub unsafe fn new(nvmc: NVMC, base: usize, len: usize) -> Self {
        // SAFETY: the caller's contract; the NVMC writes this range, and reads
        // go through it or through `mapped`, never while a write is under way.
        let storage = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, len) };
        Self {
            nvmc: Nvmc::new(nvmc, storage),
            base,
            len,
        }
    }
}

impl ErrorType for SlotFlash {
    type Error = NvmcError;
}

impl ReadNorFlash for SlotFlash {
    const READ_SIZE: usize = <Nvmc<NVMC> as ReadNorFlash>::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), NvmcError> {
        self.nvmc.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.nvmc.capacity()
    }
}

impl NorFlash for SlotFlash {
    const WRITE_SIZE: usize = <Nvmc<NVMC> as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <Nvmc<NVMC> as NorFlash>::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), NvmcError> {
        self.nvmc.erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), NvmcError> {
        self.nvmc.write(offset, bytes)
    }
}

impl MappedFlash for SlotFlash {
    fn mapped(&self, offset: u32, len: u32) -> Option<&[u8]> {
        let end = offset.checked_add(len)? as usize;
        if end > self.len {
            return None;
        }
        // SAFETY: inside the range handed to `new`, which the CPU reads
        // directly. The slice borrows `self`, so no erase or write (`&mut
        // self`) can change the bytes while it lives.
        Some(unsafe {
            core::slice::from_raw_parts((self.base + offset as usize) as *const u8, len as usize)
        })
    }
}
