//! One host's session: the protocol's one state machine
//! ([`edgefit_proto::Session`], the firmware's too) over the agent's files,
//! engines and TCP connection.

use std::time::Instant;

use edgefit_proto::{
    internal_detail, Accepted, BenchStarted, DeviceInfo, DeviceMsg, EngineKind, ErrorCode,
    Incoming, Inference, PlanInfo, PowerSensorKind, Reject, RunFacts, TimingSource,
};

use crate::artifact::ArtifactKind;
use crate::conn::{Conn, ConnEnd};
use crate::engines::{load_tract, EngineError, NativeRunner, Runner};
use crate::power::AgentPower;
use crate::server::{token_matches, AgentState, Shared};
use crate::store::Stored;
use crate::system;

/// `BadPlan` detail: tract could not load the model.
pub const TRACT_LOAD_FAILED: u32 = 105;

/// A plan the native engine refuses: `BadPlan` with the engine's code, as
/// the firmware sends it.
fn bad_plan(e: EngineError) -> Reject {
    match e {
        EngineError::Plan(p) => Reject::new(ErrorCode::BadPlan, p.code()),
        EngineError::ArenaTooLarge { limit, .. } => {
            Reject::new(ErrorCode::ArenaTooSmall, edgefit_proto::sat_u32(limit))
        }
        // Detail 0: the memory the arena needs could not be had at all.
        EngineError::OutOfMemory { .. } => Reject::new(ErrorCode::ArenaTooSmall, 0),
        _ => Reject::new(ErrorCode::BadPlan, 0),
    }
}

/// Loads the active tract artifact on the CPU at start-up, so the first
/// benchmark does not pay for it (and a model tract cannot load is logged).
pub fn preload(state: &mut AgentState) {
    if let Some(a) = &state.active {
        if matches!(a.kind, ArtifactKind::Tract(_)) {
            match load_tract(&a.bytes, EngineKind::TractCpu) {
                Ok(r) => state.tract = Some((a.info.crc32, r)),
                Err(e) => eprintln!("edgefit-agent: active artifact: {e}"),
            }
        }
    }
}

/// One host's session over a connection.
pub struct Session<'s> {
    conn: &'s mut Conn,
    device: AgentDevice<'s>,
}

impl<'s> Session<'s> {
    pub fn new(conn: &'s mut Conn, shared: &'s Shared, state: &'s mut AgentState) -> Self {
        Session {
            conn,
            device: AgentDevice {
                shared,
                state,
                rss_reset: false,
            },
        }
    }

    /// Serves requests, `first` (a frame already read) first, until the
    /// connection ends.
    pub fn run(mut self, first: Option<Vec<u8>>) -> Result<(), ConnEnd> {
        let mut link = ConnLink {
            conn: self.conn,
            pending: first,
            raw: Vec::new(),
        };
        // A TCP link blocks: serve returns only with the connection's end.
        let result = edgefit_proto::Session::new()
            .serve(&mut link, &mut self.device)
            .map(|_| ());
        // A dropped connection abandons its upload (the active artifact stays).
        self.device.state.store.abort();
        result
    }
}

/// The session's link: frames from the connection, answers to it.
struct ConnLink<'c> {
    conn: &'c mut Conn,
    /// A frame read before the session began.
    pending: Option<Vec<u8>>,
    /// The frame being decoded (requests borrow it).
    raw: Vec<u8>,
}

impl edgefit_proto::Link for ConnLink<'_> {
    type Error = ConnEnd;

    fn next(&mut self) -> Result<Incoming<'_>, ConnEnd> {
        self.raw = match self.pending.take() {
            Some(raw) => raw,
            None => self.conn.next_frame()?,
        };
        match self.conn.answers.accept(&mut self.raw) {
            Accepted::Request { seq, msg } => Ok(Incoming::Request { seq, msg }),
            Accepted::Repeat => self.conn.resend().map(|()| Incoming::Handled),
            Accepted::Bad(e) => self.conn.bad_frame(&e).map(|()| Incoming::Handled),
        }
    }

    /// Sends the answer; a refused token then ends the connection.
    fn answer(&mut self, seq: u32, kind: u8, msg: &DeviceMsg<'_>) -> Result<(), ConnEnd> {
        self.conn.answer(seq, kind, msg)?;
        match refused(msg) {
            Some(why) => Err(ConnEnd::Refused(why)),
            None => Ok(()),
        }
    }
}

/// The session's device: the artifact store and the engines.
struct AgentDevice<'s> {
    shared: &'s Shared,
    state: &'s mut AgentState,
    /// The peak resident set was reset at the benchmark's start (so the
    /// summary's peak is the benchmark's).
    rss_reset: bool,
}

