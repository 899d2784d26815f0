//! In-memory fakes for the firmware's traits, tiny real plans, and a host
//! that speaks the protocol to a `Firmware` through a byte queue.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use edgefit_engine::{DType, Engine, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant};
use edgefit_mcu::{
    BoardInfo, Clock, Firmware, NoPower, NoStackMeter, PowerMeter, RamFlash, StackMeter,
};
use edgefit_proto::{
    cobs_decode_in_place, cobs_encode, crc32, decode_frame, encode_frame_vec, plan_chunks,
    BenchSummary, DeviceInfo, DeviceMsg, ErrorCode, FrameReader, HostMsg, PlanInfo,
    PowerSensorKind, TimingSource, MAX_FRAME,
};

// ---------------------------------------------------------------- fakes

/// Host → device byte queue and device → host bytes.
#[derive(Clone, Default)]
pub struct Link {
    pub to_dev: Rc<RefCell<VecDeque<u8>>>,
    pub from_dev: Rc<RefCell<Vec<u8>>>,
}

impl embedded_io::ErrorType for Link {
    type Error = Infallible;
}

impl embedded_io::Read for Link {
    /// Whatever is queued (up to `buf.len()`), 0 when nothing is.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let mut q = self.to_dev.borrow_mut();
        let n = buf.len().min(q.len());
        for (d, s) in buf.iter_mut().zip(q.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Link {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.from_dev.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Advances `step` ticks per call.
#[derive(Debug, Clone)]
pub struct FakeClock {
    pub t: u64,
    pub step: u64,
}

pub const TICK_HZ: u64 = 1_000_000;
pub const STEP: u64 = 1_000;

impl Default for FakeClock {
    fn default() -> Self {
        Self { t: 5, step: STEP }
    }
}

impl Clock for FakeClock {
    fn now(&mut self) -> u64 {
        self.t += self.step;
        self.t
    }
    fn tick_hz(&self) -> u64 {
        TICK_HZ
    }
    fn source(&self) -> TimingSource {
        TimingSource::QemuIcount
    }
}

/// A constant-power INA219.
#[derive(Debug, Clone)]
pub struct FakePower {
    pub mw: u32,
}

impl PowerMeter for FakePower {
    fn kind(&self) -> PowerSensorKind {
        PowerSensorKind::Ina219
    }
    fn read_power_mw(&mut self) -> Option<u32> {
        Some(self.mw)
    }
}

/// Counts repaints, reports a fixed depth.
#[derive(Debug, Clone, Default)]
pub struct FakeStack {
    pub repaints: Rc<Cell<u32>>,
    pub depth: u32,
}

impl StackMeter for FakeStack {
    fn repaint(&mut self) {
        self.repaints.set(self.repaints.get() + 1);
    }
    fn high_water_bytes(&self) -> u32 {
        self.depth
    }
}

pub const FLASH_BYTES: usize = 64 * 1024;
/// Slot size minus the 32-byte record.
pub const SLOT_BYTES: u32 = 32 * 1024 - 32;
pub const ARENA_BYTES: usize = 8192;

pub fn board() -> BoardInfo {
    BoardInfo {
        board: "test-board",
        core: "cortex-m4f",
        clock_hz: 25_000_000,
        ram_bytes: 4 << 20,
        flash_bytes: FLASH_BYTES as u64,
    }
}

pub type Fw<'a, P = NoPower, S = NoStackMeter> = Firmware<'a, Link, RamFlash<'a>, FakeClock, P, S>;

/// A firmware over `flash`, talking to a fresh host.
pub fn boot<'a>(flash: &'a mut [u8], arena: &'a mut [u8]) -> (Fw<'a>, Host) {
    let host = Host::new();
    let fw = Firmware::new(
        board(),
        host.link.clone(),
        RamFlash::new(flash),
        FakeClock::default(),
        NoPower,
        NoStackMeter,
        arena,
    );
    (fw, host)
}

/// Reboots: the same flash, a fresh firmware (and a new host session).
pub fn reboot<'a>(fw: Fw<'a>, arena: &'a mut [u8]) -> (Fw<'a>, Host) {
    let (_, flash, ..) = fw.into_parts();
    boot(flash.into_inner(), arena)
}

// ---------------------------------------------------------------- host

/// An owned device answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Hello(DeviceInfo<'static>),
    Pong(u32),
    Ack(u32),
    Stored(PlanInfo),
    Record(Rec),
    Summary(BenchSummary),
    Error {
        seq: u32,
        code: ErrorCode,
        detail: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub sample: u32,
    pub predicted: u16,
    pub ticks: u64,
    pub outputs: Option<Vec<u8>>,
    pub energy_uj: Option<u32>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Decodes one device frame (without delimiter) into its seq and an owned reply.
pub fn decode_reply(mut frame: Vec<u8>) -> (u32, Reply) {
    let (seq, msg) = decode_frame::<DeviceMsg<'_>>(&mut frame).expect("device frames decode");
    let r = match msg {
        DeviceMsg::DeviceHello(d) => Reply::Hello(DeviceInfo {
            board: leak(d.board),
            core: leak(d.core),
            engines: leak(d.engines),
            accelerator: leak(d.accelerator),
            ..d
        }),
        DeviceMsg::Pong { nonce } => Reply::Pong(nonce),
        DeviceMsg::Ack { seq } => Reply::Ack(seq),
        DeviceMsg::PlanStored(p) => Reply::Stored(p),
        DeviceMsg::Record(r) => Reply::Record(Rec {
            sample: r.sample,
            predicted: r.predicted,
            ticks: r.ticks,
            outputs: r.outputs.map(<[u8]>::to_vec),
            energy_uj: r.energy_uj,
        }),
        DeviceMsg::BenchSummary(s) => Reply::Summary(s),
        DeviceMsg::Error { seq, code, detail } => Reply::Error { seq, code, detail },
    };
    (seq, r)
}

pub struct Host {
    pub link: Link,
    pub seq: u32,
    reader: FrameReader<MAX_FRAME>,
}

impl Host {
    pub fn new() -> Self {
        Self {
            link: Link::default(),
            seq: 1000,
            reader: FrameReader::new(),
        }
    }

    /// The next frame for `msg` (a new sequence number).
    pub fn frame(&mut self, msg: &HostMsg<'_>) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        encode_frame_vec(self.seq, msg).unwrap()
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        self.link.to_dev.borrow_mut().extend(bytes.iter().copied());
    }

    /// Polls until the device has consumed everything and says nothing more.
    pub fn pump<P: PowerMeter, S: StackMeter>(&self, fw: &mut Fw<'_, P, S>) {
        for _ in 0..100_000 {
            let before = self.link.from_dev.borrow().len();
            fw.poll().unwrap();
            if self.link.to_dev.borrow().is_empty() && self.link.from_dev.borrow().len() == before {
                return;
            }
        }
        panic!("device never went quiet");
    }

    /// Every frame the device sent since the last call (raw, no delimiter).
    pub fn raw_answers(&mut self) -> Vec<Vec<u8>> {
        let bytes = std::mem::take(&mut *self.link.from_dev.borrow_mut());
        let mut out = Vec::new();
        for b in bytes {
            if let Some(f) = self.reader.push(b) {
                out.push(f.expect("device frames fit").to_vec());
            }
        }
        out
    }

    pub fn answers(&mut self) -> Vec<Reply> {
        self.raw_answers()
            .into_iter()
            .map(|f| decode_reply(f).1)
            .collect()
    }

    /// Sends raw bytes, runs the device, returns its answers.
    pub fn exchange<P: PowerMeter, S: StackMeter>(
        &mut self,
        fw: &mut Fw<'_, P, S>,
        bytes: &[u8],
    ) -> Vec<Reply> {
        self.send_raw(bytes);
        self.pump(fw);
        self.answers()
    }

    /// Sends one request; exactly one answer must come back.
    pub fn ask<P: PowerMeter, S: StackMeter>(
        &mut self,
        fw: &mut Fw<'_, P, S>,
        msg: &HostMsg<'_>,
    ) -> Reply {
        let f = self.frame(msg);
        let mut a = self.exchange(fw, &f);
        assert_eq!(a.len(), 1, "one answer to {msg:?}, got {a:?}");
        a.remove(0)
    }

    pub fn ack<P: PowerMeter, S: StackMeter>(&mut self, fw: &mut Fw<'_, P, S>, msg: &HostMsg<'_>) {
        let seq = self.seq.wrapping_add(1);
        assert_eq!(self.ask(fw, msg), Reply::Ack(seq), "ack for {msg:?}");
    }

    /// The `Error` the device must answer to `msg`.
    pub fn refused<P: PowerMeter, S: StackMeter>(
        &mut self,
        fw: &mut Fw<'_, P, S>,
        msg: &HostMsg<'_>,
        code: ErrorCode,
        detail: u32,
    ) {
        let seq = self.seq.wrapping_add(1);
        assert_eq!(
            self.ask(fw, msg),
            Reply::Error { seq, code, detail },
            "refusal of {msg:?}"
        );
    }

    /// PlanBegin, every chunk (all acked), PlanCommit: the commit's answer.
    pub fn upload<P: PowerMeter, S: StackMeter>(
        &mut self,
        fw: &mut Fw<'_, P, S>,
        plan_id: u32,
        image: &[u8],
    ) -> Reply {
        self.ack(fw, &HostMsg::plan_begin(plan_id, image).unwrap());
        for c in plan_chunks(image) {
            self.ack(fw, &c);
        }
        self.ask(fw, &HostMsg::PlanCommit)
    }

    pub fn hello<P: PowerMeter, S: StackMeter>(
        &mut self,
        fw: &mut Fw<'_, P, S>,
    ) -> DeviceInfo<'static> {
        match self.ask(fw, &HostMsg::hello()) {
            Reply::Hello(d) => d,
            r => panic!("expected DeviceHello, got {r:?}"),
        }
    }

    pub fn record<P: PowerMeter, S: StackMeter>(
        &mut self,
        fw: &mut Fw<'_, P, S>,
        msg: &HostMsg<'_>,
    ) -> Rec {
        match self.ask(fw, msg) {
            Reply::Record(r) => r,
            r => panic!("expected Record for {msg:?}, got {r:?}"),
        }
    }

    pub fn summary<P: PowerMeter, S: StackMeter>(&mut self, fw: &mut Fw<'_, P, S>) -> BenchSummary {
        match self.ask(fw, &HostMsg::BenchEnd) {
            Reply::Summary(s) => s,
            r => panic!("expected BenchSummary, got {r:?}"),
        }
    }
}

/// A frame whose unstuffed bytes are `raw` (CRC and version as given).
pub fn stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; raw.len() + raw.len() / 254 + 2];
    let n = cobs_encode(raw, &mut out).unwrap();
    out.truncate(n);
    out.push(0);
    out
}

