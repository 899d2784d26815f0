//! Byte-stream framing: splits a UART or TCP byte stream at `0x00`
//! delimiters.

use crate::{ProtoError, MAX_FRAME};

/// Accumulates bytes into frames. Feed it every byte received; it yields each
/// frame (without its delimiter) for [`decode_frame`](crate::decode_frame).
///
/// * An empty frame (two delimiters in a row) is skipped silently: a sender
///   may send a lone `0x00` to flush a receiver that holds line noise.
/// * Bytes beyond `N` without a delimiter are dropped; at the next delimiter
///   the reader reports [`ProtoError::FrameTooLarge`] once and starts afresh.
/// * Garbage between frames becomes a bad frame of its own if a delimiter
///   precedes the next frame, or corrupts only that next frame otherwise;
///   either way [`decode_frame`](crate::decode_frame) reports it and the
///   following frames are read normally.
///
/// `N` = [`MAX_FRAME`] (the default) holds every valid frame.
#[derive(Debug, Clone)]
pub struct FrameReader<const N: usize = MAX_FRAME> {
    buf: [u8; N],
    len: usize,
    /// Bytes of an overlong frame seen so far (saturating), 0 if none.
    overflow: usize,
}

impl<const N: usize> Default for FrameReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameReader<N> {
    /// An empty reader.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflow: 0,
        }
    }

    /// Takes one byte. Returns `None` while a frame is incomplete, and at a
    /// delimiter the frame (to decode in place) or
    /// [`FrameTooLarge`](ProtoError::FrameTooLarge).
    pub fn push(&mut self, byte: u8) -> Option<Result<&mut [u8], ProtoError>> {
        match self.step(byte)? {
            Ok(n) => Some(Ok(&mut self.buf[..n])),
            Err(e) => Some(Err(e)),
        }
    }

    /// Takes bytes from `data` up to and including the first one that ends a
    /// frame. Returns how many were consumed and what [`push`](Self::push)
    /// returned for the last one; call again with the rest.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<Result<&mut [u8], ProtoError>>) {
        for (i, &b) in data.iter().enumerate() {
            match self.step(b) {
                None => {}
                Some(Ok(n)) => return (i + 1, Some(Ok(&mut self.buf[..n]))),
                Some(Err(e)) => return (i + 1, Some(Err(e))),
            }
        }
        (data.len(), None)
    }

    /// Forgets a partial frame.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflow = 0;
    }

    /// Bytes of the frame in progress.
    pub fn pending(&self) -> usize {
        self.len.max(self.overflow)
    }

    /// The state machine: `Some(Ok(len))` for a frame in `buf[..len]`.
    fn step(&mut self, byte: u8) -> Option<Result<usize, ProtoError>> {
        if byte == 0 {
            let len = core::mem::take(&mut self.len);
            let overflow = core::mem::take(&mut self.overflow);
            if overflow > 0 {
                return Some(Err(ProtoError::FrameTooLarge {
                    len: overflow,
                    max: N,
                }));
            }
            return (len > 0).then_some(Ok(len));
        }
        if self.overflow > 0 {
            self.overflow = self.overflow.saturating_add(1);
        } else if self.len == N {
            self.overflow = N + 1;
            self.len = 0;
        } else {
            self.buf[self.len] = byte;
            self.len += 1;
        }
        None
    }
}
