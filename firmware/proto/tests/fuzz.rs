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
    for i in 0..20_000 {
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
    for i in 0..20_000 {
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
        let frame = valid_envelope(i, &body);
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
    for i in 0..10_000 {
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