/// The hello's facts, in and out of a benchmark.
fn device_info<'a>(
    shared: &'a Shared,
    plan_slot_bytes: u32,
    active_plan: Option<PlanInfo>,
    power_sensor: PowerSensorKind,
) -> DeviceInfo<'a> {
    let id = &shared.identity;
    DeviceInfo {
        protocol_version: edgefit_proto::PROTOCOL_VERSION,
        engine_version: edgefit_engine::FORMAT_VERSION,
        board: &id.board,
        core: &id.core,
        clock_hz: id.clock_hz,
        ram_bytes: id.ram_bytes,
        flash_bytes: id.storage_bytes,
        plan_slot_bytes,
        plan_slots: 2,
        arena_bytes: shared.config.max_arena_bytes,
        power_sensor,
        timing: TimingSource::MonotonicNs,
        tick_hz: 1_000_000_000,
        active_plan,
        engines: id.engines,
        accelerator: &id.accelerator.description,
    }
}

/// `Auth`: the agent's token, when it has one.
fn check_token(shared: &Shared, token: &[u8]) -> Result<(), Reject> {
    match &shared.config.token {
        Some(t) if !token_matches(token, t) => Err(Reject::new(ErrorCode::Unauthorized, 1)),
        _ => Ok(()),
    }
}

fn engine_unavailable(engine: Option<EngineKind>) -> Reject {
    Reject::new(
        ErrorCode::EngineUnavailable,
        engine.map_or(u32::MAX, |e| e as u32),
    )
}

impl<'s> edgefit_proto::Device for AgentDevice<'s> {
    type Bench<'d>
        = AgentBench<'d>
    where
        Self: 'd;

    fn hello(&self) -> DeviceInfo<'_> {
        device_info(
            self.shared,
            self.state.store.max_bytes(),
            self.state.active.as_ref().map(|a| a.info),
            self.state.power.kind(),
        )
    }

    fn auth(&mut self, token: &[u8]) -> Result<(), Reject> {
        check_token(self.shared, token)
    }

    fn plan_begin(&mut self, _plan_id: u32, total_size: u32, crc32: u32) -> Result<(), Reject> {
        self.state.store.begin(total_size, crc32)
    }

    fn plan_chunk(&mut self, index: u32, offset: u32, data: &[u8]) -> Result<(), Reject> {
        self.state.store.chunk(index, offset, data)
    }

    /// Checks the upload, loads it in its engine, installs it.
    fn plan_commit(&mut self) -> Result<PlanInfo, Reject> {
        let max_arena = self.shared.config.max_arena_bytes as usize;
        let mut loaded: Option<Box<dyn Runner + Send>> = None;
        let stored = self.state.store.commit(|s: &Stored| match s.kind {
            ArtifactKind::Plan => match NativeRunner::new(&s.bytes, max_arena) {
                Ok(_) => Ok(()),
                Err(e) => {
                    eprintln!("edgefit-agent: refusing the upload: {e}");
                    Err(bad_plan(e))
                }
            },
            ArtifactKind::Tract(_) => match load_tract(&s.bytes, EngineKind::TractCpu) {
                Ok(r) => {
                    loaded = Some(r);
                    Ok(())
                }
                Err(EngineError::Unavailable { .. }) => Err(Reject::new(
                    ErrorCode::EngineUnavailable,
                    EngineKind::TractCpu as u32,
                )),
                Err(e) => {
                    eprintln!("edgefit-agent: refusing the upload: {e}");
                    Err(Reject::new(ErrorCode::BadPlan, TRACT_LOAD_FAILED))
                }
            },
        })?;
        eprintln!(
            "edgefit-agent: stored {} {:08x} ({} bytes, CRC {:08x})",
            stored.kind.name(),
            stored.info.plan_id,
            stored.info.size,
            stored.info.crc32
        );
        let info = stored.info;
        self.state.tract = loaded.map(|r| (info.crc32, r));
        self.state.active = Some(stored);
        Ok(info)
    }

    fn plan_abort(&mut self) {
        self.state.store.abort();
    }

    /// Picks the engine; a tract artifact is loaded on it here (or taken
    /// from the one loaded already), a plan in [`bench`](Self::bench).
    fn bench_start(
        &mut self,
        plan_id: Option<u32>,
        engine: Option<EngineKind>,
    ) -> Result<BenchStarted, Reject> {
        let Some(active) = self.state.active.as_ref() else {
            return Err(Reject::new(ErrorCode::NoPlan, 0));
        };
        if plan_id.is_some_and(|id| id != active.info.plan_id) {
            return Err(Reject::new(ErrorCode::PlanMismatch, active.info.plan_id));
        }
        self.state.store.abort();
        match active.kind {
            ArtifactKind::Plan => {
                if !matches!(engine, None | Some(EngineKind::Native)) {
                    return Err(engine_unavailable(engine));
                }
            }
            ArtifactKind::Tract(_) => {
                let cuda = self.shared.identity.accelerator.cuda;
                let wanted = match engine {
                    None if cuda => EngineKind::TractCuda,
                    None => EngineKind::TractCpu,
                    Some(EngineKind::TractCuda) if !cuda => return Err(engine_unavailable(engine)),
                    Some(EngineKind::Native) => return Err(engine_unavailable(engine)),
                    Some(e) => e,
                };
                let crc = active.info.crc32;
                let loaded = match self.state.tract.take() {
                    Some((c, r)) if c == crc && r.kind() == wanted => Ok(r),
                    _ => load_tract(&active.bytes, wanted).or_else(|e| {
                        eprintln!(
                            "edgefit-agent: {} cannot run the artifact: {e}",
                            wanted.name()
                        );
                        // Chosen automatically: fall back to the CPU (the
                        // summary's engine says so), as without a GPU.
                        if engine.is_none() && wanted == EngineKind::TractCuda {
                            eprintln!("edgefit-agent: falling back to tract-cpu");
                            load_tract(&active.bytes, EngineKind::TractCpu)
                        } else {
                            Err(e)
                        }
                    }),
                };
                match loaded {
                    Ok(r) => self.state.tract = Some((crc, r)),
                    Err(_) => return Err(engine_unavailable(Some(wanted))),
                }
            }
        }
        let started = BenchStarted {
            plan_id: active.info.plan_id,
            slot: active.info.slot,
            idle_power_mw: None,
        };
        self.rss_reset = system::reset_peak_rss();
        Ok(BenchStarted {
            idle_power_mw: self.state.power.power_mw(),
            ..started
        })
    }

    fn bench(&mut self) -> Result<AgentBench<'_>, Reject> {
        let state = &mut *self.state;
        let active = state
            .active
            .as_ref()
            .ok_or(Reject::new(ErrorCode::NoPlan, 0))?;
        let runner = match active.kind {
            ArtifactKind::Plan => {
                let max_arena = self.shared.config.max_arena_bytes as usize;
                match NativeRunner::new(&active.bytes, max_arena) {
                    Ok(r) => Held::Native(Box::new(r)),
                    Err(e) => {
                        eprintln!("edgefit-agent: cannot run the active plan: {e}");
                        return Err(bad_plan(e));
                    }
                }
            }
            ArtifactKind::Tract(_) => match state.tract.as_mut() {
                Some((crc, r)) if *crc == active.info.crc32 => Held::Tract(r.as_mut()),
                _ => return Err(engine_unavailable(None)),
            },
        };
        Ok(AgentBench {
            shared: self.shared,
            plan_slot_bytes: state.store.max_bytes(),
            active: active.info,
            power: &mut state.power,
            rss_reset: self.rss_reset,
            runner,
        })
    }
}

