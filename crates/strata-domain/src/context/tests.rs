use bytes::Bytes;
use serde_json::{Value, json};
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};
use uuid::Uuid;

use super::*;

fn event_with_metadata(metadata: &[u8]) -> RecordedEvent {
    RecordedEvent {
        position: Position(7),
        stream: StreamName::new("order-1").unwrap(),
        version: Version(2),
        id: EventId::new(),
        event_type: EventType::new("placed").unwrap(),
        data: Bytes::from_static(b"{}"),
        metadata: Bytes::copy_from_slice(metadata),
        recorded_at: Timestamp::from_unix_nanos(1),
    }
}

#[test]
fn a_bare_context_correlates_and_causes_by_its_own_id() {
    let context = CommandContext::new();
    let id = context.command_id.to_string();
    assert_eq!(
        Value::Object(context.event_metadata(2)),
        json!({
            "command_id": id,
            "correlation_id": id,
            "causation_id": id,
            "schema_version": 2,
        })
    );
}

#[test]
fn a_full_context_flows_into_the_metadata() {
    let context = CommandContext {
        correlation_id: Some("c".into()),
        causation_id: Some("e".into()),
        tenant: Some("t".into()),
        ..CommandContext::with_id(Uuid::nil()).actor("a")
    };
    assert_eq!(
        Value::Object(context.event_metadata(1)),
        json!({
            "command_id": Uuid::nil().to_string(),
            "correlation_id": "c",
            "causation_id": "e",
            "actor": "a",
            "tenant": "t",
            "schema_version": 1,
        })
    );
}

#[test]
fn derived_ids_depend_on_the_parent_and_the_index_only() {
    let parent = Uuid::now_v7();
    let other = Uuid::now_v7();
    assert_eq!(derived_event_id(parent, 0), derived_event_id(parent, 0));
    assert_ne!(derived_event_id(parent, 0), derived_event_id(parent, 1));
    assert_ne!(derived_event_id(parent, 0), derived_event_id(other, 0));
    assert_ne!(derived_event_id(parent, 0).0, parent);
    assert_eq!(derived_event_id(parent, 0).0.get_version_num(), 5);
    // Stable across releases: ids already stored must keep matching.
    assert_eq!(
        derived_event_id(Uuid::nil(), 0).to_string(),
        Uuid::new_v5(&Uuid::nil(), &[0, 0, 0, 0]).to_string()
    );
}

#[test]
fn a_caused_context_carries_correlation_actor_and_tenant_over() {
    let event = event_with_metadata(
        br#"{"correlation_id":"req","causation_id":"earlier","actor":"ann","tenant":"acme","command_id":"x"}"#,
    );
    let context = CommandContext::caused_by(&event, 2);
    assert_eq!(
        context,
        CommandContext {
            command_id: derived_event_id(event.id.0, 2).0,
            correlation_id: Some("req".into()),
            causation_id: Some(event.id.to_string()),
            actor: Some("ann".into()),
            tenant: Some("acme".into()),
            request_digest: None,
        }
    );
}

#[test]
fn an_event_without_metadata_correlates_by_its_own_id() {
    for metadata in [
        &b"{}"[..],
        b"",
        b"[1]",
        br#"{"correlation_id":5,"actor":null}"#,
    ] {
        let event = event_with_metadata(metadata);
        let context = CommandContext::caused_by(&event, 0);
        assert_eq!(context.correlation_id, Some(event.id.to_string()));
        assert_eq!(context.causation_id, Some(event.id.to_string()));
        assert_eq!((context.actor, context.tenant), (None, None));
    }
}

#[test]
fn a_context_round_trips_through_json() {
    let context = CommandContext::new().actor("bob");
    let text = serde_json::to_string(&context).unwrap();
    assert_eq!(
        serde_json::from_str::<CommandContext>(&text).unwrap(),
        context
    );
}

#[test]
fn the_metadata_bytes_are_those_of_the_metadata_map() {
    let full = CommandContext {
        correlation_id: Some("corr \"quoted\" \u{e9}".into()),
        causation_id: Some("e\\1".into()),
        tenant: Some("t\n2".into()),
        request_digest: Some("d".into()),
        ..CommandContext::with_id(Uuid::now_v7()).actor("ann\u{1}")
    };
    let partial = CommandContext {
        tenant: Some("t".into()),
        ..CommandContext::new()
    };
    for context in [CommandContext::new(), full, partial] {
        for schema in [0, 1, u32::MAX] {
            assert_eq!(
                String::from_utf8(context.event_metadata_json(schema)).unwrap(),
                serde_json::to_string(&context.event_metadata(schema)).unwrap(),
            );
        }
    }
}
