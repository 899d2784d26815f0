//! Every message survives encode → FrameReader → decode, and the wire format
//! is pinned by golden frames.

use edgefit_proto::*;

fn host_msgs<'a>(big: &'a [u8], small: &'a [u8]) -> Vec<HostMsg<'a>> {
    vec![
        HostMsg::hello(),
        HostMsg::Hello {
            protocol_version: u16::MAX,
        },
        HostMsg::Ping { nonce: 0xDEAD_BEEF },
        HostMsg::PlanBegin {
            plan_id: 7,
            total_size: 123_456,
            crc32: 0xCBF4_3926,
        },
        HostMsg::PlanChunk {
            index: 0,
            offset: 0,
            data: big,
        },
        HostMsg::PlanChunk {
            index: u32::MAX,
            offset: u32::MAX,
            data: &[],
        },
        HostMsg::PlanCommit,
        HostMsg::PlanAbort,
        HostMsg::BenchStart {
            plan_id: Some(7),
            samples: 10_000,
            want_outputs: true,
            engine: Some(EngineKind::TractCuda),
        },
        HostMsg::BenchStart {
            plan_id: None,
            samples: 0,
            want_outputs: false,
            engine: None,
        },
        HostMsg::Sample {
            index: 3,
            data: small,
        },
        HostMsg::SampleChunk {
            index: 4,
            offset: 2048,
            data: big,
        },
        HostMsg::SampleRun {
            index: 4,
            total_len: 602_112,
        },
        HostMsg::BenchEnd,
        HostMsg::Reset,
        HostMsg::Auth { token: small },
        HostMsg::Auth { token: &[] },
    ]
}

fn plan() -> PlanInfo {
    PlanInfo {
        plan_id: 7,
        size: 40_000,
        crc32: 0x1234_5678,
        slot: 1,
    }
}

fn device_msgs<'a>(big: &'a [u8]) -> Vec<DeviceMsg<'a>> {
    let info = DeviceInfo {
        protocol_version: PROTOCOL_VERSION,
        engine_version: 3,
        board: "mps2-an386",
        core: "cortex-m4f",
        clock_hz: 25_000_000,
        ram_bytes: 4 << 20,
        flash_bytes: 4 << 20,
        plan_slot_bytes: 512 << 10,
        plan_slots: 2,
        arena_bytes: 256 << 10,
        power_sensor: PowerSensorKind::None,
        timing: TimingSource::QemuIcount,
        tick_hz: 25_000_000,
        active_plan: Some(plan()),
        engines: "native",
        accelerator: "",
    };
    let linux = DeviceInfo {
        board: "rpi5 ünïcode",
        core: "",
        ram_bytes: 16 << 30,
        flash_bytes: u64::MAX,
        power_sensor: PowerSensorKind::PiPmic,
        timing: TimingSource::MonotonicNs,
        tick_hz: 1_000_000_000,
        active_plan: None,
        engines: "native,tract-cpu,tract-cuda",
        accelerator: "none: CUDA driver not found (libcuda.so.1)",
        ..info
    };
    let summary = BenchSummary {
        plan_id: 7,
        slot: 1,
        samples: 1000,
        timing: TimingSource::DwtCycles,
        tick_hz: 168_000_000,
        clock_hz: 168_000_000,
        total_ticks: u64::MAX,
        min_ticks: 1,
        max_ticks: 2,
        arena_bytes_used: 12_345,
        stack_high_water_bytes: 2_048,
        power_sensor: PowerSensorKind::Ina226,
        energy_uj: Some(987_654_321),
        avg_power_mw: Some(120),
        idle_power_mw: None,
        engine: EngineKind::Native,
        peak_rss_bytes: None,
        gpu_memory_bytes: None,
    };
    let mut msgs = vec![
        DeviceMsg::DeviceHello(info),
        DeviceMsg::DeviceHello(linux),
        DeviceMsg::Pong { nonce: 1 },
        DeviceMsg::Ack { seq: u32::MAX },
        DeviceMsg::PlanStored(plan()),
        DeviceMsg::Record(BenchRecord {
            sample: 9,
            predicted: 3,
            ticks: 1 << 40,
            outputs: Some(big),
            energy_uj: Some(17),
        }),
        DeviceMsg::Record(BenchRecord {
            sample: 0,
            predicted: 0,
            ticks: 0,
            outputs: None,
            energy_uj: None,
        }),
        DeviceMsg::BenchSummary(summary),
        DeviceMsg::BenchSummary(BenchSummary {
            energy_uj: None,
            avg_power_mw: None,
            power_sensor: PowerSensorKind::None,
            ..summary
        }),
        DeviceMsg::BenchSummary(BenchSummary {
            engine: EngineKind::TractCuda,
            peak_rss_bytes: Some(u64::MAX),
            gpu_memory_bytes: Some(1 << 33),
            ..summary
        }),
        DeviceMsg::BenchSummary(BenchSummary {
            engine: EngineKind::TractCpu,
            peak_rss_bytes: Some(123_456_789),
            ..summary
        }),
    ];
    let codes = [
        ErrorCode::BadFrame,
        ErrorCode::BadCrc,
        ErrorCode::UnexpectedMessage,
        ErrorCode::PlanTooLarge,
        ErrorCode::ChunkOutOfOrder,
        ErrorCode::PlanCrcMismatch,
        ErrorCode::NoPlan,
        ErrorCode::BadSample,
        ErrorCode::ArenaTooSmall,
        ErrorCode::VersionMismatch,
        ErrorCode::Busy,
        ErrorCode::Unauthorized,
        ErrorCode::Internal,
        ErrorCode::BadPlan,
        ErrorCode::PlanMismatch,
        ErrorCode::Storage,
        ErrorCode::EngineUnavailable,
    ];
    msgs.extend(
        codes
            .iter()
            .enumerate()
            .map(|(i, &code)| DeviceMsg::error(i as u32, code, u32::MAX - i as u32)),
    );
    for kind in [
        PowerSensorKind::Ina219,
        PowerSensorKind::Ina3221,
        PowerSensorKind::Rapl,
        PowerSensorKind::Hwmon,
        PowerSensorKind::External,
    ] {
        msgs.push(DeviceMsg::BenchSummary(BenchSummary {
            power_sensor: kind,
            timing: TimingSource::SysTick,
            ..summary
        }));
    }
    msgs
}

