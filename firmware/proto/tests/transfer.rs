//! Host chunking helpers against the device's Transfer check.

use edgefit_proto::*;

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + i / 256) as u8).collect()
}

/// Sends `img` the way a host does, through real frames, into a Transfer.
fn send_plan(img: &[u8], slot: u32) -> Result<(Vec<u8>, u32), Reject> {
    let mut out = [0u8; MAX_FRAME];
    let begin = HostMsg::plan_begin(42, img).unwrap();
    let HostMsg::PlanBegin {
        total_size,
        crc32,
        plan_id,
    } = begin
    else {
        unreachable!()
    };
    assert_eq!(plan_id, 42);
    let mut t = Transfer::plan(total_size, crc32, slot)?;
    let mut stored = vec![0u8; total_size as usize];
    for (i, m) in plan_chunks(img).enumerate() {
        let frame = encode_frame(i as u32, &m, &mut out).unwrap();
        let mut f = frame[..frame.len() - 1].to_vec();
        let (_, m) = decode_frame::<HostMsg>(&mut f).unwrap();
        let HostMsg::PlanChunk {
            index,
            offset,
            data,
        } = m
        else {
            panic!("{m:?}")
        };
        t.accept(index, offset, data)?;
        stored[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }
    let crc = t.finish()?;
    Ok((stored, crc))
}

#[test]
fn plans_of_many_sizes_arrive_intact() {
    for len in [
        0,
        1,
        MAX_CHUNK - 1,
        MAX_CHUNK,
        MAX_CHUNK + 1,
        5 * MAX_CHUNK,
        100_003,
    ] {
        let img = image(len);
        let (stored, crc) = send_plan(&img, 1 << 20).unwrap();
        assert_eq!(stored, img);
        assert_eq!(crc, crc32(&img));
        assert_eq!(plan_chunks(&img).len(), len.div_ceil(MAX_CHUNK));
    }
}

#[test]
fn plan_too_large_for_slot() {
    assert_eq!(
        send_plan(&image(5000), 4096).unwrap_err(),
        Reject::new(ErrorCode::PlanTooLarge, 4096)
    );
}

#[test]
fn chunk_order_size_and_crc_are_enforced() {
    let img = image(5000);
    let chunks: Vec<_> = PlanChunks::with_chunk_size(&img, 1000).collect();
    assert_eq!(chunks.len(), 5);
    let parts = |m: &HostMsg<'_>| match *m {
        HostMsg::PlanChunk {
            index,
            offset,
            data,
        } => (index, offset, data.len()),
        _ => unreachable!(),
    };
    assert_eq!(parts(&chunks[4]), (4, 4000, 1000));

    let accept = |t: &mut Transfer, m: &HostMsg| match *m {
        HostMsg::PlanChunk {
            index,
            offset,
            data,
        } => t.accept(index, offset, data),
        _ => unreachable!(),
    };
    let crc = crc32(&img);
    let mut t = Transfer::plan(5000, crc, 8192).unwrap();
    accept(&mut t, &chunks[0]).unwrap();
    // Skipped chunk, then a repeated one.
    assert_eq!(
        accept(&mut t, &chunks[2]),
        Err(Reject::new(ErrorCode::ChunkOutOfOrder, 1000))
    );
    assert_eq!(
        accept(&mut t, &chunks[0]),
        Err(Reject::new(ErrorCode::ChunkOutOfOrder, 1000))
    );
    // Right offset, wrong index.
    assert_eq!(
        t.accept(7, 1000, &img[1000..2000]),
        Err(Reject::new(ErrorCode::ChunkOutOfOrder, 1000))
    );
    // Committing early.
    assert_eq!(
        t.finish(),
        Err(Reject::new(ErrorCode::ChunkOutOfOrder, 1000))
    );
    for c in &chunks[1..] {
        accept(&mut t, c).unwrap();
    }
    assert_eq!(t.received(), 5000);
    assert_eq!(t.finish(), Ok(crc));
    // One byte past the announced size.
    assert_eq!(
        t.accept(5, 5000, &[1]),
        Err(Reject::new(ErrorCode::PlanTooLarge, 5000))
    );
    // Wrong CRC announced.
    let mut t = Transfer::plan(5000, crc ^ 1, 8192).unwrap();
    for c in &chunks {
        accept(&mut t, c).unwrap();
    }
    assert_eq!(
        t.finish(),
        Err(Reject::new(ErrorCode::PlanCrcMismatch, crc))
    );
    assert_eq!(
        Reject::new(ErrorCode::PlanCrcMismatch, crc).to_msg(9),
        DeviceMsg::Error {
            seq: 9,
            code: ErrorCode::PlanCrcMismatch,
            detail: crc
        }
    );
}

#[test]
fn large_sample_reassembles() {
    let sample = image(3 * 224 * 224 * 4);
    let mut t = Transfer::sample(sample.len() as u32);
    let mut buf = vec![0u8; sample.len()];
    let mut ran = false;
    for m in sample_parts(77, &sample) {
        match m {
            HostMsg::SampleChunk {
                index,
                offset,
                data,
            } => {
                assert_eq!(index, 77);
                t.accept(index, offset, data).unwrap();
                buf[offset as usize..][..data.len()].copy_from_slice(data);
            }
            HostMsg::SampleRun { index, total_len } => {
                assert_eq!((index, total_len), (77, sample.len() as u32));
                assert_eq!(t.finish(), Ok(crc32(&sample)));
                ran = true;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(ran);
    assert_eq!(buf, sample);
    // Too much or too little for the plan's input.
    let mut t = Transfer::sample(100);
    assert_eq!(
        t.accept(0, 0, &[0; 101]),
        Err(Reject::new(ErrorCode::BadSample, 100))
    );
    t.accept(0, 0, &[0; 60]).unwrap();
    assert_eq!(t.finish(), Err(Reject::new(ErrorCode::BadSample, 100)));
}

#[test]
fn chunk_size_is_clamped_and_crc_is_incremental() {
    let img = image(10);
    assert_eq!(PlanChunks::with_chunk_size(&img, 0).len(), 10);
    assert_eq!(PlanChunks::with_chunk_size(&img, usize::MAX).len(), 1);
    assert_eq!(SampleParts::with_chunk_size(0, &img, 3).len(), 5);
    let mut c = Crc32::new();
    c.update(b"1234");
    c.update(b"56789");
    assert_eq!(c.value(), 0xCBF4_3926); // the CRC-32/ISO-HDLC check value
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(
        HostMsg::plan_begin(1, b"123456789"),
        Some(HostMsg::PlanBegin {
            plan_id: 1,
            total_size: 9,
            crc32: 0xCBF4_3926
        })
    );
}
