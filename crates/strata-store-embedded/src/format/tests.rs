use super::*;

fn sample(buf: &mut Vec<u8>, version: u64) {
    encode_record(
        buf,
        &RecordParts {
            stream: "order-1",
            event_type: "Placed",
            version,
            recorded_at: 42,
            id: &[7u8; 16],
            metadata: b"{}",
            data: b"{\"a\":1}",
        },
    );
}

#[test]
fn batch_round_trips() {
    let mut buf = Vec::new();
    let start = begin_batch(&mut buf);
    sample(&mut buf, 1);
    sample(&mut buf, 2);
    finish_batch(&mut buf, start, 2, 10);
    let header = parse_batch_header(&buf).unwrap();
    assert_eq!(header.count, 2);
    assert_eq!(header.first_position, 10);
    assert_eq!(header.body_len as usize, buf.len() - BATCH_HEADER_LEN);
    let first = parse_record(&buf[BATCH_HEADER_LEN..]).unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.stream, b"order-1");
    assert_eq!(first.event_type, b"Placed");
    let frame = &buf[BATCH_HEADER_LEN..];
    assert_eq!(&frame[first.data.0..first.data.1], b"{\"a\":1}");
    assert_eq!(&frame[first.metadata.0..first.metadata.1], b"{}");
    let second = parse_record(&buf[BATCH_HEADER_LEN + first.frame_len..]).unwrap();
    assert_eq!(second.version, 2);
}

#[test]
fn every_flipped_bit_is_detected() {
    let mut buf = Vec::new();
    sample(&mut buf, 1);
    for byte in 4..buf.len() {
        for bit in 0..8 {
            let mut bad = buf.clone();
            bad[byte] ^= 1 << bit;
            assert!(parse_record(&bad).is_err(), "flip at byte {byte} bit {bit}");
        }
    }
}

#[test]
fn header_corruption_and_short_input_are_reported() {
    let mut buf = Vec::new();
    let start = begin_batch(&mut buf);
    finish_batch(&mut buf, start, 0, 1);
    assert_eq!(parse_batch_header(&buf[..10]), Err(FrameError::Short));
    for byte in 0..28 {
        let mut bad = buf.clone();
        bad[byte] ^= 0x10;
        assert!(matches!(parse_batch_header(&bad), Err(FrameError::Bad(_))));
    }
    let mut rec = Vec::new();
    sample(&mut rec, 1);
    assert_eq!(
        parse_record(&rec[..rec.len() - 1]).unwrap_err(),
        FrameError::Short
    );
}

#[test]
fn segment_header_round_trips() {
    assert_eq!(parse_segment_header(&segment_header(99)), Some(99));
    assert_eq!(parse_segment_header(&[0u8; 16]), None);
}
