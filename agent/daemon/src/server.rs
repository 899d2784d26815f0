//! The agent: a TCP listener, one exclusive session at a time, the artifact
//! store and the engines.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use edgefit_proto::{decode_frame, ErrorCode, HostMsg};

use crate::conn::{Conn, ConnEnd, Incoming};
use crate::engines::{engine_names, probe_accelerator, Accelerator, Runner};
use crate::power::AgentPower;
use crate::session::Session;
use crate::store::{ArtifactStore, Stored};
use crate::system;

/// Default port of the agent.
pub const DEFAULT_PORT: u16 = 4600;

/// Connections open at once (one session, the rest waiting to be told
/// `Busy` or refused their token); more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 16;

/// Connections open at once from one IP address (default of
/// [`AgentConfig::max_per_address`]): one address cannot take every slot.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 4;

/// Default of [`AgentConfig::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub store: PathBuf,
    /// Required from every connection when set; required to listen on a
    /// non-loopback address.
    pub token: Option<Vec<u8>>,
    /// A connection that sends nothing this long is closed.
    pub idle_timeout: Duration,
    /// A connection whose first whole frame (the token, or the hello) has
    /// not arrived this long after it was accepted is closed, however many
    /// bytes trickle in.
    pub handshake_timeout: Duration,
    /// Connections open at once from one IP address (at least 1).
    pub max_per_address: usize,
    /// Largest artifact accepted.
    pub max_artifact_bytes: u32,
    /// Largest plan arena allowed.
    pub max_arena_bytes: u32,
    /// Root for sysfs/procfs board and sensor files (tests: a fixture tree).
    pub sysfs_root: PathBuf,
    /// Board name for the hello (default: read from the machine).
    pub board: Option<String>,
}

