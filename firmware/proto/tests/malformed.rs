//! Each class of malformed frame is reported as such, and a FrameReader
//! resynchronises after it.

use edgefit_proto::*;

/// This build's version, as the frame header carries it.
const V: u8 = PROTOCOL_VERSION as u8;

/// Stuffs a hand-made unstuffed frame (no delimiter appended).
fn stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; cobs_max_encoded_len(raw.len())];
    let n = cobs_encode(raw, &mut out).unwrap();
    out.truncate(n);
    out
}

/// An unstuffed frame: version, seq, body, CRC (computed unless given).
fn raw(version: u8, seq: u32, body: &[u8], crc: Option<u32>) -> Vec<u8> {
    let mut r = vec![version];
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(body);
    let c = crc.unwrap_or_else(|| crc32(&r));
    r.extend_from_slice(&c.to_le_bytes());
    r
}

fn postcard_of(msg: &HostMsg) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE];
    postcard::to_slice(msg, &mut buf).unwrap().to_vec()
}

fn encode(seq: u32, msg: &HostMsg) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    encode_frame(seq, msg, &mut out).unwrap().to_vec()
}

fn decode_host(mut frame: Vec<u8>) -> Result<(u32, HostMsg<'static>), ProtoError> {
    // Leak so the borrowed message can outlive this helper (tests only).
    let frame: &'static mut [u8] = Box::leak(std::mem::take(&mut frame).into_boxed_slice());
    decode_frame::<HostMsg>(frame)
}

/// All events a fresh reader produces for `stream`.
fn events(stream: &[u8]) -> Vec<Result<(u32, HostMsg<'static>), ProtoError>> {
    let mut reader: FrameReader = FrameReader::new();
    let mut out = Vec::new();
    for &b in stream {
        if let Some(r) = reader.push(b) {
            out.push(r.and_then(|f| decode_host(f.to_vec())));
        }
    }
    out
}

#[test]
fn bad_crc() {
    let body = postcard_of(&HostMsg::Ping { nonce: 1 });
    let good = raw(V, 5, &body, None);
    let computed = crc32(&good[..good.len() - 4]);
    let bad = raw(V, 5, &body, Some(computed ^ 0x8000_0000));
    assert_eq!(
        decode_host(stuff(&bad)),
        Err(ProtoError::Crc {
            expected: computed ^ 0x8000_0000,
            computed
        })
    );
    // A flipped payload bit, with valid stuffing.
    let mut flipped = good.clone();
    flipped[6] ^= 0x04;
    assert!(matches!(
        decode_host(stuff(&flipped)),
        Err(ProtoError::Crc { .. })
    ));
    // Every single-bit flip of an encoded frame is caught (CRC or stuffing).
    let frame = encode(
        9,
        &HostMsg::BenchStart {
            plan_id: Some(3),
            samples: 100,
            want_outputs: true,
            engine: None,
        },
    );
    let body_len = frame.len() - 1;
    for i in 0..body_len * 8 {
        let mut f = frame[..body_len].to_vec();
        f[i / 8] ^= 1 << (i % 8);
        assert!(decode_host(f).is_err(), "bit {i} flip undetected");
    }
}

#[test]
fn truncated() {
    for n in 0..MIN_RAW {
        let short: Vec<u8> = (1..=n as u8).collect();
        assert_eq!(
            decode_host(stuff(&short)),
            Err(ProtoError::Truncated {
                len: n,
                min: MIN_RAW
            }),
            "len {n}"
        );
    }
    // A frame cut short in transit: never accepted.
    let frame = encode(
        3,
        &HostMsg::PlanChunk {
            index: 0,
            offset: 0,
            data: &[7; 300],
        },
    );
    for cut in 1..frame.len() - 1 {
        assert!(decode_host(frame[..cut].to_vec()).is_err(), "cut at {cut}");
    }
}

#[test]
fn bad_cobs() {
    let frame = encode(1, &HostMsg::Ping { nonce: 0x0101_0101 });
    // Code byte pointing past the end.
    let mut f = frame[..frame.len() - 1].to_vec();
    f[0] = 0xFE;
    assert_eq!(decode_host(f), Err(ProtoError::Cobs));
    // A zero inside (only possible when the caller did not split at zeros).
    let mut f = frame[..frame.len() - 1].to_vec();
    f[2] = 0;
    assert_eq!(decode_host(f), Err(ProtoError::Cobs));
}

#[test]
fn empty_frames_are_skipped_by_the_reader_and_truncated_for_decode() {
    assert_eq!(
        decode_host(Vec::new()),
        Err(ProtoError::Truncated {
            len: 0,
            min: MIN_RAW
        })
    );
    let mut stream = vec![0, 0, 0];
    stream.extend(encode(4, &HostMsg::Reset));
    stream.extend([0, 0]);
    assert_eq!(events(&stream), vec![Ok((4, HostMsg::Reset))]);
}

