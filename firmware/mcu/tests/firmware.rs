//! The firmware against an in-memory link, clock and RAM flash, with real
//! plans built by `PlanBuilder` and checked against the host's engine.

mod common;

use common::*;
use edgefit_engine::{Plan, FORMAT_VERSION};
use edgefit_mcu::{Firmware, NoPower, RamFlash};
use edgefit_proto::{
    crc32, plan_chunks, ErrorCode, HostMsg, PowerSensorKind, TimingSource, PROTOCOL_VERSION,
};

fn mem() -> (Vec<u8>, Vec<u8>) {
    (vec![0u8; FLASH_BYTES], vec![0u8; ARENA_BYTES])
}

#[test]
fn hello_reports_the_device() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let d = host.hello(&mut fw);
    assert_eq!(d.protocol_version, PROTOCOL_VERSION);
    assert_eq!(d.engine_version, FORMAT_VERSION);
    assert_eq!((d.board, d.core), ("test-board", "cortex-m4f"));
    assert_eq!(d.clock_hz, 25_000_000);
    assert_eq!(d.ram_bytes, 4 << 20);
    assert_eq!(d.flash_bytes, FLASH_BYTES as u64);
    assert_eq!(d.plan_slot_bytes, SLOT_BYTES);
    assert_eq!(fw.plan_slot_bytes(), SLOT_BYTES);
    assert_eq!(d.plan_slots, 2);
    assert_eq!(d.arena_bytes, ARENA_BYTES as u32);
    assert_eq!(d.power_sensor, PowerSensorKind::None);
    assert_eq!(d.timing, TimingSource::QemuIcount);
    assert_eq!(d.tick_hz, TICK_HZ);
    assert_eq!(d.active_plan, None);
    assert_eq!(
        host.ask(&mut fw, &HostMsg::Ping { nonce: 77 }),
        Reply::Pong(77)
    );
}

#[test]
fn upload_then_bench_matches_the_host_engine() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(0x51, 300, 10, 1);
    assert!(plan.len() > 2048, "several chunks");
    assert_eq!(
        host.upload(&mut fw, 0x51, &plan),
        Reply::Stored(info(0x51, &plan, 0))
    );
    assert_eq!(fw.active_plan(), Some(info(0x51, &plan, 0)));
    assert_eq!(host.hello(&mut fw).active_plan, Some(info(0x51, &plan, 0)));

    host.ack(&mut fw, &bench_start(Some(0x51), true));
    let mut rng = Rng(9);
    let mut predicted = Vec::new();
    for i in 0..4 {
        let x = rng.bytes(300);
        let want = reference(&plan, &x);
        let r = host.record(&mut fw, &HostMsg::Sample { index: i, data: &x });
        assert_eq!(r.sample, i);
        assert_eq!(r.outputs.as_deref(), Some(&want[..]));
        assert_eq!(r.predicted, argmax_i8(&want));
        assert_eq!(r.ticks, STEP);
        assert_eq!(r.energy_uj, None);
        predicted.push(r.predicted);
    }
    assert!(
        predicted.iter().any(|&p| p != predicted[0]),
        "degenerate plan: {predicted:?}"
    );
    let s = host.summary(&mut fw);
    assert_eq!(s.plan_id, 0x51);
    assert_eq!(s.slot, 0);
    assert_eq!(s.samples, 4);
    assert_eq!(s.timing, TimingSource::QemuIcount);
    assert_eq!(s.tick_hz, TICK_HZ);
    assert_eq!(s.clock_hz, 25_000_000);
    assert_eq!(
        (s.total_ticks, s.min_ticks, s.max_ticks),
        (4 * STEP, STEP, STEP)
    );
    assert_eq!(
        s.arena_bytes_used as usize,
        Plan::parse(&plan).unwrap().arena_size()
    );
    assert_eq!(s.stack_high_water_bytes, 0);
    assert_eq!(s.power_sensor, PowerSensorKind::None);
    assert_eq!(
        (s.energy_uj, s.avg_power_mw, s.idle_power_mw),
        (None, None, None)
    );
    // The benchmark is over.
    host.refused(
        &mut fw,
        &HostMsg::BenchEnd,
        ErrorCode::UnexpectedMessage,
        10,
    );
}