/// The unstuffed bytes of an encoded frame (delimiter included in `frame`).
pub fn unstuff(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..frame.len() - 1].to_vec();
    let n = cobs_decode_in_place(&mut f).unwrap();
    f.truncate(n);
    f
}

/// Re-seals an unstuffed frame with a correct CRC.
pub fn reseal(mut raw: Vec<u8>) -> Vec<u8> {
    let n = raw.len() - 4;
    let crc = crc32(&raw[..n]);
    raw[n..].copy_from_slice(&crc.to_le_bytes());
    stuff(&raw)
}

// ---------------------------------------------------------------- plans

/// Deterministic pseudo-random numbers.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 255) as i32 as i8).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        self.i8s(n).into_iter().map(|v| v as u8).collect()
    }
}

/// An int8 Dense plan `[1, n_in] → [1, n_out]`.
pub fn dense_i8(plan_id: u32, n_in: usize, n_out: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut b = PlanBuilder::new(Precision::Int8);
    let out_off = n_in.div_ceil(16) * 16;
    let x = b.add_activation(DType::I8, &[1, n_in as u32], 0, Quant::new(0.02, 3));
    let y = b.add_activation(
        DType::I8,
        &[1, n_out as u32],
        out_off as u32,
        Quant::new(0.1, -2),
    );
    let mut op = OpDesc::new(OpKind::Dense, x, y);
    op.weights = b.add_weights_i8(&[n_out as u32, n_in as u32], &rng.i8s(n_in * n_out));
    op.bias = b.add_bias_i32(&(0..n_out as i32).map(|i| i * 300 - 900).collect::<Vec<_>>());
    // acc * 2^31/(64 n_in) / 2^31: keeps logits spread inside int8.
    let m = (1i64 << 31) / (64 * n_in as i64);
    op.multipliers = b.add_i32_array(&vec![m as i32; n_out]);
    op.shifts = b.add_i32_array(&vec![0; n_out]);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size((out_off + n_out.div_ceil(16) * 16) as u32)
        .set_plan_id(plan_id);
    b.finish_checked().expect("test plan is valid")
}

