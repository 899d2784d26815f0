//! The protocol server: frames in, answers out, plan uploads and benchmarks.

use edgefit_engine::{Engine, ExecError, Plan, FORMAT_VERSION};
use edgefit_proto::{
    decode_frame, encode_frame, BenchSummary, DeviceInfo, DeviceMsg, EngineKind, ErrorCode,
    FrameReader, HostMsg, PlanInfo, PowerSensorKind, ProtoError, Reject, Transfer, MAX_CHUNK,
    MAX_FRAME, PROTOCOL_VERSION,
};

use crate::bench::{energy_uj, mean_power, Bench, Part};
use crate::diag::{self, diag};
use crate::dut::Dut;
use crate::slots::{bad_plan, Geometry, Slot, Store};
use crate::{
    BoardInfo, Clock, LapTimestamps, MappedFlash, PowerMeter, StackMeter, Timestamp, TimestampPin,
};
use edgefit_engine::argmax;

/// Bytes read from the link per `read` call (staged, then fed to the frame
/// reader up to the end of a frame).
const STAGE: usize = 64;

/// Large enough for any encoded `Error` answer.
const ERROR_FRAME: usize = 48;

/// `Internal` error details.
pub mod internal_detail {
    /// The engine found the arena too small while running.
    pub const EXEC_ARENA: u32 = 1;
    /// The engine was asked for an op that does not exist.
    pub const EXEC_NO_SUCH_OP: u32 = 2;
    /// A kernel found buffers that do not match its op.
    pub const EXEC_KERNEL: u32 = 3;
    /// The input or output tensor could not be reached in the arena.
    pub const TENSOR: u32 = 4;
    /// An answer could not be encoded.
    pub const ENCODE: u32 = 5;
}

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

/// Send side: the last answer (for retransmissions) and the device's frame
/// counter.
struct Tx {
    buf: [u8; MAX_FRAME],
    len: usize,
    /// `(seq, kind)` of the request `buf` answers.
    answered: Option<(u32, u8)>,
    /// Next device frame number.
    seq: u32,
    /// Sequence number of the last frame decoded.
    last_good: u32,
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

impl Tx {
    fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME],
            len: 0,
            answered: None,
            seq: 0,
            last_good: 0,
        }
    }

    /// Whether `(seq, kind)` is the request answered last (a retransmission).
    fn is_repeat(&self, seq: u32, kind: u8) -> bool {
        self.len > 0 && self.answered == Some((seq, kind))
    }

    /// Encodes and sends the answer to request `(seq, kind)`, keeping it for
    /// a retransmission.
    fn answer<L: embedded_io::Write>(
        &mut self,
        link: &mut L,
        seq: u32,
        kind: u8,
        msg: &DeviceMsg<'_>,
    ) -> Result<(), L::Error> {
        let n = match encode_frame(self.seq, msg, &mut self.buf) {
            Ok(f) => f.len(),
            Err(_) => {
                let e = DeviceMsg::error(seq, ErrorCode::Internal, internal_detail::ENCODE);
                encode_frame(self.seq, &e, &mut self.buf).map_or(0, |f| f.len())
            }
        };
        self.seq = self.seq.wrapping_add(1);
        self.len = n;
        self.answered = Some((seq, kind));
        diag::answer(kind, msg);
        send(link, &self.buf[..n])
    }

    /// Sends the last answer again.
    fn resend<L: embedded_io::Write>(&mut self, link: &mut L) -> Result<(), L::Error> {
        send(link, &self.buf[..self.len])
    }

    /// Answers a frame that could not be read. The kept answer is left alone:
    /// the host may still retransmit the request it belongs to.
    fn bad_frame<L: embedded_io::Write>(
        &mut self,
        link: &mut L,
        e: &ProtoError,
    ) -> Result<(), L::Error> {
        let (code, detail) = match *e {
            ProtoError::Crc { computed, .. } => (ErrorCode::BadCrc, computed),
            ProtoError::VersionMismatch { .. } => {
                (ErrorCode::VersionMismatch, u32::from(PROTOCOL_VERSION))
            }
            ProtoError::FrameTooLarge { len, .. } | ProtoError::Truncated { len, .. } => {
                (ErrorCode::BadFrame, edgefit_proto::sat_u32(len))
            }
            _ => (ErrorCode::BadFrame, 0),
        };
        diag!(
            warn,
            "unreadable frame after seq {=u32}: {} (detail {=u32})",
            self.last_good,
            code,
            detail
        );
        let mut buf = [0u8; ERROR_FRAME];
        let msg = DeviceMsg::error(self.last_good, code, detail);
        let n = encode_frame(self.seq, &msg, &mut buf).map_or(0, |f| f.len());
        self.seq = self.seq.wrapping_add(1);
        send(link, &buf[..n])
    }
}