// One checker per direction: `decode_frame::<M>` needs the borrowing type.
fn round_trip_host(seq: u32, msg: &HostMsg<'_>) {
    let mut out = [0u8; MAX_FRAME];
    let frame = encode_frame(seq, msg, &mut out).unwrap();
    check_frame_shape(frame);
    let mut reader: FrameReader = FrameReader::new();
    let (used, got) = reader.feed(frame);
    assert_eq!(used, frame.len());
    let (s, back) = decode_frame::<HostMsg>(got.expect("one frame").unwrap()).unwrap();
    assert_eq!((s, &back), (seq, msg));
}

fn round_trip_device(seq: u32, msg: &DeviceMsg<'_>) {
    let mut out = [0u8; MAX_FRAME];
    let frame = encode_frame(seq, msg, &mut out).unwrap();
    check_frame_shape(frame);
    let mut reader: FrameReader = FrameReader::new();
    let mut seen = 0;
    for &b in frame {
        if let Some(got) = reader.push(b) {
            let (s, back) = decode_frame::<DeviceMsg>(got.unwrap()).unwrap();
            assert_eq!((s, &back), (seq, msg));
            seen += 1;
        }
    }
    assert_eq!(seen, 1);
}

fn check_frame_shape(frame: &[u8]) {
    assert!(frame.len() <= MAX_FRAME);
    assert_eq!(frame.last(), Some(&0));
    assert!(
        !frame[..frame.len() - 1].contains(&0),
        "delimiter inside frame"
    );
}

#[test]
fn every_host_message_round_trips() {
    let big: Vec<u8> = (0..MAX_CHUNK).map(|i| (i * 7) as u8).collect();
    let small = [0u8; 784];
    let msgs = host_msgs(&big, &small);
    let mut kinds: Vec<u8> = msgs.iter().map(HostMsg::kind).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        (0..=12).collect::<Vec<_>>(),
        "a HostMsg variant is missing from the list"
    );
    for (i, m) in msgs.iter().enumerate() {
        round_trip_host(i as u32 * 0x0101_0101, m);
    }
}

#[test]
fn every_device_message_round_trips() {
    let big: Vec<u8> = (0..MAX_CHUNK).map(|i| (i % 251) as u8).collect();
    let msgs = device_msgs(&big);
    // Fails to compile when a variant is added, as a reminder to list it.
    let kind = |m: &DeviceMsg| match m {
        DeviceMsg::DeviceHello(_) => 0,
        DeviceMsg::Pong { .. } => 1,
        DeviceMsg::Ack { .. } => 2,
        DeviceMsg::PlanStored(_) => 3,
        DeviceMsg::Record(_) => 4,
        DeviceMsg::BenchSummary(_) => 5,
        DeviceMsg::Error { .. } => 6,
    };
    let mut kinds: Vec<u8> = msgs.iter().map(kind).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, (0..=6).collect::<Vec<_>>());
    for (i, m) in msgs.iter().enumerate() {
        round_trip_device(u32::MAX - i as u32, m);
    }
}

