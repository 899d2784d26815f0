//! The edgefit wire protocol, shared by the host tools, the Cortex-M firmware
//! (UART) and the Linux agent (TCP).
//!
//! Every link carries the same frames:
//!
//! ```text
//! COBS( version:u8 | seq:u32 LE | postcard(message) | crc32:u32 LE ) 0x00
//! ```
//!
//! * `version` is [`PROTOCOL_VERSION`]; a frame of another version is refused
//!   with [`ProtoError::VersionMismatch`] *before* its message is decoded, so a
//!   host can tell the user which side to update instead of failing on
//!   garbage.
//! * `seq` is the sender's frame counter. A response names the request it
//!   answers in its message (`Ack { seq }`, `Error { seq, .. }`), and a
//!   retransmitted request keeps its `seq`.
//! * `crc32` is CRC-32/ISO-HDLC (zlib's) of everything before it.
//! * Nothing in a frame exceeds [`MAX_FRAME`] bytes, delimiter included.
//!
//! Host→device messages are [`HostMsg`], device→host ones [`DeviceMsg`]; both
//! borrow their byte and string payloads from the frame buffer (zero copy).
//! The crate is `no_std` and allocation-free; feature `std` adds
//! `std::error::Error` and `Vec`-returning helpers, feature `defmt` derives
//! `defmt::Format` on every public type. The full specification, with an
//! example frame in hex, is `docs/protocol.md`.
//!
//! ```
//! use edgefit_proto::{decode_frame, encode_frame, FrameReader, HostMsg, MAX_FRAME};
//!
//! // Host side: encode.
//! let mut out = [0u8; MAX_FRAME];
//! let bytes = encode_frame(7, &HostMsg::Ping { nonce: 42 }, &mut out).unwrap();
//!
//! // Device side: accumulate UART bytes, then decode in place.
//! let mut reader = FrameReader::<MAX_FRAME>::new();
//! for &b in bytes {
//!     if let Some(frame) = reader.push(b) {
//!         let (seq, msg) = decode_frame::<HostMsg>(frame.unwrap()).unwrap();
//!         assert_eq!((seq, msg), (7, HostMsg::Ping { nonce: 42 }));
//!     }
//! }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod answers;
mod cobs;
mod error;
mod frame;
mod msg;
mod reader;
pub mod session;
mod tally;
mod transfer;

pub use crate::answers::{unreadable, Accepted, Answers, ERROR_FRAME};
pub use crate::cobs::{cobs_decode_in_place, cobs_encode, cobs_max_encoded_len};
pub use crate::error::ProtoError;
#[cfg(feature = "std")]
pub use crate::frame::encode_frame_vec;
pub use crate::frame::{decode_frame, encode_frame, Message};
pub use crate::msg::{
    BenchRecord, BenchSummary, DeviceInfo, DeviceMsg, EngineKind, ErrorCode, HostMsg, PlanInfo,
    PowerSensorKind, TimingSource,
};
pub use crate::reader::FrameReader;
pub use crate::session::{
    internal_detail, Bench, BenchStarted, Device, Incoming, Inference, Link, RunFacts, Served,
    Session,
};
pub use crate::tally::BenchTally;
pub use crate::transfer::{
    crc32, plan_chunks, sample_parts, Crc32, PlanChunks, Reject, SampleParts, Transfer,
};

/// Version of this protocol. Carried in every frame header (as one byte) and in
/// [`HostMsg::Hello`] / [`DeviceInfo::protocol_version`]. Bumped on any change
/// to the frame layout or to any message's encoding; peers of different
/// versions do not talk (there is no negotiation).
pub const PROTOCOL_VERSION: u16 = 2;

/// Bytes of chunk data ([`HostMsg::PlanChunk`], [`HostMsg::SampleChunk`],
/// [`HostMsg::Sample`], [`BenchRecord::outputs`]) that always fit in one frame.
pub const MAX_CHUNK: usize = 2048;

/// Largest postcard-encoded message: a [`MAX_CHUNK`] payload plus its fields
/// (a chunk message needs at most 13 bytes besides its data).
pub const MAX_MESSAGE: usize = MAX_CHUNK + 64;

/// Frame header: version (1 byte) and sequence number (4 bytes, little-endian).
pub const HEADER_LEN: usize = 5;

/// Trailing CRC-32 (4 bytes, little-endian).
pub const CRC_LEN: usize = 4;

/// Smallest unstuffed frame: header and CRC around an (impossible) empty message.
pub const MIN_RAW: usize = HEADER_LEN + CRC_LEN;

/// Largest unstuffed frame (header + message + CRC), before COBS.
pub const MAX_RAW: usize = HEADER_LEN + MAX_MESSAGE + CRC_LEN;

/// Largest encoded frame *including* COBS overhead and the `0x00` delimiter:
/// the buffer size for [`encode_frame`] and [`FrameReader`].
pub const MAX_FRAME: usize = cobs_max_encoded_len(MAX_RAW) + 1;

const _: () = assert!(
    PROTOCOL_VERSION <= u8::MAX as u16,
    "the header carries the version in one byte"
);
const _: () = assert!(MAX_FRAME == 2131);

/// `v` as a `u32` detail or size field, saturating (a device reports
/// "at least 4 GiB" rather than a wrapped number).
pub fn sat_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}
