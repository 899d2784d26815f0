//! The firmware application: the link (edgefit's frames, or MLPerf Tiny's
//! DUT commands), the plan store and the engine, driving the protocol's one
//! session state machine ([`edgefit_proto::Session`]).

use edgefit_engine::{argmax, Engine, ExecError, Plan, FORMAT_VERSION};
use edgefit_proto::{
    internal_detail, Accepted, Answers, BenchStarted, DeviceInfo, DeviceMsg, EngineKind, ErrorCode,
    FrameReader, Incoming, Inference, PlanInfo, PowerSensorKind, ProtoError, Reject, RunFacts,
    Served, Session, ERROR_FRAME, MAX_FRAME,
};

use crate::bench::{energy_uj, mean_power};
use crate::diag::{self, diag};
use crate::dut::Dut;
use crate::slots::{bad_plan, Geometry, Store};
use crate::{
    BoardInfo, Clock, LapTimestamps, MappedFlash, PowerMeter, StackMeter, Timestamp, TimestampPin,
};

/// Bytes read from the link per `read` call (staged, then fed to the frame
/// reader up to the end of a frame).
const STAGE: usize = 64;

fn exec_error(e: ExecError) -> Reject {
    let detail = match e {
        ExecError::ArenaTooSmall { .. } => internal_detail::EXEC_ARENA,
        ExecError::NoSuchOp { .. } => internal_detail::EXEC_NO_SUCH_OP,
        ExecError::Internal { .. } => internal_detail::EXEC_KERNEL,
    };
    Reject::new(ErrorCode::Internal, detail)
}

/// The firmware has one engine.
fn native_only(engine: Option<EngineKind>) -> Result<(), Reject> {
    match engine {
        None | Some(EngineKind::Native) => Ok(()),
        Some(other) => Err(Reject::new(ErrorCode::EngineUnavailable, other as u32)),
    }
}

/// What the link gave.
enum Got<'b> {
    /// `read` returned no bytes.
    Nothing,
    /// A lone delimiter (no frame).
    Empty,
    /// A complete frame, to decode in place.
    Frame(&'b mut [u8]),
    /// A frame too long for the reader.
    Bad(ProtoError),
    /// A `%`-terminated MLPerf Tiny DUT command, in [`Rx::command`].
    Command,
}

/// Which protocol the link speaks now (see [`crate::dut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// edgefit's frames.
    Frames,
    /// MLPerf Tiny DUT text commands.
    Dut,
}

/// Longest DUT command (the ULPMark-ML command buffer).
pub const COMMAND_MAX: usize = 80;

/// The printable ASCII bytes since the last frame delimiter or `%`: a DUT
/// command in the making. An edgefit frame is never one: its second byte is
/// the protocol version (2), which is not printable.
struct Text {
    buf: [u8; COMMAND_MAX],
    len: usize,
    /// Every byte so far was printable.
    printable: bool,
    /// More than `COMMAND_MAX` bytes arrived.
    overflow: bool,
}

