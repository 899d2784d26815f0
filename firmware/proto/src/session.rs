//! The device side of a session, one state machine for every device: the
//! Cortex-M firmware (NOR-flash slots, the DSP engine, a UART) and the Linux
//! agent (files, the native engine or tract, TCP) both drive [`Session`],
//! each supplying what differs through [`Device`], [`Bench`] and [`Link`].
//!
//! States: idle (an upload may be open in the device's store) and
//! benchmarking (after an accepted `BenchStart`, until `BenchEnd`, `Reset`,
//! `PlanBegin` or another `BenchStart`). Every request gets exactly one
//! answer; a request the state does not take gets `UnexpectedMessage` with
//! its kind.

use crate::{
    BenchRecord, BenchSummary, BenchTally, DeviceInfo, DeviceMsg, EngineKind, ErrorCode, HostMsg,
    PlanInfo, PowerSensorKind, Reject, TimingSource, Transfer, MAX_CHUNK,
};

/// `Internal` error details, the same on every device.
pub mod internal_detail {
    /// The engine found the arena too small while running.
    pub const EXEC_ARENA: u32 = 1;
    /// The engine was asked for an op that does not exist.
    pub const EXEC_NO_SUCH_OP: u32 = 2;
    /// A kernel (or the engine as a whole) failed while running.
    pub const EXEC_KERNEL: u32 = 3;
    /// The input or output tensor could not be reached in the arena.
    pub const TENSOR: u32 = 4;
    /// An answer could not be encoded.
    pub const ENCODE: u32 = 5;
}

/// What a device says when it accepts a `BenchStart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchStarted {
    /// The active plan's id.
    pub plan_id: u32,
    /// Its slot.
    pub slot: u8,
    /// Board power before the first sample, where a sensor reads it.
    pub idle_power_mw: Option<u32>,
}

/// One timed inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inference {
    /// Its duration, in the device's ticks.
    pub ticks: u64,
    /// Its energy, where a sensor measured it.
    pub energy_uj: Option<u32>,
}

/// What a benchmark's summary says about the device and its engine, beside
/// the running totals the session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunFacts {
    /// Where the ticks come from.
    pub timing: TimingSource,
    /// Ticks per second.
    pub tick_hz: u64,
    /// Core clock.
    pub clock_hz: u32,
    /// Arena bytes the plan used.
    pub arena_bytes_used: u32,
    /// Deepest stack seen (0 where not measured).
    pub stack_high_water_bytes: u32,
    /// The power sensor.
    pub power_sensor: PowerSensorKind,
    /// The engine that ran the samples.
    pub engine: EngineKind,
    /// Peak resident set (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// Accelerator memory (Linux with a GPU).
    pub gpu_memory_bytes: Option<u64>,
}

/// A device's plan store, identity and engines, outside a benchmark.
pub trait Device {
    /// The active plan loaded to run, for one benchmark (or, on a device
    /// whose link returns between requests, for the requests of one
    /// [`Session::serve`] call).
    type Bench<'d>: Bench
    where
        Self: 'd;

    /// The answer to `Hello` (the version is checked by the session).
    fn hello(&self) -> DeviceInfo<'_>;
    /// `Auth`: whether `token` opens this device.
    fn auth(&mut self, token: &[u8]) -> Result<(), Reject>;
    /// `PlanBegin`: opens an upload (any open one is dropped).
    fn plan_begin(&mut self, plan_id: u32, total_size: u32, crc32: u32) -> Result<(), Reject>;
    /// `PlanChunk`: stores a part of the upload.
    fn plan_chunk(&mut self, index: u32, offset: u32, data: &[u8]) -> Result<(), Reject>;
    /// `PlanCommit`: checks the whole upload and makes it the active plan.
    fn plan_commit(&mut self) -> Result<PlanInfo, Reject>;
    /// Drops an open upload; the active plan stays.
    fn plan_abort(&mut self);
    /// `BenchStart`: checks that the active plan (`plan_id` when given) can
    /// run on `engine` (the device's choice when `None`); drops an open
    /// upload when it can.
    fn bench_start(
        &mut self,
        plan_id: Option<u32>,
        engine: Option<EngineKind>,
    ) -> Result<BenchStarted, Reject>;
    /// Loads the active plan for the benchmark in progress.
    fn bench(&mut self) -> Result<Self::Bench<'_>, Reject>;
}

