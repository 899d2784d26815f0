//! The host end of the edgefit protocol: stop-and-wait requests with
//! retransmission, over any [`Link`].

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use edgefit_proto::{
    decode_frame, encode_frame_vec, BenchSummary, DeviceInfo, DeviceMsg, ErrorCode, FrameReader,
    HostMsg, PlanInfo, PowerSensorKind, ProtoError, TimingSource, MAX_FRAME, PROTOCOL_VERSION,
};
use serde::Serialize;

use super::link::Link;

/// What a device said about itself in its hello, owned. (Enums serialise
/// by variant name: `"QemuIcount"`, `"None"`.)
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DeviceIdentity {
    pub board: String,
    pub core: String,
    pub protocol_version: u16,
    pub engine_version: u16,
    pub clock_hz: u32,
    pub ram_bytes: u64,
    pub flash_bytes: u64,
    pub plan_slot_bytes: u32,
    pub plan_slots: u8,
    pub arena_bytes: u32,
    pub power_sensor: PowerSensorKind,
    pub timing: TimingSource,
    pub tick_hz: u64,
    /// Engines on the device (`native`, `tract-cpu`, `tract-cuda`).
    pub engines: Vec<String>,
    /// The accelerator in use, or `none: <why>`; empty on a microcontroller.
    pub accelerator: String,
    #[serde(skip)]
    pub active_plan: Option<PlanInfo>,
}

impl From<&DeviceInfo<'_>> for DeviceIdentity {
    fn from(d: &DeviceInfo<'_>) -> Self {
        DeviceIdentity {
            board: d.board.to_owned(),
            core: d.core.to_owned(),
            protocol_version: d.protocol_version,
            engine_version: d.engine_version,
            clock_hz: d.clock_hz,
            ram_bytes: d.ram_bytes,
            flash_bytes: d.flash_bytes,
            plan_slot_bytes: d.plan_slot_bytes,
            plan_slots: d.plan_slots,
            arena_bytes: d.arena_bytes,
            power_sensor: d.power_sensor,
            timing: d.timing,
            tick_hz: d.tick_hz,
            engines: d
                .engines
                .split(',')
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect(),
            accelerator: d.accelerator.to_owned(),
            active_plan: d.active_plan,
        }
    }
}

/// One inference record, owned.
#[derive(Debug, Clone)]
pub struct Record {
    pub sample: u32,
    pub predicted: u16,
    pub ticks: u64,
    pub outputs: Option<Vec<u8>>,
    pub energy_uj: Option<u32>,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub enum Reply {
    Hello(DeviceIdentity),
    Pong(u32),
    Ack,
    PlanStored(PlanInfo),
    Record(Record),
    Summary(BenchSummary),
}

impl Reply {
    fn name(&self) -> &'static str {
        match self {
            Reply::Hello(_) => "DeviceHello",
            Reply::Pong(_) => "Pong",
            Reply::Ack => "Ack",
            Reply::PlanStored(_) => "PlanStored",
            Reply::Record(_) => "Record",
            Reply::Summary(_) => "BenchSummary",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("link error during {during}: {source}")]
    Io {
        during: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the link closed during {during}")]
    Closed { during: &'static str },
    #[error("no answer to {during} after {attempts} attempts ({timeout:?} each)")]
    Timeout {
        during: &'static str,
        attempts: u32,
        timeout: Duration,
    },
    #[error("the device refused {during}: {code} (code {code_num}, detail {detail})")]
    Device {
        during: &'static str,
        code: ErrorCode,
        code_num: u8,
        detail: u32,
    },
    #[error(
        "{during}: the device kept reporting damaged frames ({code}) after {attempts} attempts"
    )]
    Damaged {
        during: &'static str,
        code: ErrorCode,
        attempts: u32,
    },
    #[error("the device speaks protocol version {device}, this host {host}: update the {older}")]
    Version {
        device: u16,
        host: u16,
        older: &'static str,
    },
    #[error("{during}: unexpected answer {got}")]
    Unexpected {
        during: &'static str,
        got: &'static str,
    },
    #[error("encode {during}: {source}")]
    Encode {
        during: &'static str,
        source: ProtoError,
    },
}

/// Name of a request, for messages.
fn request_name(msg: &HostMsg<'_>) -> &'static str {
    match msg {
        HostMsg::Hello { .. } => "Hello",
        HostMsg::Ping { .. } => "Ping",
        HostMsg::PlanBegin { .. } => "PlanBegin",
        HostMsg::PlanChunk { .. } => "PlanChunk",
        HostMsg::PlanCommit => "PlanCommit",
        HostMsg::PlanAbort => "PlanAbort",
        HostMsg::BenchStart { .. } => "BenchStart",
        HostMsg::Sample { .. } => "Sample",
        HostMsg::SampleChunk { .. } => "SampleChunk",
        HostMsg::SampleRun { .. } => "SampleRun",
        HostMsg::BenchEnd => "BenchEnd",
        HostMsg::Reset => "Reset",
        HostMsg::Auth { .. } => "Auth",
    }
}

/// Timeouts and retries of a session.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long to wait for an answer before sending the request again.
    pub timeout: Duration,
    /// Wait for an inference (`Sample`, `SampleRun`) or a commit, which run
    /// the engine or check a whole plan on the device.
    pub run_timeout: Duration,
    /// Sends of one request before giving up (the first included).
    pub attempts: u32,
    /// The device's access token (the Linux agent's `--token-file`), sent
    /// first when given.
    pub token: Option<Vec<u8>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(3),
            run_timeout: Duration::from_secs(60),
            attempts: 4,
            token: None,
        }
    }
}

