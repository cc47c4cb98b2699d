//! `check_append` and `check_event_sizes`: the rules every backend applies before it
//! writes, tested against a stream kept in a vector.

use strata_core::{
    EventId, EventType, ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version,
};
use strata_store::{AppendCheck, AppendResult, StoreError, check_append, check_event_sizes};

/// A stream of `len` events; version v has position 10 × v and was recorded at v × 1000 ns.
struct Stream {
    name: StreamName,
    events: Vec<NewEvent>,
}

impl Stream {
    fn with(len: usize) -> Self {
        Self {
            name: StreamName::new("rules-1").unwrap(),
            events: (0..len).map(|_| fresh()).collect(),
        }
    }

    fn current(&self) -> Version {
        Version(self.events.len() as u64)
    }

    /// The stream's events at versions `from..=to`, for a repeat.
    fn at(&self, from: u64, to: u64) -> Vec<NewEvent> {
        self.events[(from - 1) as usize..to as usize].to_vec()
    }

    fn check(&self, expected: ExpectedVersion, events: &[NewEvent]) -> AppendCheck {
        let len = self.events.len() as u64;
        check_append(
            &self.name,
            expected,
            self.current(),
            events,
            |v| {
                assert!(
                    (1..=len).contains(&v.0),
                    "lookup of version {v} outside 1..={len}"
                );
                Ok((
                    self.events[(v.0 - 1) as usize].id,
                    Position(10 * v.0),
                    recorded(v.0),
                ))
            },
            |id| {
                Ok(self
                    .events
                    .iter()
                    .position(|e| e.id == id)
                    .map(|i| Version(i as u64 + 1)))
            },
        )
        .unwrap()
    }

    /// Checks with lookups that must not happen: the answer follows from the versions.
    fn check_without_lookups(&self, expected: ExpectedVersion, events: &[NewEvent]) -> AppendCheck {
        check_append(
            &self.name,
            expected,
            self.current(),
            events,
            |v| panic!("lookup of version {v} was not needed"),
            |id| panic!("find of id {id} was not needed"),
        )
        .unwrap()
    }
}

/// The recording time of version `v` in [`Stream`].
fn recorded(v: u64) -> Timestamp {
    Timestamp::from_unix_nanos(1000 * v as i64)
}

fn fresh() -> NewEvent {
    NewEvent::raw(EventType::new("E").unwrap(), &b"{}"[..])
}

#[track_caller]
fn assert_write(check: AppendCheck, current: u64) {
    match check {
        AppendCheck::Write { current: c } => assert_eq!(c, Version(current)),
        other => panic!("want a write after version {current}, got {other:?}"),
    }
}