/// The active plan loaded to run. During a benchmark the device answers
/// `Hello` and `Auth` through it too.
pub trait Bench {
    /// As [`Device::hello`].
    fn hello(&self) -> DeviceInfo<'_>;
    /// As [`Device::auth`].
    fn auth(&mut self, token: &[u8]) -> Result<(), Reject>;
    /// The plan's input tensor, where a sample's bytes go.
    fn input(&mut self) -> Result<&mut [u8], Reject>;
    /// Runs the input now in place, timed.
    fn run(&mut self) -> Result<Inference, Reject>;
    /// The last run's output bytes and their arg-max.
    fn output(&self) -> Result<(&[u8], u16), Reject>;
    /// What the summary says about the device and the engine.
    fn facts(&mut self) -> RunFacts;
}

/// What [`Link::next`] got.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A request not answered yet (unreadable frames and retransmissions
    /// are the link's to answer, see [`Answers`](crate::Answers)).
    Request {
        /// The host's frame number.
        seq: u32,
        /// The request.
        msg: HostMsg<'a>,
    },
    /// The link answered a frame itself (a retransmission, an unreadable
    /// frame) or read a lone delimiter: ask again.
    Handled,
    /// Nothing more for now (a link that does not block).
    Nothing,
    /// The link left edgefit's protocol (the firmware's MLPerf Tiny DUT
    /// mode): the session is over.
    Left,
}

/// Where requests come from and answers go.
pub trait Link {
    /// Why the link failed (the session ends with it).
    type Error;
    /// The next request.
    fn next(&mut self) -> Result<Incoming<'_>, Self::Error>;
    /// Sends the answer to request `(seq, kind)`.
    fn answer(&mut self, seq: u32, kind: u8, msg: &DeviceMsg<'_>) -> Result<(), Self::Error>;
}

/// Why [`Session::serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The link has nothing more now; call again when it has.
    Idle,
    /// The link left the protocol ([`Incoming::Left`]); the session was
    /// reset.
    Left,
}

/// A benchmark in progress.
#[derive(Debug, Clone)]
struct BenchState {
    plan_id: u32,
    slot: u8,
    want_outputs: bool,
    /// Bytes of the plan's input tensor.
    input_len: u32,
    idle_power_mw: Option<u32>,
    tally: BenchTally,
    /// A sample arriving in `SampleChunk`s: its index and transfer.
    part: Option<(u32, Transfer)>,
}

/// What [`Session::serve`] does after a request.
enum Next {
    /// Reads the next request.
    Continue,
    /// Answers this request outside the benchmark it ended (it may need
    /// what the loaded plan borrows: the flash, for `PlanBegin`).
    Redispatch(u32, HostMsg<'static>),
    /// Returns.
    Return(Served),
}

/// What a request outside a benchmark leads to.
enum Step<'d> {
    /// This answer to request `(seq, kind)`.
    Answer(u32, u8, DeviceMsg<'d>),
    /// An accepted `BenchStart`.
    StartBench {
        seq: u32,
        started: BenchStarted,
        want_outputs: bool,
    },
    /// The link returned.
    Return(Served),
    /// The link handled what it read.
    Continue,
}

/// One host's session with a device. Holds only the protocol's state (the
/// benchmark's running totals and a chunked sample's progress): about 100
/// bytes.
#[derive(Debug, Default)]
pub struct Session {
    bench: Option<BenchState>,
}

impl Session {
    /// Idle, no benchmark.
    pub const fn new() -> Self {
        Self { bench: None }
    }

    /// Whether a benchmark is in progress.
    pub fn benchmarking(&self) -> bool {
        self.bench.is_some()
    }

