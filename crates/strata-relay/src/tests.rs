use bytes::Bytes;
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};

use crate::{
    Destination, RelayConfig, RelayError, amqp_routing_key, envelope, nats_subject, subject_token,
};

fn event(stream: &str, event_type: &str, data: &str) -> RecordedEvent {
    RecordedEvent {
        position: Position(42),
        stream: StreamName::new(stream).unwrap(),
        version: Version(3),
        id: EventId::new(),
        event_type: EventType::new(event_type).unwrap(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        metadata: Bytes::from_static(br#"{"actor":"ann"}"#),
        recorded_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
    }
}

#[test]
fn envelope_is_the_json_line_with_a_format_first() {
    let e = event("order-7", "OrderPlaced", r#"{"total": 5}"#);
    let bytes = envelope(&e);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with(r#"{"format":1,"position":42,"#), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["stream"], "order-7");
    assert_eq!(v["version"], 3);
    assert_eq!(v["id"], e.id.to_string());
    assert_eq!(v["type"], "OrderPlaced");
    assert_eq!(v["data"]["total"], 5);
    assert_eq!(v["metadata"]["actor"], "ann");
    assert!(v["recorded_at"].is_string());
    assert!(!text.contains('\n'));
}

#[test]
fn a_payload_that_is_not_json_travels_as_a_string() {
    let v: serde_json::Value =
        serde_json::from_slice(&envelope(&event("a-1", "T", "not json"))).unwrap();
    assert_eq!(v["data"], "not json");
}

#[test]
fn tokens_keep_plain_names_and_escape_the_rest() {
    assert_eq!(subject_token("order-7_x"), "order-7_x");
    assert_eq!(subject_token("a.b"), "a~2Eb");
    assert_eq!(subject_token("*>#~ "), "~2A~3E~23~7E~20");
    assert_eq!(subject_token("é"), "~C3~A9");
    assert_eq!(subject_token(""), "~");
}

#[test]
fn subjects_and_routing_keys_follow_the_documented_shape() {
    let e = event("order-7.1", "shop.OrderPlaced", "{}");
    assert_eq!(
        nats_subject("strata.events", &e),
        "strata.events.order.order-7~2E1"
    );
    assert_eq!(amqp_routing_key(&e), "order.shop~2EOrderPlaced");
    let no_category = event("-x", "T", "{}");
    assert_eq!(nats_subject("p", &no_category), "p.~.-x");
}

#[test]
fn a_long_routing_key_is_cut_outside_an_escape() {
    let long = ".".repeat(200);
    let key = amqp_routing_key(&event("c-1", &long, "{}"));
    assert!(key.len() <= 255);
    assert!(key.ends_with("~2E"), "{key}");
}

#[test]
fn urls_name_their_relay_and_lose_their_password() {
    let nats = RelayConfig::from_url("nats://127.0.0.1:4222").unwrap();
    assert_eq!(nats.name, "nats_127_0_0_1_4222");
    assert!(
        matches!(nats.destination, Destination::Nats { ref subject_prefix, .. } if subject_prefix == "strata.events")
    );
    let amqp = RelayConfig::from_url("amqp://guest:secret@127.0.0.1:5672/%2f").unwrap();
    assert_eq!(amqp.name, "amqp_127_0_0_1_5672");
    assert_eq!(amqp.destination.target(), "amqp://guest@127.0.0.1:5672/%2f");
    assert!(
        matches!(amqp.destination, Destination::Amqp { ref exchange, .. } if exchange == "strata.events")
    );
    let err = RelayConfig::from_url("kafka://u:pw@h:9092").unwrap_err();
    assert!(
        matches!(err, RelayError::InvalidUrl { ref url, .. } if url == "kafka://u@h:9092"),
        "{err}"
    );
    assert!(RelayConfig::from_url("127.0.0.1:4222").is_err());
    assert!(RelayConfig::from_url("nats://").is_err());
}
