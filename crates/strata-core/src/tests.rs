//! Unit tests of the model types: validation, textual and JSON forms.

use bytes::Bytes;
use proptest::prelude::*;

use crate::{
    CoreError, EMPTY_METADATA, EventId, EventType, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StreamName, Timestamp, Version,
};

mod stream_name {
    use super::*;

    #[test]
    fn accepts_category_and_id() {
        let name = StreamName::new("order-123").unwrap();
        assert_eq!(name.as_str(), "order-123");
        assert_eq!(name.category(), "order");
        assert_eq!(name.id(), Some("123"));
    }

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        let name = StreamName::new("order-line-7").unwrap();
        assert_eq!(name.category(), "order");
        assert_eq!(name.id(), Some("line-7"));
    }

    #[test]
    fn a_name_without_a_dash_is_its_own_category() {
        let name = StreamName::new("settings").unwrap();
        assert_eq!(name.category(), "settings");
        assert_eq!(name.id(), None);
    }

    #[test]
    fn leading_and_trailing_dashes_give_empty_parts() {
        let leading = StreamName::new("-7").unwrap();
        assert_eq!(leading.category(), "");
        assert_eq!(leading.id(), Some("7"));
        let trailing = StreamName::new("order-").unwrap();
        assert_eq!(trailing.category(), "order");
        assert_eq!(trailing.id(), Some(""));
    }

    #[test]
    fn rejects_empty() {
        let err = StreamName::new("").unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidStreamName { reason, .. } if reason.contains("empty")),
            "{err:?}"
        );
    }

    #[test]
    fn length_limit_is_255_bytes() {
        assert_eq!(StreamName::MAX_BYTES, 255);
        assert!(StreamName::new("a".repeat(255)).is_ok());
        let err = StreamName::new("a".repeat(256)).unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidStreamName { reason, .. } if reason.contains("255")),
            "{err:?}"
        );
    }

    #[test]
    fn length_limit_counts_bytes_not_chars() {
        // 'é' is two bytes in UTF-8.
        let at_limit = format!("{}a", "é".repeat(127));
        assert_eq!(at_limit.len(), 255);
        assert!(StreamName::new(&at_limit).is_ok());
        let over = "é".repeat(128);
        assert_eq!(over.len(), 256);
        assert!(StreamName::new(&over).is_err());
    }

    #[test]
    fn rejects_control_characters() {
        for name in [
            "a\nb",
            "tab\there",
            "nul\0",
            "\u{7f}",
            "c1\u{85}",
            "cr\r",
            "\u{1b}[0m",
        ] {
            let err = StreamName::new(name).unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidStreamName { reason, .. } if reason.contains("control")),
                "{name:?}: {err:?}"
            );
        }
    }

    #[test]
    fn accepts_spaces_and_unicode() {
        for name in ["a b", "訂單-一", "🦀-1", "x", "-", "a.b:c/d"] {
            assert_eq!(StreamName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn error_message_is_truncated_on_a_char_boundary() {
        // '€' is three bytes: 64 is not a boundary, 63 is.
        let name = format!("{}\n", "€".repeat(100));
        let err = StreamName::new(&name).unwrap_err();
        let CoreError::InvalidStreamName { name: shown, .. } = &err else {
            panic!("unexpected error {err:?}");
        };
        assert_eq!(shown, &"€".repeat(21));
        assert!(err.to_string().starts_with("invalid stream name"));
    }

    #[test]
    fn from_utf8_validates_bytes() {
        assert_eq!(
            StreamName::from_utf8(b"order-1").unwrap().as_str(),
            "order-1"
        );
        let err = StreamName::from_utf8(&[b'a', 0xff, 0xfe]).unwrap_err();
        assert!(
            matches!(err, CoreError::InvalidStreamName { reason, .. } if reason.contains("UTF-8")),
            "{err:?}"
        );
        assert!(StreamName::from_utf8(b"").is_err());
    }

    #[test]
    fn conversions_validate() {
        assert!(StreamName::try_from("ok-1").is_ok());
        assert!(StreamName::try_from(String::new()).is_err());
        assert!("bad\u{0}".parse::<StreamName>().is_err());
    }

    #[test]
    fn serde_is_a_validated_string() {
        let name = StreamName::new("order-1").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""order-1""#);
        let back: StreamName = serde_json::from_str(r#""order-1""#).unwrap();
        assert_eq!(back, name);
        assert!(serde_json::from_str::<StreamName>(r#""""#).is_err());
        assert!(serde_json::from_str::<StreamName>(r#""a\nb""#).is_err());
        assert!(serde_json::from_str::<StreamName>("7").is_err());
    }

    proptest! {
        #[test]
        fn any_short_name_without_control_chars_is_valid(name in "[^\\p{Cc}]{1,60}") {
            let stream = StreamName::new(&name).unwrap();
            prop_assert_eq!(stream.as_str(), name.as_str());
            match stream.id() {
                Some(id) => prop_assert_eq!(format!("{}-{}", stream.category(), id), name),
                None => {
                    prop_assert_eq!(stream.category(), name.as_str());
                    prop_assert!(!name.contains('-'));
                }
            }
            prop_assert!(!stream.category().contains('-'));
        }

        #[test]
        fn a_control_char_anywhere_is_rejected(
            prefix in "[a-z]{0,10}",
            control in "\\p{Cc}",
            suffix in "[a-z]{0,10}",
        ) {
            let name = format!("{prefix}{control}{suffix}");
            prop_assert!(StreamName::new(&name).is_err());
        }
    }
}

mod event_type {
    use super::*;

    #[test]
    fn follows_the_stream_name_rules() {
        assert_eq!(
            EventType::new("OrderPlaced").unwrap().as_str(),
            "OrderPlaced"
        );
        assert!(EventType::new("t".repeat(255)).is_ok());
        for bad in [String::new(), "t".repeat(256), "a\tb".to_owned()] {
            let err = EventType::new(&bad).unwrap_err();
            assert!(matches!(err, CoreError::InvalidEventType { .. }), "{err:?}");
        }
    }

    #[test]
    fn serde_validates() {
        let t: EventType = serde_json::from_str(r#""Shipped""#).unwrap();
        assert_eq!(t.as_str(), "Shipped");
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""Shipped""#);
        assert!(serde_json::from_str::<EventType>(r#""""#).is_err());
    }
}

mod expected_version {
    use super::*;

    #[test]
    fn parses_keywords_and_numbers() {
        let cases = [
            ("any", ExpectedVersion::Any),
            ("no_stream", ExpectedVersion::NoStream),
            ("exists", ExpectedVersion::Exists),
            ("0", ExpectedVersion::Exact(0)),
            ("42", ExpectedVersion::Exact(42)),
            ("18446744073709551615", ExpectedVersion::Exact(u64::MAX)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<ExpectedVersion>().unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn rejects_negatives_and_junk() {
        for text in [
            "-1",
            "",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "ANY",
            "Any",
            "nostream",
            "no-stream",
            "exist",
            "18446744073709551616",
            "0x10",
            "one",
        ] {
            let err = text.parse::<ExpectedVersion>().unwrap_err();
            assert_eq!(
                err,
                CoreError::InvalidExpectedVersion(text.to_owned()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for v in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::Exists,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Exact(7),
            ExpectedVersion::Exact(u64::MAX),
        ] {
            assert_eq!(v.to_string().parse::<ExpectedVersion>().unwrap(), v);
        }
    }

    #[test]
    fn serializes_numbers_as_numbers_and_keywords_as_strings() {
        let json = |v: ExpectedVersion| serde_json::to_string(&v).unwrap();
        assert_eq!(json(ExpectedVersion::Exact(3)), "3");
        assert_eq!(json(ExpectedVersion::Any), r#""any""#);
        assert_eq!(json(ExpectedVersion::NoStream), r#""no_stream""#);
        assert_eq!(json(ExpectedVersion::Exists), r#""exists""#);
    }

    #[test]
    fn deserializes_numbers_and_keywords() {
        let parse = |s: &str| serde_json::from_str::<ExpectedVersion>(s);
        assert_eq!(parse("3").unwrap(), ExpectedVersion::Exact(3));
        assert_eq!(parse("0").unwrap(), ExpectedVersion::Exact(0));
        assert_eq!(
            parse("18446744073709551615").unwrap(),
            ExpectedVersion::Exact(u64::MAX)
        );
        assert_eq!(parse(r#""any""#).unwrap(), ExpectedVersion::Any);
        assert_eq!(parse(r#""no_stream""#).unwrap(), ExpectedVersion::NoStream);
        assert_eq!(parse(r#""exists""#).unwrap(), ExpectedVersion::Exists);
        assert_eq!(parse(r#""12""#).unwrap(), ExpectedVersion::Exact(12));
    }

    #[test]
    fn deserialize_rejects_negatives_and_junk() {
        let err = serde_json::from_str::<ExpectedVersion>("-1").unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        for junk in [
            "1.5",
            "null",
            "true",
            "[]",
            "{}",
            r#""""#,
            r#""-1""#,
            r#""sometimes""#,
        ] {
            assert!(
                serde_json::from_str::<ExpectedVersion>(junk).is_err(),
                "{junk} was accepted"
            );
        }
    }

    #[test]
    fn accepts_and_exact() {
        let (zero, three) = (Version(0), Version(3));
        assert!(ExpectedVersion::Any.accepts(zero) && ExpectedVersion::Any.accepts(three));
        assert!(
            ExpectedVersion::NoStream.accepts(zero) && !ExpectedVersion::NoStream.accepts(three)
        );
        assert!(!ExpectedVersion::Exists.accepts(zero) && ExpectedVersion::Exists.accepts(three));
        assert!(
            ExpectedVersion::Exact(3).accepts(three) && !ExpectedVersion::Exact(3).accepts(zero)
        );
        assert!(ExpectedVersion::Exact(0).accepts(zero));
        assert_eq!(ExpectedVersion::NoStream.exact(), Some(0));
        assert_eq!(ExpectedVersion::Exact(5).exact(), Some(5));
        assert_eq!(ExpectedVersion::Any.exact(), None);
        assert_eq!(ExpectedVersion::Exists.exact(), None);
        assert_eq!(ExpectedVersion::default(), ExpectedVersion::Any);
    }

    proptest! {
        #[test]
        fn any_number_round_trips_as_text_and_json(v in any::<u64>()) {
            let e = ExpectedVersion::Exact(v);
            prop_assert_eq!(e.to_string().parse::<ExpectedVersion>().unwrap(), e);
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<ExpectedVersion>(&json).unwrap(), e);
        }

        #[test]
        fn any_negative_number_is_rejected(v in i64::MIN..0) {
            prop_assert!(v.to_string().parse::<ExpectedVersion>().is_err());
            prop_assert!(serde_json::from_str::<ExpectedVersion>(&v.to_string()).is_err());
        }
    }
}

mod versions_and_positions {
    use super::*;

    #[test]
    fn next_and_zero() {
        assert_eq!(Version::NONE.next(), Version(1));
        assert_eq!(Position::ZERO.next().get(), 1);
        assert_eq!(Version(4).get(), 4);
        assert_eq!(Position(9).to_string(), "9");
    }

    #[test]
    fn serialize_as_plain_numbers() {
        assert_eq!(serde_json::to_string(&Version(3)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&Position(10)).unwrap(), "10");
        assert_eq!(
            serde_json::from_str::<Position>("10").unwrap(),
            Position(10)
        );
        assert!(serde_json::from_str::<Version>("-1").is_err());
    }
}

mod timestamp {
    use super::*;

    #[test]
    fn epoch_is_formatted_in_utc() {
        assert_eq!(
            Timestamp::from_unix_nanos(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(1_500_000_000).to_string(),
            "1970-01-01T00:00:01.5Z"
        );
    }

    #[test]
    fn parses_offsets_into_utc() {
        let ts = Timestamp::parse_rfc3339("2024-05-06T09:10:11.123456789+02:00").unwrap();
        assert_eq!(ts.to_string(), "2024-05-06T07:10:11.123456789Z");
        assert_eq!(
            ts,
            Timestamp::parse_rfc3339("2024-05-06T07:10:11.123456789Z").unwrap()
        );
    }

    #[test]
    fn rejects_non_rfc3339() {
        for text in [
            "",
            "yesterday",
            "2024-05-06",
            "2024-05-06T07:10:11",
            "1714979411",
        ] {
            assert_eq!(
                Timestamp::parse_rfc3339(text).unwrap_err(),
                CoreError::InvalidTimestamp(text.to_owned()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn serde_is_the_rfc3339_string() {
        let ts = Timestamp::from_unix_nanos(1_714_979_411_000_000_001);
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(json, r#""2024-05-06T07:10:11.000000001Z""#);
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
        assert!(serde_json::from_str::<Timestamp>(r#""soon""#).is_err());
        assert!(serde_json::from_str::<Timestamp>("17").is_err());
    }

    #[test]
    fn extremes_of_i64_round_trip() {
        for nanos in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            let ts = Timestamp::from_unix_nanos(nanos);
            assert_eq!(Timestamp::parse_rfc3339(&ts.to_string()).unwrap(), ts);
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips_exactly(nanos in any::<i64>()) {
            let ts = Timestamp::from_unix_nanos(nanos);
            let text = ts.to_string();
            let back = Timestamp::parse_rfc3339(&text).unwrap();
            prop_assert_eq!(back, ts);
            prop_assert_eq!(back.unix_nanos(), nanos);
            prop_assert_eq!(back.to_string(), text.as_str());
            prop_assert!(text.ends_with('Z'), "{}", text);
        }

        #[test]
        fn datetime_conversion_round_trips(nanos in any::<i64>()) {
            let ts = Timestamp::from_unix_nanos(nanos);
            prop_assert_eq!(Timestamp::from_datetime(ts.to_datetime()), ts);
        }

        #[test]
        fn order_of_text_follows_order_of_instants_in_one_second(
            secs in 0i64..4_000_000_000,
            a in 0i64..1_000_000_000,
            b in 0i64..1_000_000_000,
        ) {
            let ta = Timestamp::from_unix_nanos(secs * 1_000_000_000 + a);
            let tb = Timestamp::from_unix_nanos(secs * 1_000_000_000 + b);
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
        }
    }
}

mod event_id {
    use super::*;

    #[test]
    fn parses_hyphenated_simple_and_uppercase() {
        let id: EventId = "0190f3c5-7a1b-7cde-8f01-23456789abcd".parse().unwrap();
        assert_eq!(id.to_string(), "0190f3c5-7a1b-7cde-8f01-23456789abcd");
        assert_eq!(
            "0190F3C57A1B7CDE8F0123456789ABCD"
                .parse::<EventId>()
                .unwrap(),
            id
        );
        assert_eq!(format!("{id:?}"), id.to_string());
    }

    #[test]
    fn rejects_junk() {
        for text in [
            "",
            "not-a-uuid",
            "0190f3c5-7a1b-7cde-8f01-23456789abc",
            "0190f3c5-7a1b-7cde-8f01-23456789abcdef",
            "zz90f3c5-7a1b-7cde-8f01-23456789abcd",
        ] {
            let err = text.parse::<EventId>().unwrap_err();
            assert_eq!(err, CoreError::InvalidEventId(text.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn new_ids_are_v7_distinct_and_ordered() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::new()).collect();
        assert!(ids.iter().all(|id| id.0.get_version_num() == 7));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "v7 ids are monotonic");
    }

    #[test]
    fn bytes_and_serde_round_trip() {
        let id = EventId::new();
        assert_eq!(EventId::from_bytes(*id.as_bytes()), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<EventId>(r#""nope""#).is_err());
    }

    proptest! {
        #[test]
        fn text_form_round_trips(bytes in any::<[u8; 16]>()) {
            let id = EventId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        }
    }
}

mod new_event {
    use super::*;

    #[test]
    fn json_constructor_and_size() {
        let event = NewEvent::json(
            EventType::new("Placed").unwrap(),
            &serde_json::json!({"a": 1}),
        );
        assert_eq!(&event.data[..], br#"{"a":1}"#);
        assert_eq!(&event.metadata[..], EMPTY_METADATA);
        assert_eq!(event.size(), "Placed".len() + 7 + 2);
    }

    #[test]
    fn builders_replace_id_and_metadata() {
        let id = EventId::from_bytes([7; 16]);
        let mut metadata = serde_json::Map::new();
        metadata.insert("actor".into(), "ana".into());
        let event = NewEvent::raw(EventType::new("T").unwrap(), &b"\x00\x01"[..])
            .with_id(id)
            .with_metadata(&metadata);
        assert_eq!(event.id, id);
        assert_eq!(&event.data[..], b"\x00\x01");
        assert_eq!(&event.metadata[..], br#"{"actor":"ana"}"#);
    }
}

mod recorded_event_json {
    use super::*;

    fn recorded(data: &[u8], metadata: &[u8]) -> RecordedEvent {
        RecordedEvent {
            position: Position(42),
            stream: StreamName::new("order-7").unwrap(),
            version: Version(3),
            id: "0190f3c5-7a1b-7cde-8f01-23456789abcd".parse().unwrap(),
            event_type: EventType::new("OrderPlaced").unwrap(),
            data: Bytes::copy_from_slice(data),
            metadata: Bytes::copy_from_slice(metadata),
            recorded_at: Timestamp::parse_rfc3339("2024-05-06T07:10:11.5Z").unwrap(),
        }
    }

    fn line(event: &RecordedEvent) -> String {
        let mut out = Vec::new();
        event.write_json_line(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn has_every_field_in_order() {
        let event = recorded(br#"{"total":12.5,"lines":[1,2]}"#, br#"{"actor":"ana"}"#);
        assert_eq!(
            line(&event),
            concat!(
                r#"{"position":42,"stream":"order-7","version":3,"#,
                r#""id":"0190f3c5-7a1b-7cde-8f01-23456789abcd","type":"OrderPlaced","#,
                r#""data":{"total":12.5,"lines":[1,2]},"metadata":{"actor":"ana"},"#,
                r#""recorded_at":"2024-05-06T07:10:11.5Z"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn json_data_is_embedded_byte_for_byte() {
        // Key order, number forms and escapes are kept as appended.
        let data = br#"{"z":1,"a":1.000,"big":123456789012345678901234567890,"s":"\u00e9"}"#;
        let event = recorded(data, b"{}");
        let value: serde_json::Value = serde_json::from_str(&line(&event)).unwrap();
        assert!(line(&event).contains(std::str::from_utf8(data).unwrap()));
        assert_eq!(value["metadata"], serde_json::json!({}));
    }

    #[test]
    fn non_json_data_becomes_a_string() {
        let event = recorded(b"plain text, not json", b"{}");
        let value: serde_json::Value = serde_json::from_str(&line(&event)).unwrap();
        assert_eq!(value["data"], "plain text, not json");
    }

    #[test]
    fn invalid_utf8_data_becomes_a_lossy_string() {
        let event = recorded(&[0x66, 0x6f, 0xff, 0x6f], b"{}");
        let value: serde_json::Value = serde_json::from_str(&line(&event)).unwrap();
        assert_eq!(value["data"], "fo\u{fffd}o");
    }

    #[test]
    fn empty_and_non_json_metadata_stay_valid_json() {
        let empty = recorded(b"1", b"");
        let value: serde_json::Value = serde_json::from_str(&line(&empty)).unwrap();
        assert_eq!(value["metadata"], serde_json::json!({}));
        assert_eq!(value["data"], 1);

        let junk = recorded(b"", b"not json");
        let value: serde_json::Value = serde_json::from_str(&line(&junk)).unwrap();
        assert_eq!(value["metadata"], "not json");
        assert_eq!(value["data"], "");
    }

    #[test]
    fn pretty_printed_json_data_stays_on_one_line() {
        let data = b"{\n  \"a\": [\n    1,\r\n    2\n  ],\n  \"s\": \"x y\\n\"\n}\n";
        let event = recorded(data, b"{ \"k\" :\n \"v\" }");
        let text = line(&event);
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["data"],
            serde_json::json!({"a": [1, 2], "s": "x y\n"})
        );
        assert_eq!(value["metadata"], serde_json::json!({"k": "v"}));
    }

    #[test]
    fn data_json_and_metadata_json_helpers() {
        let event = recorded(br#"{"a":1}"#, br#"{"actor":"ana"}"#);
        assert_eq!(event.data_json(), serde_json::json!({"a": 1}));
        assert_eq!(event.metadata_json()["actor"], "ana");
        let junk = recorded(b"nope", b"[1]");
        assert_eq!(junk.data_json(), serde_json::Value::Null);
        assert!(junk.metadata_json().is_empty());
    }

    proptest! {
        #[test]
        fn every_line_is_one_valid_json_object(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            metadata in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let text = line(&recorded(&data, &metadata));
            prop_assert_eq!(text.matches('\n').count(), 1);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert!(value.is_object());
            prop_assert_eq!(value.as_object().unwrap().len(), 8);
        }

        #[test]
        fn any_json_value_is_embedded_as_that_value(value in json_value()) {
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            let text = line(&recorded(&pretty, b"{}"));
            prop_assert_eq!(text.matches('\n').count(), 1);
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&parsed["data"], &value);
        }
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ -~\\n\\t\u{e9}]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z \\n]{0,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