#[test]
fn overlong_frame_reports_once_and_resyncs() {
    let mut stream = vec![0x55u8; MAX_FRAME * 3 + 17];
    stream.push(0);
    stream.extend(encode(2, &HostMsg::PlanCommit));
    stream.extend(encode(3, &HostMsg::PlanAbort));
    let ev = events(&stream);
    assert_eq!(
        ev,
        vec![
            Err(ProtoError::FrameTooLarge {
                len: MAX_FRAME * 3 + 17,
                max: MAX_FRAME
            }),
            Ok((2, HostMsg::PlanCommit)),
            Ok((3, HostMsg::PlanAbort)),
        ]
    );
    // Exactly N bytes still fit a reader; N + 1 do not.
    let mut small = FrameReader::<4>::new();
    for b in [1, 2, 3, 4] {
        assert!(small.push(b).is_none());
    }
    assert_eq!(small.push(0).unwrap().unwrap(), &[1, 2, 3, 4]);
    for b in [1, 2, 3, 4, 5] {
        assert!(small.push(b).is_none());
    }
    assert_eq!(small.pending(), 5);
    assert_eq!(
        small.push(0).unwrap().unwrap_err(),
        ProtoError::FrameTooLarge { len: 5, max: 4 }
    );
    assert_eq!(small.pending(), 0);
    // decode_frame refuses an oversized slice before looking at it.
    assert_eq!(
        decode_host(vec![1; MAX_FRAME]),
        Err(ProtoError::FrameTooLarge {
            len: MAX_FRAME,
            max: MAX_FRAME - 1
        })
    );
}

#[test]
fn garbage_between_frames() {
    let a = encode(1, &HostMsg::Ping { nonce: 1 });
    let b = encode(2, &HostMsg::Ping { nonce: 2 });
    let c = encode(3, &HostMsg::Ping { nonce: 3 });
    let garbage = [0x13u8, 0x37, 0xFF, 0x80, 0x01, 0x02];

    // Garbage closed by a delimiter: one bad frame, nothing lost.
    let mut stream = a.clone();
    stream.extend(garbage);
    stream.push(0);
    stream.extend(&b);
    let ev = events(&stream);
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0], Ok((1, HostMsg::Ping { nonce: 1 })));
    assert!(ev[1].is_err());
    assert_eq!(ev[2], Ok((2, HostMsg::Ping { nonce: 2 })));

    // Garbage glued to the next frame: that frame is lost, the one after is fine.
    let mut stream = a.clone();
    stream.extend(garbage);
    stream.extend(&b);
    stream.extend(&c);
    let ev = events(&stream);
    assert_eq!(ev.len(), 3);
    assert!(ev[1].is_err());
    assert_eq!(ev[2], Ok((3, HostMsg::Ping { nonce: 3 })));

    // Garbage before the first frame, e.g. a boot banner.
    let mut stream = b"boot v1.2\r\n".to_vec();
    stream.push(0);
    stream.extend(&c);
    let ev = events(&stream);
    assert!(ev[0].is_err());
    assert_eq!(ev[1], Ok((3, HostMsg::Ping { nonce: 3 })));
}

#[test]
fn wrong_version_is_reported_before_decoding() {
    let body = postcard_of(&HostMsg::Hello {
        protocol_version: 3,
    });
    let err = decode_host(stuff(&raw(3, 0, &body, None))).unwrap_err();
    assert_eq!(
        err,
        ProtoError::VersionMismatch {
            peer: 3,
            local: PROTOCOL_VERSION
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("peer speaks v3") && text.contains("upgrade this side"),
        "{text}"
    );
    // Even a body this version cannot parse gets the version error.
    let err = decode_host(stuff(&raw(0, 0, &[0xEE; 40], None))).unwrap_err();
    assert_eq!(
        err,
        ProtoError::VersionMismatch {
            peer: 0,
            local: PROTOCOL_VERSION
        }
    );
    assert!(err.to_string().contains("reflash"));
    // Hello-level check.
    let info = DeviceInfo {
        protocol_version: 9,
        engine_version: 1,
        board: "b",
        core: "c",
        clock_hz: 1,
        ram_bytes: 1,
        flash_bytes: 1,
        plan_slot_bytes: 1,
        plan_slots: 1,
        arena_bytes: 1,
        power_sensor: PowerSensorKind::None,
        timing: TimingSource::SysTick,
        tick_hz: 1,
        active_plan: None,
        engines: "native",
        accelerator: "",
    };
    assert_eq!(
        info.check_version(),
        Err(ProtoError::VersionMismatch {
            peer: 9,
            local: PROTOCOL_VERSION
        })
    );
    assert_eq!(
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            ..info
        }
        .check_version(),
        Ok(())
    );
}

