//! Deterministic fuzzing: no input makes the decoder or the reader panic.

use edgefit_proto::*;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes; `zero_per_256` of them zero on average.
    fn bytes(&mut self, len: usize, zero_per_256: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let r = self.next();
                if r % 256 < zero_per_256 {
                    0
                } else {
                    (r >> 8) as u8 | 1
                }
            })
            .collect()
    }
}

/// Fuzz cases: `EDGEFIT_FUZZ_CASES` (`scripts/fuzz.sh` sets 10^6), else
/// `default` (seconds under `cargo test`).
fn cases(default: usize) -> usize {
    std::env::var("EDGEFIT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn decode_both(frame: &[u8]) {
    let mut a = frame.to_vec();
    let _ = decode_frame::<HostMsg>(&mut a);
    let mut b = frame.to_vec();
    let _ = decode_frame::<DeviceMsg>(&mut b);
}

/// Stuffed frame around `body` with a valid version and CRC, so the
/// postcard decoder itself sees random input.
fn valid_envelope(seq: u32, body: &[u8]) -> Vec<u8> {
    let mut raw = vec![PROTOCOL_VERSION as u8];
    raw.extend_from_slice(&seq.to_le_bytes());
    raw.extend_from_slice(body);
    let c = crc32(&raw);
    raw.extend_from_slice(&c.to_le_bytes());
    let mut out = vec![0u8; cobs_max_encoded_len(raw.len())];
    let n = cobs_encode(&raw, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn random_byte_soup_never_panics() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for i in 0..cases(20_000) {
        let len = match i % 4 {
            0 => rng.below(16),
            1 => rng.below(300),
            2 => rng.below(MAX_FRAME + 50),
            _ => rng.below(40),
        };
        let soup = rng.bytes(len, [0, 1, 8, 64][i % 4]);
        decode_both(&soup);
    }
}

#[test]
fn random_bodies_in_valid_envelopes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for i in 0..cases(20_000) {
        let len = if i % 10 == 0 {
            rng.below(MAX_MESSAGE)
        } else {
            rng.below(48)
        };
        let mut body = rng.bytes(len, 40);
        if let Some(first) = body.first_mut() {
            // Mostly valid variant tags, to get past the first byte.
            *first = (rng.below(14)) as u8;
        }
        let frame = valid_envelope(i as u32, &body);
        let mut a = frame.clone();
        if decode_frame::<HostMsg>(&mut a).is_ok() {
            decoded += 1;
        }
        let mut b = frame;
        if decode_frame::<DeviceMsg>(&mut b).is_ok() {
            decoded += 1;
        }
    }
    // The random bodies do exercise successful decodes too.
    assert!(decoded > 100, "only {decoded} decoded");
}

#[test]
fn mutated_valid_frames_never_panic_and_never_pass_crc_silently() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let data: Vec<u8> = (0..600u32).map(|i| (i * 31 % 256) as u8).collect();
    let msgs = [
        HostMsg::PlanChunk {
            index: 4,
            offset: 8192,
            data: &data,
        },
        HostMsg::Sample {
            index: 1,
            data: &data[..100],
        },
        HostMsg::BenchStart {
            plan_id: None,
            samples: 5,
            want_outputs: false,
            engine: None,
        },
        HostMsg::hello(),
    ];
    let mut out = [0u8; MAX_FRAME];
    for i in 0..cases(10_000) {
        let msg = &msgs[i % msgs.len()];
        let frame = encode_frame(i as u32, msg, &mut out).unwrap();
        let mut f = frame[..frame.len() - 1].to_vec();
        let flips = 1 + rng.below(3);
        for _ in 0..flips {
            let at = rng.below(f.len());
            f[at] ^= 1 << rng.below(8);
        }
        // Sometimes also cut or extend.
        match rng.below(6) {
            0 => f.truncate(rng.below(f.len() + 1)),
            1 => {
                let n = rng.below(8);
                f.extend(rng.bytes(n, 0));
            }
            _ => {}
        }
        // Damage to the stuffed bytes (bit flips, cuts, extra bytes) is always
        // caught, by the COBS, length or CRC check.
        if f == frame[..frame.len() - 1] {
            continue; // the flips cancelled out
        }
        assert!(
            decode_frame::<HostMsg>(&mut f).is_err(),
            "case {i} undetected"
        );
    }
}

#[test]
fn random_streams_through_the_reader_never_panic() {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    let mut reader = FrameReader::<MAX_FRAME>::new();
    let mut tiny = FrameReader::<8>::new();
    let mut frames = 0;
    for i in 0..2_000 {
        let n = rng.below(5_000);
        let mut chunk = rng.bytes(n, [1, 4, 32][i % 3]);
        if i % 5 == 0 {
            // A sender's leading delimiter closes whatever noise came before.
            chunk.push(0);
            let mut out = [0u8; MAX_FRAME];
            chunk.extend_from_slice(
                encode_frame(i as u32, &HostMsg::Ping { nonce: i as u32 }, &mut out).unwrap(),
            );
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let (used, got) = reader.feed(rest);
            if let Some(Ok(f)) = got {
                if let Ok((seq, HostMsg::Ping { nonce })) = decode_frame::<HostMsg>(f) {
                    assert_eq!(seq, nonce);
                    frames += 1;
                }
            }
            rest = &rest[used..];
        }
        for &b in &chunk {
            if let Some(Ok(f)) = tiny.push(b) {
                assert!(f.len() <= 8 && !f.is_empty());
            }
        }
    }
    assert_eq!(
        frames, 400,
        "every delimited ping is recovered from the noise"
    );
}