    /// Ends a benchmark and an upload in progress (the host's session is
    /// over).
    pub fn reset<D: Device>(&mut self, dev: &mut D) {
        self.bench = None;
        dev.plan_abort();
    }

    /// Answers requests until the link has nothing more ([`Served::Idle`])
    /// or leaves the protocol ([`Served::Left`]), or fails (its error).
    ///
    /// During a benchmark the active plan is loaded once per call
    /// ([`Device::bench`]), not once per sample.
    pub fn serve<L: Link, D: Device>(
        &mut self,
        link: &mut L,
        dev: &mut D,
    ) -> Result<Served, L::Error> {
        let mut pending: Option<(u32, HostMsg<'static>)> = None;
        loop {
            let next = if self.bench.is_some() && pending.is_none() {
                match dev.bench() {
                    Ok(mut bench) => self.bench_loop(link, &mut bench)?,
                    // The plan went away (it cannot, short of a flash
                    // fault): the benchmark is dropped.
                    Err(_) => {
                        self.bench = None;
                        Next::Continue
                    }
                }
            } else {
                let step = match pending.take() {
                    Some((seq, msg)) => self.idle_step(dev, seq, msg),
                    None => match link.next()? {
                        Incoming::Request { seq, msg } => self.idle_step(dev, seq, msg),
                        Incoming::Handled => Step::Continue,
                        Incoming::Nothing => Step::Return(Served::Idle),
                        Incoming::Left => Step::Return(Served::Left),
                    },
                };
                match step {
                    Step::Answer(seq, kind, answer) => {
                        link.answer(seq, kind, &answer)?;
                        Next::Continue
                    }
                    Step::Return(s) => Next::Return(s),
                    Step::Continue => Next::Continue,
                    Step::StartBench {
                        seq,
                        started,
                        want_outputs,
                    } => self.start_bench(link, dev, seq, started, want_outputs)?,
                }
            };
            match next {
                Next::Continue => {}
                Next::Redispatch(seq, msg) => pending = Some((seq, msg)),
                Next::Return(Served::Left) => {
                    self.reset(dev);
                    return Ok(Served::Left);
                }
                Next::Return(s) => return Ok(s),
            }
        }
    }

    /// A `BenchStart` the device accepted: loads the plan (a plan that
    /// cannot run is refused in the answer), answers, and serves the
    /// samples that follow with the plan loaded.
    fn start_bench<L: Link, D: Device>(
        &mut self,
        link: &mut L,
        dev: &mut D,
        seq: u32,
        started: BenchStarted,
        want_outputs: bool,
    ) -> Result<Next, L::Error> {
        const KIND: u8 = 6;
        let mut bench = match dev.bench() {
            Ok(b) => b,
            Err(r) => {
                link.answer(seq, KIND, &r.to_msg(seq))?;
                return Ok(Next::Continue);
            }
        };
        let input_len = match bench.input() {
            Ok(i) => crate::sat_u32(i.len()),
            Err(r) => {
                link.answer(seq, KIND, &r.to_msg(seq))?;
                return Ok(Next::Continue);
            }
        };
        self.bench = Some(BenchState {
            plan_id: started.plan_id,
            slot: started.slot,
            want_outputs,
            input_len,
            idle_power_mw: started.idle_power_mw,
            tally: BenchTally::default(),
            part: None,
        });
        link.answer(seq, KIND, &DeviceMsg::Ack { seq })?;
        self.bench_loop(link, &mut bench)
    }

    /// One request outside a benchmark: its answer, or the start of one.
    fn idle_step<'d, D: Device>(&mut self, dev: &'d mut D, seq: u32, msg: HostMsg<'_>) -> Step<'d> {
        let kind = msg.kind();
        let ack = DeviceMsg::Ack { seq };
        let r = match msg {
            HostMsg::Hello { protocol_version } => {
                check_version(protocol_version).map(|()| DeviceMsg::DeviceHello(dev.hello()))
            }
            HostMsg::Ping { nonce } => Ok(DeviceMsg::Pong { nonce }),
            HostMsg::PlanBegin {
                plan_id,
                total_size,
                crc32,
            } => {
                self.bench = None;
                dev.plan_begin(plan_id, total_size, crc32).map(|()| ack)
            }
            HostMsg::PlanChunk {
                index,
                offset,
                data,
            } => dev.plan_chunk(index, offset, data).map(|()| ack),
            HostMsg::PlanCommit => dev.plan_commit().map(DeviceMsg::PlanStored),
            HostMsg::PlanAbort => {
                dev.plan_abort();
                Ok(ack)
            }
            HostMsg::Reset => {
                self.reset(dev);
                Ok(ack)
            }
            HostMsg::Auth { token } => dev.auth(token).map(|()| ack),
            HostMsg::BenchStart {
                plan_id,
                want_outputs,
                engine,
                ..
            } => {
                self.bench = None;
                match dev.bench_start(plan_id, engine) {
                    Ok(started) => {
                        return Step::StartBench {
                            seq,
                            started,
                            want_outputs,
                        }
                    }
                    Err(r) => Err(r),
                }
            }
            HostMsg::Sample { .. }
            | HostMsg::SampleChunk { .. }
            | HostMsg::SampleRun { .. }
            | HostMsg::BenchEnd => Err(Reject::unexpected(kind)),
        };
        Step::Answer(seq, kind, r.unwrap_or_else(|e| e.to_msg(seq)))
    }

    /// Serves requests during a benchmark with its plan loaded.
    fn bench_loop<L: Link, B: Bench>(
        &mut self,
        link: &mut L,
        bench: &mut B,
    ) -> Result<Next, L::Error> {
        loop {
            let (seq, msg) = match link.next()? {
                Incoming::Request { seq, msg } => (seq, msg),
                Incoming::Handled => continue,
                Incoming::Nothing => return Ok(Next::Return(Served::Idle)),
                Incoming::Left => return Ok(Next::Return(Served::Left)),
            };
            let kind = msg.kind();
            let ack = DeviceMsg::Ack { seq };
            let Some(state) = self.bench.as_mut() else {
                return Ok(Next::Continue);
            };
            let r = match msg {
                HostMsg::PlanBegin {
                    plan_id,
                    total_size,
                    crc32,
                } => {
                    let msg = HostMsg::PlanBegin {
                        plan_id,
                        total_size,
                        crc32,
                    };
                    return Ok(Next::Redispatch(seq, msg));
                }
                HostMsg::BenchStart {
                    plan_id,
                    samples,
                    want_outputs,
                    engine,
                } => {
                    let msg = HostMsg::BenchStart {
                        plan_id,
                        samples,
                        want_outputs,
                        engine,
                    };
                    return Ok(Next::Redispatch(seq, msg));
                }
                HostMsg::Reset => return Ok(Next::Redispatch(seq, HostMsg::Reset)),
                HostMsg::Hello { protocol_version } => {
                    check_version(protocol_version).map(|()| DeviceMsg::DeviceHello(bench.hello()))
                }
                HostMsg::Ping { nonce } => Ok(DeviceMsg::Pong { nonce }),
                HostMsg::Auth { token } => bench.auth(token).map(|()| ack),
                // No upload can be open during a benchmark.
                HostMsg::PlanChunk { .. } | HostMsg::PlanCommit => Err(Reject::unexpected(kind)),
                HostMsg::PlanAbort => Ok(ack),
                HostMsg::Sample { index, data } => sample(state, bench, index, data),
                HostMsg::SampleChunk {
                    index,
                    offset,
                    data,
                } => sample_chunk(state, bench, index, offset, data).map(|()| ack),
                HostMsg::SampleRun { index, total_len } => {
                    sample_run(state, bench, index, total_len)
                }
                HostMsg::BenchEnd => {
                    let summary = summary(state, bench.facts());
                    self.bench = None;
                    link.answer(seq, kind, &summary)?;
                    return Ok(Next::Continue);
                }
            };
            let answer = r.unwrap_or_else(|e| e.to_msg(seq));
            link.answer(seq, kind, &answer)?;
        }
    }
}

/// A host of another protocol version is told this one.
fn check_version(version: u16) -> Result<(), Reject> {
    if version == crate::PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Reject::new(
            ErrorCode::VersionMismatch,
            u32::from(crate::PROTOCOL_VERSION),
        ))
    }
}

