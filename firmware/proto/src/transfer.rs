//! Chunked transfers: CRC helpers, the host's chunk iterators and the
//! device's ordering check.

use core::fmt;

use crate::{DeviceMsg, ErrorCode, HostMsg, MAX_CHUNK};

/// CRC-32/ISO-HDLC (as zlib, PNG and Ethernet; the engine's plan CRC too).
static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC of `data`: the frame check and `PlanBegin.crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    CRC32.checksum(data)
}

/// Incremental [`crc32`], for an image that arrives in chunks.
#[derive(Clone)]
pub struct Crc32(crc::Digest<'static, u32>);

impl Crc32 {
    /// CRC of nothing so far.
    pub const fn new() -> Self {
        Self(CRC32.digest())
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The CRC of everything added.
    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Crc32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crc32({:#010x})", self.value())
    }
}

/// `PlanChunk` messages for a plan image, [`MAX_CHUNK`] bytes each (the last
/// one shorter). Send `HostMsg::plan_begin` first and `PlanCommit` after.
pub fn plan_chunks(image: &[u8]) -> PlanChunks<'_> {
    PlanChunks::with_chunk_size(image, MAX_CHUNK)
}

/// Iterator of [`HostMsg::PlanChunk`]s; see [`plan_chunks`].
#[derive(Debug, Clone)]
pub struct PlanChunks<'a> {
    rest: &'a [u8],
    chunk: usize,
    offset: u32,
    index: u32,
}

impl<'a> PlanChunks<'a> {
    /// Chunks of `chunk` bytes, clamped to `1..=MAX_CHUNK` (for a device with
    /// smaller buffers).
    pub fn with_chunk_size(image: &'a [u8], chunk: usize) -> Self {
        Self {
            rest: image,
            chunk: chunk.clamp(1, MAX_CHUNK),
            offset: 0,
            index: 0,
        }
    }
}

impl<'a> Iterator for PlanChunks<'a> {
    type Item = HostMsg<'a>;

    fn next(&mut self) -> Option<HostMsg<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (data, rest) = self.rest.split_at(self.chunk.min(self.rest.len()));
        self.rest = rest;
        let msg = HostMsg::PlanChunk {
            index: self.index,
            offset: self.offset,
            data,
        };
        self.index += 1;
        self.offset += data.len() as u32;
        Some(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len().div_ceil(self.chunk);
        (n, Some(n))
    }
}

impl ExactSizeIterator for PlanChunks<'_> {}

/// The messages that send one input sample: a single [`HostMsg::Sample`] if
/// it fits in [`MAX_CHUNK`] bytes (a 28×28 int8 image does), otherwise
/// [`HostMsg::SampleChunk`]s then [`HostMsg::SampleRun`] (a 3×224×224 f32
/// tensor takes 294 chunks).
pub fn sample_parts(index: u32, data: &[u8]) -> SampleParts<'_> {
    SampleParts::with_chunk_size(index, data, MAX_CHUNK)
}

/// Iterator of the messages for one sample; see [`sample_parts`].
#[derive(Debug, Clone)]
pub struct SampleParts<'a> {
    index: u32,
    data: &'a [u8],
    chunk: usize,
    offset: usize,
    done: bool,
}

impl<'a> SampleParts<'a> {
    /// Parts of `chunk` bytes, clamped to `1..=MAX_CHUNK`.
    pub fn with_chunk_size(index: u32, data: &'a [u8], chunk: usize) -> Self {
        Self {
            index,
            data,
            chunk: chunk.clamp(1, MAX_CHUNK),
            offset: 0,
            done: false,
        }
    }

    fn whole(&self) -> bool {
        self.data.len() <= self.chunk
    }
}

impl<'a> Iterator for SampleParts<'a> {
    type Item = HostMsg<'a>;

    fn next(&mut self) -> Option<HostMsg<'a>> {
        if self.done {
            return None;
        }
        let index = self.index;
        if self.whole() {
            self.done = true;
            return Some(HostMsg::Sample {
                index,
                data: self.data,
            });
        }
        if self.offset == self.data.len() {
            self.done = true;
            return Some(HostMsg::SampleRun {
                index,
                total_len: self.data.len() as u32,
            });
        }
        let end = (self.offset + self.chunk).min(self.data.len());
        let msg = HostMsg::SampleChunk {
            index,
            offset: self.offset as u32,
            data: &self.data[self.offset..end],
        };
        self.offset = end;
        Some(msg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.done {
            0
        } else if self.whole() {
            1
        } else {
            (self.data.len() - self.offset).div_ceil(self.chunk) + 1
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for SampleParts<'_> {}

/// A refusal: the code and detail of a [`DeviceMsg::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Reject {
    /// What went wrong.
    pub code: ErrorCode,
    /// Code-specific number.
    pub detail: u32,
}