#[test]
fn power_and_stack_are_reported() {
    let (mut flash, mut arena) = mem();
    let host0 = Host::new();
    let stack = FakeStack {
        depth: 1234,
        ..FakeStack::default()
    };
    let repaints = stack.repaints.clone();
    let mut fw = Firmware::new(
        board(),
        host0.link.clone(),
        RamFlash::new(&mut flash),
        FakeClock::default(),
        FakePower { mw: 50 },
        stack,
        &mut arena,
    );
    let mut host = host0;
    assert_eq!(host.hello(&mut fw).power_sensor, PowerSensorKind::Ina219);
    let plan = dense_i8(8, 16, 4, 2);
    assert!(matches!(host.upload(&mut fw, 8, &plan), Reply::Stored(_)));
    host.ack(&mut fw, &bench_start(Some(8), false));
    assert_eq!(repaints.get(), 1);
    for i in 0..3 {
        let r = host.record(
            &mut fw,
            &HostMsg::Sample {
                index: i,
                data: &[1; 16],
            },
        );
        // 50 mW for 1000 ticks at 1 MHz: 50 µJ.
        assert_eq!(r.energy_uj, Some(50));
    }
    let s = host.summary(&mut fw);
    assert_eq!(s.power_sensor, PowerSensorKind::Ina219);
    assert_eq!(s.energy_uj, Some(150));
    assert_eq!(s.avg_power_mw, Some(50));
    assert_eq!(s.idle_power_mw, Some(50));
    assert_eq!(s.stack_high_water_bytes, 1234);
}

#[test]
fn reboot_keeps_the_active_plan() {
    let (mut flash, mut arena) = mem();
    let mut arena2 = vec![0u8; ARENA_BYTES];
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(0x77, 16, 4, 3);
    host.upload(&mut fw, 0x77, &plan);
    let (mut fw, mut host) = reboot(fw, &mut arena2);
    assert_eq!(fw.active_plan(), Some(info(0x77, &plan, 0)));
    assert_eq!(host.hello(&mut fw).active_plan, Some(info(0x77, &plan, 0)));
    host.ack(&mut fw, &bench_start(Some(0x77), true));
    let x = [7u8; 16];
    let r = host.record(&mut fw, &HostMsg::Sample { index: 0, data: &x });
    assert_eq!(r.outputs, Some(reference(&plan, &x)));
}

#[test]
fn plans_alternate_slots_with_increasing_generations() {
    let (mut flash, mut arena) = mem();
    let mut arena2 = vec![0u8; ARENA_BYTES];
    let (a, b, c) = (
        dense_i8(1, 16, 4, 1),
        dense_i8(2, 20, 3, 2),
        dense_i8(3, 12, 5, 3),
    );
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    assert_eq!(host.upload(&mut fw, 1, &a), Reply::Stored(info(1, &a, 0)));
    assert_eq!(host.upload(&mut fw, 2, &b), Reply::Stored(info(2, &b, 1)));
    {
        let (link, flash, clock, power, stack) = fw.into_parts();
        assert_eq!(generation(flash.memory(), 0), 1);
        assert_eq!(generation(flash.memory(), 1), 2);
        fw = Firmware::new(board(), link, flash, clock, power, stack, &mut arena2);
    }
    assert_eq!(fw.active_plan(), Some(info(2, &b, 1)));
    assert_eq!(host.upload(&mut fw, 3, &c), Reply::Stored(info(3, &c, 0)));
    let (_, flash, ..) = fw.into_parts();
    assert_eq!(generation(flash.memory(), 0), 3);
    assert_eq!(generation(flash.memory(), 1), 2);
    let mut arena3 = vec![0u8; ARENA_BYTES];
    let (fw, _) = boot(flash.into_inner(), &mut arena3);
    assert_eq!(fw.active_plan(), Some(info(3, &c, 0)));
}

