//! One TCP connection's framing: frames in (bounded: a frame longer than
//! `MAX_FRAME` ends the connection), answers out, the last answer kept for
//! a retransmitted request.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use edgefit_proto::{
    Answers, DeviceMsg, ErrorCode, FrameReader, ProtoError, Reject, ERROR_FRAME, MAX_FRAME,
};

/// Why a connection ends.
#[derive(Debug)]
pub enum ConnEnd {
    /// The peer closed it.
    Closed,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// No whole first frame within the handshake timeout of connecting.
    Handshake(Duration),
    /// More than `MAX_FRAME` bytes without a delimiter.
    Oversized(usize),
    /// The session refused the peer (token) and closed.
    Refused(&'static str),
    Io(io::Error),
}

impl std::fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnEnd::Closed => f.write_str("closed by the host"),
            ConnEnd::Idle => f.write_str("idle timeout"),
            ConnEnd::Handshake(t) => write!(
                f,
                "handshake timeout: no whole frame within {} s of connecting",
                t.as_secs_f64()
            ),
            ConnEnd::Oversized(n) => write!(f, "oversized frame ({n}+ bytes, limit {MAX_FRAME})"),
            ConnEnd::Refused(why) => write!(f, "refused: {why}"),
            ConnEnd::Io(e) => write!(f, "link error: {e}"),
        }
    }
}

impl From<io::Error> for ConnEnd {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnEnd::Idle,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => ConnEnd::Closed,
            _ => ConnEnd::Io(e),
        }
    }
}

/// A frame that arrived: its encoded bytes (to decode in place), or why it
/// cannot be read.
pub enum Incoming {
    Frame(Vec<u8>),
    Bad(ProtoError),
}

pub struct Conn {
    stream: TcpStream,
    reader: Box<FrameReader<MAX_FRAME>>,
    buf: Box<[u8; 8192]>,
    pos: usize,
    len: usize,
    /// Bytes since the last delimiter.
    open: usize,
    /// The kept answer and the agent's frame counter.
    pub answers: Box<Answers>,
    /// Until the handshake is done: (its deadline, its length, the idle
    /// timeout to restore after it).
    handshake: Option<(Instant, Duration, Duration)>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            reader: Box::new(FrameReader::new()),
            buf: Box::new([0; 8192]),
            pos: 0,
            len: 0,
            open: 0,
            answers: Box::new(Answers::new()),
            handshake: None,
        }
    }

    /// Ends the connection with [`ConnEnd::Handshake`] if
    /// [`handshake_done`](Self::handshake_done) is not called by
    /// `deadline` (`timeout` after it was accepted): bytes trickling in do
    /// not extend it, as they extend the idle timeout.
    pub fn handshake_until(&mut self, deadline: Instant, timeout: Duration, idle: Duration) {
        self.handshake = Some((deadline, timeout, idle));
    }

    /// The first frame is in: from now on only the idle timeout applies.
    pub fn handshake_done(&mut self) -> Result<(), ConnEnd> {
        if let Some((_, _, idle)) = self.handshake.take() {
            self.stream.set_read_timeout(Some(idle))?;
        }
        Ok(())
    }

    /// Reads more bytes: the idle timeout, or what is left of the handshake.
    fn read_more(&mut self) -> Result<usize, ConnEnd> {
        let Some((deadline, timeout, idle)) = self.handshake else {
            return Ok(self.stream.read(&mut self.buf[..])?);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ConnEnd::Handshake(timeout));
        }
        self.stream.set_read_timeout(Some(left.min(idle)))?;
        match self.stream.read(&mut self.buf[..]) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) && Instant::now() >= deadline =>
            {
                Err(ConnEnd::Handshake(timeout))
            }
            r => Ok(r?),
        }
    }

    /// Reads until a frame ends.
    pub fn next(&mut self) -> Result<Incoming, ConnEnd> {
        loop {
            if self.pos >= self.len {
                let n = self.read_more()?;
                if n == 0 {
                    return Err(ConnEnd::Closed);
                }
                self.pos = 0;
                self.len = n;
            }
            let seg = &self.buf[self.pos..self.len];
            match seg.iter().position(|&b| b == 0) {
                None => {
                    self.open += seg.len();
                    if self.open > MAX_FRAME {
                        return Err(ConnEnd::Oversized(self.open));
                    }
                    let _ = self.reader.feed(seg);
                    self.pos = self.len;
                }
                Some(z) => {
                    let seg = &self.buf[self.pos..=self.pos + z];
                    self.pos += z + 1;
                    self.open = 0;
                    match self.reader.feed(seg).1 {
                        Some(Ok(frame)) => return Ok(Incoming::Frame(frame.to_vec())),
                        Some(Err(e)) => return Ok(Incoming::Bad(e)),
                        None => {}
                    }
                }
            }
        }
    }

    /// Reads until a frame that can be read arrives, answering the ones
    /// that cannot.
    pub fn next_frame(&mut self) -> Result<Vec<u8>, ConnEnd> {
        loop {
            match self.next()? {
                Incoming::Frame(f) => return Ok(f),
                Incoming::Bad(e) => self.bad_frame(&e)?,
            }
        }
    }

    /// Sequence number of the last frame decoded.
    pub fn last_good(&self) -> u32 {
        self.answers.last_good()
    }

    /// Records `seq` as decoded.
    pub fn set_last_good(&mut self, seq: u32) {
        self.answers.set_last_good(seq);
    }

    /// Sends the answer to request `(seq, kind)` and keeps it.
    pub fn answer(&mut self, seq: u32, kind: u8, msg: &DeviceMsg<'_>) -> Result<(), ConnEnd> {
        let bytes = self.answers.answer(seq, kind, msg);
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Sends the kept answer again.
    pub fn resend(&mut self) -> Result<(), ConnEnd> {
        self.stream.write_all(self.answers.kept())?;
        Ok(())
    }

    /// Answers a frame that could not be read (the kept answer stays).
    pub fn bad_frame(&mut self, e: &ProtoError) -> Result<(), ConnEnd> {
        let mut out = [0u8; ERROR_FRAME];
        self.stream.write_all(self.answers.refuse(e, &mut out))?;
        Ok(())
    }

    /// Sends an `Error` without keeping it.
    pub fn error(&mut self, seq: u32, code: ErrorCode, detail: u32) -> Result<(), ConnEnd> {
        let mut out = [0u8; ERROR_FRAME];
        self.stream
            .write_all(self.answers.error(seq, Reject::new(code, detail), &mut out))?;
        Ok(())
    }
}