impl Reject {
    /// A refusal.
    pub const fn new(code: ErrorCode, detail: u32) -> Self {
        Self { code, detail }
    }

    /// `UnexpectedMessage` for a request of `kind` (`HostMsg::kind`) in a
    /// state that does not take it (a sample outside a benchmark, ...).
    pub const fn unexpected(kind: u8) -> Self {
        Self::new(ErrorCode::UnexpectedMessage, kind as u32)
    }

    /// The `Error` answer to frame `seq`.
    pub const fn to_msg(self, seq: u32) -> DeviceMsg<'static> {
        DeviceMsg::Error {
            seq,
            code: self.code,
            detail: self.detail,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (detail {})", self.code, self.detail)
    }
}

/// Device side of a chunked transfer (a plan, or a sample sent in parts):
/// checks that chunks come in order and within the announced size, and
/// computes the CRC on the way. Storing the bytes is the caller's job, at the
/// offset [`accept`](Self::accept) approves.
#[derive(Debug, Clone)]
pub struct Transfer {
    total: u32,
    received: u32,
    next_index: u32,
    expected_crc: Option<u32>,
    crc: Crc32,
    sample: bool,
}

impl Transfer {
    /// Checks a `PlanBegin` against the slot capacity.
    pub fn plan(total_size: u32, crc32: u32, slot_bytes: u32) -> Result<Self, Reject> {
        if total_size > slot_bytes {
            return Err(Reject::new(ErrorCode::PlanTooLarge, slot_bytes));
        }
        Ok(Self {
            total: total_size,
            received: 0,
            next_index: 0,
            expected_crc: Some(crc32),
            crc: Crc32::new(),
            sample: false,
        })
    }

    /// A sample of `input_bytes` (the plan's input size) sent as
    /// `SampleChunk`s; chunk indices are the offsets' order, from 0.
    pub fn sample(input_bytes: u32) -> Self {
        Self {
            total: input_bytes,
            received: 0,
            next_index: 0,
            expected_crc: None,
            crc: Crc32::new(),
            sample: true,
        }
    }

    /// Checks the next chunk (`index` is ignored for samples, whose chunks
    /// carry the sample number). On success the caller stores `data` at
    /// `offset`. Errors: [`ErrorCode::ChunkOutOfOrder`] (detail: offset
    /// expected), [`ErrorCode::PlanTooLarge`] / [`ErrorCode::BadSample`] past
    /// the announced size (detail: that size).
    pub fn accept(&mut self, index: u32, offset: u32, data: &[u8]) -> Result<(), Reject> {
        if offset != self.received || (!self.sample && index != self.next_index) {
            return Err(Reject::new(ErrorCode::ChunkOutOfOrder, self.received));
        }
        let end = u32::try_from(data.len())
            .ok()
            .and_then(|n| offset.checked_add(n));
        match end {
            Some(end) if end <= self.total => {
                self.crc.update(data);
                self.received = end;
                self.next_index += 1;
                Ok(())
            }
            _ => Err(Reject::new(self.overrun_code(), self.total)),
        }
    }

    /// Checks that everything arrived intact (`PlanCommit`, `SampleRun`).
    /// Returns the CRC. Errors: incomplete → [`ErrorCode::ChunkOutOfOrder`]
    /// (detail: bytes received) for a plan, [`ErrorCode::BadSample`] (detail:
    /// bytes expected) for a sample; [`ErrorCode::PlanCrcMismatch`] (detail:
    /// CRC computed).
    pub fn finish(&self) -> Result<u32, Reject> {
        if self.received != self.total {
            return Err(if self.sample {
                Reject::new(ErrorCode::BadSample, self.total)
            } else {
                Reject::new(ErrorCode::ChunkOutOfOrder, self.received)
            });
        }
        let crc = self.crc.value();
        match self.expected_crc {
            Some(expected) if expected != crc => Err(Reject::new(ErrorCode::PlanCrcMismatch, crc)),
            _ => Ok(crc),
        }
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Announced size.
    pub fn total(&self) -> u32 {
        self.total
    }

    fn overrun_code(&self) -> ErrorCode {
        if self.sample {
            ErrorCode::BadSample
        } else {
            ErrorCode::PlanTooLarge
        }
    }
}