#[track_caller]
fn assert_repeat(check: AppendCheck, from: u64, to: u64) {
    match check {
        AppendCheck::AlreadyAppended(r) => assert_eq!(
            r,
            AppendResult {
                first_version: Version(from),
                last_version: Version(to),
                first_position: Position(10 * from),
                position: Position(10 * to),
                recorded_at: recorded(to),
            },
            "a repeat answers the positions and the last event's recording time"
        ),
        other => panic!("want a repeat of versions {from}..={to}, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict(check: AppendCheck, expected: ExpectedVersion, actual: u64) {
    match check {
        AppendCheck::Refuse(StoreError::WrongExpectedVersion {
            expected: e,
            actual: a,
            ..
        }) => assert_eq!((e, a), (expected, Version(actual))),
        other => panic!("want a conflict expecting {expected} at {actual}, got {other:?}"),
    }
}

#[test]
fn an_empty_append_is_refused() {
    for len in [0, 2] {
        let stream = Stream::with(len);
        for expected in [ExpectedVersion::Any, ExpectedVersion::Exact(len as u64)] {
            match stream.check_without_lookups(expected, &[]) {
                AppendCheck::Refuse(StoreError::InvalidAppend { stream: s, .. }) => {
                    assert_eq!(s, stream.name);
                }
                other => panic!("want InvalidAppend, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_missing_stream_takes_any_no_stream_and_zero_without_lookups() {
    let stream = Stream::with(0);
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
    ] {
        assert_write(
            stream.check_without_lookups(expected, &[fresh(), fresh()]),
            0,
        );
    }
}

#[test]
fn a_missing_stream_refuses_exists_and_later_versions() {
    let stream = Stream::with(0);
    for expected in [
        ExpectedVersion::Exists,
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(u64::MAX),
    ] {
        assert_conflict(stream.check(expected, &[fresh()]), expected, 0);
    }
}

#[test]
fn the_current_version_writes_without_lookups() {
    let stream = Stream::with(3);
    assert_write(
        stream.check_without_lookups(ExpectedVersion::Exact(3), &[fresh()]),
        3,
    );
    // Even with ids the stream already holds: only a stale version makes a repeat.
    assert_write(
        stream.check_without_lookups(ExpectedVersion::Exact(3), &stream.at(1, 1)),
        3,
    );
}

#[test]
fn a_future_version_conflicts_without_lookups() {
    let stream = Stream::with(3);
    for v in [4, 5, u64::MAX] {
        let expected = ExpectedVersion::Exact(v);
        assert_conflict(
            stream.check_without_lookups(expected, &[fresh()]),
            expected,
            3,
        );
    }
}

#[test]
fn a_stale_version_with_new_ids_conflicts() {
    let stream = Stream::with(3);
    for v in [0, 1, 2] {
        let expected = ExpectedVersion::Exact(v);
        assert_conflict(stream.check(expected, &[fresh()]), expected, 3);
    }
    assert_conflict(
        stream.check(ExpectedVersion::NoStream, &[fresh()]),
        ExpectedVersion::NoStream,
        3,
    );
}

#[test]
fn a_stale_version_with_the_following_ids_is_a_repeat() {
    let stream = Stream::with(3);
    assert_repeat(
        stream.check(ExpectedVersion::Exact(1), &stream.at(2, 3)),
        2,
        3,
    );
    assert_repeat(
        stream.check(ExpectedVersion::Exact(1), &stream.at(2, 2)),
        2,
        2,
    );
    assert_repeat(
        stream.check(ExpectedVersion::Exact(2), &stream.at(3, 3)),
        3,
        3,
    );
    assert_repeat(
        stream.check(ExpectedVersion::Exact(0), &stream.at(1, 3)),
        1,
        3,
    );
    assert_repeat(
        stream.check(ExpectedVersion::NoStream, &stream.at(1, 2)),
        1,
        2,
    );
}

#[test]
fn a_partial_repeat_at_a_stale_version_conflicts() {
    let stream = Stream::with(3);
    let expected = ExpectedVersion::Exact(1);
    // Right first id, wrong second.
    let mut events = stream.at(2, 2);
    events.push(fresh());
    assert_conflict(stream.check(expected, &events), expected, 3);
    // The right ids, but one too many: the batch would run past the stream's end.
    let mut events = stream.at(2, 3);
    events.push(fresh());
    assert_conflict(stream.check(expected, &events), expected, 3);
    // Ids of the stream, but not the ones after the expected version.
    assert_conflict(stream.check(expected, &stream.at(3, 3)), expected, 3);
    assert_conflict(stream.check(expected, &stream.at(1, 1)), expected, 3);
    // The right ids in the wrong order.
    let mut swapped = stream.at(2, 3);
    swapped.reverse();
    assert_conflict(stream.check(expected, &swapped), expected, 3);
}

#[test]
fn any_and_exists_write_new_ids_to_an_existing_stream() {
    let stream = Stream::with(2);
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exists] {
        assert_write(stream.check(expected, &[fresh(), fresh()]), 2);
    }
}

#[test]
fn any_and_exists_repeat_consecutive_ids_anywhere_in_the_stream() {
    let stream = Stream::with(4);
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exists] {
        assert_repeat(stream.check(expected, &stream.at(1, 4)), 1, 4);
        assert_repeat(stream.check(expected, &stream.at(2, 3)), 2, 3);
        assert_repeat(stream.check(expected, &stream.at(4, 4)), 4, 4);
    }
}

#[test]
fn any_and_exists_conflict_on_a_partial_repeat() {
    let stream = Stream::with(4);
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exists] {
        let mut tail_and_new = stream.at(4, 4);
        tail_and_new.push(fresh());
        assert_conflict(stream.check(expected, &tail_and_new), expected, 4);

        let mut known_then_new = stream.at(1, 1);
        known_then_new.push(fresh());
        assert_conflict(stream.check(expected, &known_then_new), expected, 4);

        let gap = [stream.at(1, 1), stream.at(3, 3)].concat();
        assert_conflict(stream.check(expected, &gap), expected, 4);
    }
}

#[test]
fn lookup_errors_are_returned() {
    let stream = Stream::with(3);
    let result = check_append(
        &stream.name,
        ExpectedVersion::Exact(1),
        stream.current(),
        &stream.at(2, 3),
        |_| Err(StoreError::Closed),
        |_| Ok(None),
    );
    assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");

    let result = check_append(
        &stream.name,
        ExpectedVersion::Any,
        stream.current(),
        &stream.at(2, 3),
        |_| Ok((EventId::new(), Position(1), recorded(1))),
        |_| Err(StoreError::Closed),
    );
    assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
}

#[test]
fn sizes_count_type_data_and_metadata_up_to_the_limit() {
    let name = StreamName::new("sizes-1").unwrap();
    let sized = |data: usize, metadata: usize| NewEvent {
        id: EventId::new(),
        event_type: EventType::new("Typ").unwrap(),
        data: vec![b'd'; data].into(),
        metadata: vec![b'm'; metadata].into(),
    };
    assert_eq!(sized(5, 2).size(), 10);
    check_event_sizes(&name, &[sized(5, 2), sized(0, 0)], 10).unwrap();

    match check_event_sizes(&name, &[sized(5, 2), sized(6, 2), sized(100, 0)], 10) {
        Err(StoreError::EventTooLarge {
            stream,
            index,
            size,
            limit,
        }) => assert_eq!((stream, index, size, limit), (name.clone(), 1, 11, 10)),
        other => panic!("want EventTooLarge for the first event over the limit, got {other:?}"),
    }
    match check_event_sizes(&name, &[sized(0, 8)], 10) {
        Err(StoreError::EventTooLarge {
            index: 0, size: 11, ..
        }) => {}
        other => panic!("metadata counts: got {other:?}"),
    }
    match check_event_sizes(&name, &[], 10) {
        Err(StoreError::InvalidAppend { stream, .. }) => assert_eq!(stream, name),
        other => panic!("want InvalidAppend for no events, got {other:?}"),
    }
}

#[test]
fn errors_have_codes_and_name_the_stream() {
    let name = StreamName::new("codes-1").unwrap();
    let conflict = StoreError::WrongExpectedVersion {
        stream: name.clone(),
        expected: ExpectedVersion::Exact(2),
        actual: Version(5),
    };
    assert_eq!(conflict.code(), "wrong_expected_version");
    assert!(conflict.is_client_error());
    assert_eq!(
        conflict.to_string(),
        "wrong expected version for stream codes-1: expected 2, actual 5"
    );
    let too_large = check_event_sizes(&name, &[fresh()], 1).unwrap_err();
    assert_eq!(too_large.code(), "too_large");
    assert!(too_large.to_string().contains("codes-1"));
    assert!(!StoreError::Closed.is_client_error());
}