/// An f32 Dense plan `[1, 8] → [1, 5]`.
pub fn dense_f32(plan_id: u32, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let w: Vec<f32> = (0..40)
        .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let mut b = PlanBuilder::new(Precision::F32);
    let x = b.add_activation(DType::F32, &[1, 8], 0, Quant::NONE);
    let y = b.add_activation(DType::F32, &[1, 5], 32, Quant::NONE);
    let mut op = OpDesc::new(OpKind::Dense, x, y);
    op.weights = b.add_weights_f32(&[5, 8], &w);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size(64)
        .set_plan_id(plan_id);
    b.finish_checked().expect("test plan is valid")
}

/// A plan that needs `arena` bytes of arena.
pub fn big_arena_plan(plan_id: u32, arena: u32) -> Vec<u8> {
    let mut b = PlanBuilder::new(Precision::Int8);
    let x = b.add_activation(DType::I8, &[1, 4], 0, Quant::new(0.02, 0));
    let y = b.add_activation(DType::I8, &[1, 2], 16, Quant::new(0.02, 0));
    let mut op = OpDesc::new(OpKind::Dense, x, y);
    op.weights = b.add_weights_i8(&[2, 4], &[1; 8]);
    op.multipliers = b.add_i32_array(&[1 << 30; 2]);
    op.shifts = b.add_i32_array(&[0; 2]);
    b.add_op(op);
    b.set_input(x)
        .set_output(y)
        .set_arena_size(arena)
        .set_plan_id(plan_id);
    b.finish_checked().expect("test plan is valid")
}