/// The engine running a benchmark: a plan on the native engine (loaded per
/// benchmark), or the tract artifact loaded already.
enum Held<'d> {
    Native(Box<NativeRunner<'d>>),
    Tract(&'d mut (dyn Runner + Send)),
}

impl Held<'_> {
    fn get(&self) -> &dyn Runner {
        match self {
            Held::Native(r) => &**r,
            Held::Tract(r) => &**r,
        }
    }

    fn get_mut(&mut self) -> &mut dyn Runner {
        match self {
            Held::Native(r) => &mut **r,
            Held::Tract(r) => &mut **r,
        }
    }
}

/// The active artifact loaded to run.
struct AgentBench<'d> {
    shared: &'d Shared,
    plan_slot_bytes: u32,
    active: PlanInfo,
    power: &'d mut AgentPower,
    rss_reset: bool,
    runner: Held<'d>,
}

impl edgefit_proto::Bench for AgentBench<'_> {
    fn hello(&self) -> DeviceInfo<'_> {
        device_info(
            self.shared,
            self.plan_slot_bytes,
            Some(self.active),
            self.power.kind(),
        )
    }

    fn auth(&mut self, token: &[u8]) -> Result<(), Reject> {
        check_token(self.shared, token)
    }

    fn input(&mut self) -> Result<&mut [u8], Reject> {
        Ok(self.runner.get_mut().input_mut())
    }

    fn run(&mut self) -> Result<Inference, Reject> {
        let mark = self.power.mark();
        let t0 = Instant::now();
        let run = self.runner.get_mut().run();
        let elapsed = t0.elapsed();
        let energy_uj = self.power.energy_uj(mark, elapsed);
        if let Err(e) = run {
            eprintln!("edgefit-agent: inference failed: {e}");
            return Err(Reject::new(
                ErrorCode::Internal,
                internal_detail::EXEC_KERNEL,
            ));
        }
        let ticks = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        Ok(Inference { ticks, energy_uj })
    }

    fn output(&self) -> Result<(&[u8], u16), Reject> {
        let r = self.runner.get();
        Ok((r.output(), r.predicted()))
    }

    fn facts(&mut self) -> RunFacts {
        let r = self.runner.get();
        RunFacts {
            timing: TimingSource::MonotonicNs,
            tick_hz: 1_000_000_000,
            clock_hz: self.shared.identity.clock_hz,
            arena_bytes_used: r.arena_bytes(),
            stack_high_water_bytes: 0,
            power_sensor: self.power.kind(),
            engine: r.kind(),
            peak_rss_bytes: if self.rss_reset {
                system::peak_rss_bytes()
            } else {
                None
            },
            gpu_memory_bytes: r.gpu_memory_bytes(),
        }
    }
}

/// Whether an answer ends the connection (a wrong token).
fn refused(answer: &DeviceMsg<'_>) -> Option<&'static str> {
    matches!(
        answer,
        DeviceMsg::Error {
            code: ErrorCode::Unauthorized,
            ..
        }
    )
    .then_some("wrong token")
}