/// Counters of what went wrong and was recovered.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct LinkStats {
    pub frames_sent: u64,
    pub retransmissions: u64,
    pub damaged_answers: u64,
    /// Answers received twice (the device resent its last answer, after a
    /// retransmission crossed it) and dropped.
    pub duplicate_answers: u64,
    /// Answers to no request now open (late, or unexpected), dropped.
    pub stale_answers: u64,
}

impl LinkStats {
    /// Whether anything went wrong on the link (and was recovered).
    pub fn had_trouble(&self) -> bool {
        self.retransmissions + self.damaged_answers + self.duplicate_answers + self.stale_answers
            > 0
    }
}

/// An open session with a device.
pub struct Client {
    link: Box<dyn Link>,
    reader: Box<FrameReader<MAX_FRAME>>,
    pending: Vec<u8>,
    seq: u32,
    config: ClientConfig,
    pub stats: LinkStats,
    device: DeviceIdentity,
    /// The device's frame number of the last answer taken, to tell a
    /// resent copy of it from other stale frames.
    last_answer: Option<u32>,
}

enum Attempt {
    Done(Reply),
    /// Send the request again (timeout, or a damaged frame either way).
    Retry(Option<ErrorCode>),
}

impl Client {
    /// Opens a session: flushes any partial frame the device holds, says
    /// hello (refusing another protocol version), and drops whatever transfer
    /// or benchmark an earlier, interrupted session left open.
    pub fn connect(link: Box<dyn Link>, config: ClientConfig) -> Result<Client, ClientError> {
        // A session-specific first sequence number, so a request is never
        // mistaken for a retransmission of an earlier session's.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
            .unwrap_or(1);
        let mut client = Client {
            link,
            reader: Box::new(FrameReader::new()),
            pending: Vec::new(),
            seq,
            config,
            stats: LinkStats::default(),
            device: placeholder_identity(),
            last_answer: None,
        };
        client.write(&[0], "Hello")?;
        if let Some(token) = client.config.token.take() {
            client.expect_ack(&HostMsg::Auth { token: &token })?;
        }
        let hello = HostMsg::hello();
        match client.request(&hello) {
            Ok(Reply::Hello(d)) => client.device = d,
            Ok(other) => {
                return Err(ClientError::Unexpected {
                    during: "Hello",
                    got: other.name(),
                })
            }
            Err(ClientError::Device {
                code: ErrorCode::VersionMismatch,
                detail,
                ..
            }) => return Err(version_error(detail as u16)),
            Err(e) => return Err(e),
        }
        if client.device.protocol_version != PROTOCOL_VERSION {
            return Err(version_error(client.device.protocol_version));
        }
        client.expect_ack(&HostMsg::Reset)?;
        Ok(client)
    }