/// A whole sample in one frame: copied into the input, run.
fn sample<'b, B: Bench>(
    state: &mut BenchState,
    bench: &'b mut B,
    index: u32,
    data: &[u8],
) -> Result<DeviceMsg<'b>, Reject> {
    state.part = None;
    if data.len() != state.input_len as usize {
        return Err(Reject::new(ErrorCode::BadSample, state.input_len));
    }
    let input = bench.input()?;
    if input.len() != data.len() {
        return Err(Reject::new(ErrorCode::Internal, internal_detail::TENSOR));
    }
    input.copy_from_slice(data);
    infer(state, bench, index)
}

/// A part of a sample larger than a frame, written straight into the
/// input.
fn sample_chunk<B: Bench>(
    state: &mut BenchState,
    bench: &mut B,
    index: u32,
    offset: u32,
    data: &[u8],
) -> Result<(), Reject> {
    let input_len = state.input_len;
    if offset == 0 {
        state.part = Some((index, Transfer::sample(input_len)));
    }
    let (i, xfer) = state
        .part
        .as_mut()
        .ok_or(Reject::new(ErrorCode::ChunkOutOfOrder, 0))?;
    if *i != index {
        return Err(Reject::new(ErrorCode::BadSample, input_len));
    }
    xfer.accept(index, offset, data)?;
    let start = offset as usize;
    bench
        .input()?
        .get_mut(start..start + data.len())
        .ok_or(Reject::new(ErrorCode::Internal, internal_detail::TENSOR))?
        .copy_from_slice(data);
    Ok(())
}

