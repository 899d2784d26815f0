//! A/B plan slots on a [`MappedFlash`].
//!
//! The flash device is split in two equal halves (rounded down to whole
//! erase sectors), slot 0 and slot 1. Each slot holds a plan image from its
//! first byte and a [`RECORD_LEN`]-byte *slot record* in its last
//! `record_region` bytes (`RECORD_LEN` rounded up to the flash's write size):
//!
//! ```text
//! slot i: [ plan image ... | 0xFF padding | record ]
//!           0               size            slot_size - record_region
//! record (little-endian): magic "EFSR" | format u32 = 1 | generation u32 |
//!                         plan_id u32 | size u32 | crc32 u32 (image) |
//!                         reserved u32 = 0 | checksum u32 (CRC-32 of the 28 bytes before)
//! ```
//!
//! An upload erases the record's sector first, then the sectors the image
//! needs, writes the image, verifies it in place (CRC, `Plan::parse`, arena
//! size) and only then writes the record, with the active slot's generation
//! plus one. The record is the single write that activates a plan: until it
//! is complete its checksum fails and the old plan stays active. At boot the
//! valid slot (record checksum, image CRC and `Plan::parse` all good) with
//! the highest generation is active.

use edgefit_engine::{Plan, PlanError};
use edgefit_proto::{crc32, ErrorCode, PlanInfo, Reject, Transfer};
use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};

use crate::flash::MappedFlash;

/// Bytes of a slot record.
pub const RECORD_LEN: usize = 32;

/// Largest [`NorFlash::WRITE_SIZE`] supported (the partial-word and record
/// buffers are this big).
pub const MAX_WRITE_SIZE: usize = 64;

const RECORD_MAGIC: [u8; 4] = *b"EFSR";
const RECORD_FORMAT: u32 = 1;

/// `Storage` error details: what the flash driver reported.
pub mod storage_detail {
    /// An erase or write was misaligned (a firmware bug).
    pub const NOT_ALIGNED: u32 = 1;
    /// An erase or write left the device.
    pub const OUT_OF_BOUNDS: u32 = 2;
    /// A driver-specific failure.
    pub const OTHER: u32 = 3;
    /// The written range is not memory-mapped.
    pub const NOT_MAPPED: u32 = 4;
    /// The image read back does not match its CRC (the flash did not keep
    /// what was written).
    pub const READBACK: u32 = 5;
    /// The slot record read back is not valid.
    pub const RECORD: u32 = 6;
}

/// Compile-time checks on a flash's geometry.
pub(crate) struct Geometry<F>(core::marker::PhantomData<F>);

impl<F: NorFlash> Geometry<F> {
    pub(crate) const OK: () = assert!(
        F::WRITE_SIZE >= 1
            && F::WRITE_SIZE <= MAX_WRITE_SIZE
            && F::ERASE_SIZE >= F::WRITE_SIZE
            && F::ERASE_SIZE % F::WRITE_SIZE == 0
            && F::ERASE_SIZE <= u32::MAX as usize,
        "edgefit-mcu needs 1 <= WRITE_SIZE <= 64 and ERASE_SIZE a multiple of WRITE_SIZE"
    );
}

/// Where the slots are on a given flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes per slot (a multiple of the erase size; 0: flash too small).
    pub slot_size: u32,
    /// Bytes at the end of a slot reserved for its record.
    pub record_region: u32,
    /// Largest image a slot takes: `slot_size - record_region` (0 if none).
    pub data_cap: u32,
    /// Erase size.
    pub erase: u32,
    /// Write size.
    pub write: u32,
}

impl Layout {
    pub(crate) fn of<F: NorFlash>(flash: &F) -> Self {
        let erase = F::ERASE_SIZE as u32;
        let write = F::WRITE_SIZE as u32;
        let cap = u32::try_from(flash.capacity()).unwrap_or(u32::MAX);
        let slot_size = cap / 2 / erase * erase;
        let record_region = (RECORD_LEN as u32).div_ceil(write) * write;
        let data_cap = slot_size.saturating_sub(record_region);
        Self {
            slot_size,
            record_region,
            data_cap,
            erase,
            write,
        }
    }