#[test]
fn trailing_bytes() {
    let mut body = postcard_of(&HostMsg::Ping { nonce: 7 });
    body.extend([0xAB, 0xCD]);
    assert_eq!(
        decode_host(stuff(&raw(V, 0, &body, None))),
        Err(ProtoError::TrailingBytes { extra: 2 })
    );
}

#[test]
fn undecodable_messages() {
    // Unknown variant, short body, bad bool, overlong varint.
    for body in [
        &[200u8][..],
        &[3, 1],
        &[6, 1, 7, 0, 2],
        &[1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
        &[],
    ] {
        assert!(
            matches!(
                decode_host(stuff(&raw(V, 0, body, None))),
                Err(ProtoError::Decode(_))
            ),
            "{body:02x?}"
        );
    }
    // A chunk claiming more data than the frame holds.
    assert!(matches!(
        decode_host(stuff(&raw(V, 0, &[3, 0, 0, 0x80, 0x10, 1, 2], None))),
        Err(ProtoError::Decode(_))
    ));
    // Invalid UTF-8 in a device string.
    let hello = DeviceMsg::DeviceHello(DeviceInfo {
        protocol_version: 1,
        engine_version: 1,
        board: "AB",
        core: "c",
        clock_hz: 1,
        ram_bytes: 1,
        flash_bytes: 1,
        plan_slot_bytes: 1,
        plan_slots: 1,
        arena_bytes: 1,
        power_sensor: PowerSensorKind::None,
        timing: TimingSource::SysTick,
        tick_hz: 1,
        active_plan: None,
        engines: "native",
        accelerator: "",
    });
    let mut body = [0u8; 64];
    let body = postcard::to_slice(&hello, &mut body).unwrap();
    let at = body.windows(2).position(|w| w == b"AB").unwrap();
    body[at] = 0xC3;
    let mut frame = stuff(&raw(V, 0, body, None));
    assert!(matches!(
        decode_frame::<DeviceMsg>(&mut frame),
        Err(ProtoError::Decode(_))
    ));
}

#[test]
fn too_large_to_encode() {
    let data = vec![1u8; MAX_MESSAGE];
    let mut out = vec![0u8; MAX_FRAME * 2];
    let err = encode_frame(
        0,
        &HostMsg::PlanChunk {
            index: 0,
            offset: 0,
            data: &data,
        },
        &mut out,
    )
    .unwrap_err();
    assert!(
        matches!(err, ProtoError::MessageTooLarge { len, max: MAX_MESSAGE } if len == MAX_MESSAGE + 5)
    );
    let mut small = [0u8; 32];
    let err = encode_frame(
        0,
        &HostMsg::Sample {
            index: 0,
            data: &[5; 100],
        },
        &mut small,
    )
    .unwrap_err();
    assert!(
        matches!(err, ProtoError::BufferTooSmall { available: 32, needed } if needed > 100),
        "{err:?}"
    );
    let mut tiny = [0u8; 4];
    assert!(matches!(
        encode_frame(0, &HostMsg::Reset, &mut tiny),
        Err(ProtoError::BufferTooSmall { .. })
    ));
    let mut none: [u8; 0] = [];
    assert!(matches!(
        encode_frame(0, &HostMsg::Reset, &mut none),
        Err(ProtoError::BufferTooSmall { .. })
    ));
}

#[test]
fn every_error_displays() {
    let errs = [
        ProtoError::FrameTooLarge { len: 1, max: 0 },
        ProtoError::MessageTooLarge { len: 1, max: 0 },
        ProtoError::BufferTooSmall {
            needed: 1,
            available: 0,
        },
        ProtoError::Cobs,
        ProtoError::Truncated { len: 0, min: 9 },
        ProtoError::Crc {
            expected: 1,
            computed: 2,
        },
        ProtoError::VersionMismatch { peer: 1, local: 2 },
        ProtoError::Decode(postcard::Error::DeserializeUnexpectedEnd),
        ProtoError::TrailingBytes { extra: 1 },
        ProtoError::Encode(postcard::Error::SerializeSeqLengthUnknown),
    ];
    for e in errs {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(ErrorCode::PlanCrcMismatch.to_string(), "plan CRC mismatch");
}

#[cfg(feature = "std")]
#[test]
fn std_helpers() {
    use std::error::Error as _;
    let msg = HostMsg::PlanBegin {
        plan_id: 1,
        total_size: 2,
        crc32: 3,
    };
    assert_eq!(encode_frame_vec(11, &msg).unwrap(), encode(11, &msg));
    let e = ProtoError::Decode(postcard::Error::DeserializeBadBool);
    assert!(e.source().is_some());
    let boxed: Box<dyn std::error::Error> = Box::new(ProtoError::Cobs);
    assert_eq!(boxed.to_string(), "bad COBS stuffing");
}