#[test]
fn many_frames_in_one_stream() {
    let big = vec![0u8; MAX_CHUNK];
    let small = [1u8; 784];
    let msgs = host_msgs(&big, &small);
    let mut stream = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let mut out = [0u8; MAX_FRAME];
        stream.extend_from_slice(encode_frame(i as u32, m, &mut out).unwrap());
    }
    let mut reader: FrameReader = FrameReader::new();
    let mut rest = &stream[..];
    let mut n = 0;
    while !rest.is_empty() {
        let (used, got) = reader.feed(rest);
        if let Some(got) = got {
            let (seq, m) = decode_frame::<HostMsg>(got.unwrap()).unwrap();
            assert_eq!((seq as usize, &m), (n, &msgs[n]));
            n += 1;
        }
        rest = &rest[used..];
    }
    assert_eq!(n, msgs.len());
}

#[test]
fn largest_messages_fit_in_max_frame() {
    // No zero bytes and maximal varints: the worst case for COBS and postcard.
    let data = [0xFFu8; MAX_CHUNK];
    let worst: [HostMsg; 3] = [
        HostMsg::PlanChunk {
            index: u32::MAX,
            offset: u32::MAX,
            data: &data,
        },
        HostMsg::SampleChunk {
            index: u32::MAX,
            offset: u32::MAX,
            data: &data,
        },
        HostMsg::Sample {
            index: u32::MAX,
            data: &data,
        },
    ];
    for m in &worst {
        let mut out = [0u8; MAX_FRAME];
        let frame = encode_frame(u32::MAX, m, &mut out).unwrap();
        assert!(frame.len() <= MAX_FRAME, "{} > {MAX_FRAME}", frame.len());
    }
    let record = DeviceMsg::Record(BenchRecord {
        sample: u32::MAX,
        predicted: u16::MAX,
        ticks: u64::MAX,
        outputs: Some(&data),
        energy_uj: Some(u32::MAX),
    });
    let mut out = [0u8; MAX_FRAME];
    assert!(encode_frame(u32::MAX, &record, &mut out).is_ok());
    // An exactly-sized buffer is enough for a small message too.
    let mut exact = [0u8; 16];
    let n = encode_frame(1, &HostMsg::PlanCommit, &mut exact)
        .unwrap()
        .len();
    let mut tight = vec![0u8; n + 2];
    assert_eq!(
        encode_frame(1, &HostMsg::PlanCommit, &mut tight).unwrap(),
        &exact[..n]
    );
}

#[test]
fn mnist_sample_is_one_frame_imagenet_f32_is_chunked() {
    let mnist = [0x80u8; 28 * 28];
    let parts: Vec<_> = sample_parts(0, &mnist).collect();
    assert_eq!(
        parts,
        vec![HostMsg::Sample {
            index: 0,
            data: &mnist
        }]
    );
    let imagenet = vec![0x3Fu8; 3 * 224 * 224 * 4];
    let parts = sample_parts(9, &imagenet);
    assert_eq!(parts.len(), 295);
    let parts: Vec<_> = parts.collect();
    assert_eq!(parts.len(), 295);
    assert_eq!(
        parts[294],
        HostMsg::SampleRun {
            index: 9,
            total_len: 602_112
        }
    );
    let mut out = [0u8; MAX_FRAME];
    for p in &parts {
        encode_frame(0, p, &mut out).unwrap();
    }
}

/// Golden frames: these bytes are the protocol (docs/protocol.md shows the
/// first two). Computed independently (Python zlib.crc32 and a textbook COBS).
/// A change here needs a PROTOCOL_VERSION bump.
#[test]
fn golden_frames() {
    let mut out = [0u8; MAX_FRAME];
    let ping = encode_frame(7, &HostMsg::Ping { nonce: 42 }, &mut out)
        .unwrap()
        .to_vec();
    assert_eq!(hex(&ping), "03 02 07 01 01 07 01 2a 78 06 56 d5 00");
    let chunk = HostMsg::PlanChunk {
        index: 1,
        offset: 2048,
        data: &[0xAA, 0x00, 0xBB],
    };
    let frame = encode_frame(0x0102_0304, &chunk, &mut out)
        .unwrap()
        .to_vec();
    assert_eq!(
        hex(&frame),
        "0c 02 04 03 02 01 03 01 80 10 03 aa 06 bb 98 f8 03 2a 00"
    );
    let ack = encode_frame(8, &DeviceMsg::Ack { seq: 7 }, &mut out)
        .unwrap()
        .to_vec();
    assert_eq!(hex(&ack), "03 02 08 01 01 07 02 07 1b bb f2 4a 00");
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