#[test]
fn link_dropped_mid_transfer_keeps_the_old_plan() {
    let (mut flash, mut arena) = mem();
    let mut arena2 = vec![0u8; ARENA_BYTES];
    let (old, new) = (dense_i8(10, 16, 4, 1), dense_i8(11, 300, 10, 2));
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    host.upload(&mut fw, 10, &old);
    host.ack(&mut fw, &HostMsg::plan_begin(11, &new).unwrap());
    let first = plan_chunks(&new).next().unwrap();
    host.ack(&mut fw, &first);
    // Half of the next frame, then silence and a reboot.
    let f = host.frame(&plan_chunks(&new).nth(1).unwrap());
    host.send_raw(&f[..f.len() / 2]);
    host.pump(&mut fw);
    assert!(host.answers().is_empty());
    let (mut fw, mut host) = reboot(fw, &mut arena2);
    assert_eq!(fw.active_plan(), Some(info(10, &old, 0)));
    host.ack(&mut fw, &bench_start(Some(10), true));
    let x = [3u8; 16];
    let r = host.record(&mut fw, &HostMsg::Sample { index: 0, data: &x });
    assert_eq!(r.outputs, Some(reference(&old, &x)));
}

#[test]
fn torn_or_corrupted_new_slot_is_ignored_at_boot() {
    let (old, new) = (dense_i8(20, 16, 4, 1), dense_i8(21, 16, 4, 2));
    let cases: [fn(&mut [u8]); 3] = [
        |m| m[FLASH_BYTES - 32 + 9] ^= 0x40,  // record field
        |m| m[FLASH_BYTES - 4] ^= 0x01,       // record checksum
        |m| m[FLASH_BYTES / 2 + 100] ^= 0x01, // image byte
    ];
    for corrupt in cases {
        let (mut flash, mut arena) = mem();
        let mut arena2 = vec![0u8; ARENA_BYTES];
        let (mut fw, mut host) = boot(&mut flash, &mut arena);
        host.upload(&mut fw, 20, &old);
        assert_eq!(
            host.upload(&mut fw, 21, &new),
            Reply::Stored(info(21, &new, 1))
        );
        let (_, mut flash, ..) = fw.into_parts();
        corrupt(flash.memory_mut());
        let (fw, _) = boot(flash.into_inner(), &mut arena2);
        assert_eq!(fw.active_plan(), Some(info(20, &old, 0)));
    }
}

#[test]
fn plan_abort_keeps_the_old_plan() {
    let (mut flash, mut arena) = mem();
    let (old, new) = (dense_i8(30, 16, 4, 1), dense_i8(31, 300, 10, 2));
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    host.upload(&mut fw, 30, &old);
    host.ack(&mut fw, &HostMsg::plan_begin(31, &new).unwrap());
    host.ack(&mut fw, &plan_chunks(&new).next().unwrap());
    host.ack(&mut fw, &HostMsg::PlanAbort);
    host.refused(
        &mut fw,
        &plan_chunks(&new).nth(1).unwrap(),
        ErrorCode::UnexpectedMessage,
        3,
    );
    host.refused(
        &mut fw,
        &HostMsg::PlanCommit,
        ErrorCode::UnexpectedMessage,
        4,
    );
    assert_eq!(fw.active_plan(), Some(info(30, &old, 0)));
    // And the same upload works from the start.
    assert_eq!(
        host.upload(&mut fw, 31, &new),
        Reply::Stored(info(31, &new, 1))
    );
}

#[test]
fn corrupted_chunk_frame_is_refused_and_resent() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(40, 300, 10, 7);
    host.ack(&mut fw, &HostMsg::plan_begin(40, &plan).unwrap());
    let chunks: Vec<_> = plan_chunks(&plan).collect();
    host.ack(&mut fw, &chunks[0]);
    let good_seq = host.seq;
    let frame = host.frame(&chunks[1]);
    let mut raw = unstuff(&frame);
    raw[100] ^= 0x10; // a data byte: the CRC no longer matches
    let answers = host.exchange(&mut fw, &stuff(&raw));
    assert!(
        matches!(answers[..], [Reply::Error { seq, code: ErrorCode::BadCrc, .. }] if seq == good_seq),
        "{answers:?}"
    );
    // The host resends the same frame.
    assert_eq!(host.exchange(&mut fw, &frame), vec![Reply::Ack(host.seq)]);
    for c in &chunks[2..] {
        host.ack(&mut fw, c);
    }
    assert_eq!(
        host.ask(&mut fw, &HostMsg::PlanCommit),
        Reply::Stored(info(40, &plan, 0))
    );
}

