//! Helpers for the crate's unit tests: stored events built without a store.

use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};
use strata_domain::EventCodec;

/// `event` as the store would return it from `stream` at `position`, recorded at `at`
/// (RFC 3339).
pub(crate) fn recorded<E: EventCodec>(
    stream: &str,
    position: u64,
    at: &str,
    event: &E,
) -> RecordedEvent {
    let (event_type, data) = event.encode().expect("encodes");
    RecordedEvent {
        position: Position(position),
        stream: StreamName::new(stream).expect("valid stream"),
        version: Version(position),
        id: EventId::new(),
        event_type: EventType::new(event_type).expect("valid type"),
        data: serde_json::to_vec(&data).expect("json").into(),
        metadata: b"{}".to_vec().into(),
        recorded_at: Timestamp::parse_rfc3339(at).expect("time"),
    }
}
