//! One host's session: the firmware's protocol state machine (idle,
//! uploading, benchmarking) over the agent's store and engines.

use std::time::Instant;

use edgefit_proto::{
    BenchRecord, BenchSummary, BenchTally, DeviceInfo, DeviceMsg, EngineKind, ErrorCode, HostMsg,
    PlanInfo, Reject, TimingSource, Transfer, MAX_CHUNK, PROTOCOL_VERSION,
};

use crate::artifact::ArtifactKind;
use crate::conn::{Conn, ConnEnd};
use crate::engines::{load_tract, EngineError, NativeRunner, Runner};
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

/// A benchmark in progress.
struct Bench {
    plan_id: u32,
    slot: u8,
    want_outputs: bool,
    input_len: u32,
    tally: BenchTally,
    idle_power_mw: Option<u32>,
    rss_reset: bool,
    part: Option<(u32, Transfer)>,
}

/// Why a benchmark loop returned.
enum BenchExit {
    /// `BenchEnd` answered.
    Ended,
    /// A request that ends the benchmark and must be handled outside it.
    Redispatch(Vec<u8>),
}

pub struct Session<'s> {
    conn: &'s mut Conn,
    shared: &'s Shared,
    state: &'s mut AgentState,
}

impl<'s> Session<'s> {
    pub fn new(conn: &'s mut Conn, shared: &'s Shared, state: &'s mut AgentState) -> Self {
        Session {
            conn,
            shared,
            state,
        }
    }

    /// Serves requests, `first` (a frame already read) first, until the
    /// connection ends.
    pub fn run(mut self, first: Option<Vec<u8>>) -> Result<(), ConnEnd> {
        let result = self.serve(first);
        // A dropped connection abandons its upload (the active artifact stays).
        self.state.store.abort();
        result
    }

    fn serve(&mut self, first: Option<Vec<u8>>) -> Result<(), ConnEnd> {
        let mut pending = first;
        loop {
            let mut raw = match pending.take() {
                Some(r) => r,
                None => self.conn.next_frame()?,
            };
            let Some((seq, msg)) = self.conn.request(&mut raw)? else {
                continue;
            };
            let kind = msg.kind();
            match msg {
                HostMsg::BenchStart {
                    plan_id,
                    want_outputs,
                    engine,
                    ..
                } => match self.bench(seq, plan_id, want_outputs, engine) {
                    Ok(Some(next)) => pending = Some(next),
                    Ok(None) => {}
                    Err(end) => return Err(end),
                },
                msg => {
                    let answer = self.dispatch(seq, msg);
                    self.conn.answer(seq, kind, &answer)?;
                    if let Some(why) = refused(&answer) {
                        return Err(ConnEnd::Refused(why));
                    }
                }
            }
        }
    }

