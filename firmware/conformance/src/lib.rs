//! edgefit's device protocol, tested once for every device.
//!
//! The firmware and the Linux agent drive the same session state machine
//! (`edgefit_proto::Session`); the scenarios here check what a host sees of
//! it — answers, refusals and their details, retransmissions, chunked
//! transfers, outputs equal to the host's engine — through a [`Target`]: a
//! device behind its real link code (the firmware's UART framing over a
//! byte queue, the agent over a TCP socket). [`conformance_tests!`] makes
//! one `#[test]` per scenario for a target.
//!
//! The owned [`Reply`], the frame helpers and the test plans are shared
//! with the firmware's own tests.

use edgefit_engine::{DType, Engine, OpDesc, OpKind, Plan, PlanBuilder, Precision, Quant};
use edgefit_proto::{
    cobs_decode_in_place, cobs_encode, crc32, decode_frame, encode_frame_vec, plan_chunks,
    sample_parts, BenchSummary, DeviceInfo, DeviceMsg, ErrorCode, FrameReader, HostMsg, PlanInfo,
    MAX_FRAME, PROTOCOL_VERSION,
};

// ---------------------------------------------------------------- target

/// A device behind its link.
pub trait Target {
    /// Sends `bytes`, lets the device answer, and returns the frames it sent
    /// (without delimiters): `frames` of them, which a device that answers
    /// more or fewer fails.
    fn exchange(&mut self, bytes: &[u8], frames: usize) -> Vec<Vec<u8>>;
}

/// Splits a device's bytes into frames (without delimiters).
pub fn split_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = FrameReader::<MAX_FRAME>::new();
    let mut out = Vec::new();
    for &b in bytes {
        if let Some(f) = reader.push(b) {
            out.push(f.expect("device frames fit").to_vec());
        }
    }
    out
}

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

/// A host speaking to a [`Target`], numbering its frames from 1001.
pub struct Host<T> {
    pub target: T,
    pub seq: u32,
}

impl<T: Target> Host<T> {
    pub fn new(target: T) -> Self {
        Self { target, seq: 1000 }
    }

    /// The next frame for `msg` (a new sequence number).
    pub fn frame(&mut self, msg: &HostMsg<'_>) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        encode_frame_vec(self.seq, msg).expect("host frames encode")
    }

    /// Sends raw bytes; `frames` answers must come back.
    pub fn exchange(&mut self, bytes: &[u8], frames: usize) -> Vec<Reply> {
        self.target
            .exchange(bytes, frames)
            .into_iter()
            .map(|f| decode_reply(f).1)
            .collect()
    }

    /// Sends one request; exactly one answer must come back.
    pub fn ask(&mut self, msg: &HostMsg<'_>) -> Reply {
        let f = self.frame(msg);
        let mut a = self.exchange(&f, 1);
        assert_eq!(a.len(), 1, "one answer to {msg:?}, got {a:?}");
        a.remove(0)
    }

    pub fn ack(&mut self, msg: &HostMsg<'_>) {
        let seq = self.seq.wrapping_add(1);
        assert_eq!(self.ask(msg), Reply::Ack(seq), "ack for {msg:?}");
    }

    /// The `Error` the device must answer to `msg`.
    pub fn refused(&mut self, msg: &HostMsg<'_>, code: ErrorCode, detail: u32) {
        let seq = self.seq.wrapping_add(1);
        assert_eq!(
            self.ask(msg),
            Reply::Error { seq, code, detail },
            "refusal of {msg:?}"
        );
    }

    /// PlanBegin, every chunk (all acked), PlanCommit: the commit's answer.
    pub fn upload(&mut self, plan_id: u32, image: &[u8]) -> Reply {
        self.ack(&HostMsg::plan_begin(plan_id, image).expect("a plan image"));
        for c in plan_chunks(image) {
            self.ack(&c);
        }
        self.ask(&HostMsg::PlanCommit)
    }