impl Text {
    const fn new() -> Self {
        Self {
            buf: [0; COMMAND_MAX],
            len: 0,
            printable: true,
            overflow: false,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.printable = true;
        self.overflow = false;
    }

    fn push(&mut self, b: u8) {
        if !(0x20..=0x7e).contains(&b) {
            self.printable = false;
        }
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Frame mode: keeps `bytes` while they may still be a command. A frame
    /// stops being one at its second byte, so frames cost a check per
    /// segment, not a copy per byte.
    fn sniff(&mut self, bytes: &[u8]) {
        if self.printable {
            for &b in bytes {
                self.push(b);
            }
        }
    }

    /// Whether the bytes so far are a command's (not empty, all printable).
    fn is_command(&self) -> bool {
        self.printable && (self.len > 0 || self.overflow)
    }
}

/// Receive side: the frame reader, the DUT command text and a small staging
/// buffer.
///
/// Mode switches, both ways without a rebuild or reset: in frame mode, a `%`
/// that ends a non-empty run of printable bytes (since the last delimiter)
/// is a DUT command and switches to DUT mode; in DUT mode a `0x00` (the
/// delimiter the host sends before its first frame) or any other byte that
/// cannot be in a command (control bytes other than CR/LF/tab, bytes above
/// 0x7E) switches back to frames, the bytes since the last `%` going to the
/// frame reader.
struct Rx {
    reader: FrameReader<MAX_FRAME>,
    text: Text,
    mode: Mode,
    /// The last DUT-mode `%` ended an empty command: it may be a frame's first
    /// byte, kept in case binary bytes follow.
    lone_percent: bool,
    /// Set when frame mode switched to DUT mode (a new runner session).
    entered_dut: bool,
    /// `text` holds the command returned last; cleared on the next call.
    command_ready: bool,
    stage: [u8; STAGE],
    pos: usize,
    len: usize,
}

impl Rx {
    fn new() -> Self {
        Self {
            reader: FrameReader::new(),
            text: Text::new(),
            mode: Mode::Frames,
            lone_percent: false,
            entered_dut: false,
            command_ready: false,
            stage: [0; STAGE],
            pos: 0,
            len: 0,
        }
    }

    /// The command `next` returned [`Got::Command`] for (its bytes, and
    /// whether it was longer than [`COMMAND_MAX`]).
    pub(crate) fn command(&self) -> (&[u8], bool) {
        (&self.text.buf[..self.text.len], self.text.overflow)
    }

    /// Reads until a frame or a DUT command ends (or the link has nothing
    /// more).
    fn next<L: embedded_io::Read>(&mut self, link: &mut L) -> Result<Got<'_>, L::Error> {
        if self.command_ready {
            // The command returned last time is done with.
            self.command_ready = false;
            self.text.clear();
        }
        loop {
            if self.pos >= self.len {
                let n = link.read(&mut self.stage)?;
                if n == 0 {
                    return Ok(Got::Nothing);
                }
                self.pos = 0;
                self.len = n.min(STAGE);
            }
            if self.mode == Mode::Dut {
                let b = self.stage[self.pos];
                match b {
                    b'%' => {
                        self.pos += 1;
                        if self.text.len == 0 && !self.text.overflow {
                            self.lone_percent = true;
                            continue;
                        }
                        self.lone_percent = false;
                        self.command_ready = true;
                        return Ok(Got::Command);
                    }
                    b'\r' | b'\n' | b'\t' => {
                        self.pos += 1;
                        self.lone_percent = false;
                    }
                    0x20..=0x7e => {
                        self.pos += 1;
                        self.lone_percent = false;
                        self.text.push(b);
                    }
                    _ => {
                        // edgefit traffic: back to frames. The byte itself is
                        // read again in frame mode.
                        self.mode = Mode::Frames;
                        self.reader.reset();
                        if b != 0 {
                            if self.lone_percent {
                                let _ = self.reader.push(b'%');
                            }
                            let _ = self.reader.feed(&self.text.buf[..self.text.len]);
                        }
                        self.lone_percent = false;
                        self.text.clear();
                    }
                }
                continue;
            }
            let seg = &self.stage[self.pos..self.len];
            let Some(stop) = seg.iter().position(|&b| b == 0 || b == b'%') else {
                self.text.sniff(seg);
                let _ = self.reader.feed(seg);
                self.pos = self.len;
                continue;
            };
            self.text.sniff(&seg[..stop]);
            if seg[stop] == b'%' && self.text.is_command() {
                // A DUT command: what the frame reader holds was its text.
                self.reader.reset();
                self.pos += stop + 1;
                self.mode = Mode::Dut;
                self.entered_dut = true;
                self.lone_percent = false;
                self.command_ready = true;
                return Ok(Got::Command);
            }
            if seg[stop] == b'%' {
                // A '%' inside a frame.
                let _ = self.reader.feed(&seg[..=stop]);
                self.text.push(b'%');
                self.pos += stop + 1;
                continue;
            }
            let seg = &self.stage[self.pos..=self.pos + stop];
            self.pos += stop + 1;
            self.text.clear();
            return Ok(match self.reader.feed(seg).1 {
                Some(Ok(frame)) => Got::Frame(frame),
                Some(Err(e)) => Got::Bad(e),
                None => Got::Empty,
            });
        }
    }
}

/// Writes `buf`, then flushes. A link that accepts nothing loses the frame
/// (the host retransmits) rather than panicking.
fn send<L: embedded_io::Write>(link: &mut L, mut buf: &[u8]) -> Result<(), L::Error> {
    while !buf.is_empty() {
        let n = link.write(buf)?;
        if n == 0 {
            break;
        }
        buf = buf.get(n..).unwrap_or(&[]);
    }
    link.flush()
}

/// The session's link: the UART, its receive side, the kept answer.
struct FwLink<'x, L> {
    link: &'x mut L,
    rx: &'x mut Rx,
    answers: &'x mut Answers,
}

