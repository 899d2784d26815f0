//! The device's send side, the same on every link: the last answer kept for
//! retransmissions, the device's frame counter, and the answer to a frame
//! that could not be read.

use crate::{
    decode_frame, encode_frame, DeviceMsg, ErrorCode, HostMsg, ProtoError, Reject, MAX_FRAME,
    PROTOCOL_VERSION,
};

/// Large enough for any encoded `Error` answer.
pub const ERROR_FRAME: usize = 48;

/// What a received frame is.
#[derive(Debug)]
pub enum Accepted<'f> {
    /// A request not answered yet.
    Request {
        /// The host's frame number.
        seq: u32,
        /// The request, borrowing the frame.
        msg: HostMsg<'f>,
    },
    /// The request answered last, sent again (its answer is
    /// [`Answers::kept`]).
    Repeat,
    /// A frame that does not decode (answer it with [`Answers::refuse`]).
    Bad(ProtoError),
}

/// The refusal of a frame that could not be read: the CRC the device
/// computed, the protocol version it speaks, or the frame's length.
pub const fn unreadable(e: &ProtoError) -> Reject {
    let (code, detail) = match *e {
        ProtoError::Crc { computed, .. } => (ErrorCode::BadCrc, computed),
        ProtoError::VersionMismatch { .. } => (ErrorCode::VersionMismatch, PROTOCOL_VERSION as u32),
        ProtoError::FrameTooLarge { len, .. } | ProtoError::Truncated { len, .. } => (
            ErrorCode::BadFrame,
            if len > u32::MAX as usize {
                u32::MAX
            } else {
                len as u32
            },
        ),
        _ => (ErrorCode::BadFrame, 0),
    };
    Reject::new(code, detail)
}

/// The device's answers: the last one kept (a retransmitted request gets
/// it again instead of being run twice) and the device's frame counter.
///
/// RAM: one [`MAX_FRAME`] buffer and a few words.
pub struct Answers {
    buf: [u8; MAX_FRAME],
    len: usize,
    /// `(seq, kind)` of the request `buf` answers.
    answered: Option<(u32, u8)>,
    /// Next device frame number.
    seq: u32,
    /// Sequence number of the last frame decoded: what an unreadable frame's
    /// refusal names.
    last_good: u32,
}

impl Default for Answers {
    fn default() -> Self {
        Self::new()
    }
}

impl Answers {
    /// No answer yet.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME],
            len: 0,
            answered: None,
            seq: 0,
            last_good: 0,
        }
    }

    /// Decodes `frame` in place: a new request, a retransmission of the one
    /// answered last, or a frame that cannot be read.
    pub fn accept<'f>(&mut self, frame: &'f mut [u8]) -> Accepted<'f> {
        match decode_frame::<HostMsg<'_>>(frame) {
            Ok((seq, msg)) => {
                self.last_good = seq;
                if self.len > 0 && self.answered == Some((seq, msg.kind())) {
                    Accepted::Repeat
                } else {
                    Accepted::Request { seq, msg }
                }
            }
            Err(e) => Accepted::Bad(e),
        }
    }

    /// Sequence number of the last frame decoded.
    pub fn last_good(&self) -> u32 {
        self.last_good
    }

    /// Records `seq` as decoded (a frame read outside [`accept`](Self::accept)).
    pub fn set_last_good(&mut self, seq: u32) {
        self.last_good = seq;
    }

    /// Encodes the answer to request `(seq, kind)` and keeps it for a
    /// retransmission: the bytes to send. An answer that cannot be encoded
    /// becomes `Internal` with [`internal_detail::ENCODE`](crate::internal_detail::ENCODE).
    pub fn answer(&mut self, seq: u32, kind: u8, msg: &DeviceMsg<'_>) -> &[u8] {
        let n = match encode_frame(self.seq, msg, &mut self.buf) {
            Ok(f) => f.len(),
            Err(_) => {
                let e = DeviceMsg::error(seq, ErrorCode::Internal, crate::internal_detail::ENCODE);
                encode_frame(self.seq, &e, &mut self.buf).map_or(0, |f| f.len())
            }
        };
        self.seq = self.seq.wrapping_add(1);
        self.len = n;
        self.answered = Some((seq, kind));
        &self.buf[..n]
    }

    /// The answer kept for a retransmission.
    pub fn kept(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// An `Error` answer to frame `seq`, encoded into `out` and not kept
    /// (the kept answer stays: the host may still retransmit its request).
    pub fn error<'o>(
        &mut self,
        seq: u32,
        reject: Reject,
        out: &'o mut [u8; ERROR_FRAME],
    ) -> &'o [u8] {
        let n = encode_frame(self.seq, &reject.to_msg(seq), out).map_or(0, |f| f.len());
        self.seq = self.seq.wrapping_add(1);
        &out[..n]
    }

    /// The answer to a frame that could not be read, naming the last frame
    /// decoded (see [`unreadable`]).
    pub fn refuse<'o>(&mut self, e: &ProtoError, out: &'o mut [u8; ERROR_FRAME]) -> &'o [u8] {
        self.error(self.last_good, unreadable(e), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_frame;

    fn frame(seq: u32, msg: &HostMsg<'_>) -> ([u8; MAX_FRAME], usize) {
        let mut out = [0u8; MAX_FRAME];
        let n = encode_frame(seq, msg, &mut out).unwrap().len();
        (out, n)
    }

    #[test]
    fn a_retransmission_is_recognised_by_seq_and_kind() {
        let mut a = Answers::new();
        let (mut f, n) = frame(3, &HostMsg::Ping { nonce: 9 });
        let (seq, kind) = match a.accept(&mut f[..n - 1]) {
            Accepted::Request { seq, msg } => (seq, msg.kind()),
            other => panic!("{other:?}"),
        };
        let sent = a.answer(seq, kind, &DeviceMsg::Pong { nonce: 9 }).to_vec();
        let (mut f, n) = frame(3, &HostMsg::Ping { nonce: 9 });
        assert!(matches!(a.accept(&mut f[..n - 1]), Accepted::Repeat));
        assert_eq!(a.kept(), &sent[..]);
        // Same seq, another kind: a new request.
        let (mut f, n) = frame(3, &HostMsg::Reset);
        assert!(matches!(
            a.accept(&mut f[..n - 1]),
            Accepted::Request { .. }
        ));
    }

    #[test]
    fn an_unreadable_frame_is_refused_naming_the_last_good_one() {
        let mut a = Answers::new();
        let (mut f, n) = frame(41, &HostMsg::Ping { nonce: 1 });
        assert!(matches!(
            a.accept(&mut f[..n - 1]),
            Accepted::Request { .. }
        ));
        let (mut bad, n) = frame(42, &HostMsg::Ping { nonce: 2 });
        bad[3] ^= 0x40;
        let Accepted::Bad(e) = a.accept(&mut bad[..n - 1]) else {
            panic!("a corrupted frame decoded");
        };
        let mut out = [0u8; ERROR_FRAME];
        let mut sent = a.refuse(&e, &mut out).to_vec();
        assert_eq!(sent.pop(), Some(0), "a frame ends in its delimiter");
        let (seq, msg) = decode_frame::<DeviceMsg<'_>>(&mut sent[..]).unwrap_or_else(|e| {
            panic!("{e:?}");
        });
        assert_eq!(seq, 0);
        assert!(matches!(
            msg,
            DeviceMsg::Error {
                seq: 41,
                code: ErrorCode::BadCrc | ErrorCode::BadFrame,
                ..
            }
        ));
        assert!(a.kept().is_empty());
    }
}
