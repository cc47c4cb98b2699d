use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Size {
    Small,
    Large,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum Event {
    Poured { litres: u32, size: Size },
    Renamed(String),
    Emptied,
    Nothing {},
}

impl TaggedEvent for Event {
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "poured" { 3 } else { 1 }
    }
}

fn recorded(event_type: &str, data: &[u8], metadata: &[u8]) -> RecordedEvent {
    RecordedEvent {
        position: Position(1),
        stream: StreamName::new("cup-1").unwrap(),
        version: Version(1),
        id: EventId::new(),
        event_type: EventType::new(event_type).unwrap(),
        data: Bytes::copy_from_slice(data),
        metadata: Bytes::copy_from_slice(metadata),
        recorded_at: Timestamp::from_unix_nanos(0),
    }
}

#[test]
fn every_kind_of_variant_round_trips() {
    let cases = [
        (
            Event::Poured {
                litres: 2,
                size: Size::Large,
            },
            "poured",
            json!({"litres": 2, "size": "large"}),
        ),
        (Event::Renamed("mug".into()), "renamed", json!("mug")),
        (Event::Emptied, "emptied", json!({})),
        (Event::Nothing {}, "nothing", json!({})),
    ];
    for (event, event_type, data) in cases {
        let encoded = event.encode().unwrap();
        assert_eq!(encoded, (event_type.to_owned(), data.clone()));
        assert_eq!(Event::decode(event_type, data).unwrap(), event);
    }
    // A unit variant also reads from `null`.
    assert_eq!(
        Event::decode("emptied", Value::Null).unwrap(),
        Event::Emptied
    );
}

#[test]
fn a_unit_variant_survives_the_stored_bytes() {
    let (event_type, data) = Event::Emptied.encode().unwrap();
    let stored = recorded(&event_type, &serde_json::to_vec(&data).unwrap(), b"{}");
    assert_eq!(
        Upcasters::new().decode::<Event>(&stored).unwrap(),
        Event::Emptied
    );
}

#[test]
fn an_unknown_type_is_unknown_type() {
    let err = Event::decode("spilled", json!({})).unwrap_err();
    assert!(
        matches!(&err, CodecError::UnknownType(t) if t == "spilled"),
        "{err:?}"
    );
}

#[test]
fn an_unknown_variant_inside_the_payload_is_malformed() {
    let err = Event::decode("poured", json!({"litres": 1, "size": "huge"})).unwrap_err();
    match err {
        CodecError::Malformed { event_type, reason } => {
            assert_eq!(event_type, "poured");
            assert!(reason.contains("unknown variant `huge`"), "{reason}");
        }
        other => panic!("expected malformed, got {other:?}"),
    }
    // Even when the inner variant is named like the outer type.
    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Nested {
        Outer { inner: Size },
    }
    impl TaggedEvent for Nested {}
    let err = Nested::decode("Outer", json!({"inner": "Outer"})).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { .. }), "{err:?}");
}

#[test]
fn a_payload_of_the_wrong_shape_is_malformed() {
    for data in [
        json!({"litres": "two", "size": "small"}),
        json!({}),
        json!(null),
        json!([1]),
    ] {
        let err = Event::decode("poured", data.clone()).unwrap_err();
        assert!(
            matches!(&err, CodecError::Malformed { event_type, .. } if event_type == "poured"),
            "{data}: {err:?}"
        );
    }
    let err = Event::decode("emptied", json!({"x": 1})).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { .. }), "{err:?}");
}

#[test]
fn schema_versions_come_from_the_tagged_event() {
    assert_eq!(<Event as EventCodec>::schema_version("poured"), 3);
    assert_eq!(<Event as EventCodec>::schema_version("emptied"), 1);
}

