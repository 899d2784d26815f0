//! Plan storage: the [`MappedFlash`] trait and [`RamFlash`], a RAM-backed NOR
//! flash with real NOR semantics.

use embedded_storage::nor_flash::{
    check_erase, check_read, check_write, ErrorType, MultiwriteNorFlash, NorFlash,
    NorFlashErrorKind, ReadNorFlash,
};

/// NOR flash that is also memory-mapped (internal MCU flash, or RAM standing
/// in for it), so a stored plan runs zero-copy.
pub trait MappedFlash: NorFlash {
    /// The bytes at `offset..offset + len` as the CPU sees them, or `None` if
    /// the range leaves the device (or is not mapped).
    fn mapped(&self, offset: u32, len: u32) -> Option<&[u8]>;
}

/// A RAM-backed [`NorFlash`] + [`MappedFlash`] with real NOR semantics: an
/// erase sets whole [`ERASE_SIZE`](NorFlash::ERASE_SIZE) (4096-byte) sectors
/// to `0xFF`; a write must be [`WRITE_SIZE`](NorFlash::WRITE_SIZE) (4-byte)
/// aligned in offset and length and can only clear bits (the stored byte
/// becomes `old & new`); anything out of range is an error
/// ([`NorFlashErrorKind::OutOfBounds`], [`NorFlashErrorKind::NotAligned`]).
///
/// Used by the QEMU board (over a `&'static mut [u8]` in PSRAM) and by the
/// unit tests. A fresh `RamFlash` keeps the memory's contents (it does not
/// erase), like a real flash across a reboot.
#[derive(Debug)]
pub struct RamFlash<'a> {
    mem: &'a mut [u8],
}

impl<'a> RamFlash<'a> {
    /// Flash over `mem`, contents kept. Its capacity is `mem.len()`
    /// (use a multiple of 8 KiB: two slots of whole sectors).
    pub fn new(mem: &'a mut [u8]) -> Self {
        Self { mem }
    }

    /// The whole memory, as stored.
    pub fn memory(&self) -> &[u8] {
        self.mem
    }

    /// The whole memory, to edit behind the flash's back (tests: simulate
    /// corruption or a torn write).
    pub fn memory_mut(&mut self) -> &mut [u8] {
        self.mem
    }

    /// Gives the memory back.
    pub fn into_inner(self) -> &'a mut [u8] {
        self.mem
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, NorFlashErrorKind> {
        let start = offset as usize;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.mem.len())
            .ok_or(NorFlashErrorKind::OutOfBounds)?;
        Ok(start..end)
    }
}

impl ErrorType for RamFlash<'_> {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for RamFlash<'_> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len())?;
        let r = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.mem[r]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for RamFlash<'_> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to)?;
        let r = self.range(from, (to - from) as usize)?;
        self.mem[r].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len())?;
        let r = self.range(offset, bytes.len())?;
        for (cell, &b) in self.mem[r].iter_mut().zip(bytes) {
            *cell &= b;
        }
        Ok(())
    }
}

/// Writes only clear bits, so writing a word twice is as on real NOR.
impl MultiwriteNorFlash for RamFlash<'_> {}

impl MappedFlash for RamFlash<'_> {
    fn mapped(&self, offset: u32, len: u32) -> Option<&[u8]> {
        let r = self.range(offset, len as usize).ok()?;
        self.mem.get(r)
    }
}