    fn hello(&self, version: u16) -> Result<DeviceMsg<'s>, Reject> {
        if version != PROTOCOL_VERSION {
            return Err(Reject::new(
                ErrorCode::VersionMismatch,
                u32::from(PROTOCOL_VERSION),
            ));
        }
        let id = &self.shared.identity;
        let config = &self.shared.config;
        Ok(DeviceMsg::DeviceHello(DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            engine_version: edgefit_engine::FORMAT_VERSION,
            board: &id.board,
            core: &id.core,
            clock_hz: id.clock_hz,
            ram_bytes: id.ram_bytes,
            flash_bytes: id.storage_bytes,
            plan_slot_bytes: self.state.store.max_bytes(),
            plan_slots: 2,
            arena_bytes: config.max_arena_bytes,
            power_sensor: self.state.power.kind(),
            timing: TimingSource::MonotonicNs,
            tick_hz: 1_000_000_000,
            active_plan: self.state.active.as_ref().map(|a| a.info),
            engines: id.engines,
            accelerator: &id.accelerator.description,
        }))
    }

    /// Answers one request outside a benchmark.
    fn dispatch(&mut self, seq: u32, msg: HostMsg<'_>) -> DeviceMsg<'s> {
        let ack = DeviceMsg::Ack { seq };
        let kind = msg.kind();
        let r = match msg {
            HostMsg::Hello { protocol_version } => self.hello(protocol_version),
            HostMsg::Ping { nonce } => Ok(DeviceMsg::Pong { nonce }),
            HostMsg::PlanBegin {
                total_size, crc32, ..
            } => self.state.store.begin(total_size, crc32).map(|()| ack),
            HostMsg::PlanChunk {
                index,
                offset,
                data,
            } => self.state.store.chunk(index, offset, data).map(|()| ack),
            HostMsg::PlanCommit => self.commit().map(DeviceMsg::PlanStored),
            HostMsg::PlanAbort | HostMsg::Reset => {
                self.state.store.abort();
                Ok(ack)
            }
            HostMsg::Auth { token } => match &self.shared.config.token {
                Some(t) if !token_matches(token, t) => Err(Reject::new(ErrorCode::Unauthorized, 1)),
                _ => Ok(ack),
            },
            HostMsg::BenchStart { .. }
            | HostMsg::Sample { .. }
            | HostMsg::SampleChunk { .. }
            | HostMsg::SampleRun { .. }
            | HostMsg::BenchEnd => Err(Reject::unexpected(kind)),
        };
        r.unwrap_or_else(|e| e.to_msg(seq))
    }

    /// Checks the upload, loads it in its engine, installs it.
    fn commit(&mut self) -> Result<PlanInfo, Reject> {
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

    /// `BenchStart`: picks the engine, answers, and serves the benchmark.
    fn bench(
        &mut self,
        seq: u32,
        plan_id: Option<u32>,
        want_outputs: bool,
        engine: Option<EngineKind>,
    ) -> Result<Option<Vec<u8>>, ConnEnd> {
        let Some(active) = self.state.active.clone() else {
            self.conn
                .answer(seq, 6, &Reject::new(ErrorCode::NoPlan, 0).to_msg(seq))?;
            return Ok(None);
        };
        if plan_id.is_some_and(|id| id != active.info.plan_id) {
            let r = Reject::new(ErrorCode::PlanMismatch, active.info.plan_id);
            self.conn.answer(seq, 6, &r.to_msg(seq))?;
            return Ok(None);
        }
        self.state.store.abort();
        match active.kind {
            ArtifactKind::Plan => {
                if !matches!(engine, None | Some(EngineKind::Native)) {
                    return self.refuse_engine(seq, engine);
                }
                let max_arena = self.shared.config.max_arena_bytes as usize;
                let mut runner = match NativeRunner::new(&active.bytes, max_arena) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("edgefit-agent: cannot run the active plan: {e}");
                        self.conn.answer(seq, 6, &bad_plan(e).to_msg(seq))?;
                        return Ok(None);
                    }
                };
                self.serve_bench(seq, &active, &mut runner, want_outputs)
            }
            ArtifactKind::Tract(_) => {
                let cuda = self.shared.identity.accelerator.cuda;
                let wanted = match engine {
                    None if cuda => EngineKind::TractCuda,
                    None => EngineKind::TractCpu,
                    Some(EngineKind::TractCuda) if !cuda => return self.refuse_engine(seq, engine),
                    Some(EngineKind::Native) => return self.refuse_engine(seq, engine),
                    Some(e) => e,
                };
                let crc = active.info.crc32;
                let cached = self.state.tract.take();
                let loaded = match cached {
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
                let Ok(mut runner) = loaded else {
                    return self.refuse_engine(seq, Some(wanted));
                };
                let r = self.serve_bench(seq, &active, runner.as_mut(), want_outputs);
                self.state.tract = Some((crc, runner));
                r
            }
        }
    }

    fn refuse_engine(
        &mut self,
        seq: u32,
        engine: Option<EngineKind>,
    ) -> Result<Option<Vec<u8>>, ConnEnd> {
        let detail = engine.map_or(u32::MAX, |e| e as u32);
        let r = Reject::new(ErrorCode::EngineUnavailable, detail);
        self.conn.answer(seq, 6, &r.to_msg(seq))?;
        Ok(None)
    }

    /// Answers `BenchStart` and serves samples until the benchmark ends.
    fn serve_bench(
        &mut self,
        seq: u32,
        active: &Stored,
        runner: &mut dyn Runner,
        want_outputs: bool,
    ) -> Result<Option<Vec<u8>>, ConnEnd> {
        let rss_reset = system::reset_peak_rss();
        let mut bench = Bench {
            plan_id: active.info.plan_id,
            slot: active.info.slot,
            want_outputs,
            input_len: edgefit_proto::sat_u32(runner.input_mut().len()),
            tally: BenchTally::default(),
            idle_power_mw: self.state.power.power_mw(),
            rss_reset,
            part: None,
        };
        self.conn.answer(seq, 6, &DeviceMsg::Ack { seq })?;
        match self.bench_loop(&mut bench, runner)? {
            BenchExit::Ended => Ok(None),
            BenchExit::Redispatch(raw) => Ok(Some(raw)),
        }
    }

    fn bench_loop(
        &mut self,
        bench: &mut Bench,
        runner: &mut dyn Runner,
    ) -> Result<BenchExit, ConnEnd> {
        loop {
            let mut raw = self.conn.next_frame()?;
            // Kept whole: a request that ends the benchmark is handled again outside it.
            let keep = raw.clone();
            let Some((seq, msg)) = self.conn.request(&mut raw)? else {
                continue;
            };
            let kind = msg.kind();
            let ack = DeviceMsg::Ack { seq };
            let r = match msg {
                HostMsg::Sample { index, data } => {
                    bench.part = None;
                    if data.len() != bench.input_len as usize {
                        Err(Reject::new(ErrorCode::BadSample, bench.input_len))
                    } else {
                        runner.input_mut().copy_from_slice(data);
                        self.infer(bench, runner, index)
                    }
                }
                HostMsg::SampleChunk {
                    index,
                    offset,
                    data,
                } => sample_chunk(bench, runner, index, offset, data).map(|()| ack),
                HostMsg::SampleRun { index, total_len } => match bench.part.take() {
                    Some((i, xfer)) if i == index && total_len == bench.input_len => {
                        xfer.finish().and_then(|_| self.infer(bench, runner, index))
                    }
                    _ => Err(Reject::new(ErrorCode::BadSample, bench.input_len)),
                },
                HostMsg::BenchEnd => {
                    let s = self.summary(bench, runner);
                    self.conn.answer(seq, kind, &s)?;
                    return Ok(BenchExit::Ended);
                }
                HostMsg::BenchStart { .. } | HostMsg::PlanBegin { .. } | HostMsg::Reset => {
                    return Ok(BenchExit::Redispatch(keep));
                }
                // No upload can be open during a benchmark.
                HostMsg::PlanChunk { .. } | HostMsg::PlanCommit => Err(Reject::unexpected(kind)),
                msg @ (HostMsg::Hello { .. }
                | HostMsg::Ping { .. }
                | HostMsg::PlanAbort
                | HostMsg::Auth { .. }) => {
                    let answer = self.dispatch(seq, msg);
                    self.conn.answer(seq, kind, &answer)?;
                    if let Some(why) = refused(&answer) {
                        return Err(ConnEnd::Refused(why));
                    }
                    continue;
                }
            };
            match r {
                Ok(answer) => self.conn.answer(seq, kind, &answer)?,
                Err(e) => self.conn.answer(seq, kind, &e.to_msg(seq))?,
            }
        }
    }

    /// Runs the input now in the runner, timed, and makes its record.
    fn infer<'r>(
        &mut self,
        bench: &mut Bench,
        runner: &'r mut dyn Runner,
        index: u32,
    ) -> Result<DeviceMsg<'r>, Reject> {
        let mark = self.state.power.mark();
        let t0 = Instant::now();
        let run = runner.run();
        let elapsed = t0.elapsed();
        let energy = self.state.power.energy_uj(mark, elapsed);
        if let Err(e) = run {
            eprintln!("edgefit-agent: sample {index}: {e}");
            return Err(Reject::new(ErrorCode::Internal, 3));
        }
        let ticks = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        bench.tally.record(ticks, energy);
        let out = runner.output();
        Ok(DeviceMsg::Record(BenchRecord {
            sample: index,
            predicted: runner.predicted(),
            ticks,
            outputs: (bench.want_outputs && out.len() <= MAX_CHUNK).then_some(out),
            energy_uj: energy,
        }))
    }

    fn summary(&mut self, bench: &Bench, runner: &dyn Runner) -> DeviceMsg<'static> {
        let t = &bench.tally;
        DeviceMsg::BenchSummary(BenchSummary {
            plan_id: bench.plan_id,
            slot: bench.slot,
            samples: t.samples,
            timing: TimingSource::MonotonicNs,
            tick_hz: 1_000_000_000,
            clock_hz: self.shared.identity.clock_hz,
            total_ticks: t.total_ticks,
            min_ticks: t.min_ticks,
            max_ticks: t.max_ticks,
            arena_bytes_used: runner.arena_bytes(),
            stack_high_water_bytes: 0,
            power_sensor: self.state.power.kind(),
            energy_uj: t.energy_measured.then_some(t.energy_uj),
            avg_power_mw: t.avg_power_mw(1_000_000_000),
            idle_power_mw: bench.idle_power_mw,
            engine: runner.kind(),
            peak_rss_bytes: if bench.rss_reset {
                system::peak_rss_bytes()
            } else {
                None
            },
            gpu_memory_bytes: runner.gpu_memory_bytes(),
        })
    }
}

/// A part of a sample larger than a frame, written straight into the
/// engine's input buffer.
fn sample_chunk(
    bench: &mut Bench,
    runner: &mut dyn Runner,
    index: u32,
    offset: u32,
    data: &[u8],
) -> Result<(), Reject> {
    if offset == 0 {
        bench.part = Some((index, Transfer::sample(bench.input_len)));
    }
    let (i, xfer) = bench
        .part
        .as_mut()
        .ok_or(Reject::new(ErrorCode::ChunkOutOfOrder, 0))?;
    if *i != index {
        return Err(Reject::new(ErrorCode::BadSample, bench.input_len));
    }
    xfer.accept(index, offset, data)?;
    let start = offset as usize;
    runner
        .input_mut()
        .get_mut(start..start + data.len())
        .ok_or(Reject::new(ErrorCode::Internal, 4))?
        .copy_from_slice(data);
    Ok(())
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