#[test]
fn what_is_not_a_tagged_enum_does_not_encode() {
    #[derive(Serialize, Deserialize)]
    struct Bare(u32);
    impl TaggedEvent for Bare {}
    #[derive(Serialize, Deserialize)]
    struct NumberTag {
        r#type: u32,
    }
    impl TaggedEvent for NumberTag {}

    assert!(matches!(Bare(1).encode(), Err(CodecError::Encode(_))));
    assert!(matches!(
        NumberTag { r#type: 1 }.encode(),
        Err(CodecError::Encode(_))
    ));
    assert!(matches!(Bare(1).encode_bytes(), Err(CodecError::Encode(_))));
    assert!(matches!(
        NumberTag { r#type: 1 }.encode_bytes(),
        Err(CodecError::Encode(_))
    ));
}

#[test]
fn the_payload_bytes_are_the_payload_as_serde_writes_it() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Written {
        #[serde(rename = "say \"hi\"")]
        Said {
            zebra: String,
            apple: Vec<u32>,
            inner: Size,
        },
    }
    impl TaggedEvent for Written {}

    let cases = [
        (
            Event::Poured {
                litres: 2,
                size: Size::Large,
            },
            "poured",
            r#"{"litres":2,"size":"large"}"#,
        ),
        (Event::Renamed("m\"ug".into()), "renamed", r#""m\"ug""#),
        (Event::Emptied, "emptied", "{}"),
        (Event::Nothing {}, "nothing", "{}"),
    ];
    for (event, event_type, data) in cases {
        let (stored_type, bytes) = event.encode_bytes().unwrap();
        assert_eq!(stored_type, event_type);
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), data);
        // The same payload as the `Value` form, and it reads back.
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            event.encode().unwrap().1
        );
        assert_eq!(Event::decode_bytes(event_type, &bytes).unwrap(), event);
    }
    // Fields in their declared order (the `Value` form sorts them), a type name with
    // an escape.
    let said = Written::Said {
        zebra: "z\n".into(),
        apple: vec![1, 2],
        inner: Size::Small,
    };
    let (stored_type, bytes) = said.encode_bytes().unwrap();
    assert_eq!(stored_type, "say \"hi\"");
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"zebra":"z\n","apple":[1,2],"inner":"small"}"#
    );
    assert_eq!(Written::decode_bytes(&stored_type, &bytes).unwrap(), said);
}

fn times_hundred(data: Value) -> Value {
    json!({ "centilitres": data["litres"].as_u64().unwrap() * 100 })
}

fn add_size(mut data: Value) -> Value {
    data["size"] = json!("small");
    data
}

fn back_to_litres(data: Value) -> Value {
    json!({ "litres": data["centilitres"].as_u64().unwrap() / 100, "size": data["size"] })
}

fn chain() -> Upcasters {
    // Registered out of order: the chain follows the versions, not the registration.
    Upcasters::new()
        .with(Upcaster {
            event_type: "poured",
            from: 2,
            upcast: |data| back_to_litres(add_size(data)),
        })
        .with(Upcaster {
            event_type: "poured",
            from: 1,
            upcast: times_hundred,
        })
        .with(Upcaster {
            event_type: "renamed",
            from: 1,
            upcast: |_| json!("never"),
        })
}

#[test]
fn upcasters_apply_in_a_chain_from_the_stored_version() {
    let upcasters = chain();
    assert_eq!(
        upcasters
            .upcast("poured", 1, 3, json!({"litres": 4}))
            .unwrap(),
        json!({"litres": 4, "size": "small"})
    );
    assert_eq!(
        upcasters
            .upcast("poured", 2, 3, json!({"centilitres": 250}))
            .unwrap(),
        json!({"litres": 2, "size": "small"})
    );
    let current = json!({"litres": 1, "size": "large"});
    assert_eq!(
        upcasters.upcast("poured", 3, 3, current.clone()).unwrap(),
        current
    );
    // Another type's upcasters do not apply.
    assert_eq!(
        upcasters.upcast("renamed", 1, 1, json!("x")).unwrap(),
        json!("x")
    );
}

#[test]
fn a_gap_in_the_chain_names_the_missing_version() {
    let only_from_2 = Upcasters::new().with(Upcaster {
        event_type: "poured",
        from: 2,
        upcast: add_size,
    });
    let err = only_from_2.upcast("poured", 1, 3, json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "event of type \"poured\" does not decode: no upcaster from schema version 1"
    );
    let err = Upcasters::new()
        .upcast("poured", 2, 3, json!({}))
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("no upcaster from schema version 2"),
        "{err}"
    );
}

#[test]
fn a_newer_stored_version_is_too_new() {
    let err = chain().upcast("poured", 4, 3, json!({})).unwrap_err();
    assert!(
        matches!(&err, CodecError::TooNew { event_type, stored: 4, current: 3 } if event_type == "poured"),
        "{err:?}"
    );
}

