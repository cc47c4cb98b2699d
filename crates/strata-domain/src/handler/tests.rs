use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_core::EventId;
use uuid::Uuid;

use super::*;
use crate::{DomainError, TaggedEvent};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum LampEvent {
    SwitchedOn { watts: u32 },
    SwitchedOff,
}

impl TaggedEvent for LampEvent {
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "switched_on" { 2 } else { 1 }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl DomainError for Never {
    fn code(&self) -> &'static str {
        "never"
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Lamp;

impl Aggregate for Lamp {
    const CATEGORY: &'static str = "lamp";
    type Command = ();
    type Event = LampEvent;
    type Error = Never;

    fn decide(&self, _: &()) -> Result<Vec<LampEvent>, Never> {
        Ok(vec![])
    }

    fn evolve(self, _: &LampEvent) -> Self {
        self
    }
}

fn recorded_at(version: u64, position: u64, nanos: i64) -> RecordedEvent {
    RecordedEvent {
        position: Position(position),
        stream: StreamName::new("lamp-1").unwrap(),
        version: Version(version),
        id: EventId::new(),
        event_type: EventType::new("switched_off").unwrap(),
        data: Bytes::from_static(b"{}"),
        metadata: Bytes::from_static(b"{}"),
        recorded_at: Timestamp::from_unix_nanos(nanos),
    }
}

#[test]
fn bounds_are_inclusive() {
    let event = recorded_at(3, 10, 500);
    assert!(Bound::Version(Version(3)).admits(&event));
    assert!(!Bound::Version(Version(2)).admits(&event));
    assert!(Bound::Position(Position(10)).admits(&event));
    assert!(!Bound::Position(Position(9)).admits(&event));
    assert!(Bound::Time(Timestamp::from_unix_nanos(500)).admits(&event));
    assert!(!Bound::Time(Timestamp::from_unix_nanos(499)).admits(&event));
}

#[test]
fn decided_events_are_encoded_with_derived_ids_and_per_type_schema_versions() {
    let context = CommandContext::with_id(Uuid::now_v7()).actor("ann");
    let events = [LampEvent::SwitchedOn { watts: 40 }, LampEvent::SwitchedOff];
    let encoded = encode_all::<Lamp>(&events, &context).unwrap();
    assert_eq!(encoded.len(), 2);
    for (index, event) in encoded.iter().enumerate() {
        assert_eq!(event.id, derived_event_id(context.command_id, index as u32));
    }
    assert_eq!(encoded[0].event_type.as_str(), "switched_on");
    assert_eq!(&encoded[0].data[..], br#"{"watts":40}"#);
    assert_eq!(encoded[1].event_type.as_str(), "switched_off");
    assert_eq!(&encoded[1].data[..], b"{}");
    let metadata =
        |i: usize| serde_json::from_slice::<serde_json::Value>(&encoded[i].metadata).unwrap();
    assert_eq!(metadata(0)["schema_version"], json!(2));
    assert_eq!(metadata(1)["schema_version"], json!(1));
    assert_eq!(metadata(1)["actor"], json!("ann"));
    assert_eq!(
        metadata(1)["command_id"],
        json!(context.command_id.to_string())
    );
}

#[test]
fn appended_events_are_numbered_from_the_append_result() {
    let context = CommandContext::new();
    let encoded = encode_all::<Lamp>(
        &[
            LampEvent::SwitchedOff,
            LampEvent::SwitchedOff,
            LampEvent::SwitchedOff,
        ],
        &context,
    )
    .unwrap();
    let stream = StreamName::new("lamp-1").unwrap();
    let result = AppendResult {
        first_version: Version(7),
        last_version: Version(9),
        first_position: Position(41),
        position: Position(43),
        recorded_at: Timestamp::from_unix_nanos(1_234),
    };
    let events = recorded(&stream, encoded.clone(), &result);
    let numbers: Vec<_> = events.iter().map(|e| (e.version.0, e.position.0)).collect();
    assert_eq!(numbers, [(7, 41), (8, 42), (9, 43)]);
    for (event, new) in events.iter().zip(&encoded) {
        assert_eq!(
            (&event.id, &event.data, &event.metadata),
            (&new.id, &new.data, &new.metadata)
        );
        assert_eq!(event.stream, stream);
        assert_eq!(event.recorded_at, result.recorded_at, "the store's time");
    }
}

#[test]
fn stream_names_come_from_the_category_and_the_id() {
    assert_eq!(
        CommandHandler::stream_of::<Lamp>("kitchen")
            .unwrap()
            .as_str(),
        "lamp-kitchen"
    );
    assert!(CommandHandler::stream_of::<Lamp>("bad\u{0}id").is_err());
    assert_eq!(HandlerOptions::default().max_attempts, 5);
}

/// An aggregate whose state refuses to serialise once it holds an entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Tally {
    #[serde(serialize_with = "refuse_entries")]
    counts: std::collections::BTreeMap<(u8, u8), u32>,
}

fn refuse_entries<S: serde::Serializer>(
    counts: &std::collections::BTreeMap<(u8, u8), u32>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if counts.is_empty() {
        return serializer.serialize_unit();
    }
    Err(serde::ser::Error::custom(
        "a tally with entries has no snapshot form",
    ))
}

impl Aggregate for Tally {
    const CATEGORY: &'static str = "tally";
    const SNAPSHOT_EVERY: Option<u64> = Some(2);
    type Command = ();
    type Event = LampEvent;
    type Error = Never;

    fn decide(&self, _: &()) -> Result<Vec<LampEvent>, Never> {
        Ok(vec![LampEvent::SwitchedOff])
    }

    fn evolve(mut self, _: &LampEvent) -> Self {
        *self.counts.entry((1, 2)).or_default() += 1;
        self
    }
}

#[tokio::test]
async fn a_state_that_does_not_serialise_is_an_error_not_a_silent_skip() {
    let snapshots = Arc::new(crate::MemorySnapshots::new());
    let handler = CommandHandler::new(
        Arc::new(strata_store::MemoryStore::new()),
        snapshots.clone(),
    );
    let stream = StreamName::new("tally-1").unwrap();
    let loaded = Loaded {
        state: Tally::default(),
        version: Version(1),
        position: Position(1),
        snapshot: None,
    };
    let off = [LampEvent::SwitchedOff];
    assert!(
        !handler
            .snapshot_if_due(&stream, &loaded, &off, Version(1))
            .await
            .expect("nothing is due at version 1"),
        "no snapshot is due before SNAPSHOT_EVERY events"
    );
    let err = handler
        .snapshot_if_due(&stream, &loaded, &off, Version(2))
        .await
        .expect_err("a state that refuses to serialise");
    match &err {
        SnapshotError::Encode { stream: s, .. } => assert_eq!(s, &stream),
        other => panic!("want an Encode error, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("cannot serialise the state of stream tally-1")
    );
    assert!(
        snapshots.load(&stream).await.unwrap().is_none(),
        "nothing was saved"
    );

    // A state that serialises is saved when due.
    let handler = CommandHandler::new(
        Arc::new(strata_store::MemoryStore::new()),
        snapshots.clone(),
    );
    let lamp = Loaded {
        state: Lamp,
        version: Version(0),
        position: Position(0),
        snapshot: None,
    };
    assert!(
        !handler
            .snapshot_if_due(&StreamName::new("lamp-1").unwrap(), &lamp, &off, Version(9))
            .await
            .unwrap(),
        "an aggregate without SNAPSHOT_EVERY is never snapshotted"
    );
}