    pub fn hello(&mut self) -> DeviceInfo<'static> {
        match self.ask(&HostMsg::hello()) {
            Reply::Hello(d) => d,
            r => panic!("expected DeviceHello, got {r:?}"),
        }
    }

    pub fn record(&mut self, msg: &HostMsg<'_>) -> Rec {
        match self.ask(msg) {
            Reply::Record(r) => r,
            r => panic!("expected Record for {msg:?}, got {r:?}"),
        }
    }

    pub fn summary(&mut self) -> BenchSummary {
        match self.ask(&HostMsg::BenchEnd) {
            Reply::Summary(s) => s,
            r => panic!("expected BenchSummary, got {r:?}"),
        }
    }
}

pub fn bench_start(plan_id: Option<u32>, want_outputs: bool) -> HostMsg<'static> {
    HostMsg::BenchStart {
        plan_id,
        samples: 3,
        want_outputs,
        engine: None,
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
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| (self.next_u64() % 255) as i32 as i8)
            .collect()
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
        .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
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

// ---------------------------------------------------------------- scenarios

/// Defines one `#[test]` per scenario, each on a fresh device from
/// `$fresh` (an expression giving a [`Target`]).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:expr) => {
        $crate::conformance_tests!(@each $fresh;
            hello_of_another_version_is_refused,
            records_match_the_host_engine,
            records_without_outputs_and_f32_argmax,
            samples_in_the_wrong_state_or_size,
            large_samples_arrive_in_chunks,
            chunks_out_of_order,
            retransmitted_requests_are_answered_once,
            hello_ping_and_abort_keep_a_benchmark,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::$name(&mut $crate::Host::new($fresh));
            }
        )*
    };
}

/// A host of another protocol version is told this one, for a `Hello` and
/// for a frame of another version (refused before decoding, naming the
/// last frame that decoded).
pub fn hello_of_another_version_is_refused<T: Target>(host: &mut Host<T>) {
    let msg = HostMsg::Hello {
        protocol_version: PROTOCOL_VERSION + 1,
    };
    host.refused(&msg, ErrorCode::VersionMismatch, PROTOCOL_VERSION.into());
    let mut raw = unstuff(&host.frame(&HostMsg::Ping { nonce: 1 }));
    raw[0] = 9;
    let answers = host.exchange(&reseal(raw), 1);
    assert_eq!(
        answers,
        vec![Reply::Error {
            seq: host.seq - 1,
            code: ErrorCode::VersionMismatch,
            detail: PROTOCOL_VERSION.into()
        }]
    );
    let d = host.hello();
    assert_eq!(d.protocol_version, PROTOCOL_VERSION);
    assert_eq!(d.engine_version, edgefit_engine::FORMAT_VERSION);
    assert_eq!(d.plan_slots, 2);
    assert_eq!(d.active_plan, None);
    assert_eq!(host.ask(&HostMsg::Ping { nonce: 77 }), Reply::Pong(77));
}

/// An int8 plan uploaded in several chunks: stored and active, and every
/// record's outputs are the host engine's bytes; the summary counts them.
pub fn records_match_the_host_engine<T: Target>(host: &mut Host<T>) {
    let plan = dense_i8(0x51, 300, 10, 1);
    assert!(plan.len() > 2048, "several chunks");
    assert_eq!(
        host.upload(0x51, &plan),
        Reply::Stored(info(0x51, &plan, 0))
    );
    assert_eq!(host.hello().active_plan, Some(info(0x51, &plan, 0)));
    host.ack(&bench_start(Some(0x51), true));
    let mut rng = Rng(9);
    let mut predicted = Vec::new();
    for i in 0..4 {
        let x = rng.bytes(300);
        let want = reference(&plan, &x);
        let r = host.record(&HostMsg::Sample { index: i, data: &x });
        assert_eq!(r.sample, i);
        assert_eq!(r.outputs.as_deref(), Some(&want[..]));
        assert_eq!(r.predicted, argmax_i8(&want));
        predicted.push(r.predicted);
    }
    assert!(
        predicted.iter().any(|&p| p != predicted[0]),
        "degenerate plan: {predicted:?}"
    );
    let s = host.summary();
    assert_eq!((s.plan_id, s.slot, s.samples), (0x51, 0, 4));
    assert!(s.min_ticks <= s.max_ticks && s.max_ticks <= s.total_ticks);
    assert_eq!(
        s.arena_bytes_used as usize,
        Plan::parse(&plan).expect("a plan").arena_size()
    );
    assert_eq!(s.engine, edgefit_proto::EngineKind::Native);
    // The benchmark is over.
    host.refused(&HostMsg::BenchEnd, ErrorCode::UnexpectedMessage, 10);
}