#[test]
fn decoding_reads_the_schema_version_from_the_metadata() {
    let upcasters = chain();
    let poured = |litres, size| Event::Poured { litres, size };
    let cases: [(&[u8], &[u8], Event); 4] = [
        (
            br#"{"litres":3}"#,
            br#"{"schema_version":1}"#,
            poured(3, Size::Small),
        ),
        (
            br#"{"litres":3}"#,
            br#"{"actor":"x"}"#,
            poured(3, Size::Small),
        ),
        (br#"{"litres":3}"#, b"not json", poured(3, Size::Small)),
        (
            br#"{"litres":3,"size":"large"}"#,
            br#"{"schema_version":3}"#,
            poured(3, Size::Large),
        ),
    ];
    for (data, metadata, expected) in cases {
        let event = recorded("poured", data, metadata);
        assert_eq!(upcasters.decode::<Event>(&event).unwrap(), expected);
    }
}

#[test]
fn a_schema_version_that_is_no_version_is_malformed() {
    for metadata in [
        &br#"{"schema_version":"2"}"#[..],
        br#"{"schema_version":-1}"#,
        br#"{"schema_version":4294967297}"#,
        br#"{"schema_version":1.5}"#,
    ] {
        let event = recorded("poured", br#"{"litres":3}"#, metadata);
        let err = chain().decode::<Event>(&event).unwrap_err();
        assert!(
            matches!(&err, CodecError::Malformed { reason, .. } if reason.contains("schema_version")),
            "{}: {err:?}",
            String::from_utf8_lossy(metadata)
        );
    }
}

#[test]
fn a_payload_that_is_not_json_is_malformed() {
    let err = chain()
        .decode::<Event>(&recorded("emptied", b"\x00\x01", b"{}"))
        .unwrap_err();
    assert!(
        matches!(&err, CodecError::Malformed { reason, .. } if reason.starts_with("payload is not JSON")),
        "{err:?}"
    );
}

#[test]
fn decoding_from_bytes_agrees_with_decoding_a_value() {
    for (event_type, data) in [
        ("renamed", &b"\"tea\""[..]),
        ("emptied", b"{}"),
        ("emptied", b"null"),
        ("nothing", b"{}"),
        ("poured", b"{\"litres\": 2, \"size\": \"small\"}"),
    ] {
        let value: Value = serde_json::from_slice(data).unwrap();
        let slow = <Event as EventCodec>::decode(event_type, value).unwrap();
        let fast = <Event as EventCodec>::decode_bytes(event_type, data).unwrap();
        assert_eq!(fast, slow, "{event_type} {}", String::from_utf8_lossy(data));
    }
}

#[test]
fn a_payload_cannot_splice_in_another_type() {
    // Spliced after `"type":"renamed","data":`, this would read as an `emptied` event.
    let forged = br#""tea","type":"emptied"#;
    let err = <Event as EventCodec>::decode_bytes("renamed", forged).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { .. }), "{err:?}");
    let forged = br#""tea","type":"emptied","data":null"#;
    assert!(<Event as EventCodec>::decode_bytes("renamed", forged).is_err());
}

/// JSON values up to a few levels deep, whose strings and keys often hold the key's text.
fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let text = prop_oneof![
        Just("schema_version".to_owned()),
        Just("\"schema_version\":7".to_owned()),
        Just("x\",\"schema_version\":7,\"".to_owned()),
        "[a-z{},:\" ]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        text.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::vec((text.clone(), inner), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// Whatever a JSON object holds, where the schema version is found without parsing,
    /// it is the version parsing finds.
    #[test]
    fn the_schema_version_found_without_parsing_is_the_parsed_one(
        fields in proptest::collection::vec(("[a-z_]{1,16}", json_value()), 0..6),
        version in proptest::option::of(json_value()),
        plain in proptest::option::of(proptest::prelude::any::<u32>()),
        pretty in proptest::prelude::any::<bool>(),
    ) {
        let mut map: serde_json::Map<String, Value> = fields.into_iter().collect();
        if let Some(version) = version {
            map.insert(SCHEMA_VERSION_KEY.to_owned(), version);
        }
        if let Some(plain) = plain {
            map.insert(SCHEMA_VERSION_KEY.to_owned(), plain.into());
        }
        let bytes = if pretty {
            serde_json::to_vec_pretty(&map).unwrap()
        } else {
            serde_json::to_vec(&map).unwrap()
        };
        let event = recorded("poured", br#"{"litres":3}"#, &bytes);
        if let Some(found) = plain_schema_version(&bytes) {
            proptest::prop_assert_eq!(parsed_schema_version(&event).ok(), Some(found));
        }
        if let Some(plain) = plain {
            proptest::prop_assert_eq!(parsed_schema_version(&event).ok(), Some(plain));
        }
    }
}

#[test]
fn the_metadata_strata_writes_is_read_without_parsing() {
    let context = crate::CommandContext::new();
    for version in [1, 3, u32::MAX] {
        let bytes = serde_json::to_vec(&context.event_metadata(version)).unwrap();
        assert_eq!(plain_schema_version(&bytes), Some(version));
    }
    // What the parser must decide: nested, repeated, malformed or absent.
    for metadata in [
        &br#"{"a":{"schema_version":2}}"#[..],
        br#"{"schema_version":2,"schema_version":3}"#,
        br#"{"schema_version":02}"#,
        br#"{"schema_version":2.5}"#,
        br#"{"schema_version":1e2}"#,
        br#"{"schema_version":4294967296}"#,
        br#"{"x\"schema_version":2}"#,
        br#"{"a":"schema_version"}"#,
        br#"{"actor":"x"}"#,
        b"not json",
        b"[1,2]",
    ] {
        assert_eq!(
            plain_schema_version(metadata),
            None,
            "{}",
            String::from_utf8_lossy(metadata)
        );
    }
    assert_eq!(
        plain_schema_version(b" {\n  \"a\": 1,\n  \"schema_version\" : 12 \n} "),
        Some(12)
    );
}