/// Answers a frame that could not be read (the kept answer stays).
fn refuse<L: embedded_io::Write>(
    link: &mut L,
    answers: &mut Answers,
    e: &ProtoError,
) -> Result<(), L::Error> {
    let _r = edgefit_proto::unreadable(e);
    diag!(
        warn,
        "unreadable frame after seq {=u32}: {} (detail {=u32})",
        answers.last_good(),
        _r.code,
        _r.detail
    );
    let mut buf = [0u8; ERROR_FRAME];
    send(link, answers.refuse(e, &mut buf))
}

impl<L: embedded_io::Read + embedded_io::Write> edgefit_proto::Link for FwLink<'_, L> {
    type Error = L::Error;

    fn next(&mut self) -> Result<Incoming<'_>, L::Error> {
        match self.rx.next(self.link)? {
            Got::Nothing => Ok(Incoming::Nothing),
            Got::Empty => Ok(Incoming::Handled),
            Got::Command => Ok(Incoming::Left),
            Got::Bad(e) => refuse(self.link, self.answers, &e).map(|()| Incoming::Handled),
            Got::Frame(f) => match self.answers.accept(f) {
                Accepted::Request { seq, msg } => Ok(Incoming::Request { seq, msg }),
                Accepted::Repeat => {
                    send(self.link, self.answers.kept()).map(|()| Incoming::Handled)
                }
                Accepted::Bad(e) => refuse(self.link, self.answers, &e).map(|()| Incoming::Handled),
            },
        }
    }

    fn answer(&mut self, seq: u32, kind: u8, msg: &DeviceMsg<'_>) -> Result<(), L::Error> {
        diag::answer(kind, msg);
        send(self.link, self.answers.answer(seq, kind, msg))
    }
}

/// Everything but the link, the frame buffers and the plan store.
pub(crate) struct Core<'a, C, P, S> {
    pub(crate) info: BoardInfo,
    pub(crate) clock: C,
    power: P,
    stack: S,
    pub(crate) arena: &'a mut [u8],
}

impl<C: Clock, P: PowerMeter, S: StackMeter> Core<'_, C, P, S> {
    fn power_now(&mut self) -> Option<u32> {
        if self.power.kind() == PowerSensorKind::None {
            None
        } else {
            self.power.read_power_mw()
        }
    }

    fn hello<F: MappedFlash>(&self, store: &Store<F>) -> DeviceInfo<'static> {
        DeviceInfo {
            protocol_version: edgefit_proto::PROTOCOL_VERSION,
            engine_version: FORMAT_VERSION,
            board: self.info.board,
            core: self.info.core,
            clock_hz: self.info.clock_hz,
            ram_bytes: self.info.ram_bytes,
            flash_bytes: self.info.flash_bytes,
            plan_slot_bytes: store.layout.data_cap,
            plan_slots: 2,
            arena_bytes: edgefit_proto::sat_u32(self.arena.len()),
            power_sensor: self.power.kind(),
            timing: self.clock.source(),
            tick_hz: self.clock.tick_hz(),
            active_plan: store.active.map(|s| s.info()),
            engines: EngineKind::Native.name(),
            accelerator: "",
        }
    }
}

/// The session's device: two NOR-flash slots and the native engine.
struct FwDevice<'x, 'a, F, C, P, S> {
    store: &'x mut Store<F>,
    core: &'x mut Core<'a, C, P, S>,
}

impl<'a, F: MappedFlash, C: Clock, P: PowerMeter, S: StackMeter> edgefit_proto::Device
    for FwDevice<'_, 'a, F, C, P, S>
{
    type Bench<'d>
        = FwBench<'d, 'a, F, C, P, S>
    where
        Self: 'd;

    fn hello(&self) -> DeviceInfo<'_> {
        self.core.hello(self.store)
    }

    // A serial link has no token: whoever holds the cable may flash.
    fn auth(&mut self, _token: &[u8]) -> Result<(), Reject> {
        Ok(())
    }

    fn plan_begin(&mut self, plan_id: u32, total_size: u32, crc32: u32) -> Result<(), Reject> {
        self.store.begin(plan_id, total_size, crc32)
    }

    fn plan_chunk(&mut self, index: u32, offset: u32, data: &[u8]) -> Result<(), Reject> {
        self.store.chunk(index, offset, data)
    }

    fn plan_commit(&mut self) -> Result<PlanInfo, Reject> {
        self.store.commit(self.core.arena.len())
    }

    fn plan_abort(&mut self) {
        self.store.upload = None;
    }

    fn bench_start(
        &mut self,
        plan_id: Option<u32>,
        engine: Option<EngineKind>,
    ) -> Result<BenchStarted, Reject> {
        native_only(engine)?;
        let (active, plan) = self.store.plan()?;
        if plan_id.is_some_and(|id| id != active.plan_id) {
            return Err(Reject::new(ErrorCode::PlanMismatch, active.plan_id));
        }
        let arena = self.core.arena.len();
        if plan.arena_size() > arena {
            return Err(Reject::new(
                ErrorCode::ArenaTooSmall,
                edgefit_proto::sat_u32(arena),
            ));
        }
        plan.input().map_err(|e| bad_plan(&e))?;
        plan.output().map_err(|e| bad_plan(&e))?;
        self.core.stack.repaint();
        self.store.upload = None;
        Ok(BenchStarted {
            plan_id: active.plan_id,
            slot: active.slot,
            idle_power_mw: self.core.power_now(),
        })
    }

    fn bench(&mut self) -> Result<FwBench<'_, 'a, F, C, P, S>, Reject> {
        let (_, plan) = self.store.plan()?;
        Ok(FwBench {
            store: self.store,
            core: self.core,
            plan,
        })
    }
}