/// Runs `plan` on the host's engine.
pub fn reference(plan: &[u8], input: &[u8]) -> Vec<u8> {
    let plan = Plan::parse(plan).unwrap();
    let engine = Engine::new(&plan);
    let mut arena = vec![0u8; plan.arena_size()];
    engine.input_mut(&mut arena).unwrap().copy_from_slice(input);
    engine.run(&mut arena).unwrap();
    engine.output(&arena).unwrap().to_vec()
}

/// Arg-max of int8 logits, first on ties.
pub fn argmax_i8(v: &[u8]) -> u16 {
    let mut best = 0;
    for (i, &b) in v.iter().enumerate() {
        if (b as i8) > (v[best] as i8) {
            best = i;
        }
    }
    best as u16
}

pub fn info(plan_id: u32, image: &[u8], slot: u8) -> PlanInfo {
    PlanInfo {
        plan_id,
        size: image.len() as u32,
        crc32: crc32(image),
        slot,
    }
}

/// The generation stored in slot `slot`'s record (flash of FLASH_BYTES).
pub fn generation(flash: &[u8], slot: usize) -> u32 {
    let rec = (slot + 1) * FLASH_BYTES / 2 - 32;
    assert_eq!(&flash[rec..rec + 4], b"EFSR");
    u32::from_le_bytes(flash[rec + 8..rec + 12].try_into().unwrap())
}