/// Everything but the link, the frame buffers and the plan store.
pub(crate) struct Core<'a, C, P, S> {
    pub(crate) info: BoardInfo,
    pub(crate) clock: C,
    power: P,
    stack: S,
    pub(crate) arena: &'a mut [u8],
    bench: Option<Bench>,
}

impl<C: Clock, P: PowerMeter, S: StackMeter> Core<'_, C, P, S> {
    fn power_now(&mut self) -> Option<u32> {
        if self.power.kind() == PowerSensorKind::None {
            None
        } else {
            self.power.read_power_mw()
        }
    }

    fn hello<F: MappedFlash>(
        &self,
        store: &Store<F>,
        version: u16,
    ) -> Result<DeviceMsg<'static>, Reject> {
        if version != PROTOCOL_VERSION {
            return Err(Reject::new(
                ErrorCode::VersionMismatch,
                u32::from(PROTOCOL_VERSION),
            ));
        }
        Ok(DeviceMsg::DeviceHello(DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
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
        }))
    }

    fn bench_start(
        &mut self,
        active: Slot,
        plan: &Plan<'_>,
        plan_id: Option<u32>,
        want_outputs: bool,
    ) -> Result<(), Reject> {
        if plan_id.is_some_and(|id| id != active.plan_id) {
            return Err(Reject::new(ErrorCode::PlanMismatch, active.plan_id));
        }
        if plan.arena_size() > self.arena.len() {
            return Err(Reject::new(
                ErrorCode::ArenaTooSmall,
                edgefit_proto::sat_u32(self.arena.len()),
            ));
        }
        let input = plan.input().map_err(|e| bad_plan(&e))?;
        plan.output().map_err(|e| bad_plan(&e))?;
        self.stack.repaint();
        let mut bench = Bench::new(
            active.plan_id,
            active.slot,
            want_outputs,
            input.length,
            edgefit_proto::sat_u32(plan.arena_size()),
        );
        bench.idle_power_mw = self.power_now();
        self.bench = Some(bench);
        Ok(())
    }

    fn bench_mut(&mut self, kind: u8) -> Result<&mut Bench, Reject> {
        self.bench.as_mut().ok_or(Reject::unexpected(kind))
    }

    fn sample<'c>(
        &'c mut self,
        engine: &Engine<'_>,
        index: u32,
        data: &[u8],
    ) -> Result<DeviceMsg<'c>, Reject> {
        let bench = self.bench_mut(7)?;
        bench.part = None;
        let input_len = bench.input_len;
        if data.len() != input_len as usize {
            return Err(Reject::new(ErrorCode::BadSample, input_len));
        }
        let input = engine.input_mut(self.arena).map_err(exec_error)?;
        if input.len() != data.len() {
            return Err(Reject::new(ErrorCode::Internal, internal_detail::TENSOR));
        }
        input.copy_from_slice(data);
        self.infer(engine, index)
    }

    fn sample_chunk(
        &mut self,
        engine: &Engine<'_>,
        index: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<(), Reject> {
        let bench = self.bench_mut(8)?;
        let input_len = bench.input_len;
        if offset == 0 {
            bench.part = Some(Part {
                index,
                xfer: Transfer::sample(input_len),
            });
        }
        let part = bench
            .part
            .as_mut()
            .ok_or(Reject::new(ErrorCode::ChunkOutOfOrder, 0))?;
        if part.index != index {
            return Err(Reject::new(ErrorCode::BadSample, input_len));
        }
        part.xfer.accept(index, offset, data)?;
        let input = engine.input_mut(self.arena).map_err(exec_error)?;
        let start = offset as usize;
        input
            .get_mut(start..start + data.len())
            .ok_or(Reject::new(ErrorCode::Internal, internal_detail::TENSOR))?
            .copy_from_slice(data);
        Ok(())
    }

    fn sample_run<'c>(
        &'c mut self,
        engine: &Engine<'_>,
        index: u32,
        total_len: u32,
    ) -> Result<DeviceMsg<'c>, Reject> {
        let bench = self.bench_mut(9)?;
        let input_len = bench.input_len;
        let wrong = Reject::new(ErrorCode::BadSample, input_len);
        let part = bench.part.take().ok_or(wrong)?;
        if part.index != index || total_len != input_len {
            return Err(wrong);
        }
        part.xfer.finish()?;
        self.infer(engine, index)
    }

    /// Runs the input now in the arena, timed, and records it.
    fn infer<'c>(&'c mut self, engine: &Engine<'_>, index: u32) -> Result<DeviceMsg<'c>, Reject> {
        let p0 = self.power_now();
        let t0 = self.clock.now();
        let run = engine.run(self.arena);
        let t1 = self.clock.now();
        let p1 = self.power_now();
        run.map_err(exec_error)?;
        let ticks = t1.wrapping_sub(t0);
        let energy = mean_power(p0, p1).and_then(|p| energy_uj(p, ticks, self.clock.tick_hz()));
        let dtype = engine.plan().output().map_err(|e| bad_plan(&e))?.dtype;
        let bench = self.bench_mut(7)?;
        bench.tally.record(ticks, energy);
        let want = bench.want_outputs;
        let arena: &'c [u8] = self.arena;
        let out = engine.output(arena).map_err(exec_error)?;
        Ok(DeviceMsg::Record(edgefit_proto::BenchRecord {
            sample: index,
            predicted: argmax(out, dtype),
            ticks,
            outputs: (want && out.len() <= MAX_CHUNK).then_some(out),
            energy_uj: energy,
        }))
    }

    fn bench_end(&mut self) -> Result<DeviceMsg<'static>, Reject> {
        let b = self.bench.take().ok_or(Reject::unexpected(10))?;
        let tick_hz = self.clock.tick_hz();
        Ok(DeviceMsg::BenchSummary(BenchSummary {
            plan_id: b.plan_id,
            slot: b.slot,
            samples: b.tally.samples,
            timing: self.clock.source(),
            tick_hz,
            clock_hz: self.info.clock_hz,
            total_ticks: b.tally.total_ticks,
            min_ticks: b.tally.min_ticks,
            max_ticks: b.tally.max_ticks,
            arena_bytes_used: b.arena_used,
            stack_high_water_bytes: self.stack.high_water_bytes(),
            power_sensor: self.power.kind(),
            energy_uj: b.tally.energy_measured.then_some(b.tally.energy_uj),
            avg_power_mw: b.tally.avg_power_mw(tick_hz),
            idle_power_mw: b.idle_power_mw,
            engine: EngineKind::Native,
            peak_rss_bytes: None,
            gpu_memory_bytes: None,
        }))
    }
}