pub fn records_without_outputs_and_f32_argmax<T: Target>(host: &mut Host<T>) {
    let plan = dense_f32(3, 4);
    assert!(matches!(host.upload(3, &plan), Reply::Stored(_)));
    host.ack(&bench_start(None, false));
    let mut rng = Rng(5);
    for i in 0..5 {
        let x: Vec<u8> = (0..8)
            .flat_map(|_| ((rng.next_u64() % 2001) as f32 / 500.0 - 2.0).to_le_bytes())
            .collect();
        let want = reference(&plan, &x);
        let logits: Vec<f32> = want
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let best = (0..logits.len()).fold(0, |b, j| if logits[j] > logits[b] { j } else { b });
        let r = host.record(&HostMsg::Sample { index: i, data: &x });
        assert_eq!(r.outputs, None);
        assert_eq!(r.predicted as usize, best, "{logits:?}");
    }
    assert_eq!(host.summary().samples, 5);
}

pub fn samples_in_the_wrong_state_or_size<T: Target>(host: &mut Host<T>) {
    host.refused(&bench_start(None, false), ErrorCode::NoPlan, 0);
    let plan = dense_i8(70, 16, 4, 1);
    host.upload(70, &plan);
    let sample = HostMsg::Sample {
        index: 0,
        data: &[0; 16],
    };
    host.refused(&sample, ErrorCode::UnexpectedMessage, 7);
    host.refused(&HostMsg::BenchEnd, ErrorCode::UnexpectedMessage, 10);
    host.refused(&bench_start(Some(71), false), ErrorCode::PlanMismatch, 70);
    host.ack(&bench_start(Some(70), false));
    host.refused(
        &HostMsg::Sample {
            index: 0,
            data: &[0; 15],
        },
        ErrorCode::BadSample,
        16,
    );
    host.refused(
        &HostMsg::Sample {
            index: 0,
            data: &[0; 17],
        },
        ErrorCode::BadSample,
        16,
    );
    host.refused(&HostMsg::PlanCommit, ErrorCode::UnexpectedMessage, 4);
    host.record(&sample);
    // Reset ends the benchmark.
    host.ack(&HostMsg::Reset);
    host.refused(&sample, ErrorCode::UnexpectedMessage, 7);
    // PlanBegin during a benchmark ends it too.
    host.ack(&bench_start(None, false));
    host.ack(&HostMsg::plan_begin(72, &plan).expect("a plan image"));
    host.refused(&sample, ErrorCode::UnexpectedMessage, 7);
}

pub fn large_samples_arrive_in_chunks<T: Target>(host: &mut Host<T>) {
    let n_in = 5000;
    let plan = dense_i8(80, n_in, 3, 5);
    assert!(matches!(host.upload(80, &plan), Reply::Stored(_)));
    host.ack(&bench_start(Some(80), true));
    let mut rng = Rng(11);
    for i in 0..2 {
        let x = rng.bytes(n_in);
        let parts: Vec<_> = sample_parts(i, &x).collect();
        assert_eq!(parts.len(), 4);
        for p in &parts[..3] {
            host.ack(p);
        }
        let r = host.record(&parts[3]);
        assert_eq!(r.sample, i);
        assert_eq!(r.outputs, Some(reference(&plan, &x)));
    }
    let x = rng.bytes(n_in);
    let parts: Vec<_> = sample_parts(2, &x).collect();
    // A run without all chunks, chunks out of order, a wrong total.
    host.ack(&parts[0]);
    host.refused(&parts[2], ErrorCode::ChunkOutOfOrder, 2048);
    host.refused(&parts[3], ErrorCode::BadSample, n_in as u32);
    host.refused(&parts[1], ErrorCode::ChunkOutOfOrder, 0);
    for p in &parts[..3] {
        host.ack(p);
    }
    let wrong_total = HostMsg::SampleRun {
        index: 2,
        total_len: 4999,
    };
    host.refused(&wrong_total, ErrorCode::BadSample, n_in as u32);
    // A chunk of another sample's index.
    host.ack(&parts[0]);
    let other = HostMsg::SampleChunk {
        index: 9,
        offset: 2048,
        data: &x[2048..4096],
    };
    host.refused(&other, ErrorCode::BadSample, n_in as u32);
    assert_eq!(host.summary().samples, 2);
}

