use core::fmt;

/// Why a frame could not be encoded or decoded.
///
/// Decoding checks run in a fixed order, so each malformed frame reports one
/// reason: size ([`FrameTooLarge`](Self::FrameTooLarge)), stuffing
/// ([`Cobs`](Self::Cobs)), length ([`Truncated`](Self::Truncated)), integrity
/// ([`Crc`](Self::Crc)), version ([`VersionMismatch`](Self::VersionMismatch)),
/// then the message itself ([`Decode`](Self::Decode),
/// [`TrailingBytes`](Self::TrailingBytes)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ProtoError {
    /// An encoded frame of `len` bytes (delimiter excluded; for
    /// [`FrameReader`](crate::FrameReader), the bytes seen before the
    /// delimiter, counting saturates) exceeds `max`.
    FrameTooLarge {
        /// Bytes received or given.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// A message encodes to `len` postcard bytes, more than
    /// [`MAX_MESSAGE`](crate::MAX_MESSAGE): split its payload.
    MessageTooLarge {
        /// Encoded message size.
        len: usize,
        /// [`MAX_MESSAGE`](crate::MAX_MESSAGE).
        max: usize,
    },
    /// The output buffer cannot hold the encoded frame.
    BufferTooSmall {
        /// Bytes needed (an upper bound).
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// Invalid COBS stuffing: a zero inside the frame or a code byte pointing
    /// past its end.
    Cobs,
    /// The unstuffed frame is shorter than a header and a CRC (an empty frame
    /// decodes to `len: 0`).
    Truncated {
        /// Unstuffed length.
        len: usize,
        /// [`MIN_RAW`](crate::MIN_RAW).
        min: usize,
    },
    /// CRC-32 mismatch: the frame was corrupted on the way.
    Crc {
        /// CRC carried by the frame.
        expected: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// The frame is intact but speaks another protocol version.
    VersionMismatch {
        /// Version in the received frame.
        peer: u16,
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of this build.
        local: u16,
    },
    /// The message bytes are not a valid message of the expected direction.
    Decode(postcard::Error),
    /// The message decoded but left `extra` bytes before the CRC.
    TrailingBytes {
        /// Unconsumed bytes.
        extra: usize,
    },
    /// postcard failed to serialise the message (not a size problem).
    Encode(postcard::Error),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameTooLarge { len, max } => {
                write!(f, "frame too large: {len} bytes, at most {max} accepted")
            }
            Self::MessageTooLarge { len, max } => write!(
                f,
                "message too large: encodes to {len} bytes, at most {max} fit in a frame (send the payload in chunks)"
            ),
            Self::BufferTooSmall { needed, available } => {
                write!(f, "buffer too small: need up to {needed} bytes, have {available}")
            }
            Self::Cobs => f.write_str("bad COBS stuffing"),
            Self::Truncated { len, min } => {
                write!(f, "truncated frame: {len} bytes after unstuffing, at least {min} needed")
            }
            Self::Crc { expected, computed } => write!(
                f,
                "frame CRC mismatch: frame says {expected:#010x}, bytes give {computed:#010x}"
            ),
            Self::VersionMismatch { peer, local } => write!(
                f,
                "protocol version mismatch: peer speaks v{peer}, this side v{local}; {}",
                if peer < local {
                    "update the peer (reflash the firmware or upgrade the agent)"
                } else {
                    "upgrade this side (the host tools)"
                }
            ),
            Self::Decode(e) => write!(f, "undecodable message: {e}"),
            Self::TrailingBytes { extra } => {
                write!(f, "message followed by {extra} unexpected bytes")
            }
            Self::Encode(e) => write!(f, "cannot encode message: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProtoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) | Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}