#[test]
fn wrong_image_crc_is_refused_and_the_old_plan_stays() {
    let (mut flash, mut arena) = mem();
    let mut arena2 = vec![0u8; ARENA_BYTES];
    let (old, new) = (dense_i8(50, 16, 4, 1), dense_i8(51, 16, 4, 2));
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    host.upload(&mut fw, 50, &old);
    host.ack(
        &mut fw,
        &HostMsg::PlanBegin {
            plan_id: 51,
            total_size: new.len() as u32,
            crc32: crc32(&new) ^ 1,
        },
    );
    for c in plan_chunks(&new) {
        host.ack(&mut fw, &c);
    }
    host.refused(
        &mut fw,
        &HostMsg::PlanCommit,
        ErrorCode::PlanCrcMismatch,
        crc32(&new),
    );
    assert_eq!(fw.active_plan(), Some(info(50, &old, 0)));
    // The upload is gone.
    host.refused(
        &mut fw,
        &HostMsg::PlanCommit,
        ErrorCode::UnexpectedMessage,
        4,
    );
    let (fw, _) = reboot(fw, &mut arena2);
    assert_eq!(fw.active_plan(), Some(info(50, &old, 0)));
}

#[test]
fn plan_larger_than_a_slot_is_refused() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let msg = HostMsg::PlanBegin {
        plan_id: 1,
        total_size: SLOT_BYTES + 1,
        crc32: 0,
    };
    host.refused(&mut fw, &msg, ErrorCode::PlanTooLarge, SLOT_BYTES);
    // Exactly a slot is fine.
    host.ack(
        &mut fw,
        &HostMsg::PlanBegin {
            plan_id: 1,
            total_size: SLOT_BYTES,
            crc32: 0,
        },
    );
    // A chunk past the announced size.
    host.ack(
        &mut fw,
        &HostMsg::PlanBegin {
            plan_id: 1,
            total_size: 10,
            crc32: 0,
        },
    );
    host.refused(
        &mut fw,
        &HostMsg::PlanChunk {
            index: 0,
            offset: 0,
            data: &[0; 11],
        },
        ErrorCode::PlanTooLarge,
        10,
    );
}

#[test]
fn garbage_on_the_line_never_wedges_the_device() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    host.hello(&mut fw);
    let last = host.seq;
    let mut rng = Rng(3);
    // Noise with delimiters in it, then a frame after a flush byte.
    let mut bytes = rng.bytes(300);
    bytes.push(0);
    bytes.extend(host.frame(&HostMsg::hello()));
    let answers = host.exchange(&mut fw, &bytes);
    let (errors, rest) = answers.split_at(answers.len() - 1);
    assert!(!errors.is_empty());
    for e in errors {
        assert!(
            matches!(e, Reply::Error { seq, code: ErrorCode::BadFrame | ErrorCode::BadCrc, .. } if *seq == last),
            "{e:?}"
        );
    }
    assert!(matches!(rest, [Reply::Hello(_)]));
    // An overlong run without a delimiter: one BadFrame at its end.
    let mut bytes = vec![0x55u8; 5000];
    bytes.push(0);
    let answers = host.exchange(&mut fw, &bytes);
    assert!(
        matches!(answers[..], [Reply::Error { code: ErrorCode::BadFrame, detail, .. }] if detail >= 2131),
        "{answers:?}"
    );
    // Noise glued to the front of a frame spoils only that frame.
    let mut bytes = vec![0x42u8, 0x17, 0x99];
    bytes.extend(host.frame(&HostMsg::Ping { nonce: 1 }));
    let answers = host.exchange(&mut fw, &bytes);
    assert!(matches!(answers[..], [Reply::Error { .. }]), "{answers:?}");
    // Lone delimiters are ignored, then everything works.
    assert!(host.exchange(&mut fw, &[0, 0, 0]).is_empty());
    assert_eq!(
        host.ask(&mut fw, &HostMsg::Ping { nonce: 2 }),
        Reply::Pong(2)
    );
    host.hello(&mut fw);
}