impl AgentConfig {
    pub fn new(listen: SocketAddr, store: PathBuf) -> Self {
        AgentConfig {
            listen,
            store,
            token: None,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            max_artifact_bytes: 1 << 30,
            max_arena_bytes: 1 << 30,
            sysfs_root: PathBuf::from("/"),
            board: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could run code \
         on this machine; pass --token-file, or listen on 127.0.0.1"
    )]
    NeedsToken(SocketAddr),
    #[error("the token is empty")]
    EmptyToken,
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What the hello says about this machine (read once).
pub struct Identity {
    pub board: String,
    pub core: String,
    pub clock_hz: u32,
    pub ram_bytes: u64,
    pub storage_bytes: u64,
    pub engines: &'static str,
    pub accelerator: Accelerator,
}

/// State shared by the sessions; the mutex makes a session exclusive.
pub struct AgentState {
    pub store: ArtifactStore,
    pub active: Option<Stored>,
    pub power: AgentPower,
    /// The active tract artifact loaded for an engine: (artifact CRC, runner).
    pub tract: Option<(u32, Box<dyn Runner + Send>)>,
}

pub struct Shared {
    pub config: AgentConfig,
    pub identity: Identity,
    pub state: Mutex<AgentState>,
}

/// A bound agent, ready to serve.
pub struct Agent {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Agent {
    /// Checks the configuration, opens the store (loading the active
    /// artifact), probes the accelerator and the power sensor, and binds.
    pub fn bind(config: AgentConfig) -> Result<Agent, AgentError> {
        if config.token.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(AgentError::EmptyToken);
        }
        if config.token.is_none() && !config.listen.ip().is_loopback() {
            return Err(AgentError::NeedsToken(config.listen));
        }
        let opened = ArtifactStore::open(&config.store, config.max_artifact_bytes)?;
        for (path, why) in &opened.rejected {
            eprintln!("edgefit-agent: ignoring {}: {why}", path.display());
        }
        let root = config.sysfs_root.clone();
        let identity = Identity {
            board: config
                .board
                .clone()
                .unwrap_or_else(|| system::board_name(&root)),
            core: system::core_name(&root),
            clock_hz: system::clock_hz(&root),
            ram_bytes: system::ram_bytes(&root),
            storage_bytes: system::storage_bytes(&config.store),
            engines: engine_names(),
            accelerator: probe_accelerator(),
        };
        let power = AgentPower::discover(&root);
        let listener = TcpListener::bind(config.listen).map_err(|source| AgentError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut state = AgentState {
            store: opened.store,
            active: opened.active,
            power,
            tract: None,
        };
        crate::session::preload(&mut state);
        eprintln!(
            "edgefit-agent: {} ({}) on {}, store {}, engines {}, accelerator {}, power {}, active {}",
            identity.board,
            identity.core,
            listener.local_addr().map_or(config.listen, |a| a),
            config.store.display(),
            identity.engines,
            identity.accelerator.description,
            state.power.description(),
            state.active.as_ref().map_or("none".to_owned(), |a| format!(
                "{} {:08x}",
                a.kind.name(),
                a.info.plan_id
            )),
        );
        Ok(Agent {
            listener,
            shared: Arc::new(Shared {
                config,
                identity,
                state: Mutex::new(state),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections, each on its own thread (at most
    /// [`MAX_CONNECTIONS`] open, and [`AgentConfig::max_per_address`] from
    /// one address; more are closed at once).
    pub fn serve(self) -> std::io::Result<()> {
        let slots = Arc::new(Slots::default());
        let per_address = self.shared.config.max_per_address.max(1);
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(c) => c,
                // Out of descriptors, a peer that reset before accept: the
                // listener itself is fine.
                Err(e) => {
                    eprintln!("edgefit-agent: accept: {e}");
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let accepted = Instant::now();
            let slot = match Slots::take(&slots, peer.ip(), per_address) {
                Ok(slot) => slot,
                Err(why) => {
                    eprintln!("edgefit-agent: {peer}: refused: {why}");
                    continue;
                }
            };
            let shared = Arc::clone(&self.shared);
            thread::spawn(move || {
                let end = handle(stream, &shared, accepted);
                drop(slot);
                eprintln!("edgefit-agent: {peer}: {end}");
            });
        }
    }

    /// Serves on a background thread (in-process use: tests).
    pub fn spawn(self) -> thread::JoinHandle<std::io::Result<()>> {
        thread::spawn(move || self.serve())
    }
}

/// The open connections, in all and per address.
#[derive(Default)]
struct Slots {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One connection's place in [`Slots`], given back on drop.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, or why there is none.
    fn take(slots: &Arc<Slots>, ip: IpAddr, per_address: usize) -> Result<Slot, String> {
        let mut open = slots.lock();
        if open.0 >= MAX_CONNECTIONS {
            return Err(format!("{MAX_CONNECTIONS} connections open"));
        }
        let from_ip = open.1.entry(ip).or_insert(0);
        if *from_ip >= per_address {
            return Err(format!("{per_address} connections open from {ip}"));
        }
        *from_ip += 1;
        open.0 += 1;
        Ok(Slot {
            slots: Arc::clone(slots),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// How long a new host waits for the session before it is told `Busy`:
/// a host that has just disconnected may still hold it for a moment (its
/// session ends when the agent reads the close), and `edgefit flash` then
/// `edgefit bench` must not race it.
const BUSY_GRACE: Duration = Duration::from_secs(2);

/// `try_lock`, retried for up to `grace`.
fn lock_within<T>(m: &Mutex<T>, grace: Duration) -> std::sync::TryLockResult<MutexGuard<'_, T>> {
    let start = std::time::Instant::now();
    loop {
        match m.try_lock() {
            Err(TryLockError::WouldBlock) if start.elapsed() < grace => {
                thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// Constant-time comparison, so the answer's timing says nothing about how
/// much of a wrong token matched.
pub(crate) fn token_matches(given: &[u8], token: &[u8]) -> bool {
    let mut diff = given.len() ^ token.len();
    for (i, &t) in token.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(!t) ^ t);
    }
    diff == 0
}

/// One connection: a whole first frame within the handshake timeout (the
/// token when the agent has one, else any request: a connection that never
/// completes a frame holds no session), then an exclusive session, or
/// `Busy` if another host holds it.
fn handle(stream: TcpStream, shared: &Shared, accepted: Instant) -> ConnEnd {
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_read_timeout(Some(shared.config.idle_timeout)) {
        return ConnEnd::Io(e);
    }
    let mut conn = Conn::new(stream);
    conn.handshake_until(
        accepted + shared.config.handshake_timeout,
        shared.config.handshake_timeout,
        shared.config.idle_timeout,
    );
    let r = (|| {
        let first = if let Some(token) = &shared.config.token {
            // Nothing but the token first: an unreadable frame is refused too.
            let mut raw = match conn.next()? {
                Incoming::Frame(f) => f,
                Incoming::Bad(e) => {
                    conn.bad_frame(&e)?;
                    return Err(ConnEnd::Refused("unreadable frame before the token"));
                }
            };
            let (seq, msg) = match decode_frame::<HostMsg<'_>>(&mut raw) {
                Ok(v) => v,
                Err(e) => {
                    conn.bad_frame(&e)?;
                    return Err(ConnEnd::Refused("unreadable frame before the token"));
                }
            };
            match msg {
                HostMsg::Auth { token: given } if token_matches(given, token) => {
                    conn.set_last_good(seq);
                    conn.answer(seq, msg.kind(), &edgefit_proto::DeviceMsg::Ack { seq })?;
                }
                HostMsg::Auth { .. } => {
                    conn.error(seq, ErrorCode::Unauthorized, 1)?;
                    return Err(ConnEnd::Refused("wrong token"));
                }
                _ => {
                    conn.error(seq, ErrorCode::Unauthorized, 2)?;
                    return Err(ConnEnd::Refused("no token"));
                }
            }
            None
        } else {
            Some(first_request(&mut conn)?)
        };
        conn.handshake_done()?;
        let mut state = match lock_within(&shared.state, BUSY_GRACE) {
            Ok(s) => s,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let mut raw = match first {
                    Some(raw) => raw,
                    None => conn.next_frame()?,
                };
                let seq = decode_frame::<HostMsg<'_>>(&mut raw).map_or(0, |(s, _)| s);
                conn.error(seq, ErrorCode::Busy, 1)?;
                return Err(ConnEnd::Refused("busy: another host holds the agent"));
            }
        };
        Session::new(&mut conn, shared, &mut state).run(first)
    })();
    let end = r.err().unwrap_or(ConnEnd::Closed);
    if let ConnEnd::Oversized(n) = end {
        let _ = conn.error(
            conn.last_good(),
            ErrorCode::BadFrame,
            edgefit_proto::sat_u32(n),
        );
    }
    end
}

/// Reads frames until one decodes as a request (answering those that do
/// not), and returns it undecoded for the session.
fn first_request(conn: &mut Conn) -> Result<Vec<u8>, ConnEnd> {
    loop {
        let raw = conn.next_frame()?;
        let mut probe = raw.clone();
        match decode_frame::<HostMsg<'_>>(&mut probe) {
            Ok((seq, _)) => {
                conn.set_last_good(seq);
                return Ok(raw);
            }
            Err(e) => conn.bad_frame(&e)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn tokens_match_exactly() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret!", b"secret"));
        assert!(!token_matches(b"secre", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }
}
