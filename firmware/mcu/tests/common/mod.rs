//! In-memory fakes for the firmware's traits, tiny real plans, and a host
//! that speaks the protocol to a `Firmware` through a byte queue.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use edgefit_engine::{DType, OpDesc, OpKind, PlanBuilder, Precision, Quant};
// Shared with the protocol scenarios; each test file uses some.
#[allow(unused_imports)]
pub use edgefit_conformance::{
    argmax_i8, bench_start, decode_reply, dense_f32, dense_i8, info, reference, reseal,
    split_frames, stuff, unstuff, Rec, Reply, Rng,
};
use edgefit_mcu::{
    BoardInfo, Clock, Firmware, NoPower, NoStackMeter, PowerMeter, RamFlash, StackMeter,
};
use edgefit_proto::{
    encode_frame_vec, plan_chunks, BenchSummary, DeviceInfo, ErrorCode, HostMsg, PowerSensorKind,
    TimingSource,
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

pub struct Host {
    pub link: Link,
    pub seq: u32,
}

impl Host {
    pub fn new() -> Self {
        Self {
            link: Link::default(),
            seq: 1000,
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
        split_frames(&bytes)
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

// ---------------------------------------------------------------- plans

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

/// The generation stored in slot `slot`'s record (flash of FLASH_BYTES).
pub fn generation(flash: &[u8], slot: usize) -> u32 {
    let rec = (slot + 1) * FLASH_BYTES / 2 - 32;
    assert_eq!(&flash[rec..rec + 4], b"EFSR");
    u32::from_le_bytes(flash[rec + 8..rec + 12].try_into().unwrap())
}
