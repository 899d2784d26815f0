//! Frame encoding and decoding.

use serde::{Deserialize, Serialize};

use crate::cobs::{cobs_decode_in_place, encode_in_place, in_place_offset};
use crate::{
    cobs_max_encoded_len, crc32, DeviceMsg, HostMsg, ProtoError, CRC_LEN, HEADER_LEN, MAX_FRAME,
    MAX_MESSAGE, MAX_RAW, MIN_RAW, PROTOCOL_VERSION,
};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::HostMsg<'_> {}
    impl Sealed for crate::DeviceMsg<'_> {}
}

/// A message that travels in a frame: [`HostMsg`] or [`DeviceMsg`].
pub trait Message: Serialize + sealed::Sealed {}
impl Message for HostMsg<'_> {}
impl Message for DeviceMsg<'_> {}

/// Encodes `msg` as frame number `seq` into `buf` and returns the frame,
/// `0x00` delimiter included, ready to write to the link.
///
/// `buf` of [`MAX_FRAME`] bytes holds any frame; the message is serialised
/// in place, so no other buffer is used. Errors:
/// [`MessageTooLarge`](ProtoError::MessageTooLarge) if the message exceeds
/// [`MAX_MESSAGE`], [`BufferTooSmall`](ProtoError::BufferTooSmall) if it
/// does not but `buf` is too short for it.
pub fn encode_frame<'b, M: Message>(
    seq: u32,
    msg: &M,
    buf: &'b mut [u8],
) -> Result<&'b [u8], ProtoError> {
    let len = buf.len();
    // The unstuffed frame goes at `start`, far enough in for COBS to stuff it
    // towards the front; the last byte is kept for the delimiter.
    let start = in_place_offset(len);
    let raw_cap = len.saturating_sub(start + 1).min(MAX_RAW);
    if raw_cap < MIN_RAW {
        return Err(too_small(msg, len));
    }
    let body_end = start + raw_cap - CRC_LEN;
    let m = match postcard::to_slice(msg, &mut buf[start + HEADER_LEN..body_end]) {
        Ok(out) => out.len(),
        Err(postcard::Error::SerializeBufferFull) => return Err(too_small(msg, len)),
        Err(e) => return Err(ProtoError::Encode(e)),
    };
    buf[start] = PROTOCOL_VERSION as u8;
    buf[start + 1..start + HEADER_LEN].copy_from_slice(&seq.to_le_bytes());
    let crc_at = start + HEADER_LEN + m;
    let crc = crc32(&buf[start..crc_at]);
    buf[crc_at..crc_at + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let n = encode_in_place(buf, start, HEADER_LEN + m + CRC_LEN);
    buf[n] = 0;
    Ok(&buf[..=n])
}

/// The error for a message that did not fit: too large for any frame, or for
/// this buffer.
fn too_small<M: Message>(msg: &M, available: usize) -> ProtoError {
    match postcard::serialize_with_flavor(msg, postcard::ser_flavors::Size::default()) {
        Ok(len) if len > MAX_MESSAGE => ProtoError::MessageTooLarge {
            len,
            max: MAX_MESSAGE,
        },
        Ok(len) => ProtoError::BufferTooSmall {
            needed: cobs_max_encoded_len(HEADER_LEN + len + CRC_LEN) + 1,
            available,
        },
        Err(e) => ProtoError::Encode(e),
    }
}

/// [`encode_frame`] into a new `Vec` (delimiter included).
#[cfg(feature = "std")]
pub fn encode_frame_vec<M: Message>(seq: u32, msg: &M) -> Result<Vec<u8>, ProtoError> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = encode_frame(seq, msg, &mut buf)?.len();
    buf.truncate(n);
    Ok(buf)
}

/// Decodes one frame (its bytes *without* the `0x00` delimiter, as
/// [`FrameReader`](crate::FrameReader) yields them) in place, returning its
/// sequence number and message; the message borrows from `frame`.
///
/// A device decodes `HostMsg`, a host `DeviceMsg`:
/// `let (seq, msg) = decode_frame::<HostMsg>(frame)?;`.
///
/// Checks, in order: size ≤ `MAX_FRAME - 1`, COBS, length ≥ [`MIN_RAW`],
/// CRC, version, message, no trailing bytes. The frame's contents are
/// unspecified after an error.
pub fn decode_frame<'a, M>(frame: &'a mut [u8]) -> Result<(u32, M), ProtoError>
where
    M: Message + Deserialize<'a>,
{
    if frame.len() > MAX_FRAME - 1 {
        return Err(ProtoError::FrameTooLarge {
            len: frame.len(),
            max: MAX_FRAME - 1,
        });
    }
    let n = cobs_decode_in_place(frame)?;
    let frame: &'a [u8] = frame;
    let raw = &frame[..n];
    if n < MIN_RAW {
        return Err(ProtoError::Truncated {
            len: n,
            min: MIN_RAW,
        });
    }
    let (covered, crc) = raw.split_at(n - CRC_LEN);
    let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32(covered);
    if expected != computed {
        return Err(ProtoError::Crc { expected, computed });
    }
    if u16::from(raw[0]) != PROTOCOL_VERSION {
        return Err(ProtoError::VersionMismatch {
            peer: raw[0].into(),
            local: PROTOCOL_VERSION,
        });
    }
    let seq = u32::from_le_bytes([raw[1], raw[2], raw[3], raw[4]]);
    let (msg, rest) =
        postcard::take_from_bytes::<M>(&covered[HEADER_LEN..]).map_err(ProtoError::Decode)?;
    if !rest.is_empty() {
        return Err(ProtoError::TrailingBytes { extra: rest.len() });
    }
    Ok((seq, msg))
}