#[test]
fn odd_chunk_sizes_are_written_correctly() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let plan = dense_i8(61, 30, 7, 4);
    host.ack(&mut fw, &HostMsg::plan_begin(61, &plan).unwrap());
    for c in edgefit_proto::PlanChunks::with_chunk_size(&plan, 333) {
        host.ack(&mut fw, &c);
    }
    assert_eq!(
        host.ask(&mut fw, &HostMsg::PlanCommit),
        Reply::Stored(info(61, &plan, 0))
    );
    host.ack(&mut fw, &bench_start(None, true));
    let x = [9u8; 30];
    let r = host.record(&mut fw, &HostMsg::Sample { index: 0, data: &x });
    assert_eq!(r.outputs, Some(reference(&plan, &x)));
}

#[test]
fn an_image_that_is_not_a_plan_is_refused() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    let old = dense_i8(90, 16, 4, 1);
    host.upload(&mut fw, 90, &old);
    let junk = Rng(1).bytes(3000);
    // 2 = PlanError::BadMagic.
    assert_eq!(
        host.upload(&mut fw, 91, &junk),
        Reply::Error {
            seq: host.seq,
            code: ErrorCode::BadPlan,
            detail: 2
        }
    );
    // A real plan with one byte changed and the image CRC fixed: the plan's own CRC fails.
    let mut bad = dense_i8(92, 16, 4, 2);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(
        host.upload(&mut fw, 92, &bad),
        Reply::Error {
            seq: host.seq,
            code: ErrorCode::BadPlan,
            detail: 6
        }
    );
    assert_eq!(fw.active_plan(), Some(info(90, &old, 0)));
}

#[test]
fn a_plan_needing_more_arena_is_refused() {
    let (mut flash, mut arena) = mem();
    let (mut fw, mut host) = boot(&mut flash, &mut arena);
    // The arena the plan needs is its activations plus the kernels' scratch.
    let probe = big_arena_plan(100, 4096);
    let scratch = Plan::parse(&probe).unwrap().arena_size() as u32 - 4096;
    let fits = big_arena_plan(100, ARENA_BYTES as u32 - scratch);
    assert_eq!(Plan::parse(&fits).unwrap().arena_size(), ARENA_BYTES);
    assert!(matches!(host.upload(&mut fw, 100, &fits), Reply::Stored(_)));
    let plan = big_arena_plan(101, ARENA_BYTES as u32 - scratch + 16);
    assert_eq!(
        host.upload(&mut fw, 101, &plan),
        Reply::Error {
            seq: host.seq,
            code: ErrorCode::ArenaTooSmall,
            detail: ARENA_BYTES as u32
        }
    );
    assert_eq!(fw.active_plan(), Some(info(100, &fits, 0)));
}

#[test]
fn no_slots_on_a_tiny_flash() {
    let mut flash = vec![0u8; 4096];
    let mut arena = vec![0u8; 64];
    let host = Host::new();
    let mut fw = Firmware::new(
        board(),
        host.link.clone(),
        RamFlash::new(&mut flash),
        FakeClock::default(),
        NoPower,
        edgefit_mcu::NoStackMeter,
        &mut arena,
    );
    let mut host = host;
    assert_eq!(host.hello(&mut fw).plan_slot_bytes, 0);
    host.refused(
        &mut fw,
        &HostMsg::PlanBegin {
            plan_id: 1,
            total_size: 1,
            crc32: 0,
        },
        ErrorCode::PlanTooLarge,
        0,
    );
}

#[test]
fn the_firmware_stays_small() {
    // Two MAX_FRAME buffers, the 80-byte MLPerf Tiny command buffer and a
    // little state (64-bit host; less on Cortex-M).
    let size = std::mem::size_of::<Fw<'static>>();
    println!("Firmware: {size} bytes");
    assert!(size < 2 * 2131 + 80 + 640, "{size}");
}