    /// The device's hello (refreshed by [`Client::refresh`]).
    pub fn device(&self) -> &DeviceIdentity {
        &self.device
    }

    /// Asks the device for a fresh hello (its active plan may have changed).
    pub fn refresh(&mut self) -> Result<&DeviceIdentity, ClientError> {
        match self.request(&HostMsg::hello())? {
            Reply::Hello(d) => self.device = d,
            other => {
                return Err(ClientError::Unexpected {
                    during: "Hello",
                    got: other.name(),
                })
            }
        }
        Ok(&self.device)
    }

    pub fn expect_ack(&mut self, msg: &HostMsg<'_>) -> Result<(), ClientError> {
        match self.request(msg)? {
            Reply::Ack => Ok(()),
            other => Err(ClientError::Unexpected {
                during: request_name(msg),
                got: other.name(),
            }),
        }
    }

    /// Sends `msg` and waits for its answer, sending it again (same sequence
    /// number, so the device answers without acting twice) after a timeout
    /// or when either side saw a damaged frame.
    pub fn request(&mut self, msg: &HostMsg<'_>) -> Result<Reply, ClientError> {
        let during = request_name(msg);
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let frame =
            encode_frame_vec(seq, msg).map_err(|source| ClientError::Encode { during, source })?;
        let timeout = match msg {
            HostMsg::Sample { .. } | HostMsg::SampleRun { .. } | HostMsg::PlanCommit => {
                self.config.run_timeout
            }
            _ => self.config.timeout,
        };
        let mut last_damage = None;
        for attempt in 0..self.config.attempts {
            if attempt > 0 {
                self.stats.retransmissions += 1;
            }
            self.write(&frame, during)?;
            self.stats.frames_sent += 1;
            match self.await_answer(seq, expect_for(msg), during, timeout)? {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Retry(damage) => last_damage = damage.or(last_damage),
            }
        }
        Err(match last_damage {
            Some(code) => ClientError::Damaged {
                during,
                code,
                attempts: self.config.attempts,
            },
            None => ClientError::Timeout {
                during,
                attempts: self.config.attempts,
                timeout,
            },
        })
    }

    fn write(&mut self, bytes: &[u8], during: &'static str) -> Result<(), ClientError> {
        let io = |source: io::Error| match source.kind() {
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                ClientError::Closed { during }
            }
            _ => ClientError::Io { during, source },
        };
        self.link.write_all(bytes).map_err(io)?;
        self.link.flush().map_err(io)
    }

    fn await_answer(
        &mut self,
        seq: u32,
        expect: Expect,
        during: &'static str,
        timeout: Duration,
    ) -> Result<Attempt, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            // Frames already received come first.
            while !self.pending.is_empty() {
                let (used, frame) = self.reader.feed(&self.pending);
                let frame = match frame {
                    None => {
                        self.pending.drain(..used);
                        break;
                    }
                    Some(Err(_)) => Err(()),
                    Some(Ok(frame)) => match decode_frame::<DeviceMsg>(frame) {
                        Ok((device_seq, msg)) => Ok((device_seq, classify(&msg, seq, expect))),
                        Err(_) => Err(()),
                    },
                };
                self.pending.drain(..used);
                match frame {
                    // Our answer was damaged on the way back: ask again,
                    // the device resends it.
                    Err(()) => {
                        self.stats.damaged_answers += 1;
                        return Ok(Attempt::Retry(None));
                    }
                    Ok((device_seq, Answer::Mine(reply))) => {
                        self.last_answer = Some(device_seq);
                        return Ok(Attempt::Done(reply));
                    }
                    Ok((device_seq, Answer::Refused { code, detail })) => {
                        self.last_answer = Some(device_seq);
                        return Err(ClientError::Device {
                            during,
                            code,
                            code_num: code as u8,
                            detail,
                        });
                    }
                    Ok((_, Answer::Damaged(code))) => return Ok(Attempt::Retry(Some(code))),
                    Ok((device_seq, Answer::Stale)) => {
                        if self.last_answer == Some(device_seq) {
                            self.stats.duplicate_answers += 1;
                        } else {
                            self.stats.stale_answers += 1;
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Attempt::Retry(None));
            }
            self.link
                .set_read_timeout(left.max(Duration::from_millis(1)))
                .map_err(|source| ClientError::Io { during, source })?;
            match self.link.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed { during }),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Err(ClientError::Closed { during })
                }
                Err(source) => return Err(ClientError::Io { during, source }),
            }
        }
    }
}