/// Valid encodings of every message kind, both ways.
fn every_message() -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
    let host = [
        HostMsg::hello(),
        HostMsg::Ping { nonce: 9 },
        HostMsg::PlanBegin {
            plan_id: 7,
            total_size: 4096,
            crc32: 0xDEAD_BEEF,
        },
        HostMsg::PlanChunk {
            index: 3,
            offset: 1024,
            data: &data,
        },
        HostMsg::PlanCommit,
        HostMsg::PlanAbort,
        HostMsg::BenchStart {
            plan_id: Some(7),
            samples: 300,
            want_outputs: true,
            engine: Some(EngineKind::TractCpu),
        },
        HostMsg::Sample {
            index: 2,
            data: &data[..64],
        },
        HostMsg::SampleChunk {
            index: 2,
            offset: 64,
            data: &data[..32],
        },
        HostMsg::SampleRun {
            index: 2,
            total_len: 96,
        },
        HostMsg::BenchEnd,
        HostMsg::Reset,
        HostMsg::Auth { token: b"secret" },
    ];
    let device = [
        DeviceMsg::Ack { seq: 4 },
        DeviceMsg::Pong { nonce: 9 },
        DeviceMsg::error(4, ErrorCode::BadPlan, 26),
        DeviceMsg::Record(BenchRecord {
            sample: 2,
            predicted: 7,
            ticks: 123_456,
            outputs: Some(&data[..40]),
            energy_uj: Some(17),
        }),
        DeviceMsg::BenchSummary(BenchSummary {
            plan_id: 7,
            slot: 1,
            samples: 300,
            timing: TimingSource::MonotonicNs,
            tick_hz: 1_000_000_000,
            clock_hz: 2_000_000_000,
            total_ticks: 9_000_000,
            min_ticks: 20_000,
            max_ticks: 40_000,
            arena_bytes_used: 4096,
            stack_high_water_bytes: 0,
            power_sensor: PowerSensorKind::Ina3221,
            energy_uj: Some(5000),
            avg_power_mw: Some(700),
            idle_power_mw: Some(300),
            engine: EngineKind::Native,
            peak_rss_bytes: Some(1 << 24),
            gpu_memory_bytes: None,
        }),
        DeviceMsg::PlanStored(PlanInfo {
            plan_id: 7,
            size: 4096,
            crc32: 0xDEAD_BEEF,
            slot: 0,
        }),
        DeviceMsg::DeviceHello(DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            engine_version: 1,
            board: "board",
            core: "cortex-m4",
            clock_hz: 25_000_000,
            ram_bytes: 1 << 22,
            flash_bytes: 1 << 22,
            plan_slot_bytes: 1 << 20,
            plan_slots: 2,
            arena_bytes: 1 << 18,
            power_sensor: PowerSensorKind::None,
            timing: TimingSource::DwtCycles,
            tick_hz: 25_000_000,
            active_plan: None,
            engines: "native",
            accelerator: "",
        }),
    ];
    let mut out = [0u8; MAX_FRAME];
    let mut bodies = Vec::new();
    for m in &host {
        bodies.push(encode_frame(1, m, &mut out).unwrap().to_vec());
    }
    for m in &device {
        bodies.push(encode_frame(1, m, &mut out).unwrap().to_vec());
    }
    bodies
}

/// The message inside a valid frame: COBS undone, version, seq and CRC
/// stripped.
fn body_of(frame: &[u8]) -> Vec<u8> {
    let mut raw = frame[..frame.len() - 1].to_vec();
    let n = cobs_decode_in_place(&mut raw).unwrap();
    raw[5..n - 4].to_vec()
}

/// Mutated messages of every kind, re-wrapped in a valid envelope (version,
/// CRC) so the message decoder itself meets them: never a panic, and what
/// decodes encodes again.
#[test]
fn mutated_messages_of_every_kind_in_valid_envelopes_never_panic() {
    let bodies: Vec<Vec<u8>> = every_message().iter().map(|f| body_of(f)).collect();
    let mut rng = XorShift(0x5DEE_CE66_D1CE_F00D);
    let mut decoded = 0;
    let mut out = vec![0u8; MAX_FRAME];
    for i in 0..cases(20_000) {
        let mut body = bodies[i % bodies.len()].clone();
        match rng.below(5) {
            // Bit flips.
            0 | 1 => {
                for _ in 0..1 + rng.below(4) {
                    if !body.is_empty() {
                        let at = rng.below(body.len());
                        body[at] ^= 1 << rng.below(8);
                    }
                }
            }
            // A byte set to a boundary value (varint lengths, tags).
            2 => {
                if !body.is_empty() {
                    let at = rng.below(body.len());
                    body[at] = [0x00, 0x01, 0x7F, 0x80, 0xFF][rng.below(5)];
                }
            }
            // Cut short.
            3 => body.truncate(rng.below(body.len() + 1)),
            // Junk appended.
            _ => {
                let n = 1 + rng.below(16);
                body.extend(rng.bytes(n, 16));
            }
        }
        let frame = valid_envelope(i as u32, &body);
        let mut a = frame.clone();
        if let Ok((seq, msg)) = decode_frame::<HostMsg>(&mut a) {
            decoded += 1;
            assert!(
                encode_frame(seq, &msg, &mut out).is_ok(),
                "case {i}: {msg:?}"
            );
        }
        let mut b = frame;
        if let Ok((seq, msg)) = decode_frame::<DeviceMsg>(&mut b) {
            decoded += 1;
            assert!(
                encode_frame(seq, &msg, &mut out).is_ok(),
                "case {i}: {msg:?}"
            );
        }
    }
    assert!(decoded > 100, "only {decoded} decoded");
}