/// Runs a sample whose parts all arrived.
fn sample_run<'b, B: Bench>(
    state: &mut BenchState,
    bench: &'b mut B,
    index: u32,
    total_len: u32,
) -> Result<DeviceMsg<'b>, Reject> {
    let wrong = Reject::new(ErrorCode::BadSample, state.input_len);
    let (i, xfer) = state.part.take().ok_or(wrong)?;
    if i != index || total_len != state.input_len {
        return Err(wrong);
    }
    xfer.finish()?;
    infer(state, bench, index)
}

/// Runs the input now in place, timed, records it, and makes its record.
fn infer<'b, B: Bench>(
    state: &mut BenchState,
    bench: &'b mut B,
    index: u32,
) -> Result<DeviceMsg<'b>, Reject> {
    let run = bench.run()?;
    state.tally.record(run.ticks, run.energy_uj);
    let (out, predicted) = bench.output()?;
    Ok(DeviceMsg::Record(BenchRecord {
        sample: index,
        predicted,
        ticks: run.ticks,
        outputs: (state.want_outputs && out.len() <= MAX_CHUNK).then_some(out),
        energy_uj: run.energy_uj,
    }))
}

/// `BenchEnd`'s answer: the running totals and the device's facts.
fn summary(state: &BenchState, facts: RunFacts) -> DeviceMsg<'static> {
    let t = &state.tally;
    DeviceMsg::BenchSummary(BenchSummary {
        plan_id: state.plan_id,
        slot: state.slot,
        samples: t.samples,
        timing: facts.timing,
        tick_hz: facts.tick_hz,
        clock_hz: facts.clock_hz,
        total_ticks: t.total_ticks,
        min_ticks: t.min_ticks,
        max_ticks: t.max_ticks,
        arena_bytes_used: facts.arena_bytes_used,
        stack_high_water_bytes: facts.stack_high_water_bytes,
        power_sensor: facts.power_sensor,
        energy_uj: t.energy_measured.then_some(t.energy_uj),
        avg_power_mw: t.avg_power_mw(facts.tick_hz),
        idle_power_mw: state.idle_power_mw,
        engine: facts.engine,
        peak_rss_bytes: facts.peak_rss_bytes,
        gpu_memory_bytes: facts.gpu_memory_bytes,
    })
}