/// Why a benchmark's frame loop ended.
enum BenchExit {
    /// The benchmark ended, or the link has no more bytes now.
    Done,
    /// The active plan cannot be read: the benchmark was dropped.
    NoPlan,
    /// A DUT command arrived (in `Rx::command`): the link left edgefit's
    /// protocol, which drops the benchmark.
    Command,
    /// A `PlanBegin` arrived: it needs the flash, which the plan borrows.
    PlanBegin {
        seq: u32,
        plan_id: u32,
        total_size: u32,
        crc32: u32,
    },
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
    tx: Tx,
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
            tx: Tx::new(),
            store,
            core: Core {
                info,
                clock,
                power,
                stack,
                arena,
                bench: None,
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
            tx: self.tx,
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
    /// Reads bytes until one frame is complete (or a bad frame is dropped)
    /// and answers it. Returns early with `Ok(())` when `read` returns 0
    /// bytes (nothing buffered; a partial frame is kept for the next call),
    /// and with the link's error if reading or writing fails.
    ///
    /// During a benchmark (after an accepted `BenchStart`) one call serves
    /// frames until the benchmark ends (`BenchEnd`, `Reset`, `PlanBegin`) or
    /// `read` returns 0 or fails, so the plan is parsed (and its CRC checked)
    /// once per call rather than once per sample.
    pub fn poll(&mut self) -> Result<(), L::Error> {
        let Self {
            link,
            rx,
            tx,
            store,
            core,
            dut,
            stamp,
        } = self;
        if core.bench.is_some() {
            match serve_bench(link, rx, tx, store, core)? {
                BenchExit::Done => return Ok(()),
                BenchExit::NoPlan => {}
                BenchExit::Command => return serve_command(link, rx, store, core, dut, stamp),
                BenchExit::PlanBegin {
                    seq,
                    plan_id,
                    total_size,
                    crc32,
                } => {
                    core.bench = None;
                    let answer = match store.begin(plan_id, total_size, crc32) {
                        Ok(()) => DeviceMsg::Ack { seq },
                        Err(r) => r.to_msg(seq),
                    };
                    return tx.answer(link, seq, 2, &answer);
                }
            }
        }
        loop {
            let frame = match rx.next(link)? {
                Got::Nothing => return Ok(()),
                Got::Empty => continue,
                Got::Bad(e) => return tx.bad_frame(link, &e),
                Got::Command => return serve_command(link, rx, store, core, dut, stamp),
                Got::Frame(f) => f,
            };
            let (seq, msg) = match decode_frame::<HostMsg<'_>>(frame) {
                Ok(v) => v,
                Err(e) => return tx.bad_frame(link, &e),
            };
            tx.last_good = seq;
            let kind = msg.kind();
            if tx.is_repeat(seq, kind) {
                return tx.resend(link);
            }
            let answer = dispatch(store, core, seq, msg);
            return tx.answer(link, seq, kind, &answer);
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

/// Answers the DUT command `rx` holds. Entering DUT mode drops an upload
/// or benchmark in progress (edgefit's host session is over).
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
        store.upload = None;
        core.bench = None;
        diag!(info, "MLPerf Tiny DUT mode");
    }
    let (text, overflow) = rx.command();
    dut.command(link, text, overflow, entered, store, core, stamp)?;
    link.flush()
}

/// Answers one request outside a benchmark.
fn dispatch<'c, F: MappedFlash, C: Clock, P: PowerMeter, S: StackMeter>(
    store: &mut Store<F>,
    core: &'c mut Core<'_, C, P, S>,
    seq: u32,
    msg: HostMsg<'_>,
) -> DeviceMsg<'c> {
    let ack = DeviceMsg::Ack { seq };
    let kind = msg.kind();
    let r = match msg {
        HostMsg::Hello { protocol_version } => core.hello(store, protocol_version),
        HostMsg::Ping { nonce } => Ok(DeviceMsg::Pong { nonce }),
        HostMsg::PlanBegin {
            plan_id,
            total_size,
            crc32,
        } => {
            core.bench = None;
            store.begin(plan_id, total_size, crc32).map(|()| ack)
        }
        HostMsg::PlanChunk {
            index,
            offset,
            data,
        } => store.chunk(index, offset, data).map(|()| ack),
        HostMsg::PlanCommit => store.commit(core.arena.len()).map(DeviceMsg::PlanStored),
        HostMsg::PlanAbort => {
            store.upload = None;
            Ok(ack)
        }
        HostMsg::BenchStart {
            plan_id,
            want_outputs,
            engine,
            ..
        } => {
            let r = native_only(engine)
                .and_then(|()| store.plan())
                .and_then(|(active, plan)| core.bench_start(active, &plan, plan_id, want_outputs));
            if r.is_ok() {
                store.upload = None;
            }
            r.map(|()| ack)
        }
        HostMsg::Reset => {
            store.upload = None;
            core.bench = None;
            Ok(ack)
        }
        // A serial link has no token: whoever holds the cable may flash.
        HostMsg::Auth { .. } => Ok(ack),
        HostMsg::Sample { .. }
        | HostMsg::SampleChunk { .. }
        | HostMsg::SampleRun { .. }
        | HostMsg::BenchEnd => Err(Reject::unexpected(kind)),
    };
    r.unwrap_or_else(|e| e.to_msg(seq))
}