pub fn chunks_out_of_order<T: Target>(host: &mut Host<T>) {
    let plan = dense_i8(60, 300, 10, 3);
    let chunks: Vec<_> = plan_chunks(&plan).collect();
    host.ack(&HostMsg::plan_begin(60, &plan).expect("a plan image"));
    host.refused(&chunks[1], ErrorCode::ChunkOutOfOrder, 0);
    host.ack(&chunks[0]);
    // The same chunk again under a new seq is not appended twice.
    host.refused(&chunks[0], ErrorCode::ChunkOutOfOrder, 2048);
    // Committing early: the upload stays open.
    host.refused(&HostMsg::PlanCommit, ErrorCode::ChunkOutOfOrder, 2048);
    for c in &chunks[1..] {
        host.ack(c);
    }
    assert_eq!(
        host.ask(&HostMsg::PlanCommit),
        Reply::Stored(info(60, &plan, 0))
    );
}

pub fn retransmitted_requests_are_answered_once<T: Target>(host: &mut Host<T>) {
    let plan = dense_i8(110, 300, 10, 3);
    host.ack(&HostMsg::plan_begin(110, &plan).expect("a plan image"));
    for c in plan_chunks(&plan) {
        let f = host.frame(&c);
        let first = host.target.exchange(&f, 1);
        // The answer was "lost": the same bytes again.
        let again = host.target.exchange(&f, 1);
        assert_eq!(first, again, "the same answer, byte for byte");
    }
    assert_eq!(
        host.ask(&HostMsg::PlanCommit),
        Reply::Stored(info(110, &plan, 0))
    );

    host.ack(&bench_start(None, true));
    let x = [5u8; 300];
    let f = host.frame(&HostMsg::Sample { index: 0, data: &x });
    for _ in 0..3 {
        let a = host.exchange(&f, 1);
        assert!(
            matches!(&a[..], [Reply::Record(r)] if r.sample == 0),
            "{a:?}"
        );
    }
    // A retransmission after a damaged frame still gets the kept answer.
    let mut raw = unstuff(&f);
    raw[20] ^= 1;
    let a = host.exchange(&stuff(&raw), 1);
    assert!(matches!(
        a[..],
        [Reply::Error {
            code: ErrorCode::BadCrc,
            ..
        }]
    ));
    let a = host.exchange(&f, 1);
    assert!(matches!(&a[..], [Reply::Record(_)]), "{a:?}");
    let s = host.summary();
    assert_eq!(s.samples, 1, "run once");
}

/// `Hello`, `Ping`, `Auth` (no token set) and `PlanAbort` during a
/// benchmark are answered and leave it running; `PlanChunk` is refused.
pub fn hello_ping_and_abort_keep_a_benchmark<T: Target>(host: &mut Host<T>) {
    let plan = dense_i8(120, 16, 4, 6);
    assert!(matches!(host.upload(120, &plan), Reply::Stored(_)));
    host.ack(&bench_start(None, true));
    let x = [3u8; 16];
    let r = host.record(&HostMsg::Sample { index: 0, data: &x });
    assert_eq!(r.outputs, Some(reference(&plan, &x)));
    assert_eq!(host.hello().active_plan, Some(info(120, &plan, 0)));
    assert_eq!(host.ask(&HostMsg::Ping { nonce: 5 }), Reply::Pong(5));
    host.ack(&HostMsg::Auth { token: b"any" });
    host.ack(&HostMsg::PlanAbort);
    let chunk = HostMsg::PlanChunk {
        index: 0,
        offset: 0,
        data: &[0; 4],
    };
    host.refused(&chunk, ErrorCode::UnexpectedMessage, 3);
    let r = host.record(&HostMsg::Sample { index: 1, data: &x });
    assert_eq!(r.sample, 1);
    assert_eq!(host.summary().samples, 2);
}