enum Answer {
    Mine(Reply),
    Refused {
        code: ErrorCode,
        detail: u32,
    },
    /// The device could not read a frame (ours, or line noise before it).
    Damaged(ErrorCode),
    /// An answer to an earlier request (a late duplicate after a retransmission).
    Stale,
}

/// The answer a request gets when it succeeds.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Hello,
    Pong(u32),
    Ack,
    PlanStored,
    Record(u32),
    Summary,
}

fn expect_for(msg: &HostMsg<'_>) -> Expect {
    match *msg {
        HostMsg::Hello { .. } => Expect::Hello,
        HostMsg::Ping { nonce } => Expect::Pong(nonce),
        HostMsg::PlanCommit => Expect::PlanStored,
        HostMsg::Sample { index, .. } | HostMsg::SampleRun { index, .. } => Expect::Record(index),
        HostMsg::BenchEnd => Expect::Summary,
        HostMsg::PlanBegin { .. }
        | HostMsg::PlanChunk { .. }
        | HostMsg::PlanAbort
        | HostMsg::BenchStart { .. }
        | HostMsg::SampleChunk { .. }
        | HostMsg::Reset
        | HostMsg::Auth { .. } => Expect::Ack,
    }
}

/// Sorts an incoming message: the answer to request `seq` (which expects
/// `expect`), a refusal of it, a report of a damaged frame, or a late
/// duplicate of an earlier answer (after a retransmission), which is skipped.
fn classify(msg: &DeviceMsg<'_>, seq: u32, expect: Expect) -> Answer {
    match (*msg, expect) {
        (
            DeviceMsg::Error {
                code: code @ (ErrorCode::BadFrame | ErrorCode::BadCrc),
                ..
            },
            _,
        ) => Answer::Damaged(code),
        (
            DeviceMsg::Error {
                seq: s,
                code,
                detail,
            },
            _,
        ) if s == seq => Answer::Refused { code, detail },
        (DeviceMsg::Ack { seq: s }, Expect::Ack) if s == seq => Answer::Mine(Reply::Ack),
        (DeviceMsg::DeviceHello(ref d), Expect::Hello) => Answer::Mine(Reply::Hello(d.into())),
        (DeviceMsg::Pong { nonce }, Expect::Pong(n)) if nonce == n => {
            Answer::Mine(Reply::Pong(nonce))
        }
        (DeviceMsg::PlanStored(p), Expect::PlanStored) => Answer::Mine(Reply::PlanStored(p)),
        (DeviceMsg::Record(r), Expect::Record(i)) if r.sample == i => {
            Answer::Mine(Reply::Record(Record {
                sample: r.sample,
                predicted: r.predicted,
                ticks: r.ticks,
                outputs: r.outputs.map(<[u8]>::to_vec),
                energy_uj: r.energy_uj,
            }))
        }
        (DeviceMsg::BenchSummary(s), Expect::Summary) => Answer::Mine(Reply::Summary(s)),
        _ => Answer::Stale,
    }
}

fn version_error(device: u16) -> ClientError {
    ClientError::Version {
        device,
        host: PROTOCOL_VERSION,
        older: if device < PROTOCOL_VERSION {
            "device's firmware"
        } else {
            "host's edgefit"
        },
    }
}

fn placeholder_identity() -> DeviceIdentity {
    DeviceIdentity {
        board: String::new(),
        core: String::new(),
        protocol_version: 0,
        engine_version: 0,
        clock_hz: 0,
        ram_bytes: 0,
        flash_bytes: 0,
        plan_slot_bytes: 0,
        plan_slots: 0,
        arena_bytes: 0,
        power_sensor: PowerSensorKind::None,
        timing: TimingSource::MonotonicNs,
        tick_hz: 0,
        engines: Vec::new(),
        accelerator: String::new(),
        active_plan: None,
    }
}