    pub(crate) fn slot_offset(&self, slot: u8) -> u32 {
        u32::from(slot) * self.slot_size
    }

    fn record_offset(&self, slot: u8) -> u32 {
        self.slot_offset(slot) + self.data_cap
    }
}

/// A valid slot: its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub slot: u8,
    pub generation: u32,
    pub plan_id: u32,
    pub size: u32,
    pub crc32: u32,
}

impl Slot {
    pub(crate) fn info(&self) -> PlanInfo {
        PlanInfo {
            plan_id: self.plan_id,
            size: self.size,
            crc32: self.crc32,
            slot: self.slot,
        }
    }

    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut r = [0u8; RECORD_LEN];
        r[0..4].copy_from_slice(&RECORD_MAGIC);
        for (i, v) in [
            RECORD_FORMAT,
            self.generation,
            self.plan_id,
            self.size,
            self.crc32,
            0,
        ]
        .into_iter()
        .enumerate()
        {
            r[4 + 4 * i..8 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = crc32(&r[..RECORD_LEN - 4]);
        r[RECORD_LEN - 4..].copy_from_slice(&sum.to_le_bytes());
        r
    }

    /// The record in `r` if its magic, format and checksum are right.
    fn decode(slot: u8, r: &[u8]) -> Option<Self> {
        let r = r.get(..RECORD_LEN)?;
        let word = |i: usize| {
            let b = r.get(4 * i..4 * i + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if r[0..4] != RECORD_MAGIC
            || word(1)? != RECORD_FORMAT
            || word(6)? != 0
            || word(7)? != crc32(&r[..RECORD_LEN - 4])
        {
            return None;
        }
        Some(Self {
            slot,
            generation: word(2)?,
            plan_id: word(3)?,
            size: word(4)?,
            crc32: word(5)?,
        })
    }
}

/// An upload in progress into the inactive slot.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    xfer: Transfer,
    slot: u8,
    plan_id: u32,
    crc32: u32,
    size: u32,
    /// Image bytes written to flash (a multiple of the write size).
    flushed: u32,
    /// Bytes after `flushed`, waiting for a whole word.
    pending: [u8; MAX_WRITE_SIZE],
    pending_len: usize,
}

/// The plan store: the flash, its layout, the active slot and any upload.
#[derive(Debug)]
pub(crate) struct Store<F> {
    pub flash: F,
    pub layout: Layout,
    pub active: Option<Slot>,
    pub upload: Option<Upload>,
}

/// Maps a flash driver error to a `Storage` detail.
fn storage<E: NorFlashError>(e: E) -> Reject {
    let detail = match e.kind() {
        NorFlashErrorKind::NotAligned => storage_detail::NOT_ALIGNED,
        NorFlashErrorKind::OutOfBounds => storage_detail::OUT_OF_BOUNDS,
        _ => storage_detail::OTHER,
    };
    Reject::new(ErrorCode::Storage, detail)
}

/// The number sent as `BadPlan`'s detail: 1 + the [`PlanError`] variant's
/// position in its declaration (`Truncated` = 1, `BadMagic` = 2,
/// `UnsupportedVersion` = 3, ..., `Unsupported` = 24, `BadSparse` = 25); see the table in the
/// crate docs.
pub fn plan_error_code(e: &PlanError) -> u32 {
    e.code()
}

pub(crate) fn bad_plan(e: &PlanError) -> Reject {
    Reject::new(ErrorCode::BadPlan, plan_error_code(e))
}

impl<F: MappedFlash> Store<F> {
    /// Opens the store and activates the newest valid slot.
    pub(crate) fn open(flash: F) -> Self {
        let layout = Layout::of(&flash);
        let mut store = Self {
            flash,
            layout,
            active: None,
            upload: None,
        };
        store.active =
            (0..2u8)
                .filter_map(|s| store.scan(s))
                .fold(None, |best: Option<Slot>, s| match best {
                    Some(b) if b.generation >= s.generation => Some(b),
                    _ => Some(s),
                });
        store
    }

    /// Slot `slot`'s record if the record, the image CRC and the plan are
    /// all valid.
    fn scan(&self, slot: u8) -> Option<Slot> {
        if self.layout.data_cap == 0 {
            return None;
        }
        let r = self
            .flash
            .mapped(self.layout.record_offset(slot), RECORD_LEN as u32)?;
        let rec = Slot::decode(slot, r)?;
        let image = self.image(&rec)?;
        (crc32(image) == rec.crc32 && Plan::parse(image).is_ok()).then_some(rec)
    }

    /// The stored image of a slot record.
    fn image(&self, rec: &Slot) -> Option<&[u8]> {
        if rec.size > self.layout.data_cap {
            return None;
        }
        self.flash
            .mapped(self.layout.slot_offset(rec.slot), rec.size)
    }

    /// The active plan, parsed from flash (checks its CRC: once per
    /// benchmark, not per sample).
    pub(crate) fn plan(&self) -> Result<(Slot, Plan<'_>), Reject> {
        let active = self.active.ok_or(Reject::new(ErrorCode::NoPlan, 0))?;
        let image = self
            .image(&active)
            .ok_or(Reject::new(ErrorCode::Storage, storage_detail::NOT_MAPPED))?;
        let plan = Plan::parse(image).map_err(|e| bad_plan(&e))?;
        Ok((active, plan))
    }

    /// The slot a new plan goes to.
    fn inactive(&self) -> u8 {
        match self.active {
            Some(a) if a.slot == 0 => 1,
            _ => 0,
        }
    }

    /// `PlanBegin`: checks the size, erases what the image and the record
    /// need in the inactive slot.
    pub(crate) fn begin(&mut self, plan_id: u32, total_size: u32, crc: u32) -> Result<(), Reject> {
        self.upload = None;
        let l = self.layout;
        if l.data_cap == 0 {
            return Err(Reject::new(ErrorCode::PlanTooLarge, 0));
        }
        let xfer = Transfer::plan(total_size, crc, l.data_cap)?;
        let slot = self.inactive();
        let start = l.slot_offset(slot);
        let end = start + l.slot_size;
        // The record's sector first: from here on the slot is invalid.
        let record_sector = end - l.erase;
        self.flash.erase(record_sector, end).map_err(storage)?;
        let data_end = start + total_size.div_ceil(l.erase) * l.erase;
        let data_end = data_end.min(record_sector);
        if data_end > start {
            self.flash.erase(start, data_end).map_err(storage)?;
        }
        self.upload = Some(Upload {
            xfer,
            slot,
            plan_id,
            crc32: crc,
            size: total_size,
            flushed: 0,
            pending: [0xFF; MAX_WRITE_SIZE],
            pending_len: 0,
        });
        Ok(())
    }

    /// `PlanChunk`: checks order and size, writes whole words, keeps the
    /// rest for the next chunk. A flash error drops the upload.
    pub(crate) fn chunk(&mut self, index: u32, offset: u32, data: &[u8]) -> Result<(), Reject> {
        let up = self
            .upload
            .as_mut()
            .ok_or(Reject::new(ErrorCode::UnexpectedMessage, 3))?;
        up.xfer.accept(index, offset, data)?;
        let r = Self::write_chunk(&mut self.flash, self.layout, up, data);
        if r.is_err() {
            self.upload = None;
        }
        r
    }

    fn write_chunk(
        flash: &mut F,
        l: Layout,
        up: &mut Upload,
        mut data: &[u8],
    ) -> Result<(), Reject> {
        let w = l.write as usize;
        let base = l.slot_offset(up.slot);
        if up.pending_len > 0 {
            let take = (w - up.pending_len).min(data.len());
            up.pending[up.pending_len..up.pending_len + take].copy_from_slice(&data[..take]);
            up.pending_len += take;
            data = &data[take..];
            if up.pending_len == w {
                flash
                    .write(base + up.flushed, &up.pending[..w])
                    .map_err(storage)?;
                up.flushed += w as u32;
                up.pending_len = 0;
            }
        }
        let whole = data.len() / w * w;
        if whole > 0 {
            flash
                .write(base + up.flushed, &data[..whole])
                .map_err(storage)?;
            up.flushed += whole as u32;
        }
        let rest = &data[whole..];
        up.pending[..rest.len()].copy_from_slice(rest);
        up.pending_len = rest.len();
        Ok(())
    }

    /// `PlanCommit`: completes and verifies the image, then activates it by
    /// writing its slot record. An incomplete image keeps the upload open
    /// (the host may send the missing chunks); any other failure drops it.
    pub(crate) fn commit(&mut self, arena_bytes: usize) -> Result<PlanInfo, Reject> {
        let up = self
            .upload
            .as_ref()
            .ok_or(Reject::new(ErrorCode::UnexpectedMessage, 4))?;
        if let Err(r) = up.xfer.finish() {
            if r.code != ErrorCode::ChunkOutOfOrder {
                self.upload = None;
            }
            return Err(r);
        }
        let Some(mut up) = self.upload.take() else {
            return Err(Reject::new(ErrorCode::UnexpectedMessage, 4));
        };
        let l = self.layout;
        let w = l.write as usize;
        let base = l.slot_offset(up.slot);
        if up.pending_len > 0 {
            up.pending[up.pending_len..w].fill(0xFF);
            self.flash
                .write(base + up.flushed, &up.pending[..w])
                .map_err(storage)?;
        }
        let rec = Slot {
            slot: up.slot,
            generation: self.active.map_or(1, |a| a.generation.saturating_add(1)),
            plan_id: up.plan_id,
            size: up.size,
            crc32: up.crc32,
        };
        {
            let image = self
                .image(&rec)
                .ok_or(Reject::new(ErrorCode::Storage, storage_detail::NOT_MAPPED))?;
            if crc32(image) != up.crc32 {
                return Err(Reject::new(ErrorCode::Storage, storage_detail::READBACK));
            }
            let plan = Plan::parse(image).map_err(|e| bad_plan(&e))?;
            if plan.arena_size() > arena_bytes {
                let avail = u32::try_from(arena_bytes).unwrap_or(u32::MAX);
                return Err(Reject::new(ErrorCode::ArenaTooSmall, avail));
            }
        }
        let mut buf = [0xFFu8; MAX_WRITE_SIZE];
        buf[..RECORD_LEN].copy_from_slice(&rec.encode());
        let region = (l.record_region as usize).min(MAX_WRITE_SIZE);
        self.flash
            .write(l.record_offset(rec.slot), &buf[..region])
            .map_err(storage)?;
        if self.scan(rec.slot) != Some(rec) {
            return Err(Reject::new(ErrorCode::Storage, storage_detail::RECORD));
        }
        self.active = Some(rec);
        Ok(rec.info())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_checksum() {
        let s = Slot {
            slot: 1,
            generation: 7,
            plan_id: 0xABCD,
            size: 1234,
            crc32: 0xDEAD_BEEF,
        };
        let mut r = s.encode();
        assert_eq!(Slot::decode(1, &r), Some(s));
        r[9] ^= 1;
        assert_eq!(Slot::decode(1, &r), None);
        assert_eq!(Slot::decode(0, &[0xFF; RECORD_LEN]), None);
    }

    #[test]
    fn layout_of_ram_flash() {
        let mut mem = vec![0u8; 64 * 1024 + 100];
        let f = crate::RamFlash::new(&mut mem);
        let l = Layout::of(&f);
        assert_eq!(l.slot_size, 32 * 1024);
        assert_eq!(l.record_region, 32);
        assert_eq!(l.data_cap, 32 * 1024 - 32);
        assert_eq!(l.slot_offset(1), 32 * 1024);
        assert_eq!(l.record_offset(1), 64 * 1024 - 32);
    }
}