/// The active plan, parsed (and its CRC checked) once per `poll`.
struct FwBench<'d, 'a, F, C, P, S> {
    store: &'d Store<F>,
    core: &'d mut Core<'a, C, P, S>,
    plan: Plan<'d>,
}

impl<F: MappedFlash, C: Clock, P: PowerMeter, S: StackMeter> edgefit_proto::Bench
    for FwBench<'_, '_, F, C, P, S>
{
    fn hello(&self) -> DeviceInfo<'_> {
        self.core.hello(self.store)
    }

    fn auth(&mut self, _token: &[u8]) -> Result<(), Reject> {
        Ok(())
    }

    fn input(&mut self) -> Result<&mut [u8], Reject> {
        Engine::new(&self.plan)
            .input_mut(self.core.arena)
            .map_err(exec_error)
    }

    fn run(&mut self) -> Result<Inference, Reject> {
        let engine = Engine::new(&self.plan);
        let core = &mut *self.core;
        let p0 = core.power_now();
        let t0 = core.clock.now();
        let run = engine.run(core.arena);
        let t1 = core.clock.now();
        let p1 = core.power_now();
        run.map_err(exec_error)?;
        let ticks = t1.wrapping_sub(t0);
        let energy_uj = mean_power(p0, p1).and_then(|p| energy_uj(p, ticks, core.clock.tick_hz()));
        Ok(Inference { ticks, energy_uj })
    }

    fn output(&self) -> Result<(&[u8], u16), Reject> {
        let dtype = self.plan.output().map_err(|e| bad_plan(&e))?.dtype;
        let out = Engine::new(&self.plan)
            .output(self.core.arena)
            .map_err(exec_error)?;
        Ok((out, argmax(out, dtype)))
    }

    fn facts(&mut self) -> RunFacts {
        RunFacts {
            timing: self.core.clock.source(),
            tick_hz: self.core.clock.tick_hz(),
            clock_hz: self.core.info.clock_hz,
            arena_bytes_used: edgefit_proto::sat_u32(self.plan.arena_size()),
            stack_high_water_bytes: self.core.stack.high_water_bytes(),
            power_sensor: self.core.power.kind(),
            engine: EngineKind::Native,
            peak_rss_bytes: None,
            gpu_memory_bytes: None,
        }
    }
}

/// The firmware application: answers the host over `link`, stores plans in
/// two A/B slots on `flash`, benchmarks the active plan in `arena`.
///
/// RAM: the receive frame buffer and the kept last answer (`MAX_FRAME` =
/// 2131 bytes each), a 64-byte staging buffer, the 80-byte DUT command
/// buffer and about 300 bytes of state: about 4.8 KiB plus the board's link, flash, clock, power and stack
/// types. The arena is the caller's.
///
/// The same link also speaks MLPerf Tiny's DUT protocol (see [`crate::dut`]
/// and `Rx`): `%`-terminated text commands switch to it, edgefit's next
/// frame switches back.
pub struct Firmware<'a, L, F, C, P, S, T = LapTimestamps> {
    link: L,
    rx: Rx,
    answers: Answers,
    session: Session,
    store: Store<F>,
    core: Core<'a, C, P, S>,
    dut: Dut,
    stamp: T,
}