/// Serves frames during a benchmark with the active plan parsed once.
fn serve_bench<L, F, C, P, S>(
    link: &mut L,
    rx: &mut Rx,
    tx: &mut Tx,
    store: &Store<F>,
    core: &mut Core<'_, C, P, S>,
) -> Result<BenchExit, L::Error>
where
    L: embedded_io::Read + embedded_io::Write,
    F: MappedFlash,
    C: Clock,
    P: PowerMeter,
    S: StackMeter,
{
    let Ok((active, plan)) = store.plan() else {
        core.bench = None;
        return Ok(BenchExit::NoPlan);
    };
    let engine = Engine::new(&plan);
    loop {
        let frame = match rx.next(link)? {
            Got::Nothing => return Ok(BenchExit::Done),
            Got::Empty => continue,
            Got::Bad(e) => {
                tx.bad_frame(link, &e)?;
                continue;
            }
            Got::Command => {
                core.bench = None;
                return Ok(BenchExit::Command);
            }
            Got::Frame(f) => f,
        };
        let (seq, msg) = match decode_frame::<HostMsg<'_>>(frame) {
            Ok(v) => v,
            Err(e) => {
                tx.bad_frame(link, &e)?;
                continue;
            }
        };
        tx.last_good = seq;
        let kind = msg.kind();
        if tx.is_repeat(seq, kind) {
            tx.resend(link)?;
            continue;
        }
        let ack = DeviceMsg::Ack { seq };
        let r = match msg {
            HostMsg::PlanBegin {
                plan_id,
                total_size,
                crc32,
            } => {
                return Ok(BenchExit::PlanBegin {
                    seq,
                    plan_id,
                    total_size,
                    crc32,
                })
            }
            HostMsg::Hello { protocol_version } => core.hello(store, protocol_version),
            HostMsg::Ping { nonce } => Ok(DeviceMsg::Pong { nonce }),
            // No upload can be open during a benchmark.
            HostMsg::PlanChunk { .. } | HostMsg::PlanCommit => Err(Reject::unexpected(kind)),
            HostMsg::PlanAbort => Ok(ack),
            HostMsg::BenchStart {
                plan_id,
                want_outputs,
                engine,
                ..
            } => native_only(engine)
                .and_then(|()| core.bench_start(active, &plan, plan_id, want_outputs))
                .map(|()| ack),
            HostMsg::Auth { .. } => Ok(ack),
            HostMsg::Sample { index, data } => core.sample(&engine, index, data),
            HostMsg::SampleChunk {
                index,
                offset,
                data,
            } => core
                .sample_chunk(&engine, index, offset, data)
                .map(|()| ack),
            HostMsg::SampleRun { index, total_len } => core.sample_run(&engine, index, total_len),
            HostMsg::BenchEnd => core.bench_end(),
            HostMsg::Reset => {
                core.bench = None;
                Ok(ack)
            }
        };
        let answer = r.unwrap_or_else(|e| e.to_msg(seq));
        tx.answer(link, seq, kind, &answer)?;
        if core.bench.is_none() {
            return Ok(BenchExit::Done);
        }
    }
}