impl<'a, L, F, C, P, S> Firmware<'a, L, F, C, P, S, LapTimestamps>
where
    L: embedded_io::Read + embedded_io::Write,
    F: MappedFlash,
    C: Clock,
    P: PowerMeter,
    S: StackMeter,
{
    /// Scans the two plan slots (the whole flash device split in two equal
    /// halves) and activates the newest valid one.
    pub fn new(
        info: BoardInfo,
        link: L,
        flash: F,
        clock: C,
        power: P,
        stack: S,
        arena: &'a mut [u8],
    ) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Geometry::<F>::OK;
        let store = Store::open(flash);
        diag!(
            info,
            "edgefit-mcu on {=str}: slots of {=u32} B, arena {=usize} B, active plan {}",
            info.board,
            store.layout.data_cap,
            arena.len(),
            store.active.map(|s| s.info())
        );
        Self {
            link,
            rx: Rx::new(),
            answers: Answers::new(),
            session: Session::new(),
            store,
            core: Core {
                info,
                clock,
                power,
                stack,
                arena,
            },
            dut: Dut::default(),
            stamp: LapTimestamps,
        }
    }

    /// MLPerf Tiny energy mode: `timestamp` and `infer` mark time by pulling
    /// `pin` low then high instead of printing `m-lap-us` lines (a board
    /// built for an energy monitor's interface board; docs/mlperf-tiny.md).
    pub fn with_timestamp_pin<Pin: embedded_hal::digital::OutputPin>(
        self,
        mut pin: Pin,
    ) -> Firmware<'a, L, F, C, P, S, TimestampPin<Pin>> {
        // Idle high, so the first falling edge is the first timestamp.
        let _ = pin.set_high();
        Firmware {
            link: self.link,
            rx: self.rx,
            answers: self.answers,
            session: self.session,
            store: self.store,
            core: self.core,
            dut: self.dut,
            stamp: TimestampPin(pin),
        }
    }
}

impl<'a, L, F, C, P, S, T> Firmware<'a, L, F, C, P, S, T>
where
    L: embedded_io::Read + embedded_io::Write,
    F: MappedFlash,
    C: Clock,
    P: PowerMeter,
    S: StackMeter,
    T: Timestamp,
{
    /// Answers the link until `read` returns 0 bytes (a partial frame is
    /// kept for the next call) or a DUT command arrives (answered, then
    /// returns), and returns the link's error if reading or writing fails.
    ///
    /// During a benchmark the active plan is parsed (and its CRC checked)
    /// once per call rather than once per sample.
    pub fn poll(&mut self) -> Result<(), L::Error> {
        let Self {
            link,
            rx,
            answers,
            session,
            store,
            core,
            dut,
            stamp,
        } = self;
        let served = session.serve(
            &mut FwLink {
                link: &mut *link,
                rx: &mut *rx,
                answers,
            },
            &mut FwDevice {
                store: &mut *store,
                core: &mut *core,
            },
        )?;
        match served {
            Served::Idle => Ok(()),
            Served::Left => serve_command(link, rx, store, core, dut, stamp),
        }
    }

    /// Serves the host forever.
    pub fn run(&mut self) -> ! {
        loop {
            let _ = self.poll();
        }
    }

    /// The plan that runs now.
    pub fn active_plan(&self) -> Option<PlanInfo> {
        self.store.active.map(|s| s.info())
    }

    /// Largest plan image a slot takes (`DeviceInfo::plan_slot_bytes`).
    pub fn plan_slot_bytes(&self) -> u32 {
        self.store.layout.data_cap
    }

    /// Gives the parts back (tests: "reboot" over the same flash).
    pub fn into_parts(self) -> (L, F, C, P, S) {
        let Core {
            clock,
            power,
            stack,
            ..
        } = self.core;
        (self.link, self.store.flash, clock, power, stack)
    }
}

/// Answers the DUT command `rx` holds (the session dropped an upload or
/// benchmark in progress: edgefit's host session is over).
fn serve_command<L, F, C, P, S, T>(
    link: &mut L,
    rx: &mut Rx,
    store: &mut Store<F>,
    core: &mut Core<'_, C, P, S>,
    dut: &mut Dut,
    stamp: &mut T,
) -> Result<(), L::Error>
where
    L: embedded_io::Read + embedded_io::Write,
    F: MappedFlash,
    C: Clock,
    P: PowerMeter,
    S: StackMeter,
    T: Timestamp,
{
    let entered = core::mem::take(&mut rx.entered_dut);
    if entered {
        diag!(info, "MLPerf Tiny DUT mode");
    }
    let (text, overflow) = rx.command();
    dut.command(link, text, overflow, entered, store, core, stamp)?;
    link.flush()
}
